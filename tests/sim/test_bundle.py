"""The bundle format: round trips, atomic writes, and one clear error per malformed field."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
from spikeforge.sim import bundle as bundle_io
from spikeforge.sim import files
from spikeforge.sim.bundle import Bundle, BundleError, InputSpec, Layer, load_bundle, save_bundle
from spikeforge.sim.files import OutputPathError
from spikeforge.sim.semantics import Leak

from tests.sim.builders import conv, linear
from tests.sim.os_faults import InjectedFailure, fail_os_call


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


# --- strict manifests: unknown keys, required fields, integer version -------------------------


def layer_edit(index, change):
    def apply(m):
        change(m["layers"][index])

    return apply


def rename_key(index, old, new):
    return layer_edit(index, lambda layer: layer.__setitem__(new, layer.pop(old)))


LAYER_NAMES = ("conv1", "fc1", "out")  # reference_bundle's layers


def misspelt(index, key, typo):
    """Layer ``index``'s ``key`` renamed ``typo``, and the message naming both."""
    name = LAYER_NAMES[index]
    message = rf"^layers\[{index}\] \({name}\)\.{typo}: unknown key; did you mean '{key}'\?"
    return rename_key(index, key, typo), message


def drop(index, key):
    return layer_edit(index, lambda layer: layer.pop(key))


def top(change):
    def apply(m):
        change(m)

    return apply


STRICT = {
    "version true": (top(lambda m: m.update(version=True)), r"^version: must be an integer"),
    "version 1.0": (top(lambda m: m.update(version=1.0)), r"^version: must be an integer"),
    "version missing": (top(lambda m: m.pop("version")), r"^version: missing"),
    "format missing": (top(lambda m: m.pop("format")), r"^format: missing"),
    "top-level misspelt key": (
        top(lambda m: m.update(timestep=5)),
        r"^bundle\.timestep: unknown key; did you mean 'timesteps'\?",
    ),
    "top-level unknown key": (
        top(lambda m: m.update(checksum="abc")),
        r"^bundle\.checksum: unknown key; expected only \['format'",
    ),
    "timesteps missing": (top(lambda m: m.pop("timesteps")), r"^bundle\.timesteps: missing"),
    "input missing": (top(lambda m: m.pop("input")), r"^input: missing"),
    "input not an object": (top(lambda m: m.update(input=[64])), r"^input: missing or not"),
    "input misspelt key": (
        top(lambda m: m["input"].update(encodng="direct")),
        r"^input\.encodng: unknown key; did you mean 'encoding'\?",
    ),
    "input shape missing": (top(lambda m: m["input"].pop("shape")), r"^input\.shape: missing"),
    "input encoding missing": (
        top(lambda m: m["input"].pop("encoding")),
        r"^input\.encoding: missing",
    ),
    "input bits missing": (top(lambda m: m["input"].pop("bits")), r"^input\.bits: missing"),
    "input signed not boolean": (
        top(lambda m: m["input"].update(signed="no")),
        r"^input\.signed: must be true or false",
    ),
    "input scale a string": (
        top(lambda m: m["input"].update(scale="0.1")),
        r"^input\.scale: must be a finite number",
    ),
    "input_shfit": misspelt(1, "input_shift", "input_shfit"),
    "bais": misspelt(1, "bias", "bais"),
    "leek": misspelt(1, "leak", "leek"),
    "strides on a conv layer": misspelt(0, "stride", "strides"),
    "threshhold": misspelt(2, "threshold", "threshhold"),
    "unrelated layer key": (
        layer_edit(1, lambda layer: layer.update(dropout=0.5)),
        r"^layers\[1\] \(fc1\)\.dropout: unknown key; expected only",
    ),
    "stride on a linear layer": (
        layer_edit(1, lambda layer: layer.update(stride=[1, 1])),
        r"^layers\[1\] \(fc1\)\.stride: is a conv2d field; a linear layer does not take it",
    ),
    "in_features on a conv layer": (
        layer_edit(0, lambda layer: layer.update(in_features=64)),
        r"^layers\[0\] \(conv1\)\.in_features: is a linear field; a conv2d layer",
    ),
    "leak missing": (drop(1, "leak"), r"^layers\[1\] \(fc1\)\.leak: missing"),
    "leak missing on the accum layer": (drop(2, "leak"), r"^layers\[2\] \(out\)\.leak: missing"),
    "reset missing": (drop(1, "reset"), r"^layers\[1\] \(fc1\)\.reset: missing"),
    "reset missing on the accum layer": (drop(2, "reset"), r"^layers\[2\] \(out\)\.reset: missing"),
    "fire missing": (drop(1, "fire"), r"^layers\[1\] \(fc1\)\.fire: missing"),
    "kind missing": (drop(1, "kind"), r"^layers\[1\] \(fc1\)\.kind: missing"),
    "name missing": (drop(1, "name"), r"^layers\[1\]\.name: must be a non-empty identifier"),
    "weight missing": (drop(1, "weight"), r"^layers\[1\] \(fc1\)\.weight: missing"),
    "w_bits missing": (drop(1, "w_bits"), r"^layers\[1\] \(fc1\)\.w_bits: missing"),
    "in_features missing": (drop(1, "in_features"), r"^layers\[1\] \(fc1\)\.in_features: missing"),
    "out_features missing": (drop(2, "out_features"), r"^layers\[2\] \(out\)\.out_features: miss"),
    "in_shape missing": (drop(0, "in_shape"), r"^layers\[0\] \(conv1\)\.in_shape: must be a non"),
    "out_channels missing": (drop(0, "out_channels"), r"^layers\[0\] \(conv1\)\.out_channels: m"),
    "kernel_size missing": (drop(0, "kernel_size"), r"^layers\[0\] \(conv1\)\.kernel_size: miss"),
    "threshold missing on a lif layer": (
        drop(1, "threshold"),
        r"^layers\[1\] \(fc1\)\.threshold: missing",
    ),
    "leak lamb": (
        layer_edit(1, lambda layer: layer.update(leak={"mode": "mult", "lamb": 200, "frac": 8})),
        r"^layers\[1\] \(fc1\)\.leak\.lamb: unknown key; did you mean 'lam'\?",
    ),
    "leak k on a mult leak": (
        layer_edit(1, lambda layer: layer["leak"].update(k=3)),
        r"^layers\[1\] \(fc1\)\.leak\.k: unknown key; a 'mult' leak takes only",
    ),
    "leak lam on a none leak": (
        layer_edit(2, lambda layer: layer.update(leak={"mode": "none", "lam": 256})),
        r"^layers\[2\] \(out\)\.leak\.lam: unknown key",
    ),
    "leak frac on a shift leak": (
        layer_edit(0, lambda layer: layer["leak"].update(frac=8)),
        r"^layers\[0\] \(conv1\)\.leak\.frac: unknown key; a 'shift' leak takes only",
    ),
    "leak mode missing": (
        layer_edit(1, lambda layer: layer.update(leak={"lam": 200})),
        r"^layers\[1\] \(fc1\)\.leak\.mode: missing",
    ),
    "leak lam missing": (
        layer_edit(1, lambda layer: layer.update(leak={"mode": "mult"})),
        r"^layers\[1\] \(fc1\)\.leak\.lam: missing",
    ),
    "leak k missing": (
        layer_edit(0, lambda layer: layer.update(leak={"mode": "shift"})),
        r"^layers\[0\] \(conv1\)\.leak\.k: missing",
    ),
    "leak a string": (
        layer_edit(1, lambda layer: layer.update(leak="none")),
        r"^layers\[1\] \(fc1\)\.leak: must be an object",
    ),
    "layer not an object": (
        top(lambda m: m["layers"].__setitem__(1, 3)),
        r"^layers\[1\]: must be an object",
    ),
    "layers an object": (top(lambda m: m.update(layers={})), r"^layers: must be a non-empty list"),
    "layers empty": (top(lambda m: m.update(layers=[])), r"^layers: must be a non-empty list"),
    "threshold a list": (
        layer_edit(1, lambda layer: layer.update(threshold=[1, 2])),
        r"^layers\[1\] \(fc1\)\.threshold: must name an array",
    ),
    "bias a boolean": (
        layer_edit(1, lambda layer: layer.update(bias=True)),
        r"^layers\[1\] \(fc1\)\.bias: must name an array",
    ),
    "input_shift a boolean": (
        layer_edit(1, lambda layer: layer.update(input_shift=True)),
        r"^layers\[1\] \(fc1\)\.input_shift: must be an integer",
    ),
    "kernel_size of three": (
        layer_edit(0, lambda layer: layer.update(kernel_size=[3, 3, 3])),
        r"^layers\[0\] \(conv1\)\.kernel_size: must be two integers",
    ),
}


def saved_manifest(tmp_path):
    path = save_bundle(reference_bundle(), tmp_path / "b")
    return path, json.loads((path / "manifest.json").read_text())


@pytest.mark.parametrize("case", sorted(STRICT))
def test_strict_manifest_one_line_error(case, tmp_path):
    edit_manifest, message = STRICT[case]
    path, manifest = saved_manifest(tmp_path)
    edit_manifest(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(path)
    assert "\n" not in str(info.value)


def test_at_least_forty_malformed_manifests():
    assert len(STRICT) >= 40
    assert len(MALFORMED) + len(STRICT) >= 80
    assert not set(STRICT) & set(MALFORMED)


def test_optional_fields_may_be_left_out(tmp_path):
    path, manifest = saved_manifest(tmp_path)
    del manifest["meta"]
    for key in ("signed", "scale"):
        del manifest["input"][key]
    for layer in manifest["layers"]:
        del layer["bias"], layer["input_shift"]
    del manifest["layers"][1]["leak"]["frac"]
    del manifest["layers"][2]["threshold"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_bundle(path)
    assert loaded.meta == {} and loaded.input.signed is False and loaded.input.scale is None
    assert [layer.bias for layer in loaded.layers] == [None, None, None]
    assert [layer.input_shift for layer in loaded.layers] == [0, 0, 0]
    assert loaded.layers[1].leak == Leak("mult", lam=230, frac=8)
    assert loaded.layers[2].threshold is None
    conv = Layer("c", "conv2d", np.ones((2, 1, 3, 3), np.int64), (1, 4, 4), 4, 8, threshold=3)
    out = Layer("o", "linear", np.ones((3, 8), np.int64), (8,), 4, 8, None, fire="accum")
    out.reset = "none"
    path = save_bundle(Bundle(1, InputSpec((1, 4, 4), "spikes", 1, False), [conv, out]), path)
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["layers"][0]["stride"] == [1, 1] and manifest["layers"][0]["padding"] == [0, 0]
    del manifest["layers"][0]["stride"], manifest["layers"][0]["padding"], manifest["input"]["bits"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    loaded = load_bundle(path)
    assert (loaded.layers[0].stride, loaded.layers[0].padding, loaded.input.bits) == (
        (1, 1),
        (0, 0),
        1,
    )


def test_the_bundles_the_project_writes_still_load(tmp_path):
    digits = Path(__file__).parents[1] / "pim" / "data" / "digits"
    loaded = load_bundle(digits)
    assert [layer.name for layer in loaded.layers] == ["fc1", "fc2", "out"]
    manifest = json.loads((digits / "manifest.json").read_text())
    save_bundle(loaded, tmp_path / "again")
    assert json.loads((tmp_path / "again" / "manifest.json").read_text()) == manifest
    spikes = reference_bundle()
    spikes.input = InputSpec((1, 8, 8), "spikes", 1, False)
    assert_same(spikes, load_bundle(save_bundle(spikes, tmp_path / "spikes")))


# --- damaged weights: one line, never a traceback, never different integers ------------------


def small_bundle() -> Bundle:
    rng = np.random.default_rng(3)
    fc = Layer("fc", "linear", rng.integers(-8, 8, (6, 12)), (12,), 4, 12, threshold=5)
    out = Layer("out", "linear", rng.integers(-8, 8, (3, 6)), (6,), 4, 12, None, fire="accum")
    out.reset = "none"
    return Bundle(2, InputSpec((12,), "direct", 3), [fc, out])


@pytest.mark.parametrize("compressed", [True, False])
def test_bit_flips_and_truncations_of_weights_are_one_clear_error(tmp_path, compressed):
    """Every truncation, and one flipped bit in every byte (the bit rotates with the offset)."""
    original = small_bundle()
    path = save_bundle(original, tmp_path / "b")
    if not compressed:
        with np.load(path / "weights.npz") as npz:
            arrays = {k: npz[k] for k in npz.files}
        np.savez(path / "weights.npz", **arrays)
    data = (path / "weights.npz").read_bytes()
    damaged = [data[:n] for n in range(len(data))]
    for offset in range(len(data)):
        flipped = bytearray(data)
        flipped[offset] ^= 1 << (offset % 8)
        damaged.append(bytes(flipped))
    refused = unchanged = 0
    for blob in damaged:
        (path / "weights.npz").write_bytes(blob)
        try:
            loaded = load_bundle(path)
        except BundleError as exc:
            message = str(exc)
            assert "\n" not in message
            assert message.startswith("weights.npz: not a readable .npz archive (") or (
                re.match(r"^layers\[\d\] \(\w+\)\.weight: array '\w+\.weight' is not in", message)
            ), message
            refused += 1
            continue
        assert_same(original, loaded)  # a flip in an unused zip field (a date) changes nothing
        unchanged += 1
    assert refused + unchanged == len(data) * 2
    assert refused > len(data) * 3 // 2


# --- saving: never delete or overwrite what spikeforge did not write --------------------------


def test_save_refuses_a_directory_of_unrelated_files(tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    (target / "table.csv").write_text("precious")
    with pytest.raises(OutputPathError, match="non-empty directory") as info:
        save_bundle(reference_bundle(), target)
    assert "\n" not in str(info.value)
    assert [p.name for p in target.iterdir()] == ["table.csv"]
    save_bundle(reference_bundle(), target, force=True)
    assert sorted(p.name for p in target.iterdir()) == ["manifest.json", "table.csv", "weights.npz"]
    assert (target / "table.csv").read_text() == "precious"
    assert_same(reference_bundle(), load_bundle(target))


def test_save_refuses_files_links_and_devices(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    cases = {"file": "not a directory", "link": "symbolic link"}
    for name, words in cases.items():
        with pytest.raises(OutputPathError, match=words):
            save_bundle(reference_bundle(), tmp_path / name, force=True)
    assert (tmp_path / "file").read_text() == "x" and list((tmp_path / "real").iterdir()) == []
    bundle_dir = save_bundle(reference_bundle(), tmp_path / "b")
    os.replace(bundle_dir / "weights.npz", tmp_path / "w.npz")
    (bundle_dir / "weights.npz").symlink_to(tmp_path / "w.npz")
    with pytest.raises(OutputPathError, match=r"weights\.npz: is a symbolic link"):
        save_bundle(reference_bundle(), bundle_dir)
    assert (bundle_dir / "weights.npz").is_symlink()
    os.unlink(bundle_dir / "manifest.json")
    os.mkfifo(bundle_dir / "manifest.json")
    with pytest.raises(OutputPathError, match=r"manifest\.json: is a FIFO"):
        save_bundle(reference_bundle(), bundle_dir, force=True)
    assert stat.S_ISFIFO(os.lstat(bundle_dir / "manifest.json").st_mode)


def test_files_next_to_a_bundle_survive_a_resave(tmp_path):
    target = save_bundle(reference_bundle(), tmp_path / "b")
    (target / "rtl.npz").write_bytes(b"rtl")
    (target / "pim-sweep").mkdir()
    (target / "pim-sweep" / "sweep.json").write_text("{}")
    (target / "verilog").mkdir()
    (target / "verilog" / "chip.v").write_text("module chip; endmodule")
    changed = reference_bundle()
    changed.timesteps = 9
    save_bundle(changed, target)
    assert sorted(p.name for p in target.iterdir()) == [
        "manifest.json",
        "pim-sweep",
        "rtl.npz",
        "verilog",
        "weights.npz",
    ]
    assert (target / "rtl.npz").read_bytes() == b"rtl"
    assert (target / "pim-sweep" / "sweep.json").read_text() == "{}"
    assert (target / "verilog" / "chip.v").read_text() == "module chip; endmodule"
    assert load_bundle(target).timesteps == 9
    assert bundle_io.holds_bundle(target) and not bundle_io.holds_bundle(target / "verilog")


def test_save_into_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputPathError, match=r"^\.: is a non-empty directory"):
        save_bundle(reference_bundle(), ".")
    os.unlink("notes.txt")
    assert save_bundle(reference_bundle(), ".") == Path(".")
    changed = reference_bundle()
    changed.timesteps = 7
    save_bundle(changed, ".")
    save_bundle(changed, Path(tmp_path))
    assert load_bundle(".").timesteps == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "weights.npz"]
    debris = [p.name for p in tmp_path.parent.iterdir() if p.name.startswith(("..", ".spikef"))]
    assert debris == []  # no retired "..old.*" directory next to it


def test_save_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        target = save_bundle(reference_bundle(), tmp_path / "a" / "b")
        modes = {p: stat.S_IMODE(os.stat(p).st_mode) for p in (tmp_path / "a", target)}
        assert set(modes.values()) == {0o755}
        for name in ("manifest.json", "weights.npz"):
            assert stat.S_IMODE(os.stat(target / name).st_mode) == 0o644
        os.umask(0o077)
        save_bundle(reference_bundle(), target)
        for name in ("manifest.json", "weights.npz"):
            assert stat.S_IMODE(os.stat(target / name).st_mode) == 0o600
    finally:
        os.umask(old)


# --- crash safety: a failure at any step leaves the old or the new bundle ---------------------


def inject(monkeypatch, fail_at: int | None, hard: bool) -> list[str]:
    """``fail_os_call``; ``hard``: the process "dies" at the failure, i.e. no cleanup runs
    (temporaries and pending manifests stay)."""
    calls = fail_os_call(monkeypatch, fail_at)
    if hard:
        monkeypatch.setattr(files, "discard", lambda path: None)
        monkeypatch.setattr(bundle_io, "discard", lambda path: None)
    return calls


def variant(seed: int) -> Bundle:
    """Same shapes as the reference bundle, other integers: a mix would load but be wrong."""
    b = reference_bundle()
    rng = np.random.default_rng(seed)
    for layer in b.layers:
        layer.weight = rng.integers(-32, 32, size=layer.weight.shape)
    b.timesteps = 5 + seed
    return b


def same(a: Bundle, b: Bundle) -> bool:
    try:
        assert_same(a, b)
    except AssertionError:
        return False
    return True


def state(path: Path) -> Bundle | None:
    try:
        return load_bundle(path)
    except BundleError as exc:
        assert re.match(r"^(manifest\.json|weights\.npz): missing in", str(exc)), exc
        return None


def steps_of_a_save(monkeypatch, path: Path, bundle: Bundle) -> list[str]:
    with monkeypatch.context() as m:
        steps = inject(m, None, hard=False)
        save_bundle(bundle, path)
    return steps


@pytest.mark.parametrize("hard", [False, True], ids=["exception", "crash"])
@pytest.mark.parametrize("first", [False, True], ids=["resave", "first-save"])
def test_a_failure_at_every_step_leaves_old_or_new(tmp_path, monkeypatch, hard, first):
    old, new, third = variant(1), variant(2), variant(3)
    steps = steps_of_a_save(monkeypatch, tmp_path / "probe", new)
    assert steps.count("replace") == 3 and len(steps) >= 10
    outcomes = {"old": 0, "new": 0}
    for k in range(len(steps)):
        path = tmp_path / f"k{k}"
        if not first:
            save_bundle(old, path)
        (tmp_path / f"k{k}-sibling.txt").write_text("x")
        with monkeypatch.context() as m:
            inject(m, k, hard)
            with pytest.raises(InjectedFailure):
                save_bundle(new, path)
        now = state(path)
        if now is None or same(now, old):
            assert first == (now is None), k
            outcomes["old"] += 1
        else:
            assert same(now, new), f"step {k} ({steps[k]}): neither the old nor the new bundle"
            outcomes["new"] += 1
        if not hard:  # an ordinary failure leaves no debris, except what recovery needs
            extra = {p.name for p in path.iterdir()} - {"manifest.json", "weights.npz"}
            assert extra <= {p.name for p in bundle_io._pending_names(path)}, k
        # the next save finishes or discards the interrupted one and leaves no debris
        save_bundle(third, path)
        assert same(load_bundle(path), third)
        assert sorted(p.name for p in path.iterdir()) == ["manifest.json", "weights.npz"], k
    assert outcomes["old"] >= 6 and outcomes["new"] >= 2
    assert sum(outcomes.values()) == len(steps)


def test_a_crash_during_recovery_of_a_crash_leaves_a_loadable_bundle(tmp_path, monkeypatch):
    """Two crashes in a row, at every pair of steps: always one of the three bundles, and the
    second one is found when the first was interrupted after its weights landed."""
    old, new, third = variant(1), variant(2), variant(3)
    n = len(steps_of_a_save(monkeypatch, tmp_path / "probe", new))
    checked = 0
    for k in range(n):
        for j in range(n + 2):  # recovery adds steps to the second save
            path = tmp_path / f"k{k}j{j}"
            save_bundle(old, path)
            with monkeypatch.context() as m:
                inject(m, k, hard=True)
                with pytest.raises(InjectedFailure):
                    save_bundle(new, path)
            before = state(path)
            with monkeypatch.context() as m:
                calls = inject(m, j, hard=True)
                with contextlib.suppress(InjectedFailure):
                    save_bundle(third, path)
            after = state(path)
            assert after is not None
            if j >= len(calls):
                assert same(after, third)
            else:
                assert same(after, third) or same(after, before), (k, j)
            checked += 1
    assert checked == n * (n + 2)
