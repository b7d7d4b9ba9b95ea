"""The ADC after each bit-column (or column group): ``bits``, a power-of-two step, clipping.

Column values are in units of one cell driven by one input step. An ADC of ``bits`` covers the
largest value its column can reach, ``full_scale``, with a step (LSB) of ``2^shift`` units, the
smallest power of two that fits: at ``bits >= lossless_bits(lo, hi)`` the step is 1 and
conversion is exact; each bit fewer doubles the step. A power-of-two step keeps the digital
recombination a shift. Rounding is half up (``floor(a + 1/2)``), codes clip to the ADC range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: ADC resolutions the model accepts.
ADC_BITS_RANGE = (1, 24)


@dataclass(frozen=True)
class AdcSpec:
    """One ADC: ``bits``, step ``2^shift`` column units, signed or unsigned code range."""

    bits: int
    shift: int
    signed: bool
    full_scale: int  # largest |column value| the ADC covers (column units)

    @property
    def lsb(self) -> int:
        return 1 << self.shift

    @property
    def code_range(self) -> tuple[int, int]:
        if self.signed:
            return -(1 << (self.bits - 1)), (1 << (self.bits - 1)) - 1
        return 0, (1 << self.bits) - 1


def lossless_bits(lo: int, hi: int) -> int:
    """Fewest ADC bits that convert every integer in ``[lo, hi]`` exactly (signed if ``lo < 0``)."""
    if lo < 0:
        return max(int(hi).bit_length(), int(-lo - 1).bit_length()) + 1
    return max(1, int(hi).bit_length())


def adc_spec(bits: int | None, lo: int, hi: int) -> AdcSpec:
    """The ADC for column values in ``[lo, hi]``; ``bits=None`` means lossless."""
    need = lossless_bits(lo, hi)
    bits = need if bits is None else bits
    low, high = ADC_BITS_RANGE
    if not low <= bits <= high:
        raise ValueError(f"adc_bits must be in [{low}, {high}], got {bits}")
    return AdcSpec(bits=bits, shift=max(0, need - bits), signed=lo < 0, full_scale=max(-lo, hi))


def convert_exact(values: np.ndarray, spec: AdcSpec) -> np.ndarray:
    """Ideal conversion of integer column values: ``clip(floor(c / lsb + 1/2))`` in integers."""
    c = np.asarray(values, dtype=np.int64)
    if spec.shift:
        c = (c + (1 << (spec.shift - 1))) >> spec.shift
    return np.clip(c, *spec.code_range)


def convert(
    values: np.ndarray,
    spec: AdcSpec,
    gain: np.ndarray | float = 1.0,
    offset: np.ndarray | float = 0.0,
    inl: np.ndarray | None = None,
) -> np.ndarray:
    """Real conversion: ``a = gain * c / lsb + offset`` (LSB) plus ``inl`` (LSB), rounded, clipped.

    ``inl`` is the integral nonlinearity already evaluated at each input (same shape).
    """
    a = np.asarray(values, dtype=np.float64) * (gain / spec.lsb) + offset
    if inl is not None:
        a = a + inl
    return np.clip(np.floor(a + 0.5), *spec.code_range).astype(np.int64)
