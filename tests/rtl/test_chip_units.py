"""The chip's stream units (``spikeforge.rtl.chip.units``) under random back-pressure: every
event reaches its slices exactly once and in order, and no ``valid`` depends on a ``ready``; the
skid buffer's ``i.ready`` and ``o.valid`` are registers."""

from __future__ import annotations

import random

from amaranth.sim import Simulator
from spikeforge.rtl.chip.units import Fanout, Merge, SkidBuffer, stage_layout
from spikeforge.rtl.cores.core import Op

SLICES = [(0, 5, 3), (5, 7, 3), (12, 4, 2)]  # (first neuron, count, index bits)


def _events(rng: random.Random, n: int) -> list[tuple[Op, int, int]]:
    ops = [Op.SPIKE, Op.SPIKE, Op.TICK, Op.CLEAR, Op.LOAD, Op.LOAD]
    return [(rng.choice(ops), rng.randrange(16), rng.randrange(-100, 100)) for _ in range(n)]


def _expected(events) -> list[list[tuple[Op, int, int]]]:
    """What each slice must receive: broadcasts unchanged, LOADs to their owner, local index."""
    want = [[] for _ in SLICES]
    for op, index, value in events:
        for k, (first, size, _) in enumerate(SLICES):
            if op != Op.LOAD:
                want[k].append((op, index % 8 if k < 2 else index % 4, value))
            elif first <= index < first + size:
                want[k].append((op, index - first, value))
    return want


def test_fanout_delivers_every_event_once_under_back_pressure():
    rng = random.Random(5)
    events = _events(rng, 400)
    dut = Fanout(4, 8, SLICES)
    outs = [getattr(dut, f"o{k}") for k in range(len(SLICES))]
    got = [[] for _ in SLICES]
    checks = {"valid_independent_of_ready": 0}

    async def bench(ctx):
        pending = list(events)
        while pending:
            op, index, value = pending[0]
            present = rng.random() < 0.8
            ctx.set(dut.i.valid, present)
            ctx.set(dut.i.payload.op, op)
            ctx.set(dut.i.payload.index, index)
            ctx.set(dut.i.payload.value, value)
            # Valid must not change when only the readies change.
            valids = []
            for _ in range(2):
                for o in outs:
                    ctx.set(o.ready, rng.random() < 0.5)
                valids.append([ctx.get(o.valid) for o in outs])
            assert valids[0] == valids[1]
            checks["valid_independent_of_ready"] += 1
            for k, o in enumerate(outs):
                if ctx.get(o.valid) and ctx.get(o.ready):
                    p = o.payload
                    got[k].append((Op(ctx.get(p.op)), ctx.get(p.index), ctx.get(p.value)))
            if present and ctx.get(dut.i.ready):
                pending.pop(0)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    want = _expected(events)
    assert got == want
    assert sum(map(len, got)) > 600 and checks["valid_independent_of_ready"] > 400


def test_merge_keeps_slice_order_and_one_marker_under_back_pressure():
    """Per step, slice 0's spikes, then slice 1's ... (offset into the layer's numbering), then
    one TICK or CLEAR from the last slice; random gaps in, random back-pressure out."""
    rng = random.Random(9)
    offsets, bits = [0, 5, 12], [3, 3, 2]
    dut = Merge(bits, offsets, 4)
    ins = [getattr(dut, f"i{k}") for k in range(3)]
    steps = []
    for _ in range(60):
        spikes = [sorted(rng.sample(range(1 << b), rng.randrange(3))) for b in bits]
        steps.append((spikes, rng.choice([Op.TICK, Op.CLEAR])))
    queues = [
        [e for spikes, marker in steps for e in [(Op.SPIKE, s) for s in spikes[k]] + [(marker, 0)]]
        for k in range(3)
    ]
    want = [
        e
        for spikes, marker in steps
        for e in [(Op.SPIKE, s + offsets[k]) for k in range(3) for s in spikes[k]] + [(marker, 0)]
    ]
    got = []

    async def bench(ctx):
        while len(got) < len(want):
            present = []
            for k, i in enumerate(ins):
                on = bool(queues[k]) and rng.random() < 0.7
                present.append(on)
                ctx.set(i.valid, on)
                if queues[k]:
                    ctx.set(i.payload.op, queues[k][0][0])
                    ctx.set(i.payload.index, queues[k][0][1])
            ctx.set(dut.o.ready, 0)
            before = ctx.get(dut.o.valid)
            ctx.set(dut.o.ready, rng.random() < 0.6)
            assert ctx.get(dut.o.valid) == before  # valid is no function of ready
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append((Op(ctx.get(dut.o.payload.op)), ctx.get(dut.o.payload.index)))
            taken = [present[k] and ctx.get(i.ready) for k, i in enumerate(ins)]
            await ctx.tick()
            for k, t in enumerate(taken):
                if t:
                    queues[k].pop(0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert got == want and len(want) > 100
    assert not any(queues)


def _skid_run(events, p_valid: float, p_ready: float, seed: int):
    """Drive a ``SkidBuffer`` with ``events`` (random gaps in, random back-pressure out);
    returns what left it, the cycles taken and how many register checks were made."""
    rng = random.Random(seed)
    dut = SkidBuffer(stage_layout(6))
    got, checks = [], {"registered": 0, "cycles": 0}

    async def bench(ctx):
        pending = list(events)
        while len(got) < len(events) and checks["cycles"] < 20 * len(events):
            # Both sides' inputs change within the cycle: the outputs must not follow.
            outs = []
            for _ in range(2):
                present = bool(pending) and rng.random() < p_valid
                ctx.set(dut.i.valid, present)
                if pending:
                    ctx.set(dut.i.payload.op, pending[0][0])
                    ctx.set(dut.i.payload.index, pending[0][1])
                ctx.set(dut.o.ready, rng.random() < p_ready)
                outs.append((ctx.get(dut.i.ready), ctx.get(dut.o.valid), ctx.get(dut.o.payload)))
            assert outs[0] == outs[1]
            checks["registered"] += 1
            if ctx.get(dut.o.valid) and ctx.get(dut.o.ready):
                got.append((Op(ctx.get(dut.o.payload.op)), ctx.get(dut.o.payload.index)))
            if present and ctx.get(dut.i.ready):
                pending.pop(0)
            checks["cycles"] += 1
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return got, checks


def test_skid_buffer_keeps_every_event_once_in_order_with_registered_handshake():
    rng = random.Random(13)
    ops = [Op.SPIKE, Op.SPIKE, Op.TICK, Op.CLEAR, Op.LOAD]
    events = [(rng.choice(ops), rng.randrange(64)) for _ in range(600)]
    for seed, (p_valid, p_ready) in enumerate([(0.7, 0.5), (0.9, 0.9), (0.4, 0.3), (1.0, 0.6)]):
        got, checks = _skid_run(events, p_valid, p_ready, seed)
        assert got == events and len(got) == 600
        assert checks["registered"] == checks["cycles"] > 600


def test_skid_buffer_passes_one_event_a_cycle_when_never_stalled():
    events = [(Op.SPIKE, k % 64) for k in range(200)]
    got, checks = _skid_run(events, 1.0, 1.0, 0)
    assert got == events
    assert checks["cycles"] == len(events) + 1  # one cycle of latency, then one a cycle
