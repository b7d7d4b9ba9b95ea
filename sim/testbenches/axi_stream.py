"""cocotb testbench behind ``spikeforge rtl-sim --top axi``: samples through the AXI-wrapped chip.

The case file holds the samples' input words, optional AXI-Lite writes to make first (a bundle
loaded at run time) and stream pause probabilities. ``cocotbext-axi`` drives every port: the
AXI-Lite master writes, the AXI4-Stream source sends each sample as one packet, the sink takes
one result record per sample. The report holds the records' words, as received, and the
simulated time; the pytest or command-line side decodes and compares them.
"""

from __future__ import annotations

import random
import time
from typing import Any

import cocotb
from cocotb.utils import get_sim_time
from cocotbext.axi import AxiResp, AxiStreamFrame
from spikeforge.sim.testbenches.axi_chip import Host, pauses
from spikeforge.sim.testbenches.case import load_case, write_report
from spikeforge.sim.testbenches.harness import PERIOD_NS, start


@cocotb.test()
async def axi_stream(dut: Any) -> None:
    case = load_case()
    rng = random.Random(case["seed"])
    await start(dut, reset_cycles=4)
    host = Host(dut, case)
    for addr, value in case["writes"]:
        resp = await host.write(addr, value)
        assert resp == AxiResp.OKAY, f"write 0x{addr:X}: {resp!r}"
    if case["gap_p"]:
        host.source.set_pause_generator(pauses(rng, case["gap_p"]))
    if case["backpressure_p"]:
        host.sink.set_pause_generator(pauses(rng, case["backpressure_p"]))
    samples = case["samples"]
    t0, wall = get_sim_time("ns"), time.perf_counter()

    async def send_all() -> None:
        for words in samples:
            await host.source.send(AxiStreamFrame(list(words)))

    sender = cocotb.start_soon(send_all())
    records = await host.records(len(samples))
    await sender
    cycles = round((get_sim_time("ns") - t0) / PERIOD_NS)
    write_report(records=records, cycles=cycles, seconds=time.perf_counter() - wall)
