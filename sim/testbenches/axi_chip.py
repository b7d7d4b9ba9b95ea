"""cocotb testbench: the AXI-wrapped chip driven only through standard verification IP.

``cocotbext-axi`` provides the AXI4-Lite master (registers and the configuration window), the
AXI4-Stream source (input words, TLAST ending a sample) and sink (result records); nothing here
drives a bus signal by hand. The case file, written on the pytest side, holds the register
offsets and expected identity values, unmapped addresses, the AXI-Lite writes that load the
bundle, the samples' words and the stream pause probabilities. The testbench:

1. reads the identity registers and checks them; reads and writes unmapped addresses and checks
   SLVERR;
2. loads the bundle through the configuration window (every write must answer OKAY);
3. streams every sample in with random gaps while the sink applies random back-pressure, and
   collects one record per sample (words as received, compared on the pytest side);
4. checks the interrupt (DONE sticky, W1C), a too-long sample (ERROR, no record), counters and
   the soft reset.
"""

from __future__ import annotations

import random
from typing import Any

import cocotb
from cocotb.triggers import ClockCycles, ReadOnly, with_timeout
from cocotbext.axi import (
    AxiLiteBus,
    AxiLiteMaster,
    AxiResp,
    AxiStreamBus,
    AxiStreamFrame,
    AxiStreamSink,
    AxiStreamSource,
)
from spikeforge.sim.testbenches.case import load_case, write_report
from spikeforge.sim.testbenches.harness import PERIOD_NS, start

#: Cycles the testbench waits for a result record before it calls the record lost.
RECORD_TIMEOUT_CYCLES = 200_000


def pauses(rng: random.Random, p: float):
    """A pause generator for cocotbext-axi: pause each cycle with probability ``p``."""
    while True:
        yield rng.random() < p


class Host:
    """The bus-functional models on the top's three ports."""

    def __init__(self, dut: Any, case: dict[str, Any]):
        self.dut, self.case = dut, case
        self.regs = case["regs"]
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.source = AxiStreamSource(
            AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk, dut.rst, byte_lanes=1
        )
        self.sink = AxiStreamSink(
            AxiStreamBus.from_prefix(dut, "m_axis"), dut.clk, dut.rst, byte_lanes=1
        )
        for log in (self.lite.write_if.log, self.lite.read_if.log, self.source.log, self.sink.log):
            log.setLevel("WARNING")

    async def read(self, name_or_addr: str | int) -> tuple[int, AxiResp]:
        addr = self.regs[name_or_addr] if isinstance(name_or_addr, str) else name_or_addr
        answer = await self.lite.read(addr, 4)
        return int.from_bytes(answer.data, "little"), answer.resp

    async def write(self, name_or_addr: str | int, value: int) -> AxiResp:
        addr = self.regs[name_or_addr] if isinstance(name_or_addr, str) else name_or_addr
        answer = await self.lite.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))
        return answer.resp

    async def reg(self, name: str) -> int:
        value, resp = await self.read(name)
        assert resp == AxiResp.OKAY, f"read {name}: {resp!r}"
        return value

    async def records(self, n: int) -> list[list[int]]:
        got = []
        for k in range(n):
            try:
                wait = RECORD_TIMEOUT_CYCLES * PERIOD_NS
                frame = await with_timeout(self.sink.recv(), wait, "ns")
            except TimeoutError:
                raise AssertionError(f"no result record {k + 1} of {n}") from None
            got.append([int(w) for w in frame.tdata])
        return got


@cocotb.test()
async def axi_chip(dut: Any) -> None:
    case = load_case()
    rng = random.Random(case["seed"])
    for name in ("s_axis_tvalid", "m_axis_tready", "s_axil_awvalid", "s_axil_wvalid",
                 "s_axil_arvalid", "s_axil_bready", "s_axil_rready"):  # fmt: skip
        getattr(dut, name).value = 0
    await start(dut, reset_cycles=4)
    host = Host(dut, case)
    counts: dict[str, Any] = {}

    # 1. identity and unmapped addresses
    for name, value in case["identity"].items():
        got = await host.reg(name)
        assert got == value, f"{name} = 0x{got:08X}, want 0x{value:08X}"
    counts["identity"] = len(case["identity"])
    slverr = 0
    for addr in case["unmapped"]:
        _, resp = await host.read(addr)
        assert resp == AxiResp.SLVERR, f"read 0x{addr:X}: {resp!r}, want SLVERR"
        resp = await host.write(addr, 0)
        assert resp == AxiResp.SLVERR, f"write 0x{addr:X}: {resp!r}, want SLVERR"
        slverr += 2
    for name in case["read_only"]:
        assert await host.write(name, 0) == AxiResp.SLVERR, f"write to read-only {name}"
        slverr += 1
    counts["slverr"] = slverr

    # 2. the bundle through the configuration window, then read back a sample of it
    for addr, value in case["writes"]:
        resp = await host.write(addr, value)
        assert resp == AxiResp.OKAY, f"write 0x{addr:X}: {resp!r}"
    counts["writes"] = len(case["writes"])
    for addr, value in case["read_back"]:
        got, resp = await host.read(addr)
        assert resp == AxiResp.OKAY and got == value, f"read back 0x{addr:X}: {got} {resp!r}"
    counts["read_back"] = len(case["read_back"])

    # 3. every sample, random gaps in, random back-pressure out
    await host.write("CTRL", 0b11)  # both interrupt enables
    host.source.set_pause_generator(pauses(rng, case["gap_p"]))
    host.sink.set_pause_generator(pauses(rng, case["backpressure_p"]))
    samples = case["samples"]

    async def send_all() -> None:
        for words in samples:
            await host.source.send(AxiStreamFrame(list(words)))

    sender = cocotb.start_soon(send_all())
    counts["records"] = await host.records(len(samples))
    await sender
    await ReadOnly()
    counts["irq_after_done"] = int(dut.irq.value)
    await ClockCycles(dut.clk, 1)
    counts["samples_reg"] = await host.reg("SAMPLES")
    counts["in_words_reg"] = await host.reg("IN_WORDS")
    counts["irq_reg"] = await host.reg("IRQ")
    await host.write("IRQ", 0b01)  # write 1 to clear DONE
    await ReadOnly()
    counts["irq_after_clear"] = int(dut.irq.value)
    await ClockCycles(dut.clk, 1)

    # 4. a sample longer than the buffer: dropped with ERROR, then the stream goes on
    for model in (host.source, host.sink):
        model.set_pause_generator(None)
        model.pause = False  # the generator may have stopped in a pause
    await host.source.send(AxiStreamFrame([samples[0][0]] * (case["depth"] + 1)))
    await host.source.send(AxiStreamFrame(list(samples[0])))
    counts["after_error"] = await host.records(1)
    counts["error_code"] = await host.reg("ERROR_CODE")
    counts["irq_error"] = await host.reg("IRQ")
    await host.write("CTRL", 1 << 31)
    await ClockCycles(dut.clk, 4)
    counts["after_reset"] = [await host.reg(n) for n in ("SAMPLES", "IRQ", "ERROR_CODE")]
    await host.source.send(AxiStreamFrame(list(samples[-1])))
    counts["after_reset_record"] = await host.records(1)
    assert host.sink.empty(), "records beyond one per sample"
    write_report(**counts)
