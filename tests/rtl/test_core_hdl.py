"""The cores' generated Verilog under cocotb (Verilator; Icarus when SPIKEFORGE_SIMS names it).

Per core kind, one build holds a side-by-side of cores, one per ``HDL_PARAMS`` entry of its case
module: for ``Core``, w_bits 2..8, v_bits 8..24, lanes 1..16, with and without per-neuron
thresholds, bias and LOAD; for ``ConvCore`` also stride 1/2, padding 0/1 and kernels 1x1..5x5.
Each core runs a cycle-contract case and then random (configuration, stimulus) cases,
reprogrammed through the configuration port. Every out event, every ``v`` after every step and
the counters are compared with the reference model (``core_model``, ``conv_core_model``: both
built on ``spikeforge.sim.semantics``).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from spikeforge.rtl.cores.conv_core import ConvCore
from spikeforge.rtl.cores.core import Core
from spikeforge.rtl.gateware.side_by_side import SideBySide
from spikeforge.sim.testbenches import conv_core_cases, core_cases
from spikeforge.sim.testbenches.core_cases import (
    coverage_gaps,
    expected_counts,
    hdl_instances,
    sent_instances,
)
from spikeforge.sim.testbenches.run import run_testbench


@dataclass(frozen=True)
class Suite:
    """One core kind's build: its component, case module, case count, seed and top name."""

    core: Any
    cases: ModuleType
    cases_per_core: int
    seed: int
    toplevel: str
    testbench: str
    min_cases: int

    def instances(self) -> list[dict]:
        c = self.cases
        return hdl_instances(
            c.HDL_PARAMS, c.contract_case, c.random_case, self.cases_per_core, self.seed
        )


SUITES = {
    "core": Suite(Core, core_cases, 44, 20240401, "sf_multicore", "core", 300),
    "conv_core": Suite(ConvCore, conv_core_cases, 24, 20261122, "sf_multiconv", "conv_core", 120),
}


@pytest.fixture(scope="module", params=list(SUITES))
def suite(request) -> tuple[Suite, list[dict]]:
    """A core kind and its cases (made once per module run)."""
    chosen = SUITES[request.param]
    return chosen, chosen.instances()


def test_cases_cover_the_checklist(suite):
    """Every mode, both rails, both theta extremes, CLEAR mid-sample, duplicates, gaps, stalls."""
    chosen, hdl_cases = suite
    assert coverage_gaps(hdl_cases) == []
    assert sum(len(inst["cases"]) for inst in hdl_cases) >= chosen.min_cases


def test_verilog_matches_reference(simulator, suite, tmp_path):
    chosen, hdl_cases = suite
    want = expected_counts(hdl_cases)
    keys = ("cases", "out_events_compared", "v_compared", "reads_compared", "contract_events")
    report = run_testbench(
        SideBySide([chosen.core(p) for p in chosen.cases.HDL_PARAMS]),
        chosen.toplevel,
        chosen.testbench,
        sim=simulator,
        build_dir=tmp_path,
        case={"instances": sent_instances(hdl_cases)},
        expect={key: want[key] for key in keys},
    )
    assert want["cases"] == sum(len(inst["cases"]) for inst in hdl_cases) >= chosen.min_cases
    assert min(want[key] for key in keys) > 0
    assert report["out_spike"] > 1000
    for inst in hdl_cases:
        assert report["per_instance"][inst["prefix"]]["cases"] == len(inst["cases"])
