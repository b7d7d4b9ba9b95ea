"""The fused multi-step LIF equals the step-by-step reference (``lif_sequence``).

Spikes, potentials and the input-current gradient must be bit-identical: the fused pass
evaluates the reference's expressions element by element in the same order. The threshold and
leak gradients are sums over every step and neuron, which autograd accumulates in another order,
so they are compared to float rounding: relative 1e-5 in float32 (a few ulp of a sum of about
10^3 terms) and 1e-12 in float64.
"""

from __future__ import annotations

import contextlib
import itertools

import pytest
import torch
from spikeforge.algo.snn import lif_native
from spikeforge.algo.snn.lif_fused import RESETS, lif_fused
from spikeforge.algo.snn.lif_pool import LIFMaxPool
from spikeforge.algo.snn.models import build_snn
from spikeforge.algo.snn.neurons import LIF, lif_sequence
from spikeforge.algo.snn.surrogate import SURROGATES, get_surrogate

STEPS, BATCH, NEURONS = 6, 8, 37
CASES = list(itertools.product(sorted(SURROGATES), ("sub", "zero", "none"), (False, True)))


def _run(fused: bool, current, theta, lam, surrogate, reset, detach, grad_out):
    c = current.clone().requires_grad_()
    th = theta.clone().requires_grad_()
    la = lam.clone().requires_grad_()
    sur = get_surrogate(surrogate)
    if fused:
        spikes, v = lif_fused(c, th, la, sur, reset, detach_reset=detach)
    else:
        spikes, v = lif_sequence(c, th, lambda x: x * la, reset, sur, detach_reset=detach)
    (spikes * grad_out).sum().backward()
    return spikes.detach(), v.detach(), c.grad, th.grad, la.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("surrogate", "reset", "detach"), CASES)
def test_fused_equals_reference(surrogate, reset, detach, dtype):
    gen = torch.Generator().manual_seed(7)
    current = torch.randn(STEPS, BATCH, NEURONS, generator=gen, dtype=dtype) * 0.8 + 0.4
    grad_out = torch.randn(STEPS, BATCH, NEURONS, generator=gen, dtype=dtype)
    theta, lam = torch.tensor(0.9, dtype=dtype), torch.tensor(0.85, dtype=dtype)
    ref = _run(False, current, theta, lam, surrogate, reset, detach, grad_out)
    got = _run(True, current, theta, lam, surrogate, reset, detach, grad_out)
    assert 0 < int(ref[0].sum()) < ref[0].numel(), "the test current must make some neurons fire"
    assert torch.equal(got[0], ref[0]), "spikes"
    assert torch.equal(got[1], ref[1]), "final potentials"
    assert torch.equal(got[2], ref[2]), "input-current gradient"
    assert int((ref[2] != 0).sum()) > ref[2].numel() // 10, "too few gradients compared"
    rel = 1e-5 if dtype == torch.float32 else 1e-12
    for name, a, b in (("threshold", got[3], ref[3]), ("leak", got[4], ref[4])):
        assert a.shape == b.shape and float(b) != 0, name
        assert torch.allclose(a, b, rtol=rel, atol=rel * float(b.abs())), f"{name}: {a} vs {b}"


def test_potentials_equal_at_every_step():
    gen = torch.Generator().manual_seed(3)
    current = torch.rand(STEPS, BATCH, NEURONS, generator=gen) * 1.5
    theta, lam, sur = torch.tensor(1.0), torch.tensor(0.7), get_surrogate("triangle")
    for steps in range(1, STEPS + 1):
        _, v_ref = lif_sequence(current[:steps], theta, lambda v: v * lam, "sub", sur)
        _, v_got = lif_fused(current[:steps], theta, lam, sur, "sub")
        assert torch.equal(v_got, v_ref), f"potential after step {steps}"


def test_per_neuron_threshold_gets_a_per_neuron_gradient():
    gen = torch.Generator().manual_seed(5)
    current = torch.rand(4, 3, 5, generator=gen) * 1.5
    theta = torch.linspace(0.6, 1.2, 5).requires_grad_()
    lam = torch.tensor(0.9, requires_grad=True)
    spikes, _ = lif_fused(current, theta, lam, get_surrogate("triangle"))
    spikes.sum().backward()
    theta_ref = theta.detach().clone().requires_grad_()
    lam_ref = lam.detach().clone().requires_grad_()
    sur = get_surrogate("triangle")
    ref, _ = lif_sequence(current, theta_ref, lambda v: v * lam_ref, "sub", sur)
    ref.sum().backward()
    assert theta.grad.shape == (5,)
    assert torch.allclose(theta.grad, theta_ref.grad, rtol=1e-5, atol=1e-6)


def test_lif_layer_uses_the_fused_path_and_matches_the_reference():
    gen = torch.Generator().manual_seed(11)
    current = torch.rand(5, 4, 20, generator=gen) * 1.4
    layers = [LIF(0.8, 0.9, surrogate="lee", fused=f) for f in (True, False)]
    outs = []
    for layer in layers:
        c = current.clone().requires_grad_()
        out = layer(c)
        out.pow(2).sum().backward()
        outs.append((out.detach(), c.grad, layer.threshold.grad, layer.leak.grad))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])
    assert torch.allclose(outs[0][2], outs[1][2], rtol=1e-5)
    assert torch.allclose(outs[0][3], outs[1][3], rtol=1e-5)


def test_network_training_step_is_identical_with_and_without_fusion():
    """A whole float network: logits and every weight gradient agree with the reference."""
    torch.manual_seed(0)
    net = build_snn("c4k3s2-16", (1, 8, 8), 3, timesteps=4, threshold=0.5, leak=0.9)
    codes = torch.randint(0, 256, (6, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 2, 0, 1, 2])
    grads = []
    for fused in (True, False):
        for layer in net.layers[:-1]:
            layer.neuron.fused = fused
        net.zero_grad()
        logits = net(codes)
        torch.nn.functional.cross_entropy(logits, target).backward()
        grads.append((logits.detach(), [p.grad.clone() for p in net.parameters()]))
    assert torch.equal(grads[0][0], grads[1][0])
    weights = [name.endswith("weight") for name, _ in net.named_parameters()]
    compared = 0
    for is_weight, a, b in zip(weights, grads[0][1], grads[1][1], strict=True):
        # weight gradients sum over steps in the matmul, exactly as in the reference; the
        # per-layer threshold / leak gradients are sums in another order (float tolerance)
        if is_weight:
            assert torch.equal(a, b)
        else:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
        compared += a.numel()
    assert compared > 100


def test_bad_arguments_are_refused():
    one, sur = torch.tensor(1.0), get_surrogate("lee")
    with pytest.raises(ValueError, match="reset"):
        lif_fused(torch.zeros(2, 1), one, one, sur, "x")
    with pytest.raises(ValueError, match="T >= 1"):
        lif_fused(torch.zeros(0, 1), one, one, sur)


# ---- the C kernel (spikeforge.algo.snn.lif_native)
# -------------------------------------------------------


def test_native_kernel_builds_and_loads():
    """The default LIF path is the C kernel: a machine without a C compiler fails here."""
    assert lif_native.status() == "loaded"


def _native_or_loop(native: bool, current, theta, lam, reset, detach, grad_out):
    c = current.clone() if current.stride(0) else current.detach()[0].clone()
    c.requires_grad_()
    inp = c if current.stride(0) else c.unsqueeze(0).expand(*current.shape)
    th, la = theta.clone().requires_grad_(), lam.clone().requires_grad_()
    sur = get_surrogate("triangle")
    with contextlib.ExitStack() as stack:
        if not native:
            stack.enter_context(lif_native.disabled())
        spikes, v = lif_fused(inp, th, la, sur, reset, detach_reset=detach)
    (spikes * grad_out).sum().backward()
    return spikes.detach(), v, c.grad, th.grad, la.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("expand", [False, True])
@pytest.mark.parametrize(("reset", "detach"), list(itertools.product(RESETS, (False, True))))
def test_native_kernel_equals_torch_loop_and_reference(reset, detach, expand, dtype):
    """Several blocks per thread, a ragged last block, two threads, and a hoisted (expanded)
    input: spikes, potentials and input gradients bit-identical to both torch paths."""
    steps, batch, features = 7, 33, 2300  # 75,900 neurons a step: two threads, ragged blocks
    gen = torch.Generator().manual_seed(13)
    shape = (batch, features) if expand else (steps, batch, features)
    current = torch.randn(*shape, generator=gen, dtype=dtype) * 0.8 + 0.5
    if expand:
        current = current.unsqueeze(0).expand(steps, batch, features)
    grad_out = torch.randn(steps, batch, features, generator=gen, dtype=dtype)
    theta, lam = torch.tensor(0.9, dtype=dtype), torch.tensor(0.85, dtype=dtype)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert lif_native.threads_for(current) == 2
        native = _native_or_loop(True, current, theta, lam, reset, detach, grad_out)
        loop = _native_or_loop(False, current, theta, lam, reset, detach, grad_out)
    finally:
        torch.set_num_threads(threads)
    c = current.detach()[0].clone() if expand else current.clone()
    c.requires_grad_()
    inp = c.unsqueeze(0).expand(steps, batch, features) if expand else c
    th, la = theta.clone().requires_grad_(), lam.clone().requires_grad_()
    sur = get_surrogate("triangle")
    spikes, v = lif_sequence(inp, th, lambda x: x * la, reset, sur, detach_reset=detach)
    (spikes * grad_out).sum().backward()
    ref = (spikes.detach(), v.detach(), c.grad, th.grad, la.grad)
    assert 0 < int(ref[0].sum()) < ref[0].numel(), "some neurons must fire, not all"
    for name, i in (("spikes", 0), ("final potentials", 1), ("input gradient", 2)):
        assert torch.equal(native[i], ref[i]), name
        assert torch.equal(loop[i], ref[i]), name
    assert int((ref[2] != 0).sum()) > ref[2].numel() // 10, "too few gradients compared"
    rel = 1e-5 if dtype == torch.float32 else 1e-12
    for name, i in (("threshold", 3), ("leak", 4)):
        assert torch.allclose(native[i], ref[i], rtol=rel), f"{name}: {native[i]} vs {ref[i]}"


def test_lif_layer_runs_the_native_kernel_by_default(monkeypatch):
    calls = []
    forward, backward = lif_native.forward, lif_native.backward
    monkeypatch.setattr(lif_native, "forward", lambda *a: calls.append("f") or forward(*a))
    monkeypatch.setattr(lif_native, "backward", lambda *a: calls.append("b") or backward(*a))
    current = torch.rand(3, 2, 10, requires_grad=True)
    LIF(0.5, 0.9)(current).sum().backward()
    assert calls == ["f", "b"]
    calls.clear()
    LIF(0.5, 0.9, surrogate="fast_sigmoid")(current).sum().backward()
    assert calls == [], "only the triangle surrogate runs in the kernel"


def _pool_run(fused: bool, current, grad_out, reset, detach, threshold=0.9):
    lif = LIF(threshold, 0.85, reset, detach_reset=detach, fused=fused)
    layer = LIFMaxPool(lif)
    c = current.detach()[0].clone() if current.stride(0) == 0 else current.clone()
    c.requires_grad_()
    inp = c.unsqueeze(0).expand(*current.shape) if current.stride(0) == 0 else c
    out = layer(inp)
    (out * grad_out).sum().backward()
    return out.detach(), c.grad, lif.threshold.grad, lif.leak.grad


@pytest.mark.parametrize("expand", [False, True])
@pytest.mark.parametrize(("reset", "detach"), [("sub", False), ("zero", False), ("sub", True)])
def test_lif_maxpool_equals_lif_then_max_pool2d(reset, detach, expand):
    """The pooled kernel: pooled spikes and input gradients bit-identical to the reference LIF
    followed by ``F.max_pool2d`` (ties, all-silent windows and multi-spike windows included)."""
    steps, batch, channels, height, width = 8, 16, 32, 14, 10  # two threads, ragged blocks
    gen = torch.Generator().manual_seed(17)
    shape = (batch, channels, height, width)
    current = torch.rand(*shape if expand else (steps, *shape), generator=gen) * 1.2 - 0.1
    if expand:
        current = current.unsqueeze(0).expand(steps, *shape)
    grad_out = torch.randn(steps, batch, channels, height // 2, width // 2, generator=gen)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert lif_native.threads_for(current) == 2
        calls = []
        with pytest.MonkeyPatch.context() as mp:
            real = lif_native.forward
            mp.setattr(lif_native, "forward", lambda *a, **k: calls.append(k) or real(*a, **k))
            got = _pool_run(True, current, grad_out, reset, detach)
        assert calls == [{"pool": True}], "the pooled kernel ran"
        ref = _pool_run(False, current, grad_out, reset, detach)
    finally:
        torch.set_num_threads(threads)
    windows = ref[0].numel()
    assert 0 < int(ref[0].sum()) < windows, "some windows must spike, some stay silent"
    assert torch.equal(got[0], ref[0]), "pooled spikes"
    assert torch.equal(got[1], ref[1]), "input-current gradient"
    assert int((ref[1] != 0).sum()) > ref[1].numel() // 20, "too few gradients compared"
    # sums of ~10^4 terms of either sign: the reference's float32 sum carries ~1e-6 absolute error
    for name, a, b in (("threshold", got[2], ref[2]), ("leak", got[3], ref[3])):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), f"{name}: {a} vs {b}"


def test_lif_maxpool_refuses_a_non_5d_input():
    with pytest.raises(ValueError, match="T, N, C, H, W"):
        LIFMaxPool(LIF())(torch.zeros(2, 3, 4))
