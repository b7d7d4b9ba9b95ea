"""Training-step throughput of spikeforge's LIF networks beside snnTorch, SpikingJelly and Norse.

A training step is the forward pass over ``T`` steps, the backward pass and an Adam step, on a
batch of random 8-bit images (batch 128, 2 torch threads by default). The contenders' steps are
timed in alternating blocks (noise on a shared machine hits every library alike) and the median
of at least ``rounds * per_round`` timed steps after warm-up is reported. Peak memory is measured
in a fresh subprocess per contender: the peak resident set over three training steps above the
resident set before them (Linux ``VmHWM``, reset just before the steps), so every allocator and
library is counted the same way.

Contenders (names): ``spikeforge`` (``spikeforge.algo.snn.neurons.LIF`` with the fused multi-step
LIF), ``spikeforge-reference`` (the same network on the step-by-step reference LIF), and the peers
of ``spikeforge.bench.peers``; a peer name with ``+hoist`` computes the static first layer once.
spikeforge's MLP is ``spikeforge.algo.snn.models.build_snn("512-512")`` in float mode; its conv
network is built here because ``SNN`` has no pooling layer (docs/semantics.md: pooling is not a
hardware layer).
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikeforge.algo.snn import lif_native
from spikeforge.algo.snn.lif_pool import LIFMaxPool
from spikeforge.algo.snn.models import build_snn
from spikeforge.algo.snn.neurons import LIF
from spikeforge.bench.json_out import add_json_option, write_json
from spikeforge.bench.peers import LEAK, PEERS, THRESHOLD, WORKLOADS, build_peer, input_shape

SPIKEFORGE = ("spikeforge", "spikeforge-reference")
VARIANTS = ("spikeforge-torch",)  # selectable by name, not in the default list
CLASSES = 10


class PooledConvSNN(nn.Module):
    """spikeforge's LIF in the pooled conv network (first conv computed once, as ``SNN`` does).

    The LIF layers run multi-step on ``[T, N, C, H, W]``; the logits are the output layer's
    current summed over the steps (``spikeforge.algo.snn.neurons.Accumulator``).
    """

    def __init__(self, steps: int, fused: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.out = nn.Linear(64 * 7 * 7, CLASSES, bias=False)
        self.lif1 = LIFMaxPool(LIF(THRESHOLD, LEAK, fused=fused))
        self.lif2 = LIFMaxPool(LIF(THRESHOLD, LEAK, fused=fused))
        self.steps = steps

    def forward(self, x: Tensor) -> Tensor:
        t, n = self.steps, x.shape[0]
        cur = self.conv1(x)
        s = self.lif1(cur.unsqueeze(0).expand(t, *cur.shape))
        cur = self.conv2(s.reshape(t * n, *s.shape[2:]))
        s = self.lif2(cur.reshape(t, n, *cur.shape[1:]))
        return self.out(s.reshape(t * n, -1)).reshape(t, n, -1).sum(0)


class _SpikeforgeMLP(nn.Module):
    """``build_snn("512-512")`` fed float images (``SNN.run`` on codes = image * 255)."""

    def __init__(self, steps: int, fused: bool) -> None:
        super().__init__()
        self.net = build_snn(
            "512-512", (784,), CLASSES, timesteps=steps, threshold=THRESHOLD, leak=LEAK
        ).set_mode("float")
        for layer in self.net.layers[:-1]:
            layer.neuron.fused = fused

    def forward(self, x: Tensor) -> Tensor:
        return self.net.run(x * 255.0)


class _TorchLoopLIF(nn.Module):
    """Runs ``net`` with the fused LIF's torch loop instead of its C kernel (``lif_native``)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor) -> Tensor:
        with lif_native.disabled():
            return self.net(x)


def build_contender(name: str, workload: str, steps: int) -> nn.Module:
    """The ``workload`` network of contender ``name`` (see the module docstring)."""
    if name == "spikeforge-torch":
        return _TorchLoopLIF(build_contender("spikeforge", workload, steps))
    if name in SPIKEFORGE:
        fused = name == "spikeforge"
        if workload == "mlp":
            return _SpikeforgeMLP(steps, fused)
        if workload == "conv":
            return PooledConvSNN(steps, fused)
        raise ValueError(f"unknown workload {workload!r}; expected one of {list(WORKLOADS)}")
    peer, _, option = name.partition("+")
    if option not in ("", "hoist"):
        raise ValueError(f"unknown contender option {option!r} in {name!r} (only +hoist)")
    return build_peer(peer, workload, steps, hoist=option == "hoist")


@dataclass
class Batch:
    """Inputs in [0, 1] quantised to 8 bits (like image codes / 255) and class labels."""

    x: Tensor
    y: Tensor


def make_batch(workload: str, batch: int, seed: int = 0) -> Batch:
    gen = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 256, (batch, *input_shape(workload)), generator=gen)
    return Batch(codes.float() / 255.0, torch.randint(0, CLASSES, (batch,), generator=gen))


def train_step_fn(model: nn.Module, data: Batch) -> Callable[[], float]:
    """One call = forward over all steps, cross-entropy, backward, Adam step; returns the loss.

    Every contender gets the same optimiser: torch's fused Adam (one kernel for all parameters
    instead of about ten tensor ops per parameter; the same update rule).
    """
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step() -> float:
        optimiser.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(data.x), data.y)
        loss.backward()
        optimiser.step()
        return loss.item()

    return step


def interleaved_times(
    fns: dict[str, Callable[[], object]], rounds: int, per_round: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Seconds per call of each function, timed in alternating blocks of ``per_round`` calls.

    ``warmup`` untimed calls per contender come first; every later block starts with one
    untimed call so a contender's caches and thread pool are warm when its timing starts.
    """
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            fn()
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - start)
    return times


def peak_memory_mib(name: str, workload: str, steps: int, batch: int, threads: int) -> float:
    """Peak RSS over 3 training steps above the RSS before them, in a fresh process (MiB)."""
    code = (
        "from spikeforge.bench.train import _memory_probe; "
        f"_memory_probe({name!r}, {workload!r}, {steps}, {batch}, {threads})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=1800
    )
    if out.returncode != 0:
        raise RuntimeError(f"memory probe {name}/{workload}/T={steps} failed:\n{out.stderr}")
    return float(out.stdout.strip().splitlines()[-1])


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _memory_probe(name: str, workload: str, steps: int, batch: int, threads: int) -> None:
    """Print the peak RSS rise over 3 training steps (Linux: VmHWM after resetting it)."""
    torch.set_num_threads(threads)
    model = build_contender(name, workload, steps)
    step = train_step_fn(model, make_batch(workload, batch))
    before = _status_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    for _ in range(3):
        step()
    print((_status_kib("VmHWM") - before) / 1024.0)


@dataclass
class TrainFigure:
    """One contender on one workload: median step time, throughput, peak memory, raw times."""

    contender: str
    workload: str
    timesteps: int
    batch: int
    median_s: float
    samples_per_s: float
    peak_mib: float | None
    times_s: list[float]


def run(
    contenders: list[str],
    workloads: list[str],
    timesteps: list[int],
    batch: int = 128,
    threads: int = 2,
    rounds: int = 5,
    per_round: int = 2,
    memory: bool = True,
    log: Callable[[str], None] = print,
) -> list[TrainFigure]:
    """Time every contender on every ``(workload, T)``; contenders interleave per workload."""
    torch.set_num_threads(threads)
    figures = []
    for workload in workloads:
        for steps in timesteps:
            data = make_batch(workload, batch)
            fns = {}
            for name in contenders:
                torch.manual_seed(0)
                fns[name] = train_step_fn(build_contender(name, workload, steps), data)
            times = interleaved_times(fns, rounds, per_round)
            for name in contenders:
                med = statistics.median(times[name])
                peak = peak_memory_mib(name, workload, steps, batch, threads) if memory else None
                figures.append(
                    TrainFigure(name, workload, steps, batch, med, batch / med, peak, times[name])
                )
                mem = "" if peak is None else f", peak +{peak:.0f} MiB"
                log(f"  {workload} T={steps} {name:24s} {batch / med:9.1f} samples/s{mem}")
    return figures


def add_timing_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a training-step timing run (this command's and the suite's)."""
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--timesteps", default="5,25")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--no-memory", action="store_true")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contenders", default=",".join((*SPIKEFORGE, *PEERS)))
    add_timing_arguments(parser)
    add_json_option(parser)
    args = parser.parse_args(argv)
    figures = run(
        args.contenders.split(","),
        args.workloads.split(","),
        [int(t) for t in args.timesteps.split(",")],
        args.batch,
        args.threads,
        args.rounds,
        args.per_round,
        not args.no_memory,
    )
    write_json(args.json, [asdict(f) for f in figures])
    return 0 if all(math.isfinite(f.median_s) for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
