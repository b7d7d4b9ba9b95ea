"""Lee 2016 on digits: one line of diagnostics per epoch (numbers in the methods doc).

Usage: ``python docs/scripts/lee2016_diagnose.py KEY=VALUE ...`` with any ``Lee2016Config`` field,
e.g. ``batch_size=8 epochs=10 rho=0.0002 gate_output=False eta_w=0.002``. Per epoch it prints
the running training accuracy, the test accuracy (200 ms, events seeded 1234), the share of
test samples without any output spike, output and hidden spikes per test sample, the share of
(sample, hidden neuron) pairs that fired, mean thresholds, mean squared weight norms, mean
weights and the smallest hidden threshold. The training loop is
``spikeforge.algo.methods.lee2016.train``'s.
"""

from __future__ import annotations

import math
import sys
import time

import numpy as np
from spikeforge.algo.methods import lee2016 as lee
from spikeforge.sim.datasets import load_dataset


def main(argv: list[str]) -> None:
    kw = {}
    for arg in argv:
        key, value = arg.split("=")
        kw[key] = type(getattr(lee.Lee2016Config(), key))(eval(value))
    cfg = lee.Lee2016Config(**kw)
    d = load_dataset("digits")
    net = lee.build(64, 10, cfg)
    rng = np.random.default_rng(cfg.seed + 1)
    base_eta, t0 = cfg.eta_w, time.perf_counter()
    for epoch in range(cfg.epochs):
        decay = math.exp(-epoch / cfg.decay_epochs)
        cfg.eta_w = base_eta * decay
        net._rho_scale = decay  # type: ignore[attr-defined]
        order, correct = rng.permutation(len(d.y_train)), 0
        for s in range(0, len(order), cfg.batch_size):
            idx = order[s : s + cfg.batch_size]
            t, ix = lee.poisson_events(d.x_train[idx], cfg.train_ms, cfg.total_rate, rng)
            r = lee.forward(net, t, ix, train=True)
            correct += int((lee.predict(r.counts[-1]) == d.y_train[idx]).sum())
            dw, dth = lee.backward(net, r, d.y_train[idx], 10)
            for layer in range(2):
                net.w[layer] += dw[layer]
                net.v_th[layer] = np.maximum(net.v_th[layer] + dth[layer], net.th_min[layer])
        rt, hs, outs = np.random.default_rng(1234), [], []
        for s in range(0, 360, 120):
            t, ix = lee.poisson_events(d.x_test[s : s + 120], cfg.test_ms, cfg.total_rate, rt)
            r = lee.forward(net, t, ix)
            hs.append(r.counts[0])
            outs.append(r.counts[1])
        h, o = np.concatenate(hs), np.concatenate(outs)
        print(
            f"ep {epoch + 1} train {correct / len(order):.3f} "
            f"test {float((lee.predict(o) == d.y_test).mean()):.3f} "
            f"silent {float((o.sum(1) == 0).mean()):.3f} out/sample {o.sum(1).mean():.1f} "
            f"hid/sample {h.sum(1).mean():.0f} hid_active {float((h > 0).mean()):.2f} "
            f"vth {net.v_th[0].mean():.3f} {net.v_th[1].mean():.3f} "
            f"w2 {(net.w[0] ** 2).sum(1).mean():.2f} {(net.w[1] ** 2).sum(1).mean():.2f} "
            f"wmean {net.w[0].mean():.4f} {net.w[1].mean():.4f} vthmin {net.v_th[0].min():.3f} "
            f"t {time.perf_counter() - t0:.0f}",
            flush=True,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
