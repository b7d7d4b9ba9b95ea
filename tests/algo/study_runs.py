"""What the numpy-method study tests (Lee 2016, STDBP, STDP) check on a finished run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from spikeforge.sim.bundle import Bundle, load_bundle
from spikeforge.sim.golden import accuracy, run


def golden_accuracy_is_recorded(
    out: Path, x: np.ndarray, labels: np.ndarray
) -> tuple[dict[str, Any], Bundle]:
    """Load ``out``'s ``metrics.json`` and ``bundle/``; assert the recorded golden test accuracy
    is the saved bundle's on ``x`` (exactly), and return both."""
    metrics = json.loads((out / "metrics.json").read_text())
    bundle = load_bundle(out / "bundle")
    assert len(x) == len(labels) > 0
    assert metrics["export"]["golden_test_acc"] == accuracy(run(bundle, x), labels)
    return metrics, bundle
