"""What the numpy-method study tests (Lee 2016, STDBP, STDP) check on a finished run."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from spikeforge.sim.bundle import Bundle, load_bundle
from spikeforge.sim.datasets import load_dataset
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


def study_run_on_digits(
    main: Callable[[list[str]], int], argv: Sequence[str], out: Path, n_train: int, n_test: int
) -> tuple[dict[str, Any], Bundle, np.ndarray]:
    """Run a study command's ``main`` on ``n_train``/``n_test`` digits into ``out``; assert it
    exits 0 and records the golden accuracy on the ``test_input.npy`` it saved (returned too)."""
    limits = ["--train-limit", str(n_train), "--test-limit", str(n_test)]
    assert main([*argv, *limits, "--out", str(out)]) == 0
    x = np.load(out / "test_input.npy")
    labels = load_dataset("digits").limited(n_train, n_test).y_test
    metrics, bundle = golden_accuracy_is_recorded(out, x, labels)
    return metrics, bundle, x
