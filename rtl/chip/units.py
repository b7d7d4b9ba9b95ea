"""Stream plumbing of the chip (``spikeforge.rtl.chip.top``): the sample player, the fan-out,
the merge and the skid buffer between stages.

All four speak the cores' event streams (``spikeforge.rtl.cores.core.Op`` in the low two payload
bits) with valid/ready handshakes; none loses an event under back-pressure.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory, WritePort
from amaranth.lib.wiring import In, Out
from spikeforge.rtl.cores.core import Op


def stage_layout(index_bits: int, value_bits: int = 0) -> data.StructLayout:
    """An event ``{op, index[, value]}``; the in-stream payload of a stage of cores."""
    fields = {"op": Op, "index": unsigned(index_bits)}
    if value_bits:
        fields["value"] = signed(value_bits)
    return data.StructLayout(fields)


class Player(wiring.Component):
    """Plays a sample out of the input buffer: ``CLEAR``, then ``passes`` passes over its words.

    The host writes words (``wr``) while the player is idle, then pulses ``start`` with
    ``count`` (words per pass) and ``passes``. Words are first-stage events (op in the low two
    bits; a ``TICK`` word ends a step). ``done`` is high once every word has been sent;
    ``tick`` pulses when a ``TICK`` leaves.
    """

    def __init__(self, word_bits: int, depth: int, repeat_bits: int = 16):
        self.word_bits, self.depth = word_bits, max(2, depth)
        addr_bits = (self.depth - 1).bit_length()
        super().__init__(
            {
                # the input buffer's write port, driven from outside
                "wr": Out(WritePort.Signature(addr_width=addr_bits, shape=word_bits)),
                "start": In(1),
                "count": In(range(self.depth + 1)),
                "passes": In(repeat_bits),
                "o": Out(stream.Signature(unsigned(word_bits))),
                "done": Out(1, init=1),
                "tick": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        m.submodules.buffer = buffer = Memory(shape=self.word_bits, depth=self.depth, init=[])
        wp, rp = buffer.write_port(), buffer.read_port()
        wiring.connect(m, wiring.flipped(self.wr), wp)

        count, total = Signal.like(self.count), Signal.like(self.passes)
        ptr, done_passes = Signal.like(self.count), Signal.like(self.passes)
        clearing, have = Signal(), Signal()
        more = (done_passes < total) & (count != 0)
        fire = self.o.valid & self.o.ready
        advance = ~clearing & (~have | fire)
        m.d.comb += [
            rp.addr.eq(ptr),
            rp.en.eq(advance),
            self.o.valid.eq(clearing | have),
            self.o.payload.eq(Mux(clearing, Op.CLEAR.value, rp.data)),
            self.tick.eq(fire & ~clearing & (rp.data[:2] == Op.TICK.value)),
        ]
        with m.If(self.start):
            m.d.sync += [
                count.eq(self.count),
                total.eq(self.passes),
                ptr.eq(0),
                done_passes.eq(0),
                clearing.eq(1),
                have.eq(0),
                self.done.eq(0),
            ]
        with m.Elif(clearing):
            with m.If(fire):
                m.d.sync += clearing.eq(0)
        with m.Elif(advance):
            m.d.sync += have.eq(more)
            with m.If(more):
                last = ptr == count - 1
                m.d.sync += [ptr.eq(Mux(last, 0, ptr + 1)), done_passes.eq(done_passes + last)]
            with m.Else():
                m.d.sync += self.done.eq(1)
        return m


class Fanout(wiring.Component):
    """One stage input to the stage's cores (slices of the layer's neurons).

    ``SPIKE``, ``TICK`` and ``CLEAR`` go to every slice (a broadcast: each slice takes the
    event when it is ready, a register remembers which have, and the input is taken once all
    have); ``LOAD(neuron, value)`` goes only to the slice holding that neuron, with its local
    index. No ``valid`` depends on a ``ready`` (the AXI-Stream rule). ``slices`` lists
    ``(first neuron, neuron count, slice index bits)``.
    """

    def __init__(self, index_bits: int, value_bits: int, slices: list[tuple[int, int, int]]):
        self.slices = slices
        self.value_bits = value_bits
        ports = {"i": In(stream.Signature(stage_layout(index_bits, value_bits)))}
        for k, (_, _, bits) in enumerate(slices):
            ports[f"o{k}"] = Out(stream.Signature(stage_layout(bits, value_bits)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        ev = self.i.payload
        outs = [getattr(self, f"o{k}") for k in range(len(self.slices))]
        is_load = ev.op == Op.LOAD
        taken = Signal(len(outs))  # slices that already took the current broadcast
        owner_ready = Signal()
        settled = []  # per slice: has taken the broadcast, or takes it this cycle
        for k, (o, (first, size, bits)) in enumerate(zip(outs, self.slices, strict=True)):
            mine = self._within(ev.index, first, first + size)
            local = Signal(unsigned(bits), name=f"local{first}")
            m.d.comb += local.eq(Mux(is_load, ev.index - first, ev.index))
            m.d.comb += [
                o.valid.eq(self.i.valid & Mux(is_load, mine, ~taken[k])),
                o.payload.op.eq(ev.op),
                o.payload.index.eq(local),
            ]
            if self.value_bits:
                m.d.comb += o.payload.value.eq(ev.value)
            with m.If(mine):
                m.d.comb += owner_ready.eq(o.ready)
            settled.append(taken[k] | o.ready)
        all_taken = Cat(*settled).all()
        # A LOAD beyond every slice (never sent by the host) is dropped.
        first, size, _ = self.slices[-1]
        beyond = ~self._within(ev.index, 0, first + size)
        m.d.comb += self.i.ready.eq(Mux(is_load, owner_ready | beyond, all_taken))
        with m.If(self.i.valid & ~is_load):
            with m.If(all_taken):
                m.d.sync += taken.eq(0)
            with m.Else():
                m.d.sync += taken.eq(Cat(*(o.valid & o.ready for o in outs)) | taken)
        return m

    @staticmethod
    def _within(index, lo: int, hi: int):
        """``lo <= index < hi`` without comparisons that are constant for the index width."""
        terms = []
        if lo > 0:
            terms.append(index >= lo)
        if hi < 1 << len(index):
            terms.append(index < hi)
        if not terms:
            return Const(1, 1)
        return terms[0] & terms[1] if len(terms) == 2 else terms[0]


class Merge(wiring.Component):
    """The out streams of a stage's slices as one stream in the layer's neuron numbering.

    Slice ``k``'s spikes leave with ``offsets[k]`` added, slice after slice, so the order stays
    ascending; a ``TICK`` or ``CLEAR`` ends a slice's part and leaves only from the last slice.
    """

    def __init__(self, in_bits: list[int], offsets: list[int], index_bits: int):
        self.in_bits, self.offsets = in_bits, offsets
        ports = {f"i{k}": In(stream.Signature(stage_layout(b))) for k, b in enumerate(in_bits)}
        ports["o"] = Out(stream.Signature(stage_layout(index_bits)))
        super().__init__(ports)

    def elaborate(self, platform):
        m = Module()
        n = len(self.in_bits)
        cur = Signal(range(max(2, n)))
        for k, offset in enumerate(self.offsets):
            i = getattr(self, f"i{k}")
            with m.If(cur == k):
                marker = i.payload.op != Op.SPIKE
                passes = ~marker | (k == n - 1)
                m.d.comb += [
                    self.o.valid.eq(i.valid & passes),
                    self.o.payload.op.eq(i.payload.op),
                    self.o.payload.index.eq(Mux(marker, 0, i.payload.index + offset)),
                    i.ready.eq(Mux(passes, self.o.ready, 1)),
                ]
                with m.If(i.valid & i.ready & marker):
                    m.d.sync += cur.eq(0 if k == n - 1 else k + 1)
        return m


class SkidBuffer(wiring.Component):
    """A two-entry stream buffer whose ``i.ready`` and ``o.valid`` are registers.

    Placed between stages so that no ``ready`` crosses a stage boundary combinationally (the
    downstream core's ``i.ready`` no longer reaches the upstream core's pipeline enable). It
    passes one event a cycle while ``o.ready`` stays high; an event arriving while the output is
    stalled waits in the skid register, and ``i.ready`` falls until it has moved on.
    """

    def __init__(self, layout: data.Layout):
        self.layout = layout
        super().__init__({"i": In(stream.Signature(layout)), "o": Out(stream.Signature(layout))})

    def elaborate(self, platform):
        m = Module()
        skid = Signal(self.layout)  # the event taken while the output was stalled
        empty = Signal(init=1)  # the skid register is free: ``i.ready``, a register
        m.d.comb += self.i.ready.eq(empty)
        with m.If(~self.o.valid | self.o.ready):  # the output register moves on
            m.d.sync += [
                self.o.valid.eq(~empty | self.i.valid),
                self.o.payload.eq(Mux(empty, self.i.payload, skid)),
                empty.eq(1),
            ]
        with m.Elif(self.i.valid & empty):
            m.d.sync += [skid.eq(self.i.payload), empty.eq(0)]
        return m
