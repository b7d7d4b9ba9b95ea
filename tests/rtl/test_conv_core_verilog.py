"""Generated convolution-core Verilog: lint clean (documented waivers), memories as arrays, and
Fashion-MNIST-sized layers with kernel-sized weight memories.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from spikeforge.rtl.cores.conv_core import ConvCoreParams, conv_core_for_layer, conv_core_verilog
from spikeforge.sim.bundle import Layer

from tests.rtl.lint_check import assert_lint_clean

LINT_PARAMS = [
    ConvCoreParams(in_shape=(1, 1, 1), out_channels=1, kernel=(1, 1)),
    ConvCoreParams(in_shape=(2, 5, 5), out_channels=3, kernel=(3, 3), padding=(1, 1), w_bits=2,
                   v_bits=8, lanes=2, bias=True, load=True),
    ConvCoreParams(in_shape=(3, 7, 6), out_channels=20, kernel=(5, 2), stride=(2, 1), lanes=16,
                   v_bits=24, neuron_threshold=False),
    ConvCoreParams(in_shape=(1, 2, 2), out_channels=5, kernel=(2, 2), lanes=8,
                   leak_modes=("shift",)),
]  # fmt: skip


@pytest.mark.parametrize("params", LINT_PARAMS, ids=lambda p: "x".join(map(str, p.in_shape)))
def test_lint_clean_with_documented_waivers(params, tmp_path):
    assert_lint_clean(conv_core_verilog(params), "sf_conv_core", tmp_path)


def _fmnist_layer(in_shape: tuple[int, int, int], out_c: int) -> Layer:
    rng = np.random.default_rng(1)
    weight = rng.integers(-32, 32, size=(out_c, in_shape[0], 3, 3))
    layer = Layer(name="conv", kind="conv2d", weight=weight, in_shape=in_shape, w_bits=6,
                  v_bits=16, threshold=1, stride=(2, 2), padding=(1, 1))  # fmt: skip
    layer.threshold = rng.integers(1, 200, size=layer.n_out)
    return layer


@pytest.mark.parametrize("in_shape,out_c,lanes", [((1, 28, 28), 16, 8), ((16, 14, 14), 32, 8)])
def test_fashion_mnist_layers_have_kernel_sized_memories(in_shape, out_c, lanes):
    """1x28x28 -> 16x14x14 and 16x14x14 -> 32x7x7 (3x3, stride 2, pad 1): the weight memory
    holds out_c*in_c*9 weights (never n_in*n_out); a SPIKE costs 1, 2 or 4 times OG cycles."""
    layer = _fmnist_layer(in_shape, out_c)
    params, config = conv_core_for_layer(layer, lanes=lanes)
    og = -(-out_c // lanes)
    assert params.out_shape == layer.out_shape
    assert len(config.weight_rows(params)) * lanes == out_c * in_shape[0] * 9
    assert params.acc_depth * lanes == params.n_neurons
    cycles = [params.spike_cycles(i) for i in range(params.n_axons)]
    assert set(cycles) == {og, 2 * og, 4 * og}
    assert params.max_spike_cycles() == 9 * og
    text = conv_core_verilog(params, config)
    rows = params.taps * og
    assert f"reg [{lanes * params.w_bits - 1}:0] weight_mem [{rows - 1}:0];" in text
    acc = re.findall(rf"reg \[{params.acc_bits - 1}:0\] acc\d+_mem \[(\d+):0\];", text)
    assert acc == [str(params.acc_depth - 1)] * lanes
    for name in ("v_mem", "theta_mem"):
        assert re.search(rf"reg \[\d+:0\] {name} \[{params.groups - 1}:0\];", text), name
