"""The integration note written beside a chip's Verilog: ports, word formats, the host protocol."""

from __future__ import annotations

import re

from spikeforge.rtl.chip.top import CHIP_READ_LATENCY, ChipPlan, chip_summary
from spikeforge.rtl.cores.core import COUNTER_REGS, Region

_PORT = re.compile(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s+)?\\?(\w+)\s*;")


def ports(verilog: str, module: str) -> list[tuple[str, int, str]]:
    """``(direction, width, name)`` of ``module``'s ports, from its Verilog text."""
    start = verilog.index(f"module {module}(")
    body = verilog[start : verilog.index("endmodule", start)]
    found = []
    for line in body.splitlines():
        match = _PORT.match(line)
        if match:
            found.append((match[1], int(match[2]) + 1 if match[2] else 1, match[3]))
    return found


def word_format(plan: ChipPlan) -> list[str]:
    """The input words of the chip's feed, as lines of Markdown."""
    if plan.periphery is not None:
        layout, p = plan.periphery.in_layout(), plan.periphery
        return [
            f"PIM ADC codes, one word per layer-1 neuron n = channel * {plan.pim.mapping.positions}"
            " + position, then one TICK word:",
            "  bits [1:0] op (3 = LOAD, 1 = TICK), "
            f"[{layout['index'].offset + p.index_bits - 1}:{layout['index'].offset}] neuron, "
            f"[{layout['channel'].offset + layout['channel'].shape.width - 1}:"
            f"{layout['channel'].offset}] channel,",
            f"  then {p.groups * p.columns} codes of {p.adc_bits} bits from bit "
            f"{layout['codes'].offset} (row group g, bit-column j at index g*{p.columns}+j),",
            "  as spikeforge.pim.model.PimLayer(..., keep_codes=True) produces them "
            "(spikeforge.rtl.chip.top.ChipPlan.sample_words builds the words).",
            f"  Play with passes = T = {plan.bundle.timesteps} (the same codes every step).",
        ]
    stage = plan.stages[0]
    if plan.feed == "sums":
        return [
            "layer-1 sums s[n] = sum_i W[n,i] x_i as LOAD words, then one TICK word:",
            f"  bits [1:0] op (3 = LOAD, 1 = TICK), [{stage.in_bits + 1}:2] neuron, "
            f"[{stage.in_bits + stage.value_bits + 1}:{stage.in_bits + 2}] s (two's complement).",
            f"  Play with passes = T = {plan.bundle.timesteps}.",
        ]
    return [
        "input spikes: per step, one SPIKE word per active input, then one TICK word:",
        f"  bits [1:0] op (0 = SPIKE, 1 = TICK), [{stage.in_bits + 1}:2] input index "
        "(flattened [C,H,W]). Play all T steps in one pass (passes = 1).",
    ]


def architecture_and_ports(plan: ChipPlan, verilog: str, name: str) -> list[str]:
    """The note's "Architecture" and "Ports" sections (Markdown lines), for any chip top."""
    b = plan.bundle
    return [
        "## Architecture",
        "",
        *[f"    {line}" for line in chip_summary(plan)],
        "",
        f"Network: {len(b.layers)} layers, T = {b.timesteps} steps, input "
        f"{list(b.input.shape)} ({b.input.encoding}), {b.layers[-1].n_out} outputs.",
        "",
        "## Ports",
        "",
        "| direction | width | name |",
        "|---|---|---|",
        *[f"| {d} | {w} | `{n}` |" for d, w, n in ports(verilog, name)],
        "",
    ]


def integration_note(plan: ChipPlan, verilog: str, name: str) -> str:
    """Markdown: what the design is, its ports, how to feed a sample and read the result."""
    last = plan.stages[-1]
    base = plan.n_cores - len(last.slices)
    lines = [
        f"# {name}: spikeforge chip",
        "",
        f"Self-contained Verilog (`{name}.v`, top `{name}`); the trained weights, thresholds "
        "and modes are the memories' and registers' initial contents, so it runs without "
        "programming. One clock `clk`, synchronous active-high reset `rst`: it resets the run "
        "state; the configuration (the cores' registers and memories, the chip's PIM "
        "registers) keeps what was last written.",
        "",
        *architecture_and_ports(plan, verilog, name),
        "## Feeding a sample",
        "",
        f"1. Write the sample's words into the input buffer ({plan.depth} words of "
        f"{plan.word_bits} bits): `wr__en` = 1, `wr__addr`, `wr__data`, one word a cycle.",
        "2. Pulse `start` for one cycle with `count` = words written and `passes`. The chip "
        "sends CLEAR (all potentials to 0), then the words `passes` times.",
        "3. Wait for `busy` to fall: every layer has finished every step.",
        "",
        "Word format:",
        "",
        *word_format(plan),
        "",
        "## Reading the result",
        "",
        "Configuration port `cfg`: drive `cfg__valid`, `cfg__write` = 0, `cfg__addr` for one "
        "cycle while `cfg__ready` is high; `cfg__rdata` (signed, 32 bits) is valid with "
        f"`cfg__rvalid` {CHIP_READ_LATENCY} cycles later. One read per cycle may be pipelined. "
        f"`addr = target << {plan.sub_bits} | sub`, target k < {plan.n_cores} is core k.",
        "",
        f"* Output potentials (layer `{last.layer.name}`, {last.layer.n_out} neurons): read "
        f"`v` of neuron n at addresses {_ranges(plan.v_out_reads())}; the prediction is the "
        "argmax (lowest index on ties).",
        f"* Counters per core k (32-bit, wrap; {', '.join(r.name for r in COUNTER_REGS)}): "
        f"sub addresses {[plan.slices[0].params.addr(Region.CTRL, int(r)) for r in COUNTER_REGS]}"
        " of target k (CTRL registers); a write to one clears all four.",
        f"* Last layer's cores: {list(range(base, plan.n_cores))}.",
        "",
        "## Monitors",
        "",
        "`mon` holds, per layer, a registered copy of that layer's output-stream handshake: "
        "fire (1 bit), op (2 bits), neuron index (layer numbering), at bit offsets "
        + ", ".join(
            f"{s.layer.name}: {o} ({bits} index bits)"
            for s, (o, bits) in zip(plan.stages, plan.monitor_fields(), strict=True)
        )
        + ". Per step a layer emits SPIKE(n) in ascending n, then TICK. `mon_toggle` flips "
        "after every cycle with an event (an event-driven trigger for simulators).",
        "",
    ]
    return "\n".join(lines)


def _ranges(addresses: list[int]) -> str:
    """Addresses as compact hex ranges."""
    parts, start = [], 0
    for k in range(1, len(addresses) + 1):
        if k == len(addresses) or addresses[k] != addresses[k - 1] + 1:
            lo, hi = addresses[start], addresses[k - 1]
            parts.append(f"{lo:#x}" if lo == hi else f"{lo:#x}..{hi:#x}")
            start = k
    return ", ".join(parts) + " (neuron order)"
