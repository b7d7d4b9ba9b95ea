"""``python -m spikeforge.studies.bpsr_sweep``: BPSR's firing rate and synaptic operations against
accuracy.

Trains one network per setting (a plain surrogate-BPTT baseline without regularisers or
rewiring, then BPSR with rewiring and L1 at every ``--lambda-s``), quantises each after training
(symmetric weights, leaks rounded to shifts), exports the bundle (``OUT/<name>/``), runs it in
the golden model and in the bit-true PyTorch pass (every spike and output potential compared;
exit 1 on any difference), and reports the golden model's counters: hidden firing rate, spikes,
synaptic operations (split into the first layer's multi-bit MACs and spike-driven additions)
and synapses per sample. Writes ``OUT/results.json``, ``OUT/results.md`` and
``OUT/bpsr_sparsity.png``.

    python -m spikeforge.studies.bpsr_sweep --dataset digits --out runs/bpsr-digits
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spikeforge.studies.sweep_report import markdown_table, percent, yes_no


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m spikeforge.studies.bpsr_sweep", description=__doc__)
    add = p.add_argument
    add("--dataset", default="digits", choices=("digits", "fashion-mnist", "mnist"))
    add("--data", metavar="DIR")
    add("--out", required=True, metavar="DIR")
    add("--arch", default="256-128")
    add("--timesteps", type=int, default=8)
    add("--lambda-s", default="0,1e-3,1e-2,3e-2,1e-1", help="comma list of spike penalties")
    add("--lambda-w", type=float, default=1e-3, help="L1 weight penalty (default 1e-3)")
    add("--no-baseline", action="store_true", help="skip the unregularised baseline")
    add("--epochs", type=int, default=30)
    add("--lr", type=float, default=1e-2)
    add("--batch-size", type=int, default=64)
    add("--w-bits", type=int, default=6)
    add("--v-bits", type=int, default=16)
    add("--reset", default="zero", choices=("zero", "sub"))
    add("--encoding", default="direct", choices=("direct", "poisson"))
    add("--limit-train", type=int, metavar="N")
    add("--limit-test", type=int, metavar="N")
    add("--seed", type=int, default=0)
    add("--threads", type=int, default=2)
    return p


def run_one(
    name: str, settings: Any, config: Any, data: Any, out: Path, log: Any = print
) -> dict[str, Any]:
    """Train one BPSR setting, quantise, export, check, count."""
    import numpy as np
    import torch

    from spikeforge.algo.methods import bpsr as B
    from spikeforge.algo.methods.conversion import bundle_inputs
    from spikeforge.algo.snn.neurons import LIF
    from spikeforge.algo.training.export import export
    from spikeforge.algo.training.pipeline import Trainer, build_for, evaluate
    from spikeforge.sim.bundle import load_bundle
    from spikeforge.studies.sweep_report import measure_bundle

    torch.manual_seed(settings.seed)
    net = build_for(config, data)
    B.prepare(net, settings, B.bpsr_surrogate())
    trainer = Trainer(progress=False, log=lambda line: log(f"  [{name}] {line}"))
    started = time.perf_counter()
    B.train_bpsr(net, data, config, settings, trainer)
    train_seconds = time.perf_counter() - started
    float_acc = evaluate(net, data.x_test, data.y_test, "float", trainer.eval_seed)
    taus = [
        float(layer.neuron.lam().detach()) for layer in net.layers if isinstance(layer.neuron, LIF)
    ]
    ks = B.quantise_post_training(net, data.x_train[:128], settings.seed)
    meta = {"training": {"method": "bpsr", "dataset": data.name, "bpsr": asdict(settings)}}
    path = export(net, out / name, meta)
    bundle = load_bundle(path)
    measured = measure_bundle(
        bundle, bundle_inputs(net, data.x_test, trainer.eval_seed), data.y_test
    )
    return {
        "name": name,
        "settings": asdict(settings),
        "float_snn": float_acc,
        **measured,
        "synapses": sum(int(np.count_nonzero(layer.weight)) for layer in bundle.layers),
        "weights": sum(int(layer.weight.size) for layer in bundle.layers),
        "trained_leaks": taus,
        "shift_k": ks,
        "train_seconds": train_seconds,
        "bundle": str(path),
    }


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table."""
    columns = (
        "setting", "lambda_s", "lambda_w", "rewiring", "float SNN", "golden (integer)",
        "firing rate", "spikes / sample", "synaptic ops / sample", "of which spike-driven ACs",
        "synapses", "leak k", "bit-exact",
    )  # fmt: skip
    rows = (
        (
            row["name"],
            f"{row['settings']['lambda_s']:g}",
            f"{row['settings']['lambda_w']:g}",
            yes_no(row["settings"]["rewire"]),
            percent(row["float_snn"]),
            percent(row["golden"]),
            f"{row['firing_rate']:.4f}",
            f"{row['spikes_per_sample']:,.0f}",
            f"{row['synaptic_ops_per_sample']:,.0f}",
            f"{row['accumulate_ops_per_sample']:,.0f}",
            f"{row['synapses']:,} / {row['weights']:,}",
            row["shift_k"],
            yes_no(row["bit_exact"], "NO"),
        )
        for row in results["rows"]
    )
    return markdown_table(columns, rows)


def plot(results: dict[str, Any], path: Path) -> Path:
    """Golden accuracy against hidden firing rate, spike-driven additions and all synaptic
    operations per sample (the line joins the BPSR points in order of ``lambda_s``)."""
    from spikeforge.algo.training.report import pyplot, save_figure

    plt = pyplot()
    rows = results["rows"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
    for ax, key, label in (
        (axes[0], "firing_rate", "hidden firing rate (spikes / neuron / step)"),
        (axes[1], "accumulate_ops_per_sample", "spike-driven additions per sample"),
        (axes[2], "synaptic_ops_per_sample", "all synaptic operations per sample (with MACs)"),
    ):
        for row in rows:
            baseline = not row["settings"]["rewire"] and row["settings"]["lambda_s"] == 0
            marker, color = ("s", "tab:red") if baseline else ("o", "tab:blue")
            ax.plot(row[key], 100 * row["golden"], marker, color=color)
            text = "baseline" if baseline else f"λs={row['settings']['lambda_s']:g}"
            ax.annotate(
                text,
                (row[key], 100 * row["golden"]),
                fontsize=7,
                xytext=(4, 4),
                textcoords="offset points",
            )
        reg = [r for r in rows if r["settings"]["rewire"] or r["settings"]["lambda_s"]]
        reg.sort(key=lambda r: r["settings"]["lambda_s"])
        ax.plot(
            [r[key] for r in reg], [100 * r["golden"] for r in reg], "-", color="tab:blue", lw=0.8
        )
        ax.set_xlabel(label)
        ax.set_ylabel("golden-model test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].set_title(
        f"BPSR on {results['dataset']} (T = {results['timesteps']}, "
        f"{results['w_bits']}-bit weights, shift leaks)",
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.perf_counter()
    import torch

    from spikeforge.algo.methods.bpsr import BPSRSettings
    from spikeforge.algo.training.pipeline import TrainConfig
    from spikeforge.sim.datasets import load_dataset
    from spikeforge.studies.sweep_report import exit_status, write_results

    torch.set_num_threads(max(1, args.threads))
    try:
        lambdas = [float(v) for v in args.lambda_s.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"error: --lambda-s needs numbers, got {args.lambda_s!r}") from None
    data = load_dataset(args.dataset, args.data).limited(args.limit_train, args.limit_test)
    config = TrainConfig(
        arch=args.arch,
        method="bpsr",
        timesteps=args.timesteps,
        w_bits=args.w_bits,
        v_bits=args.v_bits,
        encoding=args.encoding,
        reset=args.reset,
        quant="none",
        dropout=0.0,
        batch_size=args.batch_size,
        eval_every=args.epochs,
        seed=args.seed,
    )
    settings = []
    if not args.no_baseline:
        settings.append(
            (
                "baseline",
                BPSRSettings(0.0, 0.0, False, epochs=args.epochs, lr=args.lr, seed=args.seed),
            )
        )
    for value in lambdas:
        settings.append(
            (
                f"bpsr-ls{value:g}",
                BPSRSettings(
                    value, args.lambda_w, True, epochs=args.epochs, lr=args.lr, seed=args.seed
                ),
            )
        )
    out = Path(args.out)
    results: dict[str, Any] = {
        "dataset": args.dataset,
        "arch": args.arch,
        "timesteps": args.timesteps,
        "w_bits": args.w_bits,
        "v_bits": args.v_bits,
        "encoding": args.encoding,
        "reset": args.reset,
        "test_samples": len(data.y_test),
        "command": "python -m spikeforge.studies.bpsr_sweep "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "rows": [],
    }
    for name, setting in settings:
        row = run_one(name, setting, config, data, out)
        results["rows"].append(row)
        print(
            f"{name}: float {100 * row['float_snn']:.2f}%, golden {100 * row['golden']:.2f}%, "
            f"rate {row['firing_rate']:.4f}, {row['spikes_per_sample']:.0f} spikes, "
            f"{row['synaptic_ops_per_sample']:.0f} synaptic ops per sample, "
            f"{row['synapses']} synapses, leak k {row['shift_k']}, bit-exact {row['bit_exact']}"
        )
        results["total_seconds"] = time.perf_counter() - started
        write_results(out, results, table)  # after every setting: partial runs count
    plot(results, out / "bpsr_sparsity.png")
    print(table(results))
    return exit_status(results["rows"])


if __name__ == "__main__":
    raise SystemExit(main())
