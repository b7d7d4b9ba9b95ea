"""Reading inputs and writing RESULT.npz files for the command line (SPEC 3.3)."""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np


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


def write_npz_atomic(path: str | os.PathLike[str], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` through a temporary sibling, so no half file ever exists."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez_compressed(handle, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
