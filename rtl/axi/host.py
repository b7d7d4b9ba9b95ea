"""The host's side of ``AxiChip``: the words to stream in, the AXI-Lite writes that load a bundle
of the same shape at run time, and the result records decoded.

These are what a driver on a soft CPU or an ARM core does; the cocotb testbench and
``spikeforge rtl-sim --top axi`` use them, so the host protocol is written once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from spikeforge.rtl.axi.registers import RECORD_VERSION, RESULT_KIND, RegisterMap
from spikeforge.rtl.chip.top import ChipPlan
from spikeforge.rtl.gateware.config_bus import CFG_DATA_BITS


class RecordError(ValueError):
    """The output stream does not hold the result records this build writes."""


@dataclass(frozen=True)
class ResultRecord:
    sample: int
    cycles: int
    v_out: np.ndarray
    pred: int


def bundle_writes(plan: ChipPlan, regs: RegisterMap) -> list[tuple[int, int]]:
    """``(byte address, data)`` AXI-Lite writes that program ``plan``'s bundle into a chip of
    the same shape: every core's registers, weights, thresholds and biases, then the chip
    registers and the PIM periphery's corrections."""
    writes = []
    for k, s in enumerate(plan.slices):
        writes += [
            (regs.window_address(plan.cfg_addr(k, sub)), value)
            for sub, value in s.config.cfg_writes(s.params)
        ]
    if plan.periphery is not None:
        mask = (1 << CFG_DATA_BITS) - 1
        chip, top = plan.n_cores, 1 << (plan.sub_bits - 1)
        writes += [
            (regs.window_address(plan.cfg_addr(chip, 0)), plan.lsb_shift),
            (regs.window_address(plan.cfg_addr(chip, 1)), plan.input_shift),
        ]
        writes += [
            (regs.window_address(plan.cfg_addr(chip, top + c)), value & mask)
            for c, value in enumerate(plan.corrections)
        ]
    return writes


def _signed32(word: int) -> int:
    return word - (1 << 32) if word >> 31 else word


def decode_record(words: list[int], n_out: int) -> ResultRecord:
    """One result record (the words of one output packet, TLAST on the last)."""
    if len(words) != n_out + 4:
        raise RecordError(f"a result record has {n_out + 4} words, got {len(words)}")
    head = words[0]
    if head >> 24 != RESULT_KIND or (head >> 16) & 0xFF != RECORD_VERSION:
        raise RecordError(f"not a version {RECORD_VERSION} result record: header 0x{head:08X}")
    if head & 0xFFFF != n_out:
        raise RecordError(f"record for {head & 0xFFFF} outputs, this chip has {n_out}")
    v_out = np.array([_signed32(w) for w in words[3 : 3 + n_out]], dtype=np.int64)
    return ResultRecord(sample=words[1], cycles=words[2], v_out=v_out, pred=words[-1])
