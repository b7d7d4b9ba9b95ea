"""Surrogate gradients: values of each named derivative and the spike function's autograd."""

from __future__ import annotations

import math

import pytest
import torch
from spikeforge.algo.snn.surrogate import (
    SURROGATES,
    LeakCorrectedSTE,
    get_surrogate,
    scale_grad,
    spike,
)


def _grads(name: str, u: torch.Tensor, theta: float):
    u = u.clone().requires_grad_(True)
    th = torch.tensor(theta, dtype=u.dtype, requires_grad=True)
    out = spike(u, th, get_surrogate(name))
    out.sum().backward()
    return out.detach(), u.grad, th.grad


def test_forward_is_the_hardware_comparator():
    u = torch.tensor([0.0, 0.99, 1.0, 1.5, -3.0], dtype=torch.float64)
    for name in SURROGATES:
        out, _, _ = _grads(name, u, 1.0)
        assert out.tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]


def test_triangle_is_ace_snn_eq21():
    # gamma * max(0, 1 - |u/theta - 1|) / theta  with gamma 0.3, theta 2
    u = torch.tensor([2.0, 1.0, 3.0, 0.0, 4.0, 5.0], dtype=torch.float64)
    _, du, _ = _grads("triangle", u, 2.0)
    expected = [0.3 * max(0.0, 1 - abs(x / 2 - 1)) / 2 for x in u.tolist()]
    assert du.tolist() == pytest.approx(expected)
    assert du[0] == pytest.approx(0.15) and du[3] == 0 and du[4] == 0


def test_threshold_gradient_is_minus_u_over_theta_times_du():
    u = torch.tensor([1.5, 2.5], dtype=torch.float64)
    _, du, dth = _grads("triangle", u, 2.0)
    assert float(dth) == pytest.approx(float(-(du * u / 2.0).sum()))


@pytest.mark.parametrize("name", ["fast_sigmoid", "gaussian"])
def test_smooth_surrogates_peak_at_threshold_and_are_symmetric(name):
    u = torch.tensor([1.0, 0.5, 1.5, 0.0, 2.0], dtype=torch.float64)
    _, du, _ = _grads(name, u, 1.0)
    assert du[0] == du.max() and du[0] > 0
    assert du[1] == pytest.approx(float(du[2]))
    assert du[3] == pytest.approx(float(du[4]))
    assert bool((du > 0).all())


def test_lee_straight_through_is_gated_by_firing():
    u = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    _, du, _ = _grads("lee", u, 2.0)
    assert du.tolist() == [0.0, 0.0, 0.5]


def test_lee_leak_correction_matches_eq22():
    """One spike at t = T with lambda = exp(-1/100): factor 1 - 1/100 (S000 check A5)."""
    lam = math.exp(-1 / 100)
    sur = LeakCorrectedSTE()
    last_only = torch.zeros(50, 1, dtype=torch.float64)
    last_only[-1] = 1
    assert float(sur.output_correction(last_only, lam)) == pytest.approx(0.99, abs=1e-12)
    every = torch.ones(50, 1, dtype=torch.float64)
    expected = 1 + math.log(lam) * sum(lam**k for k in range(50)) / 50
    assert float(sur.output_correction(every, lam)) == pytest.approx(expected)
    assert 0.99 <= expected < 1.0


def test_scale_grad_scales_only_the_gradient():
    x = torch.ones(3, requires_grad=True)
    y = scale_grad(x, torch.tensor([1.0, 0.5, 0.0]))
    assert y.tolist() == [1.0, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 0.5, 0.0]


def test_unknown_surrogate_is_refused():
    with pytest.raises(ValueError, match="unknown surrogate"):
        get_surrogate("nope")


def test_per_neuron_theta_gradient_reduces_to_its_shape():
    u = torch.rand(4, 3, 2, 2, dtype=torch.float64, requires_grad=True) * 2
    theta = torch.full((3, 2, 2), 1.0, dtype=torch.float64, requires_grad=True)
    spike(u, theta, get_surrogate("triangle")).sum().backward()
    assert theta.grad.shape == (3, 2, 2)
