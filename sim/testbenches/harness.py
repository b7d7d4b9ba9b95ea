"""What every cocotb testbench here shares, written once: the clock and reset start-up, signed
views of port values, one instance's ports by name under its prefix, and the JSON form of the
parameter dataclasses that the pytest side sends in a case file.

The value and JSON helpers need no running simulator, so the pytest side and the
Amaranth-simulator drivers use them too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, TypeVar

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

#: Clock period of every testbench, in ns.
PERIOD_NS = 10

P = TypeVar("P")


# -- values ------------------------------------------------------------------------------------


def to_signed(value: int, bits: int) -> int:
    """``value``'s low ``bits`` bits read as two's complement."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) & 1 else value


def to_unsigned(value: int, bits: int) -> int:
    """``value`` as the ``bits``-bit word that carries it (two's complement for negatives)."""
    return value & ((1 << bits) - 1)


# -- parameters as JSON ------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    return [_to_json(v) for v in value] if isinstance(value, tuple | list) else value


def _from_json(value: Any) -> Any:
    return tuple(_from_json(v) for v in value) if isinstance(value, list) else value


def params_to_json(params: Any) -> dict[str, Any]:
    """A parameter dataclass's constructor arguments, tuples as lists (derived fields left out)."""
    return {f.name: _to_json(getattr(params, f.name)) for f in dataclasses.fields(params) if f.init}


def params_from_json(cls: type[P], data: dict[str, Any]) -> P:
    """The ``cls`` instance ``params_to_json`` described (lists back to tuples)."""
    return cls(**{k: _from_json(v) for k, v in data.items()})


# -- cocotb ------------------------------------------------------------------------------------


class Ports:
    """One instance's ports of a (possibly side-by-side) top, by name.

    Amaranth flattens ``cfg.addr`` to ``cfg__addr`` and a side-by-side top prefixes each
    instance's ports (``c1__cfg__addr``); ``ports["cfg.addr"]``, ``ports["cfg__addr"]`` and
    ``ports.cfg__addr`` all give that handle. ``prefix=""`` is a top holding one instance.
    """

    def __init__(self, dut: Any, prefix: str = ""):
        self.dut, self.prefix = dut, prefix
        self.clk = dut.clk
        self._handles: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        handle = self._handles.get(name)
        if handle is None:
            flat = name.replace(".", "__")
            handle = getattr(self.dut, f"{self.prefix}__{flat}" if self.prefix else flat)
            self._handles[name] = handle
        return handle

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    def clear(self, names: Iterable[str]) -> None:
        """Drive each named input to 0."""
        for name in names:
            self[name].value = 0


async def start(dut: Any, *, reset_cycles: int = 3) -> None:
    """Start the clock and hold ``rst`` for ``reset_cycles`` falling edges.

    Drive the inputs' idle values before awaiting this: they hold through reset.
    """
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    dut.rst.value = 1
    for _ in range(reset_cycles):
        await FallingEdge(dut.clk)
    dut.rst.value = 0


async def run_concurrently(coroutines: Iterable[Any]) -> list[Any]:
    """Start every coroutine (one per instance), then wait for all; their results in order."""
    tasks = [cocotb.start_soon(c) for c in coroutines]
    return [await task for task in tasks]
