"""Sharded results: ``--shard K/N`` parsing and slicing, partial results, their merge (equal to
the whole, key for key) and every refusal, and the bundle digest that ties parts together."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from spikeforge.sim.bundle import bundle_digest, load_bundle, save_bundle
from spikeforge.sim.results import (
    SHARD_PREFIX,
    ShardError,
    array_digest,
    merge_results,
    parse_shard,
    shard_range,
    with_shard,
    write_npz_atomic,
)
from spikeforge.sim.semantics import Leak

from tests.sim.builders import bundle, conv, linear, random_bundles
from tests.sim.test_bundle import reference_bundle

BUNDLE = "b" * 64
INPUTS = "1" * 64


def whole(n: int = 23) -> dict[str, np.ndarray]:
    """A RESULT.npz's arrays over ``n`` samples, each key with its own dtype and shape."""
    rng = np.random.default_rng(n)
    return {
        "pred": rng.integers(0, 3, n),
        "v_out": rng.integers(-99, 99, (n, 3)).astype(np.int32),
        "spikes.conv1": rng.integers(0, 2, (n, 2, 4, 3, 3)).astype(np.uint8),
        "spikes.out": np.zeros((n, 2, 3), np.uint8),
    }


def write_parts(tmp_path, arrays, n, *, bundle=BUNDLE, inputs=INPUTS, name="part"):
    """Write the ``n`` partial results of ``arrays`` as ``name{K}of{n}.npz``; their paths."""
    total = arrays["pred"].shape[0]
    paths = []
    for k in range(1, n + 1):
        lo, hi = shard_range(total, k, n)
        part = {key: value[lo:hi] for key, value in arrays.items()}
        shard = with_shard(
            part, lo=lo, hi=hi, total=total, bundle_digest=bundle, inputs_digest=inputs
        )
        paths.append(write_npz_atomic(tmp_path / f"{name}{k}of{n}.npz", shard))
    return paths


def read(path):
    with np.load(path, allow_pickle=False) as npz:
        return {key: npz[key] for key in npz.files}


def assert_equal_arrays(got, want) -> int:
    """Same keys, dtypes, shapes and values; the number of keys compared."""
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key].dtype == value.dtype, key
        assert got[key].shape == value.shape and np.array_equal(got[key], value), key
    return len(want)


# ---------------------------------------------------------------------------------- --shard


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1/1", (1, 1)), ("1/4", (1, 4)), ("4/4", (4, 4)), ("3/10", (3, 10)), ("07/12", (7, 12))],
)
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


BAD_SHARDS = ["0/4", "5/4", "1/0", "0/0", "", "4", "1/", "/4", "1/4/2", "-1/4", "1/-4", "a/b",
              " 1/4", "1/4 ", "1.0/4", "1 / 4", "\u0661/\u0664", "1\\4"]  # fmt: skip


@pytest.mark.parametrize("text", BAD_SHARDS)
def test_parse_shard_refuses(text):
    with pytest.raises(ShardError) as info:
        parse_shard(text)
    assert str(info.value) == f"--shard takes K/N with 1 <= K <= N, got {text!r}"


def test_shard_error_message_example():
    with pytest.raises(ShardError, match=r"^--shard takes K/N with 1 <= K <= N, got '0/4'$"):
        parse_shard("0/4")


def test_shard_ranges_cover_contiguously():
    """For every total and N, the N slices are contiguous, near-equal, in order and cover
    range(total) exactly; a slice is empty only when total < N."""
    checked = 0
    for total in [*range(0, 41), 97, 360, 1001]:
        for n in [*range(1, 45), 100, 1000, 5000]:
            ranges = [shard_range(total, k, n) for k in range(1, n + 1)]
            assert ranges[0][0] == 0 and ranges[-1][1] == total
            for (_, hi), (lo, _) in itertools.pairwise(ranges):
                assert hi == lo
            sizes = [hi - lo for lo, hi in ranges]
            assert min(sizes) >= 0 and max(sizes) - min(sizes) <= 1
            assert sum(sizes) == total
            assert (0 in sizes) == (total < n)
            checked += 1
    assert checked == 44 * 47


def test_shard_range_examples_and_refusals():
    assert [shard_range(360, k, 4) for k in (1, 2, 3, 4)] == [
        (0, 90),
        (90, 180),
        (180, 270),
        (270, 360),
    ]
    assert [shard_range(10, k, 3) for k in (1, 2, 3)] == [(0, 3), (3, 6), (6, 10)]
    assert [shard_range(2, k, 4) for k in (1, 2, 3, 4)] == [(0, 0), (0, 1), (1, 1), (1, 2)]
    for k, n in [(0, 4), (5, 4), (1, 0)]:
        with pytest.raises(ShardError, match=f"got '{k}/{n}'"):
            shard_range(10, k, n)
    with pytest.raises(ValueError, match="negative"):
        shard_range(-1, 1, 1)


# ---------------------------------------------------------------------------------- digests


def test_array_digest_covers_dtype_shape_and_values():
    a = np.arange(12, dtype=np.int32).reshape(3, 4)
    digest = array_digest(a)
    assert len(digest) == 64 and int(digest, 16) >= 0
    assert array_digest(a.copy()) == digest
    assert array_digest(np.asfortranarray(a)) == digest  # C order, whatever the layout
    assert array_digest(a.T.copy().T) == digest
    others = [
        a.view(np.uint32),  # same bytes, other dtype
        a.reshape(4, 3),  # same bytes, other shape
        a.reshape(12),
        a.astype(np.int64),
        np.where(a == 11, 12, a).astype(np.int32),
    ]
    assert len({array_digest(o) for o in others} | {digest}) == len(others) + 1


def test_with_shard_adds_plain_metadata():
    part = {key: value[3:7] for key, value in whole().items()}
    shard = with_shard(part, lo=3, hi=7, total=23, bundle_digest=BUNDLE, inputs_digest=INPUTS)
    meta = {key: value for key, value in shard.items() if key.startswith(SHARD_PREFIX)}
    assert sorted(meta) == ["shard.bundle", "shard.hi", "shard.inputs", "shard.lo", "shard.total"]
    assert [int(shard[f"shard.{k}"]) for k in ("lo", "hi", "total")] == [3, 7, 23]
    for key in ("shard.lo", "shard.hi", "shard.total"):
        assert shard[key].dtype == np.int64 and shard[key].ndim == 0
    for key, value in (("shard.bundle", BUNDLE), ("shard.inputs", INPUTS)):
        assert shard[key].dtype.kind == "U" and shard[key].ndim == 0 and str(shard[key]) == value
    assert all(shard[key] is value for key, value in part.items())
    with pytest.raises(ValueError, match="does not hold 5 samples"):
        with_shard(part, lo=3, hi=8, total=23, bundle_digest=BUNDLE, inputs_digest=INPUTS)
    with pytest.raises(ValueError, match="not within"):
        with_shard(part, lo=20, hi=24, total=23, bundle_digest=BUNDLE, inputs_digest=INPUTS)


def test_bundle_digest_survives_a_save_and_load(tmp_path):
    b = reference_bundle()
    digest = bundle_digest(b)
    assert len(digest) == 64
    loaded = load_bundle(save_bundle(b, tmp_path / "b"))
    assert bundle_digest(loaded) == digest
    assert bundle_digest(load_bundle(save_bundle(loaded, tmp_path / "c"))) == digest
    # narrow dtypes and a [C, H, W] threshold load as int64 vectors: the digest is the same
    narrow = bundle(
        [
            conv(
                "c",
                np.ones((2, 1, 3, 3), np.int8),
                (1, 4, 4),
                threshold=np.arange(1, 9, dtype=np.int16).reshape(2, 2, 2),
            ),
            linear("o", np.ones((3, 8), np.int8), fire="accum"),
        ]
    )
    narrow.layers[1].weight = narrow.layers[1].weight.astype(np.int8)
    assert bundle_digest(load_bundle(save_bundle(narrow, tmp_path / "n"))) == bundle_digest(narrow)


def test_bundle_digest_changes_with_any_field():
    digest = bundle_digest(reference_bundle())
    changes = []
    b = reference_bundle()
    b.layers[0].weight = b.layers[0].weight.copy()
    b.layers[0].weight[0, 0, 0, 0] += 1
    changes.append(b)
    b = reference_bundle()
    b.layers[1].threshold = 96
    changes.append(b)
    b = reference_bundle()
    b.layers[1].leak = Leak("mult", lam=231, frac=8)
    changes.append(b)
    b = reference_bundle()
    b.timesteps = 4
    changes.append(b)
    b = reference_bundle()
    b.meta = {"training": {"seed": 2}}
    changes.append(b)
    digests = {bundle_digest(c) for c in changes}
    assert digest not in digests and len(digests) == len(changes) == 5


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(b=random_bundles())
def test_random_bundle_digests_survive_a_round_trip(b, tmp_path_factory):
    path = tmp_path_factory.mktemp("bundle")
    assert bundle_digest(load_bundle(save_bundle(b, path))) == bundle_digest(b)


# ---------------------------------------------------------------------------------- merge


@pytest.mark.parametrize(("total", "n"), [(23, 1), (23, 4), (23, 23), (3, 5), (360, 7)])
def test_merge_of_shuffled_parts_is_the_whole(tmp_path, total, n):
    arrays = whole(total)
    paths = write_parts(tmp_path, arrays, n)
    random.Random(n).shuffle(paths)
    merged, info = merge_results([str(p) for p in paths] if n % 2 else paths)
    assert assert_equal_arrays(merged, arrays) == 4
    assert not any(key.startswith(SHARD_PREFIX) for key in merged)
    assert info == {"total": total, "parts": n, "bundle": BUNDLE, "inputs": INPUTS}


def test_merge_of_a_whole_golden_result(tmp_path):
    """A real result (the golden model's keys and dtypes) through 3 shards and back."""
    from spikeforge.sim import golden

    b = reference_bundle()
    x = np.random.default_rng(3).integers(0, 32, size=(10, 1, 8, 8))
    arrays = golden.run(b, x).result_arrays()
    paths = write_parts(tmp_path, arrays, 3, bundle=bundle_digest(b), inputs=array_digest(x))
    merged, info = merge_results(paths[::-1])
    assert assert_equal_arrays(merged, arrays) == 5
    assert info["bundle"] == bundle_digest(b) and info["inputs"] == array_digest(x)


def refuses(paths, *words: str) -> str:
    with pytest.raises(ShardError) as info:
        merge_results(paths)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)
    return message


def test_refuses_no_parts():
    refuses([], "no partial results")


def test_refuses_a_result_that_is_not_partial(tmp_path):
    plain = write_npz_atomic(tmp_path / "plain.npz", whole())
    parts = write_parts(tmp_path, whole(), 2)
    message = refuses([parts[0], plain, parts[1]], str(plain))
    assert message == (
        f"{plain} is not a partial result (no shard.* keys): it was not written with --shard"
    )


def test_refuses_unreadable_files(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    np.save(tmp_path / "one.npy", np.arange(3))
    (tmp_path / "dir.npz").mkdir()
    np.savez(tmp_path / "pickled.npz", pred=np.array([None, 1], dtype=object))
    truncated = write_parts(tmp_path, whole(), 1)[0].read_bytes()
    (tmp_path / "short.npz").write_bytes(truncated[: len(truncated) // 2])
    cases = {
        "missing.npz": "does not exist",
        "junk.npz": "is not a readable RESULT.npz",
        "one.npy": "not a RESULT.npz archive",
        "dir.npz": "is not a regular file",
        "pickled.npz": "is not a readable RESULT.npz",
        "short.npz": "is not a readable RESULT.npz",
    }
    for name, words in cases.items():
        path = tmp_path / name
        assert refuses([path], words).startswith(f"{path} "), name
    assert len(cases) == 6


def test_refuses_parts_of_different_bundles(tmp_path):
    a = write_parts(tmp_path, whole(), 2, name="a")
    b = write_parts(tmp_path, whole(), 2, bundle="c" * 64, name="b")
    message = refuses([a[0], b[1]], str(a[0]), str(b[1]), "from different bundles")
    assert message.startswith(f"{a[0]} and {b[1]} are from different bundles")


def test_refuses_parts_of_different_inputs(tmp_path):
    a = write_parts(tmp_path, whole(), 2, name="a")
    b = write_parts(tmp_path, whole(), 2, inputs="2" * 64, name="b")
    refuses([a[0], b[1]], f"{a[0]} and {b[1]} are of different inputs")
    c = write_parts(tmp_path, whole(24), 2, name="c")
    refuses([a[0], c[1]], f"{a[0]} and {c[1]} are of different inputs", "23 and 24 samples")


def test_refuses_parts_with_different_arrays(tmp_path):
    arrays = whole()
    a = write_parts(tmp_path, arrays, 2, name="a")
    fewer = {key: value for key, value in arrays.items() if key != "spikes.out"}
    b = write_parts(tmp_path, fewer, 2, name="b")
    refuses([a[0], b[1]], "hold different arrays", f"spikes.out only in {a[0]}")
    c = write_parts(tmp_path, arrays | {"v_out": arrays["v_out"].astype(np.int64)}, 2, name="c")
    refuses([a[0], c[1]], f"{a[0]} and {c[1]} differ in v_out", "int32", "int64")
    wide = arrays | {"spikes.out": np.zeros((23, 2, 4), np.uint8)}
    d = write_parts(tmp_path, wide, 2, name="d")
    refuses([a[0], d[1]], "differ in spikes.out", "[N, 2, 3]", "[N, 2, 4]")


def test_refuses_overlaps(tmp_path):
    halves = write_parts(tmp_path, whole(), 2, name="h")  # 0..10, 11..22
    thirds = write_parts(tmp_path, whole(), 3, name="t")  # 0..6, 7..14, 15..22
    message = refuses([halves[0], thirds[1], thirds[2]], "overlap")
    assert message == f"{halves[0]} (samples 0..10) and {thirds[1]} (samples 7..14) overlap"
    refuses([*halves, halves[0]], "overlap", str(halves[0]), "given twice")
    refuses([halves[1], halves[0], halves[1]], "overlap", str(halves[1]), "given twice")
    link = tmp_path / "link.npz"
    link.symlink_to(halves[0])
    refuses([*halves, link], "overlap", str(link), "given twice")


def test_refuses_gaps_and_missing_samples(tmp_path):
    quarters = write_parts(tmp_path, whole(), 4)  # 0..4, 5..10, 11..16, 17..22
    message = refuses([quarters[0], quarters[3], quarters[1]], "samples 11..16 of 23")
    assert (
        message == f"no part holds samples 11..16 of 23 (between {quarters[1]} and {quarters[3]})"
    )
    refuses(quarters[:3], f"no part holds samples 17..22 of 23 (after {quarters[2]})")
    refuses(quarters[1:], f"no part holds samples 0..4 of 23 (before {quarters[1]})")
    single = write_parts(tmp_path, whole(2), 2, name="s")
    refuses(single[1:], "no part holds sample 0 of 2")


def test_refuses_a_damaged_partial(tmp_path):
    part = {key: value[:5] for key, value in whole().items()}
    shard = with_shard(part, lo=0, hi=5, total=23, bundle_digest=BUNDLE, inputs_digest=INPUTS)
    shard["v_out"] = shard["v_out"][:4]
    write_npz_atomic(tmp_path / "bad.npz", shard)
    refuses([tmp_path / "bad.npz"], "damaged", "v_out", "5 samples")
    del shard["shard.inputs"]
    write_npz_atomic(tmp_path / "bad.npz", shard)
    refuses([tmp_path / "bad.npz"], "damaged", "lacks shard.inputs")
