"""Checks shared by the Python API and the command line, all made before any expensive work:
argument ranges (docs/cli.md lists them), memory estimates against the free memory, and output
paths (through ``spikeforge.sim.files``)."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from spikeforge.sim.bundle import MANIFEST, WEIGHTS, Bundle
from spikeforge.sim.files import check_output_dir, check_output_file

if TYPE_CHECKING:
    from spikeforge.algo.training.pipeline import TrainConfig

PathLike = str | os.PathLike[str]


class OptionError(ValueError):
    """An argument is outside its documented range or choices; the message names it."""


class ResourceError(ValueError):
    """The run would need more memory than this machine has free; refused before allocating."""


#: Inclusive ranges of the integer settings.
INT_RANGES: dict[str, tuple[int, int]] = {
    "timesteps": (1, 4096),
    "batch_size": (1, 65_536),
    "ann_epochs": (0, 10_000),
    "snn_epochs": (0, 10_000),
    "bittrue_epochs": (0, 10_000),
    "eval_every": (1, 10_000),
    "seed": (0, 2**32 - 1),
    "threads": (1, 1024),
    "limit_train": (1, 10**9),
    "limit_test": (1, 10**9),
    "limit": (1, 10**9),
    "n_axons": (1, 65_536),
    "n_neurons": (1, 65_536),
    "max_neurons": (1, 65_536),
    "seeds": (1, 100),
    "jobs": (1, 256),
}
#: Ranges of the real-valued settings: (low, high, low inclusive, high inclusive).
FLOAT_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "dropout": (0.0, 1.0, True, False),
    "ann_lr": (0.0, 10.0, False, True),
    "snn_lr": (0.0, 10.0, False, True),
    "bittrue_lr": (0.0, 10.0, False, True),
}
#: A single core's weight memory (axons x neurons words): beyond it elaboration takes hours.
MAX_CORE_WEIGHTS = 1 << 22
#: Fraction of the free memory a run may plan to use.
MEMORY_SHARE = 0.8


def check_int(name: str, value: Any, lo: int | None = None, hi: int | None = None) -> int:
    """``value`` as an int within ``INT_RANGES[name]`` (or ``lo..hi``); else ``OptionError``."""
    if lo is None or hi is None:
        lo, hi = INT_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise OptionError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        need = f">= {lo}" if value < lo else f"<= {hi}"
        raise OptionError(f"{name} must be in {lo}..{hi}: got {value}, need {need}")
    return value


def check_float(name: str, value: Any) -> float:
    """``value`` as a finite float within ``FLOAT_RANGES[name]``; else ``OptionError``."""
    lo, hi, lo_in, hi_in = FLOAT_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer):
        raise OptionError(f"{name} must be a number, got {value!r}")
    value = float(value)
    ok = math.isfinite(value) and (lo <= value if lo_in else lo < value)
    ok = ok and (value <= hi if hi_in else value < hi)
    if not ok:
        raise OptionError(f"{name} must be in {float_range_text(name)}, got {value}")
    return value


def float_range_text(name: str) -> str:
    lo, hi, lo_in, hi_in = FLOAT_RANGES[name]
    return f"{'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise OptionError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


@cache
def core_range(field_name: str) -> tuple[int, int]:
    """The values a hardware core accepts for ``field_name`` (``w_bits``, ``v_bits`` ...).

    Found by asking ``spikeforge.rtl.cores.core.CoreParams`` itself, so the command line and
    ``train`` refuse exactly what the hardware refuses.
    """
    from spikeforge.rtl.cores.core import CoreParams

    def accepts(value: int) -> bool:
        try:
            CoreParams(n_axons=1, n_neurons=1, **{field_name: value})
        except ValueError:
            return False
        return True

    ok = [v for v in range(0, 65) if accepts(v)]
    if not ok or ok != list(range(ok[0], ok[-1] + 1)):
        raise RuntimeError(f"CoreParams.{field_name} accepts no contiguous range: {ok}")
    return ok[0], ok[-1]


def available_memory() -> int | None:
    """Bytes of memory free for a new allocation (``MemAvailable``), or None when unknown."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"


def check_memory(need: float, what: str) -> None:
    """Refuse (``ResourceError``) a run whose estimate ``need`` exceeds the free memory."""
    free = available_memory()
    if free is not None and need > MEMORY_SHARE * free:
        raise ResourceError(
            f"{what} needs about {_size(need)} of memory; {_size(free)} is free "
            "(use fewer samples, time steps or neurons)"
        )


def golden_bytes(bundle: Bundle, n: int, *, record_potentials: bool = False) -> int:
    """Memory a golden run of ``n`` samples needs: its results plus one chunk's working set."""
    from spikeforge.sim.golden import DEFAULT_CHUNK

    t = bundle.timesteps
    neurons = sum(layer.n_out for layer in bundle.layers)
    results = n * t * neurons + n * bundle.layers[-1].n_out * 8
    if record_potentials:
        results += n * t * neurons * 8
    working = min(n, DEFAULT_CHUNK) * t * (neurons + bundle.layers[0].n_in) * 8 * 3
    return results + working


def training_bytes(config: TrainConfig, image_shape: Sequence[int], samples: int) -> int:
    """A generous estimate of a training run's peak memory (float32 activations, weights with
    optimiser state, and the golden check of ``samples`` test samples)."""
    from spikeforge.algo.snn.models import parse_arch

    shape = list(image_shape)
    flat = math.prod(shape)
    neurons, weights = flat, 0
    for spec in parse_arch(config.arch):
        if spec.kind == "conv2d":
            if len(shape) != 3:
                raise OptionError(f"arch {config.arch!r}: a convolution needs image inputs")
            c, h, w = shape
            h = (h + 2 * spec.padding - spec.kernel) // spec.stride + 1
            w = (w + 2 * spec.padding - spec.kernel) // spec.stride + 1
            if h < 1 or w < 1:
                raise OptionError(f"arch {config.arch!r}: the feature map shrinks to nothing")
            weights += spec.out * c * spec.kernel**2
            shape = [spec.out, h, w]
        else:
            weights += math.prod(shape) * spec.out
            shape = [spec.out]
        neurons += math.prod(shape)
    weights += math.prod(shape) * 10
    neurons += 10
    t = config.timesteps
    batch = max(config.batch_size, 500)  # evaluation runs in batches of 500
    activations = batch * t * neurons * 4 * 12
    golden = samples * t * neurons + min(samples, 512) * t * neurons * 8 * 3
    return activations + weights * 4 * 4 + golden


# --------------------------------------------------------------------------------------------
# output paths


def bundle_files(bundle: Bundle | PathLike) -> list[Path]:
    """The files an output must never replace: a bundle directory's own two files."""
    if isinstance(bundle, Bundle):
        return []
    return [Path(bundle) / MANIFEST, Path(bundle) / WEIGHTS]


def output_file(path: PathLike, inputs: Iterable[PathLike] = ()) -> Path:
    """Check an output file before any work: a writable directory, not a device, link, directory,
    and none of ``inputs`` (e.g. a bundle's weights or the input array)."""
    return check_output_file(path, inside_forbidden=list(inputs))


def output_dir(
    path: PathLike,
    inputs: Iterable[PathLike] = (),
    *,
    allow_nonempty: Callable[[Path], bool] | None = None,
    force: bool = False,
    names: Iterable[str] = (),
) -> Path:
    """Check an output directory (and the ``names`` that will be written in it) before work."""
    inputs = list(inputs)
    path = check_output_dir(
        path, inside_forbidden=inputs, allow_nonempty=allow_nonempty, force=force
    )
    for name in names:
        if (path / name).exists() or (path / name).is_symlink():
            check_output_file(path / name, inside_forbidden=inputs)
    return path
