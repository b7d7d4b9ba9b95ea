"""The training-method registry: method names to functions, filled by ``spikeforge.algo.methods``.

It sits below the methods (hls4ml's backend registry is the model): a method module never
registers itself, ``spikeforge.algo.methods`` registers every built-in method when imported, and
user code may add its own with ``register_method``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from spikeforge.algo.snn.models import SNN
    from spikeforge.algo.training.pipeline import TrainConfig, Trainer
    from spikeforge.sim.datasets import Dataset

#: A method trains ``net`` in place and returns ``None``, or returns the network to deploy instead
#: (an ``SNN`` whose ``bittrue`` mode is what gets exported), e.g. a BNTT net folded for export.
Method = Callable[["SNN", "Dataset", "TrainConfig", "Trainer"], "SNN | None"]

#: Registered methods by name, in registration order.
METHODS: dict[str, Method] = {}


def register_method(name: str, fn: Method) -> Method:
    """Add ``fn`` to ``METHODS`` under ``name`` (a name may be registered once)."""
    if name in METHODS and METHODS[name] is not fn:
        raise ValueError(f"training method {name!r} is already registered")
    METHODS[name] = fn
    return fn


def get_method(name: str) -> Method:
    """The method registered as ``name``; a clear error naming the known ones otherwise."""
    if name not in METHODS:
        known = ", ".join(sorted(METHODS)) or "none (import spikeforge.algo.methods first)"
        raise ValueError(f"unknown training method {name!r}; known: {known}")
    return METHODS[name]
