"""The pytest side of these testbenches: write a top's Verilog, run one testbench module on it
under a simulator, and check the counts it reports against what the caller expected."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from spikeforge.rtl.gateware import emit
from spikeforge.sim.flow import SimulationFailed, run_cocotb


def run_testbench(
    top: Any,
    toplevel: str,
    testbench: str,
    *,
    sim: str,
    build_dir: Path,
    case: Mapping[str, Any],
    expect: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Emit ``top`` as ``toplevel`` into ``build_dir``, run ``testbench`` (a module name in this
    package) under ``sim`` with ``case``, and return its report.

    Raises ``SimulationFailed`` if the simulation fails or a count named in ``expect`` differs
    from the report's.
    """
    build_dir = Path(build_dir)
    verilog = emit.write(top, toplevel, build_dir / f"{toplevel}.v")
    report = run_cocotb(
        sources=[verilog],
        toplevel=toplevel,
        test_module=f"{__package__}.{testbench}",
        sim=sim,
        build_dir=build_dir / sim,
        case=case,
    )
    wrong = [
        f"{key}: reported {report.get(key)}, expected {n}"
        for key, n in (expect or {}).items()
        if report.get(key) != n
    ]
    if wrong:
        raise SimulationFailed(f"{sim}: {testbench} on {toplevel} compared " + "; ".join(wrong))
    return report
