"""The convolution core's generated Verilog under cocotb (Verilator; Icarus with SPIKEFORGE_SIMS).

One build holds six cores (``conv_core_cases.HDL_PARAMS``: stride 1/2, padding 0/1, kernels
1x1..5x5, lanes 1..16, w_bits 2..8, v_bits 8..24, with and without per-neuron thresholds, bias
and LOAD); each runs a cycle-contract case and ``CASES_PER_CORE`` random cases reprogrammed
through the configuration port. Every out event, every ``v`` after every step and the counters
are compared with ``spikeforge.rtl.cores.conv_core_model`` (``spikeforge.sim.semantics`` on the
unrolled kernel).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from spikeforge.rtl.gateware import emit
from spikeforge.sim.flow import run_cocotb
from spikeforge.sim.testbenches.conv_core_cases import (
    HDL_PARAMS,
    MultiConvCore,
    contract_case,
    params_to_json,
    random_case,
)

CASES_PER_CORE = 24
SEED = 20261122


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
                totals["reads_compared"] += len(phase.get("reads", []))
            if case.get("contract"):
                totals["contract_events"] += sum(len(ph.get("events", [])) for ph in case["phases"])
                totals["reads_compared"] += 1  # the busy-cycle counter
    return totals


def test_cases_cover_the_checklist(hdl_cases):
    """Every mode, both rails, both theta extremes, CLEAR mid-sample, duplicates, gaps, stalls."""
    seen: Counter = Counter()
    for inst in hdl_cases:
        per: Counter = Counter()
        for case in inst["cases"]:
            cfg = case["config"]
            seen[("modes", cfg["leak"]["mode"], cfg["reset"], cfg["fire"])] += 1
            per.update(case["stats"])
            seen["gaps"] += case["gap_p"] > 0
            seen["backpressure"] += case["backpressure_p"] > 0
            for ph in case["phases"]:
                events = [tuple(e) for e in ph.get("events", []) if e[0] == 0]
                seen["duplicates"] += len(events) - len(set(events))
        assert min(per[f] for f in ("sat_hi", "sat_lo", "spikes", "theta_one")) > 0, (
            inst["prefix"],
            per,
        )
        seen.update(per)
    modes = {k[1:] for k in seen if isinstance(k, tuple)}
    assert len(modes) == 3 * 3 * 2, sorted(modes)
    for fact in ("theta_max", "clears_mid_sample", "gaps", "backpressure", "duplicates"):
        assert seen[fact] > 0, fact
    assert sum(len(inst["cases"]) for inst in hdl_cases) >= 120


def test_conv_core_verilog_matches_reference(simulator, hdl_cases, tmp_path):
    verilog = emit.write(MultiConvCore(HDL_PARAMS), "sf_multiconv", tmp_path / "sf_multiconv.v")
    sent = [
        {**inst, "cases": [{k: v for k, v in c.items() if k not in ("config", "stats")}
                           for c in inst["cases"]]}
        for inst in hdl_cases
    ]  # fmt: skip
    report = run_cocotb(
        sources=[verilog],
        toplevel="sf_multiconv",
        test_module="spikeforge.sim.testbenches.conv_core",
        sim=simulator,
        build_dir=tmp_path / simulator,
        case={"instances": sent},
    )
    want = _expected_totals(hdl_cases)
    n_cases = sum(len(inst["cases"]) for inst in hdl_cases)
    assert report["cases"] == n_cases >= 120
    for key in ("out_events_compared", "v_compared", "reads_compared", "contract_events"):
        assert report[key] == want[key] > 0, key
    assert report["out_spike"] > 1000
    for inst in hdl_cases:
        assert report["per_instance"][inst["prefix"]]["cases"] == len(inst["cases"])
