"""Safe file output: the one place where spikeforge checks output paths and writes files.

Two rules hold for everything written through this module. Nothing is replaced that is not a
regular file (a device, FIFO, socket, symbolic link or directory at the path is refused, never
turned into a file), and every write is atomic and durable: the data goes to a temporary file in
the target's own directory, is fsynced, is moved over the target with ``os.replace`` and the
directory is fsynced, so a crash leaves either the old or the new file. New files get
``0o666 & ~umask`` and new directories ``0o777 & ~umask``, as any other program's would.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any

#: What a damaged or truncated .npz raises while it is opened and read (zipfile and numpy do not
#: wrap these in one type): bad archive structure, a failed inflate, a flipped compression
#: method or version ("not supported"), a flipped encryption flag, a malformed or short member.
ARCHIVE_ERRORS = (
    OSError,
    ValueError,
    EOFError,
    zipfile.BadZipFile,
    zlib.error,
    NotImplementedError,
    RuntimeError,
)

PathLike = str | os.PathLike[str]

#: Temporary files are named ``.spikeforge.<target name>.<random>.tmp``; see ``is_temporary``.
TMP_PREFIX = ".spikeforge."
TMP_SUFFIX = ".tmp"


class OutputPathError(ValueError):
    """An output path cannot be written safely; the message names the path and the reason."""


def _fail(path: PathLike, reason: str) -> OutputPathError:
    return OutputPathError(f"{os.fspath(path) or '.'}: {reason}")


def current_umask() -> int:
    """The process umask (read from /proc where possible, so the umask is never changed)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str | None:
    """Why a file of this mode may not be replaced, or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "is a symbolic link; give the real path of a regular file"
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "is a socket, not a regular file"
    return "is not a regular file"


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _fail(path, f"cannot be inspected ({exc.strerror})") from None


def _probe_writable(directory: Path, path: Path) -> None:
    """Create and remove a temporary file in ``directory``: the one sure test of writability
    (``os.access`` says yes to root even on a read-only mount)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + "probe.", suffix=TMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise _fail(path, f"cannot write in {directory} ({exc.strerror})") from None
    os.close(fd)
    os.unlink(tmp)


def _existing_parent(path: Path, parents: bool) -> Path:
    """The directory that must be writable to create ``path``: its parent, or with ``parents``
    the nearest ancestor that exists (the missing ones are created later)."""
    parent = path.parent
    while True:
        if _lstat(parent) is not None:
            if not parent.is_dir():
                raise _fail(path, f"{parent} is not a directory")
            return parent
        if not parents:
            raise _fail(path, f"the directory {parent} does not exist")
        if parent.parent == parent:
            raise _fail(path, f"no existing directory above {parent}")
        parent = parent.parent


def _check_not_inside(path: Path, inside_forbidden: Sequence[PathLike]) -> None:
    resolved = path.resolve()
    for other in inside_forbidden:
        forbidden = Path(other).resolve()
        if resolved == forbidden:
            raise _fail(path, f"is an input ({other}); choose another output")
        if forbidden in resolved.parents:
            raise _fail(path, f"is inside the input {other}; choose another output")


def check_output_file(
    path: PathLike, *, inside_forbidden: Sequence[PathLike] = (), parents: bool = False
) -> Path:
    """Check that ``path`` may be written before any work starts, and return it as a ``Path``.

    The parent must be a writable directory (with ``parents``, the nearest existing ancestor);
    ``path`` must not be a directory, device, FIFO, socket or symbolic link, nor lie inside (or
    be) any of ``inside_forbidden``, such as the input bundle. An existing regular file is fine:
    it is replaced atomically.
    """
    path = Path(path)
    if not os.fspath(path) or path.name in ("", ".", ".."):
        raise _fail(path, "is a directory; give a file name")
    info = _lstat(path)
    if info is not None and (reason := _kind(info.st_mode)):
        raise _fail(path, reason)
    parent = _existing_parent(path, parents)
    _check_not_inside(path, inside_forbidden)
    _probe_writable(parent, path)
    return path


def check_output_dir(
    path: PathLike,
    *,
    inside_forbidden: Sequence[PathLike] = (),
    allow_nonempty: Callable[[Path], bool] | None = None,
    force: bool = False,
    parents: bool = True,
) -> Path:
    """Check an output directory (a bundle, a report) before any work starts; return it.

    ``path`` must be a directory or not exist (missing parents are fine unless ``parents`` is
    false), not a symbolic link or file, and not inside any of ``inside_forbidden``. A non-empty
    directory is refused unless ``allow_nonempty(path)`` says it holds what is about to be
    rewritten (e.g. a bundle) or ``force`` is given; its other files are never touched.
    """
    path = Path(path)
    info = _lstat(path)
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise _fail(path, "is a symbolic link; give the real path of the directory")
        if not stat.S_ISDIR(info.st_mode):
            raise _fail(path, "exists and is not a directory")
        _check_not_inside(path, inside_forbidden)
        with os.scandir(path) as entries:  # a crash's temporaries do not count: they are ours
            nonempty = any(not is_temporary(entry.name) for entry in entries)
        if nonempty and not force and (allow_nonempty is None or not allow_nonempty(path)):
            raise _fail(
                path,
                "is a non-empty directory that spikeforge did not write; "
                "choose a new or empty directory (or force writing into it)",
            )
        _probe_writable(path, path)
        return path
    if path.name in ("", ".", ".."):
        raise _fail(path, "does not exist")
    parent = _existing_parent(path, parents)
    _check_not_inside(path, inside_forbidden)
    _probe_writable(parent, path)
    return path


def make_dir(path: PathLike) -> Path:
    """Create ``path`` and missing parents (modes from the umask); an existing directory is kept."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    return path


# --------------------------------------------------------------------------------------------
# atomic writes


def fsync_dir(directory: PathLike) -> None:
    """Make renames in ``directory`` durable (no-op where directories cannot be opened)."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(os.fspath(directory) or ".", flags)
    except OSError as exc:
        if os.name == "nt":
            return
        raise _fail(directory, f"cannot open the directory to sync it ({exc.strerror})") from None
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of this module's temporary files (left behind only by a crash)."""
    return name.startswith(TMP_PREFIX) and name.endswith(TMP_SUFFIX)


def _open_temporary(path: Path) -> tuple[int, Path]:
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=TMP_SUFFIX, dir=directory)
    try:
        if hasattr(os, "fchmod"):  # mkstemp makes 0600; a result file is as shared as any other
            os.fchmod(fd, 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, Path(tmp)


def discard(tmp: PathLike) -> None:
    """Remove a temporary file this module made (missing is fine)."""
    with suppress(FileNotFoundError):
        os.unlink(tmp)


def stage_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to a fsynced temporary sibling of ``path`` and return the temporary's path;
    ``commit`` moves it into place. Nothing at ``path`` changes yet."""
    path = Path(path)
    fd, tmp = _open_temporary(path)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        discard(tmp)
        raise
    os.close(fd)
    return tmp


def commit(tmp: PathLike, path: PathLike) -> None:
    """Move the staged file ``tmp`` over ``path`` (same directory) and sync the directory.

    Refuses, leaving ``tmp`` in place, when ``path`` is anything but a regular file: a device
    or a link that appeared after the checks is never replaced.
    """
    path = Path(path)
    info = _lstat(path)
    if info is not None and (reason := _kind(info.st_mode)):
        raise _fail(path, reason)
    os.replace(tmp, path)
    fsync_dir(path.parent if str(path.parent) else Path("."))


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temporary sibling, fsync, ``os.replace``, fsync of
    the directory. A crash leaves the old file or the new one, never a mix."""
    tmp = stage_bytes(path, data)
    try:
        commit(tmp, path)
    except BaseException:
        discard(tmp)
        raise


class _SyncedFile(io.FileIO):
    """A raw file whose ``write`` goes through ``os.write`` (so every write step is visible)."""

    def write(self, data: Any) -> int:  # type: ignore[override]
        return os.write(self.fileno(), data)


@contextmanager
def atomic_writer(path: PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Yield a file to stream into (``np.savez``, ``json.dump``); on a clean exit it replaces
    ``path`` atomically like ``atomic_write_bytes``, on an exception nothing changes."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_writer: mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    fd, tmp = _open_temporary(path)
    raw = _SyncedFile(fd, "wb", closefd=True)
    handle: IO[Any] = io.BufferedWriter(raw)
    if mode == "w":
        handle = io.TextIOWrapper(handle, encoding="utf-8", newline="")
    try:
        yield handle
        handle.flush()
        os.fsync(fd)
        handle.close()
        commit(tmp, path)
    except BaseException:
        with suppress(OSError):
            handle.close()
        discard(tmp)
        raise
