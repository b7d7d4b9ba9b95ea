"""ANN-to-SNN conversion: the equations on hand-computed cases, and bit-exact bundles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spikeforge.algo.methods import METHODS
from spikeforge.algo.methods import conversion as C
from spikeforge.algo.training.export import to_bundle
from spikeforge.algo.training.pipeline import TrainConfig, Trainer
from spikeforge.sim.datasets import load_dataset
from torch import nn


def _template(shape=(2,), bits=2, scale=1.0, timesteps=4, encoder="direct"):
    return {
        "input_shape": shape,
        "timesteps": timesteps,
        "encoder": encoder,
        "input_bits": bits,
        "input_signed": False,
        "input_scale": scale,
        "w_bits": 6,
        "v_bits": 16,
    }


def _folded(weights, biases=None):
    layers = []
    for index, w in enumerate(weights):
        w = torch.tensor(w, dtype=torch.float32)
        b = torch.zeros(w.shape[0]) if biases is None else torch.tensor(biases[index])
        name = "out" if index == len(weights) - 1 else f"fc{index + 1}"
        layers.append(C.FoldedLayer(name, "linear", w, b, (w.shape[1],), (w.shape[0],)))
    return layers


def test_batch_norm_folding_uses_epsilon():
    w = torch.tensor([[1.0, 2.0], [-1.0, 0.5]])
    b = torch.tensor([0.5, 0.0])
    bn = nn.BatchNorm1d(2, eps=1.0)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([2.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.1, -0.2]))
        bn.running_mean.copy_(torch.tensor([0.5, 1.0]))
        bn.running_var.copy_(torch.tensor([3.0, 0.0]))
    w2, b2 = C.fold_batch_norm(w, b, bn)
    # g = gamma / sqrt(var + eps) = [2/2, 1/1]
    assert torch.allclose(w2, torch.tensor([[1.0, 2.0], [-1.0, 0.5]]))
    assert torch.allclose(b2, torch.tensor([1.0 * (0.5 - 0.5) + 0.1, 1.0 * (0.0 - 1.0) - 0.2]))


def test_folded_ann_equals_the_ann_in_eval_mode_and_needs_epsilon():
    torch.manual_seed(0)
    ann = C.ConvANN(
        "c4k3s2-12", (1, 8, 8), 10, input_scale=1 / 16, bias=True, batch_norm=True, bn_eps=0.5
    )
    with torch.no_grad():
        for block in ann.layers:
            if block.bn is not None:
                block.bn.running_mean.uniform_(-0.5, 0.5)
                block.bn.running_var.uniform_(0.01, 0.2)
                block.bn.weight.uniform_(0.5, 2.0)
                block.bn.bias.uniform_(-0.3, 0.3)
    ann.eval()
    codes = torch.randint(0, 17, (20, 1, 8, 8))
    x = codes.to(torch.float32) / 16
    folded = C.fold(ann)
    a = x
    for index, layer in enumerate(folded):
        a = layer.apply(a)
        if index < len(folded) - 1:
            a = torch.relu(a)
    assert torch.allclose(a, ann.ann_forward(codes), atol=1e-5)
    for block in ann.layers:  # without eps (Rueckauer 2017) the fold is visibly different
        if block.bn is not None:
            block.bn.eps = 0.0
    assert not torch.allclose(C.fold(ann)[0].weight, folded[0].weight, atol=1e-3)


def test_spike_norm_thresholds_are_the_sequential_maxima():
    # hand-computed (IF, reset sub, T = 4): layer 1 = identity, currents [1,2] and [3,0]
    # -> theta1 = 3; its spikes [[0,0,1,0],[0,1,1,0]] and [[1,1,1,1],[0,0,0,0]] through
    # W2 = [[1,1],[2,-1]] give inputs up to 2 -> theta2 = 2
    net = C.build_converted(
        _folded([[[1, 0], [0, 1]], [[1, 1], [2, -1]], [[1, 0], [0, 1]]]), _template()
    )
    codes = np.array([[1, 2], [3, 0]])
    assert C.spike_norm_thresholds(net, codes, timesteps=4) == [3.0, 2.0]
    net.record = True
    net.set_mode("float").run(torch.as_tensor(codes))
    fc1 = net.recorded["fc1"][:, :, :].permute(1, 2, 0).numpy()  # [N, neuron, T]
    assert fc1.tolist() == [[[0, 0, 1, 0], [0, 1, 1, 0]], [[1, 1, 1, 1], [0, 0, 0, 0]]]


def test_percentile_variant_uses_the_aces_balancing():
    torch.manual_seed(1)
    ann = C.ConvANN("8", (4,), 3, input_scale=1 / 3)
    codes = np.random.default_rng(0).integers(0, 4, (50, 4))
    settings = C.ConversionSettings(balance_samples=50, balance_timesteps=5)
    done = C.convert("percentile", ann, codes, _template((4,), 2, 1 / 3, 5), settings)
    currents = (torch.as_tensor(codes).float() / 3) @ ann.layers[0].synapse.weight.detach().t()
    # the same current at each of the 5 steps: the percentile of every value, 5 times over
    expected = 0.8 * np.percentile(np.tile(currents.numpy().reshape(-1), 5), 99.7)
    assert done.thresholds[0] == pytest.approx(expected, rel=1e-5)


def test_ecc_normalisation_by_hand():
    net = C.build_converted(
        _folded([[[1.0, 2.0]], [[3.0]], [[0.5]]], [[0.4], [0.2], [0.1]]), _template()
    )
    C.ecc_normalise(net, [2.0, 4.0], kappa=3, eta=0.5)
    fc1, fc2, out = net.layers
    assert fc1.synapse.weight.tolist() == [[1.5, 3.0]]  # 3 * 1/2
    assert fc1.bias.tolist() == pytest.approx([0.6])  # 3 * 0.4 / 2
    assert fc2.synapse.weight.tolist() == [[4.5]]  # 3 * 2/4
    assert fc2.bias.tolist() == pytest.approx([0.15])  # 3 * 0.2 / 4
    assert out.synapse.weight.tolist() == [[2.0]]  # lambda_{L-1} = 4
    assert out.bias.tolist() == pytest.approx([0.1])
    assert [float(layer.neuron.threshold) for layer in (fc1, fc2)] == [3.0, 3.0]
    C.set_timesteps(net, 4)  # TRE: eta V_th / T = 0.375 more every step
    assert fc1.step_bias().tolist() == pytest.approx([0.6 + 0.375])
    with pytest.raises(ValueError, match="kappa must be a positive integer"):
        C.ecc_normalise(net, [2.0, 4.0], kappa=2.5)


def test_ecc_is_kappa_invariant_in_float():
    torch.manual_seed(2)
    ann = C.ConvANN("16-8", (6,), 3, input_scale=1 / 15, bias=True, batch_norm=True)
    ann.eval()
    codes = np.random.default_rng(1).integers(0, 16, (40, 6))
    runs = []
    for kappa in (1, 100):
        s = C.ConversionSettings(kappa=kappa, eta=0.5)
        net = C.convert("ecc", ann, codes, _template((6,), 4, 1 / 15, 8), s).net
        net.record = True
        logits = net.set_mode("float").run(torch.as_tensor(codes))
        runs.append(({k: v.clone() for k, v in net.recorded.items()}, logits))
    for name in runs[0][0]:
        assert torch.equal(runs[0][0][name], runs[1][0][name])
    assert torch.allclose(runs[0][1], runs[1][1], rtol=1e-4)


def test_integer_bias_is_one_rounding_of_b_over_unit_plus_tre():
    folded = _folded([[[0.96875, -0.484375], [0.0, 0.5]], [[1.0, 1.0]]], [[0.01, -0.02], [0.0]])
    net = C.build_converted(folded, _template(bits=5, scale=1 / 16))
    with torch.no_grad():
        net.layers[0].neuron.threshold.fill_(0.5)
    net.layers[0].eta = 0.5
    C.set_timesteps(net, 4)
    layer = to_bundle(net).layers[0]
    # delta = 0.96875 / 31 = 2^-5, unit = 2^-5 / 16 = 2^-9, theta = 0.5 / 2^-9 = 256
    assert layer.weight.tolist() == [[31, -16], [0, 16]]
    assert layer.threshold == 256
    # round(b / unit + eta theta / T) = round([5.12 + 32, -10.24 + 32])
    assert layer.bias_vector().tolist() == [37, 22]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.mark.parametrize(
    ("variant", "arch", "encoder"),
    [
        ("spikenorm", "32", "poisson"),
        ("percentile", "32", "direct"),
        ("ecc", "c4k3s2-16", "direct"),
    ],
)
def test_converted_bundles_are_bit_exact(digits, variant, arch, encoder):
    torch.manual_seed(0)
    shape = (1, 8, 8) if arch.startswith("c") else (64,)
    ann = C.ConvANN(arch, shape, 10, input_scale=1 / 16, bias=variant == "ecc")
    ann.layers[0].bn = nn.BatchNorm2d(4, eps=1e-3).eval() if variant == "ecc" else None
    settings = C.ConversionSettings(calib_samples=64, calib_timesteps=10, balance_samples=64)
    done = C.convert(
        variant, ann, digits.x_train, _template(shape, 5, 1 / 16, 6, encoder), settings
    )
    net = done.net
    C.calibrate(net, digits.x_train[:64], 6)
    bundle = to_bundle(net)
    if variant == "ecc":
        assert bundle.layers[0].bias is not None
    x = C.bundle_inputs(net, digits.x_test[:60], 7)
    check = C.check_bundle(bundle, x, digits.y_test[:60])
    assert check.equal, check.mismatches
    assert check.spike_values_compared == 60 * 6 * (
        sum(math.prod(l.out_shape) for l in bundle.layers)
    )
    assert check.potentials_compared == 600
    assert sum(int(s.sum()) for s in list(check.result.spikes.values())[:-1]) > 0
    # the network's own bit-true pass (what was converted) equals the golden model too
    with torch.no_grad():
        out = net.run_bittrue(torch.as_tensor(x, dtype=torch.float64))
    assert np.array_equal(out.v_out.numpy().astype(np.int64), check.result.v_out)


def test_ecc_tre_buys_low_latency_on_digits(digits):
    torch.manual_seed(0)
    config = TrainConfig(arch="128", ann_epochs=8, dropout=0.0, batch_size=64)
    trainer = Trainer(progress=False, log=lambda _line: None)
    ann = C.ann_for(config, digits, "ecc", C.ConversionSettings())
    ann_acc = C.train_ann(ann, digits, config, trainer)
    accs = {}
    for eta in (0.0, 0.5):
        done = C.convert(
            "ecc",
            ann,
            digits.x_train,
            _template((64,), 5, 1 / 16, 2),
            C.ConversionSettings(eta=eta),
        )
        C.calibrate(done.net, digits.x_train[:128], 2)
        x = C.bundle_inputs(done.net, digits.x_test, 0)
        check = C.check_bundle(to_bundle(done.net), x, digits.y_test)
        assert check.equal
        accs[eta] = check.accuracy
    assert ann_acc > 0.9
    assert accs[0.5] >= ann_acc - 0.04  # golden model, T = 2
    assert accs[0.5] > accs[0.0] + 0.15  # measured: 0.91 vs 0.66


def test_methods_are_registered():
    assert {"convert-spikenorm", "convert-percentile", "convert-ecc"} <= set(METHODS)


def test_sweep_command_writes_bundles_table_and_plot(tmp_path):
    from spikeforge.studies import conversion_sweep

    argv = ["--dataset", "digits", "--out", str(tmp_path), "--variants", "ecc,percentile"]
    argv += ["--arch", "16", "--ann-epochs", "1", "--timesteps", "2,3", "--threads", "1"]
    argv += ["--limit-train", "200", "--limit-test", "40"]
    assert conversion_sweep.main(argv) == 0
    import json

    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["variants"]["ecc"]["rows"]
    assert [r["timesteps"] for r in rows] == [2, 3]
    assert all(
        r["bit_exact"] and r["spike_values_compared"] == 40 * r["timesteps"] * 26 for r in rows
    )
    assert (tmp_path / "ecc" / "T3" / "manifest.json").exists()
    assert (tmp_path / "accuracy_vs_T.png").stat().st_size > 0
    assert "| percentile | 3 |" in (tmp_path / "results.md").read_text()


def test_sweep_curve_subset_full_timesteps_and_chunked_check(tmp_path):
    """--curve-samples / --full-timesteps pick each row's test images; the chunked check sums
    to the same numbers as one check over all images."""
    from spikeforge.algo.methods.conversion import check_bundle
    from spikeforge.sim.bundle import load_bundle

    from spikeforge.studies import conversion_sweep
    from spikeforge.studies.sweep_report import measure_bundle

    argv = ["--dataset", "digits", "--out", str(tmp_path), "--variants", "percentile"]
    argv += ["--arch", "16", "--ann-epochs", "1", "--timesteps", "2,3", "--threads", "1"]
    argv += ["--limit-train", "200", "--limit-test", "40", "--curve-samples", "25"]
    argv += ["--full-timesteps", "3"]
    assert conversion_sweep.main(argv) == 0
    import json

    rows = json.loads((tmp_path / "results.json").read_text())["variants"]["percentile"]["rows"]
    assert [(r["timesteps"], r["test_samples"]) for r in rows] == [(2, 25), (3, 40)]
    assert [r["spike_values_compared"] for r in rows] == [25 * 2 * 26, 40 * 3 * 26]
    assert "| percentile | 2 | 25 |" in (tmp_path / "results.md").read_text()

    digits = load_dataset("digits").limited(200, 40)
    bundle = load_bundle(tmp_path / "percentile" / "T3")
    x = digits.x_test.reshape(40, -1).astype(np.int64)  # direct input: the pixel codes
    whole = check_bundle(bundle, x, digits.y_test)
    chunked = measure_bundle(bundle, x, digits.y_test, chunk=7)
    hidden = list(whole.result.spikes)[:-1]
    assert whole.equal and chunked["bit_exact"]
    assert chunked["golden"] == whole.accuracy == rows[1]["golden"]
    assert chunked["spike_values_compared"] == whole.spike_values_compared == 40 * 3 * 26
    assert chunked["potentials_compared"] == whole.potentials_compared == 400
    spikes = sum(int(whole.result.spikes[k].sum()) for k in hidden)
    assert chunked["spikes_per_sample"] == spikes / 40
    ops = sum(c.synaptic_ops for c in whole.result.counters.values())
    assert chunked["synaptic_ops_per_sample"] == ops / 40
    assert chunked["firing_rate"] == spikes / sum(whole.result.spikes[k].size for k in hidden)
    assert chunked["firing_rates"] == pytest.approx(
        {k: float(whole.result.spikes[k].mean()) for k in hidden}
    )


def test_sweep_ann_dir_reuses_the_trained_ann_and_refuses_other_settings(tmp_path, capsys):
    from spikeforge.studies import conversion_sweep

    base = ["--dataset", "digits", "--variants", "ecc", "--arch", "16", "--timesteps", "2"]
    base += ["--threads", "1", "--limit-train", "200", "--limit-test", "40"]
    base += ["--ann-dir", str(tmp_path / "anns"), "--ann-epochs", "1"]
    import json

    rows = []
    for run in ("a", "b"):
        assert conversion_sweep.main([*base, "--out", str(tmp_path / run)]) == 0
        rows.append(json.loads((tmp_path / run / "results.json").read_text())["variants"]["ecc"])
    assert "loaded from" in capsys.readouterr().out
    assert rows[0]["ann_accuracy"] == rows[1]["ann_accuracy"]
    assert rows[0]["rows"][0]["golden"] == rows[1]["rows"][0]["golden"]
    assert rows[0]["float_thresholds"] == rows[1]["float_thresholds"]
    with pytest.raises(SystemExit, match="was trained with"):
        conversion_sweep.main([*base[:-1], "2", "--out", str(tmp_path / "c")])
    merged = tmp_path / "merged"  # --merge: a's curve, b's rows as the whole-test-set points
    argv = ["--merge", str(tmp_path / "a"), "--merge-whole", str(tmp_path / "b")]
    assert conversion_sweep.main([*argv, "--out", str(merged)]) == 0
    results = json.loads((merged / "results.json").read_text())
    assert results["variants"]["ecc"]["rows"] == rows[0]["rows"]
    assert results["whole_test_set"] == {"ecc": rows[1]["rows"]}
    assert (merged / "results.md").read_text().count("| ecc | 2 | 40 |") == 2
    assert (merged / "accuracy_vs_T.png").stat().st_size > 0
    pct = ["--lambda-percentile", "99.9", "--variants", "ecc,percentile"]  # its own entry
    assert conversion_sweep.main([*base, *pct, "--out", str(tmp_path / "p")]) == 0
    variants = json.loads((tmp_path / "p" / "results.json").read_text())["variants"]
    assert list(variants) == ["ecc-p99.9", "percentile"]
    assert (tmp_path / "p" / "ecc-p99.9" / "T2" / "manifest.json").exists()
    with pytest.raises(SystemExit, match=r"no results\.json"):
        conversion_sweep.main(["--merge", str(tmp_path / "c"), "--out", str(merged)])
