"""``python -m spikeforge.studies.conversion_sweep``: conversion accuracy against ``T`` (golden
model).

Trains the ANNs once (spike-norm and percentile share one without bias or batch norm; ECC has
its own with bias and batch norm), converts them, and for every ``T`` exports a bundle
(``OUT/<variant>/T<T>/``), runs it in the golden model and in the bit-true PyTorch pass
(every spike and output potential compared; the command exits 1 on any difference) and
records accuracy, spikes and synaptic operations per sample. Writes ``OUT/results.json``,
``OUT/results.md`` (the table) and ``OUT/accuracy_vs_T.png``.

    python -m spikeforge.studies.conversion_sweep --dataset digits --out runs/conversion-digits
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from spikeforge.studies.sweep_report import markdown_table, percent, yes_no

#: Paper defaults per variant: spike-norm feeds Poisson trains to reset-to-zero IF neurons
#: (Sengupta et al.), ACE-SNN and ECC feed the analog input as a constant current.
ENCODING = {"spikenorm": "poisson", "percentile": "direct", "ecc": "direct", "ecc-eta0": "direct"}
RESET = {"spikenorm": "zero", "percentile": "sub", "ecc": "sub", "ecc-eta0": "sub"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"arch": "256-128", "ann_epochs": 30, "timesteps": "1,2,4,8,16,32,64,128"},
    "fashion-mnist": {"arch": "c32k3s2-c64k3s2-256", "ann_epochs": 8, "timesteps": "2,4,8,16,32"},
}
DEFAULTS["mnist"] = dict(DEFAULTS["fashion-mnist"])


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m spikeforge.studies.conversion_sweep", description=__doc__
    )
    add = p.add_argument
    add("--dataset", default="digits", choices=sorted(DEFAULTS))
    add("--data", metavar="DIR", help="directory with the IDX files (fashion-mnist, mnist)")
    add("--out", required=True, metavar="DIR", help="output directory")
    add(
        "--variants",
        default="spikenorm,percentile,ecc",
        help="comma list of spikenorm, percentile, ecc, ecc-eta0 (ECC without TRE)",
    )
    add("--timesteps", help="comma list of T (digits: 1..128, image sets: 2..32)")
    add("--arch", help="hidden layers (digits 256-128, image sets c32k3s2-c64k3s2-256)")
    add("--ann-epochs", type=int)
    add("--ann-lr", type=float, default=1e-3)
    add("--batch-size", type=int, default=64)
    add("--dropout", type=float, default=0.1)
    add("--w-bits", type=int, default=6)
    add("--v-bits", type=int, default=16)
    add("--calib-samples", type=int, help="spike-norm: training samples (default: all)")
    add("--calib-timesteps", type=int, default=100, help="spike-norm: steps (default 100)")
    add("--eta", type=float, default=0.5, help="ECC's TRE eta (default 0.5)")
    add("--kappa", type=int, default=100, help="ECC's integer kappa (default 100)")
    add(
        "--lambda-percentile",
        type=float,
        default=100.0,
        help="ECC's lambda: this percentile of each layer's activations (default 100 = max)",
    )
    add("--spikenorm-encoding", choices=("poisson", "direct"), default="poisson")
    add("--limit-train", type=int, metavar="N")
    add("--limit-test", type=int, metavar="N")
    add(
        "--curve-samples",
        type=int,
        metavar="N",
        help="measure T not in --full-timesteps on the first N test images only (default: all)",
    )
    add(
        "--full-timesteps",
        default="",
        help="comma list of T measured on the whole test set even with --curve-samples",
    )
    add("--seed", type=int, default=0)
    add(
        "--merge",
        metavar="DIR,...",
        help="no training: merge these sweep outputs into --out (results, table, plot)",
    )
    add(
        "--merge-whole",
        default="",
        metavar="DIR,...",
        help="with --merge: runs on the whole test set, shown as stars and extra table rows",
    )
    add(
        "--ann-dir",
        metavar="DIR",
        help="store the trained ANNs here; a later run with the same training settings loads them",
    )
    add("--threads", type=int, default=2)
    return p


def _ints(text: str) -> list[int]:
    values = [int(v) for v in text.split(",") if v.strip()]
    if not values or min(values) < 1:
        raise SystemExit(f"error: --timesteps needs positive integers, got {text!r}")
    return values


def sweep(
    conversion: Any,
    data: Any,
    timesteps: list[int],
    out: Path,
    seed: int,
    name: str | None = None,
    log: Any = print,
    *,
    curve_samples: int | None = None,
    full_timesteps: frozenset[int] = frozenset(),
    chunk: int = 1000,
) -> list[dict[str, Any]]:
    """Export, run and check one converted network at every ``T``; one record per ``T``.

    Bundles go to ``out/<name>/T<T>`` (``name`` defaults to the variant). Every ``T`` in
    ``full_timesteps`` is measured on the whole test set, the others on its first
    ``curve_samples`` images (default: all); each row records its ``test_samples``. The
    golden / bit-true check (``spikeforge.studies.sweep_report.measure_bundle``) runs ``chunk``
    images at a time."""
    name = name or conversion.variant
    from spikeforge.algo.methods.conversion import bundle_inputs, calibrate, set_timesteps
    from spikeforge.algo.training.export import export
    from spikeforge.algo.training.pipeline import evaluate
    from spikeforge.sim.bundle import load_bundle
    from spikeforge.studies.sweep_report import measure_bundle

    net, rows = conversion.net, []
    if curve_samples is not None and curve_samples < 1:
        raise SystemExit(f"error: --curve-samples must be positive, got {curve_samples}")
    for steps in timesteps:
        started = time.perf_counter()
        n = len(data.y_test) if steps in full_timesteps or curve_samples is None else curve_samples
        n = min(n, len(data.y_test))
        x_test, y_test = data.x_test[:n], data.y_test[:n]
        set_timesteps(net, steps)
        float_acc = evaluate(net, x_test, y_test, "float", seed)
        shifts = calibrate(net, data.x_train[:128], steps, seed)
        meta = {"training": {"method": f"convert-{conversion.variant}", "dataset": data.name}}
        path = export(net, out / name / f"T{steps}", meta)
        bundle = load_bundle(path)
        totals = measure_bundle(bundle, bundle_inputs(net, x_test, seed), y_test, chunk)
        row = {
            "timesteps": steps,
            "test_samples": n,
            "float_snn": float_acc,
            **totals,
            "input_shifts": shifts,
            "thresholds": [layer.threshold for layer in bundle.layers if layer.fire == "lif"],
            "bundle": str(path),
            "seconds": time.perf_counter() - started,
        }
        rows.append(row)
        log(
            f"{name} T={steps} ({n} test images): float SNN {100 * float_acc:.2f}%, golden "
            f"{100 * row['golden']:.2f}%, {row['spikes_per_sample']:.0f} spikes and "
            f"{row['synaptic_ops_per_sample']:.0f} synaptic ops per sample, bit-exact "
            f"{row['bit_exact']} ({row['seconds']:.1f} s)"
        )
    return rows


def trained_ann(
    ann: Any, ann_dir: str | None, variant: str, data: Any, config: Any, trainer: Any
) -> tuple[Any, float, float]:
    """Train ``ann`` (returns it, its test accuracy and the training seconds), or with
    ``ann_dir`` load it from ``ann_dir/ann-<kind>.pt`` when a run with the same training
    settings stored it there (re-measuring other ``T`` or test sets without retraining)."""
    import torch

    from spikeforge.algo.methods import conversion as C

    kind = "bias-bn" if variant == "ecc" else "plain"
    key = {
        "kind": kind,
        "dataset": data.name,
        "train_samples": len(data.y_train),
        **{k: getattr(config, k) for k in ("arch", "ann_epochs", "ann_lr", "batch_size")},
        **{k: getattr(config, k) for k in ("dropout", "weight_decay", "augment", "seed")},
    }
    path = Path(ann_dir) / f"ann-{kind}.pt" if ann_dir else None
    if path is not None and path.exists():
        stored = torch.load(path, weights_only=False)
        if stored["key"] != key:
            raise SystemExit(
                f"error: {path} was trained with {stored['key']}, this run needs {key}"
            )
        ann.load_state_dict(stored["state"])
        ann.eval()
        print(f"ann ({variant}): loaded from {path}")
        return ann, stored["accuracy"], stored["seconds"]
    t0 = time.perf_counter()
    accuracy = C.train_ann(ann, data, config, trainer, phase=f"ann ({variant})")
    seconds = time.perf_counter() - t0
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"key": key, "state": ann.state_dict(), "accuracy": accuracy, "seconds": seconds}
        torch.save(state, path)
    return ann, accuracy, seconds


def table(results: dict[str, Any]) -> str:
    """The results as a markdown table."""
    columns = (
        "variant", "T", "test images", "ANN", "float SNN", "golden (integer)",
        "spikes / sample", "synaptic ops / sample", "bit-exact",
    )  # fmt: skip
    whole = results.get("whole_test_set", {})
    rows = (
        (
            name,
            row["timesteps"],
            f"{row.get('test_samples', results['test_samples']):,}",
            percent(entry["ann_accuracy"]),
            percent(row["float_snn"]),
            percent(row["golden"]),
            f"{row['spikes_per_sample']:,.0f}",
            f"{row['synaptic_ops_per_sample']:,.0f}",
            yes_no(row["bit_exact"], "NO"),
        )
        for name, entry in results["variants"].items()
        for row in [*entry["rows"], *whole.get(name, [])]
    )
    return markdown_table(columns, rows)


def plot(results: dict[str, Any], path: Path) -> Path:
    """Golden accuracy (solid) and float-SNN accuracy (dashed) against T; ops per sample.

    ``results["whole_test_set"]`` (optional, ``{variant: [row, ...]}``, merged from runs on the
    whole test set while the curves use a subset) adds their golden accuracies as stars."""
    from spikeforge.algo.training.report import pyplot, save_figure

    plt = pyplot()
    fig, (ax, ax_ops) = plt.subplots(1, 2, figsize=(11, 4))
    for index, (name, entry) in enumerate(results["variants"].items()):
        color = f"C{index}"
        ts = [r["timesteps"] for r in entry["rows"]]
        ax.plot(ts, [100 * r["golden"] for r in entry["rows"]], "o-", color=color, label=name)
        ax.plot(ts, [100 * r["float_snn"] for r in entry["rows"]], "--", color=color, lw=0.8)
        ax.axhline(100 * entry["ann_accuracy"], color=color, ls=":", lw=0.8)
        ax_ops.plot(ts, [r["synaptic_ops_per_sample"] for r in entry["rows"]], "o-", color=color)
        for row in results.get("whole_test_set", {}).get(name, []):  # merged runs: stars
            ax.plot(row["timesteps"], 100 * row["golden"], "*", color=color, ms=11, mec="k")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(
        f"{results['dataset']}: golden model (solid), float SNN (dashed), ANN (dotted)"
        + (", stars: whole test set" if results.get("whole_test_set") else ""),
        fontsize=9,
    )
    ax.legend(loc="lower right")
    ax_ops.set_xscale("log", base=2)
    ax_ops.set_yscale("log")
    ax_ops.set_xlabel("time steps T")
    ax_ops.set_ylabel("synaptic operations per sample")
    for a in (ax, ax_ops):
        a.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def merge(curves: list[Path], whole: list[Path], out: Path) -> int:
    """Merge sweep outputs: every variant of the ``curves`` runs (later runs win), and the rows
    of the ``whole`` runs (the same ANNs measured on the whole test set, ``--ann-dir``) as
    ``whole_test_set``; writes ``out/results.json``, ``results.md`` and the plot."""
    from spikeforge.studies.sweep_report import exit_status, write_results

    def load(path: Path) -> dict[str, Any]:
        file = path / "results.json"
        if not file.is_file():
            raise SystemExit(f"error: --merge: no results.json in {path}")
        return json.loads(file.read_text())

    if not curves:
        raise SystemExit("error: --merge needs at least one sweep output directory")
    runs = [load(path) for path in curves]
    results = {k: v for k, v in runs[0].items() if k != "variants"}
    results["command"] = [run["command"] for run in runs]
    results["variants"] = {name: e for run in runs for name, e in run["variants"].items()}
    results["whole_test_set"] = {}
    for run in map(load, whole):
        results["command"].append(run["command"])
        for name, entry in run["variants"].items():
            results["whole_test_set"].setdefault(name, []).extend(entry["rows"])
    write_results(out, results, table)
    plot(results, out / "accuracy_vs_T.png")
    print(table(results))
    rows = [r for e in results["variants"].values() for r in e["rows"]]
    return exit_status(rows + [r for rs in results["whole_test_set"].values() for r in rs])


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.merge:
        paths = [Path(p) for p in args.merge.split(",") if p.strip()]
        wholes = [Path(p) for p in args.merge_whole.split(",") if p.strip()]
        return merge(paths, wholes, Path(args.out))
    started = time.perf_counter()
    import torch

    from spikeforge.algo.methods import conversion as C
    from spikeforge.algo.snn.encoding import get_encoder
    from spikeforge.algo.training.pipeline import TrainConfig, Trainer, input_shape_for
    from spikeforge.sim.datasets import load_dataset
    from spikeforge.studies.sweep_report import exit_status, write_results

    torch.set_num_threads(max(1, args.threads))
    defaults = DEFAULTS[args.dataset]
    arch = args.arch or defaults["arch"]
    timesteps = _ints(args.timesteps or defaults["timesteps"])
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(variants) - set(ENCODING))
    if unknown:
        raise SystemExit(f"error: unknown variant(s) {unknown}; expected {sorted(ENCODING)}")
    data = load_dataset(args.dataset, args.data).limited(args.limit_train, args.limit_test)
    out = Path(args.out)
    config = TrainConfig(
        arch=arch,
        ann_epochs=args.ann_epochs or defaults["ann_epochs"],
        ann_lr=args.ann_lr,
        batch_size=args.batch_size,
        dropout=args.dropout,
        w_bits=args.w_bits,
        v_bits=args.v_bits,
        seed=args.seed,
    )
    trainer = Trainer(progress=False)
    encodings = dict(ENCODING, spikenorm=args.spikenorm_encoding)
    results: dict[str, Any] = {
        "dataset": args.dataset,
        "arch": arch,
        "w_bits": args.w_bits,
        "v_bits": args.v_bits,
        "train_samples": len(data.y_train),
        "test_samples": len(data.y_test),
        "command": "python -m spikeforge.studies.conversion_sweep "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "variants": {},
    }
    anns: dict[bool, tuple[Any, float, float]] = {}
    for name in variants:
        variant = "ecc" if name.startswith("ecc") else name
        settings = C.ConversionSettings(
            calib_samples=args.calib_samples,
            calib_timesteps=args.calib_timesteps,
            eta=0.0 if name == "ecc-eta0" else args.eta,
            kappa=args.kappa,
            activation_percentile=args.lambda_percentile,
            seed=args.seed,
        )
        key = variant == "ecc"
        if key not in anns:
            torch.manual_seed(args.seed)
            ann = C.ann_for(config, data, variant, settings)
            anns[key] = trained_ann(ann, args.ann_dir, variant, data, config, trainer)
        ann, ann_accuracy, ann_seconds = anns[key]
        template = {
            "input_shape": input_shape_for(arch, data),
            "timesteps": timesteps[0],
            "encoder": get_encoder(encodings[name]),
            "input_bits": data.bits,
            "input_signed": data.signed,
            "input_scale": data.scale,
            "w_bits": args.w_bits,
            "v_bits": args.v_bits,
        }
        t0 = time.perf_counter()
        done = C.convert(variant, ann, data.x_train, template, settings, reset=RESET[name])
        convert_seconds = time.perf_counter() - t0
        # ECC with a percentile lambda is its own entry (and bundle directory): ecc-p99.99
        percentile_lambda = variant == "ecc" and args.lambda_percentile != 100.0
        entry = f"{name}-p{args.lambda_percentile:g}" if percentile_lambda else name
        print(f"{entry}: thresholds {[round(t, 4) for t in done.thresholds]}")
        rows = sweep(
            done,
            data,
            timesteps,
            out,
            args.seed + 1234,
            entry,
            curve_samples=args.curve_samples,
            full_timesteps=frozenset(_ints(args.full_timesteps) if args.full_timesteps else ()),
        )
        results["variants"][entry] = {
            "encoding": encodings[name],
            "reset": RESET[name],
            "ann_accuracy": ann_accuracy,
            "ann_train_seconds": ann_seconds,
            "convert_seconds": convert_seconds,
            "float_thresholds": done.thresholds,
            "lambdas": done.lambdas,
            "settings": asdict(settings),
            "rows": rows,
        }
        results["total_seconds"] = time.perf_counter() - started
        write_results(out, results, table)  # after every variant: partial runs count
    plot(results, out / "accuracy_vs_T.png")
    print(table(results))
    seconds = results["total_seconds"]
    print(f"wrote {out}/results.json, results.md, accuracy_vs_T.png ({seconds:.0f} s)")
    return exit_status(r for entry in results["variants"].values() for r in entry["rows"])


if __name__ == "__main__":
    raise SystemExit(main())
