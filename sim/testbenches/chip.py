"""cocotb testbench: a whole ``spikeforge.rtl.chip.top.Chip`` run over a batch of samples.

Per sample it writes the input-buffer words, pulses ``start`` and waits for ``busy`` to fall;
one monitor coroutine wakes only when ``mon_toggle`` flips (a cycle with any stage event) and
records every spike as (layer, step, neuron). At the end of each sample it reads the last
layer's ``v`` and every core's counters through ``cfg``, one read a cycle. Results go to an
``.npz`` (spikes, v_out, cycles, counters); the comparison with the golden model is the host's.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import cocotb
import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, ReadOnly, with_timeout
from spikeforge.rtl.cores.core import CFG_READ_LATENCY
from spikeforge.sim.testbenches.case import load_case, write_report
from spikeforge.sim.testbenches.harness import PERIOD_NS, Ports, run_concurrently, start, to_signed


class Monitor:
    """Decodes ``mon`` into per-layer spike trains; ``sample`` says where events belong."""

    def __init__(self, dut: Ports, case: dict[str, Any], n: int):
        self.dut = dut
        self.fields = [(o, (1 << b) - 1) for o, b in case["monitor"]]
        t = case["timesteps"]
        self.spikes = [np.zeros((n, t, size), dtype=np.uint8) for size in case["n_out"]]
        self.sample = 0
        self.step = [0] * len(self.fields)
        self.last = [-1] * len(self.fields)
        self.counts: Counter[str] = Counter()

    def begin(self, sample: int) -> None:
        self.sample, self.step, self.last = sample, [0] * len(self.fields), [-1] * len(self.fields)

    async def run(self) -> None:
        toggle, mon = self.dut.mon_toggle, self.dut.mon
        while True:
            await toggle.value_change
            await ReadOnly()
            word = int(mon.value)
            for k, (offset, mask) in enumerate(self.fields):
                if not (word >> offset) & 1:
                    continue
                op, index = (word >> (offset + 1)) & 3, (word >> (offset + 3)) & mask
                self._event(k, op, index)

    def _event(self, k: int, op: int, index: int) -> None:
        c = self.counts
        if op == 0:  # SPIKE
            t = self.step[k]
            if t >= self.spikes[k].shape[1] or index >= self.spikes[k].shape[2]:
                c["out_of_range"] += 1
                return
            if index <= self.last[k]:
                c["order_violations"] += 1
            self.last[k] = index
            self.spikes[k][self.sample, t, index] = 1
            c["spikes"] += 1
        elif op == 1:  # TICK
            self.step[k] += 1
            self.last[k] = -1
            c["ticks"] += 1
        elif op == 2:  # CLEAR
            c["clears"] += 1
        else:
            c["unexpected_ops"] += 1


async def _cfg_reads(dut: Ports, addresses: list[int]) -> list[int]:
    """Reads back to back, one a cycle, each driven after a falling edge; the answers come
    ``CFG_READ_LATENCY`` cycles after their reads, in order (sampled at falling edges)."""
    values: list[int] = []
    pending = list(addresses)
    dut.cfg__write.value = 0
    for _ in range(len(addresses) + CFG_READ_LATENCY + 4):
        if pending:
            dut.cfg__valid.value = 1
            dut.cfg__addr.value = pending[0]
            await ReadOnly()
            assert int(dut.cfg__ready.value) == 1, f"cfg not ready at address {pending[0]:#x}"
            pending.pop(0)
        else:
            dut.cfg__valid.value = 0
        await FallingEdge(dut.clk)
        if int(dut.cfg__rvalid.value):
            values.append(to_signed(int(dut.cfg__rdata.value), 32))
        if len(values) == len(addresses):
            break
    dut.cfg__valid.value = 0
    assert len(values) == len(addresses), f"{len(values)} answers to {len(addresses)} cfg reads"
    return values


async def run_chip(dut: Ports, case: dict[str, Any]) -> dict[str, Any]:
    """Every sample of one chip's case; writes its results file, returns its counts."""
    samples: list[list[int]] = case["samples"]
    n = len(samples)
    monitor = Monitor(dut, case, n)
    cocotb.start_soon(monitor.run())
    v_reads, counter_reads = case["v_reads"], case["counter_reads"]
    v_out = np.zeros((n, len(v_reads)), dtype=np.int64)
    counters = np.zeros((n, len(counter_reads)), dtype=np.int64)
    cycles = np.zeros(n, dtype=np.int64)
    previous = np.zeros(len(counter_reads), dtype=np.int64)
    limit_ns = case["max_cycles"] * PERIOD_NS
    for s, words in enumerate(samples):
        dut.wr__en.value = 1
        for addr, word in enumerate(words):
            dut.wr__addr.value = addr
            dut.wr__data.value = word
            await FallingEdge(dut.clk)
        dut.wr__en.value = 0
        monitor.begin(s)
        dut.count.value, dut.passes.value, dut.start.value = len(words), case["repeat"], 1
        await FallingEdge(dut.clk)
        dut.start.value = 0
        t0 = get_sim_time("ns")
        while int(dut.busy.value):
            await with_timeout(FallingEdge(dut.busy), limit_ns, "ns")
        await FallingEdge(dut.clk)
        cycles[s] = round((get_sim_time("ns") - t0) / PERIOD_NS)
        v_out[s] = await _cfg_reads(dut, v_reads)
        now = np.array(await _cfg_reads(dut, counter_reads), dtype=np.int64) & 0xFFFFFFFF
        counters[s] = (now - previous) % (1 << 32)
        previous = now
    np.savez(
        case["result_path"],
        v_out=v_out,
        cycles=cycles,
        counters=counters,
        **{f"spikes{k}": s for k, s in enumerate(monitor.spikes)},
    )
    return {
        "samples": n,
        "words": sum(len(w) for w in samples),
        "cycles": int(cycles.sum()),
        "v_reads": int(v_out.size),
        "counter_reads": int(counters.size),
        **monitor.counts,
    }


@cocotb.test()
async def chip_samples(dut):
    """Run every chip's samples (concurrently); write spikes, v_out, cycles and counters."""
    spec = load_case()
    ports = [Ports(dut, chip["prefix"]) for chip in spec["chips"]]
    for port in ports:
        port.clear(("wr__en", "start", "cfg__valid", "cfg__write"))
    await start(dut)
    per_chip = await run_concurrently(
        run_chip(port, chip) for port, chip in zip(ports, spec["chips"], strict=True)
    )
    totals: Counter[str] = Counter()
    for counts in per_chip:
        totals.update(counts)
    write_report(**totals, per_chip=per_chip)
