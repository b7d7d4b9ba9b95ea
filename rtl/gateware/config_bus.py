"""The configuration bus of the cores and the chip: one port signature, its address fields, and
the decoder that routes one bus to several targets.

An access is ``valid``/``write``/``addr``/``wdata``, taken in a cycle with ``ready`` high; a
read's data come back on ``rdata`` with ``rvalid`` a fixed number of cycles after it was taken
(``CFG_READ_LATENCY`` at a core, ``DECODER_LATENCY`` more through a ``ConfigDecoder``), so reads
may follow back to back. Every target answers from a register, and so does the decoder: no
read path runs combinationally from one target's memories through the decoder to the bus.

An address is a record of unsigned fields (``address_layout``), the first in the lowest bits: a
core's ``index``, ``axon``, ``region`` (``spikeforge.rtl.cores.core.CoreParams.cfg_layout``),
the chip's ``sub``, ``target`` (``target_layout``).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, Value, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from spikeforge.rtl.gateware.widths import index_bits

#: Width of the data buses.
CFG_DATA_BITS = 32
#: Cycles from a read's acceptance by a target (a core, the chip registers) to its
#: ``rvalid``/``rdata``: the data are selected in the second cycle and registered.
CFG_READ_LATENCY = 3
#: Cycles a ``ConfigDecoder`` adds: each target's answer is registered where it arrives, then
#: their OR is registered (the path across the chip to the bus gets a cycle of its own).
DECODER_LATENCY = 2


def config_signature(addr_bits: int) -> wiring.Signature:
    """The port as the host sees it; a component that serves it has it as ``In(...)``."""
    return wiring.Signature(
        {
            "valid": Out(1),
            "write": Out(1),
            "addr": Out(addr_bits),
            "wdata": Out(CFG_DATA_BITS),
            "ready": In(1),
            "rvalid": In(1),
            "rdata": In(CFG_DATA_BITS),
        }
    )


def address_layout(fields: dict[str, int]) -> data.StructLayout:
    """An address made of unsigned ``fields`` (name: bits), the first in the lowest bits."""
    return data.StructLayout({name: unsigned(bits) for name, bits in fields.items()})


def pack_address(layout: data.StructLayout, **values: int) -> int:
    """The address holding ``values`` in their fields (fields not named are 0), as an integer."""
    word = 0
    for name, value in values.items():
        word |= int(value) << layout[name].offset
    return word


def target_layout(sub_bits: int, targets: int) -> data.StructLayout:
    """A decoded bus' address: ``sub`` (the address within a target), then ``target``."""
    return address_layout({"sub": sub_bits, "target": index_bits(targets)})


def delayed(m: Module, value: Value, cycles: int, name: str) -> Value:
    """``value`` as it was ``cycles`` clock cycles ago (a chain of registers)."""
    for k in range(cycles):
        reg = Signal.like(Value.cast(value), name=f"{name}{k + 1}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class ConfigDecoder(wiring.Component):
    """One configuration bus ``cfg`` to targets ``t0 .. t{n-1}`` by its address' ``target`` field.

    Target ``k`` sees ``valid`` for its own addresses only, and the low ``widths[k]`` bits of
    ``sub`` as its address; ``write`` and ``wdata`` go to every target. ``ready`` is the
    addressed target's (low past the last target). Only the target that took a read raises
    ``rvalid``, ``CFG_READ_LATENCY`` cycles later: its ``rdata``, gated by its ``rvalid``, is
    registered, the OR of all targets' registered answers is registered again, and so an answer
    reaches the bus ``DECODER_LATENCY`` (2) cycles after it left its target.
    """

    def __init__(self, sub_bits: int, widths: list[int]):
        if any(not 1 <= w <= sub_bits for w in widths):
            raise ValueError(f"target address widths {widths} must be in 1..{sub_bits}")
        self.layout = target_layout(sub_bits, len(widths))
        ports = {"cfg": In(config_signature(self.layout.size))}
        ports |= {f"t{k}": Out(config_signature(w)) for k, w in enumerate(widths)}
        self.n_targets = len(widths)
        super().__init__(ports)

    def target(self, k: int) -> wiring.PureInterface:
        """Target ``k``'s port (drive ``ready``, ``rvalid``, ``rdata``; read the rest)."""
        return getattr(self, f"t{k}")

    def elaborate(self, platform):
        m = Module()
        bus = self.cfg
        addr = self.layout(bus.addr)
        rvalid, rdata = [], []
        for k in range(self.n_targets):
            port = self.target(k)
            m.d.comb += [
                port.valid.eq(bus.valid & (addr.target == k)),
                port.write.eq(bus.write),
                port.addr.eq(addr.sub[: len(port.addr)]),
                port.wdata.eq(bus.wdata),
            ]
            with m.If(addr.target == k):
                m.d.comb += bus.ready.eq(port.ready)
            answer_valid = Signal(name=f"answer_valid_{k}")
            answer = Signal(CFG_DATA_BITS, name=f"answer_{k}")
            m.d.sync += [
                answer_valid.eq(port.rvalid),
                answer.eq(port.rdata & port.rvalid.replicate(CFG_DATA_BITS)),
            ]
            rvalid.append(answer_valid)
            rdata.append(answer)
        m.d.sync += [
            bus.rvalid.eq(Cat(*rvalid).any()),
            bus.rdata.eq(_or_tree(rdata)),
        ]
        return m


def _or_tree(values: list[Value]) -> Value:
    """The OR of ``values``, as a balanced tree (log depth, whatever the number of targets)."""
    while len(values) > 1:
        values = [a | b for a, b in zip(values[::2], values[1::2], strict=False)] + (
            [values[-1]] if len(values) % 2 else []
        )
    return values[0]
