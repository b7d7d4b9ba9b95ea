"""Checkpoints and ``--resume``: a run stopped mid-phase and resumed ends with the same bundle
bytes as one never stopped; the same seed twice gives the same bytes."""

from __future__ import annotations

import hashlib
import os
import signal

import pytest
import torch
from spikeforge.algo.training import checkpoint

from spikeforge.cli import train as train_cli
from spikeforge.cli.errors import UsageError
from tests.train_options import parse_train_args, short_run_argv

SMALL = short_run_argv(limit_train=240, arch=24, batch_size=32, snn_epochs=3, bittrue_epochs=2)
#: Checkpoint writes of a SMALL hybrid run: one per epoch (3 ANN, 3 SNN, 2 bit-true).
WRITES = 8


class Killed(BaseException):
    """Stands in for the process dying (nothing after it runs, no checkpoint is written)."""


def _digests(out) -> dict[str, str]:
    return {
        name: hashlib.sha256((out / name).read_bytes()).hexdigest()
        for name in ("weights.npz", "manifest.json")
    }


def _run(out, *extra: str) -> int:
    return train_cli.main(parse_train_args("--out", str(out), *SMALL, *extra))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted SMALL hybrid run (made once): its directory."""
    out = tmp_path_factory.mktemp("reference") / "hybrid"
    assert _run(out) == 0
    return out


def _stop_after_write(monkeypatch, writes: int, action) -> list[dict]:
    """Call ``action`` right after the ``writes``-th checkpoint is on disk; returns the
    payloads written so far (their phase and progress)."""
    written: list[dict] = []
    real = checkpoint.write_atomically

    def write(path, payload):
        real(path, payload)
        written.append({"phase": payload["phase"], **payload["progress"]})
        if len(written) == writes:
            action()

    monkeypatch.setattr(checkpoint, "write_atomically", write)
    return written


def test_same_seed_same_bytes(tmp_path, reference):
    first = _digests(reference)
    assert _run(tmp_path / "again") == 0
    assert _digests(tmp_path / "again") == first
    assert len(first) == 2
    assert (tmp_path / "again" / "checkpoint" / checkpoint.STATE_FILE).is_file()


def test_resume_after_kill_mid_phase(tmp_path, reference, monkeypatch):
    """Killed after the first SNN epoch's checkpoint (no stop checkpoint): resume continues
    the SNN phase and the bundle bytes equal an uninterrupted run's."""
    want = _digests(reference)
    out = tmp_path / "killed"

    def die():
        raise Killed

    written = _stop_after_write(monkeypatch, 4, die)
    with pytest.raises(Killed):
        _run(out)
    assert written[-1]["phase"] == "snn" and written[-1]["epoch"] == 1
    assert not (out / "weights.npz").exists()
    monkeypatch.undo()
    assert _run(out, "--resume", str(out)) == 0
    assert _digests(out) == want


def test_resume_after_sigterm_mid_epoch(tmp_path, reference, monkeypatch, capsys):
    """SIGTERM in the middle of an SNN epoch: the loop writes a checkpoint at the next batch
    boundary and stops (exit status 143); resume gives the uninterrupted run's bytes."""
    want = _digests(reference)
    out = tmp_path / "stopped"
    written = _stop_after_write(monkeypatch, 4, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert _run(out) == 128 + signal.SIGTERM
    assert "--resume" in capsys.readouterr().out
    assert len(written) == 5
    last = written[-1]
    assert last["phase"] == "snn" and last["epoch"] == 1 and last["batch"] == 1
    assert last["order"] is not None
    monkeypatch.undo()
    assert _run(out, "--resume", str(out)) == 0
    assert _digests(out) == want


def test_resume_run_epochs_method(tmp_path, reference, monkeypatch):
    """bntt trains in ``run_epochs`` (Poisson draws from its own generator) then bit-true in
    ``fit``: killed mid-way through its first phase, it resumes to the same bytes."""
    extra = ("--method", "bntt", "--encoding", "poisson")
    out_ref = tmp_path / "ref-bntt"
    assert _run(out_ref, *extra) == 0
    want = _digests(out_ref)
    out = tmp_path / "bntt"

    def die():
        raise Killed

    written = _stop_after_write(monkeypatch, 1, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert _run(out, *extra) == 128 + signal.SIGTERM
    assert written[-1]["phase"] == "bntt" and written[-1]["batch"] == 1
    monkeypatch.undo()
    written = _stop_after_write(monkeypatch, 3, die)
    with pytest.raises(Killed):
        _run(out, *extra, "--resume", str(out))
    assert written[-1]["phase"] == "bittrue"
    monkeypatch.undo()
    assert _run(out, *extra, "--resume", str(out)) == 0
    assert _digests(out) == want


def test_checkpoint_holds_the_run_state(tmp_path, reference):
    saved = torch.load(reference / "checkpoint" / checkpoint.STATE_FILE, weights_only=True)
    assert saved["phase"] == "bittrue" and saved["phase_index"] == 2
    assert saved["progress"]["epoch"] == 2 and saved["progress"]["batch"] == 0
    assert {"net", "optimiser", "schedule", "shuffle", "rng", "history"} <= set(saved)
    assert len(saved["rng"]) == 1 and len(saved["rng"][0]["generators"]) == 1
    assert [h["phase"] for h in saved["history"]].count("snn") == 3


def test_resume_refuses_other_runs_and_methods(tmp_path, reference):
    done = reference
    with pytest.raises(UsageError, match=r"different run.*snn_epochs"):
        train_cli.main(
            parse_train_args(
                "--out", str(tmp_path / "x"), *SMALL, "--snn-epochs", "4", "--resume", str(done)
            )
        )
    with pytest.raises(UsageError, match=r"different run.*loader"):
        _run(tmp_path / "v", "--loader", "stream", "--resume", str(done))
    with pytest.raises(UsageError, match="no checkpoint"):
        _run(tmp_path / "y", "--resume", str(tmp_path / "nowhere"))
    with pytest.raises(UsageError, match="'bpsr' cannot resume"):
        _run(tmp_path / "z", "--method", "bpsr", "--resume", str(done))
    with pytest.raises(UsageError, match="checkpoint-every"):
        _run(tmp_path / "w", "--checkpoint-every", "0")


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "c" / checkpoint.STATE_FILE
    checkpoint.write_atomically(target, {"a": torch.arange(3)})

    class Boom(Exception):
        pass

    class Bad:
        def __reduce__(self):
            raise Boom

    with pytest.raises(Boom):
        checkpoint.write_atomically(target, {"a": Bad()})
    assert torch.equal(torch.load(target, weights_only=True)["a"], torch.arange(3))
    assert sorted(p.name for p in target.parent.iterdir()) == [checkpoint.STATE_FILE]


def test_resume_streamed_data(tmp_path, monkeypatch):
    """``--loader stream`` (DataLoader + DistributedSampler): SIGTERM mid-epoch, resume, the
    bytes of an uninterrupted streamed run."""
    out_ref = tmp_path / "ref-stream"
    assert _run(out_ref, "--loader", "stream") == 0
    out = tmp_path / "stream"
    written = _stop_after_write(monkeypatch, 2, lambda: os.kill(os.getpid(), signal.SIGTERM))
    assert _run(out, "--loader", "stream") == 128 + signal.SIGTERM
    assert written[-1]["phase"] == "ann" and written[-1]["batch"] == 1
    assert written[-1]["order"] is None  # the sampler orders streamed data
    monkeypatch.undo()
    assert _run(out, "--loader", "stream", "--resume", str(out)) == 0
    assert _digests(out) == _digests(out_ref)
