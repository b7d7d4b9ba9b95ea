"""STDBP: spike times of the worked examples, eqs 14-15 against finite differences, loss, export."""

from __future__ import annotations

import numpy as np
import pytest
from spikeforge.algo.methods import stdbp
from spikeforge.sim.datasets import load_dataset

from tests.algo.study_runs import golden_accuracy_is_recorded

INF = np.inf


def _t_out(t_in, w, theta):
    t, _ = stdbp.spike_times(np.asarray(t_in, float)[None], np.asarray(w, float)[:, None], theta)
    return float(t[0, 0])


def test_relpsp_kernel():
    assert stdbp.relpsp(np.array([-1.0, 0.0, 2.5])).tolist() == [0.0, 0.0, 2.5]


@pytest.mark.parametrize(
    ("t_in", "w", "theta", "expected"),
    [
        ((0, 1), (1, 1), 2, 1.5),  # both inputs causal
        ((0, 1, 2), (0.5, -1, 2), 1, 8 / 3),  # prefixes 1 and 2 do not qualify
        ((0.1, 0.3, 0.5), (0.8, 0.6, 0.9), 1, 0.74347826),  # the notes' gradient example
        ((0, 1), (2, 1), 1, 0.5),  # fires before the second input arrives
    ],
)
def test_worked_spike_times(t_in, w, theta, expected):
    t = _t_out(t_in, w, theta)
    assert t == pytest.approx(expected, abs=1e-6)
    # the membrane reaches theta exactly at the spike time and stays below before it
    assert stdbp.membrane(t, np.asarray(t_in, float), np.asarray(w, float)) == pytest.approx(theta)
    before = np.linspace(0, t, 50, endpoint=False)
    assert (stdbp.membrane(before, np.asarray(t_in, float), np.asarray(w, float)) < theta).all()


def test_never_fires_and_silent_inputs():
    assert _t_out((0, 1), (-1, 0.5), 1) == INF  # net slope never positive enough
    assert _t_out((0, 1), (0.25, 0.25), 1) == pytest.approx(2.5)
    assert _t_out((INF, 0), (5, 1), 1) == pytest.approx(1.0)  # silent input ignored
    assert _t_out((INF, INF), (1, 1), 1) == INF


def test_eqs_14_15_against_finite_differences():
    t_in, w, theta = np.array([0.1, 0.3, 0.5]), np.array([0.8, 0.6, 0.9]), 1.0
    dw, dt = stdbp.jacobians(t_in, w, theta)
    np.testing.assert_allclose(dw, [-0.27977, -0.19282, -0.10586], atol=1e-5)
    np.testing.assert_allclose(dt, [0.34783, 0.26087, 0.39130], atol=1e-5)
    eps, compared = 1e-6, 0
    for i in range(3):
        e = np.eye(3)[i] * eps
        fd_w = (_t_out(t_in, w + e, theta) - _t_out(t_in, w - e, theta)) / (2 * eps)
        fd_t = (_t_out(t_in + e, w, theta) - _t_out(t_in - e, w, theta)) / (2 * eps)
        assert fd_w == pytest.approx(dw[i], abs=1e-6)
        assert fd_t == pytest.approx(dt[i], abs=1e-6)
        compared += 2
    assert compared == 6
    # a non-causal input has zero gradient
    dw, dt = stdbp.jacobians(np.array([0.0, 1.0]), np.array([2.0, 1.0]), 1.0)
    assert dw[1] == 0 and dt[1] == 0 and dw[0] == pytest.approx(-0.25)


def test_network_backward_matches_finite_differences():
    """Whole 2-layer network: the loss gradient of eq 13 through eqs 14-15, random weights."""
    rng = np.random.default_rng(3)
    net = stdbp.STDBPNet([rng.normal(0.3, 0.3, (6, 5)), rng.normal(0.4, 0.3, (5, 3))], theta=1.0)
    t_in = rng.uniform(0, 1, (4, 6))
    labels = np.array([0, 1, 2, 1])

    def loss() -> float:
        t_out, _ = net.forward(t_in)
        return stdbp.loss_and_grad(t_out, labels, 10.0)[0]

    t_out, traces = net.forward(t_in)
    _, g, _ = stdbp.loss_and_grad(t_out, labels, 10.0)
    grads = net.backward(traces, g)
    compared, eps = 0, 1e-6
    for layer, w in enumerate(net.weights):
        for idx in np.ndindex(*w.shape):
            w[idx] += eps
            up = loss()
            w[idx] -= 2 * eps
            down = loss()
            w[idx] += eps
            assert (up - down) / (2 * eps) == pytest.approx(grads[layer][idx], abs=1e-5)
            compared += 1
    assert compared == 6 * 5 + 5 * 3


def test_loss_gradient():
    t = np.array([[0.5, 1.0, INF]])
    loss, g, p = stdbp.loss_and_grad(t, np.array([1]), t_silent=10.0)
    z = np.exp(-np.array([0.5, 1.0, 10.0]))
    assert p[0] == pytest.approx(z / z.sum())
    assert loss == pytest.approx(-np.log(z[1] / z.sum()))
    assert g[0] == pytest.approx(np.array([0, 1, 0]) - p[0])
    assert stdbp.predict_earliest(t).tolist() == [0]


def test_encoding_and_held_trains():
    t = stdbp.encode_latency(np.array([[[[0, 16], [8, 4]]]]), 16)
    assert t.tolist() == [[INF, 0.0, 0.5, 0.75]]
    x = stdbp.held_trains(t, 0.25, 4)
    assert x[0, :, 0].tolist() == [0, 0, 0, 0]
    assert x[0, :, 1].tolist() == [1, 1, 1, 1]
    assert x[0, :, 2].tolist() == [0, 0, 1, 1]
    assert x[0, :, 3].tolist() == [0, 0, 0, 1]


def test_short_training_learns_and_exports():
    """Four epochs on 400 digits beat chance; the approximate bundle agrees with the float
    network under the bundle's decision rule (largest V_out at the end of the window)."""
    from spikeforge.sim.golden import run

    data = load_dataset("digits").limited(400, 200)
    net, history = stdbp.train(
        data,
        stdbp.STDBPConfig(hidden=(64,), epochs=4, batch_size=16, cosine=False),
        log=lambda _m: None,
    )
    assert history[-1]["test_acc"] > 0.5
    t_in = stdbp.encode_latency(data.x_test, 16)
    bundle = stdbp.to_bundle(net, dt=0.05, timesteps=60)
    result = run(bundle, stdbp.held_trains(t_in, 0.05, 60))
    float_pred = stdbp.final_potential_decision(net, t_in, 3.0)
    assert result.pred.shape == float_pred.shape == (200,)
    assert float(np.mean(result.pred == float_pred)) > 0.9  # quantisation + 0.05 time steps


def test_save_and_reload(tmp_path):
    from spikeforge.sim.bundle import load_bundle, save_bundle

    net = stdbp.STDBPNet([np.full((4, 3), 0.5), np.full((3, 2), -0.25)], 1.0)
    path = save_bundle(stdbp.to_bundle(net, dt=0.1, timesteps=10), tmp_path / "b")
    loaded = load_bundle(path)
    assert loaded.layers[0].threshold == round(1.0 / (0.1 * 0.5 / 127))
    assert loaded.layers[1].fire == "accum"


def test_study_command_writes_the_bundle_it_measured(tmp_path):
    """``python -m spikeforge.studies.stdbp``: a one-epoch run writes the bundle whose golden
    accuracy on the held trains of the test split is the one in ``metrics.json``."""
    from spikeforge.studies import stdbp as study

    out = tmp_path / "run"
    argv = ["--hidden", "8", "--epochs", "1", "--train-limit", "40", "--test-limit", "20"]
    assert study.main([*argv, "--dt", "0.1", "--timesteps", "30", "--out", str(out)]) == 0
    data = load_dataset("digits").limited(40, 20)
    x = stdbp.held_trains(stdbp.encode_latency(data.x_test, 16), 0.1, 30)
    metrics, bundle = golden_accuracy_is_recorded(out, x, data.y_test)
    assert x.shape == (20, 30, 64) and bundle.timesteps == 30
    assert metrics["export"]["timesteps"] == 30 and metrics["method"] == "stdbp"
    assert np.load(out / "float_weights.npz")["arr_0"].shape == (64, 8)
