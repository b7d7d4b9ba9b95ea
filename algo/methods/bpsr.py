"""BPSR (Yan et al.): backpropagation with sparsity regularisation, rewiring, post-training
quantisation with the leak rounded to a shift.

* Loss (their eq. 4): ``CE + (lambda_s/2) sum_{i,t} s_i^t^2 + lambda_w sum |w|``, the spike term
  over every hidden layer's spikes (per sample: summed over neurons and steps, averaged over the
  batch), L1 over every weight.
* Neuron: LIF with a trainable leak ``tau`` per layer (BPSR shares it per layer in conv layers;
  a bundle holds one leak per layer), initialised to 0.5, fixed threshold ``U_th = 1``; weights
  clamped to ``[-U_th, U_th]`` after every step. The Gaussian surrogate with ``alpha = 0.7``:
  ``alpha/sqrt(pi) exp(-alpha^2 (u - U_th)^2)`` (``bpsr_surrogate``).
* Rewiring (their sec. 3, Algorithm 1), every optimiser step: momentum
  ``m <- beta_m m + (1 - beta_m) grad`` (the text: an exponential moving average; eq. 15 prints
  ``m + (1 - beta_m) grad``); prune ``|w| < Theta_w``; grow where
  ``|m| > Theta_m (1 + mu_m ||c_i - c_j||^(1/2))`` with random neuron coordinates in the unit
  cube (for convolutions: one coordinate per channel); ``mask = (w != 0) & ~prune | grow``;
  weights and gradients are masked (and the weights again after the step, since Adam moves a
  weight whose gradient is zero).
* Post-training quantisation: symmetric ``w_bits`` weights (the project's export), every leak
  ``tau`` rounded to the nearest ``1 - 2^-k`` (leak mode ``shift``: ``v - (v >> k)``, k >= 1),
  then the bundle. No training after quantisation.

Differences from the paper, chosen for this package: the output layer accumulates (the
project's readout) instead of ``softmax(k sum_t s)``; no neuron bias; ``tau`` per layer, not per
neuron; the shift leak computes ``v (1 - 2^-k)`` (docs/semantics.md), so ``tau < 0.5`` rounds
to 0.5.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from spikeforge.algo.snn.models import SNN
from spikeforge.algo.snn.neurons import LIF
from spikeforge.algo.snn.surrogate import Surrogate, get_surrogate
from spikeforge.algo.training.pipeline import TrainConfig, Trainer, evaluate, fixed_inputs
from spikeforge.sim.datasets import Dataset
from torch import Tensor

ALPHA = 0.7


@dataclass
class BPSRSettings:
    """BPSR's knobs. Defaults: Table 2 for the rewiring; ``lambda_s`` / ``lambda_w`` scaled to
    this package's per-sample sums on small networks (the paper's 1e-7 / 1e-2 are for its
    un-normalised sums; see docs/methods_conversion.md)."""

    lambda_s: float = 1e-2
    lambda_w: float = 1e-3
    rewire: bool = True
    theta_w: float = 1e-2
    theta_m: float = 1e-4
    mu_m: float = 5.0
    beta_m: float = 0.99
    u_th: float = 1.0
    tau: float = 0.5
    epochs: int = 30
    lr: float = 1e-2
    seed: int = 0


def bpsr_surrogate(alpha: float = ALPHA) -> Surrogate:
    """BPSR's ``g'(x) = alpha/sqrt(pi) exp(-alpha^2 x^2)`` in ``z = u/theta - 1`` (= ``x`` for
    ``theta = 1``): the project's Gaussian with ``gamma = alpha/sqrt(pi)``,
    ``sigma = 1/(alpha sqrt 2)``."""
    return get_surrogate(
        "gaussian", gamma=alpha / math.sqrt(math.pi), sigma=1.0 / (alpha * math.sqrt(2.0))
    )


def spike_penalty(spikes: list[Tensor], batch: int) -> Tensor:
    """``(1/2) sum_{layers, i, t} s^2`` per sample (averaged over the batch)."""
    total = sum(s.pow(2).sum() for s in spikes)
    return 0.5 * total / batch  # type: ignore[operator]


def weight_penalty(net: SNN) -> Tensor:
    """``sum |w|`` over every layer's weights."""
    return sum(layer.synapse.weight.abs().sum() for layer in net.layers)  # type: ignore[return-value]


class Rewiring:
    """BPSR's prune-and-grow masks, one per weight tensor (Algorithm 1, lines 13-16)."""

    def __init__(self, net: SNN, settings: BPSRSettings, seed: int = 0) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.settings = settings
        self.weights: list[Tensor] = []
        self.masks: list[Tensor] = []
        self.momenta: list[Tensor] = []
        self.grow_at: list[Tensor] = []
        for layer in net.layers:
            w = layer.synapse.weight
            out_units, in_units = w.shape[0], w.shape[1]
            post = torch.rand(out_units, 3, generator=generator)
            pre = torch.rand(in_units, 3, generator=generator)
            distance = torch.cdist(post, pre)  # [out, in]
            level = settings.theta_m * (1.0 + settings.mu_m * distance.sqrt())
            self.grow_at.append(level.view(out_units, in_units, *[1] * (w.dim() - 2)).expand_as(w))
            self.weights.append(w)
            self.masks.append(torch.ones_like(w, dtype=torch.bool))
            self.momenta.append(torch.zeros_like(w))

    @torch.no_grad()
    def after_backward(self) -> None:
        """Update momenta, prune and grow, mask weights and gradients (before the step)."""
        s = self.settings
        for index, w in enumerate(self.weights):
            grad = w.grad if w.grad is not None else torch.zeros_like(w)
            m = self.momenta[index].mul_(s.beta_m).add_(grad, alpha=1.0 - s.beta_m)
            prune = w.abs() < s.theta_w
            grow = m.abs() > self.grow_at[index]
            mask = ((w != 0) & ~prune) | grow
            self.masks[index] = mask
            w.mul_(mask)
            if w.grad is not None:
                w.grad.mul_(mask)

    @torch.no_grad()
    def after_step(self) -> None:
        """Re-apply the masks (Adam moves weights whose gradient was masked to zero)."""
        for w, mask in zip(self.weights, self.masks, strict=True):
            w.mul_(mask)

    def synapses(self) -> int:
        """Connections alive now (non-zero weights)."""
        return sum(int((w != 0).sum()) for w in self.weights)


def prepare(net: SNN, settings: BPSRSettings, surrogate: Surrogate | None = None) -> None:
    """BPSR's neuron on every LIF layer: trainable multiplicative leak ``tau``, fixed
    threshold ``U_th`` (and ``surrogate`` if given)."""
    with torch.no_grad():
        for layer in net.layers:
            neuron = layer.neuron
            if isinstance(neuron, LIF):
                neuron.leak_mode = "mult"
                neuron.leak.fill_(settings.tau).requires_grad_(True)
                neuron.threshold.fill_(settings.u_th).requires_grad_(False)
                if surrogate is not None:
                    neuron.surrogate = surrogate


def train_bpsr(
    net: SNN, data: Dataset, config: TrainConfig, settings: BPSRSettings, trainer: Trainer
) -> None:
    """Surrogate BPTT in float mode with BPSR's loss, clamps and (optionally) rewiring."""
    net.set_mode("float")
    spikes: list[Tensor] = []
    hooks = [
        layer.neuron.register_forward_hook(lambda _m, _a, out: spikes.append(out))
        for layer in net.layers
        if isinstance(layer.neuron, LIF)
    ]
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=settings.lr)
    batches = math.ceil(len(data.y_train) / config.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, settings.epochs * batches)
    rewiring = Rewiring(net, settings, settings.seed) if settings.rewire else None
    rng = np.random.default_rng(settings.seed)
    x_all, y_all = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    try:
        for epoch in range(settings.epochs):
            net.train()
            start, total, correct, rate = time.perf_counter(), 0.0, 0, 0.0
            order = torch.as_tensor(rng.permutation(len(y_all)))
            for b in range(batches):
                idx = order[b * config.batch_size : (b + 1) * config.batch_size]
                spikes.clear()
                logits = net(x_all[idx])
                loss = F.cross_entropy(logits, y_all[idx])
                if settings.lambda_s:
                    loss = loss + settings.lambda_s * spike_penalty(spikes, len(idx))
                if settings.lambda_w:
                    loss = loss + settings.lambda_w * weight_penalty(net)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                if rewiring is not None:
                    rewiring.after_backward()
                optimiser.step()
                schedule.step()
                with torch.no_grad():
                    if rewiring is not None:
                        rewiring.after_step()
                    for layer in net.layers:
                        layer.synapse.weight.clamp_(-settings.u_th, settings.u_th)
                        if isinstance(layer.neuron, LIF):
                            layer.neuron.leak.clamp_(0.0, 1.0)
                total += float(loss.detach()) * len(idx)
                correct += int((logits.argmax(1) == y_all[idx]).sum())
                rate += sum(float(s.detach().mean()) for s in spikes) / max(len(spikes), 1)
            record = {
                "phase": "bpsr",
                "mode": "float",
                "epoch": epoch + 1,
                "loss": total / len(y_all),
                "train_acc": correct / len(y_all),
                "firing_rate": rate / batches,
                "synapses": sum(int((layer.synapse.weight != 0).sum()) for layer in net.layers),
                "seconds": time.perf_counter() - start,
            }
            if (epoch + 1) % config.eval_every == 0 or epoch + 1 == settings.epochs:
                record["test_acc"] = evaluate(
                    net, data.x_test, data.y_test, "float", trainer.eval_seed
                )
            trainer.history.append(record)
            trainer.log(
                f"bpsr epoch {epoch + 1}/{settings.epochs}: loss {record['loss']:.4f}, train "
                f"{record['train_acc']:.4f}, test {record.get('test_acc', math.nan):.4f}, rate "
                f"{record['firing_rate']:.4f}, synapses {record['synapses']} "
                f"({record['seconds']:.1f} s)"
            )
    finally:
        for hook in hooks:
            hook.remove()


def shift_for(tau: float, v_bits: int = 16) -> int:
    """The ``k`` whose shift leak ``1 - 2^-k`` is nearest to ``tau`` (in ``log2(1 - tau)``),
    clamped to ``1 .. v_bits-1``."""
    if tau >= 1.0:
        return v_bits - 1
    k = round(-math.log2(1.0 - max(tau, 0.0)))
    return int(min(max(k, 1), v_bits - 1))


@torch.no_grad()
def quantise_post_training(net: SNN, calib_codes: np.ndarray, seed: int = 0) -> list[int]:
    """PTQ: every LIF leak becomes the shift leak nearest to its ``tau``; bit-true mode with
    input shifts calibrated on ``calib_codes``. Returns the shifts ``k`` per LIF layer."""
    ks = []
    for layer in net.layers:
        neuron = layer.neuron
        if isinstance(neuron, LIF):
            k = shift_for(float(neuron.lam()), net.v_bits)
            neuron.leak_mode, neuron.shift_k = "shift", k
            neuron.leak.requires_grad_(False)
            ks.append(k)
    net.set_mode("bittrue").eval()
    net.calibrate_shifts(fixed_inputs(net, calib_codes, seed))
    return ks


def bpsr(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> None:
    """BPSR with the default ``BPSRSettings`` for ``config.snn_epochs`` epochs (Adam at the
    paper's 1e-2; ``config.snn_lr`` is not used), BPSR's Gaussian surrogate, then post-training
    quantisation with shift leaks. The reset is ``config.reset`` (BPSR's neuron: ``zero``)."""
    settings = BPSRSettings(epochs=config.snn_epochs, seed=config.seed)
    prepare(net, settings, bpsr_surrogate())
    train_bpsr(net, data, config, settings, trainer)
    taus = [
        float(layer.neuron.lam().detach()) for layer in net.layers if isinstance(layer.neuron, LIF)
    ]
    ks = quantise_post_training(net, data.x_train[: config.balance_samples], config.seed)
    trainer.log(f"trained leaks {[round(t, 3) for t in taus]} -> shift leaks k = {ks}")
