"""Scatter-and-gather (spikeforge.algo.methods.scatter_gather): the quantised ReLU, threshold
folding, and the lossless conversion -- the converted SNN's group spike counts equal the quantised
ANN's integer activations on every test sample, and the exported bundle runs bit-exactly in the
golden model.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spikeforge.algo.methods import METHODS
from spikeforge.algo.methods.scatter_gather import (
    SGNet,
    build_sg,
    conversion_check,
    counts_of_sums,
    fold_groups,
    group_size,
    method_settings,
    quant_relu,
    quantize_counts,
    scatter_gather,
    ternarize,
)
from spikeforge.algo.snn import bittrue
from spikeforge.algo.training.export import export
from spikeforge.algo.training.pipeline import TrainConfig, Trainer
from spikeforge.sim import golden
from spikeforge.sim.bundle import load_bundle
from spikeforge.sim.datasets import load_digits


def test_quantised_relu_levels_half_up_and_gradient():
    """Eq. 7 (k=1, B=2): levels 0, .5, 1, 1.5, 2 at .25/.75/1.25/1.75, ties rounded up."""
    r = torch.tensor([-1.0, 0.24, 0.25, 0.74, 0.75, 1.25, 1.74, 1.75, 9.0], requires_grad=True)
    y = quant_relu(r, 1, 2)
    assert y.tolist() == [0.0, 0.0, 0.5, 0.5, 1.0, 1.5, 1.5, 2.0, 2.0]
    assert quantize_counts(r, 1, 2).tolist() == [0, 0, 1, 1, 2, 3, 3, 4, 4]
    y.sum().backward()
    assert r.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
    assert group_size(1, 2) == 4 and group_size(0, 1) == 1 and group_size(2, 4) == 16
    with pytest.raises(ValueError, match="k >= 0 and B >= 1"):
        group_size(0, 0)


def test_ternary_weights():
    w = torch.tensor([[0.9, -0.05, -1.1, 0.3], [0.0, 0.6, -0.7, 0.02]])
    t, alpha = ternarize(w)
    assert set(t.unique().tolist()) <= {-1.0, 0.0, 1.0}
    keep = w.abs() > 0.7 * w.abs().mean()
    assert torch.equal(t, torch.sign(w) * keep)
    assert float(alpha) == pytest.approx(float(w.abs()[keep].mean()))


def test_folded_thresholds_equal_the_quantised_relu_for_every_sum():
    """Every integer sum in range: the members that fire == the activation, whatever the BN
    (negative and zero scale, huge shifts, thresholds below zero and above the reach)."""
    rng = np.random.default_rng(5)
    for k, bound in ((1, 2), (0, 1), (0, 4), (2, 1)):
        c = 40
        mean = rng.normal(0, 3, c)
        inv = rng.normal(0, 1, c)
        inv[:3] = [0.0, -0.5, 1e-9]
        beta = rng.normal(0, 2, c)
        beta[3:5] = [50.0, -50.0]
        scale = float(rng.uniform(0.01, 0.5))
        reach = rng.integers(0, 60, c)
        folded = fold_groups(scale, mean, inv, beta, reach, k, bound)
        n = group_size(k, bound)
        assert folded.cut.shape == (c, n) and np.all(np.diff(folded.cut, axis=1) >= 0)
        assert np.all(folded.theta >= 1) and np.all(folded.bias >= 0)
        compared = 0
        for ch in range(c):
            s = np.arange(-reach[ch], reach[ch] + 1, dtype=np.float64)
            want = counts_of_sums(s[None, :], scale, mean[ch : ch + 1], inv[ch : ch + 1],
                                  beta[ch : ch + 1], k, bound)[0]  # fmt: skip
            flipped = s * folded.sign[ch]
            fired = (flipped[:, None] + folded.bias[ch] >= folded.theta[ch]).sum(axis=1)
            assert np.array_equal(fired, want), (k, bound, ch)
            compared += s.size
        assert compared > 1000


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def _trained(digits, arch: str, k: int = 1, bound: int = 2) -> SGNet:
    torch.manual_seed(0)
    config = TrainConfig(arch=arch, method="scatter-gather", timesteps=1, ann_epochs=2,
                         snn_epochs=2, dropout=0.0, eval_every=2, batch_size=64,
                         method_options={"k": str(k), "B": str(bound)})  # fmt: skip
    net = scatter_gather(None, digits, config, Trainer(progress=False, log=lambda _: None))
    # Flip and zero some BN scales: the conversion must stay lossless.
    with torch.no_grad():
        bn = net.layers[0].bn
        bn.weight[:2] = -bn.weight[:2].abs()
        bn.weight[2] = 0.0
    return net.set_mode("bittrue").eval()


@pytest.mark.parametrize(("arch", "k", "bound"), [("24-16", 1, 2), ("c4k3s2-12", 0, 2)])
def test_conversion_is_lossless_and_the_bundle_is_bit_exact(digits, tmp_path, arch, k, bound):
    net = _trained(digits, arch, k, bound)
    x = digits.x_test
    n = len(x)
    # The quantised ANN (exact: integer sums, float64 BN) on every test sample.
    codes = net.encode(torch.as_tensor(x))
    ann = net.quantised_ann(codes)
    # The exported bundle in the golden model.
    bundle = load_bundle(export(net, tmp_path / "b"))
    assert bundle.timesteps == 1 and bundle.input.encoding == "direct"
    hidden = bundle.layers[:-1]
    assert all(layer.leak.mode == "none" and layer.reset == "zero" for layer in hidden)
    assert [layer.w_bits for layer in hidden[1:]] == [2] * (len(hidden) - 1)
    assert all(set(np.unique(layer.weight)) <= {-1, 0, 1} for layer in hidden[1:])
    x_np = codes.numpy().astype(np.int64)
    gold = golden.run(bundle, x_np)
    counts = net.group_counts(gold.spikes)
    compared = 0
    for name, want in ann.counts.items():
        assert counts[name].shape == tuple(want.shape)
        assert np.array_equal(counts[name], want.numpy()), name
        assert 0 < float(want.sum()) < want.numel() * group_size(k, bound)
        compared += want.numel()
    assert compared == n * sum(int(np.prod(layer.out_shape)) for layer in net.layers[:-1])
    assert np.array_equal(gold.v_out, ann.sums.numpy().astype(np.int64))
    assert np.array_equal(gold.pred, ann.logits.argmax(1).numpy())
    # The PyTorch bit-true pass equals the golden model on every spike.
    ours = bittrue.to_result(net.run_bittrue(codes))
    for name, spikes in gold.spikes.items():
        assert np.array_equal(ours.spikes[name], spikes), name
    assert np.array_equal(ours.v_out, gold.v_out)
    check = conversion_check(net, x)
    assert check == {"activations_compared": compared, "differ": 0, "output_sums_equal": True}


def test_method_is_registered_and_refuses_bad_settings(digits):
    assert METHODS["scatter-gather"] is scatter_gather
    config = TrainConfig(arch="8", timesteps=5)
    with pytest.raises(ValueError, match="one time step"):
        scatter_gather(None, digits, config, Trainer(progress=False))
    for options, message in (({"q": "1"}, "unknown method options"), ({"k": "x"}, "integers"),
                             ({"B": "0"}, "B >= 1")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            method_settings(TrainConfig(method_options=options))
    assert method_settings(TrainConfig(method_options={"k": "0", "B": "4"})) == (0, 4)
    net = build_sg(TrainConfig(arch="c4k3s2-8"), digits)
    assert [layer.weights for layer in net.layers] == ["int", "ternary", "int"]


def test_spikeforge_train_scatter_gather(tmp_path, capsys):
    """``spikeforge train --method scatter-gather``: T = 1 by default, method options, the
    bundle equals the bit-true pass and the quantised ANN, the conversion check is stored."""
    import argparse
    import json

    from spikeforge.cli import train as train_cli

    parser = argparse.ArgumentParser()
    train_cli.add_arguments(parser)
    out = tmp_path / "sg"
    args = parser.parse_args(["--method", "scatter-gather", "--arch", "16", "--out", str(out),
                              "--limit-train", "400", "--ann-epochs", "8", "--snn-epochs", "4",
                              "--ann-lr", "1e-2", "--snn-lr", "3e-3",
                              "--method-option", "k=0", "--method-option", "B=3",
                              "--no-progress", "--no-plots", "--threads", "1"])  # fmt: skip
    assert train_cli.main(args) == 0
    bundle = load_bundle(out)
    assert bundle.timesteps == 1 and bundle.layers[0].n_out == 16 * 3
    metrics = json.loads((out / "metrics.json").read_text())
    acc = metrics["accuracy"]
    assert acc["fake_quant"] == acc["bit_true"] == acc["golden"] > 0.5
    (convert,) = [h for h in metrics["history"] if h["phase"] == "convert"]
    assert convert["differ"] == 0 and convert["activations_compared"] == 360 * 16
    assert metrics["bit_true_vs_golden"]["equal"]
    assert "bit-true == golden" in capsys.readouterr().out
