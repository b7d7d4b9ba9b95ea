"""One comparison of a run's spikes and output potentials with a reference run's."""

from __future__ import annotations

from typing import Any

import numpy as np
from spikeforge.sim.golden import GoldenResult


def compare_spikes(ours: Any, reference: GoldenResult) -> int:
    """Assert ``ours`` (any result with ``spikes`` by layer and ``v_out``) has the reference's
    spikes in every layer and its output potentials; return how many spike values compared."""
    compared = 0
    for name, spikes in reference.spikes.items():
        assert np.array_equal(ours.spikes[name], spikes), name
        compared += spikes.size
    assert np.array_equal(ours.v_out, reference.v_out)
    return compared
