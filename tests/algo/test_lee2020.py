"""Lee et al. 2020: hand-computed neuron, pooling, gradient, dropout, residual and energy cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spikeforge.algo.methods import METHODS
from spikeforge.algo.methods.lee2020 import (
    Flow,
    LeeNet,
    SpikingAvgPool,
    SpikingResidualBlock,
    eq22_derivative,
    lif_hard_reset,
    mse_half_sum,
    poisson_trains,
    text_leak,
    to_snn,
)
from spikeforge.algo.methods.lee2020_energy import (
    FP32,
    INT32,
    PAPER_CLAIMS,
    PAPER_RATIOS,
    gain_vs_ann,
    gain_vs_snn,
    op_report,
    snn_accumulates,
)
from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.surrogate import LeakCorrectedSTE
from spikeforge.algo.training.export import to_bundle
from spikeforge.algo.training.pipeline import TrainConfig, fixed_inputs, train
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, Layer
from spikeforge.sim.datasets import load_digits
from spikeforge.sim.semantics import Leak
from torch import nn

from tests.algo.method_runs import short_method_run
from tests.sim.same_spikes import compare_spikes


def _train(steps: int, at: list[int]) -> torch.Tensor:
    s = torch.zeros(steps, 1)
    for t in at:
        s[t - 1, 0] = 1.0  # steps are 1-indexed as in the paper
    return s


def test_eq22_hand_values():
    assert text_leak(100) == pytest.approx(0.990050, abs=1e-6)
    assert eq22_derivative(_train(50, [50])).item() == pytest.approx(0.99)
    every = eq22_derivative(_train(50, list(range(1, 51)))).item()
    assert every == pytest.approx(0.99209, abs=1e-5)
    assert eq22_derivative(_train(50, [])).item() == 0.0  # silent -> no gradient
    assert eq22_derivative(_train(50, [50]), v_th=2.0).item() == pytest.approx(0.495)
    assert eq22_derivative(_train(10, [3]), math.inf, 0.75).item() == pytest.approx(1 / 0.75)
    # always within [0.99, 1)/V_th for a firing neuron
    trains = (torch.rand(50, 500) < torch.rand(500)).float()
    values = eq22_derivative(trains)[trains.sum(0) > 0]
    assert values.min() >= 0.99 - 1e-7 and values.max() < 1.0


def test_code_gradient_factor_is_v_th_times_eq22():
    trains = (torch.rand(40, 300) < 0.3).float()
    lam = text_leak(100)
    factor = LeakCorrectedSTE().output_correction(trains, lam)
    fired = trains.sum(0) > 0
    assert fired.sum() > 250
    assert torch.allclose(factor[fired], eq22_derivative(trains, 100.0, 1.0)[fired], atol=1e-6)


def test_lif_hard_reset_trace():
    current = torch.tensor([0.6, 0.5, 0.3, 1.5, 1.0]).view(5, 1)
    spikes = lif_hard_reset(current, 1.0, 0.9, differentiable=False)
    # V: 0.6 (leak 0.54); 1.04 > 1 fire, 0; 0.3 (0.27); 1.77 fire, 0; 1.0 is not > 1
    assert spikes.view(-1).tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]
    assert torch.equal(lif_hard_reset(current, 1.0, 0.9, differentiable=True), spikes)


def test_code_bptt_gradient_is_gated_at_spikes_and_cut_by_the_reset():
    current = torch.tensor([1.5, 0.2, 0.6, 0.5]).view(4, 1).requires_grad_(True)
    spikes = lif_hard_reset(current, 1.0, 0.99, differentiable=True)
    assert spikes.view(-1).tolist() == [1.0, 0.0, 0.0, 1.0]
    spikes.sum().backward()
    # step 1 fires (grad 1/V_th); the reset cuts everything before the next spike at step 4,
    # which credits steps 2-4 with the leak passed as identity
    assert current.grad.view(-1).tolist() == [1.0, 1.0, 1.0, 1.0]
    tail = torch.tensor([1.5, 0.2]).view(2, 1).requires_grad_(True)
    lif_hard_reset(tail, 2.0, 0.99, differentiable=True).sum().backward()
    assert tail.grad.view(-1).tolist() == [0.0, 0.0]  # never fires at V_th = 2 -> no gradient
    late = torch.tensor([1.5, 0.2]).view(2, 1).requires_grad_(True)
    lif_hard_reset(late, 1.0, 0.99, differentiable=True).sum().backward()
    assert late.grad.view(-1).tolist() == [1.0, 0.0]  # input after the last spike: no credit


def test_pooling_neuron():
    pool = SpikingAvgPool()
    seq = torch.zeros(3, 1, 1, 2, 2)
    seq[0] = 1.0  # 4 coincident spikes: 1.0 > 0.75
    seq[1, 0, 0, 0, :] = 1.0
    seq[1, 0, 0, 1, 0] = 1.0  # 3 spikes: exactly 0.75, no spike, residue stays (no leak)
    seq[2, 0, 0, 0, 0] = 1.0  # 0.75 + 0.25 = 1.0 > 0.75
    out = pool.run(Flow(seq), None).seq
    assert out.view(-1).tolist() == [1.0, 0.0, 1.0]


def test_output_is_leaky_potential_over_t():
    net = LeeNet("", (2,), 2, 3, leak=0.5, dropout=0.0, gradient="bptt")
    with torch.no_grad():
        net.out.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # [N=1, T=3, 2]
    # V1 = [1, 0]; V2 = 0.5·V1 + [2, -1] = [2.5, -1]; V3 = 0.5·V2 + [3, -1] = [4.25, -1.5]
    expected = torch.tensor([[4.25, -1.5]]) / 3
    assert torch.allclose(net.eval()(x), expected)
    net.gradient = "aggregate"
    assert torch.allclose(net(x), expected)


def test_aggregate_gradient_is_eqs_23_to_27():
    torch.manual_seed(0)
    net = LeeNet("6", (4,), 3, 12, gradient="aggregate", dropout=0.0)
    with torch.no_grad():
        net.stages[0].synapse.weight.uniform_(0.2, 0.9)
    x = (torch.rand(5, 12, 4) < 0.6).float()
    labels = torch.tensor([0, 1, 2, 0, 1])
    out = net.train()(x)
    mse_half_sum(out, labels).backward()
    with torch.no_grad():
        w1, w2 = net.stages[0].synapse.weight, net.out.weight
        seq = x.transpose(0, 1)
        hidden = lif_hard_reset(seq @ w1.t(), 1.0, net.leak, differentiable=False)
        x_count, a_count = seq.sum(0), hidden.sum(0)
        assert a_count.sum() > 0
        e = out - torch.nn.functional.one_hot(labels, 3)  # eq 8, dE/doutput (eq 10)
        delta_out = e / 12  # eq 23
        delta_hidden = (delta_out @ w2) * eq22_derivative(hidden, net.tau_m, 1.0)  # eq 24
        assert torch.allclose(net.out.weight.grad, delta_out.t() @ a_count, atol=1e-5)  # eq 26
        assert torch.allclose(
            net.stages[0].synapse.weight.grad, delta_hidden.t() @ x_count, atol=1e-5
        )


def test_both_gradients_share_the_forward_pass():
    torch.manual_seed(1)
    a = LeeNet("c4k3-p-10", (1, 6, 6), 3, 8, gradient="aggregate", dropout=0.0)
    b = LeeNet("c4k3-p-10", (1, 6, 6), 3, 8, gradient="bptt", dropout=0.0)
    b.load_state_dict(a.state_dict())
    x = (torch.rand(4, 8, 1, 6, 6) < 0.5).float()
    assert torch.allclose(a(x), b(x))
    for net in (a, b):
        mse_half_sum(net(x), torch.tensor([0, 1, 2, 0])).backward()
        assert net.stages[0].synapse.weight.grad.abs().sum() > 0


def test_dropout_one_mask_per_iteration():
    net = LeeNet("16", (4,), 2, 6, dropout=0.5, gradient="bptt").train()
    current = torch.full((6, 3, 16), 2.0)  # fires at every step
    flow = net.fire(current, None)
    mask = net._masks[0]
    assert mask.shape == (3, 16)
    assert set(mask.unique().tolist()) <= {0.0, 2.0}  # scale 1/(1-p)
    assert all(torch.equal(flow.seq[t], mask) for t in range(6))  # fixed over all steps
    net.fire(current, None)
    assert not torch.equal(net._masks[1], mask)  # a new draw next iteration
    net.eval()
    assert torch.equal(net.fire(current, None).seq, torch.ones(6, 3, 16))


def test_he_initialisation_kappa():
    plain = LeeNet("400", (200,), 10, 2)
    std = plain.stages[0].synapse.weight.std().item()
    assert std == pytest.approx(math.sqrt(2 / 200), rel=0.05)
    residual = LeeNet("c8k3-r8", (1, 8, 8), 10, 2)
    assert residual.kappa == 1.0
    std = residual.stages[1].conv1.weight.std().item()
    assert std == pytest.approx(math.sqrt(1 / 72), rel=0.15)


class _NoDropout:
    leak, v_th, dropout, training = 0.99, 1.0, 0.0, False

    def fire(self, current, net_count):
        return Flow(lif_hard_reset(current, 1.0, 0.99, differentiable=False))


def test_residual_skip_is_added_into_the_membrane():
    block = SpikingResidualBlock(1, 1)
    with torch.no_grad():
        block.conv2.weight.zero_()  # only the identity skip reaches the second LIF
    seq = torch.zeros(3, 1, 1, 1, 1)
    seq[:, 0, 0, 0, 0] = 1.0
    out = block.run(Flow(seq), _NoDropout()).seq
    # V: 1 (not > 1, leak 0.99); 0.99 + 1 = 1.99 > 1 fire; 1 again
    assert out.view(-1).tolist() == [0.0, 1.0, 0.0]
    wide = SpikingResidualBlock(1, 2, stride=2)
    assert isinstance(wide.skip, nn.Conv2d) and wide.skip.kernel_size == (1, 1)
    with torch.no_grad():
        wide.conv2.weight.zero_()
        wide.skip.weight.fill_(2.0)
    out = wide.run(Flow(torch.ones(2, 1, 1, 3, 3)), _NoDropout()).seq
    assert out.shape == (2, 1, 2, 2, 2) and bool(out.all())  # 2 > 1 at every step


def test_poisson_rate():
    trains = poisson_trains(torch.full((2000, 1), 8), 1 / 16, 10, torch.Generator().manual_seed(0))
    rate = trains.mean().item()
    assert abs(rate - 0.5) < 4 * math.sqrt(0.25 / trains.numel())


def test_export_bit_exact_with_pooling_neurons_and_refusals():
    torch.manual_seed(2)
    net = LeeNet("c4k3-p-12", (1, 8, 8), 3, 10, dropout=0.0)
    with torch.no_grad():
        net.stages[0].synapse.weight.abs_()  # lively first layer: the pool neurons fire
    snn = to_snn(net, input_scale=1 / 16, w_bits=6, v_bits=16)
    codes = np.random.default_rng(1).integers(0, 17, (30, 1, 8, 8))
    x = fixed_inputs(snn, codes, 5)
    snn.calibrate_shifts(x)
    snn.set_mode("bittrue").eval()
    int_layers = snn.int_layers()
    assert int_layers[0].theta.item() == math.floor(1.0 / float(int_layers[0].unit)) + 1
    assert int_layers[-1].leak_mode == "mult" and int(int_layers[-1].lam) == round(0.99 * 256)
    pool = int_layers[1]
    assert pool.theta.item() == 4 and pool.leak_mode == "none" and pool.reset == "zero"
    assert torch.equal(pool.weight[:, :, 0, 0], torch.eye(4, dtype=pool.weight.dtype))
    with torch.no_grad():
        ours = bittrue.to_result(snn.run_bittrue(x))
        # the float pooling neuron of the trained network makes the same spikes
        seq = torch.as_tensor(ours.spikes["conv1"], dtype=torch.float32).transpose(0, 1)
        lee_pool = net.stages[1].run(Flow(seq), net).seq.transpose(0, 1)
    assert np.array_equal(lee_pool.numpy().astype(np.uint8), ours.spikes["pool2"])
    assert ours.spikes["pool2"].sum() > 0
    bundle = to_bundle(snn)
    assert [layer.reset for layer in bundle.layers[:-1]] == ["zero", "zero", "zero"]
    gold = golden.run(bundle, x.numpy().astype(np.uint8))
    assert compare_spikes(ours, gold) == 30 * 10 * (4 * 8 * 8 + 4 * 4 * 4 + 12 + 3)


@pytest.mark.parametrize("arch", ["c4k3-r4-10", "c4k3-r6s2-10"])
def test_export_residual_blocks_with_relay_neurons(arch):
    torch.manual_seed(3)
    net = LeeNet(arch, (1, 8, 8), 3, 8, dropout=0.0)
    with torch.no_grad():
        net.stages[0].synapse.weight.abs_()
    snn = to_snn(net, input_scale=1 / 16)
    codes = np.random.default_rng(2).integers(0, 17, (25, 1, 8, 8))
    x = fixed_inputs(snn, codes, 9)
    snn.calibrate_shifts(x)
    # float: the widened layers compute the block (skip added into the second membrane)
    with torch.no_grad():
        lee_out = net.eval()(x)
        snn.record = True
        deploy_out = snn.set_mode("float").eval().run(x) / 8
    assert torch.allclose(lee_out, deploy_out, atol=1e-4)
    entry, stride = snn.recorded["res2a"], 2 if "s2" in arch else 1
    relays = entry[:, :, entry.shape[2] - 4 :]
    assert torch.equal(relays, snn.recorded["conv1"][:, :, :, ::stride, ::stride])
    assert relays.sum() > 0
    # integers: relay threshold = relay weight, bundle == bit-true on every spike
    snn.set_mode("bittrue")
    entry_int = snn.int_layers()[1]
    relay_w = entry_int.weight[-4:, :, 1, 1].amax(1)
    assert torch.equal(entry_int.theta[-4:, 0, 0], relay_w) and bool((relay_w > 1).all())
    with torch.no_grad():
        ours = bittrue.to_result(snn.run_bittrue(x))
    gold = golden.run(to_bundle(snn), x.numpy().astype(np.uint8))
    assert compare_spikes(ours, gold) == sum(v.size for v in gold.spikes.values()) > 25 * 8 * 4 * 64
    # bit-true fine-tuning stays stable: the surrogate gradient through the relays' resets
    # does not grow with their weight over the steps
    snn.train()
    torch.nn.functional.cross_entropy(snn.run(x), torch.zeros(25, dtype=torch.long)).backward()
    grad = snn.layers[0].synapse.weight.grad
    assert bool(torch.isfinite(grad).all()) and grad.abs().max() < 1e3


def test_energy_model_reproduces_the_printed_ratios():
    for name, (conv1, conv2, snn) in PAPER_RATIOS.items():
        vs_ann, vs_conv1, vs_conv2 = PAPER_CLAIMS[name]
        assert gain_vs_ann(snn, INT32) == pytest.approx(vs_ann, rel=2e-3), name
        assert gain_vs_snn(conv1, snn) == pytest.approx(vs_conv1, rel=3e-3), name
        assert gain_vs_snn(conv2, snn) == pytest.approx(vs_conv2, rel=3e-3), name
    assert gain_vs_ann(3.61, INT32) == pytest.approx(8.864, abs=1e-3)
    assert gain_vs_ann(1.0, FP32) == pytest.approx(4.6 / 0.9)
    assert snn_accumulates([100, 10], [0.5, 0.2], 4) == 4 * (50 + 2)
    with pytest.raises(ValueError, match="activities"):
        snn_accumulates([1, 2], [0.5], 3)


def test_op_report_matches_golden_synaptic_ops():
    rng = np.random.default_rng(0)
    w1 = rng.integers(1, 8, (5, 6)) * rng.choice([-1, 1], (5, 6))  # no zero weights
    w2 = rng.integers(1, 8, (3, 5))
    bundle = Bundle(
        timesteps=4,
        input=InputSpec(shape=(6,), encoding="spikes", bits=1, signed=False),
        layers=[
            Layer("fc1", "linear", w1, (6,), 4, 12, 3, Leak("none"), "zero", "lif"),
            Layer("out", "linear", w2, (5,), 4, 12, None, Leak("none"), "none", "accum"),
        ],
    )
    x = (rng.random((20, 4, 6)) < 0.5).astype(np.uint8)
    result = golden.run(bundle, x)
    report = op_report(bundle, x, result)
    assert report.macs == [30, 15]
    assert report.snn_acs == pytest.approx(report.golden_synaptic_ops)
    assert report.golden_synaptic_ops > 0
    assert report.ac_per_mac == pytest.approx(report.snn_acs / 45)


def test_lee2020_method_end_to_end_on_a_slice_of_digits():
    assert "lee2020" in METHODS
    data = load_digits().limited(160, 40)
    result = short_method_run(
        "lee2020",
        data,
        arch="24",
        timesteps=6,
        batch_size=32,
        method_options={"gradient": "bptt", "leak": "text"},
    )
    deploy = [h for h in result.history if h["phase"] == "deploy"]
    assert len(deploy) == 1 and 0.0 <= deploy[0]["test_acc"] <= 1.0
    assert result.net.layers[0].neuron.reset == "zero"
    with pytest.raises(ValueError, match="encoding poisson"):
        train(TrainConfig(method="lee2020", arch="8", encoding="direct", snn_epochs=1), data)


def test_method_options_on_the_command_line():
    import argparse

    from spikeforge.cli.errors import UsageError
    from spikeforge.cli.train import _config, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    base = ["--out", "x", "--method", "lee2020", "--encoding", "poisson"]
    args = parser.parse_args(
        [*base, "--method-option", "gradient=bptt", "--method-option", "lr= 0.01"]
    )
    assert _config(args).method_options == {"gradient": "bptt", "lr": "0.01"}
    with pytest.raises(UsageError, match="KEY=VALUE"):
        _config(parser.parse_args([*base, "--method-option", "gradient"]))
