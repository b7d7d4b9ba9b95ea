"""The comparison every chip test makes: each chip run against ``spikeforge.sim.golden``."""

from __future__ import annotations

import numpy as np
from spikeforge.sim import golden

from spikeforge.rtl_flow import counter_mismatches, first_mismatch


def check_chips(runs: list, results: list) -> tuple[int, int, set[str]]:
    """Every ``(bundle, x, plan)`` run equals golden (spikes, ``v_out``, prediction, counters) and
    its monitor saw one TICK per step and one CLEAR per sample of every layer, in order.

    Returns the values compared, the golden spike count and the feeds seen.
    """
    compared = spikes = 0
    feeds = set()
    for (bundle, x, plan), rtl in zip(runs, results, strict=True):
        want = golden.run(bundle, x, first_layer_sums=plan.first_layer_sums(x))
        assert first_mismatch(bundle, rtl.arrays, want.result_arrays()) is None
        assert counter_mismatches(rtl, want) == []
        for key, value in want.result_arrays().items():
            assert np.array_equal(rtl.arrays[key], value), key
            compared += value.size
        spikes += sum(int(s.sum()) for s in want.spikes.values())
        n, t = x.shape[0], bundle.timesteps
        assert rtl.report["ticks"] == n * t * len(bundle.layers)
        assert rtl.report["clears"] == n * len(bundle.layers)
        assert rtl.report.get("order_violations", 0) == 0
        assert rtl.cycles.min() > 0
        feeds.add(plan.feed)
    return compared, spikes, feeds
