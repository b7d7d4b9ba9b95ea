"""The event-driven convolution core: a conv2d layer, ``lanes`` channels a cycle.

``ConvCore`` is ``spikeforge.rtl.cores.core.Core`` with a different synapse side: the weight memory
holds only the shared kernel, and an input event visits the kernel-sized neighbourhood of output
neurons it reaches. Streams, opcodes, configuration port, counters and the neuron (TICK) pipeline
are ``Core``'s. Read ``ConvCore``'s docstring for the memory layout and the cycle contract.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib.memory import Memory
from spikeforge.rtl.cores.core import (
    CLEAR_LATENCY,
    Core,
    CoreConfig,
    CoreParams,
    Op,
    Region,
    _Bypass,
    _CoreGateware,
    _Kind,
    _popcount,
    for_layer,
    verilog,
)
from spikeforge.rtl.gateware.config_bus import CFG_DATA_BITS
from spikeforge.rtl.gateware.widths import index_bits
from spikeforge.sim.semantics import signed_range

#: The event register in front of the engine: TICK and CLEAR cost one cycle more than in Core.
DECODE_LATENCY = 1


def axis_table(size: int, pad: int, stride: int, k: int, out: int) -> list[tuple[int, int, int]]:
    """Per input coordinate: ``(first output, its kernel offset, output count)`` it reaches.

    Input ``y`` reaches output ``oy`` through kernel row ``ky = y + pad - oy * stride``; the
    outputs reached are consecutive, with ``ky`` falling by ``stride`` from one to the next.
    """
    table = []
    for y in range(size):
        outs = [oy for oy in range(out) if 0 <= y + pad - oy * stride < k]
        first = outs[0] if outs else 0
        table.append((first, y + pad - first * stride if outs else 0, len(outs)))
    return table


@dataclass(frozen=True, kw_only=True)
class ConvCoreParams(CoreParams):
    """A conv2d layer's core: ``in_shape`` (C, H, W) to ``out_channels`` x Ho x Wo neurons.

    ``n_axons`` (inputs, ``C*H*W``) and ``n_neurons`` (``out_channels*Ho*Wo``) are derived; the
    other fields are ``CoreParams``'. Lanes run over output channels on the synapse side and over
    consecutive neurons on the neuron side (see ``ConvCore``).
    """

    in_shape: tuple[int, int, int]
    out_channels: int
    kernel: tuple[int, int] = (3, 3)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    n_axons: int = field(init=False, default=0)
    n_neurons: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        for name in ("in_shape", "kernel", "stride", "padding"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        checks = [
            (
                len(self.in_shape) == 3 and min(self.in_shape) >= 1,
                "in_shape must be (C, H, W) >= 1",
            ),
            (self.out_channels >= 1, "out_channels must be >= 1"),
            (len(self.kernel) == 2 and min(self.kernel) >= 1, "kernel must be two sizes >= 1"),
            (len(self.stride) == 2 and min(self.stride) >= 1, "stride must be two values >= 1"),
            (len(self.padding) == 2 and min(self.padding) >= 0, "padding must be two values >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if min(self.out_shape[1:]) < 1:
            raise ValueError(f"no output positions: in_shape {self.in_shape}, kernel {self.kernel}")
        object.__setattr__(self, "n_axons", math.prod(self.in_shape))
        object.__setattr__(self, "n_neurons", math.prod(self.out_shape))
        super().__post_init__()

    # -- geometry ---------------------------------------------------------------------------

    @property
    def out_shape(self) -> tuple[int, int, int]:
        (_, h, w), (kh, kw) = self.in_shape, self.kernel
        ho = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        wo = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        return (self.out_channels, ho, wo)

    @property
    def positions(self) -> int:
        """Output positions per channel, ``Ho * Wo``."""
        return self.out_shape[1] * self.out_shape[2]

    @property
    def taps(self) -> int:
        """Kernel taps ``C * kh * kw``: the fan-in of a neuron, and the weight memory's tap rows."""
        return self.in_shape[0] * self.kernel[0] * self.kernel[1]

    @property
    def channel_groups(self) -> int:
        """``ceil(out_channels / lanes)``: cycles a SPIKE spends per kernel tap."""
        return -(-self.out_channels // self.lanes)

    @property
    def axon_bits(self) -> int:
        """Bits of the WEIGHT address' tap field (``(c * kh + ky) * kw + kx``)."""
        return index_bits(self.taps)

    @property
    def in_index_bits(self) -> int:
        return max(index_bits(self.n_axons), self.neuron_bits)

    @property
    def fan_in(self) -> int:
        """Weights one neuron sums over: one per kernel tap."""
        return self.taps

    # -- accumulator banks ------------------------------------------------------------------

    @property
    def acc_depth(self) -> int:
        """Words per accumulator bank: ``channel_groups * positions``."""
        return self.channel_groups * self.positions

    @property
    def chunk_channels(self) -> int:
        """``lanes / gcd(lanes, positions)``: channels per chunk of ``lcm(lanes, positions)``."""
        return self.lanes // math.gcd(self.lanes, self.positions)

    def bank(self, neuron: int) -> int:
        """The accumulator bank of ``neuron``: ``(n + n // lcm(lanes, positions)) % lanes``."""
        chunk = neuron // (self.chunk_channels * self.positions)
        return (neuron + chunk) % self.lanes

    def bank_addr(self, neuron: int) -> int:
        """The word of ``neuron`` in its bank: ``(o // lanes) * positions + position``."""
        o, pos = divmod(neuron, self.positions)
        return (o // self.lanes) * self.positions + pos

    def lane_perm(self) -> list[int]:
        """``perm[l]``: where channel lane ``l`` sits before the SPIKE rotation (a permutation)."""
        m, p, n = self.chunk_channels, self.positions, self.lanes
        return [(lane * p + lane // m) % n for lane in range(n)]

    # -- addresses and costs ----------------------------------------------------------------

    def tap(self, c: int, ky: int, kx: int) -> int:
        return (c * self.kernel[0] + ky) * self.kernel[1] + kx

    def weight_addr(self, o: int, c: int, ky: int, kx: int) -> int:
        """Configuration address of ``W[o, c, ky, kx]``."""
        return self.addr(Region.WEIGHT, o, self.tap(c, ky, kx))

    def reach(self, index: int) -> tuple[int, int]:
        """Output rows and columns an input reaches: ``(ny, nx)``; ``(0, 0)`` out of range."""
        if not 0 <= index < self.n_axons:
            return 0, 0
        (_, h, w), (kh, kw) = self.in_shape, self.kernel
        (_, ho, wo), (sh, sw), (ph, pw) = self.out_shape, self.stride, self.padding
        y, x = divmod(index % (h * w), w)
        return axis_table(h, ph, sh, kh, ho)[y][2], axis_table(w, pw, sw, kw, wo)[x][2]

    def spike_cycles(self, index: int) -> int:
        """Cycles a SPIKE of ``index`` costs: ``max(1, ny * nx * channel_groups)``."""
        ny, nx = self.reach(index)
        return max(1, ny * nx * self.channel_groups)

    def max_spike_cycles(self) -> int:
        return self.kernel[0] * self.kernel[1] * self.channel_groups

    def tick_cycles(self, spikes_per_group: list[int] | None = None) -> int:
        """Cycles a TICK costs with an always-ready out stream (see ``ConvCore``)."""
        return super().tick_cycles(spikes_per_group) + DECODE_LATENCY

    def clear_cycles(self) -> int:
        return self.groups + CLEAR_LATENCY + DECODE_LATENCY


@dataclass
class ConvCoreConfig(CoreConfig):
    """Run-time configuration of a convolution core: the kernel ``[out_c, in_c, kh, kw]``, etc."""

    def weight_shape(self, params: ConvCoreParams) -> tuple[int, ...]:
        return (params.out_channels, params.in_shape[0], *params.kernel)

    def weight_writes(self, params: ConvCoreParams) -> list[tuple[int, int]]:
        """``(address, data)`` writes of every kernel weight, tap by tap."""
        w, mask = np.asarray(self.weights, dtype=np.int64), (1 << CFG_DATA_BITS) - 1
        c_in, kh, kw = params.in_shape[0], *params.kernel
        return [
            (params.weight_addr(o, c, ky, kx), int(w[o, c, ky, kx]) & mask)
            for c in range(c_in)
            for ky in range(kh)
            for kx in range(kw)
            for o in range(params.out_channels)
        ]

    def weight_rows(self, params: ConvCoreParams) -> list[list[int]]:
        """Row ``tap * channel_groups + og`` holds channels ``og*lanes .. +lanes-1`` of a tap."""
        w = np.asarray(self.weights).reshape(params.out_channels, params.taps)
        return [
            self._lanes(params, w[:, tap], og)
            for tap in range(params.taps)
            for og in range(params.channel_groups)
        ]

    def dense(self, params: ConvCoreParams) -> np.ndarray:
        """The unrolled ``[n_neurons, n_axons]`` matrix (a reference for tests, never hardware)."""
        w = np.asarray(self.weights, dtype=np.int64)
        (c_in, h, wi), (_, ho, wo) = params.in_shape, params.out_shape
        (kh, kw), (sh, sw), (ph, pw) = params.kernel, params.stride, params.padding
        out = np.zeros((params.n_neurons, params.n_axons), dtype=np.int64)
        channels_out = np.arange(params.out_channels) * ho * wo
        channels_in = np.arange(c_in) * h * wi
        for oy in range(ho):
            for ox in range(wo):
                for ky in range(kh):
                    for kx in range(kw):
                        iy, ix = oy * sh - ph + ky, ox * sw - pw + kx
                        if 0 <= iy < h and 0 <= ix < wi:
                            rows = channels_out + oy * wo + ox
                            cols = channels_in + iy * wi + ix
                            out[np.ix_(rows, cols)] += w[:, :, ky, kx]
        return out


def _div_const(m: Module, value: Value, divisor: int, limit: int, name: str) -> Value:
    """``value // divisor`` for ``0 <= value < limit``: a constant multiply and a shift.

    Granlund-Montgomery round-up reciprocal; exactness over the range is checked here.
    """
    if divisor == 1 or limit <= divisor:
        return value if divisor == 1 else Const(0, 1)
    bits = (limit - 1).bit_length()
    shift = bits + (divisor - 1).bit_length()
    mult = (1 << shift) // divisor + 1
    assert all((i * mult) >> shift == i // divisor for i in range(limit)), (divisor, limit)
    out = Signal(range((limit - 1) // divisor + 1), name=name)
    m.d.comb += out.eq((value[:bits] * mult) >> shift)
    return out


def _rotate(m: Module, values: list, amount: Value, sign: int, name: str) -> list:
    """``out[b] = values[(b - sign * amount) % n]``: a barrel rotation of ``n`` lanes."""
    n = len(values)
    if n == 1:
        return list(values)
    shape = Value.cast(values[0]).shape()
    out = [Signal(shape, name=f"{name}{b}") for b in range(n)]
    with m.Switch(amount):
        for r in range(n):
            with m.Case(r):
                m.d.comb += [out[b].eq(values[(b - sign * r) % n]) for b in range(n)]
    return out


def _lookup(m: Module, index: Value, table: list[tuple[int, ...]], widths, name: str) -> list:
    """A constant table (a small ROM in LUTs): ``table[index]``, zeros out of range."""
    out = [Signal(range(max(2, w)), name=f"{name}{k}") for k, w in enumerate(widths)]
    with m.Switch(index):
        for i, row in enumerate(table):
            with m.Case(i):
                m.d.comb += [o.eq(v) for o, v in zip(out, row, strict=True)]
    return out


class ConvCore(Core):
    """An event-driven convolution core: a conv2d layer with shared kernel weights.

    **Interface**: ``Core``'s (streams, opcodes, configuration port, counters). Input indices are
    flattened ``[C, H, W]``, neuron indices flattened ``[out_c, Ho, Wo]``; out-of-range indices add
    nothing. ``SPIKE(c, y, x)`` adds ``W[o, c, ky, kx]`` to every output ``(o, oy, ox)`` with
    ``ky = y + ph - oy*sh`` and ``kx = x + pw - ox*sw`` inside the kernel. Configuration
    addresses (``ConvCoreParams.addr``): WEIGHT ``(tap, o)`` with ``tap = (c*kh + ky)*kw + kx``
    (``weight_addr``); THETA, BIAS, V, ACC by neuron; CTRL registers and counters as ``Core``.
    Synaptic operations count the non-zero weights a SPIKE adds (the golden model's definition).

    **Memories** (synchronous read, block-RAM friendly): the kernel, ``taps * OG`` rows of
    ``lanes`` weights (``OG = ceil(out_c / lanes)``), never an unrolled crossbar; ``v``, theta
    and bias as ``Core`` (``G = ceil(n_neurons / lanes)`` rows of consecutive neurons);
    accumulators in ``lanes`` banks of ``OG * Ho * Wo`` words. Neuron ``n = o*P + pos``
    (``P = Ho*Wo``) lives in bank ``(n + n // lcm(lanes, P)) % lanes`` at word
    ``(o // lanes) * P + pos``: the ``lanes`` channels of one channel group at one position, and
    the ``lanes`` consecutive neurons of one TICK group, always fall in distinct banks, so a
    SPIKE visits ``lanes`` channels a cycle and a TICK ``lanes`` neurons a cycle, each through a
    barrel rotation.

    **Cycle contract**, out stream always ready: an accepted event is decoded into the engine's
    registers and worked on from the next cycle. ``i.ready`` is high again, counted from the
    cycle of acceptance, after ``SPIKE``: ``max(1, ny * nx * OG)`` cycles, where ``ny``/``nx``
    are the output rows/columns the input reaches (at most ``ceil(kh/sh)``/``ceil(kw/sw)``,
    fewer at borders; ``ConvCoreParams.spike_cycles``), because the next event is accepted in
    the SPIKE's last cycle; ``LOAD``: 1; ``CLEAR``: ``G + 2``; ``TICK``: ``G + TICK_LATENCY + 1``
    plus one cycle per spike beyond the first in a lane group (``tick_cycles``). A configuration
    access waits until the engine is idle: one cycle more after a SPIKE or LOAD. Busy cycles
    count the cycles in which an event is accepted or the engine works.
    """

    params: ConvCoreParams
    LAYER_KIND = "conv2d"
    PARAMS = ConvCoreParams
    CONFIG = ConvCoreConfig
    MODULE_NAME = "sf_conv_core"

    @staticmethod
    def layer_geometry(layer) -> dict[str, Any]:
        """The input map, output channels, kernel, stride and padding of ``layer``."""
        return {
            "in_shape": tuple(layer.in_shape),
            "out_channels": int(layer.weight.shape[0]),
            "kernel": tuple(layer.weight.shape[2:]),
            "stride": tuple(layer.stride),
            "padding": tuple(layer.padding),
        }

    def __init__(self, params: ConvCoreParams, init: ConvCoreConfig | None = None):
        init = init or ConvCoreConfig(
            weights=np.zeros((params.out_channels, params.in_shape[0], *params.kernel), np.int64),
            theta=signed_range(params.v_bits)[1],
        )
        super().__init__(params, init)

    def elaborate(self, platform):
        return _ConvCoreGateware(self).module()


class _ConvCoreGateware(_CoreGateware):
    """One elaboration of a ``ConvCore``: ``Core``'s, with the convolution synapse side."""

    params: ConvCoreParams

    # -- memories ---------------------------------------------------------------------------

    def _memories(self, m: Module) -> None:
        p = self.params
        rows = self.init.weight_rows(p)
        self.w_mem, self.w_wp = self._rows(m, "weight", signed(p.w_bits), len(rows), rows)
        self.w_rp = self.w_mem.read_port()
        self.acc_wps, self.acc_rps = [], []
        for b in range(p.lanes):
            mem = Memory(shape=signed(p.acc_bits), depth=max(2, p.acc_depth), init=[])
            m.submodules[f"acc{b}_mem"] = mem
            self.acc_wps.append(mem.write_port())
            self.acc_rps.append(mem.read_port())
        self._neuron_memories(m)

    # -- event engine -----------------------------------------------------------------------

    def _issue(self, m: Module) -> None:
        """Decode accepted events into registers; issue one operation a cycle (stage 0)."""
        p = self.params
        addr_shape = range(max(2, p.acc_depth))
        self.op_kind = Signal(range(len(_Kind)))
        self.op_group = Signal(p.group_bits)
        self.op_wrow = Signal(range(max(2, p.taps * p.channel_groups)))
        self.op_addr = [Signal(addr_shape, name=f"op_addr{b}") for b in range(p.lanes)]
        self.op_wen = Signal(p.lanes)
        self.op_rot = Signal(max(1, p.lane_bits))
        self.op_value = Signal(signed(p.load_bits))
        self.clear_out, self.tick_done, self.in_fire = Signal(), Signal(), Signal()
        accept = Signal()
        m.d.comb += [
            self.i.ready.eq(accept & ~self.cfg.valid),
            self.in_fire.eq(self.i.valid & self.i.ready),
        ]
        self._neuron_decoder(m)
        walker = self._walker(m)
        spike = self._spike_registers(m)
        start = self._spike_decode(m)
        with m.FSM(name="engine"):
            with m.State("IDLE"):
                m.d.comb += [self.idle.eq(1), accept.eq(1)]
                with m.If(self.in_fire):
                    self._accept(m, walker, spike, start)
            with m.State("SPIKE"):
                self._spike_step(m, spike)
                m.d.comb += accept.eq(spike["last"])
                with m.If(self.in_fire):
                    self._accept(m, walker, spike, start)
                with m.Elif(spike["last"]):
                    m.next = "IDLE"
            with m.State("LOAD"):
                ld = self.load_regs
                m.d.comb += [
                    self.op_kind.eq(Mux(ld["ok"], _Kind.LOAD, _Kind.NONE)),
                    self.op_wen.eq(Const(1, p.lanes) << ld["bank"]),
                    self.op_value.eq(ld["value"]),
                    accept.eq(1),
                ]
                m.d.comb += [a.eq(ld["addr"]) for a in self.op_addr]
                with m.If(self.in_fire):
                    self._accept(m, walker, spike, start)
                with m.Else():
                    m.next = "IDLE"
            with m.State("CLEAR"):
                self._group_op(m, walker, _Kind.ZERO)
                with m.If(walker["count"] == p.groups - 1):
                    m.next = "CLEAR_OUT"
            with m.State("CLEAR_OUT"):
                m.d.comb += self.clear_out.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"
            with m.State("TICK"):
                with m.If(self.advance):
                    with m.If(walker["count"] == p.groups):
                        m.d.comb += self.op_kind.eq(_Kind.TICK)
                        m.next = "TICK_WAIT"
                    with m.Else():
                        self._group_op(m, walker, _Kind.GROUP)
            with m.State("TICK_WAIT"):
                with m.If(self.tick_done):
                    m.next = "IDLE"

    def _accept(self, m: Module, walker: dict, spike: dict, start: dict) -> None:
        """Latch an accepted event's decoded form; its operations start next cycle."""
        ev = self.i.payload
        with m.Switch(ev.op):
            with m.Case(Op.SPIKE):
                m.d.sync += [spike[k].eq(v) for k, v in start.items()]
                m.next = "SPIKE"
            with m.Case(Op.LOAD):
                dec, ld = self.dec, self.load_regs
                ok = dec["ok"] if self.params.load else Const(0, 1)
                m.d.sync += [
                    ld["ok"].eq(ok),
                    ld["bank"].eq(dec["bank"]),
                    ld["addr"].eq(dec["addr"]),
                ]
                if self.params.load:
                    m.d.sync += ld["value"].eq(ev.value)
                m.next = "LOAD"
            with m.Case(Op.CLEAR, Op.TICK):
                m.d.sync += [walker["count"].eq(0), walker["pos"].eq(0), walker["o"].eq(0)]
                with m.If(ev.op == Op.CLEAR):
                    m.next = "CLEAR"
                with m.Else():
                    m.next = "TICK"

    # -- neuron index -> (bank, word): LOAD events and ACC reads ----------------------------

    def _neuron_decoder(self, m: Module) -> None:
        """Bank and word of a neuron index: the LOAD payload's, or a configuration read's."""
        p, cfg = self.params, self.cfg
        n = Signal(max(p.in_index_bits, p.cfg_index_bits), name="dec_n")
        from_cfg = cfg.valid & self.idle
        cfg_index = p.cfg_layout(cfg.addr).index
        m.d.comb += n.eq(Mux(from_cfg, cfg_index, self.i.payload.index))
        o = _div_const(m, n, p.positions, p.n_neurons, "dec_o")
        pos = Signal(range(max(2, p.positions)), name="dec_pos")
        m.d.comb += pos.eq(n - o * p.positions)
        chunk = o >> (p.chunk_channels.bit_length() - 1)
        bank = Signal(max(1, p.lane_bits), name="dec_bank")
        if p.lanes > 1:
            m.d.comb += bank.eq(n[: p.lane_bits] + chunk)
        addr = Signal(range(max(2, p.acc_depth)), name="dec_addr")
        m.d.comb += addr.eq((o >> p.lane_bits) * p.positions + pos)
        self.dec = {"ok": n < p.n_neurons, "bank": bank, "addr": addr}
        self.load_regs = {
            "ok": Signal(name="ld_ok"),
            "bank": Signal.like(bank, name="ld_bank"),
            "addr": Signal.like(addr, name="ld_addr"),
            "value": Signal(signed(p.load_bits), name="ld_value"),
        }

    # -- TICK and CLEAR: lane groups of consecutive neurons ---------------------------------

    def _walker(self, m: Module) -> dict:
        """Group ``count``'s neurons ``count*lanes + j``: channel ``o_j``, bank words, rotation.

        Registers hold the group's first neuron as (channel ``o``, position ``pos``); lane ``j``
        wraps into later channels by comparing ``pos + j`` with multiples of ``P``.
        """
        p = self.params
        big_p, lanes = p.positions, p.lanes
        wraps = (big_p - 1 + lanes) // big_p
        w = {
            "count": Signal(range(p.groups + 1), name="walk_count"),
            "pos": Signal(range(max(2, big_p)), name="walk_pos"),
            "o": Signal(range(p.out_channels + wraps + 1), name="walk_o"),
        }
        addrs, exists = [], []
        for j in range(lanes + 1):
            at = w["pos"] + j
            wrap = sum((at >= t * big_p for t in range(2, wraps + 1)), at >= big_p)
            o_j = Signal.like(w["o"], name=f"walk_o{j}")
            pos_j = Signal.like(w["pos"], name=f"walk_pos{j}")
            m.d.comb += [o_j.eq(w["o"] + wrap), pos_j.eq(at - wrap * big_p)]
            if j == lanes:
                w["next"] = (o_j, pos_j)
                break
            addr_j = Signal(range(max(2, p.acc_depth)), name=f"walk_addr{j}")
            m.d.comb += addr_j.eq((o_j >> p.lane_bits) * big_p + pos_j)
            addrs.append(addr_j)
            exists.append(o_j < p.out_channels)
        rot = Signal(max(1, p.lane_bits), name="walk_rot")
        if lanes > 1:
            m.d.comb += rot.eq(w["o"] >> (p.chunk_channels.bit_length() - 1))
        w["rot"] = rot
        w["addrs"] = _rotate(m, addrs, rot, 1, "walk_bank_addr")
        w["wen"] = Cat(*_rotate(m, exists, rot, 1, "walk_bank_en"))
        return w

    def _group_op(self, m: Module, w: dict, kind: _Kind) -> None:
        """Issue lane group ``count`` (GROUP or ZERO) and move the walker on."""
        m.d.comb += [
            self.op_kind.eq(kind),
            self.op_group.eq(w["count"]),
            self.op_wen.eq(w["wen"]),
            self.op_rot.eq(w["rot"]),
        ]
        m.d.comb += [a.eq(b) for a, b in zip(self.op_addr, w["addrs"], strict=True)]
        o_next, pos_next = w["next"]
        m.d.sync += [w["count"].eq(w["count"] + 1), w["o"].eq(o_next), w["pos"].eq(pos_next)]

    # -- SPIKE: the kernel neighbourhood, one channel group a cycle -------------------------

    def _spike_registers(self, m: Module) -> dict:
        p = self.params
        (kh, kw), og_n = p.kernel, p.channel_groups
        regs = {
            "ok": Signal(name="sp_ok"),
            "ny": Signal(range(kh + 1), name="sp_ny"),
            "nx": Signal(range(kw + 1), name="sp_nx"),
            "ty": Signal(range(kh + 1), name="sp_ty"),
            "tx": Signal(range(kw + 1), name="sp_tx"),
            "og": Signal(range(max(2, og_n)), name="sp_og"),
            "pos": Signal(range(max(2, p.positions)), name="sp_pos"),
            "row_pos": Signal(range(max(2, p.positions)), name="sp_row_pos"),
            "addr": Signal(range(max(2, p.acc_depth)), name="sp_addr"),
            "w": Signal(range(max(2, p.taps * og_n)), name="sp_w"),
            "row_w": Signal(range(max(2, p.taps * og_n)), name="sp_row_w"),
        }
        last = Signal(name="sp_last")
        m.d.comb += last.eq(
            ~regs["ok"]
            | (
                (regs["og"] == og_n - 1)
                & (regs["tx"] == regs["nx"] - 1)
                & (regs["ty"] == regs["ny"] - 1)
            )
        )
        regs["last"] = last
        return regs

    def _spike_decode(self, m: Module) -> dict:
        """The SPIKE registers' values for the in-stream's input ``(c, y, x)`` and first tap."""
        p = self.params
        (_, h, w), (kh, kw), og_n = p.in_shape, p.kernel, p.channel_groups
        (_, ho, wo), (sh, sw), (ph, pw) = p.out_shape, p.stride, p.padding
        index = self.i.payload.index
        c = _div_const(m, index, h * w, p.n_axons, "sp_c")
        rem = Signal(range(max(2, h * w)), name="sp_rem")
        m.d.comb += rem.eq(index - c * (h * w))
        y = _div_const(m, rem, w, h * w, "sp_y")
        x = Signal(range(max(2, w)), name="sp_x")
        m.d.comb += x.eq(rem - y * w)
        ys = [(o * wo, k * kw * og_n, n) for o, k, n in axis_table(h, ph, sh, kh, ho)]
        xs = [(o, k * og_n, n) for o, k, n in axis_table(w, pw, sw, kw, wo)]
        row_pos, ky_w, ny = _lookup(m, y, ys, (p.positions, p.taps * og_n, kh + 1), "sp_ytab")
        ox, kx_w, nx = _lookup(m, x, xs, (wo, kw * og_n, kw + 1), "sp_xtab")
        start_pos = row_pos + ox
        start_w = c * (kh * kw * og_n) + ky_w + kx_w
        ok = (index < p.n_axons) & (ny != 0) & (nx != 0)
        fields = {"ok": ok, "ny": ny, "nx": nx, "ty": 0, "tx": 0, "og": 0}
        fields |= {"pos": start_pos, "row_pos": start_pos, "addr": start_pos}
        return fields | {"w": start_w, "row_w": start_w}

    def _spike_step(self, m: Module, sp: dict) -> None:
        """Issue one channel group of the current tap; move to the next group, tap or row."""
        p = self.params
        kw, og_n, (sh, sw) = p.kernel[1], p.channel_groups, p.stride
        gcd_bits = math.gcd(p.lanes, p.positions).bit_length() - 1
        m.d.comb += [
            self.op_kind.eq(Mux(sp["ok"], _Kind.ADD, _Kind.NONE)),
            self.op_wrow.eq(sp["w"] + sp["og"]),
            self.op_wen.eq((1 << p.lanes) - 1),
        ]
        if p.lanes > 1:
            m.d.comb += self.op_rot.eq(sp["pos"] + (sp["og"] << gcd_bits))
        m.d.comb += [a.eq(sp["addr"]) for a in self.op_addr]
        with m.If(~sp["last"]):
            with m.If(sp["og"] != og_n - 1):
                m.d.sync += [sp["og"].eq(sp["og"] + 1), sp["addr"].eq(sp["addr"] + p.positions)]
            with m.Elif(sp["tx"] != sp["nx"] - 1):
                m.d.sync += [
                    sp["og"].eq(0),
                    sp["tx"].eq(sp["tx"] + 1),
                    sp["pos"].eq(sp["pos"] + 1),
                    sp["addr"].eq(sp["pos"] + 1),
                    sp["w"].eq(sp["w"] - sw * og_n),
                ]
            with m.Else():
                row_pos = sp["row_pos"] + p.out_shape[2]
                row_w = sp["row_w"] - sh * kw * og_n
                m.d.sync += [
                    sp["og"].eq(0),
                    sp["tx"].eq(0),
                    sp["ty"].eq(sp["ty"] + 1),
                    sp["row_pos"].eq(row_pos),
                    sp["pos"].eq(row_pos),
                    sp["addr"].eq(row_pos),
                    sp["row_w"].eq(row_w),
                    sp["w"].eq(row_w),
                ]

    # -- stages 1 and 2: read, execute into the banks ---------------------------------------

    def _accumulate(self, m: Module) -> None:
        """Stage 2: read-modify-write of the banks (ADD, LOAD), zeroing (CLEAR, TICK), each bank
        forwarded (``spikeforge.rtl.cores.core._Bypass``); the banks' values rotated into TICK lane
        order."""
        p = self.params
        s1 = self._stage1_registers(m)
        rd = [rp.data for rp in self.acc_rps]
        x = self._pipe(m, "x", {**s1, "w": self.w_rp.data, "rd": rd})
        self.x = x
        self._exec_neuron_data(m)
        kind = x["kind"]
        weights = [x["w"][lane] for lane in range(p.lanes)]
        perm = p.lane_perm()
        placed = [weights[perm.index(b)] for b in range(p.lanes)]
        addends = _rotate(m, placed, x["rot"], 1, "addend")
        masked = (kind == _Kind.LOAD) | (kind == _Kind.ZERO) | (kind == _Kind.GROUP)
        now = []
        for b, wp in enumerate(self.acc_wps):
            writes = Signal(name=f"x_writes{b}")
            m.d.comb += writes.eq((kind == _Kind.ADD) | (masked & x["wen"][b]))
            bypass = _Bypass(m, self.advance, f"acc{b}", p.acc_bits, len(x["addr"][b]))
            bypass.track(s1["addr"][b], writes, x["addr"][b])
            value = Signal(signed(p.acc_bits), name=f"acc_now{b}")
            m.d.comb += value.eq(bypass.value(x["rd"][b]))
            now.append(value)
            total = Signal(signed(p.acc_bits), name=f"acc_sum{b}")
            with m.Switch(kind):
                with m.Case(_Kind.ADD):
                    m.d.comb += total.eq(value + addends[b])
                with m.Case(_Kind.LOAD):
                    m.d.comb += total.eq(value + x["value"])
            m.d.comb += [wp.addr.eq(x["addr"][b]), wp.data.eq(total), wp.en.eq(writes)]
            bypass.written(writes, x["addr"][b], total)
        self.acc_now = now
        self.lane_sums = _rotate(m, now, x["rot"], -1, "lane_sum")
        nonzero = [(kind == _Kind.ADD) & (wgt != 0) for wgt in weights]
        self.syn_ops = _popcount(m, nonzero, "syn_ops_now")

    def _stage1_registers(self, m: Module) -> dict:
        """The operation whose memory reads return this cycle; moves on ``advance``."""
        s1 = self._pipe(
            m,
            "s1",
            {
                "kind": self.op_kind,
                "group": self.op_group,
                "rot": self.op_rot,
                "wen": self.op_wen,
                "value": self.op_value,
                "addr": list(self.op_addr),
            },
        )
        m.d.comb += [self.w_rp.addr.eq(self.op_wrow), self.w_rp.en.eq(self.advance)]
        for rp, addr in zip(self.acc_rps, self.op_addr, strict=True):
            m.d.comb += [rp.addr.eq(addr), rp.en.eq(self.advance)]
        for rp in (self.v_rp, self.theta_rp, self.bias_rp):
            if rp is not None:
                m.d.comb += [rp.addr.eq(self.op_group), rp.en.eq(self.advance)]
        return s1

    # -- hooks of Core's neuron pipeline and configuration port -----------------------------

    def _lane_sum(self, lane: int) -> Value:
        return self.lane_sums[lane]

    def _weight_ok(self, index, axon) -> Value:
        return (index < self.params.out_channels) & (axon < self.params.taps)

    def _weight_row(self, axon, group) -> Value:
        return axon * self.params.channel_groups + group

    def _cfg_point(self, m: Module, axon, group) -> None:
        m.d.comb += [self.op_wrow.eq(self._weight_row(axon, group)), self.op_group.eq(group)]

    def _acc_cfg_read(self, m: Module, read, index, group, r_lane) -> tuple[list, Value]:
        """Point every bank at the neuron's word; select its bank in stage 2 (two cycles on)."""
        r1_bank = Signal.like(self.dec["bank"], name="cfg_r1_bank")
        r2_bank = Signal.like(self.dec["bank"], name="cfg_r2_bank")
        m.d.sync += [r1_bank.eq(self.dec["bank"]), r2_bank.eq(r1_bank)]
        with m.If(read):
            m.d.comb += [a.eq(self.dec["addr"]) for a in self.op_addr]
        return list(self.acc_now), r2_bank


def conv_core_for_layer(layer, **options) -> tuple[ConvCoreParams, ConvCoreConfig]:
    """``for_layer(ConvCore, layer, **options)``: a convolution core for a ``conv2d`` layer."""
    return for_layer(ConvCore, layer, **options)


def conv_core_verilog(
    params: ConvCoreParams, init: ConvCoreConfig | None = None, name: str = "sf_conv_core"
) -> str:
    """``verilog(ConvCore, params, init, name)``."""
    return verilog(ConvCore, params, init, name)
