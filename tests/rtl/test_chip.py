"""The whole-network chip (spikeforge.rtl.chip.top) against the golden model, and spikeforge
rtl-sim / verilog.

``test_all_random_chips_match_golden`` (slow: one Verilator build of ten chips, about 7
minutes on 2 cores) builds one top holding a chip for each of ``CHIP_CASES`` (random valid
bundles: both encodings, every leak/reset mode, per-neuron thresholds and biases, input_shift,
signed and unsigned inputs, PIM feed with ideal and lossy ADCs and analog combine, the sums
feed, split layers, lanes 1..16) plus one chip with a corrupted weight, and compares every
spike of every layer, every output potential and the counters with ``spikeforge.sim.golden``. The
default run builds ``FAST_CASES`` only; the command-line test covers the sums feed.
"""

from __future__ import annotations

import numpy as np
import pytest
from spikeforge.pim.model import PimConfig
from spikeforge.rtl.chip.top import ChipError, ChipOptions, plan_chip
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, Layer, load_bundle, save_bundle
from spikeforge.sim.semantics import Leak, signed_range

from spikeforge import cli
from spikeforge.rtl_flow import first_mismatch, run_chips
from tests.rtl.chip_golden import check_chips
from tests.sim.builders import linear

SEED = 7007
SAMPLES = 5


def _leak(rng: np.random.Generator, v_bits: int) -> Leak:
    mode = rng.choice(["mult", "shift", "none"])
    if mode == "mult":
        frac = int(rng.integers(0, 10))
        return Leak("mult", lam=int(rng.integers(0, (1 << frac) + 1)), frac=frac)
    if mode == "shift":
        return Leak("shift", k=int(rng.integers(1, v_bits)))
    return Leak("none")


def random_bundle(
    rng: np.random.Generator, encoding: str, n_layers: int, signed: bool = False
) -> Bundle:
    """A random valid linear bundle inside the core's limits (w_bits 2..8, v_bits 8..24)."""
    n_in = int(rng.integers(1, 20))
    bits = 1 if encoding == "spikes" else int(rng.integers(1, 9))
    spec = InputSpec((n_in,), encoding, bits, signed and bits > 1)
    layers, width = [], n_in
    for k in range(n_layers):
        last = k == n_layers - 1
        n_out = int(rng.integers(1, 25))
        w_bits, v_bits = int(rng.integers(2, 9)), int(rng.integers(8, 25))
        lo, hi = signed_range(w_bits)
        weight = rng.integers(lo, hi + 1, size=(n_out, width))
        weight[rng.random(weight.shape) < 0.2] = 0
        top = max(1, int(np.abs(weight).sum(axis=1).max()) // 4)
        top = min(top, signed_range(v_bits)[1])
        threshold = (
            rng.integers(1, top + 1, size=n_out)
            if rng.random() < 0.5
            else int(rng.integers(1, top + 1))
        )
        bias = None
        if rng.random() < 0.4:
            bias = rng.integers(-top // 2, top // 2 + 1, size=n_out) if rng.random() < 0.5 else 3
        layers.append(
            linear(
                f"l{k}",
                weight,
                fire="accum" if last else "lif",
                threshold=threshold,
                w_bits=w_bits,
                v_bits=v_bits,
                leak=None if last else _leak(rng, v_bits),
                reset="none" if last else str(rng.choice(["sub", "zero", "none"])),
                input_shift=int(rng.integers(0, 4)),
                bias=bias,
            )
        )
        width = n_out
    return Bundle(timesteps=int(rng.integers(1, 5)), input=spec, layers=layers)


def random_inputs(rng: np.random.Generator, bundle: Bundle, n: int) -> np.ndarray:
    spec = bundle.input
    if spec.encoding == "spikes":
        return (rng.random((n, bundle.timesteps, *spec.shape)) < 0.4).astype(np.uint8)
    lo, hi = spec.code_range
    return rng.integers(lo, hi + 1, size=(n, *spec.shape))


#: (encoding, layers, signed inputs, ChipOptions) per chip of the random test.
CHIP_CASES = [
    ("direct", 3, False, ChipOptions(lanes=4)),
    ("direct", 3, True, ChipOptions(lanes=2, max_neurons=5)),
    ("direct", 2, True, ChipOptions(lanes=1, feed="sums")),
    ("spikes", 3, False, ChipOptions(lanes=8, max_neurons=7)),
    ("spikes", 2, False, ChipOptions(lanes=1)),
    ("direct", 2, True, ChipOptions(lanes=16, pim=PimConfig(combine="analog"))),
    ("direct", 3, False, ChipOptions(lanes=4, pim=PimConfig(adc_bits=4))),
    ("direct", 1, False, ChipOptions(lanes=2, max_neurons=3)),
    ("spikes", 1, False, ChipOptions(lanes=4)),
]


#: The chips of the default (fast) run: PIM feed with split layers, spikes with split layers.
FAST_CASES = (1, 3)


def _saved(bundle: Bundle, path) -> Bundle:
    """Through the validating writer and loader, as the command line sees it."""
    save_bundle(bundle, path)
    return load_bundle(path)


def _random_runs(base) -> list:
    rng = np.random.default_rng(SEED)
    runs = []
    for k, (encoding, n_layers, signed, options) in enumerate(CHIP_CASES):
        bundle = _saved(random_bundle(rng, encoding, n_layers, signed), base / f"b{k}")
        x = golden.check_input(bundle, random_inputs(rng, bundle, SAMPLES))
        runs.append((bundle, x, plan_chip(bundle, options)))
    return runs


def test_random_chips_match_golden(simulator, tmp_path):
    runs = [_random_runs(tmp_path)[k] for k in FAST_CASES]
    results = run_chips([(plan, x) for _, x, plan in runs], sim=simulator, build_dir=tmp_path)
    compared, spikes, feeds = check_chips(runs, results)
    assert feeds == {"pim", "spikes"}
    assert compared > 500 and spikes > 50
    assert all(any(len(st.slices) > 1 for st in p.stages) for _, _, p in runs)


@pytest.mark.slow
def test_all_random_chips_match_golden(simulator, tmp_path):
    runs = _random_runs(tmp_path)
    # One more chip: case 0's bundle with one weight of the last layer flipped in hardware.
    bundle, x, _ = runs[0]
    bad = plan_chip(bundle, CHIP_CASES[0][3])
    config = bad.stages[-1].slices[0].config
    config.weights = config.weights.copy()
    config.weights[0, 0] = 1 if config.weights[0, 0] != 1 else 2
    results = run_chips([(plan, x) for _, x, plan in [*runs, (bundle, x, bad)]],
                        sim=simulator, build_dir=tmp_path)  # fmt: skip
    compared, spikes, feeds = check_chips(runs, results[:-1])
    assert feeds == {"pim", "sums", "spikes"}
    assert compared > 2000 and spikes > 200
    assert any(len(stage.slices) > 1 for _, _, p in runs for stage in p.stages)
    # The corrupted chip differs, and the first difference is where golden says.
    want = golden.run(bundle, x)
    found = first_mismatch(bundle, results[-1].arrays, want.result_arrays())
    assert found is not None and found.layer == bundle.layers[-1].name
    assert found.what == "v_out" and found.neuron == 0


def test_first_mismatch_order():
    """Earliest sample first, then step, then layer, then neuron; spikes before v_out."""
    rng = np.random.default_rng(1)
    bundle = random_bundle(rng, "spikes", 3)
    x = golden.check_input(bundle, random_inputs(rng, bundle, 4))
    want = golden.run(bundle, x).result_arrays()
    got = {k: v.copy() for k, v in want.items()}
    assert first_mismatch(bundle, got, want) is None
    got["v_out"][1, 0] += 1
    m = first_mismatch(bundle, got, want)
    assert (m.sample, m.step, m.layer, m.neuron, m.what) == (1, bundle.timesteps - 1, "l2", 0,
                                                             "v_out")  # fmt: skip
    got["spikes.l1"][1, 0, 2] ^= 1
    got["spikes.l0"][1, 0, 3] ^= 1
    m = first_mismatch(bundle, got, want)
    if bundle.layers[0].n_out > 3:
        assert (m.sample, m.step, m.layer, m.neuron) == (1, 0, "l0", 3)
    assert "sample 1, step 0" in str(m)


def test_plan_refuses_what_the_core_cannot_hold():
    rng = np.random.default_rng(2)
    for field, value, limit in (("w_bits", 12, "2..8"), ("v_bits", 6, "8..24")):
        bundle = random_bundle(rng, "spikes", 2)
        layer = bundle.layers[1]
        setattr(layer, field, value)
        layer.weight = np.clip(layer.weight, -2, 1)
        if field == "v_bits":
            layer.threshold = None if layer.fire == "accum" else 1
        with pytest.raises(ChipError, match=f"layer l1: {field} must be in {limit}"):
            plan_chip(bundle)


def test_plan_splits_layers_and_chooses_feeds():
    rng = np.random.default_rng(3)
    bundle = random_bundle(rng, "direct", 2)
    bundle.layers[0] = Layer("l0", "linear", rng.integers(-8, 8, size=(40, bundle.input.shape[0])),
                             bundle.input.shape, 4, 16, 5)  # fmt: skip
    bundle.layers[1].weight = rng.integers(-2, 2, size=(bundle.layers[1].n_out, 40))
    bundle.layers[1].in_shape = (40,)
    plan = plan_chip(bundle, ChipOptions(max_neurons=16, lanes=4))
    sizes = [(s.first, s.size) for s in plan.stages[0].slices]
    assert sizes == [(0, 16), (16, 16), (32, 8)] and plan.feed == "pim"
    assert plan.stages[0].slices[0].config.input_shift == 0
    assert plan_chip(bundle, ChipOptions(feed="sums")).feed == "sums"
    assert len(plan.v_out_reads()) == bundle.layers[-1].n_out
    assert len(plan.counter_reads()) == 4 * plan.n_cores == 4 * 4


def test_rtl_sim_cli_equals_spikeforge_run(simulator, tmp_path, capsys):
    """rtl-sim (sums feed, split layers) writes run's keys with equal arrays; exit 0."""
    rng = np.random.default_rng(11)
    bundle = _saved(random_bundle(rng, "direct", 3, signed=True), tmp_path / "b")
    x = random_inputs(rng, bundle, 4)
    np.save(tmp_path / "x.npy", x)
    args = [str(tmp_path / "b"), "--input", str(tmp_path / "x.npy")]
    assert cli.main(["run", *args, "--out", str(tmp_path / "gold.npz")]) == 0
    rc = cli.main(["rtl-sim", *args, "--sim", simulator, "--lanes", "2", "--feed", "sums",
                   "--max-neurons", "6", "--out", str(tmp_path / "rtl.npz")])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    gold, rtl = np.load(tmp_path / "gold.npz"), np.load(tmp_path / "rtl.npz")
    assert sorted(gold.files) == sorted(rtl.files) and len(gold.files) == 2 + 3
    for key in gold.files:
        assert np.array_equal(gold[key], rtl[key]), key
    for word in ("cycles per sample", "SOPs per cycle", "pJ/SOP", "ACE-SNN"):
        assert word in out


def test_rtl_sim_cli_mismatch_exits_nonzero(tmp_path, capsys, monkeypatch):
    """A corrupted RTL result: exit 1, the first (sample, step, layer, neuron) on stderr."""
    from spikeforge import rtl_flow

    rng = np.random.default_rng(12)
    bundle = _saved(random_bundle(rng, "spikes", 2), tmp_path / "b")
    x = random_inputs(rng, bundle, 3)
    np.save(tmp_path / "x.npy", x)
    want = golden.run(bundle, x)

    def fake_run(bundle, x, *, sim, build_dir, plan, **_run_options):
        arrays = {k: v.copy() for k, v in want.result_arrays().items()}
        arrays["spikes.l0"][2, 0, 0] ^= 1
        counters = np.zeros((x.shape[0], plan.n_cores, 4), dtype=np.int64)
        cycles = np.ones(x.shape[0], dtype=np.int64)
        return rtl_flow.RtlRun(plan, arrays, cycles, counters, {}, {"generate": 0, "simulate": 0})

    monkeypatch.setattr(rtl_flow, "run_chip", fake_run)
    rc = cli.main(["rtl-sim", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"),
                   "--out", str(tmp_path / "r.npz")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 1
    assert "first mismatch: sample 2, step 0, layer l0, neuron 0: spike rtl" in err
    assert (tmp_path / "r.npz").is_file()


def test_rtl_sim_cli_usage_errors(tmp_path, capsys):
    rng = np.random.default_rng(13)
    _saved(random_bundle(rng, "direct", 2), tmp_path / "b")
    np.save(tmp_path / "x.npy", np.zeros((2, 99), dtype=np.int64))
    rc = cli.main(["rtl-sim", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"),
                   "--out", str(tmp_path / "r.npz")])  # fmt: skip
    assert rc == 2 and "input has shape" in capsys.readouterr().err


def test_verilog_cli_writes_chip_and_note(tmp_path, capsys):
    rng = np.random.default_rng(14)
    _saved(random_bundle(rng, "direct", 3), tmp_path / "b")
    hw = str(tmp_path / "hw")
    rc = cli.main(["verilog", str(tmp_path / "b"), "--out", hw, "--lint", "--top", "chip"])
    assert rc == 0, capsys.readouterr().err
    text = (tmp_path / "hw" / "sf_chip.v").read_text()
    note = (tmp_path / "hw" / "sf_chip.md").read_text()
    assert "module sf_chip(" in text and "readmemh" not in text
    ports = ("wr__data", "start", "passes", "busy", "cfg__rdata", "mon", "mon_toggle")
    for port in ports:
        assert f"`{port}`" in note, port
    for heading in ("## Ports", "## Feeding a sample", "## Reading the result"):
        assert heading in note
    assert not (tmp_path / "hw" / "sf_chip_regs.h").exists()


def test_verilog_cli_writes_the_axi_top_by_default(tmp_path, capsys):
    rng = np.random.default_rng(14)
    _saved(random_bundle(rng, "direct", 3), tmp_path / "b")
    rc = cli.main(["verilog", str(tmp_path / "b"), "--out", str(tmp_path / "hw"), "--lint"])
    assert rc == 0, capsys.readouterr().err
    hw = tmp_path / "hw"
    text, note = (hw / "sf_chip.v").read_text(), (hw / "sf_chip.md").read_text()
    assert "module sf_chip(" in text and "module \\sf_chip.chip (" in text
    for port in ("s_axis_tdata", "s_axis_tlast", "m_axis_tready", "s_axil_awaddr", "irq"):
        assert f"`{port}`" in note, port
    for heading in ("## Ports", "## Input stream", "## Result stream", "## One sample",
                    "## Instantiation", "## Configuration window"):  # fmt: skip
        assert heading in note, heading
    header = (hw / "sf_chip_regs.h").read_text()
    assert "#define SF_CHIP_ID 0x000u" in header and "SF_CHIP_CORE0_WEIGHT(axon, neuron)" in header
    assert "| 0x014 | CTRL | RW |" in (hw / "sf_chip_regs.md").read_text()
    assert cli.main(["verilog", "--out", str(tmp_path / "x")]) == 2
    assert "--n-axons" in capsys.readouterr().err
