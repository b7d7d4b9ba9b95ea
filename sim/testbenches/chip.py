"""cocotb testbench: chips in the ``sf_chip_tb`` shell (``spikeforge.rtl.harness.shell``) over
a range of samples.

Python wakes once per batch: it writes each chip's stimulus file for the batch (the words of
``ChipPlan.encoder``, unpickled without the gateware, so Amaranth is never imported here),
toggles ``go`` and waits for ``batches_done`` to count the batch. The shell drives every word,
start pulse and configuration read and writes every stage event and read answer to its files
itself; ``spikeforge.rtl.harness.output`` reads them back on the host.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import with_timeout
from cocotb.utils import get_sim_time
from spikeforge.rtl.harness.stimulus import (
    SHELL_PERIOD_NS,
    ShellJob,
    stim_file,
    write_stimulus,
)
from spikeforge.sim.testbenches.case import load_case, write_report


class ChipJob:
    """One chip's share of the run: what feeds it, its inputs and the sample range."""

    def __init__(self, spec: dict[str, Any]):
        with open(spec["plan"], "rb") as f:
            self.shell: ShellJob = pickle.load(f)
        self.x = np.load(spec["inputs"], mmap_mode="r")
        self.lo, self.hi = spec["range"]
        self.batch = self.shell.batch_samples

    @property
    def batches(self) -> int:
        return -(-(self.hi - self.lo) // self.batch)

    def write_batch(self, k: int, b: int) -> tuple[int, int]:
        """Write batch ``b``'s stimulus for chip ``k``; returns its samples and words."""
        lo = min(self.hi, self.lo + b * self.batch)
        hi = min(self.hi, lo + self.batch)
        words = self.shell.encoder.words(np.asarray(self.x[lo:hi])) if hi > lo else []
        write_stimulus(Path(stim_file(k)), words, self.shell.stim_bits)
        return hi - lo, sum(len(w) for w in words)

    def batch_ns(self) -> int:
        """A bound on one batch's simulated time (the hang detector behind the shell's own)."""
        per = self.shell.max_cycles + self.shell.depth + self.shell.n_reads + 16
        return 2 * self.batch * per * SHELL_PERIOD_NS + 1_000_000


@cocotb.test()
async def chip_samples(dut):
    """Every batch of every chip; the shell writes the events and read answers."""
    spec = load_case()
    jobs = [ChipJob(chip) for chip in spec["chips"]]
    counts = [{"samples": 0, "words": 0} for _ in jobs]
    go = 0
    dut.go.value = go
    if spec.get("clock", True):
        Clock(dut.clk, SHELL_PERIOD_NS, unit="ns").start()
    limit = max(job.batch_ns() for job in jobs)
    started = time.perf_counter()
    for b in range(max(job.batches for job in jobs)):
        for k, job in enumerate(jobs):
            samples, words = job.write_batch(k, b)
            counts[k]["samples"] += samples
            counts[k]["words"] += words
        go ^= 1
        dut.go.value = go
        await with_timeout(dut.batches_done.value_change, limit, "ns")
        assert not int(dut.failed.value), "the shell reported a failure (see the log above)"
    write_report(
        batches=int(dut.batches_done.value),
        per_chip=counts,
        seconds=time.perf_counter() - started,
        clock_cycles=round(get_sim_time("ns") / SHELL_PERIOD_NS),
    )
