"""``spikeforge merge-results``: partial results joined into the whole, and one-line refusals
(exit 2) that write nothing and leave the inputs untouched."""

from __future__ import annotations

import os

import numpy as np
import pytest
from spikeforge.sim import golden
from spikeforge.sim.bundle import bundle_digest
from spikeforge.sim.results import array_digest, shard_range, with_shard, write_npz_atomic

from spikeforge.cli import main
from tests.sim.test_bundle import reference_bundle


@pytest.fixture
def whole():
    """An unsharded run's arrays over 10 samples (the golden model's keys and dtypes)."""
    x = np.random.default_rng(5).integers(0, 32, size=(10, 1, 8, 8))
    return golden.run(reference_bundle(), x).result_arrays(), x


def write_parts(tmp_path, arrays, x, n: int, name: str = "part") -> list[str]:
    digest = bundle_digest(reference_bundle())
    paths = []
    for k in range(1, n + 1):
        lo, hi = shard_range(x.shape[0], k, n)
        part = {key: value[lo:hi] for key, value in arrays.items()}
        shard = with_shard(
            part,
            lo=lo,
            hi=hi,
            total=x.shape[0],
            bundle_digest=digest,
            inputs_digest=array_digest(x),
        )
        paths.append(str(write_npz_atomic(tmp_path / f"{name}{k}.npz", shard)))
    return paths


def test_merge_writes_the_whole(whole, tmp_path, capsys):
    arrays, x = whole
    parts = write_parts(tmp_path, arrays, x, 4)
    out = tmp_path / "merged" / "r.npz"
    assert main(["merge-results", parts[2], parts[0], parts[3], parts[1], "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"merged 4 shards: 10 samples -> {out}\n" and captured.err == ""
    with np.load(out, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)
        for key in npz.files:
            assert npz[key].dtype == arrays[key].dtype, key
            assert np.array_equal(npz[key], arrays[key]), key
        assert len(npz.files) == 5
    assert sorted(p.name for p in out.parent.iterdir()) == ["r.npz"]


def snapshot(root) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.is_file()}


def refused(capsys, argv: list[str]) -> str:
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, (code, out, err)
    assert out == "" and "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith("spikeforge merge-results: error: "), err
    return err


def test_overlap_is_one_line_exit_2(whole, tmp_path, capsys):
    arrays, x = whole
    halves = write_parts(tmp_path, arrays, x, 2, "h")
    thirds = write_parts(tmp_path, arrays, x, 3, "t")
    before = snapshot(tmp_path)
    out = tmp_path / "r.npz"
    err = refused(capsys, ["merge-results", halves[0], thirds[1], thirds[2], "--out", str(out)])
    assert f"{halves[0]} (samples 0..4) and {thirds[1]} (samples 3..5) overlap" in err
    assert not out.exists() and snapshot(tmp_path) == before


def test_other_refusals_are_one_line_exit_2(whole, tmp_path, capsys):
    arrays, x = whole
    parts = write_parts(tmp_path, arrays, x, 3)
    plain = str(write_npz_atomic(tmp_path / "plain.npz", arrays))
    before = snapshot(tmp_path)
    out = str(tmp_path / "r.npz")
    cases = [
        ([parts[0], parts[2]], "no part holds samples 3..5 of 10"),
        ([*parts, parts[1]], "given twice"),
        ([*parts, plain], f"{plain} is not a partial result"),
        ([*parts, str(tmp_path / "nope.npz")], "does not exist"),
    ]
    for argv, words in cases:
        assert words in refused(capsys, ["merge-results", *argv, "--out", out])
    assert not os.path.exists(out) and snapshot(tmp_path) == before
    assert len(cases) == 4


def test_output_equal_to_an_input_is_refused_first(whole, tmp_path, capsys):
    arrays, x = whole
    parts = write_parts(tmp_path, arrays, x, 2)
    (tmp_path / "hard.npz").hardlink_to(parts[1])
    before = snapshot(tmp_path)
    for out in (parts[1], str(tmp_path / "." / "part2.npz"), str(tmp_path / "hard.npz")):
        err = refused(capsys, ["merge-results", *parts, "--out", out])
        assert "is the input" in err and "choose another output" in err, err
    # even where the parts could not be merged: nothing is read before the output is checked
    err = refused(capsys, ["merge-results", parts[1], "--out", parts[1]])
    assert "is the input" in err
    assert snapshot(tmp_path) == before


def test_help_and_usage_errors(capsys):
    assert main(["merge-results", "--out", "r.npz"]) == 2
    assert "PART.npz" in capsys.readouterr().err
    assert main(["merge-results", "a.npz"]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["merge-results", "--help"]) == 0
    assert "join --shard partial results" in capsys.readouterr().out
