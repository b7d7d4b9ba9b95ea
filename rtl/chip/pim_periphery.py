"""The digital periphery of the SRAM-PIM first layer: ADC codes in, LOAD events out.

``PimPeriphery`` does in hardware what ``spikeforge.pim.model.recombine`` does in numpy: per output
neuron, ``y = (Σ_g Σ_j place_j · code[g, j]) << lsb_shift - correction[channel]`` (``place_j =
2^j``, ``-2^(w_bits-1)`` for the MSB bit-column; a single signed code per group for the analog
combine), then ``value = y >> input_shift`` (arithmetic, floor), emitted as ``LOAD(neuron, value)``
to the first neurosynaptic core (``spikeforge.rtl.cores.core.Core`` built with ``load``).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from spikeforge.pim.adc import lossless_bits
from spikeforge.rtl.cores.core import Op


@dataclass(frozen=True)
class PeripheryParams:
    """Elaboration-time parameters; ``load_bits`` is derived so no value can overflow."""

    n_neurons: int  # LOAD index range (layer-1 outputs)
    n_channels: int  # rows of the correction table
    groups: int  # row groups G
    columns: int  # codes per group: w_bits (digital combine) or 1 (analog)
    adc_bits: int  # code width
    signed_codes: bool = False  # analog combine: one signed code per group
    correction_bits: int = 24
    shift_bits: int = 3  # width of the lsb_shift / input_shift inputs (0..2^bits-1)
    index_bits: int | None = None  # LOAD index width (the core's in_index_bits)

    def __post_init__(self) -> None:
        if min(self.n_neurons, self.n_channels, self.groups, self.columns, self.adc_bits) < 1:
            raise ValueError("every PeripheryParams size must be >= 1")
        if self.signed_codes and self.columns != 1:
            raise ValueError("signed codes (analog combine) come one per group")
        if self.index_bits is None:
            object.__setattr__(self, "index_bits", max(1, (self.n_neurons - 1).bit_length()))
        if self.load_bits > 31:
            raise ValueError(f"LOAD values need {self.load_bits} bits (> 31): narrow a parameter")

    def place(self) -> list[int]:
        """Signed place value of each code within a group."""
        if self.signed_codes:
            return [1]
        return [1 << j for j in range(self.columns - 1)] + [-(1 << (self.columns - 1))]

    def sum_range(self) -> tuple[int, int]:
        """Range of ``Σ place · code`` over all groups."""
        if self.signed_codes:
            lo, hi = -(1 << (self.adc_bits - 1)), (1 << (self.adc_bits - 1)) - 1
        else:
            lo, hi = 0, (1 << self.adc_bits) - 1
        place = self.place()
        top = sum(max(p * lo, p * hi) for p in place) * self.groups
        bottom = sum(min(p * lo, p * hi) for p in place) * self.groups
        return bottom, top

    @property
    def load_bits(self) -> int:
        """Signed width holding every ``y`` (hence every ``y >> input_shift``)."""
        lo, hi = self.sum_range()
        max_shift = (1 << self.shift_bits) - 1
        c = 1 << (self.correction_bits - 1)
        return lossless_bits(min(0, lo << max_shift) - (c - 1), (hi << max_shift) + c)

    def in_layout(self) -> data.StructLayout:
        code = signed(self.adc_bits) if self.signed_codes else unsigned(self.adc_bits)
        return data.StructLayout(
            {
                "op": Op,
                "index": unsigned(self.index_bits),
                "channel": unsigned(max(1, (self.n_channels - 1).bit_length())),
                "codes": data.ArrayLayout(code, self.groups * self.columns),
            }
        )

    def out_layout(self) -> data.StructLayout:
        """The core's in-stream payload (``spikeforge.rtl.cores.core.CoreParams.in_layout`` with
        ``load``)."""
        return data.StructLayout(
            {"op": Op, "index": unsigned(self.index_bits), "value": signed(self.load_bits)}
        )


class PimPeriphery(wiring.Component):
    """ADC codes -> ``LOAD`` events, one event a cycle, registered output.

    **Streams** (valid/ready): ``i`` payload ``{op, index, channel, codes[G*columns]}``: an
    event with op ``LOAD`` carries neuron ``index``'s codes (row group ``g``, column ``j`` at
    ``codes[g*columns + j]``) and its output ``channel``; it leaves as ``LOAD(index, value)``,
    or not at all when ``value == 0`` (it would add nothing). Every other event (``SPIKE``,
    ``TICK``, ``CLEAR``) passes through unchanged with ``value = 0``, so the stream plugs into
    the first core's ``i`` directly; its order is kept.

    **Settings**: ``lsb_shift`` (the ADC step, ``2^lsb_shift`` column units) and ``input_shift``
    (the layer's, applied here: build the first core with ``input_shift = 0``), held static by
    the host; ``corr`` writes the per-channel offset-binary correction table (``en``, ``addr``,
    ``data``), which starts from ``corrections``.

    **Timing**: two registered stages, the column sum and correction read, then the shifts
    and the output (so the ADC-code adder tree and the two shifters are not one path). The
    pipeline moves whenever the output register is empty or being taken, and ``i.ready`` is
    high then or while the first stage is empty: with an always-ready consumer every event costs
    one cycle, and the output follows two cycles after acceptance.
    """

    def __init__(self, params: PeripheryParams, corrections: list[int] | None = None):
        self.params = params
        self.corrections = list(corrections or [0] * params.n_channels)
        if len(self.corrections) != params.n_channels:
            raise ValueError("one correction per channel")
        super().__init__(
            {
                "i": In(stream.Signature(params.in_layout())),
                "o": Out(stream.Signature(params.out_layout())),
                "lsb_shift": In(params.shift_bits),
                "input_shift": In(params.shift_bits),
                # a write port into the correction table (the memory's own port signature)
                "corr": Out(
                    WritePort.Signature(
                        addr_width=max(1, (params.n_channels - 1).bit_length()),
                        shape=signed(params.correction_bits),
                    )
                ),
            }
        )

    def elaborate(self, platform):
        m = Module()
        p = self.params
        # At least two rows: a one-row memory would have zero-width (``[-1:0]``) address ports.
        m.submodules.table = table = Memory(
            shape=signed(p.correction_bits), depth=max(2, p.n_channels), init=self.corrections
        )
        read = table.read_port(domain="comb")
        write = table.write_port()
        wiring.connect(m, wiring.flipped(self.corr), write)
        m.d.comb += read.addr.eq(self.i.payload.channel)

        terms = []
        for g in range(p.groups):
            for j, place in enumerate(p.place()):
                code = self.i.payload.codes[g * p.columns + j]
                terms.append(-(code << (place.bit_length() - 1)) if place < 0 else code * place)
        total = Signal(signed(p.load_bits), name="total")
        m.d.comb += total.eq(sum(terms[1:], terms[0]))

        # Stage 1: the event, its column sum and its channel's correction, registered.
        s1_valid = Signal(name="s1_valid")
        s1_op = Signal.like(self.i.payload.op, name="s1_op")
        s1_index = Signal.like(self.i.payload.index, name="s1_index")
        s1_total = Signal.like(total, name="s1_total")
        s1_corr = Signal.like(read.data, name="s1_corr")
        advance = Signal()
        m.d.comb += [
            advance.eq(~self.o.valid | self.o.ready),
            self.i.ready.eq(advance | ~s1_valid),
        ]
        with m.If(self.i.ready):
            m.d.sync += [
                s1_valid.eq(self.i.valid),
                s1_op.eq(self.i.payload.op),
                s1_index.eq(self.i.payload.index),
                s1_total.eq(total),
                s1_corr.eq(read.data),
            ]

        # Stage 2: shifts, and the output register (a LOAD of value 0 is dropped).
        y = Signal(signed(p.load_bits), name="y")
        m.d.comb += y.eq((s1_total << self.lsb_shift) - s1_corr)
        value = Signal(signed(p.load_bits), name="value")
        m.d.comb += value.eq(y >> self.input_shift)
        is_load = s1_op == Op.LOAD
        with m.If(advance):
            m.d.sync += [
                self.o.payload.op.eq(s1_op),
                self.o.payload.index.eq(s1_index),
                self.o.payload.value.eq(Mux(is_load, value, 0)),
                self.o.valid.eq(s1_valid & (~is_load | (value != 0))),
            ]
        return m
