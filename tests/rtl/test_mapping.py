"""Zou et al.'s incremental mapping (spikeforge.rtl.chip.mapping): the worked example of Tables 2
and 3, rows of Tables 7 and 8, the densities of Eqs. 14-16, the placement driving the chip
generator's splits (spikeforge.rtl.chip.top), and a scatter-and-gather bundle on a chip split by the
mapper, bit-exact vs golden.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from spikeforge.rtl.chip.mapping import (
    ZOU_CORE,
    CoreSize,
    LayerShape,
    MappingError,
    Placement,
    channel_major,
    chip_placement,
    format_table,
    map_network,
    place_layer,
    square_major,
)
from spikeforge.rtl.chip.top import ChipError, ChipOptions, plan_chip
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, Layer
from spikeforge.sim.semantics import Leak

from spikeforge.rtl_flow import counter_mismatches, first_mismatch, run_chip

#: Table 2's example: a 4x4x128 map, 2x2x128x256 kernel, stride 2, 1-bit conv (k_rep 1, k_wei 2).
EXAMPLE = LayerShape(4, 4, 128, 256, kernel=2, stride=2, name="example")


def _columns(p: Placement) -> tuple[int, ...]:
    return (p.w_in, p.h_in, p.d_in, p.w_out, p.h_out, p.d_out, p.f, p.cores)


def test_worked_example_tables_2_and_3():
    """Plan No. 2 is what the search finds; Plan No. 1 is Algorithm 1 on the whole map."""
    plan2 = place_layer(EXAMPLE, k_rep=1, k_wei=2, core=ZOU_CORE)
    plan1 = channel_major(EXAMPLE, k_rep=1, k_wei=2, core=ZOU_CORE, w_in=4, h_in=4)
    # Table 2: w_l h_l d_l w_l+1 h_l+1 d_l+1 f core
    assert _columns(plan1) == (4, 4, 128, 2, 2, 64, 2, 4)
    assert _columns(plan2) == (4, 2, 128, 2, 1, 256, 1, 2)
    # Table 3 (percent), and the exact fractions of Eqs. 14-16 behind them.
    table3 = {plan1: (100, 89, 22), plan2: (100, 89, 44)}
    for plan, percents in table3.items():
        got = (plan.density_neuron, plan.density_axon, plan.density_synapse)
        assert tuple(round(100 * d) for d in got) == percents
    assert Fraction(plan1.density_axon).limit_denominator(10_000) == Fraction(2048, 2304)
    assert Fraction(plan2.density_synapse).limit_denominator(10_000) == Fraction(4, 9)
    assert plan2.density_synapse == 2 * plan1.density_synapse
    assert (plan2.m, plan2.n, plan2.p) == (1, 2, 1) and (plan1.m, plan1.n, plan1.p) == (1, 1, 4)
    assert all(p.fits_axons and p.fits_neurons for p in (plan1, plan2))
    table = format_table([plan1, plan2])
    assert "| example | 4x2x128 | 2x1x256 | 1 | 2 | 100% | 89% | 44% |" in table


#: Rows of Tables 7 (LeNet) and 8 (VGG-Net): (layer, k_rep, input patch, output patch, f, A/N/S).
PAPER_ROWS = [
    (LayerShape(24, 24, 16, 16, 5, name="lenet 16C5"), 1, (9, 8, 16), (5, 4, 16), 1,
     (1.0, 0.63, 0.22)),
    (LayerShape(24, 24, 16, 16, 5, name="lenet 16C5"), 2, (8, 6, 16), (4, 2, 16), 2,
     (0.67, 1.0, 0.35)),
    (LayerShape(24, 24, 16, 16, 5, name="lenet 16C5"), 4, (6, 6, 16), (2, 2, 16), 2,
     (1.0, 1.0, 0.69)),
    (LayerShape(4, 4, 32, 256, 4, name="lenet 256FC"), 2, (4, 4, 32), (1, 1, 256), 1,
     (0.89, 1.0, 0.89)),
    (LayerShape(4, 4, 32, 256, 4, name="lenet 256FC"), 4, (4, 4, 32), (1, 1, 64), 2,
     (0.89, 1.0, 0.89)),
    (LayerShape(24, 24, 64, 64, 3, 1, 1, "vgg 64C3"), 1, (4, 4, 64), (2, 2, 64), 1,
     (0.89, 0.5, 0.25)),
    (LayerShape(24, 24, 64, 64, 3, 1, 1, "vgg 64C3"), 2, (4, 3, 64), (2, 1, 64), 2,
     (0.67, 1.0, 0.5)),
    (LayerShape(24, 24, 64, 64, 3, 1, 1, "vgg 64C3"), 4, (3, 3, 64), (1, 1, 64), 2,
     (1.0, 1.0, 1.0)),
    (LayerShape(12, 12, 64, 128, 3, 1, 1, "vgg 128C3"), 1, (4, 4, 64), (2, 2, 128), 1,
     (0.89, 1.0, 0.5)),
    (LayerShape(12, 12, 64, 128, 3, 1, 1, "vgg 128C3"), 2, (3, 3, 64), (1, 1, 128), 1,
     (1.0, 0.5, 0.5)),
    (LayerShape(3, 3, 512, 512, 3, 1, 1, "vgg 512C3"), 1, (3, 3, 512), (1, 1, 128), 4,
     (1.0, 1.0, 1.0)),
    (LayerShape(3, 3, 512, 512, 3, 1, 1, "vgg 512C3"), 4, (3, 3, 512), (1, 1, 8), 16,
     (1.0, 1.0, 1.0)),
]  # fmt: skip


@pytest.mark.parametrize(("layer", "k_rep", "patch_in", "patch_out", "f", "densities"),
                         PAPER_ROWS)  # fmt: skip
def test_search_reproduces_rows_of_tables_7_and_8(layer, k_rep, patch_in, patch_out, f, densities):
    p = place_layer(layer, k_rep=k_rep, k_wei=2)
    assert (p.w_in, p.h_in, p.d_in) == patch_in
    assert (p.w_out, p.h_out, p.d_out) == patch_out
    assert p.f == f
    got = (p.density_axon, p.density_neuron, p.density_synapse)
    assert got == pytest.approx(densities, abs=0.005 + 1e-9)  # the paper rounds to 2 places


def test_densities_follow_equations_14_to_16():
    rng = np.random.default_rng(3)
    core = CoreSize(256, 128)
    for _ in range(50):
        k = int(rng.integers(1, 4))
        layer = LayerShape(int(rng.integers(k, 12)), int(rng.integers(k, 12)),
                           int(rng.integers(1, 9)), int(rng.integers(1, 40)), k)  # fmt: skip
        k_rep, k_wei = int(rng.integers(1, 5)), int(rng.integers(1, 3))
        try:
            p = place_layer(layer, k_rep=k_rep, k_wei=k_wei, core=core, max_f=8)
        except MappingError:
            continue
        assert p.fits_axons and p.fits_neurons and p.density_neuron <= 1 and p.density_axon <= 1
        out = p.w_out * p.h_out * p.d_out
        assert p.density_neuron == k_rep * out * p.f * k_wei / 128
        assert p.density_axon == k_rep * p.w_in * p.h_in * layer.depth / (256 * p.f)
        assert p.density_synapse == k_rep * out * (k * k * layer.depth * k_rep * k_wei) / (
            256 * 128
        )
        assert p.cores * out >= layer.out_width * layer.out_height * layer.out_depth
    lenet = [LayerShape(24, 24, 16, 16, 5, name="c2"), LayerShape(4, 4, 32, 256, 4, name="fc")]
    assert [p.d_out for p in map_network(lenet, k_rep=4)] == [16, 64]


def test_mapper_refuses_what_does_not_fit():
    with pytest.raises(MappingError, match="more than 64 x 1152 axons"):
        channel_major(LayerShape(1, 1, 80_000, 10))
    with pytest.raises(
        MappingError, match=r"needs 32 neurons \(f=4, k_wei=2, k_rep=4\); the core has 4"
    ):
        channel_major(LayerShape(1, 1, 8, 10), k_rep=4, k_wei=2, core=CoreSize(8, 4))
    with pytest.raises(MappingError, match="multiple of the stride"):
        channel_major(EXAMPLE, w_in=3)
    with pytest.raises(MappingError, match="all output channels"):
        square_major(channel_major(EXAMPLE, w_in=4, h_in=4))
    with pytest.raises(MappingError, match="kernel 5 larger"):
        LayerShape(4, 4, 1, 1, 5)
    assert CoreSize.parse("1152x1024") == ZOU_CORE and str(ZOU_CORE) == "1152x1024"
    with pytest.raises(MappingError, match="AXONSxNEURONS"):
        CoreSize.parse("1152")


def test_mapping_command_prints_tables(tmp_path, capsys):
    from spikeforge.sim.bundle import save_bundle

    from spikeforge.studies.mapping import main

    assert main([]) == 0
    assert "| example | 4x4x128 | 2x2x64 | 2 | 4 | 100% | 89% | 22% |" in capsys.readouterr().out
    rng = np.random.default_rng(9)
    fc = _layer("f1", "linear", rng.integers(-4, 4, (40, 96)), (96,))
    out = _layer("o", "linear", rng.integers(-4, 4, (5, 40)), (40,), fire="accum")
    save_bundle(Bundle(1, InputSpec((96,), "spikes", 1, False), [fc, out]), tmp_path / "b")
    assert main([str(tmp_path / "b"), "--core", "64x16"]) == 0
    text = capsys.readouterr().out
    assert "| f1 | 1x1x96 | 1x1x2 | 2 | 20 |" in text  # Zou: f = 2, k_wei = w_bits = 4
    assert "| o | 1x1x40 | 1x1x5 | 1 | 1 |" in text
    assert "refused: layer f1: 96 inputs exceed the core's 64 axons" in text
    assert main([str(tmp_path / "b"), "--core", "64"]) == 2
    assert "AXONSxNEURONS" in capsys.readouterr().err


def _layer(name, kind, weight, in_shape, fire="lif", **kw) -> Layer:
    return Layer(name, kind, weight, in_shape, 4, 16, None if fire == "accum" else 3,
                 Leak("none"), "zero" if fire == "lif" else "none", fire, **kw)  # fmt: skip


def test_placement_drives_the_chip_splits():
    rng = np.random.default_rng(4)
    conv = _layer("c1", "conv2d", rng.integers(-4, 4, (6, 2, 3, 3)), (2, 8, 8),
                  stride=(2, 2), padding=(1, 1))  # fmt: skip
    fc = _layer("f2", "linear", rng.integers(-4, 4, (40, 96)), (96,))
    out = _layer("o", "linear", rng.integers(-4, 4, (5, 40)), (40,), fire="accum")
    bundle = Bundle(1, InputSpec((2, 8, 8), "spikes", 1, False), [conv, fc, out])
    core = CoreSize(128, 40)
    placements = [chip_placement(layer, core) for layer in bundle.layers]
    assert [p.d_out for p in placements] == [2, 40, 5]
    assert [p.cores for p in placements] == [3, 1, 1]
    plan = plan_chip(bundle, ChipOptions(core=core, lanes=4))
    sizes = [[(s.first, s.size) for s in stage.slices] for stage in plan.stages]
    assert sizes == [[(0, 32), (32, 32), (64, 32)], [(0, 40)], [(0, 5)]]
    assert plan.stages[0].slices[1].config.weights.shape == (2, 2, 3, 3)
    # A smaller core splits the linear layer by neurons, like max_neurons does by hand.
    small = plan_chip(bundle, ChipOptions(core=CoreSize(128, 16), lanes=4))
    assert [(s.first, s.size) for s in small.stages[1].slices] == [(0, 16), (16, 16), (32, 8)]
    assert len(small.stages[0].slices) == 6
    # Today's behaviour without a core size: convolutions unsplit.
    assert [len(st.slices) for st in plan_chip(bundle, ChipOptions(lanes=4)).stages] == [1, 1, 1]
    with pytest.raises(ChipError, match="layer c1: 128 inputs exceed the core's 64 axons"):
        plan_chip(bundle, ChipOptions(core=CoreSize(64, 64)))
    with pytest.raises(ChipError, match="either a core size or max_neurons"):
        ChipOptions(core=core, max_neurons=4)


def test_core_option_of_the_commands(tmp_path, capsys):
    """rtl-sim and verilog take --core; a bad size or an unplaceable layer is a usage error."""
    from spikeforge.sim.bundle import save_bundle

    from spikeforge import cli

    rng = np.random.default_rng(10)
    fc = _layer("f1", "linear", rng.integers(-4, 4, (40, 96)), (96,))
    out = _layer("o", "linear", rng.integers(-4, 4, (5, 40)), (40,), fire="accum")
    save_bundle(Bundle(1, InputSpec((96,), "spikes", 1, False), [fc, out]), tmp_path / "b")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 96), dtype=np.uint8))
    run = ["rtl-sim", str(tmp_path / "b"), "--input", str(tmp_path / "x.npy"), "--out",
           str(tmp_path / "r.npz")]  # fmt: skip
    assert cli.main([*run, "--core", "64"]) == 2
    assert "AXONSxNEURONS" in capsys.readouterr().err
    assert cli.main([*run, "--core", "64x64"]) == 2
    assert "layer f1: 96 inputs exceed the core's 64 axons" in capsys.readouterr().err
    verilog = ["verilog", str(tmp_path / "b"), "--out", str(tmp_path / "hw")]
    assert cli.main([*verilog, "--core", "96x16", "--max-neurons", "4"]) == 2
    assert "either a core size or max_neurons" in capsys.readouterr().err


def _sg_chip_check(simulator, tmp_path, arch: str, core: CoreSize, slices: list[int]) -> None:
    """Train a small scatter-and-gather net on digits, export it, split its chip by the mapper
    for ``core``, run 12 test images on it and compare everything with the golden model."""
    import torch
    from spikeforge.algo.methods.scatter_gather import scatter_gather
    from spikeforge.algo.training.export import export
    from spikeforge.algo.training.pipeline import TrainConfig, Trainer
    from spikeforge.sim.bundle import load_bundle
    from spikeforge.sim.datasets import load_digits

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the tests run two at a time on two cores
    data = load_digits()
    config = TrainConfig(arch=arch, method="scatter-gather", timesteps=1, ann_epochs=2,
                         snn_epochs=2, dropout=0.0, eval_every=2)  # fmt: skip
    try:
        net = scatter_gather(None, data, config, Trainer(progress=False, log=lambda _: None))
    finally:
        torch.set_num_threads(threads)
    bundle = load_bundle(export(net.set_mode("bittrue").eval(), tmp_path / "sg"))
    n = 12
    x = golden.check_input(bundle, data.x_test[:n].reshape(n, *bundle.input.shape).astype(np.int64))
    plan = plan_chip(bundle, ChipOptions(core=core, lanes=4))
    assert [len(stage.slices) for stage in plan.stages] == slices
    rtl = run_chip(bundle, x, sim=simulator, build_dir=tmp_path / "build", plan=plan)
    want = golden.run(bundle, x, first_layer_sums=plan.first_layer_sums(x))
    assert first_mismatch(bundle, rtl.arrays, want.result_arrays()) is None
    assert counter_mismatches(rtl, want) == []
    compared = 0
    for key, value in want.result_arrays().items():
        assert np.array_equal(rtl.arrays[key], value), key
        compared += value.size
    spikes = sum(int(s.sum()) for s in want.spikes.values())
    assert compared == n * (1 + 10 + sum(layer.n_out for layer in bundle.layers)) and spikes > 50
    assert rtl.report["ticks"] == n * len(bundle.layers)


def test_scatter_gather_chip_split_by_the_mapper_matches_golden(simulator, tmp_path):
    """Neuron groups (per-neuron thresholds and biases, one step) on 64x32 cores: the 48 IF
    neurons of 12 groups split 32 + 16 by the mapper; bit-exact against golden."""
    _sg_chip_check(simulator, tmp_path, "12", CoreSize(64, 32), [2, 1])


@pytest.mark.slow
def test_scatter_gather_conv_chip_split_by_the_mapper_matches_golden(simulator, tmp_path):
    """A conv + linear scatter-and-gather net on 128x48 cores: the conv layer in three
    channel slices, the linear layer in two neuron slices (about 10 minutes on 2 busy cores)."""
    _sg_chip_check(simulator, tmp_path, "c2k3s2-16", CoreSize(128, 48), [3, 2, 1])
