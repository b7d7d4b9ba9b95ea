"""Event-level reference of ``spikeforge.rtl.cores.conv_core.ConvCore``: ``CoreModel`` on the
unrolled kernel.

The unrolled matrix is a reference only (the hardware never holds it); the event protocol,
counters and arithmetic are ``spikeforge.rtl.cores.core_model.CoreModel``'s, hence
``spikeforge.sim.semantics``'.
"""

from __future__ import annotations

from spikeforge.rtl.cores.conv_core import ConvCoreConfig, ConvCoreParams
from spikeforge.rtl.cores.core_model import CoreModel


class ConvCoreModel(CoreModel):
    """Feed it the in-stream events; it returns the out-stream events and tracks ``v``."""

    def __init__(self, params: ConvCoreParams, config: ConvCoreConfig):
        super().__init__(params, config)
        self.weights = config.dense(params)
