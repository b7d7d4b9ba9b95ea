"""Degenerate but valid bundles build into hardware that equals the golden model, or are refused
before anything is elaborated.

``CASES`` is an explicit table of edge shapes: one input, channel or neuron; 1x1 kernels; strides
above the kernel; padding as large as the kernel; a kernel as large as the padded input; T = 1;
w_bits 2 and 8, v_bits 8 and 24; direct codes of 1 and 16 bits, signed and unsigned, and spikes;
every layer-1 feed (PIM periphery, lossy and analog ADCs included; host sums; spikes); split
layers and lanes above the neuron count; input_shift far beyond the sums. For each, the golden
model runs and the chip, with every core, convolution core and the periphery in it, emits
Verilog that Verilator lints clean. One top holding the ``DEFAULT`` chips runs under each
simulator and equals the golden model on every spike, output potential and counter. Widths the
cores cannot hold are refused by ``plan_chip`` with one ``ChipError`` line.

The slow tests simulate the whole table and sweep ``tests.sim.builders.degenerate_bundles``:
``SPIKEFORGE_SIMS=verilator,icarus pytest -p no:xdist -m slow tests/rtl/test_degenerate.py``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spikeforge.pim.model import PimConfig
from spikeforge.rtl.chip.mapping import CoreSize
from spikeforge.rtl.chip.top import Chip, ChipError, ChipOptions, ChipPlan, plan_chip
from spikeforge.rtl.gateware import emit
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, load_bundle, save_bundle
from spikeforge.sim.semantics import Leak, signed_range

from spikeforge.rtl_flow import run_chips
from tests.rtl.chip_golden import check_chips
from tests.sim.builders import (
    CORE_V_BITS,
    CORE_W_BITS,
    bundle,
    degenerate_bundles,
    linear,
    random_input,
)
from tests.sim.builders import (
    conv as conv_layer,
)

SAMPLES = 3
#: A negative or zero-width Verilog range (``[-1:0]``): what a zero-bit Amaranth signal becomes.
BAD_RANGE = re.compile(r"\[-\d+:0\]")


def _w(rng: np.random.Generator, shape: tuple[int, ...], w_bits: int) -> np.ndarray:
    """Weights over the whole signed range, ends over-represented, never all zero."""
    lo, hi = signed_range(w_bits)
    w = np.where(
        rng.random(shape) < 0.4,
        rng.choice([lo, hi], size=shape),
        rng.integers(lo, hi + 1, size=shape),
    )
    w.flat[0] = hi
    return w


def _out(rng, n_in: int, n_out: int = 1, w_bits: int = 4, v_bits: int = 16):
    return linear("out", _w(rng, (n_out, n_in), w_bits), fire="accum", w_bits=w_bits, v_bits=v_bits)


# -- the explicit table -----------------------------------------------------------------------


def lin_one_neuron(rng) -> Bundle:
    """One input, one output neuron, the only layer; 1-bit unsigned codes, T = 1."""
    return bundle([_out(rng, 1)], bits=1)


def lin_one_neuron_signed(rng) -> Bundle:
    """The same shape on 1-bit signed codes (-1 and 0), three steps, a bias, and the longest
    input_shift the format allows."""
    out = _out(rng, 1)
    out.bias, out.input_shift = -3, 62
    return bundle([out], bits=1, signed=True, timesteps=3)


def lin_one_spike_chain(rng) -> Bundle:
    """Spikes through a one-neuron hidden layer into a one-neuron output, T = 1."""
    hidden = linear("h", [[1]], threshold=1)
    return bundle([hidden, _out(rng, 1)], encoding="spikes")


def conv_issue(rng) -> Bundle:
    """One output channel, 1x1 kernel, stride 2, padding 1, direct codes (the PIM feed)."""
    conv = conv_layer(
        "c",
        _w(rng, (1, 1, 1, 1), 4),
        (1, 4, 4),
        stride=(2, 2),
        padding=(1, 1),
        w_bits=4,
        threshold=3,
    )
    return bundle([conv, _out(rng, conv.n_out, 2)], bits=4, timesteps=2)


def conv_single_pixel(rng) -> Bundle:
    """A 1x1x1 input through a 1x1 kernel: one axon, one neuron; spikes, T = 1."""
    conv = conv_layer("c", [[[[1]]]], (1, 1, 1), threshold=1)
    return bundle([conv, _out(rng, 1)], encoding="spikes")


def conv_stride_over_kernel(rng) -> Bundle:
    """Stride 3 over a 1x1 kernel (inputs that reach no output), into a second such conv with
    an input_shift far beyond its sums."""
    c1 = conv_layer(
        "c1",
        _w(rng, (2, 1, 1, 1), 3),
        (1, 5, 5),
        stride=(3, 3),
        w_bits=3,
        threshold=2,
        leak=Leak("shift", k=1),
    )
    c2 = conv_layer(
        "c2",
        _w(rng, (1, 2, 1, 1), 3),
        c1.out_shape,
        stride=(3, 3),
        w_bits=3,
        threshold=1,
        input_shift=40,
        bias=1,
    )
    return bundle([c1, c2, _out(rng, c2.n_out)], bits=16, signed=True, timesteps=2)


def conv_max_padding(rng) -> Bundle:
    """Padding equal to the kernel: border outputs see only zeros; three channels on four
    lanes; spikes, three steps."""
    conv = conv_layer(
        "c",
        _w(rng, (3, 1, 2, 2), 4),
        (1, 3, 3),
        padding=(2, 2),
        stride=(2, 2),
        w_bits=4,
        threshold=2,
        bias=1,
    )
    return bundle([conv, _out(rng, conv.n_out, 3)], encoding="spikes", timesteps=3)


def conv_kernel_fills_input(rng) -> Bundle:
    """A 4x4 kernel over a padded 2x2 input: one output position, two input channels."""
    conv = conv_layer(
        "c", _w(rng, (1, 2, 4, 4), 4), (2, 2, 2), padding=(1, 1), w_bits=4, threshold=5
    )
    return bundle([conv, _out(rng, 1)], bits=2, timesteps=2)


def conv_rectangular(rng) -> Bundle:
    """A 1x3 kernel, stride (3, 1), padding (0, 1); spikes."""
    conv = conv_layer(
        "c",
        _w(rng, (1, 2, 1, 3), 4),
        (2, 3, 4),
        stride=(3, 1),
        padding=(0, 1),
        w_bits=4,
        threshold=1,
    )
    return bundle([conv, _out(rng, conv.n_out)], encoding="spikes", timesteps=2)


def conv_output_layer(rng) -> Bundle:
    """The conv layer is the accumulating output layer itself; 8-bit codes, T = 1."""
    conv = conv_layer(
        "c",
        _w(rng, (1, 1, 1, 1), 4),
        (1, 3, 3),
        stride=(2, 2),
        padding=(1, 1),
        w_bits=4,
        fire="accum",
    )
    return bundle([conv], bits=8)


def narrowest_widths(rng) -> Bundle:
    """w_bits 2, v_bits 8: saturation, the largest threshold, leak shift k = 7, 16-bit codes."""
    hidden = linear(
        "h",
        _w(rng, (2, 3), 2),
        w_bits=2,
        v_bits=8,
        threshold=np.array([127, 1]),
        leak=Leak("shift", k=7),
        bias=np.array([-128, 127]),
    )
    return bundle([hidden, _out(rng, 2, 1, 2, 8)], bits=16, timesteps=4)


def widest_widths(rng) -> Bundle:
    """w_bits 8, v_bits 24, signed 16-bit codes, leak mult with frac 16 and lam 0."""
    vmax = signed_range(24)[1]
    hidden = linear(
        "h",
        _w(rng, (3, 2), 8),
        w_bits=8,
        v_bits=24,
        threshold=np.array([1, 900, vmax]),
        leak=Leak("mult", lam=0, frac=16),
        reset="zero",
    )
    return bundle([hidden, _out(rng, 3, 2, 8, 24)], bits=16, signed=True, timesteps=2)


def split_neurons(rng) -> Bundle:
    """Five and three neurons: split into cores of at most three, lanes above the count,
    input_shift 3."""
    hidden = linear(
        "h",
        _w(rng, (5, 3), 4),
        w_bits=4,
        threshold=2,
        input_shift=3,
        leak=Leak("mult", lam=200, frac=8),
    )
    return bundle([hidden, _out(rng, 5, 3)], bits=8, timesteps=2)


def split_channels(rng) -> Bundle:
    """Three output channels split across cores by the mapper; spikes."""
    conv = conv_layer("c", _w(rng, (3, 1, 1, 1), 4), (1, 2, 2), w_bits=4, threshold=1)
    return bundle([conv, _out(rng, conv.n_out)], encoding="spikes", timesteps=2)


@dataclass(frozen=True)
class Case:
    make: Callable[[np.random.Generator], Bundle]
    options: ChipOptions
    feed: str  # the layer-1 feed the plan must choose


CASES = [
    Case(lin_one_neuron, ChipOptions(), "pim"),
    Case(lin_one_neuron_signed, ChipOptions(feed="sums", lanes=16), "sums"),
    Case(lin_one_spike_chain, ChipOptions(lanes=16), "spikes"),
    Case(conv_issue, ChipOptions(), "pim"),
    Case(conv_issue, ChipOptions(feed="sums", lanes=1), "sums"),
    Case(conv_single_pixel, ChipOptions(), "spikes"),
    Case(conv_stride_over_kernel, ChipOptions(lanes=4), "pim"),
    Case(conv_max_padding, ChipOptions(lanes=4), "spikes"),
    Case(conv_kernel_fills_input, ChipOptions(lanes=2), "pim"),
    Case(conv_rectangular, ChipOptions(lanes=2), "spikes"),
    Case(conv_output_layer, ChipOptions(), "pim"),
    Case(narrowest_widths, ChipOptions(lanes=2), "pim"),
    Case(widest_widths, ChipOptions(feed="sums", lanes=4), "sums"),
    Case(split_neurons, ChipOptions(lanes=16, max_neurons=3), "pim"),
    Case(split_channels, ChipOptions(lanes=16, core=CoreSize(64, 4)), "spikes"),
    Case(lin_one_neuron, ChipOptions(pim=PimConfig(adc_bits=2)), "pim"),
    Case(conv_issue, ChipOptions(pim=PimConfig(combine="analog", adc_bits=3)), "pim"),
]
CASE_IDS = [f"{c.make.__name__}-{c.feed}-{k}" for k, c in enumerate(CASES)]
#: The chips the default run simulates (one build per simulator, under a minute on 2 cores):
#: the rest of the table is simulated by the slow test.
DEFAULT = (0, 3, 5, 11, 12, 13)


def _saved(b: Bundle, path: Path) -> Bundle:
    """Through the validating writer and loader, as the command line sees a bundle."""
    save_bundle(b, path)
    return load_bundle(path)


def _case(k: int, base: Path) -> tuple[Bundle, np.ndarray, ChipPlan]:
    case = CASES[k]
    rng = np.random.default_rng(100 + k)
    b = _saved(case.make(rng), base / f"b{k}")
    x = golden.check_input(b, random_input(b, SAMPLES, seed=k))
    plan = plan_chip(b, case.options)
    assert plan.feed == case.feed
    return b, x, plan


# -- golden and generators --------------------------------------------------------------------


def _lint_clean(component, name: str, path: Path) -> None:
    text = emit.convert(component, name)
    assert not BAD_RANGE.search(text), BAD_RANGE.search(text).group(0)
    path.write_text(text)
    result = emit.lint(path, name)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "%Warning" not in result.stderr


@pytest.mark.parametrize("k", range(len(CASES)), ids=CASE_IDS)
def test_golden_and_every_generator(k, tmp_path):
    """The golden model runs; the chip, and in it every core, convolution core and the PIM
    periphery, elaborates into Verilog that Verilator lints clean."""
    b, x, plan = _case(k, tmp_path)
    want = golden.run(b, x, first_layer_sums=plan.first_layer_sums(x))
    assert want.v_out.shape == (SAMPLES, b.layers[-1].n_out)
    for layer in b.layers:
        assert want.spikes[layer.name].shape == (SAMPLES, b.timesteps, *layer.out_shape)
    text = emit.convert(Chip(plan), "sf_chip")
    assert not BAD_RANGE.search(text), BAD_RANGE.search(text).group(0)
    modules = set(re.findall(r"^module \\?(\S+?) ?\(", text, flags=re.MULTILINE))
    parts = {f"sf_chip.core{j}" for j in range(plan.n_cores)}
    if plan.feed == "pim":
        parts.add("sf_chip.periphery")
    assert parts <= modules, parts - modules
    path = tmp_path / "sf_chip.v"
    path.write_text(text)
    result = emit.lint(path, "sf_chip")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "%Warning" not in result.stderr


def test_cases_cover_the_edges(tmp_path):
    """The table holds every edge the hardware must build (a guard against trimming it)."""
    runs = [_case(k, tmp_path) for k in range(len(CASES))]
    bundles = [b for b, _, _ in runs]
    layers = [layer for b in bundles for layer in b.layers]
    convs = [layer for layer in layers if layer.kind == "conv2d"]
    assert {p.feed for _, _, p in runs} == {"pim", "sums", "spikes"}
    assert any(layer.n_in == 1 and layer.n_out == 1 for layer in layers)
    assert any(
        layer.weight.shape[:2] == (1, 1) and layer.weight.shape[2:] == (1, 1) for layer in convs
    )
    assert any(min(layer.stride) > max(layer.weight.shape[2:]) for layer in convs)
    assert any(min(layer.padding) >= max(layer.weight.shape[2:]) for layer in convs)
    assert any(layer.out_shape[1:] == (1, 1) and layer.weight.shape[2] > 1 for layer in convs)
    assert {b.timesteps for b in bundles} >= {1, 2}
    assert max(layer.input_shift for layer in layers) == 62
    assert {layer.w_bits for layer in layers} >= set(CORE_W_BITS)
    assert {layer.v_bits for layer in layers} >= set(CORE_V_BITS)
    direct = {(b.input.bits, b.input.signed) for b in bundles if b.input.encoding == "direct"}
    assert {(1, False), (1, True), (16, False), (16, True)} <= direct
    splits = [p for _, _, p in runs if any(len(st.slices) > 1 for st in p.stages)]
    assert {st.slices[0].kind for p in splits for st in p.stages if len(st.slices) > 1} == {
        "linear",
        "conv2d",
    }
    assert any(
        s.params.lanes > s.size or s.params.lanes > getattr(s.params, "out_channels", s.size)
        for _, _, p in runs
        for s in p.slices
    )


# -- simulation -------------------------------------------------------------------------------


def _simulate(ks, simulator: str, tmp_path: Path) -> tuple[int, int]:
    """One top with a chip per case in ``ks``; every value equals golden, every one counted."""
    runs = [_case(k, tmp_path) for k in ks]
    results = run_chips([(p, x) for _, x, p in runs], sim=simulator, build_dir=tmp_path)
    compared, spikes = check_chips(runs, results)[:2]
    expected = sum(
        x.shape[0] * (b.layers[-1].n_out + 1 + b.timesteps * sum(layer.n_out for layer in b.layers))
        for b, x, _ in runs
    )
    assert compared == expected
    return compared, spikes


def test_degenerate_chips_match_golden(simulator, tmp_path):
    """The default run's chips (``DEFAULT``): every feed, one neuron, a 1x1 conv, the
    extreme widths and a split layer, under the simulator."""
    _, spikes = _simulate(DEFAULT, simulator, tmp_path)
    assert spikes > 30


@pytest.mark.slow
def test_all_degenerate_chips_match_golden(simulator, tmp_path):
    """Every case of the table in one build (about four times the default run's)."""
    _, spikes = _simulate(range(len(CASES)), simulator, tmp_path)
    assert spikes > 100


def test_shifts_beyond_the_sums_are_cut_to_their_sign_bit():
    """A core shifts by at most its sums' width; the plan cuts a longer input_shift to the
    widest sum's sign bit, which the golden model shows gives the same integers."""
    rng = np.random.default_rng(6)
    hidden = linear("h", _w(rng, (3, 4), 5), w_bits=5, threshold=1, input_shift=62, bias=2)
    out = _out(rng, 3)
    out.input_shift = 33
    b = bundle([hidden, out], bits=6, signed=True, timesteps=3)
    plan = plan_chip(b, ChipOptions(feed="sums"))
    bound = int(np.abs(hidden.weight).sum(axis=1).max()) * 32
    want = [bound.bit_length(), int(np.abs(out.weight).sum()).bit_length()]
    assert [s.config.input_shift for s in plan.slices] == want
    x = random_input(b, 20, seed=6)
    cut = bundle(
        [replace(hidden, input_shift=want[0]), replace(out, input_shift=want[1])],
        bits=6,
        signed=True,
        timesteps=3,
    )
    same = golden.run(b, x).result_arrays()
    for key, value in golden.run(cut, x).result_arrays().items():
        assert np.array_equal(same[key], value), key


# -- refusals ---------------------------------------------------------------------------------


def _refused(b: Bundle, options: ChipOptions | None = None) -> str:
    with pytest.raises(ChipError) as info:
        plan_chip(b, options)
    message = str(info.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize(
    ("kind", "field", "value"),
    [
        ("linear", "w_bits", 9),
        ("linear", "w_bits", 16),
        ("conv2d", "w_bits", 9),
        ("linear", "v_bits", 7),
        ("linear", "v_bits", 2),
        ("conv2d", "v_bits", 25),
        ("conv2d", "v_bits", 32),
    ],
)
def test_widths_the_core_cannot_hold_are_refused(kind, field, value, tmp_path):
    """Bundle-valid widths outside the core's datapath: one ChipError line naming layer and
    field, for the first (LOAD-fed) layer and for a later one, before any elaboration."""
    rng = np.random.default_rng(3)
    kw = {field: value}
    kw.setdefault("w_bits", 4)
    kw.setdefault("v_bits", 16)
    limits = {"w_bits": "2..8", "v_bits": "8..24"}
    for position in (0, 1):
        if kind == "linear":
            layer = linear("bad", _w(rng, (2, 2), kw["w_bits"]), threshold=1, **kw)
            first = linear("h", _w(rng, (2, 2), 4), threshold=1, w_bits=4)
        else:
            layer = conv_layer(
                "bad", _w(rng, (1, 1, 1, 1), kw["w_bits"]), (1, 2, 2), threshold=1, **kw
            )
            first = conv_layer("h", _w(rng, (1, 1, 1, 1), 4), (1, 2, 2), threshold=1, w_bits=4)
        layers = [layer, _out(rng, layer.n_out)] if position == 0 else [first, layer]
        if position == 1:
            layers.append(_out(rng, layer.n_out))
        b = _saved(bundle(layers, bits=4), tmp_path / f"{kind}{position}")
        message = _refused(b)
        assert message.startswith(f"layer bad: {field} must be in {limits[field]}"), message


def test_sums_too_wide_for_a_load_are_refused(tmp_path):
    """16-bit codes times 8-bit weights over many inputs overflow the cores' LOAD values."""
    rng = np.random.default_rng(4)
    n_in = 1 << 8
    first = linear("wide", np.full((1, n_in), -128), w_bits=8, threshold=1)
    b = _saved(bundle([first, _out(rng, 1)], bits=16, signed=True), tmp_path / "b")
    message = _refused(b, ChipOptions(feed="sums"))
    assert message.startswith("layer wide: sums need") and "LOAD" in message
    assert _refused(b).startswith("layer wide:")


def test_a_core_too_small_for_one_channel_is_refused():
    rng = np.random.default_rng(5)
    conv = conv_layer(
        "c", _w(rng, (1, 1, 1, 1), 4), (1, 4, 4), stride=(2, 2), padding=(1, 1), w_bits=4
    )
    b = bundle([conv, _out(rng, conv.n_out)], encoding="spikes")
    assert _refused(b, ChipOptions(core=CoreSize(64, 1))).startswith("layer c:")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(degenerate_bundles(core_widths=False), st.sampled_from([1, 4, 16]))
def test_plan_refuses_exactly_the_widths_outside_the_core(b, lanes):
    """Over the bundle format's whole width range: a plan whenever every layer's widths are in
    the core's, else one ChipError line naming the first offending layer; the golden model runs
    either way."""
    golden.run(b, random_input(b, 2, seed=0))
    outside = [
        layer
        for layer in b.layers
        if not (CORE_W_BITS[0] <= layer.w_bits <= CORE_W_BITS[1])
        or not (CORE_V_BITS[0] <= layer.v_bits <= CORE_V_BITS[1])
    ]
    try:
        plan = plan_chip(b, ChipOptions(lanes=lanes))
    except ChipError as exc:
        message = str(exc)
        assert "\n" not in message
        assert outside or "LOAD" in message, message
        if outside:
            assert message.startswith(f"layer {outside[0].name}: "), message
        return
    assert not outside
    assert plan.n_cores >= len(b.layers)


# -- the slow sweep ---------------------------------------------------------------------------


@pytest.mark.slow
@settings(
    max_examples=4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.lists(degenerate_bundles(), min_size=6, max_size=6),
    st.sampled_from([1, 2, 16]),
    st.sampled_from(["auto", "sums"]),
)
def test_degenerate_sweep_matches_golden(simulator, bundles, lanes, feed):
    """Six drawn degenerate bundles per build, each refused up front or equal to golden."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        runs = []
        for k, b in enumerate(bundles):
            b = _saved(b, base / f"b{k}")
            x = golden.check_input(b, random_input(b, SAMPLES, seed=k))
            try:
                plan = plan_chip(b, ChipOptions(lanes=lanes, feed=feed))
            except ChipError as exc:
                assert "LOAD" in str(exc) and "\n" not in str(exc), str(exc)
                continue
            runs.append((b, x, plan))
        assert runs
        results = run_chips([(p, x) for _, x, p in runs], sim=simulator, build_dir=base)
        assert not BAD_RANGE.search((base / "sf_chip.v").read_text())
        compared, _ = check_chips(runs, results)[:2]
        assert compared >= len(runs) * SAMPLES
