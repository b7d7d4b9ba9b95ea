"""Throughput of the golden integer model beside float PyTorch inference of the same network.

``python -m spikeforge.bench.golden`` (or ``nox -s bench``) builds a random 784-256-256-10 network
with realistic firing rates, runs both at T=8 on a batch of 256 and prints samples/s for each and
their ratio. Figures, not assertions: speed targets live here, never in unit tests.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from spikeforge.bench.json_out import add_json_option, write_json
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, Layer, validate
from spikeforge.sim.semantics import Leak


def benchmark_bundle(
    sizes: tuple[int, ...] = (784, 256, 256, 10), timesteps: int = 8, w_bits: int = 6, seed: int = 0
) -> Bundle:
    """A random MLP whose hidden layers fire at roughly 10-20 % per step on 8-bit inputs."""
    rng = np.random.default_rng(seed)
    lo, hi = -(1 << (w_bits - 1)), (1 << (w_bits - 1)) - 1
    layers = []
    for index, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        last = index == len(sizes) - 2
        weight = np.clip(np.round(rng.normal(0.0, hi / 2.5, size=(n_out, n_in))), lo, hi)
        first = index == 0
        layers.append(
            Layer(
                name=f"fc{index + 1}",
                kind="linear",
                weight=weight.astype(np.int64),
                in_shape=(n_in,),
                w_bits=w_bits,
                v_bits=16,
                threshold=None if last else (120 if first else 60),
                leak=Leak("mult", lam=230, frac=8),
                reset="none" if last else "sub",
                fire="accum" if last else "lif",
                input_shift=8 if first else 0,
            )
        )
    spec = InputSpec((sizes[0],), "direct", 8, False)
    return validate(Bundle(timesteps=timesteps, input=spec, layers=layers))


def interleaved_medians(
    fns: dict[str, Callable[[], object]], repeats: int, rounds: int = 5
) -> dict[str, float]:
    """Median seconds per call of each function, timed in alternating blocks.

    Blocks (not single calls) keep one library's idle worker threads from competing with the
    other's; alternating them spreads machine drift over all the contenders alike.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    per_round = max(1, repeats // rounds)
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()  # warm-up: the library's thread pool and caches
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def torch_float_inference(bundle: Bundle, threads: int) -> Callable[[np.ndarray], object]:
    """Float LIF inference of ``bundle``'s network in a PyTorch time loop (the usual way)."""
    import torch

    torch.set_num_threads(threads)
    weights = [torch.from_numpy(layer.weight.astype(np.float32)) for layer in bundle.layers]
    lam = [layer.leak.lam / (1 << layer.leak.frac) for layer in bundle.layers]
    theta = [float(layer.theta_vector()[0]) for layer in bundle.layers]
    shift = [float(1 << layer.input_shift) for layer in bundle.layers]

    def forward(x: np.ndarray):
        with torch.inference_mode():
            inp = torch.from_numpy(x.astype(np.float32))
            v = [torch.zeros(x.shape[0], w.shape[0]) for w in weights]
            for _ in range(bundle.timesteps):
                h = inp
                for i, w in enumerate(weights):
                    v[i] = v[i] * lam[i] + (h @ w.T) / shift[i]
                    if i == len(weights) - 1:
                        break
                    spikes = (v[i] >= theta[i]).float()
                    v[i] = v[i] - spikes * theta[i]
                    h = spikes
            return v[-1].argmax(dim=1)

    return forward


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--timesteps", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument(
        "--threads", type=int, default=2, help="threads of torch and of numpy's BLAS alike"
    )
    add_json_option(parser)
    args = parser.parse_args(argv)

    bundle = benchmark_bundle(timesteps=args.timesteps)
    x = np.random.default_rng(1).integers(0, 256, size=(args.batch, 784))
    rates = {k: float(v.mean()) for k, v in golden.run(bundle, x).spikes.items()}
    torch_forward = torch_float_inference(bundle, args.threads)
    model = golden.Model(bundle)
    with threadpool_limits(args.threads, user_api="blas"):
        medians = interleaved_medians(
            {
                "golden": lambda: model.run(x),
                "golden-unprepared": lambda: golden.run(bundle, x),
                "torch": lambda: torch_forward(x),
            },
            args.repeats,
        )
    t_golden, t_torch = medians["golden"], medians["torch"]
    figures = {
        "network": "784-256-256-10",
        "timesteps": args.timesteps,
        "batch": args.batch,
        "threads": args.threads,
        "firing_rates": rates,
        "golden_samples_per_s": args.batch / t_golden,
        "golden_unprepared_samples_per_s": args.batch / medians["golden-unprepared"],
        "torch_float_samples_per_s": args.batch / t_torch,
    }
    figures["golden_over_torch"] = (
        figures["golden_samples_per_s"] / figures["torch_float_samples_per_s"]
    )
    print(f"784-256-256-10, T={args.timesteps}, batch {args.batch}, median of {args.repeats}")
    print("  firing rates per step: " + ", ".join(f"{k} {v:.3f}" for k, v in rates.items()))
    print(f"  golden integer model : {figures['golden_samples_per_s']:10.0f} samples/s")
    print(
        f"  golden, unprepared   : {figures['golden_unprepared_samples_per_s']:10.0f} samples/s"
        "  (golden.run: weights prepared on every call)"
    )
    torch_label = f"float PyTorch ({args.threads} thr)"
    print(f"  {torch_label:21s}: {figures['torch_float_samples_per_s']:10.0f} samples/s")
    print(f"  ratio golden / torch : {figures['golden_over_torch']:.2f}x")
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
