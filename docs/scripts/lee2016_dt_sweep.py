"""Lee 2016: accuracy of the float time-stepped model (WTA and clip kept) against the step size.

Loads ``float_net.npz`` of a digits run of ``python -m spikeforge.studies.lee2016`` (argument:
the run directory), draws the 200 ms test events with seed 1234 (as the export does) and prints,
per step size, how many events merged into an earlier one in their bin and the accuracy of
``spikeforge.algo.methods.lee2016.stepped_counts``.
Usage: ``python docs/scripts/lee2016_dt_sweep.py /work/runs/h10/lee2016-digits``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from spikeforge.algo.methods import lee2016 as lee
from spikeforge.sim.datasets import load_dataset


def main(run: str) -> None:
    d = load_dataset("digits")
    z = np.load(Path(run) / "float_net.npz")
    cfg = lee.Lee2016Config()
    net = lee.Lee2016Net(
        [z["w1"], z["w2"]], [z["v_th1"], z["v_th2"]], [cfg.kappa_hidden, cfg.kappa_out], cfg
    )
    times, index = lee.poisson_events(
        d.x_test, cfg.test_ms, cfg.total_rate, np.random.default_rng(1234)
    )
    event = lee.forward(net, times, index).counts[-1]
    print(f"event-driven: {float((lee.predict(event) == d.y_test).mean()):.4f}")
    for dt in (1.0, 0.5, 0.25, 0.1):
        trains = lee.binned_trains(times, index, 64, dt, round(cfg.test_ms / dt))
        counts = lee.stepped_counts(net, trains, dt=dt)
        merged = int(np.isfinite(times).sum() - trains.sum())
        acc = float((lee.predict(counts) == d.y_test).mean())
        print(f"dt {dt} ms: {merged} events merged, accuracy {acc:.4f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
