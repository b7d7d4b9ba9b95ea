"""RESULT.npz writing: atomic, umask modes, and never onto a device, FIFO, link, directory or
into the input bundle; input arrays read with one-line errors."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
from spikeforge.sim.files import OutputPathError
from spikeforge.sim.results import ArrayFileError, load_array, write_npz_atomic

from tests.sim.inside_input import WEIGHTS, refuses_paths_inside_a_bundle

ARRAYS = {
    "pred": np.array([1, 0, 2]),
    "v_out": np.arange(9, dtype=np.int32).reshape(3, 3),
    "spikes.fc1": np.zeros((3, 2, 4), np.uint8),
}


def read(path):
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def assert_arrays(path):
    got = read(path)
    assert sorted(got) == sorted(ARRAYS)
    for key, value in ARRAYS.items():
        assert got[key].dtype == value.dtype and np.array_equal(got[key], value), key


def test_write_creates_parents_and_replaces_a_regular_file(tmp_path):
    path = write_npz_atomic(tmp_path / "a" / "b" / "r.npz", ARRAYS)
    assert path == tmp_path / "a" / "b" / "r.npz"
    assert_arrays(path)
    path.write_bytes(b"an old result")
    write_npz_atomic(str(path), ARRAYS)
    assert_arrays(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["r.npz"]


def test_result_mode_follows_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        write_npz_atomic(tmp_path / "r.npz", ARRAYS)
        assert stat.S_IMODE(os.stat(tmp_path / "r.npz").st_mode) == 0o644
        os.umask(0o002)
        write_npz_atomic(tmp_path / "s.npz", ARRAYS)
        assert stat.S_IMODE(os.stat(tmp_path / "s.npz").st_mode) == 0o664
    finally:
        os.umask(old)


def test_refuses_devices_fifos_links_and_directories(tmp_path):
    os.mkfifo(tmp_path / "fifo.npz")
    (tmp_path / "real.npz").write_bytes(b"precious")
    (tmp_path / "link.npz").symlink_to(tmp_path / "real.npz")
    (tmp_path / "dir.npz").mkdir()
    cases = {
        "/dev/full": "is a device",
        "/dev/null": "is a device",
        str(tmp_path / "fifo.npz"): "is a FIFO",
        str(tmp_path / "link.npz"): "is a symbolic link",
        str(tmp_path / "dir.npz"): "is a directory",
    }
    for path, words in cases.items():
        kind = stat.S_IFMT(os.lstat(path).st_mode)
        with pytest.raises(OutputPathError, match=words) as info:
            write_npz_atomic(path, ARRAYS)
        assert str(info.value).startswith(path) and "\n" not in str(info.value)
        assert stat.S_IFMT(os.lstat(path).st_mode) == kind, path
    assert stat.S_ISCHR(os.lstat("/dev/full").st_mode)
    assert (tmp_path / "real.npz").read_bytes() == b"precious"
    assert list((tmp_path / "dir.npz").iterdir()) == []
    assert len(cases) == 5


def test_refuses_a_path_inside_the_input_bundle(tmp_path):
    bundle = refuses_paths_inside_a_bundle(
        tmp_path, lambda path, b: write_npz_atomic(path, ARRAYS, inside_forbidden=[b])
    )
    assert (bundle / "weights.npz").read_bytes() == WEIGHTS
    assert sorted(p.name for p in bundle.iterdir()) == ["weights.npz"]
    assert_arrays(write_npz_atomic(tmp_path / "result.npz", ARRAYS, inside_forbidden=[bundle]))


def test_a_failed_write_leaves_the_old_result(tmp_path, monkeypatch):
    path = tmp_path / "r.npz"
    path.write_bytes(b"old")

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="Input/output"):
        write_npz_atomic(path, ARRAYS)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]


def test_load_array_errors_are_one_line(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(4))
    assert load_array(tmp_path / "x.npy").tolist() == [0, 1, 2, 3]
    np.savez(tmp_path / "z.npz", a=np.arange(2))
    (tmp_path / "bad.npy").write_bytes(b"\x93NUMPY garbage")
    cases = {
        tmp_path / "missing.npy": "does not exist",
        tmp_path / "z.npz": "is an .npz archive",
        tmp_path / "bad.npy": "is not a readable .npy array",
    }
    for path, words in cases.items():
        with pytest.raises(ArrayFileError, match=words) as info:
            load_array(path, "labels")
        assert str(info.value).startswith(f"labels file {path}") and "\n" not in str(info.value)
