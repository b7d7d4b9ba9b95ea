"""Non-idealities: all off by default, each one seeded and reproducible."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from spikeforge.pim.model import PimConfig, PimLayer, pim_first_layer
from spikeforge.pim.nonideal import KNOBS, NonIdeal, cell_factors, inl_curve
from spikeforge.sim import golden

from tests.pim.builders import digits_like, random_codes

#: A clearly visible setting of each knob.
SETTINGS = {
    "dac_alpha": 0.9,
    "cell_sigma": 0.05,
    "bitline_sat": 0.5,
    "read_noise": 0.01,
    "adc_gain": 0.05,
    "adc_offset": 0.7,
    "adc_gain_sigma": 0.05,
    "adc_offset_sigma": 0.7,
    "adc_inl": 2.0,
}
RANDOM = {"cell_sigma", "read_noise", "adc_gain_sigma", "adc_offset_sigma", "adc_inl"}


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(20)
    b = digits_like(rng, conv_first=False)
    x = random_codes(b, 32, rng)
    return b, x, golden.synaptic_input(b.layers[0], x, "int64")


def test_defaults_are_ideal() -> None:
    assert NonIdeal().ideal and PimConfig().nonideal.ideal and NonIdeal().ideal_adc
    assert set(KNOBS) == set(SETTINGS)
    assert all(
        not NonIdeal(seed=s).with_(**{k: v}).ideal for s in (0, 3) for k, v in SETTINGS.items()
    )
    assert NonIdeal(seed=99).ideal  # the seed alone changes nothing


@pytest.mark.parametrize("knob", sorted(SETTINGS))
def test_each_knob_is_seeded_and_reproducible(case, knob: str) -> None:
    b, x, want = case
    knobs = NonIdeal(seed=4).with_(**{knob: SETTINGS[knob]})
    config = PimConfig(adc_bits=11, nonideal=knobs)
    first = pim_first_layer(b, x, config).sums
    again = pim_first_layer(b, x, config).sums
    assert np.array_equal(first, again) and first.size == 32 * 64
    assert not np.array_equal(first, want)  # the knob has an effect
    ideal = pim_first_layer(b, x, PimConfig(adc_bits=11)).sums
    assert np.array_equal(ideal, want)  # 11 bits is lossless here: 64 rows x 31 levels
    other = pim_first_layer(b, x, dataclasses.replace(config, nonideal=knobs.with_(seed=5))).sums
    if knob in RANDOM:
        assert not np.array_equal(first, other)
    else:
        assert np.array_equal(first, other)  # deterministic knobs do not use the seed


def test_read_noise_is_fresh_per_conversion_but_repeatable_per_call(case) -> None:
    b, x, _ = case
    pim = PimLayer(b.layers[0], b.input, PimConfig(nonideal=NonIdeal(read_noise=0.01)))
    twice = pim(np.concatenate([x[:1], x[:1]])).sums
    assert not np.array_equal(twice[0], twice[1])  # same input, two conversions
    assert np.array_equal(pim(x).sums, pim(x).sums)


def test_error_grows_with_each_knob(case) -> None:
    b, x, want = case
    compared = 0
    for knob, value in SETTINGS.items():
        base = NonIdeal().with_(**{knob: value})
        half = NonIdeal().with_(**{knob: KNOBS[knob] + (value - KNOBS[knob]) / 4})
        err = [
            np.abs(pim_first_layer(b, x, PimConfig(nonideal=k)).sums - want).mean()
            for k in (half, base)
        ]
        if knob == "bitline_sat":  # smaller c_sat saturates harder
            err.reverse()
        assert err[0] < err[1], knob
        compared += 1
    assert compared == len(SETTINGS)


def test_knobs_draw_from_independent_streams() -> None:
    a = cell_factors(NonIdeal(seed=1, cell_sigma=0.1), (5, 4, 3))
    b = cell_factors(NonIdeal(seed=1, cell_sigma=0.1, adc_inl=1.0, read_noise=0.1), (5, 4, 3))
    assert a is not None and b is not None and np.array_equal(a, b)
    curve = inl_curve(NonIdeal(seed=2, adc_inl=1.5), np.linspace(0, 1, 4001))
    assert curve is not None
    assert abs(np.abs(curve).max() - 1.5) < 0.01 and abs(curve[0]) < 1e-9 and abs(curve[-1]) < 1e-9


@pytest.mark.parametrize(
    "bad", [{"cell_sigma": -0.1}, {"read_noise": float("nan")}, {"dac_alpha": 0}, {"seed": -1}]
)
def test_invalid_knobs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        NonIdeal(**bad)
