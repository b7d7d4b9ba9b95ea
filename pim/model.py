"""The PIM first layer: layer 1's synaptic sums ``s = W·x`` computed the way the array does.

Per output position and row group, every bit-column ``j`` of channel ``o`` develops
``c = Σ_i DAC(x_u[i]) · bit_j(W[o, i])`` (times the cell factors), with ``x_u`` the
offset-binary wordline level of input ``i``. ``combine="digital"`` (default) converts each
column with its own ADC and recombines ``Σ_j ±2^j · code`` digitally (minus for the MSB);
``combine="analog"`` merges the columns binary-weighted before one signed ADC per channel. The
row groups are added digitally, then the exact offset correction ``offset · Σ_i W[o, i]`` is
subtracted. With every knob off the arithmetic is integer and, at enough ADC bits, equals the
exact dot product; ``recombine`` is the digital periphery the RTL reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from spikeforge.pim.adc import AdcSpec, adc_spec, convert, convert_exact
from spikeforge.pim.array import (
    ArrayGeometry,
    Mapping,
    bit_planes,
    column_weights,
    full_scale_input,
    input_offset,
    map_layer,
    weight_matrix,
)
from spikeforge.pim.nonideal import NonIdeal, adc_gain_offset, bitline, cell_factors, dac, inl_curve
from spikeforge.sim.bundle import Bundle, InputSpec, Layer
from spikeforge.sim.golden import check_input, conv_columns

Combine = Literal["digital", "analog"]
COMBINES: tuple[str, ...] = ("digital", "analog")
#: Column values held at once (bounds memory; about 32 MiB of float64).
CHUNK_VALUES = 1 << 22


@dataclass(frozen=True)
class PimConfig:
    """How the first layer runs: ADC bits (``None``: lossless), combine mode, array, knobs."""

    adc_bits: int | None = None
    combine: Combine = "digital"
    geometry: ArrayGeometry = field(default_factory=ArrayGeometry)
    nonideal: NonIdeal = field(default_factory=NonIdeal)

    def __post_init__(self) -> None:
        if self.combine not in COMBINES:
            raise ValueError(f"combine must be one of {list(COMBINES)}, got {self.combine!r}")


@dataclass
class PimResult:
    """Layer 1's sums ``[N, n_out]`` (``[N, T, n_out]`` for spike inputs), golden order, and
    the ADC codes ``[N', P, G, O, w_bits]`` (digital) or ``[N', P, G, O]`` (analog)."""

    sums: np.ndarray
    codes: np.ndarray | None


class PimLayer:
    """One layer programmed into the array under a ``PimConfig``, with its frozen draws."""

    def __init__(self, layer: Layer, spec: InputSpec, config: PimConfig = PimConfig()) -> None:
        self.layer, self.config, self.knobs = layer, config, config.nonideal
        self.mapping: Mapping = map_layer(layer, config.geometry)
        m = self.mapping
        self.offset, self.x_fs = input_offset(spec), full_scale_input(spec)
        weights = weight_matrix(layer)  # [K, O]
        self.place = column_weights(m.w_bits)
        self.correction = self.offset * weights.sum(axis=0)  # exact, per channel
        column_fs = m.group_rows * self.x_fs
        if config.combine == "digital":
            self.adc: AdcSpec = adc_spec(config.adc_bits, 0, column_fs)
        else:
            half = 1 << (m.w_bits - 1)
            self.adc = adc_spec(config.adc_bits, -half * column_fs, (half - 1) * column_fs)
        cells = bit_planes(weights, m.w_bits).astype(np.float64)  # [K, O, B]
        factors = cell_factors(self.knobs, cells.shape)
        if factors is not None:
            cells = cells * factors
        rows = m.n_groups * m.group_rows
        padded = np.zeros((rows, m.channels * m.w_bits))
        padded[: m.k] = cells.reshape(m.k, -1)
        self.cells = padded.reshape(m.n_groups, m.group_rows, -1)  # [G, rows, O*B]
        # One ADC per physical column (per channel for analog); stacked tiles share them.
        per_channel = m.w_bits if config.combine == "digital" else 1
        n_adcs = min(m.channels, m.slots_per_bank * config.geometry.n_banks) * per_channel
        gain, off = adc_gain_offset(self.knobs, n_adcs)
        index = np.arange(m.channels * per_channel) % n_adcs
        shape = (m.channels, m.w_bits) if per_channel > 1 else (m.channels,)
        self.adc_gain, self.adc_offset = gain[index].reshape(shape), off[index].reshape(shape)

    # ---------------------------------------------------------------------------------------

    def levels(self, x: np.ndarray) -> np.ndarray:
        """Wordline levels ``[B, P, K]`` (offset binary) for input codes ``[B, *in_shape]``."""
        layer, batch = self.layer, x.shape[0]
        if layer.kind == "linear":
            cols = x.reshape(batch, 1, -1)
        else:
            cols = conv_columns(x.reshape(batch, *layer.in_shape), layer)
            cols = cols.reshape(batch, -1, self.mapping.k)
        return cols.astype(np.int64) + self.offset

    def column_values(self, levels: np.ndarray) -> np.ndarray:
        """Bit-line values ``[B, P, G, O, w_bits]`` before the ADC (float64; integers if ideal)."""
        m = self.mapping
        batch, positions = levels.shape[:2]
        drive = dac(levels, self.x_fs, self.knobs.dac_alpha).reshape(batch * positions, -1)
        rows = m.n_groups * m.group_rows
        if rows > m.k:
            drive = np.pad(drive, ((0, 0), (0, rows - m.k)))
        grouped = drive.reshape(-1, m.n_groups, m.group_rows).transpose(1, 0, 2)
        c = np.matmul(grouped, self.cells)  # [G, B*P, O*B]; exact below 2^53 when ideal
        return c.transpose(1, 0, 2).reshape(batch, positions, m.n_groups, m.channels, m.w_bits)

    def convert(self, c: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """ADC codes for column values ``c`` (bit-line limit, analog combine, noise, ADC)."""
        knobs, adc = self.knobs, self.adc
        if knobs.ideal:
            c = np.rint(c).astype(np.int64)
            if self.config.combine == "analog":
                c = c @ self.place
            return convert_exact(c, adc)
        c = bitline(c, self.mapping.group_rows * self.x_fs, knobs.bitline_sat)
        if self.config.combine == "analog":
            c = c @ self.place.astype(np.float64)
        if knobs.read_noise and rng is not None:
            c = c + knobs.read_noise * adc.full_scale * rng.standard_normal(c.shape)
        lo, hi = adc.code_range
        position = (c / adc.lsb - lo) / (hi - lo + 1)
        return convert(c, adc, self.adc_gain, self.adc_offset, inl_curve(knobs, position))

    def recombine(self, codes: np.ndarray) -> np.ndarray:
        """The digital periphery: codes ``[B, P, G, O(, w_bits)]`` -> sums ``[B, P, O]``."""
        place = self.place if self.config.combine == "digital" else None
        return recombine(codes, self.adc.shift, self.correction, place)

    def __call__(self, x: np.ndarray, keep_codes: bool = False) -> PimResult:
        """Sums ``[B, n_out]`` (golden order) for input codes ``[B, *in_shape]``."""
        m, batch = self.mapping, x.shape[0]
        rng = self.knobs.rng("noise") if self.knobs.read_noise else None
        step = max(1, CHUNK_VALUES // (m.positions * m.n_groups * m.channels * m.w_bits))
        sums, codes = [], []
        for start in range(0, batch, step):
            c = self.column_values(self.levels(x[start : start + step]))
            d = self.convert(c, rng)
            sums.append(self.recombine(d))
            if keep_codes:
                codes.append(d)
        y = np.concatenate(sums)  # [B, P, O] -> [B, O, P] = flattened [C, H, W]
        return PimResult(
            sums=y.transpose(0, 2, 1).reshape(batch, -1),
            codes=np.concatenate(codes) if keep_codes else None,
        )


def recombine(
    codes: np.ndarray, shift: int, correction: np.ndarray, place: np.ndarray | None = None
) -> np.ndarray:
    """``Σ_g (Σ_j place_j · code) << shift - correction`` in integers (the RTL's arithmetic).

    ``codes``: ``[..., G, O, w_bits]`` with ``place`` (digital combine) or ``[..., G, O]``
    without (analog); returns ``[..., O]``.
    """
    d = np.asarray(codes, dtype=np.int64)
    if place is not None:
        d = d @ place
    return (d.sum(axis=-2) << shift) - correction


def pim_first_layer(
    bundle: Bundle, x: np.ndarray, config: PimConfig = PimConfig(), keep_codes: bool = False
) -> PimResult:
    """Layer 1 of ``bundle`` on inputs ``x`` (validated like the golden model's) in the PIM.

    Returns sums shaped for ``spikeforge.sim.golden.run(..., first_layer_sums=...)``.
    """
    x = check_input(bundle, x)
    pim = PimLayer(bundle.layers[0], bundle.input, config)
    if bundle.input.encoding == "direct":
        return pim(x, keep_codes)
    n, t = x.shape[:2]
    result = pim(x.reshape(n * t, *x.shape[2:]), keep_codes)
    result.sums = result.sums.reshape(n, t, -1)
    return result
