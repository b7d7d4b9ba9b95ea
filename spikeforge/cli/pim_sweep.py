"""``spikeforge pim-sweep``: test accuracy with an SRAM-PIM first layer vs ADC bits and knobs.

Writes ``pim_sweep.png`` (plot), ``pim_sweep.csv`` (every point) and ``pim_sweep.md`` (tables
and the per-sample energy/delay report) into ``--out``. Everything is checked before anything is
written. The work is ``spikeforge.api.pim_sweep``.
"""

from __future__ import annotations

import argparse
from functools import partial

from spikeforge.api import COMBINE_CHOICES, DATASETS
from spikeforge.checks import INT_RANGES
from spikeforge.cli.options import int_option

HELP = "accuracy with the first layer in SRAM-PIM vs ADC bits and analog non-idealities"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from spikeforge.pim.adc import ADC_BITS_RANGE
    from spikeforge.pim.array import N_ROWS
    from spikeforge.pim.sweep import KNOB_VALUES

    adc_lo, adc_hi = ADC_BITS_RANGE
    parser.add_argument("bundle", help="bundle directory (manifest.json + weights.npz)")
    parser.add_argument(
        "--out", required=True, metavar="DIR", help="output directory (other files in it stay)"
    )
    data = parser.add_argument_group("test data (default: the dataset named in the bundle)")
    data.add_argument("--dataset", choices=DATASETS, help="evaluate on this dataset's test split")
    data.add_argument("--data", metavar="DIR", help="directory of the IDX files")
    data.add_argument("--input", metavar="X.npy", help="input codes [N, *shape] instead")
    data.add_argument("--labels", metavar="Y.npy", help="labels [N] for --input")
    lo, hi = INT_RANGES["limit"]
    data.add_argument(
        "--limit",
        type=int_option("--limit", lo, hi),
        metavar="N",
        help=f"use the first N samples only ({lo}..{hi})",
    )
    sweep = parser.add_argument_group("sweep")
    sweep.add_argument(
        "--adc-bits",
        default="4:14",
        metavar="LO:HI|B,B,..",
        help=f"ADC resolutions, each {adc_lo}..{adc_hi} (default 4:14)",
    )
    sweep.add_argument(
        "--combine",
        default="both",
        choices=COMBINE_CHOICES,
        help="bit-column combining: per-column ADCs + digital shift-add, or analog (default both)",
    )
    sweep.add_argument(
        "--knobs",
        default="all",
        metavar="all|none|K,K,..",
        help=f"non-idealities to sweep: all, none, or a list from {', '.join(KNOB_VALUES)}",
    )
    sweep.add_argument(
        "--knob-adc-bits",
        type=int_option(
            "--knob-adc-bits", adc_lo, adc_hi, f"ADC bits must be within [{adc_lo}, {adc_hi}]"
        ),
        metavar="B",
        help=f"ADC bits for the knob sweeps ({adc_lo}..{adc_hi}; default: fewest bits within "
        "1%% of exact)",
    )
    lo, hi = INT_RANGES["seeds"]
    sweep.add_argument(
        "--seeds",
        type=int_option("--seeds", lo, hi),
        default=3,
        help=f"seeds per random knob ({lo}..{hi}, default 3)",
    )
    sweep.add_argument(
        "--rows-active",
        type=int_option("--rows-active", 1, N_ROWS),
        default=64,
        help=f"rows activated at once (1..{N_ROWS}, default 64)",
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
    if not bits:
        raise UsageError(f"--adc-bits {text!r}: LO:HI needs LO <= HI")
    if min(bits) < lo or max(bits) > hi:
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


def _test_data(args: argparse.Namespace):
    """``(x, labels)``: the ``--input/--labels`` files, or a dataset's test split."""
    from spikeforge import api
    from spikeforge.cli.errors import UsageError

    if args.input or args.labels:
        if not (args.input and args.labels):
            raise UsageError("--input and --labels go together")
        return args.input, args.labels
    bundle = api.as_bundle(args.bundle)
    name = args.dataset or (bundle.meta.get("training") or {}).get("dataset")
    if name not in DATASETS:
        raise UsageError("name the test data: --dataset NAME, or --input X.npy --labels Y.npy")
    return api.dataset_split(bundle, "test", args.data, dataset=name)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from spikeforge import api
    from spikeforge.cli.errors import UsageError, user_errors
    from spikeforge.pim.adc import ADC_BITS_RANGE

    bits = _adc_bits(args.adc_bits, *ADC_BITS_RANGE)
    knobs = _knobs(args.knobs)
    try:
        api.output_dir(args.out, allow_nonempty=lambda _p: True, names=api.PIM_FILES)
        x, labels = _test_data(args)
        result = api.pim_sweep(
            args.bundle,
            x,
            labels,
            args.out,
            adc_bits=bits,
            combine=args.combine,
            knobs=knobs,
            knob_adc_bits=args.knob_adc_bits,
            seeds=args.seeds,
            rows_active=args.rows_active,
            limit=args.limit,
            title=Path(args.bundle).resolve().name,
            log=partial(print, flush=True),  # progress lines reach a log file at once
        )
    except user_errors() as exc:
        raise UsageError(str(exc)) from None
    print(result.sweep.markdown())
    print(result.report.format())
    print(f"-> {', '.join(str(p) for p in result.paths)}")
    return 0
