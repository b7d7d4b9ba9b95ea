"""STDP rules on hand cases, trace == pair sum, readouts, the gap metric, export to a bundle."""

from __future__ import annotations

import math

import numpy as np
import pytest
from spikeforge.algo.methods import stdp
from spikeforge.sim.datasets import load_dataset

from tests.algo.study_runs import study_run_on_digits

E1 = math.exp(-1)


def test_additive_rule_hand_values():
    rule = stdp.STDPRule("add", eta=1.0, c_plus=1.0, c_minus=0.6)
    for w in (0.0, 0.3, 1.0):  # weight independent
        assert rule.h(w, -17.0) == pytest.approx(E1)  # pre 17 ms before post
        assert rule.h(w, 34.0) == pytest.approx(-0.6 * E1)  # pre 34 ms after post
        assert rule.h(w, 0.0) == pytest.approx(1.0)  # same step: LTP
    assert rule.c_plus * rule.tau_plus < rule.c_minus * rule.tau_minus  # depression dominates


def test_multiplicative_rule_hand_values_and_equilibrium():
    rule = stdp.STDPRule("mult", eta=1.0, c_plus=1.0, c_minus=2.0)
    assert rule.h(0.5, 34.0) == pytest.approx(-2 * 0.5 * E1)
    assert rule.h(0.9, -17.0) == pytest.approx(E1)
    w_star = rule.c_plus * rule.tau_plus / (rule.c_minus * rule.tau_minus)
    assert w_star == pytest.approx(0.25)
    u = np.linspace(0, 2000, 200_001)
    ltp = np.trapezoid(rule.h(np.full(u.shape, w_star), -u), u)  # u <= 0 side
    ltd = np.trapezoid(rule.h(np.full(u.shape, w_star), u + 1e-12), u)  # u > 0 side
    integral = ltp + ltd
    assert integral == pytest.approx(0.0, abs=1e-3)  # zero net drift at W*


def test_log_rule_hand_values_and_limits():
    rule = stdp.STDPRule("log", eta=1.0, c_plus=1.0, c_minus=0.5, w0=0.25, gamma=50, s=5)
    assert rule.a_plus(0.25) == pytest.approx(math.exp(-0.02))
    assert rule.a_minus(0.125) == pytest.approx(0.25)  # linear below W0
    assert rule.a_minus(0.25) == pytest.approx(0.5)  # continuous at W0
    assert rule.a_minus(0.5) == pytest.approx(0.5 * (1 + math.log(6) / 5))  # log above W0
    assert rule.h(0.5, 34.0) == pytest.approx(-0.5 * (1 + math.log(6) / 5) * E1)
    # S -> 0, gamma -> inf: multiplicative with c- / W0
    near_mult = stdp.STDPRule("log", c_minus=0.5, w0=0.25, gamma=1e12, s=1e-9)
    w = np.array([0.1, 0.4, 0.9])
    np.testing.assert_allclose(near_mult.a_minus(w), 0.5 * w / 0.25, rtol=1e-6)
    np.testing.assert_allclose(near_mult.a_plus(w), 1.0, rtol=1e-9)
    # S -> inf: depression saturates towards c- (additive) above W0
    near_add = stdp.STDPRule("log", c_minus=0.5, w0=0.25, gamma=1e12, s=1e9)
    assert near_add.a_minus(0.9) == pytest.approx(0.5, rel=1e-6)


def test_unknown_rule():
    with pytest.raises(ValueError, match="unknown STDP rule 'hebb'"):
        stdp.STDPRule("hebb")


@pytest.mark.parametrize("kind", stdp.RULES)
def test_trace_implementation_equals_pair_sum(kind):
    rng = np.random.default_rng(1)
    rule = stdp.STDPRule(kind, eta=0.01)
    pre = (rng.random((60, 3)) < 0.2).astype(np.uint8)
    post = (rng.random((60, 2)) < 0.15).astype(np.uint8)
    w = rng.uniform(0.05, 0.6, (3, 2))
    dw = stdp.trace_dw(rule, pre, post, w)
    compared = 0
    for i in range(3):
        for j in range(2):
            expected = rule.pair_dw(w[i, j], np.flatnonzero(pre[:, i]), np.flatnonzero(post[:, j]))
            assert dw[i, j] == pytest.approx(expected, rel=1e-9, abs=1e-12)
            compared += 1
    assert compared == 6 and np.abs(dw).max() > 0


def test_pair_sum_hand_case():
    rule = stdp.STDPRule("add", eta=0.1, c_plus=1.0, c_minus=0.6)
    # pre at 0 and 20, post at 10: one LTP pair (u=-10), one LTD pair (u=+10)
    expected = 0.1 * (math.exp(-10 / 17) - 0.6 * math.exp(-10 / 34))
    assert rule.pair_dw(0.5, [0, 20], [10]) == pytest.approx(expected)


def test_generalisation_gap_and_voting():
    assert stdp.generalisation_gap(0.9375, 0.9049) == pytest.approx(3.26)
    assert stdp.generalisation_gap(0.80, 0.85) == pytest.approx(5.0)
    counts = np.array([[5, 0, 1], [0, 4, 0], [4, 1, 0], [0, 0, 3]])
    labels = np.array([0, 1, 0, 2])
    assignment = stdp.assign_labels(counts, labels, 3)
    assert assignment.tolist() == [0, 1, 2]
    assert stdp.vote(counts, assignment, 3).tolist() == [0, 1, 0, 2]


def test_layer_learns_and_exports(tmp_path):
    """One quick epoch on 300 digits: label assignment well above chance; bundle runs."""
    from spikeforge.sim.bundle import load_bundle, save_bundle
    from spikeforge.sim.golden import run

    data = load_dataset("digits").limited(300, 100)
    cfg = stdp.LayerConfig(neurons=40, timesteps=60, epochs=1)
    rng = np.random.default_rng(5)
    x_train = stdp.poisson_trains(data.x_train, 16, cfg.timesteps, cfg.max_rate, rng)
    x_test = stdp.poisson_trains(data.x_test, 16, cfg.timesteps, cfg.max_rate, rng)
    layer = stdp.train_layer(
        x_train, data.x_train, 16, stdp.STDPRule("log"), cfg, log=lambda _m: None
    )
    assert np.allclose(layer.w.sum(axis=0), cfg.norm)
    assert (layer.w >= 0).all() and (layer.theta > 0).any()
    counts = layer.counts(x_train)
    assert counts.sum(axis=1).max() <= cfg.timesteps  # WTA: at most one spike per step
    assignment = stdp.assign_labels(counts, data.y_train, 10)
    acc = float((stdp.vote(layer.counts(x_test), assignment, 10) == data.y_test).mean())
    assert acc > 0.4

    bundle, _ = stdp.export_with_readout(layer, x_train, data.y_train, 10)
    loaded = load_bundle(save_bundle(bundle, tmp_path / "b"))
    theta = loaded.layers[0].theta_vector()
    assert theta.shape == (40,) and len(np.unique(theta)) > 1  # per-neuron thresholds
    result = run(loaded, x_test)
    assert result.spikes["stdp"].shape == (100, 60, 40)
    assert float((result.pred == data.y_test).mean()) > 0.4


def test_study_command_and_summary(tmp_path, capsys):
    """``python -m spikeforge.studies.stdp``: one run writes the bundle whose golden test
    accuracy on the saved input is in ``metrics.json``; ``--summarise`` tabulates it."""
    from spikeforge.studies import stdp as study

    out = tmp_path / "run"
    argv = ["--neurons", "12", "--timesteps", "20", "--epochs", "1"]
    metrics, _, x = study_run_on_digits(study.main, argv, out, 40, 20)
    assert x.shape == (20, 20, 64) and metrics["method"] == "stdp"
    capsys.readouterr()
    assert study.main(["--summarise", str(out / "metrics.json")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| log |")]
    assert len(rows) == 1 and rows[0].startswith("| log | 0 |")
