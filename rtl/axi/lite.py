"""An AXI4-Lite slave that turns each transaction into one access on a simple request bus.

One transaction at a time: a write is taken once both its address and its data have arrived
(in either order), a read when no write is half-received. The access is held on ``bus``
(``valid``, ``write``, ``addr`` as a word address, ``wdata``) until the served side answers
with a one-cycle ``done`` (with ``error`` and, for reads, ``rdata``); the answer becomes the
B or R response (OKAY, or SLVERR for ``error``). A write whose WSTRB is not all ones answers
SLVERR without an access: registers and configuration words take whole words.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from spikeforge.rtl.axi.ports import axil_members

OKAY, SLVERR = 0b00, 0b10


def request_signature(word_addr_bits: int) -> wiring.Signature:
    """The request bus as the requester (the AXI-Lite slave) drives it."""
    return wiring.Signature(
        {
            "valid": Out(1),
            "write": Out(1),
            "addr": Out(word_addr_bits),
            "wdata": Out(32),
            "done": In(1),
            "error": In(1),
            "rdata": In(32),
        }
    )


class AxiLiteSlave(wiring.Component):
    """AXI4-Lite slave ``s_axil_*`` (``addr_bits`` byte address bits) to ``bus``."""

    def __init__(self, addr_bits: int, prefix: str = "s_axil"):
        self.prefix = prefix
        members = axil_members(prefix, addr_bits)
        members["bus"] = Out(request_signature(addr_bits - 2))
        super().__init__(members)

    def _port(self, name: str) -> Signal:
        return getattr(self, f"{self.prefix}_{name}")

    def elaborate(self, platform):
        m = Module()
        a, bus = self._port, self.bus
        aw_held, w_held = Signal(), Signal()
        aw_addr = Signal.like(a("awaddr"))
        ar_addr = Signal.like(a("araddr"))
        wdata, wstrb = Signal(32), Signal(4)
        m.d.comb += bus.wdata.eq(wdata)
        rdata, resp = Signal(32), Signal(2)
        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += [
                    a("awready").eq(~aw_held),
                    a("wready").eq(~w_held),
                    a("arready").eq(~aw_held & ~w_held),
                ]
                with m.If(a("awvalid") & ~aw_held):
                    m.d.sync += [aw_held.eq(1), aw_addr.eq(a("awaddr"))]
                with m.If(a("wvalid") & ~w_held):
                    m.d.sync += [w_held.eq(1), wdata.eq(a("wdata")), wstrb.eq(a("wstrb"))]
                with m.If(a("arvalid") & ~aw_held & ~w_held):
                    m.d.sync += ar_addr.eq(a("araddr"))
                    m.next = "READ"
                with m.Elif(aw_held & w_held):
                    m.next = "WRITE"
            with m.State("READ"):
                m.d.comb += [bus.valid.eq(1), bus.addr.eq(ar_addr[2:])]
                with m.If(bus.done):
                    m.d.sync += [rdata.eq(bus.rdata), resp.eq(bus.error * SLVERR)]
                    m.next = "R"
            with m.State("R"):
                m.d.comb += [
                    a("rvalid").eq(1),
                    a("rdata").eq(rdata),
                    a("rresp").eq(resp),
                ]
                with m.If(a("rready")):
                    m.next = "IDLE"
            with m.State("WRITE"):
                whole = wstrb == 0b1111
                m.d.comb += [
                    bus.valid.eq(whole),
                    bus.write.eq(1),
                    bus.addr.eq(aw_addr[2:]),
                ]
                with m.If(~whole | bus.done):
                    m.d.sync += [
                        resp.eq((~whole | bus.error) * SLVERR),
                        aw_held.eq(0),
                        w_held.eq(0),
                    ]
                    m.next = "B"
            with m.State("B"):
                m.d.comb += [a("bvalid").eq(1), a("bresp").eq(resp)]
                with m.If(a("bready")):
                    m.next = "IDLE"
        return m
