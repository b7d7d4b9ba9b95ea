"""An independent, plain oracle for docs/semantics.md: Python ints, explicit loops.

It shares no code with ``spikeforge.sim.golden`` or ``spikeforge.sim.semantics`` so that the two
implementations check each other. Slow; use it on small bundles only. ``event_order`` lets a test
feed the input events of each step in any order.
"""

from __future__ import annotations

import random

import numpy as np
from spikeforge.sim.bundle import Bundle, Layer


def _weighted_sums(layer: Layer, x: list[int], rng: random.Random | None) -> list[int]:
    """Accumulate one event at a time into per-neuron sums (events in a random order if rng)."""
    w = layer.weight.tolist()
    events = [i for i, value in enumerate(x) if value != 0]
    if rng is not None:
        rng.shuffle(events)
    if layer.kind == "linear":
        sums = [0] * len(w)
        for i in events:
            for n in range(len(w)):
                sums[n] += w[n][i] * x[i]
        return sums
    _, h, wd = layer.in_shape
    c_out, _, kh, kw = layer.weight.shape
    _, ho, wo = layer.out_shape
    (ph, pw), (sh, sw) = layer.padding, layer.stride
    sums = [0] * (c_out * ho * wo)
    for i in events:  # scatter: each input event updates every output whose window covers it
        c, rest = divmod(i, h * wd)
        iy, ix = divmod(rest, wd)
        for o in range(c_out):
            for ky in range(kh):
                for kx in range(kw):
                    oy, ry = divmod(iy + ph - ky, sh)
                    ox, rx = divmod(ix + pw - kx, sw)
                    if ry or rx or not (0 <= oy < ho and 0 <= ox < wo):
                        continue
                    sums[(o * ho + oy) * wo + ox] += w[o][c][ky][kx] * x[i]
    return sums


def _leak(v: int, layer: Layer) -> int:
    leak = layer.leak
    if leak.mode == "mult":
        return (v * leak.lam) >> leak.frac
    if leak.mode == "shift":
        return v - (v >> leak.k)
    return v


def plain_run(bundle: Bundle, x: np.ndarray, shuffle_seed: int | None = None):
    """Returns ``(spikes {name: [N,T,n_out] uint8}, v_out [N,out] int64, pred [N])``."""
    rng = None if shuffle_seed is None else random.Random(shuffle_seed)
    n_samples, t_steps = x.shape[0], bundle.timesteps
    spikes = {l.name: np.zeros((n_samples, t_steps, l.n_out), np.uint8) for l in bundle.layers}
    v_out = np.zeros((n_samples, bundle.output_layer.n_out), np.int64)
    for n in range(n_samples):
        v = {l.name: [0] * l.n_out for l in bundle.layers}
        for t in range(t_steps):
            sample = x[n] if bundle.input.encoding == "direct" else x[n, t]
            layer_in = [int(value) for value in np.ravel(sample)]
            for layer in bundle.layers:
                lo, hi = -(1 << (layer.v_bits - 1)), (1 << (layer.v_bits - 1)) - 1
                theta = layer.theta_vector().tolist()
                bias = layer.bias_vector().tolist()
                sums = _weighted_sums(layer, layer_in, rng)
                out = []
                for k, s in enumerate(sums):
                    u = min(
                        max(
                            _leak(v[layer.name][k], layer) + (s >> layer.input_shift) + bias[k], lo
                        ),
                        hi,
                    )
                    fired = layer.fire == "lif" and u >= theta[k]
                    if fired and layer.reset == "sub":
                        u -= theta[k]
                    elif fired and layer.reset == "zero":
                        u = 0
                    v[layer.name][k] = u
                    out.append(int(fired))
                spikes[layer.name][n, t] = out
                layer_in = out
        v_out[n] = v[bundle.output_layer.name]
    pred = np.array([max(range(len(row)), key=lambda i, r=row: (r[i], -i)) for row in v_out])
    return spikes, v_out, pred
