"""Export to a bundle: integer thresholds and leaks, layer chaining, refusals, round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from spikeforge.algo.snn.models import LIF, SNN, Accumulator, SpikingLayer, build_snn, parse_arch
from spikeforge.algo.training import export as exporter
from spikeforge.algo.training.export import export, to_bundle
from spikeforge.sim.bundle import load_bundle
from torch import nn


def _net(**kw) -> SNN:
    torch.manual_seed(0)
    return build_snn("c4k3s2-c8k3s2-16", (1, 8, 8), 10, input_bits=5, input_scale=1 / 16, **kw)


def test_integer_parameters_follow_the_documented_rules():
    net = _net(w_bits=6)
    with torch.no_grad():
        net.layers[0].neuron.threshold.fill_(0.37)
        net.layers[0].neuron.leak.fill_(0.9)
        net.layers[0].input_shift.fill_(1)
    bundle = to_bundle(net)
    first = bundle.layers[0]
    w = net.layers[0].synapse.weight.detach()
    delta = float(w.abs().max()) / 31
    unit = delta * (1 / 16) * 2
    assert first.threshold == math.ceil(0.37 / unit)
    assert first.leak.mode == "mult" and first.leak.lam == round(0.9 * 256) and first.leak.frac == 8
    assert first.input_shift == 1
    assert np.array_equal(
        first.weight, np.sign(w.numpy()) * np.floor(np.abs(w.numpy()) / delta + 0.5)
    )
    assert int(np.abs(first.weight).max()) == 31
    assert bundle.meta["scales"]["conv1"] == pytest.approx(unit)


def test_layer_shapes_chain_and_last_layer_accumulates():
    bundle = to_bundle(_net())
    kinds = [(layer.kind, layer.out_shape) for layer in bundle.layers]
    assert kinds == [
        ("conv2d", (4, 4, 4)),
        ("conv2d", (8, 2, 2)),
        ("linear", (16,)),
        ("linear", (10,)),
    ]
    assert bundle.layers[2].in_shape == (32,)
    out = bundle.layers[-1]
    assert out.fire == "accum" and out.threshold is None and out.leak.mode == "none"
    assert (
        bundle.input.shape == (1, 8, 8)
        and bundle.input.bits == 5
        and bundle.input.encoding == "direct"
    )


def test_spike_encoded_networks_export_one_bit_inputs():
    net = build_snn("12", (16,), 3, encoder="poisson", input_scale=1 / 255)
    spec = to_bundle(net).input
    assert (spec.encoding, spec.bits, spec.signed, spec.scale) == ("spikes", 1, False, None)


@pytest.mark.parametrize("leak_mode", ["shift", "none"])
def test_fixed_leak_modes_export(leak_mode):
    bundle = to_bundle(_net(leak_mode=leak_mode))
    leak = bundle.layers[0].leak
    assert leak.mode == leak_mode and (leak_mode != "shift" or leak.k == 4)


def test_round_trip_through_disk(tmp_path):
    net = _net(reset="zero")
    path = export(net, tmp_path / "b", meta={"training": {"note": "x"}})
    loaded = load_bundle(path)
    fresh = to_bundle(net)
    assert loaded.meta["training"] == {"note": "x"}
    assert len(loaded.layers) == 4
    for a, b in zip(loaded.layers, fresh.layers, strict=True):
        assert np.array_equal(a.weight, b.weight) and a.threshold == b.threshold
        assert a.reset == b.reset and a.leak == b.leak


def test_thresholds_never_leave_the_v_bits_range():
    net = _net(v_bits=8)
    with torch.no_grad():
        net.layers[1].neuron.threshold.fill_(1e6)
        net.layers[2].neuron.threshold.fill_(1e-9)
    bundle = to_bundle(net)
    assert bundle.layers[1].threshold == 127 and bundle.layers[2].threshold == 1


def test_what_a_bundle_cannot_express_is_refused():
    lif = LIF()
    with pytest.raises(ValueError, match="no bias"):
        SpikingLayer(nn.Linear(4, 2), lif, (4,), name="a")
    with pytest.raises(ValueError, match="plain convolutions"):
        SpikingLayer(nn.Conv2d(2, 2, 3, groups=2, bias=False), lif, (2, 5, 5), name="b")
    with pytest.raises(ValueError, match="plain convolutions"):
        SpikingLayer(nn.Conv2d(1, 2, 3, dilation=2, bias=False), lif, (1, 7, 7), name="c")
    with pytest.raises(ValueError, match=r"nn\.Linear or nn\.Conv2d"):
        SpikingLayer(nn.AvgPool2d(2), lif, (1, 4, 4), name="d")
    hidden = SpikingLayer(nn.Linear(4, 3, bias=False), LIF(), (4,), name="h")
    with pytest.raises(ValueError, match="last layer must be an Accumulator"):
        SNN([hidden], (4,))
    out = SpikingLayer(nn.Linear(3, 2, bias=False), Accumulator(), (3,), name="o")
    with pytest.raises(ValueError, match="w_bits"):
        SNN([hidden, out], (4,), w_bits=1)


def test_parse_arch():
    specs = parse_arch("c32k3s2-c64k5s2p1-256-128")
    assert [(s.kind, s.out, s.kernel, s.stride, s.padding) for s in specs] == [
        ("conv2d", 32, 3, 2, 1),
        ("conv2d", 64, 5, 2, 1),
        ("linear", 256, 3, 1, 1),
        ("linear", 128, 3, 1, 1),
    ]
    assert parse_arch("") == []
    with pytest.raises(ValueError, match="cannot parse"):
        parse_arch("pool2")
    with pytest.raises(ValueError, match="cannot follow"):
        parse_arch("64-c8")


def _spy_on_assemble(monkeypatch) -> list:
    """Record every bundle the shared exporter builds (and still build it)."""
    built = []
    real = exporter.assemble

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(exporter, "assemble", spy)
    return built


def test_every_exporter_builds_through_the_shared_one(monkeypatch):
    """The SNN export and the numpy methods (Lee 2016, STDBP, STDP) all hand their integer
    layers to ``export.assemble``; what they return is what it built."""
    from spikeforge.algo.methods import lee2016, stdbp, stdp

    built = _spy_on_assemble(monkeypatch)
    lee = lee2016.build(4, 3, lee2016.Lee2016Config(hidden=5))
    stdbp_net = stdbp.STDBPNet([np.full((4, 3), 0.5), np.full((3, 2), -0.25)], 1.0)
    rng = np.random.default_rng(0)
    cfg = stdp.LayerConfig(neurons=6, timesteps=8)
    stdp_layer = stdp.STDPLayer(rng.uniform(0, 0.3, (5, 6)), np.zeros(6), cfg)
    bundles = [
        to_bundle(_net()),
        lee2016.to_bundle(lee, duration=20.0),
        stdbp.to_bundle(stdbp_net, dt=0.1, timesteps=10),
        stdp.to_bundle(stdp_layer, None),
        stdp.to_bundle(stdp_layer, rng.normal(size=(3, 6))),
    ]
    assert len(built) == len(bundles) == 5
    assert all(a is b for a, b in zip(built, bundles, strict=True))
    assert [b.layers[-1].fire for b in bundles] == ["accum"] * 5
    assert [b.input.encoding for b in bundles] == ["direct", "spikes", "spikes", "spikes", "spikes"]


def test_numpy_helpers_round_like_the_bit_true_export():
    weight, unit = exporter.symmetric_integers(np.array([[0.5, -0.25], [0.1, 0.0]]), 4)
    assert unit == pytest.approx(0.5 / 7) and weight.tolist() == [[7, -4], [1, 0]]
    zero, zero_unit = exporter.symmetric_integers(np.zeros((2, 2)), 4)
    assert zero_unit == 1.0 and not zero.any()
    theta = exporter.integer_thresholds(np.array([0.0, 1.26, 1e9]), 0.5, 8)
    assert theta.tolist() == [1, 3, 127]


def test_assemble_checks_before_anyone_writes():
    from spikeforge.sim.bundle import BundleError

    weight = np.full((2, 3), 9, dtype=np.int64)
    bad = exporter.dense("out", weight, w_bits=4, v_bits=16, fire="accum")
    with pytest.raises(BundleError, match="out"):
        exporter.assemble([bad], exporter.spike_input(3), 4)
