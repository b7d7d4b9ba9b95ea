"""Lee, Delbruck & Pfeiffer 2016 on a dataset: train, evaluate, export, measure the export gap.

``python -m spikeforge.studies.lee2016 --dataset digits --out runs/lee2016-digits`` trains the
event-driven network of ``spikeforge.algo.methods.lee2016``, reports its accuracy with and
without WTA and at other inference lengths, writes the approximate bundle (``bundle/``, through
the shared exporter), the binned test input, ``metrics.json`` with the export-gap ablation, and
the float network. ``spikeforge train`` cannot run it: the network is event-driven numpy, with
no float / fake-quant / bit-true modes to compare (docs/methods_lee2016_stdbp_stdp.md).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from spikeforge.algo.methods.lee2016 import (
    Lee2016Config,
    binned_trains,
    evaluate,
    export_gap,
    poisson_events,
    to_bundle,
    train,
)
from spikeforge.sim.bundle import save_bundle
from spikeforge.studies.study_options import add_study_options, study_data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spikeforge.studies.lee2016", description="Lee et al. 2016"
    )
    add_study_options(parser)
    defaults = Lee2016Config()
    parser.add_argument("--hidden", type=int, default=defaults.hidden)
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--eta", type=float, default=defaults.eta_w)
    parser.add_argument("--lam", type=float, default=defaults.lam, help="eq 14 lambda")
    parser.add_argument("--rho", type=float, default=defaults.rho, help="0: no threshold reg.")
    parser.add_argument(
        "--gate", action="store_true", help="drop the errors of silent output neurons (old rule)"
    )
    parser.add_argument("--no-wta", action="store_true", help="kappa = 0 in both layers")
    parser.add_argument("--test-ms", type=float, default=defaults.test_ms)
    args = parser.parse_args(argv)
    config = Lee2016Config(
        hidden=args.hidden,
        epochs=args.epochs,
        batch_size=args.batch_size,
        eta_w=args.eta,
        lam=args.lam,
        rho=args.rho,
        gate_output=args.gate,
        test_ms=args.test_ms,
        seed=args.seed,
    )
    if args.no_wta:
        config.kappa_hidden = config.kappa_out = 0.0
    data = study_data(args)
    start = time.perf_counter()
    net, history = train(data, config)
    seconds = time.perf_counter() - start
    train_acc, _ = evaluate(net, data.x_train, data.y_train, config.test_ms, seed=99)
    test_acc, _ = evaluate(net, data.x_test, data.y_test, config.test_ms, seed=1234)
    no_wta_acc, _ = evaluate(net, data.x_test, data.y_test, config.test_ms, seed=1234, wta=False)
    short_acc, _ = evaluate(net, data.x_test, data.y_test, config.train_ms, seed=1234)
    long_acc, _ = evaluate(net, data.x_test, data.y_test, 1000.0, seed=1234)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    bundle = to_bundle(net, duration=config.test_ms, w_bits=args.w_bits)
    save_bundle(bundle, out / "bundle")
    rng = np.random.default_rng(1234)
    times, index = poisson_events(data.x_test, config.test_ms, config.total_rate, rng)
    gap = export_gap(net, times, index, data.y_test, bundle)
    np.save(
        out / "test_input.npy",
        binned_trains(times, index, net.w[0].shape[1], 1.0, bundle.timesteps),
    )
    metrics = {
        "method": "lee2016",
        "dataset": data.name,
        "sizes": {"train": len(data.y_train), "test": len(data.y_test)},
        "config": asdict(config),
        "train_seconds": seconds,
        "train_acc": train_acc,
        "test_acc": test_acc,
        "test_acc_without_wta": no_wta_acc,
        "test_acc_train_duration": short_acc,
        "test_acc_1000ms": long_acc,
        "export": {
            "exact": False,
            "dt_ms": 1.0,
            "w_bits": args.w_bits,
            "golden_test_acc": gap["golden"],
            "gap_vs_event_driven": gap["event_driven"] - gap["golden"],
            "ablation": gap,
        },
        "history": history,
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    np.savez(out / "float_net.npz", w1=net.w[0], w2=net.w[1], v_th1=net.v_th[0], v_th2=net.v_th[1])
    print(
        f"lee2016 {data.name}: train {train_acc:.4f} test {test_acc:.4f} (no WTA at inference "
        f"{no_wta_acc:.4f}; {config.train_ms:g} ms {short_acc:.4f}; 1000 ms {long_acc:.4f}); "
        f"golden (approximate export) {gap['golden']:.4f}; {seconds:.0f} s"
    )
    print("export gap: " + ", ".join(f"{k} {v:.4f}" for k, v in gap.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
