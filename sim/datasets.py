"""Datasets as integer input codes: ``digits`` (embedded), ``fashion-mnist`` and ``mnist`` (IDX).

Images are ``uint8``/``int64`` codes ``[N, 1, H, W]`` plus the code range (``bits``, ``signed``)
and ``scale`` (float value of one code). ``digits`` is scikit-learn's 8x8 set (codes 0..16, five
bits) with a fixed 1437/360 split; the IDX sets are read from a directory holding the four
standard files (``.gz`` or plain). Without a directory, Fashion-MNIST is looked up where the
Debian package ``dataset-fashion-mnist`` installs it.
"""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

DATASETS: tuple[str, ...] = ("digits", "fashion-mnist", "mnist")
IDX_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
DEBIAN_PACKAGES: dict[str, str] = {"fashion-mnist": "dataset-fashion-mnist"}
DEBIAN_DIRS: dict[str, str] = {"fashion-mnist": "/usr/share/datasets/fashion-mnist"}
DIGITS_TEST = 360
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A dataset cannot be found or read; the message names what was expected."""


@dataclass(frozen=True)
class Dataset:
    """Integer codes ``[N, 1, H, W]`` and labels, with the code range and scale."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    bits: int
    signed: bool
    scale: float
    classes: int = 10

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    def limited(self, train: int | None = None, test: int | None = None) -> Dataset:
        """The first ``train`` / ``test`` samples (for quick runs and tests)."""
        return replace(
            self,
            x_train=self.x_train[:train],
            y_train=self.y_train[:train],
            x_test=self.x_test[:test],
            y_test=self.y_test[:test],
        )


def load_digits() -> Dataset:
    """scikit-learn's 8x8 digits (codes 0..16), fixed split: 1437 train / 360 test."""
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    x = digits.images.astype(np.int64)[:, None]  # [1797, 1, 8, 8]
    y = digits.target.astype(np.int64)
    order = np.random.RandomState(0).permutation(len(y))  # legacy RNG: a frozen stream
    test, train = order[:DIGITS_TEST], order[DIGITS_TEST:]
    return Dataset(
        "digits", x[train], y[train], x[test], y[test], bits=5, signed=False, scale=1 / 16
    )


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (gzip-compressed or plain) into a numpy array."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    dims = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 1
    if len(raw) - header < count * dtype.itemsize:
        raise DataError(f"{path}: holds fewer values than its header's shape {list(dims)}")
    return np.frombuffer(raw, dtype, count=count, offset=header).reshape(dims).copy()


def _find(directory: Path, stem: str) -> Path | None:
    for candidate in (
        stem,
        stem + ".gz",
        stem.replace("-idx", ".idx"),
        stem.replace("-idx", ".idx") + ".gz",
    ):
        if (directory / candidate).is_file():
            return directory / candidate
    return None


def _expected(directory: Path | None) -> str:
    files = ", ".join(f"{stem}[.gz]" for stem in IDX_FILES.values())
    return f"{files}" + (f" in {directory}" if directory else "")


def debian_dir(name: str) -> Path | None:
    """The directory where the Debian package for ``name`` installed its IDX files, if any."""
    package = DEBIAN_PACKAGES.get(name)
    if package is None:
        return None
    candidates = []
    if shutil.which("dpkg"):
        try:
            listing = subprocess.run(
                ["dpkg", "-L", package], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            listing = ""
        candidates += [
            Path(line).parent for line in listing.splitlines() if IDX_FILES["train_images"] in line
        ]
    candidates.append(Path(DEBIAN_DIRS[name]))
    for candidate in candidates:
        if _find(candidate, IDX_FILES["train_images"]):
            return candidate
    return None


def load_idx_dataset(name: str, directory: str | os.PathLike[str] | None = None) -> Dataset:
    """MNIST-format data from ``directory`` (or the Debian install for Fashion-MNIST)."""
    if directory is None:
        found = debian_dir(name)
        if found is None:
            hint = (
                f" (the Debian package {DEBIAN_PACKAGES[name]} installs it in {DEBIAN_DIRS[name]})"
                if name in DEBIAN_PACKAGES
                else ""
            )
            raise DataError(
                f"{name}: no data directory given and none found{hint}; pass --data DIR holding "
                f"{_expected(None)}"
            )
        directory = found
    root = Path(directory)
    if not root.is_dir():
        raise DataError(f"{name}: {root} is not a directory; expected {_expected(root)}")
    paths = {key: _find(root, stem) for key, stem in IDX_FILES.items()}
    missing = [IDX_FILES[key] + "[.gz]" for key, path in paths.items() if path is None]
    if missing:
        raise DataError(
            f"{name}: missing {', '.join(missing)} in {root} (expected {_expected(None)})"
        )
    arrays = {key: read_idx(path) for key, path in paths.items() if path is not None}
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{name}: {split} images {list(images.shape)} and labels {list(labels.shape)} "
                "do not match (expected [N, H, W] and [N])"
            )
    classes = int(max(arrays["train_labels"].max(), arrays["test_labels"].max())) + 1
    return Dataset(
        name,
        arrays["train_images"].astype(np.int64)[:, None],
        arrays["train_labels"].astype(np.int64),
        arrays["test_images"].astype(np.int64)[:, None],
        arrays["test_labels"].astype(np.int64),
        bits=8,
        signed=False,
        scale=1 / 255,
        classes=max(classes, 10),
    )


def load_dataset(name: str, directory: str | os.PathLike[str] | None = None) -> Dataset:
    """Load ``digits``, ``fashion-mnist`` or ``mnist`` (see the module docstring)."""
    if name == "digits":
        return load_digits()
    if name in ("fashion-mnist", "mnist"):
        return load_idx_dataset(name, directory)
    raise DataError(f"unknown dataset {name!r}; expected one of {list(DATASETS)}")


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a ``uint8`` array as an IDX file (gzip-compressed when the name ends in ``.gz``)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, ">u4").tobytes()
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path
