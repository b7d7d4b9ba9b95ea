"""What ``spikeforge train`` reports after training: the exported bundle checked bit-exactly
against the golden model, the metrics of ``metrics.json``, and the plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.sim.bundle import Bundle


def evaluate_export(
    result: Any, data: Any, config: Any, dataset: str, trainer: Any
) -> tuple[Bundle, dict[str, Any], np.ndarray]:
    """Accuracies, the exported bundle, and the bit-true vs golden comparison as metrics."""
    import torch

    from spikeforge.algo.snn import bittrue
    from spikeforge.algo.training.export import to_bundle
    from spikeforge.algo.training.pipeline import evaluate, fixed_inputs
    from spikeforge.algo.training.report import firing_rates
    from spikeforge.sim import golden
    from spikeforge.sim.bundle import validate

    net = result.net
    accuracy: dict[str, float | None] = {}
    ann_phase = [h for h in result.history if h["phase"] == "ann" and "test_acc" in h]
    accuracy["ann"] = ann_phase[-1]["test_acc"] if ann_phase else None
    accuracy["float"] = evaluate(net, data.x_test, data.y_test, "float", trainer.eval_seed)
    accuracy["fake_quant"] = evaluate(net, data.x_test, data.y_test, "quant", trainer.eval_seed)

    x_test = fixed_inputs(net, data.x_test, trainer.eval_seed)
    with torch.no_grad():
        net.set_mode("bittrue").eval()
        ours = [
            bittrue.to_result(net.run_bittrue(x_test[i : i + 500]))
            for i in range(0, len(x_test), 500)
        ]
    bit_pred = np.concatenate([r.pred for r in ours])
    accuracy["bit_true"] = float(np.mean(bit_pred == data.y_test))

    meta = {
        "training": {
            "dataset": dataset,
            "method": config.method,
            "config": config.to_dict(),
            "test_accuracy": dict(accuracy),
        }
    }
    bundle = validate(to_bundle(net, meta))
    x_np = x_test.numpy().astype(
        np.uint8 if bundle.input.encoding == "spikes" or not data.signed else np.int16
    )
    gold = golden.run(bundle, x_np)
    accuracy["golden"] = golden.accuracy(gold, data.y_test)

    compared_spikes = 0
    mismatches = []
    for name in gold.spikes:
        mine = np.concatenate([r.spikes[name] for r in ours])
        compared_spikes += mine.size
        if not np.array_equal(mine, gold.spikes[name]):
            mismatches.append(f"spikes of {name}")
    v_ours = np.concatenate([r.v_out for r in ours])
    if not np.array_equal(v_ours, gold.v_out):
        mismatches.append("output potentials")

    n = len(data.y_test)
    metrics = {
        "dataset": dataset,
        "method": config.method,
        "arch": config.arch,
        "timesteps": config.timesteps,
        "w_bits": config.w_bits,
        "v_bits": config.v_bits,
        "encoding": config.encoding,
        "test_samples": n,
        "accuracy": accuracy,
        "bit_true_vs_golden": {
            "equal": not mismatches,
            "spike_values_compared": compared_spikes,
            "output_potentials_compared": int(gold.v_out.size),
            "mismatches": mismatches,
        },
        "firing_rates": firing_rates(gold.spikes),
        "spikes_per_sample": {k: float(v.sum()) / n for k, v in gold.spikes.items()},
        "operations": {k: vars(c) for k, c in gold.counters.items()},
        "operations_per_sample": {
            k: {key: value / n for key, value in vars(c).items()} for k, c in gold.counters.items()
        },
        "layers": [layer_summary(layer) for layer in bundle.layers],
        "train_seconds": result.seconds,
        "total_seconds": None,
        "config": config.to_dict(),
        "history": result.history,
    }
    return bundle, metrics, x_np


def layer_summary(layer: Any) -> dict[str, Any]:
    """One layer's entry in ``metrics.json``: kind, shape, threshold, leak, input shift."""
    leak: dict[str, Any] = {"mode": layer.leak.mode}
    if layer.leak.mode == "mult":
        leak |= {"lam": layer.leak.lam, "frac": layer.leak.frac}
    elif layer.leak.mode == "shift":
        leak["k"] = layer.leak.k
    return {
        "name": layer.name,
        "kind": layer.kind,
        "out_shape": list(layer.out_shape),
        "threshold": layer.threshold if not hasattr(layer.threshold, "shape") else "per-neuron",
        "leak": leak,
        "input_shift": layer.input_shift,
    }


def write_plots(
    bundle: Bundle, metrics: dict, x_np: np.ndarray, y: np.ndarray, plots: Path
) -> None:
    from spikeforge.algo.training.report import (
        plot_firing_rates,
        plot_raster,
        plot_training_curves,
    )
    from spikeforge.sim import golden

    plot_training_curves(metrics["history"], plots / "training_curves.png")
    one = golden.run(bundle, x_np[:1], record_potentials=True)
    potentials = one.potentials[bundle.layers[-1].name] if one.potentials else None
    plot_raster(one.spikes, potentials, plots / "raster.png", label=int(y[0]))
    plot_firing_rates(metrics["firing_rates"], plots / "firing_rates.png")
