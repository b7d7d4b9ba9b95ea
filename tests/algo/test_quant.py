"""Weight quantisers and straight-through rounding."""

from __future__ import annotations

import pytest
import torch
from spikeforge.algo.snn.quant import (
    clamp_ste,
    fake_quant,
    fake_quant_affine,
    floor_ste,
    quantize_symmetric,
    round_half_away,
)


def test_round_half_away_from_zero_never_bankers():
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, -2.51])
    assert round_half_away(x).tolist() == [1.0, 2.0, 3.0, -1.0, -2.0, 0.0, -3.0]


@pytest.mark.parametrize("bits", range(2, 9))
def test_symmetric_weights_are_integers_in_range(bits):
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(bits))
    w_int, delta = quantize_symmetric(w, bits)
    qmax = (1 << (bits - 1)) - 1
    assert torch.equal(w_int, torch.round(w_int))
    assert int(w_int.abs().max()) == qmax
    assert float((w_int * delta - w).abs().max()) <= float(delta) / 2 + 1e-7


@pytest.mark.parametrize("bits", range(2, 9))
def test_affine_uses_at_most_2_to_the_bits_levels_and_covers_the_range(bits):
    w = torch.rand(1000, generator=torch.Generator().manual_seed(bits)) * 3 - 1
    q = fake_quant_affine(w, bits)
    assert len(torch.unique(q)) <= 1 << bits
    step = (w.max() - w.min()) / ((1 << bits) - 1)
    assert float((q - w).abs().max()) <= float(step) * 0.5 + 1e-6


@pytest.mark.parametrize("mode", ["affine", "symmetric"])
def test_fake_quant_is_straight_through(mode):
    w = torch.randn(20, requires_grad=True)
    (fake_quant(w, 4, mode) * torch.arange(20.0)).sum().backward()
    assert torch.allclose(w.grad, torch.arange(20.0), rtol=1e-6)


def test_integer_weights_carry_gradient_one_over_delta():
    w = torch.randn(10, requires_grad=True)
    w_int, delta = quantize_symmetric(w, 6)
    w_int.sum().backward()
    assert torch.allclose(w.grad, torch.full((10,), 1 / float(delta)))


def test_floor_and_clamp_ste():
    x = torch.tensor([-1.5, -0.5, 0.5, 7.0], requires_grad=True)
    y = clamp_ste(floor_ste(x), -1, 5)
    assert y.tolist() == [-1.0, -1.0, 0.0, 5.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown quantisation"):
        fake_quant(torch.zeros(2), 4, "log")
