"""What the sweep commands (``spikeforge.studies.conversion_sweep``,
``spikeforge.studies.bpsr_sweep``) share: measuring one exported bundle (golden model == bit-true
pass, accuracy and the golden model's counters, per sample) and writing ``results.json`` /
``results.md`` and the final bit-exactness verdict."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.sim.bundle import Bundle


def measure_bundle(
    bundle: Bundle, x: np.ndarray, labels: np.ndarray, chunk: int = 1000
) -> dict[str, Any]:
    """Run ``bundle`` on ``x`` in the golden model and the bit-true pass
    (``spikeforge.algo.methods.conversion.check_bundle``), ``chunk`` samples at a time (memory),
    and sum: accuracy, bit-exactness, values compared, hidden spikes and operations per sample,
    firing rates.

    ``firing_rate`` is over all hidden neurons and steps; ``firing_rates`` per hidden layer (the
    accumulating output layer never spikes and is left out)."""
    from spikeforge.algo.methods.conversion import check_bundle

    n = len(labels)
    if n < 1 or chunk < 1:
        raise ValueError(f"measure_bundle needs samples and a positive chunk, got {n}, {chunk}")
    correct = values = potentials = synaptic = mac = accumulate = 0
    mismatches: list[str] = []
    fired: dict[str, int] = {}
    sizes: dict[str, int] = {}
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        check = check_bundle(bundle, x[part], labels[part])
        correct += round(check.accuracy * len(labels[part]))
        values += check.spike_values_compared
        potentials += check.potentials_compared
        mismatches += [f"{m} (samples {start}+)" for m in check.mismatches]
        for c in check.result.counters.values():
            synaptic += c.synaptic_ops
            mac += c.mac_ops
            accumulate += c.accumulate_ops
        for k in list(check.result.spikes)[:-1]:
            fired[k] = fired.get(k, 0) + int(check.result.spikes[k].sum())
            sizes[k] = sizes.get(k, 0) + int(check.result.spikes[k].size)
    return {
        "golden": correct / n,
        "bit_exact": not mismatches,
        "mismatches": mismatches,
        "spike_values_compared": values,
        "potentials_compared": potentials,
        "firing_rate": sum(fired.values()) / max(1, sum(sizes.values())),
        "firing_rates": {k: fired[k] / sizes[k] if sizes[k] else 0.0 for k in fired},
        "spikes_per_sample": sum(fired.values()) / n,
        "synaptic_ops_per_sample": synaptic / n,
        "mac_ops_per_sample": mac / n,
        "accumulate_ops_per_sample": accumulate / n,
    }


def write_results(out: Path, results: dict[str, Any], table: Callable[[dict], str]) -> None:
    """``out/results.json`` (everything) and ``out/results.md`` (``table(results)``); called
    after every sweep entry so that a stopped run keeps what it measured."""
    from spikeforge.algo.training.report import write_json

    write_json(out / "results.json", results)
    (out / "results.md").write_text(table(results))


def exit_status(rows: Iterable[dict[str, Any]]) -> int:
    """0 when every measured bundle was bit-exact, else 1 with an error line on stderr."""
    if all(row["bit_exact"] for row in rows):
        return 0
    print("ERROR: a bundle's bit-true pass differs from the golden model", file=sys.stderr)
    return 1


def markdown_table(columns: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table: the header, the separator, then one line per row of cells."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def percent(fraction: float) -> str:
    """``0.9833`` as ``98.33 %``, the sweeps' accuracy cells."""
    return f"{100 * fraction:.2f} %"


def yes_no(flag: bool, no: str = "no") -> str:
    """A table cell for a flag (``no="NO"`` where a no is a failure to see at a glance)."""
    return "yes" if flag else no
