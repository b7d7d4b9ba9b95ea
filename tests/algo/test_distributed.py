"""Multi-process training: a 2-process torchrun digits run, and the batch shards it uses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import torch
from spikeforge.algo.training import checkpoint
from spikeforge.algo.training.distributed import Processes, Shards, torchrun_environment
from spikeforge.sim import golden
from spikeforge.sim.bundle import load_bundle

from tests.train_options import short_run_argv


def test_torchrun_two_processes_digits(tmp_path):
    """``torchrun --nproc_per_node 2``: one bundle, written by rank 0 alone, bit-true ==
    golden; the checkpoint says 2 processes trained it."""
    out = tmp_path / "digits2"
    argv = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "spikeforge.cli",
        "train",
        "--out",
        str(out),
        *short_run_argv(limit_train=300, arch=32, snn_epochs=2, bittrue_epochs=1),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.count("wrote ") == 1 and "2 processes" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint",
        "manifest.json",
        "metrics.json",
        "test_x.npy",
        "test_y.npy",
        "weights.npz",
    ]
    assert [p.name for p in (out / "checkpoint").iterdir()] == [checkpoint.STATE_FILE]
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    metrics = json.loads((out / "metrics.json").read_text())
    check = metrics["bit_true_vs_golden"]
    assert check["equal"] and check["mismatches"] == []
    assert check["spike_values_compared"] == 120 * 5 * (32 + 10)
    bundle = load_bundle(out)
    x, y = np.load(out / "test_x.npy"), np.load(out / "test_y.npy")
    assert len(y) == 120
    assert golden.accuracy(golden.run(bundle, x), y) == metrics["accuracy"]["golden"]
    assert metrics["accuracy"]["golden"] == metrics["accuracy"]["bit_true"]
    saved = torch.load(out / "checkpoint" / checkpoint.STATE_FILE, weights_only=True)
    assert saved["world_size"] == 2 and len(saved["rng"]) == 2
    assert saved["phase"] == "bittrue" and saved["progress"]["epoch"] == 1


def test_torchrun_environment():
    assert torchrun_environment({}) is None
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "node0"}
    assert torchrun_environment(env) == Processes(rank=3, world=4, local_rank=1)


def _data(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(n * 2, dtype=np.int64).reshape(n, 2), np.arange(n, dtype=np.int64)


def test_memory_shards_split_each_global_batch():
    """Every global batch is split among the processes, each sample once; the loss weights
    make the processes' average the global batch mean; one process is the plain loop."""
    x, y = _data(21)
    order = torch.as_tensor(np.random.default_rng(5).permutation(21))
    single = list(Shards(x, y, 8, seed=0, loader="memory").epoch(0, order, 0))
    assert [b.y.tolist() for b in single] == [order[i : i + 8].tolist() for i in (0, 8, 16)]
    assert all(b.weight == 1.0 for b in single)
    ranks = [
        list(Shards(x, y, 8, seed=0, processes=Processes(r, 3), loader="memory").epoch(0, order, 0))
        for r in range(3)
    ]
    compared = 0
    for b, whole in enumerate(single):
        parts = [ranks[r][b] for r in range(3)]
        assert sorted(torch.cat([p.y for p in parts]).tolist()) == sorted(whole.y.tolist())
        # per-sample "losses" = the labels: DDP's average of weighted means is the global mean
        averaged = sum(p.weight * float(p.y.double().mean()) for p in parts) / 3
        assert abs(averaged - float(whole.y.double().mean())) < 1e-12
        for p in parts:
            assert torch.equal(p.x[:, 0], 2 * p.y)
            compared += len(p.y)
    assert compared == 21
    # a batch smaller than the process count: a stand-in sample with weight 0
    shards = Shards(*_data(5), 4, seed=0, processes=Processes(2, 3), loader="memory")
    last = list(shards.epoch(0, torch.arange(5), 1))
    assert len(last) == 1 and last[0].weight == 0.0 and last[0].y.tolist() == [4]
    # resume mid-epoch: the remaining batches only
    assert [b.y.tolist() for b in Shards(x, y, 8, seed=0).epoch(0, order, 2)] == [
        order[16:].tolist()
    ]


def test_stream_shards_use_a_distributed_sampler():
    """``stream``: a DataLoader with a DistributedSampler; per epoch the processes see every
    sample (padded to equal counts), reshuffled by epoch, and can start at a batch."""
    x, y = _data(20)
    shards = [Shards(x, y, 4, seed=7, processes=Processes(r, 2), loader="stream") for r in (0, 1)]
    assert all(s.stream and s.batches == 5 for s in shards)
    epochs = []
    for epoch in (0, 1):
        seen = [torch.cat([b.y for b in s.epoch(epoch, None, 0)]) for s in shards]
        assert all(len(s) == 10 for s in seen)
        assert sorted(torch.cat(seen).tolist()) == list(range(20))
        for s in shards:
            for b in s.epoch(epoch, None, 0):
                assert torch.equal(b.x[:, 0], 2 * b.y) and b.weight == 1.0
        epochs.append(seen[0].tolist())
    assert epochs[0] != epochs[1]
    tail = torch.cat([b.y for b in shards[0].epoch(1, None, 3)]).tolist()
    assert tail == epochs[1][6:]
    assert Shards(x, y, 4, seed=7, loader="auto").stream is False
