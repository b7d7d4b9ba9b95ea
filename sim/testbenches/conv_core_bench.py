"""Drive one ``spikeforge.rtl.cores.conv_core.ConvCore`` through a case: ``core_bench.CoreDriver``
with the
convolution core's cycle contract (``ConvCoreParams.spike_cycles``, ``tick_cycles``, ...).
"""

from __future__ import annotations

from collections import Counter

from spikeforge.rtl.cores.conv_core import ConvCoreParams
from spikeforge.rtl.cores.core import Op
from spikeforge.sim.testbenches.core_bench import CoreDriver


class ConvDriver(CoreDriver):
    """``CoreDriver`` whose contract check knows what each convolution-core event costs."""

    params: ConvCoreParams

    def _limit(self, n: int) -> int:
        p = self.params
        return 200 + 4 * n * (p.groups + p.max_spike_cycles() + 8 + p.lanes)

    def _costs(self, events: list[list[int]], expect: list[list[int]]) -> list[int]:
        """Each event's cost, one more for a SPIKE or LOAD that ends a burst (the engine drains)."""
        p, costs, out = self.params, [], list(expect)
        for op, index, _ in events:
            if op == Op.TICK.value:
                spikes = []
                while out[0][0] != Op.TICK.value:
                    spikes.append(out.pop(0)[1])
                out.pop(0)
                per_group = Counter(n // p.lanes for n in spikes)
                costs.append(p.tick_cycles(list(per_group.values())))
            elif op == Op.CLEAR.value:
                out.pop(0)
                costs.append(p.clear_cycles())
            else:
                costs.append(p.spike_cycles(index) if op == Op.SPIKE.value else 1)
        if events and events[-1][0] in (Op.SPIKE.value, Op.LOAD.value):
            costs[-1] += 1  # the next access is a configuration access: it waits for idle
        return costs
