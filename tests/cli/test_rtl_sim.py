"""``spikeforge rtl-sim`` end to end on both simulators: ``--jobs``, ``--shard`` and
``merge-results`` against one unsharded run, and a fault injected into the chip's copy of the
weights (after the bundle is planned) found with its cycle and its waveform."""

from __future__ import annotations

import numpy as np
from spikeforge.rtl.chip import top as chip_top
from spikeforge.sim import golden
from spikeforge.sim.semantics import signed_range

from spikeforge import cli
from spikeforge.rtl_flow import wave_format
from tests.rtl.test_chip import _saved, random_bundle, random_inputs

SAMPLES = 7


def _case(tmp_path, seed: int, encoding: str = "spikes"):
    rng = np.random.default_rng(seed)
    bundle = _saved(random_bundle(rng, encoding, 2), tmp_path / "b")
    x = golden.check_input(bundle, random_inputs(rng, bundle, SAMPLES))
    np.save(tmp_path / "x.npy", x)
    return bundle, x


def test_shards_merge_to_the_unsharded_run(simulator, tmp_path, capsys):
    bundle, x = _case(tmp_path, 31)
    common = [str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"), "--sim", simulator,
              "--lanes", "2", "--build-dir", str(tmp_path / "build")]  # fmt: skip
    assert cli.main(["rtl-sim", *common, "--jobs", "2", "--out", str(tmp_path / "all.npz")]) == 0
    out = capsys.readouterr().out
    assert "2 simulator processes" in out and "cycles/s" in out
    parts = []
    for k in (3, 1, 2):  # any order
        part = tmp_path / f"part{k}.npz"
        argv = ["rtl-sim", *common, "--shard", f"{k}/3", "--out", str(part)]
        assert cli.main(argv) == 0
        assert f"shard: samples {SAMPLES * (k - 1) // 3}..{SAMPLES * k // 3 - 1}" in (
            capsys.readouterr().out
        )
        parts.append(str(part))
    assert cli.main(["merge-results", *parts, "--out", str(tmp_path / "merged.npz")]) == 0
    whole, merged = np.load(tmp_path / "all.npz"), np.load(tmp_path / "merged.npz")
    assert sorted(whole.files) == sorted(merged.files) and len(whole.files) == 2 + 2
    for key in whole.files:
        assert whole[key].dtype == merged[key].dtype, key
        assert np.array_equal(whole[key], merged[key]), key
    want = golden.run(bundle, x).result_arrays()
    assert all(np.array_equal(want[key], whole[key]) for key in whole.files)
    assert whole["spikes.l0"].shape[0] == SAMPLES


def test_injected_fault_is_reported_with_its_cycle_and_waveform(
    simulator, tmp_path, capsys, monkeypatch
):
    """The chip gets layer 1's weights all at the maximum after planning (the golden model
    keeps the bundle's): the first spike that differs is named with the cycle it left its core,
    and ``--wave`` writes that sample's waveform next to the result."""
    _case(tmp_path, 32)
    plan_chip = chip_top.plan_chip

    def faulty_plan(model, options=None):
        plan = plan_chip(model, options)
        top = signed_range(plan.stages[0].layer.w_bits)[1]
        for piece in plan.stages[0].slices:
            piece.config.weights = np.full_like(piece.config.weights, top)
        return plan

    monkeypatch.setattr(chip_top, "plan_chip", faulty_plan)
    result = tmp_path / "r.npz"
    argv = ["rtl-sim", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"), "--sim",
            simulator, "--lanes", "2", "--out", str(result), "--wave"]  # fmt: skip
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "first mismatch: sample " in err and "layer l0" in err, err
    assert "left core" in err and " at cycle " in err, err
    sample = int(err.split("first mismatch: sample ")[1].split(",")[0])
    wave = tmp_path / f"r.sample{sample}.{wave_format(simulator)}"
    assert f"waveform of sample {sample}: {wave}" in err
    assert wave.is_file() and wave.stat().st_size > 100
    assert "sf_chip_tb.dut.core0" in err and "sf_chip_tb.cycle = " in err
    assert result.is_file()  # the RTL's arrays, as without the fault


def test_rtl_sim_options_are_checked_before_any_build(tmp_path, capsys):
    _case(tmp_path, 33)
    base = ["rtl-sim", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"),
            "--out", str(tmp_path / "r.npz")]  # fmt: skip
    assert cli.main([*base, "--shard", "4/3"]) == 2
    assert "--shard takes K/N with 1 <= K <= N, got '4/3'" in capsys.readouterr().err
    assert cli.main([*base, "--jobs", "0"]) == 2
    assert "--jobs" in capsys.readouterr().err
    assert cli.main([*base, "--limit", "2", "--shard", "1/3"]) == 2
    assert "is empty" in capsys.readouterr().err
    assert not (tmp_path / "r.npz").exists()
