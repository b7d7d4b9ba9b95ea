"""The core's generated Verilog under cocotb (Verilator; Icarus when SPIKEFORGE_SIMS names it).

One build holds seven cores (``HDL_PARAMS``: w_bits 2..8, v_bits 8..24, lanes 1..16, with and
without per-neuron thresholds, bias and LOAD); each runs a cycle-contract case and then
``CASES_PER_CORE`` random (configuration, stimulus) cases, reprogrammed through the
configuration port. Every out event, every ``v`` after every step and the counters are compared
with ``spikeforge.rtl.cores.core_model`` (built on ``spikeforge.sim.semantics``).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from spikeforge.rtl.gateware import emit
from spikeforge.sim.flow import run_cocotb
from spikeforge.sim.testbenches.core_cases import (
    HDL_PARAMS,
    MultiCore,
    contract_case,
    params_to_json,
    random_case,
)

CASES_PER_CORE = 44
SEED = 20240401


@pytest.fixture(scope="module")
def hdl_cases() -> list[dict]:
    rng = np.random.default_rng(SEED)
    return [
        {
            "prefix": f"c{k}",
            "params": params_to_json(p),
            "cases": [contract_case(p, rng)] + [random_case(p, rng) for _ in range(CASES_PER_CORE)],
        }
        for k, p in enumerate(HDL_PARAMS)
    ]


def _expected_totals(instances: list[dict]) -> Counter:
    totals: Counter = Counter()
    for inst in instances:
        for case in inst["cases"]:
            for phase in case["phases"]:
                totals["out_events_compared"] += len(phase.get("expect", []))
                totals["v_compared"] += sum(r[2].startswith("v[") for r in phase.get("reads", []))
            totals["contract_events"] += sum(
                len(ph["events"])
                for ph in case["phases"]
                if case.get("contract") and "events" in ph
            )
    return totals


def test_cases_cover_the_issue_checklist(hdl_cases):
    """The random cases reach every mode, both rails, both theta extremes, gaps, back-pressure."""
    seen: Counter = Counter()
    for inst in hdl_cases:
        for case in inst["cases"]:
            cfg = case["config"]
            seen[("modes", cfg["leak"]["mode"], cfg["reset"], cfg["fire"])] += 1
            seen.update({k: v for k, v in case["stats"].items()})
            seen["gaps"] += case["gap_p"] > 0
            seen["backpressure"] += case["backpressure_p"] > 0
            events = [tuple(e) for ph in case["phases"] for e in ph.get("events", [])]
            seen["duplicates"] += len(events) - len(set(events))
    modes = {k[1:] for k in seen if isinstance(k, tuple)}
    assert len(modes) == 3 * 3 * 2, sorted(modes)
    for inst in hdl_cases:  # every parameter set reaches both rails and fires
        per: Counter = Counter()
        for case in inst["cases"]:
            per.update(case["stats"])
        facts = ("sat_hi", "sat_lo", "spikes", "theta_one")
        assert min(per[f] for f in facts) > 0, (inst["prefix"], per)
    for fact in ("sat_hi", "sat_lo", "theta_one", "theta_max", "clears_mid_sample", "gaps",
                 "backpressure", "duplicates", "spikes"):  # fmt: skip
        assert seen[fact] > 0, fact
    assert sum(len(inst["cases"]) for inst in hdl_cases) >= 300


def test_core_verilog_matches_reference(simulator, hdl_cases, tmp_path):
    verilog = emit.write(MultiCore(HDL_PARAMS), "sf_multicore", tmp_path / "sf_multicore.v")
    sent = [
        {**inst, "cases": [{k: v for k, v in c.items() if k not in ("config", "stats")}
                           for c in inst["cases"]]}
        for inst in hdl_cases
    ]  # fmt: skip
    report = run_cocotb(
        sources=[verilog],
        toplevel="sf_multicore",
        test_module="spikeforge.sim.testbenches.core",
        sim=simulator,
        build_dir=tmp_path / simulator,
        case={"instances": sent},
    )
    want = _expected_totals(hdl_cases)
    n_cases = sum(len(inst["cases"]) for inst in hdl_cases)
    assert report["cases"] == n_cases >= 300
    assert report["out_events_compared"] == want["out_events_compared"] > 0
    assert report["v_compared"] == want["v_compared"] > 0
    assert report["contract_events"] == want["contract_events"] > 0
    assert report["out_spike"] > 1000
    for inst in hdl_cases:
        assert report["per_instance"][inst["prefix"]]["cases"] == len(inst["cases"])
