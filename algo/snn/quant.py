"""Quantisation with straight-through gradients: rounding helpers and weight quantisers.

Training uses per-tensor fake quantisation (ACE-SNN: ``affine`` over ``[w_min, w_max]`` during
training, or ``symmetric``); export and the bit-true mode always use the symmetric scale
``delta = max|w| / (2^(b-1) - 1)`` with round-half-away-from-zero, because a bundle holds signed
integers without a zero point.
"""

from __future__ import annotations

import torch
from torch import Tensor

QUANT_MODES: tuple[str, ...] = ("affine", "symmetric", "none")


def ste(value: Tensor, target: Tensor) -> Tensor:
    """Forward exactly ``target``, backward as if it were ``value`` (straight-through).

    Written ``target + (value - value.detach())``: the added term is exactly zero, whereas the
    common ``value + (target - value).detach()`` can round away from ``target``.
    """
    return target.detach() + (value - value.detach())


def round_half_away(x: Tensor) -> Tensor:
    """Round to nearest, ties away from zero (never banker's rounding)."""
    return torch.sign(x) * torch.floor(x.abs() + 0.5)


def round_ste(x: Tensor) -> Tensor:
    """``round_half_away`` with an identity gradient."""
    return ste(x, round_half_away(x.detach()))


def floor_ste(x: Tensor) -> Tensor:
    """``floor`` with an identity gradient."""
    return ste(x, torch.floor(x.detach()))


def ceil_ste(x: Tensor) -> Tensor:
    """``ceil`` with an identity gradient."""
    return ste(x, torch.ceil(x.detach()))


def clamp_ste(x: Tensor, lo: float, hi: float) -> Tensor:
    """Clamp with an identity gradient (saturation in the bit-true mode)."""
    return ste(x, x.detach().clamp(lo, hi))


def symmetric_scale(w: Tensor, bits: int) -> Tensor:
    """Per-tensor step ``max|w| / (2^(bits-1) - 1)`` (detached; never zero)."""
    qmax = (1 << (bits - 1)) - 1
    return (w.detach().abs().max() / qmax).clamp(min=1e-12)


def quantize_symmetric(w: Tensor, bits: int) -> tuple[Tensor, Tensor]:
    """Integer-valued weights in ``[-(2^(b-1)-1), 2^(b-1)-1]`` and their step ``delta``.

    The integers carry a straight-through gradient ``1/delta`` back to ``w``.
    """
    delta = symmetric_scale(w, bits)
    qmax = (1 << (bits - 1)) - 1
    return clamp_ste(round_ste(w / delta), -qmax, qmax), delta


def fake_quant_symmetric(w: Tensor, bits: int) -> Tensor:
    """``quantize_symmetric`` mapped back to the float domain (STE)."""
    w_int, delta = quantize_symmetric(w, bits)
    return w_int * delta


def fake_quant_affine(w: Tensor, bits: int) -> Tensor:
    """ACE-SNN affine fake quantisation over the tensor's ``[w_min, w_max]`` (STE).

    ``2^bits`` levels with a zero point; the range is recomputed on every call (every
    mini-batch), so the straight-through gradient is 1 everywhere.
    """
    lo, hi = w.detach().min(), w.detach().max()
    levels = (1 << bits) - 1
    scale = ((hi - lo) / levels).clamp(min=1e-12)
    zero = round_half_away(-lo / scale)
    q = (round_half_away(w.detach() / scale) + zero).clamp(0, levels)
    return ste(w, (q - zero) * scale)


def fake_quant(w: Tensor, bits: int, mode: str) -> Tensor:
    """Fake-quantise ``w`` by ``mode`` (``affine``, ``symmetric`` or ``none``)."""
    if mode == "affine":
        return fake_quant_affine(w, bits)
    if mode == "symmetric":
        return fake_quant_symmetric(w, bits)
    if mode == "none":
        return w
    raise ValueError(f"unknown quantisation mode {mode!r}; expected one of {list(QUANT_MODES)}")
