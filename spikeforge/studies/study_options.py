"""The options the numpy-method study commands (Lee 2016, STDBP, STDP) all take."""

from __future__ import annotations

import argparse

from spikeforge.sim.datasets import DATASETS, Dataset, load_dataset


def add_study_options(parser: argparse.ArgumentParser, *, out_required: bool = True) -> None:
    """The dataset and its slice, the seed, the bundle's weight bits and the output directory."""
    add = parser.add_argument
    add("--dataset", choices=DATASETS, default="digits")
    add("--data", default=None, help="directory of IDX files")
    add("--train-limit", type=int, default=None, help="first N training samples (default: all)")
    add("--test-limit", type=int, default=None, help="first N test samples (default: all)")
    add("--seed", type=int, default=0)
    add("--w-bits", type=int, default=8, help="weight bits of the exported bundle")
    add("--out", required=out_required, help="output directory (metrics.json, bundle/)")


def study_data(args: argparse.Namespace) -> Dataset:
    """The dataset ``add_study_options`` named, cut to its train and test limits."""
    return load_dataset(args.dataset, args.data).limited(args.train_limit, args.test_limit)
