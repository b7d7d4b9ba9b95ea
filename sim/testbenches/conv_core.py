"""cocotb testbench: convolution cores (one per ``instances`` entry) against ``ConvCoreModel``.

The top is ``conv_core_cases.MultiConvCore`` (ports ``c<k>__i__valid`` ...); each instance runs
its cases concurrently with its own ``ConvDriver``. The report holds the totals and per-instance
counts of everything compared.
"""

from __future__ import annotations

from collections import Counter

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from sim.testbenches.case import load_case, write_report
from sim.testbenches.conv_core_bench import ConvDriver
from sim.testbenches.conv_core_cases import params_from_json
from sim.testbenches.core import CocotbPins, _run_instance


@cocotb.test()
async def conv_core_cases(dut):
    """Run every instance's cases; any difference from the reference fails the test."""
    spec = load_case()
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    drivers = []
    for inst in spec["instances"]:
        params = params_from_json(inst["params"])
        driver = ConvDriver(CocotbPins(dut, inst["prefix"]), params, inst["prefix"])
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
