"""The AXI-wrapped chip (spikeforge.rtl.axi) under cocotb with cocotbext-axi, against the golden
model.

The Verilog is built from a *scrambled* bundle (each neuron's weights shuffled over its axons,
thresholds reversed: the same hardware shape and widths, other integers); the testbench loads
the real bundle through the AXI-Lite configuration window at run time, streams random samples in
with random gaps, takes the result records out under random back-pressure, and every potential
and prediction must equal the golden model of the real bundle (which differs from the
scrambled one's). It also checks identity registers, SLVERR for unmapped and read-only
addresses, the interrupt, a too-long sample and the soft reset.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from spikeforge.rtl.axi.host import bundle_writes, decode_record
from spikeforge.rtl.axi.registers import ERROR_TOO_LONG, register_map
from spikeforge.rtl.axi.top import AxiChip
from spikeforge.rtl.chip.top import ChipOptions, plan_chip
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, bundle_digest
from spikeforge.sim.testbenches.run import run_testbench

from tests.rtl.test_chip import random_bundle, random_inputs

SEED = 9090
SAMPLES = 12


def scrambled(bundle: Bundle, rng: np.random.Generator) -> Bundle:
    """``bundle`` with each neuron's weights shuffled and per-neuron thresholds reversed."""
    layers = []
    for layer in bundle.layers:
        weight = np.array(layer.weight)
        for row in weight:
            rng.shuffle(row)
        theta = layer.threshold
        if np.ndim(theta) == 1:
            theta = np.asarray(theta)[::-1].copy()
        layers.append(dataclasses.replace(layer, weight=weight, threshold=theta))
    return dataclasses.replace(bundle, layers=layers)


CASES = {
    "pim-split": ("direct", 3, True, ChipOptions(lanes=2, max_neurons=5)),
    "spikes": ("spikes", 2, False, ChipOptions(lanes=4)),
}


def _target(regs, addr: int) -> int:
    return (addr - regs.window_base) // 4 >> regs.sub_bits


def _case(name: str):
    encoding, n_layers, signed, options = CASES[name]
    rng = np.random.default_rng(SEED + len(name))
    bundle = random_bundle(rng, encoding, n_layers, signed)
    hardware = scrambled(bundle, rng)
    plan_true, plan_hw = plan_chip(bundle, options), plan_chip(hardware, options)
    x = golden.check_input(bundle, random_inputs(rng, bundle, SAMPLES))
    return bundle, hardware, plan_true, plan_hw, x


@pytest.mark.parametrize("name", sorted(CASES))
def test_axi_chip_loads_a_bundle_and_streams_golden_results(simulator, tmp_path, name):
    bundle, hardware, plan_true, plan_hw, x = _case(name)
    bundle_id = int(bundle_digest(hardware)[:8], 16)
    regs = register_map(plan_hw, bundle_id)
    assert regs.addr_bits == register_map(plan_true, 0).addr_bits
    want = golden.run(bundle, x)
    other = golden.run(hardware, x)
    assert not np.array_equal(want.v_out, other.v_out), "the scrambled bundle must differ"

    writes = bundle_writes(plan_true, regs)
    words = plan_true.sample_words(x)  # the PIM array (outside the chip) holds the real layer 1
    n_out = bundle.layers[-1].n_out
    core_writes = [(a, v) for a, v in writes if _target(regs, a) < plan_hw.n_cores]
    region = plan_hw.slices[0].params.cfg_layout["region"].offset
    case = {
        "seed": SEED,
        "regs": {r.name: r.offset for r in regs.registers},
        "identity": {
            "ID": regs["ID"].reset,
            "VERSION": regs["VERSION"].reset,
            "BUNDLE": bundle_id,
            "SHAPE": regs["SHAPE"].reset,
            "DEPTH": plan_hw.depth,
            "PASSES": plan_hw.repeat(),
        },
        "unmapped": [
            0x3C,  # past the last register
            regs.window_base - 4,  # the top of the register half
            regs.window_address(plan_hw.cfg_addr(0, 7 << region)),  # a region no core has
            regs.window_address(plan_hw.cfg_addr(plan_hw.n_cores, 2)),  # no chip register
        ],
        "read_only": ["ID", "STATUS", "SAMPLES"],
        "writes": writes,
        "read_back": core_writes[:: max(1, len(core_writes) // 16)],
        "samples": [list(map(int, w)) for w in words],
        "depth": plan_hw.depth,
        "gap_p": 0.3,
        "backpressure_p": 0.4,
    }
    report = run_testbench(
        AxiChip(plan_hw, regs),
        "sf_chip_axi",
        "axi_chip",
        sim=simulator,
        build_dir=tmp_path,
        case=case,
        expect={"identity": 6, "writes": len(writes), "slverr": 11},
    )
    records = [decode_record(r, n_out) for r in report["records"]]
    assert len(records) == SAMPLES
    assert [r.sample for r in records] == list(range(SAMPLES))
    assert all(r.cycles > 0 for r in records)
    v_out = np.stack([r.v_out for r in records])
    np.testing.assert_array_equal(v_out, want.v_out)
    np.testing.assert_array_equal([r.pred for r in records], want.pred)
    assert v_out.size == SAMPLES * n_out

    assert report["samples_reg"] == SAMPLES
    assert report["in_words_reg"] == sum(len(w) for w in words)
    assert report["irq_reg"] & 1 and report["irq_after_done"] == 1
    assert report["irq_after_clear"] == 0
    after = decode_record(report["after_error"][0], n_out)
    np.testing.assert_array_equal(after.v_out, want.v_out[0])
    assert after.sample == SAMPLES  # the too-long sample left no record
    assert report["error_code"] == ERROR_TOO_LONG and report["irq_error"] & 2
    assert report["after_reset"] == [0, 0, 0]
    last = decode_record(report["after_reset_record"][0], n_out)
    assert last.sample == 0
    np.testing.assert_array_equal(last.v_out, want.v_out[-1])


def test_register_map_documents_and_header_agree_with_the_map():
    from spikeforge.rtl.axi.registers import c_header, markdown

    *_, plan_hw, _ = _case("pim-split")
    regs = register_map(plan_hw, 0x1234ABCD)
    doc, header = markdown(regs), c_header(regs)
    for reg in regs.registers:
        assert f"| 0x{reg.offset:03X} | {reg.name} |" in doc
        assert f"#define SF_CHIP_{reg.name} 0x{reg.offset:03X}u" in header
    assert len({r.offset for r in regs.registers}) == len(regs.registers)
    assert all(r.offset < regs.window_base for r in regs.registers)
    assert "SF_CHIP_CORE0_WEIGHT(axon, neuron)" in header


def test_rtl_sim_top_axi_equals_the_fast_harness(simulator, tmp_path, capsys):
    from spikeforge.sim.bundle import save_bundle

    from spikeforge import cli

    bundle, *_ = _case("spikes")
    save_bundle(bundle, tmp_path / "b")
    x = random_inputs(np.random.default_rng(SEED), bundle, 6)
    np.save(tmp_path / "x.npy", x)
    common = ["rtl-sim", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"), "--sim",
              simulator, "--lanes", "4"]  # fmt: skip
    axi = [*common, "--top", "axi", "--stream-pauses", "0.3", "--out", str(tmp_path / "a.npz")]
    assert cli.main(axi) == 0, capsys.readouterr().err
    assert "6 result records, " in capsys.readouterr().out
    assert cli.main([*common, "--out", str(tmp_path / "c.npz")]) == 0, capsys.readouterr().err
    a, c = np.load(tmp_path / "a.npz"), np.load(tmp_path / "c.npz")
    assert sorted(a.files) == ["pred", "v_out"] and a["v_out"].shape == (6, bundle.layers[-1].n_out)
    for key in a.files:
        np.testing.assert_array_equal(a[key], c[key])
    rc = cli.main([*common, "--top", "axi", "--jobs", "2", "--out", str(tmp_path / "j.npz")])
    assert rc == 2 and "--top chip" in capsys.readouterr().err
