"""The output-path check shared by every writer: nothing is written inside an input bundle."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from spikeforge.sim.files import OutputPathError

WEIGHTS = b"weights"


def refuses_paths_inside_a_bundle(tmp_path: Path, write: Callable[[Path, Path], object]) -> Path:
    """Make ``tmp_path/bundle`` (``weights.npz`` holding ``WEIGHTS``) and assert ``write(path,
    bundle)`` refuses an existing file, a new file and a file in a new folder inside it."""
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "weights.npz").write_bytes(WEIGHTS)
    for path in (bundle / "weights.npz", bundle / "result.npz", bundle / "new" / "r.npz"):
        with pytest.raises(OutputPathError, match="inside the input"):
            write(path, bundle)
    return bundle
