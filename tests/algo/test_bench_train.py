"""The training and inference benchmarks run end to end at tiny sizes (figures never asserted)."""

from __future__ import annotations

import pytest
import torch

from spikeforge.bench import infer as bench_infer
from spikeforge.bench import train as bench_train
from spikeforge.bench.peers import PEERS, build_peer, input_shape, peer_status


@pytest.mark.parametrize("workload", ["mlp", "conv"])
def test_spikeforge_contenders_train_and_agree(workload):
    """The fused and reference networks give the same logits and the same loss trajectory."""
    data = bench_train.make_batch(workload, 3)
    losses = {}
    for name in bench_train.SPIKEFORGE:
        torch.manual_seed(0)
        model = bench_train.build_contender(name, workload, 2)
        assert model(data.x).shape == (3, 10)
        step = bench_train.train_step_fn(model, data)
        losses[name] = [step() for _ in range(2)]
    fused, ref = losses["spikeforge"], losses["spikeforge-reference"]
    assert fused[0] == ref[0], "same forward pass"
    # after one Adam step: threshold/leak gradients agree to float rounding only
    assert fused[1] == pytest.approx(ref[1], rel=1e-5)


def test_run_times_every_contender_with_enough_steps():
    figures = bench_train.run(
        ["spikeforge", "spikeforge-reference"], ["mlp"], [2], batch=2, threads=1,
        rounds=2, per_round=1, memory=False, log=lambda _: None,
    )  # fmt: skip
    assert [f.contender for f in figures] == ["spikeforge", "spikeforge-reference"]
    assert all(len(f.times_s) == 2 and f.samples_per_s > 0 for f in figures)


def test_memory_probe_runs_in_a_subprocess():
    assert bench_train.peak_memory_mib("spikeforge", "mlp", 1, 2, 1) >= 0.0


def test_peer_status_names_every_peer_with_a_version_or_the_reason():
    status = peer_status()
    assert sorted(status) == sorted(PEERS)
    for st in status.values():
        assert ("version" in st) != ("error" in st)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown peer"):
        build_peer("brian2", "mlp", 2)
    with pytest.raises(ValueError, match="unknown workload"):
        build_peer("snntorch", "rnn", 2)
    with pytest.raises(ValueError, match="option"):
        bench_train.build_contender("norse+fast", "mlp", 2)
    assert input_shape("conv") == (1, 28, 28)


def test_inference_bench_runs_every_engine():
    figures = bench_infer.run(["mlp", "conv"], [1], batch=2, threads=1, repeats=1, log=str)
    assert [(f.workload, f.engine) for f in figures] == [
        (w, e) for w in ("mlp", "conv") for e in bench_infer.ENGINES
    ]
    assert all(f.samples_per_s > 0 for f in figures)


def test_bench_bundles_fire():
    import numpy as np
    from spikeforge.sim import golden

    for workload in ("mlp", "conv"):
        b = bench_infer.bench_bundle(workload, 3)
        x = np.random.default_rng(1).integers(0, 256, size=(4, *b.input.shape))
        rates = [float(v.mean()) for k, v in golden.run(b, x).spikes.items() if k != "out"]
        assert len(rates) == 2 and all(0.01 < r < 0.9 for r in rates), rates
