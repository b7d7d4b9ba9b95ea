"""STDBP (Zhang et al. 2021): ReL-PSP neurons, exact spike times, exact spike-time gradients.

Each neuron fires at most once. Its membrane is a sum of linear ramps (ReL-PSP, eqs 8-9)::

    V_j(t) = sum_i w_ij K(t - t_i),   K(x) = max(x, 0)

so the first threshold crossing has a closed form over the causal set C = {i : t_i < t_j}
(eqs 11-12)::

    t_j = (theta + sum_{i in C} w_ij t_i) / sum_{i in C} w_ij

C is found with the sorted-prefix search: sort the inputs by time; for each prefix k compute
``W_k`` and ``t*_k``; the spike time is ``t*_k`` for the first k with ``W_k > 0`` and
``t_(k) <= t*_k <= t_(k+1)``; if no prefix qualifies the neuron never fires (``inf``).

Gradients (exact, eqs 14-15), for causal i, zero otherwise and for silent neurons::

    dt_j/dw_ij = (t_i - t_j) / W_C        dt_j/dt_i = w_ij / W_C

Loss (eq 13): cross-entropy on ``softmax(-t_out)``; the earliest output spike is the decision.
Silent outputs enter the loss at ``t_silent`` (a choice: the paper gives none) and pass no
gradient. Everything is numpy, vectorised over the batch.

Command: ``python -m spikeforge.studies.stdbp --dataset digits --out runs/stdbp-digits``.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spikeforge.algo.training import export as exporter
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.datasets import Dataset


def relpsp(x: np.ndarray) -> np.ndarray:
    """The ReL-PSP kernel K(x) = max(x, 0) (eq 9)."""
    return np.maximum(np.asarray(x, dtype=np.float64), 0.0)


def membrane(t: float | np.ndarray, t_in: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``V(t) = sum_i w_i K(t - t_i)``; ``t_in [n_in]`` (inf = silent), ``w [n_in, ...]``."""
    t_in = np.asarray(t_in, dtype=np.float64)
    fired = np.isfinite(t_in)
    ramp = np.where(
        fired, relpsp(np.asarray(t, dtype=np.float64)[..., None] - np.where(fired, t_in, 0.0)), 0.0
    )
    return ramp @ np.asarray(w, dtype=np.float64)


@dataclass
class LayerTrace:
    """What the backward pass of one layer needs: inputs, outputs, causal mask and W_C."""

    t_in: np.ndarray  # [B, n_in]
    t_out: np.ndarray  # [B, n_out], inf = silent
    causal: np.ndarray  # [B, n_in, n_out] bool
    w_causal: np.ndarray  # [B, n_out], sum of causal weights (1 where silent)


def spike_times(t_in: np.ndarray, w: np.ndarray, theta: float) -> tuple[np.ndarray, LayerTrace]:
    """Output spike times ``[B, n_out]`` (inf = never) of ReL-PSP neurons, and the trace.

    ``t_in`` ``[B, n_in]`` (inf = the input never fires), ``w`` ``[n_in, n_out]``.
    """
    t_in = np.atleast_2d(np.asarray(t_in, dtype=np.float64))
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.shape[0] != t_in.shape[1]:
        raise ValueError(f"weights {w.shape} do not match inputs {t_in.shape}")
    b, n_in = t_in.shape
    order = np.argsort(t_in, axis=1, kind="stable")
    t_sorted = np.take_along_axis(t_in, order, axis=1)  # [B, n_in]
    finite = np.isfinite(t_sorted)
    w_sorted = w[order] * finite[..., None]  # [B, n_in, n_out]
    cum_w = np.cumsum(w_sorted, axis=1)
    cum_wt = np.cumsum(w_sorted * np.where(finite, t_sorted, 0.0)[..., None], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t_star = (theta + cum_wt) / cum_w
    t_next = np.concatenate([t_sorted[:, 1:], np.full((b, 1), np.inf)], axis=1)
    valid = (
        (cum_w > 0)
        & finite[..., None]
        & (t_sorted[..., None] <= t_star)
        & (t_star <= t_next[..., None])
    )
    any_valid = valid.any(axis=1)  # [B, n_out]
    k_star = np.argmax(valid, axis=1)  # first valid prefix
    t_out = np.where(any_valid, np.take_along_axis(t_star, k_star[:, None], axis=1)[:, 0], np.inf)
    w_c = np.where(any_valid, np.take_along_axis(cum_w, k_star[:, None], axis=1)[:, 0], 1.0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(n_in)[None, :].repeat(b, 0), axis=1)
    causal = (rank[..., None] <= k_star[:, None, :]) & any_valid[:, None, :]
    return t_out, LayerTrace(t_in, t_out, causal, w_c)


def spike_time_grads(
    trace: LayerTrace, w: np.ndarray, grad_out: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Backward of ``spike_times`` (eqs 14-15): ``(dL/dw [n_in,n_out], dL/dt_in [B,n_in])``.

    ``grad_out`` is ``dL/dt_out`` ``[B, n_out]``; silent neurons pass nothing.
    """
    g = np.where(np.isfinite(trace.t_out), grad_out, 0.0) / trace.w_causal  # [B, n_out]
    m = trace.causal * g[:, None, :]  # [B, n_in, n_out]
    t_in = np.where(np.isfinite(trace.t_in), trace.t_in, 0.0)
    t_out = np.where(np.isfinite(trace.t_out), trace.t_out, 0.0)
    grad_w = np.einsum("bij,bi->ij", m, t_in) - np.einsum("bij,bj->ij", m, t_out)
    grad_t = np.einsum("bij,ij->bi", m, w)
    return grad_w, grad_t


def jacobians(t_in: np.ndarray, w: np.ndarray, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(dt_out/dw, dt_out/dt_in)`` of one neuron (``w [n_in]``) by eqs 14-15 (for tests)."""
    t_out, trace = spike_times(np.asarray(t_in)[None], np.asarray(w)[:, None], theta)
    c = trace.causal[0, :, 0]
    wc = trace.w_causal[0, 0]
    dw = np.where(c, (np.asarray(t_in) - t_out[0, 0]) / wc, 0.0)
    dt = np.where(c, np.asarray(w) / wc, 0.0)
    return dw, dt


def loss_and_grad(
    t_out: np.ndarray, labels: np.ndarray, t_silent: float
) -> tuple[float, np.ndarray, np.ndarray]:
    """Eq 13: mean ``-log softmax(-t)[label]``; returns ``(loss, dL/dt_out, probabilities)``.

    Silent outputs (inf) count as ``t_silent``. ``dL/dt_j = (1[j=g] - p_j) / B``.
    """
    t = np.where(np.isfinite(t_out), t_out, t_silent)
    z = -t - (-t).max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    b = len(labels)
    loss = float(-np.log(p[np.arange(b), labels] + 1e-300).mean())
    onehot = np.zeros_like(p)
    onehot[np.arange(b), labels] = 1.0
    return loss, (onehot - p) / b, p


def encode_latency(codes: np.ndarray, max_code: int) -> np.ndarray:
    """Latency code ``t = 1 - x/max_code`` per pixel; zero pixels never spike (inf)."""
    x = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1) / max_code
    return np.where(x > 0, 1.0 - x, np.inf)


def predict_earliest(t_out: np.ndarray) -> np.ndarray:
    """The earliest output spike decides; all-silent samples predict class 0 (lowest index)."""
    return np.argmin(t_out, axis=1)


@dataclass
class STDBPConfig:
    """Hyperparameters; the paper gives none, these are this project's choices."""

    hidden: tuple[int, ...] = (400,)
    theta: float = 1.0
    init_mean: float = 0.05
    init_std: float = 0.1
    init_ref_inputs: int | None = 64  # first-layer init scaled to 64/n_in (None: no scaling)
    lr: float = 1e-3
    epochs: int = 30
    batch_size: int = 32
    t_silent: float = 10.0
    cosine: bool = True  # cosine learning-rate decay to 0 over the run (a choice; none in paper)
    seed: int = 0


@dataclass
class STDBPNet:
    """Fully connected ReL-PSP network: ``weights[l]`` is ``[n_in, n_out]``."""

    weights: list[np.ndarray]
    theta: float

    def forward(self, t_in: np.ndarray) -> tuple[np.ndarray, list[LayerTrace]]:
        traces, t = [], t_in
        for w in self.weights:
            t, trace = spike_times(t, w, self.theta)
            traces.append(trace)
        return t, traces

    def backward(self, traces: list[LayerTrace], grad_out: np.ndarray) -> list[np.ndarray]:
        grads: list[np.ndarray] = [np.zeros(0)] * len(self.weights)
        g = grad_out
        for i in range(len(self.weights) - 1, -1, -1):
            grads[i], g = spike_time_grads(traces[i], self.weights[i], g)
        return grads

    def times(self, t_in: np.ndarray, batch: int | None = None) -> list[np.ndarray]:
        """Spike times of every layer for all samples (batched).

        The default batch keeps the ``[B, n_in, n_out]`` prefix arrays near 4M elements, so
        784-input networks do not need gigabytes.
        """
        if batch is None:
            widest = max(w.shape[0] * w.shape[1] for w in self.weights)
            batch = max(1, min(256, 4_000_000 // widest))
        per_layer: list[list[np.ndarray]] = [[] for _ in self.weights]
        for s in range(0, len(t_in), batch):
            t = t_in[s : s + batch]
            for i, w in enumerate(self.weights):
                t, _ = spike_times(t, w, self.theta)
                per_layer[i].append(t)
        return [np.concatenate(p) for p in per_layer]


def init_net(n_in: int, n_out: int, config: STDBPConfig) -> STDBPNet:
    """``N(init_mean, init_std)`` weights; the first layer is rescaled to its fan-in.

    The constants were tuned for 64 inputs (digits). With ``n_in`` inputs the first layer uses
    mean ``init_mean * ref / n_in`` and std ``init_std * sqrt(ref / n_in)`` (``ref`` =
    ``config.init_ref_inputs``), so the summed input weight, and with it the initial spike
    times, stay those of the digits network (784 inputs: mean 0.0041, std 0.029).
    """
    rng = np.random.default_rng(config.seed)
    sizes = (n_in, *config.hidden, n_out)
    weights = []
    for layer, (a, b) in enumerate(itertools.pairwise(sizes)):
        ratio = config.init_ref_inputs / a if layer == 0 and config.init_ref_inputs else 1.0
        weights.append(
            rng.normal(config.init_mean * ratio, config.init_std * math.sqrt(ratio), (a, b))
        )
    return STDBPNet(weights, config.theta)


@dataclass
class Adam:
    """Plain Adam (Kingma & Ba), numpy."""

    lr: float
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    step_count: int = 0
    m: list[np.ndarray] = field(default_factory=list)
    v: list[np.ndarray] = field(default_factory=list)

    def step(self, params: list[np.ndarray], grads: list[np.ndarray]) -> None:
        if not self.m:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.step_count += 1
        c1, c2 = 1 - self.beta1**self.step_count, 1 - self.beta2**self.step_count
        for p, g, m, v in zip(params, grads, self.m, self.v, strict=True):
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def firing_stats(times: list[np.ndarray]) -> dict[str, float]:
    """Fraction of neurons that fire per layer, and hidden spikes before the first output spike."""
    stats = {f"fired_layer{i + 1}": float(np.isfinite(t).mean()) for i, t in enumerate(times)}
    if len(times) >= 2:
        first_out = times[-1].min(axis=1, keepdims=True)
        stats["hidden_before_first_output"] = float((times[-2] < first_out).mean())
    return stats


def train(
    data: Dataset, config: STDBPConfig, log: Any = print
) -> tuple[STDBPNet, list[dict[str, Any]]]:
    """Train with Adam on eq 13; per-epoch records hold loss, train and test accuracy."""
    max_code = 2**data.bits - 1 if data.name != "digits" else 16
    x_train = encode_latency(data.x_train, max_code)
    x_test = encode_latency(data.x_test, max_code)
    net = init_net(x_train.shape[1], data.classes, config)
    opt = Adam(config.lr)
    rng = np.random.default_rng(config.seed + 1)
    history = []
    for epoch in range(config.epochs):
        start, total, correct = time.perf_counter(), 0.0, 0
        order = rng.permutation(len(x_train))
        if config.cosine:
            opt.lr = config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
        for s in range(0, len(order), config.batch_size):
            idx = order[s : s + config.batch_size]
            t_out, traces = net.forward(x_train[idx])
            loss, grad, _ = loss_and_grad(t_out, data.y_train[idx], config.t_silent)
            opt.step(net.weights, net.backward(traces, grad))
            total += loss * len(idx)
            correct += int((predict_earliest(t_out) == data.y_train[idx]).sum())
        test_times = net.times(x_test)
        record = {
            "epoch": epoch + 1,
            "loss": total / len(order),
            "phase": "stdbp",
            "train_acc": correct / len(order),
            "test_acc": float((predict_earliest(test_times[-1]) == data.y_test).mean()),
            "seconds": time.perf_counter() - start,
        }
        history.append(record)
        log(
            f"epoch {epoch + 1}/{config.epochs}: loss {record['loss']:.4f}, train "
            f"{record['train_acc']:.4f}, test {record['test_acc']:.4f} "
            f"({record['seconds']:.1f} s)"
        )
    return net, history


# ---------------------------------------------------------------------------------------------
# Approximate export: discretised time, step-coded ("held") spikes, IF neurons without reset.


def to_bundle(
    net: STDBPNet, *, dt: float, timesteps: int, w_bits: int = 8, v_bits: int = 24
) -> Bundle:
    """An *approximate* bundle: time in steps of ``dt``, ramps built by integrating step inputs.

    A ReL-PSP ramp ``w (t - t_i)+`` is what a no-leak neuron integrates when its input stays at 1
    from step ``k_i`` on. The input is therefore a held step train (computed before the bundle).
    Hidden neurons use ``reset: none``: they emit 1 at every step where ``V >= theta``; this is a
    held step only while ``V`` stays above threshold (the paper's neuron fires once and its
    ramp continues regardless). The output is an ``accum`` layer whose final potential
    ``V_out(T)`` replaces "earliest output spike" as the decision. Weights are quantised
    symmetrically per layer; thresholds become ``round(theta / (dt * unit))``.
    """
    layers, scales = [], {}
    *hidden, last = net.weights
    for i, w in enumerate(hidden):
        weight, unit = exporter.symmetric_integers(w.T, w_bits)
        scales[f"fc{i + 1}"] = unit
        theta_int = max(1, round(net.theta / (dt * unit)))
        layers.append(
            exporter.dense(
                f"fc{i + 1}",
                weight,
                w_bits=w_bits,
                v_bits=v_bits,
                threshold=min(theta_int, 2 ** (v_bits - 1) - 1),
            )
        )
    weight, scales["out"] = exporter.symmetric_integers(last.T, w_bits)
    layers.append(exporter.dense("out", weight, w_bits=w_bits, v_bits=v_bits, fire="accum"))
    meta = {
        "training": {"method": "stdbp", "approximate": True, "dt": dt, "theta": net.theta},
        "scales": scales,
    }
    return exporter.assemble(layers, exporter.spike_input(net.weights[0].shape[0]), timesteps, meta)


def held_trains(t_in: np.ndarray, dt: float, timesteps: int) -> np.ndarray:
    """Spike input ``[N, T, n]`` that is 1 from step ``ceil(t/dt)`` on (0 for silent inputs)."""
    k = np.where(
        np.isfinite(t_in), np.ceil(np.where(np.isfinite(t_in), t_in, 0) / dt - 1e-9), np.inf
    )
    steps = np.arange(timesteps)[None, :, None]
    return (steps >= k[:, None, :]).astype(np.uint8)


def final_potential_decision(net: STDBPNet, t_in: np.ndarray, t_end: float) -> np.ndarray:
    """Float reference for the export's decision rule: argmax of ``V_out(t_end)``."""
    times = net.times(t_in)
    hidden = times[-2] if len(times) >= 2 else t_in
    v = np.stack([membrane(t_end, h, net.weights[-1]) for h in hidden])
    return np.argmax(v, axis=1)
