"""BNTT (Kim & Panda 2021): batch normalisation through time, its early exit, and its export.

The paper's layer (its eq. 9): every conv/linear output is normalised with a *separate* batch
norm per time step ``t`` -- statistics ``mu^t, sigma^t`` and gain ``gamma^t``, no shift ``beta``
-- before it enters a leaky soft-reset neuron::

    u^t = lam · u^(t-1) + gamma^t · (W o^t - mu^t) / sqrt(var^t + eps)
    spike when u^t >= theta, then u -= theta           (the paper writes u > theta)

Mini-batch statistics per step in training; per-step moving averages at inference. The output
layer has no BN, no leak and no threshold: its accumulated potential over ``T`` steps, divided
by ``T`` (the released code), is the logit of a cross-entropy loss. The surrogate is the
triangle ``0.3 · max(0, 1 - |u/theta - 1|)`` (code; the paper prints it without ``|.|``).

**Early exit** (the paper's section 3.4): average ``gamma^t`` over each layer's channels; the
inference can stop after the last step at which some layer's average is still at or above a
threshold (0.1 in the paper's Fig. 4), since later steps carry almost no spikes.

**Export.** At inference a BNTT layer is a per-step, per-neuron affine map of the input current
(gain ``k_t = gamma^t / sqrt(var^t + eps)``, offset ``c_t = -k_t·mu^t``). A bundle (docs/bundle.md,
version 1) has one threshold, bias and leak per neuron for all steps, so BNTT can only be
exported approximately: ``fold_bntt`` replaces ``k_t, c_t`` by their time averages ``k, c``,
which fold *exactly* into per-neuron integer thresholds ``ceil(theta / (k·unit))`` and biases
``round(c / (k·unit))`` (the leak and soft reset are linear, so dividing the whole potential by
``k`` changes nothing else). The folded network is an ordinary ``SNN`` (``FoldedSNN``): its
bit-true mode is exported by ``spikeforge.algo.training.export`` and equals the golden model bit
for bit; the gap between its accuracy and the exact BNTT network's is the cost of the approximation.

Exact export would need a per-step table per neuron: dividing the potential by ``k_t`` at every
step turns BNTT into ``v^t = lam·(k_(t-1)/k_t)·v^(t-1) + s^t - mu^t``, spike at ``theta/k_t`` --
i.e. per-step threshold, bias and leak tables (``T`` entries per neuron or per channel), or
equivalently a per-step input gain and bias in the neuron update. The integer semantics
(docs/semantics.md) have neither.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.encoding import get_encoder
from spikeforge.algo.snn.models import SNN, LayerSpec, SpikingLayer, copy_synapse, parse_arch
from spikeforge.algo.snn.neurons import LIF, Accumulator
from spikeforge.algo.snn.quant import ceil_ste, clamp_ste, round_ste
from spikeforge.algo.snn.surrogate import Triangle, spike
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

#: The paper's defaults (code: leak 0.95 in the model constructor, BN eps 1e-4, momentum 0.1).
DEFAULT_LEAK = 0.95
DEFAULT_THRESHOLD = 1.0
DEFAULT_ALPHA = 0.3
DEFAULT_EXIT_THRESHOLD = 0.1
BN_EPS = 1e-4
BN_MOMENTUM = 0.1


class BatchNormThroughTime(nn.Module):
    """Batch norm with its own statistics and gain for every time step, no shift (BNTT eq. 9).

    Input ``[T', N, C, ...]`` with ``T' <= timesteps``; step ``t`` uses ``gamma[t]`` and
    ``running_mean[t]``/``running_var[t]`` (updated with ``momentum`` in training).
    """

    def __init__(
        self,
        features: int,
        timesteps: int,
        *,
        eps: float = BN_EPS,
        momentum: float = BN_MOMENTUM,
        gamma: float = 1.0,
    ) -> None:
        super().__init__()
        if timesteps < 1 or features < 1:
            raise ValueError(f"need timesteps >= 1 and features >= 1, got {timesteps}, {features}")
        self.eps = eps
        self.momentum = momentum
        self.gamma = nn.Parameter(torch.full((timesteps, features), float(gamma)))
        self.register_buffer("running_mean", torch.zeros(timesteps, features))
        self.register_buffer("running_var", torch.ones(timesteps, features))

    @property
    def timesteps(self) -> int:
        return self.gamma.shape[0]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] > self.timesteps:
            raise ValueError(
                f"BNTT layer holds statistics for {self.timesteps} steps, got {x.shape[0]}"
            )
        return torch.stack(
            [
                F.batch_norm(
                    x[t],
                    self.running_mean[t],
                    self.running_var[t],
                    self.gamma[t],
                    None,
                    self.training,
                    self.momentum,
                    self.eps,
                )
                for t in range(x.shape[0])
            ]
        )

    def step_affine(self) -> tuple[Tensor, Tensor]:
        """Inference gain ``k_t`` and offset ``c_t`` (``[T, C]``): ``bn_t(s) = k_t·s + c_t``."""
        gain = self.gamma.detach() / torch.sqrt(self.running_var + self.eps)
        return gain, -gain * self.running_mean


class BNTTNet(nn.Module):
    """A feed-forward BNTT network: hidden layers from ``parse_arch`` strings plus a linear
    accumulator output; input is what ``encoder`` produces (``[N, T, *shape]`` trains, or codes
    for ``direct``).
    """

    def __init__(
        self,
        arch: str,
        input_shape: Sequence[int],
        classes: int,
        timesteps: int,
        *,
        leak: float = DEFAULT_LEAK,
        threshold: float = DEFAULT_THRESHOLD,
        alpha: float = DEFAULT_ALPHA,
        encoder: str = "poisson",
        input_bits: int = 8,
        input_scale: float = 1.0,
    ) -> None:
        super().__init__()
        if not 0.0 <= leak <= 1.0:
            raise ValueError(f"leak must be in [0, 1], got {leak}")
        self.arch = arch
        self.input_shape = tuple(int(v) for v in input_shape)
        self.timesteps = timesteps
        self.leak = float(leak)
        self.threshold = float(threshold)
        self.surrogate = Triangle(gamma=alpha)
        self.encoder = get_encoder(encoder)
        self.input_bits = int(input_bits)
        self.input_scale = float(input_scale)
        self.specs: list[LayerSpec] = parse_arch(arch)
        if self.specs and self.specs[0].kind == "conv2d" and len(self.input_shape) != 3:
            raise ValueError(f"a convolution needs a [C, H, W] input, got {list(input_shape)}")
        self.synapses = nn.ModuleList()
        self.norms = nn.ModuleList()
        shape = self.input_shape
        self.in_shapes: list[tuple[int, ...]] = []
        for spec in self.specs:
            self.in_shapes.append(shape)
            synapse = spec.synapse(shape)
            shape = spec.out_shape(shape)
            nn.init.xavier_uniform_(synapse.weight, gain=2.0)  # as the released code
            self.synapses.append(synapse)
            self.norms.append(BatchNormThroughTime(spec.out, timesteps))
        self.in_shapes.append(shape)
        self.out = nn.Linear(math.prod(shape), classes, bias=False)
        nn.init.xavier_uniform_(self.out.weight, gain=2.0)
        self.rates: list[float] = []

    def encode(self, codes: Tensor, generator: torch.Generator | None = None) -> Tensor:
        codes = codes.reshape(codes.shape[0], *self.input_shape)
        return self.encoder(codes, self.timesteps, self.input_scale, generator)

    def forward(self, x: Tensor, steps: int | None = None, record: bool = False) -> Tensor:
        """Logits (output potential / steps) for encoder output ``x``, over the first ``steps``."""
        steps = self.timesteps if steps is None else steps
        if not 1 <= steps <= self.timesteps:
            raise ValueError(f"steps must be in 1..{self.timesteps}, got {steps}")
        n = x.shape[0]
        if self.encoder.encoding == "direct":
            seq = (x.to(torch.float32) * self.input_scale).unsqueeze(0).expand(steps, *x.shape)
        else:
            seq = x[:, :steps].to(torch.float32).transpose(0, 1)
        rates = []
        for synapse, norm in zip(self.synapses, self.norms, strict=True):
            flat = seq.reshape(steps * n, *seq.shape[2:])
            if isinstance(synapse, nn.Linear):
                flat = flat.reshape(flat.shape[0], -1)
            current = synapse(flat)
            current = norm(current.reshape(steps, n, *current.shape[1:]))
            seq = self._neurons(current)
            if record:
                rates.append(float(seq.detach().mean()))
        flat = seq.reshape(steps * n, -1)
        out = self.out(flat).reshape(steps, n, -1)
        if record:
            self.rates = rates
        return out.sum(0) / steps

    def _neurons(self, current: Tensor) -> Tensor:
        v = torch.zeros_like(current[0])
        spikes = []
        for t in range(current.shape[0]):
            u = self.leak * v + current[t]
            s = spike(u, self.threshold, self.surrogate)
            v = u - s * self.threshold
            spikes.append(s)
        return torch.stack(spikes)

    def gamma_profile(self) -> np.ndarray:
        """``[layers, T]``: each layer's ``gamma^t`` averaged over its channels (paper Fig. 4)."""
        return np.stack([norm.gamma.detach().mean(1).numpy() for norm in self.norms])


def gain_spread(net: BNTTNet) -> list[float]:
    """Per BNTT layer, how much the inference gain ``k_t`` varies over the steps: the mean over
    channels of ``std_t(k_t) / |mean_t(k_t)|`` (0 when the time-averaged fold is exact in gain)."""
    spreads = []
    for norm in net.norms:
        gain, _ = norm.step_affine()
        spread = gain.std(0, unbiased=False) / gain.mean(0).abs().clamp(min=1e-12)
        spreads.append(float(spread.mean()))
    return spreads


def early_exit_steps(profile: np.ndarray, threshold: float = DEFAULT_EXIT_THRESHOLD) -> int:
    """Steps to run under the BNTT early-exit rule: up to the last step at which some layer's
    average ``gamma^t`` is still ``>= threshold`` (all later steps are below it in every layer).

    ``profile`` is ``[layers, T]`` (``BNTTNet.gamma_profile``). Returns ``T`` when the last step
    is still above the threshold and 1 when no step ever is (at least one step always runs).
    """
    profile = np.asarray(profile, dtype=np.float64)
    if profile.ndim != 2 or profile.shape[1] < 1:
        raise ValueError(f"profile must be [layers, T] with T >= 1, got shape {profile.shape}")
    above = np.nonzero((profile >= threshold).any(axis=0))[0]
    return int(above[-1]) + 1 if above.size else 1


@torch.no_grad()
def accuracy(
    net: BNTTNet, codes: np.ndarray, labels: np.ndarray, *, steps: int | None = None, seed: int
) -> float:
    """Test accuracy of the exact BNTT network (fixed encoder seed) over the first ``steps``."""
    net.eval()
    x = net.encode(torch.as_tensor(codes), torch.Generator().manual_seed(seed))
    preds = [net(x[i : i + 500], steps).argmax(1).numpy() for i in range(0, len(x), 500)]
    return float(np.mean(np.concatenate(preds) == labels))


def train_bntt(
    net: BNTTNet,
    data: Dataset,
    trainer: Trainer,
    *,
    epochs: int,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    batch_size: int = 64,
    seed: int = 0,
    eval_every: int = 1,
) -> None:
    """The paper's recipe: SGD with momentum, lr / 10 at 50, 70 and 90 % of the epochs
    (cross-entropy on the mean output potential, a fresh Poisson draw every batch)."""
    optimiser = torch.optim.SGD(
        net.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
    )
    milestones = sorted({max(1, round(epochs * f)) for f in (0.5, 0.7, 0.9)})
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones, gamma=0.1)
    generator = torch.Generator().manual_seed(seed)

    def batch_step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float]:
        logits = net(net.encode(x, generator))
        loss = F.cross_entropy(logits, y)
        return loss, logits, float(loss.detach()) * len(y)

    run_epochs(
        net,
        trainer.shards(data.x_train, data.y_train, batch_size, seed),
        trainer,
        epochs=epochs,
        optimiser=optimiser,
        schedule=schedule,
        seed=seed,
        batch_step=batch_step,
        test_accuracy=lambda: accuracy(net, data.x_test, data.y_test, seed=trainer.eval_seed),
        phase="bntt",
        label="bntt",
        eval_every=eval_every,
        generators=(generator,),
    )


# ------------------------------------------------------------------------------------------
# export: time-averaged BNTT folded into per-neuron thresholds and biases


class FoldedLayer(SpikingLayer):
    """A hidden layer whose current is ``gain ⊙ (W x) + offset`` (per output channel).

    In the integer domain the gain becomes the per-neuron potential unit: with ``unit`` the
    weight step (times input scale and ``2^input_shift``), ``theta_int = ceil(theta /
    (gain·unit))`` and ``bias = round(offset / (gain·unit))``; a neuron with ``gain <= 0``
    cannot be expressed with a ``>=`` comparator and gets the largest threshold (it stays
    silent unless driven to the potential limit).
    """

    def __init__(self, *args: Any, gain: Tensor, offset: Tensor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channels = gain.numel()
        view = (channels,) if self.kind == "linear" else (channels, 1, 1)
        self.gain = nn.Parameter(gain.detach().clone().float().reshape(view))
        self.offset = nn.Parameter(offset.detach().clone().float().reshape(view))

    def current(self, x: Tensor, weight: Tensor) -> Tensor:
        return super().current(x, weight) * self.gain + self.offset

    def int_layer(self, w_bits: int, v_bits: int, in_unit: float) -> bittrue.IntLayer:
        base = super().int_layer(w_bits, v_bits, in_unit)
        lo, hi = signed_range(v_bits)
        gain = self.gain.to(bittrue.DTYPE).expand(self.out_shape)
        offset = self.offset.to(bittrue.DTYPE).expand(self.out_shape)
        positive = gain > 0
        unit = base.unit * torch.where(positive, gain, torch.ones_like(gain))
        theta = clamp_ste(ceil_ste(self.neuron.threshold.to(bittrue.DTYPE) / unit), 1, hi)
        bias = clamp_ste(round_ste(offset / unit), lo, hi)
        theta = torch.where(positive, theta, torch.full_like(theta, float(hi)))
        bias = torch.where(positive, bias, torch.zeros_like(bias))
        return dataclasses.replace(base, theta=theta, bias=bias)


class FoldedSNN(SNN):
    """An ``SNN`` with ``FoldedLayer`` hidden layers (per-neuron thresholds and biases); its
    input shifts keep the 0.99 quantile of each layer's thresholds in range, the few larger
    ones saturate at the largest potential."""

    threshold_quantile = 0.99


def fold_bntt(
    net: BNTTNet, *, w_bits: int = 6, v_bits: int = 16, quant: str = "symmetric"
) -> FoldedSNN:
    """The exportable approximation of ``net``: each BNTT layer's per-step gain and offset
    replaced by their averages over the ``T`` steps (see the module docstring)."""
    layers: list[SpikingLayer] = []
    for index, (synapse, norm) in enumerate(zip(net.synapses, net.norms, strict=True)):
        gain_t, offset_t = norm.step_affine()
        copy = copy_synapse(synapse)
        neuron = LIF(
            net.threshold,
            net.leak,
            "sub",
            net.surrogate,
            leak_mode="mult",
            learn_threshold=False,
            learn_leak=False,
        )
        kind = "fc" if isinstance(synapse, nn.Linear) else "conv"
        layers.append(
            FoldedLayer(
                copy,
                neuron,
                net.in_shapes[index],
                name=f"{kind}{index + 1}",
                gain=gain_t.mean(0),
                offset=offset_t.mean(0),
            )
        )
    layers.append(SpikingLayer(copy_synapse(net.out), Accumulator(), net.in_shapes[-1], name="out"))
    direct = net.encoder.encoding == "direct"
    return FoldedSNN(
        layers,
        net.input_shape,
        net.timesteps,
        encoder=net.encoder,
        input_bits=net.input_bits if direct else 1,
        input_signed=False,
        input_scale=net.input_scale,
        w_bits=w_bits,
        v_bits=v_bits,
        quant=quant,
    )


def bntt_method(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> SNN:
    """Train a BNTT network (``config.arch``, ``timesteps``, ``encoding``, ``snn_epochs``,
    ``batch_size``; SGD lr ``method_options['lr']`` default 0.1), report the exact network's
    accuracy against the inference length and the early exit, then fold it (``fold_bntt``),
    calibrate and fine-tune bit-true for ``bittrue_epochs``; returns the folded network."""
    options = dict(getattr(config, "method_options", {}) or {})
    bntt = BNTTNet(
        config.arch,
        net.input_shape,
        data.classes,
        config.timesteps,
        leak=float(options.get("leak", DEFAULT_LEAK)),
        threshold=float(options.get("threshold", DEFAULT_THRESHOLD)),
        encoder=config.encoding,
        input_bits=data.bits,
        input_scale=data.scale,
    )
    train_bntt(
        bntt,
        data,
        trainer,
        epochs=config.snn_epochs,
        lr=float(options.get("lr", 0.1)),
        weight_decay=float(options.get("weight_decay", 5e-4)),
        batch_size=config.batch_size,
        seed=config.seed + 1,
        eval_every=config.eval_every,
    )
    seed = trainer.eval_seed
    profile = bntt.gamma_profile()
    exit_threshold = float(options.get("exit_threshold", DEFAULT_EXIT_THRESHOLD))
    exit_steps = early_exit_steps(profile, exit_threshold)
    by_steps = {
        steps: accuracy(bntt, data.x_test, data.y_test, steps=steps, seed=seed)
        for steps in range(1, config.timesteps + 1)
    }
    folded = fold_bntt(bntt, w_bits=config.w_bits, v_bits=config.v_bits, quant="symmetric")
    record = {
        "phase": "fold",
        "mode": "float",
        "epoch": 0,
        "bntt_test_acc": by_steps[config.timesteps],
        "bntt_test_acc_by_steps": by_steps,
        "early_exit_threshold": exit_threshold,
        "early_exit_steps": exit_steps,
        "bntt_test_acc_early_exit": by_steps[exit_steps],
        "gamma_profile": profile.tolist(),
        "gain_spread_over_steps": gain_spread(bntt),
        "test_acc": evaluate(folded, data.x_test, data.y_test, "float", seed),
    }
    folded.calibrate_shifts(
        fixed_inputs(folded, data.x_train[: config.balance_samples], config.seed)
    )
    record["bittrue_test_acc_before_finetune"] = evaluate(
        folded, data.x_test, data.y_test, "bittrue", seed
    )
    trainer.history.append(record)
    trainer.log(
        f"BNTT exact {record['bntt_test_acc']:.4f}; early exit (gamma < {exit_threshold}) after "
        f"{exit_steps}/{config.timesteps} steps: {record['bntt_test_acc_early_exit']:.4f}; "
        f"time-averaged fold: float {record['test_acc']:.4f}, bit-true before fine-tuning "
        f"{record['bittrue_test_acc_before_finetune']:.4f}"
    )
    start_bittrue(folded, data, config, trainer)
    return folded
