"""BNTT (Kim & Panda): per-step batch norm, neuron, early exit, fold-and-export, method."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spikeforge.algo.methods import METHODS
from spikeforge.algo.methods.bntt import (
    BatchNormThroughTime,
    BNTTNet,
    FoldedSNN,
    early_exit_steps,
    fold_bntt,
    gain_spread,
)
from spikeforge.algo.snn import bittrue
from spikeforge.algo.training.export import to_bundle
from spikeforge.algo.training.pipeline import fixed_inputs
from spikeforge.sim import golden
from spikeforge.sim.datasets import load_digits

from tests.algo.method_runs import short_method_run
from tests.sim.same_spikes import compare_spikes

EPS = 1e-4


def test_each_step_has_its_own_statistics_and_gain():
    bn = BatchNormThroughTime(1, 2)
    with torch.no_grad():
        bn.gamma.copy_(torch.tensor([[0.5], [2.0]]))
    x = torch.tensor([[[1.0], [3.0]], [[0.0], [4.0]]])  # [T=2, N=2, C=1]
    out = bn.train()(x)
    # step 0: mean 2, biased var 1; step 1: mean 2, biased var 4
    assert torch.allclose(out[0, :, 0], 0.5 * torch.tensor([-1.0, 1.0]) / math.sqrt(1 + EPS))
    assert torch.allclose(out[1, :, 0], 2.0 * torch.tensor([-2.0, 2.0]) / math.sqrt(4 + EPS))
    # moving averages per step (momentum 0.1, unbiased variance 2 and 8)
    assert torch.allclose(bn.running_mean[:, 0], torch.tensor([0.2, 0.2]))
    assert torch.allclose(bn.running_var[:, 0], torch.tensor([1.1, 1.7]))
    # no beta: only gamma is a parameter
    assert [name for name, _ in bn.named_parameters()] == ["gamma"]


def test_gamma_gradient_is_per_step():
    bn = BatchNormThroughTime(3, 4)
    x = torch.randn(4, 8, 3)
    out = bn.train()(x)
    out[2].sum().backward()  # only step 2 contributes to the loss
    grad = bn.gamma.grad
    assert torch.all(grad[[0, 1, 3]] == 0)
    x_hat = (x[2] - x[2].mean(0)) / torch.sqrt(x[2].var(0, unbiased=False) + EPS)
    assert torch.allclose(grad[2], x_hat.sum(0), atol=1e-5)  # Δγ^t = Σ dL/du · x̂


def test_inference_affine_matches_eval_mode():
    bn = BatchNormThroughTime(5, 3)
    with torch.no_grad():
        bn.gamma.uniform_(0.5, 1.5)
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(3, 7, 5)
    gain, offset = bn.step_affine()
    assert torch.allclose(bn.eval()(x), gain[:, None] * x + offset[:, None], atol=1e-6)
    with pytest.raises(ValueError, match="statistics for 3 steps"):
        bn(torch.randn(4, 2, 5))


def test_soft_reset_leaky_neuron_and_triangle_surrogate():
    net = BNTTNet("1", (1,), 2, 3, leak=0.5)
    current = torch.tensor([1.2, 0.5, 0.9]).view(3, 1, 1).requires_grad_(True)
    spikes = net._neurons(current)
    # u: 1.2 -> spike, v 0.2; 0.1 + 0.5 = 0.6; 0.3 + 0.9 = 1.2 -> spike
    assert spikes.view(-1).tolist() == [1.0, 0.0, 1.0]
    spikes[0].sum().backward()
    # d s0 / d u0 = 0.3 · max(0, 1 - |1.2 - 1|) = 0.24
    assert current.grad.view(-1)[0].item() == pytest.approx(0.24)


def test_early_exit_rule():
    profile = np.array([[0.5, 0.3, 0.05, 0.2, 0.05, 0.01], [0.2, 0.05, 0.05, 0.05, 0.01, 0.01]])
    assert early_exit_steps(profile, 0.1) == 4  # last step where some layer is >= 0.1
    # the paper's Fig. 4: every layer below 0.1 after t = 20 of 25 -> exit at 20
    vgg = np.full((7, 25), 0.05)
    vgg[3, :20] = 0.4
    assert early_exit_steps(vgg, 0.1) == 20
    assert early_exit_steps(np.full((2, 5), 0.8), 0.1) == 5
    assert early_exit_steps(np.full((2, 5), 0.01), 0.1) == 1
    with pytest.raises(ValueError, match="layers, T"):
        early_exit_steps(np.zeros(5))


def _net_with_stats(timesteps: int, constant: bool, seed: int = 0) -> BNTTNet:
    torch.manual_seed(seed)
    net = BNTTNet("12-8", (6,), 3, timesteps, leak=0.9, encoder="poisson", input_scale=1 / 4)
    with torch.no_grad():
        for norm in net.norms:
            c = norm.gamma.shape[1]
            gamma = torch.rand(c) + 0.5
            mean, var = torch.rand(c) * 0.5, torch.rand(c) + 0.5
            if constant:
                norm.gamma.copy_(gamma.expand(timesteps, c))
                norm.running_mean.copy_(mean.expand(timesteps, c))
                norm.running_var.copy_(var.expand(timesteps, c))
            else:
                norm.gamma.copy_(torch.rand(timesteps, c) + 0.5)
                norm.running_mean.copy_(torch.rand(timesteps, c) * 0.5)
                norm.running_var.copy_(torch.rand(timesteps, c) + 0.5)
    return net.eval()


def test_fold_is_exact_when_the_statistics_do_not_change_over_time():
    net = _net_with_stats(5, constant=True)
    folded = fold_bntt(net).set_mode("float").eval()
    codes = torch.randint(0, 5, (64, 6))
    x = net.encode(codes, torch.Generator().manual_seed(3))
    with torch.no_grad():
        exact = net(x)
        approx = folded.run(x) / net.timesteps
    assert torch.allclose(exact, approx, atol=1e-5)
    assert max(gain_spread(net)) < 1e-6


def test_fold_is_an_approximation_when_they_do():
    net = _net_with_stats(5, constant=False)
    folded = fold_bntt(net).set_mode("float").eval()
    x = net.encode(torch.randint(0, 5, (64, 6)), torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert not torch.allclose(net(x), folded.run(x) / net.timesteps, atol=1e-3)
    assert min(gain_spread(net)) > 0.05


def test_folded_integers_thresholds_biases_and_nonpositive_gain():
    net = _net_with_stats(4, constant=False)
    folded = fold_bntt(net, w_bits=6, v_bits=16)
    layer = folded.layers[0]
    with torch.no_grad():
        layer.gain[1] = -0.3
        int_layer = layer.int_layer(6, 16, 1.0)
    gain, offset = net.norms[0].step_affine()
    k, c = gain.mean(0), offset.mean(0)
    unit = float(int_layer.unit)  # weight step (spike input, shift 0)
    assert int_layer.theta[0].item() == math.ceil(1.0 / (k[0].item() * unit))
    assert int_layer.bias[0].item() == round(c[0].item() / (k[0].item() * unit))
    assert int_layer.theta[1].item() == 2**15 - 1 and int_layer.bias[1].item() == 0


def test_folded_bundle_equals_golden_bit_for_bit():
    net = _net_with_stats(6, constant=False, seed=1)
    folded = fold_bntt(net, w_bits=5, v_bits=12)
    codes = np.random.default_rng(0).integers(0, 5, (40, 6))
    x = fixed_inputs(folded, codes, 7)
    shifts = folded.calibrate_shifts(x)
    assert len(shifts) == 3
    folded.set_mode("bittrue").eval()
    with torch.no_grad():
        ours = bittrue.to_result(folded.run_bittrue(x))
    bundle = to_bundle(folded)
    assert isinstance(bundle.layers[0].threshold, np.ndarray)  # per-neuron thresholds
    assert bundle.layers[0].bias is not None
    gold = golden.run(bundle, x.numpy().astype(np.uint8))
    assert compare_spikes(ours, gold) == 40 * 6 * (12 + 8 + 3)
    assert sum(int(s.sum()) for s in list(gold.spikes.values())[:-1]) > 0


def test_conv_bntt_runs_and_folds():
    torch.manual_seed(0)
    net = BNTTNet("c4k3s2-10", (1, 8, 8), 3, 3, encoder="poisson", input_scale=1 / 16)
    x = net.encode(torch.randint(0, 17, (5, 1, 8, 8)))
    assert net.train()(x).shape == (5, 3)
    folded = fold_bntt(net.eval())
    assert isinstance(folded, FoldedSNN)
    assert folded.layers[0].int_layer(6, 16, 1.0).theta.shape == (4, 4, 4)


def test_bntt_method_end_to_end_on_a_slice_of_digits():
    assert "bntt" in METHODS
    data = load_digits().limited(200, 60)
    result = short_method_run("bntt", data, arch="32", timesteps=3, batch_size=50)
    assert isinstance(result.net, FoldedSNN)
    fold = [h for h in result.history if h["phase"] == "fold"]
    assert len(fold) == 1
    assert set(fold[0]["bntt_test_acc_by_steps"]) == {1, 2, 3}
    assert 1 <= fold[0]["early_exit_steps"] <= 3
    assert 0.0 <= fold[0]["bittrue_test_acc_before_finetune"] <= 1.0
    assert len(fold[0]["gain_spread_over_steps"]) == 1
