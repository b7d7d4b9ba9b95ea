"""Energy and delay: ACE-SNN Eq. 22-27, literal values pinned, corrected variant."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from spikeforge.pim.array import map_layer
from spikeforge.pim.energy import (
    CNN3D_LAYER1,
    TABLE4,
    LayerDims,
    PimCounts,
    e_ac_at,
    e_mac_at,
    eq22_energy,
    eq23_delay,
    eq24_energy,
    eq25_delay,
    eq26_energy,
    eq27_delay,
    pim_corrected,
    t_ac_at,
)
from spikeforge.pim.model import PimConfig
from spikeforge.pim.report import bundle_report
from spikeforge.sim import golden

from tests.pim.builders import conv, digits_like, random_codes


def test_table4_as_printed() -> None:
    t = TABLE4
    assert (t.b_io, t.b_w, t.n_col, t.n_bank, t.n_mac, t.n_ac) == (64, 6, 256, 4, 175, 175)
    assert (t.t_read, t.t_blp, t.t_mac, t.t_ac, t.t_adc) == (4.0, 4.0, 4.0, 0.4, 6.0)
    assert (t.e_mac, t.e_ac, t.e_read, t.e_blp, t.e_adc, t.p_leak) == (
        3.1,
        0.1,
        5.2,
        0.08,
        0.268,
        0,
    )


def test_cnn3d_layer1_literal_values() -> None:
    d = CNN3D_LAYER1
    assert (d.weights, d.positions) == (540, 1782)
    for r in (1, 4.5, 27):
        assert eq26_energy(d, r) == pytest.approx(540 * (0.08 + 0.268 / r), rel=1e-12)
    assert eq26_energy(d, 1) == pytest.approx(187.92)
    assert eq26_energy(d, 27) == pytest.approx(48.56)
    assert eq27_delay(d, 1) == pytest.approx(56_383.6, abs=0.05)
    assert eq27_delay(d, 27) == pytest.approx(23_806.4, abs=0.05)
    assert eq23_delay(d) == pytest.approx(22_045.6, abs=0.05)
    # The printed equations do not give the claimed PIM delay gain (docs/pim.md).
    assert eq27_delay(d, 27) > eq23_delay(d)


def test_digital_equations_by_hand() -> None:
    d = LayerDims(c_in=20, c_out=40, kernel=3, positions=3 * 3 * 99)
    fetch = 2400 / (64 / 6 * 4) * 4.0
    assert eq23_delay(d) == pytest.approx(fetch + 2400 / 175 * 891 * 4.0)
    assert eq25_delay(d) == pytest.approx(fetch + 2400 / 175 * 891 * 0.4)
    assert eq22_energy(d) == pytest.approx(2400 * 5.2 + 2400 * 891 * 3.1)
    assert eq24_energy(d, 0.568) == pytest.approx(2400 * 5.2 + 2400 * 891 * 0.568 * 0.1)
    leaky = dataclasses.replace(TABLE4, p_leak=2.0)
    assert eq22_energy(d, leaky) == pytest.approx(eq22_energy(d) + 2.0 * eq23_delay(d))
    # Scaling rules: E_mac ~ Q^1.25, E_ac ~ Q, T_ac = 0.1 T_mac.
    assert e_mac_at(6) == pytest.approx(3.1 * (6 / 32) ** 1.25)
    assert e_ac_at(6) == pytest.approx(0.01875)
    assert e_mac_at(6) / e_ac_at(6) == pytest.approx(20.4, abs=0.1)  # the paper says ~13x
    assert t_ac_at(32) == pytest.approx(0.4)


def test_corrected_pim_has_positions_and_passes() -> None:
    d = CNN3D_LAYER1
    energy, delay = pim_corrected(d, 27 / 6)
    assert energy == pytest.approx(eq26_energy(d, 27 / 6) * 1782)
    assert delay == pytest.approx(540 / (256 / 6 * 4) * 1782 * (4.0 + 6.0 / 4.5))
    e5, t5 = pim_corrected(d, 27 / 6, passes=5)
    assert (e5, t5) == pytest.approx((5 * energy, 5 * delay))


def test_counted_pim_work_matches_corrected_energy() -> None:
    rng = np.random.default_rng(30)
    layer = conv("c1", rng.integers(-32, 32, size=(20, 3, 3, 3)), (3, 5, 200), w_bits=6)
    m = map_layer(layer)
    counts = PimCounts.of(m, "digital")
    assert counts.macs == 540 * 594 and counts.conversions == 594 * 20 * 6
    assert counts.r == pytest.approx(27 / 6)
    energy, _ = pim_corrected(LayerDims.of(layer), counts.r)
    assert counts.energy() == pytest.approx(energy)
    assert counts.delay() == pytest.approx(594 * (4.0 + 6.0))
    analog = PimCounts.of(m, "analog")
    assert analog.r == 27 and analog.conversions == 594 * 20


def test_bundle_report_from_golden_counters() -> None:
    rng = np.random.default_rng(31)
    b = digits_like(rng)
    x = random_codes(b, 50, rng)
    result = golden.run(b, x)
    report = bundle_report(b, result.counters, 50, PimConfig())
    parts = {row.part for row in report.rows}
    assert parts == {"layer 1 PIM", "layer 1 digital", "out"}
    assert len(report.rows) == 3 + 2 + 3
    e_dig, t_dig = report.totals["digital"]
    e_pim, t_pim = report.totals["pim"]
    assert e_pim < e_dig and all(np.isfinite([e_dig, t_dig, e_pim, t_pim]))
    out = result.counters["out"]
    zou = next(row for row in report.rows if row.model.startswith("Zou"))
    assert zou.energy_pj == pytest.approx(out.synaptic_ops / 50 * 0.57)
    text = report.format()
    assert "PIM gain" in text and text.count("\n") == len(report.rows) + 3
