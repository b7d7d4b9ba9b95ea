"""The one training loop: ``fit`` (every surrogate-gradient and ANN phase) and the paper-recipe
trainers of ``spikeforge.algo.methods.bntt`` and ``spikeforge.algo.methods.lee2020``.

All run the same epoch: shuffle with a numpy generator seeded once per run, cut mini-batches,
one optimiser step per batch, a learning-rate schedule step per batch or per epoch, then a
history record (with the test accuracy every ``eval_every`` epochs and after the last) and a
progress bar or one log line. The loop writes checkpoints and resumes from them
(``spikeforge.algo.training.checkpoint``) and splits batches across processes
(``spikeforge.algo.training.distributed``). What differs is passed in: how a batch becomes
``(loss, output)`` and how much of the running loss it adds, and how the test accuracy is
measured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from spikeforge.algo.training.checkpoint import open_phase
from torch import Tensor, nn

if TYPE_CHECKING:  # spikeforge.algo.training.pipeline imports this module
    from spikeforge.algo.training.distributed import Shards
    from spikeforge.algo.training.pipeline import Trainer

BatchStep = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, float]]


def run_epochs(
    net: nn.Module,
    shards: Shards,
    trainer: Trainer,
    *,
    epochs: int,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    seed: int,
    batch_step: BatchStep,
    test_accuracy: Callable[[], float],
    phase: str,
    label: str | None = None,
    mode: str = "float",
    eval_every: int = 1,
    generators: Sequence[torch.Generator] = (),
    summed_loss: bool = False,
    schedule_per_batch: bool = False,
    after_step: Callable[[], None] | None = None,
    averaged_in_backward: bool = False,
) -> None:
    """Train ``net`` for ``epochs`` over ``shards`` (``trainer.shards(...)``); records go to
    ``trainer.history``, a progress bar or log lines (``trainer.progress``) to the user.

    ``batch_step(x, y)`` returns ``(loss to backpropagate, network output, loss to add to the
    epoch total)``; the record's ``loss`` is that total divided by the number of samples.
    ``generators``: the torch generators ``batch_step`` draws from (their states go into the
    checkpoints, so a resumed run draws the same). With several ``trainer.processes`` each
    batch is split across them and the gradients are averaged before every step (unless
    ``averaged_in_backward``: ``batch_step`` runs a DDP-wrapped model); ``summed_loss`` says
    the loss is a sum over the batch (not a mean), which the split needs. ``schedule`` steps
    after every batch with ``schedule_per_batch``, else after every epoch; ``after_step`` runs
    after every optimiser step (for example to clamp parameters).
    """
    from tqdm import tqdm

    procs = trainer.processes
    rng = np.random.default_rng(seed)
    loop = open_phase(
        trainer,
        phase,
        net=net,
        optimiser=optimiser,
        schedule=schedule,
        shuffle=rng,
        generators=generators,
    )
    if loop.skipped:
        return
    progress = loop.restore()
    params = [p for group in optimiser.param_groups for p in group["params"]]
    batches = shards.batches
    bar = tqdm(
        total=epochs * batches,
        initial=progress.epoch * batches + progress.batch,
        desc=f"{phase:>8}",
        disable=not trainer.progress,
        dynamic_ncols=True,
        leave=True,
    )
    with loop.training():
        while progress.epoch < epochs:
            net.train()
            start = time.perf_counter() - progress.seconds
            if progress.order is None:
                progress.order = shards.order(rng)
            for batch in shards.epoch(progress.epoch, progress.order, progress.batch):
                loss, output, loss_total = batch_step(batch.x, batch.y)
                optimiser.zero_grad(set_to_none=True)
                weight = batch.weight
                if summed_loss and weight:  # a sum over the share: x world undoes the average
                    weight = float(procs.world)
                (loss if weight == 1.0 else loss * weight).backward()
                if not averaged_in_backward:
                    procs.average_gradients(params)
                optimiser.step()
                if schedule_per_batch:
                    schedule.step()
                if after_step is not None:
                    after_step()
                if batch.weight:
                    progress.total_loss += loss_total
                    progress.correct += int((output.argmax(1) == batch.y).sum())
                progress.batch += 1
                bar.update(1)
                progress.seconds = time.perf_counter() - start
                loop.stop_if_requested(progress)
            if not schedule_per_batch:
                schedule.step()
            record = close_epoch(
                trainer,
                progress,
                start,
                phase=phase,
                mode=mode,
                epochs=epochs,
                n_train=shards.samples,
                eval_every=eval_every,
                test_accuracy=test_accuracy,
                label=label or phase,
                log=not trainer.progress,
            )
            bar.set_postfix(
                loss=f"{record['loss']:.3f}", test=f"{record.get('test_acc', math.nan):.4f}"
            )
            progress.next_epoch()
            loop.epoch_done(progress, epochs)
    bar.close()
    procs.broadcast_state(net)


def close_epoch(
    trainer: Trainer,
    progress: Any,
    start: float,
    *,
    phase: str,
    mode: str,
    epochs: int,
    n_train: int,
    eval_every: int,
    test_accuracy: Callable[[], float],
    label: str,
    log: bool = True,
) -> dict[str, Any]:
    """Record the finished epoch in ``trainer.history`` and return the record.

    The loss and hit counts are summed over ``trainer.processes``; the main process measures
    ``test_accuracy()`` every ``eval_every`` epochs and after the last; ``log`` writes one line.
    """
    procs = trainer.processes
    total_loss, correct = procs.sum([progress.total_loss, progress.correct])
    record: dict[str, Any] = {
        "phase": phase,
        "mode": mode,
        "epoch": progress.epoch + 1,
        "loss": total_loss / n_train,
        "train_acc": int(correct) / n_train,
        "seconds": time.perf_counter() - start,
    }
    if procs.is_main and ((progress.epoch + 1) % eval_every == 0 or progress.epoch + 1 == epochs):
        record["test_acc"] = test_accuracy()
    trainer.history.append(record)
    if log:
        trainer.log(
            f"{label} epoch {progress.epoch + 1}/{epochs}: loss {record['loss']:.4f}, train "
            f"{record['train_acc']:.4f}, test {record.get('test_acc', math.nan):.4f} "
            f"({record['seconds']:.1f} s)"
        )
    return record
