"""The one bundle exporter of every training method: integer layers in, a checked bundle out.

``assemble`` builds a ``spikeforge.sim.bundle.Bundle`` from integer layer descriptions
(``spikeforge.sim.bundle.Layer``: weights, threshold, leak, reset, fire, input shift, bit widths),
the input spec and ``meta``, and checks it by the loader's own rules; ``save_bundle`` writes it.
Nothing here writes a manifest or weights itself (docs/bundle.md is the format).

Torch networks (``SNN`` and the networks that return ``int_layers()`` like it) come in through
``to_bundle`` / ``export``: the very tensors the bit-true forward pass uses. The numpy methods
(Lee 2016, STDBP, STDP) build their layers with ``symmetric_integers``,
``integer_thresholds`` and ``dense`` and call ``assemble``. Float scales go to ``meta``
(informational only).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from spikeforge.sim.bundle import Bundle, InputSpec, Layer, save_bundle, validate
from spikeforge.sim.semantics import Leak

if TYPE_CHECKING:
    import torch
    from spikeforge.algo.snn.bittrue import IntLayer
    from spikeforge.algo.snn.models import SNN


class ExportError(ValueError):
    """The network uses something a bundle cannot express."""


def assemble(
    layers: Sequence[Layer],
    input_spec: InputSpec,
    timesteps: int,
    meta: Mapping[str, Any] | None = None,
) -> Bundle:
    """The bundle of ``layers`` fed by ``input_spec`` for ``timesteps`` steps, checked by the
    loader's rules (a ``BundleError`` names the offending field) before anyone writes it."""
    bundle = Bundle(
        timesteps=timesteps, input=input_spec, layers=list(layers), meta=dict(meta or {})
    )
    validate(bundle)
    return bundle


def spike_input(size: int) -> InputSpec:
    """A flat input of ``size`` 0/1 spike trains (what the numpy methods' encoders produce)."""
    return InputSpec(shape=(size,), encoding="spikes", bits=1)


def symmetric_integers(w: np.ndarray, w_bits: int) -> tuple[np.ndarray, float]:
    """Symmetric per-tensor rounding of float weights to ``w_bits``: ``(integers, unit)`` with
    ``unit = max|w| / (2^(w_bits-1) - 1)`` (1.0 for an all-zero tensor)."""
    qmax = 2 ** (w_bits - 1) - 1
    unit = float(np.abs(w).max()) / qmax if np.abs(w).max() > 0 else 1.0
    return np.clip(np.round(w / unit), -qmax, qmax).astype(np.int64), unit


def integer_thresholds(theta: np.ndarray, unit: float, v_bits: int) -> np.ndarray:
    """Per-neuron float thresholds in potential units, rounded and kept in ``1..2^(v_bits-1)-1``."""
    return np.clip(np.round(theta / unit), 1, 2 ** (v_bits - 1) - 1).astype(np.int64)


def dense(
    name: str,
    weight: np.ndarray,
    *,
    w_bits: int,
    v_bits: int,
    fire: str = "lif",
    threshold: int | np.ndarray | None = None,
    leak: Leak | None = None,
    reset: str = "none",
) -> Layer:
    """A linear layer over a flat input with integer ``weight`` ``[out, in]``: a LIF layer, or
    with ``fire="accum"`` an output layer (no threshold, leak or reset)."""
    return Layer(
        name=name,
        kind="linear",
        weight=weight,
        in_shape=(weight.shape[1],),
        w_bits=w_bits,
        v_bits=v_bits,
        threshold=threshold,
        leak=leak or Leak("none"),
        reset=reset,
        fire=fire,
    )


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
    import torch

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
    return assemble([_layer(layer) for layer in int_layers], spec, net.timesteps, full_meta)


def export(net: SNN, path: str | os.PathLike[str], meta: dict[str, Any] | None = None) -> Path:
    """Write ``net`` as a bundle directory at ``path`` (validated, atomic)."""
    return save_bundle(to_bundle(net, meta), path)
