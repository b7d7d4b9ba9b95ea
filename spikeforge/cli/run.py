"""``spikeforge run``: the golden model on a file of inputs, results to RESULT.npz."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", help="bundle directory (manifest.json + weights.npz)")
    parser.add_argument(
        "--input",
        required=True,
        metavar="X.npy",
        help="integer codes [N, *shape] (direct) or 0/1 trains [N, T, *shape]",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="RESULT.npz",
        help="where to write pred, v_out and spikes.<layer>",
    )
    parser.add_argument("--labels", metavar="Y.npy", help="optional labels: print the accuracy")


def main(args: argparse.Namespace) -> int:
    from spikeforge.cli.errors import UsageError
    from spikeforge.sim import golden
    from spikeforge.sim.bundle import BundleError, load_bundle
    from spikeforge.sim.results import ArrayFileError, load_array, write_npz_atomic

    try:
        bundle = load_bundle(args.bundle)
        x = load_array(args.input)
        labels = load_array(args.labels, "labels") if args.labels else None
        result = golden.run(bundle, x)
    except (BundleError, ArrayFileError, golden.InputError) as exc:
        raise UsageError(str(exc)) from None
    if labels is not None and labels.shape != (x.shape[0],):
        raise UsageError(f"labels have shape {list(labels.shape)}; expected [{x.shape[0]}]")
    write_npz_atomic(args.out, result.result_arrays())
    line = f"{x.shape[0]} samples -> {args.out}"
    if labels is not None:
        line += f"; accuracy {golden.accuracy(result, labels):.4f}"
    print(line)
    ops = sum(c.synaptic_ops for c in result.counters.values())
    spikes = sum(c.output_spikes for c in result.counters.values())
    print(f"synaptic operations {ops}, spikes {spikes} ({ops / x.shape[0]:.0f} SOPs per sample)")
    return 0
