"""Every command's failure paths: one line (plus a hint), a documented exit code, no traceback,
and nothing changed outside the intended output (docs/cli.md)."""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from spikeforge.sim.bundle import save_bundle

from spikeforge import cli
from tests.sim.test_bundle import reference_bundle


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and directory under ``root``: kind, size and content hash."""
    found = {}
    for path in sorted(root.rglob("*")):
        key = str(path.relative_to(root))
        if path.is_symlink():
            found[key] = ("link", os.readlink(path))
        elif path.is_dir():
            found[key] = ("dir",)
        elif path.is_file():
            found[key] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            found[key] = ("special", stat.S_IFMT(path.lstat().st_mode))
    return found


@pytest.fixture
def ws(tmp_path, monkeypatch):
    """A workspace: a bundle, inputs, labels, an unrelated folder; the current directory."""
    save_bundle(reference_bundle(), tmp_path / "b")
    np.save(tmp_path / "x.npy", np.random.default_rng(1).integers(0, 32, size=(4, 1, 8, 8)))
    np.save(tmp_path / "y.npy", np.arange(4) % 3)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("not spikeforge's")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fails(capsys, argv: list[str], code: int, words: str, root: Path, changed=()) -> str:
    """Run the command, check the exit code, the one error line (plus at most a hint), that no
    traceback shows, and that nothing under ``root`` changed except ``changed``."""
    before = snapshot(root)
    rc = cli.main(argv)
    out, err = capsys.readouterr()
    assert rc == code, (rc, out, err)
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    command = next((f"spikeforge {a}" for a in argv if a in cli.COMMANDS), "spikeforge")
    assert lines[0].startswith(f"{command}: error:"), err
    if len(lines) == 2:
        assert lines[1].startswith("hint:"), err
    assert words in err, err
    after = snapshot(root)
    differ = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert differ <= set(changed), differ
    return err


RUN = ["run", "b", "--input", "x.npy"]


# ---------------------------------------------------------------------------------- run


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--out", "/dev/full"], "/dev/full"),
        (["--out", "b/weights.npz"], "weights.npz"),
        (["--out", "b/manifest.json"], "manifest.json"),
        (["--out", "x.npy"], "input"),
        (["--out", "/proc/x"], "/proc/x"),
        (["--out", "notes"], "notes"),
        (["--out", "missing/r.npz"], "missing"),
        (["--out", "r.npz", "--labels", "nope.npy"], "does not exist"),
    ],
)
def test_run_refuses_outputs_and_inputs_before_work(ws, capsys, extra, words):
    fails(capsys, [*RUN, *extra], 2, words, ws)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_run_refuses_a_symlink_and_a_fifo(ws, capsys):
    (ws / "link.npz").symlink_to(ws / "notes" / "keep.txt")
    fails(capsys, [*RUN, "--out", "link.npz"], 2, "link.npz", ws)
    os.mkfifo(ws / "fifo")
    fails(capsys, [*RUN, "--out", "fifo"], 2, "fifo", ws)


def test_run_corrupt_weights_and_manifest(ws, capsys):
    weights = ws / "b" / "weights.npz"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])
    fails(capsys, [*RUN, "--out", "r.npz"], 2, "weights.npz", ws)
    copy = ws.parent / f"{ws.name}-weights.npz"  # outside the watched workspace
    copy.write_bytes(good)
    with zipfile.ZipFile(copy) as archive:
        info = max(archive.infolist(), key=lambda i: i.compress_size)
    head = info.header_offset
    name_len, extra_len = struct.unpack("<HH", good[head + 26 : head + 30])
    start = head + 30 + name_len + extra_len
    for offset, error in ((0, "zlib"), (info.compress_size // 2, "")):
        data = bytearray(good)
        data[start + offset] ^= 0xFF  # the deflate stream itself: zlib.error or a bad CRC
        weights.write_bytes(bytes(data))
        fails(capsys, [*RUN, "--out", "r.npz"], 2, "weights.npz", ws)
        if error:
            with pytest.raises(zlib.error):
                with np.load(weights) as npz:
                    [npz[key] for key in npz.files]
    weights.write_bytes(good)
    (ws / "b" / "manifest.json").write_text('{"format": ')
    fails(capsys, [*RUN, "--out", "r.npz"], 2, "manifest.json", ws)


def test_run_bad_inputs_and_labels(ws, capsys):
    np.save(ws / "bad.npy", np.zeros((2, 64), np.int64))
    fails(capsys, ["run", "b", "--input", "bad.npy", "--out", "r.npz"], 2, "shape", ws)
    np.save(ws / "y5.npy", np.arange(5))
    fails(capsys, [*RUN, "--out", "r.npz", "--labels", "y5.npy"], 2, "labels", ws)
    fails(capsys, ["run", "nope", "--input", "x.npy", "--out", "r.npz"], 2, "nope", ws)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["run", "b", "--input", "x.npy"], "--out"),
        (["run", "b", "--input", "x.npy", "--out", "r.npz", "--bogus"], "--bogus"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_usage_errors_are_one_line(ws, capsys, argv, words):
    fails(capsys, argv, 2, words, ws)


def test_run_huge_time_steps_refused_before_allocating(ws, capsys):
    bundle = reference_bundle()
    bundle.timesteps = 10**9
    save_bundle(bundle, ws / "long")
    fails(capsys, ["run", "long", "--input", "x.npy", "--out", "r.npz"], 2, "memory", ws)


def test_run_full_disk_names_the_path_and_leaves_nothing(ws, capsys, monkeypatch):
    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(ws / "r.npz"))

    monkeypatch.setattr(np, "savez_compressed", full)
    err = fails(capsys, [*RUN, "--out", "r.npz"], 2, "No space left on device", ws)
    assert "r.npz" in err and "hint:" in err


def test_run_ctrl_c_is_one_line_and_130(ws, capsys, monkeypatch):
    from spikeforge.sim import golden

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(golden, "run", interrupted)
    fails(capsys, [*RUN, "--out", "r.npz"], 130, "interrupted", ws)


def test_internal_error_is_one_line_and_debug_shows_the_traceback(ws, capsys, monkeypatch):
    from spikeforge.sim import golden

    def broken(*_args, **_kwargs):
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(golden, "run", broken)
    fails(capsys, [*RUN, "--out", "r.npz"], 4, "internal error", ws)
    assert cli.main(["--debug", *RUN, "--out", "r.npz"]) == 4
    assert "Traceback" in capsys.readouterr().err
    assert cli.main([*RUN, "--out", "r.npz", "--debug"]) == 4
    assert "Traceback" in capsys.readouterr().err


# ---------------------------------------------------------------------------------- train

TRAIN = ["train", "--no-progress", "--threads", "1"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--limit-test", "-5"], "--limit-test"),
        (["--limit-train", "0"], "--limit-train"),
        (["--ann-epochs", "-1"], "--ann-epochs"),
        (["--snn-epochs", "-2"], "--snn-epochs"),
        (["--bittrue-epochs", "x"], "--bittrue-epochs expects an integer"),
        (["--timesteps", "1000000000"], "--timesteps"),
        (["--timesteps", "0"], "--timesteps"),
        (["--v-bits", "32"], "hardware core's v_bits"),
        (["--v-bits", "4"], "--v-bits"),
        (["--w-bits", "9"], "--w-bits"),
        (["--method", "stdp"], "unknown --method"),
        (["--dropout", "1"], "--dropout"),
        (["--ann-lr", "0"], "--ann-lr"),
        (["--snn-lr", "nan"], "--snn-lr"),
        (["--seed", "-1"], "--seed"),
        (["--threads", "0"], "--threads"),
        (["--eval-every", "0"], "--eval-every"),
        (["--batch-size", "0"], "--batch-size"),
        (["--encoding", "morse"], "--encoding"),
        (["--method-option", "novalue"], "KEY=VALUE"),
    ],
)
def test_train_refuses_bad_numbers_before_work(ws, capsys, extra, words):
    err = fails(capsys, [*TRAIN, "--out", "o", *extra], 2, words, ws)
    assert "spikeforge train: digits" not in err


def test_train_refuses_what_only_fails_later(ws, capsys):
    fails(capsys, [*TRAIN, "--out", "o", "--arch", "64-c8"], 2, "cannot follow", ws)
    fails(capsys, [*TRAIN, "--out", "o", "--dataset", "mnist"], 2, "mnist", ws)
    big = ["--timesteps", "4096", "--batch-size", "65536", "--arch", "4096-4096"]
    fails(capsys, [*TRAIN, "--out", "o", *big], 2, "memory", ws)


@pytest.mark.parametrize(
    ("out", "words"),
    [
        ("/proc/x", "/proc/x"),
        ("notes", "notes"),
        (".", "."),
        ("x.npy", "x.npy"),
        ("/dev/full", "/dev/full"),
    ],
)
def test_train_refuses_its_output_before_training(ws, capsys, out, words):
    start = time.perf_counter()
    fails(capsys, [*TRAIN, "--out", out], 2, words, ws)
    assert time.perf_counter() - start < 30


# ---------------------------------------------------------------------------------- verilog


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--n-axons", "0", "--n-neurons", "4", "--out", "c.v"], "--n-axons"),
        (["--n-axons", "65536", "--n-neurons", "65536", "--out", "c.v"], "exceeds"),
        (["--n-axons", "4", "--n-neurons", "4", "--v-bits", "25", "--out", "c.v"], "v_bits"),
        (["--n-axons", "4", "--n-neurons", "4", "--lanes", "3", "--out", "c.v"], "--lanes"),
        (["--n-axons", "4", "--n-neurons", "4", "--name", "a b", "--out", "c.v"], "identifier"),
        (["--n-axons", "4", "--n-neurons", "4", "--leak-modes", "leaky", "--out", "c.v"], "leak"),
        (["--n-axons", "4", "--n-neurons", "4", "--acc-bits", "4", "--out", "c.v"], "acc_bits"),
        (["--n-axons", "4", "--n-neurons", "4", "--out", "/dev/full"], "/dev/full"),
        (["--n-axons", "4", "--n-neurons", "4", "--out", "/proc/c.v"], "/proc"),
        (["--n-neurons", "4", "--out", "c.v"], "--n-axons"),
        (["b", "--out", "hw", "--adc-bits", "0"], "ADC bits"),
        (["b", "--out", "hw", "--max-neurons", "0"], "--max-neurons"),
        (["b", "--out", "hw", "--core", "64"], "AXONSxNEURONS"),
        (["b", "--out", "x.npy"], "x.npy"),
    ],
)
def test_verilog_failures(ws, capsys, argv, words):
    fails(capsys, ["verilog", *argv], 2, words, ws)


# ---------------------------------------------------------------------------------- rtl-sim

RTL = ["rtl-sim", "b", "--input", "x.npy"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--out", "r.npz", "--limit", "-1"], "--limit"),
        (["--out", "r.npz", "--limit", "0"], "--limit"),
        (["--out", "r.npz", "--lanes", "5"], "--lanes"),
        (["--out", "r.npz", "--sim", "modelsim"], "--sim"),
        (["--out", "b/weights.npz"], "weights.npz"),
        (["--out", "/dev/full"], "/dev/full"),
        (["--out", "r.npz", "--build-dir", "notes"], "notes"),
        (["--out", "r.npz", "--labels", "y.npy", "--dataset-split", "test"], "not allowed"),
    ],
)
def test_rtl_sim_failures(ws, capsys, extra, words):
    fails(capsys, [*RTL, *extra], 2, words, ws)


def test_rtl_sim_missing_simulator_is_exit_3_before_building(ws, capsys, monkeypatch):
    import spikeforge.sim.flow as flow

    monkeypatch.setattr(flow.shutil, "which", lambda _name: None)
    fails(capsys, [*RTL, "--out", "r.npz", "--sim", "icarus"], 3, "Icarus", ws)


def test_rtl_sim_build_failure_is_exit_3_naming_the_log(ws, capsys, monkeypatch):
    from spikeforge.sim.flow import SimulationFailed

    from spikeforge import rtl_flow

    log = ws / "build" / "build.log"

    def failed(*_args, **_kwargs):
        log.parent.mkdir()
        log.write_text("error: something\n")
        raise SimulationFailed(f"verilator: building sf_chip failed (1)\n--- last lines of {log}:")

    monkeypatch.setattr(rtl_flow, "run_chip", failed)
    argv = [*RTL, "--out", "r.npz", "--build-dir", "build"]
    kept = {"build", "build/build.log"}
    err = fails(capsys, argv, 3, "building sf_chip failed", ws, changed=kept)
    assert f"hint: the full log is {log}" in err


# ---------------------------------------------------------------------------------- pim-sweep

PIM = ["pim-sweep", "b", "--input", "x.npy", "--labels", "y.npy"]


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--out", "s", "--seeds", "0"], "--seeds"),
        (["--out", "s", "--seeds", "1000"], "--seeds"),
        (["--out", "s", "--rows-active", "513"], "--rows-active"),
        (["--out", "s", "--adc-bits", "9:4"], "LO <= HI"),
        (["--out", "s", "--knobs", "bogus"], "--knobs"),
        (["--out", "s", "--combine", "both2"], "--combine"),
        (["--out", "s", "--limit", "-3"], "--limit"),
        (["--out", "/dev/full"], "/dev/full"),
        (["--out", "x.npy"], "x.npy"),
        (["--out", "/proc/s"], "/proc/s"),
    ],
)
def test_pim_sweep_failures(ws, capsys, extra, words):
    fails(capsys, [*PIM, *extra], 2, words, ws)


# ---------------------------------------------------------------------------------- whole


def test_every_help_lists_every_accepted_choice(capsys):
    """Each command's --help shows all values its choice options accept, --method included."""
    from spikeforge.algo.methods import METHODS

    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    checked = 0
    for name, command in commands.items():
        assert cli.main([name, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        for action in command._actions:
            for choice in action.choices or ():
                assert str(choice) in text, (name, action.dest, choice)
                checked += 1
    assert set(METHODS) <= set(commands["train"]._option_string_actions["--method"].choices)
    assert checked >= len(METHODS) + 20


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "exit codes" in capsys.readouterr().out


def test_ctrl_c_during_training_exits_130_in_one_line(tmp_path):
    """A real SIGINT to a training process: one line on stderr, exit 130, no bundle written."""
    out = tmp_path / "o"
    argv = [sys.executable, "-m", "spikeforge.cli", *TRAIN, "--out", str(out)]
    argv += ["--limit-train", "200", "--ann-epochs", "10000", "--arch", "16"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("spikeforge train: digits"), line
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in rest + err and len(err.strip().splitlines()) <= 2, err
    assert "interrupted" in rest + err
    assert not (out / "manifest.json").exists()


def test_docs_list_every_option_and_exit_code():
    """docs/cli.md names every option of every command and every exit code."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    named = 0
    for name, command in commands.items():
        assert f"`spikeforge {name}" in text, name
        for action in command._actions:
            for flag in action.option_strings:
                if flag in ("-h", "--help", "--debug"):
                    continue
                assert f"`{flag}" in text, (name, flag)
                named += 1
    assert named > 60
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |", "| 4 |", "| 130 |"):
        assert code in text
