"""RTL figures: cycles per sample and SOPs per cycle against ``lanes``, and simulation speed.

* The lanes sweep runs the bundle's chip (``spikeforge.rtl.chip.top``) at every ``lanes`` choice in
one
  Verilator build (``spikeforge.rtl_flow.run_chips``) on real digits samples; every chip's spikes
  and output potentials must equal the golden model's (checked here, with the count compared).
  SOPs are the golden model's synaptic operations (all layers, layer 1's LOAD-fed multiply-
  accumulates included) per sample; SOPs per cycle = SOPs / chip cycles.
* Simulation speed: simulated clock cycles per wall-clock second of the simulation phase
  (simulator processes from start to exit; generation and build excluded) for the digits chip
  and for a conv chip (``bench_bundle("conv")`` on digits drawn at 28x28), with one simulator
  process and with two over the same build. The harness (``spikeforge.rtl.harness.shell``)
  drives and records every cycle in the simulator; Python wakes per batch.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.bench.json_out import add_json_option, write_json
from spikeforge.rtl.chip.top import ChipOptions, plan_chip
from spikeforge.rtl.cores.core import LANE_CHOICES
from spikeforge.rtl_flow import RtlRun, first_mismatch, run_chips
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle, InputSpec, load_bundle, validate

DEFAULT_BUNDLE = Path(__file__).resolve().parents[2] / "tests" / "pim" / "data" / "digits"


def digits_inputs(bundle: Bundle, samples: int) -> np.ndarray:
    """The first ``samples`` scikit-learn digits as codes for ``bundle`` (values 0..16)."""
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.int64)[:samples]
    return golden.check_input(bundle, x.reshape(len(x), *bundle.input.shape))


def _checked(run: RtlRun, bundle: Bundle, ref: golden.GoldenResult) -> int:
    """Raise on any RTL/golden difference; return how many values were compared."""
    want = ref.result_arrays()
    mismatch = first_mismatch(bundle, run.arrays, want)
    if mismatch is not None:
        raise AssertionError(f"RTL differs from the golden model: {mismatch}")
    return sum(int(np.asarray(want[k]).size) for k in want if k.startswith("spikes.")) + int(
        want["v_out"].size
    )


def core_bundle(bundle: Bundle) -> Bundle:
    """The bundle's output layer alone, fed spike trains: a one-core chip."""
    last = bundle.layers[-1]
    spec = InputSpec(tuple(last.in_shape), "spikes", 1, False)
    return validate(dataclasses.replace(bundle, input=spec, layers=[last]))


def lanes_sweep(
    bundle: Bundle, x: np.ndarray, lanes: tuple[int, ...], sim: str, build_dir: Path
) -> list[dict[str, Any]]:
    """Cycles per sample and SOPs per cycle for each ``lanes`` (one build holds every chip)."""
    ref = golden.run(bundle, x)
    sops = sum(c.synaptic_ops for c in ref.counters.values()) / len(x)
    plans = [plan_chip(bundle, ChipOptions(lanes=n)) for n in lanes]
    runs = run_chips([(plan, x) for plan in plans], sim=sim, build_dir=build_dir)
    rows = []
    for n, run in zip(lanes, runs, strict=True):
        compared = _checked(run, bundle, ref)
        cycles = float(np.mean(run.cycles))
        rows.append(
            {
                "lanes": n,
                "cycles_per_sample": cycles,
                "sops_per_sample": sops,
                "sops_per_cycle": sops / cycles,
                "values_compared": compared,
            }
        )
    return rows


def conv_inputs(samples: int) -> np.ndarray:
    """The first ``samples`` scikit-learn digits as 8-bit 28x28 images (each pixel of the 8x8
    digit a 3x3 block, centred): real images for the conv chip of ``bench_bundle("conv")``."""
    from sklearn.datasets import load_digits

    digits = load_digits().images[:samples].astype(np.int64) * 15  # 0..240
    images = np.zeros((len(digits), 1, 28, 28), dtype=np.int64)
    images[:, 0, 2:26, 2:26] = np.kron(digits, np.ones((3, 3), dtype=np.int64))
    return images


def sim_speed(
    bundle: Bundle,
    x: np.ndarray,
    conv_samples: int,
    sim: str,
    build_dir: Path,
    jobs: tuple[int, ...] = (1, 2),
) -> dict[str, Any]:
    """Simulated cycles per second of the digits chip and of a conv chip (lanes 16), with one
    simulator process and with ``jobs`` processes over the same build; every value compared."""
    from spikeforge.bench.infer import bench_bundle
    from spikeforge.rtl_flow import build_chips, simulate

    conv = bench_bundle("conv", 6)
    out: dict[str, Any] = {}
    for name, b, inputs in (
        ("digits chip", bundle, x),
        ("conv chip", conv, conv_inputs(conv_samples)),
    ):
        inputs = golden.check_input(b, inputs)
        plan = plan_chip(b, ChipOptions(lanes=16))
        build = build_chips([plan], sim=sim, build_dir=build_dir / name.split()[0])
        ref = golden.run(b, inputs, first_layer_sums=plan.first_layer_sums(inputs))
        rows = []
        for n_jobs in jobs:
            folder = build.folder / f"jobs{n_jobs}"
            (run,) = simulate(build, [inputs], jobs=n_jobs, folder=folder)
            cycles = int(np.sum(run.cycles))
            rows.append(
                {
                    "jobs": n_jobs,
                    "seconds": run.seconds["simulate"],
                    "seconds_running": run.seconds["running"],
                    "cycles_per_s": cycles / run.seconds["simulate"],
                    "values_compared": _checked(run, b, ref),
                }
            )
        out[name] = {
            "samples": len(inputs),
            "cycles": int(np.sum(run.cycles)),
            "cycles_per_sample": float(np.mean(run.cycles)),
            "build_seconds": build.seconds["build"],
            "layers": [layer.name for layer in b.layers],
            "runs": rows,
        }
    return out


def run(
    bundle_dir: Path = DEFAULT_BUNDLE,
    samples: int = 8,
    lanes: tuple[int, ...] = LANE_CHOICES,
    sim: str = "verilator",
    build_dir: Path | None = None,
    speed_samples: int = 360,
    conv_samples: int = 16,
) -> dict[str, Any]:
    """Both RTL figures for the bundle in ``bundle_dir``: the lanes sweep on its first
    ``samples`` digits, the speed on ``speed_samples`` digits and ``conv_samples`` conv images."""
    bundle = load_bundle(bundle_dir)
    x = digits_inputs(bundle, samples)
    x_speed = digits_inputs(bundle, speed_samples)
    with tempfile.TemporaryDirectory(prefix="sf-bench-rtl-") as tmp:
        root = Path(build_dir) if build_dir else Path(tmp)
        return {
            "bundle": str(bundle_dir),
            "samples": samples,
            "simulator": sim,
            "layers": [f"{layer.name} {layer.n_in}->{layer.n_out}" for layer in bundle.layers],
            "lanes_sweep": lanes_sweep(bundle, x, lanes, sim, root / "lanes"),
            "speed": sim_speed(bundle, x_speed, conv_samples, sim, root / "speed"),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--lanes", default=",".join(str(n) for n in LANE_CHOICES))
    parser.add_argument("--speed-samples", type=int, default=360)
    parser.add_argument("--conv-samples", type=int, default=16)
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    add_json_option(parser)
    args = parser.parse_args(argv)
    lanes = tuple(int(v) for v in args.lanes.split(","))
    figures = run(
        args.bundle, args.samples, lanes, args.sim, None, args.speed_samples, args.conv_samples
    )
    for row in figures["lanes_sweep"]:
        print(
            f"  lanes {row['lanes']:2d}: {row['cycles_per_sample']:9.0f} cycles/sample, "
            f"{row['sops_per_cycle']:.2f} SOPs/cycle"
        )
    for name, s in figures["speed"].items():
        for r in s["runs"]:
            print(
                f"  {name}, {r['jobs']} process(es): {r['cycles_per_s']:,.0f} simulated cycles/s "
                f"({s['cycles']:,} cycles in {r['seconds']:.2f} s, {args.sim} + cocotb)"
            )
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
