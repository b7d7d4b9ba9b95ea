"""Chips with convolution layers (spikeforge.rtl.cores.conv_core.ConvCore stages) against the
golden model.

The default run builds two small conv chips (PIM feed into a conv first layer; spike input);
``test_fashion_conv_chip_200_images`` (slow) runs a random valid bundle of the Fashion-MNIST
architecture ``spikeforge train`` uses (1x28x28 -> c32k3s2 -> c64k3s2 -> 256 -> 10, T = 6) on the
first 200 Fashion-MNIST test images: ``pytest -m slow tests/rtl/test_chip_conv.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
from spikeforge.rtl.chip.top import ChipOptions, plan_chip
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, Layer
from spikeforge.sim.semantics import Leak, signed_range

from spikeforge.rtl_flow import run_chips
from tests.rtl.chip_golden import check_chips


def conv_bundle(
    rng: np.random.Generator,
    encoding: str,
    shape: tuple[int, int, int] = (1, 8, 8),
    channels: tuple[int, int] = (4, 6),
    hidden: int = 12,
    timesteps: int = 3,
    w_bits: int = 4,
    input_bits: int = 4,
) -> Bundle:
    """conv(s2) -> conv -> linear -> accum, random weights, thresholds for moderate activity."""
    lo, hi = signed_range(w_bits)
    c1, c2 = channels
    l1 = Layer("conv1", "conv2d", rng.integers(lo, hi + 1, size=(c1, shape[0], 3, 3)), shape,
               w_bits, 16, 10 << max(0, input_bits - 4 + w_bits - 4), leak=Leak("shift", k=3),
               stride=(2, 2), padding=(1, 1))  # fmt: skip
    l2 = Layer("conv2", "conv2d", rng.integers(lo, hi + 1, size=(c2, c1, 3, 3)), l1.out_shape,
               w_bits, 16, 4, reset="zero", stride=(2, 2), padding=(1, 1))  # fmt: skip
    scale = 1 << max(0, w_bits - 4)
    l2.threshold = rng.integers(3 * scale, 9 * scale, size=l2.n_out)
    l3 = Layer("fc3", "linear", rng.integers(lo, hi + 1, size=(hidden, l2.n_out)), (l2.n_out,),
               w_bits, 16, 6 << max(0, w_bits - 4), bias=rng.integers(-2, 3, size=hidden),
               leak=Leak("mult", lam=230, frac=8))  # fmt: skip
    l4 = Layer("out", "linear", rng.integers(lo, hi + 1, size=(10, hidden)), (hidden,), w_bits,
               16, None, leak=Leak("none"), reset="none", fire="accum")  # fmt: skip
    bits = 1 if encoding == "spikes" else input_bits
    spec = InputSpec(shape, encoding, bits, False)
    return Bundle(timesteps=timesteps, input=spec, layers=[l1, l2, l3, l4])


def test_conv_chips_match_golden(simulator, tmp_path):
    rng = np.random.default_rng(5)
    runs = []
    for encoding, lanes in (("direct", 4), ("spikes", 2)):
        bundle = conv_bundle(rng, encoding)
        if encoding == "spikes":
            x = (rng.random((4, bundle.timesteps, *bundle.input.shape)) < 0.3).astype(np.uint8)
        else:
            x = rng.integers(0, 16, size=(4, *bundle.input.shape))
        x = golden.check_input(bundle, x)
        plan = plan_chip(bundle, ChipOptions(lanes=lanes))
        assert [s.slices[0].kind for s in plan.stages] == ["conv2d", "conv2d", "linear", "linear"]
        runs.append((bundle, x, plan))
    assert runs[0][2].feed == "pim" and runs[1][2].feed == "spikes"
    results = run_chips([(p, x) for _, x, p in runs], sim=simulator, build_dir=tmp_path)
    compared, spikes, _ = check_chips(runs, results)
    assert compared > 2000 and spikes > 200


@pytest.mark.slow
def test_fashion_conv_chip_200_images(tmp_path):
    from spikeforge.sim.datasets import load_dataset

    data = load_dataset("fashion-mnist")
    rng = np.random.default_rng(28)
    bundle = conv_bundle(rng, "direct", (1, 28, 28), (32, 64), 256, 6, w_bits=6, input_bits=8)
    x = golden.check_input(bundle, data.x_test[:200])
    plan = plan_chip(bundle, ChipOptions(lanes=16))
    rtl = run_chips([(plan, x)], sim="verilator", build_dir=tmp_path)
    compared, spikes, _ = check_chips([(bundle, x, plan)], rtl)
    assert x.shape[0] == 200 and compared > 200 * 6 * 9000 and spikes > 0
    print(f"fashion conv chip: 200 images, {rtl[0].cycles.mean():.0f} cycles per sample, "
          f"{spikes} spikes, {rtl[0].seconds}")  # fmt: skip
