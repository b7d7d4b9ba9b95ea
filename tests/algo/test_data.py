"""Datasets: the embedded digits split and IDX reading from small generated files."""

from __future__ import annotations

import numpy as np
import pytest
from spikeforge.sim import datasets as data_mod
from spikeforge.sim.datasets import DataError, load_dataset, load_digits, read_idx, write_idx


def test_digits_fixed_split():
    d = load_digits()
    assert d.x_train.shape == (1437, 1, 8, 8) and d.x_test.shape == (360, 1, 8, 8)
    assert d.x_train.min() == 0 and d.x_train.max() == 16 and d.bits == 5 and not d.signed
    assert d.y_test[:10].tolist() == [2, 8, 2, 6, 6, 7, 1, 9, 8, 5]
    assert int(d.x_test.sum()) == 112051
    assert np.array_equal(load_digits().y_train, d.y_train)


def _write_set(root, n_train=12, n_test=5, gz=True, size=28, skip=None):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, size, size)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, size, size)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    for key, stem in data_mod.IDX_FILES.items():
        if key != skip:
            write_idx(root / (stem + (".gz" if gz else "")), arrays[key])
    return arrays


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_sets_load_from_a_directory(tmp_path, gz, name):
    arrays = _write_set(tmp_path / "d", gz=gz)
    d = load_dataset(name, tmp_path / "d")
    assert d.x_train.shape == (12, 1, 28, 28) and d.x_test.shape == (5, 1, 28, 28)
    assert np.array_equal(d.x_train[:, 0], arrays["train_images"])
    assert np.array_equal(d.y_test, arrays["test_labels"])
    assert d.bits == 8 and d.scale == pytest.approx(1 / 255)


def test_missing_files_are_named(tmp_path):
    _write_set(tmp_path, skip="test_labels")
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\[\.gz\]"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(DataError, match="not a directory"):
        load_dataset("mnist", tmp_path / "nowhere")


def test_fashion_mnist_is_found_where_debian_installs_it(tmp_path, monkeypatch):
    _write_set(tmp_path / "share")
    monkeypatch.setattr(data_mod.shutil, "which", lambda _: None)  # no dpkg
    monkeypatch.setitem(data_mod.DEBIAN_DIRS, "fashion-mnist", str(tmp_path / "share"))
    assert load_dataset("fashion-mnist").x_train.shape[0] == 12
    monkeypatch.setitem(data_mod.DEBIAN_DIRS, "fashion-mnist", str(tmp_path / "empty"))
    with pytest.raises(DataError, match=r"dataset-fashion-mnist.*--data DIR"):
        load_dataset("fashion-mnist")


def test_mnist_without_a_directory_says_what_to_pass():
    with pytest.raises(DataError, match="--data DIR holding train-images-idx3-ubyte"):
        load_dataset("mnist")


def test_bad_idx_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(DataError, match="magic"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", np.zeros((3, 2), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-2])
    with pytest.raises(DataError, match="fewer values"):
        read_idx(tmp_path / "short")


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("cifar")


def test_limited():
    d = load_digits().limited(100, 20)
    assert len(d.y_train) == 100 and len(d.y_test) == 20
