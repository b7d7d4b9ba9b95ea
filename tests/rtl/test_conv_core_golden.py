"""Layer-level cross-check: random conv2d layers on a ``ConvCore`` against
``spikeforge.sim.golden.run``.

Inputs go in as SPIKE events: one per input spike (``spikes`` encoding), or ``x`` events of the
same input per step (``direct`` encoding with small codes: duplicate events, in shuffled order).
Before the compared samples, a partial sample is cut off by a CLEAR (mid-step). Every out event,
every ``v`` after every step and (spike encoding) the counters are compared with the golden
model; the driver inserts random input gaps and output back-pressure. Amaranth simulator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from spikeforge.rtl.cores.conv_core import ConvCore, ConvCoreParams, conv_core_for_layer
from spikeforge.rtl.cores.conv_core_model import ConvCoreModel
from spikeforge.rtl.cores.core import Op, Reg, Region
from spikeforge.sim.bundle import Layer
from spikeforge.sim.golden import run
from spikeforge.sim.semantics import Leak, signed_range
from spikeforge.sim.testbenches.conv_core_bench import ConvDriver
from spikeforge.sim.testbenches.core_bench import simulate_cases

from tests.sim.builders import bundle


@dataclass
class Spec:
    """One random conv layer: geometry, lanes, neuron modes and the input encoding."""

    in_shape: tuple[int, int, int]
    out_c: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    lanes: int
    leak: Leak
    reset: str = "sub"
    fire: str = "lif"
    theta: str = "layer"  # "layer", "one", "max", "neuron"
    bias: str = "none"  # "none", "int", "neuron"
    encoding: str = "spikes"
    w_bits: int = 6
    v_bits: int = 12


SPECS = {
    "k3s1p1": Spec((2, 6, 6), 3, (3, 3), (1, 1), (1, 1), 2, Leak("mult", 200, 8),
                   theta="neuron", bias="neuron"),
    "k3s2p1": Spec((1, 8, 8), 4, (3, 3), (2, 2), (1, 1), 4, Leak("shift", k=2), "zero",
                   theta="one"),
    "k5s1p0_sat": Spec((1, 7, 7), 2, (5, 5), (1, 1), (0, 0), 1, Leak("none"), "none",
                       theta="max", encoding="direct", w_bits=8, v_bits=8),
    "k1_l8": Spec((4, 4, 4), 6, (1, 1), (1, 1), (0, 0), 8, Leak("mult", 3, 2), bias="int"),
    "k2s2_l16": Spec((3, 6, 5), 5, (2, 2), (2, 2), (0, 0), 16, Leak("shift", k=1), "zero",
                     theta="neuron"),
    "k4p1_accum": Spec((2, 5, 5), 3, (4, 4), (1, 1), (1, 1), 4, Leak("none"), "none",
                       "accum", encoding="direct"),
    "k3s2p0_l8": Spec((2, 9, 9), 8, (3, 3), (2, 2), (0, 0), 8, Leak("mult", 230, 8), "none"),
    "k5s2p1_sat": Spec((1, 9, 7), 3, (5, 5), (2, 2), (1, 1), 2, Leak("shift", k=3), v_bits=8,
                       w_bits=7, theta="neuron", bias="neuron"),
}  # fmt: skip

N_SAMPLES, T_STEPS = 2, 3


def _layer(spec: Spec, rng: np.random.Generator) -> Layer:
    lo, hi = signed_range(spec.w_bits)
    weight = rng.integers(lo, hi + 1, size=(spec.out_c, spec.in_shape[0], *spec.kernel))
    weight[rng.random(weight.shape) < 0.2] = 0
    layer = Layer(name="conv", kind="conv2d", weight=weight, in_shape=spec.in_shape,
                  w_bits=spec.w_bits, v_bits=spec.v_bits, threshold=None, leak=spec.leak,
                  reset=spec.reset, fire=spec.fire, stride=spec.stride,
                  padding=spec.padding)  # fmt: skip
    top = signed_range(spec.v_bits)[1]
    scale = int(np.abs(weight).reshape(spec.out_c, -1).sum(axis=1).mean() // 3) + 1
    layer.threshold = {"layer": min(top, scale), "one": 1, "max": top}.get(spec.theta)
    if spec.theta == "neuron":
        theta = rng.integers(1, min(top, 2 * scale) + 1, size=layer.n_out)
        theta[rng.random(layer.n_out) < 0.2] = 1
        theta[rng.random(layer.n_out) < 0.1] = top
        layer.threshold = theta
    if spec.fire == "accum":
        layer.threshold = None
    bias = min(scale, top // 2)
    if spec.bias == "int":
        layer.bias = int(rng.integers(-bias, bias + 1))
    elif spec.bias == "neuron":
        layer.bias = rng.integers(-bias, bias + 1, size=layer.n_out)
    return layer


def _events(x_step: np.ndarray, rng: np.random.Generator) -> list[list[int]]:
    """SPIKE events of one step: input ``i`` ``x[i]`` times, in random order."""
    flat = x_step.reshape(-1)
    events = [[Op.SPIKE.value, int(i), 0] for i in np.flatnonzero(flat) for _ in range(flat[i])]
    return [events[k] for k in rng.permutation(len(events))]


def _case(params: ConvCoreParams, config, layer: Layer, x, golden, rng) -> dict:
    """A cut-off sample, counters cleared, then every sample: CLEAR, steps with v read back."""
    model = ConvCoreModel(params, config)
    junk = [*_events(x[0, 0], rng), [Op.TICK.value, 0, 0], *_events(x[-1, -1], rng)[:5]]
    junk.insert(len(junk) - 2, [Op.CLEAR.value, 0, 0])
    junk.append([Op.CLEAR.value, 0, 0])
    expect = [list(o) for ev in junk for o in model.event(*ev)]
    phases: list[dict] = [
        {"writes": [list(w) for w in config.cfg_writes(params)]},
        {"events": junk, "expect": expect},
        {"writes": [[params.addr(Region.CTRL, Reg.IN_EVENTS), 0]]},
    ]
    spikes = golden.spikes["conv"].reshape(x.shape[0], x.shape[1], -1)
    for sample in range(x.shape[0]):
        if sample:
            phases.append({"events": [[Op.CLEAR.value, 0, 0]], "expect": [[Op.CLEAR.value, 0]]})
        for t in range(x.shape[1]):
            fired = np.flatnonzero(spikes[sample, t])
            expect = [[Op.SPIKE.value, int(n)] for n in fired] + [[Op.TICK.value, 0]]
            events = [*_events(x[sample, t], rng), [Op.TICK.value, 0, 0]]
            phases.append({"events": events, "expect": expect})
            v = golden.potentials["conv"][sample, t].reshape(-1)
            phases.append({"reads": [[params.addr(Region.V, n), int(v[n]), f"v[{n}]"]
                                     for n in range(layer.n_out)]})  # fmt: skip
    counters = golden.counters["conv"]
    regs = [(Reg.OUT_SPIKES, counters.output_spikes)]
    if x.max() <= 1:  # one event per input spike: the golden model's counters
        regs += [(Reg.IN_EVENTS, counters.input_events), (Reg.SYN_OPS, counters.synaptic_ops)]
    phases.append({"reads": [[params.addr(Region.CTRL, r), n, r.name] for r, n in regs]})
    return {"phases": phases, "gap_p": 0.3, "backpressure_p": 0.3, "seed": 7}


@pytest.mark.parametrize("name", list(SPECS))
def test_conv_layer_on_core_matches_golden(name):
    spec = SPECS[name]
    rng = np.random.default_rng(sum(map(ord, name)))
    layer = _layer(spec, rng)
    b = bundle([layer], timesteps=T_STEPS, encoding=spec.encoding, bits=2)
    if spec.encoding == "spikes":
        x = (rng.random((N_SAMPLES, T_STEPS, *spec.in_shape)) < 0.3).astype(np.int64)
        steps = x
    else:
        x = rng.integers(0, 4, size=(N_SAMPLES, *spec.in_shape))
        steps = np.repeat(x[:, None], T_STEPS, axis=1)
    golden = run(b, x, record_potentials=True)
    params, config = conv_core_for_layer(layer, lanes=spec.lanes)
    assert params.out_shape == layer.out_shape
    case = _case(params, config, layer, steps, golden, rng)
    result = simulate_cases(ConvCore(params), params, [case], ConvDriver)
    n_compared = N_SAMPLES * T_STEPS * layer.n_out
    assert result["v_compared"] == n_compared
    fired = golden.counters["conv"].output_spikes
    junk_spikes = sum(e[0] == Op.SPIKE.value for e in case["phases"][1]["expect"])
    assert result.get("out_spike", 0) == fired + junk_spikes
    want_out = sum(len(ph.get("expect", [])) for ph in case["phases"])
    assert result["out_events_compared"] == want_out
    assert result["reads_compared"] == n_compared + len(case["phases"][-1]["reads"])
    pots = golden.potentials["conv"]
    lo, hi = signed_range(spec.v_bits)
    if name.endswith("_sat"):
        assert (pots == hi).any() or (pots == lo).any(), "saturation not reached"
    if spec.fire == "lif":
        assert fired > 0
