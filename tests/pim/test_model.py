"""Ideal PIM == exact integer dot product: bit planes, ADC bounds, the golden hook."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spikeforge.pim.adc import adc_spec, convert, convert_exact, lossless_bits
from spikeforge.pim.array import ArrayGeometry, MappingError, bit_planes, column_weights, map_layer
from spikeforge.pim.model import PimConfig, PimLayer, pim_first_layer
from spikeforge.sim import golden
from spikeforge.sim.semantics import signed_range

from tests.pim.builders import conv, digits_like, random_codes, two_layer
from tests.sim.builders import linear, random_bundles, random_input
from tests.sim.same_spikes import compare_spikes


def exact(b, x) -> np.ndarray:
    return golden.synaptic_input(b.layers[0], golden.check_input(b, x), "int64")


def test_bit_planes_recompose_two_complement() -> None:
    w = np.arange(-32, 32).reshape(8, 8)
    planes = bit_planes(w, 6)
    assert planes.shape == (8, 8, 6) and set(np.unique(planes)) <= {0, 1}
    assert np.array_equal(planes.astype(np.int64) @ column_weights(6), w)


def test_lossless_bits() -> None:
    assert lossless_bits(0, 27 * 255) == 13  # CNN-3D layer 1: 27 rows of 8-bit levels
    assert lossless_bits(0, 64 * 255) == 14
    assert lossless_bits(-128, 127) == 8 and lossless_bits(-129, 127) == 9
    assert lossless_bits(0, 0) == 1


def test_float_conversion_matches_integer_conversion() -> None:
    rng = np.random.default_rng(1)
    c = rng.integers(0, 6000, size=5000)
    for bits in range(4, 15):
        spec = adc_spec(bits, 0, 5999)
        assert np.array_equal(convert(c, spec), convert_exact(c, spec))
    c = rng.integers(-6000, 6000, size=5000)
    for bits in range(4, 15):
        spec = adc_spec(bits, -6000, 5999)
        assert np.array_equal(convert(c, spec), convert_exact(c, spec))


@pytest.mark.parametrize("combine", ["digital", "analog"])
@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("rows_active", [1, 7, 64])
def test_ideal_linear_equals_matmul(combine: str, signed: bool, rows_active: int) -> None:
    rng = np.random.default_rng(rows_active + 2 * signed)
    compared = 0
    for w_bits, bits, k in [(2, 1, 5), (6, 8, 150), (8, 8, 64), (4, 12, 33), (7, 3, 100)]:
        lo, hi = signed_range(w_bits)
        first = linear("fc1", rng.integers(lo, hi + 1, size=(40, k)), w_bits=w_bits)
        b = two_layer(first, rng, bits=bits, signed=signed and bits > 1)
        x = random_codes(b, 30, rng)
        geometry = ArrayGeometry(rows_active=rows_active)
        got = pim_first_layer(b, x, PimConfig(combine=combine, geometry=geometry)).sums
        want = exact(b, x)
        assert np.array_equal(got, want)
        compared += want.size
    assert compared == 5 * 30 * 40


@pytest.mark.parametrize("combine", ["digital", "analog"])
def test_ideal_conv_equals_conv(combine: str) -> None:
    rng = np.random.default_rng(5)
    compared = 0
    cases = [
        ((3, 6, 7), (4, 3, 3, 3), (1, 1), (0, 0)),  # CNN-3D layer 1: K = 27
        ((18, 5, 5), (6, 18, 3, 3), (1, 1), (0, 0)),  # CNN-32H layer 1: K = 162
        ((2, 9, 8), (5, 2, 3, 2), (2, 1), (1, 1)),
        ((1, 8, 8), (8, 1, 3, 3), (2, 2), (1, 1)),
    ]
    for signed in (False, True):
        for in_shape, w_shape, stride, padding in cases:
            w = rng.integers(-32, 32, size=w_shape)
            first = conv("c1", w, in_shape, stride=stride, padding=padding, w_bits=6)
            b = two_layer(first, rng, bits=8, signed=signed)
            x = random_codes(b, 12, rng)
            got = pim_first_layer(b, x, PimConfig(combine=combine)).sums
            want = exact(b, x)
            assert got.shape == want.shape and np.array_equal(got, want)
            compared += want.size
    assert compared == 2 * 12 * (4 * 4 * 5 + 6 * 3 * 3 + 5 * 5 * 9 + 8 * 4 * 4)


@settings(max_examples=40, deadline=None)
@given(random_bundles(max_layers=2), st.integers(0, 2**16), st.sampled_from([1, 3, 64]))
def test_ideal_equals_golden_first_layer_on_random_bundles(b, seed, rows_active) -> None:
    x = random_input(b, 4, seed)
    config = PimConfig(geometry=ArrayGeometry(rows_active=rows_active))
    got = pim_first_layer(b, x, config).sums
    want = golden.synaptic_input(b.layers[0], x.reshape(-1, *b.layers[0].in_shape), "int64")
    assert got.size == want.size > 0
    assert np.array_equal(got.reshape(want.shape), want)


def test_adc_lossless_bound_exact_and_one_bit_below_differs() -> None:
    rng = np.random.default_rng(7)
    first = linear("fc1", rng.integers(-32, 32, size=(20, 27)), w_bits=6)
    b = two_layer(first, rng, bits=8, signed=True)
    pim = PimLayer(first, b.input, PimConfig())
    bound = pim.adc.bits
    assert bound == lossless_bits(0, 27 * 255) == 13 and pim.adc.shift == 0
    x = random_codes(b, 200, rng)
    want = exact(b, x)
    at_bound = pim_first_layer(b, x, PimConfig(adc_bits=bound)).sums
    assert np.array_equal(at_bound, want)
    assert not np.array_equal(pim_first_layer(b, x, PimConfig(adc_bits=bound - 1)).sums, want)
    # Constructed case: one cell on, driven by one level (offset binary: x = -127 is level 1).
    w = np.zeros((1, 27), dtype=np.int64)
    w[0, 0] = 1
    lone = linear("fc1", w, w_bits=6)
    b1 = two_layer(lone, rng, bits=8, signed=True)
    x1 = np.full((1, 27), -128)
    x1[0, 0] = -127
    ideal = pim_first_layer(b1, x1, PimConfig(adc_bits=bound)).sums
    lossy = pim_first_layer(b1, x1, PimConfig(adc_bits=bound - 1)).sums
    assert ideal[0, 0] == -127 and lossy[0, 0] != -127


def test_adc_bits_sweep_error_shrinks_to_zero() -> None:
    rng = np.random.default_rng(8)
    b = digits_like(rng)
    x = random_codes(b, 40, rng)
    want = exact(b, x)
    errors = []
    for bits in range(4, 13):
        got = pim_first_layer(b, x, PimConfig(adc_bits=bits)).sums
        errors.append(float(np.abs(got - want).mean()))
    assert errors[-1] == 0 and errors[0] > errors[3] > 0
    assert len(errors) == 9


def test_codes_and_recombine_reproduce_sums() -> None:
    rng = np.random.default_rng(9)
    b = digits_like(rng)
    x = random_codes(b, 10, rng)
    for combine in ("digital", "analog"):
        config = PimConfig(adc_bits=6, combine=combine)
        pim = PimLayer(b.layers[0], b.input, config)
        result = pim(x, keep_codes=True)
        assert result.codes is not None
        assert result.codes.shape[:4] == (10, 16, 1, 8)
        lo, hi = pim.adc.code_range
        assert result.codes.min() >= lo and result.codes.max() <= hi
        y = pim.recombine(result.codes).transpose(0, 2, 1).reshape(10, -1)
        assert np.array_equal(y, result.sums)


def test_golden_with_ideal_pim_first_layer_equals_golden() -> None:
    rng = np.random.default_rng(10)
    compared = 0
    for conv_first in (True, False):
        b = digits_like(rng, conv_first=conv_first)
        x = random_codes(b, 64, rng)
        plain = golden.run(b, x)
        sums = pim_first_layer(b, x).sums
        with_pim = golden.run(b, x, first_layer_sums=sums, chunk=16)
        assert with_pim.engines[b.layers[0].name] == "given"
        compared += compare_spikes(with_pim, plain)
        assert plain.counters == with_pim.counters
        assert plain.spikes[b.layers[0].name].sum() > 0
    assert compared == 64 * 5 * (8 * 4 * 4 + 10) + 64 * 5 * (64 + 10)


def test_golden_hook_with_spike_inputs_and_bad_shapes() -> None:
    rng = np.random.default_rng(11)
    first = linear("fc1", rng.integers(-8, 8, size=(12, 9)), w_bits=4, threshold=3)
    b = two_layer(first, rng, bits=1, t=4)
    b.input = type(b.input)(shape=(9,), encoding="spikes", bits=1)
    x = rng.integers(0, 2, size=(7, 4, 9))
    sums = pim_first_layer(b, x).sums
    assert sums.shape == (7, 4, 12)
    plain, hooked = golden.run(b, x), golden.run(b, x, first_layer_sums=sums)
    assert np.array_equal(plain.spikes["fc1"], hooked.spikes["fc1"])
    assert np.array_equal(plain.v_out, hooked.v_out)
    with pytest.raises(golden.InputError, match="first_layer_sums"):
        golden.run(b, x, first_layer_sums=sums[:, 0])
    with pytest.raises(golden.InputError, match="first_layer_sums"):
        golden.run(b, x, first_layer_sums=sums.astype(float))


def test_mapping_counts_and_refusals() -> None:
    rng = np.random.default_rng(12)
    m = map_layer(conv("c1", rng.integers(-32, 32, size=(20, 3, 3, 3)), (3, 5, 200), w_bits=6))
    assert (m.k, m.channels, m.positions, m.n_groups, m.column_tiles) == (27, 20, 3 * 198, 1, 1)
    assert m.slots_per_bank == 42 and m.columns_used == 120
    big = linear("fc1", rng.integers(-2, 2, size=(400, 150)), w_bits=6)
    m = map_layer(big)  # 168 channels per tile -> 3 tiles of 150 rows
    assert (m.column_tiles, m.rows_used, m.group_sizes) == (3, 450, (64, 64, 22))
    with pytest.raises(MappingError, match="needs 600 rows"):
        map_layer(linear("fc1", rng.integers(-2, 2, size=(400, 200)), w_bits=6))
    with pytest.raises(MappingError, match="columns"):
        map_layer(big, ArrayGeometry(n_cols=4))
    with pytest.raises(ValueError, match="adc_bits"):
        PimLayer(big, two_layer(big, rng).input, PimConfig(adc_bits=0))
