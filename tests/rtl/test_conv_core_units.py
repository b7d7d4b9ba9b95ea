"""Fast checks of the convolution core: geometry, bank mapping, parameters, small whole cores.

Whole cores run in Amaranth's simulator with the same driver and cases as the cocotb test
(``spikeforge.sim.testbenches.conv_core_bench``), the cycle contract included for every lane count.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from spikeforge.rtl.cores.conv_core import ConvCore, ConvCoreConfig, ConvCoreParams, axis_table
from spikeforge.rtl.cores.conv_core_model import ConvCoreModel
from spikeforge.rtl.cores.core import TICK_LATENCY, Op, Reg, Region
from spikeforge.sim.bundle import Layer
from spikeforge.sim.golden import synaptic_input
from spikeforge.sim.semantics import Leak, signed_range
from spikeforge.sim.testbenches.conv_core_bench import ConvDriver
from spikeforge.sim.testbenches.conv_core_cases import HDL_PARAMS, contract_case, random_case
from spikeforge.sim.testbenches.core_bench import simulate_cases


def _drive(params: ConvCoreParams, cases: list[dict], init: ConvCoreConfig | None = None) -> dict:
    return dict(simulate_cases(ConvCore(params, init), params, cases, driver=ConvDriver))


# -- geometry and the accumulator bank mapping ------------------------------------------------


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
def test_bank_mapping_serves_both_access_patterns(lanes):
    """Bijective; a channel group at one position and a TICK group never share a bank."""
    for out_c, positions in itertools.product([1, 3, 5, 16, 17, 33], [1, 2, 3, 4, 6, 12, 49, 196]):
        p = ConvCoreParams(in_shape=(1, positions, 1), out_channels=out_c, kernel=(1, 1),
                           lanes=lanes)  # fmt: skip
        assert p.positions == positions
        slots = {(p.bank(n), p.bank_addr(n)) for n in range(p.n_neurons)}
        assert len(slots) == p.n_neurons
        assert max(a for _, a in slots) < p.acc_depth
        for g in range(p.groups):
            group = range(g * lanes, min((g + 1) * lanes, p.n_neurons))
            assert len({p.bank(n) for n in group}) == len(group)
        for og, pos in itertools.product(range(p.channel_groups), range(positions)):
            chans = range(og * lanes, min((og + 1) * lanes, out_c))
            banks = [p.bank(o * positions + pos) for o in chans]
            assert len(set(banks)) == len(banks)
            rot = (pos + og * np.gcd(lanes, positions)) % lanes
            perm = p.lane_perm()
            assert banks == [(perm[o - og * lanes] + rot) % lanes for o in chans]
        assert sorted(p.lane_perm()) == list(range(lanes))


def test_reach_and_spike_cycles_match_the_unrolled_kernel():
    rng = np.random.default_rng(3)
    for _ in range(40):
        kh, kw = rng.integers(1, 6, size=2)
        sh, sw = rng.integers(1, 3, size=2)
        ph, pw = rng.integers(0, 2, size=2)
        h, w = int(kh + rng.integers(0, 5)), int(kw + rng.integers(0, 5))
        p = ConvCoreParams(in_shape=(2, h, w), out_channels=int(rng.integers(1, 6)),
                           kernel=(kh, kw), stride=(sh, sw), padding=(ph, pw),
                           lanes=int(rng.choice([1, 2, 4])))  # fmt: skip
        ones = ConvCoreConfig(weights=np.ones((p.out_channels, 2, kh, kw), dtype=np.int64))
        reached = (ones.dense(p) != 0).sum(axis=0) // p.out_channels
        for index in range(p.n_axons):
            ny, nx = p.reach(index)
            assert ny * nx == reached[index]
            assert p.spike_cycles(index) == max(1, int(reached[index]) * p.channel_groups)
        assert p.spike_cycles(p.n_axons) == 1
        assert max(p.spike_cycles(i) for i in range(p.n_axons)) <= p.max_spike_cycles()


def test_axis_table():
    # 5 inputs, padding 1, stride 2, kernel 3 -> 3 outputs
    assert axis_table(5, 1, 2, 3, 3) == [(0, 1, 1), (0, 2, 2), (1, 1, 1), (1, 2, 2), (2, 1, 1)]
    assert axis_table(4, 0, 2, 1, 2) == [(0, 0, 1), (0, 0, 0), (1, 0, 1), (0, 0, 0)]


def test_unrolled_kernel_matches_golden_convolution():
    rng = np.random.default_rng(4)
    weight = rng.integers(-8, 8, size=(3, 2, 3, 2))
    layer = Layer(name="c", kind="conv2d", weight=weight, in_shape=(2, 7, 6), w_bits=4,
                  v_bits=12, threshold=1, stride=(2, 1), padding=(1, 1))  # fmt: skip
    params = ConvCoreParams(in_shape=(2, 7, 6), out_channels=3, kernel=(3, 2), stride=(2, 1),
                            padding=(1, 1), w_bits=4, v_bits=12)  # fmt: skip
    x = rng.integers(0, 3, size=(4, 2, 7, 6))
    dense = ConvCoreConfig(weights=weight).dense(params)
    assert params.out_shape == layer.out_shape
    assert np.array_equal(x.reshape(4, -1) @ dense.T, synaptic_input(layer, x, "int64"))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"in_shape": (1, 4)}, "in_shape"),
        ({"out_channels": 0}, "out_channels"),
        ({"kernel": (0, 3)}, "kernel"),
        ({"stride": (0, 1)}, "stride"),
        ({"padding": (-1, 0)}, "padding"),
        ({"kernel": (6, 3)}, "no output positions"),
        ({"lanes": 3}, "lanes"),
        ({"w_bits": 9}, "w_bits"),
    ],
)
def test_params_are_validated(kwargs, message):
    base = {"in_shape": (1, 4, 4), "out_channels": 2, "kernel": (3, 3)}
    with pytest.raises(ValueError, match=message):
        ConvCoreParams(**{**base, **kwargs})


def test_default_accumulator_is_exact_for_a_full_step():
    """Every input once (or twice) per step at the largest weight fits the accumulator."""
    p = ConvCoreParams(in_shape=(16, 14, 14), out_channels=32, kernel=(3, 3), w_bits=8)
    lo, hi = signed_range(p.acc_bits)
    assert lo <= 2 * p.taps * -128 and hi >= 2 * p.taps * 127
    assert p.acc_bits < ConvCoreParams(in_shape=(16, 14, 14), out_channels=1, kernel=(5, 5),
                                       w_bits=8).acc_bits + 1  # fmt: skip


def test_config_is_validated():
    p = ConvCoreParams(in_shape=(1, 4, 4), out_channels=2, kernel=(3, 3), w_bits=4)
    with pytest.raises(ValueError, match="weights shape"):
        ConvCoreConfig(weights=np.zeros((2, 9))).validate(p)
    with pytest.raises(ValueError, match="w_bits"):
        ConvCoreConfig(weights=np.full((2, 1, 3, 3), 8)).validate(p)


# -- whole cores in Amaranth's simulator ------------------------------------------------------


@pytest.mark.parametrize("lanes", [1, 2, 4, 8, 16])
def test_cycle_contract(lanes):
    """SPIKE max(1, ny*nx*OG), LOAD 1, CLEAR G+2, TICK G+TICK_LATENCY+1 (+extra spikes)."""
    params = ConvCoreParams(in_shape=(2, 5, 4), out_channels=lanes + 1, kernel=(3, 3),
                            stride=(2, 1), padding=(1, 1), lanes=lanes, w_bits=4, v_bits=10,
                            load=True, load_bits=8)  # fmt: skip
    rng = np.random.default_rng(lanes)
    counts = _drive(params, [contract_case(params, rng), contract_case(params, rng)])
    assert counts["cases"] == 2
    assert counts["contract_events"] > 20
    assert params.tick_cycles() == params.groups + TICK_LATENCY + 1
    assert params.clear_cycles() == params.groups + 2


@pytest.mark.parametrize("index", [0, 3, 5], ids=lambda k: f"hdl{k}")
def test_conv_core_matches_model_in_amaranth(index):
    params = HDL_PARAMS[index]
    rng = np.random.default_rng(index)
    cases = [random_case(params, rng, steps=3) for _ in range(3)]
    counts = _drive(params, cases)
    want = sum(len(ph.get("expect", [])) for c in cases for ph in c["phases"])
    assert counts["cases"] == 3
    assert counts["out_events_compared"] == want > 0
    assert counts["v_compared"] == 3 * 3 * params.n_neurons


def test_runs_from_initial_memory_contents_and_reads_back():
    """A core built with ``init`` needs no programming; WEIGHT and ACC read back per neuron."""
    params = ConvCoreParams(in_shape=(2, 4, 4), out_channels=3, kernel=(3, 3), stride=(1, 1),
                            padding=(1, 1), w_bits=4, v_bits=10, lanes=2, bias=True)  # fmt: skip
    rng = np.random.default_rng(5)
    init = ConvCoreConfig(
        weights=rng.integers(-8, 8, size=(3, 2, 3, 3)),
        theta=rng.integers(1, 12, size=params.n_neurons),
        bias=rng.integers(-3, 4, size=params.n_neurons),
        leak=Leak("shift", k=2),
        reset="zero",
    )
    model = ConvCoreModel(params, init)
    events = [[Op.CLEAR.value, 0, 0]] + [[Op.SPIKE.value, int(a), 0] for a in [0, 5, 5, 31]]
    events += [[Op.TICK.value, 0, 0], [Op.SPIKE.value, 17, 0], [Op.TICK.value, 0, 0]]
    expect = [list(out) for ev in events for out in model.event(*ev)]
    pending = [[Op.SPIKE.value, int(a), 0] for a in [6, 6, 20, 40]]
    for ev in pending:
        model.event(*ev)
    n = range(params.n_neurons)
    reads = [[params.addr(Region.V, k), int(model.v[k]), f"v[{k}]"] for k in n]
    reads += [[params.addr(Region.ACC, k), int(model.s[k]), f"acc[{k}]"] for k in n]
    taps = itertools.product(range(3), range(2), range(3), range(3))
    reads += [[params.weight_addr(*t), int(init.weights[t]), "w"] for t in taps]
    reads += [[params.addr(Region.CTRL, Reg.K), 2, "k"], [params.addr(Region.BIAS, 9), 0, "b"]]
    reads[-1][1] = int(init.bias[9])
    case = {
        "phases": [{"events": events, "expect": expect}, {"events": pending, "expect": []},
                   {"reads": reads}],
        "gap_p": 0.0, "backpressure_p": 0.5, "seed": 1,
    }  # fmt: skip
    counts = _drive(params, [case], init)
    assert counts["out_events_compared"] == len(expect) >= 3
    assert counts["reads_compared"] == len(reads)
    assert any(model.s != 0)
