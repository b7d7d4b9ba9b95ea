"""Mapping a first layer onto the SRAM array: bit-sliced weights, banks, row groups, inputs.

A layer's weights become a matrix ``[K, O]`` (``K`` = dot-product length, one wordline row per
input; ``O`` = output channels). Each ``w_bits`` two's-complement weight occupies ``w_bits``
adjacent bit-columns (bit ``j`` of weight ``W[o, i]`` is the cell in row ``i``, column
``o*w_bits + j``). Columns fill ``n_banks`` banks of ``n_cols``; when the channels need more
columns than that, further column tiles are stacked below in the same columns. At most
``rows_active`` rows conduct at once: the dot product is split into row groups whose ADC
results are added digitally.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from spikeforge.sim.bundle import InputSpec, Layer

#: ACE-SNN Table 4: N_col = 256 columns per bank, N_bank = 4 banks (Datta et al. 2022).
N_COL = 256
N_BANK = 4
#: Rows per bank: ACE-SNN gives none; 512 as in the 512x256 array of Kang et al. 2018 (assumed).
N_ROWS = 512
#: Rows activated at once (our default, docs/pim.md; the paper gives none).
ROWS_ACTIVE = 64


class MappingError(ValueError):
    """The layer does not fit the array; the message says why."""


@dataclass(frozen=True)
class ArrayGeometry:
    """The SRAM array: columns per bank, banks, rows per bank, rows activated at once."""

    n_cols: int = N_COL
    n_banks: int = N_BANK
    n_rows: int = N_ROWS
    rows_active: int = ROWS_ACTIVE


@dataclass(frozen=True)
class Mapping:
    """Where one layer lives in the array, and how many conversions one input needs."""

    layer: str
    k: int  # dot-product length (rows per column tile)
    channels: int  # output channels O
    positions: int  # output positions per channel (1 for linear)
    w_bits: int
    group_rows: int  # rows per row group (the last group may hold fewer)
    n_groups: int
    slots_per_bank: int  # weights per bank row: n_cols // w_bits
    column_tiles: int
    geometry: ArrayGeometry

    @property
    def group_sizes(self) -> tuple[int, ...]:
        full, last = divmod(self.k, self.group_rows)
        return (self.group_rows,) * full + ((last,) if last else ())

    @property
    def rows_used(self) -> int:
        return self.column_tiles * self.k

    @property
    def columns_used(self) -> int:
        return self.channels * self.w_bits

    @property
    def macs(self) -> int:
        """Weight x input products for one input sample (dense, every position)."""
        return self.k * self.channels * self.positions

    @property
    def activations(self) -> int:
        """Row-group activations for one input sample (all ADCs convert in parallel)."""
        return self.positions * self.n_groups * self.column_tiles


def dot_shape(layer: Layer) -> tuple[int, int, int]:
    """``(K, O, positions)`` of a linear or conv2d layer."""
    if layer.kind == "linear":
        return layer.n_in, layer.n_out, 1
    if layer.kind == "conv2d":
        out_c, ho, wo = layer.out_shape
        return int(np.prod(layer.weight.shape[1:])), out_c, ho * wo
    raise MappingError(f"layer {layer.name}: kind {layer.kind!r} cannot be mapped")


def map_layer(layer: Layer, geometry: ArrayGeometry = ArrayGeometry()) -> Mapping:
    """Place ``layer`` in the array, or raise ``MappingError`` naming what does not fit."""
    k, channels, positions = dot_shape(layer)
    g = geometry
    if min(g.n_cols, g.n_banks, g.n_rows, g.rows_active) < 1:
        raise MappingError("array geometry values must all be >= 1")
    if layer.w_bits > g.n_cols:
        raise MappingError(
            f"layer {layer.name}: a {layer.w_bits}-bit weight needs more than {g.n_cols} columns"
        )
    slots_per_bank = g.n_cols // layer.w_bits
    tiles = math.ceil(channels / (slots_per_bank * g.n_banks))
    group_rows = min(g.rows_active, k)
    mapping = Mapping(
        layer=layer.name,
        k=k,
        channels=channels,
        positions=positions,
        w_bits=layer.w_bits,
        group_rows=group_rows,
        n_groups=math.ceil(k / group_rows),
        slots_per_bank=slots_per_bank,
        column_tiles=tiles,
        geometry=g,
    )
    if mapping.rows_used > g.n_rows:
        raise MappingError(
            f"layer {layer.name}: needs {mapping.rows_used} rows ({k} inputs x {tiles} column "
            f"tiles of {slots_per_bank * g.n_banks} {layer.w_bits}-bit weights), "
            f"the array has {g.n_rows}"
        )
    return mapping


def weight_matrix(layer: Layer) -> np.ndarray:
    """Weights as ``[K, O]`` int64, rows in the order of ``spikeforge.sim.golden.conv_columns``."""
    return layer.weight.reshape(layer.weight.shape[0], -1).T.astype(np.int64)


def bit_planes(weights: np.ndarray, w_bits: int) -> np.ndarray:
    """Two's-complement bits of ``weights`` ``[K, O]`` as uint8 ``[K, O, w_bits]`` (LSB first)."""
    unsigned = np.asarray(weights, dtype=np.int64) & ((1 << w_bits) - 1)
    return ((unsigned[..., None] >> np.arange(w_bits)) & 1).astype(np.uint8)


def column_weights(w_bits: int) -> np.ndarray:
    """Signed place value of each bit-column: ``2^j``, and ``-2^(w_bits-1)`` for the MSB."""
    place = np.int64(1) << np.arange(w_bits, dtype=np.int64)
    place[-1] = -place[-1]
    return place


def input_offset(spec: InputSpec) -> int:
    """Offset-binary shift that makes input codes non-negative wordline levels."""
    return -spec.code_range[0]


def full_scale_input(spec: InputSpec) -> int:
    """Largest wordline level (DAC code): ``2^bits - 1`` for every direct input."""
    lo, hi = spec.code_range
    return hi - lo
