"""RTL figures: cycles per sample and SOPs per cycle against ``lanes``, and simulation speed.

* The lanes sweep runs the bundle's chip (``spikeforge.rtl.chip.top``) at every ``lanes`` choice in
one
  Verilator build (``spikeforge.rtl_flow.run_chips``) on real digits samples; every chip's spikes
  and output potentials must equal the golden model's (checked here, with the count compared).
  SOPs are the golden model's synaptic operations (all layers, layer 1's LOAD-fed multiply-
  accumulates included) per sample; SOPs per cycle = SOPs / chip cycles.
* Simulation speed: simulated clock cycles per wall-clock second of the cocotb test (the
  ``time`` cocotb records in ``results.xml``; the Verilator build is excluded) for the whole
  chip and for one core (the bundle's output layer alone, fed the golden model's spikes).
  The cocotb testbench drives and monitors every cycle from Python, so this is the speed of
  cocotb + Verilator together, not of the Verilated model alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from spikeforge.bench.json_out import add_json_option, write_json
from spikeforge.rtl.chip.top import ChipOptions, plan_chip
from spikeforge.rtl.cores.core import LANE_CHOICES
from spikeforge.rtl_flow import RtlRun, first_mismatch, run_chip, run_chips
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


def _test_seconds(build_dir: Path) -> float:
    """Wall-clock seconds of the cocotb test(s), from the ``results.xml`` cocotb wrote."""
    files = sorted(Path(build_dir).rglob("results.xml"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no cocotb results.xml under {build_dir}")
    cases = ET.parse(files[-1]).getroot().iter("testcase")
    seconds = sum(float(case.get("time", 0.0)) for case in cases)
    if seconds <= 0:
        raise ValueError(f"{files[-1]} records no test time")
    return seconds


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


def sim_speed(bundle: Bundle, x: np.ndarray, sim: str, build_dir: Path) -> dict[str, Any]:
    """Simulated cycles per second of the chip and of one core (lanes 16)."""
    out: dict[str, Any] = {}
    ref = golden.run(bundle, x)
    core = core_bundle(bundle)
    trains = ref.spikes[bundle.layers[-2].name].reshape(len(x), bundle.timesteps, -1)
    for name, b, inputs in (("chip", bundle, x), ("core", core, trains.astype(np.int64))):
        where = build_dir / name
        run = run_chip(b, inputs, sim=sim, build_dir=where, options=ChipOptions(lanes=16))
        compared = _checked(run, b, golden.run(b, inputs))
        seconds = _test_seconds(where)
        cycles = int(np.sum(run.cycles))
        out[name] = {
            "cycles": cycles,
            "test_seconds": seconds,
            "cycles_per_s": cycles / seconds,
            "layers": [layer.name for layer in b.layers],
            "values_compared": compared,
        }
    return out


def run(
    bundle_dir: Path = DEFAULT_BUNDLE,
    samples: int = 8,
    lanes: tuple[int, ...] = LANE_CHOICES,
    sim: str = "verilator",
    build_dir: Path | None = None,
) -> dict[str, Any]:
    """Both RTL figures for the bundle in ``bundle_dir`` on its first ``samples`` digits."""
    bundle = load_bundle(bundle_dir)
    x = digits_inputs(bundle, samples)
    with tempfile.TemporaryDirectory(prefix="sf-bench-rtl-") as tmp:
        root = Path(build_dir) if build_dir else Path(tmp)
        return {
            "bundle": str(bundle_dir),
            "samples": samples,
            "simulator": sim,
            "layers": [f"{layer.name} {layer.n_in}->{layer.n_out}" for layer in bundle.layers],
            "lanes_sweep": lanes_sweep(bundle, x, lanes, sim, root / "lanes"),
            "speed": sim_speed(bundle, x, sim, root / "speed"),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=DEFAULT_BUNDLE)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--lanes", default=",".join(str(n) for n in LANE_CHOICES))
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    add_json_option(parser)
    args = parser.parse_args(argv)
    lanes = tuple(int(v) for v in args.lanes.split(","))
    figures = run(args.bundle, args.samples, lanes, args.sim)
    for row in figures["lanes_sweep"]:
        print(
            f"  lanes {row['lanes']:2d}: {row['cycles_per_sample']:9.0f} cycles/sample, "
            f"{row['sops_per_cycle']:.2f} SOPs/cycle"
        )
    for name, s in figures["speed"].items():
        print(f"  {name}: {s['cycles_per_s']:.0f} simulated cycles/s ({args.sim} + cocotb)")
    write_json(args.json, figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
