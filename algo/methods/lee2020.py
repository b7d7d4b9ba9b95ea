"""Lee, Sarwar, Panda, Srinivasan & Roy 2020: spike-based backpropagation as published.

The network (their Algorithm 1, Table 2): Poisson rate input; LIF neurons that integrate, fire
when ``V > V_th`` (strict, ``V_th = 1``), reset *hard* to 0 and otherwise leak
(``V <- lam·V``, ``lam = exp(-1/tau_m)``, ``tau_m = 100`` steps; the released code uses 0.99);
no biases; a spiking average-pooling neuron (2x2 kernel of 0.25, threshold 0.75, strict, no
leak, reset to 0: the released code); spiking residual blocks (conv -> LIF -> conv, the skip
path -- identity or 1x1 conv -- added into the *membrane* of the block's second LIF); a
non-spiking leaky output layer read as ``output = V^L(T)/T``; loss ``1/2·Σ (output - onehot)^2``
summed over the batch; dropout with one mask per iteration held over all ``T`` steps (on the
spikes of every conv/linear LIF layer, scale ``1/(1-p)``, as the code); He initialisation
``N(0, kappa/n_in)`` with ``kappa = 2`` (1 for residual networks); plain SGD, weight decay 5e-4.

Two gradients, selected by ``gradient``:

* ``aggregate`` (the text, eqs. 22-27): one backward pass on quantities summed over the window:
  ``net = W·x(T)`` with ``x(T)`` the input spike counts, ``d a/d net = a'`` (eq. 22 at ``t = T``,
  ``eq22_derivative``), ``d output / d net^L = 1/T``. Implemented by letting each layer's spike
  count carry the gradient ``a'·d net`` (value: the real count), so autograd computes exactly
  ``delta^l = (W^T delta^(l+1)) ⊙ a'`` and ``dW = x(T)·delta^T``.
* ``bptt`` (the released code): backpropagation through the ``T`` unrolled steps with the spike
  derivative ``1[V > V_th]/V_th`` (gradient only at spike steps), the reset cutting the gradient
  at spike steps, the leak passed as identity in the backward pass, and the gradient reaching
  each spike train multiplied by ``V_th·a'`` (the code's ``1 + ln(lam)·Σ_k lam^(T-t_k)/gamma``,
  ``spikeforge.algo.snn.surrogate.LeakCorrectedSTE``).

Pooling neurons (no leak) get the same rules with ``tau_m = inf``: ``a' = 1/0.75`` when they
fired, 0 when silent (the text gives no pooling gradient; this is eq. 13 with eq. 22's rule for
silent neurons, and what the code's BPTT computes).

Export (``to_snn``): a network of conv/linear LIF layers and pooling neurons becomes an ``SNN``
whose bit-true mode (hard reset ``zero``, ``mult`` leak ``round(lam·256)/256``, strict threshold
``floor(V_th/unit) + 1`` -- in the float modes ``u >= above(V_th)``, the same test in float32 --,
leaky accumulator output) the bundle expresses exactly. The pooling neuron is not a pooling layer
(docs/semantics.md has none) but a spiking layer with fixed weights, so it exports as a conv layer
(``PoolingNeuronLayer``). A residual block exports as two layers: a bundle layer reads only the
previous layer's spikes, so the block's first layer gets relay neurons that re-emit the block input
in the same step (``ResidualEntryLayer``) and the skip path becomes weights of the second layer.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.encoding import PoissonEncoder
from spikeforge.algo.snn.models import LEAK_FRAC, SNN, SpikingLayer, copy_synapse, parse_arch
from spikeforge.algo.snn.neurons import LIF
from spikeforge.algo.snn.quant import clamp_ste, floor_ste, round_ste
from spikeforge.algo.snn.surrogate import LeakCorrectedSTE, scale_grad
from spikeforge.algo.training.epoch_loop import run_epochs
from spikeforge.algo.training.pipeline import (
    TrainConfig,
    Trainer,
    evaluate,
    fixed_inputs,
    start_bittrue,
)
from spikeforge.sim.datasets import Dataset
from spikeforge.sim.semantics import signed_range
from torch import Tensor, nn

TAU_M = 100.0
CODE_LEAK = 0.99
V_TH = 1.0
POOL_THRESHOLD = 0.75
GRADIENTS = ("aggregate", "bptt")


def text_leak(tau_m: float = TAU_M) -> float:
    """The leak factor ``exp(-1/tau_m)`` of the text (0.990050 for ``tau_m = 100``)."""
    return math.exp(-1.0 / tau_m)


def eq22_derivative(spikes: Tensor, tau_m: float = TAU_M, v_th: float = V_TH) -> Tensor:
    """Eq. 22 at ``t = T`` for spike trains ``[T, ...]`` (spike ``k`` at step ``t_k`` in 1..T):

    ``a' = (1/V_th)·(1 - (1/(gamma·tau_m))·Σ_k exp(-(T - t_k)/tau_m))``, 0 when the neuron
    never fired (``gamma = 0``); ``tau_m = inf`` gives ``1/V_th`` (an IF neuron, eq. 13).
    """
    steps = spikes.shape[0]
    s = spikes.detach()
    count = s.sum(0)
    if math.isinf(tau_m):
        trace = torch.zeros_like(count)
    else:
        ages = torch.arange(steps - 1, -1, -1, dtype=s.dtype, device=s.device)
        decay = torch.exp(-ages / tau_m).view(-1, *[1] * (s.dim() - 1))
        trace = (s * decay).sum(0)
    value = (1.0 - trace / (count.clamp(min=1.0) * tau_m)) / v_th
    return torch.where(count > 0, value, torch.zeros_like(value))


class _GatedSpike(torch.autograd.Function):
    """``V > V_th`` with the released code's derivative ``1[V > V_th] / V_th``."""

    @staticmethod
    def forward(ctx, v: Tensor, v_th: float) -> Tensor:
        fired = (v > v_th).to(v.dtype)
        ctx.save_for_backward(fired)
        ctx.v_th = v_th
        return fired

    @staticmethod
    def backward(ctx, grad: Tensor):
        (fired,) = ctx.saved_tensors
        return grad * fired / ctx.v_th, None


def leak_identity_grad(v: Tensor, lam: float) -> Tensor:
    """``lam·v`` in value, identity in the backward pass (the code's detach trick)."""
    return lam * v.detach() + (v - v.detach())


def lif_hard_reset(current: Tensor, v_th: float, lam: float, *, differentiable: bool) -> Tensor:
    """Lee et al.'s neuron over ``current [T, N, ...]``: integrate, fire when ``V > v_th``,
    reset to 0, else leak by ``lam``. Returns the spike train; with ``differentiable`` the
    code's BPTT gradient flows (see the module docstring), else nothing does."""
    v = torch.zeros_like(current[0])
    spikes = []
    for t in range(current.shape[0]):
        v = v + current[t]
        if differentiable:
            s = _GatedSpike.apply(v, v_th)
            v = leak_identity_grad(v * (1.0 - s.detach()), lam)
        else:
            s = (v > v_th).to(v.dtype)
            v = lam * v * (1.0 - s)
        spikes.append(s)
    return torch.stack(spikes)


def aggregate_count(spikes: Tensor, net: Tensor, derivative: Tensor) -> Tensor:
    """Spike counts ``Σ_t spikes`` in value, ``derivative · d net`` in the backward pass."""
    return spikes.detach().sum(0) + derivative * (net - net.detach())


@dataclass
class Flow:
    """What passes between stages: the spike train ``[T, N, ...]`` and, for the aggregate
    gradient, the spike counts ``[N, ...]`` that carry it."""

    seq: Tensor
    count: Tensor | None = None


class LeeStage(nn.Module):
    """Base of the network's stages; ``lam`` and the gradient form come from the network."""

    def run(self, flow: Flow, net: LeeNet) -> Flow:
        raise NotImplementedError


def _apply(synapse: nn.Module, seq: Tensor) -> Tensor:
    """A synapse applied to every step of ``seq [T, N, ...]``."""
    steps, n = seq.shape[:2]
    flat = seq.reshape(steps * n, *seq.shape[2:])
    if isinstance(synapse, nn.Linear):
        flat = flat.reshape(steps * n, -1)
    out = synapse(flat)
    return out.reshape(steps, n, *out.shape[1:])


def _synapse_on_count(synapse: nn.Module, count: Tensor) -> Tensor:
    return synapse(count.reshape(count.shape[0], -1) if isinstance(synapse, nn.Linear) else count)


class SpikingSynapseLayer(LeeStage):
    """A conv or linear synapse feeding LIF neurons (hard reset, leak), dropout on its spikes."""

    def __init__(self, synapse: nn.Linear | nn.Conv2d) -> None:
        super().__init__()
        self.synapse = synapse

    def run(self, flow: Flow, net: LeeNet) -> Flow:
        current = _apply(self.synapse, flow.seq)
        return net.fire(
            current, _synapse_on_count(self.synapse, flow.count) if flow.count is not None else None
        )


class SpikingAvgPool(LeeStage):
    """The paper's pooling neuron: 2x2 kernel of 0.25, stride 2, threshold 0.75 (strict),
    no leak, reset to 0; no dropout."""

    def __init__(self, threshold: float = POOL_THRESHOLD, kernel: int = 2) -> None:
        super().__init__()
        self.threshold = threshold
        self.kernel = kernel

    def pool(self, x: Tensor) -> Tensor:
        return F.avg_pool2d(x, self.kernel, self.kernel)

    def run(self, flow: Flow, net: LeeNet) -> Flow:
        steps, n = flow.seq.shape[:2]
        current = self.pool(flow.seq.reshape(steps * n, *flow.seq.shape[2:]))
        current = current.reshape(steps, n, *current.shape[1:])
        if flow.count is None:
            return Flow(lif_hard_reset(current, self.threshold, 1.0, differentiable=True))
        with torch.no_grad():
            seq = lif_hard_reset(current, self.threshold, 1.0, differentiable=False)
        derivative = eq22_derivative(seq, math.inf, self.threshold)
        return Flow(seq, aggregate_count(seq, self.pool(flow.count), derivative))


class SpikingResidualBlock(LeeStage):
    """conv -> LIF -> conv, plus a skip path (identity, or a 1x1 conv when the channels or the
    stride change) added into the membrane of the second LIF."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.skip: nn.Module = (
            nn.Identity()
            if in_channels == out_channels and stride == 1
            else nn.Conv2d(in_channels, out_channels, 1, stride, 0, bias=False)
        )

    def run(self, flow: Flow, net: LeeNet) -> Flow:
        inner_count = None
        if flow.count is not None:
            inner_count = self.conv1(flow.count)
        inner = net.fire(_apply(self.conv1, flow.seq), inner_count)
        current = _apply(self.conv2, inner.seq) + _apply(self.skip, flow.seq)
        total = None
        if flow.count is not None:
            total = self.conv2(inner.count) + self.skip(flow.count)
        return net.fire(current, total)


def parse_lee_arch(spec: str) -> list[tuple[str, dict[str, int]]]:
    """Stages from ``"c12k3-p-r32s2-100"``: ``c<out>k<k>s<s>p<p>`` conv (``parse_arch``), ``p``
    the spiking 2x2 average pool, ``r<out>`` / ``r<out>s<stride>`` a residual block, ``<n>``
    a linear layer. The output layer is added by ``LeeNet``."""
    stages: list[tuple[str, dict[str, int]]] = []
    for token in filter(None, spec.replace(",", "-").split("-")):
        token = token.strip().lower()
        if token == "p":
            stages.append(("pool", {}))
        elif token.startswith("r") and token[1:].replace("s", "", 1).isdigit():
            out, _, stride = token[1:].partition("s")
            stages.append(("residual", {"out": int(out), "stride": int(stride or 1)}))
        else:
            (layer,) = parse_arch(token)
            stages.append((layer.kind, dataclasses.asdict(layer)))
    return stages


class LeeNet(nn.Module):
    """A Lee et al. 2020 network on Poisson spike trains ``[N, T, *input_shape]``."""

    def __init__(
        self,
        arch: str,
        input_shape: Sequence[int],
        classes: int,
        timesteps: int,
        *,
        gradient: str = "aggregate",
        leak: float = CODE_LEAK,
        tau_m: float = TAU_M,
        v_th: float = V_TH,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        if gradient not in GRADIENTS:
            raise ValueError(f"unknown gradient {gradient!r}; expected one of {list(GRADIENTS)}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.arch = arch
        self.input_shape = tuple(int(v) for v in input_shape)
        self.timesteps = timesteps
        self.gradient = gradient
        self.leak = float(leak)
        self.tau_m = float(tau_m)
        self.v_th = float(v_th)
        self.dropout = dropout
        self.stages = nn.ModuleList()
        shape = self.input_shape
        residual = False
        for kind, spec in parse_lee_arch(arch):
            if kind != "linear" and len(shape) != 3:
                raise ValueError(f"{kind} stage in {arch!r} needs a [C, H, W] input, got {shape}")
            if kind == "linear":
                stage: LeeStage = SpikingSynapseLayer(
                    nn.Linear(math.prod(shape), spec["out"], bias=False)
                )
                shape = (spec["out"],)
            elif kind == "conv2d":
                k, s, p = spec["kernel"], spec["stride"], spec["padding"]
                stage = SpikingSynapseLayer(nn.Conv2d(shape[0], spec["out"], k, s, p, bias=False))
                shape = (
                    spec["out"],
                    (shape[1] + 2 * p - k) // s + 1,
                    (shape[2] + 2 * p - k) // s + 1,
                )
            elif kind == "pool":
                stage = SpikingAvgPool()
                shape = (shape[0], shape[1] // 2, shape[2] // 2)
            else:
                residual = True
                s = spec["stride"]
                stage = SpikingResidualBlock(shape[0], spec["out"], s)
                shape = (spec["out"], (shape[1] - 1) // s + 1, (shape[2] - 1) // s + 1)
            self.stages.append(stage)
        self.out = nn.Linear(math.prod(shape), classes, bias=False)
        self.kappa = 1.0 if residual else 2.0
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Conv2d):
                fan_in = module.weight[0].numel()
                nn.init.normal_(module.weight, 0.0, math.sqrt(self.kappa / fan_in))
        self._masks: list[Tensor] = []

    @property
    def plain(self) -> bool:
        """True when every stage is a conv/linear LIF layer (what a bundle can express)."""
        return all(isinstance(stage, SpikingSynapseLayer) for stage in self.stages)

    def fire(self, current: Tensor, net_count: Tensor | None) -> Flow:
        """LIF neurons on ``current [T, N, ...]`` with the selected gradient, then dropout."""
        if net_count is None:
            seq = lif_hard_reset(current, self.v_th, self.leak, differentiable=True)
            factor = LeakCorrectedSTE().output_correction(seq, self.leak)
            flow = Flow(scale_grad(seq, factor))
        else:
            with torch.no_grad():
                seq = lif_hard_reset(current, self.v_th, self.leak, differentiable=False)
            derivative = eq22_derivative(seq, self.tau_m, self.v_th)
            flow = Flow(seq, aggregate_count(seq, net_count, derivative))
        if self.training and self.dropout > 0:
            mask = (torch.rand(flow.seq.shape[1:], device=flow.seq.device) >= self.dropout).to(
                flow.seq.dtype
            ) / (1.0 - self.dropout)
            self._masks.append(mask)
            flow = Flow(flow.seq * mask, None if flow.count is None else flow.count * mask)
        return flow

    def forward(self, trains: Tensor) -> Tensor:
        """``output = V^L(T)/T`` for Poisson trains ``[N, T, *input_shape]``."""
        seq = trains.to(torch.float32).transpose(0, 1)
        steps = seq.shape[0]
        self._masks = []
        flow = Flow(seq, seq.sum(0) if self.gradient == "aggregate" else None)
        for stage in self.stages:
            flow = stage.run(flow, self)
        current = _apply(self.out, flow.seq)
        if flow.count is None:
            v = torch.zeros_like(current[0])
            for t in range(steps):
                v = leak_identity_grad(v, self.leak) + current[t]
            return v / steps
        with torch.no_grad():
            v = torch.zeros_like(current[0])
            for t in range(steps):
                v = self.leak * v + current[t]
        net_out = _synapse_on_count(self.out, flow.count)
        return v / steps + (net_out - net_out.detach()) / steps


def mse_half_sum(output: Tensor, labels: Tensor) -> Tensor:
    """Eq. 9, ``1/2·Σ_j (output_j - label_j)^2``, summed over the batch (the code's sum)."""
    target = F.one_hot(labels, output.shape[1]).to(output.dtype)
    return 0.5 * ((output - target) ** 2).sum()


def poisson_trains(
    codes: np.ndarray | Tensor, scale: float, timesteps: int, generator: torch.Generator
) -> Tensor:
    """Rate coding: spike with probability ``code·scale`` at each step (text: ``rate = 1``)."""
    return PoissonEncoder()(torch.as_tensor(codes), timesteps, scale, generator)


@torch.no_grad()
def accuracy(
    net: LeeNet,
    codes: np.ndarray,
    labels: np.ndarray,
    scale: float,
    *,
    seed: int,
    steps: int | None = None,
) -> float:
    """Test accuracy on fixed-seed Poisson trains (over the first ``steps`` steps if given)."""
    net.eval()
    steps = steps or net.timesteps
    x = poisson_trains(
        codes.reshape(len(codes), *net.input_shape),
        scale,
        steps,
        torch.Generator().manual_seed(seed),
    )
    preds = [net(x[i : i + 500]).argmax(1).numpy() for i in range(0, len(x), 500)]
    return float(np.mean(np.concatenate(preds) == labels))


def train_lee(
    net: LeeNet,
    data: Dataset,
    trainer: Trainer,
    *,
    epochs: int,
    lr: float = 0.003,
    weight_decay: float = 5e-4,
    batch_size: int = 32,
    rate: float = 1.0,
    seed: int = 0,
    eval_every: int = 1,
) -> None:
    """Plain SGD on eq. 9 (summed over the batch), lr x 0.2 at 70/150, 100/150 and 125/150 of
    the epochs (the paper's schedule scaled to ``epochs``; the factor is the code's)."""
    optimiser = torch.optim.SGD(net.parameters(), lr=lr, weight_decay=weight_decay)
    milestones = sorted({max(1, round(epochs * f / 150)) for f in (70, 100, 125)})
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, gamma=0.2)
    generator = torch.Generator().manual_seed(seed)
    scale = data.scale * rate

    def batch_step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float]:
        output = net(poisson_trains(x, scale, net.timesteps, generator))
        loss = mse_half_sum(output, y)
        return loss, output, float(loss.detach())

    run_epochs(
        net,
        trainer.shards(
            data.x_train.reshape(len(data.x_train), *net.input_shape),
            data.y_train,
            batch_size,
            seed,
        ),
        trainer,
        epochs=epochs,
        optimiser=optimiser,
        schedule=schedule,
        seed=seed,
        batch_step=batch_step,
        test_accuracy=lambda: accuracy(
            net, data.x_test, data.y_test, scale, seed=trainer.eval_seed
        ),
        phase=f"lee2020-{net.gradient}",
        label=f"lee2020 ({net.gradient})",
        eval_every=eval_every,
        generators=(generator,),
        summed_loss=True,
    )


# ------------------------------------------------------------------------------------------
# export


def above(v_th: float) -> float:
    """The float32 right after ``v_th``: ``u >= above(v_th)`` is ``u > v_th`` in float32."""
    value = torch.tensor(v_th, dtype=torch.float32)
    return float(torch.nextafter(value, torch.tensor(math.inf)))


class StrictThresholdLayer(SpikingLayer):
    """A Lee et al. LIF layer (hard reset, ``mult`` leak) with the paper's strict
    ``V > V_th``: the float modes compare ``u >= above(V_th)`` (the same test in float32), the
    integers use ``theta = floor(V_th / unit) + 1`` (docs/semantics.md)."""

    def __init__(
        self,
        synapse: nn.Linear | nn.Conv2d,
        in_shape: Sequence[int],
        *,
        name: str,
        v_th: float,
        leak: float,
        dropout: float = 0.0,
    ) -> None:
        neuron = LIF(
            above(v_th),
            leak,
            "zero",
            "lee",
            leak_mode="mult",
            learn_threshold=False,
            learn_leak=False,
        )
        super().__init__(synapse, neuron, in_shape, name=name, dropout=dropout)
        self.v_th = float(v_th)

    def int_layer(self, w_bits: int, v_bits: int, in_unit: float) -> bittrue.IntLayer:
        base = super().int_layer(w_bits, v_bits, in_unit)
        threshold = torch.tensor(self.v_th, dtype=bittrue.DTYPE)
        theta = clamp_ste(floor_ste(threshold / base.unit) + 1.0, 1, signed_range(v_bits)[1])
        return dataclasses.replace(base, theta=theta)


class LeakyAccumulator(nn.Module):
    """Non-spiking output neuron that leaks (``V <- lam·V + I``); the final ``V`` is the output."""

    fire = "accum"
    reset = "none"
    leak_mode = "mult"

    def __init__(self, leak: float) -> None:
        super().__init__()
        self.leak_value = float(leak)

    def forward(self, current: Tensor) -> Tensor:
        v = torch.zeros_like(current[0])
        for t in range(current.shape[0]):
            v = self.leak_value * v + current[t]
        return v


class LeakyOutputLayer(SpikingLayer):
    """The output layer with its leak in the integer domain (``lam = round(leak·2^8)``)."""

    def int_layer(self, w_bits: int, v_bits: int, in_unit: float) -> bittrue.IntLayer:
        base = super().int_layer(w_bits, v_bits, in_unit)
        lam = clamp_ste(
            round_ste(torch.tensor(self.neuron.leak_value, dtype=bittrue.DTYPE) * (1 << LEAK_FRAC)),
            0,
            1 << LEAK_FRAC,
        )
        return dataclasses.replace(base, leak_mode="mult", lam=lam, frac=LEAK_FRAC)


class PoolingNeuronLayer(SpikingLayer):
    """The pooling neuron as an ordinary spiking conv layer with fixed weights: a ``C -> C``
    2x2 stride-2 convolution whose kernel is ``w = 0.25`` from channel ``c`` to channel ``c``
    and 0 elsewhere (a bundle has no groups), no leak, reset to 0, strict threshold 0.75.

    Its potential is always a multiple of ``w``, so the integer layer is exact: weights 1,
    ``theta = floor(0.75 / 0.25) + 1 = 4`` (fire when more than 3 input spikes accumulated
    since the last reset), input shift 0. The float modes use the threshold ``0.75 + w/2``,
    which is the strict comparison on multiples of ``w``.
    """

    def __init__(
        self,
        channels: int,
        in_shape: Sequence[int],
        *,
        name: str,
        threshold: float = POOL_THRESHOLD,
        kernel: int = 2,
    ) -> None:
        weight = 1.0 / (kernel * kernel)
        synapse = nn.Conv2d(channels, channels, kernel, kernel, 0, bias=False)
        with torch.no_grad():
            synapse.weight.zero_()
            for c in range(channels):
                synapse.weight[c, c] = weight
        synapse.weight.requires_grad_(False)
        neuron = LIF(
            threshold + weight / 2,
            1.0,
            "zero",
            "lee",
            leak_mode="none",
            learn_threshold=False,
            learn_leak=False,
        )
        super().__init__(synapse, neuron, in_shape, name=name)
        self.pool_weight = weight
        self.pool_threshold = float(threshold)

    def int_layer(self, w_bits: int, v_bits: int, in_unit: float) -> bittrue.IntLayer:
        base = super().int_layer(w_bits, v_bits, in_unit)
        ones = (self.synapse.weight.detach() > 0).to(bittrue.DTYPE)
        steps = math.floor(round(self.pool_threshold / self.pool_weight, 9)) + 1
        return dataclasses.replace(
            base,
            weight=ones,
            theta=torch.tensor(float(steps), dtype=bittrue.DTYPE),
            leak_mode="none",
            input_shift=0,
            unit=self.pool_weight * in_unit,
        )


def _hold(weight: Tensor, fixed: Tensor) -> None:
    """Keep the entries of ``weight`` where ``fixed`` is true out of every gradient step."""
    free = (~fixed).to(weight.dtype)
    weight.register_hook(lambda grad: grad * free)


class ResidualEntryLayer(StrictThresholdLayer):
    """A residual block's first layer (``conv1`` and its LIF neurons) widened with one *relay*
    neuron per block input: channel ``C_out + c`` copies input channel ``c`` through the
    centre tap of the 3x3 kernel (so at stride ``s`` it sees input position ``(s·i, s·j)``, as
    the 1x1 skip convolution does), its integer threshold equal to its (shifted) integer weight,
    reset to 0: it fires exactly when
    its input spiked, in the same step, and its potential is always 0 otherwise, so the
    layer's leak never acts on it. The next layer thereby receives the block input beside
    ``conv1``'s spikes, and the skip path becomes ordinary weights of that layer.

    The relay weight is ``max|conv1|`` (it does not change the layer's weight step) and is held
    fixed; in the float modes the relay current is rescaled to ``1.5·V_th``. The relays carry no
    dropout, so this layer has none.
    """

    def __init__(
        self, conv1: nn.Conv2d, in_shape: Sequence[int], *, name: str, v_th: float, leak: float
    ) -> None:
        c_in, c_out = conv1.in_channels, conv1.out_channels
        synapse = nn.Conv2d(c_in, c_out + c_in, 3, conv1.stride, 1, bias=False)
        relay = float(conv1.weight.detach().abs().max())
        fixed = torch.zeros_like(synapse.weight, dtype=torch.bool)
        fixed[c_out:] = True
        with torch.no_grad():
            synapse.weight.zero_()
            synapse.weight[:c_out] = conv1.weight
            for c in range(c_in):
                synapse.weight[c_out + c, c, 1, 1] = relay
        _hold(synapse.weight, fixed)
        super().__init__(synapse, in_shape, name=name, v_th=v_th, leak=leak)
        self.block_channels = c_out
        self.relay_gain = 1.5 * v_th / relay

    def current(self, x: Tensor, weight: Tensor) -> Tensor:
        s = super().current(x, weight)
        c = self.block_channels
        return torch.cat([s[:, :c], s[:, c:] * self.relay_gain], dim=1)

    def int_layer(self, w_bits: int, v_bits: int, in_unit: float) -> bittrue.IntLayer:
        base = super().int_layer(w_bits, v_bits, in_unit)
        c = self.block_channels
        relay = base.weight.detach()[c:, :, 1, 1].amax(dim=1)
        if int(relay.min()) >> base.input_shift < 1:
            raise ValueError(
                f"{self.name}: relay weight {int(relay.min())} vanishes after input_shift "
                f"{base.input_shift}; use more v_bits"
            )
        theta = base.theta.expand(self.out_shape).clone()
        # a relay's potential is its weight (shifted) when its input spiked, else 0; using that
        # as its threshold keeps u/theta = 1 at its spikes, so the surrogate gradient through
        # the reset stays O(1) per step instead of growing like the weight over T steps
        relay_theta = torch.floor(relay / float(1 << base.input_shift))
        theta[c:] = relay_theta.view(-1, 1, 1).to(theta.dtype)
        return dataclasses.replace(base, theta=theta)


def residual_exit_synapse(block: SpikingResidualBlock) -> tuple[nn.Conv2d, Tensor]:
    """The block's second convolution reading ``[conv1 spikes | relayed block input]``:
    weights ``[conv2 | skip at the centre tap]`` (identity skip: 1 from input channel ``c`` to
    output ``c``, held fixed). Returns the conv and the mask of its fixed entries."""
    c_out = block.conv2.out_channels
    c_in = block.conv1.in_channels
    synapse = nn.Conv2d(c_out + c_in, c_out, 3, 1, 1, bias=False)
    fixed = torch.zeros_like(synapse.weight, dtype=torch.bool)
    fixed[:, c_out:] = True  # the skip part: only a 1x1 skip conv's centre taps may train
    with torch.no_grad():
        synapse.weight.zero_()
        synapse.weight[:, :c_out] = block.conv2.weight
        if isinstance(block.skip, nn.Conv2d):
            synapse.weight[:, c_out:, 1, 1] = block.skip.weight[:, :, 0, 0]
            fixed[:, c_out:, 1, 1] = False
        else:
            for c in range(c_out):
                synapse.weight[c, c_out + c, 1, 1] = 1.0
    _hold(synapse.weight, fixed)
    return synapse, fixed


def to_snn(net: LeeNet, *, input_scale: float, w_bits: int = 6, v_bits: int = 16) -> SNN:
    """The deployable ``SNN`` for a ``LeeNet``: conv/linear LIF layers as they are, pooling
    neurons as ``PoolingNeuronLayer``, each residual block as two layers -- its first layer
    widened with relay neurons (``ResidualEntryLayer``) and its second reading
    ``[conv1 spikes | relayed input]`` with weights ``[conv2 | skip]`` -- since a bundle layer
    reads only the previous layer's spikes."""
    layers: list[SpikingLayer] = []
    shape = net.input_shape
    for index, stage in enumerate(net.stages):
        if isinstance(stage, SpikingResidualBlock):
            entry = ResidualEntryLayer(
                stage.conv1, shape, name=f"res{index + 1}a", v_th=net.v_th, leak=net.leak
            )
            synapse, _ = residual_exit_synapse(stage)
            exit_layer = StrictThresholdLayer(
                synapse,
                entry.out_shape,
                name=f"res{index + 1}b",
                v_th=net.v_th,
                leak=net.leak,
                dropout=net.dropout,
            )
            layers += [entry, exit_layer]
            shape = exit_layer.out_shape
            continue
        if isinstance(stage, SpikingAvgPool):
            pool = PoolingNeuronLayer(
                shape[0], shape, name=f"pool{index + 1}", threshold=stage.threshold
            )
            layers.append(pool)
            shape = pool.out_shape
            continue
        synapse = stage.synapse
        kind = "fc" if isinstance(synapse, nn.Linear) else "conv"
        layer = StrictThresholdLayer(
            copy_synapse(synapse),
            shape,
            name=f"{kind}{index + 1}",
            v_th=net.v_th,
            leak=net.leak,
            dropout=net.dropout,
        )
        layers.append(layer)
        shape = layer.out_shape
    out = nn.Linear(net.out.in_features, net.out.out_features, bias=False)
    with torch.no_grad():
        out.weight.copy_(net.out.weight)
    layers.append(LeakyOutputLayer(out, LeakyAccumulator(net.leak), shape, name="out"))
    return SNN(
        layers,
        net.input_shape,
        net.timesteps,
        encoder="poisson",
        input_bits=1,
        input_scale=input_scale,
        w_bits=w_bits,
        v_bits=v_bits,
        quant="symmetric",
    )


def options_leak(options: dict[str, str], tau_m: float) -> float:
    """``leak``: ``code`` (0.99, default), ``text`` (``exp(-1/tau_m)``) or a number."""
    value = options.get("leak", "code")
    if value == "code":
        return CODE_LEAK
    if value == "text":
        return text_leak(tau_m)
    return float(value)


def lee2020_method(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> SNN:
    """Train a ``LeeNet`` (``config.arch``, ``timesteps``, ``dropout``, ``batch_size``,
    ``snn_epochs``; options ``gradient`` aggregate|bptt, ``lr`` 0.003, ``leak`` code|text|x,
    ``tau_m`` 100, ``rate`` 1, and ``arch`` for architectures with pooling neurons ``p``, which
    the generic ``--arch`` does not parse), then deploy it (``to_snn``), calibrate the input
    shifts and fine-tune bit-true for ``bittrue_epochs``; returns the deployable network."""
    if config.encoding != "poisson":
        raise ValueError("lee2020 trains on Poisson rate input: pass --encoding poisson")
    options = dict(config.method_options or {})
    tau_m = float(options.get("tau_m", TAU_M))
    rate = float(options.get("rate", 1.0))
    arch = options.get("arch", config.arch)
    stages = parse_lee_arch(arch)
    spatial = bool(stages) and stages[0][0] != "linear"
    lee = LeeNet(
        arch,
        data.image_shape if spatial else (math.prod(data.image_shape),),
        data.classes,
        config.timesteps,
        gradient=options.get("gradient", "aggregate"),
        leak=options_leak(options, tau_m),
        tau_m=tau_m,
        dropout=config.dropout,
    )
    train_lee(
        lee,
        data,
        trainer,
        epochs=config.snn_epochs,
        lr=float(options.get("lr", 0.003)),
        weight_decay=float(options.get("weight_decay", 5e-4)),
        batch_size=config.batch_size,
        rate=rate,
        seed=config.seed + 1,
        eval_every=config.eval_every,
    )
    deploy = to_snn(lee, input_scale=data.scale * rate, w_bits=config.w_bits, v_bits=config.v_bits)
    deploy.calibrate_shifts(
        fixed_inputs(deploy, data.x_train[: config.balance_samples], config.seed)
    )
    record = {
        "phase": "deploy",
        "mode": "bittrue",
        "epoch": 0,
        "lee2020_test_acc": accuracy(
            lee, data.x_test, data.y_test, data.scale * rate, seed=trainer.eval_seed
        ),
        "test_acc": evaluate(deploy, data.x_test, data.y_test, "bittrue", trainer.eval_seed),
    }
    trainer.history.append(record)
    trainer.log(
        f"Lee 2020 float {record['lee2020_test_acc']:.4f}; deployed bit-true before fine-tuning "
        f"{record['test_acc']:.4f}"
    )
    start_bittrue(deploy, data, config, trainer)
    return deploy
