"""The benches' ``--json`` option: the measured figures also written to a JSON file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json PATH``."""
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")


def write_json(path: Path | None, figures: Any) -> None:
    """Write ``figures`` (JSON-serialisable) to ``path`` when ``--json`` gave one."""
    if path:
        path.write_text(json.dumps(figures, indent=2))
