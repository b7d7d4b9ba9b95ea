"""The lint check the Verilog tests share: ``verilator --lint-only -Wall`` passes silently."""

from __future__ import annotations

from pathlib import Path

from spikeforge.rtl.gateware.emit import lint


def assert_lint_clean(text: str, top: str, directory: Path) -> None:
    """Write ``text`` as ``<top>.v`` in ``directory`` and lint it: exit 0, no warning at all."""
    path = Path(directory) / f"{top}.v"
    path.write_text(text)
    result = lint(path, top)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "%Warning" not in result.stderr
