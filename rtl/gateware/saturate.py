"""Saturating signed arithmetic, the hardware form of ``spikeforge.sim.semantics.saturate``."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from spikeforge.sim.semantics import signed_range


def saturated(m: Module, value, v_bits: int, *, name: str = "sat") -> Signal:
    """A ``v_bits`` signal holding ``value`` clamped to the signed ``v_bits`` range.

    ``value`` must be wide enough to hold the unclamped result (callers add headroom bits).
    """
    lo, hi = signed_range(v_bits)
    out = Signal(signed(v_bits), name=name)
    m.d.comb += out.eq(Mux(value > hi, hi, Mux(value < lo, lo, value)))
    return out


class SaturatingAccumulator(wiring.Component):
    """``acc <= 0`` on ``clr``, else ``acc <= sat(acc + x)`` when ``en``; one result per cycle.

    The smallest real piece of the neuron datapath; the toolchain check runs it under every
    simulator against ``spikeforge.sim.semantics.saturate``.
    """

    def __init__(self, in_bits: int = 8, acc_bits: int = 12):
        if in_bits < 1 or acc_bits < 2:
            raise ValueError("in_bits must be >= 1 and acc_bits >= 2")
        self.in_bits = in_bits
        self.acc_bits = acc_bits
        super().__init__(
            {
                "en": In(1),
                "clr": In(1),
                "x": In(signed(in_bits)),
                "acc": Out(signed(acc_bits)),
            }
        )

    def elaborate(self, platform):
        m = Module()
        wide = Signal(signed(max(self.in_bits, self.acc_bits) + 1))
        m.d.comb += wide.eq(self.acc + self.x)
        nxt = saturated(m, wide, self.acc_bits, name="acc_next")
        with m.If(self.clr):
            m.d.sync += self.acc.eq(0)
        with m.Elif(self.en):
            m.d.sync += self.acc.eq(nxt)
        return m
