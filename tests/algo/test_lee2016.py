"""Lee et al. 2016: event-driven LIF, WTA, traces, eqs 8-9, error normalisation, regularisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from spikeforge.algo.methods import lee2016

from tests.algo.study_runs import study_run_on_digits


def _net(w1, th1, kappa=0.0, **cfg):
    """One-layer network (the event loop treats it as the output layer)."""
    config = lee2016.Lee2016Config(**cfg)
    w1 = np.asarray(w1, float)
    return lee2016.Lee2016Net([w1], [np.asarray(th1, float)], [kappa], config, [0.01])


def _events(pairs):
    times = np.array([[t for t, _ in pairs]], float)
    index = np.array([[k for _, k in pairs]], np.int64)
    return times, index


def test_eq1_eq2_hand_values():
    assert lee2016.membrane_update(0.5, 10.0, 20.0, 0.3, 1.0) == pytest.approx(
        0.5 * math.exp(-0.5) + 0.3
    )
    assert lee2016.dynamic_weight(np.array([0.0, 0.5, 1.0, 2.0]), 1.0).tolist() == [
        0.0,
        0.25,
        1.0,
        1.0,
    ]


def test_event_sequence_spike_reset_and_traces():
    net = _net([[0.6]], [1.0])
    result = lee2016.forward(net, *_events([(0.0, 0), (5.0, 0), (10.0, 0)]))
    v5 = 0.6 * math.exp(-5 / 20) + 0.6  # 1.06728 >= 1: spike, subtract V_th
    v10 = (v5 - 1.0) * math.exp(-5 / 20) + 0.6
    assert v5 == pytest.approx(1.067280, abs=1e-6)
    assert result.counts[0][0, 0] == 1
    assert result.v[0][0, 0] == pytest.approx(v10)  # 0.652399
    assert result.x_trace[0][0, 0] == pytest.approx(math.exp(-0.5) + math.exp(-0.25) + 1)
    assert result.a_trace[0][0, 0] == pytest.approx(math.exp(-0.25))  # eq 4, decaying


def test_refractory_dynamic_weight_after_spike():
    net = _net([[1.0]], [1.0])
    result = lee2016.forward(net, *_events([(0.0, 0), (0.5, 0)]))
    # spike at 0 (V 1 -> 0); at 0.5 ms the input counts with w_dyn = (0.5/1)^2
    assert result.counts[0][0, 0] == 1
    assert result.v[0][0, 0] == pytest.approx(0.25)


def test_membrane_lower_bound():
    net = _net([[-3.0]], [1.0])
    result = lee2016.forward(net, *_events([(0.0, 0)]))
    assert result.v[0][0, 0] == pytest.approx(-1.0)


def test_wta_inhibition_scales_with_threshold_and_sets_refractory():
    net = _net([[1.2], [0.9]], [1.0, 2.0], kappa=-0.4)
    result = lee2016.forward(net, *_events([(0.0, 0), (0.5, 0)]))
    # t=0: neuron 0 fires (1.2 -> 0.2); neuron 1: 0.9 - 0.4 * V_th(2.0) = 0.1, refractory
    d = math.exp(-0.5 / 20)
    assert result.counts[0][0].tolist() == [1, 0]
    assert result.v[0][0, 0] == pytest.approx(0.2 * d + 1.2 * 0.25)
    assert result.v[0][0, 1] == pytest.approx(0.1 * d + 0.9 * 0.25)
    no_wta = lee2016.forward(net, *_events([(0.0, 0)]), wta=False)
    assert no_wta.v[0][0, 1] == pytest.approx(0.9)


def test_eq9_closed_form_matches_eq8_inverse():
    rng = np.random.default_rng(0)
    w, v_th = rng.normal(size=(5, 7)), rng.uniform(0.5, 2, 5)
    compared = 0
    for kappa in (-0.4, -1.0, 0.0):
        closed = lee2016.wta_jacobian(w, v_th, kappa, 0.5)
        np.testing.assert_allclose(closed, lee2016.wta_jacobian_matrix(w, v_th, kappa, 0.5))
        compared += closed.size
    assert compared == 3 * 35
    # kappa = 0 is eq 7: w / V_th
    np.testing.assert_allclose(lee2016.wta_jacobian(w, v_th, 0.0, 0.5), w / v_th[:, None])
    # the printed eq 9 equals eq 8 when its mu is the inhibition *strength* (-kappa)
    mu, s, n = 0.4, 0.5, 5
    printed = w - mu * s * v_th[:, None] / (1 + mu * s * (n - 1)) * (w / v_th[:, None]).sum(0)
    printed = printed / v_th[:, None] / (1 - mu * s)
    np.testing.assert_allclose(printed, lee2016.wta_jacobian(w, v_th, -mu, s))


def test_init_eq10_eq11():
    rng = np.random.default_rng(1)
    w, th = lee2016.init_layer(64, 4000, alpha=3.0, rng=rng)
    assert np.abs(w).max() <= math.sqrt(3 / 64)
    assert (w * w).sum(axis=1).mean() == pytest.approx(1.0, abs=0.02)
    assert th[0] == pytest.approx(3 * math.sqrt(3 / 64))


def test_output_error_normalisation():
    e = lee2016.output_error(np.array([[2, 4, 0], [4, 2, 0], [0, 0, 0]]), np.array([1, 1, 2]), 3)
    np.testing.assert_allclose(e[0], [0.5, 0, 0])  # o = (0.5, 1, 0): one non-zero
    np.testing.assert_allclose(e[1], np.array([1, -0.5, 0]) / math.sqrt(2))
    np.testing.assert_allclose(e[2], [0, 0, -1])  # silent output: o = 0


def test_exponential_regulariser_gradient():
    rng = np.random.default_rng(2)
    w = rng.normal(0, 0.3, (3, 4))
    loss, grad = lee2016.exp_regulariser(w, lam=0.01, beta=10.0)
    assert loss[0] == pytest.approx(0.005 * math.exp(10 * ((w[0] ** 2).sum() - 1)))
    eps, compared = 1e-6, 0
    for idx in np.ndindex(*w.shape):
        d = np.zeros_like(w)
        d[idx] = eps
        fd = (lee2016.exp_regulariser(w + d, 0.01, 10.0)[0].sum() - loss.sum()) / eps
        assert fd == pytest.approx(grad[idx], rel=1e-4, abs=1e-9)
        compared += 1
    assert compared == 12


def test_threshold_regularisation_is_zero_sum_with_floor():
    v_th = np.array([1.0, 1.0, 1.0, 1.0])
    new, raise_w = lee2016.threshold_regularise(v_th, np.array([1, 0, 1, 0]), 0.01, 0.5)
    # firing: + rho N = 0.04, all: - rho N_w = 0.02
    np.testing.assert_allclose(new, [1.02, 0.98, 1.02, 0.98])
    assert new.sum() == pytest.approx(v_th.sum()) and not raise_w.any()
    new, raise_w = lee2016.threshold_regularise(np.array([1.0, 0.505]), np.array([1, 0]), 0.01, 0.5)
    assert new.tolist() == pytest.approx([1.01, 0.505])  # the floored neuron keeps its threshold
    assert raise_w.tolist() == pytest.approx([0.0, 0.01])  # ... and its weights rise instead


def test_backward_signs():
    """A target output that spikes too little gets larger weights and a lower threshold."""
    net = lee2016.build(4, 2, lee2016.Lee2016Config(hidden=3))
    result = lee2016.ForwardResult(
        counts=[np.array([[2.0, 1.0, 0.0]]), np.array([[3.0, 1.0]])],
        x_trace=[np.array([[1.0, 0.5, 0.0, 0.2]]), np.array([[1.2, 0.6, 0.0]])],
        a_trace=[np.array([[1.2, 0.6, 0.0]]), np.array([[1.5, 0.5]])],
        v=[np.zeros((1, 3)), np.zeros((1, 2))],
    )
    dw, dth = lee2016.backward(net, result, np.array([1]), 2)
    assert dw[1][1, 0] > 0 and dw[1][1, 2] == 0  # active input grows, silent input untouched
    assert dw[1][0, 0] < 0  # the wrong class loses weight
    assert dth[1][1] < 0 < dth[1][0]
    _, reg = lee2016.exp_regulariser(net.w[0], net.config.lam, net.config.beta)
    np.testing.assert_allclose(dw[0][2], -net.config.eta_w * reg[2])  # silent hidden: reg only
    assert not np.allclose(dw[0][0], -net.config.eta_w * reg[0])  # active hidden: error too


def test_export_bundle_counts_output_spikes(tmp_path):
    from spikeforge.sim.bundle import load_bundle, save_bundle
    from spikeforge.sim.golden import run

    net = lee2016.build(4, 3, lee2016.Lee2016Config(hidden=5))
    bundle = load_bundle(save_bundle(lee2016.to_bundle(net, duration=20.0), tmp_path / "b"))
    assert [layer.fire for layer in bundle.layers] == ["lif", "lif", "accum"]
    assert bundle.timesteps == 20 and bundle.layers[0].leak.lam == round(256 * math.exp(-1 / 20))
    times, index = np.array([[0.2, 0.7, 3.5, np.inf]]), np.array([[0, 0, 2, -1]])
    x = lee2016.binned_trains(times, index, 4, 1.0, 20)
    assert x.sum() == 2 and x[0, 0, 0] == 1 and x[0, 3, 2] == 1  # coincident events merge
    result = run(bundle, np.repeat(x, 3, axis=0))
    counts = result.spikes["out_lif"].sum(axis=1)
    np.testing.assert_array_equal(result.v_out, counts)  # the accum layer counts spikes


def test_silent_target_gets_its_error_hand_values():
    """Eq 16's error reaches a silent target (the fix); hand-computed on a 3-input, 2-output case.

    counts (0, 2), label 0: o = (0, 1), e = (-1, 1)/sqrt(2). V_th = (0.5, 0.25) -> g = (2, 4),
    g_bar = sqrt((4 + 16)/2) = sqrt(10) over both outputs, delta = g/g_bar e = (-1, 2)/sqrt(5).
    x_hat = (1, 0.5, 0): m = 2 active inputs, N = 2 neurons, sqrt(N/m) = 1, so
    dW = -eta delta x_hat; dV_th = eta_th sqrt(N/(m M)) delta a_hat with a_hat = a = (0, 1.5).
    """
    net = _net([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [0.5, 0.25], eta_w=0.004)
    result = lee2016.ForwardResult(
        counts=[np.array([[0.0, 2.0]])],
        x_trace=[np.array([[1.0, 0.5, 0.0]])],
        a_trace=[np.array([[0.0, 1.5]])],
        v=[np.zeros((1, 2))],
    )
    dw, dth = lee2016.backward(net, result, np.array([0]), 2)
    s5 = math.sqrt(5)
    np.testing.assert_allclose(
        dw[0], [[0.004 / s5, 0.002 / s5, 0.0], [-0.008 / s5, -0.004 / s5, 0.0]], rtol=1e-12
    )
    assert dw[0][0, 0] == pytest.approx(0.00178885, abs=1e-8)  # the silent target grows
    np.testing.assert_allclose(dth[0], [0.0, 0.0004 * math.sqrt(1 / 3) * 2 / s5 * 1.5])
    gated = _net([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [0.5, 0.25], eta_w=0.004, gate_output=True)
    dw_gated, _ = lee2016.backward(gated, result, np.array([0]), 2)
    assert not dw_gated[0][0].any()  # the old rule: no push at all for the silent target
    s2 = math.sqrt(2)  # g/g_bar = 1 (one active output); e still divided by sqrt(N_nze = 2)
    np.testing.assert_allclose(dw_gated[0][1], [-0.004 / s2, -0.002 / s2, 0.0])


def test_stepped_model_matches_golden_on_the_bundle_integers(tmp_path):
    """The float stepped model with the bundle's integers, no WTA/clip, equals
    spikeforge.sim.golden."""
    from spikeforge.sim.bundle import load_bundle, save_bundle
    from spikeforge.sim.golden import run

    config = lee2016.Lee2016Config(hidden=12, tau=1e9)  # leak 256/256: no rounding in the leak
    net = lee2016.build(6, 3, config)
    net.v_th = [t * 0.3 for t in net.v_th]  # fire often enough to exercise resets
    bundle = load_bundle(save_bundle(lee2016.to_bundle(net, duration=30.0), tmp_path / "b"))
    assert bundle.layers[0].leak.lam == 256
    rng = np.random.default_rng(3)
    times, index = lee2016.poisson_events(rng.integers(0, 17, (16, 6)), 30.0, 2.0, rng)
    trains = lee2016.binned_trains(times, index, 6, 1.0, 30)
    lif = [layer for layer in bundle.layers if layer.fire == "lif"]
    counts = lee2016.stepped_counts(
        net,
        trains,
        wta=False,
        clip=False,
        weights=[layer.weight.astype(float) for layer in lif],
        thresholds=[layer.threshold.astype(float) for layer in lif],
        leak=1.0,
    )
    golden = run(bundle, trains).v_out
    np.testing.assert_array_equal(counts, golden)
    assert counts.shape == (16, 3) and counts.sum() > 0  # 48 counts compared, not all zero


def test_study_command_writes_the_bundle_it_measured(tmp_path):
    """``python -m spikeforge.studies.lee2016``: a one-epoch run writes the bundle, the binned
    test input and metrics whose golden accuracy is the saved bundle's on that input."""
    from spikeforge.studies import lee2016 as study

    out = tmp_path / "run"
    argv = ["--hidden", "8", "--epochs", "1", "--test-ms", "40"]
    metrics, bundle, x = study_run_on_digits(study.main, argv, out, 30, 20)
    assert x.shape == (20, 40, 64) and bundle.timesteps == 40
    assert len(metrics["history"]) == 1
