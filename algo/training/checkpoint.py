"""Training checkpoints: what ``fit`` and ``run_epochs`` need to continue a run exactly.

A run is a sequence of training phases (one ``fit`` or ``run_epochs`` call each), numbered in
the order the method calls them. A checkpoint holds the phase's number and name, the epochs and
batches done in it, the trained network, optimiser and schedule states, every random state the
loop draws from (the shuffle generator, the loop's torch generators, torch's global generator,
per process), the current epoch's order and running totals, and the history so far.

On resume the method runs again from its start: the phases before the checkpoint's are skipped
(their result is in the restored state; log lines of the replay are muted) and the checkpoint's
phase continues where it stopped, so the run ends with the same bytes as one never stopped.
That holds for methods whose work between phases depends only on the state a phase leaves in
the network it trains (every built-in method whose training goes through ``fit`` /
``run_epochs``).

The file is written atomically (temporary file in the same directory, fsync, ``os.replace``,
fsync of the directory), by the main process only.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from spikeforge.algo.training.distributed import SINGLE, Processes
from torch import Tensor, nn

if TYPE_CHECKING:
    from spikeforge.algo.training.pipeline import Trainer

#: The checkpoint file inside the checkpoint directory.
STATE_FILE = "state.pt"
#: Format version, bumped when the saved fields change.
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint is missing, unreadable, or belongs to a different run."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped training; a checkpoint to resume from was written first."""

    def __init__(self, signum: int, directory: Path) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}; checkpoint in {directory}")
        self.signum = signum
        self.directory = directory


@dataclass
class Progress:
    """Where a training loop stands: epochs done, batches done in the current epoch, that
    epoch's sample order (``None`` before it is drawn) and running totals."""

    epoch: int = 0
    batch: int = 0
    order: Tensor | None = None
    total_loss: float = 0.0
    correct: int = 0
    seconds: float = 0.0

    def next_epoch(self) -> None:
        """Reset the per-epoch fields after an epoch's record is written."""
        self.epoch += 1
        self.batch, self.order, self.total_loss, self.correct, self.seconds = 0, None, 0.0, 0, 0.0


def write_atomically(path: Path, payload: dict[str, Any]) -> None:
    """``torch.save`` ``payload`` to ``path`` so a reader sees the old or the new file, never
    a partial one (also across a crash: file and directory are fsynced)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _rng_state(generators: Sequence[torch.Generator]) -> dict[str, Any]:
    """This process's random states: torch's global generator, the loop's generators, and
    numpy's and Python's global generators (for code that draws from them)."""
    version, words, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "generators": [g.get_state() for g in generators],
        "python": [version, list(words), gauss],
        "numpy": [kind, torch.as_tensor(keys.astype(np.int64)), pos, has_gauss, cached],
    }


def _set_rng_state(state: dict[str, Any], generators: Sequence[torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    if len(state["generators"]) != len(generators):
        raise CheckpointError(
            f"the checkpoint holds {len(state['generators'])} loop generators, the loop has "
            f"{len(generators)}"
        )
    for generator, saved in zip(generators, state["generators"], strict=True):
        generator.set_state(saved)
    version, words, gauss = state["python"]
    random.setstate((version, tuple(words), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


class Checkpointer:
    """Writes and restores the checkpoints of one run (``Trainer.checkpoints``).

    ``directory``: where ``state.pt`` goes. ``run``: what identifies the run (configuration,
    dataset, limits); a checkpoint of another run is refused. ``every``: write after every
    ``every``-th epoch (and always after a phase's last). ``resume``: the checkpoint to continue
    from, or ``None`` for a fresh run.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        run: dict[str, Any],
        every: int = 1,
        resume: str | os.PathLike[str] | None = None,
        processes: Processes = SINGLE,
    ) -> None:
        if every < 1:
            raise ValueError(f"checkpoint interval must be at least 1 epoch, got {every}")
        self.directory = Path(directory)
        self.run = run
        self.every = every
        self.processes = processes
        self.phases = 0
        self.stop_signal: int | None = None
        self.in_loop = False
        self.saved: dict[str, Any] | None = None
        self._trainer: Trainer | None = None
        self._log: Any = None
        if resume is not None:
            self.saved = load(resume, run, processes)

    @property
    def replaying(self) -> bool:
        """True while the phases before the checkpoint's are being skipped."""
        return self.saved is not None

    def attach(self, trainer: Trainer) -> None:
        """Serve ``trainer``'s loops; its log is muted while the run replays skipped phases."""
        self._trainer = trainer
        trainer.checkpoints = self
        if self.replaying:
            self._log, trainer.log = trainer.log, _quiet

    # -- phases ---------------------------------------------------------------------------

    def begin_phase(self) -> int | None:
        """Number the next phase; ``None`` if it ends before the checkpoint (skip it)."""
        index = self.phases
        self.phases += 1
        if self.saved is not None and index < self.saved["phase_index"]:
            return None
        return index

    def restore(
        self,
        index: int,
        phase: str,
        *,
        net: nn.Module,
        optimiser: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        shuffle: np.random.Generator,
        generators: Sequence[torch.Generator],
    ) -> Progress:
        """The loop's starting point: fresh, or (the checkpoint's phase) the saved state
        loaded into ``net``, ``optimiser``, ``schedule`` and the generators."""
        saved = self.saved
        if saved is None or index != saved["phase_index"]:
            return Progress()
        if phase != saved["phase"]:
            raise CheckpointError(
                f"checkpoint is in phase {saved['phase']!r} (number {index}), the run reached "
                f"{phase!r} there: the method's phases differ"
            )
        net.load_state_dict(saved["net"])
        optimiser.load_state_dict(saved["optimiser"])
        schedule.load_state_dict(saved["schedule"])
        shuffle.bit_generator.state = saved["shuffle"]
        _set_rng_state(saved["rng"][self.processes.rank], generators)
        progress = Progress(**saved["progress"])
        if self._trainer is not None:
            self._trainer.history[:] = saved["history"]
            if self._log is not None:
                self._trainer.log, self._log = self._log, None
        self.saved = None
        return progress

    def check_resumed(self) -> None:
        """Raise if the run ended without reaching the checkpoint's phase."""
        if self.saved is not None:
            raise CheckpointError(
                f"the run has {self.phases} training phases; the checkpoint is in phase "
                f"{self.saved['phase_index']} ({self.saved['phase']!r}): not this method's"
            )

    # -- writing --------------------------------------------------------------------------

    def due(self, progress: Progress, epochs: int) -> bool:
        """Whether to write after the epoch just finished."""
        return progress.epoch % self.every == 0 or progress.epoch == epochs

    def save(
        self,
        index: int,
        phase: str,
        progress: Progress,
        *,
        net: nn.Module,
        optimiser: torch.optim.Optimizer,
        schedule: torch.optim.lr_scheduler.LRScheduler,
        shuffle: np.random.Generator,
        generators: Sequence[torch.Generator],
        history: list[dict[str, Any]],
    ) -> None:
        """Write the checkpoint (every process must call it: the random states are gathered
        to the main process, which alone writes)."""
        states = self.processes.gather(_rng_state(generators))
        if not self.processes.is_main:
            return
        payload = {
            "version": VERSION,
            "run": self.run,
            "world_size": self.processes.world,
            "phase_index": index,
            "phase": phase,
            "progress": {
                "epoch": progress.epoch,
                "batch": progress.batch,
                "order": progress.order,
                "total_loss": progress.total_loss,
                "correct": progress.correct,
                "seconds": progress.seconds,
            },
            "net": net.state_dict(),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "shuffle": shuffle.bit_generator.state,
            "rng": states,
            "history": list(history),
        }
        write_atomically(self.directory / STATE_FILE, payload)

    # -- signals --------------------------------------------------------------------------

    def stop_requested(self) -> bool:
        """Whether SIGINT/SIGTERM arrived (in any process: they agree, so all stop together)."""
        return self.processes.any(self.stop_signal is not None)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """Mark a loop as running: a signal then only sets the stop flag (the loop writes a
        checkpoint at the next batch boundary and stops); elsewhere it stops at once."""
        self.in_loop = True
        try:
            yield
        finally:
            self.in_loop = False

    def interrupted(self) -> TrainingInterrupted:
        """The exception a loop raises after writing the stop checkpoint."""
        return TrainingInterrupted(self.stop_signal or signal.SIGTERM, self.directory)

    @contextlib.contextmanager
    def signals(self) -> Iterator[None]:
        """Handle SIGINT and SIGTERM for the duration (the previous handlers come back)."""

        def handle(signum: int, _frame: object) -> None:
            if self.in_loop and self.stop_signal is None:
                self.stop_signal = signum
                return
            raise TrainingInterrupted(signum, self.directory)

        previous = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _quiet(_message: str) -> None:
    """The log while skipped phases replay (their lines would describe untrained state)."""


def load(
    directory: str | os.PathLike[str], run: dict[str, Any], processes: Processes = SINGLE
) -> dict[str, Any]:
    """Read the checkpoint in ``directory`` and check it belongs to ``run``."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {path}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file: say which, not a traceback
        raise CheckpointError(f"--resume: cannot read {path}: {exc}") from None
    if saved.get("version") != VERSION:
        raise CheckpointError(f"--resume: {path} has format {saved.get('version')}, not {VERSION}")
    differ = sorted(
        key for key in set(run) | set(saved["run"]) if run.get(key) != saved["run"].get(key)
    )
    if differ:
        detail = ", ".join(f"{k}: {saved['run'].get(k)!r} -> {run.get(k)!r}" for k in differ[:4])
        raise CheckpointError(f"--resume: {path} is from a different run ({detail})")
    if saved["world_size"] != processes.world:
        raise CheckpointError(
            f"--resume: {path} was written by {saved['world_size']} processes, this run has "
            f"{processes.world} (the data split depends on it)"
        )
    return saved


@dataclass
class PhaseLoop:
    """One training loop's link to the checkpointer (``open_phase``): its phase number, the
    objects it saves, and whether it is skipped. Without a checkpointer every call is a no-op."""

    checkpoints: Checkpointer | None
    trainer: Trainer
    phase: str
    index: int | None
    net: nn.Module
    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    shuffle: np.random.Generator
    generators: Sequence[torch.Generator] = field(default_factory=tuple)

    @property
    def skipped(self) -> bool:
        return self.index is None

    def _state(self) -> dict[str, Any]:
        """What a checkpoint of this loop holds besides its progress and the history."""
        return {
            "net": self.net,
            "optimiser": self.optimiser,
            "schedule": self.schedule,
            "shuffle": self.shuffle,
            "generators": self.generators,
        }

    def restore(self) -> Progress:
        """The saved progress (a fresh one without a checkpoint to continue); afterwards every
        process holds the main process's ``net``, so all start from the same state."""
        progress = Progress()
        if self.checkpoints is not None and self.index is not None:
            progress = self.checkpoints.restore(self.index, self.phase, **self._state())
        self.trainer.processes.broadcast_state(self.net)
        return progress

    def save(self, progress: Progress) -> None:
        if self.checkpoints is None or self.index is None:
            return
        self.checkpoints.save(
            self.index, self.phase, progress, **self._state(), history=self.trainer.history
        )

    def epoch_done(self, progress: Progress, epochs: int) -> None:
        """Write after the epoch if it is due (``progress`` already counts the epoch)."""
        if self.checkpoints is not None and self.checkpoints.due(progress, epochs):
            self.save(progress)

    def stop_if_requested(self, progress: Progress) -> None:
        """After a batch: on SIGINT/SIGTERM write the checkpoint and raise."""
        if self.checkpoints is not None and self.checkpoints.stop_requested():
            self.save(progress)
            raise self.checkpoints.interrupted()

    def training(self) -> contextlib.AbstractContextManager[None]:
        if self.checkpoints is None:
            return contextlib.nullcontext()
        return self.checkpoints.training()


def open_phase(
    trainer: Trainer,
    phase: str,
    *,
    net: nn.Module,
    optimiser: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    shuffle: np.random.Generator,
    generators: Sequence[torch.Generator] = (),
) -> PhaseLoop:
    """Register a training loop with ``trainer``'s checkpointer (if any)."""
    checkpoints = trainer.checkpoints
    index = checkpoints.begin_phase() if checkpoints is not None else 0
    return PhaseLoop(
        checkpoints, trainer, phase, index, net, optimiser, schedule, shuffle, tuple(generators)
    )
