"""ACE-SNN's hybrid pipeline (ANN -> threshold-balanced conversion -> quantised SNN -> bit-true)
and direct surrogate-gradient training, the two methods built from the generic training phases."""

from __future__ import annotations

from spikeforge.algo.snn.models import SNN
from spikeforge.algo.training.pipeline import (
    TrainConfig,
    Trainer,
    balance_thresholds,
    evaluate,
    fit_ann,
    fit_stage,
    start_bittrue,
)
from spikeforge.sim.datasets import Dataset


def _quant_mode(config: TrainConfig) -> str:
    return "float" if config.quant == "none" else "quant"


def hybrid(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> None:
    """ANN -> threshold-balanced conversion -> quantised SNN -> bit-true (ACE-SNN Q-STDB)."""
    fit_ann(net, data, config, trainer)
    thresholds = balance_thresholds(
        net,
        data.x_train[: config.balance_samples],
        timesteps=config.balance_timesteps,
        percentile=config.balance_percentile,
        scale=config.balance_scale,
        seed=config.seed,
    )
    trainer.log("balanced thresholds: " + ", ".join(f"{t:.3g}" for t in thresholds))
    trainer.history.append(
        {
            "phase": "convert",
            "mode": _quant_mode(config),
            "epoch": 0,
            "test_acc": evaluate(net, data.x_test, data.y_test, _quant_mode(config)),
        }
    )
    _snn_then_bittrue(net, data, config, trainer)


def direct(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> None:
    """Surrogate-gradient training from scratch, quantisation-aware, then bit-true."""
    _snn_then_bittrue(net, data, config, trainer)


def _snn_then_bittrue(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> None:
    fit_stage(net, data, config, trainer, stage="snn", phase="snn", mode=_quant_mode(config))
    start_bittrue(net, data, config, trainer)
