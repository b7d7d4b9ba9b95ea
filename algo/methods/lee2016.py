"""Lee, Delbruck & Pfeiffer 2016: event-driven LIF networks trained through membrane potentials.

Forward (event-driven, continuous time, no time steps). For each input event at time ``t``::

    V   <- V exp(-(t - t_prev)/tau) + w_k w_dyn                     (eq 1)
    w_dyn = (dt_out / T_ref)^2 if dt_out < T_ref else 1              (eq 2, dt_out = t - t_out)
    V >= V_th: spike, V <- V - V_th                                  (eq 3)
    WTA: every spike of j adds kappa V_th,i to the others' V (kappa in [-1, 0]) and puts them
         into the refractory state (t_out <- t)                      (section 2.1.2, eq 5)
    V is clipped to [-V_th, V_th]

The spikes of one layer reach the next layer at the same time (no delay). Traces
``x_k(t) = sum_p exp(-(t - t_p)/tau)`` and ``a_i(t)`` (eq 4) are kept along; they are the
differentiable activities of the backward pass. Threshold regularisation runs in the forward
pass while training: when ``N_w`` of ``N`` neurons fire after an input event, their thresholds
rise by ``rho N`` and all thresholds fall by ``rho N_w`` (net change 0); a threshold that would go
below ``th_min`` stays and that neuron's weights rise by the same amount instead (section 2.3.2).

Backward (once per sample, after all events): output ``o = counts / max counts``, error
``e = (o - y) / sqrt(N_nze)`` (eq 16), transfer function
``a_i ~ s_i / V_th,i + sigma sum_j kappa a_j``
(eq 6) with derivatives eq 7 and the WTA input Jacobian eqs 8-9, error normalisation eq 12,
updates eq 13, exponential weight regularisation eqs 14-15 on hidden layers. Hidden neurons
carry errors only when they fired (eqs 5-9). The output error is *not* gated: every output
neuron gets its element of ``(o - y)/sqrt(N_nze)``, a silent target included. Eq 16 counts that
element in ``N_nze``, and dropping it (the earlier ``gate_output=True`` rule, ``--gate``) leaves
a target that does not fire without any push to fire; that rule reached 56.9 % on digits.

Choices where the paper is silent or inconsistent (see docs/methods_lee2016_stdbp_stdp.md):
eq 9 is printed with the sign of ``mu`` flipped relative to eqs 5 and 8 (we use eq 8's form);
eq 13's threshold update is printed with the sign that would *raise* thresholds of silent target
neurons, against the text (we use the gradient sign); ``gamma = 1`` in ``a_hat``; the output
error is scaled by ``g_i / g_bar`` like the hidden errors; mini-batches of samples run in lockstep
(the paper uses batch size 1) and their updates are summed.

Command: ``python -m spikeforge.studies.lee2016 --dataset digits --out runs/lee2016-digits``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spikeforge.algo.training import export as exporter
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.datasets import Dataset
from spikeforge.sim.semantics import Leak


# ------------------------------------------------------------------------------------ equations
def membrane_update(v: float, dt: float, tau: float, w: float, w_dyn: float) -> float:
    """Eq 1 for one event: decay over ``dt`` then add ``w * w_dyn``."""
    return v * math.exp(-dt / tau) + w * w_dyn


def dynamic_weight(dt_out: np.ndarray, t_ref: float) -> np.ndarray:
    """Eq 2 with ``dt_out = t - t_out >= 0`` (time since the last output or inhibition)."""
    dt_out = np.asarray(dt_out, dtype=np.float64)
    return np.where(dt_out < t_ref, (dt_out / t_ref) ** 2, 1.0)


def init_layer(
    n_in: int, n_out: int, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Eq 10: ``w ~ U[-sqrt(3/M), sqrt(3/M)]`` (``[n_out, n_in]``), ``V_th = alpha sqrt(3/M)``."""
    bound = math.sqrt(3 / n_in)
    return rng.uniform(-bound, bound, (n_out, n_in)), np.full(n_out, alpha * bound)


def wta_jacobian(w: np.ndarray, v_th: np.ndarray, kappa: float, sigma: float) -> np.ndarray:
    """``da_i/dx_k`` ``[n, m]`` for a WTA layer with uniform ``kappa`` over ``n`` active neurons.

    Closed form of eq 8 (``(I - sigma K)^-1 (w / V_th)``, K = kappa off the diagonal)::

        (1/(1 + mu sigma)) (w_ik/V_th,i + mu sigma/(1 - mu sigma (n-1)) sum_j w_jk/V_th,j)

    with ``mu = kappa``. The paper's eq 9 is this expression with ``mu -> -mu`` (i.e. it takes
    ``mu`` as the inhibition *strength*); ``kappa = 0`` gives eq 7's ``w_ik / V_th,i``.
    """
    v = w / v_th[:, None]
    n = w.shape[0]
    ms = kappa * sigma
    return (v + ms / (1 - ms * (n - 1)) * v.sum(axis=0, keepdims=True)) / (1 + ms)


def wta_jacobian_matrix(w: np.ndarray, v_th: np.ndarray, kappa: float, sigma: float) -> np.ndarray:
    """Eq 8 literally, with a matrix inverse (for tests)."""
    n = w.shape[0]
    q = 1 / sigma
    mat = np.full((n, n), -kappa) + np.eye(n) * (q + kappa)
    return np.linalg.inv(mat) @ (w / v_th[:, None]) / sigma


def output_error(counts: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """Eq 16's error: ``o = counts / max counts``; ``(o - y) / sqrt(N_nze)`` per sample."""
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    top = counts.max(axis=1, keepdims=True)
    o = np.where(top > 0, counts / np.where(top > 0, top, 1), 0.0)
    e = o - np.eye(classes)[labels]
    nnz = np.maximum((e != 0).sum(axis=1, keepdims=True), 1)
    return e / np.sqrt(nnz)


def exp_regulariser(w: np.ndarray, lam: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """Eqs 14-15 per neuron (rows of ``w``): ``(L_w [n], dL_w/dw [n, m])``."""
    e = np.exp(beta * ((w * w).sum(axis=1) - 1))
    return 0.5 * lam * e, beta * lam * w * e[:, None]


def regulariser_step(w: np.ndarray, eta: float, lam: float, beta: float) -> np.ndarray:
    """``eta * dL_w/dw`` (eq 15), each row's decay factor capped at 0.5.

    The explicit step ``w <- w (1 - eta beta lam e)`` flips the sign of ``w`` once
    ``eta beta lam e > 1``; the cap (a safeguard, not in the paper) keeps it a decay.
    """
    e = np.exp(np.minimum(beta * ((w * w).sum(axis=1) - 1), 50.0))
    factor = np.minimum(eta * beta * lam * e, 0.5)
    return factor[:, None] * w


def threshold_regularise(
    v_th: np.ndarray, fired: np.ndarray, rho: float, th_min: float
) -> tuple[np.ndarray, np.ndarray]:
    """Section 2.3.2 for one input event: returns ``(new V_th, weight raise per neuron)``.

    ``fired`` holds how many times each neuron fired after this event (any sample of a lockstep
    batch counts); the firing ones rise by ``rho N`` each, all fall by ``rho N_w``. A neuron whose
    threshold would go below ``th_min`` keeps it and gets its weights raised by ``rho N_w``.
    """
    n = v_th.shape[0]
    n_w = float(fired.sum())
    if n_w == 0:
        return v_th, np.zeros(n)
    up = v_th + rho * n * fired
    down = up - rho * n_w
    blocked = down < th_min
    return np.where(blocked, up, down), np.where(blocked, rho * n_w, 0.0)


# ------------------------------------------------------------------------------------ the model
@dataclass
class Lee2016Config:
    """Digits defaults; times in ms. Paper (MNIST): tau 20, T_ref 1, alpha 3-10, beta 10."""

    hidden: int = 100
    tau: float = 20.0
    t_ref: float = 1.0
    total_rate: float = 5.0  # events per ms over the whole input (5 keps)
    train_ms: float = 50.0
    test_ms: float = 200.0
    alpha_hidden: float = 3.0
    alpha_out: float = 1.0
    kappa_hidden: float = -0.4
    kappa_out: float = -1.0
    sigma: float = 0.5
    eta_w: float = 0.002  # paper: 0.002-0.004
    eta_th_ratio: float = 0.1
    beta: float = 10.0
    lam: float = 0.002
    rho: float = 0.0002  # paper: 0.00004-0.0002
    th_min_ratio: float = 0.1  # th_min = ratio x initial threshold
    decay_epochs: float = 35.0
    epochs: int = 4
    batch_size: int = 8  # lockstep samples whose updates are summed (paper: 1)
    gate_output: bool = False  # True: silent output neurons get no error (not eq 16)
    seed: int = 0


@dataclass
class Lee2016Net:
    """Hidden and output layer: ``w[l]`` ``[n_out, n_in]``, ``v_th[l]`` ``[n_out]``."""

    w: list[np.ndarray]
    v_th: list[np.ndarray]
    kappa: list[float]
    config: Lee2016Config
    th_min: list[float] = field(default_factory=list)


@dataclass
class ForwardResult:
    """Output spike counts and the traces at the end of the presentation."""

    counts: list[np.ndarray]  # per layer [B, n]
    x_trace: list[np.ndarray]  # per layer: input trace [B, n_in]
    a_trace: list[np.ndarray]  # per layer: output trace [B, n]
    v: list[np.ndarray]  # per layer: membrane potentials after the last event [B, n]


def poisson_events(
    codes: np.ndarray, duration: float, total_rate: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Poisson input events, total rate ``total_rate`` per ms spread in proportion to intensity.

    Returns ``times [B, P]`` (sorted, ``inf`` padding) and ``index [B, P]`` (``-1`` padding).
    """
    x = np.asarray(codes, dtype=np.float64).reshape(len(codes), -1)
    counts = rng.poisson(total_rate * duration, len(x))
    p = max(int(counts.max()), 1)
    times = np.full((len(x), p), np.inf)
    index = np.full((len(x), p), -1, dtype=np.int64)
    for b, n in enumerate(counts):
        if x[b].sum() <= 0 or n == 0:
            continue
        times[b, :n] = np.sort(rng.uniform(0, duration, n))
        index[b, :n] = rng.choice(x.shape[1], n, p=x[b] / x[b].sum())
    return times, index


def forward(
    net: Lee2016Net,
    times: np.ndarray,
    index: np.ndarray,
    *,
    train: bool = False,
    wta: bool = True,
) -> ForwardResult:
    """Event-driven simulation of a batch in lockstep (event p of every sample together)."""
    cfg = net.config
    b, p = times.shape
    n_layers = len(net.w)
    rows = np.arange(b)
    v = [np.zeros((b, w.shape[0])) for w in net.w]
    t_out = [np.full((b, w.shape[0]), -np.inf) for w in net.w]
    counts = [np.zeros((b, w.shape[0])) for w in net.w]
    x_tr = [np.zeros((b, w.shape[1])) for w in net.w]
    a_tr = [np.zeros((b, w.shape[0])) for w in net.w]
    t_prev = np.zeros(b)
    rho = cfg.rho * net_rho_scale(net) if train else 0.0
    n_in = net.w[0].shape[1]
    for step in range(p):
        t = times[:, step]
        valid = np.isfinite(t)
        if not valid.any():
            break
        t_now = np.where(valid, t, t_prev)
        decay = np.exp((t_prev - t_now) / cfg.tau)[:, None]
        t_prev = t_now
        inp = np.zeros((b, n_in))
        inp[rows[valid], index[valid, step]] = 1.0
        for layer in range(n_layers):
            w, v_th = net.w[layer], net.v_th[layer]
            x_tr[layer] *= decay
            x_tr[layer] += inp
            since = t_now[:, None] - t_out[layer]
            w_dyn = np.minimum((since / cfg.t_ref) ** 2, 1.0)
            vl = v[layer]
            vl *= decay
            vl += (inp @ w.T) * w_dyn
            fired = vl >= v_th
            vl -= fired * v_th
            kappa = net.kappa[layer] if wta else 0.0
            if kappa != 0.0:
                others = fired.sum(axis=1, keepdims=True) - fired  # spikes of the others
                vl += kappa * others * v_th
                t_out[layer][others > 0] = np.broadcast_to(t_now[:, None], others.shape)[others > 0]
            t_out[layer][fired] = np.broadcast_to(t_now[:, None], fired.shape)[fired]
            np.maximum(vl, -v_th, out=vl)
            np.minimum(vl, v_th, out=vl)
            a_tr[layer] *= decay
            a_tr[layer] += fired
            counts[layer] += fired
            if rho > 0:
                per_neuron = fired.sum(axis=0)
                if per_neuron.any():
                    net.v_th[layer], raise_w = threshold_regularise(
                        v_th, per_neuron, rho, net.th_min[layer]
                    )
                    if raise_w.any():
                        net.w[layer] += raise_w[:, None]
            inp = fired.astype(np.float64)
    return ForwardResult(counts, x_tr, a_tr, v)


def net_rho_scale(net: Lee2016Net) -> float:
    """Current decay factor of the threshold-regularisation strength (set per epoch)."""
    return getattr(net, "_rho_scale", 1.0)


def backward(
    net: Lee2016Net, result: ForwardResult, labels: np.ndarray, classes: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Eqs 6-15: ``(dW per layer, dV_th per layer)`` to *add* (already scaled by the rates)."""
    cfg = net.config
    n_layers = len(net.w)
    dw = [np.zeros_like(w) for w in net.w]
    dth = [np.zeros_like(t) for t in net.v_th]
    err = output_error(result.counts[-1], labels, classes)  # [B, n_out]
    for b in range(err.shape[0]):
        delta_next = None
        for layer in range(n_layers - 1, -1, -1):
            w, v_th, kappa = net.w[layer], net.v_th[layer], net.kappa[layer]
            active = result.counts[layer][b] > 0
            g = 1 / v_th
            if layer == n_layers - 1:
                # g_bar (eq 12) over the neurons that carry an error: all outputs unless gated
                gate = active if cfg.gate_output else np.ones_like(active)
                g_bar = math.sqrt(np.mean(g[gate] ** 2)) if gate.any() else 1.0
                delta = np.where(gate, g / g_bar * err[b], 0.0)
            else:
                g_bar = math.sqrt(np.mean(g[active] ** 2)) if active.any() else 1.0
                nxt = layer + 1
                act_n = result.counts[nxt][b] > 0
                if delta_next is None or not act_n.any() or not active.any():
                    break
                jac = wta_jacobian(
                    net.w[nxt][act_n], net.v_th[nxt][act_n], net.kappa[nxt], cfg.sigma
                )
                back = (net.v_th[nxt][act_n, None] * jac).T @ delta_next[act_n]
                big_m, small_m = net.w[nxt].shape[1], int(active.sum())
                delta = np.where(active, g / g_bar * math.sqrt(big_m / small_m) * back, 0.0)
            x_hat = result.x_trace[layer][b]
            m_act = max(int((x_hat > 0).sum()), 1)
            n_neurons, big_m = w.shape
            dw[layer] -= cfg.eta_w * math.sqrt(n_neurons / m_act) * np.outer(delta, x_hat)
            a = result.a_trace[layer][b]
            a_hat = a - cfg.sigma * kappa * (a.sum() - a)
            eta_th = cfg.eta_w * cfg.eta_th_ratio
            dth[layer] += eta_th * math.sqrt(n_neurons / (m_act * big_m)) * delta * a_hat
            delta_next = delta
    for layer in range(n_layers - 1):  # exponential regularisation, hidden layers only
        # once per sample, as with the paper's batch size 1
        dw[layer] -= regulariser_step(net.w[layer], cfg.eta_w * err.shape[0], cfg.lam, cfg.beta)
    return dw, dth


def build(n_in: int, classes: int, config: Lee2016Config) -> Lee2016Net:
    rng = np.random.default_rng(config.seed)
    w1, t1 = init_layer(n_in, config.hidden, config.alpha_hidden, rng)
    w2, t2 = init_layer(config.hidden, classes, config.alpha_out, rng)
    return Lee2016Net(
        [w1, w2],
        [t1, t2],
        [config.kappa_hidden, config.kappa_out],
        config,
        [config.th_min_ratio * t1[0], config.th_min_ratio * t2[0]],
    )


def predict(counts: np.ndarray) -> np.ndarray:
    """Most output spikes wins; ties (and silence) go to the lowest index."""
    return np.argmax(counts, axis=1)


def evaluate(
    net: Lee2016Net,
    codes: np.ndarray,
    labels: np.ndarray,
    duration: float,
    seed: int,
    *,
    wta: bool = True,
    batch: int = 128,
) -> tuple[float, np.ndarray]:
    """Accuracy and output counts on fresh Poisson events (fixed seed)."""
    rng = np.random.default_rng(seed)
    counts = []
    for s in range(0, len(codes), batch):
        times, index = poisson_events(codes[s : s + batch], duration, net.config.total_rate, rng)
        counts.append(forward(net, times, index, wta=wta).counts[-1])
    c = np.concatenate(counts)
    return float((predict(c) == labels).mean()), c


def train(data: Dataset, config: Lee2016Config, log: Any = print) -> tuple[Lee2016Net, list[dict]]:
    """SGD over lockstep mini-batches; learning rate and rho decay by exp(-1/35) per epoch."""
    n_in = math.prod(data.x_train.shape[1:])
    net = build(n_in, data.classes, config)
    rng = np.random.default_rng(config.seed + 1)
    history = []
    base_eta, base_rho = config.eta_w, config.rho
    for epoch in range(config.epochs):
        decay = math.exp(-epoch / config.decay_epochs)
        config.eta_w = base_eta * decay
        net._rho_scale = decay  # type: ignore[attr-defined]
        start, correct = time.perf_counter(), 0
        order = rng.permutation(len(data.y_train))
        for s in range(0, len(order), config.batch_size):
            idx = order[s : s + config.batch_size]
            times, index = poisson_events(
                data.x_train[idx], config.train_ms, config.total_rate, rng
            )
            result = forward(net, times, index, train=True)
            correct += int((predict(result.counts[-1]) == data.y_train[idx]).sum())
            dw, dth = backward(net, result, data.y_train[idx], data.classes)
            for layer in range(len(net.w)):
                net.w[layer] += dw[layer]
                net.v_th[layer] = np.maximum(net.v_th[layer] + dth[layer], net.th_min[layer])
        test_acc, _ = evaluate(net, data.x_test, data.y_test, config.test_ms, seed=1234)
        record = {
            "epoch": epoch + 1,
            "phase": "lee2016",
            "train_acc": correct / len(order),
            "test_acc": test_acc,
            "seconds": time.perf_counter() - start,
            "mean_v_th": [float(t.mean()) for t in net.v_th],
        }
        history.append(record)
        log(
            f"epoch {epoch + 1}/{config.epochs}: train {record['train_acc']:.4f} test "
            f"{test_acc:.4f} ({record['seconds']:.1f} s)"
        )
    config.eta_w, config.rho = base_eta, base_rho
    return net, history


# ------------------------------------------------------------------------------------ export
def to_bundle(
    net: Lee2016Net, *, dt: float = 1.0, duration: float = 200.0, w_bits: int = 8, v_bits: int = 16
) -> Bundle:
    """An *approximate* bundle: time in ``dt`` steps, no WTA, no refractoriness, no floor.

    Layers: hidden and output LIF (reset ``sub``, ``mult`` leak ``exp(-dt/tau)``, per-neuron
    thresholds), then an ``accum`` counter with identity weights, so the bundle's output is the
    output spike count and its argmax is the paper's decision.
    """
    lam = round(256 * math.exp(-dt / net.config.tau))
    layers, scales = [], {}
    for i, (w, v_th) in enumerate(zip(net.w, net.v_th, strict=True)):
        weight, unit = exporter.symmetric_integers(w, w_bits)
        name = "hidden" if i == 0 else "out_lif"
        scales[name] = unit
        layers.append(
            exporter.dense(
                name,
                weight,
                w_bits=w_bits,
                v_bits=v_bits,
                threshold=exporter.integer_thresholds(v_th, unit, v_bits),
                leak=Leak("mult", lam=lam, frac=8),
                reset="sub",
            )
        )
    count = np.eye(net.w[-1].shape[0], dtype=np.int64)
    layers.append(exporter.dense("count", count, w_bits=2, v_bits=v_bits, fire="accum"))
    return exporter.assemble(
        layers,
        exporter.spike_input(net.w[0].shape[1]),
        round(duration / dt),
        {
            "scales": scales,
            "training": {"method": "lee2016", "approximate": True, "dt_ms": dt, "wta": "dropped"},
        },
    )


def stepped_counts(
    net: Lee2016Net,
    trains: np.ndarray,
    *,
    dt: float = 1.0,
    wta: bool = True,
    clip: bool = True,
    weights: list[np.ndarray] | None = None,
    thresholds: list[np.ndarray] | None = None,
    leak: float | None = None,
) -> np.ndarray:
    """Output spike counts ``[B, n_out]`` of a float, time-stepped version of the network.

    Used to split the export gap into its causes: each step integrates the binned input
    (``u = leak v + W x``), fires at ``u >= V_th`` with subtractive reset (in the order of
    docs/semantics.md), then optionally applies the WTA inhibition (``kappa V_th,i`` per spike of
    another neuron) and the clip of V to ``[-V_th, V_th]``. Refractoriness (``w_dyn``) is left
    out: with ``dt = T_ref = 1 ms`` a neuron that fired in the previous step already has
    ``w_dyn = 1``.
    ``weights``/``thresholds``/``leak`` override the float values (e.g. the bundle's integers).
    """
    ws = weights if weights is not None else net.w
    ths = thresholds if thresholds is not None else net.v_th
    lam = math.exp(-dt / net.config.tau) if leak is None else leak
    b, steps, _ = trains.shape
    v = [np.zeros((b, w.shape[0])) for w in ws]
    counts = np.zeros((b, ws[-1].shape[0]))
    for k in range(steps):
        inp = trains[:, k].astype(np.float64)
        for layer, (w, th) in enumerate(zip(ws, ths, strict=True)):
            u = v[layer] * lam + inp @ w.T
            fired = u >= th
            u = u - fired * th
            if wta and net.kappa[layer] != 0.0:
                others = fired.sum(axis=1, keepdims=True) - fired
                u = u + net.kappa[layer] * others * th
            if clip:
                u = np.clip(u, -th, th)
            v[layer] = u
            inp = fired.astype(np.float64)
        counts += inp
    return counts


def export_gap(
    net: Lee2016Net,
    times: np.ndarray,
    index: np.ndarray,
    labels: np.ndarray,
    bundle: Any,
    *,
    dt: float = 1.0,
) -> dict[str, float]:
    """Accuracy of each step from the event-driven network to the bundle (same input events).

    ``event_driven`` (continuous time, WTA, clip, refractoriness) -> ``stepped`` (1 ms bins,
    coincident events merged, WTA and clip kept) -> ``stepped_no_wta`` -> ``stepped_no_wta_no_clip``
    (the bundle's dynamics in float) -> ``stepped_quantised`` (the bundle's integer weights,
    thresholds and leak, evaluated in float) -> ``golden`` (``spikeforge.sim.golden`` on the
    bundle).
    """
    from spikeforge.sim.golden import accuracy, run

    n_in = net.w[0].shape[1]
    steps = bundle.timesteps
    trains = binned_trains(times, index, n_in, dt, steps)
    event = forward(net, times, index).counts[-1]
    lif = [layer for layer in bundle.layers if layer.fire == "lif"]
    q_w = [layer.weight.astype(np.float64) for layer in lif]
    q_th = [
        np.broadcast_to(layer.threshold, (w.shape[0],)).astype(np.float64)
        for layer, w in zip(lif, q_w, strict=True)
    ]
    q_lam = lif[0].leak.lam / 2 ** lif[0].leak.frac

    def acc(c: np.ndarray) -> float:
        return float((predict(c) == labels).mean())

    return {
        "event_driven": acc(event),
        "stepped": acc(stepped_counts(net, trains, dt=dt)),
        "stepped_no_wta": acc(stepped_counts(net, trains, dt=dt, wta=False)),
        "stepped_no_wta_no_clip": acc(stepped_counts(net, trains, dt=dt, wta=False, clip=False)),
        "stepped_quantised": acc(
            stepped_counts(
                net, trains, dt=dt, wta=False, clip=False, weights=q_w, thresholds=q_th, leak=q_lam
            )
        ),
        "golden": accuracy(run(bundle, trains), labels),
    }


def binned_trains(times: np.ndarray, index: np.ndarray, n_in: int, dt: float, steps: int):
    """Events binned into ``dt`` steps as 0/1 trains ``[B, T, n_in]`` (coincident events merge)."""
    b = times.shape[0]
    out = np.zeros((b, steps, n_in), dtype=np.uint8)
    valid = np.isfinite(times) & (index >= 0)
    bb, pp = np.nonzero(valid)
    step = np.minimum((times[bb, pp] / dt).astype(np.int64), steps - 1)
    out[bb, step, index[bb, pp]] = 1
    return out
