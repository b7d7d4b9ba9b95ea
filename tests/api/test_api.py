"""The public API: the docs/api.md example runs as written; arguments and outputs are checked
before any work; ``import spikeforge`` stays light."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from spikeforge.sim import golden
from spikeforge.sim.bundle import save_bundle

import spikeforge
from spikeforge import api, checks
from tests.sim.test_bundle import reference_bundle

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def test_the_documented_example_runs(tmp_path, monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 1
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[0], str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "golden test accuracy" in out and "sf_chip.v" in out
    assert (tmp_path / "out" / "digits" / "verilog" / "sf_chip.md").is_file()
    assert (tmp_path / "out" / "digits" / "metrics.json").is_file()


def test_run_accepts_a_bundle_or_a_path_and_writes_result(tmp_path):
    bundle = reference_bundle()
    path = save_bundle(bundle, tmp_path / "b")
    x = np.random.default_rng(2).integers(0, 32, size=(6, 1, 8, 8))
    np.save(tmp_path / "x.npy", x)
    a = spikeforge.run(bundle, x)
    b = spikeforge.run(path, tmp_path / "x.npy", out=tmp_path / "r.npz")
    want = golden.run(bundle, x).result_arrays()
    with np.load(tmp_path / "r.npz") as npz:
        assert sorted(npz.files) == sorted(want)
        for key in want:
            assert np.array_equal(a.result_arrays()[key], want[key]), key
            assert np.array_equal(b.result_arrays()[key], want[key]), key
            assert np.array_equal(npz[key], want[key]), key


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda p: api.run(p / "b", p / "x.npy", out=p / "b" / "weights.npz"), "OutputPathError",
         "input"),
        (lambda p: api.run(p / "b", p / "x.npy", labels=np.arange(5)), "OptionError", "labels"),
        (lambda p: api.train(limit_test=-5), "OptionError", "limit_test"),
        (lambda p: api.train(ann_epochs=-1), "OptionError", "ann_epochs"),
        (lambda p: api.train(v_bits=32), "OptionError", "v_bits"),
        (lambda p: api.train(timestep=3), "OptionError", "did you mean 'timesteps'"),
        (lambda p: api.train(out=p / "notes"), "OutputPathError", "notes"),
        (lambda p: api.train(timesteps=4096, batch_size=65536, arch="4096-4096"),
         "ResourceError", "memory"),
        (lambda p: api.rtl_sim(p / "b", p / "x.npy", limit=-1), "OptionError", "limit"),
        (lambda p: api.verilog(p / "b", p / "hw", name="1x"), "OptionError", "identifier"),
        (lambda p: api.pim_sweep(p / "b", p / "x.npy", np.zeros(4), seeds=0), "OptionError",
         "seeds"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_before_work(tmp_path, call, error, words):
    save_bundle(reference_bundle(), tmp_path / "b")
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 8, 8), np.int64))
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ValueError, match=re.escape(words)) as info:
        call(tmp_path)
    assert type(info.value).__name__ == error
    assert "\n" not in str(info.value)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_hardware_widths_come_from_the_core():
    from spikeforge.rtl.cores.core import CoreParams

    lo, hi = checks.core_range("v_bits")
    for value, ok in ((lo - 1, False), (lo, True), (hi, True), (hi + 1, False)):
        try:
            CoreParams(n_axons=1, n_neurons=1, v_bits=value)
        except ValueError:
            assert not ok, value
        else:
            assert ok, value
    assert checks.core_range("w_bits") == (2, 8)


def test_import_is_light_and_names_are_public():
    code = (
        "import sys, spikeforge; print(sorted(m for m in ('torch', 'amaranth', 'cocotb') "
        "if m in sys.modules)); print(sorted(spikeforge.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded, names = out.stdout.splitlines()
    assert loaded == "[]"
    for name in ("train", "run", "verilog", "rtl_sim", "pim_sweep", "load_bundle", "save_bundle"):
        assert name in names
        assert callable(getattr(spikeforge, name))


def test_library_floors_never_import_the_top_floor():
    """algo, sim, rtl and pim never import spikeforge's top floor (API, CLI, checks, flows)."""
    root = Path(__file__).resolve().parents[2]
    top = re.compile(
        r"^\s*(from|import)\s+spikeforge\.(api|cli|checks|train_metrics|rtl_flow|bench|studies)\b"
        r"|^\s*from\s+spikeforge\s+import",
        re.MULTILINE,
    )
    scanned = 0
    for floor in ("algo", "sim", "rtl", "pim"):
        for path in (root / floor).rglob("*.py"):
            scanned += 1
            assert not top.search(path.read_text()), path
    assert scanned > 30
