"""BPSR: regularisers, surrogate, rewiring and shift-leak PTQ on hand cases; bit-exact bundles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spikeforge.algo.methods import METHODS
from spikeforge.algo.methods import bpsr as B
from spikeforge.algo.methods.conversion import bundle_inputs, check_bundle
from spikeforge.algo.snn.models import build_snn
from spikeforge.algo.training.export import to_bundle
from spikeforge.algo.training.pipeline import TrainConfig, Trainer, build_for
from spikeforge.sim.datasets import load_dataset


def test_spike_and_weight_penalties_by_hand():
    spikes = [torch.tensor([[[1.0, 0.0]], [[1.0, 1.0]]]), torch.tensor([[[1.0]], [[0.0]]])]
    # (1/2) * (3 + 1) spikes / batch of 1
    assert float(B.spike_penalty(spikes, 1)) == 2.0
    assert float(B.spike_penalty(spikes, 2)) == 1.0
    net = build_snn("2", (2,), 2)
    with torch.no_grad():
        net.layers[0].synapse.weight.copy_(torch.tensor([[0.5, -0.25], [0.0, 1.0]]))
        net.layers[1].synapse.weight.copy_(torch.tensor([[-2.0, 0.0], [0.0, 0.125]]))
    assert float(B.weight_penalty(net).detach()) == 0.5 + 0.25 + 1.0 + 2.0 + 0.125


def test_surrogate_is_bpsrs_gaussian():
    surrogate = B.bpsr_surrogate()
    z = torch.tensor([0.0, 1.0, -0.5])
    expected = 0.7 / math.sqrt(math.pi) * torch.exp(-(0.7**2) * z**2)
    assert torch.allclose(surrogate.derivative(z), expected, atol=1e-7)
    assert float(surrogate.derivative(z)[0]) == pytest.approx(0.394933, abs=1e-6)  # 0.7 / sqrt(pi)


@pytest.mark.parametrize(
    ("tau", "k"), [(0.5, 1), (0.75, 2), (0.8, 2), (0.9, 3), (0.99, 7), (0.3, 1), (1.0, 15)]
)
def test_leak_rounds_to_the_nearest_shift(tau, k):
    assert B.shift_for(tau, 16) == k


def _tiny(weights):
    net = build_snn("2", (2,), 2)
    with torch.no_grad():
        net.layers[0].synapse.weight.copy_(torch.tensor(weights))
    return net


def test_rewiring_prunes_small_weights_and_grows_on_momentum():
    net = _tiny([[0.005, 0.5], [0.0, -0.2]])
    settings = B.BPSRSettings(theta_w=1e-2, theta_m=1e-3, mu_m=0.0, beta_m=0.0)
    rewiring = B.Rewiring(net, settings)
    w = net.layers[0].synapse.weight
    w.grad = torch.tensor([[0.0, 0.1], [0.5, 0.0]])  # beta 0: m = grad
    net.layers[1].synapse.weight.grad = torch.zeros(2, 2)
    rewiring.after_backward()
    # (0,0): |w| < Theta_w -> pruned; (1,0): w = 0 but |m| = 0.5 > Theta_m -> grows
    assert rewiring.masks[0].tolist() == [[False, True], [True, True]]
    assert w.tolist()[0][0] == 0.0
    assert torch.equal(w.grad, torch.tensor([[0.0, 0.1], [0.5, 0.0]]))
    # a pruned synapse without growth stays at zero through later steps (Adam included)
    w.grad = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    net.layers[1].synapse.weight.grad = torch.zeros(2, 2)
    optimiser = torch.optim.Adam([w], lr=0.1)
    settings.theta_m = 10.0  # nothing grows now
    rewiring.grow_at = [g.clamp(min=10.0) for g in rewiring.grow_at]
    rewiring.after_backward()
    optimiser.step()
    rewiring.after_step()
    assert w.tolist()[0][0] == 0.0 and w.tolist()[1][0] == 0.0
    assert rewiring.synapses() == 2 + 4


def test_growth_threshold_grows_with_distance():
    net = _tiny([[0.5, 0.5], [0.5, 0.5]])
    flat = B.Rewiring(net, B.BPSRSettings(theta_m=1e-4, mu_m=0.0))
    assert all(torch.all(g == 1e-4) for g in flat.grow_at)
    far = B.Rewiring(net, B.BPSRSettings(theta_m=1e-4, mu_m=5.0), seed=3)
    g = far.grow_at[0]
    assert torch.all(g > 1e-4) and torch.all(g <= 1e-4 * (1 + 5 * math.sqrt(math.sqrt(3))))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits").limited(400, 120)


def _train(digits, lambda_s, rewire, epochs=3):
    config = TrainConfig(
        arch="64", timesteps=6, reset="zero", quant="none", dropout=0.0, eval_every=epochs
    )
    torch.manual_seed(0)
    net = build_for(config, digits)
    settings = B.BPSRSettings(lambda_s=lambda_s, lambda_w=1e-3, rewire=rewire, epochs=epochs)
    B.prepare(net, settings, B.bpsr_surrogate())
    trainer = Trainer(progress=False, log=lambda _line: None)
    B.train_bpsr(net, digits, config, settings, trainer)
    return net, trainer.history


def test_spike_penalty_lowers_the_firing_rate(digits):
    _, plain = _train(digits, 0.0, False, epochs=2)
    _, sparse = _train(digits, 0.3, True, epochs=2)
    assert sparse[-1]["firing_rate"] < 0.7 * plain[-1]["firing_rate"]
    assert sparse[-1]["synapses"] < plain[-1]["synapses"]


def test_post_training_quantisation_exports_shift_leaks_bit_exactly(digits):
    net, history = _train(digits, 1e-2, True)
    assert history[-1]["test_acc"] > 0.5
    taus = [float(layer.neuron.lam().detach()) for layer in net.layers[:-1]]
    ks = B.quantise_post_training(net, digits.x_train[:64])
    assert ks == [B.shift_for(t, 16) for t in taus]
    bundle = to_bundle(net)
    assert [(layer.leak.mode, layer.leak.k) for layer in bundle.layers[:-1]] == [
        ("shift", k) for k in ks
    ]
    assert int(np.count_nonzero(bundle.layers[0].weight)) < bundle.layers[0].weight.size
    x = bundle_inputs(net, digits.x_test, 5)
    check = check_bundle(bundle, x, digits.y_test)
    assert check.equal, check.mismatches
    assert check.spike_values_compared == 120 * 6 * (64 + 10)
    assert check.potentials_compared == 1200
    assert sum(int(s.sum()) for s in check.result.spikes.values()) > 0
    with torch.no_grad():
        ours = net.run_bittrue(torch.as_tensor(x, dtype=torch.float64))
    assert np.array_equal(ours.v_out.numpy().astype(np.int64), check.result.v_out)


def test_method_is_registered():
    assert "bpsr" in METHODS


def test_sweep_command_writes_bundles_table_and_plot(tmp_path):
    import json

    from spikeforge.studies import bpsr_sweep

    argv = ["--dataset", "digits", "--out", str(tmp_path), "--arch", "16", "--epochs", "1"]
    argv += ["--timesteps", "3", "--lambda-s", "0.1", "--threads", "1"]
    argv += ["--limit-train", "200", "--limit-test", "40"]
    assert bpsr_sweep.main(argv) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["baseline", "bpsr-ls0.1"]
    assert all(r["bit_exact"] and r["spike_values_compared"] == 40 * 3 * 26 for r in rows)
    assert (tmp_path / "bpsr-ls0.1" / "manifest.json").exists()
    assert (tmp_path / "bpsr_sparsity.png").stat().st_size > 0
