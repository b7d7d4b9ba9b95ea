"""Small first-layer bundles for the PIM tests (linear and conv2d, signed or unsigned inputs)."""

from __future__ import annotations

import numpy as np
from spikeforge.sim.bundle import Bundle, InputSpec, Layer
from spikeforge.sim.semantics import Leak, signed_range

from tests.sim.builders import linear


def conv(
    name: str,
    weight: np.ndarray,
    in_shape: tuple[int, int, int],
    *,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
    w_bits: int = 8,
    threshold: int = 1,
    input_shift: int = 0,
) -> Layer:
    return Layer(
        name=name,
        kind="conv2d",
        weight=np.asarray(weight, dtype=np.int64),
        in_shape=in_shape,
        w_bits=w_bits,
        v_bits=16,
        threshold=threshold,
        leak=Leak("shift", k=3),
        stride=stride,
        padding=padding,
        input_shift=input_shift,
    )


def two_layer(
    first: Layer, rng: np.random.Generator, *, bits: int = 8, signed: bool = False, t: int = 3
) -> Bundle:
    """``first`` followed by a 10-way accumulate layer."""
    lo, hi = signed_range(6)
    out = linear("out", rng.integers(lo, hi + 1, size=(10, first.n_out)), fire="accum", w_bits=6)
    spec = InputSpec(shape=first.in_shape, bits=bits, signed=signed)
    return Bundle(timesteps=t, input=spec, layers=[first, out])


def random_codes(b: Bundle, n: int, rng: np.random.Generator) -> np.ndarray:
    """Input codes over the whole range, extremes over-represented."""
    lo, hi = b.input.code_range
    x = rng.integers(lo, hi + 1, size=(n, *b.input.shape))
    return np.where(rng.random(x.shape) < 0.2, rng.choice([lo, hi], size=x.shape), x)


def digits_like(rng: np.random.Generator, *, conv_first: bool = True, w_bits: int = 6) -> Bundle:
    """A realistic stand-in for a trained digits bundle: 5-bit unsigned 8x8 inputs, 6-bit weights.

    Weights are roughly Gaussian (as trained weights are), thresholds sized for ~20 % activity.
    """
    lo, hi = signed_range(w_bits)
    if conv_first:
        w = np.clip(np.rint(rng.normal(0, hi / 3, size=(8, 1, 3, 3))), lo, hi)
        first = conv("conv1", w, (1, 8, 8), stride=(2, 2), padding=(1, 1), w_bits=w_bits)
        first.threshold = 600
        first.input_shift = 2
    else:
        w = np.clip(np.rint(rng.normal(0, hi / 3, size=(64, 64))), lo, hi)
        first = linear("fc1", w, w_bits=w_bits, threshold=400, input_shift=2)
        first.leak = Leak("mult", lam=230, frac=8)
    b = two_layer(first, rng, bits=5, signed=False, t=5)
    if not conv_first:
        b.input = InputSpec(shape=(64,), bits=5, signed=False)
    return b
