"""The benchmark script runs end to end (figures are printed, never asserted as speeds)."""

import json

from spikeforge.bench.golden import benchmark_bundle, main


def test_bench_runs_and_reports_both_engines(tmp_path, capsys):
    assert (
        main(
            [
                "--batch",
                "4",
                "--timesteps",
                "2",
                "--repeats",
                "1",
                "--json",
                str(tmp_path / "b.json"),
            ]
        )
        == 0
    )
    figures = json.loads((tmp_path / "b.json").read_text())
    assert figures["golden_samples_per_s"] > 0 and figures["torch_float_samples_per_s"] > 0
    assert "ratio golden / torch" in capsys.readouterr().out


def test_benchmark_network_fires_at_a_realistic_rate():
    import numpy as np
    from spikeforge.sim import golden

    b = benchmark_bundle(timesteps=4)
    x = np.random.default_rng(1).integers(0, 256, size=(16, 784))
    rates = [golden.run(b, x).spikes[name].mean() for name in ("fc1", "fc2")]
    assert all(0.02 < r < 0.6 for r in rates)
