"""The deployment bundle (docs/bundle.md): one directory holding ``manifest.json`` and
``weights.npz``.

This module is the only place that reads or writes bundles. ``load_bundle`` validates every
field before anything runs and raises ``BundleError`` naming the offending field (unknown keys
are errors, with a did-you-mean suggestion); ``save_bundle`` validates too, then writes.

How a save replaces a bundle. The directory itself is never renamed or deleted, and nothing in
it but ``manifest.json`` and ``weights.npz`` is touched, so files next to a bundle (results,
Verilog, plots) survive a retrain. A non-empty directory that does not hold a bundle is refused
unless ``force`` is given. The two files are replaced in this order, each step atomic and
durable (temporary file in the directory, fsync, ``os.replace``, fsync of the directory):

1. the new weights are staged as a temporary file;
2. the new manifest is written as ``.spikeforge.manifest.<sha256 of the new weights.npz>.json``
   (the *pending manifest*);
3. the staged weights replace ``weights.npz``;
4. the pending manifest replaces ``manifest.json``.

Only between steps 3 and 4 do the two files disagree, and exactly then a pending manifest whose
name carries the sha256 of the ``weights.npz`` on disk exists. So the loader's rule is: if a
pending manifest matches ``weights.npz`` byte for byte, it is the bundle's manifest (the new
bundle); otherwise ``manifest.json`` is (the old bundle; pending manifests and temporaries left
by a crash before step 3 are ignored). A crash at any point therefore leaves the old or the new
bundle loadable. The next save first finishes an interrupted one (step 4) and removes what an
interrupted save left behind; it never removes anything else.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from spikeforge.sim.files import (
    ARCHIVE_ERRORS,
    atomic_write_bytes,
    check_output_dir,
    check_output_file,
    commit,
    discard,
    is_temporary,
    make_dir,
    stage_bytes,
)
from spikeforge.sim.semantics import (
    FIRE_MODES,
    LEAK_MODES,
    RESET_MODES,
    Leak,
    signed_range,
    unsigned_range,
)

FORMAT = "spikeforge.bundle"
VERSION = 1
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
PENDING_PREFIX = ".spikeforge.manifest."
PENDING_SUFFIX = ".json"

LAYER_KINDS = ("linear", "conv2d")
ENCODINGS = ("direct", "spikes")
W_BITS_RANGE = (2, 16)
V_BITS_RANGE = (2, 32)
MAX_INPUT_BITS = 16


class BundleError(ValueError):
    """A bundle is malformed; the message names the field."""


@dataclass(frozen=True)
class InputSpec:
    """What the first layer receives: its shape, encoding and integer code range."""

    shape: tuple[int, ...]
    encoding: str = "direct"
    bits: int = 8
    signed: bool = False
    scale: float | None = None

    @property
    def code_range(self) -> tuple[int, int]:
        """Inclusive range of one input value (0/1 for spikes)."""
        if self.encoding == "spikes":
            return 0, 1
        return signed_range(self.bits) if self.signed else unsigned_range(self.bits)


@dataclass(eq=False)
class Layer:
    """One layer: integer weights plus the neuron parameters of docs/semantics.md.

    ``threshold`` and ``bias`` keep the form they were given in (an int, ``None``, or one value
    per output neuron in flattened ``[C,H,W]`` order) so a bundle round-trips exactly; use
    ``theta_vector()`` / ``bias_vector()`` for the per-neuron view.
    """

    name: str
    kind: str
    weight: np.ndarray
    in_shape: tuple[int, ...]
    w_bits: int
    v_bits: int
    threshold: int | np.ndarray | None
    leak: Leak = field(default_factory=Leak)
    reset: str = "sub"
    fire: str = "lif"
    input_shift: int = 0
    bias: int | np.ndarray | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    @property
    def out_shape(self) -> tuple[int, ...]:
        if self.kind == "linear":
            return (int(self.weight.shape[0]),)
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        ho = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (int(self.weight.shape[0]), ho, wo)

    @property
    def n_in(self) -> int:
        return math.prod(self.in_shape)

    @property
    def n_out(self) -> int:
        return math.prod(self.out_shape)

    def theta_vector(self) -> np.ndarray:
        """Thresholds as int64, one per output neuron (1 for accum layers, where it is unused)."""
        return _per_neuron(self.threshold, self.n_out, default=1)

    def bias_vector(self) -> np.ndarray:
        return _per_neuron(self.bias, self.n_out, default=0)


@dataclass(eq=False)
class Bundle:
    """A whole network ready for the golden model, the PIM model and the RTL."""

    timesteps: int
    input: InputSpec
    layers: list[Layer]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def output_layer(self) -> Layer:
        return self.layers[-1]

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)


def _per_neuron(value: int | np.ndarray | None, n: int, default: int) -> np.ndarray:
    if value is None:
        return np.full(n, default, dtype=np.int64)
    if isinstance(value, np.ndarray):
        return value.astype(np.int64).reshape(n)
    return np.full(n, int(value), dtype=np.int64)


# --------------------------------------------------------------------------------------------
# validation


def _fail(where: str, message: str) -> BundleError:
    return BundleError(f"{where}: {message}")


TOP_KEYS = ("format", "version", "timesteps", "input", "layers", "meta")
INPUT_KEYS = ("shape", "encoding", "bits", "signed", "scale")
LAYER_KEYS = (
    "name",
    "kind",
    "weight",
    "w_bits",
    "v_bits",
    "threshold",
    "bias",
    "leak",
    "reset",
    "fire",
    "input_shift",
)
KIND_KEYS = {
    "linear": ("in_features", "out_features"),
    "conv2d": ("in_shape", "out_channels", "kernel_size", "stride", "padding"),
}
LEAK_KEYS = {"mult": ("mode", "lam", "frac"), "shift": ("mode", "k"), "none": ("mode",)}


def _check_keys(obj: dict, allowed: Iterable[str], where: str, elsewhere: str = "") -> None:
    """Unknown keys are errors: a misspelt field must not silently mean its default."""
    allowed = tuple(allowed)
    for key in obj:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif elsewhere:
            hint = elsewhere
        else:
            hint = f"expected only {list(allowed)}"
        raise _fail(f"{where}.{key}", f"unknown key; {hint}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_field(
    obj: dict,
    key: str,
    where: str,
    lo: int | None = None,
    hi: int | None = None,
    default: Any = ...,
) -> int:
    if key not in obj:
        if default is ...:
            raise _fail(f"{where}.{key}", "missing")
        return default
    value = obj[key]
    if not _is_int(value):
        raise _fail(f"{where}.{key}", f"must be an integer, got {value!r}")
    if lo is not None and value < lo:
        raise _fail(f"{where}.{key}", f"{value} is below the minimum {lo}")
    if hi is not None and value > hi:
        raise _fail(f"{where}.{key}", f"{value} is above the maximum {hi}")
    return value


def _choice(obj: dict, key: str, where: str, options: tuple[str, ...], default: Any = ...) -> str:
    if key not in obj:
        if default is ...:
            raise _fail(f"{where}.{key}", "missing")
        return default
    value = obj[key]
    if value not in options:
        raise _fail(f"{where}.{key}", f"unknown value {value!r}; expected one of {list(options)}")
    return value


def _int_pair(obj: dict, key: str, where: str, lo: int, default: Any = ...) -> tuple[int, int]:
    if key not in obj:
        if default is ...:
            raise _fail(f"{where}.{key}", "missing")
        return default
    value = obj[key]
    if _is_int(value):
        value = [value, value]
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(_is_int(v) and v >= lo for v in value)
    ):
        raise _fail(f"{where}.{key}", f"must be two integers >= {lo}, got {value!r}")
    return int(value[0]), int(value[1])


def _shape(value: Any, where: str, ndim: int | None = None) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(_is_int(v) and v >= 1 for v in value):
        raise _fail(where, f"must be a non-empty list of positive integers, got {value!r}")
    if ndim is not None and len(value) != ndim:
        raise _fail(where, f"must have {ndim} entries, got {len(value)}")
    return tuple(int(v) for v in value)


def _int_array(arrays: dict[str, np.ndarray], key: Any, where: str) -> np.ndarray:
    if not isinstance(key, str):
        raise _fail(where, f"must name an array in {WEIGHTS}, got {key!r}")
    if key not in arrays:
        raise _fail(where, f"array {key!r} is not in {WEIGHTS}")
    array = arrays[key]
    if array.dtype.kind not in "iu":
        raise _fail(where, f"array {key!r} must have an integer dtype, got {array.dtype}")
    return array


def _check_range(array: np.ndarray, lo: int, hi: int, where: str) -> None:
    if array.size and (int(array.min()) < lo or int(array.max()) > hi):
        raise _fail(
            where,
            f"values span [{int(array.min())}, {int(array.max())}], "
            f"outside the allowed range [{lo}, {hi}]",
        )


def _per_neuron_field(
    obj: dict, key: str, where: str, arrays: dict[str, np.ndarray], n_out: int, lo: int, hi: int
) -> int | np.ndarray | None:
    value = obj.get(key)
    if value is None:
        return None
    if _is_int(value):
        if not lo <= value <= hi:
            raise _fail(f"{where}.{key}", f"{value} is outside the allowed range [{lo}, {hi}]")
        return int(value)
    array = _int_array(arrays, value, f"{where}.{key}")
    if array.size != n_out:
        raise _fail(
            f"{where}.{key}",
            f"array {value!r} holds {array.size} values; the layer has {n_out} output neurons",
        )
    _check_range(array, lo, hi, f"{where}.{key}")
    return array.astype(np.int64).reshape(n_out)


def _parse_leak(obj: Any, where: str, v_bits: int) -> Leak:
    if obj is ...:
        raise _fail(where, 'missing (write {"mode": "none"} for no leak)')
    if not isinstance(obj, dict):
        raise _fail(where, f"must be an object with a 'mode', got {obj!r}")
    mode = _choice(obj, "mode", where, LEAK_MODES)
    _check_keys(obj, LEAK_KEYS[mode], where, f"a {mode!r} leak takes only {list(LEAK_KEYS[mode])}")
    if mode == "mult":
        frac = _int_field(obj, "frac", where, lo=0, hi=16, default=8)
        lam = _int_field(obj, "lam", where, lo=0, hi=1 << frac)
        return Leak("mult", lam=lam, frac=frac)
    if mode == "shift":
        return Leak("shift", k=_int_field(obj, "k", where, lo=1, hi=v_bits - 1))
    return Leak("none")


def _parse_input(obj: Any) -> InputSpec:
    where = "input"
    if not isinstance(obj, dict):
        raise _fail(where, "missing or not an object")
    _check_keys(obj, INPUT_KEYS, where)
    if "shape" not in obj:
        raise _fail(f"{where}.shape", "missing")
    shape = _shape(obj["shape"], f"{where}.shape")
    encoding = _choice(obj, "encoding", where, ENCODINGS)
    if encoding == "spikes":
        bits = _int_field(obj, "bits", where, lo=1, hi=1, default=1)
        if obj.get("signed", False) is not False:
            raise _fail(f"{where}.signed", "must be false for spike inputs")
        signed = False
    else:
        bits = _int_field(obj, "bits", where, lo=1, hi=MAX_INPUT_BITS)
        signed = obj.get("signed", False)
        if not isinstance(signed, bool):
            raise _fail(f"{where}.signed", f"must be true or false, got {signed!r}")
    scale = obj.get("scale")
    if scale is not None and (
        not isinstance(scale, int | float) or isinstance(scale, bool) or not math.isfinite(scale)
    ):
        raise _fail(f"{where}.scale", f"must be a finite number or null, got {scale!r}")
    return InputSpec(shape, encoding, bits, signed, None if scale is None else float(scale))


def _parse_layer(
    obj: Any, index: int, is_last: bool, in_shape: tuple[int, ...], arrays: dict[str, np.ndarray]
) -> Layer:
    where = f"layers[{index}]"
    if not isinstance(obj, dict):
        raise _fail(where, "must be an object")
    name = obj.get("name")
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise _fail(f"{where}.name", f"must be a non-empty identifier, got {name!r}")
    where = f"layers[{index}] ({name})"
    kind = _choice(obj, "kind", where, LAYER_KINDS)
    other = next(k for k in LAYER_KINDS if k != kind)
    for key in obj:
        if key in KIND_KEYS[other] and key not in KIND_KEYS[kind]:
            raise _fail(f"{where}.{key}", f"is a {other} field; a {kind} layer does not take it")
    _check_keys(obj, LAYER_KEYS + KIND_KEYS[kind], where)
    if "weight" not in obj:
        raise _fail(f"{where}.weight", "missing")
    w_bits = _int_field(obj, "w_bits", where, *W_BITS_RANGE)
    v_bits = _int_field(obj, "v_bits", where, *V_BITS_RANGE)
    weight = _int_array(arrays, obj.get("weight"), f"{where}.weight")
    stride, padding = (1, 1), (0, 0)
    if kind == "linear":
        n_in = _int_field(obj, "in_features", where, lo=1)
        n_out = _int_field(obj, "out_features", where, lo=1)
        if (n_in,) != (math.prod(in_shape),):
            raise _fail(
                f"{where}.in_features",
                f"{n_in} does not match the previous output "
                f"of {math.prod(in_shape)} values (shape {list(in_shape)})",
            )
        if weight.shape != (n_out, n_in):
            raise _fail(
                f"{where}.weight",
                f"shape {list(weight.shape)} is not "
                f"[out_features, in_features] = [{n_out}, {n_in}]",
            )
        layer_in = (n_in,)
    else:
        layer_in = _shape(obj.get("in_shape"), f"{where}.in_shape", ndim=3)
        if layer_in != in_shape:
            raise _fail(
                f"{where}.in_shape",
                f"{list(layer_in)} does not match the previous output shape {list(in_shape)}",
            )
        out_c = _int_field(obj, "out_channels", where, lo=1)
        kh, kw = _int_pair(obj, "kernel_size", where, lo=1)
        stride = _int_pair(obj, "stride", where, lo=1, default=(1, 1))
        padding = _int_pair(obj, "padding", where, lo=0, default=(0, 0))
        if weight.shape != (out_c, layer_in[0], kh, kw):
            raise _fail(
                f"{where}.weight",
                f"shape {list(weight.shape)} is not [out_channels, "
                f"in_channels, kh, kw] = [{out_c}, {layer_in[0]}, {kh}, {kw}]",
            )
        if layer_in[1] + 2 * padding[0] < kh or layer_in[2] + 2 * padding[1] < kw:
            raise _fail(
                f"{where}.kernel_size",
                f"[{kh}, {kw}] is larger than the padded input {list(layer_in[1:])}",
            )
    _check_range(weight, *signed_range(w_bits), f"{where}.weight")
    fire = _choice(obj, "fire", where, FIRE_MODES)
    if is_last and fire != "accum":
        raise _fail(
            f"{where}.fire", "the last layer must be 'accum' (its potentials are the output)"
        )
    if not is_last and fire != "lif":
        raise _fail(f"{where}.fire", "only the last layer may be 'accum'")
    layer = Layer(
        name=name,
        kind=kind,
        weight=weight.astype(np.int64),
        in_shape=layer_in,
        w_bits=w_bits,
        v_bits=v_bits,
        threshold=None,
        stride=stride,
        padding=padding,
    )
    n_out = layer.n_out
    if fire == "lif":
        if obj.get("threshold") is None:
            raise _fail(f"{where}.threshold", "missing (required when fire is 'lif')")
        layer.threshold = _per_neuron_field(
            obj, "threshold", where, arrays, n_out, 1, signed_range(v_bits)[1]
        )
    elif obj.get("threshold") is not None:
        # accum layers ignore the threshold, but a present value must still be well formed
        layer.threshold = _per_neuron_field(
            obj, "threshold", where, arrays, n_out, 1, signed_range(v_bits)[1]
        )
    layer.leak = _parse_leak(obj.get("leak", ...), f"{where}.leak", v_bits)
    layer.reset = _choice(obj, "reset", where, RESET_MODES)
    layer.fire = fire
    layer.input_shift = _int_field(obj, "input_shift", where, lo=0, hi=62, default=0)
    layer.bias = _per_neuron_field(obj, "bias", where, arrays, n_out, *signed_range(v_bits))
    return layer


def bundle_from_manifest(manifest: Any, arrays: dict[str, np.ndarray]) -> Bundle:
    """Build and validate a ``Bundle`` from a parsed manifest and its arrays."""
    if not isinstance(manifest, dict):
        raise _fail(MANIFEST, "must hold a JSON object")
    if "format" not in manifest:
        raise _fail("format", f"missing (expected {FORMAT!r})")
    if manifest["format"] != FORMAT:
        raise _fail("format", f"expected {FORMAT!r}, got {manifest['format']!r}")
    if "version" not in manifest:
        raise _fail("version", f"missing (this spikeforge reads version {VERSION})")
    version = manifest["version"]
    if not _is_int(version):
        raise _fail(
            "version", f"must be an integer (this spikeforge reads {VERSION}), got {version!r}"
        )
    if version != VERSION:
        raise _fail("version", f"this spikeforge reads version {VERSION}, got {version!r}")
    _check_keys(manifest, TOP_KEYS, "bundle")
    timesteps = _int_field(manifest, "timesteps", "bundle", lo=1)
    spec = _parse_input(manifest.get("input"))
    if "layers" not in manifest:
        raise _fail("layers", "missing")
    layers_obj = manifest["layers"]
    if not isinstance(layers_obj, list) or not layers_obj:
        raise _fail("layers", "must be a non-empty list")
    layers: list[Layer] = []
    in_shape = spec.shape
    for index, obj in enumerate(layers_obj):
        layer = _parse_layer(obj, index, index == len(layers_obj) - 1, in_shape, arrays)
        if any(existing.name == layer.name for existing in layers):
            raise _fail(f"layers[{index}].name", f"duplicate layer name {layer.name!r}")
        layers.append(layer)
        in_shape = layer.out_shape
    meta = manifest.get("meta", {})
    if not isinstance(meta, dict):
        raise _fail("meta", "must be an object")
    return Bundle(timesteps=timesteps, input=spec, layers=layers, meta=meta)


def validate(bundle: Bundle) -> Bundle:
    """Re-check an in-memory bundle by the same rules as the loader; returns a normalised copy."""
    manifest, arrays = to_manifest(bundle)
    return bundle_from_manifest(json.loads(json.dumps(manifest)), arrays)


# --------------------------------------------------------------------------------------------
# reading and writing


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Read and fully validate the bundle directory at ``path``.

    Where a save was interrupted between replacing the weights and the manifest, the pending
    manifest that matches ``weights.npz`` is used (see the module docstring).
    """
    root = Path(path)
    if not root.is_dir():
        raise BundleError(f"{root}: not a bundle directory (expected {MANIFEST} and {WEIGHTS})")
    manifest_path, weights_path = _pending_manifest(root) or root / MANIFEST, root / WEIGHTS
    if not manifest_path.is_file():
        raise _fail(MANIFEST, f"missing in {root}")
    if not weights_path.is_file():
        raise _fail(WEIGHTS, f"missing in {root}")
    try:
        manifest = json.loads(manifest_path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(MANIFEST, f"not valid JSON ({exc})") from None
    except OSError as exc:
        raise _fail(MANIFEST, f"cannot be read ({exc.strerror})") from None
    arrays = _read_arrays(weights_path)
    return bundle_from_manifest(manifest, arrays)


def _read_arrays(weights_path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(weights_path, allow_pickle=False) as npz:
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("a single .npy array, not an .npz archive")
            return {key: npz[key] for key in npz.files}
    except ARCHIVE_ERRORS as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(WEIGHTS, f"not a readable .npz archive ({reason})") from None


def _pending_names(root: Path) -> list[Path]:
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return []
    return [root / n for n in names if n.startswith(PENDING_PREFIX) and n.endswith(PENDING_SUFFIX)]


def _pending_digest(pending: Path) -> str:
    return pending.name[len(PENDING_PREFIX) : -len(PENDING_SUFFIX)]


def _file_sha256(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _pending_manifest(root: Path) -> Path | None:
    """The pending manifest of an interrupted save whose weights are already in place, if any."""
    pendings = _pending_names(root)
    if not pendings:
        return None
    digest = _file_sha256(root / WEIGHTS)
    for pending in pendings:
        if _pending_digest(pending) == digest:
            return pending
    return None


def holds_bundle(path: str | os.PathLike[str]) -> bool:
    """Whether the directory ``path`` holds a bundle (a manifest of this format, possibly from an
    interrupted save), i.e. whether ``save_bundle`` may replace its two files without ``force``."""
    root = Path(path)
    for candidate in [*_pending_names(root), root / MANIFEST]:
        if not candidate.is_file():
            continue  # never read a FIFO or device (it could block)
        try:
            manifest = json.loads(candidate.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(manifest, dict) and manifest.get("format") == FORMAT:
            return True
    return False


def to_manifest(bundle: Bundle) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The manifest object and the arrays that represent ``bundle`` on disk."""
    arrays: dict[str, np.ndarray] = {}
    layers = []
    for layer in bundle.layers:
        arrays[f"{layer.name}.weight"] = np.asarray(layer.weight)
        entry: dict[str, Any] = {"name": layer.name, "kind": layer.kind}
        if layer.kind == "linear":
            entry |= {"in_features": layer.n_in, "out_features": int(layer.weight.shape[0])}
        else:
            entry |= {
                "in_shape": list(layer.in_shape),
                "out_channels": int(layer.weight.shape[0]),
                "kernel_size": list(layer.weight.shape[2:]),
                "stride": list(layer.stride),
                "padding": list(layer.padding),
            }
        entry |= {"weight": f"{layer.name}.weight", "w_bits": layer.w_bits, "v_bits": layer.v_bits}
        for key in ("threshold", "bias"):
            value = getattr(layer, key)
            if isinstance(value, np.ndarray):
                arrays[f"{layer.name}.{key}"] = value
                entry[key] = f"{layer.name}.{key}"
            else:
                entry[key] = None if value is None else int(value)
        leak: dict[str, Any] = {"mode": layer.leak.mode}
        if layer.leak.mode == "mult":
            leak |= {"lam": layer.leak.lam, "frac": layer.leak.frac}
        elif layer.leak.mode == "shift":
            leak["k"] = layer.leak.k
        entry |= {
            "leak": leak,
            "reset": layer.reset,
            "fire": layer.fire,
            "input_shift": layer.input_shift,
        }
        layers.append(entry)
    spec = bundle.input
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "timesteps": bundle.timesteps,
        "input": {
            "shape": list(spec.shape),
            "encoding": spec.encoding,
            "bits": spec.bits,
            "signed": spec.signed,
            "scale": spec.scale,
        },
        "layers": layers,
        "meta": bundle.meta,
    }
    return manifest, arrays


def bundle_digest(bundle: Bundle) -> str:
    """sha256 (hex) of ``bundle``'s identity: its manifest and every array's name, dtype, shape
    and bytes. Partial results carry it so that only parts of one bundle are merged.

    The bundle is normalised as the loader would (``validate``: int64 arrays, per-neuron vectors
    flat, JSON meta), so a bundle and its save/load round trip have the same digest.
    """
    manifest, arrays = to_manifest(validate(bundle))
    text = json.dumps(manifest, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(text.encode("utf-8") + b"\n")
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        header = json.dumps([name, array.dtype.str, list(array.shape)])
        digest.update(header.encode("utf-8") + b"\n")  # the bytes' length follows from it
        digest.update(array.data)
    return digest.hexdigest()


def _settle(root: Path) -> None:
    """Finish a save that was interrupted after its weights were replaced, and remove what an
    interrupted save left behind (pending manifests of weights that never landed, temporaries)."""
    pending = _pending_manifest(root)
    if pending is not None:
        commit(pending, root / MANIFEST)
    for stale in _pending_names(root):
        discard(stale)
    for name in sorted(os.listdir(root)):
        if is_temporary(name) and (
            name.startswith(f".spikeforge.{WEIGHTS}.")
            or name.startswith(f".spikeforge.{PENDING_PREFIX}")
        ):
            discard(root / name)


def save_bundle(bundle: Bundle, path: str | os.PathLike[str], *, force: bool = False) -> Path:
    """Validate ``bundle`` and write it to the directory ``path`` (created if missing).

    Only ``manifest.json`` and ``weights.npz`` are replaced; a non-empty directory that holds no
    bundle is refused (``OutputPathError``) unless ``force``. A crash at any point leaves the old
    or the new bundle loadable (the scheme is in the module docstring).
    """
    validate(bundle)
    manifest, arrays = to_manifest(bundle)
    manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    weights_bytes = buffer.getvalue()
    root = check_output_dir(path, allow_nonempty=holds_bundle, force=force)
    for name in (MANIFEST, WEIGHTS):
        if os.path.lexists(root / name):
            check_output_file(root / name)  # a link or device in their place is never replaced
    make_dir(root)
    _settle(root)
    pending = root / f"{PENDING_PREFIX}{hashlib.sha256(weights_bytes).hexdigest()}{PENDING_SUFFIX}"
    staged = stage_bytes(root / WEIGHTS, weights_bytes)
    try:
        atomic_write_bytes(pending, manifest_bytes)
        commit(staged, root / WEIGHTS)
        commit(pending, root / MANIFEST)
    except BaseException:
        if os.path.lexists(staged):
            # the weights were not replaced: the old bundle stands, the pending manifest is junk
            discard(staged)
            discard(pending)
        # otherwise the pending manifest is what makes the new weights loadable: keep it
        raise
    return root
