"""STDP: additive, multiplicative and log-STDP, a Diehl & Cook style layer, a readout and export.

The rule family is the one Chakraborty & Mukhopadhyay (2021) compare. For a pair of spikes with
``u = t_pre - t_post``::

    dW = eta (1 + zeta) H(W; u),   zeta ~ N(0, sigma^2)
    H  = a_plus(W)  exp(-|u| / tau_plus)     for u <= 0  (pre before or with post: LTP)
    H  = -a_minus(W) exp(-|u| / tau_minus)   for u > 0   (post before pre: LTD)

* ``add``: ``a_plus = c_plus``, ``a_minus = c_minus`` (hard bounds ``[0, w_max]`` needed);
* ``mult``: ``a_plus = c_plus``, ``a_minus = c_minus W`` (equilibrium ``c+ tau+ / (c- tau-)``);
* ``log`` (Gilson & Fukai 2011): ``a_plus = c_plus exp(-W / (W0 gamma))``;
  ``a_minus = c_minus W / W0`` for ``W <= W0``, else ``c_minus (1 + ln(1 + S (W/W0 - 1)) / S)``.

``u == 0`` (same time step) counts as LTP: the pre spike took part in the post spike. The
all-to-all pair sum is computed online with exponential traces (pre trace for LTP, post trace
for LTD), which is exactly the sum of ``H`` over all pairs for fixed ``W``.

The layer (Diehl & Cook 2015, simplified to discrete 1 ms steps and a current-based LIF):
Poisson inputs, excitatory LIF neurons with adaptive thresholds ``theta_base + theta_j``
(``theta_j += theta_plus`` at each spike, slow decay), winner-take-all lateral inhibition
(at most one spike per step; the losers' potentials are lowered), per-neuron weight
normalisation after each sample. Readouts: (1) Diehl & Cook's label assignment (each neuron
labelled by its strongest class on the training set, class score = mean count of its neurons),
on which the generalisation gap ``|train acc - test acc|`` (Chakraborty & Mukhopadhyay) is
measured; (2) a linear readout fitted on the spike counts of the layer *as exported* (no
inhibition, frozen integer thresholds), which becomes the bundle's ``accum`` output layer.

Command: ``python -m spikeforge.studies.stdp --dataset digits --rule log --out
runs/stdp-digits-log``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from spikeforge.algo.training import export as exporter
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.semantics import Leak

RULES: tuple[str, ...] = ("add", "mult", "log")


@dataclass(frozen=True)
class STDPRule:
    """One member of the STDP family; constants default to this project's digits choices."""

    kind: str = "log"
    eta: float = 0.01
    c_plus: float = 1.0
    c_minus: float = 0.5
    tau_plus: float = 17.0
    tau_minus: float = 34.0
    w0: float = 0.25
    gamma: float = 50.0
    s: float = 5.0
    w_max: float = 1.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in RULES:
            raise ValueError(f"unknown STDP rule {self.kind!r}; expected one of {RULES}")

    def a_plus(self, w: np.ndarray) -> np.ndarray:
        """LTP amplitude as a function of the current weight."""
        w = np.asarray(w, dtype=np.float64)
        if self.kind == "log":
            return self.c_plus * np.exp(-w / (self.w0 * self.gamma))
        return np.full_like(w, self.c_plus)

    def a_minus(self, w: np.ndarray) -> np.ndarray:
        """LTD amplitude (positive) as a function of the current weight."""
        w = np.asarray(w, dtype=np.float64)
        if self.kind == "add":
            return np.full_like(w, self.c_minus)
        if self.kind == "mult":
            return self.c_minus * w
        ratio = w / self.w0
        above = 1 + np.log1p(self.s * (np.maximum(ratio, 1.0) - 1)) / self.s
        return self.c_minus * np.where(ratio <= 1, ratio, above)

    def h(self, w: np.ndarray, u: np.ndarray) -> np.ndarray:
        """The window ``H(W; u)`` for ``u = t_pre - t_post`` (ms)."""
        u = np.asarray(u, dtype=np.float64)
        ltp = self.a_plus(w) * np.exp(-np.abs(u) / self.tau_plus)
        ltd = -self.a_minus(w) * np.exp(-np.abs(u) / self.tau_minus)
        return np.where(u <= 0, ltp, ltd)

    def pair_dw(self, w: float, t_pre: np.ndarray, t_post: np.ndarray) -> float:
        """All-to-all sum ``eta sum_pairs H(w; t_pre - t_post)`` for one synapse, ``w`` fixed."""
        u = np.subtract.outer(np.asarray(t_pre, float), np.asarray(t_post, float))
        return float(self.eta * self.h(np.full(u.shape, w), u).sum())


def trace_dw(rule: STDPRule, pre: np.ndarray, post: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Trace implementation of the pair sum for fixed ``w`` ``[n_pre, n_post]``.

    ``pre`` ``[T, n_pre]`` and ``post`` ``[T, n_post]`` are 0/1 trains in 1 ms steps; the same
    update order as the layer (pre trace includes the current step; LTD sees the post trace
    before the current step's post spikes).
    """
    x_pre, x_post = np.zeros(pre.shape[1]), np.zeros(post.shape[1])
    dw = np.zeros_like(w, dtype=np.float64)
    d_pre, d_post = math.exp(-1 / rule.tau_plus), math.exp(-1 / rule.tau_minus)
    for t in range(pre.shape[0]):
        x_pre = x_pre * d_pre + pre[t]
        x_post = x_post * d_post
        dw -= rule.eta * pre[t][:, None] * rule.a_minus(w) * x_post[None, :]
        dw += rule.eta * rule.a_plus(w) * x_pre[:, None] * post[t][None, :]
        x_post = x_post + post[t]
    return dw


@dataclass
class LayerConfig:
    """The Diehl & Cook style layer (digits defaults; times in 1 ms steps)."""

    neurons: int = 200
    timesteps: int = 100
    max_rate: float = 0.25  # spikes per step for the brightest pixel
    tau_v: float = 20.0
    theta_base: float = 1.0
    theta_plus: float = 0.05
    tau_theta: float = 1e5
    inhibition: float = 1.0
    norm: float = 6.4  # sum of each neuron's input weights after normalisation
    min_spikes: int = 5
    retries: int = 3
    epochs: int = 3
    seed: int = 0


def poisson_trains(
    codes: np.ndarray, max_code: int, timesteps: int, max_rate: float, rng: np.random.Generator
) -> np.ndarray:
    """0/1 trains ``[N, T, n_in]``: per step, P(spike) = ``max_rate * code / max_code``."""
    p = np.asarray(codes, dtype=np.float64).reshape(len(codes), 1, -1) / max_code * max_rate
    return (rng.random((len(codes), timesteps, p.shape[2])) < p).astype(np.uint8)


@dataclass
class STDPLayer:
    """Learned weights ``w [n_in, n]``, adaptive thresholds ``theta [n]``."""

    w: np.ndarray
    theta: np.ndarray
    config: LayerConfig

    @property
    def thresholds(self) -> np.ndarray:
        return self.config.theta_base + self.theta

    def present(self, x: np.ndarray, rule: STDPRule, rng: np.random.Generator) -> np.ndarray:
        """Present one sample ``x [T, n_in]`` with plasticity on; returns the spike counts."""
        cfg = self.config
        decay = math.exp(-1 / cfg.tau_v)
        d_pre, d_post = math.exp(-1 / rule.tau_plus), math.exp(-1 / rule.tau_minus)
        d_theta = math.exp(-1 / cfg.tau_theta)
        v = np.zeros(cfg.neurons)
        x_pre, x_post = np.zeros(self.w.shape[0]), np.zeros(cfg.neurons)
        counts = np.zeros(cfg.neurons, dtype=np.int64)
        for t in range(x.shape[0]):
            pre = x[t]
            x_pre = x_pre * d_pre + pre
            x_post *= d_post
            self.theta *= d_theta
            active = np.flatnonzero(pre)
            if active.size:
                rows = self.w[active]
                noise = 1 + rule.sigma * rng.standard_normal(rows.shape) if rule.sigma else 1
                rows -= rule.eta * noise * rule.a_minus(rows) * x_post[None, :]
                self.w[active] = np.clip(rows, 0, rule.w_max)
                v = v * decay + self.w[active].sum(axis=0)
            else:
                v = v * decay
            u = v - self.thresholds
            j = int(np.argmax(u))
            if u[j] >= 0:
                counts[j] += 1
                v -= cfg.inhibition
                np.maximum(v, 0, out=v)
                v[j] = 0
                self.theta[j] += cfg.theta_plus
                col = self.w[:, j]
                noise = 1 + rule.sigma * rng.standard_normal(col.shape) if rule.sigma else 1
                col += rule.eta * noise * rule.a_plus(col) * x_pre
                self.w[:, j] = np.clip(col, 0, rule.w_max)
                x_post[j] += 1
        self.normalise()
        return counts

    def normalise(self) -> None:
        """Scale each neuron's input weights to sum to ``config.norm`` (Diehl & Cook)."""
        sums = self.w.sum(axis=0, keepdims=True)
        self.w *= np.where(sums > 0, self.config.norm / np.maximum(sums, 1e-12), 1.0)
        np.clip(self.w, 0, None, out=self.w)

    def counts(self, x: np.ndarray, wta: bool = True) -> np.ndarray:
        """Spike counts ``[N, n]`` for trains ``x [N, T, n_in]``, plasticity off, batched."""
        cfg = self.config
        decay = math.exp(-1 / cfg.tau_v)
        thr = self.thresholds[None, :]
        n = len(x)
        v = np.zeros((n, cfg.neurons))
        counts = np.zeros((n, cfg.neurons), dtype=np.int64)
        rows = np.arange(n)
        for t in range(x.shape[1]):
            v = v * decay + x[:, t].astype(np.float64) @ self.w
            u = v - thr
            if wta:
                j = np.argmax(u, axis=1)
                fired = u[rows, j] >= 0
                v[fired] = np.maximum(v[fired] - cfg.inhibition, 0)
                v[rows[fired], j[fired]] = 0
                counts[rows[fired], j[fired]] += 1
            else:
                spikes = u >= 0
                v[spikes] = 0
                counts += spikes
        return counts


def train_layer(
    trains: np.ndarray,
    codes: np.ndarray,
    max_code: int,
    rule: STDPRule,
    config: LayerConfig,
    log: Any = print,
) -> STDPLayer:
    """Unsupervised training: every sample once per epoch, re-presented brighter if too quiet."""
    rng = np.random.default_rng(config.seed)
    n_in = trains.shape[2]
    w = rng.uniform(0, 0.3, (n_in, config.neurons))
    layer = STDPLayer(w, np.zeros(config.neurons), config)
    layer.normalise()
    for epoch in range(config.epochs):
        start, quiet = time.perf_counter(), 0
        for i in rng.permutation(len(trains)):
            x, rate = trains[i], config.max_rate
            for _ in range(config.retries + 1):
                if layer.present(x, rule, rng).sum() >= config.min_spikes:
                    break
                quiet += 1
                rate *= 1.5
                x = poisson_trains(codes[i : i + 1], max_code, config.timesteps, rate, rng)[0]
        log(
            f"stdp {rule.kind} epoch {epoch + 1}/{config.epochs}: {time.perf_counter() - start:.1f}"
            f" s, {quiet} re-presentations"
        )
    return layer


def assign_labels(counts: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Diehl & Cook: each neuron's label = class with its highest mean response."""
    mean = np.stack([counts[labels == c].mean(axis=0) for c in range(classes)])
    return np.argmax(mean, axis=0)


def vote(counts: np.ndarray, assignment: np.ndarray, classes: int) -> np.ndarray:
    """Predicted class = highest mean count over the neurons labelled with it."""
    scores = np.stack(
        [
            counts[:, assignment == c].mean(axis=1)
            if (assignment == c).any()
            else np.zeros(len(counts))
            for c in range(classes)
        ],
        axis=1,
    )
    return np.argmax(scores, axis=1)


def generalisation_gap(train_acc: float, test_acc: float) -> float:
    """Chakraborty & Mukhopadhyay's generalisation error: ``|train - test|`` in points (%)."""
    return abs(train_acc - test_acc) * 100.0


def fit_readout(counts: np.ndarray, labels: np.ndarray, classes: int, ridge: float = 1.0):
    """Ridge regression of one-hot labels on counts, no bias: ``W [classes, n]``."""
    c = counts.astype(np.float64)
    y = np.eye(classes)[labels]
    return np.linalg.solve(c.T @ c + ridge * np.eye(c.shape[1]), c.T @ y).T


def to_bundle(
    layer: STDPLayer, readout: np.ndarray | None, *, w_bits: int = 8, v_bits: int = 16
) -> Bundle:
    """The exported network: the learned layer as LIF (per-neuron frozen thresholds, reset to 0,
    ``mult`` leak, *no lateral inhibition*) and the readout as the ``accum`` output layer.

    ``readout`` ``None`` writes a zero readout (used to read the layer's spikes first).
    """
    cfg = layer.config
    w_int, unit = exporter.symmetric_integers(layer.w.T, w_bits)
    n_classes = 10 if readout is None else readout.shape[0]
    r_int, r_unit = (
        exporter.symmetric_integers(readout, w_bits)
        if readout is not None
        else (np.zeros((n_classes, cfg.neurons), np.int64), 1.0)
    )
    layers = [
        exporter.dense(
            "stdp",
            w_int,
            w_bits=w_bits,
            v_bits=v_bits,
            threshold=exporter.integer_thresholds(layer.thresholds, unit, v_bits),
            leak=Leak("mult", lam=round(256 * math.exp(-1 / cfg.tau_v)), frac=8),
            reset="zero",
        ),
        exporter.dense("out", r_int, w_bits=w_bits, v_bits=v_bits, fire="accum"),
    ]
    return exporter.assemble(
        layers,
        exporter.spike_input(layer.w.shape[0]),
        cfg.timesteps,
        {
            "scales": {"stdp": unit, "out": r_unit},
            "training": {"method": "stdp", "lateral_inhibition": "dropped at export"},
        },
    )


def export_with_readout(
    layer: STDPLayer, train_x: np.ndarray, y_train: np.ndarray, classes: int, w_bits: int = 8
):
    """Fit the readout on the *integer* layer's spike counts (golden model), then quantise it."""
    from spikeforge.sim.golden import run

    probe = to_bundle(layer, None, w_bits=w_bits)
    counts = run(probe, train_x).spikes["stdp"].sum(axis=1)
    readout = fit_readout(counts, y_train, classes)
    return to_bundle(layer, readout, w_bits=w_bits), readout
