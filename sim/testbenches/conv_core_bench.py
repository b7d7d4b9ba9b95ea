"""Drive one ``spikeforge.rtl.cores.conv_core.ConvCore`` through a case: ``core_bench.CoreDriver``
with the convolution core's cycle contract (``ConvCoreParams.spike_cycles``, ``tick_cycles``,
``clear_cycles``).
"""

from __future__ import annotations

from spikeforge.rtl.cores.conv_core import ConvCoreParams
from spikeforge.sim.testbenches.core_bench import CoreDriver


class ConvDriver(CoreDriver):
    """``CoreDriver`` whose contract check knows what each convolution-core event costs."""

    params: ConvCoreParams
    drains_after_burst = True

    def _limit(self, n: int) -> int:
        p = self.params
        return 200 + 4 * n * (p.groups + p.max_spike_cycles() + 8 + p.lanes)

    def _spike_cost(self, index: int) -> int:
        return self.params.spike_cycles(index)

    def _clear_cost(self) -> int:
        return self.params.clear_cycles()
