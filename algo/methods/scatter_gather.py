"""Scatter-and-gather (Zou et al. 2021): a quantised-ReLU ANN converted losslessly to a 1-step SNN.

Training (method ``scatter-gather``): an ANN whose hidden layers are synapse -> batch norm ->
median-quantised ReLU ``Quant(r) = clip(round_half_up(r * 2^k) / 2^k, 0, B)`` (Eq. 6), trained
first with a plain ReLU (phase ``ann``) and then quantised (phase ``quant``): hidden weights
ternary ``alpha * {-1, 0, 1}`` (Li & Liu's TWN), first and last layer symmetric ``w_bits``
integers (the paper keeps those two off-chip in full precision; a bundle needs integers), the
activation with a straight-through gradient (that of ``clip(r, 0, B)``).

Conversion (``SGNet.int_layers``): every hidden ANN neuron becomes a *neuron group* of
``K = B * 2^k`` IF neurons that see the same inputs and weights and fire once at most, in one
time step, with thresholds ``theta_1 < ... < theta_K``: the group's spike count is the integer
activation ``y' = 2^k * Quant(r)``. Batch norm is folded into those thresholds (Eqs. 8-10):
member ``j`` fires iff ``y'(s) >= j`` for the exact integer sum ``s``, i.e. iff ``s`` reaches the
smallest integer whose activation is at least ``j``. That integer is found from the analytic
bound and then checked against the very float64 function that defines the quantised ANN
(``QuantisedAnn``), so the conversion is lossless by construction, sample by sample. A negative
BN scale flips the neuron's weights (the comparison flips, Zou et al. omit the scale); a zero
scale makes the neuron constant. The next layer reads each group through ``K`` axons with the
same weight (columns duplicated), so its sums see ``sum_n w_n * y'_n`` exactly.

In a bundle (docs/semantics.md) the group is an ordinary layer: ``K`` rows per ANN neuron (member
``j`` of neuron ``n`` is neuron ``n*K + j``; of conv channel ``c`` it is channel ``c*K + j``), one
threshold per neuron, ``leak none``, ``reset zero``, ``T = 1``, direct input encoding. A threshold
``<= 0`` (the neuron fires on a zero sum) is written as ``theta = 1`` with ``bias = 1 - theta``;
``v_bits`` grows per layer until every threshold and bias fits.

Modes (``SGNet.set_mode``): ``ann`` the float ReLU network; ``float`` quantised activations with
float weights; ``quant`` the quantised ANN (evaluated exactly in eval mode: integer sums, float64
batch norm and rounding); ``bittrue`` the converted SNN through ``spikeforge.algo.snn.bittrue``
(docs/semantics.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.encoding import get_encoder
from spikeforge.algo.snn.models import SNN, ModeSwitch, SynapseGeometry, parse_arch
from spikeforge.algo.snn.quant import fake_quant_symmetric, quantize_symmetric, ste
from spikeforge.algo.training.pipeline import (
    TrainConfig,
    Trainer,
    evaluate,
    fit_ann,
    fit_stage,
    input_shape_for,
)
from spikeforge.sim.datasets import Dataset
from spikeforge.sim.golden import sum_bound
from torch import Tensor, nn

#: Largest membrane width the conversion may choose (the bundle format allows more; the chip
#: holds 24).
MAX_V_BITS = 32


def group_size(k: int, bound: int) -> int:
    """``K = B * 2^k``: IF neurons per ANN neuron (Zou et al.'s ``k_rep``)."""
    if k < 0 or bound < 1:
        raise ValueError(f"need k >= 0 and B >= 1, got k={k}, B={bound}")
    return bound << k


def quantize_counts(r: Tensor, k: int, bound: int) -> Tensor:
    """The integer activation ``y' = clip(floor(r * 2^k + 0.5), 0, B * 2^k)`` (half-up)."""
    return torch.clamp(torch.floor(r * float(1 << k) + 0.5), 0, group_size(k, bound))


def quant_relu(r: Tensor, k: int, bound: int) -> Tensor:
    """Zou et al.'s median-quantised ReLU (Eq. 6) with the gradient of ``clip(r, 0, B)``."""
    return ste(r.clamp(0.0, float(bound)), quantize_counts(r.detach(), k, bound) / float(1 << k))


def ternarize(w: Tensor) -> tuple[Tensor, Tensor]:
    """TWN ternary weights: ``t = sign(w) * [|w| > 0.7 mean|w|]``, ``alpha`` = mean ``|w|`` kept.

    Returns ``(t, alpha)`` (detached); ``alpha * t`` approximates ``w``.
    """
    a = w.detach().abs()
    keep = a > 0.7 * a.mean()
    t = torch.sign(w.detach()) * keep
    alpha = (a * keep).sum() / keep.sum().clamp(min=1)
    return t, alpha.clamp(min=1e-12)


def fake_ternary(w: Tensor) -> Tensor:
    """``alpha * t`` forward, identity gradient to ``w``."""
    t, alpha = ternarize(w)
    return ste(w, t * alpha)


class SGLayer(SynapseGeometry, nn.Module):
    """A synapse (no bias) and, for hidden layers, a batch norm before the quantised ReLU.

    ``weights``: ``ternary`` (hidden layers) or ``int`` (symmetric ``w_bits`` integers).
    """

    # spikeforge.algo.training.pipeline.constrain looks for LIF neurons: there are none here
    neuron = None

    def __init__(
        self,
        synapse: nn.Linear | nn.Conv2d,
        in_shape: Sequence[int],
        *,
        name: str,
        weights: str,
        w_bits: int,
        hidden: bool,
    ) -> None:
        super().__init__()
        if weights not in ("ternary", "int"):
            raise ValueError(f"{name}: weights must be 'ternary' or 'int', got {weights!r}")
        self.synapse = synapse
        self.name = name
        self.weights = weights
        self.w_bits = 2 if weights == "ternary" else w_bits
        self.in_shape = tuple(int(v) for v in in_shape)
        out = synapse.out_features if isinstance(synapse, nn.Linear) else synapse.out_channels
        self.bn: nn.Module | None = None
        if hidden:
            self.bn = nn.BatchNorm1d(out) if isinstance(synapse, nn.Linear) else nn.BatchNorm2d(out)

    def fake_weight(self) -> Tensor:
        """The quantised weights in the float domain (straight-through)."""
        w = self.synapse.weight
        return (
            fake_ternary(w) if self.weights == "ternary" else fake_quant_symmetric(w, self.w_bits)
        )

    @torch.no_grad()
    def int_weight(self) -> tuple[Tensor, float]:
        """Integer weights (float64) and the float value of one weight unit."""
        w = self.synapse.weight.detach().to(torch.float64)
        if self.weights == "ternary":
            t, alpha = ternarize(w)
            return t, float(alpha)
        w_int, delta = quantize_symmetric(w, self.w_bits)
        return w_int.detach(), float(delta)

    def bn_params(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean, inv, beta)`` in float64, ``inv = gamma / sqrt(var + eps)`` (running stats)."""
        bn = self.bn
        assert bn is not None, f"{self.name} has no batch norm"
        mean = bn.running_mean.detach().to(torch.float64).numpy()
        var = bn.running_var.detach().to(torch.float64).numpy()
        gamma = bn.weight.detach().to(torch.float64).numpy()
        beta = bn.bias.detach().to(torch.float64).numpy()
        return mean, gamma / np.sqrt(var + float(bn.eps)), beta


def counts_of_sums(
    s: np.ndarray,
    scale: float,
    mean: np.ndarray,
    inv: np.ndarray,
    beta: np.ndarray,
    k: int,
    bound: int,
) -> np.ndarray:
    """The quantised ANN's integer activations for exact sums ``s [..., C, M]`` (float64).

    ``r = (s * scale - mean) * inv + beta``; ``y' = clip(floor(r * 2^k + 0.5), 0, B 2^k)``. This one
    function defines the quantised ANN in eval mode and decides every folded threshold.
    """
    r = (s * scale - mean[:, None]) * inv[:, None] + beta[:, None]
    return np.clip(np.floor(r * float(1 << k) + 0.5), 0, group_size(k, bound))


@dataclass
class FoldedGroups:
    """A hidden layer's neuron groups: per ANN neuron (channel) ``c`` the sign applied to its
    weights and, per member ``j``, the smallest (sign-flipped) sum ``s`` with ``y' >= j + 1``
    (``-S`` when it always fires, ``S + 1`` when it never does)."""

    sign: np.ndarray  # [C] in {-1, 0, 1}
    cut: np.ndarray  # [C, K] int64

    @property
    def theta(self) -> np.ndarray:
        """Bundle thresholds (at least 1)."""
        return np.maximum(self.cut, 1)

    @property
    def bias(self) -> np.ndarray:
        """Bundle biases: ``1 - cut`` where the cut is not positive, else 0."""
        return np.maximum(1 - self.cut, 0)


def fold_groups(
    scale: float,
    mean: np.ndarray,
    inv: np.ndarray,
    beta: np.ndarray,
    reach: np.ndarray,
    k: int,
    bound: int,
) -> FoldedGroups:
    """Fold batch norm and the quantised ReLU into ``K`` integer thresholds per channel.

    ``reach[c]`` bounds ``|s|`` for channel ``c``. The analytic cut ``ceil(s*)`` is corrected
    against ``counts_of_sums`` until member ``j`` fires exactly when ``y'(s) >= j``.
    """
    n_groups = group_size(k, bound)
    slope = scale * inv
    sign = np.sign(slope).astype(np.int64)
    reach = np.where(sign == 0, 0, np.asarray(reach, dtype=np.int64))
    j = np.arange(1, n_groups + 1, dtype=np.float64)[None, :]

    def count(s: np.ndarray) -> np.ndarray:  # activation as a function of the flipped sum
        return counts_of_sums(s * sign[:, None], scale, mean, inv, beta, k, bound)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        exact = (((j - 0.5) / float(1 << k) - beta[:, None]) / inv[:, None] + mean[:, None]) / scale
        guess = np.ceil(exact * sign[:, None])
    lo, hi = -reach[:, None], reach[:, None] + 1
    guess = np.where(np.isfinite(guess), guess, 0.0)
    cut = np.clip(guess, lo, hi).astype(np.int64)
    for _ in range(64):
        down = (cut > lo) & (count((cut - 1).astype(np.float64)) >= j)
        up = (cut < hi) & (count(cut.astype(np.float64)) < j)
        if not (down.any() or up.any()):
            break
        cut = cut - down + up
    fires_at_cut = count(cut.astype(np.float64)) >= j
    not_below = count((cut - 1).astype(np.float64)) < j
    if not (np.all(fires_at_cut | (cut == hi)) and np.all(not_below | (cut == lo))):
        raise RuntimeError("threshold folding did not converge (activation not monotone?)")
    return FoldedGroups(sign=sign, cut=cut)


@dataclass
class QuantisedAnnOutput:
    """The quantised ANN's integer activations per hidden layer and its output sums."""

    counts: dict[str, Tensor]  # [N, *out_shape] (ANN neurons), integer-valued float64
    sums: Tensor  # [N, classes], the output layer's exact integer sums
    logits: Tensor  # sums * unit


class SGNet(ModeSwitch, nn.Module):
    """A scatter-and-gather network: hidden ``SGLayer`` s with batch norm, a linear output.

    Duck-types what ``spikeforge train`` uses of ``spikeforge.algo.snn.models.SNN`` (modes,
    ``encode``, ``run``, ``run_bittrue``, ``int_layers``, the input description), so export and the
    bit-true / golden checks are the shared ones.
    """

    def __init__(
        self,
        layers: Sequence[SGLayer],
        input_shape: Sequence[int],
        *,
        k: int = 1,
        bound: int = 2,
        input_bits: int = 8,
        input_signed: bool = False,
        input_scale: float = 1.0 / 255,
        w_bits: int = 6,
        v_bits: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if not layers or layers[-1].bn is not None or any(x.bn is None for x in layers[:-1]):
            raise ValueError("hidden layers need batch norm and the output layer none")
        self.layers = nn.ModuleList(layers)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.k, self.bound = k, bound
        self.group = group_size(k, bound)
        self.timesteps = 1
        self.encoder = get_encoder("direct")
        self.input_bits, self.input_signed = input_bits, input_signed
        self.input_scale = float(input_scale)
        self.w_bits, self.v_bits = w_bits, v_bits
        self.dropout = dropout
        self.mode = "quant"
        self.record = False
        self.recorded: dict[str, Tensor] = {}

    @property
    def encoding(self) -> str:
        return "direct"

    def encode(self, codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Direct encoding: the codes, shaped ``[N, *input_shape]``."""
        return self.encoder(codes.reshape(codes.shape[0], *self.input_shape), 1, self.input_scale)

    def forward(self, codes: Tensor) -> Tensor:
        """Logits for integer input codes in the current mode."""
        return self.run(self.encode(codes))

    def run(self, x: Tensor) -> Tensor:
        """Logits for bundle-level input (codes); the quantised ANN is exact in eval mode."""
        if self.mode == "bittrue":
            return self.run_bittrue(x).logits
        if self.mode == "quant" and not self.training:
            return self.quantised_ann(x).logits.to(torch.float32)
        return self._float_forward(x, quant_w=self.mode == "quant", quant_act=self.mode != "ann")

    def ann_forward(self, codes: Tensor) -> Tensor:
        """The float ReLU network (batch norm, no quantisation)."""
        return self._float_forward(self.encode(codes), quant_w=False, quant_act=False)

    def _float_forward(self, x: Tensor, *, quant_w: bool, quant_act: bool) -> Tensor:
        x = x.to(torch.float32) * self.input_scale
        for layer in self.layers:
            s = layer.current(x, layer.fake_weight() if quant_w else layer.synapse.weight)
            if layer.bn is None:
                return s
            r = layer.bn(s)
            x = quant_relu(r, self.k, self.bound) if quant_act else F.relu(r)
            x = F.dropout(x, self.dropout, self.training)
        raise AssertionError("unreachable: the last layer has no batch norm")

    def _in_unit(self, index: int) -> float:
        return self.input_scale if index == 0 else 1.0 / float(1 << self.k)

    @torch.no_grad()
    def quantised_ann(self, x: Tensor) -> QuantisedAnnOutput:
        """The quantised ANN on input codes, exactly: integer sums, float64 BN and rounding."""
        h = x.to(torch.float64).reshape(x.shape[0], *self.input_shape)
        counts: dict[str, Tensor] = {}
        for index, layer in enumerate(self.layers):
            w_int, step = layer.int_weight()
            s = layer.current(h, w_int)
            scale = step * self._in_unit(index)
            if layer.bn is None:
                return QuantisedAnnOutput(counts, s, s * scale)
            mean, inv, beta = layer.bn_params()
            flat = s.reshape(s.shape[0], s.shape[1], -1).numpy()
            y = np.stack(
                [counts_of_sums(f, scale, mean, inv, beta, self.k, self.bound) for f in flat]
            )
            h = torch.as_tensor(y).reshape(s.shape)
            counts[layer.name] = h
        raise AssertionError("unreachable: the last layer has no batch norm")

    def fold(self) -> list[FoldedGroups]:
        """The folded neuron groups of every hidden layer (from the BN running statistics)."""
        return [g for g, _ in self._folded()]

    @torch.no_grad()
    def _folded(self) -> list[tuple[FoldedGroups, np.ndarray]]:
        out, max_in = [], self._max_input()
        for index, layer in enumerate(self.layers[:-1]):
            w_int, step = layer.int_weight()
            w = w_int.numpy()
            reach = np.abs(w.reshape(w.shape[0], -1)).sum(1) * (
                max_in if index == 0 else self.group
            )
            mean, inv, beta = layer.bn_params()
            folded = fold_groups(
                step * self._in_unit(index), mean, inv, beta, reach, self.k, self.bound
            )
            out.append((folded, w))
        return out

    def _max_input(self) -> int:
        lo, hi = (
            (-(1 << (self.input_bits - 1)), (1 << (self.input_bits - 1)) - 1)
            if self.input_signed
            else (0, (1 << self.input_bits) - 1)
        )
        return max(abs(lo), abs(hi))

    @torch.no_grad()
    def int_layers(self) -> list[bittrue.IntLayer]:
        """The converted SNN (neuron groups, folded thresholds) as integer layers
        (docs/semantics.md)."""
        folded = self._folded()
        result, in_shape, prev_grouped = [], self.input_shape, False
        for index, layer in enumerate(self.layers):
            hidden = layer.bn is not None
            if hidden:
                groups, w = folded[index]
                w = w * groups.sign.reshape(-1, *([1] * (w.ndim - 1)))
                w = np.repeat(w, self.group, axis=0)
            else:
                w, step = layer.int_weight()
                w = w.numpy()
            if prev_grouped:
                w = self._expand_inputs(w, layer)
            out_shape = (w.shape[0], *layer.out_shape[1:])
            theta: Tensor = torch.ones((), dtype=bittrue.DTYPE)
            bias = None
            v_bits = self.v_bits
            if hidden:
                per_neuron = math.prod(out_shape[1:])
                theta_np = np.repeat(groups.theta.reshape(-1), per_neuron)
                bias_np = np.repeat(groups.bias.reshape(-1), per_neuron)
                need = int(max(theta_np.max(), bias_np.max()))
                v_bits = max(v_bits, need.bit_length() + 1)
                theta = torch.as_tensor(theta_np, dtype=bittrue.DTYPE).reshape(out_shape)
                if bias_np.any():
                    bias = torch.as_tensor(bias_np, dtype=bittrue.DTYPE).reshape(out_shape)
                unit = layer.int_weight()[1] * self._in_unit(index)
            else:
                reach = sum_bound(w.astype(np.int64), self._max_input() if index == 0 else 1)
                v_bits = max(v_bits, int(reach).bit_length() + 1)
                unit = step * self._in_unit(index)
            if v_bits > MAX_V_BITS:
                raise ValueError(
                    f"{layer.name}: folded thresholds need {v_bits}-bit potentials "
                    f"(> {MAX_V_BITS}); use fewer input bits or weight bits"
                )
            result.append(
                bittrue.IntLayer(
                    name=layer.name,
                    kind=layer.kind,
                    weight=torch.as_tensor(w, dtype=bittrue.DTYPE),
                    in_shape=tuple(in_shape),
                    out_shape=tuple(out_shape),
                    w_bits=layer.w_bits,
                    v_bits=v_bits,
                    theta=theta,
                    leak_mode="none",
                    reset="zero" if hidden else "none",
                    fire="lif" if hidden else "accum",
                    bias=bias,
                    stride=tuple(layer.synapse.stride) if layer.kind == "conv2d" else (1, 1),
                    padding=tuple(layer.synapse.padding) if layer.kind == "conv2d" else (0, 0),
                    unit=unit,
                )
            )
            in_shape, prev_grouped = out_shape, hidden
        return result

    def _expand_inputs(self, w: np.ndarray, layer: SGLayer) -> np.ndarray:
        """Duplicate each input (ANN neuron or channel) into its group's ``K`` axons."""
        if layer.kind == "conv2d" or len(layer.in_shape) == 1:
            return np.repeat(w, self.group, axis=1)
        c, h, wd = layer.in_shape  # a linear layer reading a conv output, [C,H,W] order
        per = w.reshape(w.shape[0], c, h * wd)
        return np.repeat(per, self.group, axis=1).reshape(w.shape[0], -1)

    def run_bittrue(self, x: Tensor) -> bittrue.BitTrueOutput:
        """The converted SNN on input codes (one step, docs/semantics.md exactly)."""
        x = x.reshape(x.shape[0], *self.input_shape)
        with torch.no_grad():
            out = bittrue.forward(self.int_layers(), x, 1, "direct")
        if self.record:
            self.recorded = dict(out.spikes)
        return out

    def group_counts(self, spikes: dict[str, Tensor | np.ndarray]) -> dict[str, np.ndarray]:
        """Spike counts per ANN neuron from the SNN's spikes ``[N, T, *out]`` (T = 1)."""
        counts = {}
        for layer in self.layers[:-1]:
            s = np.asarray(spikes[layer.name])
            n, t, c = s.shape[:3]
            grouped = s.reshape(n, t, c // self.group, self.group, *s.shape[3:])
            counts[layer.name] = grouped.sum(axis=(1, 3))
        return counts


def build_sg(config: TrainConfig, data: Dataset, k: int = 1, bound: int = 2) -> SGNet:
    """The scatter-and-gather network ``config.arch`` describes, for ``data``."""
    shape = input_shape_for(config.arch, data)
    specs = parse_arch(config.arch)
    layers: list[SGLayer] = []
    current = tuple(shape)
    for index, spec in enumerate(specs):
        synapse = spec.synapse(current)
        nn.init.kaiming_normal_(synapse.weight, nonlinearity="relu")
        layer = SGLayer(
            synapse,
            current,
            name=f"{'conv' if spec.kind == 'conv2d' else 'fc'}{index + 1}",
            weights="int" if index == 0 else "ternary",
            w_bits=config.w_bits,
            hidden=True,
        )
        layers.append(layer)
        current = layer.out_shape
    out = nn.Linear(math.prod(current), data.classes, bias=False)
    nn.init.kaiming_normal_(out.weight, nonlinearity="linear")
    layers.append(
        SGLayer(out, current, name="out", weights="int", w_bits=config.w_bits, hidden=False)
    )
    return SGNet(
        layers,
        shape,
        k=k,
        bound=bound,
        input_bits=data.bits,
        input_signed=data.signed,
        input_scale=data.scale,
        w_bits=config.w_bits,
        v_bits=config.v_bits,
        dropout=config.dropout,
    )


@torch.no_grad()
def conversion_check(net: SGNet, codes: np.ndarray, batch_size: int = 500) -> dict[str, int | bool]:
    """Compare the SNN's group spike counts with the quantised ANN's activations, every sample.

    Returns the number of activations compared, how many differ, and whether the output sums
    (the SNN's final potentials) equal the ANN's integer output sums.
    """
    was_mode, was_training = net.mode, net.training
    net.eval()
    compared = differ = 0
    sums_equal = True
    try:
        for start in range(0, len(codes), batch_size):
            x = net.encode(torch.as_tensor(codes[start : start + batch_size]))
            ann = net.quantised_ann(x)
            snn = bittrue.to_result(net.run_bittrue(x))
            for name, got in net.group_counts(snn.spikes).items():
                want = ann.counts[name].numpy()
                compared += want.size
                differ += int(np.sum(got != want))
            sums_equal &= bool(np.array_equal(snn.v_out, ann.sums.numpy().astype(np.int64)))
    finally:
        net.set_mode(was_mode).train(was_training)
    return {"activations_compared": compared, "differ": differ, "output_sums_equal": sums_equal}


def method_settings(config: TrainConfig) -> tuple[int, int]:
    """``(k, B)`` from ``--method-option k=.. --method-option B=..`` (defaults 1 and 2)."""
    options = dict(getattr(config, "method_options", None) or {})
    unknown = sorted(set(options) - {"k", "B"})
    if unknown:
        raise ValueError(f"scatter-gather: unknown method options {unknown}; expected k and B")
    try:
        k, bound = int(options.get("k", 1)), int(options.get("B", 2))
    except ValueError:
        raise ValueError(f"scatter-gather: k and B must be integers, got {options}") from None
    group_size(k, bound)
    return k, bound


def scatter_gather(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> SGNet:
    """Zou et al.: float ANN (``ann_epochs``) -> quantised ANN (``snn_epochs``) -> groups.

    ``net`` (the LIF network of the other methods) is not used; the returned ``SGNet`` is.
    """
    if config.timesteps != 1:
        raise ValueError(
            f"scatter-gather runs in one time step: pass --timesteps 1 (got {config.timesteps})"
        )
    k, bound = method_settings(config)
    sg = build_sg(config, data, k, bound)
    fit_ann(sg, data, config, trainer)
    fit_stage(sg, data, config, trainer, stage="snn", phase="quant", mode="quant")
    check = conversion_check(sg, data.x_test)
    trainer.log(
        f"scatter-gather (k={k}, B={bound}, {sg.group} neurons per group): "
        f"{check['activations_compared']} activations compared, {check['differ']} differ"
    )
    trainer.history.append(
        {
            "phase": "convert",
            "mode": "bittrue",
            "epoch": 0,
            "test_acc": evaluate(sg, data.x_test, data.y_test, "bittrue"),
            **check,
        }
    )
    return sg
