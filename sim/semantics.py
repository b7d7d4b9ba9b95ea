"""The integer semantics (docs/semantics.md), in one place.

Every other part of spikeforge (golden model, PyTorch bit-true mode, testbench models) calls
these functions rather than re-deriving them. They accept Python ints or numpy integer arrays;
arrays are computed in int64, which holds every intermediate value the bundle limits allow
(v_bits <= 24, so ``v * lam`` stays below 2^48).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import numpy as np

LeakMode = Literal["mult", "shift", "none"]
ResetMode = Literal["sub", "zero", "none"]
FireMode = Literal["lif", "accum"]

LEAK_MODES: tuple[str, ...] = ("mult", "shift", "none")
RESET_MODES: tuple[str, ...] = ("sub", "zero", "none")
FIRE_MODES: tuple[str, ...] = ("lif", "accum")

IntLike = TypeVar("IntLike", int, np.ndarray)


def signed_range(bits: int) -> tuple[int, int]:
    """Inclusive range of a two's-complement integer of ``bits`` bits."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits: int) -> tuple[int, int]:
    """Inclusive range of an unsigned integer of ``bits`` bits."""
    return 0, (1 << bits) - 1


def saturate(x: IntLike, v_bits: int) -> IntLike:
    """Clamp to the signed ``v_bits`` range; never wraps."""
    lo, hi = signed_range(v_bits)
    if isinstance(x, np.ndarray):
        return np.clip(x, lo, hi)
    return min(max(x, lo), hi)


@dataclass(frozen=True)
class Leak:
    """A leak applied to ``v`` at the start of every step.

    ``mult``: ``(v * lam) >> frac`` with ``0 <= lam <= 2^frac``; ``shift``: ``v - (v >> k)``;
    ``none``: ``v``. ``>>`` is an arithmetic (floor) shift, so negative potentials leak towards
    minus infinity by at most one unit, exactly as a hardware shifter does.
    """

    mode: LeakMode = "none"
    lam: int = 256
    frac: int = 8
    k: int = 1

    def apply(self, v: IntLike) -> IntLike:
        if self.mode == "mult":
            return (v * self.lam) >> self.frac
        if self.mode == "shift":
            return v - (v >> self.k)
        return v

    def apply_into(self, v: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``apply`` written into ``out`` (which may be ``v`` itself), the same integers."""
        if self.mode == "mult":
            np.multiply(v, self.lam, out=out)
            np.right_shift(out, self.frac, out=out)
        elif self.mode == "shift":
            np.subtract(v, v >> self.k, out=out)
        elif out is not v:
            np.copyto(out, v)
        return out


def neuron_step(
    v: np.ndarray,
    a: np.ndarray,
    theta: np.ndarray | int,
    leak: Leak,
    reset: ResetMode,
    fire: FireMode,
    v_bits: int,
    *,
    out: np.ndarray | None = None,
    spike_out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One neuron update (docs/semantics.md) for a vector of neurons: returns ``(v_next, spikes)``.

    ``a`` is the already shifted and biased input ``(s >> input_shift) + bias``. ``out`` (which
    may be ``v`` itself) and ``spike_out`` (bool) receive the results in place, so a time loop
    allocates nothing; the integers are the same either way. The state dtype must hold
    ``v * lam`` and ``leak(v) + a`` (``spikeforge.sim.golden.state_dtype`` checks that).
    """
    if out is None:
        u = leak.apply(v) + a
    else:
        u = leak.apply_into(v, out)
        np.add(u, a, out=u)
    np.clip(u, *signed_range(v_bits), out=u)  # sat(): clamp, never wrap
    if fire == "accum":
        if spike_out is not None:
            spike_out[...] = False
            return u, spike_out.view(np.uint8)
        return u, np.zeros(u.shape, dtype=np.uint8)
    spike = np.greater_equal(u, theta, out=spike_out)
    if reset == "sub":
        u -= theta * spike  # numpy's masked forms (where=, copyto) are ~10x slower
    elif reset == "zero":
        u *= ~spike
    return u, spike.view(np.uint8)
