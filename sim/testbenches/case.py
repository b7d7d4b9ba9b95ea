"""What a cocotb testbench reads and writes: its case file in, its comparison report out."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from spikeforge.sim.flow import CASE_ENV, REPORT_ENV


def load_case() -> dict[str, Any]:
    """The case the pytest side wrote for this simulation run."""
    return json.loads(Path(os.environ[CASE_ENV]).read_text())


def write_report(**counts: Any) -> None:
    """Hand the comparison counts back to the pytest side."""
    Path(os.environ[REPORT_ENV]).write_text(json.dumps(counts))
