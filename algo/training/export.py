"""Export a trained network to a bundle (``spikeforge.sim.bundle``): the integers the bit-true mode
computes.

The exporter takes ``SNN.int_layers()`` -- the very tensors the bit-true forward pass uses -- and
writes them with ``spikeforge.sim.bundle.save_bundle``; it never writes manifest or weights itself.
Float
scales go to ``meta`` (informational only).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spikeforge.algo.snn.bittrue import IntLayer
from spikeforge.algo.snn.models import SNN
from spikeforge.sim.bundle import Bundle, InputSpec, Layer, save_bundle
from spikeforge.sim.semantics import Leak


class ExportError(ValueError):
    """The network uses something a bundle cannot express."""


def _as_int(value: torch.Tensor | int | float) -> int:
    return round(float(value))


def _layer(int_layer: IntLayer) -> Layer:
    weight = int_layer.weight.detach().cpu().numpy()
    if not np.array_equal(weight, np.round(weight)):
        raise ExportError(f"{int_layer.name}: weights are not integers")
    if int_layer.leak_mode == "mult":
        leak = Leak("mult", lam=_as_int(int_layer.lam), frac=int_layer.frac)
    elif int_layer.leak_mode == "shift":
        if not 1 <= int_layer.k < int_layer.v_bits:
            raise ExportError(
                f"{int_layer.name}: shift leak k={int_layer.k} is outside 1..v_bits-1"
            )
        leak = Leak("shift", k=int_layer.k)
    else:
        leak = Leak("none")
    threshold: int | np.ndarray | None = None
    if int_layer.fire == "lif":
        theta = int_layer.theta.detach().cpu()
        threshold = _as_int(theta) if theta.dim() == 0 else theta.reshape(-1).round().long().numpy()
    bias = None
    if int_layer.bias is not None:
        bias = int_layer.bias.detach().cpu().reshape(-1).round().long().numpy()
    return Layer(
        name=int_layer.name,
        kind=int_layer.kind,
        weight=weight.astype(np.int64),
        in_shape=(
            (math.prod(int_layer.in_shape),)
            if int_layer.kind == "linear"
            else tuple(int_layer.in_shape)
        ),
        w_bits=int_layer.w_bits,
        v_bits=int_layer.v_bits,
        threshold=threshold,
        leak=leak,
        reset=int_layer.reset if int_layer.fire == "lif" else "none",
        fire=int_layer.fire,
        input_shift=int_layer.input_shift,
        bias=bias,
        stride=tuple(int_layer.stride),
        padding=tuple(int_layer.padding),
    )


def to_bundle(net: SNN, meta: dict[str, Any] | None = None) -> Bundle:
    """The bundle holding exactly what ``net`` computes in ``bittrue`` mode."""
    with torch.no_grad():
        int_layers = net.int_layers()
    direct = net.encoding == "direct"
    spec = InputSpec(
        shape=tuple(net.input_shape),
        encoding=net.encoding,
        bits=net.input_bits if direct else 1,
        signed=net.input_signed if direct else False,
        scale=net.input_scale if direct else None,
    )
    scales = {layer.name: float(layer.unit) for layer in int_layers}
    full_meta: dict[str, Any] = {"scales": scales, "training": {}}
    full_meta.update(meta or {})
    return Bundle(
        timesteps=net.timesteps,
        input=spec,
        layers=[_layer(layer) for layer in int_layers],
        meta=full_meta,
    )


def export(net: SNN, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Path:
    """Write ``net`` as a bundle directory at ``path`` (validated, atomic)."""
    return save_bundle(to_bundle(net, meta), path)
