"""Randomised (configuration, stimulus, expectation) cases for ``spikeforge.rtl.cores.core.Core``.

A case is JSON-ready: a list of phases that a driver (``core_bench``) executes in order. Every
expectation comes from ``spikeforge.rtl.cores.core_model.CoreModel`` (hence
``spikeforge.sim.semantics``). Also here: the parameter sets the HDL tests build, and the
per-instance case lists (and their expected comparison counts) of a side-by-side top of cores.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from spikeforge.rtl.cores.core import CoreConfig, CoreParams, Op, Reg, Region
from spikeforge.rtl.cores.core_model import CoreModel
from spikeforge.rtl.cores.neuron import max_theta
from spikeforge.sim.semantics import FIRE_MODES, LEAK_MODES, RESET_MODES, Leak, signed_range
from spikeforge.sim.testbenches.harness import params_to_json, to_unsigned

#: Parameter sets of the cocotb build: w_bits 2..8, v_bits 8..24, lanes 1..16, all options.
HDL_PARAMS: tuple[CoreParams, ...] = (
    CoreParams(n_axons=13, n_neurons=7, w_bits=2, v_bits=8, lanes=1, bias=True, load=True,
               load_bits=8),
    CoreParams(n_axons=24, n_neurons=19, w_bits=3, v_bits=12, lanes=2, neuron_threshold=False),
    CoreParams(n_axons=9, n_neurons=33, w_bits=4, v_bits=24, lanes=4, bias=True, load=True,
               load_bits=20, max_frac=8),
    CoreParams(n_axons=32, n_neurons=21, w_bits=5, v_bits=16, lanes=8, load=True),
    CoreParams(n_axons=20, n_neurons=40, w_bits=6, v_bits=10, lanes=16, bias=True),
    CoreParams(n_axons=6, n_neurons=5, w_bits=7, v_bits=20, lanes=1, neuron_threshold=False,
               bias=True, max_frac=12),
    CoreParams(n_axons=17, n_neurons=16, w_bits=8, v_bits=24, lanes=16, load=True, load_bits=24),
)  # fmt: skip


# -- random configurations --------------------------------------------------------------------


def _log_uniform(rng: np.random.Generator, lo: int, hi: int, size=None) -> np.ndarray:
    x = np.exp(rng.uniform(np.log(lo), np.log(hi + 1), size=size))
    return np.clip(np.floor(x).astype(np.int64), lo, hi)


def random_weights(params: CoreParams, rng: np.random.Generator, shape=None) -> np.ndarray:
    """Weights of one style (uniform, sparse, only the two extremes, non-negative); ``shape``
    defaults to a core's ``(n_neurons, n_axons)``."""
    lo, hi = signed_range(params.w_bits)
    shape = shape or (params.n_neurons, params.n_axons)
    style = rng.choice(["uniform", "sparse", "extreme", "positive"])
    w = rng.integers(lo, hi + 1, size=shape)
    if style == "sparse":
        w[rng.random(shape) < 0.7] = 0
    elif style == "extreme":
        w = rng.choice([lo, hi], size=shape)
    elif style == "positive":
        w = np.abs(w).clip(0, hi)
    return w.astype(np.int64)


def random_leak(params: CoreParams, rng: np.random.Generator) -> Leak:
    mode = str(rng.choice(list(params.leak_modes)))
    frac = int(rng.integers(0, params.max_frac + 1))
    lam = int(rng.choice([0, 1 << frac, int(rng.integers(0, (1 << frac) + 1))]))
    k = int(rng.choice([1, params.v_bits - 1, int(rng.integers(1, params.v_bits))]))
    return Leak(mode, lam, frac, k)


def random_neuron_settings(params: Any, rng: np.random.Generator, scale: int) -> dict[str, Any]:
    """Thresholds, bias, leak and modes for a core config, sized to a typical |sum| ``scale``.

    ``params`` is a ``CoreParams`` or a ``ConvCoreParams``; a tenth of the thresholds and biases
    sit at their extremes so the corners are always exercised.
    """
    top = max_theta(params.v_bits)
    n = params.n_neurons if params.neuron_threshold else 1
    theta = _log_uniform(rng, 1, min(top, 2 * scale), size=n)
    theta[rng.random(n) < 0.1] = 1
    theta[rng.random(n) < 0.1] = top
    bias = None
    if params.bias:
        blo, bhi = signed_range(params.bias_bits)
        bias = rng.integers(-scale, scale + 1, size=params.n_neurons).clip(blo, bhi)
        bias[rng.random(params.n_neurons) < 0.1] = bhi
        bias[rng.random(params.n_neurons) < 0.1] = blo
    return {
        "theta": theta if params.neuron_threshold else int(theta[0]),
        "bias": bias,
        "leak": random_leak(params, rng),
        "reset": str(rng.choice(list(RESET_MODES))),
        "fire": str(rng.choice(list(FIRE_MODES), p=[0.8, 0.2])),
        "input_shift": int(rng.choice([0, 0, 1, 2, int(rng.integers(0, params.acc_bits + 1))])),
    }


def random_config(params: CoreParams, rng: np.random.Generator) -> CoreConfig:
    w = random_weights(params, rng)
    scale = int(max(2, np.abs(w).sum(axis=1).mean()))
    return CoreConfig(weights=w, **random_neuron_settings(params, rng, scale))


def config_to_json(config: CoreConfig) -> dict[str, Any]:
    def arr(x):
        return None if x is None else np.asarray(x).tolist()

    return {
        "weights": arr(config.weights),
        "theta": arr(config.theta),
        "bias": arr(config.bias),
        "leak": dataclasses.asdict(config.leak),
        "reset": config.reset,
        "fire": config.fire,
        "input_shift": config.input_shift,
    }


# -- random stimulus -------------------------------------------------------------------------


def _step_events(params: CoreParams, rng: np.random.Generator) -> list[list[int]]:
    """One step's SPIKE/LOAD events (duplicates included), within the exact-accumulator bound."""
    n_spikes = int(rng.integers(0, 2 * params.n_axons + 1)) if rng.random() < 0.9 else 0
    n_spikes = min(n_spikes, int(rng.integers(1, 24)))
    axons = rng.integers(0, params.n_axons, size=n_spikes).tolist()
    if axons and rng.random() < 0.5:
        axons += [axons[0]] * int(rng.integers(1, 3))  # explicit duplicates
    if rng.random() < 0.1 and params.n_axons < 1 << params.in_index_bits:
        axons.append(int(rng.integers(params.n_axons, 1 << params.in_index_bits)))
    events = [[Op.SPIKE.value, a, 0] for a in axons[: 2 * params.n_axons]]
    if params.load:
        lo, hi = signed_range(params.load_bits)
        for n in rng.choice(params.n_neurons, size=int(rng.integers(0, 6))).tolist():
            value = int(rng.choice([lo, hi, int(rng.integers(lo, hi + 1)) >> rng.integers(0, 8)]))
            events.append([Op.LOAD.value, n, value])
    order = rng.permutation(len(events))
    return [events[i] for i in order]


def random_case(params: CoreParams, rng: np.random.Generator, steps: int = 4) -> dict[str, Any]:
    """A case: program a random configuration, run ``steps`` steps, compare out events and v."""
    config = random_config(params, rng)
    model = CoreModel(params, config)
    clear_counters = [params.addr(Region.CTRL, Reg.IN_EVENTS), 0]
    phases: list[dict[str, Any]] = [
        {"writes": [list(w) for w in config.cfg_writes(params)] + [clear_counters]},
        {"events": [[Op.CLEAR.value, 0, 0]], "expect": model.event(Op.CLEAR.value)},
    ]
    if rng.random() < 0.4:
        phases.append({"writes": _v_presets(params, model, rng)})
    clears = 0
    for _ in range(steps):
        events = _step_events(params, rng)
        if rng.random() < 0.1:  # CLEAR in the middle of a sample (and of a step)
            events.insert(int(rng.integers(0, len(events) + 1)), [Op.CLEAR.value, 0, 0])
            clears += 1
        events.append([Op.TICK.value, 0, 0])
        expect = [out for op, index, value in events for out in model.event(op, index, value)]
        phases.append({"events": events, "expect": expect})
        phases.append({"reads": _v_reads(params, model)})
    tail = _step_events(params, rng)[:3]  # events after the last TICK: counted, never emitted
    for op, index, value in tail:
        model.event(op, index, value)
    phases.append({"events": tail, "expect": []})
    phases.append({"reads": _counter_reads(params, model)})
    return finish_case(params, config, model, phases, clears, rng)


def finish_case(
    params: CoreParams,
    config: CoreConfig,
    model: Any,
    phases: list[dict[str, Any]],
    clears_mid_sample: int,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """The case of ``phases``: its configuration, random input gaps, back-pressure and driver
    seed, and the facts the coverage checklist counts (with the model's own)."""
    theta = config.theta_vector(params)
    stats = {
        "clears_mid_sample": clears_mid_sample,
        "theta_one": int(np.sum(theta == 1)),
        "theta_max": int(np.sum(theta == max_theta(params.v_bits))),
    }
    return {
        "config": config_to_json(config),
        "phases": phases,
        "gap_p": float(rng.choice([0.0, 0.2, 0.5])),
        "backpressure_p": float(rng.choice([0.0, 0.3, 0.6])),
        "seed": int(rng.integers(0, 2**31)),
        "stats": {**stats, **model.stats},
    }


def _v_presets(params: CoreParams, model: CoreModel, rng: np.random.Generator) -> list[list[int]]:
    """Configuration writes of ``v`` near the rails (reaching saturation at wide ``v_bits``)."""
    lo, hi = signed_range(params.v_bits)
    writes = []
    for n in rng.choice(params.n_neurons, size=min(4, params.n_neurons), replace=False).tolist():
        value = int(rng.choice([lo, hi, lo + 3, hi - 3]))
        model.set_v(n, value)
        writes.append([params.addr(Region.V, n), to_unsigned(value, 32)])
    return writes


def _v_reads(params: CoreParams, model: CoreModel) -> list[list[Any]]:
    return [[params.addr(Region.V, n), int(model.v[n]), f"v[{n}]"] for n in range(params.n_neurons)]


def _counter_reads(params: CoreParams, model: CoreModel) -> list[list[Any]]:
    regs = {"in_events": Reg.IN_EVENTS, "syn_ops": Reg.SYN_OPS, "out_spikes": Reg.OUT_SPIKES}
    return [[params.addr(Region.CTRL, regs[k]), model.counters[k], k] for k in regs]


def contract_case(params: CoreParams, rng: np.random.Generator) -> dict[str, Any]:
    """A random case run without gaps or back-pressure, for the cycle-contract check."""
    case = random_case(params, rng, steps=3)
    case.update(gap_p=0.0, backpressure_p=0.0, contract=True)
    return case


# -- instances of a side-by-side top ---------------------------------------------------------


def hdl_instances(
    params: Sequence[CoreParams],
    make_contract: Callable[[Any, np.random.Generator], dict[str, Any]],
    make_random: Callable[[Any, np.random.Generator], dict[str, Any]],
    n_random: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Per parameter set (prefix ``c<k>``): a contract case, then ``n_random`` random cases."""
    rng = np.random.default_rng(seed)
    return [
        {
            "prefix": f"c{k}",
            "params": params_to_json(p),
            "cases": [make_contract(p, rng)] + [make_random(p, rng) for _ in range(n_random)],
        }
        for k, p in enumerate(params)
    ]


def sent_instances(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The instances as the testbench needs them: without the host-side config and stats."""
    return [
        {**inst, "cases": [{k: v for k, v in c.items() if k not in ("config", "stats")}
                           for c in inst["cases"]]}
        for inst in instances
    ]  # fmt: skip


def expected_counts(instances: list[dict[str, Any]]) -> Counter[str]:
    """What the testbench must report having compared over every case of ``instances``."""
    totals: Counter[str] = Counter()
    for inst in instances:
        for case in inst["cases"]:
            totals["cases"] += 1
            for phase in case["phases"]:
                totals["out_events_compared"] += len(phase.get("expect", []))
                totals["v_compared"] += sum(r[2].startswith("v[") for r in phase.get("reads", []))
                totals["reads_compared"] += len(phase.get("reads", []))
            if case.get("contract"):
                totals["contract_events"] += sum(len(ph.get("events", [])) for ph in case["phases"])
                totals["reads_compared"] += 1  # the busy-cycle counter
    return totals


def coverage_gaps(instances: list[dict[str, Any]]) -> list[str]:
    """What the cases of ``instances`` fail to reach, from a fixed checklist: every leak, reset
    and fire mode combination; in every instance both rails, spikes and a threshold of 1; in
    some case the top threshold, a CLEAR mid-sample, a duplicate SPIKE, input gaps and
    output back-pressure."""
    modes: set[tuple[str, str, str]] = set()
    seen: Counter[str] = Counter()
    gaps = []
    for inst in instances:
        per: Counter[str] = Counter()
        for case in inst["cases"]:
            cfg = case["config"]
            modes.add((cfg["leak"]["mode"], cfg["reset"], cfg["fire"]))
            per.update(case["stats"])
            seen["gaps"] += case["gap_p"] > 0
            seen["backpressure"] += case["backpressure_p"] > 0
            for ph in case["phases"]:
                spikes = [tuple(e) for e in ph.get("events", []) if e[0] == Op.SPIKE.value]
                seen["duplicates"] += len(spikes) - len(set(spikes))
        gaps += [f"{inst['prefix']}: {f}" for f in ("sat_hi", "sat_lo", "spikes", "theta_one")
                 if not per[f]]  # fmt: skip
        seen.update(per)
    gaps += [f"modes {m}" for m in itertools.product(LEAK_MODES, RESET_MODES, FIRE_MODES)
             if m not in modes]  # fmt: skip
    facts = ("theta_max", "clears_mid_sample", "gaps", "backpressure", "duplicates")
    return gaps + [fact for fact in facts if not seen[fact]]
