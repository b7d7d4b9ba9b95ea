"""The bundle format: round trips, atomic writes, and one clear error per malformed field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from spikeforge.sim import bundle as bundle_io
from spikeforge.sim.bundle import Bundle, BundleError, InputSpec, load_bundle, save_bundle
from spikeforge.sim.semantics import Leak

from tests.sim.builders import conv, linear


def reference_bundle() -> Bundle:
    rng = np.random.default_rng(0)
    conv1 = conv(
        "conv1",
        rng.integers(-32, 32, size=(4, 1, 3, 3)),
        (1, 8, 8),
        w_bits=6,
        v_bits=16,
        threshold=rng.integers(1, 99, 64),
        leak=Leak("shift", k=3),
        reset="zero",
        stride=(2, 2),
        padding=(1, 1),
    )
    fc = linear(
        "fc1",
        rng.integers(-32, 32, size=(10, 64)),
        w_bits=6,
        v_bits=16,
        threshold=97,
        leak=Leak("mult", lam=230, frac=8),
        reset="sub",
        input_shift=2,
        bias=rng.integers(-5, 5, 10),
    )
    out = linear("out", rng.integers(-32, 32, size=(3, 10)), w_bits=6, v_bits=16, fire="accum")
    return Bundle(
        timesteps=5,
        input=InputSpec((1, 8, 8), "direct", 5, False, 0.0627),
        layers=[conv1, fc, out],
        meta={"training": {"seed": 1}},
    )


def assert_same(a: Bundle, b: Bundle) -> None:
    assert (a.timesteps, a.input, a.meta) == (b.timesteps, b.input, b.meta)
    assert len(a.layers) == len(b.layers)
    for x, y in zip(a.layers, b.layers, strict=True):
        for key, value in x.__dict__.items():
            other = y.__dict__[key]
            if isinstance(value, np.ndarray) or isinstance(other, np.ndarray):
                assert np.array_equal(value, other), key
                assert isinstance(value, np.ndarray) and isinstance(other, np.ndarray), key
            else:
                assert value == other, key


def test_round_trip_is_identical(tmp_path):
    original = reference_bundle()
    save_bundle(original, tmp_path / "b")
    loaded = load_bundle(tmp_path / "b")
    assert_same(original, loaded)
    save_bundle(loaded, tmp_path / "c")
    assert (tmp_path / "b" / "manifest.json").read_text() == (
        tmp_path / "c" / "manifest.json"
    ).read_text()
    assert_same(loaded, load_bundle(tmp_path / "c"))


def test_failed_write_leaves_the_old_bundle_and_no_debris(tmp_path, monkeypatch):
    target = tmp_path / "b"
    save_bundle(reference_bundle(), target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken_savez)
    changed = reference_bundle()
    changed.timesteps = 9
    with pytest.raises(OSError, match="disk full"):
        save_bundle(changed, target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_invalid_bundle_is_never_written(tmp_path):
    bad = reference_bundle()
    bad.layers[0].threshold = 0
    with pytest.raises(BundleError, match=r"conv1\)\.threshold"):
        save_bundle(bad, tmp_path / "b")
    assert not (tmp_path / "b").exists()
    assert list(tmp_path.iterdir()) == []


# --- malformed bundles: (mutation, words the error must contain) ---------------------------


def edit(manifest_edit=None, arrays_edit=None):
    return manifest_edit, arrays_edit


def set_layer(index, key, value):
    def apply(m):
        m["layers"][index][key] = value

    return apply


def del_key(*path):
    def apply(m):
        node = m
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return apply


def set_array(key, value):
    def apply(a):
        a[key] = value

    return apply


MALFORMED = {
    "wrong format": (lambda m: m.update(format="onnx"), None, "format"),
    "wrong version": (lambda m: m.update(version=2), None, "version"),
    "version as string": (lambda m: m.update(version="1"), None, "version"),
    "timesteps zero": (lambda m: m.update(timesteps=0), None, "timesteps"),
    "timesteps float": (lambda m: m.update(timesteps=2.5), None, "timesteps"),
    "unknown kind": (set_layer(1, "kind", "lstm"), None, r"fc1\)\.kind"),
    "unknown leak mode": (set_layer(1, "leak", {"mode": "exp"}), None, r"fc1\)\.leak\.mode"),
    "unknown reset": (set_layer(1, "reset", "soft"), None, r"fc1\)\.reset"),
    "unknown fire": (set_layer(1, "fire", "relu"), None, r"fc1\)\.fire"),
    "unknown encoding": (lambda m: m["input"].update(encoding="rate"), None, "input.encoding"),
    "input bits too wide": (lambda m: m["input"].update(bits=17), None, "input.bits"),
    "input shape empty": (lambda m: m["input"].update(shape=[]), None, "input.shape"),
    "broken shape chain (linear)": (set_layer(2, "in_features", 11), None, r"out\)\.in_features"),
    "broken shape chain (conv in_shape)": (
        set_layer(0, "in_shape", [1, 9, 8]),
        None,
        r"conv1\)\.in_shape",
    ),
    "conv weight shape": (set_layer(0, "out_channels", 5), None, r"conv1\)\.weight"),
    "linear weight shape": (set_layer(2, "out_features", 4), None, r"out\)\.weight"),
    "stride zero": (set_layer(0, "stride", [0, 2]), None, r"conv1\)\.stride"),
    "weights outside w_bits": (
        None,
        set_array("fc1.weight", np.full((10, 64), 32)),
        r"fc1\)\.weight.*\[-32, 31\]",
    ),
    "float weights": (
        None,
        set_array("fc1.weight", np.zeros((10, 64), np.float32)),
        r"fc1\)\.weight.*integer dtype",
    ),
    "NaN thresholds": (
        None,
        set_array("conv1.threshold", np.full(64, np.nan)),
        r"conv1\)\.threshold.*integer dtype",
    ),
    "theta zero": (set_layer(1, "threshold", 0), None, r"fc1\)\.threshold"),
    "theta at 2^(v_bits-1)": (set_layer(1, "threshold", 2**15), None, r"fc1\)\.threshold"),
    "theta array out of range": (
        None,
        set_array("conv1.threshold", np.zeros(64, np.int64)),
        r"conv1\)\.threshold",
    ),
    "theta float": (set_layer(1, "threshold", 3.5), None, r"fc1\)\.threshold"),
    "theta missing on a lif layer": (
        set_layer(1, "threshold", None),
        None,
        r"fc1\)\.threshold.*missing",
    ),
    "per-neuron theta wrong length": (
        None,
        set_array("conv1.threshold", np.ones(63, np.int64)),
        r"conv1\)\.threshold.*63",
    ),
    "lam above 2^frac": (
        set_layer(1, "leak", {"mode": "mult", "lam": 257, "frac": 8}),
        None,
        r"fc1\)\.leak\.lam",
    ),
    "shift k zero": (set_layer(0, "leak", {"mode": "shift", "k": 0}), None, r"conv1\)\.leak\.k"),
    "shift k at v_bits": (
        set_layer(0, "leak", {"mode": "shift", "k": 16}),
        None,
        r"conv1\)\.leak\.k",
    ),
    "bias out of range": (None, set_array("fc1.bias", np.full(10, 40000)), r"fc1\)\.bias"),
    "input_shift negative": (set_layer(1, "input_shift", -1), None, r"fc1\)\.input_shift"),
    "w_bits too small": (set_layer(1, "w_bits", 1), None, r"fc1\)\.w_bits"),
    "w_bits boolean": (set_layer(1, "w_bits", True), None, r"fc1\)\.w_bits"),
    "missing array key": (set_layer(1, "weight", "fc9.weight"), None, r"fc1\)\.weight.*fc9"),
    "missing field": (del_key("layers", 1, "v_bits"), None, r"fc1\)\.v_bits.*missing"),
    "missing layers": (del_key("layers"), None, "layers"),
    "last layer not accum": (set_layer(2, "fire", "lif"), None, r"out\)\.fire"),
    "hidden layer accum": (set_layer(1, "fire", "accum"), None, r"fc1\)\.fire"),
    "duplicate names": (set_layer(2, "name", "fc1"), None, r"layers\[2\]\.name.*duplicate"),
    "bad layer name": (set_layer(2, "name", "../x"), None, r"layers\[2\]\.name"),
    "meta not an object": (lambda m: m.update(meta=[1]), None, "meta"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_bundle_fails_with_one_clear_error(case, tmp_path):
    manifest_edit, arrays_edit, field = MALFORMED[case]
    path = save_bundle(reference_bundle(), tmp_path / "b")
    manifest = json.loads((path / "manifest.json").read_text())
    with np.load(path / "weights.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    if manifest_edit:
        manifest_edit(manifest)
        (path / "manifest.json").write_text(json.dumps(manifest))
    if arrays_edit:
        arrays_edit(arrays)
        np.savez(path / "weights.npz", **arrays)
    with pytest.raises(BundleError, match=field) as info:
        load_bundle(path)
    assert "\n" not in str(info.value)


def test_enough_distinct_malformed_cases():
    assert len(MALFORMED) >= 25


@pytest.mark.parametrize(
    ("damage", "field"),
    [
        (
            lambda p: (p / "manifest.json").write_text('{"format": "spikeforge.bundle", "vers'),
            "manifest.json: not valid JSON",
        ),
        (lambda p: (p / "manifest.json").write_bytes(b"\xff\xfe\x00"), "manifest.json"),
        (lambda p: os.remove(p / "weights.npz"), "weights.npz: missing"),
        (lambda p: os.remove(p / "manifest.json"), "manifest.json: missing"),
        (lambda p: (p / "weights.npz").write_bytes(b"not a zip"), "weights.npz: not a readable"),
        (lambda p: (p / "manifest.json").write_text("[1, 2]"), "manifest.json: must hold"),
    ],
)
def test_damaged_files(damage, field, tmp_path):
    path = save_bundle(reference_bundle(), tmp_path / "b")
    damage(path)
    with pytest.raises(BundleError, match=field):
        load_bundle(path)


def test_not_a_directory(tmp_path):
    with pytest.raises(BundleError, match="not a bundle directory"):
        load_bundle(tmp_path / "nowhere")
    (tmp_path / "file").write_text("x")
    with pytest.raises(BundleError, match="not a bundle directory"):
        load_bundle(Path(tmp_path / "file"))


def test_threshold_may_be_null_on_accum_layers(tmp_path):
    path = save_bundle(reference_bundle(), tmp_path / "b")
    assert json.loads((path / "manifest.json").read_text())["layers"][2]["threshold"] is None
    assert load_bundle(path).layers[2].theta_vector().tolist() == [1, 1, 1]
    assert bundle_io.VERSION == 1
