"""``spikeforge train`` options for the tests: keywords as an argv list, an argv as parsed."""

from __future__ import annotations

import argparse

from spikeforge.cli import train as train_cli


def train_argv(**options: str | int | bool) -> list[str]:
    """``ann_lr="1e-2"`` -> ``--ann-lr 1e-2``, ``no_plots=True`` -> ``--no-plots``, in order."""
    argv: list[str] = []
    for name, value in options.items():
        option = "--" + name.replace("_", "-")
        argv += [option] if value is True else [option, str(value)]
    return argv


def parse_train_args(*argv: str) -> argparse.Namespace:
    """``argv`` parsed by the ``spikeforge train`` parser."""
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    return parser.parse_args(list(argv))
