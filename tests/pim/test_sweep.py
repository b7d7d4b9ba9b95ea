"""The trained digits bundle in PIM, the sweep and ``spikeforge pim-sweep``.

``data/digits`` is a snapshot of a bundle made by ``spikeforge train --dataset digits``
(hybrid, 64-256-128-10, 6-bit weights, 5 steps); ``data/digits_test_*.npy`` is its test split.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
import pytest
from spikeforge.pim.model import PimConfig, PimLayer, pim_first_layer
from spikeforge.pim.sweep import KNOB_VALUES, run_sweep
from spikeforge.sim import golden
from spikeforge.sim.bundle import load_bundle, save_bundle

from spikeforge.cli import pim_sweep as sweep_cli
from spikeforge.cli.errors import UsageError

DATA = Path(__file__).parent / "data"
BUNDLE = DATA / "digits"


@pytest.fixture(scope="module")
def digits():
    x = np.load(DATA / "digits_test_x.npy")
    y = np.load(DATA / "digits_test_y.npy")
    return load_bundle(BUNDLE), x, y


def test_trained_first_layer_ideal_and_at_bound(digits) -> None:
    b, x, y = digits
    want = golden.synaptic_input(b.layers[0], x.astype(np.int64), "int64")
    pim = PimLayer(b.layers[0], b.input, PimConfig())
    assert pim.adc.bits == 11  # 64 rows x 31 levels (5-bit codes)
    assert pim.mapping.column_tiles == 2  # 256 channels > 168 slots
    compared = 0
    for combine in ("digital", "analog"):
        got = pim_first_layer(b, x, PimConfig(combine=combine)).sums
        assert np.array_equal(got, want)
        compared += got.size
    at_bound = pim_first_layer(b, x, PimConfig(adc_bits=11)).sums
    below = pim_first_layer(b, x, PimConfig(adc_bits=10)).sums
    assert np.array_equal(at_bound, want) and not np.array_equal(below, want)
    assert compared == 2 * 360 * 256
    plain, hooked = golden.run(b, x), golden.run(b, x, first_layer_sums=at_bound)
    assert np.array_equal(plain.v_out, hooked.v_out)
    assert golden.accuracy(plain, y) == pytest.approx(0.9833, abs=1e-4)


def test_sweep_points_and_outputs(digits, tmp_path) -> None:
    b, x, y = digits
    sweep = run_sweep(
        b, x[:120], y[:120], adc_bits=[4, 6, 11], knobs=["read_noise", "adc_offset"], seeds=2
    )
    assert len(sweep.points) == 2 * 3 + len(KNOB_VALUES["read_noise"]) + len(
        KNOB_VALUES["adc_offset"]
    )
    lossless = next(p for p in sweep.adc_points("digital") if p.adc_bits == 11)
    assert lossless.accuracy == sweep.exact_accuracy and lossless.agreement == 1.0
    assert lossless.sum_error == 0.0
    assert sweep.adc_points("digital")[0].accuracy < sweep.exact_accuracy
    noise = sweep.knob_points("read_noise")
    knee = next(p for p in sweep.adc_points("digital") if p.adc_bits == sweep.knob_adc_bits)
    assert noise[0].accuracy == knee.accuracy
    assert noise[-1].accuracy < noise[0].accuracy and noise[-1].seeds == 2
    assert sweep.knob_points("adc_offset")[1].seeds == 1
    rows = list(csv.DictReader(io.StringIO(sweep.csv())))
    assert len(rows) == len(sweep.points) and rows[0]["sweep"] == "adc_bits"
    text = sweep.markdown()
    assert "| 11 |" in text and "read_noise" in text


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    sweep_cli.add_arguments(parser)
    return sweep_cli.main(parser.parse_args(argv))


def test_cli_writes_plot_table_and_report(tmp_path, capsys) -> None:
    out = tmp_path / "sweep"
    argv = [str(BUNDLE), "--out", str(out), "--input", str(DATA / "digits_test_x.npy")]
    argv += ["--labels", str(DATA / "digits_test_y.npy"), "--limit", "60", "--adc-bits", "5:7"]
    argv += ["--knobs", "cell_sigma", "--seeds", "1", "--combine", "digital"]
    assert _cli(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "pim_sweep.csv",
        "pim_sweep.md",
        "pim_sweep.png",
    ]
    assert (out / "pim_sweep.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "pim_sweep.md").read_text()
    assert "PIM gain" in md and "| 7 |" in md
    assert len((out / "pim_sweep.csv").read_text().splitlines()) == 1 + 3 + len(
        KNOB_VALUES["cell_sigma"]
    )
    assert "total, layer 1 in PIM" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--adc-bits", "3:30"], "ADC bits must be within"),
        (["--adc-bits", "x"], "expected LO:HI"),
        (["--knobs", "bogus"], "unknown"),
        (["--knob-adc-bits", "0"], "ADC bits must be within"),
        (["--rows-active", "0"], ">= 1"),
        (["--labels", "missing.npy"], "does not exist"),
        (["--limit", "0"], "--limit"),
    ],
)
def test_cli_bad_input_one_line_and_nothing_written(tmp_path, extra, message) -> None:
    out = tmp_path / "sweep"
    argv = [str(BUNDLE), "--out", str(out), "--input", str(DATA / "digits_test_x.npy")]
    if "--labels" not in extra:
        argv += ["--labels", str(DATA / "digits_test_y.npy")]
    with pytest.raises(UsageError, match=message) as info:
        _cli(argv + extra)
    assert "\n" not in str(info.value) and not out.exists()


def test_cli_refuses_missing_and_unmappable_bundles(tmp_path) -> None:
    data = ["--input", str(DATA / "digits_test_x.npy"), "--labels", str(DATA / "digits_test_y.npy")]
    out = tmp_path / "sweep"
    with pytest.raises(UsageError, match="manifest"):
        _cli([str(tmp_path / "nope"), "--out", str(out), *data])
    # 1400 channels of 6-bit weights need 9 column tiles of 64 rows: 576 > 512 rows.
    wide = load_bundle(BUNDLE)
    rng = np.random.default_rng(0)
    wide.layers[0].weight = rng.integers(-32, 32, size=(1400, 64))
    wide.layers[1].weight = rng.integers(-32, 32, size=(128, 1400))
    wide.layers[1].in_shape = (1400,)
    save_bundle(wide, tmp_path / "wide")
    with pytest.raises(UsageError, match="rows"):
        _cli([str(tmp_path / "wide"), "--out", str(out), *data])
    assert not out.exists()
