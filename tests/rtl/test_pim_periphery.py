"""The PIM digital periphery's Verilog under cocotb against the PIM model.

Four periphery builds (digital combine with 1-3 row groups and 4-8 bit-columns, analog combine
with signed codes) share one top; each runs randomised cases made from ``spikeforge.pim.model`` ADC
codes of random first layers (linear and conv2d, signed and unsigned inputs), ideal and lossy ADCs
(fewer bits, gain/offset/INL, noise, mismatch), random input_shift. Every LOAD value must equal
``spikeforge.pim.model.recombine(codes) >> input_shift``, in order, with TICK/CLEAR passed through.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from spikeforge.pim.array import ArrayGeometry
from spikeforge.pim.model import PimConfig, PimLayer
from spikeforge.pim.nonideal import NonIdeal
from spikeforge.rtl.chip.pim_periphery import PeripheryParams, PimPeriphery
from spikeforge.rtl.cores.core import CoreParams, Op
from spikeforge.rtl.gateware.side_by_side import SideBySide
from spikeforge.sim.bundle import InputSpec, Layer
from spikeforge.sim.semantics import signed_range
from spikeforge.sim.testbenches.harness import to_unsigned
from spikeforge.sim.testbenches.run import run_testbench

PARAMS = (
    PeripheryParams(n_neurons=256, n_channels=64, groups=1, columns=6, adc_bits=11),
    PeripheryParams(n_neurons=512, n_channels=16, groups=3, columns=4, adc_bits=12),
    PeripheryParams(
        n_neurons=256, n_channels=32, groups=2, columns=1, adc_bits=16, signed_codes=True
    ),
    PeripheryParams(n_neurons=300, n_channels=24, groups=2, columns=8, adc_bits=8),
)
CASES_PER_INSTANCE = 30
SEED = 6060


def _layer(p: PeripheryParams, rng: np.random.Generator) -> tuple[Layer, int]:
    """A random first layer mapping to exactly ``p.groups`` row groups, and its rows_active."""
    w_bits = p.columns if not p.signed_codes else int(rng.integers(2, 7))
    lo, hi = signed_range(w_bits)
    if rng.random() < 0.5:  # conv2d, when its K splits into p.groups groups
        c, kh, kw = int(rng.integers(1, 3)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
        k = c * kh * kw
        rows = -(-k // p.groups)
        if -(-k // rows) == p.groups:
            positions = (5 + 3 - kh) * (6 + 3 - kw)
            out = int(rng.integers(1, min(p.n_channels, 6, p.n_neurons // positions) + 1))
            weight = rng.integers(lo, hi + 1, size=(out, c, kh, kw))
            return Layer("l1", "conv2d", weight, (c, 5, 6), w_bits, 16, 1, padding=(1, 1)), rows
    rows = int(rng.integers(2, 9))
    k = int(rng.integers((p.groups - 1) * rows + 1, p.groups * rows + 1))
    out = int(rng.integers(1, min(p.n_channels, p.n_neurons) + 1))
    weight = rng.integers(lo, hi + 1, size=(out, k))
    return Layer("l1", "linear", weight, (k,), w_bits, 16, 1), rows


def _knobs(rng: np.random.Generator) -> NonIdeal:
    seed = int(rng.integers(0, 1000))
    return NonIdeal(
        seed=seed,
        read_noise=float(rng.choice([0.0, 0.002, 0.01])),
        cell_sigma=float(rng.choice([0.0, 0.05])),
        adc_gain=float(rng.choice([0.0, -0.05, 0.1])),
        adc_offset=float(rng.choice([0.0, -0.6, 1.3])),
        adc_inl=float(rng.choice([0.0, 1.5])),
        dac_alpha=float(rng.choice([1.0, 0.9])),
    )


def make_case(p: PeripheryParams, rng: np.random.Generator, index: int) -> dict:
    """One case: a random layer and inputs through the PIM model, its codes as stimulus."""
    layer, rows = _layer(p, rng)
    layer.input_shift = int(rng.integers(0, 1 << p.shift_bits))
    bits = int(rng.integers(1, 9))
    signed = bits > 1 and bool(rng.random() < 0.5)
    spec = InputSpec(shape=layer.in_shape, bits=bits, signed=signed)
    geometry = ArrayGeometry(rows_active=rows)
    combine = "analog" if p.signed_codes else "digital"
    ideal = PimLayer(layer, spec, PimConfig(combine=combine, geometry=geometry))
    need = ideal.adc.bits
    lossy = rng.random() < 0.5
    top = min(p.adc_bits, need - (1 if lossy else 0))
    if lossy or need > p.adc_bits:
        adc_bits = int(rng.integers(max(2, need - 7, top - 4), top + 1)) if top >= 2 else need
    else:
        adc_bits = need
    knobs = _knobs(rng) if lossy and rng.random() < 0.7 else NonIdeal()
    config = PimConfig(adc_bits=adc_bits, combine=combine, geometry=geometry, nonideal=knobs)
    pim = PimLayer(layer, spec, config)
    assert pim.mapping.n_groups == p.groups and pim.adc.bits <= p.adc_bits and pim.adc.shift < 8
    n = int(rng.integers(1, 4))
    lo, hi = spec.code_range
    x = rng.integers(lo, hi + 1, size=(n, *layer.in_shape))
    result = pim(x, keep_codes=True)
    codes = result.codes  # [N, P, G, O(, B)]
    values = pim.recombine(codes) >> layer.input_shift  # [N, P, O]
    assert np.array_equal(pim.recombine(codes).transpose(0, 2, 1).reshape(n, -1), result.sums)
    m = pim.mapping
    assert m.channels * m.positions <= p.n_neurons and m.channels <= p.n_channels

    layout = p.in_layout()
    code_bits, mask = p.adc_bits, (1 << p.adc_bits) - 1
    off_index, off_channel = layout["index"].offset, layout["channel"].offset
    off_codes = layout["codes"].offset
    events, expect = [], []
    for sample in range(n):
        events.append(Op.CLEAR.value)
        expect.append([Op.CLEAR.value, 0, 0])
        for _step in range(int(rng.integers(1, 3))):
            for o in range(m.channels):
                for pos in range(m.positions):
                    flat = codes[sample, pos, :, o].reshape(-1)
                    word = Op.LOAD.value | (o * m.positions + pos) << off_index | o << off_channel
                    for k, code in enumerate(flat):
                        word |= (int(code) & mask) << (off_codes + k * code_bits)
                    events.append(word)
                    value = int(values[sample, pos, o])
                    if value:
                        expect.append([Op.LOAD.value, o * m.positions + pos, value])
            events.append(Op.TICK.value)
            expect.append([Op.TICK.value, 0, 0])
    corrections = [
        [o, to_unsigned(int(c), p.correction_bits)] for o, c in enumerate(pim.correction)
    ]
    assert all(abs(int(c)) < 1 << (p.correction_bits - 1) for c in pim.correction)
    return {
        "label": f"case {index} ({layer.kind}, {combine}, adc {adc_bits}/{need} bits)",
        "kind": "lossy" if adc_bits < need or not knobs.ideal else "ideal",
        "seed": int(rng.integers(0, 2**31)),
        "lsb_shift": pim.adc.shift,
        "input_shift": layer.input_shift,
        "corrections": corrections,
        "events": events,
        "expect": expect,
        "gap_p": float(rng.choice([0.0, 0.3])),
        "backpressure_p": float(rng.choice([0.0, 0.3, 0.6])),
    }


@pytest.fixture(scope="module")
def instances() -> list[dict]:
    rng = np.random.default_rng(SEED)
    return [
        {
            "prefix": f"p{k}",
            "out": {"index_bits": p.index_bits, "load_bits": p.load_bits},
            "cases": [make_case(p, rng, i) for i in range(CASES_PER_INSTANCE)],
        }
        for k, p in enumerate(PARAMS)
    ]


def test_cases_cover_ideal_lossy_and_both_combines(instances) -> None:
    kinds = Counter(c["kind"] for inst in instances for c in inst["cases"])
    labels = " ".join(c["label"] for inst in instances for c in inst["cases"])
    assert sum(kinds.values()) == len(PARAMS) * CASES_PER_INSTANCE >= 100
    assert kinds["ideal"] >= 30 and kinds["lossy"] >= 30
    for word in ("linear", "conv2d", "digital", "analog"):
        assert word in labels
    shifts = {c["lsb_shift"] for inst in instances for c in inst["cases"]}
    assert 0 in shifts and max(shifts) >= 2
    assert any(v for inst in instances for c in inst["cases"] for _, v in c["corrections"])


def test_periphery_verilog_matches_model(simulator, instances, tmp_path) -> None:
    cases = [c for inst in instances for c in inst["cases"]]
    want = {
        "cases": len(cases),
        "events_sent": sum(len(c["events"]) for c in cases),
        "out_events_compared": sum(len(c["expect"]) for c in cases),
        "loads_compared": sum(e[0] == Op.LOAD.value for c in cases for e in c["expect"]),
    }
    report = run_testbench(
        SideBySide([PimPeriphery(p) for p in PARAMS], prefix="p"),
        "sf_pim_periphery",
        "pim_periphery",
        sim=simulator,
        build_dir=tmp_path,
        case={"instances": instances},
        expect=want,
    )
    assert want["cases"] >= 100
    assert want["out_events_compared"] > 0 and want["loads_compared"] > 1000
    assert report["cases_ideal"] >= 30 and report["cases_lossy"] >= 30


def test_out_payload_is_the_first_core_load_event() -> None:
    """The periphery's out payload is bit for bit the in payload of a core built with ``load``."""
    compared = 0
    for p in PARAMS:
        core = CoreParams(n_axons=1, n_neurons=p.n_neurons, load=True, load_bits=p.load_bits)
        assert core.in_index_bits == p.index_bits
        ours, theirs = p.out_layout(), core.in_layout()
        assert ours.size == theirs.size
        for name in ("op", "index", "value"):
            assert ours[name].offset == theirs[name].offset
            assert ours[name].shape == theirs[name].shape
            compared += 1
        value = -(1 << (p.load_bits - 1))
        word = core.pack_in(Op.LOAD.value, p.n_neurons - 1, value)
        assert (
            word & 3 == Op.LOAD.value and (word >> 2) & ((1 << p.index_bits) - 1) == p.n_neurons - 1
        )
        assert word >> (2 + p.index_bits) == value & ((1 << p.load_bits) - 1)
    assert compared == 3 * len(PARAMS)
