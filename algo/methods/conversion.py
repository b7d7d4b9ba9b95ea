"""ANN-to-SNN conversion without SNN fine-tuning, three variants selected by name.

ANN (ReLU, optionally with bias and batch norm) -> float IF network -> per-layer thresholds ->
integer weights, thresholds and biases -> bundle. Nothing is trained after the ANN.

* ``spikenorm`` (Srinivasan et al. sec. 3.3, after Sengupta et al. 2019): ANN without bias or
  batch norm; weights copied; layer by layer, in order, the threshold is the maximum weighted
  input the layer receives over every step and every calibration sample, with the thresholds of
  the earlier layers already fixed.
* ``percentile`` (ACE-SNN): the same ANN; layer by layer, threshold = ``scale`` x the
  ``percentile`` of the layer's input current over ``balance_timesteps`` steps
  (``spikeforge.algo.training.pipeline.balance_thresholds``: 99.7th percentile, x 0.8, as the
  hybrid pipeline's conversion step).
* ``ecc`` (Wu et al., "A little energy goes a long way"): ANN with bias and batch norm. CMB folds
  batch norm into the weights and bias with the batch norm's own epsilon, CN normalises every
  layer by the maximum activation ``lambda_n`` of the ANN on the training set
  (``W <- kappa lambda_{n-1}/lambda_n W``, ``b <- kappa b/lambda_n``, ``V_th = kappa``, integer
  ``kappa``), and TRE adds ``eta V_th / T`` to every hidden neuron's bias at every step.

The converted network is an ``SNN`` whose layers are ``BiasedLayer`` s (a per-step bias, which
the bundle holds in its integer ``bias`` field); IF neurons (no leak). Integer export is the
project's (``spikeforge.algo.training.export``): symmetric per-tensor weights,
``theta = ceil(V_th / unit)``, and ``bias = round(b / unit + eta theta / T)`` (one rounding).
ECC's TRE bias depends on ``T``, so a converted network is exported once per ``T``
(``set_timesteps`` updates it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.models import SNN, LayerSpec, SpikingLayer, parse_arch
from spikeforge.algo.snn.neurons import LIF, Accumulator
from spikeforge.algo.snn.quant import clamp_ste, round_half_away
from spikeforge.algo.training.pipeline import (
    TrainConfig,
    Trainer,
    balance_thresholds,
    evaluate,
    fit_ann,
    fixed_inputs,
    input_shape_for,
)
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.datasets import Dataset
from spikeforge.sim.semantics import signed_range
from torch import Tensor, nn

VARIANTS: tuple[str, ...] = ("spikenorm", "percentile", "ecc")


@dataclass
class ConversionSettings:
    """Knobs of the three variants (defaults: the papers' values where they give one).

    ``calib_samples`` / ``calib_timesteps``: the training samples and steps spike-norm's maximum
    is taken over (the paper uses the whole training set; ``None`` = all of it). ``eta``,
    ``kappa``, ``bn_eps`` and ``activation_percentile`` (100 = the plain maximum, as the ECC
    code) belong to ECC; ``percentile`` / ``scale`` / ``balance_*`` to the percentile variant.
    """

    calib_samples: int | None = None
    calib_timesteps: int = 100
    percentile: float = 99.7
    scale: float = 0.8
    balance_samples: int = 128
    balance_timesteps: int = 100
    eta: float = 0.5
    kappa: int = 100
    bn_eps: float = 1e-3
    activation_percentile: float = 100.0
    seed: int = 0


# ------------------------------------------------------------------------------------------
# the ANN


class ANNBlock(nn.Module):
    """One ANN layer: synapse (with optional bias), optional batch norm, ReLU (hidden only)."""

    def __init__(
        self,
        synapse: nn.Linear | nn.Conv2d,
        in_shape: Sequence[int],
        out_shape: Sequence[int],
        *,
        name: str,
        hidden: bool,
        batch_norm: bool,
        bn_eps: float,
    ) -> None:
        super().__init__()
        self.name = name
        self.synapse = synapse
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)
        self.kind = "linear" if isinstance(synapse, nn.Linear) else "conv2d"
        width = out_shape[0]
        self.bn: nn.Module | None = None
        if batch_norm and hidden:
            bn_type = nn.BatchNorm1d if self.kind == "linear" else nn.BatchNorm2d
            self.bn = bn_type(width, eps=bn_eps)
        self.neuron: nn.Module = nn.ReLU() if hidden else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.kind == "linear":
            x = x.reshape(x.shape[0], -1)
        x = self.synapse(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.neuron(x)


class ConvANN(nn.Module):
    """A ReLU network for conversion, built from an architecture string (``parse_arch``).

    Same shape conventions as ``build_snn`` (strided convolutions, no pooling); ``bias`` and
    ``batch_norm`` (after the synapse, before the ReLU, hidden layers) are what ECC's ANN has and
    what spike-norm / ACE-SNN forbid. It has the ``set_mode("ann")`` / ``ann_forward`` interface
    ``spikeforge.algo.training.pipeline.fit`` and ``evaluate`` use.
    """

    def __init__(
        self,
        arch: str,
        input_shape: Sequence[int],
        classes: int,
        *,
        input_scale: float,
        bias: bool = False,
        batch_norm: bool = False,
        bn_eps: float = 1e-3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        shape = tuple(int(v) for v in input_shape)
        self.input_shape = shape
        self.input_scale = float(input_scale)
        self.dropout = dropout
        self.mode = "ann"
        specs = parse_arch(arch)
        if specs and specs[0].kind == "conv2d" and len(shape) != 3:
            raise ValueError(f"a convolution needs a [C, H, W] input, got {list(shape)}")
        blocks = []
        for index, spec in enumerate([*specs, LayerSpec("linear", classes)]):
            hidden = index < len(specs)
            synapse = spec.synapse(shape, bias)
            if hidden:
                nn.init.kaiming_normal_(synapse.weight, nonlinearity="relu")
            else:
                nn.init.kaiming_normal_(synapse.weight, nonlinearity="linear")
            if synapse.bias is not None:
                nn.init.zeros_(synapse.bias)
            out_shape = spec.out_shape(shape)
            name = f"{'conv' if spec.kind == 'conv2d' else 'fc'}{index + 1}" if hidden else "out"
            blocks.append(
                ANNBlock(
                    synapse,
                    shape,
                    out_shape,
                    name=name,
                    hidden=hidden,
                    batch_norm=batch_norm,
                    bn_eps=bn_eps,
                )
            )
            shape = out_shape
        self.layers = nn.ModuleList(blocks)

    def set_mode(self, mode: str) -> ConvANN:
        if mode != "ann":
            raise ValueError(f"a ConvANN only has the 'ann' mode, not {mode!r}")
        return self

    def ann_forward(self, codes: Tensor) -> Tensor:
        """Logits for integer input codes (float input ``code * input_scale``)."""
        x = codes.reshape(codes.shape[0], *self.input_shape).to(torch.float32) * self.input_scale
        for block in self.layers:
            x = block(x)
            if isinstance(block.neuron, nn.ReLU):
                x = F.dropout(x, self.dropout, self.training)
        return x

    def forward(self, codes: Tensor) -> Tensor:
        return self.ann_forward(codes)


def ann_for(
    config: TrainConfig, data: Dataset, variant: str, settings: ConversionSettings
) -> ConvANN:
    """The ANN a variant converts: bias + batch norm for ``ecc``, neither for the others."""
    ecc = variant == "ecc"
    return ConvANN(
        config.arch,
        input_shape_for(config.arch, data),
        data.classes,
        input_scale=data.scale,
        bias=ecc,
        batch_norm=ecc,
        bn_eps=settings.bn_eps,
        dropout=config.dropout,
    )


# ------------------------------------------------------------------------------------------
# folding (CMB) and activation statistics


@dataclass
class FoldedLayer:
    """A float layer after batch-norm folding: ``z = W x + b``."""

    name: str
    kind: str
    weight: Tensor
    bias: Tensor
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def apply(self, x: Tensor) -> Tensor:
        if self.kind == "linear":
            return F.linear(x.reshape(x.shape[0], -1), self.weight, self.bias)
        return F.conv2d(x, self.weight, self.bias, stride=self.stride, padding=self.padding)


def fold_batch_norm(
    weight: Tensor, bias: Tensor | None, bn: nn.Module | None
) -> tuple[Tensor, Tensor]:
    """ECC's CMB: ``W' = g W``, ``b' = g (b - mu) + beta`` with ``g = gamma / sqrt(var + eps)``.

    ``eps`` is the batch norm's own (ECC: leaving it out costs accuracy). Returns detached
    float tensors; ``bias`` ``None`` means zero.
    """
    weight = weight.detach().clone()
    out = weight.shape[0]
    b = torch.zeros(out) if bias is None else bias.detach().clone()
    if bn is None:
        return weight, b
    gain = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    shape = (out,) + (1,) * (weight.dim() - 1)
    return weight * gain.view(shape), gain * (b - bn.running_mean) + bn.bias.detach()


def fold(ann: ConvANN) -> list[FoldedLayer]:
    """The ANN as float layers with batch norm folded in (equal to the ANN in eval mode)."""
    layers = []
    for block in ann.layers:
        w, b = fold_batch_norm(block.synapse.weight, block.synapse.bias, block.bn)
        conv = block.kind == "conv2d"
        layers.append(
            FoldedLayer(
                block.name,
                block.kind,
                w,
                b,
                block.in_shape,
                block.out_shape,
                tuple(block.synapse.stride) if conv else (1, 1),
                tuple(block.synapse.padding) if conv else (0, 0),
            )
        )
    return layers


@torch.no_grad()
def max_activations(
    layers: list[FoldedLayer],
    x: Tensor,
    percentile: float = 100.0,
    batch_size: int = 1000,
) -> list[float]:
    """``lambda_n`` per hidden layer: the max (or ``percentile``) of its ReLU output over ``x``.

    ``x`` is the float input ``[N, *shape]``. The percentile is taken over at most 2M values
    sampled per batch (the maximum is exact).
    """
    hidden = layers[:-1]
    result = [0.0] * len(hidden)
    samples: list[list[np.ndarray]] = [[] for _ in hidden]
    rng = np.random.default_rng(0)
    for start in range(0, len(x), batch_size):
        a = x[start : start + batch_size]
        for index, layer in enumerate(hidden):
            a = F.relu(layer.apply(a))
            if percentile >= 100.0:
                result[index] = max(result[index], float(a.max()))
            else:
                flat = a.reshape(-1).numpy()
                keep = min(flat.size, 2_000_000 * batch_size // max(len(x), 1) + 1)
                samples[index].append(rng.choice(flat, keep, replace=False))
    if percentile < 100.0:
        result = [float(np.percentile(np.concatenate(s), percentile)) for s in samples]
    return [max(v, 1e-6) for v in result]


# ------------------------------------------------------------------------------------------
# the converted SNN


class BiasedLayer(SpikingLayer):
    """A ``SpikingLayer`` with a per-step bias ``b`` (float) and ECC's TRE offset.

    Every step the neuron receives ``W x + b + eta V_th / T`` (``eta`` 0 = no TRE); the integer
    export adds ``round(b / unit + eta theta / T)`` as the bundle's per-neuron ``bias``.
    """

    def __init__(
        self,
        *args: Any,
        bias: Tensor | None = None,
        eta: float = 0.0,
        timesteps: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        width = self.out_shape[0]
        b = torch.zeros(width) if bias is None else bias.detach().to(torch.float32).reshape(-1)
        if b.numel() != width:
            raise ValueError(f"{self.name}: bias has {b.numel()} values, expected {width}")
        self.register_buffer("bias", b.clone())
        self.eta = float(eta)
        self.timesteps = int(timesteps)

    def step_bias(self) -> Tensor:
        """The float bias every step: ``b + eta V_th / T`` (``[out channels or features]``)."""
        if self.eta == 0.0 or not isinstance(self.neuron, LIF):
            return self.bias
        return self.bias + self.eta * self.neuron.threshold.detach() / self.timesteps

    def _per_neuron(self, values: Tensor) -> Tensor:
        if self.kind == "linear":
            return values
        return values.reshape(-1, 1, 1).expand(self.out_shape)

    def current(self, x: Tensor, weight: Tensor) -> Tensor:
        cur = super().current(x, weight)
        b = self.step_bias().to(cur.dtype)
        return cur + (b if self.kind == "linear" else b.view(1, -1, 1, 1))

    def int_layer(self, w_bits: int, v_bits: int, in_unit: float) -> bittrue.IntLayer:
        layer = super().int_layer(w_bits, v_bits, in_unit)
        b = self.bias.to(bittrue.DTYPE) / layer.unit
        if self.eta and isinstance(self.neuron, LIF):
            b = b + self.eta * layer.theta.detach() / self.timesteps
        lo, hi = signed_range(v_bits)
        bias = clamp_ste(round_half_away(b.detach()), lo, hi)
        if bool((bias != 0).any()):
            layer.bias = self._per_neuron(bias)
        return layer


def set_timesteps(net: SNN, timesteps: int) -> None:
    """Run ``net`` for ``timesteps`` steps from now on (also updates TRE's ``eta V_th / T``)."""
    net.timesteps = int(timesteps)
    for layer in net.layers:
        if isinstance(layer, BiasedLayer):
            layer.timesteps = int(timesteps)


def build_converted(
    folded: list[FoldedLayer],
    template: SNN | dict[str, Any],
    *,
    reset: str = "sub",
    eta: float = 0.0,
) -> SNN:
    """An IF network (leak none, ``reset``) with ``folded`` 's weights and biases.

    ``template`` gives the input description, ``timesteps``, ``w_bits``, ``v_bits``: an ``SNN``
    or a dict of ``SNN`` keyword arguments. Thresholds start at 1.
    """
    if isinstance(template, SNN):
        kwargs = {
            "timesteps": template.timesteps,
            "encoder": template.encoder,
            "input_bits": template.input_bits,
            "input_signed": template.input_signed,
            "input_scale": template.input_scale,
            "w_bits": template.w_bits,
            "v_bits": template.v_bits,
        }
        input_shape = template.input_shape
    else:
        kwargs = dict(template)
        input_shape = kwargs.pop("input_shape")
    layers = []
    for index, f in enumerate(folded):
        hidden = index < len(folded) - 1
        if f.kind == "linear":
            synapse: nn.Linear | nn.Conv2d = nn.Linear(
                f.weight.shape[1], f.weight.shape[0], bias=False
            )
        else:
            synapse = nn.Conv2d(
                f.weight.shape[1],
                f.weight.shape[0],
                tuple(f.weight.shape[2:]),
                f.stride,
                f.padding,
                bias=False,
            )
        with torch.no_grad():
            synapse.weight.copy_(f.weight)
        neuron: LIF | Accumulator = (
            LIF(1.0, 1.0, reset, leak_mode="none", learn_threshold=False, learn_leak=False)
            if hidden
            else Accumulator()
        )
        layers.append(
            BiasedLayer(
                synapse,
                neuron,
                f.in_shape,
                name=f.name,
                bias=f.bias,
                eta=eta if hidden else 0.0,
                timesteps=kwargs["timesteps"],
            )
        )
    return SNN(layers, input_shape, quant="symmetric", **kwargs)


# ------------------------------------------------------------------------------------------
# thresholds


@torch.no_grad()
def spike_norm_thresholds(
    net: SNN, codes: np.ndarray, *, timesteps: int = 100, batch_size: int = 256, seed: int = 0
) -> list[float]:
    """Spike-norm: per layer, in order, ``V_th`` = the largest weighted input the layer receives
    at any step for any sample of ``codes`` (earlier layers' thresholds already set)."""
    net.set_mode("float").eval()
    saved, net.timesteps = net.timesteps, timesteps
    thresholds = []
    try:
        lif_layers = [layer for layer in net.layers if isinstance(layer.neuron, LIF)]
        for layer in lif_layers:
            peak = [-math.inf]

            def record(_module: nn.Module, args: tuple[Tensor, ...], store: list = peak) -> None:
                store[0] = max(store[0], float(args[0].max()))

            hook = layer.neuron.register_forward_pre_hook(record)
            try:
                for start in range(0, len(codes), batch_size):
                    batch = codes[start : start + batch_size]
                    net.run(fixed_inputs(net, batch, seed + start))
            finally:
                hook.remove()
            theta = max(peak[0], 1e-3)
            layer.neuron.threshold.fill_(theta)
            thresholds.append(theta)
    finally:
        net.timesteps = saved
    return thresholds


@torch.no_grad()
def ecc_normalise(
    net: SNN, lambdas: Sequence[float], *, kappa: int = 100, eta: float = 0.5
) -> list[float]:
    """ECC's CN + TRE on a converted net: ``W <- kappa lambda_{n-1}/lambda_n W``,
    ``b <- kappa b / lambda_n``, ``V_th = kappa``; the output layer ``W <- lambda_{L-1} W``
    (its potential then sums ``T`` times the ANN logits); ``eta`` sets the TRE offset.

    ``lambda_0 = 1``: the input ``code * scale`` lies in ``[0, 1]``.
    """
    if not isinstance(kappa, int | np.integer) or isinstance(kappa, bool) or kappa < 1:
        raise ValueError(f"kappa must be a positive integer, got {kappa!r}")
    hidden = [layer for layer in net.layers if isinstance(layer.neuron, LIF)]
    if len(lambdas) != len(hidden):
        raise ValueError(f"{len(lambdas)} lambdas for {len(hidden)} hidden layers")
    previous = 1.0
    for layer, lam in zip(hidden, lambdas, strict=True):
        layer.synapse.weight.mul_(kappa * previous / lam)
        layer.bias.mul_(kappa / lam)
        layer.neuron.threshold.fill_(float(kappa))
        if isinstance(layer, BiasedLayer):
            layer.eta = float(eta)
        previous = lam
    net.layers[-1].synapse.weight.mul_(previous)
    return [float(kappa)] * len(hidden)


# ------------------------------------------------------------------------------------------
# the whole conversion


@dataclass
class Conversion:
    """A converted network and what produced it."""

    variant: str
    net: SNN
    ann: ConvANN
    thresholds: list[float]
    lambdas: list[float] | None
    settings: ConversionSettings


def convert(
    variant: str,
    ann: ConvANN,
    train_codes: np.ndarray,
    template: SNN | dict[str, Any],
    settings: ConversionSettings | None = None,
    *,
    reset: str = "sub",
) -> Conversion:
    """Convert a trained ``ann`` by ``variant`` (``spikenorm``, ``percentile``, ``ecc``).

    ``train_codes``: integer training inputs (calibration); ``template``: see
    ``build_converted``. No training happens here.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown conversion {variant!r}; expected one of {list(VARIANTS)}")
    settings = settings or ConversionSettings()
    if variant != "ecc" and any(
        block.bn is not None or block.synapse.bias is not None for block in ann.layers
    ):
        raise ValueError(f"{variant} conversion needs an ANN without bias or batch norm")
    ann.eval()
    folded = fold(ann)
    net = build_converted(folded, template, reset=reset)
    lambdas = None
    if variant == "spikenorm":
        codes = train_codes[: settings.calib_samples]
        thresholds = spike_norm_thresholds(
            net, codes, timesteps=settings.calib_timesteps, seed=settings.seed
        )
    elif variant == "percentile":
        thresholds = balance_thresholds(
            net,
            train_codes[: settings.balance_samples],
            timesteps=settings.balance_timesteps,
            percentile=settings.percentile,
            scale=settings.scale,
            seed=settings.seed,
        )
    else:
        x = torch.as_tensor(train_codes).reshape(len(train_codes), *ann.input_shape)
        lambdas = max_activations(
            folded, x.to(torch.float32) * ann.input_scale, settings.activation_percentile
        )
        thresholds = ecc_normalise(net, lambdas, kappa=settings.kappa, eta=settings.eta)
    return Conversion(variant, net, ann, thresholds, lambdas, settings)


def calibrate(net: SNN, codes: np.ndarray, timesteps: int, seed: int = 0) -> list[int]:
    """Set ``net`` to ``timesteps`` and bit-true mode; choose its input shifts on ``codes``."""
    set_timesteps(net, timesteps)
    net.set_mode("bittrue").eval()
    return net.calibrate_shifts(fixed_inputs(net, codes, seed))


@dataclass
class BundleCheck:
    """Golden-model run of a bundle and its bit-true == golden comparison."""

    result: golden.GoldenResult
    accuracy: float
    spike_values_compared: int
    potentials_compared: int
    mismatches: list[str]

    @property
    def equal(self) -> bool:
        return not self.mismatches


def check_bundle(bundle: Bundle, x: np.ndarray, labels: np.ndarray) -> BundleCheck:
    """Run ``bundle`` on ``x`` in the golden model and in the bit-true PyTorch forward pass
    (``spikeforge.algo.snn.bittrue.run_bundle``) and compare every spike and output potential."""
    gold = golden.run(bundle, x)
    ours = bittrue.run_bundle(bundle, x)
    mismatches = [
        f"spikes of {name}"
        for name in gold.spikes
        if not np.array_equal(ours.spikes[name], gold.spikes[name])
    ]
    if not np.array_equal(ours.v_out, gold.v_out):
        mismatches.append("output potentials")
    return BundleCheck(
        result=gold,
        accuracy=golden.accuracy(gold, labels),
        spike_values_compared=sum(s.size for s in gold.spikes.values()),
        potentials_compared=int(gold.v_out.size),
        mismatches=mismatches,
    )


def bundle_inputs(net: SNN, codes: np.ndarray, seed: int) -> np.ndarray:
    """The integer array a bundle of ``net`` receives for ``codes`` (fixed encoder seed)."""
    x = fixed_inputs(net, codes, seed).numpy()
    if net.encoding == "spikes":
        return x.astype(np.uint8)
    return x.astype(np.int16 if net.input_signed else np.int64)


# ------------------------------------------------------------------------------------------
# training methods (``spikeforge train --method convert-*``)


def train_ann(
    ann: ConvANN, data: Dataset, config: TrainConfig, trainer: Trainer, phase: str = "ann"
) -> float:
    """Train ``ann`` with the pipeline's ANN phase (Adam, cosine); returns its test accuracy."""
    fit_ann(ann, data, config, trainer, phase)  # type: ignore[arg-type]  # the ANN interface
    return evaluate(ann, data.x_test, data.y_test, "ann")  # type: ignore[arg-type]


def _method(variant: str) -> Callable[[SNN, Dataset, TrainConfig, Trainer], None]:
    def method(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> None:
        settings = ConversionSettings(
            percentile=config.balance_percentile,
            scale=config.balance_scale,
            balance_samples=config.balance_samples,
            balance_timesteps=config.balance_timesteps,
            seed=config.seed,
        )
        ann = ann_for(config, data, variant, settings)
        train_ann(ann, data, config, trainer)
        done = convert(variant, ann, data.x_train, net, settings, reset=config.reset)
        trainer.log(f"{variant} thresholds: " + ", ".join(f"{t:.4g}" for t in done.thresholds))
        # the converted layers replace the untrained ones: ``net`` becomes the converted SNN
        net.layers = done.net.layers
        set_timesteps(net, config.timesteps)
        trainer.history.append(
            {
                "phase": "convert",
                "mode": "float",
                "epoch": 0,
                "test_acc": evaluate(net, data.x_test, data.y_test, "float", trainer.eval_seed),
            }
        )
        shifts = calibrate(net, data.x_train[: config.balance_samples], config.timesteps)
        trainer.log(f"input shifts per layer: {shifts}")

    method.__doc__ = f"ANN -> {variant} conversion -> bit-true export (no SNN training)."
    return method


def variant_method(variant: str):
    """The ``convert-<variant>`` training method."""
    return _method(variant)
