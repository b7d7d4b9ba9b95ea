"""Zou et al.'s incremental mapping: a network's layers onto fixed-size crossbar cores.

A core has ``axons`` inputs and ``neurons`` outputs (Zou et al.'s chip: 1,152 x 1,024). A layer
with an input feature map ``W x H x D`` (a linear layer is ``1 x 1 x n_in``), kernel ``c``,
stride ``s`` and ``D'`` output channels is cut into patches: an input patch ``w x h x D`` (always
every input channel, Eq. 12) feeds an output patch ``w' x h' x d'`` with ``w' = (w - c)/s + 1``
(Eq. 13) on one core. The patch must fit both sides of Eq. 11::

    k_rep * w*h*D <= axons * f          w'*h'*d' * f * k_wei * k_rep <= neurons

``k_rep = B 2^k`` IF neurons stand for one ANN neuron (scatter-and-gather groups), ``k_wei``
basic neurons make one multi-bit weight (2 for ternary on Zou's chip: strengths -1 and +1), and
``f`` (a power of two, at most 64 on the chip) is the axon extension: ``f`` complete neurons
combine into one spatial neuron with ``f`` times the fan-in. Utilisation: Eqs. 14-16
(``Placement.density_*``); patch counts: Eqs. 20-22 (``Placement.m/n/p``).

The search is the paper's two priorities: ``channel_major`` (Algorithm 1) grows the output
channels ``d'`` of a ``c x c`` input patch; when all ``D'`` fit, ``square_major`` (Algorithm 2)
grows the patch towards ``W x H`` and keeps the candidate with the largest output patch. The
paper's Fig. 7 ("red / blue / green steps") is not specified beyond that; here every valid patch
size is a candidate, ties go to the smaller ``f``, then the squarer patch, then the wider one.
This reproduces the paper's worked example (Tables 2 and 3) and the rows of Tables 7 and 8 that
tests/rtl/test_mapping.py checks.

``chip_placement`` applies the same equations to this project's chip (``spikeforge.rtl.chip.top``):
its cores hold multi-bit weights (``k_wei = 1``), a bundle already holds the expanded neuron groups
(``k_rep = 1``), there is no axon extension (``f = 1``), and a conv core takes the whole input map
(channel slices only, no spatial patches).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.sim.bundle import Layer

#: Largest axon extension of Zou et al.'s chip (1, 2, 4, ..., 64).
ZOU_MAX_F = 64


class MappingError(ValueError):
    """A layer cannot be placed on the core; the message names the layer and the limit."""


@dataclass(frozen=True)
class CoreSize:
    """One crossbar core: ``axons`` inputs x ``neurons`` outputs."""

    axons: int = 1152
    neurons: int = 1024

    def __post_init__(self) -> None:
        if self.axons < 1 or self.neurons < 1:
            raise MappingError(f"core size must be positive, got {self.axons}x{self.neurons}")

    @classmethod
    def parse(cls, text: str) -> CoreSize:
        """``"1152x1024"`` -> ``CoreSize(1152, 1024)``."""
        axons, sep, neurons = text.lower().partition("x")
        if not sep or not axons.strip().isdigit() or not neurons.strip().isdigit():
            raise MappingError(f"core size must look like AXONSxNEURONS (e.g. 1152x1024): {text!r}")
        return cls(int(axons), int(neurons))

    def __str__(self) -> str:
        return f"{self.axons}x{self.neurons}"


#: The core of Zou et al. / Kuang et al.
ZOU_CORE = CoreSize(1152, 1024)


@dataclass(frozen=True)
class LayerShape:
    """A layer as the mapper sees it: input map ``width x height x depth`` (unpadded), square
    kernel ``kernel``, ``stride``, zero ``padding``, ``out_depth`` output channels."""

    width: int
    height: int
    depth: int
    out_depth: int
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    name: str = "layer"

    def __post_init__(self) -> None:
        if min(self.width, self.height, self.depth, self.out_depth, self.kernel, self.stride) < 1:
            raise MappingError(f"{self.name}: sizes, kernel and stride must be positive")
        if self.padding < 0 or self.kernel > min(self.padded_width, self.padded_height):
            raise MappingError(f"{self.name}: kernel {self.kernel} larger than the padded map")

    @property
    def padded_width(self) -> int:
        return self.width + 2 * self.padding

    @property
    def padded_height(self) -> int:
        return self.height + 2 * self.padding

    @property
    def out_width(self) -> int:
        return (self.padded_width - self.kernel) // self.stride + 1

    @property
    def out_height(self) -> int:
        return (self.padded_height - self.kernel) // self.stride + 1

    @classmethod
    def linear(cls, n_in: int, n_out: int, name: str = "layer") -> LayerShape:
        """A fully connected layer: a ``1 x 1 x n_in`` map, kernel 1."""
        return cls(1, 1, n_in, n_out, name=name)

    @classmethod
    def from_layer(cls, layer: Layer) -> LayerShape:
        """The shape of a bundle layer (conv: square kernel, equal strides and paddings)."""
        if layer.kind == "linear":
            return cls.linear(layer.n_in, layer.n_out, layer.name)
        c, h, w = layer.in_shape
        kh, kw = layer.weight.shape[2:]
        if kh != kw or layer.stride[0] != layer.stride[1] or layer.padding[0] != layer.padding[1]:
            raise MappingError(
                f"{layer.name}: the mapper needs a square kernel and equal strides and paddings"
            )
        return cls(w, h, c, int(layer.weight.shape[0]), int(kh), int(layer.stride[0]),
                   int(layer.padding[0]), layer.name)  # fmt: skip


@dataclass(frozen=True)
class Placement:
    """One layer's patch on a core, with the paper's utilisation figures."""

    layer: LayerShape
    w_in: int
    h_in: int
    d_out: int
    f: int = 1
    k_rep: int = 1
    k_wei: int = 2
    core: CoreSize = ZOU_CORE

    @property
    def d_in(self) -> int:
        return self.layer.depth

    @property
    def w_out(self) -> int:
        """Eq. 13."""
        return (self.w_in - self.layer.kernel) // self.layer.stride + 1

    @property
    def h_out(self) -> int:
        return (self.h_in - self.layer.kernel) // self.layer.stride + 1

    @property
    def in_neurons(self) -> int:
        """Inputs of the patch (padding cells carry no axon; bounded by the real map)."""
        return min(self.w_in, self.layer.width) * min(self.h_in, self.layer.height) * self.d_in

    @property
    def out_neurons(self) -> int:
        return self.w_out * self.h_out * self.d_out

    @property
    def fits_axons(self) -> bool:
        """Eq. 11, left."""
        return self.k_rep * self.in_neurons <= self.core.axons * self.f

    @property
    def fits_neurons(self) -> bool:
        """Eq. 11, right."""
        return self.out_neurons * self.f * self.k_wei * self.k_rep <= self.core.neurons

    @property
    def m(self) -> int:
        """Horizontal patches (Eq. 20, rounded up when the map does not divide evenly)."""
        return math.ceil(self.layer.out_width / self.w_out)

    @property
    def n(self) -> int:
        """Vertical patches (Eq. 21)."""
        return math.ceil(self.layer.out_height / self.h_out)

    @property
    def p(self) -> int:
        """Depth patches (Eq. 22)."""
        return math.ceil(self.layer.out_depth / self.d_out)

    @property
    def cores(self) -> int:
        return self.m * self.n * self.p

    @property
    def density_neuron(self) -> float:
        """Eq. 14."""
        return self.k_rep * self.out_neurons * self.f * self.k_wei / self.core.neurons

    @property
    def density_axon(self) -> float:
        """Eq. 15."""
        return self.k_rep * self.in_neurons / (self.core.axons * self.f)

    @property
    def density_synapse(self) -> float:
        """Eq. 16: used crossbar points (``k_rep`` duplicated inputs, ``k_wei`` per weight)."""
        fan_in = self.layer.kernel**2 * self.d_in * self.k_rep * self.k_wei
        return self.k_rep * self.out_neurons * fan_in / (self.core.axons * self.core.neurons)

    def row(self) -> dict[str, int | float | str]:
        """The Table 2 / Table 3 columns."""
        return {
            "layer": self.layer.name,
            "w_l": self.w_in,
            "h_l": self.h_in,
            "d_l": self.d_in,
            "w_l+1": self.w_out,
            "h_l+1": self.h_out,
            "d_l+1": self.d_out,
            "f": self.f,
            "cores": self.cores,
            "density_neuron": self.density_neuron,
            "density_axon": self.density_axon,
            "density_synapse": self.density_synapse,
        }


def _check_patch(layer: LayerShape, w: int, h: int) -> None:
    c, s = layer.kernel, layer.stride
    for size, full, what in ((w, layer.padded_width, "width"), (h, layer.padded_height, "height")):
        if not c <= size <= full or (size - c) % s:
            raise MappingError(
                f"{layer.name}: patch {what} {size} must be kernel + a multiple of the stride "
                f"within the padded map ({c}..{full}, step {s})"
            )


def _smallest_f(layer: LayerShape, w: int, h: int, k_rep: int, core: CoreSize, max_f: int) -> int:
    """The smallest power-of-two axon extension meeting Eq. 11 left, 0 if above ``max_f``."""
    f = 1
    while not Placement(layer, w, h, 1, f, k_rep, 1, core).fits_axons:
        f *= 2
        if f > max_f:
            return 0
    return f


def channel_major(
    layer: LayerShape,
    *,
    k_rep: int = 1,
    k_wei: int = 2,
    core: CoreSize = ZOU_CORE,
    max_f: int = ZOU_MAX_F,
    w_in: int | None = None,
    h_in: int | None = None,
) -> Placement:
    """Algorithm 1: the input patch (``c x c`` unless given), its axon extension, then as many
    output channels as the core's neurons allow (at most ``D'``)."""
    if k_rep < 1 or k_wei < 1 or max_f < 1:
        raise MappingError(f"{layer.name}: k_rep, k_wei and max_f must be at least 1")
    w = layer.kernel if w_in is None else w_in
    h = layer.kernel if h_in is None else h_in
    _check_patch(layer, w, h)
    f = _smallest_f(layer, w, h, k_rep, core, max_f)
    if not f:
        inputs = Placement(layer, w, h, 1, 1, k_rep, k_wei, core).in_neurons
        raise MappingError(
            f"{layer.name}: an input patch of {w}x{h}x{layer.depth} ({k_rep * inputs} axons with "
            f"k_rep={k_rep}) needs more than {max_f} x {core.axons} axons"
        )
    probe = Placement(layer, w, h, 1, f, k_rep, k_wei, core)
    per_channel = probe.w_out * probe.h_out * f * k_wei * k_rep
    d_out = min(layer.out_depth, core.neurons // per_channel)
    if d_out < 1:
        raise MappingError(
            f"{layer.name}: one output channel of a {w}x{h} patch needs {per_channel} neurons "
            f"(f={f}, k_wei={k_wei}, k_rep={k_rep}); the core has {core.neurons}"
        )
    return Placement(layer, w, h, d_out, f, k_rep, k_wei, core)


def square_major(start: Placement, *, max_f: int = ZOU_MAX_F) -> Placement:
    """Algorithm 2 (after ``channel_major`` placed all ``D'`` channels): grow the input patch
    towards the whole map; the largest output patch meeting Eq. 11 wins."""
    layer, c, s = start.layer, start.layer.kernel, start.layer.stride
    if start.d_out != layer.out_depth:
        raise MappingError(f"{layer.name}: square-major search needs all output channels placed")
    best = start

    def key(p: Placement) -> tuple[int, int, int, int]:
        return (p.out_neurons, -p.f, -abs(p.w_in - p.h_in), p.w_in)

    for w in range(c, layer.padded_width + 1, s):
        for h in range(c, layer.padded_height + 1, s):
            f = _smallest_f(layer, w, h, start.k_rep, start.core, max_f)
            if not f:
                continue
            cand = Placement(layer, w, h, layer.out_depth, f, start.k_rep, start.k_wei, start.core)
            if cand.fits_neurons and key(cand) > key(best):
                best = cand
    return best


def place_layer(
    layer: LayerShape,
    *,
    k_rep: int = 1,
    k_wei: int = 2,
    core: CoreSize = ZOU_CORE,
    max_f: int = ZOU_MAX_F,
) -> Placement:
    """Zou et al.'s incremental mapping of one layer: channel-major, then square-major."""
    first = channel_major(layer, k_rep=k_rep, k_wei=k_wei, core=core, max_f=max_f)
    if first.d_out < layer.out_depth:
        return first
    return square_major(first, max_f=max_f)


def chip_placement(layer: Layer, core: CoreSize) -> Placement:
    """How ``spikeforge.rtl.chip.top`` splits a bundle layer over cores of ``core`` size.

    The chip's cores store multi-bit weights (``k_wei = 1``), bundles hold the expanded neuron
    groups already (``k_rep = 1``), a core has no axon extension (``f = 1``) and a layer's
    inputs are never split: every core of a layer sees the whole input (map), and the layer is
    cut into ``p`` slices of ``d'`` output channels (neurons, for a linear layer).
    """
    shape = LayerShape.from_layer(layer)
    if layer.n_in > core.axons:
        raise MappingError(
            f"layer {layer.name}: {layer.n_in} inputs exceed the core's {core.axons} axons "
            "(the chip does not split a layer's inputs)"
        )
    c, s = shape.kernel, shape.stride
    whole_w = c + (shape.padded_width - c) // s * s  # the whole map, in valid patch sizes
    whole_h = c + (shape.padded_height - c) // s * s
    try:
        return channel_major(shape, k_rep=1, k_wei=1, core=core, max_f=1,
                             w_in=whole_w, h_in=whole_h)  # fmt: skip
    except MappingError as exc:
        raise MappingError(f"layer {exc}") from None


def map_network(
    layers: list[LayerShape],
    *,
    k_rep: int = 1,
    k_wei: int = 2,
    core: CoreSize = ZOU_CORE,
    max_f: int = ZOU_MAX_F,
) -> list[Placement]:
    """``place_layer`` for each layer (the same precision everywhere)."""
    return [place_layer(x, k_rep=k_rep, k_wei=k_wei, core=core, max_f=max_f) for x in layers]


def format_table(placements: list[Placement]) -> str:
    """A markdown table of placements: patches, ``f``, cores and the three densities."""
    lines = [
        "| layer | input patch | output patch | f | cores | neuron | axon | synapse |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for p in placements:
        lines.append(
            f"| {p.layer.name} | {p.w_in}x{p.h_in}x{p.d_in} | {p.w_out}x{p.h_out}x{p.d_out} | "
            f"{p.f} | {p.cores} | {p.density_neuron:.0%} | {p.density_axon:.0%} | "
            f"{p.density_synapse:.0%} |"
        )
    return "\n".join(lines)


def bundle_report(bundle_layers: list[Layer], core: CoreSize = ZOU_CORE) -> str:
    """Markdown tables for a bundle's layers on ``core``: Zou et al.'s search (``k_wei`` =
    the layer's ``w_bits``, bit-plane basic neurons; axon extension up to 64) and this chip's
    split (``chip_placement``). Layers the chip cannot hold are listed with the reason."""
    zou, chip, refused = [], [], []
    for layer in bundle_layers:
        shape = LayerShape.from_layer(layer)
        zou.append(place_layer(shape, k_rep=1, k_wei=layer.w_bits, core=core))
        try:
            chip.append(chip_placement(layer, core))
        except MappingError as exc:
            refused.append(str(exc))
    text = [f"Zou et al.'s search on {core} cores (k_wei = w_bits, f <= 64):", "",
            format_table(zou), "", f"this chip's split on {core} cores (f = 1, whole maps):", "",
            format_table(chip)]  # fmt: skip
    text += [f"- refused: {reason}" for reason in refused]
    return "\n".join(text)
