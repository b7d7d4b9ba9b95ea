"""Multi-process training on CPU: process group (gloo), DistributedDataParallel, data shards.

Under ``torchrun`` every process runs the whole training method. The training loops split each
mini-batch across the processes and average the gradients (DDP in ``fit``, one all-reduce per
step in ``run_epochs``, which is what DDP does), so every process holds the same network after
every step and the schedule and step count are those of one process with the same batch size.
Work outside the loops (threshold balancing, folding, calibration) is repeated by every process
on identical state; the main process (rank 0) alone evaluates, writes checkpoints, metrics and
the bundle.

Data: by default the training set is one in-memory tensor, shuffled with the loop's generator;
each process takes every ``world``-th sample of each global batch. Large training sets (or
``Trainer.loader == "stream"``) go through a ``DataLoader`` with a ``DistributedSampler``
instead, which reads only the samples a process needs (e.g. from a memory-mapped array).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

#: ``auto`` streams training sets larger than this (bytes of inputs) through a DataLoader.
STREAM_ABOVE_BYTES = 1 << 30
LOADERS = ("auto", "memory", "stream")
#: Seed offset between processes for the draws that should differ (dropout, augmentation).
RANK_SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class Processes:
    """This process's place in the job: ``rank`` of ``world`` (one process: 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def parallel(self) -> bool:
        return self.world > 1

    def rank_seed(self, seed: int) -> int:
        """``seed`` for rank 0, a distinct seed per other rank."""
        return seed + RANK_SEED_STRIDE * self.rank

    def wrap(self, net: nn.Module) -> nn.Module:
        """``net`` in DistributedDataParallel (gradients averaged in backward), or ``net``.

        Unused parameters are allowed: a mode may leave some out (the ANN mode skips the neuron
        parameters)."""
        if not self.parallel:
            return net
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(net, find_unused_parameters=True)

    def broadcast_state(self, net: nn.Module) -> None:
        """Copy the main process's parameters and buffers into every process's ``net``."""
        if self.parallel:
            with torch.no_grad():
                for tensor in net.state_dict().values():
                    dist.broadcast(tensor, 0)

    def average_gradients(self, params: Sequence[Tensor]) -> None:
        """Average the gradients of ``params`` over the processes (one all-reduce; a missing
        gradient counts as zero, so every process sends the same layout)."""
        if not self.parallel:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        flat /= self.world
        offset = 0
        for p, g in zip(params, grads, strict=True):
            n = g.numel()
            p.grad = flat[offset : offset + n].view_as(p).clone()
            offset += n

    def sum(self, values: Sequence[float]) -> list[float]:
        """``values`` summed over the processes (float64)."""
        if not self.parallel:
            return [float(v) for v in values]
        t = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        """Whether ``flag`` is true in any process."""
        if not self.parallel:
            return flag
        t = torch.tensor([int(flag)])
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, in rank order, on the main process (``[]`` elsewhere)."""
        if not self.parallel:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out if self.is_main else []


SINGLE = Processes()


def torchrun_environment(environ: dict[str, str] | None = None) -> Processes | None:
    """The job ``torchrun`` describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``), or ``None`` outside torchrun."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env or "RANK" not in env:
        return None
    return Processes(
        rank=int(env["RANK"]),
        world=int(env["WORLD_SIZE"]),
        local_rank=int(env.get("LOCAL_RANK", "0")),
    )


def start(processes: Processes) -> None:
    """Join the process group (gloo, rendezvous from the torchrun environment)."""
    if processes.parallel and not dist.is_initialized():
        dist.init_process_group("gloo", rank=processes.rank, world_size=processes.world)


def stop(*, barrier: bool = True) -> None:
    """Leave the process group, after a barrier (no process exits while others still need
    it) unless this process is stopping on an error or a signal."""
    if dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------
# data


class ArrayDataset(torch.utils.data.Dataset):
    """Samples ``(x[i], y[i])`` of two arrays (numpy, possibly memory-mapped), read on demand."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return torch.as_tensor(np.asarray(self.x[i])), torch.as_tensor(np.asarray(self.y[i]))


class ResumableSampler(DistributedSampler):
    """A ``DistributedSampler`` that can start an epoch at a given batch (for resume)."""

    def __init__(self, *args: Any, batch_size: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.batch_size = batch_size
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start * self.batch_size :])


def _seed_worker(worker: int) -> None:
    """DataLoader workers: numpy and Python seeded from the worker's torch seed."""
    import random

    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


@dataclass
class Batch:
    """One process's share of a global mini-batch.

    ``weight`` scales the process's mean loss so that DDP's average over processes is the mean
    over the global batch (1 with one process; 0 for a stand-in sample when a process has none).
    """

    x: Tensor
    y: Tensor
    weight: float


class Shards:
    """The mini-batches one process trains on, epoch by epoch.

    ``memory``: the whole set as one tensor; each epoch's order comes from the loop's numpy
    generator (as before multi-process training existed, so single-process runs are unchanged);
    global batches of ``batch_size``, this process taking every ``world``-th sample.
    ``stream``: a ``DataLoader`` over the arrays with a ``DistributedSampler`` (seed ``seed``,
    reshuffled per epoch), ``batch_size / world`` samples per process and batch.
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        *,
        seed: int,
        processes: Processes = SINGLE,
        loader: str = "auto",
        workers: int = 0,
    ) -> None:
        if loader not in LOADERS:
            raise ValueError(f"loader must be one of {LOADERS}, got {loader!r}")
        self.processes = processes
        self.batch_size = batch_size
        self.samples = len(y)
        self.stream = loader == "stream" or (
            loader == "auto" and np.asarray(x[:1]).nbytes * len(y) > STREAM_ABOVE_BYTES
        )
        if self.stream:
            local = max(1, batch_size // processes.world)
            self.sampler = ResumableSampler(
                ArrayDataset(x, y),
                num_replicas=processes.world,
                rank=processes.rank,
                shuffle=True,
                seed=seed,
                batch_size=local,
            )
            self.loader = DataLoader(
                self.sampler.dataset,
                batch_size=local,
                sampler=self.sampler,
                num_workers=workers,
                worker_init_fn=_seed_worker,
                generator=torch.Generator().manual_seed(seed),
            )
            self.batches = len(self.loader)
        else:
            self.x, self.y = torch.as_tensor(x), torch.as_tensor(y)
            self.batches = math.ceil(self.samples / batch_size)

    def order(self, rng: np.random.Generator) -> Tensor | None:
        """The next epoch's sample order (memory mode; the sampler orders streamed data)."""
        if self.stream:
            return None
        return torch.as_tensor(rng.permutation(self.samples))

    def epoch(self, epoch: int, order: Tensor | None, start: int) -> Iterator[Batch]:
        """This process's batches of epoch ``epoch`` (counted from 0), from batch ``start``."""
        if self.stream:
            self.sampler.set_epoch(epoch)
            self.sampler.start = start
            for x, y in self.loader:
                yield Batch(x, y, 1.0)
            return
        assert order is not None
        rank, world = self.processes.rank, self.processes.world
        for b in range(start, self.batches):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            if world == 1:
                yield Batch(self.x[idx], self.y[idx], 1.0)
                continue
            mine = idx[rank::world]
            if len(mine) == 0:  # fewer samples than processes: a stand-in that adds nothing
                yield Batch(self.x[idx[:1]], self.y[idx[:1]], 0.0)
            else:
                yield Batch(self.x[mine], self.y[mine], len(mine) * world / len(idx))
