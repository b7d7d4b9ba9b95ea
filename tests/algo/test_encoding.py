"""Encoders: direct codes, Poisson rate trains and latency trains."""

from __future__ import annotations

import pytest
import torch
from spikeforge.algo.snn.encoding import get_encoder


def test_direct_returns_the_codes():
    codes = torch.randint(0, 17, (5, 64))
    assert torch.equal(get_encoder("direct")(codes, 4, 1 / 16), codes.float())
    assert get_encoder("direct").encoding == "direct"


def test_poisson_rate_matches_intensity():
    codes = torch.tensor([[0, 4, 8, 16]]).repeat(2000, 1)
    g = torch.Generator().manual_seed(0)
    trains = get_encoder("poisson")(codes, 10, 1 / 16, g)
    assert trains.shape == (2000, 10, 4)
    assert set(torch.unique(trains).tolist()) <= {0.0, 1.0}
    rates = trains.mean(dim=(0, 1))
    assert rates.tolist() == pytest.approx([0.0, 0.25, 0.5, 1.0], abs=0.01)
    assert get_encoder("poisson").encoding == "spikes"


def test_poisson_is_reproducible_with_a_seed():
    codes = torch.randint(0, 256, (8, 20))
    enc = get_encoder("poisson")
    a = enc(codes, 5, 1 / 255, torch.Generator().manual_seed(3))
    b = enc(codes, 5, 1 / 255, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_latency_one_spike_brightest_first_zero_silent():
    codes = torch.tensor([[16, 8, 0, 1]])
    trains = get_encoder("latency")(codes, 5, 1 / 16)[0]  # [T, 4]
    assert trains.sum(0).tolist() == [1.0, 1.0, 0.0, 1.0]
    assert trains[:, 0].argmax() == 0  # full intensity at t = 0
    assert trains[:, 1].argmax() == 2  # half intensity mid-window
    assert trains[:, 3].argmax() == 4  # faintest last


def test_unknown_encoder():
    with pytest.raises(ValueError, match="unknown encoder"):
        get_encoder("rank")
