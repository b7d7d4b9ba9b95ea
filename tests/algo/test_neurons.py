"""Float-domain neurons: the LIF update order and reset modes, the accumulator, dropout."""

from __future__ import annotations

import pytest
import torch
from spikeforge.algo.snn.neurons import LIF, Accumulator, SpikeDropout


def _run(lif: LIF, currents: list[float]) -> list[float]:
    x = torch.tensor(currents, dtype=torch.float64).view(-1, 1)
    return lif(x).view(-1).tolist()


def test_lif_soft_reset_keeps_the_surplus():
    # leak 0.5: u = 0.5 v + I; theta 1; sub reset
    lif = LIF(threshold=1.0, leak=0.5, reset="sub")
    # t0: u=0.8 -> no; t1: u=0.4+0.8=1.2 -> spike, v=0.2; t2: u=0.1+0.8=0.9 -> no
    assert _run(lif, [0.8, 0.8, 0.8]) == [0.0, 1.0, 0.0]


def test_lif_hard_reset_and_no_reset():
    assert _run(LIF(1.0, 1.0, "zero"), [0.6, 0.6, 0.6, 0.6]) == [0.0, 1.0, 0.0, 1.0]
    assert _run(LIF(1.0, 1.0, "none"), [0.6, 0.6, 0.6, 0.6]) == [0.0, 1.0, 1.0, 1.0]
    assert _run(LIF(1.0, 1.0, "sub"), [0.6, 0.6, 0.6, 0.6]) == [0.0, 1.0, 0.0, 1.0]


def test_comparator_is_greater_or_equal():
    assert _run(LIF(1.0, 1.0, "sub"), [1.0]) == [1.0]


def test_shift_and_none_leak_modes_fix_lambda():
    assert float(LIF(leak_mode="shift", shift_k=3).lam()) == pytest.approx(0.875)
    assert float(LIF(leak=0.2, leak_mode="none").lam()) == 1.0
    assert not LIF(leak_mode="none").leak.requires_grad
    assert LIF().leak.requires_grad and LIF().threshold.requires_grad


def test_threshold_and_leak_are_trainable_through_time():
    lif = LIF(threshold=1.0, leak=0.9)
    x = torch.rand(5, 8, 4, dtype=torch.float64)
    lif(x.float()).sum().backward()
    assert lif.threshold.grad is not None and float(lif.threshold.grad) != 0
    assert lif.leak.grad is not None and float(lif.leak.grad) != 0


def test_invalid_modes_are_refused():
    with pytest.raises(ValueError, match="reset"):
        LIF(reset="soft")
    with pytest.raises(ValueError, match="leak mode"):
        LIF(leak_mode="exp")


def test_accumulator_sums_over_time():
    x = torch.arange(12.0).view(3, 2, 2)
    assert torch.equal(Accumulator()(x), x.sum(0))


def test_dropout_mask_is_held_over_all_steps():
    drop = SpikeDropout(0.5).train()
    x = torch.ones(6, 4, 50)
    y = drop(x)
    assert torch.equal(y, y[0].expand_as(y)), "one mask for every step"
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}
    assert set(torch.unique(drop(x, rescale=False)).tolist()) == {0.0, 1.0}
    assert torch.equal(drop.eval()(x), x)
    with pytest.raises(ValueError):
        SpikeDropout(1.0)
