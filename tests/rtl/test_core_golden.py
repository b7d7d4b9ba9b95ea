"""Layer-level cross-check: each layer of a small bundle on its own core against
``spikeforge.sim.golden``.

Layer 1 takes the input as SPIKE events (``spikes`` encoding) or as LOAD events carrying the
exact sums ``W x`` (``direct`` encoding, what the PIM periphery sends); layer ``l > 1`` takes
the golden spikes of layer ``l - 1``. Every out event, every ``v`` after every step and (for
spike-driven layers) the counters are compared with ``spikeforge.sim.golden.run``. Amaranth
simulator.
"""

from __future__ import annotations

import numpy as np
import pytest
from spikeforge.rtl.cores.core import Core, CoreConfig, CoreParams, Op, Reg, Region, core_for_layer
from spikeforge.sim.golden import run, sum_bound
from spikeforge.sim.semantics import Leak
from spikeforge.sim.testbenches.core_bench import simulate_cases

from tests.sim.builders import bundle, linear


def _bundle(encoding: str, rng: np.random.Generator):
    w1 = rng.integers(-8, 8, size=(10, 12))
    w2 = rng.integers(-8, 8, size=(4, 10))
    fc1 = linear("fc1", w1, w_bits=4, v_bits=12, threshold=rng.integers(3, 20, size=10),
                 leak=Leak("mult", lam=200, frac=8), reset="sub", input_shift=2 if encoding
                 == "direct" else 0, bias=rng.integers(-2, 3, size=10))  # fmt: skip
    out = linear("out", w2, w_bits=4, v_bits=16, fire="accum")
    return bundle([fc1, out], timesteps=5, encoding=encoding, bits=3)


def _layer_case(params: CoreParams, config: CoreConfig, steps: list, spikes, potentials, counts):
    """One case per sample: CLEAR, then per step the events, TICK and all ``v`` read back."""
    phases: list[dict] = [{"writes": [list(w) for w in config.cfg_writes(params)]}]
    phases.append({"writes": [[params.addr(Region.CTRL, Reg.IN_EVENTS), 0]]})
    for sample, sample_steps in enumerate(steps):
        phases.append({"events": [[Op.CLEAR.value, 0, 0]], "expect": [[Op.CLEAR.value, 0]]})
        for t, events in enumerate(sample_steps):
            fired = np.flatnonzero(spikes[sample, t])
            expect = [[Op.SPIKE.value, int(n)] for n in fired] + [[Op.TICK.value, 0]]
            phases.append({"events": [*events, [Op.TICK.value, 0, 0]], "expect": expect})
            v = potentials[sample, t]
            reads = [[params.addr(Region.V, n), int(v[n]), f"v[{n}]"] for n in range(len(v))]
            phases.append({"reads": reads})
    if counts is not None:
        regs = [(Reg.IN_EVENTS, counts.input_events), (Reg.SYN_OPS, counts.synaptic_ops)]
        regs.append((Reg.OUT_SPIKES, counts.output_spikes))
        phases.append({"reads": [[params.addr(Region.CTRL, r), n, r.name] for r, n in regs]})
    return {"phases": phases, "gap_p": 0.3, "backpressure_p": 0.3, "seed": 7}


def _spike_events(train: np.ndarray) -> list[list[list[int]]]:
    """``[N, T, n]`` 0/1 spikes as SPIKE events, per sample and step."""
    return [
        [[[Op.SPIKE.value, int(i), 0] for i in np.flatnonzero(step)] for step in sample]
        for sample in train
    ]


@pytest.mark.parametrize("encoding", ["spikes", "direct"])
def test_layers_on_cores_match_golden(encoding):
    rng = np.random.default_rng(11)
    b = _bundle(encoding, rng)
    n, t = 3, b.timesteps
    if encoding == "spikes":
        x = (rng.random((n, t, 12)) < 0.4).astype(np.int64)
    else:
        x = rng.integers(0, 8, size=(n, 12))
    golden = run(b, x, record_potentials=True)
    compared = 0
    for index, layer in enumerate(b.layers):
        first_direct = index == 0 and encoding == "direct"
        load_bits = sum_bound(layer.weight, 7).bit_length() + 2
        params, config = core_for_layer(layer, lanes=2, load=first_direct, load_bits=load_bits)
        if first_direct:  # LOAD(n, s[n]) every step: the exact sums, as the PIM periphery sends
            sums = x @ layer.weight.T
            loads = [[[Op.LOAD.value, j, int(s[j])] for j in range(layer.n_out)] for s in sums]
            steps = [[step] * t for step in loads]
            counts = None
        else:
            train = x if index == 0 else golden.spikes[b.layers[index - 1].name]
            steps, counts = _spike_events(train), golden.counters[layer.name]
        spikes = golden.spikes[layer.name].reshape(n, t, -1)
        case = _layer_case(params, config, steps, spikes, golden.potentials[layer.name], counts)
        result = simulate_cases(Core(params), params, [case])
        assert result["v_compared"] == n * t * layer.n_out
        fired = golden.counters[layer.name].output_spikes
        assert result.get("out_spike", 0) == spikes.sum() == fired
        compared += result["out_events_compared"]
    assert golden.counters["fc1"].output_spikes > 10
    assert compared > 0
