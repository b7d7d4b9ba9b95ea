"""Small bundle builders and a hypothesis strategy for random valid bundles."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from spikeforge.sim.bundle import Bundle, InputSpec, Layer
from spikeforge.sim.semantics import Leak, signed_range


def _layer(
    name: str,
    kind: str,
    weight: np.ndarray,
    in_shape: tuple[int, ...],
    *,
    fire: str = "lif",
    threshold=1,
    v_bits: int = 16,
    w_bits: int = 8,
    leak: Leak | None = None,
    reset: str = "sub",
    input_shift: int = 0,
    bias=None,
    stride: tuple[int, int] = (1, 1),
    padding: tuple[int, int] = (0, 0),
) -> Layer:
    """A layer with test defaults; an ``accum`` layer gets no threshold and no reset."""
    return Layer(
        name=name,
        kind=kind,
        weight=weight,
        in_shape=in_shape,
        w_bits=w_bits,
        v_bits=v_bits,
        threshold=threshold if fire == "lif" else None,
        leak=leak or Leak("none"),
        reset=reset if fire == "lif" else "none",
        fire=fire,
        input_shift=input_shift,
        bias=bias,
        stride=stride,
        padding=padding,
    )


def linear(name: str, weight, **options) -> Layer:
    """A linear layer over ``weight``'s columns (options: see ``_layer``)."""
    weight = np.asarray(weight, dtype=np.int64)
    return _layer(name, "linear", weight, (weight.shape[1],), **options)


def conv(name: str, weight, in_shape: tuple[int, int, int], **options) -> Layer:
    """A conv2d layer over ``in_shape``, weight ``[out, in, kh, kw]`` (options: see ``_layer``,
    with stride and padding)."""
    for key in ("stride", "padding"):
        if key in options:
            options[key] = tuple(options[key])
    return _layer(name, "conv2d", np.asarray(weight, dtype=np.int64), tuple(in_shape), **options)


def bundle(
    layers: list[Layer],
    *,
    timesteps: int = 1,
    encoding: str = "direct",
    bits: int = 8,
    signed: bool = False,
    shape: tuple[int, ...] | None = None,
) -> Bundle:
    spec = InputSpec(
        shape=shape or layers[0].in_shape,
        encoding=encoding,
        bits=1 if encoding == "spikes" else bits,
        signed=signed,
    )
    return Bundle(timesteps=timesteps, input=spec, layers=layers)


@st.composite
def leaks(draw, v_bits: int) -> Leak:
    mode = draw(st.sampled_from(["mult", "shift", "none"]))
    if mode == "mult":
        frac = draw(st.integers(0, 10))
        return Leak("mult", lam=draw(st.integers(0, 1 << frac)), frac=frac)
    if mode == "shift":
        return Leak("shift", k=draw(st.integers(1, v_bits - 1)))
    return Leak("none")


@st.composite
def random_bundles(draw, max_layers: int = 3) -> Bundle:
    """Small valid bundles over every kind, mode, encoding and parameter form."""
    encoding = draw(st.sampled_from(["direct", "spikes"]))
    signed = encoding == "direct" and draw(st.booleans())
    bits = 1 if encoding == "spikes" else draw(st.integers(1, 10))
    if draw(st.booleans()):
        shape: tuple[int, ...] = (
            draw(st.integers(1, 3)),
            draw(st.integers(2, 6)),
            draw(st.integers(2, 6)),
        )
    else:
        shape = (draw(st.integers(1, 12)),)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_layers = draw(st.integers(1, max_layers))
    layers, in_shape = [], shape
    for index in range(n_layers):
        last = index == n_layers - 1
        w_bits = draw(st.integers(2, 8))
        v_bits = draw(st.integers(4, 24))
        lo, hi = signed_range(w_bits)
        is_conv = len(in_shape) == 3 and draw(st.booleans())
        if is_conv:
            c, h, w = in_shape
            kh, kw = draw(st.integers(1, min(3, h + 2))), draw(st.integers(1, min(3, w + 2)))
            out_c = draw(st.integers(1, 3))
            weight = rng.integers(lo, hi + 1, size=(out_c, c, kh, kw))
            layer = conv(
                f"l{index}",
                weight,
                in_shape,
                w_bits=w_bits,
                v_bits=v_bits,
                threshold=None,
                stride=(draw(st.integers(1, 2)), draw(st.integers(1, 2))),
                padding=(draw(st.integers(0, 1)), draw(st.integers(0, 1))),
            )
            if layer.out_shape[1] < 1 or layer.out_shape[2] < 1:
                layer.padding = (1, 1)
        else:
            n_in = int(np.prod(in_shape))
            weight = rng.integers(lo, hi + 1, size=(draw(st.integers(1, 8)), n_in))
            layer = linear(f"l{index}", weight, w_bits=w_bits, v_bits=v_bits, threshold=None)
        vmax = signed_range(v_bits)[1]
        layer.fire = "accum" if last else "lif"
        if not last:
            if draw(st.booleans()):
                layer.threshold = rng.integers(1, vmax + 1, size=layer.n_out)
            else:
                layer.threshold = draw(st.sampled_from([1, vmax, max(1, vmax // 8)]))
            layer.reset = draw(st.sampled_from(["sub", "zero", "none"]))
        else:
            layer.reset = "none"
        layer.leak = draw(leaks(v_bits))
        layer.input_shift = draw(st.integers(0, 3))
        bias_form = draw(st.sampled_from(["none", "int", "array"]))
        blo, bhi = signed_range(v_bits)
        if bias_form == "int":
            layer.bias = int(rng.integers(blo // 4, bhi // 4 + 1))
        elif bias_form == "array":
            layer.bias = rng.integers(blo // 4, bhi // 4 + 1, size=layer.n_out)
        layers.append(layer)
        in_shape = layer.out_shape
    return Bundle(
        timesteps=draw(st.integers(1, 4)),
        input=InputSpec(shape, encoding, bits, signed),
        layers=layers,
    )


def random_input(b: Bundle, n: int, seed: int) -> np.ndarray:
    """Random valid inputs for ``b``, extremes included."""
    rng = np.random.default_rng(seed)
    lo, hi = b.input.code_range
    shape = (
        (n, *b.input.shape) if b.input.encoding == "direct" else (n, b.timesteps, *b.input.shape)
    )
    x = rng.integers(lo, hi + 1, size=shape)
    extremes = rng.random(shape) < 0.2
    return np.where(extremes, rng.choice([lo, hi], size=shape), x)


#: Widths the chip's cores build (``spikeforge.rtl.cores.core.CoreParams``); a bundle may use more.
CORE_W_BITS, CORE_V_BITS = (2, 8), (8, 24)


def _extreme_weights(rng: np.random.Generator, shape: tuple[int, ...], w_bits: int) -> np.ndarray:
    """Weights over the whole signed range, both ends over-represented, some zeros."""
    lo, hi = signed_range(w_bits)
    w = rng.integers(lo, hi + 1, size=shape)
    w = np.where(rng.random(shape) < 0.3, rng.choice([lo, hi], size=shape), w)
    return np.where(rng.random(shape) < 0.15, 0, w)


@st.composite
def degenerate_bundles(draw, *, core_widths: bool = True, max_layers: int = 3) -> Bundle:
    """Valid bundles at the edges of every size: one input, channel or neuron, 1x1 kernels,
    strides above the kernel, padding up to the kernel size, T = 1, the narrowest and widest
    input codes and (``core_widths``: within what a core builds, else the format's whole range)
    the narrowest and widest w_bits and v_bits."""
    encoding = draw(st.sampled_from(["direct", "spikes"]))
    bits = 1 if encoding == "spikes" else draw(st.sampled_from([1, 2, 8, 16]))
    signed = encoding == "direct" and draw(st.booleans())
    if draw(st.booleans()):
        shape: tuple[int, ...] = (
            draw(st.integers(1, 2)),
            draw(st.integers(1, 5)),
            draw(st.integers(1, 5)),
        )
    else:
        shape = (draw(st.integers(1, 3)),)
    w_choices = [2, 3, 8] if core_widths else [2, 8, 9, 16]
    v_choices = [8, 9, 24] if core_widths else [2, 7, 8, 24, 25, 32]
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_layers = draw(st.integers(1, max_layers))
    layers, in_shape = [], shape
    for index in range(n_layers):
        last = index == n_layers - 1
        w_bits, v_bits = draw(st.sampled_from(w_choices)), draw(st.sampled_from(v_choices))
        if len(in_shape) == 3 and draw(st.booleans()):
            c, h, w = in_shape
            kernel, stride, padding = [], [], []
            for size in (h, w):
                k = draw(st.integers(1, min(3, size + 2)))
                pad = draw(st.integers(max(0, -(-(k - size) // 2)), k))
                kernel.append(k)
                padding.append(pad)
                stride.append(draw(st.integers(1, k + 2)))
            out_c = draw(st.integers(1, 2))
            layer = conv(
                f"l{index}",
                _extreme_weights(rng, (out_c, c, *kernel), w_bits),
                in_shape,
                stride=(stride[0], stride[1]),
                padding=(padding[0], padding[1]),
                w_bits=w_bits,
                v_bits=v_bits,
            )
        else:
            n_in = int(np.prod(in_shape))
            weight = _extreme_weights(rng, (draw(st.integers(1, 3)), n_in), w_bits)
            layer = linear(f"l{index}", weight, w_bits=w_bits, v_bits=v_bits)
        blo, vmax = signed_range(v_bits)
        if last:
            layer.fire, layer.reset, layer.threshold = "accum", "none", None
        else:
            if draw(st.booleans()):
                layer.threshold = rng.integers(1, vmax + 1, size=layer.n_out)
            else:
                layer.threshold = draw(st.sampled_from([1, 2, vmax]))
            layer.reset = draw(st.sampled_from(["sub", "zero", "none"]))
        layer.leak = draw(leaks(v_bits))
        layer.input_shift = draw(st.sampled_from([0, 1, 3, 62]))
        bias_form = draw(st.sampled_from(["none", "int", "array"]))
        if bias_form == "int":
            layer.bias = draw(st.sampled_from([blo, -1, 1, vmax]))
        elif bias_form == "array":
            layer.bias = rng.integers(blo, vmax + 1, size=layer.n_out)
        layers.append(layer)
        in_shape = layer.out_shape
    return Bundle(
        timesteps=draw(st.sampled_from([1, 1, 2, 3])),
        input=InputSpec(shape, encoding, bits, signed),
        layers=layers,
    )
