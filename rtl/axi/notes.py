"""The integration note written beside the AXI-wrapped chip's Verilog: ports, the stream formats,
the timing of one sample, the register map and an instantiation example."""

from __future__ import annotations

from spikeforge.rtl.axi.registers import (
    RECORD_VERSION,
    RESULT_KIND,
    RegisterMap,
    markdown,
)
from spikeforge.rtl.axi.top import RECORD_EXTRA_WORDS, stream_bits
from spikeforge.rtl.chip.notes import architecture_and_ports, word_format
from spikeforge.rtl.chip.top import ChipPlan


def timing_diagram(n_words: int, n_out: int) -> list[str]:
    """One sample on the three ports, as a text waveform."""
    return [
        "```",
        "clk         _/^\\_/^\\_/^\\_/^\\_ ... _/^\\_/^\\_ ... _/^\\_/^\\_/^\\_ ... _/^\\_",
        f"s_axis      <w0 ><w1 > ... <w{n_words - 1}, TLAST>",
        "s_axis_tready  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^\\______________________________/^^^",
        "STATUS.BUSY    ____________________________/^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^\\___",
        "                                            | chip runs: CLEAR, PASSES passes |",
        "                                            |      (cycles: LAST_CYCLES)      |",
        f"m_axis                                                 <hdr><n><cyc><v0>..<v{n_out - 1}>"
        "<pred, TLAST>",
        "irq            _______________________________________________________/^^^^ (IRQ.DONE)",
        "```",
    ]


def instantiation(name: str, in_bits: int, addr_bits: int) -> list[str]:
    """A Verilog instance of the wrapper, every port named."""
    return [
        "```verilog",
        f"wire [{in_bits - 1}:0] in_tdata;   wire in_tvalid, in_tready, in_tlast;",
        "wire [31:0] res_tdata;  wire res_tvalid, res_tready, res_tlast;",
        f"{name} snn (",
        "  .clk(clk), .rst(rst),                       // one clock, synchronous active-high reset",
        "  .s_axis_tdata(in_tdata), .s_axis_tvalid(in_tvalid),",
        "  .s_axis_tready(in_tready), .s_axis_tlast(in_tlast),",
        "  .m_axis_tdata(res_tdata), .m_axis_tvalid(res_tvalid),",
        "  .m_axis_tready(res_tready), .m_axis_tlast(res_tlast),",
        f"  .s_axil_awaddr(axil_awaddr[{addr_bits - 1}:0]), .s_axil_awprot(axil_awprot),",
        "  .s_axil_awvalid(axil_awvalid), .s_axil_awready(axil_awready),",
        "  .s_axil_wdata(axil_wdata), .s_axil_wstrb(axil_wstrb),",
        "  .s_axil_wvalid(axil_wvalid), .s_axil_wready(axil_wready),",
        "  .s_axil_bresp(axil_bresp), .s_axil_bvalid(axil_bvalid), .s_axil_bready(axil_bready),",
        f"  .s_axil_araddr(axil_araddr[{addr_bits - 1}:0]), .s_axil_arprot(axil_arprot),",
        "  .s_axil_arvalid(axil_arvalid), .s_axil_arready(axil_arready),",
        "  .s_axil_rdata(axil_rdata), .s_axil_rresp(axil_rresp),",
        "  .s_axil_rvalid(axil_rvalid), .s_axil_rready(axil_rready),",
        "  .irq(snn_irq)",
        ");",
        "```",
    ]


def axi_integration_note(plan: ChipPlan, regs: RegisterMap, verilog: str, name: str) -> str:
    """Markdown: the wrapped chip's ports, formats, timing, register map and an instance."""
    n_out = plan.bundle.layers[-1].n_out
    in_bits = stream_bits(plan.word_bits)
    words = plan.depth
    lines = [
        f"# {name}: spikeforge chip behind AXI4-Stream and AXI4-Lite",
        "",
        f"Self-contained Verilog (`{name}.v`, top `{name}`): the trained weights, thresholds and "
        "modes are the memories' and registers' initial contents, so it runs without "
        "programming; a host can load another bundle of the same shape through the AXI-Lite "
        f"configuration window. Register map: `{name}_regs.md`; C header: `{name}_regs.h`. "
        "One clock `clk`, synchronous active-high reset `rst`: it resets the run state; the "
        "configuration (the cores' registers and memories, the chip's PIM registers) keeps "
        "what was last written, so a reset never mixes old and new settings.",
        "",
        *architecture_and_ports(plan, verilog, name),
        "## Input stream (`s_axis`)",
        "",
        f"A sample is one packet of at most {words} words (`DEPTH`), TLAST on its last. "
        f"`s_axis_tdata` is {in_bits} bits; the word sits in its low {plan.word_bits} bits. "
        "`s_axis_tready` is high while the wrapper is receiving (not while a sample runs or "
        "its result is being read out). A longer packet is dropped whole: IRQ.ERROR, "
        "ERROR_CODE 1, no result.",
        "",
        "Word format:",
        "",
        *word_format(plan),
        "",
        f"The chip plays the words `PASSES` times (reset value {plan.repeat()}).",
        "",
        f"## Result stream (`m_axis`), record format version {RECORD_VERSION}",
        "",
        f"One packet of {n_out + RECORD_EXTRA_WORDS} 32-bit words per sample, TLAST on the last:",
        "",
        "| word | content |",
        "|---|---|",
        f"| 0 | `0x{RESULT_KIND:02X} << 24 \\| {RECORD_VERSION} << 16 \\| {n_out}` (kind, version, "
        "outputs) |",
        "| 1 | sample number (results since reset or soft reset) |",
        "| 2 | clock cycles the sample ran in the chip |",
        f"| 3..{n_out + 2} | output potentials, two's complement |",
        f"| {n_out + 3} | prediction: index of the first largest potential |",
        "",
        "Records leave through an output FIFO; a consumer that holds `m_axis_tready` low stalls "
        "the read-out (and so the next sample), and nothing is lost.",
        "",
        "## One sample",
        "",
        *timing_diagram(words, n_out),
        "",
        "## Instantiation",
        "",
        *instantiation(name, in_bits, regs.addr_bits),
        "",
        markdown(regs).replace("# ", "## ", 1),
    ]
    return "\n".join(lines)
