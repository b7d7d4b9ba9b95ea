"""``spikeforge rtl-sim``: a bundle on its generated chip under cocotb, checked against golden.

Writes RESULT.npz with ``spikeforge run``'s keys (from the RTL), exits 1 on any difference from
the golden model after printing the first (sample, step, layer, neuron, the cycle it left its
cores; ``--wave``: that sample's waveform), and prints a report:
cycles per sample, synaptic operations, SOPs per cycle and an energy estimate from the RTL
counters (ACE-SNN per-operation model; Zou et al.'s 0.57 pJ/SOP beside it). The work is
``spikeforge.api.rtl_sim``.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from spikeforge.api import SIMULATORS
from spikeforge.checks import INT_RANGES
from spikeforge.cli.options import int_option
from spikeforge.cli.verilog import add_chip_options, chip_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("bundle", help="bundle directory (manifest.json + weights.npz)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", metavar="X.npy", help="integer codes [N, *shape] or 0/1 trains [N, T, *shape]"
    )
    source.add_argument(
        "--dataset-split",
        choices=("test", "train"),
        help="the split of the dataset the bundle was trained on (direct encoding), with labels",
    )
    add("--data", metavar="DIR", help="dataset directory for --dataset-split (IDX datasets)")
    add("--labels", metavar="Y.npy", help="labels [N] for --input: report the accuracy")
    lo, hi = INT_RANGES["limit"]
    add(
        "--limit", type=int_option("--limit", lo, hi), help=f"only the first N samples ({lo}..{hi})"
    )
    add("--sim", choices=SIMULATORS, default="verilator", help="HDL simulator (default verilator)")
    add(
        "--out",
        required=True,
        metavar="RESULT.npz",
        help="pred, v_out, spikes.<layer> (RTL); a new or regular file, not an input",
    )
    add_chip_options(parser, "neurons updated per cycle per core (default 16)")
    add(
        "--build-dir",
        help="keep the Verilog and simulator build here (new, empty or a previous build)",
    )
    lo, hi = INT_RANGES["jobs"]
    add(
        "--jobs",
        type=int_option("--jobs", lo, hi),
        default=1,
        metavar="N",
        help="simulator processes sharing the samples, one build (default 1; one per core)",
    )
    add(
        "--shard",
        metavar="K/N",
        help="only the K-th of N contiguous slices of the samples (1 <= K <= N); writes a "
        "partial result for 'spikeforge merge-results'",
    )
    add(
        "--top",
        choices=("chip", "axi"),
        default="chip",
        help="chip: the bare chip in the fast harness, every spike compared (default); axi: "
        "the AXI-wrapped chip (spikeforge verilog's default top) through cocotbext-axi, its "
        "output potentials and predictions compared",
    )
    add(
        "--stream-pauses",
        type=_probability,
        default=0.0,
        metavar="P",
        help="with --top axi: pause the input stream and hold back the output stream in each "
        "cycle with probability P (0 <= P < 1; default 0)",
    )
    add(
        "--wave",
        action="store_true",
        help="on a mismatch, re-run the first differing sample with waveform tracing and write "
        "RESULT.sampleS.fst next to --out",
    )


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1), got {text!r}")
    return value


def main(args: argparse.Namespace) -> int:
    from spikeforge import api
    from spikeforge.cli.errors import EXIT_DIFFERS, UsageError, user_errors

    try:
        if args.input:
            x, labels = args.input, args.labels
        else:
            if args.labels:
                raise UsageError("--labels goes with --input (a dataset split has its labels)")
            x, labels = api.dataset_split(args.bundle, args.dataset_split, args.data)
        common = {
            "labels": labels,
            "limit": args.limit,
            "sim": args.sim,
            "out": args.out,
            "build_dir": args.build_dir,
            **chip_options(args),
            "log": partial(print, flush=True),  # progress lines reach a log file at once
        }
        if args.top == "axi":
            if args.jobs != 1 or args.shard or args.wave:
                raise UsageError("--jobs, --shard and --wave go with --top chip (the fast harness)")
            pauses = args.stream_pauses
            result = api.rtl_sim_axi(args.bundle, x, gap_p=pauses, backpressure_p=pauses, **common)
        else:
            if args.stream_pauses:
                raise UsageError("--stream-pauses goes with --top axi")
            result = api.rtl_sim(
                args.bundle, x, jobs=args.jobs, shard=args.shard, wave=args.wave, **common
            )
    except user_errors() as exc:
        raise UsageError(str(exc)) from None
    print(result.report())
    print(f"wrote {args.out}")
    if result.mismatch is not None:
        print(f"rtl-sim: {result.mismatch}", file=sys.stderr)
        if args.top == "chip":
            print(f"rtl-sim: {result.where}", file=sys.stderr)
            if result.waveform is not None:
                print(f"rtl-sim: {result.waveform}", file=sys.stderr)
            else:
                print("rtl-sim: add --wave to write this sample's waveform", file=sys.stderr)
        return EXIT_DIFFERS
    if args.top == "chip" and result.counter_problems:
        print(f"rtl-sim: counter mismatch: {result.counter_problems[0]}", file=sys.stderr)
        return EXIT_DIFFERS
    return 0
