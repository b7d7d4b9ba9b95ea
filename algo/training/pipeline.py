"""Training pipelines, pluggable by name (``METHODS``), and the pieces they are made of.

* ``hybrid`` (ACE-SNN): ANN pre-training -> conversion with threshold balancing -> quantised SNN
  fine-tuning (surrogate BPTT, fake-quantised weights) -> bit-true fine-tuning.
* ``direct``: surrogate-gradient training from scratch (quantised) -> bit-true fine-tuning.

A method is ``fn(net, data, config, trainer) -> None``; register more with
``@register_method("name")``. Every phase appends per-epoch records to ``trainer.history``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from spikeforge.algo.snn.models import SNN, build_snn
from spikeforge.algo.snn.neurons import LIF
from spikeforge.algo.training.checkpoint import Checkpointer
from spikeforge.algo.training.distributed import SINGLE, Processes, Shards
from spikeforge.algo.training.epoch_loop import run_epochs
from spikeforge.algo.training.registry import get_method
from spikeforge.sim.datasets import Dataset
from torch import Tensor


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data (defaults: the digits network)."""

    arch: str = "256"
    method: str = "hybrid"
    timesteps: int = 5
    w_bits: int = 6
    v_bits: int = 16
    encoding: str = "direct"
    surrogate: str = "triangle"
    reset: str = "sub"
    leak_mode: str = "mult"
    quant: str = "affine"
    dropout: float = 0.1
    batch_size: int = 64
    ann_epochs: int = 30
    ann_lr: float = 1e-3
    snn_epochs: int = 30
    snn_lr: float = 1e-3
    bittrue_epochs: int = 10
    bittrue_lr: float = 2e-4
    weight_decay: float = 0.0
    balance_timesteps: int = 100
    balance_percentile: float = 99.7
    balance_scale: float = 0.8
    balance_samples: int = 128
    seed: int = 0
    eval_every: int = 1
    augment: bool = False
    #: Method-specific settings (``--method-option KEY=VALUE``), read by the method they name.
    method_options: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Trainer:
    """Shared state of a run: history records, progress bars, the evaluation seed, and the
    run's checkpointer, processes (``torchrun``) and data loading (``memory``/``stream``/
    ``auto``, see ``spikeforge.algo.training.distributed``)."""

    progress: bool = True
    history: list[dict[str, Any]] = field(default_factory=list)
    log: Callable[[str], None] = print
    eval_seed: int = 1234
    checkpoints: Checkpointer | None = None
    processes: Processes = SINGLE
    loader: str = "auto"
    loader_workers: int = 0

    def shards(self, x: np.ndarray, y: np.ndarray, batch_size: int, seed: int) -> Shards:
        """``(x, y)`` in mini-batches, shuffled from ``seed``, split over this run's processes
        and loaded as its ``loader`` and ``loader_workers`` say."""
        return Shards(
            x,
            y,
            batch_size,
            seed=seed,
            processes=self.processes,
            loader=self.loader,
            workers=self.loader_workers,
        )


def input_shape_for(arch: str, data: Dataset) -> tuple[int, ...]:
    """``[C, H, W]`` for a network that starts with a convolution, else the flat size."""
    from spikeforge.algo.snn.models import parse_arch

    specs = parse_arch(arch)
    if specs and specs[0].kind == "conv2d":
        return data.image_shape
    return (math.prod(data.image_shape),)


def build_for(config: TrainConfig, data: Dataset) -> SNN:
    """The network ``config`` describes, shaped for ``data``."""
    return build_snn(
        config.arch,
        input_shape_for(config.arch, data),
        data.classes,
        timesteps=config.timesteps,
        encoder=config.encoding,
        input_bits=data.bits,
        input_signed=data.signed,
        input_scale=data.scale,
        w_bits=config.w_bits,
        v_bits=config.v_bits,
        quant=config.quant,
        surrogate=config.surrogate,
        reset=config.reset,
        leak_mode=config.leak_mode,
        dropout=config.dropout,
    )


def fixed_inputs(net: SNN, codes: np.ndarray, seed: int) -> Tensor:
    """Bundle-level inputs for ``codes`` with a fixed encoder seed (reproducible spike trains)."""
    generator = torch.Generator().manual_seed(seed)
    return net.encode(torch.as_tensor(codes), generator)


@torch.no_grad()
def predict(net: SNN, x: Tensor, mode: str, batch_size: int = 500) -> np.ndarray:
    """Predictions of ``net`` in ``mode`` for bundle-level inputs ``x`` (ANN: codes)."""
    was_mode, was_training = net.mode, net.training
    net.set_mode(mode).eval()
    try:
        preds = []
        for start in range(0, len(x), batch_size):
            batch = x[start : start + batch_size]
            logits = net.ann_forward(batch) if mode == "ann" else net.run(batch)
            preds.append(logits.argmax(1).numpy())
        return np.concatenate(preds)
    finally:
        net.set_mode(was_mode).train(was_training)


def evaluate(net: SNN, codes: np.ndarray, labels: np.ndarray, mode: str, seed: int = 1234) -> float:
    """Test accuracy of ``net`` in ``mode`` (spike encodings use a fixed seed)."""
    x = torch.as_tensor(codes) if mode == "ann" else fixed_inputs(net, codes, seed)
    return float(np.mean(predict(net, x, mode) == labels))


def augment_batch(codes: Tensor, generator: torch.Generator, shift: int = 2) -> Tensor:
    """Random horizontal flips and shifts of up to ``shift`` pixels (zero fill), per sample.

    ``codes``: ``[B, C, H, W]`` integer codes; the values are never changed, only moved.
    """
    b, _, h, w = codes.shape
    flip = torch.rand(b, generator=generator) < 0.5
    codes = torch.where(flip.view(b, 1, 1, 1), codes.flip(3), codes)
    padded = F.pad(codes, (shift, shift, shift, shift))
    dy = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * shift + 1, (b,), generator=generator)
    rows = (
        (dy.view(b, 1) + torch.arange(h))
        .view(b, 1, h, 1)
        .expand(b, codes.shape[1], h, w + 2 * shift)
    )
    out = padded.gather(2, rows)
    cols = (dx.view(b, 1) + torch.arange(w)).view(b, 1, 1, w).expand(b, codes.shape[1], h, w)
    return out.gather(3, cols)


def constrain(net: SNN) -> None:
    """Keep leaks in [0, 1] and thresholds positive after an optimiser step."""
    with torch.no_grad():
        for layer in net.layers:
            if isinstance(layer.neuron, LIF):
                layer.neuron.leak.clamp_(0.0, 1.0)
                layer.neuron.threshold.clamp_(min=1e-3)


def fit(
    net: SNN,
    data: Dataset,
    trainer: Trainer,
    *,
    phase: str,
    mode: str,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.0,
    seed: int = 0,
    eval_every: int = 1,
    augment: bool = False,
) -> None:
    """Train ``net`` in ``mode`` with Adam and cosine decay; evaluates on the test split.

    ``augment`` applies ``augment_batch`` (flips and small shifts) to every training batch.
    With ``trainer.checkpoints`` the loop writes checkpoints and resumes from one; with several
    ``trainer.processes`` each batch is split across them and ``net`` trains under DDP.
    """
    if epochs <= 0:
        return
    procs = trainer.processes
    net.set_mode(mode)
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    shards = trainer.shards(data.x_train, data.y_train, batch_size, seed)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs * shards.batches)
    generator = torch.Generator().manual_seed(procs.rank_seed(seed))
    model = procs.wrap(net)

    def batch_step(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float]:
        if augment and x.dim() == 4:
            x = augment_batch(x, generator)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        return loss, logits, float(loss.detach()) * len(y)

    run_epochs(
        net,
        shards,
        trainer,
        epochs=epochs,
        optimiser=optimiser,
        schedule=schedule,
        seed=seed,
        batch_step=batch_step,
        test_accuracy=lambda: evaluate(net, data.x_test, data.y_test, mode, trainer.eval_seed),
        phase=phase,
        mode=mode,
        eval_every=eval_every,
        generators=(generator,),
        schedule_per_batch=True,
        after_step=lambda: constrain(net),
        averaged_in_backward=True,
    )


@torch.no_grad()
def balance_thresholds(
    net: SNN,
    codes: np.ndarray,
    *,
    timesteps: int = 100,
    percentile: float = 99.7,
    scale: float = 0.8,
    max_values: int = 2_000_000,
    seed: int = 0,
) -> list[float]:
    """ACE-SNN conversion: per layer, in order, threshold = ``scale`` x the ``percentile`` of the
    layer's input current over ``timesteps`` steps (leak 1, float weights, earlier layers fixed).
    """
    net.set_mode("float").eval()
    saved_steps, net.timesteps = net.timesteps, timesteps
    rng = np.random.default_rng(seed)
    thresholds = []
    try:
        lif_layers = [layer for layer in net.layers if isinstance(layer.neuron, LIF)]
        for layer in lif_layers:
            layer.neuron.leak.fill_(1.0)
        x = fixed_inputs(net, codes, seed)
        for layer in lif_layers:
            captured: list[Tensor] = []
            hook = layer.neuron.register_forward_pre_hook(
                lambda _m, args, store=captured: store.append(args[0].detach())
            )
            try:
                net.run(x)
            finally:
                hook.remove()
            values = captured[0].reshape(-1).numpy()
            if values.size > max_values:
                values = rng.choice(values, max_values, replace=False)
            theta = max(float(np.percentile(values, percentile)) * scale, 1e-3)
            layer.neuron.threshold.fill_(theta)
            thresholds.append(theta)
    finally:
        net.timesteps = saved_steps
    return thresholds


def start_bittrue(net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer) -> None:
    """Fix the per-layer input shifts on a calibration batch, then fine-tune bit-true."""
    calib = fixed_inputs(net, data.x_train[: config.balance_samples], config.seed)
    shifts = net.calibrate_shifts(calib)
    trainer.log(f"input shifts per layer: {shifts}")
    fit_stage(net, data, config, trainer, stage="bittrue", phase="bittrue", mode="bittrue")


def fit_ann(
    net: SNN, data: Dataset, config: TrainConfig, trainer: Trainer, phase: str = "ann"
) -> None:
    """The ANN phase the conversion methods start with (hybrid, ``convert-*``,
    scatter-and-gather): ``fit`` in mode ``ann`` with the config's ANN epochs and rate."""
    fit_stage(net, data, config, trainer, stage="ann", phase=phase, mode="ann")


def fit_stage(
    net: SNN,
    data: Dataset,
    config: TrainConfig,
    trainer: Trainer,
    *,
    stage: str,
    phase: str,
    mode: str,
) -> None:
    """One phase of a method: ``fit`` in ``mode`` with the run-wide settings of ``config``
    (batch size, evaluation period, augmentation) and those of its training ``stage``:

    * ``ann``: ANN epochs and rate, the run's seed, its weight decay;
    * ``snn``: SNN epochs and rate, seed + 1, its weight decay;
    * ``bittrue``: bit-true epochs and rate, seed + 3, no weight decay.
    """
    epochs, lr, seed_offset, weight_decay = {
        "ann": (config.ann_epochs, config.ann_lr, 0, config.weight_decay),
        "snn": (config.snn_epochs, config.snn_lr, 1, config.weight_decay),
        "bittrue": (config.bittrue_epochs, config.bittrue_lr, 3, 0.0),
    }[stage]
    fit(
        net,
        data,
        trainer,
        phase=phase,
        mode=mode,
        epochs=epochs,
        lr=lr,
        batch_size=config.batch_size,
        weight_decay=weight_decay,
        seed=config.seed + seed_offset,
        eval_every=config.eval_every,
        augment=config.augment,
    )


@dataclass
class TrainResult:
    """A trained network, its history, and the wall time of training."""

    net: SNN
    history: list[dict[str, Any]]
    seconds: float


def train(config: TrainConfig, data: Dataset, trainer: Trainer | None = None) -> TrainResult:
    """Build the network for ``data`` and train it with ``config.method``."""
    method = get_method(config.method)
    trainer = trainer or Trainer()
    torch.manual_seed(config.seed)
    net = build_for(config, data)
    if trainer.processes.rank:  # distinct dropout draws per process (weights: rank 0's)
        torch.manual_seed(trainer.processes.rank_seed(config.seed))
    start = time.perf_counter()
    replacement = method(net, data, config, trainer)
    if trainer.checkpoints is not None:
        trainer.checkpoints.check_resumed()
    if replacement is not None:
        net = replacement
    net.set_mode("bittrue").eval()
    return TrainResult(net, trainer.history, time.perf_counter() - start)
