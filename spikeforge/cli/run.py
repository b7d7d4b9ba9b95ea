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
        help="where to write pred, v_out and spikes.<layer> (a new or regular file, not an input)",
    )
    parser.add_argument("--labels", metavar="Y.npy", help="optional labels [N]: print the accuracy")


def main(args: argparse.Namespace) -> int:
    from spikeforge import api
    from spikeforge.cli.errors import UsageError, user_errors
    from spikeforge.sim import golden
    from spikeforge.sim.results import load_array

    try:
        result = api.run(args.bundle, args.input, out=args.out, labels=args.labels)
        labels = load_array(args.labels, "labels") if args.labels else None
    except user_errors() as exc:
        raise UsageError(str(exc)) from None
    n = result.pred.shape[0]
    line = f"{n} samples -> {args.out}"
    if labels is not None:
        line += f"; accuracy {golden.accuracy(result, labels):.4f}"
    print(line)
    ops = sum(c.synaptic_ops for c in result.counters.values())
    spikes = sum(c.output_spikes for c in result.counters.values())
    print(f"synaptic operations {ops}, spikes {spikes} ({ops / n:.0f} SOPs per sample)")
    return 0
