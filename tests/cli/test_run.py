"""``spikeforge run``: the RESULT.npz contract and one-line errors that write nothing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from spikeforge.sim import golden
from spikeforge.sim.bundle import save_bundle

from spikeforge.cli import main
from tests.sim.test_bundle import reference_bundle


@pytest.fixture
def bundle_dir(tmp_path):
    return save_bundle(reference_bundle(), tmp_path / "bundle")


def test_run_writes_exactly_the_result_keys(bundle_dir, tmp_path, capsys):
    x = np.random.default_rng(1).integers(0, 32, size=(7, 1, 8, 8))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(7) % 3)
    out = tmp_path / "r.npz"
    assert (
        main(
            [
                "run",
                str(bundle_dir),
                "--input",
                str(tmp_path / "x.npy"),
                "--out",
                str(out),
                "--labels",
                str(tmp_path / "y.npy"),
            ]
        )
        == 0
    )
    assert "7 samples" in capsys.readouterr().out
    with np.load(out) as npz:
        assert sorted(npz.files) == ["pred", "spikes.conv1", "spikes.fc1", "spikes.out", "v_out"]
        expected = golden.run(reference_bundle(), x).result_arrays()
        for key in npz.files:
            assert np.array_equal(npz[key], expected[key]), key
        assert npz["spikes.conv1"].shape == (7, 5, 4, 4, 4)
        assert npz["spikes.conv1"].dtype == np.uint8
        assert npz["spikes.out"].shape == (7, 5, 3) and npz["spikes.out"].sum() == 0
        assert npz["v_out"].shape == (7, 3) and npz["pred"].shape == (7,)


BAD_INPUTS = {
    "wrong shape": (np.zeros((3, 64), np.int64), "shape"),
    "float dtype": (np.zeros((3, 1, 8, 8), np.float64), "integers"),
    "too large": (np.full((3, 1, 8, 8), 32), "outside"),
    "negative": (np.full((3, 1, 8, 8), -1), "outside"),
    "object array": (np.array([None] * 3, dtype=object), "not a readable"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_writes_nothing(case, bundle_dir, tmp_path, capsys):
    array, words = BAD_INPUTS[case]
    np.save(tmp_path / "x.npy", array, allow_pickle=True)
    out = tmp_path / "r.npz"
    code = main(["run", str(bundle_dir), "--input", str(tmp_path / "x.npy"), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert words in err and err.count("\n") == 1 and err.startswith("spikeforge run: error:")
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "x.npy"]


def test_missing_files_and_bad_bundle(bundle_dir, tmp_path, capsys):
    out = tmp_path / "r.npz"
    assert (
        main(["run", str(bundle_dir), "--input", str(tmp_path / "nope.npy"), "--out", str(out)])
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    (bundle_dir / "manifest.json").write_text("{")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 8, 8), np.int64))
    assert (
        main(["run", str(bundle_dir), "--input", str(tmp_path / "x.npy"), "--out", str(out)]) == 2
    )
    assert "manifest.json: not valid JSON" in capsys.readouterr().err
    assert not out.exists()


def test_spike_train_must_be_binary(tmp_path, capsys):
    b = reference_bundle()
    b.input = type(b.input)(b.input.shape, "spikes", 1, False)
    save_bundle(b, tmp_path / "b")
    np.save(tmp_path / "x.npy", np.full((2, 5, 1, 8, 8), 2, np.uint8))
    assert (
        main(
            [
                "run",
                str(tmp_path / "b"),
                "--input",
                str(tmp_path / "x.npy"),
                "--out",
                str(tmp_path / "r.npz"),
            ]
        )
        == 2
    )
    assert "0/1" in capsys.readouterr().err


def test_console_script_help_and_version():
    exe = [sys.executable, "-m", "spikeforge.cli"]
    version = subprocess.run([*exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("spikeforge ")
    helptext = subprocess.run([*exe, "--help"], capture_output=True, text=True, check=True)
    assert "run" in helptext.stdout
