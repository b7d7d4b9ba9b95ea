"""The configuration bus (spikeforge.rtl.gateware.config_bus): address packing, the decoder's
routing and read-answer timing, and the cores' and chip's use of one signature."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from spikeforge.rtl.chip.top import Chip, ChipOptions, plan_chip
from spikeforge.rtl.cores.conv_core import ConvCore, ConvCoreParams
from spikeforge.rtl.cores.core import Core, CoreParams, Region
from spikeforge.rtl.gateware.config_bus import (
    CFG_DATA_BITS,
    CFG_READ_LATENCY,
    DECODER_LATENCY,
    ConfigDecoder,
    address_layout,
    config_signature,
    pack_address,
    target_layout,
)

from tests.sim.builders import bundle, linear


def test_pack_address_places_fields_lowest_first():
    layout = address_layout({"index": 4, "axon": 3, "region": 3})
    assert layout.size == 10
    assert pack_address(layout, index=5, axon=6, region=2) == 2 << 7 | 6 << 4 | 5
    assert pack_address(layout, region=1) == 1 << 7
    assert pack_address(target_layout(5, 3), target=2, sub=17) == 2 << 5 | 17
    assert target_layout(5, 3).size == 5 + 2 and target_layout(5, 1).size == 5 + 1


@pytest.mark.parametrize("params", [CoreParams(n_axons=9, n_neurons=40, lanes=4),
                                    CoreParams(n_axons=1, n_neurons=1)])  # fmt: skip
def test_core_addresses_are_region_axon_index(params):
    """``CoreParams.addr``: ``region << (axon_bits + index_bits) | axon << index_bits | index``."""
    ib, ab = params.cfg_index_bits, params.axon_bits
    checked = 0
    for region in Region:
        for axon in range(params.n_axons):
            for index in (0, params.n_neurons - 1, (1 << ib) - 1):
                want = int(region) << (ab + ib) | axon << ib | index
                assert params.addr(region, index, axon) == want
                checked += 1
    assert params.cfg_addr_bits == 3 + ab + ib
    assert checked == len(Region) * params.n_axons * 3


def test_cores_and_chip_share_one_signature():
    """Core, ConvCore and Chip serve ``config_signature``; a chip address is the core's address
    in the ``sub`` field under the core's number."""
    core = Core(CoreParams(n_axons=3, n_neurons=5))
    conv = ConvCore(ConvCoreParams(in_shape=(1, 4, 4), out_channels=2))
    w = np.arange(-6, 6).reshape(4, 3)
    plan = plan_chip(
        bundle([linear("a", w), linear("b", w.T, fire="accum")], encoding="spikes"),
        ChipOptions(lanes=2, max_neurons=3),
    )
    chip = Chip(plan)
    served = [(c, c.params.cfg_addr_bits) for c in (core, conv)] + [(chip, plan.cfg_addr_bits)]
    for component, bits in served:
        assert component.signature.members["cfg"].signature == config_signature(bits).flip()
    assert config_signature(7).members["rdata"].shape == CFG_DATA_BITS
    checked = 0
    for k, s in enumerate(plan.slices):
        for n in range(s.size):
            want = k << plan.sub_bits | s.params.addr(Region.V, n)
            assert plan.core_addr(k, Region.V, n) == want
            checked += 1
    assert plan.n_cores == 3 and checked == 4 + 3


def test_decoder_routes_accesses_and_answers_from_the_read_target():
    """Random traffic; each target answers the reads it took ``CFG_READ_LATENCY`` cycles later
    (random data, and random garbage on ``rdata`` while ``rvalid`` is low). Every cycle, each
    target's ``valid``/``addr`` and the bus' ``ready`` match the rule, and the bus' ``rvalid``/
    ``rdata`` are the answering target's, ``DECODER_LATENCY`` cycles after it gave them, or
    ``(0, 0)``; addresses past the last target reach no target."""
    widths = [3, 5, 2]
    sub_bits = 5
    dut = ConfigDecoder(sub_bits, widths)
    targets = [dut.target(k) for k in range(len(widths))]
    rng = random.Random(17)
    counts = {"cycles": 0, "selected": 0, "beyond": 0, "answers": 0, "idle": 0}

    async def bench(ctx):
        took: list[int | None] = []  # per cycle: the target that took a read, if any
        given: list[tuple[int, int]] = []  # per cycle: the answer on the bus side of the targets
        for _ in range(600):
            target, sub = rng.randrange(4), rng.randrange(1 << sub_bits)  # target 3: none
            valid, write, wdata = rng.randrange(2), rng.randrange(2), rng.getrandbits(32)
            ctx.set(dut.cfg.valid, valid)
            ctx.set(dut.cfg.write, write)
            ctx.set(dut.cfg.addr, pack_address(dut.layout, target=target, sub=sub))
            ctx.set(dut.cfg.wdata, wdata)
            readies = [rng.randrange(2) for _ in targets]
            answering = took[-CFG_READ_LATENCY] if len(took) >= CFG_READ_LATENCY else None
            answer = (0, 0)
            for k, port in enumerate(targets):
                data = rng.getrandbits(32)
                ctx.set(port.ready, readies[k])
                ctx.set(port.rvalid, int(answering == k))
                ctx.set(port.rdata, data)
                if answering == k:
                    answer = (1, data)
            given.append(answer)
            for k, (port, width) in enumerate(zip(targets, widths, strict=True)):
                assert ctx.get(port.valid) == (valid and target == k)
                assert ctx.get(port.addr) == sub & ((1 << width) - 1)
                assert (ctx.get(port.write), ctx.get(port.wdata)) == (write, wdata)
            selected = target < len(widths)
            assert ctx.get(dut.cfg.ready) == (readies[target] if selected else 0)
            took.append(target if selected and valid and not write and readies[target] else None)
            if len(given) > DECODER_LATENCY:
                want = given[-1 - DECODER_LATENCY]
                assert (ctx.get(dut.cfg.rvalid), ctx.get(dut.cfg.rdata)) == want
                counts["answers" if want[0] else "idle"] += 1
            counts["cycles"] += 1
            counts["selected" if selected else "beyond"] += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert counts["cycles"] == 600 and counts["beyond"] > 100
    assert counts["answers"] > 40 and counts["idle"] > 300


def test_decoder_refuses_a_target_wider_than_sub():
    with pytest.raises(ValueError, match="target address widths"):
        ConfigDecoder(4, [3, 5])
