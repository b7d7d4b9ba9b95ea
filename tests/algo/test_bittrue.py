"""The bit-true PyTorch forward pass equals the golden model on every spike and output potential.

Three sources of bundles: random valid bundles (every kind, leak, reset, encoding, bias and
threshold form), random untrained PyTorch networks exported through
``spikeforge.algo.training.export``, and a trained digits network over its whole test split.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.models import build_snn
from spikeforge.algo.training.export import export, to_bundle
from spikeforge.algo.training.pipeline import fixed_inputs
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, Layer, load_bundle, validate
from spikeforge.sim.semantics import Leak, signed_range

from tests.sim.builders import random_bundles, random_input


def assert_equal_to_golden(bundle: Bundle, x: np.ndarray, ours=None) -> tuple[int, int]:
    """Compare every spike and output potential; returns (spikes, potentials) compared."""
    gold = golden.run(bundle, x)
    ours = ours or bittrue.run_bundle(bundle, x)
    spikes = 0
    for layer in bundle.layers:
        mine, ref = ours.spikes[layer.name], gold.spikes[layer.name]
        assert mine.shape == ref.shape, layer.name
        bad = np.argwhere(mine != ref)
        assert bad.size == 0, f"{layer.name}: first differing spike at (n, t, ...) {bad[0]}"
        spikes += ref.size
    assert ours.v_out.shape == gold.v_out.shape
    assert np.array_equal(ours.v_out, gold.v_out), np.argwhere(ours.v_out != gold.v_out)[:3]
    assert np.array_equal(ours.pred, gold.pred)
    assert spikes > 0 and gold.v_out.size > 0
    return spikes, gold.v_out.size


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_bundles(), st.integers(0, 2**31 - 1))
def test_random_bundles_match_golden(bundle, seed):
    bundle = validate(bundle)
    x = random_input(bundle, 16, seed)
    assert_equal_to_golden(bundle, x)


def _layer(name, kind, weight, in_shape, *, fire="lif", **kw) -> Layer:
    return Layer(
        name=name,
        kind=kind,
        weight=weight,
        in_shape=in_shape,
        w_bits=kw.pop("w_bits", 6),
        v_bits=kw.pop("v_bits", 10),
        threshold=kw.pop("threshold", 40) if fire == "lif" else None,
        fire=fire,
        reset=kw.pop("reset", "sub") if fire == "lif" else "none",
        **kw,
    )


LEAKS = [
    Leak("mult", lam=200, frac=8),
    Leak("mult", lam=0, frac=8),
    Leak("shift", k=2),
    Leak("none"),
]
RESETS = ["sub", "zero", "none"]
INPUTS = [("direct", 5, False), ("direct", 6, True), ("spikes", 1, False)]


@pytest.mark.parametrize(
    ("leak", "reset", "inputs"), list(itertools.product(LEAKS, RESETS, INPUTS))
)
def test_every_mode_on_conv_conv_linear_matches_golden(leak, reset, inputs):
    """Strided, padded convolutions, a linear layer after them, per-neuron thresholds and bias,
    input shift, and a small v_bits so that potentials saturate."""
    encoding, bits, signed = inputs
    rng = np.random.default_rng(hash((leak, reset, inputs)) % 2**32)
    w = lambda *shape: rng.integers(-31, 32, size=shape)  # noqa: E731
    c1 = _layer(
        "c1",
        "conv2d",
        w(4, 2, 3, 3),
        (2, 9, 9),
        stride=(2, 2),
        padding=(1, 1),
        leak=leak,
        reset=reset,
        input_shift=2,
        v_bits=9,
    )
    c2 = _layer(
        "c2",
        "conv2d",
        w(3, 4, 3, 2),
        c1.out_shape,
        stride=(1, 2),
        padding=(0, 1),
        leak=leak,
        reset=reset,
        threshold=rng.integers(1, 80, size=3 * 3 * 3),
        bias=rng.integers(-5, 6, size=27),
    )
    f3 = _layer("f3", "linear", w(7, 27), (27,), leak=leak, reset=reset, bias=3)
    out = _layer("out", "linear", w(4, 7), (7,), fire="accum", leak=leak, v_bits=8)
    assert c1.out_shape == (4, 5, 5) and c2.out_shape == (3, 3, 3)
    bundle = validate(Bundle(6, InputSpec((2, 9, 9), encoding, bits, signed), [c1, c2, f3, out]))
    x = random_input(bundle, 24, 7)
    spikes, potentials = assert_equal_to_golden(bundle, x)
    assert spikes == 24 * 6 * (100 + 27 + 7 + 4) and potentials == 24 * 4


def test_saturation_is_reproduced():
    """Potentials pinned at both ends of a 6-bit range, and the output accumulator too."""
    hi = signed_range(6)[1]
    l1 = _layer(
        "l1",
        "linear",
        np.array([[20], [-20]]),
        (1,),
        v_bits=6,
        threshold=hi,
        leak=Leak("none"),
        reset="none",
    )
    out = _layer("out", "linear", np.array([[31, 31], [-31, -31]]), (2,), fire="accum", v_bits=6)
    bundle = validate(Bundle(8, InputSpec((1,), "direct", 3, False), [l1, out]))
    x = np.array([[7], [1], [0]])
    gold = golden.run(bundle, x, record_potentials=True)
    assert gold.potentials["l1"].max() == hi and gold.potentials["l1"].min() == -hi - 1
    assert gold.v_out.max() == hi and gold.v_out.min() == -hi - 1
    assert_equal_to_golden(bundle, x)


ARCHS = [
    ("24-12", (64,)),
    ("c4k3s2-c6k3s2p0-10", (2, 9, 9)),
    ("c5k3s1-c4k2s2p0-8", (1, 8, 8)),
    ("c3k1s1p0-6", (3, 4, 4)),
]
NET_CASES = [
    (arch, shape, enc, reset, leak, w_bits)
    for (arch, shape), enc, (reset, leak), w_bits in zip(
        itertools.cycle(ARCHS),
        ["direct", "poisson", "latency"] * 4,
        itertools.cycle(list(itertools.product(RESETS, ["mult", "shift", "none"]))),
        itertools.cycle(range(2, 9)),
    )
]


@pytest.mark.parametrize(("arch", "shape", "encoder", "reset", "leak", "w_bits"), NET_CASES)
def test_random_untrained_networks_match_golden(arch, shape, encoder, reset, leak, w_bits):
    torch.manual_seed(len(NET_CASES) + w_bits)
    net = build_snn(
        arch,
        shape,
        5,
        timesteps=5,
        encoder=encoder,
        input_bits=5,
        input_scale=1 / 16,
        w_bits=w_bits,
        v_bits=12,
        reset=reset,
        leak_mode=leak,
        dropout=0.3,
    )
    with torch.no_grad():
        for layer in net.layers[:-1]:
            layer.neuron.threshold.fill_(0.4 * float(torch.rand(())) + 0.05)
            layer.neuron.leak.fill_(0.6 + 0.4 * float(torch.rand(())))
    codes = np.random.default_rng(w_bits).integers(0, 17, size=(40, *shape))
    x = fixed_inputs(net, codes, seed=3)
    net.set_mode("bittrue").eval()
    net.calibrate_shifts(x)
    with torch.no_grad():
        ours = bittrue.to_result(net.run_bittrue(x))
    bundle = validate(to_bundle(net))
    assert bundle.layers[0].leak.mode == (leak if leak != "none" else "none")
    spikes, _ = assert_equal_to_golden(bundle, x.numpy().astype(np.int64), ours)
    assert sum(int(s.sum()) for s in ours.spikes.values()) > 0, "no spikes at all"
    assert spikes > 0


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from spikeforge.algo.training.pipeline import TrainConfig, Trainer, train
    from spikeforge.sim.datasets import load_digits

    torch.manual_seed(0)
    data = load_digits()
    config = TrainConfig(arch="64", ann_epochs=4, snn_epochs=2, bittrue_epochs=1, dropout=0.1)
    result = train(config, data, Trainer(progress=False, log=lambda _: None))
    path = export(result.net, tmp_path_factory.mktemp("bundle") / "digits")
    return result.net, load_bundle(path), data


def test_trained_bundle_matches_golden_on_its_whole_test_split(trained):
    net, bundle, data = trained
    x = fixed_inputs(net, data.x_test, seed=0)
    with torch.no_grad():
        ours = bittrue.to_result(net.set_mode("bittrue").eval().run_bittrue(x))
    x_np = x.numpy().astype(np.int64)
    spikes, potentials = assert_equal_to_golden(bundle, x_np, ours)
    assert potentials == len(data.y_test) * 10 == 3600
    assert spikes == 360 * 5 * (64 + 10)
    # the loaded bundle through the bit-true path agrees too, and the network learned
    assert_equal_to_golden(bundle, x_np)
    assert np.mean(ours.pred == data.y_test) > 0.8


def test_bittrue_mode_has_straight_through_gradients(trained):
    net, _, data = trained
    net.set_mode("bittrue").train()
    logits = net(torch.as_tensor(data.x_train[:32]))
    torch.nn.functional.cross_entropy(logits, torch.as_tensor(data.y_train[:32])).backward()
    for name, param in net.named_parameters():
        if param.requires_grad:
            assert param.grad is not None and torch.isfinite(param.grad).all(), name
            assert float(param.grad.abs().sum()) > 0, name
    net.zero_grad()


def test_bittrue_dropout_keeps_spikes_binary(trained):
    net, _, data = trained
    net.set_mode("bittrue").train()
    net.record = True
    try:
        net(torch.as_tensor(data.x_train[:16]))
        for spikes in net.recorded.values():
            assert set(torch.unique(spikes).tolist()) <= {0.0, 1.0}
    finally:
        net.record = False


@pytest.mark.parametrize("big", [False, True])
def test_both_exact_engines_match_golden(big):
    """Small sums run in float32, large ones (16-bit weights and codes) in float64."""
    rng = np.random.default_rng(5)
    w_bits, in_bits = (16, 16) if big else (4, 4)
    lo, hi = signed_range(w_bits)
    l1 = _layer(
        "l1",
        "linear",
        rng.integers(lo, hi + 1, (6, 40)),
        (40,),
        w_bits=w_bits,
        v_bits=32,
        threshold=2**28,
        input_shift=3,
        leak=Leak("mult", lam=250, frac=8),
    )
    out = _layer(
        "out",
        "linear",
        rng.integers(lo, hi + 1, (3, 6)),
        (6,),
        fire="accum",
        w_bits=w_bits,
        v_bits=32,
    )
    bundle = validate(Bundle(3, InputSpec((40,), "direct", in_bits, True), [l1, out]))
    x = random_input(bundle, 32, 1)
    layer = bittrue.int_layers_from_bundle(bundle)[0]
    bound = np.abs(l1.weight).sum(1).max() * np.abs(x).max()
    assert (bound >= bittrue.EXACT_FLOAT32) == big
    assert bittrue.synapse(layer, torch.as_tensor(x)).dtype == torch.float64
    spikes, _ = assert_equal_to_golden(bundle, x)
    assert spikes == 32 * 3 * 9
