"""A bundle on its generated chip (``spikeforge.rtl.chip.top``) under cocotb, compared with the
golden model.

``run_chip`` plans and emits the chip, builds it with Verilator or Icarus, runs every sample
through ``spikeforge.sim.testbenches.chip`` and returns the RTL's results in ``spikeforge run``'s
keys plus cycles and per-core counters. ``first_mismatch`` finds the first (sample, step, layer,
neuron) where two results differ; ``counter_mismatches`` checks the RTL counters against the golden
model's; ``report`` prints throughput and the energy estimate from the RTL counters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.rtl.chip.top import Chip, ChipOptions, ChipPlan, plan_chip
from spikeforge.rtl.cores.core import COUNTER_REGS, Reg
from spikeforge.rtl.gateware.side_by_side import SideBySide
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.golden import GoldenResult, LayerCounters

TOPLEVEL = "sf_chip"


@dataclass
class RtlRun:
    """What the chip produced: RESULT.npz arrays, cycles per sample, counters, timings."""

    plan: ChipPlan
    arrays: dict[str, np.ndarray]
    cycles: np.ndarray
    core_counters: np.ndarray  # [N, n_cores, 4] per sample, COUNTER_REGS order
    report: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def layer_counters(self, golden: GoldenResult | None = None) -> dict[str, LayerCounters]:
        """Per-layer totals from the cores' counters (``LayerCounters`` of
        ``spikeforge.sim.golden``).

        A split layer's slices each see every broadcast event, so its input events are slice
        0's (its LOADs are summed). A LOAD-fed layer 1 computes no synaptic operation in the
        cores (the PIM array or the host does), so its operation counts come from ``golden``.
        """
        totals = self.core_counters.sum(axis=0)  # [n_cores, 4]
        col = {reg: k for k, reg in enumerate(COUNTER_REGS)}
        out, base = {}, 0
        for k, stage in enumerate(self.plan.stages):
            rows = totals[base : base + len(stage.slices)]
            base += len(stage.slices)
            loads = k == 0 and self.plan.feed != "spikes"
            events = rows[:, col[Reg.IN_EVENTS]]
            c = LayerCounters(
                input_events=int(events.sum() if loads else events[0]),
                synaptic_ops=int(rows[:, col[Reg.SYN_OPS]].sum()),
                output_spikes=int(rows[:, col[Reg.OUT_SPIKES]].sum()),
            )
            c.accumulate_ops = c.synaptic_ops
            if loads and golden is not None:
                g = golden.counters[stage.layer.name]
                c.input_events, c.synaptic_ops = g.input_events, g.synaptic_ops
                c.mac_ops, c.accumulate_ops = g.mac_ops, g.accumulate_ops
            out[stage.layer.name] = c
        return out


def max_cycles(plan: ChipPlan) -> int:
    """A generous bound on one sample's cycles (the testbench's hang detector)."""
    t = plan.bundle.timesteps
    work = 0
    for stage in plan.stages:
        for s in stage.slices:
            groups = -(-s.size // s.params.lanes)
            work += (stage.layer.n_in + 2) * (groups + 2) + 8
    return 4 * (t * work + plan.depth * plan.repeat() * 2) + 10_000


def _chip_case(plan: ChipPlan, x: np.ndarray, prefix: str, result_path: Path) -> dict[str, Any]:
    result_path.unlink(missing_ok=True)
    return {
        "prefix": prefix,
        "samples": plan.sample_words(x),
        "repeat": plan.repeat(),
        "timesteps": plan.bundle.timesteps,
        "monitor": plan.monitor_fields(),
        "n_out": [stage.layer.n_out for stage in plan.stages],
        "v_reads": plan.v_out_reads(),
        "counter_reads": plan.counter_reads(),
        "max_cycles": max_cycles(plan),
        "result_path": str(result_path),
    }


def _collect(plan: ChipPlan, x: np.ndarray, raw: Any, report: dict, seconds: dict) -> RtlRun:
    bundle = plan.bundle
    n = x.shape[0]
    v_out = raw["v_out"]
    arrays = {"pred": np.argmax(v_out, axis=1), "v_out": v_out}
    for k, layer in enumerate(bundle.layers):
        spikes = raw[f"spikes{k}"].reshape(n, bundle.timesteps, *layer.out_shape)
        arrays[f"spikes.{layer.name}"] = spikes
    counters = raw["counters"].reshape(n, plan.n_cores, len(COUNTER_REGS))
    return RtlRun(plan, arrays, raw["cycles"], counters, report, seconds)


def run_chips(
    runs: list[tuple[ChipPlan, np.ndarray]], *, sim: str, build_dir: Path
) -> list[RtlRun]:
    """Emit one top holding a chip per ``(plan, validated inputs)``, build it, run them all."""
    from spikeforge.rtl.gateware import emit
    from spikeforge.sim.flow import run_cocotb

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plans = [plan for plan, _ in runs]
    top = Chip(plans[0]) if len(plans) == 1 else SideBySide([Chip(p) for p in plans])
    verilog = emit.write(top, TOPLEVEL, build_dir / f"{TOPLEVEL}.v")
    chips = [
        _chip_case(plan, x, "" if len(runs) == 1 else f"c{k}", build_dir / f"rtl_raw{k}.npz")
        for k, (plan, x) in enumerate(runs)
    ]
    seconds = {"generate": time.perf_counter() - t0}
    t1 = time.perf_counter()
    report = run_cocotb(
        sources=[verilog],
        toplevel=TOPLEVEL,
        test_module="spikeforge.sim.testbenches.chip",
        sim=sim,
        build_dir=build_dir / sim,
        case={"chips": chips},
    )
    seconds["simulate"] = time.perf_counter() - t1
    return [
        _collect(plan, x, np.load(chip["result_path"]), counts, seconds)
        for (plan, x), chip, counts in zip(runs, chips, report["per_chip"], strict=True)
    ]


def run_chip(
    bundle: Bundle,
    x: np.ndarray,
    *,
    sim: str,
    build_dir: Path,
    options: ChipOptions | None = None,
    plan: ChipPlan | None = None,
) -> RtlRun:
    """Emit, build and run the chip for ``bundle`` on validated inputs ``x``."""
    plan = plan or plan_chip(bundle, options)
    return run_chips([(plan, x)], sim=sim, build_dir=build_dir)[0]


@dataclass(frozen=True)
class Mismatch:
    """The first difference: where, and the two values."""

    sample: int
    step: int
    layer: str
    neuron: int
    what: str
    rtl: int
    golden: int

    def __str__(self) -> str:
        return (
            f"first mismatch: sample {self.sample}, step {self.step}, layer {self.layer}, "
            f"neuron {self.neuron}: {self.what} rtl {self.rtl}, golden {self.golden}"
        )


def first_mismatch(
    bundle: Bundle, rtl: dict[str, np.ndarray], golden: dict[str, np.ndarray]
) -> Mismatch | None:
    """The first difference in (sample, step, layer, neuron) order, spikes before ``v_out``."""
    best: tuple | None = None
    last = len(bundle.layers) - 1
    for k, layer in enumerate(bundle.layers):
        key = f"spikes.{layer.name}"
        a, b = rtl[key], golden[key]
        n, t = b.shape[:2]
        diff = np.argwhere(a.reshape(n, t, -1) != b.reshape(n, t, -1))
        if len(diff):
            s, step, neuron = (int(v) for v in diff[0])
            got, want = (
                int(a.reshape(n, t, -1)[s, step, neuron]),
                int(b.reshape(n, t, -1)[s, step, neuron]),
            )
            cand = ((s, step, k, neuron), Mismatch(s, step, layer.name, neuron, "spike", got, want))
            best = cand if best is None or cand[0] < best[0] else best
    diff = np.argwhere(rtl["v_out"] != golden["v_out"])
    if len(diff):
        s, neuron = (int(v) for v in diff[0])
        step = bundle.timesteps - 1
        m = Mismatch(
            s, step, bundle.layers[-1].name, neuron, "v_out",
            int(rtl["v_out"][s, neuron]), int(golden["v_out"][s, neuron]),
        )  # fmt: skip
        cand = ((s, step, last, neuron), m)
        best = cand if best is None or cand[0] < best[0] else best
    if best is None and not np.array_equal(rtl["pred"], golden["pred"]):
        s = int(np.flatnonzero(rtl["pred"] != golden["pred"])[0])
        return Mismatch(s, bundle.timesteps - 1, bundle.layers[-1].name, -1, "pred",
                        int(rtl["pred"][s]), int(golden["pred"][s]))  # fmt: skip
    return None if best is None else best[1]


def counter_mismatches(run: RtlRun, golden: GoldenResult) -> list[str]:
    """Layers whose RTL event, synaptic-operation or spike counts differ from the golden's."""
    problems = []
    for name, c in run.layer_counters(golden).items():
        g = golden.counters[name]
        for what in ("input_events", "synaptic_ops", "output_spikes"):
            if getattr(c, what) != getattr(g, what):
                problems.append(
                    f"layer {name}: {what} rtl {getattr(c, what)}, golden {getattr(g, what)}"
                )
    return problems
