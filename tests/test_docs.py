"""The worked examples of docs/semantics.md and docs/bundle.md, computed by the code itself."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
from spikeforge.sim import golden
from spikeforge.sim.bundle import BundleError, Layer, bundle_from_manifest, load_bundle
from spikeforge.sim.semantics import Leak, neuron_step, saturate

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DIGITS = ROOT / "tests" / "pim" / "data" / "digits"


def test_semantics_arithmetic_examples() -> None:
    assert [-1 >> 1, -5 >> 2, -301 >> 2] == [-1, -2, -76]
    assert [saturate(147, 8), saturate(-148, 8)] == [127, -128]
    mult = Leak("mult", lam=230, frac=8).apply(np.array([3, 100, -3, -100]))
    shift = Leak("shift", k=3).apply(np.array([100, -100, 7, -7, -1]))
    assert mult.tolist() == [2, 89, -3, -90]
    assert shift.tolist() == [88, -87, 7, -6, 0]


def test_semantics_worked_step_table() -> None:
    """The four-step table: v_bits 8, theta 50, lam 192/256, sub reset, a = (81 >> 1) + 2."""
    leak = Leak("mult", lam=192, frac=8)
    v, a = np.zeros(1, np.int64), np.array([(81 >> 1) + 2])
    assert a[0] == 42
    trace = []
    for _ in range(4):
        v, spike = neuron_step(v, a, 50, leak, "sub", "lif", 8)
        trace.append((int(spike[0]), int(v[0])))
    assert trace == [(0, 42), (1, 23), (1, 9), (0, 48)]


@pytest.mark.parametrize(("reset", "expected"), [("sub", 27), ("zero", 0), ("none", 127)])
def test_semantics_reset_and_saturation_examples(reset: str, expected: int) -> None:
    v, spike = neuron_step(np.array([120]), np.array([20]), 100, Leak(), reset, "lif", 8)
    assert (int(spike[0]), int(v[0])) == (1, expected)
    v, spike = neuron_step(np.array([-120]), np.array([-20]), 100, Leak(), reset, "lif", 8)
    assert (int(spike[0]), int(v[0])) == (0, -128)
    v, spike = neuron_step(np.array([120]), np.array([20]), 100, Leak(), reset, "accum", 8)
    assert (int(spike[0]), int(v[0])) == (0, 127)


def test_semantics_conv_flatten_and_argmax_examples() -> None:
    layer = Layer(
        name="c",
        kind="conv2d",
        weight=np.array([[[[1, 0], [0, -1]]]]),
        in_shape=(1, 3, 3),
        w_bits=4,
        v_bits=8,
        threshold=1,
    )
    x = np.arange(1, 10).reshape(1, 1, 3, 3)
    s = golden.synaptic_input(layer, x, "int64")
    assert layer.out_shape == (1, 2, 2)
    assert s.tolist() == [[-4, -4, -4, -4]]
    assert np.ravel_multi_index((1, 0, 2), (2, 3, 3)) == 11
    assert int(np.argmax(np.array([3, 7, 7, -2]))) == 1


def _json_blocks(name: str) -> list:
    text = (DOCS / name).read_text()
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_bundle_doc_examples_load() -> None:
    manifest, conv = _json_blocks("bundle.md")
    digits = load_bundle(DIGITS)
    arrays = {f"{layer.name}.weight": layer.weight for layer in digits.layers}
    bundle = bundle_from_manifest(manifest, arrays)
    assert [layer.n_out for layer in bundle.layers] == [256, 128, 10]
    assert json.loads((DIGITS / "manifest.json").read_text())["layers"] == manifest["layers"]
    spikes_in = {"shape": [16, 14, 14], "encoding": "spikes"}
    out = {
        "name": "out", "kind": "linear", "in_features": 32 * 7 * 7, "out_features": 3,
        "weight": "o", "w_bits": 6, "v_bits": 16, "leak": {"mode": "none"},
        "reset": "none", "fire": "accum",
    }  # fmt: skip
    two = {"format": "spikeforge.bundle", "version": 1, "timesteps": 2, "input": spikes_in}
    conv_arrays = {
        "conv2.weight": np.zeros((32, 16, 3, 3), np.int8),
        "conv2.threshold": np.ones((32, 7, 7), np.int16),
        "o": np.zeros((3, 32 * 49), np.int64),
    }
    layer = bundle_from_manifest(two | {"layers": [conv, out]}, conv_arrays).layers[0]
    assert layer.out_shape == (32, 7, 7)
    assert layer.theta_vector().size == 32 * 49


def test_bundle_doc_error_messages() -> None:
    """The three example messages of docs/bundle.md section 3 are the loader's own."""
    text = (DOCS / "bundle.md").read_text()
    (manifest, _) = _json_blocks("bundle.md")
    digits = load_bundle(DIGITS)
    arrays = {f"{layer.name}.weight": layer.weight for layer in digits.layers}
    bad_lam = copy.deepcopy(manifest)
    bad_lam["layers"][1]["leak"]["lam"] = 257
    bad_encoding = copy.deepcopy(manifest)
    bad_encoding["input"]["encoding"] = "rate"
    bad_weights = dict(arrays)
    bad_weights["fc1.weight"] = arrays["fc1.weight"].copy()
    bad_weights["fc1.weight"][0, :2] = [-40, 33]
    cases = [(bad_lam, arrays), (bad_encoding, arrays), (manifest, bad_weights)]
    for case, case_arrays in cases:
        with pytest.raises(BundleError) as info:
            bundle_from_manifest(case, case_arrays)
        assert str(info.value) in text
    assert len(cases) == 3
