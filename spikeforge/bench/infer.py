"""Inference throughput: the golden integer model, spikeforge's float and bit-true PyTorch forward.

The networks are the training benchmark's (``spikeforge.bench.peers``) in the form a bundle can
hold: the MLP 784-512-512-10 as is, and the conv network with each ``conv -> maxpool 2`` replaced by
a stride-2 convolution (docs/semantics.md: pooling is not a hardware layer), which gives the same
feature map sizes (32x14x14, 64x7x7) and the same 3136-10 output layer. Weights are random integers
with thresholds that make the hidden layers fire at realistic rates (reported). The float forward is
``spikeforge.algo.snn.models.build_snn`` of the same architecture in ``float`` mode under
``inference_mode``; the bit-true forward is ``spikeforge.algo.snn.bittrue`` on the bundle (exact
integers in float64 tensors).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import numpy as np
import torch

from spikeforge.algo.snn import bittrue
from spikeforge.algo.snn.models import build_snn
from spikeforge.bench.golden import interleaved_medians
from spikeforge.bench.json_out import add_json_option, write_json
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, Layer, validate
from spikeforge.sim.semantics import Leak

ENGINES: tuple[str, ...] = ("golden", "torch-float", "torch-bittrue")
ARCH = {"mlp": "512-512", "conv": "c32k3s2-c64k3s2"}


def _weights(rng: np.random.Generator, shape: tuple[int, ...], w_bits: int) -> np.ndarray:
    lo, hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    return np.clip(np.round(rng.normal(0.0, hi / 2.5, size=shape)), lo, hi).astype(np.int64)


def bench_bundle(workload: str, timesteps: int, w_bits: int = 6, seed: int = 0) -> Bundle:
    """A random integer bundle of ``workload`` (``mlp`` or ``conv``) with 8-bit direct input."""
    rng = np.random.default_rng(seed)
    leak = Leak("mult", lam=230, frac=8)

    def lif(name, kind, weight, in_shape, theta, shift, **conv) -> Layer:
        return Layer(
            name, kind, weight, in_shape, w_bits, 16, theta, leak, "sub", "lif", shift, **conv
        )

    if workload == "mlp":
        shape: tuple[int, ...] = (784,)
        layers = [
            lif("fc1", "linear", _weights(rng, (512, 784), w_bits), (784,), 120, 8),
            lif("fc2", "linear", _weights(rng, (512, 512), w_bits), (512,), 60, 0),
        ]
        n_last = 512
    elif workload == "conv":
        shape = (1, 28, 28)
        conv = {"stride": (2, 2), "padding": (1, 1)}
        layers = [
            lif("conv1", "conv2d", _weights(rng, (32, 1, 3, 3), w_bits), shape, 10, 8, **conv),
            lif(
                "conv2",
                "conv2d",
                _weights(rng, (64, 32, 3, 3), w_bits),
                (32, 14, 14),
                60,
                0,
                **conv,
            ),
        ]
        n_last = 64 * 7 * 7
    else:
        raise ValueError(f"unknown workload {workload!r}; expected one of {sorted(ARCH)}")
    out_in = (64, 7, 7) if workload == "conv" else (n_last,)
    out_w = _weights(rng, (10, n_last), w_bits)
    out = Layer("out", "linear", out_w, out_in, w_bits, 16, None, Leak("none"), "none", "accum")
    spec = InputSpec(shape, "direct", 8, False)
    return validate(Bundle(timesteps=timesteps, input=spec, layers=[*layers, out]))


@dataclass
class InferFigure:
    """One engine on one network: samples per second (median of ``repeats`` calls)."""

    engine: str
    workload: str
    timesteps: int
    batch: int
    samples_per_s: float
    firing_rates: dict[str, float]


def run(
    workloads: list[str],
    timesteps: list[int],
    batch: int = 128,
    threads: int = 2,
    repeats: int = 10,
    log=print,
) -> list[InferFigure]:
    """Time the three engines on every ``(workload, T)``, interleaved per network."""
    torch.set_num_threads(threads)
    figures = []
    for workload in workloads:
        for steps in timesteps:
            bundle = bench_bundle(workload, steps)
            x = np.random.default_rng(1).integers(0, 256, size=(batch, *bundle.input.shape))
            model = golden.Model(bundle)  # prepared once, as the torch networks are
            rates = {k: float(v.mean()) for k, v in model.run(x).spikes.items()}
            rates.pop("out", None)
            torch.manual_seed(0)
            net = build_snn(ARCH[workload], bundle.input.shape, 10, timesteps=steps).eval()
            net.set_mode("float")
            codes = torch.as_tensor(x)
            layers = bittrue.int_layers_from_bundle(bundle)
            x64 = torch.as_tensor(x, dtype=bittrue.DTYPE)

            def float_forward(net=net, codes=codes):
                with torch.inference_mode():
                    return net(codes)

            def bittrue_forward(layers=layers, x64=x64, steps=steps):
                with torch.inference_mode():
                    return bittrue.forward(layers, x64, steps, "direct")

            medians = interleaved_medians(
                {
                    "golden": lambda model=model, x=x: model.run(x),
                    "torch-float": float_forward,
                    "torch-bittrue": bittrue_forward,
                },
                repeats,
                rounds=min(5, repeats),
            )
            for engine in ENGINES:
                fig = InferFigure(engine, workload, steps, batch, batch / medians[engine], rates)
                figures.append(fig)
                log(f"  {workload} T={steps} {engine:14s} {fig.samples_per_s:10.1f} samples/s")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default="mlp,conv")
    parser.add_argument("--timesteps", default="5,25")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    add_json_option(parser)
    args = parser.parse_args(argv)
    figures = run(
        args.workloads.split(","),
        [int(t) for t in args.timesteps.split(",")],
        args.batch,
        args.threads,
        args.repeats,
    )
    write_json(args.json, [asdict(f) for f in figures])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
