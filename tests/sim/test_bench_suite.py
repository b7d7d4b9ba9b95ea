"""The benchmark suite: report tables, ratios against the peers, RTL helpers (tiny sizes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from spikeforge.sim.bundle import load_bundle

from spikeforge.bench import rtl as bench_rtl
from spikeforge.bench import suite as bench_suite


def _fig(contender, workload, steps, sps, peak=None):
    return {
        "contender": contender, "workload": workload, "timesteps": steps, "batch": 8,
        "median_s": 8 / sps, "samples_per_s": sps, "peak_mib": peak, "times_s": [8 / sps],
    }  # fmt: skip


def test_ratio_is_against_the_fastest_peer_and_the_fastest_variant():
    train = [
        _fig("spikeforge", "mlp", 5, 300.0),
        _fig("snntorch", "mlp", 5, 100.0),
        _fig("spikingjelly", "mlp", 5, 150.0),
        _fig("spikingjelly+hoist", "mlp", 5, 250.0),
        _fig("spikeforge-reference", "mlp", 5, 900.0),  # not a peer
    ]
    (row,) = bench_suite.ratios(train, ["snntorch", "spikingjelly", "norse"])
    assert row["fastest_peer"] == "spikingjelly"  # the peers as documented: no +hoist
    assert row["ratio"] == pytest.approx(2.0) and row["target_met"]
    assert row["fastest_variant"] == "spikingjelly+hoist"
    assert row["ratio_variant"] == pytest.approx(1.2) and not row["target_met_variant"]


def test_markdown_lists_missing_peers_and_every_table():
    report = {
        "machine": {"cpus": 2, "platform": "x", "torch": "2.13.0", "load_average": [1, 1, 1]},
        "settings": {"command": "cmd", "threads": "2", "batch": "8", "rounds": "5",
                     "per_round": "2"},
        "peers": {"snntorch": {"version": "1.0.0"}, "norse": {"error": "ImportError: h5py"}},
        "train": [_fig("spikeforge", "mlp", 5, 300.0, 12.0), _fig("snntorch", "mlp", 5, 100.0)],
        "infer": [
            {"engine": "golden", "workload": "mlp", "timesteps": 5, "batch": 8,
             "samples_per_s": 50.0, "firing_rates": {"fc1": 0.1}},
        ],
        "rtl": {
            "simulator": "verilator", "samples": 1, "bundle": "digits", "layers": ["a 1->2"],
            "lanes_sweep": [{"lanes": 4, "cycles_per_sample": 100.0, "sops_per_sample": 50.0,
                             "sops_per_cycle": 0.5, "values_compared": 3}],
            "speed": {"chip": {"samples": 2, "cycles": 10, "cycles_per_sample": 5.0,
                               "build_seconds": 1.0, "layers": ["a"],
                               "runs": [{"jobs": 1, "seconds": 1.0, "seconds_running": 0.5,
                                         "cycles_per_s": 10.0, "values_compared": 3},
                                        {"jobs": 2, "seconds": 0.5, "seconds_running": 0.25,
                                         "cycles_per_s": 20.0, "values_compared": 3}]}},
        },
    }  # fmt: skip
    report["train_ratios"] = bench_suite.ratios(report["train"], ["snntorch"])
    md = bench_suite.markdown(report)
    assert "not installed, not measured**: ImportError: h5py" in md
    assert "| mlp | 5 | 300.0 (12) | 100.0 |" in md
    assert "| mlp | 5 | snntorch | 3.00x | met | snntorch | 3.00x | met |" in md
    assert "| 4 | 100 | 50 | 0.50 |" in md and "| chip (a) | 2 | 10 | 1 | 1.00 | 10 | 1.00x |" in md
    assert "| chip (a) | 2 | 10 | 2 | 0.50 | 20 | 2.00x |" in md


def test_quick_suite_writes_json_and_markdown(tmp_path):
    out = tmp_path / "bench"
    args = ["--quick", "--no-rtl", "--no-memory", "--workloads", "mlp", "--out", str(out)]
    assert bench_suite.main(args) == 0
    report = json.loads((out / "bench.json").read_text())
    assert {f["contender"] for f in report["train"]} >= {"spikeforge", "spikeforge-reference"}
    assert set(report["peers"]) == {"snntorch", "spikingjelly", "norse"}
    assert "## 2. Inference" in (out / "bench.md").read_text()


def test_speed_inputs_are_real_digits():
    bundle = load_bundle(bench_rtl.DEFAULT_BUNDLE)
    x = bench_rtl.digits_inputs(bundle, 3)
    assert x.shape == (3, *bundle.input.shape) and int(x.max()) <= 16
    images = bench_rtl.conv_inputs(4)
    assert images.shape == (4, 1, 28, 28) and int(images.min()) >= 0 and int(images.max()) <= 255
    assert images[:, :, :2].sum() == 0 and images.sum() > 0  # the digit, centred


@pytest.mark.slow
def test_rtl_bench_end_to_end(tmp_path):
    figures = bench_rtl.run(
        samples=1, lanes=(16,), build_dir=tmp_path, speed_samples=4, conv_samples=2
    )
    (row,) = figures["lanes_sweep"]
    assert row["values_compared"] > 0 and row["cycles_per_sample"] > 0
    assert set(figures["speed"]) == {"digits chip", "conv chip"}
    for speed in figures["speed"].values():
        assert [r["jobs"] for r in speed["runs"]] == [1, 2]
        assert all(
            r["values_compared"] > 0 and np.isfinite(r["cycles_per_s"]) for r in speed["runs"]
        )
