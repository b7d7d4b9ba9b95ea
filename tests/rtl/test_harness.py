"""The chip harness's host side (spikeforge.rtl.harness): stimulus files, the generated shell's
ports, and the decoding of its event and sample files, without a simulator (the simulated
harness is exercised by every chip test)."""

from __future__ import annotations

import numpy as np
import pytest
from spikeforge.rtl.chip.top import Chip, ChipOptions, plan_chip
from spikeforge.rtl.harness import output, shell, stimulus
from spikeforge.sim import golden

from tests.rtl.test_chip import random_bundle, random_inputs


def _plan(seed: int = 3, encoding: str = "spikes"):
    rng = np.random.default_rng(seed)
    bundle = random_bundle(rng, encoding, 2)
    return plan_chip(bundle, ChipOptions(lanes=2)), rng


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")  # ports read, not built
def test_port_widths_are_the_chips():
    for seed, encoding in ((3, "spikes"), (4, "direct"), (5, "direct")):
        plan, _ = _plan(seed, encoding)
        chip = Chip(plan)
        widths = shell._port_widths(plan)
        assert widths == {
            "addr": len(chip.wr.addr),
            "data": len(chip.wr.data),
            "count": len(chip.count),
            "passes": len(chip.passes),
            "cfg": plan.cfg_addr_bits,
            "mon": len(chip.mon),
        }


def test_shell_names_every_chip_port_and_file():
    plan, _ = _plan()
    chips = [shell.ShellChip(plan, "c0", 1000), shell.ShellChip(plan, "c1", 1000)]
    text = shell.shell_verilog(chips, "sf_chip")
    assert text.count("module sf_chip_tb(") == 1 and "sf_chip dut(" in text
    for k, prefix in enumerate(("c0__", "c1__")):
        for port in ("wr__en", "start", "count", "passes", "cfg__valid", "mon", "mon_toggle"):
            assert f".{prefix}{port}(" in text, (prefix, port)
        for name in (stimulus.stim_file(k), stimulus.reads_file(k), stimulus.events_file(k)):
            assert f'"{name}"' in text
    assert "input wire clk" in text and "public_flat_rw" in text


def test_stimulus_file_layout(tmp_path):
    plan, rng = _plan()
    x = golden.check_input(plan.bundle, random_inputs(rng, plan.bundle, 3))
    words = plan.sample_words(x)
    lines = stimulus.write_stimulus(tmp_path / "s.hex", words, shell.stim_bits(plan))
    values = [int(v, 16) for v in (tmp_path / "s.hex").read_text().split()]
    assert lines == len(values) == 1 + sum(1 + len(w) for w in words)
    assert values[0] == 3
    at = 1
    for w in words:
        assert values[at] == len(w) and values[at + 1 : at + 1 + len(w)] == w
        at += 1 + len(w)
    digits = {len(v) for v in (tmp_path / "s.hex").read_text().split()}
    assert digits == {-(-shell.stim_bits(plan) // 4)}
    with pytest.raises(ValueError, match="does not fit"):
        stimulus.write_stimulus(tmp_path / "big.hex", [[0] * stimulus.STIM_WORDS], 32)


def test_batches_fit_the_stimulus_memory():
    plan, _ = _plan()
    chip = shell.ShellChip(plan, "", 100)
    assert chip.batch_samples * (plan.depth + 1) + 1 <= stimulus.STIM_WORDS
    assert chip.reads == plan.v_out_reads() + plan.counter_reads()


def test_steps_count_ticks_within_each_sample():
    sample = np.array([0, 0, 0, 0, 1, 1, 1])
    tick = np.array([0, 1, 0, 1, 0, 1, 0], dtype=bool)
    assert output.steps_within_samples(sample, tick).tolist() == [0, 0, 1, 1, 0, 0, 1]
    assert output.steps_within_samples(sample[:0], tick[:0]).tolist() == []


def test_decode_events_builds_trains_and_counts_anomalies():
    plan, _ = _plan()
    t = plan.bundle.timesteps
    n0 = plan.stages[0].layer.n_out
    rows = [(0, 0, output.SPIKE, 0, 5)]  # sample 0 step 0 neuron 0
    for step in range(t):
        rows.append((0, 0, output.TICK, 0, 10 + step))
    rows += [(1, 0, output.SPIKE, n0 - 1, 3), (1, 0, output.SPIKE, n0 - 1, 4)]  # out of order
    rows += [(1, 0, output.SPIKE, n0, 6)]  # out of range
    rows += [(1, 0, 3, 0, 7), (1, 0, output.CLEAR, 0, 8)]
    spikes, counts = output.decode_events(np.array(rows), plan, 2)
    assert spikes[0].shape == (2, t, n0) and spikes[0][0, 0, 0] == 1
    assert spikes[0][1, 0, n0 - 1] == 1 and int(spikes[0].sum()) == 2
    assert counts == {"spikes": 3, "ticks": t, "clears": 1, "out_of_range": 1,
                      "order_violations": 1, "unexpected_ops": 1}  # fmt: skip


def test_read_numbers_refuses_ragged_files(tmp_path):
    (tmp_path / "a.txt").write_text("1 2 3\n4 5 6\n")
    assert output.read_numbers(tmp_path / "a.txt", 3).tolist() == [[1, 2, 3], [4, 5, 6]]
    (tmp_path / "b.txt").write_text("")
    assert output.read_numbers(tmp_path / "b.txt", 3).shape == (0, 3)
    (tmp_path / "c.txt").write_text("1 2 3 4\n")
    with pytest.raises(ValueError, match="not rows of 3"):
        output.read_numbers(tmp_path / "c.txt", 3)


def test_event_cycle_finds_the_spike_or_the_closing_tick(tmp_path):
    rows = "0 0 0 4 11\n0 0 1 0 12\n0 0 0 2 20\n0 0 1 0 21\n1 0 0 4 7\n"
    (tmp_path / stimulus.events_file(0)).write_text(rows)
    assert output.event_cycle(tmp_path, 0, 0, 0, 0, 4) == (11, "spike")
    assert output.event_cycle(tmp_path, 0, 0, 0, 1, 2) == (20, "spike")
    assert output.event_cycle(tmp_path, 0, 0, 0, 1, 4) == (21, "TICK closing the step")
    assert output.event_cycle(tmp_path, 0, 1, 0, 0, 4) == (7, "spike")
    assert output.event_cycle(tmp_path, 0, 0, 0, 5, 4) is None
