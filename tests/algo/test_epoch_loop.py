"""The shared epoch loop of the bntt and lee2020 trainers: records, evaluation cadence, learning."""

from __future__ import annotations

import torch
from spikeforge.algo.training.epoch_loop import run_epochs
from spikeforge.algo.training.pipeline import Trainer
from torch import nn


def test_run_epochs_records_and_learns():
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    y = (x[:, 0] > 0).long()
    net = nn.Linear(3, 2)
    optimiser = torch.optim.SGD(net.parameters(), lr=0.5)
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, 10)
    trainer = Trainer(progress=False, log=lambda _: None)
    evaluations = []

    def batch_step(xb: torch.Tensor, yb: torch.Tensor):
        out = net(xb)
        loss = nn.functional.cross_entropy(out, yb)
        return loss, out, float(loss.detach()) * len(yb)

    def test_accuracy() -> float:
        evaluations.append(1)
        return float((net(x).argmax(1) == y).float().mean())

    run_epochs(
        net,
        trainer.shards(x.numpy(), y.numpy(), 16, 0),
        trainer,
        epochs=5,
        optimiser=optimiser,
        schedule=schedule,
        seed=0,
        batch_step=batch_step,
        test_accuracy=test_accuracy,
        phase="toy",
        label="toy",
        eval_every=2,
    )
    history = trainer.history
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    assert ["test_acc" in r for r in history] == [False, True, False, True, True]
    assert len(evaluations) == 3  # epochs 2, 4 and the last
    assert all(r["phase"] == "toy" and r["mode"] == "float" for r in history)
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["test_acc"] >= 0.9
