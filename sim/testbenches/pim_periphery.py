"""cocotb testbench: ``spikeforge.rtl.chip.pim_periphery.PimPeriphery`` instances against the PIM
model's LOADs.

The case file lists instances (port prefix ``p<k>``) and, per instance, cases prepared on the
pytest side from ``spikeforge.pim.model`` ADC codes: settings, correction-table writes, input
payloads and the expected out events ``[op, index, value]``. Inputs arrive with random gaps and the
output with random back-pressure; every out event is compared in order.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly
from spikeforge.sim.testbenches.case import load_case, write_report
from spikeforge.sim.testbenches.harness import Ports, run_concurrently, start, to_signed

#: Cycles without progress after which a case fails.
STALL_LIMIT = 200
#: Inputs held at 0 through reset and until an instance's first case.
IDLE_INPUTS = ("i__valid", "o__ready", "corr__en")


async def run_case(port: Ports, case: dict[str, Any], out: dict[str, int], counts: Counter) -> None:
    rng = random.Random(case["seed"])
    port["lsb_shift"].value = case["lsb_shift"]
    port["input_shift"].value = case["input_shift"]
    for addr, value in case["corrections"]:
        port["corr__en"].value, port["corr__addr"].value = 1, addr
        port["corr__data"].value = value
        await FallingEdge(port.clk)
    port["corr__en"].value = 0
    events, expect = case["events"], [tuple(e) for e in case["expect"]]
    got: list[tuple[int, int, int]] = []
    sent = idle = 0
    while sent < len(events) or len(got) < len(expect):
        valid = sent < len(events) and rng.random() >= case["gap_p"]
        port["i__valid"].value = int(valid)
        port["i__payload"].value = events[sent] if sent < len(events) else 0
        port["o__ready"].value = int(rng.random() >= case["backpressure_p"])
        await ReadOnly()
        progress = False
        if port["o__valid"].value and port["o__ready"].value:
            word = int(port["o__payload"].value)
            op, index = word & 3, (word >> 2) & ((1 << out["index_bits"]) - 1)
            value = to_signed(word >> (2 + out["index_bits"]), out["load_bits"])
            got.append((op, index, value))
            k = len(got) - 1
            assert k < len(expect), f"{case['label']}: extra out event {got[-1]}"
            assert got[-1] == expect[k], f"{case['label']}: out {k} = {got[-1]}, want {expect[k]}"
            progress = True
        if valid and port["i__ready"].value:
            sent, progress = sent + 1, True
        idle = 0 if progress else idle + 1
        assert idle < STALL_LIMIT, f"{case['label']}: stalled at event {sent}, out {len(got)}"
        await FallingEdge(port.clk)
    counts["cases"] += 1
    counts["events_sent"] += len(events)
    counts["out_events_compared"] += len(got)
    counts["loads_compared"] += sum(op == 3 for op, _, _ in got)
    counts["nonzero_values"] += sum(v != 0 for _, _, v in got)
    counts[f"cases_{case['kind']}"] += 1


async def run_instance(port: Ports, inst: dict[str, Any], counts: Counter) -> None:
    await FallingEdge(port.clk)
    for case in inst["cases"]:
        await run_case(port, case, inst["out"], counts)


@cocotb.test()
async def periphery_cases(dut):
    """Every instance's cases, concurrently; any difference fails the test."""
    spec = load_case()
    ports = [Ports(dut, inst["prefix"]) for inst in spec["instances"]]
    for port in ports:
        port.clear(IDLE_INPUTS)
    await start(dut)
    counts: Counter[str] = Counter()
    await run_concurrently(
        run_instance(port, inst, counts)
        for port, inst in zip(ports, spec["instances"], strict=True)
    )
    write_report(**counts)
