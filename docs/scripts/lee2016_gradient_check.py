"""Lee 2016: ``spikeforge.algo.methods.lee2016.backward`` against the exact gradient of the paper's
loss (digits).

On the deterministic rate version of the network (traces = expected rate x tau, ``a = s/V_th``
without WTA), eq 16's loss ``0.5 ||o - y||^2`` with ``o = a / max a`` (max held constant, as
the paper's error vector does) has an exact gradient. The script prints the cosine between
``backward``'s weight update and minus that gradient, per layer, for 5 training samples.
Usage: ``python docs/scripts/lee2016_gradient_check.py``.
"""

from __future__ import annotations

import numpy as np
from spikeforge.algo.methods import lee2016 as lee
from spikeforge.sim.datasets import load_dataset


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float((a * b).sum() / np.linalg.norm(a) / np.linalg.norm(b))


def main() -> None:
    d = load_dataset("digits")
    cfg = lee.Lee2016Config(kappa_hidden=0.0, kappa_out=0.0, rho=0.0, batch_size=1, lam=0.0)
    net = lee.build(64, 10, cfg)
    x_all = d.x_train[:5].reshape(5, -1).astype(float)
    x_all = x_all / x_all.sum(1, keepdims=True) * cfg.total_rate * cfg.tau
    for i in range(5):
        x, y = x_all[i : i + 1], int(d.y_train[i])
        h = np.maximum(x @ net.w[0].T / net.v_th[0], 0)
        o = np.maximum(h @ net.w[1].T / net.v_th[1], 0)
        m = o.max()
        da2 = (o / m - np.eye(10)[y]) / m * (o > 0)
        g2 = (da2 / net.v_th[1])[0][:, None] * h[0][None]
        da1 = ((da2 / net.v_th[1]) @ net.w[1]) * (h > 0)
        g1 = (da1 / net.v_th[0])[0][:, None] * x[0][None]
        r = lee.ForwardResult([h, o], [x, h], [h, o], [np.zeros_like(h), np.zeros_like(o)])
        dw, _ = lee.backward(net, r, np.array([y]), 10)
        print(
            f"sample {i}: cos(dW, -grad) output {cos(dw[1], -g2):.3f} hidden {cos(dw[0], -g1):.3f}"
            f" (active outputs {int((o > 0).sum())}/10, active hidden {int((h > 0).sum())}/100)"
        )


if __name__ == "__main__":
    main()
