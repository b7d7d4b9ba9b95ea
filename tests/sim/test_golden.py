"""The golden model pinned by hand-computed cases, torch's conv2d and an independent oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, validate
from spikeforge.sim.semantics import Leak, neuron_step, signed_range

from tests.sim.builders import bundle, conv, linear, random_bundles, random_input
from tests.sim.plain_model import plain_run


def one_neuron_accum(
    weight: int,
    *,
    leak: Leak,
    timesteps: int,
    v_bits: int = 16,
    input_shift: int = 0,
    signed: bool = True,
) -> Bundle:
    return bundle(
        [
            linear(
                "out", [[weight]], fire="accum", leak=leak, v_bits=v_bits, input_shift=input_shift
            )
        ],
        timesteps=timesteps,
        signed=signed,
    )


def v_trace(b: Bundle, x) -> list[int]:
    result = golden.run(b, np.array([x]), record_potentials=True)
    return result.potentials[b.layers[-1].name][0, :, 0].tolist()


# --- hand-computed semantics ---------------------------------------------------------------


def test_mult_leak_floors_negative_potentials():
    # v: -5; leak (-5*128)>>8 = floor(-2.5) = -3, so -3-5 = -8; then floor(-4) -5 = -9 ...
    b = one_neuron_accum(1, leak=Leak("mult", lam=128, frac=8), timesteps=4)
    assert v_trace(b, [-5]) == [-5, -8, -9, -10]  # truncation would give -5, -7, -8, -9


def test_shift_leak_floors_negative_potentials():
    # v - (v >> 1): -5 - floor(-2.5) = -5 + 3 = -2; -2 - 5 = -7; -7 + 4 - 5 = -8
    b = one_neuron_accum(1, leak=Leak("shift", k=1), timesteps=3)
    assert v_trace(b, [-5]) == [-5, -7, -8]


def test_mult_leak_on_positive_potentials_and_no_leak_at_full_lambda():
    b = one_neuron_accum(1, leak=Leak("mult", lam=230, frac=8), timesteps=3)
    assert v_trace(b, [100]) == [100, 189, 269]  # 100*230>>8 = 89; 189*230>>8 = 169
    b = one_neuron_accum(1, leak=Leak("mult", lam=256, frac=8), timesteps=3)
    assert v_trace(b, [7]) == [7, 14, 21]


def test_saturation_clamps_at_both_ends_and_never_wraps():
    up = one_neuron_accum(100, leak=Leak("none"), timesteps=4, v_bits=8, signed=False)
    assert v_trace(up, [1]) == [100, 127, 127, 127]
    down = one_neuron_accum(-100, leak=Leak("none"), timesteps=4, v_bits=8, signed=False)
    assert v_trace(down, [1]) == [-100, -128, -128, -128]
    # saturation is applied after the leak: -128 leaks to -64, then -64-100 = -164 -> -128
    leaky = one_neuron_accum(-100, leak=Leak("shift", k=1), timesteps=3, v_bits=8, signed=False)
    assert v_trace(leaky, [1]) == [-100, -128, -128]


def two_layer(weight: int, theta: int, reset: str, timesteps: int) -> Bundle:
    return bundle(
        [
            linear("hid", [[weight]], threshold=theta, reset=reset),
            linear("out", [[1]], fire="accum"),
        ],
        timesteps=timesteps,
    )


def test_comparator_fires_exactly_at_theta():
    at = golden.run(two_layer(5, 5, "sub", 1), np.array([[1]]))
    below = golden.run(two_layer(5, 6, "sub", 1), np.array([[1]]))
    assert at.spikes["hid"].ravel().tolist() == [1]
    assert below.spikes["hid"].ravel().tolist() == [0]


@pytest.mark.parametrize(
    ("reset", "expected"),
    [("sub", [2, 4, 6]), ("zero", [0, 0, 0]), ("none", [5, 10, 15])],
)
def test_reset_modes(reset, expected):
    # theta 3, input 5 every step: sub keeps u - 3, zero drops to 0, none keeps u
    b = two_layer(5, 3, reset, 3)
    result = golden.run(b, np.array([[1]]), record_potentials=True)
    assert result.potentials["hid"][0, :, 0].tolist() == expected
    assert result.spikes["hid"][0, :, 0].tolist() == [1, 1, 1]
    assert result.v_out[0].tolist() == [3]  # the accum layer counted the three spikes


def test_accum_layer_never_spikes_and_its_v_is_the_output():
    b = bundle(
        [
            linear("hid", [[3], [1]], threshold=2),
            linear("out", [[2, -1], [0, 1]], fire="accum", threshold=1),
        ],
        timesteps=2,
    )
    result = golden.run(b, np.array([[1], [0]]))
    assert result.spikes["out"].sum() == 0
    # hid: neuron0 u=3 fires (v=1), then u=4 fires; neuron1 u=1, then u=2 fires
    assert result.spikes["hid"][0].tolist() == [[1, 0], [1, 1]]
    assert result.v_out.tolist() == [[2 + 1, 0 + 1], [0, 0]]
    assert result.pred.tolist() == [0, 0]


def test_input_shift_floors_negative_sums():
    b = one_neuron_accum(1, leak=Leak("none"), timesteps=1, input_shift=1)
    assert v_trace(b, [-5]) == [-3]  # floor(-5/2), not -2
    assert v_trace(b, [5]) == [2]


def test_bias_and_per_neuron_thresholds():
    hid = linear("hid", [[1], [1], [1]], threshold=np.array([1, 2, 3]), bias=np.array([0, 0, -1]))
    b = bundle([hid, linear("out", np.eye(3, dtype=int), fire="accum")], timesteps=1)
    result = golden.run(b, np.array([[2]]))
    assert result.spikes["hid"][0, 0].tolist() == [1, 1, 0]


def test_argmax_ties_pick_the_lowest_index():
    b = bundle([linear("out", [[1], [3], [3], [2]], fire="accum")])
    assert golden.run(b, np.array([[1], [0]])).pred.tolist() == [1, 0]


@pytest.mark.parametrize(
    ("stride", "padding"), [((1, 1), (0, 0)), ((2, 2), (1, 1)), ((2, 1), (1, 0)), ((3, 2), (2, 1))]
)
def test_conv_matches_torch_conv2d(stride, padding):
    rng = np.random.default_rng(7)
    weight = rng.integers(-32, 32, size=(4, 3, 3, 2))
    x = rng.integers(-128, 128, size=(5, 3, 9, 8))
    layer = conv("c", weight, (3, 9, 8), w_bits=6, v_bits=24, fire="accum", stride=stride,
                 padding=padding)  # fmt: skip
    b = validate(Bundle(timesteps=1, input=InputSpec((3, 9, 8), "direct", 8, True), layers=[layer]))
    expected = (
        torch.nn.functional.conv2d(
            torch.from_numpy(x).double(),
            torch.from_numpy(weight).double(),
            stride=stride,
            padding=padding,
        )
        .long()
        .numpy()
    )
    result = golden.run(b, x)
    assert result.v_out.shape == (5, expected[0].size)
    assert np.array_equal(result.v_out, expected.reshape(5, -1))


def test_linear_after_conv_reads_chw_order():
    weight = np.arange(8).reshape(2, 1, 2, 2) - 4
    layer = conv("c", weight, (1, 3, 3), w_bits=8, v_bits=16, threshold=1, reset="zero")
    fc = linear("fc", np.eye(8, dtype=int), fire="accum")
    b = validate(
        Bundle(timesteps=1, input=InputSpec((1, 3, 3), "direct", 4, False), layers=[layer, fc])
    )
    x = np.arange(9).reshape(1, 1, 3, 3) % 3
    result = golden.run(b, x)
    assert np.array_equal(result.v_out[0], result.spikes["c"][0, 0].reshape(-1))
    assert result.spikes["c"].shape == (1, 1, 2, 2, 2)


def test_counters():
    hid = linear("hid", [[1, 0, 2], [0, 0, 1]], threshold=1)
    b = bundle([hid, linear("out", [[1, 1]], fire="accum")], timesteps=2, bits=4)
    result = golden.run(b, np.array([[3, 5, 0], [0, 1, 1]]))
    c = result.counters
    # events per step: sample0 inputs 0,1 ; sample1 inputs 1,2 -> 4 per step, 8 over 2 steps
    assert c["hid"].input_events == 8
    # fan-out (non-zero weights): input0 -> 1, input1 -> 0, input2 -> 2; per step 1+0+0+2 = 3
    assert c["hid"].synaptic_ops == 6 and c["hid"].mac_ops == 6
    assert c["hid"].accumulate_ops == 0
    assert c["hid"].neuron_updates == 2 * 2 * 2
    assert c["out"].input_events == c["hid"].output_spikes == int(result.spikes["hid"].sum())
    assert c["out"].accumulate_ops == c["out"].synaptic_ops == c["out"].input_events
    assert c["out"].output_spikes == 0


# --- the fast path against the plain oracle ------------------------------------------------


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=random_bundles(), seed=st.integers(0, 2**31), shuffle=st.integers(0, 2**31))
def test_golden_equals_plain_integer_oracle(b, seed, shuffle):
    b = validate(b)
    x = random_input(b, 3, seed)
    result = golden.run(b, x, chunk=2)  # chunking must not change anything either
    spikes, v_out, pred = plain_run(b, x, shuffle_seed=shuffle)
    compared = 0
    for layer in b.layers:
        got = result.spikes[layer.name].reshape(3, b.timesteps, -1)
        assert np.array_equal(got, spikes[layer.name]), layer.name
        compared += got.size
    assert np.array_equal(result.v_out, v_out)
    assert np.array_equal(result.pred, pred)
    assert compared > 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(b=random_bundles(), seeds=st.lists(st.integers(0, 2**31), min_size=3, max_size=3))
def test_prepared_model_reused_across_runs_equals_fresh_runs(b, seeds):
    """``Model`` reuses work buffers between runs: earlier results must stay intact and equal."""
    b = validate(b)
    model = golden.Model(b)
    inputs = [random_input(b, n, seed) for n, seed in zip((3, 3, 5), seeds, strict=True)]
    results = [model.run(x, record_potentials=True) for x in inputs]
    compared = 0
    for x, got in zip(inputs, results, strict=True):
        want = plain_run(b, x)
        for layer in b.layers:
            spikes = got.spikes[layer.name].reshape(x.shape[0], b.timesteps, -1)
            assert np.array_equal(spikes, want[0][layer.name]), layer.name
            compared += spikes.size
        assert np.array_equal(got.v_out, want[1])
        assert np.array_equal(
            got.potentials[b.layers[-1].name][:, -1].reshape(got.v_out.shape), got.v_out
        )
    assert compared > 0


@pytest.mark.parametrize("leak", [Leak("mult", lam=200, frac=8), Leak("shift", k=3), Leak()])
@pytest.mark.parametrize("reset", ["sub", "zero", "none"])
@pytest.mark.parametrize("fire", ["lif", "accum"])
def test_neuron_step_in_place_equals_allocating_form(leak, reset, fire):
    rng = np.random.default_rng(7)
    v = rng.integers(-40000, 40000, size=(64, 50)).astype(np.int64)
    v = np.clip(v, *signed_range(16))
    a = rng.integers(-3000, 3000, size=(64, 50))
    theta = rng.integers(1, 2000, size=50)
    want_v, want_s = neuron_step(v, a, theta, leak, reset, fire, 16)
    out, spike_out = v.copy(), np.ones((64, 50), dtype=bool)
    got_v, got_s = neuron_step(out, a, theta, leak, reset, fire, 16, out=out, spike_out=spike_out)
    assert got_v is out
    assert np.array_equal(got_v, want_v)
    assert np.array_equal(got_s, want_s)
    assert got_s.dtype == np.uint8
    assert (fire == "lif") == bool(want_s.any())


@settings(max_examples=40, deadline=None)
@given(
    b=random_bundles(max_layers=2),
    seed=st.integers(0, 2**31),
    orders=st.lists(st.integers(0, 2**31), min_size=2, max_size=2),
)
def test_event_order_within_a_step_changes_nothing(b, seed, orders):
    b = validate(b)
    x = random_input(b, 2, seed)
    first, second = (plain_run(b, x, shuffle_seed=o) for o in orders)
    for layer in b.layers:
        assert np.array_equal(first[0][layer.name], second[0][layer.name])
    assert np.array_equal(first[1], second[1])


def extreme_layer(weights: list[int]) -> Bundle:
    out = linear("out", [weights], fire="accum", w_bits=16, v_bits=32)
    return validate(bundle([out], bits=9, signed=True))


def test_engine_at_the_float32_bound_is_exact():
    b = extreme_layer([-32768, -32768])  # |W|·max|x| = 65536·256 = 2^24 exactly
    assert golden.sum_bound(b.layers[0].weight, 256) == 2**24
    x = np.array([[-256, -256], [255, -256], [-255, 255], [1, -1]])
    result = golden.run(b, x)
    assert result.engines == {"out": "float32"}
    assert result.v_out[:, 0].tolist() == [2**24, 32768, 0, 0]


def test_engine_above_the_float32_bound_falls_back_and_stays_exact():
    b = extreme_layer([-32768, -32768, 1])  # bound 2^24 + 256: float32 no longer safe
    x = np.array([[-256, -256, 255], [-256, -256, 1], [-256, -256, -1]])
    result = golden.run(b, x)
    assert result.engines == {"out": "float64"}
    expected = [2**24 + 255, 2**24 + 1, 2**24 - 1]  # 2^24 + 1 is not a float32
    assert result.v_out[:, 0].tolist() == expected
    assert float(np.float32(2**24 + 1)) != 2**24 + 1
    assert plain_run(b, x)[1][:, 0].tolist() == expected


def test_exact_engine_thresholds():
    assert golden.exact_engine(2**24) == "float32"
    assert golden.exact_engine(2**24 + 1) == "float64"
    assert golden.exact_engine(2**53) == "float64"
    assert golden.exact_engine(2**53 + 1) == "int64"
    with pytest.raises(OverflowError):
        golden.exact_engine(2**63)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31), n_in=st.integers(1, 6))
def test_random_near_bound_bundles_equal_oracle(seed, n_in):
    """Weights and inputs at their extremes, with the bound straddling 2^24."""
    rng = np.random.default_rng(seed)
    lo, hi = signed_range(16)
    weight = rng.choice([lo, hi, lo + 1, hi - 1], size=(3, n_in))
    b = validate(
        bundle([linear("out", weight, fire="accum", w_bits=16, v_bits=32)], bits=9, signed=True)
    )
    x = rng.choice([-256, 255, -255, 254], size=(4, n_in))
    result = golden.run(b, x)
    assert result.engines["out"] == (
        "float32" if golden.sum_bound(weight, 256) <= 2**24 else "float64"
    )
    assert np.array_equal(result.v_out, plain_run(b, x)[1])


# --- input validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.zeros((2, 3), np.float32), "integers"),
        (np.zeros((2, 4), np.int64), "shape"),
        (np.zeros((0, 3), np.int64), "no samples"),
        (np.full((1, 3), 256), "outside"),
        (np.full((1, 3), -1), "outside"),
    ],
)
def test_bad_inputs_are_refused(x, match):
    b = bundle([linear("out", np.ones((2, 3), int), fire="accum")], bits=8)
    with pytest.raises(golden.InputError, match=match):
        golden.run(b, x)


def test_spike_inputs_must_be_binary_trains_of_t_steps():
    b = bundle([linear("out", np.ones((2, 3), int), fire="accum")], encoding="spikes", timesteps=2)
    with pytest.raises(golden.InputError, match="0/1"):
        golden.run(b, np.full((1, 2, 3), 2))
    with pytest.raises(golden.InputError, match="T=2"):
        golden.run(b, np.zeros((1, 3, 3), int))
    assert golden.run(b, np.ones((1, 2, 3), bool)).v_out.tolist() == [[6, 6]]
