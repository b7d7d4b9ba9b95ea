"""``spikeforge train`` end to end on small data: bundle, metrics, plots, bit-exact check."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from spikeforge.sim import golden
from spikeforge.sim.bundle import load_bundle

from spikeforge.cli import train as train_cli
from spikeforge.cli.errors import UsageError
from tests.train_options import parse_train_args, train_argv

QUICK = train_argv(
    ann_epochs=8, ann_lr="1e-2", snn_epochs=2, bittrue_epochs=1, no_progress=True, threads=1
)


def test_digits_run_writes_bundle_metrics_and_plots(tmp_path, capsys):
    out = tmp_path / "digits"
    rc = train_cli.main(
        parse_train_args("--out", str(out), "--limit-train", "400", "--arch", "48", *QUICK)
    )
    assert rc == 0
    bundle = load_bundle(out)
    assert bundle.timesteps == 5 and bundle.layers[0].w_bits == 6
    metrics = json.loads((out / "metrics.json").read_text())
    acc = metrics["accuracy"]
    assert set(acc) == {"ann", "float", "fake_quant", "bit_true", "golden"}
    assert acc["golden"] == acc["bit_true"] > 0.8
    check = metrics["bit_true_vs_golden"]
    assert check["equal"] and check["spike_values_compared"] == 360 * 5 * (48 + 10)
    assert check["output_potentials_compared"] == 3600
    assert set(metrics["firing_rates"]) == {"fc1"}
    assert metrics["operations"]["fc1"]["mac_ops"] > 0
    assert metrics["operations"]["out"]["accumulate_ops"] > 0
    for name in ("training_curves", "raster", "firing_rates"):
        assert (out / "plots" / f"{name}.png").stat().st_size > 1000
    x, y = np.load(out / "test_x.npy"), np.load(out / "test_y.npy")
    assert golden.accuracy(golden.run(bundle, x), y) == acc["golden"]
    assert "bit-true == golden" in capsys.readouterr().out


def test_fashion_mnist_conv_run_on_generated_idx_files(tmp_path):
    from spikeforge.sim.datasets import IDX_FILES, write_idx

    rng = np.random.default_rng(0)
    data = tmp_path / "fm"
    data.mkdir()
    sizes = {"train": 64, "t10k": 16}
    for key, stem in IDX_FILES.items():
        n = sizes[stem.split("-")[0]]
        array = rng.integers(0, 256, (n, 28, 28)) if "images" in key else rng.integers(0, 10, n)
        write_idx(data / f"{stem}.gz", array)
    out = tmp_path / "b"
    argv = ["--dataset", "fashion-mnist", "--data", str(data), "--out", str(out)]
    argv += ["--arch", "c4k3s2-c4k3s2-16", "--timesteps", "3", "--encoding", "poisson", *QUICK]
    assert train_cli.main(parse_train_args(*argv, "--no-plots")) == 0
    bundle = load_bundle(out)
    assert [layer.kind for layer in bundle.layers] == ["conv2d", "conv2d", "linear", "linear"]
    assert bundle.input.encoding == "spikes" and bundle.layers[0].stride == (2, 2)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["bit_true_vs_golden"]["equal"]
    assert not (out / "plots").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--w-bits", "9"], "--w-bits must be in 2..8"),
        (["--method", "stdp"], "unknown --method"),
        (["--arch", "64-c8"], "cannot follow"),
        (["--dataset", "mnist"], "--data DIR"),
        (["--timesteps", "0"], "--timesteps"),
    ],
)
def test_bad_input_is_a_one_line_usage_error(tmp_path, argv, message):
    with pytest.raises(UsageError, match=message) as info:
        train_cli.main(parse_train_args("--out", str(tmp_path / "x"), *argv))
    assert "\n" not in str(info.value)


def test_help_does_not_import_torch():
    import subprocess
    import sys

    code = (
        "import argparse, sys; from spikeforge.cli import train as train_cli; "
        "p = argparse.ArgumentParser(); train_cli.add_arguments(p); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.slow
def test_default_digits_training_reaches_97_percent_in_five_minutes(tmp_path):
    start = time.perf_counter()
    assert train_cli.main(parse_train_args("--out", str(tmp_path / "digits"), "--no-progress")) == 0
    elapsed = time.perf_counter() - start
    metrics = json.loads((tmp_path / "digits" / "metrics.json").read_text())
    assert metrics["accuracy"]["golden"] >= 0.97
    assert metrics["timesteps"] <= 5 and metrics["w_bits"] == 6
    assert elapsed < 300


def test_augmentation_only_moves_codes():
    import torch
    from spikeforge.algo.training.pipeline import augment_batch

    x = torch.randint(1, 256, (64, 1, 28, 28))
    y = augment_batch(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert set(torch.unique(y).tolist()) <= set(torch.unique(x).tolist()) | {0}
    flipped_or_shifted = sum(not torch.equal(a, b) for a, b in zip(x, y, strict=True))
    assert flipped_or_shifted > 48  # 1/2 unflipped x 1/25 unshifted stay put
    centred = augment_batch(x, torch.Generator().manual_seed(0), shift=0)
    assert all(
        torch.equal(a, b) or torch.equal(a, b.flip(2)) for a, b in zip(x, centred, strict=True)
    )


def test_force_and_retrain_keep_the_files_beside_the_bundle(tmp_path, capsys):
    """A non-empty directory needs --force; a retrain into a bundle directory replaces only
    what train writes, so unrelated files (and an older rtl.npz) survive."""
    from spikeforge import cli

    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["train", "--out", str(out), "--limit-train", "200", "--limit-test", "50"]
    argv += ["--arch", "16", "--ann-epochs", "1", "--snn-epochs", "1", "--bittrue-epochs", "0"]
    argv += ["--no-plots", "--no-progress", "--threads", "1"]
    assert cli.main(argv) == 2
    assert "non-empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    assert cli.main([*argv, "--force"]) == 0
    (out / "rtl.npz").write_bytes(b"older result")
    assert cli.main(argv) == 0
    names = {p.name for p in out.iterdir()}
    assert {"keep.txt", "rtl.npz", "manifest.json", "weights.npz", "metrics.json"} <= names
    assert (out / "keep.txt").read_text() == "mine"
    assert (out / "rtl.npz").read_bytes() == b"older result"
    assert load_bundle(out).timesteps == 5
