"""spikeforge: from a trained spiking neural network to verified hardware.

The public API is re-exported here and imported lazily, so ``import spikeforge`` stays light
(no torch, no Amaranth) until a function that needs them is called.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

#: public name -> module that defines it
_API = {
    "Bundle": "spikeforge.sim.bundle",
    "BundleError": "spikeforge.sim.bundle",
    "load_bundle": "spikeforge.sim.bundle",
    "save_bundle": "spikeforge.sim.bundle",
    "GoldenResult": "spikeforge.sim.golden",
    "run": "spikeforge.api",
    "train": "spikeforge.api",
    "verilog": "spikeforge.api",
    "rtl_sim": "spikeforge.api",
    "pim_sweep": "spikeforge.api",
}

__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'spikeforge' has no attribute {name!r}")
    value = getattr(import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
