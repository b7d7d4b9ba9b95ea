"""The chip's simulation harness: a generated Verilog shell that runs samples without Python.

``shell_verilog`` writes the top ``sf_chip_tb`` around the emitted chip top (one chip, or
several side by side). It makes its own reset and, for each chip, runs a
sequencer that does in simulation what a host would do per sample: read the sample's words
from a stimulus memory (``$readmemh`` of ``stim{k}.hex``, reloaded per batch), write them into
the chip's input buffer one a cycle, pulse ``start``, wait for ``busy`` to fall, then read the
last layer's ``v`` and every core's counters through ``cfg``, back to back. The monitor port
is decoded in the shell: every stage event (SPIKE, TICK, CLEAR) is written with its sample,
stage, neuron and cycle to ``events{k}.txt``; every finished sample adds one line to
``samples{k}.txt`` (its cycles, the value of the shell's ``cycle`` counter when
``start`` was taken, then the read answers). The cocotb side
(``spikeforge.sim.testbenches.chip``) only writes a batch's stimulus and toggles ``go``; it
wakes once per batch, never per word or event. ``spikeforge.rtl.harness.output`` reads the
files back.

Stimulus file: per batch, the number of samples, then per sample its word count and its
words, one hexadecimal word a line. Cycles count the clock edges from the one that takes
``start`` to the one after which ``busy`` is low; an event's cycle is the cycle of the sample
in which it left its stage (the monitor port is registered, the shell takes that back out).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from spikeforge.rtl.chip.top import REPEAT_BITS, ChipPlan
from spikeforge.rtl.harness.stimulus import (
    STIM_WORDS,
    ShellJob,
    events_file,
    reads_file,
    samples_file,
    stim_file,
)

#: The shell's top module name.
SHELL_TOPLEVEL = "sf_chip_tb"


@dataclass(frozen=True)
class ShellChip:
    """One chip in the shell: its plan, port prefix and the hang bound per sample."""

    plan: ChipPlan
    prefix: str
    max_cycles: int

    @property
    def batch_samples(self) -> int:
        """Samples per stimulus batch: every sample's words (at most the input buffer's depth)
        and its header fit in the stimulus memory."""
        return max(1, (STIM_WORDS - 1) // (self.plan.depth + 1))

    @property
    def reads(self) -> list[int]:
        return self.plan.v_out_reads() + self.plan.counter_reads()

    def job(self) -> ShellJob:
        """What the testbench needs to feed this chip (no gateware in it)."""
        return ShellJob(
            self.plan.encoder(),
            stim_bits(self.plan),
            self.batch_samples,
            self.max_cycles,
            self.plan.depth,
            len(self.reads),
        )


def stim_bits(plan: ChipPlan) -> int:
    """Width of a stimulus memory word: an input-buffer word, or a 32-bit count if wider."""
    return max(plan.word_bits, 32)


def _port_widths(plan: ChipPlan) -> dict[str, int]:
    """The widths of ``Chip``'s ports, from its plan (as ``Chip.__init__`` declares them)."""
    depth = max(2, plan.depth)
    return {
        "addr": (depth - 1).bit_length(),
        "data": plan.word_bits,
        "count": depth.bit_length(),
        "passes": REPEAT_BITS,
        "cfg": plan.cfg_addr_bits,
        "mon": sum(3 + bits for _, bits in plan.monitor_fields()),
    }


def _chip_block(k: int, chip: ShellChip) -> str:
    """The sequencer and event writer of chip ``k``."""
    plan = chip.plan
    w = _port_widths(plan)
    p = f"{chip.prefix}__" if chip.prefix else ""
    n_reads = len(chip.reads)
    events = []
    for stage, (offset, bits) in enumerate(plan.monitor_fields()):
        op = f"mon{k}[{offset + 2}:{offset + 1}]"
        index = f"mon{k}[{offset + 3 + bits - 1}:{offset + 3}]"
        events.append(
            f'    if (mon{k}[{offset}]) $fwrite(ev{k}, "%0d {stage} %0d %0d %0d\\n", '
            f"done_samples{k}, {op}, {index}, cycle - t0_{k} - 64'd1);"
        )
    event_lines = "\n".join(events)
    return f"""
  // ---- chip {k} ({plan.n_cores} cores, feed {plan.feed})
  reg wr_en{k} = 1'b0;
  reg [{w["addr"] - 1}:0] wr_addr{k} = 0;
  reg [{w["data"] - 1}:0] wr_data{k} = 0;
  reg start{k} = 1'b0;
  reg [{w["count"] - 1}:0] count{k} = 0;
  reg cfg_valid{k} = 1'b0;
  reg [{w["cfg"] - 1}:0] cfg_addr{k} = 0;
  wire busy{k}, cfg_ready{k}, cfg_rvalid{k}, mon_toggle{k};
  wire [31:0] cfg_rdata{k};
  wire [{w["mon"] - 1}:0] mon{k};
  reg [{stim_bits(plan) - 1}:0] stim{k} [0:{STIM_WORDS - 1}];
  reg [{w["cfg"] - 1}:0] reads{k} [0:{n_reads - 1}];
  integer ev{k}, smp{k};
  reg [3:0] state{k} = S_IDLE;
  reg [31:0] ptr{k} = 0, left{k} = 0, words{k} = 0, idx{k} = 0;
  reg [31:0] issued{k} = 0, answered{k} = 0;
  reg [31:0] done_samples{k} = 0;
  reg [63:0] t0_{k} = 0;
  reg batch_done{k} = 1'b1;

  initial begin
    ev{k} = $fopen("{events_file(k)}", "w");
    smp{k} = $fopen("{samples_file(k)}", "w");
    $readmemh("{reads_file(k)}", reads{k});
  end

  assign {{busy{k}, cfg_ready{k}, cfg_rvalid{k}, cfg_rdata{k}, mon{k}, mon_toggle{k}}} =
    {{dut_{p}busy, dut_{p}cfg__ready, dut_{p}cfg__rvalid, dut_{p}cfg__rdata, dut_{p}mon,
      dut_{p}mon_toggle}};

  always @(posedge clk) begin
    // the monitor port holds the previous cycle's stage events
{event_lines}
    if (cfg_valid{k} && !cfg_ready{k} && !failed) begin
      $display("sf_chip_tb: chip {k}: cfg not ready at address %h", cfg_addr{k});
      failed <= 1'b1;
    end
    if (cfg_rvalid{k}) begin
      $fwrite(smp{k}, " %0d", cfg_rdata{k});
      answered{k} <= answered{k} + 1;
    end
    case (state{k})
      S_IDLE: if (batch_go) begin
        $readmemh("{stim_file(k)}", stim{k});
        left{k} <= stim{k}[0][31:0];
        ptr{k} <= 1;
        batch_done{k} <= 1'b0;
        state{k} <= S_NEXT;
      end
      S_NEXT: if (left{k} == 0) begin
        $fflush(ev{k});
        batch_done{k} <= 1'b1;
        state{k} <= S_WAIT;
      end else begin
        words{k} <= stim{k}[ptr{k}][31:0];
        ptr{k} <= ptr{k} + 1;
        idx{k} <= 0;
        state{k} <= S_WRITE;
      end
      S_WRITE: if (idx{k} == words{k}) begin
        wr_en{k} <= 1'b0;
        start{k} <= 1'b1;
        count{k} <= words{k}[{w["count"] - 1}:0];
        state{k} <= S_START;
      end else begin
        wr_en{k} <= 1'b1;
        wr_addr{k} <= idx{k}[{w["addr"] - 1}:0];
        wr_data{k} <= stim{k}[ptr{k}][{w["data"] - 1}:0];
        ptr{k} <= ptr{k} + 1;
        idx{k} <= idx{k} + 1;
      end
      S_START: begin
        start{k} <= 1'b0;
        t0_{k} <= cycle;
        state{k} <= S_RUN;
      end
      S_RUN: if (!busy{k}) begin
        $fwrite(smp{k}, "%0d %0d", cycle - t0_{k} - 64'd1, t0_{k});
        issued{k} <= 0;
        answered{k} <= 0;
        state{k} <= S_READ;
      end else if (cycle - t0_{k} > 64'd{chip.max_cycles}) begin
        $display("sf_chip_tb: chip {k}: sample %0d still busy after {chip.max_cycles} cycles",
                 done_samples{k});
        failed <= 1'b1;
        batch_done{k} <= 1'b1;
        state{k} <= S_WAIT;
      end
      S_READ: begin
        cfg_valid{k} <= issued{k} < {n_reads};
        cfg_addr{k} <= reads{k}[issued{k} < {n_reads} ? issued{k} : 0];
        if (issued{k} < {n_reads}) issued{k} <= issued{k} + 1;
        if (answered{k} + (cfg_rvalid{k} ? 1 : 0) == {n_reads}) begin
          $fwrite(smp{k}, "\\n");
          $fflush(smp{k});
          cfg_valid{k} <= 1'b0;
          done_samples{k} <= done_samples{k} + 1;
          left{k} <= left{k} - 1;
          state{k} <= S_NEXT;
        end
      end
      S_WAIT: if (!batch_go) state{k} <= S_IDLE;
      default: ;
    endcase
  end
"""


def _dut_ports(chips: Sequence[ShellChip]) -> tuple[str, str]:
    """Wire declarations for the chip top's outputs, and its port connections."""
    wires, ports = [], [".clk(clk)", ".rst(rst)"]
    for k, chip in enumerate(chips):
        w = _port_widths(chip.plan)
        p = f"{chip.prefix}__" if chip.prefix else ""
        wires += [
            f"  wire dut_{p}busy, dut_{p}cfg__ready, dut_{p}cfg__rvalid, dut_{p}mon_toggle;",
            f"  wire [31:0] dut_{p}cfg__rdata;",
            f"  wire [{w['mon'] - 1}:0] dut_{p}mon;",
        ]
        ports += [
            f".{p}wr__en(wr_en{k})",
            f".{p}wr__addr(wr_addr{k})",
            f".{p}wr__data(wr_data{k})",
            f".{p}start(start{k})",
            f".{p}count(count{k})",
            f".{p}passes({w['passes']}'d{chip.plan.repeat()})",
            f".{p}cfg__valid(cfg_valid{k})",
            f".{p}cfg__write(1'b0)",
            f".{p}cfg__addr(cfg_addr{k})",
            f".{p}cfg__wdata(32'd0)",
            f".{p}busy(dut_{p}busy)",
            f".{p}cfg__ready(dut_{p}cfg__ready)",
            f".{p}cfg__rvalid(dut_{p}cfg__rvalid)",
            f".{p}cfg__rdata(dut_{p}cfg__rdata)",
            f".{p}mon(dut_{p}mon)",
            f".{p}mon_toggle(dut_{p}mon_toggle)",
        ]
    return "\n".join(wires), ",\n    ".join(ports)


def shell_verilog(chips: Sequence[ShellChip], chip_module: str) -> str:
    """The Verilog of ``sf_chip_tb`` around ``chip_module`` (the emitted chip top). The clock is
    an input: the testbench drives it from the simulator side (cocotb's GPI clock), so
    Verilator needs no ``--timing`` and Python never wakes on an edge."""
    wires, ports = _dut_ports(chips)
    blocks = "".join(_chip_block(k, chip) for k, chip in enumerate(chips))
    all_done = " && ".join(f"batch_done{k} && state{k} == S_WAIT" for k in range(len(chips)))
    return f"""// Generated by spikeforge: the simulation harness of the chip (not synthesizable).
`timescale 1ns/1ps
module {SHELL_TOPLEVEL}(
  input wire clk /*verilator public_flat_rw*/,
  input wire go /*verilator public_flat_rw*/,
  output reg [31:0] batches_done /*verilator public_flat_rw*/ = 0,
  output reg failed /*verilator public_flat_rw*/ = 1'b0
);
  /*verilator public_module*/
  localparam S_IDLE = 0, S_NEXT = 1, S_WRITE = 2, S_START = 3, S_RUN = 4, S_READ = 5,
             S_WAIT = 6;
  reg [1:0] rst_count = 0;
  wire rst = rst_count != 2'd3;
  reg [63:0] cycle = 0;
  reg go_seen = 1'b0;
  reg batch_go = 1'b0;
  always @(posedge clk) begin
    cycle <= cycle + 1;
    if (rst) rst_count <= rst_count + 1;
  end
{wires}
  {chip_module} dut(
    {ports}
  );
{blocks}
  // a batch starts when go toggles; batches_done counts those every chip has finished
  always @(posedge clk) begin
    if (!rst && !batch_go && go != go_seen) begin
      go_seen <= go;
      batch_go <= 1'b1;
    end else if (batch_go && {all_done}) begin
      batch_go <= 1'b0;
      batches_done <= batches_done + 1;
    end
  end
endmodule
"""
