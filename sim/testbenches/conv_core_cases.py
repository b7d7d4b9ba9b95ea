"""Randomised cases for ``spikeforge.rtl.cores.conv_core.ConvCore``, in ``core_cases``' JSON-ready
case format.

Expectations come from ``spikeforge.rtl.cores.conv_core_model.ConvCoreModel``; the phases,
stimulus style and read-backs are ``core_cases``'. Also here: the parameter sets the HDL test
builds.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from spikeforge.rtl.cores.conv_core import ConvCoreConfig, ConvCoreParams
from spikeforge.rtl.cores.conv_core_model import ConvCoreModel
from spikeforge.rtl.cores.core import Op, Reg, Region
from spikeforge.rtl.cores.core_model import AccumulatorOverflow
from spikeforge.sim.semantics import signed_range
from spikeforge.sim.testbenches.core_cases import (
    _counter_reads,
    _v_presets,
    _v_reads,
    finish_case,
    random_neuron_settings,
    random_weights,
)


def _p(**kw: Any) -> ConvCoreParams:
    return ConvCoreParams(**kw)


#: Parameter sets of the cocotb build: stride 1/2, padding 0/1, kernels 1..5, lanes 1..16,
#: w_bits 2..8, v_bits 8..24, with and without per-neuron thresholds, bias and LOAD.
HDL_PARAMS: tuple[ConvCoreParams, ...] = (
    _p(in_shape=(2, 5, 5), out_channels=3, kernel=(3, 3), stride=(1, 1), padding=(1, 1),
       w_bits=2, v_bits=8, lanes=1, bias=True, load=True, load_bits=8),
    _p(in_shape=(1, 6, 7), out_channels=5, kernel=(3, 2), stride=(2, 2), padding=(1, 0),
       w_bits=4, v_bits=12, lanes=2, neuron_threshold=False),
    _p(in_shape=(3, 4, 4), out_channels=6, kernel=(1, 1), stride=(1, 1), padding=(0, 0),
       w_bits=5, v_bits=24, lanes=4, bias=True, load=True, load_bits=20, max_frac=8),
    _p(in_shape=(2, 7, 6), out_channels=4, kernel=(5, 5), stride=(1, 2), padding=(1, 1),
       w_bits=3, v_bits=16, lanes=8),
    _p(in_shape=(1, 5, 5), out_channels=16, kernel=(2, 3), stride=(2, 1), padding=(0, 1),
       w_bits=8, v_bits=10, lanes=16, bias=True),
    _p(in_shape=(2, 3, 3), out_channels=2, kernel=(3, 3), stride=(2, 2), padding=(1, 1),
       w_bits=7, v_bits=20, lanes=4, neuron_threshold=False, bias=True, load=True,
       max_frac=12),
)  # fmt: skip


# -- random configurations and stimulus --------------------------------------------------------


def random_kernel(params: ConvCoreParams, rng: np.random.Generator) -> np.ndarray:
    return random_weights(params, rng, (params.out_channels, params.in_shape[0], *params.kernel))


def random_config(params: ConvCoreParams, rng: np.random.Generator) -> ConvCoreConfig:
    w = random_kernel(params, rng)
    scale = int(max(2, np.abs(w).reshape(w.shape[0], -1).sum(axis=1).mean() / 2))
    return ConvCoreConfig(weights=w, **random_neuron_settings(params, rng, scale))


def _step_events(params: ConvCoreParams, rng: np.random.Generator) -> list[list[int]]:
    """One step's SPIKE/LOAD events: random inputs (a few twice), out-of-range ones, LOADs."""
    n_in = params.n_axons
    count = int(rng.integers(0, min(n_in, 20) + 1)) if rng.random() < 0.9 else 0
    inputs = rng.choice(n_in, size=count, replace=False).tolist()
    if inputs and rng.random() < 0.5:
        inputs += [inputs[0]]  # a duplicate event
    if rng.random() < 0.1 and n_in < 1 << params.in_index_bits:
        inputs.append(int(rng.integers(n_in, 1 << params.in_index_bits)))
    events = [[Op.SPIKE.value, i, 0] for i in inputs]
    if params.load:
        lo, hi = signed_range(params.load_bits)
        for n in rng.choice(params.n_neurons, size=int(rng.integers(0, 4))).tolist():
            value = int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1)) >> rng.integers(0, 8)]))
            events.append([Op.LOAD.value, n, value])
    return [events[i] for i in rng.permutation(len(events))]


def _feed(model: ConvCoreModel, events: list[list[int]]) -> list[list[int]]:
    return [list(out) for op, index, value in events for out in model.event(op, index, value)]


def _safe_events(
    model: ConvCoreModel, params: ConvCoreParams, rng: np.random.Generator, tick: bool = True
) -> tuple[list[list[int]], list[list[int]]]:
    """A step's events and expected outputs, redrawn until every accumulator stays exact.

    Without ``tick``: at most three events and no CLEAR (events after the last TICK).
    """
    for _ in range(20):
        events = _step_events(params, rng)
        if not tick:
            events = events[:3]
        elif rng.random() < 0.1:  # CLEAR in the middle of a sample (and of a step)
            events.insert(int(rng.integers(0, len(events) + 1)), [Op.CLEAR.value, 0, 0])
        if tick:
            events.append([Op.TICK.value, 0, 0])
        trial = copy.deepcopy(model)
        try:
            expect = _feed(trial, events)
        except AccumulatorOverflow:
            continue
        model.__dict__.update(trial.__dict__)
        return events, expect
    events = [[Op.TICK.value, 0, 0]] if tick else []
    return events, _feed(model, events)


def random_case(params: ConvCoreParams, rng: np.random.Generator, steps: int = 4) -> dict:
    """Program a random kernel and modes, run ``steps`` steps, compare out events and every v."""
    config = random_config(params, rng)
    model = ConvCoreModel(params, config)
    clear_counters = [params.addr(Region.CTRL, Reg.IN_EVENTS), 0]
    phases: list[dict[str, Any]] = [
        {"writes": [list(w) for w in config.cfg_writes(params)] + [clear_counters]},
        {"events": [[Op.CLEAR.value, 0, 0]], "expect": _feed(model, [[Op.CLEAR.value, 0, 0]])},
    ]
    if rng.random() < 0.4:
        phases.append({"writes": _v_presets(params, model, rng)})
    clears = 0
    for _ in range(steps):
        events, expect = _safe_events(model, params, rng, tick=True)
        clears += sum(e[0] == Op.CLEAR.value for e in events)
        phases.append({"events": events, "expect": expect})
        phases.append({"reads": _v_reads(params, model)})
    tail, _ = _safe_events(model, params, rng, tick=False)
    phases.append({"events": tail, "expect": []})
    phases.append({"reads": _counter_reads(params, model)})
    return finish_case(params, config, model, phases, clears, rng)


def contract_case(params: ConvCoreParams, rng: np.random.Generator) -> dict[str, Any]:
    """A random case run without gaps or back-pressure, for the cycle-contract check."""
    case = random_case(params, rng, steps=3)
    case.update(gap_p=0.0, backpressure_p=0.0, contract=True)
    return case
