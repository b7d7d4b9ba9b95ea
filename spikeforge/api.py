"""The public Python API: the command line's five steps as functions (docs/api.md).

``train`` -> bundle and metrics, ``run`` on the golden model, ``verilog`` for the chip,
``rtl_sim`` to check the chip against the golden model, ``pim_sweep`` for the SRAM-PIM first layer.
Every function accepts a ``Bundle`` or a bundle directory, checks its arguments and its output
paths before any expensive work, and raises a ``ValueError`` subclass naming the bad argument
(``OptionError``, ``ResourceError``, ``BundleError``, ``OutputPathError`` ...). The command line
(``spikeforge.cli``) is a thin layer over these functions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spikeforge.checks import (
    FLOAT_RANGES,
    INT_RANGES,
    MAX_CORE_WEIGHTS,
    OptionError,
    ResourceError,
    bundle_files,
    check_choice,
    check_float,
    check_int,
    check_memory,
    core_range,
    golden_bytes,
    output_dir,
    output_file,
    training_bytes,
)
from spikeforge.sim.bundle import MANIFEST, WEIGHTS, Bundle, BundleError, load_bundle, save_bundle
from spikeforge.sim.files import (
    OutputPathError,
    atomic_write_bytes,
    atomic_writer,
    check_output_file,
    make_dir,
)
from spikeforge.sim.golden import GoldenResult

if TYPE_CHECKING:
    from spikeforge.algo.training.pipeline import TrainConfig, Trainer
    from spikeforge.pim.sweep import Sweep
    from spikeforge.rtl_flow import Mismatch, RtlRun, Waveform

__all__ = [
    "AxiSimResult",
    "Bundle",
    "BundleError",
    "GoldenResult",
    "OptionError",
    "OutputPathError",
    "PimSweepResult",
    "ResourceError",
    "RtlSimResult",
    "TrainResult",
    "VerilogResult",
    "load_bundle",
    "merge_results",
    "pim_sweep",
    "rtl_sim",
    "rtl_sim_axi",
    "run",
    "save_bundle",
    "train",
    "train_config",
    "verilog",
    "verilog_core",
]

PathLike = str | os.PathLike[str]
BundleLike = Bundle | PathLike
Log = Callable[[str], None] | None


# --------------------------------------------------------------------------------------------
# ranges (docs/cli.md lists them; the command line builds its checks from these tables)

#: Per-dataset defaults of ``train`` (anything not given).
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
DATASETS = tuple(DEFAULTS)


def method_names() -> list[str]:
    """Every registered training method (imports the methods, and so torch)."""
    from spikeforge.algo.methods import METHODS

    return list(METHODS)


# --------------------------------------------------------------------------------------------
# bundles and output paths


def as_bundle(bundle: BundleLike) -> Bundle:
    """``bundle`` itself, or the bundle loaded (and validated) from that directory."""
    return bundle if isinstance(bundle, Bundle) else load_bundle(bundle)


def _make_dir(path: Path) -> None:
    make_dir(path)  # new directories get 0o777 & ~umask


def _write_npy(path: Path, array: np.ndarray) -> None:
    with atomic_writer(path) as handle:
        np.save(handle, array)


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with atomic_writer(path) as handle:
        np.savez_compressed(handle, **arrays)


#: Where an interrupted ``train`` keeps its checkpoint, inside its output directory.
CHECKPOINT_DIR = "checkpoint"


def _holds_bundle(path: Path) -> bool:
    """``path`` is a directory ``train`` wrote before: a bundle, or an interrupted run's
    checkpoint (so a retrain or a resume may write there without ``force``)."""
    return (path / MANIFEST).is_file() or (path / CHECKPOINT_DIR).is_dir()


# --------------------------------------------------------------------------------------------
# run


def run(
    bundle: BundleLike,
    x: np.ndarray | PathLike,
    *,
    out: PathLike | None = None,
    labels: np.ndarray | PathLike | None = None,
    record_potentials: bool = False,
) -> GoldenResult:
    """Run ``bundle`` on the golden integer model (docs/semantics.md) and return its result.

    ``x``: integer codes ``[N, *shape]`` (direct encoding) or 0/1 trains ``[N, T, *shape]``, or a
    ``.npy`` file of them. With ``out``, also write RESULT.npz (``pred``, ``v_out``,
    ``spikes.<layer>``), refusing before the run an output that would replace an input.
    ``labels`` (optional, ``[N]``) are only checked against ``x`` before the run, so a caller
    computing ``golden.accuracy(result, labels)`` fails early rather than after the work.
    """
    from spikeforge.sim import golden

    files = [Path(p) for p in (x, labels) if p is not None and not isinstance(p, np.ndarray)]
    target = output_file(out, bundle_files(bundle) + files) if out is not None else None
    model = as_bundle(bundle)
    array, labels = _inputs(x, labels, None)
    array = golden.check_input(model, array)
    check_memory(
        golden_bytes(model, array.shape[0], record_potentials=record_potentials),
        f"the golden run of {array.shape[0]} samples x {model.timesteps} steps",
    )
    result = golden.run(model, array, record_potentials=record_potentials)
    if target is not None:
        _write_npz(target, result.result_arrays())
    return result


# --------------------------------------------------------------------------------------------
# train


@dataclass
class TrainResult:
    """What ``train`` produced: the bundle, ``metrics`` (metrics.json), and the test split as
    the bundle receives it; ``out`` is the bundle directory when one was written."""

    bundle: Bundle
    metrics: dict[str, Any]
    test_x: np.ndarray
    test_y: np.ndarray
    out: Path | None = None

    @property
    def bit_exact(self) -> bool:
        """The bit-true forward pass of the trained network equals the golden model."""
        return bool(self.metrics["bit_true_vs_golden"]["equal"])


#: ``TrainConfig`` fields with a fixed set of values.
TRAIN_CHOICES: dict[str, tuple[str, ...]] = {
    "encoding": ("direct", "poisson", "latency"),
    "surrogate": ("triangle", "lee", "fast_sigmoid", "gaussian"),
    "reset": ("sub", "zero", "none"),
    "leak_mode": ("mult", "shift", "none"),
    "quant": ("affine", "symmetric", "none"),
}


def train_config(dataset: str = "digits", **settings: Any) -> TrainConfig:
    """A checked ``TrainConfig``: ``settings`` (its field names) over the dataset's defaults.

    Every number is checked against ``INT_RANGES`` / ``FLOAT_RANGES`` and the hardware's
    weight and potential widths (``core_range``); unknown names get a did-you-mean.
    """
    from spikeforge.algo.training.pipeline import TrainConfig

    check_choice("dataset", dataset, DATASETS)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for key in settings:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise OptionError(f"unknown training setting {key!r}{hint}")
    values = {k: v for k, v in settings.items() if v is not None}
    if values.get("method") == "scatter-gather" and "timesteps" not in values:
        values["timesteps"] = 1  # neuron groups answer in one step (Zou et al.)
    values = {**DEFAULTS[dataset], **values}
    config = TrainConfig(**values)
    for key in ("timesteps", "batch_size", "ann_epochs", "snn_epochs", "bittrue_epochs"):
        check_int(key, getattr(config, key))
    check_int("eval_every", config.eval_every)
    check_int("seed", config.seed)
    for key in FLOAT_RANGES:
        check_float(key, getattr(config, key))
    for key in ("w_bits", "v_bits"):
        check_int(key, getattr(config, key), *core_range(key))
    for key, choices in TRAIN_CHOICES.items():
        check_choice(key, getattr(config, key), choices)
    check_choice("method", config.method, method_names())
    if not isinstance(config.arch, str):
        raise OptionError(f"arch must be a string like 256-128, got {config.arch!r}")
    from spikeforge.algo.snn.models import parse_arch

    try:
        parse_arch(config.arch)
    except ValueError as exc:
        raise OptionError(str(exc)) from None
    return config


def train(
    dataset: str = "digits",
    out: PathLike | None = None,
    *,
    config: TrainConfig | None = None,
    data_dir: PathLike | None = None,
    limit_train: int | None = None,
    limit_test: int | None = None,
    threads: int | None = None,
    plots: bool = True,
    force: bool = False,
    trainer: Trainer | None = None,
    fit: Callable[..., Any] | None = None,
    log: Log = None,
    **settings: Any,
) -> TrainResult | None:
    """Train an SNN on ``dataset``, export its bundle, check it bit-exactly against the golden
    model, and (with ``out``) write the bundle, ``metrics.json``, ``test_x.npy``/``test_y.npy``
    and ``plots/`` there.

    ``settings`` are ``TrainConfig`` fields (``ann_epochs=2``, ``arch="64"`` ...) over the
    dataset's defaults; or pass a whole ``config``. ``out`` must be empty, new or hold a bundle
    (files beside the bundle survive) unless ``force``. Everything is checked before training.
    ``fit(config, data, trainer)`` replaces ``spikeforge.algo.training.pipeline.train`` (e.g. a
    run with checkpoints); when it returns None (stopped early, or a process other than the
    main one of a multi-process run) nothing is exported and ``train`` returns None.
    """
    started = time.perf_counter()
    say = log or (lambda _line: None)
    if config is not None and settings:
        raise OptionError("give either config or individual settings, not both")
    for key, value in (("limit_train", limit_train), ("limit_test", limit_test)):
        if value is not None:
            check_int(key, value)
    if threads is not None:
        check_int("threads", threads)
    check_choice("dataset", dataset, DATASETS)
    inputs = [Path(data_dir)] if data_dir is not None else []
    target = None
    if out is not None:
        target = output_dir(
            out,
            inputs,
            allow_nonempty=_holds_bundle,
            force=force,
            names=(MANIFEST, WEIGHTS, "metrics.json", "test_x.npy", "test_y.npy"),
        )
    config = config if config is not None else train_config(dataset, **settings)

    import torch

    from spikeforge.algo.training.pipeline import Trainer
    from spikeforge.algo.training.pipeline import train as fit_method
    from spikeforge.sim.datasets import load_dataset
    from spikeforge.train_metrics import evaluate_export, write_plots

    if threads is not None:
        torch.set_num_threads(threads)
    data = load_dataset(dataset, data_dir).limited(limit_train, limit_test)
    if len(data.y_train) == 0 or len(data.y_test) == 0:
        raise OptionError(f"{dataset}: no training or test samples left after the limits")
    check_memory(
        training_bytes(config, data.image_shape, len(data.y_test)),
        f"training {config.arch} with T={config.timesteps}, batch {config.batch_size}",
    )
    trainer = trainer or Trainer(progress=False, log=say)
    world = trainer.processes.world if trainer.processes.parallel else 1
    say(
        f"spikeforge train: {dataset} ({len(data.y_train)} train / {len(data.y_test)} test), "
        f"{config.method}, arch {config.arch}, T={config.timesteps}, {config.w_bits}-bit weights"
        + (f", {world} processes" if world > 1 else "")
    )
    result = (fit or fit_method)(config, data, trainer)
    if result is None:
        return None
    bundle, metrics, x_np = evaluate_export(result, data, config, dataset, trainer)

    if target is not None:
        _make_dir(target)
        # The directory was checked before training; it may now hold this run's checkpoint/.
        save_bundle(bundle, target, force=True)
        _write_npy(target / "test_x.npy", x_np)
        _write_npy(target / "test_y.npy", data.y_test.astype(np.int64))
        if plots:
            write_plots(bundle, metrics, x_np, data.y_test, target / "plots")
    metrics["total_seconds"] = time.perf_counter() - started
    if target is not None:
        from spikeforge.algo.training.report import _plain

        text = json.dumps(_plain(metrics), indent=2) + "\n"
        atomic_write_bytes(target / "metrics.json", text.encode())
    return TrainResult(bundle, metrics, x_np, data.y_test.astype(np.int64), target)


# --------------------------------------------------------------------------------------------
# verilog


@dataclass
class VerilogResult:
    """The files written, the chip summary lines, and the lint outcome (None: not linted)."""

    paths: list[Path]
    summary: list[str]
    lint_ok: bool | None = None
    lint_log: str = ""


def chip_options(
    *,
    lanes: int = 16,
    max_neurons: int | None = None,
    core: str | None = None,
    feed: str = "auto",
    adc_bits: int | None = None,
):
    """``ChipOptions`` from plain values (``core`` as ``"AXONSxNEURONS"``), range-checked."""
    from spikeforge.pim.adc import ADC_BITS_RANGE
    from spikeforge.pim.model import PimConfig
    from spikeforge.rtl.chip.mapping import CoreSize
    from spikeforge.rtl.chip.top import ChipOptions

    if max_neurons is not None:
        check_int("max_neurons", max_neurons)
    if adc_bits is not None:
        check_int("adc_bits", adc_bits, *ADC_BITS_RANGE)
    size = CoreSize.parse(core) if core else None
    if size is not None:
        check_int("core axons", size.axons, *INT_RANGES["n_axons"])
        check_int("core neurons", size.neurons, *INT_RANGES["n_neurons"])
    return ChipOptions(
        lanes=lanes,
        max_neurons=max_neurons,
        core=size,
        feed=feed,
        pim=PimConfig(adc_bits=adc_bits),
    )


#: What ``verilog`` writes as the top: the chip behind AXI (default), or the bare chip.
VERILOG_TOPS = ("axi", "chip")


def verilog(
    bundle: BundleLike,
    out_dir: PathLike,
    *,
    name: str = "sf_chip",
    lint: bool = False,
    top: str = "axi",
    **options: Any,
) -> VerilogResult:
    """Write ``bundle``'s whole chip as ``out_dir/NAME.v`` plus its integration note
    ``out_dir/NAME.md``; with ``top="axi"`` (the default) the chip sits behind AXI4-Stream and
    AXI4-Lite and its register map comes too (``NAME_regs.md``, C header ``NAME_regs.h``).
    ``options`` are ``chip_options``'s. Other files in ``out_dir`` stay."""
    from spikeforge.rtl.chip.top import chip_summary, plan_chip

    _check_name(name)
    if top not in VERILOG_TOPS:
        raise OptionError(f"top must be one of {list(VERILOG_TOPS)}, got {top!r}")
    names = [f"{name}.v", f"{name}.md"]
    if top == "axi":
        names += [f"{name}_regs.md", f"{name}_regs.h"]
    out = output_dir(
        out_dir, bundle_files(bundle), allow_nonempty=lambda _p: True, names=tuple(names)
    )
    loaded = as_bundle(bundle)
    plan = plan_chip(loaded, chip_options(**options))
    texts = _axi_texts(plan, loaded, name) if top == "axi" else _chip_texts(plan, name)
    _make_dir(out)
    paths = [out / n for n in names]
    for path, text in zip(paths, texts, strict=True):
        atomic_write_bytes(path, text.encode())
    result = VerilogResult(paths, chip_summary(plan))
    if lint:
        result.lint_ok, result.lint_log = _lint(paths[0], name)
    return result


def _chip_texts(plan, name: str) -> list[str]:
    from spikeforge.rtl.chip.notes import integration_note
    from spikeforge.rtl.chip.top import Chip
    from spikeforge.rtl.gateware.emit import convert

    text = convert(Chip(plan), name, waivers="lines")
    return [text, integration_note(plan, text, name)]


def _axi_texts(plan, bundle: Bundle, name: str) -> list[str]:
    from spikeforge.rtl.axi.notes import axi_integration_note
    from spikeforge.rtl.axi.registers import c_header, markdown, register_map
    from spikeforge.rtl.axi.top import AxiChip
    from spikeforge.rtl.gateware.emit import convert
    from spikeforge.sim.bundle import bundle_digest

    regs = register_map(plan, int(bundle_digest(bundle)[:8], 16), name)
    text = convert(AxiChip(plan, regs), name, waivers="lines")
    return [text, axi_integration_note(plan, regs, text, name), markdown(regs), c_header(regs)]


def verilog_core(out: PathLike, *, name: str = "sf_core", lint: bool = False, **params: Any):
    """Write one core (``CoreParams`` fields as ``params``) as Verilog: ``out`` is a ``.v`` file
    or a directory for ``NAME.v``. Returns ``(VerilogResult, CoreParams)``."""
    from spikeforge.rtl.cores.core import CoreParams, core_verilog

    _check_name(name)
    for key in ("n_axons", "n_neurons"):
        check_int(key, params.get(key))
    if params["n_axons"] * params["n_neurons"] > MAX_CORE_WEIGHTS:
        raise ResourceError(
            f"a core of {params['n_axons']} x {params['n_neurons']} weights exceeds "
            f"{MAX_CORE_WEIGHTS} words; split the layer over several cores"
        )
    try:
        core = CoreParams(**params)
    except ValueError as exc:  # a combination the core cannot build; the message names it
        raise OptionError(str(exc)) from None
    out = Path(out)
    is_file = out.suffix in (".v", ".sv") and not out.is_dir()
    if is_file:
        path = output_file(out)
    else:
        path = output_dir(out, allow_nonempty=lambda _p: True, names=(f"{name}.v",)) / f"{name}.v"
    text = core_verilog(core, name=name, waivers="lines")
    _make_dir(path.parent)
    atomic_write_bytes(path, text.encode())
    result = VerilogResult([path], [f"{core.groups} lane groups, acc_bits {core.acc_bits}"])
    if lint:
        result.lint_ok, result.lint_log = _lint(path, name)
    return result, core


def _check_name(name: str) -> None:
    if not name.isidentifier() or not name.isascii():
        raise OptionError(f"name must be a Verilog identifier (letters, digits, _), got {name!r}")


def _lint(path: Path, name: str) -> tuple[bool, str]:
    from spikeforge.rtl.gateware.emit import lint

    result = lint(path, name)
    return result.returncode == 0, result.stderr


# --------------------------------------------------------------------------------------------
# rtl-sim


@dataclass
class RtlSimResult:
    """The chip's run, the golden run it was compared with, and the first difference if any.

    Sample numbers (``mismatch.sample``, ``waveform.sample``) count in the whole input, also
    for a shard, which ran samples ``shard[0]`` to ``shard[1] - 1`` of ``shard[2]``."""

    run: RtlRun
    golden: GoldenResult
    mismatch: Mismatch | None
    counter_problems: list[str]
    labels: np.ndarray | None = None
    sim: str = "verilator"
    seconds: float = 0.0
    out: Path | None = None
    shard: tuple[int, int, int] | None = None
    #: Where on the chip the first mismatch came from (cores and cycle), if any.
    where: str | None = None
    waveform: Waveform | None = None

    @property
    def equal(self) -> bool:
        """Every spike, output potential and counter of the RTL equals the golden model's."""
        return self.mismatch is None and not self.counter_problems

    def report(self) -> str:
        """Cycles, SOPs, energy and wall time (``spikeforge rtl-sim``'s text report)."""
        return rtl_report(self)


def speed_line(run: RtlRun) -> str:
    """Simulated clock cycles, simulation wall time and cycles/s, apart from generation and
    build. The clock cycles are every cycle the simulators ran (input writes and result reads
    included), per process summed; the chip's own cycles per sample are in the report above."""
    t = {key: run.seconds.get(key, 0.0) for key in ("generate", "build", "simulate", "running")}
    clock = int(run.report.get("clock_cycles", 0)) or int(run.cycles.sum())
    jobs = run.report.get("jobs", 1)
    processes = f"{jobs} simulator processes" if jobs > 1 else "one simulator process"
    return (
        f"simulation: {clock:,} clock cycles in {t['simulate']:.2f} s on {processes}: "
        f"{clock / max(t['simulate'], 1e-9):,.0f} cycles/s "
        f"({clock / max(t['running'], 1e-9):,.0f} cycles/s after the simulators' start-up); "
        f"generate {t['generate']:.1f} s, build {t['build']:.1f} s"
    )


def rtl_report(result: RtlSimResult) -> str:
    """The text report: equality, accuracy, cycles, SOPs, energy, speed and wall time."""
    from spikeforge.pim.energy import E_SOP_ZOU
    from spikeforge.pim.report import bundle_report
    from spikeforge.rtl.chip.top import chip_summary
    from spikeforge.sim import golden

    run, want, labels = result.run, result.golden, result.labels
    plan, bundle = run.plan, run.plan.bundle
    n = run.cycles.shape[0]
    spikes = sum(int(v.sum()) for k, v in run.arrays.items() if k.startswith("spikes."))
    counters = run.layer_counters(want)
    core_sops = int(run.core_counters[:, :, 1].sum())
    all_sops = sum(c.synaptic_ops for c in counters.values())
    cycles = int(run.cycles.sum())
    energy = bundle_report(bundle, counters, n, plan.options.pim)
    e_pim = energy.totals["pim"][0]
    lines = [
        f"rtl-sim: {n} samples x {bundle.timesteps} steps on {result.sim}; chip: "
        + "; ".join(s.strip() for s in chip_summary(plan)),
    ]
    if result.shard is not None:
        lo, hi, total = result.shard
        lines.append(f"shard: samples {lo}..{hi - 1} of {total} (a partial result)")
    lines.append(
        f"compared: {n * bundle.timesteps} steps, every neuron of {len(bundle.layers)} layers "
        f"({spikes} spikes), {run.arrays['v_out'].size} output potentials"
    )
    if labels is not None:
        acc_rtl = float(np.mean(run.arrays["pred"] == labels))
        acc_gold = golden.accuracy(want, labels)
        lines.append(f"accuracy: rtl {acc_rtl:.4f}, golden {acc_gold:.4f}")
    lines += [
        f"cycles per sample: mean {cycles / n:.0f}, min {int(run.cycles.min())}, "
        f"max {int(run.cycles.max())} (total {cycles})",
        f"synaptic operations: {core_sops} in the cores ({core_sops / n:.0f} per sample), "
        f"{all_sops} with layer 1 ({all_sops / n:.0f} per sample)",
        f"SOPs per cycle (cores): {core_sops / max(cycles, 1):.2f}",
        f"energy per sample from RTL counters: ACE-SNN model {e_pim / 1000:.3f} nJ "
        f"(layer 1 in PIM), {energy.totals['digital'][0] / 1000:.3f} nJ all digital; "
        f"Zou et al. {E_SOP_ZOU} pJ/SOP: {all_sops / n * E_SOP_ZOU / 1000:.3f} nJ",
        energy.format(),
        speed_line(run),
        f"wall time: {result.seconds:.1f} s",
    ]
    return "\n".join(lines)


SIMULATORS = ("verilator", "icarus")


def dataset_split(
    bundle: BundleLike,
    split: str = "test",
    data_dir: PathLike | None = None,
    *,
    dataset: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The inputs and labels of ``split`` of ``dataset`` (default: the one ``bundle`` was
    trained on), shaped for the bundle (direct encoding only: spike trains depend on the
    encoder's seed)."""
    from spikeforge.sim.datasets import load_dataset

    check_choice("split", split, ("test", "train"))
    model = as_bundle(bundle)
    if model.input.encoding != "direct":
        raise OptionError("a dataset split needs a direct-encoded bundle; give the inputs instead")
    name = dataset or (model.meta.get("training") or {}).get("dataset")
    if not name:
        raise OptionError("the bundle names no training dataset (meta.training.dataset)")
    data = load_dataset(name, data_dir)
    x = data.x_test if split == "test" else data.x_train
    labels = data.y_test if split == "test" else data.y_train
    if math.prod(x.shape[1:]) != math.prod(model.input.shape):
        raise OptionError(
            f"{name} samples have shape {list(x.shape[1:])}; the bundle expects "
            f"{list(model.input.shape)}"
        )
    return x.reshape(x.shape[0], *model.input.shape), labels


def _inputs(x: np.ndarray | PathLike, labels, limit: int | None):
    from spikeforge.sim.results import load_array

    array = x if isinstance(x, np.ndarray) else load_array(x)
    if labels is not None and not isinstance(labels, np.ndarray):
        labels = load_array(labels, "labels")
    if limit is not None:
        check_int("limit", limit)
        array = array[:limit]
        labels = None if labels is None else labels[:limit]
    if labels is not None and labels.shape != (array.shape[0],):
        raise OptionError(f"labels have shape {list(labels.shape)}; expected [{array.shape[0]}]")
    return array, labels


def rtl_sim(
    bundle: BundleLike,
    x: np.ndarray | PathLike,
    *,
    labels: np.ndarray | PathLike | None = None,
    limit: int | None = None,
    sim: str = "verilator",
    out: PathLike | None = None,
    build_dir: PathLike | None = None,
    jobs: int = 1,
    shard: str | tuple[int, int] | None = None,
    wave: bool = False,
    log: Log = None,
    **options: Any,
) -> RtlSimResult:
    """Run ``bundle`` on its generated chip under cocotb and compare with the golden model.

    ``jobs`` simulator processes share the samples (one build). ``shard`` ("K/N" or ``(K, N)``,
    1-based) runs only the K-th of N contiguous slices of the (limited) inputs and writes a
    partial result that ``merge_results`` joins. ``wave``: on a mismatch, re-run the first
    differing sample alone with waveform tracing and write its FST file next to ``out`` (or
    into ``build_dir``). ``options`` are ``chip_options``'s. Writes RESULT.npz (the RTL's
    arrays) to ``out`` when given. A missing simulator raises ``ToolchainError`` before anything
    is built; a failed build or simulation raises ``SimulationFailed`` naming its log and keeps
    the build directory.
    """
    from spikeforge.rtl_flow import counter_mismatches, first_mismatch, locate, run_chip
    from spikeforge.sim import golden
    from spikeforge.sim.results import parse_shard, shard_range

    start = time.perf_counter()
    check_choice("sim", sim, SIMULATORS)
    jobs = check_int("jobs", jobs)
    if isinstance(shard, str):
        shard = parse_shard(shard)
    target, build = _run_paths(bundle, x, labels, out, build_dir)
    if wave and target is None and build is None:
        raise OptionError("wave needs out or build_dir: the waveform is written next to them")
    model = as_bundle(bundle)
    array, labels = _inputs(x, labels, limit)
    array = golden.check_input(model, array)
    total, lo, hi = array.shape[0], 0, array.shape[0]
    if shard is not None:
        lo, hi = shard_range(total, *shard)
        if hi == lo:
            raise OptionError(f"shard {shard[0]}/{shard[1]} of {total} samples is empty")
    part = array[lo:hi]
    labels = None if labels is None else labels[lo:hi]
    plan, want = _plan_and_golden(model, part, sim, options)
    with _build_folder(build, "spikeforge-rtl-") as build:
        if log:
            log(f"rtl-sim: building and running the chip in {build}")
        chip = run_chip(model, part, sim=sim, build_dir=build, plan=plan, jobs=jobs, log=log)
        mismatch = first_mismatch(model, chip.arrays, want.result_arrays())
        where = locate(chip, mismatch) if mismatch is not None else None
        waveform = None
        if wave and mismatch is not None:
            waveform = _wave(plan, part, mismatch, lo, sim, build, target, log)
    if mismatch is not None:
        mismatch = dataclasses.replace(mismatch, sample=mismatch.sample + lo)
    if target is not None:
        arrays = chip.arrays
        if shard is not None:
            arrays = _shard_arrays(model, array, arrays, lo, hi)
        _write_npz(target, arrays)
    return RtlSimResult(
        chip,
        want,
        mismatch,
        counter_mismatches(chip, want),
        labels,
        sim,
        time.perf_counter() - start,
        target,
        None if shard is None else (lo, hi, total),
        where,
        waveform,
    )


@dataclass
class AxiSimResult:
    """``rtl_sim_axi``'s run through the AXI top, the golden run, and the first difference."""

    run: Any  # spikeforge.axi_sim.AxiRun
    golden: GoldenResult
    mismatch: Mismatch | None
    labels: np.ndarray | None
    sim: str
    seconds: float
    path: Path | None

    def report(self) -> str:
        run, n = self.run, self.run.cycles.shape[0]
        n_out = run.arrays["v_out"].shape[1]
        same = "all equal" if self.mismatch is None else "DIFFERENT"
        lines = [
            f"compared through the AXI top: {n} result records, {n * n_out} output potentials "
            f"and {n} predictions: {same}",
        ]
        if self.labels is not None and n:
            rtl = float(np.mean(run.arrays["pred"] == self.labels))
            gold = float(np.mean(self.golden.pred == self.labels))
            lines.append(f"accuracy: rtl {rtl:.4f}, golden {gold:.4f}")
        if n:
            c = run.cycles
            lines.append(
                f"cycles per sample in the chip: mean {c.mean():.0f}, min {c.min()}, "
                f"max {c.max()} (total {int(c.sum())})"
            )
        lines += [run.speed_line(), f"wall time: {self.seconds:.1f} s"]
        return "\n".join(lines)


def rtl_sim_axi(
    bundle: BundleLike,
    x: np.ndarray | PathLike,
    *,
    labels: np.ndarray | PathLike | None = None,
    limit: int | None = None,
    sim: str = "verilator",
    out: PathLike | None = None,
    build_dir: PathLike | None = None,
    gap_p: float = 0.0,
    backpressure_p: float = 0.0,
    log: Log = None,
    **options: Any,
) -> AxiSimResult:
    """Run ``bundle`` through its AXI-wrapped chip (``spikeforge.axi_sim``) and compare the
    output potentials and predictions with the golden model; writes ``pred`` and ``v_out`` to
    ``out``. ``gap_p`` / ``backpressure_p``: random pauses on the input / output stream.
    ``options`` are ``chip_options``'s."""
    from spikeforge.axi_sim import run_axi
    from spikeforge.rtl_flow import first_mismatch
    from spikeforge.sim import golden

    start = time.perf_counter()
    check_choice("sim", sim, SIMULATORS)
    for name, p in (("gap_p", gap_p), ("backpressure_p", backpressure_p)):
        if not 0.0 <= p < 1.0:
            raise OptionError(f"{name} must be in [0, 1), got {p}")
    target, build = _run_paths(bundle, x, labels, out, build_dir)
    model = as_bundle(bundle)
    array, labels = _inputs(x, labels, limit)
    array = golden.check_input(model, array)
    plan, want = _plan_and_golden(model, array, sim, options)
    with _build_folder(build, "spikeforge-axi-") as build:
        if log:
            log(f"rtl-sim --top axi: building and running the AXI top in {build}")
        run = run_axi(
            plan, array, sim=sim, build_dir=build, gap_p=gap_p, backpressure_p=backpressure_p
        )
    mismatch = first_mismatch(model, run.arrays, want.result_arrays())
    if target is not None:
        _write_npz(target, run.arrays)
    seconds = time.perf_counter() - start
    return AxiSimResult(run, want, mismatch, labels, sim, seconds, target)


def _run_paths(bundle, x, labels, out, build_dir) -> tuple[Path | None, Path | None]:
    """The result file and the build folder of a run, checked before any work: neither may
    be one of the run's inputs, and a build folder must be new, empty or an earlier build."""
    inputs = bundle_files(bundle)
    inputs += [Path(p) for p in (x, labels) if p is not None and not isinstance(p, np.ndarray)]
    target = output_file(out, inputs) if out is not None else None
    build = None
    if build_dir is not None:
        build = output_dir(build_dir, inputs, allow_nonempty=lambda p: (p / "sf_chip.v").is_file())
    return target, build


def _plan_and_golden(model: Bundle, x: np.ndarray, sim: str, options: dict) -> tuple[Any, Any]:
    """The chip's plan and the golden run of ``x`` (memory and simulator checked first)."""
    from spikeforge.rtl.chip.top import plan_chip
    from spikeforge.sim import golden
    from spikeforge.sim.flow import check_simulator

    check_memory(
        2 * golden_bytes(model, x.shape[0]),
        f"the run of {x.shape[0]} samples x {model.timesteps} steps",
    )
    plan = plan_chip(model, chip_options(**options))
    check_simulator(sim)
    return plan, golden.run(model, x, first_layer_sums=plan.first_layer_sums(x))


@contextlib.contextmanager
def _build_folder(build: Path | None, prefix: str):
    """``build``, or a temporary folder that is removed afterwards unless a simulation
    failed (its logs say why, so it stays)."""
    from spikeforge.sim.flow import SimulationFailed

    if build is not None:
        yield build
        return
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    except SimulationFailed:
        raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    shutil.rmtree(folder, ignore_errors=True)


def _wave(plan, part, mismatch, lo: int, sim: str, build: Path, target, log) -> Waveform:
    """The waveform of the first differing sample, next to the result (or in the build)."""
    from spikeforge.rtl_flow import wave_format, wave_sample

    sample = lo + mismatch.sample
    name = f"sample{sample}.{wave_format(sim)}"
    if target is not None:
        path = output_file(target.with_name(f"{target.stem}.{name}"))
    else:
        path = build / name
    if log:
        log(f"rtl-sim: re-running sample {sample} with waveform tracing")
    waveform = wave_sample(
        plan, part, mismatch.sample, mismatch, sim=sim, build_dir=build, target=path
    )
    return dataclasses.replace(waveform, sample=sample)


def _shard_arrays(model: Bundle, array: np.ndarray, arrays: dict, lo: int, hi: int) -> dict:
    """A partial result: the arrays with their sample range and the bundle's and inputs'
    digests, which ``merge_results`` checks."""
    from spikeforge.sim.bundle import bundle_digest
    from spikeforge.sim.results import array_digest, with_shard

    return with_shard(
        arrays,
        lo=lo,
        hi=hi,
        total=array.shape[0],
        bundle_digest=bundle_digest(model),
        inputs_digest=array_digest(array),
    )


def merge_results(parts: Sequence[PathLike], out: PathLike | None = None) -> dict[str, np.ndarray]:
    """Join the partial results of ``rtl_sim(..., shard=...)`` into one result in sample order
    (refusing overlaps, gaps and parts of other bundles or inputs); write it to ``out``."""
    from spikeforge.sim.results import merge_results as merge
    from spikeforge.sim.results import write_npz_atomic

    paths = [Path(p) for p in parts]
    if out is not None:
        check_output_file(out, inside_forbidden=paths, parents=True)
    arrays, _info = merge(paths)
    if out is not None:
        write_npz_atomic(out, arrays, inside_forbidden=paths)
    return arrays


# --------------------------------------------------------------------------------------------
# pim-sweep


@dataclass
class PimSweepResult:
    """The sweep (points, markdown, csv), the energy/delay report, and the files written."""

    sweep: Sweep
    report: Any
    paths: list[Path] = field(default_factory=list)


PIM_FILES = ("pim_sweep.csv", "pim_sweep.md", "pim_sweep.png")
COMBINE_CHOICES = ("digital", "analog", "both")


def pim_sweep(
    bundle: BundleLike,
    x: np.ndarray | PathLike,
    labels: np.ndarray | PathLike,
    out: PathLike | None = None,
    *,
    adc_bits: Sequence[int] = tuple(range(4, 15)),
    combine: str = "both",
    knobs: Sequence[str] | None = None,
    knob_adc_bits: int | None = None,
    seeds: int = 3,
    rows_active: int = 64,
    limit: int | None = None,
    title: str | None = None,
    log: Log = None,
) -> PimSweepResult:
    """Test accuracy with the first layer on the SRAM-PIM model vs ADC bits and each analog
    non-ideality (``knobs``: names of ``spikeforge.pim.sweep.KNOB_VALUES``, None: all).

    With ``out`` (a directory) writes ``pim_sweep.png``, ``.csv`` and ``.md`` there; other
    files in it stay. Everything is checked before the sweep starts.
    """
    from spikeforge.pim.adc import ADC_BITS_RANGE
    from spikeforge.pim.array import N_ROWS, ArrayGeometry
    from spikeforge.pim.model import PimConfig, PimLayer
    from spikeforge.pim.report import bundle_report
    from spikeforge.pim.sweep import KNOB_VALUES, plot, run_sweep
    from spikeforge.sim import golden

    bits = [check_int("adc_bits", b, *ADC_BITS_RANGE) for b in adc_bits]
    if not bits:
        raise OptionError("adc_bits must name at least one ADC resolution")
    knobs = list(KNOB_VALUES) if knobs is None else list(knobs)
    for knob in knobs:
        check_choice("knobs", knob, KNOB_VALUES)
    if knob_adc_bits is not None:
        check_int("knob_adc_bits", knob_adc_bits, *ADC_BITS_RANGE)
    check_int("seeds", seeds)
    check_int("rows_active", rows_active, 1, N_ROWS)
    check_choice("combine", combine, COMBINE_CHOICES)
    inputs = bundle_files(bundle)
    inputs += [Path(p) for p in (x, labels) if not isinstance(p, np.ndarray)]
    target = None
    if out is not None:
        target = output_dir(out, inputs, allow_nonempty=lambda _p: True, names=PIM_FILES)
    combines = ("digital", "analog") if combine == "both" else (combine,)
    base = PimConfig(geometry=ArrayGeometry(rows_active=rows_active))
    model = as_bundle(bundle)
    for mode in combines:
        PimLayer(model.layers[0], model.input, dataclasses.replace(base, combine=mode))
    array, labels = _inputs(x, labels, limit)
    if labels is None or labels.ndim != 1:
        raise OptionError("labels must be a vector [N]")
    array = golden.check_input(model, array)
    check_memory(
        3 * golden_bytes(model, array.shape[0]),
        f"the sweep over {array.shape[0]} samples x {model.timesteps} steps",
    )
    if log:
        log(f"{model.layers[0].name}: {array.shape[0]} samples, ADC bits {bits[0]}..{bits[-1]}")
    sweep = run_sweep(
        model,
        array,
        labels.astype(np.int64),
        adc_bits=bits,
        combines=combines,
        knobs=knobs,
        knob_adc_bits=knob_adc_bits,
        seeds=seeds,
        base=base,
        progress=log,
    )
    exact = golden.run(model, array)
    report = bundle_report(model, exact.counters, array.shape[0], base)
    result = PimSweepResult(sweep, report)
    if target is not None:
        name = title or (Path(bundle).resolve().name if not isinstance(bundle, Bundle) else "")
        text = f"# PIM sweep: {name}\n\n{sweep.markdown()}\n## Energy and delay per sample\n\n"
        text += "```\n" + report.format() + "\n```\n"
        _make_dir(target)
        atomic_write_bytes(target / "pim_sweep.csv", sweep.csv().encode())
        atomic_write_bytes(target / "pim_sweep.md", text.encode())
        fd, tmp = tempfile.mkstemp(prefix=".pim_sweep.", suffix=".png", dir=target)
        os.close(fd)
        try:
            plot(sweep, tmp, name)
            atomic_write_bytes(target / "pim_sweep.png", Path(tmp).read_bytes())
        finally:
            Path(tmp).unlink(missing_ok=True)
        result.paths = [target / n for n in PIM_FILES]
    return result
