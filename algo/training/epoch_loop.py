"""One training loop for the paper-recipe trainers of ``spikeforge.algo.methods.bntt`` and
``spikeforge.algo.methods.lee2020``.

Both run the same epoch: shuffle with a numpy generator seeded once per run, cut mini-batches,
one optimiser step per batch, a learning-rate schedule step per epoch, then a history record
(with the test accuracy every ``eval_every`` epochs and after the last) and one log line. What
differs is passed in: how a batch becomes ``(loss, output)`` and how much of the running loss
it adds, and how the test accuracy is measured.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

if TYPE_CHECKING:  # spikeforge.algo.training.pipeline imports the trainers that import this module
    from spikeforge.algo.training.pipeline import Trainer

BatchStep = Callable[[Tensor, Tensor], tuple[Tensor, Tensor, float]]


def run_epochs(
    net: nn.Module,
    x_all: Tensor,
    y_all: Tensor,
    trainer: Trainer,
    *,
    epochs: int,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    batch_size: int,
    seed: int,
    batch_step: BatchStep,
    test_accuracy: Callable[[], float],
    phase: str,
    label: str,
    eval_every: int = 1,
) -> None:
    """Train ``net`` for ``epochs``; records go to ``trainer.history``, lines to ``trainer.log``.

    ``batch_step(x, y)`` returns ``(loss to backpropagate, network output, loss to add to the
    epoch total)``; the record's ``loss`` is that total divided by the number of samples.
    """
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        net.train()
        start, total_loss, correct = time.perf_counter(), 0.0, 0
        order = torch.as_tensor(rng.permutation(len(y_all)))
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            loss, output, loss_total = batch_step(x_all[idx], y_all[idx])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total_loss += loss_total
            correct += int((output.argmax(1) == y_all[idx]).sum())
        schedule.step()
        record: dict[str, Any] = {
            "phase": phase,
            "mode": "float",
            "epoch": epoch + 1,
            "loss": total_loss / len(y_all),
            "train_acc": correct / len(y_all),
            "seconds": time.perf_counter() - start,
        }
        if (epoch + 1) % eval_every == 0 or epoch + 1 == epochs:
            record["test_acc"] = test_accuracy()
        trainer.history.append(record)
        trainer.log(
            f"{label} epoch {epoch + 1}/{epochs}: loss {record['loss']:.4f}, train "
            f"{record['train_acc']:.4f}, test {record.get('test_acc', math.nan):.4f} "
            f"({record['seconds']:.1f} s)"
        )
