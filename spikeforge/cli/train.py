"""``spikeforge train``: train an SNN, export its bundle, check it bit-exactly, report.

Writes into ``--out``: the bundle (``manifest.json``, ``weights.npz``), ``metrics.json``
(float, fake-quant, bit-true and golden test accuracy, firing rates, operation counts, history),
``plots/`` and the test split as ``test_x.npy`` / ``test_y.npy`` (the inputs exactly as the
bundle receives them, for ``spikeforge run``). The work is ``spikeforge.api.train``; heavy
imports happen inside ``main``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

from spikeforge.api import DEFAULTS, TRAIN_CHOICES
from spikeforge.checks import FLOAT_RANGES, INT_RANGES
from spikeforge.cli.options import LazyChoices, core_option, float_option, int_option

__all__ = ["DEFAULTS", "add_arguments", "main"]


def _methods() -> list[str]:
    from spikeforge.api import method_names

    return method_names()


def _method(text: str) -> str:
    """``--method``'s type: a registered method name, or a ``UsageError`` listing them."""
    from spikeforge.cli.errors import UsageError

    if text not in _methods():
        raise UsageError(f"unknown --method {text!r}; expected one of {', '.join(_methods())}")
    return text


def _int(parser: argparse.ArgumentParser, name: str, help_text: str, **kwargs: Any) -> None:
    """An integer option checked against ``spikeforge.checks.INT_RANGES`` (or, with ``core``,
    against what the hardware core accepts)."""
    option = "--" + name.replace("_", "-")
    if kwargs.pop("core", False):
        check, shown = core_option(option, name)
    else:
        lo, hi = INT_RANGES[name]
        check, shown = int_option(option, lo, hi), f"{lo}..{hi}"
    default = kwargs.get("default")
    shown += f", default {default}" if default is not None else ""
    parser.add_argument(option, type=check, help=f"{help_text} ({shown})", **kwargs)


def _float(parser: argparse.ArgumentParser, name: str, help_text: str, **kwargs: Any) -> None:
    from spikeforge.checks import float_range_text

    option = "--" + name.replace("_", "-")
    default = kwargs.get("default")
    shown = float_range_text(name) + (f", default {default:g}" if default is not None else "")
    parser.add_argument(
        option, type=float_option(option, *FLOAT_RANGES[name]), help=f"{help_text} ({shown})",
        **kwargs,
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``spikeforge train``; every number is range-checked while parsing."""
    add = parser.add_argument
    per_set = "default: per dataset"
    add("--dataset", default="digits", choices=sorted(DEFAULTS), help="dataset (default digits)")
    add("--data", metavar="DIR", help="directory with the IDX files (fashion-mnist, mnist)")
    add(
        "--out",
        metavar="BUNDLE_DIR",
        required=True,
        help="bundle directory to write: new, empty, or holding a bundle (else --force)",
    )
    add("--force", action="store_true", help="write into a non-empty directory that is no bundle")
    add(
        "--method",
        default="hybrid",
        type=_method,
        choices=LazyChoices(_methods),
        metavar="METHOD",
        help="training method (default hybrid): %(choices)s",
    )
    add("--arch", help=f"hidden layers, e.g. 256-128 or c32k3s2-c64k3s2-256 ({per_set})")
    _int(parser, "timesteps", f"time steps T; {per_set}")
    _int(parser, "w_bits", "weight bits", default=6, core=True)
    _int(parser, "v_bits", "membrane potential bits", default=16, core=True)
    add("--encoding", default="direct", choices=TRAIN_CHOICES["encoding"])
    add("--surrogate", default="triangle", choices=TRAIN_CHOICES["surrogate"])
    add("--reset", default="sub", choices=TRAIN_CHOICES["reset"])
    add("--leak", default="mult", choices=TRAIN_CHOICES["leak_mode"], help="leak mode")
    add("--quant", default="affine", choices=TRAIN_CHOICES["quant"], help="QAT mode")
    _float(parser, "dropout", f"dropout; {per_set}")
    _int(parser, "batch_size", f"batch size; {per_set}")
    _int(parser, "ann_epochs", f"ANN pre-training epochs (hybrid); {per_set}")
    _int(parser, "snn_epochs", f"quantised SNN epochs; {per_set}")
    _int(parser, "bittrue_epochs", f"bit-true fine-tuning epochs; {per_set}")
    _float(parser, "ann_lr", "ANN learning rate", default=1e-3)
    _float(parser, "snn_lr", "SNN learning rate", default=1e-3)
    _float(parser, "bittrue_lr", "bit-true learning rate", default=2e-4)
    add("--augment", action="store_true", help="random flips and 2-pixel shifts (image sets)")
    _int(parser, "eval_every", "test accuracy every N epochs", default=1, metavar="N")
    add(
        "--method-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the chosen method (repeatable), e.g. gradient=aggregate for lee2020",
    )
    _int(parser, "seed", "random seed", default=0)
    _int(parser, "threads", "torch CPU threads", default=2)
    _int(parser, "limit_train", "use only the first N training samples", metavar="N")
    _int(parser, "limit_test", "use only the first N test samples", metavar="N")
    add("--no-progress", action="store_true", help="no progress bars")
    add("--no-plots", action="store_true", help="skip the plots")
    add_run_control_arguments(parser)


def _config(args: argparse.Namespace) -> Any:
    """The checked ``TrainConfig`` the options describe (``UsageError`` naming the option)."""
    from spikeforge.api import OptionError, train_config
    from spikeforge.cli.errors import UsageError

    options = {}
    for item in args.method_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--method-option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    _method(args.method)
    try:
        return train_config(
            args.dataset,
            method=args.method,
            arch=args.arch,
            timesteps=args.timesteps,
            dropout=args.dropout,
            batch_size=args.batch_size,
            ann_epochs=args.ann_epochs,
            snn_epochs=args.snn_epochs,
            bittrue_epochs=args.bittrue_epochs,
            w_bits=args.w_bits,
            v_bits=args.v_bits,
            encoding=args.encoding,
            surrogate=args.surrogate,
            reset=args.reset,
            leak_mode=args.leak,
            quant=args.quant,
            ann_lr=args.ann_lr,
            snn_lr=args.snn_lr,
            bittrue_lr=args.bittrue_lr,
            seed=args.seed,
            augment=args.augment,
            eval_every=args.eval_every,
            method_options=options,
        )
    except OptionError as exc:
        raise UsageError(_option_message(exc)) from None


def _option_message(exc: Exception) -> str:
    """An ``OptionError`` message with the setting's name spelled as its command-line option."""
    head, _, rest = str(exc).partition(" ")
    names = {"arch", "method", "leak_mode", *INT_RANGES, *FLOAT_RANGES, *TRAIN_CHOICES}
    if head in names:
        flag = "--leak" if head == "leak_mode" else "--" + head.replace("_", "-")
        return f"{flag} {rest}"
    return str(exc)


def main(args: argparse.Namespace) -> int:
    """Train, export, verify against the golden model, write metrics and plots."""
    from spikeforge import api
    from spikeforge.algo.training.pipeline import Trainer
    from spikeforge.cli.errors import EXIT_DIFFERS, UsageError, user_errors

    try:
        config = _config(args)
        processes = _start_processes(args, config)
        trainer = Trainer(
            progress=not args.no_progress and processes.is_main,
            log=partial(print, flush=True) if processes.is_main else _quiet,
            processes=processes,
            loader=args.loader,
        )
        stopped: list[int] = []

        def fit(config: Any, data: Any, trainer: Any) -> Any:
            """Training with checkpoints; an exit status (interrupted, or not rank 0) stops
            the run before export."""
            outcome = _train_with_checkpoints(args, config, data, trainer, processes)
            if isinstance(outcome, int):
                stopped.append(outcome)
                return None
            return outcome

        result = api.train(
            args.dataset,
            args.out,
            config=config,
            data_dir=args.data,
            limit_train=args.limit_train,
            limit_test=args.limit_test,
            threads=args.threads,
            plots=not args.no_plots,
            force=args.force,
            trainer=trainer,
            fit=fit,
            log=partial(print, flush=True) if processes.is_main else _quiet,
        )
    except user_errors() as exc:
        raise UsageError(_option_message(exc)) from None
    if result is None:  # interrupted (checkpoint written), or a process other than rank 0
        return stopped[0] if stopped else 0
    metrics = result.metrics
    accuracy = metrics["accuracy"]

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    print(
        "test accuracy: "
        + ", ".join(f"{key} {pct(value)}" for key, value in accuracy.items())
        + f"; trained in {metrics['train_seconds']:.1f} s"
    )
    print(f"wrote {result.out} (bundle, metrics.json{'' if args.no_plots else ', plots/'})")
    check = metrics["bit_true_vs_golden"]
    if not check["equal"]:
        differ = ", ".join(check["mismatches"])
        print(f"ERROR: the bit-true forward pass differs from the golden model: {differ}")
        return EXIT_DIFFERS
    print(
        f"bit-true == golden on {check['spike_values_compared']} spike values and "
        f"{check['output_potentials_compared']} output potentials"
    )
    return 0


# ------------------------------------------------------------------------------------------
# checkpoints, resume and multi-process runs (torchrun)

#: Methods whose training goes entirely through the checkpointed loops: they resume exactly
#: and run under torchrun. Others (bpsr: its own loop) refuse --resume and torchrun.
RESUMABLE = (
    "hybrid",
    "direct",
    "convert-spikenorm",
    "convert-percentile",
    "convert-ecc",
    "scatter-gather",
    "bntt",
    "lee2020",
)
CHECKPOINT_DIR = "checkpoint"


def add_run_control_arguments(parser: argparse.ArgumentParser) -> None:
    """Options for checkpoints, resume and data loading."""
    add = parser.add_argument
    add(
        "--resume",
        metavar="DIR",
        help="continue the run whose output directory is DIR (its checkpoint/); the other "
        "options must be those of that run",
    )
    add(
        "--checkpoint-every",
        type=int_option("--checkpoint-every", 1, 1_000_000),
        default=1,
        metavar="N",
        help="write OUT/checkpoint/ after every N epochs (default 1; always after each phase "
        "and on SIGINT/SIGTERM)",
    )
    add(
        "--loader",
        default="auto",
        choices=("auto", "memory", "stream"),
        help="training data as one in-memory tensor, or streamed through a DataLoader with a "
        "DistributedSampler (auto: stream above 1 GiB)",
    )


def _quiet(_line: str) -> None:
    """The log of every process but rank 0 (only rank 0 prints)."""


def _start_processes(args: argparse.Namespace, config: Any) -> Any:
    """Check the run-control options, then this process's place under torchrun (gloo process
    group joined), or one process."""
    from spikeforge.algo.training import distributed
    from spikeforge.cli.errors import UsageError

    if args.resume is not None and config.method not in RESUMABLE:
        raise UsageError(
            f"--resume: method {config.method!r} cannot resume exactly (its training loop is "
            f"not checkpointed); resumable: {', '.join(RESUMABLE)}"
        )
    processes = distributed.torchrun_environment() or distributed.SINGLE
    if processes.parallel:
        if config.method not in RESUMABLE:
            raise UsageError(
                f"torchrun: method {config.method!r} has no multi-process training; "
                f"supported: {', '.join(RESUMABLE)}"
            )
        distributed.start(processes)
    return processes


def _train_with_checkpoints(
    args: argparse.Namespace, config: Any, data: Any, trainer: Any, processes: Any
) -> Any:
    """``train`` with checkpoints in OUT/checkpoint/ (resumed from ``--resume``) and SIGINT /
    SIGTERM handling; returns the result, or an exit status (interrupted, or not rank 0)."""
    import signal
    from pathlib import Path

    from spikeforge.algo.training import distributed
    from spikeforge.algo.training.checkpoint import (
        STATE_FILE,
        Checkpointer,
        CheckpointError,
        TrainingInterrupted,
    )
    from spikeforge.algo.training.pipeline import train
    from spikeforge.cli.errors import UsageError

    if not processes.is_main:
        trainer.log = lambda _message: None
    run = {
        "config": config.to_dict(),
        "dataset": args.dataset,
        "train_samples": len(data.y_train),
        "test_samples": len(data.y_test),
        "loader": args.loader,
    }
    try:
        checkpoints = Checkpointer(
            Path(args.out) / CHECKPOINT_DIR,
            run=run,
            every=args.checkpoint_every,
            resume=None if args.resume is None else Path(args.resume) / CHECKPOINT_DIR,
            processes=processes,
        )
        checkpoints.attach(trainer)
        with checkpoints.signals(), torch_deterministic():
            result = train(config, data, trainer)
    except CheckpointError as exc:
        distributed.stop(barrier=False)
        raise UsageError(str(exc)) from None
    except TrainingInterrupted as exc:
        distributed.stop(barrier=False)
        if processes.is_main:
            saved = (Path(args.out) / CHECKPOINT_DIR / STATE_FILE).is_file()
            hint = (
                f"continue with --resume {args.out}"
                if saved and config.method in RESUMABLE
                else "no checkpoint to resume from"
            )
            print(f"interrupted: stopped by {signal.Signals(exc.signum).name}; {hint}")
        return 128 + exc.signum
    distributed.stop()
    if not processes.is_main:
        return 0
    return result


@contextlib.contextmanager
def torch_deterministic() -> Iterator[None]:
    """Deterministic kernels where torch has a choice (same seed and threads: same bytes),
    for the duration; the previous setting comes back after."""
    import torch

    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)
