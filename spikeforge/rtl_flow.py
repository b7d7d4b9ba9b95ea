"""A bundle on its generated chip (``spikeforge.rtl.chip.top``) under cocotb, compared with the
golden model.

``run_chip`` plans and emits the chip, builds it with Verilator or Icarus, runs every sample
through ``spikeforge.sim.testbenches.chip`` and returns the RTL's results in ``spikeforge run``'s
keys plus cycles and per-core counters. ``first_mismatch`` finds the first (sample, step, layer,
neuron) where two results differ; ``counter_mismatches`` checks the RTL counters against the golden
model's; ``report`` prints throughput and the energy estimate from the RTL counters.
"""

from __future__ import annotations

import functools
import itertools
import os
import pickle
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from spikeforge.rtl.chip.top import Chip, ChipOptions, ChipPlan, plan_chip
from spikeforge.rtl.cores.core import COUNTER_REGS, Reg
from spikeforge.rtl.gateware.side_by_side import SideBySide
from spikeforge.rtl.harness.output import ShellOutput
from spikeforge.rtl.harness.shell import SHELL_TOPLEVEL, ShellChip, shell_verilog
from spikeforge.rtl.harness.stimulus import SHELL_PERIOD_NS
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.golden import GoldenResult, LayerCounters

TOPLEVEL = "sf_chip"
#: Verilator options of the chip's build: the clock comes from cocotb's GPI side (no
#: ``--timing``), and only the shell's ports are visible to cocotb (cocotb's runner makes every
#: signal public; that alone costs a factor of two or three in speed).
VERILATOR_ARGS = (
    "--no-timing", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
    "--no-public-flat-rw", "--public-depth", "0",
)  # fmt: skip
#: The waveform a job of a build with waves writes in its folder, per simulator and format.
WAVE_FILE = {"verilator": "dump.{}", "icarus": "wave.{}"}


@functools.cache
def wave_format(sim: str) -> str:
    """``fst`` where the simulator can write it here, else ``vcd``: Verilator's FST writer
    compiles against the LZ4 headers (Debian ``liblz4-dev``), which a bare machine lacks."""
    if sim != "verilator":
        return "fst"
    compiler = os.environ.get("CXX", "c++")
    try:
        probe = subprocess.run(
            [compiler, "-E", "-x", "c++", "-"],
            input="#include <lz4.h>\n",
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "vcd"
    return "fst" if probe.returncode == 0 else "vcd"


def wave_file(sim: str) -> str:
    """The name of the waveform a job of a build with waves writes in its folder."""
    return WAVE_FILE[sim].format(wave_format(sim))


#: Seconds between progress lines when the output is not a terminal.
PROGRESS_SECONDS = 30


@dataclass
class RtlRun:
    """What the chip produced: RESULT.npz arrays, cycles per sample, counters, timings."""

    plan: ChipPlan
    arrays: dict[str, np.ndarray]
    cycles: np.ndarray
    core_counters: np.ndarray  # [N, n_cores, 4] per sample, COUNTER_REGS order
    report: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    #: The job folders and the sample range ``[lo, hi)`` each simulated (their event files).
    job_dirs: list[tuple[Path, int, int]] = field(default_factory=list)
    #: The shell's cycle counter when each sample started (where a waveform shows it).
    starts: np.ndarray | None = None
    #: This chip's number in the shell (its files are ``events{k}.txt`` ...).
    chip_index: int = 0

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


def _collect(plan: ChipPlan, n: int, out: ShellOutput, report: dict, seconds: dict) -> RtlRun:
    """The run's arrays from a chip's joined output (counters already per sample)."""
    bundle = plan.bundle
    n_v = len(plan.v_out_reads())
    v_out = ((out.reads[:, :n_v] + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)
    arrays = {"pred": np.argmax(v_out, axis=1), "v_out": v_out}
    for k, layer in enumerate(bundle.layers):
        arrays[f"spikes.{layer.name}"] = out.spikes[k].reshape(
            n, bundle.timesteps, *layer.out_shape
        )
    counters = out.reads[:, n_v:].reshape(n, plan.n_cores, len(COUNTER_REGS))
    return RtlRun(plan, arrays, out.cycles, counters, report, seconds, starts=out.starts)


def job_ranges(n: int, jobs: int) -> list[tuple[int, int]]:
    """``jobs`` contiguous, near-equal sample ranges covering ``range(n)`` (none empty)."""
    jobs = max(1, min(jobs, n))
    edges = [n * j // jobs for j in range(jobs + 1)]
    return list(itertools.pairwise(edges))


@dataclass
class ChipBuild:
    """A built shell around one or more chips: where it is, and what each chip is."""

    sim: str
    folder: Path
    chips: list[ShellChip]
    seconds: dict[str, float] = field(default_factory=dict)
    waves: bool = False


def build_chips(
    plans: list[ChipPlan], *, sim: str, build_dir: Path, waves: bool = False
) -> ChipBuild:
    """Emit the chip top (one chip, or several side by side) and its shell; build them."""
    from spikeforge.rtl.gateware import emit
    from spikeforge.sim.flow import build_cocotb

    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    top = Chip(plans[0]) if len(plans) == 1 else SideBySide([Chip(p) for p in plans])
    verilog = emit.write(top, TOPLEVEL, build_dir / f"{TOPLEVEL}.v")
    chips = [
        ShellChip(plan, "" if len(plans) == 1 else f"c{k}", max_cycles(plan))
        for k, plan in enumerate(plans)
    ]
    shell = build_dir / f"{SHELL_TOPLEVEL}.v"
    shell.write_text(shell_verilog(chips, TOPLEVEL))
    seconds = {"generate": time.perf_counter() - t0}
    t1 = time.perf_counter()
    folder = build_dir / (f"{sim}-waves" if waves else sim)
    tracing = ["--trace-fst"] if wave_format(sim) == "fst" else ["--trace"]
    extra = [*VERILATOR_ARGS, *(tracing if waves else [])]
    build_cocotb(
        sources=[verilog, shell],
        toplevel=SHELL_TOPLEVEL,
        sim=sim,
        build_dir=folder,
        build_args=extra if sim == "verilator" else [],
        waves=waves,
    )
    seconds["build"] = time.perf_counter() - t1
    return ChipBuild(sim, folder, chips, seconds, waves)


def _job_case(build: ChipBuild, folder: Path, parts: list[tuple[Path, int, int]]) -> dict:
    """Write a job folder's per-chip files (plan, read addresses); its case."""
    from spikeforge.rtl.harness.stimulus import hex_lines, reads_file

    folder.mkdir(parents=True, exist_ok=True)
    chips = []
    for k, (chip, (inputs, lo, hi)) in enumerate(zip(build.chips, parts, strict=True)):
        plan_path = folder / f"plan{k}.pkl"
        with open(plan_path, "wb") as f:
            pickle.dump(chip.job(), f)
        (folder / reads_file(k)).write_bytes(hex_lines(chip.reads, chip.plan.cfg_addr_bits))
        chips.append({"plan": str(plan_path), "inputs": str(inputs), "range": [lo, hi]})
    return {"chips": chips}


def _watch(
    folders: list[Path],
    n_chips: int,
    total: int,
    log: Callable[[str], None] | None,
    done: Callable[[float | None], bool],
) -> None:
    """Progress until ``done(timeout)`` (which waits up to ``timeout`` s): samples finished (the
    shell's sample files), samples/s, ETA; a bar on a terminal, a line every 30 s otherwise."""
    from spikeforge.rtl.harness.stimulus import samples_file

    def finished() -> int:
        count = 0
        for folder in folders:
            for k in range(n_chips):
                path = folder / samples_file(k)
                if path.is_file():
                    count += path.read_bytes().count(b"\n")
        return count

    started = time.perf_counter()
    if log is None:
        done(None)
        return
    tty = sys.stderr.isatty()
    bar = tqdm(total=total, desc="rtl-sim", unit="sample", dynamic_ncols=True) if tty else None
    last_line = started
    while not done(0.5):
        now, count = time.perf_counter(), finished()
        if bar is not None:
            bar.update(count - bar.n)
        elif now - last_line >= PROGRESS_SECONDS:
            rate = count / max(now - started, 1e-9)
            eta = (total - count) / rate if rate else float("inf")
            log(f"rtl-sim: {count}/{total} samples, {rate:.1f} samples/s, ETA {eta:.0f} s")
            last_line = now
    if bar is not None:
        bar.update(finished() - bar.n)
        bar.close()


def simulate(
    build: ChipBuild,
    inputs: list[np.ndarray],
    *,
    jobs: int = 1,
    folder: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> list[RtlRun]:
    """Run every chip of ``build`` over its inputs in ``jobs`` simulator processes (contiguous
    sample ranges), then read and join their outputs in sample order. A build with waves
    writes each job's waveform into its folder (``WAVE_FILE``)."""
    from spikeforge.rtl.harness.output import read_shell_output
    from spikeforge.sim.flow import test_cocotb

    folder = Path(folder or build.folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, x in enumerate(inputs):
        path = folder / f"inputs{k}.npy"
        np.save(path, x)
        paths.append(path)
    longest = max(len(x) for x in inputs)
    ranges = job_ranges(longest, jobs)
    job_parts = []
    for lo, hi in ranges:  # each chip's samples split at the same fractions
        job_parts.append([
            (path, len(x) * lo // longest, len(x) * hi // longest)
            for path, x in zip(paths, inputs, strict=True)
        ])  # fmt: skip
    job_dirs = [folder / f"job{j}" for j in range(len(ranges))]
    for job_dir in job_dirs:
        shutil.rmtree(job_dir, ignore_errors=True)
    cases = [_job_case(build, d, parts) for d, parts in zip(job_dirs, job_parts, strict=True)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(job_dirs)) as pool:
        futures = [
            pool.submit(
                test_cocotb,
                toplevel=SHELL_TOPLEVEL,
                test_module="spikeforge.sim.testbenches.chip",
                sim=build.sim,
                build_dir=build.folder,
                test_dir=job_dir,
                case=case,
                waves=build.waves,
                plusargs=[f"+dumpfile_path={job_dir / wave_file(build.sim)}"]
                if build.waves and build.sim == "icarus"
                else (),
            )
            for job_dir, case in zip(job_dirs, cases, strict=True)
        ]
        total = sum(len(x) for x in inputs)

        def done(timeout: float | None) -> bool:
            return not wait(futures, timeout=timeout).not_done

        _watch(job_dirs, len(inputs), total, log, done)
        reports = [f.result() for f in futures]
    seconds = dict(
        build.seconds,
        simulate=time.perf_counter() - t0,  # the processes, start-up to exit
        running=max(r["seconds"] for r in reports),  # inside the testbench, longest job
    )
    clock_cycles = sum(r["clock_cycles"] for r in reports)
    runs = []
    for k, (chip, x) in enumerate(zip(build.chips, inputs, strict=True)):
        outputs = []
        for job_dir, parts in zip(job_dirs, job_parts, strict=True):
            _, lo, hi = parts[k]
            out = read_shell_output(job_dir, k, chip.plan, hi - lo, len(chip.reads))
            n_v = len(chip.plan.v_out_reads())  # counters: running totals -> per sample
            totals = out.reads[:, n_v:] & 0xFFFFFFFF
            out.reads[:, n_v:] = np.diff(totals, axis=0, prepend=0) % (1 << 32)
            outputs.append(out)
        joined = _join(outputs)
        counts = dict(joined.counts, samples=len(x), cycles=int(joined.cycles.sum()))
        counts["words"] = sum(r["per_chip"][k]["words"] for r in reports)
        counts["v_reads"] = len(chip.plan.v_out_reads()) * len(x)
        counts["counter_reads"] = len(chip.plan.counter_reads()) * len(x)
        counts["jobs"] = len(job_dirs)
        counts["clock_cycles"] = clock_cycles  # every chip of the shell, writes and reads too
        run = _collect(chip.plan, len(x), joined, counts, seconds)
        run.job_dirs = [
            (d, parts[k][1], parts[k][2]) for d, parts in zip(job_dirs, job_parts, strict=True)
        ]
        run.chip_index = k
        runs.append(run)
    return runs


def _join(outputs: list[ShellOutput]) -> ShellOutput:
    """Job outputs in sample order as one (counters stay per job: their deltas restart)."""
    counts: dict[str, int] = {}
    for out in outputs:
        for key, value in out.counts.items():
            counts[key] = counts.get(key, 0) + value
    return ShellOutput(
        [np.concatenate(parts) for parts in zip(*(o.spikes for o in outputs), strict=True)],
        np.concatenate([o.cycles for o in outputs]),
        np.concatenate([o.reads for o in outputs]),
        np.concatenate([o.starts for o in outputs]),
        counts,
    )


def run_chips(
    runs: list[tuple[ChipPlan, np.ndarray]],
    *,
    sim: str,
    build_dir: Path,
    jobs: int = 1,
    log: Callable[[str], None] | None = None,
) -> list[RtlRun]:
    """Emit one shell holding a chip per ``(plan, validated inputs)``, build it, run them all."""
    build = build_chips([plan for plan, _ in runs], sim=sim, build_dir=build_dir)
    return simulate(build, [x for _, x in runs], jobs=jobs, log=log)


def run_chip(
    bundle: Bundle,
    x: np.ndarray,
    *,
    sim: str,
    build_dir: Path,
    options: ChipOptions | None = None,
    plan: ChipPlan | None = None,
    jobs: int = 1,
    log: Callable[[str], None] | None = None,
) -> RtlRun:
    """Emit, build and run the chip for ``bundle`` on validated inputs ``x``."""
    plan = plan or plan_chip(bundle, options)
    return run_chips([(plan, x)], sim=sim, build_dir=build_dir, jobs=jobs, log=log)[0]


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
    """The first difference in (sample, step, layer, neuron) order, spikes before ``v_out``
    (layers whose spikes ``rtl`` does not hold, as from the AXI top, are not compared)."""
    best: tuple | None = None
    last = len(bundle.layers) - 1
    for k, layer in enumerate(bundle.layers):
        key = f"spikes.{layer.name}"
        if key not in rtl:
            continue
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


def stage_cores(plan: ChipPlan, layer: str) -> tuple[int, list[int]]:
    """The stage number of ``layer`` and its cores' numbers (``core{c}`` in the Verilog)."""
    base = 0
    for k, stage in enumerate(plan.stages):
        if stage.layer.name == layer:
            return k, list(range(base, base + len(stage.slices)))
        base += len(stage.slices)
    raise KeyError(layer)


def locate(run: RtlRun, mismatch: Mismatch) -> str:
    """Where the differing value came from on the chip: the stage's cores and the cycle (within
    the sample) at which the spike, or the TICK that closed the step without it, left them."""
    from spikeforge.rtl.harness.output import event_cycle

    stage, cores = stage_cores(run.plan, mismatch.layer)
    names = ", ".join(f"core{c}" for c in cores)
    sample = mismatch.sample
    if mismatch.what != "spike":
        return (
            f"layer {mismatch.layer} on {names}; read through cfg after the sample's "
            f"{int(run.cycles[sample])} cycles"
        )
    for folder, lo, hi in run.job_dirs:
        if lo <= sample < hi:
            found = event_cycle(
                folder, run.chip_index, sample - lo, stage, mismatch.step, mismatch.neuron
            )
            if found is None:
                return f"layer {mismatch.layer} on {names}; no event of that step left the stage"
            cycle, what = found
            return (
                f"the {what} left {names} (layer {mismatch.layer}) at cycle {cycle} of the sample"
            )
    return f"layer {mismatch.layer} on {names}"


@dataclass(frozen=True)
class Waveform:
    """A waveform of one sample and where in it to look."""

    path: Path
    sample: int
    hint: str

    def __str__(self) -> str:
        return f"waveform of sample {self.sample}: {self.path}\n  {self.hint}"


def wave_sample(
    plan: ChipPlan,
    x: np.ndarray,
    sample: int,
    mismatch: Mismatch | None,
    *,
    sim: str,
    build_dir: Path,
    target: Path,
) -> Waveform:
    """Re-run ``x[sample]`` alone on a build with waveform tracing and move its waveform to
    ``target``; say which signals and which time to look at."""
    build = build_chips([plan], sim=sim, build_dir=build_dir, waves=True)
    folder = Path(build_dir) / "wave"
    (run,) = simulate(build, [x[sample : sample + 1]], folder=folder)
    produced = folder / "job0" / wave_file(sim)
    if not produced.is_file():
        raise FileNotFoundError(f"the simulator wrote no waveform at {produced}")
    target = Path(target)
    shutil.move(str(produced), target)
    start = int(run.starts[0])
    look = "sf_chip_tb.cycle, sf_chip_tb.mon0 (every stage's events), sf_chip_tb.dut.player"
    hint = f"the sample starts at sf_chip_tb.cycle = {start} (time {start * SHELL_PERIOD_NS} ns)"
    if mismatch is not None:
        stage, cores = stage_cores(plan, mismatch.layer)
        look += "".join(f", sf_chip_tb.dut.core{c}" for c in cores)
        found = None
        if mismatch.what == "spike":
            from spikeforge.rtl.harness.output import event_cycle

            found = event_cycle(folder / "job0", 0, 0, stage, mismatch.step, mismatch.neuron)
        if found is not None:
            at = start + 1 + found[0]
            hint += (
                f"; the {found[1]} is at sf_chip_tb.cycle = {at} (time {at * SHELL_PERIOD_NS} ns)"
            )
    return Waveform(target, sample, f"{hint}; look at {look}")
