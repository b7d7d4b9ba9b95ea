"""The host side of the chip's input buffer, and the harness's stimulus files, without Amaranth.

``SampleEncoder`` turns validated inputs into the words a host writes into the chip's input
buffer for each sample (``ChipPlan.sample_words`` builds one from the plan). It and ``ShellJob``
(what a simulator process needs to feed one chip) hold only numbers, the first layer and the
PIM model, so the testbench process that unpickles them imports numpy, never the gateware:
that keeps the simulator's start-up short. The shell's file names and stimulus format live here
too (``spikeforge.rtl.harness.shell`` reads them in Verilog).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Clock period the testbench drives the shell's ``clk`` with, in ns.
SHELL_PERIOD_NS = 10
#: Words the stimulus memory holds (one batch of samples, with their headers).
STIM_WORDS = 1 << 18


def stim_file(k: int) -> str:
    return f"stim{k}.hex"


def reads_file(k: int) -> str:
    return f"reads{k}.hex"


def events_file(k: int) -> str:
    return f"events{k}.txt"


def samples_file(k: int) -> str:
    return f"samples{k}.txt"


@dataclass(frozen=True)
class SampleEncoder:
    """Input-buffer words per sample for one feed: ``spikes`` (a SPIKE per input spike, a TICK
    per step), ``sums`` (a LOAD per nonzero first-layer sum, one TICK) or ``pim`` (a LOAD per
    PIM channel and position with its packed ADC codes, one TICK).

    ``ops`` maps SPIKE, TICK, LOAD to their 2-bit codes. ``sums``: ``layer`` (the first layer),
    ``value_bits``, ``index_shift`` (the value's place). ``pim``: ``pim`` (the PIM model),
    ``offsets`` (index, channel, codes) and ``adc_bits``."""

    feed: str
    ops: dict[str, int]
    layer: Any = None
    value_bits: int = 0
    value_shift: int = 0
    pim: Any = None
    offsets: tuple[int, int, int] = (0, 0, 0)
    adc_bits: int = 0

    def words(self, x: np.ndarray) -> list[list[int]]:
        """The words of each sample of ``x`` (validated int64 inputs). Python ints: a word may
        be wider than 64 bits."""
        if self.feed == "spikes":
            return self._spike_words(x)
        if self.feed == "sums":
            return self._sum_words(x)
        return self._pim_words(x)

    def _spike_words(self, x: np.ndarray) -> list[list[int]]:
        spike, tick = self.ops["SPIKE"], self.ops["TICK"]
        words = []
        for sample in x.reshape(x.shape[0], x.shape[1], -1):
            w: list[int] = []
            for step in sample:
                w += [spike | int(i) << 2 for i in np.flatnonzero(step)]
                w.append(tick)
            words.append(w)
        return words

    def _sum_words(self, x: np.ndarray) -> list[list[int]]:
        from spikeforge.sim.golden import synaptic_input

        sums = synaptic_input(self.layer, x, "int64")
        mask = (1 << self.value_bits) - 1
        values = (sums.astype(np.int64) & mask).astype(object) << self.value_shift
        heads = self.ops["LOAD"] | np.arange(sums.shape[1], dtype=object) << 2
        words = values | heads
        return [[*words[k][sums[k] != 0].tolist(), self.ops["TICK"]] for k in range(len(sums))]

    def _pim_words(self, x: np.ndarray) -> list[list[int]]:
        off_i, off_c, off_codes = self.offsets
        mask = (1 << self.adc_bits) - 1
        m = self.pim.mapping
        codes = self.pim(x, keep_codes=True).codes  # [N, P, G, O(, B)]
        flat = codes.reshape(*codes.shape[:4], -1) if codes.ndim == 5 else codes[..., None]
        flat = flat.transpose(0, 3, 1, 2, 4).reshape(x.shape[0], m.channels, m.positions, -1)
        packed = np.zeros(flat.shape[:3], dtype=object)
        for f in range(flat.shape[-1]):  # each field's code at its place
            packed = packed | (flat[..., f].astype(np.int64) & mask).astype(object) << (
                off_codes + f * self.adc_bits
            )
        channel = np.arange(m.channels, dtype=object)[:, None]
        position = np.arange(m.positions, dtype=object)[None, :]
        heads = self.ops["LOAD"] | channel << off_c | (channel * m.positions + position) << off_i
        words = (packed | heads).reshape(x.shape[0], -1)  # channel-major, then position
        return [[*w.tolist(), self.ops["TICK"]] for w in words]


@dataclass(frozen=True)
class ShellJob:
    """What the testbench needs to feed one chip of the shell: its encoder, the stimulus word
    width, samples per batch, the hang bound per sample and the number of reads per sample."""

    encoder: SampleEncoder
    stim_bits: int
    batch_samples: int
    max_cycles: int
    depth: int
    n_reads: int


def hex_lines(values: Sequence[int] | np.ndarray, bits: int) -> bytes:
    """``values`` (non-negative, below ``2**bits``) as fixed-width hexadecimal lines."""
    digits = -(-bits // 4)
    return b"".join(b"%0*x\n" % (digits, int(v)) for v in values)


def write_stimulus(path: Path, words: Sequence[Sequence[int]], bits: int) -> int:
    """One batch's stimulus file: the sample count, then each sample's word count and words, as
    ``bits``-wide hexadecimal lines. Returns the number of lines (memory words) written."""
    values: list[int] = [len(words)]
    for sample in words:
        values.append(len(sample))
        values.extend(sample)
    if len(values) > STIM_WORDS:
        raise ValueError(f"a batch of {len(values)} words does not fit {STIM_WORDS}")
    Path(path).write_bytes(hex_lines(values, bits))
    return len(values)
