"""``AxiChip``: the chip behind AXI4-Stream in and out and an AXI4-Lite register map.

A sample arrives on ``s_axis`` as the chip's input words (``ChipPlan.sample_words``: one pass
for direct encoding, every step for spike encoding), TLAST on its last word. The wrapper writes
them into the chip's input buffer, starts the chip (``PASSES`` passes), waits for it, reads the
output layer's potentials through the configuration bus and queues one result record in the
output FIFO, which drains to ``m_axis``; a slow consumer stalls the read-out (and so the next
sample) but loses nothing. Result record, format ``RECORD_VERSION`` (32-bit words, TLAST on the
last):

=====  ====================================================================================
word   content
=====  ====================================================================================
0      ``RESULT_KIND << 24 | RECORD_VERSION << 16 | n_out``
1      sample number (results since reset)
2      clock cycles the sample ran in the chip
3..    ``n_out`` potentials of the output layer, two's complement
last   prediction: the index of the first largest potential
=====  ====================================================================================

``s_axil`` serves ``spikeforge.rtl.axi.registers.register_map``: registers at the bottom, the
chip's configuration space as a window at the top half (weights, thresholds, leaks, modes,
potentials and per-core counters; a bundle of the same shape loads at run time through it). An
address that maps to nothing answers SLVERR.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetInserter, Signal, signed
from amaranth.lib import fifo, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out
from spikeforge.rtl.axi.lite import AxiLiteSlave
from spikeforge.rtl.axi.ports import axis_members
from spikeforge.rtl.axi.registers import (
    ERROR_TOO_LONG,
    RECORD_VERSION,
    RESULT_KIND,
    RegisterMap,
)
from spikeforge.rtl.chip.top import REPEAT_BITS, Chip, ChipPlan
from spikeforge.rtl.cores.core import Region

#: Words of a result record besides the potentials (header, sample, cycles, prediction).
RECORD_EXTRA_WORDS = 4


def stream_bits(word_bits: int) -> int:
    """TDATA width of the input stream: the chip's word, rounded up to a multiple of 32."""
    return 32 * -(-word_bits // 32)


class AxiChip(wiring.Component):
    """The chip of ``plan`` with ``s_axis`` (input words), ``m_axis`` (result records),
    ``s_axil`` (``regs``) and ``irq`` (level, ``IRQ & CTRL`` enables)."""

    def __init__(self, plan: ChipPlan, regs: RegisterMap):
        self.plan, self.regs = plan, regs
        self.n_out = plan.bundle.layers[-1].n_out
        self.in_bits = stream_bits(plan.word_bits)
        self.fifo_depth = max(16, 1 << (self.n_out + RECORD_EXTRA_WORDS - 1).bit_length())
        members = axis_members("s_axis", self.in_bits, master=False)
        members |= axis_members("m_axis", 32, master=True)
        self.lite = AxiLiteSlave(regs.addr_bits)
        members |= dict(self.lite_members())
        members["irq"] = Out(1)
        super().__init__(members)

    def lite_members(self):
        """The AXI-Lite slave's ``s_axil_*`` members, as this top's own."""
        return [(k, v) for k, v in self.lite.signature.members.items() if k != "bus"]

    # ----------------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        m.submodules.chip = chip = Chip(plan)
        m.submodules.lite = lite = self.lite
        for name, _ in self.lite_members():
            ours, theirs = getattr(self, name), getattr(lite, name)
            if lite.signature.members[name].flow == wiring.In:
                m.d.comb += theirs.eq(ours)
            else:
                m.d.comb += ours.eq(theirs)
        soft_reset = Signal()  # one cycle: flush the output FIFO
        out_fifo = fifo.SyncFIFOBuffered(width=33, depth=self.fifo_depth)
        m.submodules.out_fifo = ResetInserter(soft_reset)(out_fifo)
        m.d.comb += [
            self.m_axis_tvalid.eq(out_fifo.r_rdy),
            self.m_axis_tdata.eq(out_fifo.r_data[:32]),
            self.m_axis_tlast.eq(out_fifo.r_data[32]),
            out_fifo.r_en.eq(self.m_axis_tready),
        ]

        r = _Registers(plan)
        self._sample_flow(m, chip, out_fifo, r, soft_reset)
        self._register_bus(m, chip, lite.bus, out_fifo, r, soft_reset)
        m.d.comb += self.irq.eq((r.irq & r.irq_en).any())
        return m

    # -- samples ------------------------------------------------------------------------------

    def _sample_flow(self, m, chip, out_fifo, r, soft_reset) -> None:
        """Receive a sample, run it, read its potentials out into a result record."""
        plan = self.plan
        depth = chip.player.depth
        ptr = Signal(range(depth + 1))
        too_long = Signal()
        count = Signal.like(chip.count)
        cycles = Signal(32)
        m.d.comb += [
            chip.count.eq(count),
            chip.passes.eq(r.passes),
            chip.wr.data.eq(self.s_axis_tdata[: plan.word_bits]),
            chip.wr.addr.eq(ptr[: len(chip.wr.addr)]),
        ]
        # read-out: the potentials' configuration addresses, in neuron order
        reads = plan.v_out_reads()
        v_addr = Memory(shape=len(chip.cfg.addr), depth=len(reads), init=reads)
        m.submodules.v_addr = v_addr
        addr_port = v_addr.read_port(domain="comb")
        issued = Signal(range(self.n_out + 1))
        answered = Signal(range(self.n_out + 1))
        in_flight = Signal(range(self.fifo_depth + 1))
        header = Signal(range(4))
        best = Signal(signed(32))
        best_at = Signal(range(max(2, self.n_out)))
        self.seq_cfg = seq = {"valid": Signal(), "addr": Signal.like(chip.cfg.addr)}
        m.d.comb += [addr_port.addr.eq(issued), seq["addr"].eq(addr_port.data)]
        self.readout_owns_cfg = Signal()
        self.lite_cfg_busy = Signal()  # set by _register_bus while it uses the bus
        self.lite_wants_cfg = Signal()

        with m.FSM(name="sample") as fsm:
            with m.State("LOAD"):
                m.d.comb += self.s_axis_tready.eq(~r.resetting)
                m.d.comb += r.in_sample.eq(ptr != 0)
                fire = self.s_axis_tvalid & self.s_axis_tready
                with m.If(fire):
                    m.d.sync += r.in_words.eq(r.in_words + 1)
                    with m.If(ptr < depth):
                        m.d.comb += chip.wr.en.eq(1)
                        m.d.sync += ptr.eq(ptr + 1)
                    with m.Else():
                        m.d.sync += too_long.eq(1)
                    with m.If(self.s_axis_tlast):
                        m.d.sync += [ptr.eq(0), too_long.eq(0)]
                        with m.If(too_long | (ptr == depth)):
                            m.d.sync += [r.error_code.eq(ERROR_TOO_LONG), r.irq[1].eq(1)]
                        with m.Else():
                            m.d.sync += count.eq(ptr + 1)
                            m.next = "START"
                with m.If(r.resetting):
                    m.d.comb += soft_reset.eq(1)
                    m.d.sync += [ptr.eq(0), too_long.eq(0), r.resetting.eq(0)]
                    m.d.sync += r.clear_all()
            with m.State("START"):
                m.d.comb += chip.start.eq(1)
                m.d.sync += cycles.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.sync += cycles.eq(cycles + 1)
                free = ~self.lite_cfg_busy & ~self.lite_wants_cfg
                with m.If(~chip.busy & (free | r.resetting)):
                    m.d.sync += [
                        r.last_cycles.eq(cycles),
                        r.cycles.eq(r.cycles + cycles),
                        issued.eq(0),
                        answered.eq(0),
                        header.eq(0),
                    ]
                    m.next = "READOUT"
                    with m.If(r.resetting):
                        m.next = "LOAD"
            with m.State("READOUT"):
                m.d.comb += self.readout_owns_cfg.eq(1)
                words = [
                    Const(RESULT_KIND << 24 | RECORD_VERSION << 16 | self.n_out, 32),
                    r.samples,
                    r.last_cycles,
                ]
                space = out_fifo.level + in_flight < self.fifo_depth
                with m.If(header < 3):
                    m.d.comb += [
                        out_fifo.w_data.eq(Cat(words[0], 0)),
                        out_fifo.w_en.eq(~r.resetting),
                    ]
                    with m.Switch(header):
                        for k, word in enumerate(words):
                            with m.Case(k):
                                m.d.comb += out_fifo.w_data.eq(Cat(word, 0))
                    with m.If(out_fifo.w_rdy | r.resetting):
                        m.d.sync += header.eq(header + 1)
                with m.Elif(issued < self.n_out):
                    m.d.comb += seq["valid"].eq(space & ~r.resetting)
                    with m.If(seq["valid"] & chip.cfg.ready):
                        m.d.sync += issued.eq(issued + 1)
                answer = chip.cfg.rvalid
                value = chip.cfg.rdata.as_signed()
                with m.If(answer):
                    m.d.comb += [out_fifo.w_data.eq(Cat(chip.cfg.rdata, 0)), out_fifo.w_en.eq(1)]
                    m.d.sync += answered.eq(answered + 1)
                    with m.If((answered == 0) | (value > best)):
                        m.d.sync += [best.eq(value), best_at.eq(answered)]
                took = seq["valid"] & chip.cfg.ready
                m.d.sync += in_flight.eq(in_flight + took - answer)
                with m.If(r.resetting & (in_flight == 0) & ~took):
                    m.next = "LOAD"
                with m.Elif((answered == self.n_out) & (issued == self.n_out)):
                    m.d.comb += [
                        out_fifo.w_data.eq(Cat(best_at, Const(0, 32 - len(best_at)), 1)),
                        out_fifo.w_en.eq(1),
                    ]
                    with m.If(out_fifo.w_rdy):
                        m.d.sync += [r.samples.eq(r.samples + 1), r.irq[0].eq(1)]
                        m.next = "LOAD"
        m.d.comb += r.busy.eq(~fsm.ongoing("LOAD"))

    # -- the AXI-Lite side --------------------------------------------------------------------

    def _register_bus(self, m, chip, bus, out_fifo, r, soft_reset) -> None:
        """Serve ``bus``: registers by offset, the configuration window by ``chip.cfg``."""
        regs = self.regs
        window_bit = regs.addr_bits - 3  # the window's select bit in a word address
        in_window = bus.addr[window_bit]
        cfg_addr = bus.addr[: len(chip.cfg.addr)]
        mapped = self._window_decode(m, bus.addr[:window_bit])
        cfg = chip.cfg
        seq = self.seq_cfg
        lite_pending_read = self.lite_cfg_busy
        use_window = bus.valid & in_window & mapped & ~lite_pending_read
        m.d.comb += self.lite_wants_cfg.eq(use_window)
        grant = use_window & ~self.readout_owns_cfg
        m.d.comb += [
            cfg.valid.eq(Mux(self.readout_owns_cfg, seq["valid"], grant)),
            cfg.write.eq(~self.readout_owns_cfg & bus.write),
            cfg.addr.eq(Mux(self.readout_owns_cfg, seq["addr"], cfg_addr)),
            cfg.wdata.eq(bus.wdata),
        ]
        with m.If(grant & cfg.ready & ~bus.write):
            m.d.sync += lite_pending_read.eq(1)
        with m.If(lite_pending_read & cfg.rvalid):
            m.d.sync += lite_pending_read.eq(0)
            m.d.comb += [bus.done.eq(1), bus.rdata.eq(cfg.rdata)]
        with m.If(grant & cfg.ready & bus.write):
            m.d.comb += bus.done.eq(1)
        with m.If(bus.valid & in_window & ~mapped):
            m.d.comb += [bus.done.eq(1), bus.error.eq(1)]
        # registers
        with m.If(bus.valid & ~in_window):
            m.d.comb += bus.done.eq(1)
            with m.Switch(bus.addr[:window_bit]):
                for reg in regs.registers:
                    with m.Case(reg.offset // 4):
                        self._serve_register(m, reg, bus, out_fifo, r)
                with m.Default():
                    m.d.comb += bus.error.eq(1)

    def _serve_register(self, m, reg, bus, out_fifo, r) -> None:
        write, wdata = bus.write, bus.wdata
        values = {
            "STATUS": Cat(r.busy, r.in_sample, out_fifo.r_rdy),
            "CTRL": r.irq_en,
            "IRQ": r.irq,
            "ERROR_CODE": r.error_code,
            "PASSES": r.passes,
            "SAMPLES": r.samples,
            "CYCLES": r.cycles,
            "LAST_CYCLES": r.last_cycles,
            "IN_WORDS": r.in_words,
        }
        if reg.access == "WO":
            m.d.comb += bus.error.eq(~write)
        elif reg.name in values:
            m.d.comb += bus.rdata.eq(values[reg.name])
        else:
            m.d.comb += bus.rdata.eq(reg.reset)
        if reg.access == "RO":
            m.d.comb += bus.error.eq(write)
            return
        with m.If(write):
            if reg.name == "CTRL":
                m.d.sync += r.irq_en.eq(wdata[:2])
                with m.If(wdata[31]):
                    m.d.sync += r.resetting.eq(1)
            elif reg.name == "IRQ":
                m.d.sync += r.irq.eq(r.irq & ~wdata[:2])
            elif reg.name == "PASSES":
                m.d.sync += r.passes.eq(wdata)
            elif reg.name == "COUNT_CLEAR":
                m.d.sync += [r.samples.eq(0), r.cycles.eq(0), r.in_words.eq(0)]

    def _window_decode(self, m, word):
        """Whether a window word address is a configuration word of this build."""
        plan = self.plan
        ok = Signal(name="cfg_mapped")
        sub_bits = plan.sub_bits
        sub, target = word[:sub_bits], word[sub_bits:]
        terms = []
        for k, s in enumerate(plan.slices):
            p = s.params
            width = p.cfg_addr_bits
            layout = p.cfg_layout
            region = sub[layout["region"].offset : layout["region"].offset + 3]
            present = [Region.CTRL, Region.WEIGHT, Region.V, Region.ACC]
            present += [Region.THETA] if getattr(p, "neuron_threshold", True) else []
            present += [Region.BIAS] if getattr(p, "bias", False) else []
            region_ok = Cat(*[region == int(x) for x in present]).any()
            above = sub[width:] == 0 if width < sub_bits else Const(1)
            terms.append((target == k) & above & region_ok)
        chip_target = target == plan.n_cores
        if plan.periphery is not None:
            top = sub[sub_bits - 1]
            low = sub[: sub_bits - 1]
            chip_ok = Mux(top, low < plan.periphery.n_channels, low < 2)
        else:
            chip_ok = sub < 2
        terms.append(chip_target & chip_ok)
        m.d.comb += ok.eq(Cat(*terms).any())
        return ok


class _Registers:
    """The wrapper's state registers."""

    def __init__(self, plan: ChipPlan):
        self.passes = Signal(REPEAT_BITS, init=plan.repeat())
        self.irq_en = Signal(2)
        self.irq = Signal(2)
        self.error_code = Signal(8)
        self.samples = Signal(32)
        self.cycles = Signal(32)
        self.last_cycles = Signal(32)
        self.in_words = Signal(32)
        self.resetting = Signal()
        self.busy = Signal()
        self.in_sample = Signal()

    def clear_all(self) -> list:
        """Soft reset: status, IRQ, error and counters to 0 (PASSES and enables kept)."""
        return [
            self.irq.eq(0),
            self.error_code.eq(0),
            self.samples.eq(0),
            self.cycles.eq(0),
            self.last_cycles.eq(0),
            self.in_words.eq(0),
        ]
