"""Reading inputs and writing RESULT.npz files for the command line (docs/bundle.md, RESULT.npz),
and the partial results of ``rtl-sim --shard`` with their merge (docs/cli.md, merge-results).

A partial result is a RESULT.npz of the samples ``lo`` to ``hi - 1`` of ``total`` plus the
``shard.*`` metadata keys: the range, and the digests of the bundle and of the whole input, so
that ``merge_results`` joins only parts of one run and refuses overlaps and gaps.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spikeforge.sim.files import ARCHIVE_ERRORS, atomic_writer, check_output_file, make_dir


class ArrayFileError(ValueError):
    """An input array file cannot be read."""


def load_array(path: str | os.PathLike[str], what: str = "input") -> np.ndarray:
    """Load a ``.npy`` array without pickles, with a one-line error when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ArrayFileError(f"{what} file {path} does not exist")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ArrayFileError(f"{what} file {path} is not a readable .npy array ({exc})") from None
    if isinstance(array, np.lib.npyio.NpzFile):
        array.close()
        raise ArrayFileError(f"{what} file {path} is an .npz archive; expected one .npy array")
    return array


def write_npz_atomic(
    path: str | os.PathLike[str],
    arrays: dict[str, np.ndarray],
    *,
    inside_forbidden: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write ``arrays`` to ``path`` atomically (temporary sibling, fsync, rename), creating
    missing parent directories.

    Refuses (``OutputPathError``) a device, FIFO, socket, symbolic link or directory at ``path``
    and a path inside any of ``inside_forbidden`` (pass the input bundle), before writing.
    """
    path = check_output_file(path, inside_forbidden=inside_forbidden, parents=True)
    make_dir(path.parent)
    with atomic_writer(path) as handle:
        np.savez_compressed(handle, **arrays)
    return path


# --------------------------------------------------------------------------------------------
# shards: partial results and their merge


class ShardError(ValueError):
    """A shard option or a set of partial results that cannot be used; the message names the
    file(s)."""


#: Metadata keys of a partial result start with this: ``shard.lo``, ``shard.hi``,
#: ``shard.total`` (int64, 0-d) and ``shard.bundle``, ``shard.inputs`` (hex digests, 0-d str).
SHARD_PREFIX = "shard."
_INT_KEYS = ("lo", "hi", "total")
_DIGEST_KEYS = ("bundle", "inputs")
SHARD_KEYS = tuple(SHARD_PREFIX + key for key in _INT_KEYS + _DIGEST_KEYS)

_SHARD_TEXT = re.compile(r"([0-9]+)/([0-9]+)")


def _bad_shard(text: object) -> ShardError:
    return ShardError(f"--shard takes K/N with 1 <= K <= N, got {str(text)!r}")


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` as ``(K, N)``: the K-th of N slices, 1-based like GNU split's ``-n K/N``."""
    match = _SHARD_TEXT.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise _bad_shard(text)
    k, n = int(match[1]), int(match[2])
    if not 1 <= k <= n:
        raise _bad_shard(text)
    return k, n


def shard_range(total: int, k: int, n: int) -> tuple[int, int]:
    """The samples ``lo`` to ``hi - 1`` of the K-th (1-based) of N contiguous slices of
    ``range(total)``; slice sizes differ by at most one and together cover every sample once.

    A slice is empty (``lo == hi``) when ``total < n`` and the slice gets no sample.
    """
    if not 1 <= k <= n:
        raise _bad_shard(f"{k}/{n}")
    if total < 0:
        raise ValueError(f"a negative number of samples: {total}")
    return total * (k - 1) // n, total * k // n


def array_digest(a: np.ndarray) -> str:
    """sha256 (hex) of an array's dtype, shape and C-order bytes: the identity of an input."""
    a = np.asarray(a)
    if a.dtype.hasobject:
        raise TypeError("an object array has no stable digest")
    digest = hashlib.sha256(json.dumps([a.dtype.str, list(a.shape)]).encode("ascii") + b"\n")
    digest.update(np.ascontiguousarray(a).data)
    return digest.hexdigest()


def with_shard(
    arrays: Mapping[str, np.ndarray],
    *,
    lo: int,
    hi: int,
    total: int,
    bundle_digest: str,
    inputs_digest: str,
) -> dict[str, np.ndarray]:
    """``arrays`` (the samples ``lo`` to ``hi - 1`` of ``total``) plus the ``shard.*`` keys
    that make them a partial result ``merge_results`` can join."""
    if not 0 <= lo <= hi <= total:
        raise ValueError(f"shard range {lo}..{hi} is not within 0..{total}")
    for key, value in arrays.items():
        if key.startswith(SHARD_PREFIX):
            raise ValueError(f"array {key!r} uses the reserved prefix {SHARD_PREFIX!r}")
        if np.ndim(value) == 0 or np.shape(value)[0] != hi - lo:
            raise ValueError(
                f"array {key!r} of shape {list(np.shape(value))} does not hold {hi - lo} samples"
            )
    meta: dict[str, np.ndarray] = {
        f"{SHARD_PREFIX}{name}": np.array(int(value), dtype=np.int64)
        for name, value in zip(_INT_KEYS, (lo, hi, total), strict=True)
    }
    for name, value in zip(_DIGEST_KEYS, (bundle_digest, inputs_digest), strict=True):
        meta[f"{SHARD_PREFIX}{name}"] = np.array(str(value), dtype=np.str_)
    return {**arrays, **meta}


@dataclass
class _Part:
    """One partial result's metadata, its arrays' keys, dtypes and trailing shapes."""

    path: Path
    lo: int
    hi: int
    total: int
    bundle: str
    inputs: str
    layout: dict[str, tuple[np.dtype, tuple[int, ...]]]


def _samples(lo: int, hi: int) -> str:
    if hi - lo == 1:
        return f"sample {lo}"
    return f"samples {lo}..{hi - 1}" if hi > lo else f"no samples (at {lo})"


@contextmanager
def _open_npz(path: Path) -> Iterator[Any]:
    """The open ``NpzFile`` at ``path``, or a one-line ``ShardError`` naming it.

    The file is opened here, not by ``np.load``, which leaks its handle when the archive is
    damaged.
    """
    if not path.is_file():  # never open a FIFO or a device: it could block
        what = "does not exist" if not os.path.lexists(path) else "is not a regular file"
        raise ShardError(f"{path} {what}")
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed by the with below)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    with handle:
        try:
            loaded = np.load(handle, allow_pickle=False)
        except ARCHIVE_ERRORS as exc:
            raise _unreadable(path, exc) from None
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ShardError(f"{path} is a single .npy array, not a RESULT.npz archive")
        with loaded as npz:
            yield npz


def _unreadable(path: Path, exc: BaseException) -> ShardError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ShardError(f"{path} is not a readable RESULT.npz ({reason})")


def _read_member(npz: Any, path: Path, key: str) -> np.ndarray:
    try:
        return npz[key]
    except (*ARCHIVE_ERRORS, KeyError) as exc:
        raise _unreadable(path, exc) from None


def _member_layout(npz: Any, key: str) -> tuple[np.dtype, tuple[int, ...]]:
    """The dtype and shape of the member ``key`` of an open .npz, from its .npy header only."""
    name = f"{key}.npy"
    if name not in npz.zip.namelist():
        raise ValueError(f"member {key!r} is not a .npy array")
    with npz.zip.open(name) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:  # rare (structured dtypes with non-latin-1 names): read the whole member
            array = npz[key]
            shape, dtype = array.shape, array.dtype
    if dtype.hasobject:
        raise ValueError(f"{key} is an object array")
    return dtype, tuple(int(n) for n in shape)


def _shard_meta(path: Path) -> _Part:
    """Read ``path``'s shard metadata and its arrays' layout (the array data stays on disk)."""
    try:
        with _open_npz(path) as npz:
            meta = {key: npz[key] for key in npz.files if key.startswith(SHARD_PREFIX)}
            layout = {
                key: _member_layout(npz, key)
                for key in npz.files
                if not key.startswith(SHARD_PREFIX)
            }
    except ShardError:
        raise
    except ARCHIVE_ERRORS as exc:
        raise _unreadable(path, exc) from None
    if not meta:
        raise ShardError(
            f"{path} is not a partial result (no {SHARD_PREFIX}* keys): "
            "it was not written with --shard"
        )
    missing = [key for key in SHARD_KEYS if key not in meta]
    unknown = sorted(set(meta) - set(SHARD_KEYS))
    if missing or unknown:
        what = f"lacks {', '.join(missing)}" if missing else f"has unknown {', '.join(unknown)}"
        raise ShardError(f"{path} is a damaged partial result: its shard metadata {what}")
    ints, digests = {}, {}
    for name in _INT_KEYS + _DIGEST_KEYS:
        value = meta[SHARD_PREFIX + name]
        kind = "iu" if name in _INT_KEYS else "U"
        if value.ndim != 0 or value.dtype.kind not in kind:
            raise ShardError(
                f"{path} is a damaged partial result: {SHARD_PREFIX}{name} is a "
                f"{value.dtype} array of shape {list(value.shape)}"
            )
        if name in _INT_KEYS:
            ints[name] = int(value)
        else:
            digests[name] = str(value)
    lo, hi, total = ints["lo"], ints["hi"], ints["total"]
    if not 0 <= lo <= hi <= total:
        raise ShardError(f"{path} is a damaged partial result: range {lo}..{hi} of {total}")
    for key, (_, shape) in layout.items():
        if not shape or shape[0] != hi - lo:
            raise ShardError(
                f"{path} is a damaged partial result: {key} of shape {list(shape)} "
                f"does not hold its {hi - lo} samples ({_samples(lo, hi)})"
            )
    trailing = {key: (dtype, shape[1:]) for key, (dtype, shape) in layout.items()}
    return _Part(path, lo, hi, total, digests["bundle"], digests["inputs"], trailing)


def _describe(dtype: np.dtype, trailing: tuple[int, ...]) -> str:
    return f"{dtype} [N{''.join(f', {n}' for n in trailing)}]"


def _check_alike(first: _Part, part: _Part) -> None:
    """``part`` comes from the same run as ``first``: bundle, inputs, arrays."""
    a, b = first.path, part.path
    if part.bundle != first.bundle:
        raise ShardError(
            f"{a} and {b} are from different bundles "
            f"(bundle digests {first.bundle[:12]} and {part.bundle[:12]})"
        )
    if part.total != first.total:
        raise ShardError(
            f"{a} and {b} are of different inputs ({first.total} and {part.total} samples)"
        )
    if part.inputs != first.inputs:
        raise ShardError(
            f"{a} and {b} are of different inputs "
            f"(input digests {first.inputs[:12]} and {part.inputs[:12]})"
        )
    if part.layout.keys() != first.layout.keys():
        only = [
            f"{', '.join(sorted(keys))} only in {path}"
            for keys, path in (
                (first.layout.keys() - part.layout.keys(), a),
                (part.layout.keys() - first.layout.keys(), b),
            )
            if keys
        ]
        raise ShardError(f"{a} and {b} hold different arrays: {'; '.join(only)}")
    for key, layout in first.layout.items():
        if part.layout[key] != layout:
            raise ShardError(
                f"{a} and {b} differ in {key}: "
                f"{_describe(*layout)} and {_describe(*part.layout[key])}"
            )


def _check_cover(parts: list[_Part]) -> None:
    """The parts, sorted by range, hold each of the samples ``0..total - 1`` exactly once."""
    total, end, last = parts[0].total, 0, None
    for part in (part for part in parts if part.hi > part.lo):  # an empty part holds nothing
        if last is not None and part.lo < end:
            raise ShardError(
                f"{last.path} ({_samples(last.lo, last.hi)}) and {part.path} "
                f"({_samples(part.lo, part.hi)}) overlap"
            )
        if part.lo > end:
            where = f"between {last.path} and" if last is not None else "before"
            raise ShardError(
                f"no part holds {_samples(end, part.lo)} of {total} ({where} {part.path})"
            )
        end, last = part.hi, part
    if end < total:
        where = f" (after {last.path})" if last is not None else ""
        raise ShardError(f"no part holds {_samples(end, total)} of {total}{where}")


def _check_distinct(parts: list[_Part]) -> None:
    """No file is given twice (under any name): that would be an overlap."""
    seen: dict[tuple[int, int], Path] = {}
    for part in parts:
        try:
            info = os.stat(part.path)
        except OSError as exc:
            raise ShardError(f"{part.path} cannot be read ({exc.strerror})") from None
        other = seen.setdefault((info.st_dev, info.st_ino), part.path)
        if other is not part.path:
            raise ShardError(
                f"{other} and {part.path} overlap: the same file "
                f"({_samples(part.lo, part.hi)}) is given twice"
            )


def merge_results(
    paths: Sequence[str | os.PathLike[str]],
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Join the partial results at ``paths`` (any order) into the whole result, in sample order
    and without ``shard.*`` keys, equal key for key to an unsharded run.

    Refuses (``ShardError``, naming the files) a file that is unreadable or not a partial result,
    parts of different bundles or inputs, with different arrays, dtypes or trailing shapes, and
    parts that overlap (the same file twice included) or leave samples out. Returns the arrays
    and ``{"total", "parts", "bundle", "inputs"}`` (samples, number of parts, both digests).
    Only metadata and array headers are read until every check has passed; then each part's
    data is copied into the result, so the peak memory is the result plus one part.
    """
    if not paths:
        raise ShardError("no partial results given")
    parts = [_shard_meta(Path(p)) for p in paths]
    for part in parts[1:]:
        _check_alike(parts[0], part)
    _check_distinct(parts)
    parts.sort(key=lambda part: (part.lo, part.hi))
    _check_cover(parts)
    total = parts[0].total
    merged = {
        key: np.empty((total, *trailing), dtype=dtype)
        for key, (dtype, trailing) in parts[0].layout.items()
    }
    for part in parts:
        with _open_npz(part.path) as npz:
            for key, out in merged.items():
                array = _read_member(npz, part.path, key)
                if array.dtype != out.dtype or array.shape != (part.hi - part.lo, *out.shape[1:]):
                    raise ShardError(f"{part.path} changed while it was being merged ({key})")
                out[part.lo : part.hi] = array
    info = {
        "total": total,
        "parts": len(parts),
        "bundle": parts[0].bundle,
        "inputs": parts[0].inputs,
    }
    return merged, info
