"""cocotb testbench: cores (one per ``instances`` entry of the case) against ``CoreModel``.

The top is ``core_cases.MultiCore`` (ports ``c<k>__i__valid`` ...) or a single core (prefix
``""``). Every instance runs its cases concurrently, each with its own driver; the report holds
the totals and per-instance counts of everything compared.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly
from spikeforge.sim.testbenches.case import load_case, write_report
from spikeforge.sim.testbenches.core_bench import CoreDriver
from spikeforge.sim.testbenches.core_cases import params_from_json


class CocotbPins:
    """``Pins`` over a cocotb DUT; ``prefix`` selects one core of a ``MultiCore`` top."""

    def __init__(self, dut: Any, prefix: str):
        self.dut, self.prefix = dut, prefix
        self._handles: dict[str, Any] = {}

    def _handle(self, name: str) -> Any:
        if name not in self._handles:
            flat = name.replace(".", "__")
            self._handles[name] = getattr(
                self.dut, f"{self.prefix}__{flat}" if self.prefix else flat
            )
        return self._handles[name]

    def set(self, name: str, value: int) -> None:
        self._handle(name).value = value

    def get(self, name: str) -> int:
        return int(self._handle(name).value)

    async def settle(self) -> None:
        await ReadOnly()

    async def next_cycle(self) -> None:
        await FallingEdge(self.dut.clk)


async def _run_instance(driver: CoreDriver, cases: list[dict[str, Any]]) -> None:
    for k, case in enumerate(cases):
        await driver.run_case(case, f"case {k}")


async def run_instances(dut: Any, make_driver: Callable[[CocotbPins, dict], CoreDriver]) -> None:
    """Reset, then run every instance's cases concurrently with its own driver; write the report.

    ``make_driver(pins, instance)`` builds the driver of one ``instances`` entry of the case.
    """
    spec = load_case()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    drivers = []
    for inst in spec["instances"]:
        driver = make_driver(CocotbPins(dut, inst["prefix"]), inst)
        driver.reset_inputs()
        drivers.append(driver)
    dut.rst.value = 1
    for _ in range(3):
        await FallingEdge(dut.clk)
    dut.rst.value = 0
    tasks = [
        cocotb.start_soon(_run_instance(d, inst["cases"]))
        for d, inst in zip(drivers, spec["instances"], strict=True)
    ]
    for task in tasks:
        await task
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
            pins, params_from_json(inst["params"]), inst["prefix"] or "core"
        ),
    )
