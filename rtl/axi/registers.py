"""The AXI4-Lite register map of the chip wrapper, as data.

``register_map(plan, bundle_id)`` lists every register (``Register``: byte offset, access, reset
value, bit fields) and the configuration window (the chip's configuration space, one 32-bit word
per configuration address). The gateware (``spikeforge.rtl.axi.top``) decodes from it, and
``markdown`` and ``c_header`` turn the same data into the document and the header that
``spikeforge verilog`` writes next to the Verilog, so the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spikeforge.rtl.cores.core import Reg, Region

#: ``ID`` register: "SFCH" in ASCII.
CHIP_ID = 0x53464348
#: Version of this register map (``VERSION[15:0]``).
REGMAP_VERSION = 1
#: Version of the result record format on the output stream (``VERSION[23:16]``).
RECORD_VERSION = 1
#: First word of a result record: ``RESULT_KIND`` in bits 31..24.
RESULT_KIND = 0xA1
#: ``ERROR_CODE`` values.
ERROR_NONE, ERROR_TOO_LONG = 0, 1
#: Bytes per register / configuration word.
WORD_BYTES = 4


@dataclass(frozen=True)
class BitField:
    name: str
    bit: int
    width: int
    doc: str


@dataclass(frozen=True)
class Register:
    """One 32-bit register at byte ``offset``; ``access`` is RO, RW, W1C or WO."""

    name: str
    offset: int
    access: str
    doc: str
    reset: int = 0
    fields: tuple[BitField, ...] = ()

    def field(self, name: str) -> BitField:
        return next(f for f in self.fields if f.name == name)


@dataclass(frozen=True)
class WindowEntry:
    """A named part of the configuration window: ``target``'s address ``sub`` with ``args``
    (name, shift) folded in, e.g. core 0's weight of (axon, neuron)."""

    name: str
    target: int
    sub: int
    args: tuple[tuple[str, int], ...]
    doc: str


@dataclass
class RegisterMap:
    """Registers at the bottom of the address space, the configuration window at its top half."""

    name: str
    addr_bits: int
    registers: list[Register]
    window_base: int
    sub_bits: int
    n_targets: int
    entries: list[WindowEntry] = field(default_factory=list)

    def __getitem__(self, name: str) -> Register:
        return next(r for r in self.registers if r.name == name)

    def window_address(self, cfg_addr: int) -> int:
        """Byte address of configuration address ``cfg_addr``."""
        return self.window_base + WORD_BYTES * cfg_addr

    def cfg_address(self, target: int, sub: int) -> int:
        return target << self.sub_bits | sub


def _registers(plan, bundle_id: int) -> list[Register]:
    n_out = plan.bundle.layers[-1].n_out
    return [
        Register("ID", 0x00, "RO", 'constant 0x53464348, "SFCH"', CHIP_ID),
        Register(
            "VERSION",
            0x04,
            "RO",
            "register map and result record versions",
            RECORD_VERSION << 16 | REGMAP_VERSION,
            (
                BitField("REGMAP", 0, 16, "version of this register map"),
                BitField("RECORD", 16, 8, "version of the result record format"),
            ),
        ),
        Register("BUNDLE", 0x08, "RO", "first 32 bits of the bundle's sha256 digest", bundle_id),
        Register(
            "SHAPE",
            0x0C,
            "RO",
            "sizes of this build",
            plan.n_cores << 16 | n_out,
            (
                BitField("N_OUT", 0, 16, "output-layer neurons (potentials per result)"),
                BitField("N_CORES", 16, 8, "cores (configuration targets 0..N_CORES-1)"),
            ),
        ),
        Register("DEPTH", 0x10, "RO", "most input words one sample may have", plan.depth),
        Register(
            "CTRL",
            0x14,
            "RW",
            "interrupt enables and soft reset",
            0,
            (
                BitField("IRQ_DONE_EN", 0, 1, "raise irq while IRQ.DONE is set"),
                BitField("IRQ_ERROR_EN", 1, 1, "raise irq while IRQ.ERROR is set"),
                BitField(
                    "SOFT_RESET",
                    31,
                    1,
                    "write 1: finish the sample in the chip, drop queued results and the "
                    "sample being received, clear status, IRQ, ERROR_CODE and the counters "
                    "(reads 0)",
                ),
            ),
        ),
        Register(
            "STATUS",
            0x18,
            "RO",
            "state of the wrapper",
            0,
            (
                BitField("BUSY", 0, 1, "a sample is running or its result is being read out"),
                BitField("IN_SAMPLE", 1, 1, "words of a sample arrived, its TLAST not yet"),
                BitField("RESULTS", 2, 1, "result words wait in the output FIFO"),
            ),
        ),
        Register(
            "IRQ",
            0x1C,
            "W1C",
            "sticky events; write 1 to clear; irq = |(IRQ & CTRL enables)",
            0,
            (
                BitField("DONE", 0, 1, "a result record was queued"),
                BitField("ERROR", 1, 1, "a sample was dropped (see ERROR_CODE)"),
            ),
        ),
        Register(
            "ERROR_CODE",
            0x20,
            "RO",
            "why the last sample was dropped: 0 none, 1 more words than DEPTH",
        ),
        Register(
            "PASSES",
            0x24,
            "RW",
            "passes over a sample's words (time steps for direct encoding)",
            plan.repeat(),
        ),
        Register("SAMPLES", 0x28, "RO", "result records queued since reset or COUNT_CLEAR"),
        Register("CYCLES", 0x2C, "RO", "clock cycles samples ran in the chip (all samples)"),
        Register("LAST_CYCLES", 0x30, "RO", "clock cycles the last sample ran in the chip"),
        Register("IN_WORDS", 0x34, "RO", "input words accepted (dropped samples included)"),
        Register("COUNT_CLEAR", 0x38, "WO", "any write: SAMPLES, CYCLES, IN_WORDS to 0"),
    ]


def _core_entries(plan) -> list[WindowEntry]:
    entries = []
    for k, s in enumerate(plan.slices):
        p = s.params
        layout = p.cfg_layout
        index, axon = layout["index"].offset, layout["axon"].offset
        where = f"core {k} ({s.kind}, {plan.stages[_stage_of(plan, k)].layer.name})"
        for reg in Reg:
            entries.append(
                WindowEntry(f"CORE{k}_{reg.name}", k, p.addr(Region.CTRL, int(reg)), (), where)
            )
        entries.append(
            WindowEntry(
                f"CORE{k}_WEIGHT",
                k,
                p.addr(Region.WEIGHT),
                (("axon", axon), ("neuron", index)),
                f"{where}: weight of axon to neuron",
            )
        )
        for region in (Region.THETA, Region.BIAS, Region.V, Region.ACC):
            entries.append(
                WindowEntry(
                    f"CORE{k}_{region.name}",
                    k,
                    p.addr(region),
                    (("neuron", index),),
                    f"{where}: {region.name.lower()} of a neuron",
                )
            )
    return entries


def _stage_of(plan, core: int) -> int:
    for k, stage in enumerate(plan.stages):
        core -= len(stage.slices)
        if core < 0:
            return k
    raise IndexError(core)


def register_map(plan, bundle_id: int, name: str = "sf_chip") -> RegisterMap:
    """The register map of ``plan``'s wrapper; ``bundle_id`` goes into ``BUNDLE``."""
    window_bits = plan.cfg_addr_bits + 2
    addr_bits = max(window_bits, 8) + 1
    chip = plan.n_cores
    entries = _core_entries(plan)
    entries += [
        WindowEntry("CHIP_LSB_SHIFT", chip, 0, (), "PIM periphery: ADC code shift"),
        WindowEntry("CHIP_INPUT_SHIFT", chip, 1, (), "PIM periphery: layer 1 input shift"),
    ]
    if plan.periphery is not None:
        top = 1 << (plan.sub_bits - 1)
        entries.append(
            WindowEntry("CHIP_CORRECTION", chip, top, (("channel", 0),), "offset-binary correction")
        )
    return RegisterMap(
        name=name,
        addr_bits=addr_bits,
        registers=_registers(plan, bundle_id),
        window_base=1 << (addr_bits - 1),
        sub_bits=plan.sub_bits,
        n_targets=plan.n_cores + 1,
        entries=entries,
    )


# -- documents --------------------------------------------------------------------------------


def markdown(regs: RegisterMap) -> str:
    """The register map as a Markdown document."""
    up = regs.name.upper()
    lines = [
        f"# {regs.name}: AXI4-Lite register map (version {REGMAP_VERSION})",
        "",
        f"Address width {regs.addr_bits} bits, 32-bit data. Registers sit at the bottom of the "
        f"address space; the configuration window starts at 0x{regs.window_base:X}. Writes "
        "take whole words (WSTRB all ones). An address that is neither a register nor a "
        "configuration word of this build answers SLVERR (reads return 0).",
        "",
        "| offset | name | access | reset | description |",
        "|---|---|---|---|---|",
    ]
    for r in regs.registers:
        doc = r.doc.replace("|", "\\|")
        lines.append(f"| 0x{r.offset:03X} | {r.name} | {r.access} | 0x{r.reset:X} | {doc} |")
    lines += ["", "## Bit fields", "", "| register | bits | field | description |"]
    lines.append("|---|---|---|---|")
    for r in regs.registers:
        for f in r.fields:
            bits = f"{f.bit}" if f.width == 1 else f"{f.bit + f.width - 1}:{f.bit}"
            lines.append(f"| {r.name} | {bits} | {f.name} | {f.doc} |")
    lines += [
        "",
        "## Configuration window",
        "",
        f"Configuration address `a = target << {regs.sub_bits} | sub` is the word at byte "
        f"address `0x{regs.window_base:X} + 4*a` (`{up}_CFG(target, sub)` in the C header). "
        f"Targets 0..{regs.n_targets - 2} are the cores, target {regs.n_targets - 1} the chip "
        "registers. A core answers when it is idle: an access during a sample waits for the "
        "sample's end. Values are written in the low bits and read back sign-extended.",
        "",
        "| name | target | sub-address | description |",
        "|---|---|---|---|",
    ]
    for e in regs.entries:
        args = " ".join(f"\\| {a} << {s}" for a, s in e.args)
        lines.append(f"| {e.name} | {e.target} | 0x{e.sub:X} {args} | {e.doc} |")
    return "\n".join(lines) + "\n"


def c_header(regs: RegisterMap) -> str:
    """The register map as C macros (byte offsets from the wrapper's base address)."""
    up = regs.name.upper()
    guard = f"{up}_REGS_H"
    lines = [
        f"/* {regs.name}: AXI4-Lite register map version {REGMAP_VERSION}, written by "
        "spikeforge verilog. Offsets in bytes from the wrapper's base address. */",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        f"#define {up}_REGMAP_VERSION {REGMAP_VERSION}u",
        f"#define {up}_RECORD_VERSION {RECORD_VERSION}u",
        f"#define {up}_RESULT_KIND 0x{RESULT_KIND:X}u",
    ]
    for r in regs.registers:
        lines.append(f"#define {up}_{r.name} 0x{r.offset:03X}u")
        lines.append(f"#define {up}_{r.name}_RESET 0x{r.reset:X}u")
        for f in r.fields:
            lines.append(f"#define {up}_{r.name}_{f.name}_SHIFT {f.bit}u")
            lines.append(f"#define {up}_{r.name}_{f.name}_MASK 0x{(1 << f.width) - 1:X}u")
    lines += [
        "",
        f"#define {up}_WINDOW 0x{regs.window_base:X}u",
        f"#define {up}_SUB_BITS {regs.sub_bits}u",
        f"#define {up}_CFG(target, sub) \\",
        f"    ({up}_WINDOW + 4u * (((unsigned)(target) << {up}_SUB_BITS) | (unsigned)(sub)))",
    ]
    for e in regs.entries:
        params = ", ".join(a for a, _ in e.args)
        sub = f"0x{e.sub:X}u" + "".join(f" | ((unsigned)({a}) << {s})" for a, s in e.args)
        head = f"{up}_{e.name}({params})" if e.args else f"{up}_{e.name}"
        lines.append(f"#define {head} {up}_CFG({e.target}, {sub})")
    lines += ["", f"#endif /* {guard} */", ""]
    return "\n".join(lines)
