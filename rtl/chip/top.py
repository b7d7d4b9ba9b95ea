"""The chip: a whole bundle in hardware, one stage of cores per layer.

``plan_chip(bundle, options)`` decides the hardware (``ChipPlan``): per layer a stage of one or
more cores (a layer with more neurons than ``max_neurons`` is split into slices of neurons, fed
by a ``Fanout`` and merged back in order by a ``Merge``), and how layer 1 is fed. ``Chip`` is
the generated top; read its docstring for the ports and the host protocol.

Layer 1 feeds (``ChipPlan.feed``):

* ``pim`` (direct encoding, default): the host supplies the SRAM-PIM array's ADC codes, one
  word per layer-1 neuron; ``spikeforge.rtl.chip.pim_periphery.PimPeriphery`` turns them into
  ``LOAD`` events (it applies ``input_shift``, so the first cores run with ``input_shift`` 0).
* ``sums`` (direct encoding, when the PIM array cannot hold layer 1 or its values overflow the
  periphery): the host supplies layer 1's exact sums as ``LOAD(neuron, s)`` words.
* ``spikes`` (spike encoding): ``SPIKE(input)`` words, a ``TICK`` word after each step.

Word formats are the first stage's event payloads; ``ChipPlan.sample_words`` builds them.
Hardware limits (refused with a ``ChipError`` naming the layer and field): ``w_bits`` 2..8 and
``v_bits`` 8..24 (the core's datapath), LOAD values up to 29 bits. An ``input_shift`` longer than
a core layer's widest exact sum is cut to that sum's sign bit, which gives the same integers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from spikeforge.pim.adc import lossless_bits
from spikeforge.pim.array import MappingError
from spikeforge.pim.model import PimConfig, PimLayer
from spikeforge.rtl.chip.mapping import CoreSize, chip_placement
from spikeforge.rtl.chip.mapping import MappingError as PlacementError
from spikeforge.rtl.chip.pim_periphery import PeripheryParams, PimPeriphery
from spikeforge.rtl.chip.units import Fanout, Merge, Player, SkidBuffer, stage_layout
from spikeforge.rtl.cores.conv_core import ConvCore
from spikeforge.rtl.cores.core import COUNTER_REGS, LANE_CHOICES, Core, Op, Region, for_layer
from spikeforge.rtl.gateware.config_bus import (
    CFG_READ_LATENCY,
    DECODER_LATENCY,
    ConfigDecoder,
    config_signature,
    delayed,
    pack_address,
    target_layout,
)
from spikeforge.rtl.gateware.widths import index_bits
from spikeforge.rtl.harness.stimulus import SampleEncoder
from spikeforge.sim.bundle import Bundle, Layer
from spikeforge.sim.golden import sum_bound

FEEDS = ("auto", "pim", "sums")
#: Widest LOAD value a core accumulates exactly (its accumulator is at most 32 bits).
MAX_LOAD_BITS = 29
#: Bits of the ``passes`` input (steps per sample for direct encoding).
REPEAT_BITS = 16
#: Cycles from a ``cfg`` read's acceptance to its ``rvalid``/``rdata`` at the chip's port.
CHIP_READ_LATENCY = CFG_READ_LATENCY + DECODER_LATENCY


class ChipError(ValueError):
    """The bundle cannot be built into a chip; the message names the layer and field."""


@dataclass(frozen=True)
class ChipOptions:
    """Generation choices: lanes per core, the per-core neuron maximum, layer 1's feed, PIM.

    ``core`` (a fixed core size, ``spikeforge.rtl.chip.mapping.CoreSize``) lets the mapper decide
    the splits:
    each layer is cut into the slices of its ``spikeforge.rtl.chip.mapping.chip_placement`` (output
    neurons of a linear layer, output channels of a convolution), and a layer whose inputs exceed
    the core's axons is refused. Without it (the default) ``max_neurons`` splits linear layers only.
    """

    lanes: int = 16
    max_neurons: int | None = None
    feed: str = "auto"
    pim: PimConfig = field(default_factory=PimConfig)
    core: CoreSize | None = None

    def __post_init__(self) -> None:
        if self.lanes not in LANE_CHOICES:
            raise ChipError(f"lanes must be one of {LANE_CHOICES}, got {self.lanes}")
        if self.max_neurons is not None and self.max_neurons < 1:
            raise ChipError(f"max_neurons must be >= 1, got {self.max_neurons}")
        if self.feed not in FEEDS:
            raise ChipError(f"feed must be one of {list(FEEDS)}, got {self.feed!r}")
        if self.core is not None and self.max_neurons is not None:
            raise ChipError("give either a core size or max_neurons, not both")


#: The core that runs each layer kind.
CORES: dict[str, type[Core]] = {core.LAYER_KIND: core for core in (Core, ConvCore)}


@dataclass
class Slice:
    """One core of a stage: neurons ``first .. first + size - 1`` of the layer."""

    kind: str
    params: Any
    config: Any
    first: int
    size: int

    def build(self) -> Core:
        return CORES[self.kind](self.params, self.config)

    @property
    def in_bits(self) -> int:
        return self.params.in_index_bits

    @property
    def out_bits(self) -> int:
        return self.params.neuron_bits


@dataclass
class Stage:
    """The cores of one layer, and the width of the stage's input event index."""

    layer: Layer
    slices: list[Slice]
    in_bits: int
    value_bits: int = 0

    @property
    def out_bits(self) -> int:
        return index_bits(self.layer.n_out)


# ------------------------------------------------------------------------------------------
# core factories: one per layer kind, each returning a stage's slices


def _lanes_for(n_neurons: int, lanes: int) -> int:
    """No more lanes than the next power of two above the neuron count."""
    return min(lanes, max(1, 1 << (n_neurons - 1).bit_length()))


def _neuron_slice(layer: Layer, lo: int, hi: int) -> Layer:
    """``layer`` restricted to output neurons ``lo .. hi - 1`` (linear layers)."""
    theta, bias = layer.theta_vector()[lo:hi], layer.bias_vector()[lo:hi]
    return replace(layer, weight=layer.weight[lo:hi], threshold=theta, bias=bias)


def _placed_size(layer: Layer, options: ChipOptions) -> int | None:
    """Output channels (neurons) per core from the mapper, when a core size is given."""
    if options.core is None:
        return None
    try:
        return chip_placement(layer, options.core).d_out
    except PlacementError as exc:
        raise ChipError(str(exc)) from None


def linear_slices(layer: Layer, options: ChipOptions, **core: Any) -> list[Slice]:
    """A linear layer on one core, or on neuron slices of at most ``max_neurons`` (or of the
    mapper's placement for ``options.core``)."""
    size = _placed_size(layer, options) or options.max_neurons or layer.n_out
    slices = []
    for lo in range(0, layer.n_out, size):
        hi = min(layer.n_out, lo + size)
        part = layer if (lo, hi) == (0, layer.n_out) else _neuron_slice(layer, lo, hi)
        lanes = _lanes_for(hi - lo, options.lanes)
        params, config = for_layer(Core, part, lanes=lanes, **core)
        slices.append(Slice("linear", params, config, lo, hi - lo))
    return slices


def _channel_slice(layer: Layer, lo: int, hi: int) -> Layer:
    """``layer`` restricted to output channels ``lo .. hi - 1`` (conv layers)."""
    per = layer.n_out // layer.out_shape[0]
    theta, bias = layer.theta_vector(), layer.bias_vector()
    return replace(layer, weight=layer.weight[lo:hi], threshold=theta[lo * per : hi * per],
                   bias=bias[lo * per : hi * per])  # fmt: skip


def conv_slices(layer: Layer, options: ChipOptions, **core: Any) -> list[Slice]:
    """A conv2d layer on the event-driven convolution core (``spikeforge.rtl.cores.conv_core``):
    unsplit, or in slices of output channels (contiguous neurons) from the mapper for
    ``options.core``."""
    channels = layer.out_shape[0]
    size = _placed_size(layer, options) or channels
    per = layer.n_out // channels
    slices = []
    for lo in range(0, channels, size):
        hi = min(channels, lo + size)
        part = layer if (lo, hi) == (0, channels) else _channel_slice(layer, lo, hi)
        lanes = _lanes_for(hi - lo, options.lanes)
        params, config = for_layer(ConvCore, part, lanes=lanes, **core)
        slices.append(Slice("conv2d", params, config, lo * per, (hi - lo) * per))
    return slices


CORE_FACTORIES = {"linear": linear_slices, "conv2d": conv_slices}


def _stage(layer: Layer, options: ChipOptions, in_bits: int, **core: Any) -> Stage:
    try:
        slices = CORE_FACTORIES[layer.kind](layer, options, **core)
    except ValueError as exc:
        if isinstance(exc, ChipError):
            raise
        detail = f"w_bits={layer.w_bits}, v_bits={layer.v_bits}"
        raise ChipError(f"layer {layer.name}: {exc} (the bundle has {detail})") from None
    return Stage(layer, slices, in_bits, core.get("load_bits", 0) if core.get("load") else 0)


# ------------------------------------------------------------------------------------------
# the plan


@dataclass
class ChipPlan:
    """Everything the generator and the host need to agree on."""

    bundle: Bundle
    options: ChipOptions
    feed: str  # "pim", "sums" or "spikes"
    stages: list[Stage]
    pim: PimLayer | None = None
    periphery: PeripheryParams | None = None
    corrections: list[int] = field(default_factory=list)
    lsb_shift: int = 0
    input_shift: int = 0

    # -- sizes --------------------------------------------------------------------------

    @property
    def slices(self) -> list[Slice]:
        """Every core, stage after stage (the configuration port's target numbers)."""
        return [s for stage in self.stages for s in stage.slices]

    @property
    def n_cores(self) -> int:
        return len(self.slices)

    @property
    def word_bits(self) -> int:
        if self.periphery is not None:
            return self.periphery.in_layout().size
        return stage_layout(self.stages[0].in_bits, self.stages[0].value_bits).size

    @property
    def depth(self) -> int:
        """Input buffer words: one sample (one step for direct encoding, all steps for spikes)."""
        first = self.bundle.layers[0]
        if self.feed == "spikes":
            return self.bundle.timesteps * (first.n_in + 1)
        return first.n_out + 1

    @property
    def sub_bits(self) -> int:
        """Address bits within one configuration target."""
        chip_regs = 2 if self.periphery is None else index_bits(self.periphery.n_channels) + 1
        return max(max(s.params.cfg_addr_bits for s in self.slices), chip_regs, 2)

    @property
    def cfg_layout(self) -> data.StructLayout:
        """The configuration address: ``sub`` within ``target`` (a core, or ``n_cores``)."""
        return target_layout(self.sub_bits, self.n_cores + 1)

    @property
    def cfg_addr_bits(self) -> int:
        return self.cfg_layout.size

    def cfg_addr(self, target: int, sub: int) -> int:
        """Chip configuration address of ``sub`` in target ``target`` (a core, or ``n_cores``)."""
        return pack_address(self.cfg_layout, target=target, sub=sub)

    def core_addr(self, core: int, region: Region, index: int = 0) -> int:
        return self.cfg_addr(core, self.slices[core].params.addr(region, index))

    def v_out_reads(self) -> list[int]:
        """Addresses reading the last layer's ``v``, neuron by neuron."""
        base = self.n_cores - len(self.stages[-1].slices)
        return [
            self.core_addr(base + k, Region.V, n)
            for k, s in enumerate(self.stages[-1].slices)
            for n in range(s.size)
        ]

    def counter_reads(self) -> list[int]:
        """Addresses of every core's four counters (``spikeforge.rtl.cores.core.COUNTER_REGS``
        order)."""
        return [
            self.core_addr(c, Region.CTRL, int(reg))
            for c in range(self.n_cores)
            for reg in COUNTER_REGS
        ]

    def monitor_fields(self) -> list[tuple[int, int]]:
        """``(offset, index bits)`` of each stage's monitor in ``Chip.mon``: fire, op, index."""
        fields, offset = [], 0
        for stage in self.stages:
            fields.append((offset, stage.out_bits))
            offset += 3 + stage.out_bits
        return fields

    # -- host side: a sample's words ----------------------------------------------------

    def repeat(self) -> int:
        """Passes over the buffer per sample."""
        return 1 if self.feed == "spikes" else self.bundle.timesteps

    def encoder(self) -> SampleEncoder:
        """The host's encoding of samples into input-buffer words for this chip's feed (a
        plain object: the simulation harness unpickles it without the gateware)."""
        ops = {"SPIKE": Op.SPIKE.value, "TICK": Op.TICK.value, "LOAD": Op.LOAD.value}
        if self.feed == "spikes":
            return SampleEncoder("spikes", ops)
        if self.feed == "sums":
            stage = self.stages[0]
            return SampleEncoder(
                "sums",
                ops,
                layer=self.bundle.layers[0],
                value_bits=stage.value_bits,
                value_shift=2 + stage.in_bits,
            )
        layout = self.periphery.in_layout()
        offsets = (layout["index"].offset, layout["channel"].offset, layout["codes"].offset)
        return SampleEncoder(
            "pim", ops, pim=self.pim, offsets=offsets, adc_bits=self.periphery.adc_bits
        )

    def sample_words(self, x: np.ndarray) -> list[list[int]]:
        """Input-buffer words for each sample of ``x`` (validated int64 inputs)."""
        return self.encoder().words(x)

    def first_layer_sums(self, x: np.ndarray) -> np.ndarray | None:
        """Layer 1's sums as the chip computes them, when they may differ from exact ones."""
        if self.pim is None or (self.options.pim.adc_bits is None and self.pim.knobs.ideal):
            return None
        return self.pim(x).sums


def _pim_feed(bundle: Bundle, options: ChipOptions, in_bits: int) -> dict[str, Any] | str:
    """The periphery for layer 1 from the PIM mapping, or why it cannot be used."""
    layer = bundle.layers[0]
    try:
        pim = PimLayer(layer, bundle.input, options.pim)
    except (MappingError, ValueError) as exc:
        return str(exc)
    m = pim.mapping
    corrections = [int(c) for c in pim.correction]
    c_max = max([abs(c) for c in corrections] + [1])
    analog = options.pim.combine == "analog"
    try:
        periphery = PeripheryParams(
            n_neurons=layer.n_out,
            n_channels=m.channels,
            groups=m.n_groups,
            columns=1 if analog else m.w_bits,
            adc_bits=pim.adc.bits,
            signed_codes=analog,
            correction_bits=lossless_bits(-c_max, c_max),
            shift_bits=max(1, max(pim.adc.shift, layer.input_shift).bit_length()),
            index_bits=in_bits,
        )
    except ValueError as exc:
        return str(exc)
    if periphery.load_bits > MAX_LOAD_BITS:
        return f"LOAD values need {periphery.load_bits} bits (> {MAX_LOAD_BITS})"
    return {
        "pim": pim,
        "periphery": periphery,
        "corrections": corrections,
        "lsb_shift": pim.adc.shift,
        "input_shift": layer.input_shift,
    }


def _shift_within_sums(layer: Layer, max_abs_input: int) -> Layer:
    """``layer`` with ``input_shift`` at most its widest exact sum's sign bit: a longer shift
    gives the same integers (0 or -1), and a core shifts its sums by at most their width."""
    bound = sum_bound(layer.weight, max_abs_input)
    top = lossless_bits(-bound, bound) - 1
    return layer if layer.input_shift <= top else replace(layer, input_shift=top)


def plan_chip(bundle: Bundle, options: ChipOptions | None = None) -> ChipPlan:
    """The chip for ``bundle``; raises ``ChipError`` naming what the hardware cannot hold."""
    options = options or ChipOptions()
    first = bundle.layers[0]
    in_bits = max(index_bits(first.n_in), index_bits(first.n_out))
    extra: dict[str, Any] = {}
    if bundle.input.encoding == "spikes":
        feed, core = "spikes", {}
    else:
        found = _pim_feed(bundle, options, in_bits) if options.feed != "sums" else "not asked"
        if isinstance(found, dict):
            feed, extra = "pim", found
            core = {"load": True, "load_bits": found["periphery"].load_bits}
            first = replace(first, input_shift=0)
        elif options.feed == "pim":
            raise ChipError(f"layer {first.name}: the PIM first layer cannot be used: {found}")
        else:
            lo, hi = bundle.input.code_range
            bound = sum_bound(first.weight, max(abs(lo), abs(hi)))
            load_bits = max(2, lossless_bits(-bound, bound))
            if load_bits > MAX_LOAD_BITS:
                raise ChipError(
                    f"layer {first.name}: sums need {load_bits}-bit LOAD values "
                    f"(> {MAX_LOAD_BITS}); reduce input bits or weights"
                )
            feed, core = "sums", {"load": True, "load_bits": load_bits}
            first = _shift_within_sums(first, max(abs(lo), abs(hi)))
    if feed == "spikes":
        first = _shift_within_sums(first, 1)
    stages = [_stage(first, options, in_bits, **core)]
    for layer in bundle.layers[1:]:
        stages.append(_stage(_shift_within_sums(layer, 1), options, index_bits(layer.n_in)))
    return ChipPlan(bundle, options, feed, stages, **extra)


# ------------------------------------------------------------------------------------------
# the top


def _connect_event(m: Module, src, dst, value: bool = False) -> None:
    """Connect two event streams whose payload layouts may differ in widths (a stage's input:
    the player's words, the periphery's or the previous stage's events)."""
    m.d.comb += [
        dst.valid.eq(src.valid),
        src.ready.eq(dst.ready),
        dst.payload.op.eq(src.payload.op),
        dst.payload.index.eq(src.payload.index),
    ]
    if value:
        m.d.comb += dst.payload.value.eq(src.payload.value)


class Chip(wiring.Component):
    """A whole bundle: input buffer and player, [PIM periphery], one stage of cores per layer.

    **Ports** (host side):

    * ``wr`` (``en``, ``addr``, ``data``): write one input-buffer word a cycle (while idle).
    * ``start`` (pulse) with ``count`` (words per pass) and ``passes``: run a sample:
      ``CLEAR``, then the words ``passes`` times. ``busy`` stays high until the last layer has
      finished its last step.
    * ``cfg`` (``valid``, ``write``, ``addr``, ``wdata`` -> ``ready``, ``rvalid``, ``rdata``
      ``CHIP_READ_LATENCY`` (5) cycles after a read was accepted; reads may follow back to
      back): ``addr = target << sub_bits | sub``; target ``k < n_cores`` is core ``k``'s
      configuration port (``spikeforge.rtl.cores.core.Region``), target ``n_cores`` the chip
      registers: sub 0 ``lsb_shift``, sub 1 ``input_shift``, sub ``2^(sub_bits-1) + c`` the
      periphery's correction of channel ``c`` (write only).
    * ``mon``: per stage, registered copies of its out-stream handshake (fire, op, index in
      the layer's numbering), at ``ChipPlan.monitor_fields()``; ``mon_toggle`` flips in every
      cycle after one with any monitored event.
    """

    def __init__(self, plan: ChipPlan):
        self.plan = plan
        self.player = Player(plan.word_bits, plan.depth, REPEAT_BITS)
        self.periphery = None
        if plan.periphery is not None:  # with its two chip registers (configuration: not reset)
            self.periphery = PimPeriphery(plan.periphery, plan.corrections)
            bits = plan.periphery.shift_bits
            self.lsb_shift = Signal(bits, init=plan.lsb_shift, reset_less=True)
            self.input_shift = Signal(bits, init=plan.input_shift, reset_less=True)
        mon_bits = sum(3 + s.out_bits for s in plan.stages)
        super().__init__(
            {
                "wr": In(self.player.wr.signature.flip()),
                "start": In(1),
                "count": In(range(self.player.depth + 1)),
                "passes": In(REPEAT_BITS),
                "busy": Out(1),
                "cfg": In(config_signature(plan.cfg_addr_bits)),
                "mon": Out(mon_bits),
                "mon_toggle": Out(1),
            }
        )

    def elaborate(self, platform):
        m = Module()
        plan = self.plan
        m.submodules.player = player = self.player
        wiring.connect(m, wiring.flipped(self.wr), player.wr)
        m.d.comb += [
            player.start.eq(self.start),
            player.count.eq(self.count),
            player.passes.eq(self.passes),
        ]
        cores = [s.build() for s in plan.slices]
        for k, core in enumerate(cores):
            m.submodules[f"core{k}"] = core
        stream = self._feed(m, player)
        outs, base = [], 0
        for k, stage in enumerate(plan.stages):
            mine = cores[base : base + len(stage.slices)]
            base += len(stage.slices)
            stream = self._stage(m, k, stage, mine, stream)
            outs.append(stream)
        self._finish(m, player, outs[-1])
        self._monitors(m, outs)
        self._config(m, cores)
        return m

    def _feed(self, m: Module, player: Player):
        """Layer 1's event stream: player words, through the periphery for the PIM feed."""
        plan, stage = self.plan, self.plan.stages[0]
        if plan.periphery is None:
            return _WordStream(player.o, stage_layout(stage.in_bits, stage.value_bits))
        m.submodules.periphery = periphery = self.periphery
        m.d.comb += [
            periphery.i.valid.eq(player.o.valid),
            player.o.ready.eq(periphery.i.ready),
            periphery.i.payload.eq(player.o.payload),
            periphery.lsb_shift.eq(self.lsb_shift),
            periphery.input_shift.eq(self.input_shift),
        ]
        return periphery.o

    def _stage(self, m: Module, k: int, stage: Stage, cores: list, stream):
        """Fan the stage's input out to its cores; merge their outputs when split.

        From stage 1 on, the input (the previous stage's output) passes a ``SkidBuffer`` first,
        so no ``ready`` crosses a stage boundary combinationally.
        """
        value = stage.value_bits > 0
        slices = [(s.first, s.size, s.in_bits) for s in stage.slices]
        m.submodules[f"fanout{k}"] = fanout = Fanout(stage.in_bits, stage.value_bits, slices)
        if k > 0:
            m.submodules[f"skid{k}"] = skid = SkidBuffer(stream.signature.members["payload"].shape)
            wiring.connect(m, stream, skid.i)
            stream = skid.o
        _connect_event(m, stream, fanout.i, value)
        for j, core in enumerate(cores):
            wiring.connect(m, getattr(fanout, f"o{j}"), core.i)
        if len(cores) == 1:
            return cores[0].o
        offsets = [s.first for s in stage.slices]
        in_bits = [s.out_bits for s in stage.slices]
        m.submodules[f"merge{k}"] = merge = Merge(in_bits, offsets, stage.out_bits)
        for j, core in enumerate(cores):
            wiring.connect(m, core.o, getattr(merge, f"i{j}"))
        return merge.o

    def _finish(self, m: Module, player: Player, last) -> None:
        """Sink the last stage; ``busy`` until it has sent every step's TICK and the CLEAR."""
        sent = Signal(REPEAT_BITS + 16)
        seen = Signal.like(sent)
        cleared = Signal()
        m.d.comb += last.ready.eq(1)
        fire = last.valid
        with m.If(self.start):
            m.d.sync += [sent.eq(0), seen.eq(0), cleared.eq(0), self.busy.eq(1)]
        with m.Else():
            with m.If(player.tick):
                m.d.sync += sent.eq(sent + 1)
            with m.If(fire & (last.payload.op == Op.TICK)):
                m.d.sync += seen.eq(seen + 1)
            with m.If(fire & (last.payload.op == Op.CLEAR)):
                m.d.sync += cleared.eq(1)
            with m.If(player.done & cleared & (seen == sent)):
                m.d.sync += self.busy.eq(0)

    def _monitors(self, m: Module, outs: list) -> None:
        parts, any_fire = [], []
        for stream in outs:
            fire = stream.valid & stream.ready
            parts += [fire, stream.payload.op, stream.payload.index]
            any_fire.append(fire)
        m.d.sync += self.mon.eq(Cat(*parts))
        with m.If(Cat(*any_fire).any()):
            m.d.sync += self.mon_toggle.eq(~self.mon_toggle)

    def _config(self, m: Module, cores: list) -> None:
        """Route ``cfg`` accesses to the addressed core or to the chip registers."""
        widths = [len(core.cfg.addr) for core in cores] + [self.plan.sub_bits]
        m.submodules.cfg_decoder = decoder = ConfigDecoder(self.plan.sub_bits, widths)
        wiring.connect(m, wiring.flipped(self.cfg), decoder.cfg)
        for k, core in enumerate(cores):
            wiring.connect(m, decoder.target(k), core.cfg)
        self._chip_registers(m, decoder.target(len(cores)))

    def _chip_registers(self, m: Module, port) -> None:
        """The chip registers' target: always ready, reads answered as late as a core's."""
        m.d.comb += port.ready.eq(1)
        read = port.valid & ~port.write
        m.d.sync += port.rvalid.eq(delayed(m, read, CFG_READ_LATENCY - 1, "chip_rvalid"))
        if self.plan.periphery is None:
            return
        sub = delayed(m, port.addr, CFG_READ_LATENCY - 1, "chip_read")
        m.d.sync += port.rdata.eq(Mux(sub == 0, self.lsb_shift, self.input_shift))
        write = port.valid & port.write
        top = port.addr[-1]
        with m.If(write & ~top & (port.addr == 0)):
            m.d.sync += self.lsb_shift.eq(port.wdata)
        with m.If(write & ~top & (port.addr == 1)):
            m.d.sync += self.input_shift.eq(port.wdata)
        corr = self.periphery.corr
        m.d.comb += [
            corr.en.eq(write & top),
            corr.addr.eq(port.addr[: len(corr.addr)]),
            corr.data.eq(port.wdata),
        ]


class _WordStream:
    """The player's word stream seen as an event stream ``{op, index[, value]}``."""

    def __init__(self, words, layout):
        self.valid, self.ready = words.valid, words.ready
        self.payload = layout(words.payload)


def chip_verilog(plan: ChipPlan, name: str = "sf_chip") -> str:
    """Verilog of the chip for ``plan``, weights as memory initial contents."""
    from spikeforge.rtl.gateware.emit import convert

    return convert(Chip(plan), name)


def chip_summary(plan: ChipPlan) -> list[str]:
    """One line per stage: layer, cores, sizes, lanes."""
    lines = [f"feed {plan.feed}, {plan.n_cores} cores, input buffer {plan.depth} words"]
    for stage in plan.stages:
        cores = ", ".join(
            f"{s.params.n_axons}x{s.size} (lanes {s.params.lanes})" for s in stage.slices
        )
        lines.append(f"  {stage.layer.name} ({stage.layer.kind}): {cores}")
    return lines


__all__ = [
    "CORE_FACTORIES",
    "Chip",
    "ChipError",
    "ChipOptions",
    "ChipPlan",
    "chip_summary",
    "chip_verilog",
    "plan_chip",
]
