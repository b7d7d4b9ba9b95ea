"""Several independent components side by side in one top, so one Verilog build serves them all.

Each instance keeps its own ports under a numbered prefix (``c0__i__valid``, ``c1__cfg__addr``,
...) and they share the top's clock and reset; nothing connects one instance to another. The
cocotb testbenches drive each instance through its prefix, concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import Out


class SideBySide(wiring.Component):
    """``units`` in one top; unit ``k``'s ports are ``{prefix}{k}__<port>``."""

    def __init__(self, units: Sequence[wiring.Component], prefix: str = "c"):
        if not units:
            raise ValueError("SideBySide needs at least one unit")
        self.units = list(units)
        self.prefixes = [f"{prefix}{k}" for k in range(len(self.units))]
        ports = zip(self.prefixes, self.units, strict=True)
        super().__init__({name: Out(unit.signature) for name, unit in ports})

    def elaborate(self, platform) -> Module:
        m = Module()
        for k, (name, unit) in enumerate(zip(self.prefixes, self.units, strict=True)):
            m.submodules[f"unit{k}"] = unit
            wiring.connect(m, wiring.flipped(getattr(self, name)), unit)
        return m
