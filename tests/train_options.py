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


#: The part of a short training run the checkpoint and torchrun tests share: 120 test images,
#: 3 ANN epochs at lr 1e-2, no progress bars or plots, one torch thread.
SHORT_RUN: dict[str, str | int | bool] = {
    "limit_test": 120,
    "ann_epochs": 3,
    "ann_lr": "1e-2",
    "no_progress": True,
    "no_plots": True,
    "threads": 1,
}


def short_run_argv(**options: str | int | bool) -> list[str]:
    """``train_argv`` of ``SHORT_RUN`` with ``options`` added or replacing its values."""
    return train_argv(**{**SHORT_RUN, **options})


def parse_train_args(*argv: str) -> argparse.Namespace:
    """``argv`` parsed by the ``spikeforge train`` parser."""
    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    return parser.parse_args(list(argv))
