"""Tables and figures of docs/methods_bntt_lee2020.md from the runs it lists.

Usage: ``python docs/scripts/bntt_lee2020_figures.py [RUNS_DIR]`` (default ``runs``); prints the
markdown tables, writes them into the doc between its ``<!-- tables:NAME -->`` and
``<!-- /tables:NAME -->`` markers, and writes ``docs/img/bntt_*.png`` and
``docs/img/lee2020_*.png``.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

IMG = Path(__file__).resolve().parents[1] / "img"
DOC = Path(__file__).resolve().parents[1] / "methods_bntt_lee2020.md"


def _save(fig, name: str) -> None:
    """Lay out ``fig``, write it as ``IMG/name`` (110 dpi) and close it."""
    fig.tight_layout()
    IMG.mkdir(parents=True, exist_ok=True)
    fig.savefig(IMG / name, dpi=110)
    plt.close(fig)


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _fold(metrics: dict) -> dict:
    return next(h for h in metrics["history"] if h["phase"] == "fold")


def bntt(runs: Path, dataset: str, steps: list[int]) -> list[tuple[int, dict, dict]]:
    rows = []
    for t in steps:
        m = _load(runs / f"bntt-{dataset}-T{t}" / "metrics.json")
        if m is not None:
            rows.append((t, m, _fold(m)))
    if not rows:
        return rows
    print(f"\n### BNTT, {dataset}\n")
    print(
        "| T | BNTT (exact, float) | early exit: steps / acc | gain spread over t "
        "| fold, float | fold, bit-true | after bit-true fine-tune (= golden) "
        "| bit-true == golden | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for t, m, f in rows:
        acc = m["accuracy"]
        check = m["bit_true_vs_golden"]
        spread = ", ".join(f"{v:.3f}" for v in f.get("gain_spread_over_steps", [])) or "-"
        print(
            f"| {t} | {100 * f['bntt_test_acc']:.2f} | {f['early_exit_steps']} / "
            f"{100 * f['bntt_test_acc_early_exit']:.2f} | {spread} | {100 * f['test_acc']:.2f} | "
            f"{100 * f['bittrue_test_acc_before_finetune']:.2f} | {100 * acc['golden']:.2f} | "
            f"{'yes' if check['equal'] else 'NO'} ({check['spike_values_compared']} spikes) | "
            f"{m['train_seconds']:.0f} |"
        )
    return rows


def bntt_figure(rows: list[tuple[int, dict, dict]], dataset: str) -> None:
    fig, (ax, ax_steps, ax_gamma) = plt.subplots(1, 3, figsize=(14, 4))
    ts = [t for t, _, _ in rows]
    ax.plot(ts, [100 * f["bntt_test_acc"] for _, _, f in rows], "o-", label="BNTT (per-step BN)")
    ax.plot(ts, [100 * f["test_acc"] for _, _, f in rows], "s--", label="folded, float")
    ax.plot(
        ts,
        [100 * f["bittrue_test_acc_before_finetune"] for _, _, f in rows],
        "^--",
        label="folded, bit-true",
    )
    ax.plot(ts, [100 * m["accuracy"]["golden"] for _, m, _ in rows], "d-", label="bundle (golden)")
    ax.set_xlabel("T (training = inference)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"BNTT on {dataset}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    t_max, _, f_max = rows[-1]
    by = {int(k): v for k, v in f_max["bntt_test_acc_by_steps"].items()}
    ax_steps.plot(list(by), [100 * v for v in by.values()], "o-")
    ax_steps.set_xlabel(f"inference steps T' (model trained at T={t_max})")
    ax_steps.set_ylabel("test accuracy (%)")
    ax_steps.grid(alpha=0.3)
    for index, profile in enumerate(f_max["gamma_profile"]):
        ax_gamma.plot(range(1, len(profile) + 1), profile, label=f"layer {index + 1}")
    ax_gamma.axhline(f_max["early_exit_threshold"], color="grey", ls="--", lw=0.8)
    ax_gamma.set_xlabel("time step t")
    ax_gamma.set_ylabel("mean gamma^t")
    ax_gamma.legend(fontsize=8)
    ax_gamma.grid(alpha=0.3)
    _save(fig, f"bntt_{dataset}.png")


def lee(runs: Path) -> None:
    print("\n### Lee et al. 2020, digits (exported, `spikeforge train`)\n")
    print(
        "| run | arch | gradient | lr | T | Lee float | deployed bit-true before fine-tune "
        "| bundle (golden) | bit-true == golden | #AC/#MAC | int32 gain vs ANN | train s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for path in sorted(runs.glob("lee2020-digits-*/metrics.json")):
        m = json.loads(path.read_text())
        deploy = next(h for h in m["history"] if h["phase"] == "deploy")
        energy = _load(path.parent.with_name(path.parent.name + "-energy.json")) or {}
        check = m["bit_true_vs_golden"]
        options = m["config"]["method_options"]
        print(
            f"| `{path.parent.name}` | `{options.get('arch', m['arch'])}` | "
            f"{options.get('gradient', 'aggregate')} | {options.get('lr', '0.003')} | "
            f"{m['timesteps']} | "
            f"{100 * deploy['lee2020_test_acc']:.2f} | "
            f"{100 * deploy['test_acc']:.2f} | {100 * m['accuracy']['golden']:.2f} | "
            f"{'yes' if check['equal'] else 'NO'} ({check['spike_values_compared']} spikes) | "
            f"{energy.get('ac_per_mac', float('nan')):.2f} | "
            f"{energy.get('gain_vs_ann_int32', float('nan')):.2f} | {m['train_seconds']:.0f} |"
        )
    studies = sorted(runs.glob("lee2020-study-*.json"))
    if not studies:
        return
    print(
        "\n### Lee et al. 2020, digits, `spikeforge.studies.lee2020_study` runs "
        "(float, no export)\n"
    )
    print("| arch | gradient | T | test acc | acc at T' | #AC/#MAC | int32 gain vs ANN | train s |")
    print("|---|---|---|---|---|---|---|---|")
    fig, ax = plt.subplots(figsize=(6, 4))
    for path in studies:
        s = json.loads(path.read_text())
        by = {int(k): v for k, v in s["test_acc_by_inference_steps"].items()}
        curve = ", ".join(f"{k}: {100 * v:.1f}" for k, v in by.items())
        print(
            f"| `{s['arch']}` | {s['gradient']} | {s['timesteps']} | {100 * s['test_acc']:.2f} | "
            f"{curve} | {s['energy']['ac_per_mac']:.2f} | "
            f"{s['energy']['gain_vs_ann_int32']:.2f} | {s['train_seconds']:.0f} |"
        )
        ax.plot(
            list(by), [100 * v for v in by.values()], "o-", label=f"{s['arch']} ({s['gradient']})"
        )
    ax.set_xlabel("inference steps T'")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Lee et al. 2020 on digits: accuracy vs inference length")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    _save(fig, "lee2020_inference_steps.png")


def _section(name: str, produce) -> str:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        produce()
    text = buffer.getvalue()
    print(text, end="")
    lines = [line for line in text.strip().splitlines() if not line.startswith("### ")]
    return "\n".join(lines).strip()


def write_doc(sections: dict[str, str]) -> None:
    doc = DOC.read_text()
    for name, table in sections.items():
        pattern = re.compile(rf"(<!-- tables:{name} -->\n).*?(<!-- /tables:{name} -->)", re.DOTALL)
        doc = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), doc)
    DOC.write_text(doc)


def main() -> int:
    runs = Path(sys.argv[1] if len(sys.argv) > 1 else "runs")
    sections = {}
    for dataset, steps in (("digits", [4, 8, 16, 25]), ("fmnist", [2, 4, 8])):
        holder: list = []
        sections[f"bntt-{dataset}"] = _section(
            f"bntt-{dataset}",
            lambda d=dataset, st=steps, h=holder: h.extend(bntt(runs, d, st)),
        )
        if holder:
            bntt_figure(holder, dataset)
    sections["lee"] = _section("lee", lambda: lee(runs))
    write_doc(sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
