"""STDP layer plus readout on a dataset, and the table of several runs.

``python -m spikeforge.studies.stdp --dataset digits --rule log --out runs/stdp-digits-log``
trains the Diehl & Cook layer of ``spikeforge.algo.methods.stdp`` with add / mult / log-STDP,
measures label-assignment and linear readouts (with their generalisation gaps), writes the
bundle (``bundle/``, through the shared exporter), the test input and ``metrics.json``;
``--summarise METRICS_JSON... [--plot PNG]`` tabulates runs. ``spikeforge train`` cannot run
it: the layer learns without labels in numpy, with no bit-true mode to fine-tune or compare.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.algo.methods.stdp import (
    RULES,
    LayerConfig,
    STDPRule,
    assign_labels,
    export_with_readout,
    fit_readout,
    generalisation_gap,
    poisson_trains,
    train_layer,
    vote,
)
from spikeforge.algo.training.report import pyplot, save_figure
from spikeforge.sim.bundle import save_bundle
from spikeforge.sim.golden import accuracy, run
from spikeforge.studies.study_options import add_study_options, study_data


def summarise(paths: list[str], plot: str | None = None) -> list[dict[str, Any]]:
    """Table rows (rule, seed, accuracies, gaps) from ``metrics.json`` files; optional bar plot."""
    rows = []
    for path in paths:
        m = json.loads(Path(path).read_text())
        rows.append(
            {
                "rule": m["rule"]["kind"],
                "seed": m["layer"]["seed"],
                "la_train": m["label_assignment"]["train_acc"],
                "la_test": m["label_assignment"]["test_acc"],
                "la_gap": m["label_assignment"]["generalisation_gap_points"],
                "golden_test": m["export"]["golden_test_acc"],
                "golden_gap": m["export"]["generalisation_gap_points"],
            }
        )
    if plot:
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for i, rule in enumerate(RULES):
            gaps = [r["la_gap"] for r in rows if r["rule"] == rule]
            tests = [100 * r["la_test"] for r in rows if r["rule"] == rule]
            if not gaps:
                continue
            ax.bar(i - 0.2, np.mean(gaps), 0.4, yerr=np.std(gaps), color="tab:red")
            ax.bar(i + 0.2, 100 - np.mean(tests), 0.4, yerr=np.std(tests), color="tab:blue")
        ax.set_xticks(range(len(RULES)), [f"{r}-STDP" for r in RULES])
        ax.set_ylabel("percentage points")
        ax.legend(["|train - test| (gap)", "test error"], loc="upper left")
        ax.set_title("Diehl & Cook layer on digits, label-assignment readout")
        ax.grid(alpha=0.3, axis="y")
        fig.tight_layout()
        save_figure(fig, plot)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spikeforge.studies.stdp", description="STDP layer + readout"
    )
    add_study_options(parser, out_required=False)
    parser.add_argument("--rule", choices=RULES, default="log")
    parser.add_argument("--eta", type=float, default=0.01)
    parser.add_argument("--c-plus", type=float, default=1.0)
    parser.add_argument(
        "--c-minus", type=float, default=None, help="default: add 0.6, mult 2, log 0.5"
    )
    parser.add_argument("--sigma", type=float, default=0.0, help="multiplicative noise zeta")
    parser.add_argument("--neurons", type=int, default=200)
    parser.add_argument("--timesteps", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--summarise", nargs="+", metavar="METRICS_JSON", help="table of runs")
    parser.add_argument("--plot", help="with --summarise: bar plot of gaps and test errors")
    args = parser.parse_args(argv)
    if args.summarise:
        rows = summarise(args.summarise, args.plot)
        print("| rule | seed | train | test | gap (pts) | golden test | golden gap (pts) |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['rule']} | {r['seed']} | {100 * r['la_train']:.2f} | "
                f"{100 * r['la_test']:.2f} | {r['la_gap']:.2f} | "
                f"{100 * r['golden_test']:.2f} | {r['golden_gap']:.2f} |"
            )
        return 0
    if not args.out:
        parser.error("--out is required for training")
    c_minus = (
        args.c_minus
        if args.c_minus is not None
        else {"add": 0.6, "mult": 2.0, "log": 0.5}[args.rule]
    )
    rule = STDPRule(args.rule, eta=args.eta, c_plus=args.c_plus, c_minus=c_minus, sigma=args.sigma)
    config = LayerConfig(
        neurons=args.neurons, timesteps=args.timesteps, epochs=args.epochs, seed=args.seed
    )
    data = study_data(args)
    max_code = 16 if data.name == "digits" else 2**data.bits - 1
    rng = np.random.default_rng(args.seed + 100)
    x_train = poisson_trains(data.x_train, max_code, config.timesteps, config.max_rate, rng)
    x_test = poisson_trains(data.x_test, max_code, config.timesteps, config.max_rate, rng)
    start = time.perf_counter()
    layer = train_layer(x_train, data.x_train, max_code, rule, config)
    seconds = time.perf_counter() - start
    c_train, c_test = layer.counts(x_train), layer.counts(x_test)
    assignment = assign_labels(c_train, data.y_train, data.classes)
    train_acc = float((vote(c_train, assignment, data.classes) == data.y_train).mean())
    test_acc = float((vote(c_test, assignment, data.classes) == data.y_test).mean())
    readout_wta = fit_readout(c_train, data.y_train, data.classes)
    wta_readout_train = float((np.argmax(c_train @ readout_wta.T, 1) == data.y_train).mean())
    wta_readout_test = float((np.argmax(c_test @ readout_wta.T, 1) == data.y_test).mean())
    # float linear readout on the exported (no-inhibition) layer
    f_train, f_test = layer.counts(x_train, wta=False), layer.counts(x_test, wta=False)
    readout_f = fit_readout(f_train, data.y_train, data.classes)
    float_readout_train = float((np.argmax(f_train @ readout_f.T, 1) == data.y_train).mean())
    float_readout_test = float((np.argmax(f_test @ readout_f.T, 1) == data.y_test).mean())

    bundle, _ = export_with_readout(layer, x_train, data.y_train, data.classes, args.w_bits)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_bundle(bundle, out / "bundle")
    np.save(out / "test_input.npy", x_test)
    golden_train = accuracy(run(bundle, x_train), data.y_train)
    golden_test = accuracy(run(bundle, x_test), data.y_test)
    metrics = {
        "method": "stdp",
        "dataset": data.name,
        "rule": asdict(rule),
        "layer": asdict(config),
        "train_seconds": seconds,
        "label_assignment": {
            "train_acc": train_acc,
            "test_acc": test_acc,
            "generalisation_gap_points": generalisation_gap(train_acc, test_acc),
        },
        "float_readout_with_inhibition": {
            "train_acc": wta_readout_train,
            "test_acc": wta_readout_test,
            "generalisation_gap_points": generalisation_gap(wta_readout_train, wta_readout_test),
        },
        "float_readout_no_inhibition": {
            "train_acc": float_readout_train,
            "test_acc": float_readout_test,
        },
        "export": {
            "inhibition": "dropped; readout fitted on the exported layer",
            "w_bits": args.w_bits,
            "golden_train_acc": golden_train,
            "golden_test_acc": golden_test,
            "generalisation_gap_points": generalisation_gap(golden_train, golden_test),
        },
        "mean_spikes_per_sample": float(c_test.sum(axis=1).mean()),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(
        f"stdp-{rule.kind} {data.name}: label-assignment train {train_acc:.4f} test {test_acc:.4f}"
        f" gap {metrics['label_assignment']['generalisation_gap_points']:.2f} pts; linear readout "
        f"(inhibition) train {wta_readout_train:.4f} test {wta_readout_test:.4f}; float readout "
        f"without inhibition test {float_readout_test:.4f}; golden bundle train "
        f"{golden_train:.4f} test {golden_test:.4f}; {seconds:.0f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
