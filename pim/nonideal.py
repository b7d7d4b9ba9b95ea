"""Analog non-idealities of the PIM array: knobs (all off by default) and their seeded draws.

ACE-SNN models none of these; the knobs are described in docs/pim.md. Static effects
(cell mismatch, per-ADC gain/offset spread, INL shape) are frozen per ``seed``, like one chip
instance; read noise is drawn fresh for every conversion from a stream seeded by ``seed``, so
the same seed and the same inputs give the same result. Each effect draws from its own
sub-stream, so turning one knob on never changes another's draws.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

#: Sub-stream index of each random effect (``np.random.default_rng([seed, index])``).
_STREAMS = {"cell": 1, "adc_gain": 2, "adc_offset": 3, "inl": 4, "noise": 5}
#: Harmonics of the INL curve (a bow plus two ripples).
_INL_HARMONICS = 3


@dataclass(frozen=True)
class NonIdeal:
    """Non-ideality knobs; the defaults are the ideal array.

    ``dac_alpha``: wordline DAC ``x_fs * (x / x_fs) ** alpha`` (1 = linear).
    ``cell_sigma``: per-cell multiplicative mismatch ``1 + N(0, sigma)``, frozen per seed.
    ``bitline_sat``: bit-line swing limit ``c_sat * tanh(c / c_sat)``, ``c_sat`` as a fraction of
    the ADC full scale (0 = off). ``read_noise``: sigma of Gaussian noise at the ADC input, as a
    fraction of full scale. ``adc_gain`` / ``adc_offset``: gain error (relative) and offset (LSB)
    of every ADC; ``adc_gain_sigma`` / ``adc_offset_sigma``: their per-ADC spread, frozen per
    seed. ``adc_inl``: peak integral nonlinearity in LSB (a smooth seeded curve).
    """

    seed: int = 0
    dac_alpha: float = 1.0
    cell_sigma: float = 0.0
    bitline_sat: float = 0.0
    read_noise: float = 0.0
    adc_gain: float = 0.0
    adc_offset: float = 0.0
    adc_gain_sigma: float = 0.0
    adc_offset_sigma: float = 0.0
    adc_inl: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "seed":
                if not isinstance(value, int | np.integer) or value < 0:
                    raise ValueError(f"seed must be a non-negative integer, got {value!r}")
            elif not np.isfinite(value) or (f.name not in ("adc_gain", "adc_offset") and value < 0):
                raise ValueError(f"{f.name} must be a finite non-negative number, got {value!r}")
        if self.dac_alpha == 0:
            raise ValueError("dac_alpha must be > 0")

    @property
    def ideal(self) -> bool:
        """True when every knob is at its ideal value (the seed is then irrelevant)."""
        return replace(self, seed=0) == NonIdeal()

    @property
    def ideal_adc(self) -> bool:
        """True when the ADC itself has no error (gain, offset, spread, INL)."""
        return (
            self.adc_gain == 0
            and self.adc_offset == 0
            and self.adc_gain_sigma == 0
            and self.adc_offset_sigma == 0
            and self.adc_inl == 0
        )

    def with_(self, **changes: float | int) -> NonIdeal:
        """A copy with some knobs changed."""
        return replace(self, **changes)

    def rng(self, effect: str) -> np.random.Generator:
        """The generator of one effect's sub-stream."""
        return np.random.default_rng([self.seed, _STREAMS[effect]])


#: The knobs in the order reports and sweeps list them, with their ideal value.
KNOBS: dict[str, float] = {f.name: float(f.default) for f in fields(NonIdeal) if f.name != "seed"}


def dac(levels: np.ndarray, full_scale: int, alpha: float) -> np.ndarray:
    """Wordline drive for integer levels ``0..full_scale`` (a power law; linear when alpha=1)."""
    x = np.asarray(levels, dtype=np.float64)
    if alpha == 1.0:
        return x
    return full_scale * (x / full_scale) ** alpha


def cell_factors(knobs: NonIdeal, shape: tuple[int, ...]) -> np.ndarray | None:
    """Per-cell current factors ``1 + eps`` (``None`` when mismatch is off)."""
    if knobs.cell_sigma == 0:
        return None
    return 1.0 + knobs.cell_sigma * knobs.rng("cell").standard_normal(shape)


def bitline(values: np.ndarray, full_scale: float, sat: float) -> np.ndarray:
    """Bit-line swing limit ``c_sat * tanh(c / c_sat)`` with ``c_sat = sat * full_scale``."""
    if sat == 0:
        return values
    c_sat = sat * full_scale
    return c_sat * np.tanh(values / c_sat)


def adc_gain_offset(knobs: NonIdeal, n_adcs: int) -> tuple[np.ndarray, np.ndarray]:
    """Each ADC's gain (1 + error) and offset (LSB), common part plus frozen spread."""
    gain = np.full(n_adcs, 1.0 + knobs.adc_gain)
    offset = np.full(n_adcs, float(knobs.adc_offset))
    if knobs.adc_gain_sigma:
        gain += knobs.adc_gain_sigma * knobs.rng("adc_gain").standard_normal(n_adcs)
    if knobs.adc_offset_sigma:
        offset += knobs.adc_offset_sigma * knobs.rng("adc_offset").standard_normal(n_adcs)
    return gain, offset


def inl_curve(knobs: NonIdeal, position: np.ndarray) -> np.ndarray | None:
    """INL in LSB at ``position`` (ADC input as a fraction of its range, 0..1), peak ``adc_inl``.

    A sum of a few sine harmonics with seeded amplitudes and phases, zero at both ends of the
    range and scaled so its largest magnitude over the range is ``adc_inl``.
    """
    if knobs.adc_inl == 0:
        return None
    rng = knobs.rng("inl")
    h = np.arange(1, _INL_HARMONICS + 1)
    amp = rng.uniform(0.2, 1.0, _INL_HARMONICS) / h
    sign = rng.choice([-1.0, 1.0], _INL_HARMONICS)
    grid = np.linspace(0.0, 1.0, 1025)
    peak = np.abs(np.sin(np.pi * np.outer(grid, h)) @ (amp * sign)).max()
    u = np.clip(position, 0.0, 1.0)
    curve = np.sin(np.pi * u[..., None] * h) @ (amp * sign)
    return knobs.adc_inl * curve / peak
