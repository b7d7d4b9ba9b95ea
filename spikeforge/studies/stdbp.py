"""STDBP (Zhang et al. 2021) on a dataset: train, evaluate, export approximately, check.

``python -m spikeforge.studies.stdbp --dataset digits --out runs/stdbp-digits`` trains the
ReL-PSP network of ``spikeforge.algo.methods.stdbp``, writes the approximate bundle
(``bundle/``, through the shared exporter), ``metrics.json`` (accuracy under the earliest-spike
and the final-potential rule, the golden model's accuracy, firing) and the float weights.
``spikeforge train`` cannot run it: spike times are computed in closed form in numpy, with no
time-stepped float / bit-true modes to compare (docs/methods_lee2016_stdbp_stdp.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from spikeforge.algo.methods.stdbp import (
    STDBPConfig,
    encode_latency,
    final_potential_decision,
    firing_stats,
    held_trains,
    predict_earliest,
    to_bundle,
    train,
)
from spikeforge.sim.bundle import save_bundle
from spikeforge.sim.golden import accuracy, run
from spikeforge.studies.study_options import add_study_options, study_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spikeforge.studies.stdbp", description=__doc__.split("\n")[0]
    )
    add_study_options(parser)
    parser.add_argument("--hidden", default="400", help="hidden sizes, e.g. 400 or 400-200")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--theta", type=float, default=1.0)
    parser.add_argument("--constant-lr", action="store_true", help="no cosine decay")
    parser.add_argument("--dt", type=float, default=0.05, help="export time step")
    parser.add_argument("--timesteps", type=int, default=60, help="export steps (T*dt = end)")
    args = parser.parse_args(argv)
    data = study_data(args)
    config = STDBPConfig(
        hidden=tuple(int(h) for h in args.hidden.split("-")),
        theta=args.theta,
        lr=args.lr,
        epochs=args.epochs,
        batch_size=args.batch_size,
        cosine=not args.constant_lr,
        seed=args.seed,
    )
    start = time.perf_counter()
    net, history = train(data, config)
    seconds = time.perf_counter() - start
    max_code = 16 if data.name == "digits" else 2**data.bits - 1
    x_train = encode_latency(data.x_train, max_code)
    x_test = encode_latency(data.x_test, max_code)
    train_acc = float((predict_earliest(net.times(x_train)[-1]) == data.y_train).mean())
    test_times = net.times(x_test)
    test_acc = float((predict_earliest(test_times[-1]) == data.y_test).mean())
    t_end = args.dt * args.timesteps
    v_rule_acc = float((final_potential_decision(net, x_test, t_end) == data.y_test).mean())

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = to_bundle(net, dt=args.dt, timesteps=args.timesteps, w_bits=args.w_bits)
    save_bundle(bundle, out / "bundle")
    result = run(bundle, held_trains(x_test, args.dt, args.timesteps))
    golden_acc = accuracy(result, data.y_test)
    metrics = {
        "method": "stdbp",
        "dataset": data.name,
        "config": asdict(config),
        "train_seconds": seconds,
        "train_acc": train_acc,
        "test_acc": test_acc,
        "test_acc_final_potential_rule": v_rule_acc,
        "export": {
            "exact": False,
            "dt": args.dt,
            "timesteps": args.timesteps,
            "w_bits": args.w_bits,
            "golden_test_acc": golden_acc,
            "gap_vs_float": test_acc - golden_acc,
        },
        "firing": firing_stats(test_times),
        "history": history,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez(out / "float_weights.npz", *net.weights, theta=net.theta)
    print(
        f"stdbp {data.name}: train {train_acc:.4f} test {test_acc:.4f} "
        f"(V_out(T) rule {v_rule_acc:.4f}); golden (approximate export) {golden_acc:.4f}; "
        f"{seconds:.0f} s"
    )
    print(json.dumps(metrics["firing"]))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    raise SystemExit(main())
