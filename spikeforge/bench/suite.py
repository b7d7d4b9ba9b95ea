"""``nox -s bench``: all benchmarks in one run on one machine, written as JSON and markdown.

1. training-step throughput and peak memory, spikeforge against snnTorch, SpikingJelly and
   Norse (``spikeforge.bench.train``; a peer that cannot be imported is listed with the reason);
2. inference throughput: golden integer model, float and bit-true PyTorch
(``spikeforge.bench.infer``);
3. RTL: cycles per sample and SOPs per cycle against ``lanes``, simulation speed
   (``spikeforge.bench.rtl``).

``python -m spikeforge.bench.suite --out reports/bench`` writes ``bench.json`` and ``bench.md``.
``--quick`` shrinks every size (smoke test; its figures mean nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from spikeforge.bench import infer as bench_infer
from spikeforge.bench import rtl as bench_rtl
from spikeforge.bench import train as bench_train
from spikeforge.bench.peers import PEERS, peer_status

#: spikeforge must train at least this many times faster than the fastest peer (docs/bench.md).
TARGET = 1.5


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average": list(os.getloadavg()),
    }


def ratios(train: list[dict[str, Any]], peers: list[str]) -> list[dict[str, Any]]:
    """Per (workload, T): spikeforge's throughput over the fastest peer's, two ways.

    ``ratio`` is the headline ratio: against the peers as their documentation writes the
    network (``snntorch``, ``spikingjelly``, ``norse``); ``ratio_variant`` is against the
    fastest of all measured peer variants, ``+hoist`` included.
    """
    rows = []
    keys = sorted({(f["workload"], f["timesteps"]) for f in train}, key=lambda k: (k[0], k[1]))
    for workload, steps in keys:
        here = {
            f["contender"]: f for f in train if (f["workload"], f["timesteps"]) == (workload, steps)
        }
        plain = [p for p in here if p in peers]
        variants = [p for p in here if p.split("+")[0] in peers]
        if "spikeforge" not in here or not plain:
            continue
        ours = here["spikeforge"]["samples_per_s"]
        best = max(plain, key=lambda p: here[p]["samples_per_s"])
        best_variant = max(variants, key=lambda p: here[p]["samples_per_s"])
        ratio = ours / here[best]["samples_per_s"]
        ratio_variant = ours / here[best_variant]["samples_per_s"]
        rows.append(
            {
                "workload": workload,
                "timesteps": steps,
                "fastest_peer": best,
                "ratio": ratio,
                "target_met": ratio >= TARGET,
                "fastest_variant": best_variant,
                "ratio_variant": ratio_variant,
                "target_met_variant": ratio_variant >= TARGET,
            }
        )
    return rows


def run(args: argparse.Namespace) -> dict[str, Any]:
    status = peer_status()
    usable = [p for p in PEERS if "version" in status[p]]
    contenders = [*bench_train.SPIKEFORGE, *usable, *[f"{p}+hoist" for p in usable]]
    timesteps = [int(t) for t in args.timesteps.split(",")]
    workloads = args.workloads.split(",")
    report: dict[str, Any] = {"machine": _machine(), "peers": status, "settings": vars(args)}
    report["settings"] = {k: str(v) for k, v in vars(args).items()}
    start = time.perf_counter()
    print("1. training step")
    train = bench_train.run(
        contenders,
        workloads,
        timesteps,
        args.batch,
        args.threads,
        args.rounds,
        args.per_round,
        memory=not args.no_memory,
    )
    report["train"] = [asdict(f) for f in train]
    report["train_ratios"] = ratios(report["train"], usable)
    print("2. inference")
    infer = bench_infer.run(workloads, timesteps, args.batch, args.threads, args.infer_repeats)
    report["infer"] = [asdict(f) for f in infer]
    if not args.no_rtl:
        print("3. RTL")
        report["rtl"] = bench_rtl.run(args.bundle, args.rtl_samples, sim=args.sim)
    report["machine"]["load_average_end"] = list(os.getloadavg())
    report["seconds"] = time.perf_counter() - start
    return report


def _grid_head(columns: list[str]) -> list[str]:
    """Head of a table with one row per ``(workload, T)`` and the given columns."""
    return ["| workload | T | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]


def _section(title: str, *intro: str) -> list[str]:
    """A report section's ``## title`` and its ``intro`` paragraph (the lines given, if any),
    each after a blank line and the section's first content after another."""
    return ["", f"## {title}", "", *([*intro, ""] if intro else [])]


def markdown(report: dict[str, Any]) -> str:
    """The report as markdown tables (what the README shows)."""
    m = report["machine"]
    s = report["settings"]
    lines = [
        "# spikeforge benchmarks",
        "",
        f"`{s['command']}` on {m['cpus']} CPUs ({m['platform']}), torch {m['torch']}, "
        f"{s['threads']} torch threads; load average {m['load_average'][0]:.1f} at the start, "
        f"{m.get('load_average_end', [float('nan')])[0]:.1f} at the end.",
        *_section("Peers"),
    ]
    for name, st in report["peers"].items():
        state = st.get("version") or f"**not installed, not measured**: {st['error']}"
        lines.append(f"- {name}: {state}")
    train = report["train"]
    contenders = list(dict.fromkeys(f["contender"] for f in train))
    lines += _section(
        "1. Training step (forward over T + backward + Adam), samples/s",
        f"Batch {s['batch']}, median of {int(s['rounds']) * int(s['per_round'])} steps after "
        "warm-up, timed in alternating blocks; in brackets: peak RSS over 3 steps above the RSS "
        "before them (MiB).",
        "`+hoist`: the peer with the static first layer computed once (as spikeforge does).",
    )
    lines += _grid_head(contenders)
    keys = list(dict.fromkeys((f["workload"], f["timesteps"]) for f in train))
    for workload, steps in keys:
        cells = []
        for c in contenders:
            f = next(
                (g for g in train if (g["workload"], g["timesteps"], g["contender"]) ==
                 (workload, steps, c)),
                None,
            )  # fmt: skip
            if f is None:
                cells.append("—")
                continue
            mem = "" if f["peak_mib"] is None else f" ({f['peak_mib']:.0f})"
            cells.append(f"{f['samples_per_s']:.1f}{mem}")
        lines.append(f"| {workload} | {steps} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"spikeforge / fastest peer (target >= {TARGET}x): against the peers as their "
        "documentation writes them, and against the fastest variant `+hoist` included:",
        "",
        "| workload | T | fastest peer | ratio | target | fastest variant | ratio | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["train_ratios"]:
        met = "met" if r["target_met"] else "**not met**"
        met_variant = "met" if r["target_met_variant"] else "**not met**"
        lines.append(
            f"| {r['workload']} | {r['timesteps']} | {r['fastest_peer']} | "
            f"{r['ratio']:.2f}x | {met} | {r['fastest_variant']} | "
            f"{r['ratio_variant']:.2f}x | {met_variant} |"
        )
    infer = report["infer"]
    engines = list(dict.fromkeys(f["engine"] for f in infer))
    lines += _section(
        "2. Inference, samples/s",
        "Bundle form of the same networks (conv: stride-2 convolutions instead of max-pooling).",
    )
    lines += _grid_head([*engines, "hidden firing rates"])
    for workload, steps in dict.fromkeys((f["workload"], f["timesteps"]) for f in infer):
        row = [f for f in infer if (f["workload"], f["timesteps"]) == (workload, steps)]
        rates = ", ".join(f"{k} {v:.2f}" for k, v in row[0]["firing_rates"].items())
        cells = " | ".join(f"{f['samples_per_s']:.1f}" for f in row)
        lines.append(f"| {workload} | {steps} | {cells} | {rates} |")
    rtl = report.get("rtl")
    if rtl:
        lines += _section(
            f"3. RTL ({rtl['simulator']}, {rtl['samples']} digits samples, bundle "
            f"`{Path(rtl['bundle']).name}`: {', '.join(rtl['layers'])})",
            "Every chip's spikes and output potentials equal the golden model's.",
        )
        lines += [
            "| lanes | cycles/sample | SOPs/sample | SOPs/cycle |",
            "|---|---|---|---|",
        ]
        for r in rtl["lanes_sweep"]:
            lines.append(
                f"| {r['lanes']} | {r['cycles_per_sample']:.0f} | {r['sops_per_sample']:.0f} | "
                f"{r['sops_per_cycle']:.2f} |"
            )
        lines += [
            "",
            "| simulated (lanes 16) | samples | cycles | processes | simulation s | cycles/s "
            "| vs 1 process |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, sp in rtl["speed"].items():
            what = f"{name} ({', '.join(sp['layers'])})"
            single = sp["runs"][0]["cycles_per_s"]
            for r in sp["runs"]:
                lines.append(
                    f"| {what} | {sp['samples']} | {sp['cycles']} | {r['jobs']} | "
                    f"{r['seconds']:.2f} | {r['cycles_per_s']:,.0f} | "
                    f"{r['cycles_per_s'] / single:.2f}x |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    bench_train.add_timing_arguments(parser)
    parser.add_argument("--infer-repeats", type=int, default=10)
    parser.add_argument("--no-rtl", action="store_true")
    parser.add_argument("--bundle", type=Path, default=bench_rtl.DEFAULT_BUNDLE)
    parser.add_argument("--rtl-samples", type=int, default=8)
    parser.add_argument("--sim", default="verilator", choices=("verilator", "icarus"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    args = parser.parse_args(argv)
    args.command = "python -m spikeforge.bench.suite " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    if args.quick:
        args.timesteps, args.batch, args.rounds, args.per_round = "2", 4, 1, 1
        args.infer_repeats, args.rtl_samples = 1, 1
    report = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(report, indent=2))
    (args.out / "bench.md").write_text(markdown(report))
    print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
