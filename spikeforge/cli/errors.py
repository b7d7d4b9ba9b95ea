"""The command line's exit codes and error type, and how every failure becomes one line.

Exit codes (docs/cli.md): 0 success; 1 the RTL (or the bit-true pass) differs from the golden
model; 2 a usage or input error (bad option, bad file, output path refused, not enough memory,
an output that cannot be written); 3 a tool failed (simulator missing, build or simulation
failed, lint found problems); 4 an internal error (a bug: rerun with --debug and report it);
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import errno
import re
import sys
from dataclasses import dataclass

EXIT_OK = 0
EXIT_DIFFERS = 1
EXIT_USAGE = 2
EXIT_TOOL = 3
EXIT_INTERNAL = 4
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """Bad input detected by a subcommand: printed as one line, exit status 2.

    Deliberately not a ``ValueError``: argparse would swallow it from an option's type check.
    """


class ToolFailed(Exception):
    """A tool ran and reported a failure (e.g. lint): one line, exit status 3."""

    def __init__(self, message: str, log: str | None = None):
        super().__init__(message)
        self.log = log


def user_errors() -> tuple[type[BaseException], ...]:
    """The library's error types that mean "bad input" (exit 2): each names what is wrong."""
    from spikeforge.checks import OptionError, ResourceError
    from spikeforge.sim.bundle import BundleError
    from spikeforge.sim.datasets import DataError
    from spikeforge.sim.files import OutputPathError
    from spikeforge.sim.golden import InputError
    from spikeforge.sim.results import ArrayFileError, ShardError

    found: list[type[BaseException]] = [
        OptionError,
        ResourceError,
        BundleError,
        DataError,
        OutputPathError,
        InputError,
        ArrayFileError,
        ShardError,
    ]
    for module, name in (
        ("spikeforge.rtl.chip.top", "ChipError"),
        ("spikeforge.rtl.chip.mapping", "MappingError"),
        ("spikeforge.pim.array", "MappingError"),
        ("spikeforge.algo.training.export", "ExportError"),
    ):
        if module in sys.modules:  # only types a loaded module can have raised
            found.append(getattr(sys.modules[module], name))
    return tuple(found)


def one_line(text: str) -> str:
    """The first line of ``text``, without trailing blanks."""
    return (text.strip().splitlines() or [""])[0].strip()


@dataclass
class Failure:
    """How an exception is reported: exit code, the one error line, an optional hint line."""

    code: int
    line: str
    hint: str | None = None


_LOG = re.compile(r"(?:last lines of|see) (\S+?):?\s*$", re.MULTILINE)


def classify(exc: BaseException) -> Failure:
    """Map any exception to its exit code and one line (plus a hint)."""
    from spikeforge.sim.toolchain import ToolchainError

    if isinstance(exc, KeyboardInterrupt):
        return Failure(EXIT_INTERRUPTED, "interrupted (Ctrl-C)")
    if isinstance(exc, UsageError):
        return Failure(EXIT_USAGE, one_line(str(exc)))
    if isinstance(exc, ToolFailed):
        return Failure(EXIT_TOOL, one_line(str(exc)), exc.log and f"hint: see {exc.log}")
    if isinstance(exc, ToolchainError):
        return Failure(EXIT_TOOL, one_line(str(exc)), "hint: docs/cli.md lists what to install")
    flow = sys.modules.get("spikeforge.sim.flow")
    if flow is not None and isinstance(exc, flow.SimulationFailed):
        logs = _LOG.findall(str(exc))
        hint = f"hint: the full log is {logs[0]}" if logs else None
        return Failure(EXIT_TOOL, one_line(str(exc)), hint)
    if isinstance(exc, user_errors()):
        return Failure(EXIT_USAGE, one_line(str(exc)))
    if isinstance(exc, MemoryError):
        return Failure(
            EXIT_USAGE, "out of memory", "hint: use fewer samples, time steps or neurons"
        )
    if isinstance(exc, OSError):
        where = exc.filename or "an output file"
        reason = exc.strerror or str(exc)
        hint = None
        if exc.errno == errno.ENOSPC:
            hint = "hint: free some disk space or choose another --out"
        return Failure(EXIT_USAGE, f"{where}: {reason}", hint)
    return Failure(
        EXIT_INTERNAL,
        f"internal error: {type(exc).__name__}: {one_line(str(exc))}",
        "hint: rerun with --debug for the traceback and report it",
    )
