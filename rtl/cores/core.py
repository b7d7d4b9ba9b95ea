"""The neurosynaptic core: one layer, event driven, ``lanes`` neurons a cycle.

Read ``Core``'s docstring for the interface, the event encoding and the cycle contract;
``CoreParams`` holds the elaboration-time parameters, ``CoreConfig`` the run-time configuration
(which is also what initialises the memories, so a generated core can run without programming).
"""

from __future__ import annotations

import enum as py_enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from spikeforge.rtl.cores.neuron import (
    FIRE_CODE,
    LEAK_CODE,
    RESET_CODE,
    NeuronUpdate,
    neuron_config_layout,
)
from spikeforge.rtl.gateware.config_bus import (
    CFG_DATA_BITS,
    CFG_READ_LATENCY,
    address_layout,
    config_signature,
    delayed,
    pack_address,
)
from spikeforge.rtl.gateware.widths import index_bits
from spikeforge.sim.semantics import FIRE_MODES, LEAK_MODES, RESET_MODES, Leak, signed_range

#: Cycles a TICK costs beyond ``groups``: the TICK token behind the last group, memory read,
#: read register (execute stage), the neuron pipeline, the emitter, the out event.
TICK_LATENCY = 4 + NeuronUpdate.LATENCY
#: Cycles a CLEAR costs beyond ``groups`` (its forwarded CLEAR out event).
CLEAR_LATENCY = 1
#: Bits of the configuration address' region field (``Region``), its top bits.
REGION_BITS = 3
LANE_CHOICES = (1, 2, 4, 8, 16)


class Op(enum.Enum, shape=2):
    """Event opcodes, the same on the in and the out stream (so cores chain directly)."""

    SPIKE = 0
    TICK = 1
    CLEAR = 2
    LOAD = 3


class Region(py_enum.IntEnum):
    """Configuration address regions (the top three address bits)."""

    CTRL = 0
    WEIGHT = 1
    THETA = 2
    BIAS = 3
    V = 4
    ACC = 5


class Reg(py_enum.IntEnum):
    """Registers of the CTRL region; the four counters are read-only, a write clears all four."""

    LEAK = 0
    RESET = 1
    FIRE = 2
    LAM = 3
    FRAC = 4
    K = 5
    INPUT_SHIFT = 6
    THETA = 7
    IN_EVENTS = 8
    SYN_OPS = 9
    OUT_SPIKES = 10
    BUSY_CYCLES = 11


COUNTER_REGS = (Reg.IN_EVENTS, Reg.SYN_OPS, Reg.OUT_SPIKES, Reg.BUSY_CYCLES)


def _within(values: np.ndarray, bits: int) -> bool:
    lo, hi = signed_range(bits)
    return bool(np.all((values >= lo) & (values <= hi)))


@dataclass(frozen=True)
class CoreParams:
    """Elaboration-time parameters of a core; every derived width lives here."""

    n_axons: int
    n_neurons: int
    w_bits: int = 8
    v_bits: int = 16
    lanes: int = 1
    neuron_threshold: bool = True
    bias: bool = False
    load: bool = False
    load_bits: int = 16
    acc_bits: int | None = None
    bias_bits: int | None = None
    max_frac: int = 16
    leak_modes: tuple[str, ...] = LEAK_MODES
    counter_bits: int = 32

    def __post_init__(self) -> None:
        checks = [
            (self.n_axons >= 1, "n_axons must be >= 1"),
            (self.n_neurons >= 1, "n_neurons must be >= 1"),
            (2 <= self.w_bits <= 8, "w_bits must be in 2..8"),
            (8 <= self.v_bits <= 24, "v_bits must be in 8..24"),
            (self.lanes in LANE_CHOICES, f"lanes must be one of {LANE_CHOICES}"),
            (2 <= self.load_bits <= 31, "load_bits must be in 2..31"),
            (0 <= self.max_frac <= 24, "max_frac must be in 0..24"),
            (set(self.leak_modes) <= set(LEAK_MODES), f"leak_modes must be from {LEAK_MODES}"),
            (1 <= self.counter_bits <= CFG_DATA_BITS, "counter_bits must be in 1..32"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.acc_bits is None:
            object.__setattr__(self, "acc_bits", self.default_acc_bits())
        if self.bias_bits is None:
            object.__setattr__(self, "bias_bits", self.v_bits)
        if not max(self.w_bits, self.load_bits if self.load else 0) < self.acc_bits <= 32:
            raise ValueError("acc_bits must exceed w_bits (and load_bits) and be <= 32")
        if not 2 <= self.bias_bits <= 32:
            raise ValueError("bias_bits must be in 2..32")

    @property
    def fan_in(self) -> int:
        """Weights one neuron sums over: one per axon."""
        return self.n_axons

    def default_acc_bits(self) -> int:
        """Room for four times the larger of one event per weight of a neuron (``fan_in``) and
        one LOAD, exactly."""
        spikes = self.w_bits - 1 + (self.fan_in - 1).bit_length()
        loads = self.load_bits - 1 if self.load else 0
        return max(spikes, loads) + 3

    @property
    def groups(self) -> int:
        """Lane groups: cycles to visit every neuron once."""
        return -(-self.n_neurons // self.lanes)

    @property
    def lane_bits(self) -> int:
        return (self.lanes - 1).bit_length()

    @property
    def group_bits(self) -> int:
        return index_bits(self.groups)

    @property
    def axon_bits(self) -> int:
        return index_bits(self.n_axons)

    @property
    def neuron_bits(self) -> int:
        return index_bits(self.n_neurons)

    @property
    def in_index_bits(self) -> int:
        return max(self.axon_bits, self.neuron_bits)

    @property
    def cfg_index_bits(self) -> int:
        return max(self.neuron_bits, 4)

    @property
    def cfg_layout(self) -> data.StructLayout:
        """The configuration address: ``index`` (a neuron or a CTRL register), ``axon``,
        ``region`` (``Region``), lowest bits first."""
        fields = {"index": self.cfg_index_bits, "axon": self.axon_bits, "region": REGION_BITS}
        return address_layout(fields)

    @property
    def cfg_addr_bits(self) -> int:
        return self.cfg_layout.size

    def addr(self, region: Region, index: int = 0, axon: int = 0) -> int:
        """Configuration address of ``index`` (a neuron or a CTRL register) in ``region``."""
        return pack_address(self.cfg_layout, index=index, axon=axon, region=int(region))

    def tick_cycles(self, spikes_per_group: list[int] | None = None) -> int:
        """Cycles a TICK costs with an always-ready out stream (see ``Core``)."""
        extra = sum(max(0, k - 1) for k in spikes_per_group or [])
        return self.groups + TICK_LATENCY + extra

    def in_layout(self) -> data.StructLayout:
        fields = {"op": Op, "index": unsigned(self.in_index_bits)}
        if self.load:
            fields["value"] = signed(self.load_bits)
        return data.StructLayout(fields)

    def out_layout(self) -> data.StructLayout:
        return data.StructLayout({"op": Op, "index": unsigned(self.neuron_bits)})

    def pack_in(self, op: int, index: int = 0, value: int = 0) -> int:
        """The in-stream payload as an integer (op in the low two bits, then index, value)."""
        word = (int(op) & 3) | (index << 2)
        if self.load:
            word |= (value & ((1 << self.load_bits) - 1)) << (2 + self.in_index_bits)
        return word

    def unpack_out(self, word: int) -> tuple[int, int]:
        """``(op, index)`` of an out-stream payload integer."""
        return word & 3, word >> 2


@dataclass
class CoreConfig:
    """Run-time configuration of a core: weights ``[n_neurons, n_axons]``, thresholds, modes."""

    weights: np.ndarray
    theta: np.ndarray | int = 1
    bias: np.ndarray | int | None = None
    leak: Leak = field(default_factory=Leak)
    reset: str = "sub"
    fire: str = "lif"
    input_shift: int = 0

    def theta_vector(self, params: CoreParams) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.theta, dtype=np.int64), (params.n_neurons,))

    def bias_vector(self, params: CoreParams) -> np.ndarray:
        bias = 0 if self.bias is None else self.bias
        return np.broadcast_to(np.asarray(bias, dtype=np.int64), (params.n_neurons,))

    def validate(self, params: CoreParams) -> None:
        """Raise ``ValueError`` naming the first value this core cannot hold."""
        w = np.asarray(self.weights)
        theta, bias = self.theta_vector(params), self.bias_vector(params)
        checks = [
            (w.shape == self.weight_shape(params), f"weights shape {w.shape}"),
            (_within(w, params.w_bits), "weights outside the signed w_bits range"),
            (theta.min() >= 1 and theta.max() <= signed_range(params.v_bits)[1], "theta range"),
            (params.neuron_threshold or np.all(theta == theta[0]), "per-neuron theta unsupported"),
            (params.bias or not np.any(bias), "bias unsupported by this core"),
            (_within(bias, params.bias_bits), "bias outside the signed bias_bits range"),
            (self.leak.mode in (*params.leak_modes, "none"), f"leak {self.leak.mode} not built"),
            (0 <= self.leak.frac <= params.max_frac, "leak frac above max_frac"),
            (0 <= self.leak.lam <= 1 << self.leak.frac, "leak lam outside 0..2^frac"),
            (1 <= self.leak.k < params.v_bits, "leak k outside 1..v_bits-1"),
            (self.reset in RESET_MODES and self.fire in FIRE_MODES, "reset/fire mode"),
            (0 <= self.input_shift <= params.acc_bits, "input_shift outside 0..acc_bits"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"CoreConfig: {message}")

    def weight_shape(self, params: CoreParams) -> tuple[int, ...]:
        return (params.n_neurons, params.n_axons)

    def ctrl_values(self, params: CoreParams) -> dict[Reg, int]:
        """CTRL register values (the global threshold is neuron 0's)."""
        return {
            Reg.LEAK: LEAK_CODE[self.leak.mode],
            Reg.RESET: RESET_CODE[self.reset],
            Reg.FIRE: FIRE_CODE[self.fire],
            Reg.LAM: self.leak.lam,
            Reg.FRAC: self.leak.frac,
            Reg.K: self.leak.k,
            Reg.INPUT_SHIFT: self.input_shift,
            Reg.THETA: int(self.theta_vector(params)[0]),
        }

    def cfg_writes(self, params: CoreParams) -> list[tuple[int, int]]:
        """``(address, data)`` writes that program this configuration through the port."""
        self.validate(params)
        mask = (1 << CFG_DATA_BITS) - 1
        writes = [
            (params.addr(Region.CTRL, r), v & mask) for r, v in self.ctrl_values(params).items()
        ]
        writes += self.weight_writes(params)
        per_neuron = [(Region.THETA, params.neuron_threshold, self.theta_vector(params))]
        per_neuron.append((Region.BIAS, params.bias, self.bias_vector(params)))
        for region, present, values in per_neuron:
            if present:
                writes += [(params.addr(region, n), int(x) & mask) for n, x in enumerate(values)]
        return writes

    def weight_writes(self, params: CoreParams) -> list[tuple[int, int]]:
        """``(address, data)`` writes of every weight, axon by axon."""
        w, mask = np.asarray(self.weights, dtype=np.int64), (1 << CFG_DATA_BITS) - 1
        return [
            (params.addr(Region.WEIGHT, n, axon), int(w[n, axon]) & mask)
            for axon in range(params.n_axons)
            for n in range(params.n_neurons)
        ]

    def weight_rows(self, params: CoreParams) -> list[list[int]]:
        """Weight memory rows: row ``axon * groups + g`` holds neurons ``g*lanes .. +lanes-1``."""
        return [
            self._lanes(params, np.asarray(self.weights)[:, axon], g)
            for axon in range(params.n_axons)
            for g in range(params.groups)
        ]

    @staticmethod
    def _lanes(params: CoreParams, values: np.ndarray, g: int) -> list[int]:
        chunk = [int(x) for x in values[g * params.lanes : (g + 1) * params.lanes]]
        return chunk + [0] * (params.lanes - len(chunk))

    def neuron_rows(self, params: CoreParams, values: np.ndarray) -> list[list[int]]:
        return [self._lanes(params, values, g) for g in range(params.groups)]


def _popcount(m: Module, bits: list, name: str) -> Signal:
    out = Signal(range(len(bits) + 1), name=name)
    m.d.comb += out.eq(sum(bits[1:], bits[0]) if len(bits) > 1 else bits[0])
    return out


class _Bypass:
    """Read-after-write forwarding for an accumulator memory (or one bank of it).

    An operation reads its row in stage 0 (the address is registered in the block RAM) and
    writes it in stage 2. The rows written by the two operations in stage 2 during its stages
    0 and 1 are missing from what it read (the second one's write and its read hit the same
    clock edge); they are kept in ``wb1``/``wb2`` and replace the read data in stage 2 when the
    row matches (the newer one first). The address comparisons are made a cycle early, in
    stage 1, so stage 2 only selects. Everything moves on ``advance``, like the pipeline.
    """

    def __init__(self, m: Module, advance: Value, name: str, width: int, addr_bits: int):
        self.m, self.advance = m, advance
        self.wb = [
            (
                Signal(name=f"{name}_wb{k}_en"),
                Signal(addr_bits, name=f"{name}_wb{k}_addr"),
                Signal(width, name=f"{name}_wb{k}_data"),
            )
            for k in (1, 2)
        ]
        self.hit = [Signal(name=f"{name}_hit{k}") for k in (1, 2)]

    def track(self, s1_addr: Value, x_en: Value, x_addr: Value) -> None:
        """Stage 1: does the row being read match the row stage 2 writes now, or wrote last?"""
        en1, addr1, _ = self.wb[0]
        with self.m.If(self.advance):
            self.m.d.sync += [
                self.hit[0].eq(x_en & (x_addr == s1_addr)),
                self.hit[1].eq(en1 & (addr1 == s1_addr)),
            ]

    def value(self, read: Value) -> Value:
        """Stage 2: the row as it is now (``read`` is the registered block RAM data)."""
        return Mux(self.hit[0], self.wb[0][2], Mux(self.hit[1], self.wb[1][2], read))

    def written(self, x_en: Value, x_addr: Value, x_data: Value) -> None:
        """Record stage 2's write (``x_en``: it writes) for the two operations behind it."""
        (en1, addr1, data1), (en2, addr2, data2) = self.wb
        with self.m.If(self.advance):
            self.m.d.sync += [
                en1.eq(x_en),
                addr1.eq(x_addr),
                data1.eq(x_data),
                en2.eq(en1),
                addr2.eq(addr1),
                data2.eq(data1),
            ]


class SpikeEmitter(wiring.Component):
    """Last pipeline stage: turns group tokens into ``SPIKE(neuron)`` events, lowest lane first.

    A token is a lane group's spike mask, or the step's TICK. A token takes one cycle, or one
    cycle per spike when it has more than one; ``i.ready`` stalls the TICK pipeline meanwhile.
    """

    def __init__(self, params: CoreParams):
        self.params = params
        token = data.StructLayout(
            {"tick": 1, "group": unsigned(params.group_bits), "mask": unsigned(params.lanes)}
        )
        super().__init__(
            {"i": In(stream.Signature(token)), "o": Out(stream.Signature(params.out_layout()))}
        )

    def elaborate(self, platform):
        m = Module()
        p = self.params
        busy, tick = Signal(), Signal()
        group = Signal(p.group_bits)
        mask = Signal(p.lanes)
        # Whether ``mask`` is empty / has at most one bit, kept in registers: ``i.ready`` is
        # the core's pipeline enable, so it must not wait for arithmetic on ``mask``.
        empty, single = Signal(init=1), Signal(init=1)
        lowest = Signal(max(1, p.lane_bits), name="lowest")
        for lane in reversed(range(p.lanes)):
            with m.If(mask[lane]):
                m.d.comb += lowest.eq(lane)
        done = busy & Mux(tick, self.o.ready, empty | (single & self.o.ready))
        m.d.comb += [
            self.i.ready.eq(~busy | done),
            self.o.valid.eq(busy & (tick | ~empty)),
            self.o.payload.op.eq(Mux(tick, Op.TICK, Op.SPIKE)),
            self.o.payload.index.eq(Mux(tick, 0, Cat(lowest[: p.lane_bits], group))),
        ]

        def load(value) -> list:
            return [
                mask.eq(value),
                empty.eq(value == 0),
                single.eq((value & (value - 1))[: p.lanes] == 0),
            ]

        with m.If(self.o.valid & self.o.ready & ~tick):
            m.d.sync += load(mask & (mask - 1))  # the lowest spike is out
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [busy.eq(1), tick.eq(self.i.payload.tick), group.eq(self.i.payload.group)]
            m.d.sync += load(self.i.payload.mask)
        with m.Elif(done):
            m.d.sync += busy.eq(0)
        return m


class _Kind(py_enum.IntEnum):
    """What an operation issued into the pipeline does once its memory reads return."""

    NONE = 0
    ADD = 1  # acc[g] += weights of one axon
    LOAD = 2  # acc[g][lane] += value
    ZERO = 3  # acc[g] = v[g] = 0 (CLEAR)
    GROUP = 4  # neuron update of group g (TICK)
    TICK = 5  # end-of-step token behind the last group


class Core(wiring.Component):
    """A neurosynaptic core: ``n_axons`` inputs, ``n_neurons`` neurons, updated ``lanes`` a cycle.

    **Streams** (``amaranth.lib.stream``, valid/ready, payload held while not accepted):

    * ``i`` (in), payload ``{op[2], index, value}`` (``value`` only with ``load``):
      ``SPIKE(axon)`` adds the axon's weights to every neuron's accumulator;
      ``LOAD(neuron, value)`` adds ``value`` to one accumulator; ``TICK`` ends the step (each
      neuron: ``a = (s >> input_shift) + bias``, ``u = sat(leak(v) + a)``, fire, reset, ``s = 0``);
      ``CLEAR`` sets every ``v`` and accumulator to 0 (a new sample). Out-of-range indices add
      nothing; a LOAD on a core built without ``load`` adds nothing.
    * ``o`` (out), payload ``{op[2], index}``: per TICK, ``SPIKE(neuron)`` for every neuron that
      fired, in ascending order, then ``TICK`` (also for a step without spikes); every CLEAR is
      forwarded as ``CLEAR`` once every later event and read sees its zeros. Same opcodes as
      ``i``: cores chain directly.

    **Configuration port** ``cfg`` (accepted only between events; it wins over ``i``):
    ``valid/write/addr/wdata -> ready``; a read's data is on ``rdata`` with ``rvalid``
    ``CFG_READ_LATENCY`` (3) cycles after the read was accepted (reads may follow back to back;
    the data are those of stage 2, registered).
    ``addr = region << (axon_bits + index_bits) | axon << index_bits | index``
    (``CoreParams.addr``); regions ``Region``: CTRL registers ``Reg`` (modes, lam, frac, k,
    input_shift, global theta, four read-only counters), WEIGHT (axon, neuron), THETA, BIAS,
    V (read/write), ACC (read).
    Signed values read back sign-extended to 32 bits.

    **Counters** (32-bit, wrap): input events (SPIKE and LOAD), synaptic operations (non-zero
    weights reached by SPIKEs), output spikes, busy cycles (cycles spent on accepted events,
    back-pressure included).

    **Cycle contract**, with ``G = ceil(n_neurons / lanes)`` and the out stream always ready: an
    event is accepted in the cycle ``i.ready`` is high, and ``i.ready`` rises again
    ``SPIKE``: ``G`` cycles later; ``LOAD``: 1; ``CLEAR``: ``G + 1``; ``TICK``:
    ``G + 9 (TICK_LATENCY)`` plus one cycle for every spike beyond the first in a lane group
    (the out stream carries one spike a cycle; with ``lanes == 1`` this is always zero).
    Out-stream back-pressure adds its stall cycles. The cost of a step therefore grows with its
    input events, never with ``n_axons``; back-to-back SPIKEs keep all ``lanes`` lanes busy
    (``lanes`` synaptic operations a cycle when no weight is zero). A configuration access is
    accepted in any cycle in which an event could be.

    **Pipeline.** Every event becomes one operation per lane group, issued one a cycle
    (stage 0, the memories' read addresses); stage 1 is the block RAM read; stage 2 (execute)
    works only from registers: the read data are registered first, so no path starts at a
    block RAM output and ends anywhere but a register (ECP5 block RAM has a slow clock-to-out).
    An accumulator row is read in stage 0 and written in stage 2; the rows written in the two
    cycles before an operation's execute stage are forwarded to it (``_Bypass``), so
    consecutive operations on one row (one lane group, a LOAD burst, a CLEAR then a SPIKE,
    a TICK right after the last input) always add up exactly. A TICK's lane group goes from
    stage 2 into the neuron units (``NeuronUpdate.LATENCY`` stages), whose result is written
    back to ``v`` and handed to the spike emitter.

    Memories (``amaranth.lib.memory``, synchronous read, so they map to block RAM): weights
    (``n_axons * G`` rows of ``lanes`` weights), accumulators, ``v``, thresholds and biases
    (``G`` rows of ``lanes`` values each). The reset ``rst`` clears the run state; the CTRL
    registers and the memories (the configuration) keep what was last written.
    """

    #: The bundle layer kind this core runs (``for_layer``), its parameter and configuration
    #: classes, and its Verilog module's default name (``verilog``).
    LAYER_KIND = "linear"
    PARAMS = CoreParams
    CONFIG = CoreConfig
    MODULE_NAME = "sf_core"

    @staticmethod
    def layer_geometry(layer) -> dict[str, Any]:
        """The ``PARAMS`` fields that size this core for ``layer``: its inputs and neurons."""
        return {"n_axons": layer.n_in, "n_neurons": layer.n_out}

    def __init__(self, params: CoreParams, init: CoreConfig | None = None):
        self.params = params
        self.init = init or CoreConfig(
            weights=np.zeros((params.n_neurons, params.n_axons), dtype=np.int64),
            theta=signed_range(params.v_bits)[1],
        )
        try:
            self.init.validate(params)
        except ValueError:
            self._MustUse__silence = True  # never elaborated: no "unused" warning at exit
            raise
        super().__init__(
            {
                "i": In(stream.Signature(params.in_layout())),
                "o": Out(stream.Signature(params.out_layout())),
                "cfg": In(config_signature(params.cfg_addr_bits)),
            }
        )

    def elaborate(self, platform):
        return _CoreGateware(self).module()


class _CoreGateware:
    """One elaboration of a ``Core``: the signals, memories and logic it builds live here, not
    on the component, so elaborating never changes the component (the hooks that ``ConvCore``
    replaces are methods of this class too)."""

    def __init__(self, core: Core):
        self.params, self.init = core.params, core.init
        self.i, self.o, self.cfg = core.i, core.o, core.cfg

    # -- structure -------------------------------------------------------------------------

    def module(self) -> Module:
        m = Module()
        self._memories(m)
        self._registers(m)
        self._issue(m)
        self._accumulate(m)
        self._update(m)
        self._counters(m)
        self._config_port(m)
        return m

    def _rows(self, m: Module, name: str, shape, depth: int, init: list):
        """A memory of ``lanes``-wide rows with a write port with per-lane enables.

        At least two rows, so that no address is zero bits wide in the Verilog.
        """
        layout = data.ArrayLayout(shape, self.params.lanes)
        mem = Memory(shape=layout, depth=max(2, depth), init=init)
        m.submodules[f"{name}_mem"] = mem
        return mem, mem.write_port(granularity=1)

    def _memories(self, m: Module) -> None:
        p, init = self.params, self.init
        rows = init.weight_rows(p)
        self.w_mem, self.w_wp = self._rows(m, "weight", signed(p.w_bits), len(rows), rows)
        self.w_rp = self.w_mem.read_port()
        self.acc_mem, self.acc_wp = self._rows(m, "acc", signed(p.acc_bits), p.groups, [])
        self.acc_rp = self.acc_mem.read_port()
        self._neuron_memories(m)

    def _neuron_memories(self, m: Module) -> None:
        """``v``, thresholds and biases: ``G`` rows of ``lanes`` consecutive neurons."""
        p, init = self.params, self.init
        self.v_mem, self.v_wp = self._rows(m, "v", signed(p.v_bits), p.groups, [])
        self.v_rp = self.v_mem.read_port()
        self.theta_rp = self.bias_rp = None
        if p.neuron_threshold:
            rows = init.neuron_rows(p, init.theta_vector(p))
            self.theta_mem, self.theta_wp = self._rows(m, "theta", signed(p.v_bits), p.groups, rows)
            self.theta_rp = self.theta_mem.read_port()
        if p.bias:
            rows = init.neuron_rows(p, init.bias_vector(p))
            self.bias_mem, self.bias_wp = self._rows(m, "bias", signed(p.bias_bits), p.groups, rows)
            self.bias_rp = self.bias_mem.read_port()

    def _registers(self, m: Module) -> None:
        """CTRL registers and the pipeline's stall signal. The CTRL registers start from
        ``init`` and, like the memories, are not reset: a reset never leaves a mix of new
        memories and old registers; the configuration is what was last written."""
        p = self.params
        layout = neuron_config_layout(p.v_bits, p.acc_bits, p.max_frac)
        values = self.init.ctrl_values(p)
        self.ncfg = Signal(
            layout,
            init={
                "leak": values[Reg.LEAK],
                "reset": values[Reg.RESET],
                "fire": values[Reg.FIRE],
                "lam": values[Reg.LAM],
                "frac": values[Reg.FRAC],
                "k": values[Reg.K],
                "input_shift": values[Reg.INPUT_SHIFT],
            },
            reset_less=True,
        )
        self.theta_reg = Signal(signed(p.v_bits), init=values[Reg.THETA], reset_less=True)
        self.advance = Signal()
        self.idle = Signal()
        self.clear_counters = Signal()

    def _ctrl_registers(self) -> dict[Reg, Value]:
        """The writable CTRL registers."""
        ncfg = self.ncfg
        return {
            Reg.LEAK: ncfg.leak,
            Reg.RESET: ncfg.reset,
            Reg.FIRE: ncfg.fire,
            Reg.LAM: ncfg.lam,
            Reg.FRAC: ncfg.frac,
            Reg.K: ncfg.k,
            Reg.INPUT_SHIFT: ncfg.input_shift,
            Reg.THETA: self.theta_reg,
        }

    # -- event engine: accept events, issue one memory operation a cycle -------------------

    def _issue(self, m: Module) -> None:
        """The state machine that turns events into per-group operations (pipeline stage 0)."""
        p = self.params
        self.op_kind = Signal(range(len(_Kind)))
        self.op_group = Signal(p.group_bits)
        self.op_row = Signal(range(max(2, p.n_axons * p.groups)))
        self.op_lane = Signal(range(max(2, p.lanes)))
        self.op_value = Signal(signed(p.load_bits))
        self.op_axon_ok = Signal()
        self.clear_out = Signal()
        self.tick_done = Signal()
        count = Signal(range(p.groups + 1))
        row = Signal.like(self.op_row)
        axon_ok = Signal()
        ev = self.i.payload
        self.in_fire = Signal()
        m.d.comb += [
            self.i.ready.eq(self.idle & ~self.cfg.valid),
            self.in_fire.eq(self.i.valid & self.i.ready),
        ]
        last = count == p.groups - 1
        with m.FSM(name="engine"):
            with m.State("IDLE"):
                m.d.comb += self.idle.eq(1)
                with m.If(self.in_fire):
                    self._accept(m, ev, count, row, axon_ok)
            with m.State("SPIKE"):
                m.d.comb += [
                    self.op_kind.eq(_Kind.ADD),
                    self.op_group.eq(count),
                    self.op_row.eq(row),
                    self.op_axon_ok.eq(axon_ok),
                ]
                m.d.sync += [count.eq(count + 1), row.eq(row + 1)]
                with m.If(last):
                    m.next = "IDLE"
            with m.State("CLEAR"):
                m.d.comb += [self.op_kind.eq(_Kind.ZERO), self.op_group.eq(count)]
                m.d.sync += count.eq(count + 1)
                with m.If(last):
                    m.next = "CLEAR_OUT"
            with m.State("CLEAR_OUT"):
                m.d.comb += self.clear_out.eq(1)
                with m.If(self.o.ready):
                    m.next = "IDLE"
            with m.State("TICK"):
                # The operation is presented whether or not the pipeline advances (everything
                # that takes it is enabled by ``advance``), so read addresses never wait on it.
                m.d.comb += self.op_group.eq(count)
                with m.If(count == p.groups):
                    m.d.comb += self.op_kind.eq(_Kind.TICK)
                with m.Else():
                    m.d.comb += self.op_kind.eq(_Kind.GROUP)
                with m.If(self.advance):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == p.groups):
                        m.next = "TICK_WAIT"
            with m.State("TICK_WAIT"):
                with m.If(self.tick_done):
                    m.next = "IDLE"

    def _accept(self, m: Module, ev, count: Signal, row: Signal, axon_ok: Signal) -> None:
        """Issue an accepted event's first operation in the cycle it is accepted."""
        p = self.params
        g1 = p.groups > 1
        with m.Switch(ev.op):
            with m.Case(Op.SPIKE):
                ok = ev.index < p.n_axons
                base = Signal.like(self.op_row, name="spike_row")
                m.d.comb += base.eq(ev.index[: p.axon_bits] * p.groups)
                m.d.comb += [
                    self.op_kind.eq(_Kind.ADD),
                    self.op_row.eq(base),
                    self.op_axon_ok.eq(ok),
                ]
                if g1:
                    m.d.sync += [count.eq(1), row.eq(base + 1), axon_ok.eq(ok)]
                    m.next = "SPIKE"
            with m.Case(Op.LOAD):
                if p.load:
                    n = ev.index[: p.neuron_bits]
                    m.d.comb += [
                        self.op_kind.eq(Mux(ev.index < p.n_neurons, _Kind.LOAD, _Kind.NONE)),
                        self.op_group.eq(n >> p.lane_bits),
                        self.op_lane.eq(n[: p.lane_bits] if p.lanes > 1 else 0),
                        self.op_value.eq(ev.value),
                    ]
            with m.Case(Op.CLEAR):
                m.d.comb += self.op_kind.eq(_Kind.ZERO)
                m.d.sync += count.eq(1)
                m.next = "CLEAR" if g1 else "CLEAR_OUT"
            with m.Case(Op.TICK):
                m.d.comb += self.op_kind.eq(_Kind.GROUP)
                m.d.sync += count.eq(1)
                m.next = "TICK"

    # -- stages 1 and 2: read, execute (SPIKE, LOAD, CLEAR; a TICK's read) ---------------------

    def _accumulate(self, m: Module) -> None:
        """Stage 2 of the accumulate operations: read-modify-write of one acc row, forwarded."""
        p = self.params
        s1 = self._stage1_registers(m)
        x = self._pipe(m, "x", {**s1, "w": self.w_rp.data, "acc": self.acc_rp.data})
        self.x = x
        self._exec_neuron_data(m)
        kind = x["kind"]
        writes = Signal(name="x_writes")
        zero = (kind == _Kind.ZERO) | (kind == _Kind.GROUP)
        m.d.comb += writes.eq(zero | (kind == _Kind.ADD) | (kind == _Kind.LOAD))
        bypass = _Bypass(m, self.advance, "acc", p.lanes * p.acc_bits, p.group_bits)
        bypass.track(s1["group"], writes, x["group"])
        now = data.ArrayLayout(signed(p.acc_bits), p.lanes)(bypass.value(Value.cast(x["acc"])))
        self.acc_now = [now[lane] for lane in range(p.lanes)]
        sums, nonzero = [], []
        for lane in range(p.lanes):
            weight = x["w"][lane]
            is_load = (kind == _Kind.LOAD) & (x["lane"] == lane)
            addend = Mux(
                kind == _Kind.ADD, Mux(x["axon_ok"], weight, 0), Mux(is_load, x["value"], 0)
            )
            total = Signal(signed(p.acc_bits), name=f"acc_sum{lane}")
            m.d.comb += total.eq(Mux(zero, 0, now[lane] + addend))
            sums.append(total)
            exists = (x["group"] * p.lanes + lane) < p.n_neurons
            nonzero.append((kind == _Kind.ADD) & x["axon_ok"] & exists & (weight != 0))
        self.syn_ops = _popcount(m, nonzero, "syn_ops_now")
        m.d.comb += [
            self.acc_wp.addr.eq(x["group"]),
            self.acc_wp.data.eq(Cat(*sums)),
            self.acc_wp.en.eq(Mux(writes, (1 << p.lanes) - 1, 0)),
        ]
        bypass.written(writes, x["group"], Cat(*sums))

    def _pipe(self, m: Module, prefix: str, values: dict) -> dict:
        """Registers ``<prefix>_<key>`` loaded with ``values`` whenever the pipeline advances."""
        regs = {}
        for key, value in values.items():
            if isinstance(value, list):
                regs[key] = self._pipe(m, f"{prefix}_{key}", dict(enumerate(value)))
                regs[key] = [regs[key][k] for k in range(len(value))]
                continue
            shape = value.shape() if hasattr(value, "shape") else Value.cast(value).shape()
            regs[key] = Signal(shape, name=f"{prefix}_{key}")
            with m.If(self.advance):
                m.d.sync += regs[key].eq(value)
        return regs

    def _exec_neuron_data(self, m: Module) -> None:
        """Stage 2 copies of the ``v``, threshold and bias rows read in stage 1."""
        rows = {"v": self.v_rp.data}
        rows |= {"theta": self.theta_rp.data} if self.theta_rp is not None else {}
        rows |= {"bias": self.bias_rp.data} if self.bias_rp is not None else {}
        regs = self._pipe(m, "x", rows)
        self.x_v, self.x_theta, self.x_bias = regs["v"], regs.get("theta"), regs.get("bias")

    def _stage1_registers(self, m: Module) -> dict[str, Signal]:
        """The operation whose memory reads are returning this cycle; moves on ``advance``."""
        s1 = self._pipe(
            m,
            "s1",
            {
                "kind": self.op_kind,
                "group": self.op_group,
                "lane": self.op_lane,
                "value": self.op_value,
                "axon_ok": self.op_axon_ok,
            },
        )
        m.d.comb += [
            self.w_rp.addr.eq(self.op_row),
            self.w_rp.en.eq(self.advance),
            self.acc_rp.addr.eq(self.op_group),
            self.acc_rp.en.eq(self.advance),
        ]
        for rp in (self.v_rp, self.theta_rp, self.bias_rp):
            if rp is not None:
                m.d.comb += [rp.addr.eq(self.op_group), rp.en.eq(self.advance)]
        return s1

    # -- stages 3..: neuron update of a TICK, write-back, emit ----------------------------------

    def _update(self, m: Module) -> None:
        """Neuron units on the rows of a GROUP op in stage 2; their result is written back to
        ``v`` and emitted as a token ``NeuronUpdate.LATENCY`` advances later."""
        p, x = self.params, self.x
        m.submodules.emitter = emitter = SpikeEmitter(p)
        out_kind, out_group = x["kind"], x["group"]
        for k in range(NeuronUpdate.LATENCY):
            kind = Signal(range(len(_Kind)), name=f"s2_kind_{k}")
            group = Signal(p.group_bits, name=f"s2_group_{k}")
            with m.If(self.advance):
                m.d.sync += [kind.eq(out_kind), group.eq(out_group)]
            out_kind, out_group = kind, group
        spikes, v_next = [], []
        for lane in range(p.lanes):
            if lane >= p.n_neurons:  # a lane of no neuron in any group (G == 1): no unit,
                spikes.append(Const(0, 1))  # its v stays 0 (CLEAR, memory init; no cfg write)
                v_next.append(Const(0, signed(p.v_bits)))
                continue
            unit = NeuronUpdate(
                v_bits=p.v_bits,
                acc_bits=p.acc_bits,
                bias_bits=p.bias_bits,
                max_frac=p.max_frac,
                leak_modes=p.leak_modes,
            )
            m.submodules[f"neuron{lane}"] = unit
            theta = self.x_theta[lane] if self.x_theta is not None else self.theta_reg
            bias = self.x_bias[lane] if self.x_bias is not None else 0
            m.d.comb += [
                unit.en.eq(self.advance),
                unit.cfg.eq(self.ncfg),
                unit.valid.eq((x["group"] * p.lanes + lane) < p.n_neurons),
                unit.s.eq(self._lane_sum(lane)),
                unit.v.eq(self.x_v[lane]),
                unit.bias.eq(bias),
                unit.theta.eq(theta),
            ]
            spikes.append(unit.spike)
            v_next.append(unit.v_next)
        out_busy = (out_kind == _Kind.GROUP) | (out_kind == _Kind.TICK)
        m.d.comb += [
            emitter.i.valid.eq(out_busy),
            emitter.i.payload.tick.eq(out_kind == _Kind.TICK),
            emitter.i.payload.group.eq(out_group),
            emitter.i.payload.mask.eq(Mux(out_kind == _Kind.GROUP, Cat(*spikes), 0)),
            self.advance.eq(~out_busy | emitter.i.ready),
        ]
        self._write_back(m, out_kind, out_group, v_next)
        self._out_mux(m, emitter)

    def _write_back(self, m: Module, out_kind, out_group, v_next: list) -> None:
        """``v`` writes: a TICK's updated rows, a CLEAR's zeros (as the ZERO op is issued);
        configuration writes come later in the code and win (they never coincide).

        A stalled GROUP rewrites the same row with the same (registered) values, so the write
        does not wait for ``advance``: the write port's address and data never depend on it.
        A CLEAR's zero rows are written a cycle after their ZERO is issued, from registers (the
        issue logic is not on the ``v`` write path); the last lands during CLEAR_OUT, before
        anything can read ``v`` again.
        """
        all_lanes = (1 << self.params.lanes) - 1
        zero = Signal(name="v_zero")
        zero_group = Signal.like(self.op_group, name="v_zero_group")
        m.d.sync += [zero.eq(self.op_kind == _Kind.ZERO), zero_group.eq(self.op_group)]
        with m.If(out_kind == _Kind.GROUP):
            m.d.comb += [
                self.v_wp.addr.eq(out_group),
                self.v_wp.data.eq(Cat(*v_next)),
                self.v_wp.en.eq(all_lanes),
            ]
        with m.Elif(zero):
            m.d.comb += [
                self.v_wp.addr.eq(zero_group),
                self.v_wp.data.eq(0),
                self.v_wp.en.eq(all_lanes),
            ]

    def _lane_sum(self, lane: int) -> Value:
        """Lane ``lane``'s accumulator for the operation in stage 2 (forwarded)."""
        return self.acc_now[lane]

    def _out_mux(self, m: Module, emitter: SpikeEmitter) -> None:
        """The out stream: the emitter's events, or a forwarded CLEAR. The emitter is idle
        while a CLEAR goes out (a CLEAR is accepted only after the step's TICK has left), so
        its ``o.ready`` is the out stream's without ``clear_out``: the pipeline's ``advance``
        does not depend on the engine state."""
        m.d.comb += emitter.o.ready.eq(self.o.ready)
        with m.If(self.clear_out):
            m.d.comb += [self.o.valid.eq(1), self.o.payload.op.eq(Op.CLEAR)]
        with m.Else():
            m.d.comb += [
                self.o.valid.eq(emitter.o.valid),
                self.o.payload.eq(emitter.o.payload),
            ]
        fire = emitter.o.valid & self.o.ready & ~self.clear_out
        m.d.comb += self.tick_done.eq(fire & (emitter.o.payload.op == Op.TICK))
        self.out_spike = Signal()
        m.d.comb += self.out_spike.eq(fire & (emitter.o.payload.op == Op.SPIKE))

    # -- configuration port -----------------------------------------------------------------

    def _config_port(self, m: Module) -> None:
        """Decode ``cfg`` accesses: writes to registers and memories; reads (``_cfg_reads``)."""
        p, cfg = self.params, self.cfg
        fire = Signal()
        m.d.comb += [cfg.ready.eq(self.idle), fire.eq(cfg.valid & self.idle)]
        addr = p.cfg_layout(cfg.addr)
        index, axon, region = addr.index, addr.axon, addr.region
        neuron_ok = index < p.n_neurons
        group = (index >> p.lane_bits)[: p.group_bits]
        lane = index[: p.lane_bits] if p.lanes > 1 else Const(0, 1)
        lane_en = Const(1, p.lanes) << lane
        self._cfg_reads(m, fire & ~cfg.write, region, index, axon, group, lane)
        with m.If(fire & cfg.write):
            with m.Switch(region):
                with m.Case(Region.CTRL):
                    self._ctrl_write(m, index, cfg.wdata)
                with m.Case(Region.WEIGHT):
                    with m.If(self._weight_ok(index, axon)):
                        row = self._weight_row(axon, group)
                        self._lane_write(m, self.w_wp, row, lane_en, cfg.wdata)
                with m.Case(Region.V):
                    with m.If(neuron_ok):
                        self._lane_write(m, self.v_wp, group, lane_en, cfg.wdata)
                if p.neuron_threshold:
                    with m.Case(Region.THETA):
                        with m.If(neuron_ok):
                            self._lane_write(m, self.theta_wp, group, lane_en, cfg.wdata)
                if p.bias:
                    with m.Case(Region.BIAS):
                        with m.If(neuron_ok):
                            self._lane_write(m, self.bias_wp, group, lane_en, cfg.wdata)

    def _weight_ok(self, index, axon) -> Value:
        """Whether a WEIGHT address (``axon``, neuron ``index``) names a weight of this core."""
        return (index < self.params.n_neurons) & (axon < self.params.n_axons)

    def _weight_row(self, axon, group) -> Value:
        """The weight memory row of ``axon``'s weights to lane group ``group``."""
        return axon * self.params.groups + group

    def _lane_write(self, m: Module, wp, row, lane_en, value) -> None:
        """Write ``value`` into one lane of memory row ``row``."""
        width = wp.data.shape().elem_shape.width
        m.d.comb += [
            wp.addr.eq(row),
            wp.data.eq(Cat(*[value[:width]] * self.params.lanes)),
            wp.en.eq(lane_en),
        ]

    def _ctrl_write(self, m: Module, index, wdata) -> None:
        """Write a CTRL register; a write to any counter clears all four."""
        with m.Switch(index):
            for reg, target in self._ctrl_registers().items():
                with m.Case(reg):
                    m.d.sync += target.eq(wdata[: len(Value.cast(target))])
            with m.Case(*COUNTER_REGS):
                m.d.comb += self.clear_counters.eq(1)

    def _cfg_reads(self, m: Module, read, region, index, axon, group, lane) -> None:
        """Point the read ports at the addressed row (as stage 0 of a no-op operation, so the
        accumulator read is forwarded like any other); select region and lane in stage 2, from
        registers, two cycles after the read, and answer from a register a cycle later
        (``CFG_READ_LATENCY``)."""
        p, cfg = self.params, self.cfg
        stage = CFG_READ_LATENCY - 1  # where the rows and the counters are read
        with m.If(read):
            self._cfg_point(m, axon, group)
        sel = {"region": region, "index": index, "lane": lane}
        sel2 = {k: delayed(m, v, stage, f"cfg_r_{k}") for k, v in sel.items()}
        m.d.sync += cfg.rvalid.eq(delayed(m, read, stage, "cfg_rvalid"))
        answer = Signal.like(cfg.rdata, name="cfg_answer")
        m.d.sync += cfg.rdata.eq(answer)
        r_lane = sel2["lane"]
        sources = {
            region_code: (rows, r_lane)
            for region_code, rows in (
                (Region.WEIGHT, self.x["w"]),
                (Region.V, self.x_v),
                (Region.THETA, self.x_theta),
                (Region.BIAS, self.x_bias),
            )
            if rows is not None
        }
        sources = {k: ([rows[j] for j in range(p.lanes)], s) for k, (rows, s) in sources.items()}
        sources[Region.ACC] = self._acc_cfg_read(m, read, index, group, r_lane)
        with m.Switch(sel2["region"]):
            with m.Case(Region.CTRL):
                with m.Switch(sel2["index"]):
                    for reg, value in {**self._ctrl_registers(), **self.counters}.items():
                        with m.Case(reg):
                            m.d.comb += answer.eq(value)
            for region_code, (values, select) in sources.items():
                with m.Case(region_code):
                    m.d.comb += answer.eq(_pick(m, values, select))

    def _cfg_point(self, m: Module, axon, group) -> None:
        """Issue a configuration read's rows (``axon``'s weights, lane group ``group``)."""
        m.d.comb += [self.op_row.eq(self._weight_row(axon, group)), self.op_group.eq(group)]

    def _acc_cfg_read(self, m: Module, read, index, group, r_lane) -> tuple[list, Value]:
        """Neuron ``index``'s accumulator: the lane values of stage 2 (the row read through
        ``_cfg_point``, forwarded) and the selector of ``index``'s lane (``r_lane``, stage 2)."""
        return list(self.acc_now), r_lane

    # -- counters ---------------------------------------------------------------------------

    def _counters(self, m: Module) -> None:
        """Event, synaptic-operation, spike and busy-cycle counters, readable as CTRL registers.

        A read accepted in cycle ``t`` reports everything before ``t``: the synaptic operations
        of an operation issued in ``t - 1`` are counted in its stage 2 (``t + 1``), the other
        counters add their cycle's increment a cycle late, and a read's data are taken in
        ``t + 2``. A clear (a write in cycle ``t``) likewise also drops the synaptic operations
        still in the pipeline.
        """
        p = self.params
        op = self.i.payload.op
        counting = (op == Op.SPIKE) | (op == Op.LOAD)
        late = {
            Reg.IN_EVENTS: self.in_fire & counting,
            Reg.OUT_SPIKES: self.out_spike,
            Reg.BUSY_CYCLES: self.in_fire | ~self.idle,
        }
        increments: dict[Reg, Value] = {Reg.SYN_OPS: self.syn_ops}
        for reg, inc in late.items():
            increments[reg] = Signal(name=f"inc_{reg.name.lower()}")
            m.d.sync += increments[reg].eq(inc)
        cleared = Signal(name="counters_cleared")
        m.d.sync += cleared.eq(self.clear_counters)
        self.counters: dict[Reg, Signal] = {}
        for reg in COUNTER_REGS:
            counter = Signal(p.counter_bits, name=f"count_{reg.name.lower()}")
            clear = self.clear_counters | (cleared if reg == Reg.SYN_OPS else 0)
            with m.If(clear):
                m.d.sync += counter.eq(0)
            with m.Else():
                m.d.sync += counter.eq(counter + increments[reg])
            self.counters[reg] = counter


def _pick(m: Module, values: list, select) -> Signal:
    """``values[select]`` sign-extended to the configuration data width."""
    out = Signal(signed(CFG_DATA_BITS), name="cfg_pick")
    m.d.comb += out.eq(values[0])
    for k, value in enumerate(values[1:], start=1):
        with m.If(select == k):
            m.d.comb += out.eq(value)
    return out


def for_layer(
    core: type[Core],
    layer,
    *,
    lanes: int = 1,
    load: bool = False,
    load_bits: int = 16,
    leak_modes: tuple[str, ...] | None = None,
) -> tuple[CoreParams, CoreConfig]:
    """A ``core`` (``Core`` or a subclass) sized for a bundle layer of its kind
    (``spikeforge.sim.bundle.Layer``), and the layer's configuration for it.

    Per-neuron thresholds and the bias memory are built only when the layer needs them; the
    leak hardware only for the layer's mode unless ``leak_modes`` says otherwise.
    """
    if layer.kind != core.LAYER_KIND:
        wanted = f"a {core.__name__} runs {core.LAYER_KIND} layers"
        raise ValueError(f"layer {layer.name!r}: {wanted}, not {layer.kind}")
    theta, bias = layer.theta_vector(), layer.bias_vector()
    modes = tuple(m for m in (layer.leak.mode,) if m != "none")
    params = core.PARAMS(
        **core.layer_geometry(layer),
        w_bits=layer.w_bits,
        v_bits=layer.v_bits,
        lanes=lanes,
        neuron_threshold=bool(np.any(theta != theta[0])),
        bias=bool(np.any(bias != 0)),
        load=load,
        load_bits=load_bits,
        max_frac=max(16, layer.leak.frac),
        leak_modes=modes if leak_modes is None else leak_modes,
    )
    config = core.CONFIG(
        weights=np.asarray(layer.weight, dtype=np.int64),
        theta=theta if params.neuron_threshold else int(theta[0]),
        bias=bias if params.bias else None,
        leak=layer.leak,
        reset=layer.reset,
        fire=layer.fire,
        input_shift=layer.input_shift,
    )
    config.validate(params)
    return params, config


def verilog(
    core: type[Core],
    params: CoreParams,
    init: CoreConfig | None = None,
    name: str | None = None,
    waivers: str = "file",
) -> str:
    """Verilog of a ``core`` with these parameters (memory contents ``init``), lint waivers
    placed per ``waivers`` (``spikeforge.rtl.gateware.emit.convert``); the module is ``name``,
    ``core.MODULE_NAME`` by default."""
    from spikeforge.rtl.gateware.emit import convert

    return convert(core(params, init), name or core.MODULE_NAME, waivers)


def core_for_layer(layer, **options) -> tuple[CoreParams, CoreConfig]:
    """``for_layer(Core, layer, **options)``: a core for a ``linear`` bundle layer."""
    return for_layer(Core, layer, **options)


def core_verilog(
    params: CoreParams, init: CoreConfig | None = None, name: str = "sf_core", waivers: str = "file"
) -> str:
    """``verilog(Core, params, init, name, waivers)``."""
    return verilog(Core, params, init, name, waivers)
