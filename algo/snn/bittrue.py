"""The bit-true forward pass: docs/semantics.md computed exactly in PyTorch, with STE gradients.

Integers are held in float64 tensors (exact below 2^53; every product and sum the bundle limits
allow stays far below that). Rounding is explicit floor (``>>`` semantics) and saturation is a
clamp; both pass gradients straight through, so a network can be fine-tuned in this mode and its
exported bundle then computes exactly what was trained. The same ``IntLayer`` list is built from
a trainable network (``spikeforge.algo.snn.models``), exported to a bundle
(``spikeforge.algo.training.export``) and rebuilt from a bundle here (``int_layers_from_bundle``),
so all three share this one code path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from spikeforge.algo.snn.neurons import lif_sequence
from spikeforge.algo.snn.quant import clamp_ste, floor_ste
from spikeforge.algo.snn.surrogate import Surrogate, get_surrogate, scale_grad
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.semantics import signed_range
from torch import Tensor

DTYPE = torch.float64
#: float32 represents every integer up to this bound exactly.
EXACT_FLOAT32 = float(2**24)


@dataclass
class IntLayer:
    """One layer in the integer domain; tensors are integer-valued and may carry gradients.

    ``theta`` and ``bias`` are scalars or shaped like one sample's output; ``unit`` is the float
    value of one potential unit (used to turn the output potentials into logits).
    """

    name: str
    kind: str
    weight: Tensor
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    w_bits: int
    v_bits: int
    theta: Tensor
    leak_mode: str = "none"
    lam: Tensor | int = 256
    frac: int = 8
    k: int = 1
    reset: str = "sub"
    fire: str = "lif"
    input_shift: int = 0
    bias: Tensor | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    surrogate: Surrogate = field(default_factory=lambda: get_surrogate("triangle"))
    unit: float | Tensor = 1.0

    def leak_fn(self) -> Callable[[Tensor], Tensor]:
        """The floor leak of docs/semantics.md as a differentiable function of ``v``."""
        if self.leak_mode == "mult":
            lam, div = self.lam, float(1 << self.frac)
            return lambda v: floor_ste(v * lam / div)
        if self.leak_mode == "shift":
            div = float(1 << self.k)
            return lambda v: v - floor_ste(v / div)
        return lambda v: v

    def leak_factor(self) -> float | Tensor:
        """The leak as a real factor (for the Lee et al. gradient correction)."""
        if self.leak_mode == "mult":
            return torch.as_tensor(self.lam, dtype=DTYPE).detach() / (1 << self.frac)
        if self.leak_mode == "shift":
            return 1.0 - 2.0**-self.k
        return 1.0


def synapse(layer: IntLayer, x: Tensor) -> Tensor:
    """Exact weighted sums ``s`` for a batch of inputs ``[B, *in_shape]`` -> ``[B, *out_shape]``.

    Computed in float32 when no partial sum can reach 2^24 (then every product and every
    partial sum is an integer float32 holds exactly, in any summation order), else float64.
    """
    w = layer.weight
    bound = 0.0
    if x.numel() and w.numel():
        per_output = w.detach().abs().reshape(w.shape[0], -1).sum(1).max()
        bound = float(per_output) * float(x.detach().abs().max())
    dtype = torch.float32 if bound < EXACT_FLOAT32 else DTYPE
    w, x = w.to(dtype), x.to(dtype)
    if layer.kind == "linear":
        s = x.reshape(x.shape[0], -1) @ w.t()
    else:
        s = F.conv2d(x, w, stride=layer.stride, padding=layer.padding)
    return s.to(DTYPE)


def layer_forward(layer: IntLayer, s: Tensor) -> tuple[Tensor, Tensor]:
    """Neuron dynamics for the exact sums ``s [T, N, *out]``: returns ``(spikes, v_final)``.

    Spikes are all zeros for an ``accum`` layer.
    """
    a = floor_ste(s / float(1 << layer.input_shift)) if layer.input_shift else s
    if layer.bias is not None:
        a = a + layer.bias.to(DTYPE)
    lo, hi = signed_range(layer.v_bits)
    theta = layer.theta.to(DTYPE)
    spikes, v = lif_sequence(
        a,
        theta,
        layer.leak_fn(),
        layer.reset,
        layer.surrogate,
        fire=layer.fire,
        clamp=lambda u: clamp_ste(u, lo, hi),
    )
    if spikes is None:
        return torch.zeros_like(a), v
    factor = layer.surrogate.output_correction(spikes, layer.leak_factor())
    if factor is not None:
        spikes = scale_grad(spikes, factor)
    return spikes, v


@dataclass
class BitTrueOutput:
    """Output potentials ``[N, out]`` (integers) and per-layer spikes ``[T, N, *out]``."""

    v_out: Tensor
    spikes: dict[str, Tensor]
    unit: float | Tensor

    @property
    def logits(self) -> Tensor:
        """The output potentials in the float domain (for the loss)."""
        return self.v_out * self.unit


def forward(
    layers: list[IntLayer],
    x: Tensor,
    timesteps: int,
    encoding: str,
    between: Callable[[int, Tensor], Tensor] | None = None,
    observe: Callable[[int, Tensor], None] | None = None,
) -> BitTrueOutput:
    """Run the integer network on a batch: ``x`` is codes ``[N, *shape]`` (``direct``) or
    0/1 trains ``[N, T, *shape]`` (``spikes``). ``between(i, spikes)`` may edit (drop) the
    spikes layer ``i`` passes on, e.g. training dropout; ``observe(i, s)`` sees each layer's
    exact sums ``[T, N, *out]`` (calibration)."""
    n = x.shape[0]
    recorded: dict[str, Tensor] = {}
    if encoding == "direct":
        s = synapse(layers[0], x)
        seq = s.unsqueeze(0).expand(timesteps, *s.shape)
    else:
        trains = x.to(DTYPE).transpose(0, 1)
        seq = synapse(layers[0], trains.reshape(timesteps * n, *trains.shape[2:]))
        seq = seq.reshape(timesteps, n, *seq.shape[1:])
    v = seq[0]  # replaced by the first layer
    for index, layer in enumerate(layers):
        if index > 0:
            s = synapse(layer, seq.reshape(timesteps * n, *seq.shape[2:]))
            seq = s.reshape(timesteps, n, *s.shape[1:])
        if observe is not None:
            observe(index, seq)
        spikes, v = layer_forward(layer, seq)
        recorded[layer.name] = spikes
        if between is not None and layer.fire == "lif":
            spikes = between(index, spikes)
        seq = spikes
    return BitTrueOutput(v_out=v.reshape(n, -1), spikes=recorded, unit=layers[-1].unit)


def int_layers_from_bundle(
    bundle: Bundle, surrogate: str | Surrogate = "triangle"
) -> list[IntLayer]:
    """The bundle's layers as ``IntLayer`` s (constant tensors, no gradients)."""
    layers = []
    for layer in bundle.layers:
        out_shape = tuple(layer.out_shape)
        theta = torch.as_tensor(layer.theta_vector(), dtype=DTYPE).reshape(out_shape)
        bias = None
        if layer.bias is not None:
            bias = torch.as_tensor(layer.bias_vector(), dtype=DTYPE).reshape(out_shape)
        layers.append(
            IntLayer(
                name=layer.name,
                kind=layer.kind,
                weight=torch.as_tensor(np.asarray(layer.weight), dtype=DTYPE),
                in_shape=tuple(layer.in_shape),
                out_shape=out_shape,
                w_bits=layer.w_bits,
                v_bits=layer.v_bits,
                theta=theta,
                leak_mode=layer.leak.mode,
                lam=layer.leak.lam,
                frac=layer.leak.frac,
                k=layer.leak.k,
                reset=layer.reset,
                fire=layer.fire,
                input_shift=layer.input_shift,
                bias=bias,
                stride=tuple(layer.stride),
                padding=tuple(layer.padding),
                surrogate=get_surrogate(surrogate),
            )
        )
    return layers


@dataclass
class BitTrueResult:
    """Numpy results in the layout of the golden model and ``spikeforge run``."""

    spikes: dict[str, np.ndarray]
    v_out: np.ndarray
    pred: np.ndarray


def to_result(output: BitTrueOutput) -> BitTrueResult:
    """Convert a ``BitTrueOutput`` to numpy: spikes ``uint8 [N, T, *out]``, ``v_out`` int64."""
    spikes = {
        name: s.detach().transpose(0, 1).to(torch.uint8).cpu().numpy()
        for name, s in output.spikes.items()
    }
    v_out = output.v_out.detach().cpu().numpy().astype(np.int64)
    return BitTrueResult(spikes=spikes, v_out=v_out, pred=np.argmax(v_out, axis=1))


def run_bundle(bundle: Bundle, x: np.ndarray, batch_size: int = 256) -> BitTrueResult:
    """Run ``bundle`` on the integer inputs ``x`` with the PyTorch bit-true forward pass."""
    layers = int_layers_from_bundle(bundle)
    parts = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            batch = torch.as_tensor(np.asarray(x[start : start + batch_size]), dtype=DTYPE)
            parts.append(to_result(forward(layers, batch, bundle.timesteps, bundle.input.encoding)))
    return BitTrueResult(
        spikes={k: np.concatenate([p.spikes[k] for p in parts]) for k in parts[0].spikes},
        v_out=np.concatenate([p.v_out for p in parts]),
        pred=np.concatenate([p.pred for p in parts]),
    )
