"""Energy and delay: ACE-SNN equations 22-27 with the Table 4 constants, literal and corrected.

Energies in pJ, times in ns, ``P_leak`` in mW (pJ/ns). Layer dimensions follow the paper: a
layer has ``C_in * C_out * k`` weights (``k`` the kernel volume, ``k^3`` in the paper) and
``positions = H_o * W_o * D_o`` output positions (1 for a linear layer).

*Literal* functions are the printed equations. The *corrected* PIM variant (docs/pim.md)
multiplies Eq. 26 by the output positions it lacks and by the number of array passes, uses
``T_BLP`` for the in-memory accumulation in Eq. 27, and takes ``R`` (never defined in the
paper) as weight-MACs per ADC conversion counted from the array mapping. The *mapped* delay
counts row-group activations, all column ADCs converting in parallel.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.pim.array import Mapping
from spikeforge.sim.bundle import Layer


@dataclass(frozen=True)
class Table4:
    """ACE-SNN Table 4 (Datta et al. 2022, Front. Neurosci. 16:815258), values as printed."""

    b_io: int = 64  # bits fetched from SRAM to the PE per bank
    b_w: int = 6  # weight bits stored in SRAM
    n_col: int = 256  # columns per SRAM array
    n_bank: int = 4  # SRAM banks
    n_mac: int = 175  # MAC units in the PE array
    n_ac: int = 175  # AC units in the PE array
    t_read: float = 4.0  # ns, "transfer 1-bit data between SRAM and PE"
    t_blp: float = 4.0  # ns, one analog in-memory accumulation
    e_mac: float = 3.1  # pJ, 32-bit MAC (Horowitz 2014)
    e_ac: float = 0.1  # pJ, 32-bit AC (Horowitz 2014)
    t_mac: float = 4.0  # ns
    t_ac: float = 0.4  # ns
    t_adc: float = 6.0  # ns, one ADC conversion
    e_read: float = 5.2  # pJ, transfer of one weight between SRAM and PE
    e_blp: float = 0.08  # pJ, one in-memory analog accumulation
    e_adc: float = 0.268  # pJ, one ADC conversion
    p_leak: float = 0.0  # mW; the paper gives no value


TABLE4 = Table4()
#: Energy per synaptic operation of the Zou et al. 2021 chip (0.9 V, idle power included).
E_SOP_ZOU = 0.57
#: Reference precision of Table 4's per-operation values.
TABLE4_BITS = 32


@dataclass(frozen=True)
class LayerDims:
    """``C_in``, ``C_out``, kernel volume and output positions of one layer."""

    c_in: int
    c_out: int
    kernel: int = 1
    positions: int = 1

    @property
    def weights(self) -> int:
        return self.c_in * self.c_out * self.kernel

    @property
    def macs(self) -> int:
        """Dense multiply-accumulates of one pass: weights x output positions."""
        return self.weights * self.positions

    @classmethod
    def of(cls, layer: Layer) -> LayerDims:
        if layer.kind == "linear":
            return cls(layer.n_in, layer.n_out)
        out_c, ho, wo = layer.out_shape
        kh, kw = layer.weight.shape[2:]
        return cls(layer.in_shape[0], out_c, kh * kw, ho * wo)


#: ACE-SNN CNN-3D layer 1 (Table 1): 3x3x3 kernel, 1 -> 20 channels, 3x3x198 outputs.
CNN3D_LAYER1 = LayerDims(c_in=1, c_out=20, kernel=27, positions=3 * 3 * 198)


# --------------------------------------------------------------------------------------------
# per-operation scaling rules stated in the paper


def e_mac_at(bits: int, c: Table4 = TABLE4) -> float:
    """MAC energy at ``bits`` precision: ``E_mac ∝ Q^1.25`` (Moons et al. 2017)."""
    return c.e_mac * (bits / TABLE4_BITS) ** 1.25


def e_ac_at(bits: int, c: Table4 = TABLE4) -> float:
    """AC energy at ``bits``: proportional to the bit width (Simon et al. 2019)."""
    return c.e_ac * bits / TABLE4_BITS


def t_mac_at(bits: int, c: Table4 = TABLE4) -> float:
    """MAC latency, logarithmic in precision (carry-save adder), 4 ns at 32 bits."""
    return c.t_mac * math.log2(max(bits, 2)) / math.log2(TABLE4_BITS)


def t_ac_at(bits: int, c: Table4 = TABLE4) -> float:
    """AC latency: ``T_ac = 0.1 T_mac`` (Ganesan 2015)."""
    return 0.1 * t_mac_at(bits, c)


# --------------------------------------------------------------------------------------------
# the printed equations


def _fetch(d: LayerDims, c: Table4) -> float:
    """Weight-fetch time: weights / ((B_IO / B_W) * N_bank) reads of T_read."""
    return d.weights / ((c.b_io / c.b_w) * c.n_bank) * c.t_read


def eq23_delay(d: LayerDims, c: Table4 = TABLE4, t_mac: float | None = None) -> float:
    """Eq. 23: digital MAC layer delay (ns)."""
    t_mac = c.t_mac if t_mac is None else t_mac
    return _fetch(d, c) + d.weights / c.n_mac * d.positions * t_mac


def eq22_energy(d: LayerDims, c: Table4 = TABLE4, e_mac: float | None = None) -> float:
    """Eq. 22: digital MAC layer energy (pJ): weight fetch + MACs + leakage."""
    e_mac = c.e_mac if e_mac is None else e_mac
    return d.weights * c.e_read + d.macs * e_mac + c.p_leak * eq23_delay(d, c)


def eq25_delay(d: LayerDims, c: Table4 = TABLE4, t_ac: float | None = None) -> float:
    """Eq. 25: spiking layer delay (ns), no benefit from sparsity."""
    t_ac = c.t_ac if t_ac is None else t_ac
    return _fetch(d, c) + d.weights / c.n_ac * d.positions * t_ac


def eq24_energy(
    d: LayerDims, activity: float, c: Table4 = TABLE4, e_ac: float | None = None
) -> float:
    """Eq. 24: spiking layer energy (pJ) at spiking activity ``activity`` (zero-gated ACs)."""
    e_ac = c.e_ac if e_ac is None else e_ac
    return d.weights * c.e_read + d.macs * activity * e_ac + c.p_leak * eq25_delay(d, c)


def eq27_delay(d: LayerDims, r: float, c: Table4 = TABLE4) -> float:
    """Eq. 27 as printed: PIM first-layer delay (ns)."""
    rows = d.weights / ((c.n_col / c.b_w) * c.n_bank)
    return rows * d.positions * (c.t_read + c.t_adc / r)


def eq26_energy(d: LayerDims, r: float, c: Table4 = TABLE4) -> float:
    """Eq. 26 as printed (no output-position factor): PIM first-layer energy (pJ)."""
    return d.weights * (c.e_blp + c.e_adc / r) + c.p_leak * eq27_delay(d, r, c)


# --------------------------------------------------------------------------------------------
# corrected PIM first layer


def pim_corrected(
    d: LayerDims, r: float, passes: int = 1, c: Table4 = TABLE4
) -> tuple[float, float]:
    """The corrected form (docs/pim.md): ``(energy pJ, delay ns)`` of the PIM first layer per
    sample."""
    rows = d.weights / ((c.n_col / c.b_w) * c.n_bank)
    delay = rows * d.positions * (c.t_blp + c.t_adc / r) * passes
    energy = d.macs * (c.e_blp + c.e_adc / r) * passes + c.p_leak * delay
    return energy, delay


@dataclass(frozen=True)
class PimCounts:
    """Work of the PIM first layer for one pass over one sample, counted from its mapping."""

    macs: int  # in-memory accumulations (weight x input)
    conversions: int  # ADC conversions
    activations: int  # row-group activations (ADCs of all columns in parallel)

    @property
    def r(self) -> float:
        """Weight-MACs per ADC conversion: the paper's ``R``, derived."""
        return self.macs / self.conversions

    @classmethod
    def of(cls, mapping: Mapping, combine: str = "digital") -> PimCounts:
        per_channel = mapping.w_bits if combine == "digital" else 1
        conversions = mapping.positions * mapping.n_groups * mapping.channels * per_channel
        return cls(mapping.macs, conversions, mapping.activations)

    def energy(self, passes: int = 1, c: Table4 = TABLE4) -> float:
        """Energy (pJ): every accumulation and every conversion counted."""
        return (self.macs * c.e_blp + self.conversions * c.e_adc) * passes

    def delay(self, passes: int = 1, c: Table4 = TABLE4) -> float:
        """Delay (ns): one ``T_BLP + T_adc`` per row-group activation."""
        return self.activations * (c.t_blp + c.t_adc) * passes
