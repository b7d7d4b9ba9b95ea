"""``spikeforge merge-results``: join the partial results of ``rtl-sim --shard`` into one
RESULT.npz, equal key for key to an unsharded run."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "parts",
        nargs="+",
        metavar="PART.npz",
        help="partial results written by rtl-sim --shard K/N, in any order",
    )
    parser.add_argument(
        "--out",
        required=True,
        metavar="RESULT.npz",
        help="where to write the merged result (a new or regular file, not one of the parts)",
    )


def _same(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file (the same path, a link to it or a hard link)."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def main(args: argparse.Namespace) -> int:
    from spikeforge import api
    from spikeforge.cli.errors import UsageError, user_errors

    parts = [Path(p) for p in args.parts]
    out = Path(args.out)
    for part in parts:
        if _same(out, part):
            raise UsageError(f"--out {out} is the input {part}; choose another output")
    try:
        arrays = api.merge_results(parts, out)
    except user_errors() as exc:
        raise UsageError(str(exc)) from None
    samples = len(next(iter(arrays.values()))) if arrays else 0
    print(f"merged {len(parts)} shards: {samples} samples -> {args.out}")
    return 0
