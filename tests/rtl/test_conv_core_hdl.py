"""The convolution core's generated Verilog under cocotb (Verilator; Icarus with SPIKEFORGE_SIMS).

One build holds six cores (``conv_core_cases.HDL_PARAMS``: stride 1/2, padding 0/1, kernels
1x1..5x5, lanes 1..16, w_bits 2..8, v_bits 8..24, with and without per-neuron thresholds, bias
and LOAD); each runs a cycle-contract case and ``CASES_PER_CORE`` random cases reprogrammed
through the configuration port. Every out event, every ``v`` after every step and the counters
are compared with ``spikeforge.rtl.cores.conv_core_model`` (``spikeforge.sim.semantics`` on the
unrolled kernel).
"""

from __future__ import annotations

import pytest
from spikeforge.rtl.cores.conv_core import ConvCore
from spikeforge.rtl.gateware.side_by_side import SideBySide
from spikeforge.sim.testbenches.conv_core_cases import HDL_PARAMS, contract_case, random_case
from spikeforge.sim.testbenches.core_cases import (
    coverage_gaps,
    expected_counts,
    hdl_instances,
    sent_instances,
)
from spikeforge.sim.testbenches.run import run_testbench

CASES_PER_CORE = 24
SEED = 20261122


@pytest.fixture(scope="module")
def hdl_cases() -> list[dict]:
    return hdl_instances(HDL_PARAMS, contract_case, random_case, CASES_PER_CORE, SEED)


def test_cases_cover_the_checklist(hdl_cases):
    """Every mode, both rails, both theta extremes, CLEAR mid-sample, duplicates, gaps, stalls."""
    assert coverage_gaps(hdl_cases) == []
    assert sum(len(inst["cases"]) for inst in hdl_cases) >= 120


def test_conv_core_verilog_matches_reference(simulator, hdl_cases, tmp_path):
    want = expected_counts(hdl_cases)
    keys = ("cases", "out_events_compared", "v_compared", "reads_compared", "contract_events")
    report = run_testbench(
        SideBySide([ConvCore(p) for p in HDL_PARAMS]),
        "sf_multiconv",
        "conv_core",
        sim=simulator,
        build_dir=tmp_path,
        case={"instances": sent_instances(hdl_cases)},
        expect={key: want[key] for key in keys},
    )
    assert want["cases"] == sum(len(inst["cases"]) for inst in hdl_cases) >= 120
    assert min(want[key] for key in keys) > 0
    assert report["out_spike"] > 1000
    for inst in hdl_cases:
        assert report["per_instance"][inst["prefix"]]["cases"] == len(inst["cases"])
