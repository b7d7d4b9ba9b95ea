"""Spiking networks: layers (synapse + neuron), the network with its four modes, builders.

A network runs in one of four modes (``SNN.set_mode``):

* ``ann``: the same weights as a ReLU network (ANN pre-training of the hybrid pipeline);
* ``float``: the SNN with float weights and potentials;
* ``quant``: the SNN with fake-quantised weights (``affine`` or ``symmetric``, STE);
* ``bittrue``: the integer semantics (docs/semantics.md) exactly (``spikeforge.algo.snn.bittrue``):
  integer weights, thresholds, leak, input shift and saturation, all with straight-through
  gradients.

``SNN.forward(codes)`` encodes integer input codes and returns logits; ``SNN.run(x)`` takes what
the bundle's first layer receives (codes for ``direct``, 0/1 trains ``[N, T, *shape]`` else).
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import torch
import torch.nn.functional as F
from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.encoding import Encoder, get_encoder
from spikeforge.algo.snn.neurons import LIF, Accumulator, SpikeDropout
from spikeforge.algo.snn.quant import (
    QUANT_MODES,
    ceil_ste,
    clamp_ste,
    fake_quant,
    quantize_symmetric,
    round_ste,
)
from spikeforge.algo.snn.surrogate import Surrogate, get_surrogate
from spikeforge.sim.semantics import signed_range
from torch import Tensor, nn

MODES: tuple[str, ...] = ("ann", "float", "quant", "bittrue")
LEAK_FRAC = 8


class SynapseGeometry:
    """Shape and current of a layer's synapse (``self.synapse``: ``nn.Linear`` or ``nn.Conv2d``
    without bias; ``self.in_shape``), shared by every layer type that exports to a bundle."""

    synapse: nn.Linear | nn.Conv2d
    in_shape: tuple[int, ...]

    @property
    def kind(self) -> str:
        return "linear" if isinstance(self.synapse, nn.Linear) else "conv2d"

    @property
    def out_shape(self) -> tuple[int, ...]:
        if self.kind == "linear":
            return (self.synapse.out_features,)
        _, h, w = self.in_shape
        (kh, kw), (sh, sw), (ph, pw) = (
            self.synapse.kernel_size,
            self.synapse.stride,
            self.synapse.padding,
        )
        return (self.synapse.out_channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)

    def current(self, x: Tensor, weight: Tensor) -> Tensor:
        """The synaptic current for a batch ``[B, *in_shape]`` with the given weights."""
        if self.kind == "linear":
            return F.linear(x.reshape(x.shape[0], -1), weight)
        return F.conv2d(x, weight, stride=self.synapse.stride, padding=self.synapse.padding)


def copy_synapse(synapse: nn.Linear | nn.Conv2d) -> nn.Linear | nn.Conv2d:
    """A bias-free synapse of the same geometry holding a copy of ``synapse``'s weights (for
    building an exportable network from a trained one without sharing parameters)."""
    copy: nn.Linear | nn.Conv2d
    if isinstance(synapse, nn.Linear):
        copy = nn.Linear(synapse.in_features, synapse.out_features, bias=False)
    else:
        copy = nn.Conv2d(
            synapse.in_channels,
            synapse.out_channels,
            synapse.kernel_size,
            synapse.stride,
            synapse.padding,
            bias=False,
        )
    with torch.no_grad():
        copy.weight.copy_(synapse.weight)
    return copy


class SpikingLayer(SynapseGeometry, nn.Module):
    """A synapse (``nn.Linear`` or ``nn.Conv2d``, no bias) feeding a neuron (LIF or accumulator).

    Dropout (one mask over all steps) acts on the spikes the layer emits.
    """

    def __init__(
        self,
        synapse: nn.Linear | nn.Conv2d,
        neuron: LIF | Accumulator,
        in_shape: Sequence[int],
        *,
        name: str,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not isinstance(synapse, nn.Linear | nn.Conv2d):
            raise ValueError(f"{name}: synapse must be nn.Linear or nn.Conv2d")
        if synapse.bias is not None:
            raise ValueError(f"{name}: synapses must have no bias (bias=False)")
        if isinstance(synapse, nn.Conv2d) and (
            synapse.groups != 1
            or tuple(synapse.dilation) != (1, 1)
            or synapse.padding_mode != "zeros"
            or isinstance(synapse.padding, str)
        ):
            raise ValueError(
                f"{name}: only plain convolutions (groups 1, dilation 1, numeric zero padding) "
                "can be exported"
            )
        self.name = name
        self.synapse = synapse
        self.neuron = neuron
        self.dropout = SpikeDropout(dropout)
        self.in_shape = tuple(int(v) for v in in_shape)
        self.register_buffer("input_shift", torch.tensor(0, dtype=torch.long))
        if self.kind == "linear" and math.prod(self.in_shape) != synapse.in_features:
            raise ValueError(
                f"{name}: {synapse.in_features} input features but the input has shape "
                f"{list(self.in_shape)}"
            )
        if self.kind == "conv2d" and (
            len(self.in_shape) != 3 or self.in_shape[0] != synapse.in_channels
        ):
            raise ValueError(
                f"{name}: conv input must be [C, H, W] with C = {synapse.in_channels}, "
                f"got {list(self.in_shape)}"
            )

    @property
    def fire(self) -> str:
        return self.neuron.fire

    def int_layer(self, w_bits: int, v_bits: int, in_unit: float) -> bittrue.IntLayer:
        """This layer in the integer domain (docs/semantics.md), differentiable through STEs.

        Weights: symmetric ``w_bits`` integers with step ``delta``; one potential unit is
        ``delta · in_unit · 2^input_shift``; ``theta = ceil(threshold / unit)`` (the hardware
        comparator is ``>=``); ``lam = round(lambda · 2^8)``.
        """
        w_int, delta = quantize_symmetric(self.synapse.weight.to(bittrue.DTYPE), w_bits)
        shift = int(self.input_shift)
        unit = delta * in_unit * float(1 << shift)
        hi = signed_range(v_bits)[1]
        neuron = self.neuron
        theta = torch.ones((), dtype=w_int.dtype)
        lam: Tensor | int = 1 << LEAK_FRAC
        leak_mode, k = "none", 1
        if isinstance(neuron, LIF):
            threshold = neuron.threshold.to(bittrue.DTYPE).clamp(min=1e-6)
            theta = clamp_ste(ceil_ste(threshold / unit), 1, hi)
            leak_mode, k = neuron.leak_mode, neuron.shift_k
            if leak_mode == "mult":
                lam_real = neuron.lam().to(bittrue.DTYPE)
                lam = clamp_ste(round_ste(lam_real * (1 << LEAK_FRAC)), 0, 1 << LEAK_FRAC)
        return bittrue.IntLayer(
            name=self.name,
            kind=self.kind,
            weight=w_int,
            in_shape=self.in_shape,
            out_shape=self.out_shape,
            w_bits=w_bits,
            v_bits=v_bits,
            theta=theta,
            leak_mode=leak_mode,
            lam=lam,
            frac=LEAK_FRAC,
            k=k,
            reset=neuron.reset,
            fire=neuron.fire,
            input_shift=shift,
            stride=tuple(self.synapse.stride) if self.kind == "conv2d" else (1, 1),
            padding=tuple(self.synapse.padding) if self.kind == "conv2d" else (0, 0),
            surrogate=getattr(neuron, "surrogate", None) or get_surrogate("triangle"),
            unit=unit,
        )


class ModeSwitch:
    """``set_mode`` for networks that run in the four ``MODES`` (``SNN`` and the networks that
    stand in for it at export, like scatter-and-gather's)."""

    mode: str

    def set_mode(self, mode: str) -> Self:
        """Select ``ann``, ``float``, ``quant`` or ``bittrue`` (returns ``self``)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {list(MODES)}")
        self.mode = mode
        return self


class SNN(ModeSwitch, nn.Module):
    """A feed-forward SNN: ``layers`` (the last one an ``Accumulator``) run for ``timesteps``.

    ``input_bits`` / ``input_signed`` / ``input_scale`` describe the integer input codes (the
    float value of a code is ``code * input_scale``).
    """

    #: ``calibrate_shifts`` keeps this quantile of a layer's per-neuron thresholds in range
    #: (``None``: all of them, the largest).
    threshold_quantile: float | None = None

    def __init__(
        self,
        layers: Sequence[SpikingLayer],
        input_shape: Sequence[int],
        timesteps: int = 5,
        *,
        encoder: str | Encoder = "direct",
        input_bits: int = 8,
        input_signed: bool = False,
        input_scale: float = 1.0 / 255,
        w_bits: int = 6,
        v_bits: int = 16,
        quant: str = "affine",
    ) -> None:
        super().__init__()
        if not layers or layers[-1].fire != "accum":
            raise ValueError("the last layer must be an Accumulator")
        if any(layer.fire != "lif" for layer in layers[:-1]):
            raise ValueError("only the last layer may be an Accumulator")
        if not 2 <= w_bits <= 16:
            raise ValueError(f"w_bits must be in 2..16, got {w_bits}")
        if quant not in QUANT_MODES:
            raise ValueError(f"unknown quantisation {quant!r}; expected one of {list(QUANT_MODES)}")
        self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.timesteps = timesteps
        self.encoder = get_encoder(encoder) if isinstance(encoder, str) else encoder
        if self.encoder.encoding == "spikes" and input_signed:
            raise ValueError("rate and latency coding need unsigned inputs")
        self.input_bits = input_bits
        self.input_signed = input_signed
        self.input_scale = float(input_scale)
        self.w_bits = w_bits
        self.v_bits = v_bits
        self.quant = quant
        self.mode = "float"
        self.record = False
        self.recorded: dict[str, Tensor] = {}

    @property
    def encoding(self) -> str:
        return self.encoder.encoding

    def encode(self, codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Bundle-level input for integer codes ``[N, ...]`` (reshaped to ``input_shape``)."""
        codes = codes.reshape(codes.shape[0], *self.input_shape)
        return self.encoder(codes, self.timesteps, self.input_scale, generator)

    def forward(self, codes: Tensor) -> Tensor:
        """Logits ``[N, classes]`` for integer input codes."""
        if self.mode == "ann":
            return self.ann_forward(codes)
        return self.run(self.encode(codes))

    def run(self, x: Tensor) -> Tensor:
        """Logits for bundle-level input ``x`` in the current (spiking) mode."""
        if self.mode == "bittrue":
            return self.run_bittrue(x).logits
        if self.mode == "ann":
            raise ValueError("run() needs a spiking mode; use forward(codes) for the ANN")
        return self._run_float(x)

    def weight(self, layer: SpikingLayer) -> Tensor:
        """The layer's weights as used in the current mode (fake-quantised in ``quant``)."""
        w = layer.synapse.weight
        return fake_quant(w, self.w_bits, self.quant) if self.mode == "quant" else w

    def ann_forward(self, codes: Tensor) -> Tensor:
        """The ReLU network with the same weights (float input ``code * scale``)."""
        x = codes.reshape(codes.shape[0], *self.input_shape).to(torch.float32) * self.input_scale
        for layer in self.layers:
            x = layer.current(x, layer.synapse.weight)
            if layer.fire == "lif":
                x = F.dropout(F.relu(x), layer.dropout.p, self.training)
        return x

    def _run_float(self, x: Tensor) -> Tensor:
        steps = self.timesteps
        n = x.shape[0]
        first = self.layers[0]
        if self.encoding == "direct":
            cur = first.current(x.to(torch.float32) * self.input_scale, self.weight(first))
            seq = cur.unsqueeze(0).expand(steps, *cur.shape)
        else:
            trains = x.to(torch.float32).transpose(0, 1)
            cur = first.current(trains.reshape(steps * n, *trains.shape[2:]), self.weight(first))
            seq = cur.reshape(steps, n, *cur.shape[1:])
        self.recorded = {}
        for index, layer in enumerate(self.layers):
            if index > 0:
                cur = layer.current(seq.reshape(steps * n, *seq.shape[2:]), self.weight(layer))
                seq = cur.reshape(steps, n, *cur.shape[1:])
            out = layer.neuron(seq)
            if layer.fire == "accum":
                return out.reshape(n, -1)
            if self.record:
                self.recorded[layer.name] = out.detach()
            seq = layer.dropout(out)
        raise AssertionError("unreachable: the last layer is an accumulator")

    def int_layers(self) -> list[bittrue.IntLayer]:
        """The network in the integer domain (what ``export`` writes), with STE gradients."""
        result = []
        for index, layer in enumerate(self.layers):
            in_unit = self.input_scale if index == 0 and self.encoding == "direct" else 1.0
            result.append(layer.int_layer(self.w_bits, self.v_bits, in_unit))
        return result

    def run_bittrue(self, x: Tensor) -> bittrue.BitTrueOutput:
        """The exact integer forward pass (docs/semantics.md) on bundle-level input ``x``."""

        def drop(index: int, spikes: Tensor) -> Tensor:
            return self.layers[index].dropout(spikes, rescale=False)

        out = bittrue.forward(self.int_layers(), x, self.timesteps, self.encoding, between=drop)
        if self.record:
            self.recorded = {k: v.detach() for k, v in out.spikes.items()}
        return out

    @torch.no_grad()
    def calibrate_shifts(self, x: Tensor, headroom: int = 2) -> list[int]:
        """Choose each layer's ``input_shift`` so thresholds and potentials fit ``v_bits``.

        The smallest shift that keeps the layer's threshold (the ``threshold_quantile`` of its
        per-neuron thresholds when that is set; larger ones saturate) and the largest per-step
        input (the largest accumulated output potential for the accumulator) seen on ``x``
        below ``2^(v_bits-1-headroom)``.
        """
        for layer in self.layers:
            layer.input_shift.fill_(0)
        peaks = [0.0] * len(self.layers)

        def observe(index: int, s: Tensor) -> None:
            if self.layers[index].fire == "accum":
                s = s.cumsum(0)
            peaks[index] = max(peaks[index], float(s.abs().max()))

        saved_bits, self.v_bits = self.v_bits, 32
        try:
            layers = self.int_layers()
            bittrue.forward(layers, x, self.timesteps, self.encoding, observe=observe)
        finally:
            self.v_bits = saved_bits
        limit = 2.0 ** (self.v_bits - 1 - headroom)
        shifts = []
        for layer, int_layer, peak in zip(self.layers, layers, peaks, strict=True):
            theta = 0.0
            if layer.fire == "lif" and self.threshold_quantile is None:
                theta = float(int_layer.theta.max())
            elif layer.fire == "lif":
                thetas = int_layer.theta.detach().reshape(-1)
                theta = float(torch.quantile(thetas, self.threshold_quantile))
            need = max(theta, peak) / limit
            shift = max(0, math.ceil(math.log2(need))) if need > 1 else 0
            layer.input_shift.fill_(shift)
            shifts.append(shift)
        return shifts


# ------------------------------------------------------------------------------------------
# builders


@dataclass(frozen=True)
class LayerSpec:
    """One hidden layer of an architecture string: ``kind`` ``linear`` or ``conv2d``."""

    kind: str
    out: int
    kernel: int = 3
    stride: int = 1
    padding: int = 1

    def synapse(self, in_shape: Sequence[int], bias: bool = False) -> nn.Linear | nn.Conv2d:
        """A fresh (default-initialised) synapse of this layer for input ``in_shape``."""
        if self.kind == "linear":
            return nn.Linear(math.prod(in_shape), self.out, bias=bias)
        return nn.Conv2d(in_shape[0], self.out, self.kernel, self.stride, self.padding, bias=bias)

    def out_shape(self, in_shape: Sequence[int]) -> tuple[int, ...]:
        """The layer's output shape for input ``in_shape``."""
        if self.kind == "linear":
            return (self.out,)
        _, h, w = in_shape
        k, s, p = self.kernel, self.stride, self.padding
        return (self.out, (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1)


_CONV = re.compile(r"^c(\d+)(?:k(\d+))?(?:s(\d+))?(?:p(\d+))?$")


def parse_arch(spec: str) -> list[LayerSpec]:
    """Parse hidden layers like ``"c32k3s2-c64k3s2-256"`` (conv ``c<out>k<k>s<s>p<p>``, linear
    ``<n>``; padding defaults to ``k//2``). The output layer is added by ``build_snn``."""
    layers = []
    for token in filter(None, spec.replace(",", "-").split("-")):
        token = token.strip().lower()
        if token.isdigit():
            layers.append(LayerSpec("linear", int(token)))
            continue
        match = _CONV.match(token)
        if not match:
            raise ValueError(
                f"cannot parse layer {token!r} in architecture {spec!r}: use <n> for a linear "
                "layer or c<out>k<kernel>s<stride>p<padding> for a convolution (e.g. c32k3s2)"
            )
        out, k, s, p = match.groups()
        kernel = int(k or 3)
        layers.append(
            LayerSpec("conv2d", int(out), kernel, int(s or 1), int(p) if p else kernel // 2)
        )
    if any(a.kind == "linear" and b.kind == "conv2d" for a, b in itertools.pairwise(layers)):
        raise ValueError(f"architecture {spec!r}: a convolution cannot follow a linear layer")
    return layers


def build_snn(
    arch: str,
    input_shape: Sequence[int],
    classes: int,
    *,
    timesteps: int = 5,
    encoder: str = "direct",
    input_bits: int = 8,
    input_signed: bool = False,
    input_scale: float = 1.0 / 255,
    w_bits: int = 6,
    v_bits: int = 16,
    quant: str = "affine",
    surrogate: str | Surrogate = "triangle",
    reset: str = "sub",
    leak_mode: str = "mult",
    threshold: float = 1.0,
    leak: float = 1.0,
    dropout: float = 0.0,
) -> SNN:
    """A network from an architecture string (see ``parse_arch``) plus an accumulator output."""
    shape = tuple(int(v) for v in input_shape)
    specs = parse_arch(arch)
    if specs and specs[0].kind == "conv2d" and len(shape) != 3:
        raise ValueError(f"a convolution needs a [C, H, W] input, got {list(shape)}")
    layers: list[SpikingLayer] = []
    for index, spec in enumerate(specs):
        synapse = spec.synapse(shape)
        nn.init.kaiming_normal_(synapse.weight, nonlinearity="relu")
        neuron = LIF(threshold, leak, reset, surrogate, leak_mode=leak_mode)
        layer = SpikingLayer(
            synapse,
            neuron,
            shape,
            name=f"{'conv' if spec.kind == 'conv2d' else 'fc'}{index + 1}",
            dropout=dropout,
        )
        layers.append(layer)
        shape = layer.out_shape
    out = nn.Linear(math.prod(shape), classes, bias=False)
    nn.init.kaiming_normal_(out.weight, nonlinearity="linear")
    layers.append(SpikingLayer(out, Accumulator(), shape, name="out"))
    return SNN(
        layers,
        input_shape,
        timesteps,
        encoder=encoder,
        input_bits=input_bits,
        input_signed=input_signed,
        input_scale=input_scale,
        w_bits=w_bits,
        v_bits=v_bits,
        quant=quant,
    )
