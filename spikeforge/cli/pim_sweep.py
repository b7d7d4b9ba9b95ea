"""``spikeforge pim-sweep``: test accuracy with an SRAM-PIM first layer vs ADC bits and knobs.

Writes ``pim_sweep.png`` (plot), ``pim_sweep.csv`` (every point) and ``pim_sweep.md`` (tables
and the per-sample energy/delay report) into ``--out``. Everything is checked before anything is
written.
"""

from __future__ import annotations

import argparse

HELP = "accuracy with the first layer in SRAM-PIM vs ADC bits and analog non-idealities"
DATASETS = ("digits", "fashion-mnist", "mnist")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory (manifest.json + weights.npz)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    data = parser.add_argument_group("test data (default: the dataset named in the bundle)")
    data.add_argument("--dataset", choices=DATASETS, help="evaluate on this dataset's test split")
    data.add_argument("--data", metavar="DIR", help="directory of the IDX files")
    data.add_argument("--input", metavar="X.npy", help="input codes [N, *shape] instead")
    data.add_argument("--labels", metavar="Y.npy", help="labels [N] for --input")
    data.add_argument("--limit", type=int, metavar="N", help="use the first N samples only")
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument(
        "--adc-bits", default="4:14", metavar="LO:HI|B,B,..", help="ADC resolutions (default 4:14)"
    )
    sweep.add_argument(
        "--combine",
        default="both",
        choices=("digital", "analog", "both"),
        help="bit-column combining: per-column ADCs + digital shift-add, or analog (default both)",
    )
    sweep.add_argument(
        "--knobs", default="all", metavar="all|none|K,K,..", help="non-idealities to sweep"
    )
    sweep.add_argument(
        "--knob-adc-bits",
        type=int,
        metavar="B",
        help="ADC bits for the knob sweeps (default: fewest bits within 1%% of exact)",
    )
    sweep.add_argument("--seeds", type=int, default=3, help="seeds per random knob (default 3)")
    sweep.add_argument(
        "--rows-active", type=int, default=64, help="rows activated at once (default 64)"
    )


def _adc_bits(text: str, lo: int, hi: int) -> list[int]:
    from spikeforge.cli.errors import UsageError

    try:
        if ":" in text:
            first, last = (int(v) for v in text.split(":"))
            bits = list(range(first, last + 1))
        else:
            bits = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(
            f"--adc-bits {text!r}: expected LO:HI or a comma list of integers"
        ) from None
    if not bits or min(bits) < lo or max(bits) > hi:
        raise UsageError(f"--adc-bits {text!r}: ADC bits must be within [{lo}, {hi}]")
    return bits


def _knobs(text: str) -> list[str]:
    from spikeforge.cli.errors import UsageError
    from spikeforge.pim.sweep import KNOB_VALUES

    if text == "all":
        return list(KNOB_VALUES)
    if text == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in KNOB_VALUES]
    if unknown or not names:
        raise UsageError(f"--knobs: unknown {unknown or text!r}; choose from {list(KNOB_VALUES)}")
    return names


def _test_data(args: argparse.Namespace, bundle):
    """``(x, labels)`` from ``--input/--labels`` or a dataset's test split."""
    import numpy as np

    from spikeforge.cli.errors import UsageError
    from spikeforge.sim.results import load_array

    if args.input or args.labels:
        if not (args.input and args.labels):
            raise UsageError("--input and --labels go together")
        x, labels = load_array(args.input), load_array(args.labels, "labels")
    else:
        name = args.dataset or bundle.meta.get("training", {}).get("dataset")
        if name not in DATASETS:
            raise UsageError("name the test data: --dataset NAME, or --input X.npy --labels Y.npy")
        from spikeforge.sim.datasets import load_dataset

        data = load_dataset(name, args.data)
        x, labels = data.x_test, data.y_test
        shape = tuple(bundle.input.shape)
        if int(np.prod(x.shape[1:])) != int(np.prod(shape)):
            raise UsageError(
                f"{name} samples have shape {list(x.shape[1:])}; the bundle expects {list(shape)}"
            )
        x = x.reshape(x.shape[0], *shape)
    if args.limit is not None:
        if args.limit < 1:
            raise UsageError("--limit must be >= 1")
        x, labels = x[: args.limit], labels[: args.limit]
    if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise UsageError(f"labels have shape {list(labels.shape)}; expected [{x.shape[0]}]")
    return x, labels.astype(np.int64)


def main(args: argparse.Namespace) -> int:
    import dataclasses
    import os
    import tempfile
    from pathlib import Path

    from spikeforge.cli.errors import UsageError
    from spikeforge.pim.adc import ADC_BITS_RANGE
    from spikeforge.pim.array import ArrayGeometry, MappingError
    from spikeforge.pim.model import PimConfig, PimLayer
    from spikeforge.pim.report import bundle_report
    from spikeforge.pim.sweep import plot, run_sweep
    from spikeforge.sim import golden
    from spikeforge.sim.bundle import BundleError, load_bundle
    from spikeforge.sim.results import ArrayFileError

    bits = _adc_bits(args.adc_bits, *ADC_BITS_RANGE)
    knobs = _knobs(args.knobs)
    if args.knob_adc_bits is not None:
        _adc_bits(str(args.knob_adc_bits), *ADC_BITS_RANGE)
    if args.seeds < 1 or args.rows_active < 1:
        raise UsageError("--seeds and --rows-active must be >= 1")
    combines = ("digital", "analog") if args.combine == "both" else (args.combine,)
    base = PimConfig(geometry=ArrayGeometry(rows_active=args.rows_active))
    try:
        bundle = load_bundle(args.bundle)
        for combine in combines:
            PimLayer(bundle.layers[0], bundle.input, dataclasses.replace(base, combine=combine))
        x, labels = _test_data(args, bundle)
        x = golden.check_input(bundle, x)
    except (BundleError, MappingError, ArrayFileError, golden.InputError) as exc:
        raise UsageError(str(exc)) from None
    except ValueError as exc:  # spikeforge.sim.datasets.DataError and friends
        raise UsageError(str(exc)) from None

    print(f"{bundle.layers[0].name}: {x.shape[0]} samples, ADC bits {bits[0]}..{bits[-1]}")
    sweep = run_sweep(
        bundle,
        x,
        labels,
        adc_bits=bits,
        combines=combines,
        knobs=knobs,
        knob_adc_bits=args.knob_adc_bits,
        seeds=args.seeds,
        base=base,
        progress=print,
    )
    exact = golden.run(bundle, x)
    report = bundle_report(bundle, exact.counters, x.shape[0], base)
    title = Path(args.bundle).resolve().name
    text = f"# PIM sweep: {title}\n\n{sweep.markdown()}\n## Energy and delay per sample\n\n"
    text += "```\n" + report.format() + "\n```\n"

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, content in (("pim_sweep.csv", sweep.csv()), ("pim_sweep.md", text)):
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
        os.replace(tmp, out / name)
    fd, tmp = tempfile.mkstemp(prefix=".pim_sweep.", suffix=".png", dir=out)
    os.close(fd)
    plot(sweep, tmp, title)
    os.replace(tmp, out / "pim_sweep.png")
    print(sweep.markdown())
    print(report.format())
    print(f"-> {out / 'pim_sweep.png'}, {out / 'pim_sweep.csv'}, {out / 'pim_sweep.md'}")
    return 0
