"""Reading inputs and writing RESULT.npz files for the command line (docs/bundle.md, RESULT.npz)."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from spikeforge.sim.files import atomic_writer, check_output_file, make_dir


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
