"""Safe file output: path checks before work, atomic writes, the umask, nothing but regular
files ever replaced."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from spikeforge.sim import files
from spikeforge.sim.files import (
    OutputPathError,
    atomic_write_bytes,
    atomic_writer,
    check_output_dir,
    check_output_file,
)

from tests.sim.inside_input import WEIGHTS, refuses_paths_inside_a_bundle
from tests.sim.os_faults import InjectedFailure, fail_os_call


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def special_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """A FIFO, a socket, symbolic links, a directory and a character device: never replaced."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    target = tmp_path / "target.npz"
    target.write_bytes(b"precious")
    link = tmp_path / "link.npz"
    link.symlink_to(target)
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "nowhere.npz")
    directory = tmp_path / "dir.npz"
    directory.mkdir()
    return {
        "fifo": (fifo, "FIFO"),
        "symlink": (link, "symbolic link"),
        "dangling symlink": (dangling, "symbolic link"),
        "directory": (directory, "is a directory"),
        "character device": (Path("/dev/full"), "device"),
        "null device": (Path("/dev/null"), "device"),
    }


def snapshot(path: Path) -> tuple:
    info = os.lstat(path)
    return stat.S_IFMT(info.st_mode), info.st_ino, info.st_size


# --- check_output_file ------------------------------------------------------------------------


def test_check_output_file_refuses_everything_but_a_regular_file(tmp_path):
    cases = special_paths(tmp_path)
    for name, (path, words) in cases.items():
        before = snapshot(path)
        with pytest.raises(OutputPathError, match=words) as info:
            check_output_file(path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(str(path)), name
        assert snapshot(path) == before, name
    assert (tmp_path / "target.npz").read_bytes() == b"precious"
    assert len(cases) == 6


def test_check_output_file_accepts_new_and_existing_regular_files(tmp_path):
    assert check_output_file(tmp_path / "new.npz") == tmp_path / "new.npz"
    (tmp_path / "old.npz").write_bytes(b"x")
    assert check_output_file(str(tmp_path / "old.npz")) == tmp_path / "old.npz"
    assert not (tmp_path / "new.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.npz"]  # the probe left nothing


def test_check_output_file_parent(tmp_path):
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_file(tmp_path / "a" / "b" / "r.npz")
    assert check_output_file(tmp_path / "a" / "b" / "r.npz", parents=True)
    assert not (tmp_path / "a").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is not a directory"):
        check_output_file(tmp_path / "file" / "r.npz", parents=True)
    with pytest.raises(OutputPathError, match="cannot write in /proc"):
        check_output_file("/proc/result.npz")  # not writable, even for root
    for name in ("", ".", ".."):
        with pytest.raises(OutputPathError, match="give a file name"):
            check_output_file(name)


def test_check_output_file_refuses_a_path_inside_an_input(tmp_path):
    bundle = refuses_paths_inside_a_bundle(
        tmp_path, lambda path, b: check_output_file(path, inside_forbidden=[b], parents=True)
    )
    x = tmp_path / "x.npy"
    x.write_bytes(b"x")
    with pytest.raises(OutputPathError, match="is an input"):
        check_output_file(tmp_path / "." / "x.npy", inside_forbidden=[bundle, x])
    alias = tmp_path / "alias"
    alias.symlink_to(bundle)
    with pytest.raises(OutputPathError, match="inside the input"):
        check_output_file(alias / "r.npz", inside_forbidden=[bundle])
    assert check_output_file(tmp_path / "bundle.npz", inside_forbidden=[bundle, x])
    assert (bundle / "weights.npz").read_bytes() == WEIGHTS


# --- check_output_dir -------------------------------------------------------------------------


def test_check_output_dir(tmp_path):
    assert check_output_dir(tmp_path / "new") == tmp_path / "new"
    assert check_output_dir(tmp_path / "a" / "b")
    with pytest.raises(OutputPathError, match="does not exist"):
        check_output_dir(tmp_path / "a" / "b", parents=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert check_output_dir(empty) == empty
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="non-empty directory") as info:
        check_output_dir(full)
    assert "\n" not in str(info.value)
    with pytest.raises(OutputPathError, match="non-empty directory"):
        check_output_dir(full, allow_nonempty=lambda p: False)
    assert check_output_dir(full, allow_nonempty=lambda p: p == full) == full
    assert check_output_dir(full, force=True) == full
    crashed = tmp_path / "crashed"
    crashed.mkdir()
    (crashed / ".spikeforge.weights.npz.k2j4x.tmp").write_bytes(b"left by a crash")
    assert check_output_dir(crashed) == crashed  # only our own temporaries: counts as empty
    assert (full / "notes.txt").read_text() == "mine"
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="not a directory"):
        check_output_dir(tmp_path / "file", force=True)
    (tmp_path / "link").symlink_to(empty)
    with pytest.raises(OutputPathError, match="symbolic link"):
        check_output_dir(tmp_path / "link", force=True)
    with pytest.raises(OutputPathError, match="inside the input"):
        check_output_dir(full / "out", inside_forbidden=[full])
    with pytest.raises(OutputPathError, match="is an input"):
        check_output_dir(full, inside_forbidden=[full], force=True)
    with pytest.raises(OutputPathError, match="cannot write in /proc"):
        check_output_dir("/proc/bundle")


def test_make_dir_respects_the_umask(tmp_path, umask_022):
    made = files.make_dir(tmp_path / "a" / "b")
    assert made.is_dir() and mode(tmp_path / "a") == 0o755 and mode(made) == 0o755
    os.umask(0o027)
    assert mode(files.make_dir(tmp_path / "c")) == 0o750


# --- atomic writes ----------------------------------------------------------------------------


def test_atomic_write_bytes_replaces_with_umask_mode(tmp_path, umask_022):
    path = tmp_path / "r.bin"
    atomic_write_bytes(path, b"one")
    assert path.read_bytes() == b"one" and mode(path) == 0o644
    os.umask(0o077)
    atomic_write_bytes(path, b"two" * 100_000)
    assert path.read_bytes() == b"two" * 100_000 and mode(path) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["r.bin"]


def test_atomic_writers_never_replace_a_special_file(tmp_path):
    cases = special_paths(tmp_path)
    for name, (path, words) in cases.items():
        if path.parent != tmp_path:
            continue  # /dev entries: checked by check_output_file only, never written to here
        before = snapshot(path)
        with pytest.raises((OutputPathError, IsADirectoryError), match=words):
            atomic_write_bytes(path, b"x")
        with pytest.raises((OutputPathError, IsADirectoryError), match=words):
            with atomic_writer(path) as handle:
                handle.write(b"x")
        assert snapshot(path) == before, name
    assert (tmp_path / "target.npz").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir() if files.is_temporary(p.name)) == []


def test_atomic_writer_streams_numpy_and_text(tmp_path, umask_022):
    arrays = {"a": np.arange(10), "b": np.eye(3, dtype=np.uint8)}
    with atomic_writer(tmp_path / "r.npz") as handle:
        np.savez_compressed(handle, **arrays)
    with np.load(tmp_path / "r.npz") as npz:
        assert sorted(npz.files) == ["a", "b"]
        assert all(np.array_equal(npz[k], v) for k, v in arrays.items())
    assert mode(tmp_path / "r.npz") == 0o644
    with atomic_writer(tmp_path / "t.json", "w") as handle:
        handle.write('{"ä": 1}\n')
    assert (tmp_path / "t.json").read_text(encoding="utf-8") == '{"ä": 1}\n'
    with pytest.raises(ValueError, match="mode"):
        with atomic_writer(tmp_path / "x", "ab"):
            pass


def test_atomic_writer_exception_leaves_the_old_file(tmp_path):
    path = tmp_path / "r.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_writer(path) as handle:
            handle.write(b"new, half")
            raise RuntimeError("boom")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.npz"]


@pytest.mark.parametrize("how", ["bytes", "stream"])
def test_a_failure_at_every_step_leaves_the_old_file(tmp_path, monkeypatch, how):
    path = tmp_path / "r.bin"
    new = os.urandom(300_000)

    def write():
        if how == "bytes":
            atomic_write_bytes(path, new)
        else:
            with atomic_writer(path) as handle:
                handle.write(new)

    path.write_bytes(b"old")
    with monkeypatch.context() as m:
        steps = fail_os_call(m, None)
        write()
    assert path.read_bytes() == new
    assert {"write", "fsync", "replace"} <= set(steps)
    for k in range(len(steps)):
        path.write_bytes(b"old")
        with monkeypatch.context() as m:
            fail_os_call(m, k)
            with pytest.raises(InjectedFailure):
                write()
        after = path.read_bytes()
        if steps[k] == "fsync" and k == len(steps) - 1:
            assert after == new  # the directory sync after the rename failed: already new
        else:
            assert after == b"old", (k, steps[k])
        assert [p.name for p in tmp_path.iterdir()] == ["r.bin"], k
    assert len(steps) >= 4


def test_umask_is_read_without_changing_it():
    old = os.umask(0o037)
    try:
        assert files.current_umask() == 0o037
        assert os.umask(0o037) == 0o037
    finally:
        os.umask(old)
