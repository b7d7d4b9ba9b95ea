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
    """A conv2d layer over ``in_shape`` (options: see ``_layer``, with stride and padding)."""
    return _layer(name, "conv2d", np.asarray(weight, dtype=np.int64), in_shape, **options)


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
