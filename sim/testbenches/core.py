"""cocotb testbench: cores (one per ``instances`` entry of the case) against ``CoreModel``.

The top is a ``SideBySide`` of cores (ports ``c<k>__i__valid`` ...) or a single core (prefix
``""``). Every instance runs its cases concurrently, each with its own driver; the report holds
the totals and per-instance counts of everything compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly
from spikeforge.rtl.cores.core import CoreParams
from spikeforge.sim.testbenches.case import load_case, write_report
from spikeforge.sim.testbenches.core_bench import CoreDriver
from spikeforge.sim.testbenches.harness import Ports, params_from_json, run_concurrently, start


class CocotbPins(Ports):
    """``Pins`` over one core's ports of a cocotb DUT (``prefix`` selects it in a side-by-side)."""

    def set(self, name: str, value: int) -> None:
        self[name].value = value

    def get(self, name: str) -> int:
        return int(self[name].value)

    async def settle(self) -> None:
        await ReadOnly()

    async def next_cycle(self) -> None:
        await FallingEdge(self.clk)


async def _run_instance(driver: CoreDriver, cases: list[dict[str, Any]]) -> None:
    for k, case in enumerate(cases):
        await driver.run_case(case, f"case {k}")


async def run_instances(dut: Any, make_driver: Callable[[CocotbPins, dict], CoreDriver]) -> None:
    """Reset, then run every instance's cases concurrently with its own driver; write the report.

    ``make_driver(pins, instance)`` builds the driver of one ``instances`` entry of the case.
    """
    spec = load_case()
    drivers = []
    for inst in spec["instances"]:
        driver = make_driver(CocotbPins(dut, inst["prefix"]), inst)
        driver.reset_inputs()
        drivers.append(driver)
    await start(dut)
    await run_concurrently(
        _run_instance(d, inst["cases"]) for d, inst in zip(drivers, spec["instances"], strict=True)
    )
    totals: Counter[str] = Counter()
    for d in drivers:
        totals.update(d.counts)
    write_report(
        **totals,
        cycles=max(d.cycle for d in drivers),
        per_instance={d.name: dict(d.counts) for d in drivers},
    )


@cocotb.test()
async def core_cases(dut):
    """Run every instance's cases; any difference from the reference fails the test."""
    await run_instances(
        dut,
        lambda pins, inst: CoreDriver(
            pins, params_from_json(CoreParams, inst["params"]), inst["prefix"] or "core"
        ),
    )
