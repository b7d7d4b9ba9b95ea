"""Run reports: the metrics JSON and the plots (matplotlib, Agg backend).

Plots: ``training_curves.png`` (loss and accuracy per epoch, phases marked), ``raster.png``
(the spikes of every layer for one test sample, plus the output potentials over time) and
``firing_rates.png`` (spikes per neuron per step, per layer).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def firing_rates(spikes: dict[str, np.ndarray], hidden_only: bool = True) -> dict[str, float]:
    """Mean spikes per neuron per step for each layer (``[N, T, *out]`` arrays)."""
    rates = {name: float(s.mean()) if s.size else 0.0 for name, s in spikes.items()}
    if hidden_only and rates:
        rates.pop(list(rates)[-1])  # the accumulator never spikes
    return rates


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write ``data`` as indented JSON through a temporary sibling file (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(_plain(data), handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path


def _plain(value: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN to None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_training_curves(history: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Loss and train/test accuracy per epoch over all phases; phase boundaries marked."""
    plt = pyplot()
    rows = [h for h in history if h.get("epoch", 0) > 0]
    fig, (ax_loss, ax_acc) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    xs = np.arange(1, len(rows) + 1)
    ax_loss.plot(xs, [h.get("loss", np.nan) for h in rows], color="tab:red")
    ax_loss.set_ylabel("training loss")
    ax_loss.set_yscale("log")
    ax_acc.plot(xs, [h.get("train_acc", np.nan) for h in rows], label="train")
    ax_acc.plot(xs, [h.get("test_acc", np.nan) for h in rows], "o-", ms=3, label="test")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_xlabel("epoch (all phases)")
    ax_acc.legend(loc="lower right")
    start = 0
    for index, row in enumerate(rows):
        if index == 0 or row["phase"] != rows[index - 1]["phase"]:
            start = index + 1
            for ax in (ax_loss, ax_acc):
                ax.axvline(start - 0.5, color="grey", lw=0.8, ls="--")
            ax_acc.text(start, 0.02, row["phase"], transform=ax_acc.get_xaxis_transform())
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_raster(
    spikes: dict[str, np.ndarray],
    v_out: np.ndarray | None,
    path: str | os.PathLike[str],
    sample: int = 0,
    label: int | None = None,
) -> Path:
    """Spike raster of every spiking layer for one sample; the output potentials over time."""
    plt = pyplot()
    names = list(spikes)[:-1]  # the last layer is the accumulator: it never spikes
    panels = len(names) + (v_out is not None)
    fig, axes = plt.subplots(panels, 1, figsize=(8, 2.2 * panels), squeeze=False)
    for ax, name in zip(axes[:, 0], names, strict=False):
        train = spikes[name][sample].reshape(spikes[name].shape[1], -1)  # [T, neurons]
        steps, neurons = np.nonzero(train)
        ax.scatter(steps, neurons, s=4, marker="|", color="black")
        ax.set_ylabel(f"{name}\nneuron")
        ax.set_xlim(-0.5, train.shape[0] - 0.5)
        ax.set_ylim(-1, train.shape[1])
        ax.set_title(f"{name}: {int(train.sum())} spikes", fontsize=9)
    if v_out is not None:
        ax = axes[-1, 0]
        trace = v_out[sample].reshape(v_out.shape[1], -1)  # [T, classes]
        for cls in range(trace.shape[1]):
            ax.plot(np.arange(trace.shape[0]), trace[:, cls], label=str(cls), lw=1.2)
        ax.set_ylabel("output v")
        ax.set_title(
            f"output potentials (label {label})" if label is not None else "output", fontsize=9
        )
        ax.legend(ncol=5, fontsize=7, loc="upper left")
    from matplotlib.ticker import MaxNLocator

    for ax in axes[:, 0]:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[-1, 0].set_xlabel("time step")
    fig.tight_layout()
    return save_figure(fig, path)


def plot_firing_rates(rates: dict[str, float], path: str | os.PathLike[str]) -> Path:
    """Bar chart of spikes per neuron per step, one bar per spiking layer."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = list(rates)
    ax.bar(names, [rates[n] for n in names], color="tab:blue")
    for index, name in enumerate(names):
        ax.text(index, rates[name], f"{rates[name]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("spikes / neuron / step")
    ax.set_title("firing rate per layer (test split)")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``fig`` to ``path`` (folders made as needed, 110 dpi) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
