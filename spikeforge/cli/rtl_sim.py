"""``spikeforge rtl-sim``: a bundle on its generated chip under cocotb, checked against golden.

Writes RESULT.npz with ``spikeforge run``'s keys (from the RTL), exits 1 on any difference from
the golden model after printing the first (sample, step, layer, neuron), and prints a report:
cycles per sample, synaptic operations, SOPs per cycle and an energy estimate from the RTL
counters (ACE-SNN per-operation model; Zou et al.'s 0.57 pJ/SOP beside it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("bundle", help="bundle directory (manifest.json + weights.npz)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", metavar="X.npy", help="integer codes [N, *shape] or 0/1 trains [N, T, *shape]"
    )
    source.add_argument(
        "--dataset-split",
        choices=("test", "train"),
        help="the split of the dataset the bundle was trained on (direct encoding), with labels",
    )
    add("--data", metavar="DIR", help="dataset directory for --dataset-split (IDX datasets)")
    add("--labels", metavar="Y.npy", help="labels for --input: report the accuracy")
    add("--limit", type=int, help="only the first N samples")
    add("--sim", choices=("verilator", "icarus"), default="verilator", help="HDL simulator")
    add("--out", required=True, metavar="RESULT.npz", help="pred, v_out, spikes.<layer> (RTL)")
    add("--lanes", type=int, default=16, help="neurons updated per cycle per core (default 16)")
    add("--max-neurons", type=int, help="split layers with more neurons over several cores")
    add(
        "--core",
        metavar="AXONSxNEURONS",
        help="fixed core size: spikeforge.rtl.chip.mapping splits layers",
    )
    add("--feed", choices=("auto", "pim", "sums"), default="auto", help="layer 1 (direct)")
    add("--adc-bits", type=int, help="PIM ADC bits (default: lossless, ideal)")
    add("--build-dir", type=Path, help="keep the Verilog and simulator build here")


def _inputs(args: argparse.Namespace, bundle) -> tuple[np.ndarray, np.ndarray | None]:
    from spikeforge.cli.errors import UsageError
    from spikeforge.sim.datasets import DataError, load_dataset
    from spikeforge.sim.results import load_array

    if args.input:
        x = load_array(args.input)
        labels = load_array(args.labels, "labels") if args.labels else None
    else:
        if bundle.input.encoding != "direct":
            raise UsageError("--dataset-split needs a direct-encoded bundle; use --input")
        name = (bundle.meta.get("training") or {}).get("dataset")
        if not name:
            raise UsageError("the bundle names no training dataset (meta.training.dataset)")
        try:
            data = load_dataset(name, args.data)
        except DataError as exc:
            raise UsageError(str(exc)) from None
        x = data.x_test if args.dataset_split == "test" else data.x_train
        labels = data.y_test if args.dataset_split == "test" else data.y_train
        x = x.reshape(x.shape[0], *bundle.input.shape)
    if args.limit is not None:
        x = x[: args.limit]
        labels = None if labels is None else labels[: args.limit]
    if labels is not None and labels.shape != (x.shape[0],):
        raise UsageError(f"labels have shape {list(labels.shape)}; expected [{x.shape[0]}]")
    return x, labels


def main(args: argparse.Namespace) -> int:
    from spikeforge.cli.errors import UsageError
    from spikeforge.pim.model import PimConfig
    from spikeforge.rtl.chip.mapping import CoreSize
    from spikeforge.rtl.chip.top import ChipError, ChipOptions, plan_chip
    from spikeforge.rtl_sim import counter_mismatches, first_mismatch, run_chip
    from spikeforge.sim import golden
    from spikeforge.sim.bundle import BundleError, load_bundle
    from spikeforge.sim.results import ArrayFileError, write_npz_atomic

    start = time.perf_counter()
    try:
        bundle = load_bundle(args.bundle)
        x, labels = _inputs(args, bundle)
        x = golden.check_input(bundle, x)
        options = ChipOptions(
            lanes=args.lanes,
            max_neurons=args.max_neurons,
            core=CoreSize.parse(args.core) if args.core else None,
            feed=args.feed,
            pim=PimConfig(adc_bits=args.adc_bits),
        )
        plan = plan_chip(bundle, options)
        want = golden.run(bundle, x, first_layer_sums=plan.first_layer_sums(x))
    except (BundleError, ArrayFileError, golden.InputError, ChipError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="spikeforge-rtl-") as tmp:
        build = args.build_dir or Path(tmp)
        run = run_chip(bundle, x, sim=args.sim, build_dir=build, plan=plan)
    write_npz_atomic(args.out, run.arrays)
    mismatch = first_mismatch(bundle, run.arrays, want.result_arrays())
    problems = counter_mismatches(run, want)
    print(report(run, want, labels, args.sim, time.perf_counter() - start))
    print(f"wrote {args.out}")
    if mismatch is not None:
        print(f"rtl-sim: {mismatch}", file=sys.stderr)
        return 1
    if problems:
        print(f"rtl-sim: counter mismatch: {problems[0]}", file=sys.stderr)
        return 1
    return 0


def report(run, want, labels, sim: str, wall: float) -> str:
    """The text report: equality, accuracy, cycles, SOPs, energy, wall time."""
    from spikeforge.pim.energy import E_SOP_ZOU
    from spikeforge.pim.report import bundle_report
    from spikeforge.rtl.chip.top import chip_summary
    from spikeforge.sim import golden

    plan, bundle = run.plan, run.plan.bundle
    n = run.cycles.shape[0]
    spikes = sum(int(v.sum()) for k, v in run.arrays.items() if k.startswith("spikes."))
    counters = run.layer_counters(want)
    core_sops = int(run.core_counters[:, :, 1].sum())
    all_sops = sum(c.synaptic_ops for c in counters.values())
    cycles = int(run.cycles.sum())
    energy = bundle_report(bundle, counters, n, plan.options.pim)
    e_pim = energy.totals["pim"][0]
    lines = [
        f"rtl-sim: {n} samples x {bundle.timesteps} steps on {sim}; chip: "
        + "; ".join(s.strip() for s in chip_summary(plan)),
        f"compared: {n * bundle.timesteps} steps, every neuron of {len(bundle.layers)} layers "
        f"({spikes} spikes), {run.arrays['v_out'].size} output potentials",
    ]
    if labels is not None:
        acc_rtl = float(np.mean(run.arrays["pred"] == labels))
        acc_gold = golden.accuracy(want, labels)
        lines.append(f"accuracy: rtl {acc_rtl:.4f}, golden {acc_gold:.4f}")
    lines += [
        f"cycles per sample: mean {cycles / n:.0f}, min {int(run.cycles.min())}, "
        f"max {int(run.cycles.max())} (total {cycles})",
        f"synaptic operations: {core_sops} in the cores ({core_sops / n:.0f} per sample), "
        f"{all_sops} with layer 1 ({all_sops / n:.0f} per sample)",
        f"SOPs per cycle (cores): {core_sops / cycles:.2f}",
        f"energy per sample from RTL counters: ACE-SNN model {e_pim / 1000:.3f} nJ "
        f"(layer 1 in PIM), {energy.totals['digital'][0] / 1000:.3f} nJ all digital; "
        f"Zou et al. {E_SOP_ZOU} pJ/SOP: {all_sops / n * E_SOP_ZOU / 1000:.3f} nJ",
        energy.format(),
        f"wall time: {wall:.1f} s (generate {run.seconds['generate']:.1f} s, build and "
        f"simulate {run.seconds['simulate']:.1f} s)",
    ]
    return "\n".join(lines)
