"""The chip shell's output files read back on the host: spikes, read answers, cycles, counts.

``events{k}.txt`` has one line per stage event, ``sample stage op neuron cycle`` (``op`` 0
SPIKE, 1 TICK, 2 CLEAR); ``samples{k}.txt`` one line per finished sample: its cycles, its start
(the shell's ``cycle`` counter when it took ``start``), then the answers of the configuration
reads (``ShellChip.reads`` order). A spike's step is the number of TICKs its stage sent before
it in the same sample. Everything is decoded with numpy, whole files at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from spikeforge.rtl.chip.top import ChipPlan
from spikeforge.rtl.harness.stimulus import events_file, samples_file

SPIKE, TICK, CLEAR = 0, 1, 2


@dataclass
class ShellOutput:
    """One chip's decoded run over ``n`` samples."""

    spikes: list[np.ndarray]  # per stage [n, T, n_out] uint8
    cycles: np.ndarray  # [n]
    reads: np.ndarray  # [n, n_reads] uint32 values as int64
    starts: np.ndarray  # [n] the shell's cycle counter when each sample started
    counts: dict[str, int] = field(default_factory=dict)


def read_numbers(path: Path, columns: int) -> np.ndarray:
    """A text file of whitespace-separated integers as an int64 array of ``columns`` columns."""
    text = Path(path).read_text()
    values = np.fromstring(text, dtype=np.int64, sep=" ") if text.strip() else np.zeros(0, np.int64)
    if values.size % columns:
        raise ValueError(f"{path}: {values.size} numbers are not rows of {columns}")
    return values.reshape(-1, columns)


def steps_within_samples(sample: np.ndarray, tick: np.ndarray) -> np.ndarray:
    """For events of one stage in time order: the number of TICKs before each one in its
    sample."""
    before = np.cumsum(tick) - tick
    if not len(sample):
        return before
    first = np.r_[True, sample[1:] != sample[:-1]]
    group = np.cumsum(first) - 1
    return before - before[first][group]


def decode_events(events: np.ndarray, plan: ChipPlan, n: int) -> tuple[list[np.ndarray], dict]:
    """Spike trains per stage and the event counts (spikes, ticks, clears, and the anomalies
    out_of_range, order_violations, unexpected_ops, which a correct chip never shows)."""
    t = plan.bundle.timesteps
    counts = dict.fromkeys(
        ("spikes", "ticks", "clears", "out_of_range", "order_violations", "unexpected_ops"), 0
    )
    spikes = []
    for k, stage in enumerate(plan.stages):
        size = stage.layer.n_out
        train = np.zeros((n, t, size), dtype=np.uint8)
        mine = events[events[:, 1] == k]
        sample, op, index = mine[:, 0], mine[:, 2], mine[:, 3]
        step = steps_within_samples(sample, op == TICK)
        is_spike = op == SPIKE
        inside = is_spike & (step < t) & (index < size) & (sample < n)
        counts["out_of_range"] += int((is_spike & ~inside).sum())
        s, st, ix = sample[is_spike], step[is_spike], index[is_spike]
        same_step = (s[1:] == s[:-1]) & (st[1:] == st[:-1])
        counts["order_violations"] += int((same_step & (ix[1:] <= ix[:-1])).sum())
        train[sample[inside], step[inside], index[inside]] = 1
        counts["spikes"] += int(inside.sum())
        counts["ticks"] += int((op == TICK).sum())
        counts["clears"] += int((op == CLEAR).sum())
        counts["unexpected_ops"] += int((op > CLEAR).sum())
        spikes.append(train)
    return spikes, counts


def read_shell_output(folder: Path, k: int, plan: ChipPlan, n: int, n_reads: int) -> ShellOutput:
    """Chip ``k``'s output files in ``folder``, for ``n`` samples and ``n_reads`` reads each."""
    rows = read_numbers(folder / samples_file(k), 2 + n_reads)
    if len(rows) != n:
        raise ValueError(f"{folder / samples_file(k)}: {len(rows)} samples finished, not {n}")
    events = read_numbers(folder / events_file(k), 5)
    spikes, counts = decode_events(events, plan, n)
    return ShellOutput(spikes, rows[:, 0].copy(), rows[:, 2:].copy(), rows[:, 1].copy(), counts)


def event_cycle(
    folder: Path, k: int, sample: int, stage: int, step: int, neuron: int
) -> tuple[int, str] | None:
    """The cycle of chip ``k``'s event that decides (sample, stage, step, neuron): the spike if
    the chip sent it, else the TICK that closed that step. ``sample`` counts within the folder's
    run. ``None`` when neither left the stage."""
    events = read_numbers(folder / events_file(k), 5)
    mine = events[(events[:, 0] == sample) & (events[:, 1] == stage)]
    step_of = steps_within_samples(mine[:, 0], mine[:, 2] == TICK)
    hit = (mine[:, 2] == SPIKE) & (step_of == step) & (mine[:, 3] == neuron)
    if hit.any():
        return int(mine[hit][0, 4]), "spike"
    tick = (mine[:, 2] == TICK) & (step_of == step)
    if tick.any():
        return int(mine[tick][0, 4]), "TICK closing the step"
    return None
