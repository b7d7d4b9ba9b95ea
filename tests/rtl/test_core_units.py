"""Fast Amaranth-simulator tests of the core's pieces and of small whole cores.

The neuron unit and the spike emitter are checked alone; whole cores run the same driver and
cases as the cocotb tests (``spikeforge.sim.testbenches.core_bench``), including the cycle contract
for every lane count.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from spikeforge.rtl.cores.core import (
    TICK_LATENCY,
    Core,
    CoreConfig,
    CoreParams,
    Op,
    Reg,
    Region,
    SpikeEmitter,
)
from spikeforge.rtl.cores.core_model import AccumulatorOverflow, CoreModel
from spikeforge.rtl.cores.neuron import FIRE_CODE, LEAK_CODE, RESET_CODE, NeuronUpdate
from spikeforge.sim.semantics import (
    FIRE_MODES,
    LEAK_MODES,
    RESET_MODES,
    Leak,
    neuron_step,
    signed_range,
)
from spikeforge.sim.testbenches.core_bench import simulate_cases
from spikeforge.sim.testbenches.core_cases import contract_case, random_case


def _run(dut, bench) -> None:
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


# -- neuron update unit -----------------------------------------------------------------------


@pytest.mark.parametrize("v_bits,acc_bits,bias_bits", [(8, 12, 8), (24, 20, 24), (13, 30, 9)])
def test_neuron_update_matches_semantics(v_bits, acc_bits, bias_bits):
    dut = NeuronUpdate(v_bits=v_bits, acc_bits=acc_bits, bias_bits=bias_bits, max_frac=10)
    rng = random.Random(v_bits)
    vlo, vhi = signed_range(v_bits)
    vectors = []
    for _ in range(600):
        frac = rng.randint(0, 10)
        leak = Leak(
            rng.choice(LEAK_MODES), rng.randint(0, 1 << frac), frac, rng.randint(1, v_bits - 1)
        )
        v = rng.choice([vlo, vhi, 0, -1, rng.randint(vlo, vhi)])
        s = rng.choice([*signed_range(acc_bits), rng.randint(*signed_range(acc_bits))])
        bias = rng.randint(*signed_range(bias_bits))
        theta = rng.choice([1, vhi, rng.randint(1, vhi)])
        modes = (rng.choice(RESET_MODES), rng.choice(FIRE_MODES))
        vectors.append((leak, modes, rng.randint(0, acc_bits), v, s, bias, theta))
    got = []

    latency = NeuronUpdate.LATENCY

    async def bench(ctx):
        for vector in [*vectors, *[vectors[0]] * (latency - 1)]:  # the tail flushes the pipeline
            leak, (reset, fire), shift, v, s, bias, theta = vector
            ctx.set(
                dut.cfg,
                {
                    "leak": LEAK_CODE[leak.mode],
                    "reset": RESET_CODE[reset],
                    "fire": FIRE_CODE[fire],
                    "lam": leak.lam,
                    "frac": leak.frac,
                    "k": leak.k,
                    "input_shift": shift,
                },
            )
            for port, value in ((dut.v, v), (dut.s, s), (dut.bias, bias), (dut.theta, theta)):
                ctx.set(port, value)
            ctx.set(dut.valid, 1)
            ctx.set(dut.en, 1)
            await ctx.tick()
            got.append((ctx.get(dut.v_next), ctx.get(dut.spike)))
            if rng.random() < 0.2:  # en low holds every stage, whatever the inputs do
                ctx.set(dut.en, 0)
                ctx.set(dut.v, vlo)
                ctx.set(dut.s, 0)
                await ctx.tick()
                assert (ctx.get(dut.v_next), ctx.get(dut.spike)) == got[-1]
        del got[: latency - 1]

    _run(dut, bench)
    rails = 0
    for (leak, (reset, fire), shift, v, s, bias, theta), out in zip(vectors, got, strict=True):
        a = (s >> shift) + bias
        v_next, spike = neuron_step(np.array([v]), np.array([a]), theta, leak, reset, fire, v_bits)
        assert out == (int(v_next[0]), int(spike[0])), (leak, reset, fire, shift, v, s, bias)
        rails += not vlo < leak.apply(v) + a < vhi
    assert len(got) == 600 and rails > 50


# -- spike emitter ----------------------------------------------------------------------------


@pytest.mark.parametrize("lanes", [1, 4, 16])
def test_emitter_orders_spikes_and_charges_extra_spikes(lanes):
    params = CoreParams(n_axons=2, n_neurons=lanes * 5, lanes=lanes)
    dut = SpikeEmitter(params)
    rng = random.Random(lanes)
    masks = [rng.choice([0, 1 << rng.randrange(lanes), rng.getrandbits(lanes)]) for _ in range(5)]
    log = {"events": [], "cycles": 0}

    async def bench(ctx):
        tokens = [(0, g, mask) for g, mask in enumerate(masks)] + [(1, 0, 0)]
        ctx.set(dut.o.ready, 1)
        while tokens or not log["events"] or log["events"][-1][0] != Op.TICK.value:
            if tokens:
                tick, group, mask = tokens[0]
                ctx.set(dut.i.valid, 1)
                ctx.set(dut.i.payload, {"tick": tick, "group": group, "mask": mask})
            else:
                ctx.set(dut.i.valid, 0)
            if tokens and ctx.get(dut.i.ready):
                tokens.pop(0)
            if ctx.get(dut.o.valid):
                payload = ctx.get(dut.o.payload)
                log["events"].append((payload.op.value, payload.index))
            await ctx.tick()
            log["cycles"] += 1

    _run(dut, bench)
    want = [(Op.SPIKE.value, g * lanes + k) for g, m in enumerate(masks) for k in range(lanes)]
    want = [ev for ev in want if masks[ev[1] // lanes] >> (ev[1] % lanes) & 1]
    assert log["events"] == [*want, (Op.TICK.value, 0)]
    extra = sum(max(0, bin(m).count("1") - 1) for m in masks)
    assert log["cycles"] == len(masks) + 2 + extra  # one token a cycle, the TICK, one drain


# -- whole cores ------------------------------------------------------------------------------


def _drive(params: CoreParams, cases: list[dict], init: CoreConfig | None = None) -> dict:
    return dict(simulate_cases(Core(params, init), params, cases))


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
def test_cycle_contract(lanes):
    """SPIKE G, LOAD 1, CLEAR G+1, TICK G+9 (+1 per extra spike in a group), busy == sum."""
    params = CoreParams(n_axons=5, n_neurons=3 * lanes - 1 if lanes > 1 else 4, lanes=lanes,
                        w_bits=4, v_bits=10, load=True, load_bits=8)  # fmt: skip
    rng = np.random.default_rng(lanes)
    counts = _drive(params, [contract_case(params, rng), contract_case(params, rng)])
    assert counts["cases"] == 2
    assert counts["contract_events"] > 20
    assert params.tick_cycles() == params.groups + TICK_LATENCY
    assert TICK_LATENCY == 9  # the figure in the Core docstring


@pytest.mark.parametrize(
    "params",
    [
        CoreParams(n_axons=11, n_neurons=6, w_bits=3, v_bits=8, lanes=1, bias=True, load=True,
                   load_bits=6),
        CoreParams(n_axons=7, n_neurons=21, w_bits=8, v_bits=24, lanes=8, neuron_threshold=False),
        CoreParams(n_axons=9, n_neurons=4, w_bits=5, v_bits=12, lanes=4, load=True, load_bits=9),
    ],
    ids=["l1", "l8", "one_group"],
)  # fmt: skip
def test_core_matches_model_in_amaranth(params):
    rng = np.random.default_rng(params.lanes)
    cases = [random_case(params, rng, steps=3) for _ in range(4)]
    counts = _drive(params, cases)
    want = sum(len(ph.get("expect", [])) for c in cases for ph in c["phases"])
    assert counts["cases"] == 4
    assert counts["out_events_compared"] == want > 0
    assert counts["v_compared"] == 4 * 3 * params.n_neurons


def test_core_runs_from_initial_memory_contents():
    """A core built with ``init`` needs no programming: weights, theta, bias, modes all preset."""
    params = CoreParams(n_axons=4, n_neurons=6, w_bits=4, v_bits=10, lanes=2, bias=True)
    rng = np.random.default_rng(5)
    init = CoreConfig(
        weights=rng.integers(-8, 8, size=(6, 4)),
        theta=rng.integers(1, 12, size=6),
        bias=rng.integers(-3, 4, size=6),
        leak=Leak("shift", k=2),
        reset="zero",
    )
    model = CoreModel(params, init)
    events = [[Op.CLEAR.value, 0, 0]] + [[Op.SPIKE.value, int(a), 0] for a in [0, 1, 1, 3]]
    events += [[Op.TICK.value, 0, 0], [Op.SPIKE.value, 2, 0], [Op.TICK.value, 0, 0]]
    expect = [out for ev in events for out in model.event(*ev)]
    reads = [[params.addr(Region.V, n), int(model.v[n]), f"v[{n}]"] for n in range(6)]
    reads += [[params.addr(Region.WEIGHT, n, a), int(init.weights[n, a]), "w"] for n in (0, 5)
              for a in range(4)]  # fmt: skip
    reads += [[params.addr(Region.CTRL, Reg.K), 2, "k"], [params.addr(Region.BIAS, 5), 0, "b"]]
    reads[-1][1] = int(init.bias[5])
    case = {"phases": [{"events": events, "expect": expect}, {"reads": reads}]}
    counts = _drive(params, [{**case, "gap_p": 0.0, "backpressure_p": 0.5, "seed": 1}], init)
    assert counts["out_events_compared"] == len(expect) >= 3
    assert counts["reads_compared"] == len(reads)


def test_configuration_port_reads_back_what_it_wrote():
    params = CoreParams(n_axons=3, n_neurons=5, v_bits=12, lanes=4, bias=True)
    targets = [
        (params.addr(Region.CTRL, Reg.LAM), 200),
        (params.addr(Region.CTRL, Reg.FRAC), 9),
        (params.addr(Region.THETA, 4), 77),
        (params.addr(Region.BIAS, 1), -5),
        (params.addr(Region.V, 3), -2048),
        (params.addr(Region.WEIGHT, 2, 1), 9),
        (params.addr(Region.WEIGHT, 3, 1), -128),
    ]
    writes = [[addr, value & 0xFFFFFFFF] for addr, value in targets]
    reads = [[addr, value, f"r{k}"] for k, (addr, value) in enumerate(targets)]
    reads.append([params.addr(Region.WEIGHT, 1, 1), 0, "neighbour lane untouched"])
    reads.append([params.addr(Region.CTRL, Reg.IN_EVENTS), 0, "counter cleared"])
    case = {"phases": [{"writes": writes}, {"reads": reads}], "seed": 2}
    counts = _drive(params, [{**case, "gap_p": 0.0, "backpressure_p": 0.0}])
    assert counts["reads_compared"] == len(reads)


# -- parameters, configurations and the model -------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"w_bits": 1}, "w_bits"),
        ({"w_bits": 9}, "w_bits"),
        ({"v_bits": 7}, "v_bits"),
        ({"v_bits": 25}, "v_bits"),
        ({"lanes": 3}, "lanes"),
        ({"leak_modes": ("exp",)}, "leak_modes"),
        ({"acc_bits": 40}, "acc_bits"),
    ],
)
def test_params_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CoreParams(n_axons=4, n_neurons=4, **kwargs)


def test_default_accumulator_is_exact_for_a_full_step():
    params = CoreParams(n_axons=100, n_neurons=3, w_bits=8)
    lo, hi = signed_range(params.acc_bits)
    assert lo <= 2 * 100 * -128
    assert hi >= 2 * 100 * 127


@pytest.mark.parametrize(
    "change,message",
    [
        ({"weights": np.full((3, 2), 8)}, "w_bits"),
        ({"theta": 0}, "theta"),
        ({"theta": 512}, "theta"),
        ({"bias": 1}, "bias"),
        ({"leak": Leak("mult", lam=300, frac=8)}, "lam"),
        ({"leak": Leak("shift", k=10)}, "k"),
        ({"input_shift": -1}, "input_shift"),
    ],
)
def test_configs_are_validated(change, message):
    params = CoreParams(n_axons=2, n_neurons=3, w_bits=4, v_bits=10)
    config = CoreConfig(weights=np.zeros((3, 2), dtype=np.int64), theta=5)
    for key, value in change.items():
        setattr(config, key, value)
    with pytest.raises(ValueError, match=message):
        config.validate(params)


def test_model_refuses_an_overflowing_stimulus():
    params = CoreParams(n_axons=2, n_neurons=1, w_bits=8)
    model = CoreModel(params, CoreConfig(weights=np.array([[127, 127]]), theta=100))
    with pytest.raises(AccumulatorOverflow):
        for _ in range(1 << params.acc_bits):
            model.event(Op.SPIKE.value, 0)
