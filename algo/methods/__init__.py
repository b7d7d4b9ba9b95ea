"""The training methods of the source papers, registered by name at the package's face.

Importing this package fills ``spikeforge.algo.training.registry.METHODS``; ``spikeforge train
--method NAME`` and ``spikeforge.train(method=NAME)`` look names up there. Each method is one module
and never registers itself, so the registry stays below the methods.
"""

from __future__ import annotations

from spikeforge.algo.methods import bntt, bpsr, conversion, hybrid, lee2020, scatter_gather
from spikeforge.algo.training.registry import METHODS, register_method

register_method("hybrid", hybrid.hybrid)
register_method("direct", hybrid.direct)
for _variant in conversion.VARIANTS:
    register_method(f"convert-{_variant}", conversion.variant_method(_variant))
register_method("scatter-gather", scatter_gather.scatter_gather)
register_method("bntt", bntt.bntt_method)
register_method("bpsr", bpsr.bpsr)
register_method("lee2020", lee2020.lee2020_method)

__all__ = ["METHODS", "register_method"]
