"""cocotb testbench: ``spikeforge.rtl.gateware.saturate.SaturatingAccumulator`` against
``spikeforge.sim.semantics.saturate``."""

from __future__ import annotations

import random

import cocotb
from cocotb.triggers import FallingEdge
from spikeforge.sim.semantics import saturate, signed_range
from spikeforge.sim.testbenches.case import load_case, write_report
from spikeforge.sim.testbenches.harness import Ports, start


@cocotb.test()
async def random_cycles(dut):
    """Every cycle: random enable/clear/input (extremes weighted in); compare the register."""
    case = load_case()
    rng = random.Random(case["seed"])
    in_bits, acc_bits, n_cycles = case["in_bits"], case["acc_bits"], case["cycles"]
    lo, hi = signed_range(in_bits)

    Ports(dut).clear(("en", "clr", "x"))
    await start(dut, reset_cycles=1)

    model = 0
    compared = saturations = 0
    for _ in range(n_cycles):
        await FallingEdge(dut.clk)
        got = dut.acc.value.to_signed()
        assert got == model, f"cycle {compared}: acc={got}, model={model}"
        compared += 1
        saturations += model in signed_range(acc_bits)
        en, clr = rng.random() < 0.9, rng.random() < 0.01
        x = rng.choice((lo, hi)) if rng.random() < 0.3 else rng.randint(lo, hi)
        dut.en.value, dut.clr.value, dut.x.value = int(en), int(clr), x
        if clr:
            model = 0
        elif en:
            model = saturate(model + x, acc_bits)
    write_report(cycles_compared=compared, cycles_at_limit=saturations)
