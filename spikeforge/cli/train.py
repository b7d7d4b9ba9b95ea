"""``spikeforge train``: train an SNN, export its bundle, check it bit-exactly, report.

Writes into ``--out``: the bundle (``manifest.json``, ``weights.npz``), ``metrics.json``
(float, fake-quant, bit-true and golden test accuracy, firing rates, operation counts, history),
``plots/`` and the test split as ``test_x.npy`` / ``test_y.npy`` (the inputs exactly as the
bundle receives them, for ``spikeforge run``). Heavy imports happen inside ``main``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Iterator
from typing import Any

#: Per-dataset defaults (anything not given on the command line).
DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {
        "arch": "256-128",
        "timesteps": 5,
        "dropout": 0.2,
        "batch_size": 64,
        "ann_epochs": 30,
        "snn_epochs": 30,
        "bittrue_epochs": 10,
    },
    "fashion-mnist": {
        "arch": "c32k3s2-c64k3s2-256",
        "timesteps": 6,
        "dropout": 0.1,
        "batch_size": 128,
        "ann_epochs": 15,
        "snn_epochs": 6,
        "bittrue_epochs": 1,
    },
}
DEFAULTS["mnist"] = dict(DEFAULTS["fashion-mnist"])
METHOD_NAMES = ("hybrid", "direct", "bntt", "lee2020", "scatter-gather")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``spikeforge train``."""
    add = parser.add_argument
    add("--dataset", default="digits", choices=sorted(DEFAULTS), help="dataset (default digits)")
    add("--data", metavar="DIR", help="directory with the IDX files (fashion-mnist, mnist)")
    add("--out", metavar="BUNDLE_DIR", required=True, help="bundle directory to write")
    add("--method", default="hybrid", help=f"training method: {', '.join(METHOD_NAMES)}")
    add("--arch", help="hidden layers, e.g. 256-128 or c32k3s2-c64k3s2-256")
    add("--timesteps", type=int, help="time steps T")
    add("--w-bits", type=int, default=6, help="weight bits, 2..8 (default 6)")
    add("--v-bits", type=int, default=16, help="membrane potential bits (default 16)")
    add("--encoding", default="direct", choices=("direct", "poisson", "latency"))
    add("--surrogate", default="triangle", choices=("triangle", "lee", "fast_sigmoid", "gaussian"))
    add("--reset", default="sub", choices=("sub", "zero", "none"))
    add("--leak", default="mult", choices=("mult", "shift", "none"), help="leak mode")
    add("--quant", default="affine", choices=("affine", "symmetric", "none"), help="QAT mode")
    add("--dropout", type=float)
    add("--batch-size", type=int)
    add("--ann-epochs", type=int, help="ANN pre-training epochs (hybrid)")
    add("--snn-epochs", type=int, help="quantised SNN epochs")
    add("--bittrue-epochs", type=int, help="bit-true fine-tuning epochs")
    add("--ann-lr", type=float, default=1e-3)
    add("--snn-lr", type=float, default=1e-3)
    add("--bittrue-lr", type=float, default=2e-4)
    add("--augment", action="store_true", help="random flips and 2-pixel shifts (image sets)")
    add("--eval-every", type=int, default=1, metavar="N", help="test accuracy every N epochs")
    add(
        "--method-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the chosen method (repeatable), e.g. gradient=aggregate for lee2020",
    )
    add("--seed", type=int, default=0)
    add("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    add("--limit-train", type=int, metavar="N", help="use only the first N training samples")
    add("--limit-test", type=int, metavar="N", help="use only the first N test samples")
    add("--no-progress", action="store_true", help="no progress bars")
    add("--no-plots", action="store_true", help="skip the plots")
    add_run_control_arguments(parser)


def _config(args: argparse.Namespace) -> Any:
    from spikeforge.algo.methods import METHODS
    from spikeforge.algo.training.pipeline import TrainConfig
    from spikeforge.cli.errors import UsageError

    if args.method not in METHODS:
        raise UsageError(f"unknown --method {args.method!r}; expected one of {sorted(METHODS)}")
    defaults = DEFAULTS[args.dataset]
    pick = {
        key: getattr(args, key) if getattr(args, key) is not None else defaults[key]
        for key in defaults
    }
    if args.method == "scatter-gather" and args.timesteps is None:
        pick["timesteps"] = 1  # neuron groups answer in one step (Zou et al.)
    if not 2 <= args.w_bits <= 8:
        raise UsageError(f"--w-bits must be in 2..8, got {args.w_bits}")
    if not 4 <= args.v_bits <= 32:
        raise UsageError(f"--v-bits must be in 4..32, got {args.v_bits}")
    if pick["timesteps"] < 1:
        raise UsageError(f"--timesteps must be at least 1, got {pick['timesteps']}")
    if not 0.0 <= pick["dropout"] < 1.0:
        raise UsageError(f"--dropout must be in [0, 1), got {pick['dropout']}")
    if args.eval_every < 1:
        raise UsageError(f"--eval-every must be at least 1, got {args.eval_every}")
    if pick["batch_size"] < 1:
        raise UsageError(f"--batch-size must be at least 1, got {pick['batch_size']}")
    options = {}
    for item in args.method_option:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--method-option expects KEY=VALUE, got {item!r}")
        options[key.strip()] = value.strip()
    return TrainConfig(
        **pick,
        method_options=options,
        method=args.method,
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
    )


def main(args: argparse.Namespace) -> int:
    """Train, export, verify against the golden model, write metrics and plots."""
    started = time.perf_counter()
    import numpy as np
    import torch

    from spikeforge.algo.snn import bittrue
    from spikeforge.algo.snn.models import parse_arch
    from spikeforge.algo.training.export import export
    from spikeforge.algo.training.pipeline import Trainer, evaluate, fixed_inputs
    from spikeforge.algo.training.report import (
        firing_rates,
        plot_firing_rates,
        plot_raster,
        plot_training_curves,
        write_json,
    )
    from spikeforge.cli.errors import UsageError
    from spikeforge.sim import golden
    from spikeforge.sim.bundle import load_bundle
    from spikeforge.sim.datasets import DataError, load_dataset

    torch.set_num_threads(max(1, args.threads))
    config = _config(args)
    processes = _start_processes(args, config)
    try:
        parse_arch(config.arch)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        data = load_dataset(args.dataset, args.data)
    except (DataError, OSError) as exc:
        raise UsageError(str(exc)) from None
    data = data.limited(args.limit_train, args.limit_test)
    if processes.is_main:
        print(
            f"spikeforge train: {args.dataset} ({len(data.y_train)} train / "
            f"{len(data.y_test)} test), {config.method}, arch {config.arch}, "
            f"T={config.timesteps}, {config.w_bits}-bit weights"
            + (f", {processes.world} processes" if processes.parallel else "")
        )
    trainer = Trainer(
        progress=not args.no_progress and processes.is_main,
        processes=processes,
        loader=args.loader,
    )
    result = _train_with_checkpoints(args, config, data, trainer, processes)
    if isinstance(result, int):
        return result
    net = result.net

    accuracy: dict[str, float | None] = {}
    ann_phase = [h for h in result.history if h["phase"] == "ann" and "test_acc" in h]
    accuracy["ann"] = ann_phase[-1]["test_acc"] if ann_phase else None
    accuracy["float"] = evaluate(net, data.x_test, data.y_test, "float", trainer.eval_seed)
    accuracy["fake_quant"] = evaluate(net, data.x_test, data.y_test, "quant", trainer.eval_seed)

    x_test = fixed_inputs(net, data.x_test, trainer.eval_seed)
    with torch.no_grad():
        net.set_mode("bittrue").eval()
        ours = [
            bittrue.to_result(net.run_bittrue(x_test[i : i + 500]))
            for i in range(0, len(x_test), 500)
        ]
    bit_pred = np.concatenate([r.pred for r in ours])
    accuracy["bit_true"] = float(np.mean(bit_pred == data.y_test))

    meta = {
        "training": {
            "dataset": args.dataset,
            "method": config.method,
            "config": config.to_dict(),
            "test_accuracy": dict(accuracy),
        }
    }
    with _checkpoint_kept(args.out):
        out = export(net, args.out, meta)
    bundle = load_bundle(out)
    x_np = x_test.numpy().astype(
        np.uint8 if bundle.input.encoding == "spikes" or not data.signed else np.int16
    )
    np.save(out / "test_x.npy", x_np)
    np.save(out / "test_y.npy", data.y_test.astype(np.int64))
    gold = golden.run(bundle, x_np)
    accuracy["golden"] = golden.accuracy(gold, data.y_test)

    compared_spikes = 0
    mismatches = []
    for name in gold.spikes:
        mine = np.concatenate([r.spikes[name] for r in ours])
        compared_spikes += mine.size
        if not np.array_equal(mine, gold.spikes[name]):
            mismatches.append(f"spikes of {name}")
    v_ours = np.concatenate([r.v_out for r in ours])
    if not np.array_equal(v_ours, gold.v_out):
        mismatches.append("output potentials")

    rates = firing_rates(gold.spikes)
    n = len(data.y_test)
    metrics = {
        "dataset": args.dataset,
        "method": config.method,
        "arch": config.arch,
        "timesteps": config.timesteps,
        "w_bits": config.w_bits,
        "v_bits": config.v_bits,
        "encoding": config.encoding,
        "test_samples": n,
        "accuracy": accuracy,
        "bit_true_vs_golden": {
            "equal": not mismatches,
            "spike_values_compared": compared_spikes,
            "output_potentials_compared": int(gold.v_out.size),
            "mismatches": mismatches,
        },
        "firing_rates": rates,
        "spikes_per_sample": {k: float(v.sum()) / n for k, v in gold.spikes.items()},
        "operations": {k: vars(c) for k, c in gold.counters.items()},
        "operations_per_sample": {
            k: {key: value / n for key, value in vars(c).items()} for k, c in gold.counters.items()
        },
        "layers": [
            {
                "name": layer.name,
                "kind": layer.kind,
                "out_shape": list(layer.out_shape),
                "threshold": layer.threshold
                if not hasattr(layer.threshold, "shape")
                else "per-neuron",
                "leak": {
                    "mode": layer.leak.mode,
                    **(
                        {"lam": layer.leak.lam, "frac": layer.leak.frac}
                        if layer.leak.mode == "mult"
                        else {}
                    ),
                    **({"k": layer.leak.k} if layer.leak.mode == "shift" else {}),
                },
                "input_shift": layer.input_shift,
            }
            for layer in bundle.layers
        ],
        "train_seconds": result.seconds,
        "total_seconds": None,
        "config": config.to_dict(),
        "history": result.history,
    }
    if not args.no_plots:
        plots = out / "plots"
        plot_training_curves(result.history, plots / "training_curves.png")
        one = golden.run(bundle, x_np[:1], record_potentials=True)
        potentials = one.potentials[bundle.layers[-1].name] if one.potentials else None
        plot_raster(one.spikes, potentials, plots / "raster.png", label=int(data.y_test[0]))
        plot_firing_rates(rates, plots / "firing_rates.png")
    metrics["total_seconds"] = time.perf_counter() - started
    write_json(out / "metrics.json", metrics)

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.2f}%"

    print(
        "test accuracy: "
        + ", ".join(f"{key} {pct(value)}" for key, value in accuracy.items())
        + f"; trained in {result.seconds:.1f} s"
    )
    print(f"wrote {out} (bundle, metrics.json{'' if args.no_plots else ', plots/'})")
    if mismatches:
        print(f"ERROR: the bit-true forward pass differs from the golden model: {mismatches}")
        return 1
    print(
        f"bit-true == golden on {compared_spikes} spike values and {gold.v_out.size} output "
        "potentials"
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
        type=int,
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


def _start_processes(args: argparse.Namespace, config: Any) -> Any:
    """Check the run-control options, then this process's place under torchrun (gloo process
    group joined), or one process."""
    from spikeforge.algo.training import distributed
    from spikeforge.cli.errors import UsageError

    if args.checkpoint_every < 1:
        raise UsageError(f"--checkpoint-every must be at least 1, got {args.checkpoint_every}")
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


@contextlib.contextmanager
def _checkpoint_kept(out: str) -> Iterator[None]:
    """Keep OUT/checkpoint/ across the bundle export (which replaces OUT as a whole)."""
    import tempfile
    from pathlib import Path

    target = Path(out)
    ckpt = target / CHECKPOINT_DIR
    if not ckpt.is_dir():
        yield
        return
    parked = Path(tempfile.mkdtemp(prefix=f".{target.name}.ckpt.", dir=target.parent))
    ckpt.replace(parked / CHECKPOINT_DIR)
    try:
        yield
    finally:
        target.mkdir(parents=True, exist_ok=True)
        (parked / CHECKPOINT_DIR).replace(ckpt)
        parked.rmdir()
