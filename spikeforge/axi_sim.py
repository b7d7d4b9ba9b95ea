"""A bundle through its AXI-wrapped chip (``spikeforge.rtl.axi.top.AxiChip``) under cocotb:
``spikeforge rtl-sim --top axi``.

The samples go in as AXI4-Stream packets and the results come back as result records, all
through ``cocotbext-axi`` (``spikeforge.sim.testbenches.axi_stream``), exactly as a host design
would use the chip. What this top shows is the output layer's potentials and the prediction
per sample, so that is what is compared with the golden model; the bare chip's harness
(``spikeforge.rtl_flow``) compares every spike of every layer as well.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikeforge.rtl.axi.host import decode_record
from spikeforge.rtl.axi.registers import register_map
from spikeforge.rtl.axi.top import AxiChip
from spikeforge.rtl.chip.top import ChipPlan
from spikeforge.rtl.gateware import emit
from spikeforge.sim.bundle import bundle_digest
from spikeforge.sim.flow import build_cocotb, test_cocotb

TOPLEVEL = "sf_chip"
TESTBENCH = "spikeforge.sim.testbenches.axi_stream"
#: Verilator options: the clock from cocotb's GPI side, and only the top's ports visible to
#: cocotb (its runner would make every signal public, which is several times slower).
VERILATOR_ARGS = (
    "--no-timing", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
    "--no-public-flat-rw", "--public-depth", "1",
)  # fmt: skip


@dataclass
class AxiRun:
    """The records' results in ``spikeforge run``'s ``pred`` and ``v_out``, the chip's cycles
    per sample (word 2 of each record) and the simulation's figures."""

    plan: ChipPlan
    arrays: dict[str, np.ndarray]
    cycles: np.ndarray
    clock_cycles: int
    seconds: dict[str, float] = field(default_factory=dict)

    def speed_line(self) -> str:
        t = self.seconds
        rate = self.clock_cycles / max(t["simulate"], 1e-9)
        return (
            f"simulation: {self.clock_cycles:,} clock cycles in {t['simulate']:.2f} s through "
            f"cocotbext-axi on one simulator process: {rate:,.0f} cycles/s; generate "
            f"{t['generate']:.1f} s, build {t['build']:.1f} s"
        )


def run_axi(
    plan: ChipPlan,
    x: np.ndarray,
    *,
    sim: str,
    build_dir: Path,
    gap_p: float = 0.0,
    backpressure_p: float = 0.0,
    seed: int = 0,
) -> AxiRun:
    """Emit and build ``plan``'s AXI top in ``build_dir``, stream ``x`` through it."""
    build_dir = Path(build_dir)
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    regs = register_map(plan, int(bundle_digest(plan.bundle)[:8], 16), TOPLEVEL)
    verilog = emit.write(AxiChip(plan, regs), TOPLEVEL, build_dir / f"{TOPLEVEL}.v")
    seconds["generate"] = time.perf_counter() - t
    t = time.perf_counter()
    args = VERILATOR_ARGS if sim == "verilator" else ()
    build_cocotb(
        sources=[verilog], toplevel=TOPLEVEL, sim=sim, build_dir=build_dir / sim, build_args=args
    )
    seconds["build"] = time.perf_counter() - t
    case = {
        "seed": seed,
        "regs": {r.name: r.offset for r in regs.registers},
        "writes": [],
        "samples": [list(map(int, w)) for w in plan.sample_words(x)],
        "gap_p": gap_p,
        "backpressure_p": backpressure_p,
    }
    t = time.perf_counter()
    report = test_cocotb(
        toplevel=TOPLEVEL, test_module=TESTBENCH, sim=sim, build_dir=build_dir / sim, case=case
    )
    seconds["running"] = time.perf_counter() - t
    seconds["simulate"] = float(report["seconds"])
    n_out = plan.bundle.layers[-1].n_out
    records = [decode_record(words, n_out) for words in report["records"]]
    v_out = np.stack([r.v_out for r in records]) if records else np.zeros((0, n_out), np.int64)
    arrays = {"pred": np.array([r.pred for r in records], dtype=np.int64), "v_out": v_out}
    cycles = np.array([r.cycles for r in records], dtype=np.int64)
    return AxiRun(plan, arrays, cycles, int(report["cycles"]), seconds)
