"""A short, quiet ``train`` run of one paper method, as the method tests make on a digits slice."""

from __future__ import annotations

from typing import Any

from spikeforge.algo.training.pipeline import TrainConfig, Trainer, TrainResult, train
from spikeforge.sim.datasets import Dataset


def short_method_run(method: str, data: Dataset, **fields: Any) -> TrainResult:
    """``train`` ``method`` on ``data`` with Poisson inputs, one SNN epoch, no bit-true epochs
    and 32 balancing samples; ``fields`` set the rest of the ``TrainConfig``. Logs nothing."""
    config = TrainConfig(
        method=method,
        encoding="poisson",
        snn_epochs=1,
        bittrue_epochs=0,
        balance_samples=32,
        **fields,
    )
    return train(config, data, Trainer(progress=False, log=lambda _m: None))
