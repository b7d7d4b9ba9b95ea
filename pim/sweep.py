"""Accuracy of a bundle with its first layer in PIM, swept over ADC bits and each analog knob.

Every point runs the golden model with layer 1's synaptic sums taken from the PIM model
(``spikeforge.sim.golden.run(..., first_layer_sums=...)``); the rest of the network is the exact
integer model. Random knobs are averaged over several seeds (chip instances).
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from spikeforge.pim.model import PimConfig, PimLayer, pim_first_layer
from spikeforge.sim import golden
from spikeforge.sim.bundle import Bundle

#: Values swept per knob, mildest first (the first is the ideal value).
KNOB_VALUES: dict[str, tuple[float, ...]] = {
    "dac_alpha": (1.0, 0.95, 0.9, 0.8, 0.7, 0.5),
    "cell_sigma": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4),
    "bitline_sat": (0.0, 2.0, 1.0, 0.5, 0.25, 0.1),
    "read_noise": (0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05),
    "adc_gain": (0.0, 0.02, 0.05, 0.1, 0.2, 0.4),
    "adc_offset": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    "adc_gain_sigma": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2),
    "adc_offset_sigma": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    "adc_inl": (0.0, 0.5, 1.0, 2.0, 4.0, 8.0),
}
#: Knobs whose effect depends on the seed.
RANDOM_KNOBS = frozenset(
    {"cell_sigma", "read_noise", "adc_gain_sigma", "adc_offset_sigma", "adc_inl"}
)
#: Units of each knob, for tables and axes.
KNOB_UNITS = {
    "dac_alpha": "exponent",
    "cell_sigma": "relative",
    "bitline_sat": "x full scale (0 = off)",
    "read_noise": "x full scale",
    "adc_gain": "relative",
    "adc_offset": "LSB",
    "adc_gain_sigma": "relative",
    "adc_offset_sigma": "LSB",
    "adc_inl": "LSB peak",
}
#: Accuracy loss (absolute) that marks a knob's tolerance.
TOLERANCE = 0.01


@dataclass(frozen=True)
class Point:
    """One sweep point: accuracy (mean, std over seeds), agreement with the exact model."""

    sweep: str  # "adc_bits" or a knob name
    combine: str
    adc_bits: int
    value: float
    accuracy: float
    accuracy_std: float
    seeds: int
    agreement: float  # fraction of predictions equal to the exact model's
    sum_error: float  # mean |s_pim - s_exact| over all first-layer outputs


@dataclass
class Sweep:
    """The exact model's accuracy, every point, and the ADC bits the knob sweeps used."""

    exact_accuracy: float
    lossless_bits: dict[str, int]
    knob_adc_bits: int
    points: list[Point]
    n_samples: int

    def adc_points(self, combine: str) -> list[Point]:
        return [p for p in self.points if p.sweep == "adc_bits" and p.combine == combine]

    def knob_points(self, knob: str) -> list[Point]:
        return [p for p in self.points if p.sweep == knob]

    def tolerance(self, knob: str) -> float | None:
        """Largest swept value (before the first failure) within ``TOLERANCE`` of exact."""
        ok = None
        for p in self.knob_points(knob):
            if p.accuracy < self.exact_accuracy - TOLERANCE:
                break
            ok = p.value
        return ok

    def csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        names = [f.name for f in dataclasses.fields(Point)]
        writer.writerow(names)
        for p in self.points:
            writer.writerow(_fmt(getattr(p, n)) for n in names)
        return out.getvalue()

    def markdown(self) -> str:
        """Two tables: accuracy vs ADC bits, and each knob's tolerance."""
        combines = sorted({p.combine for p in self.points if p.sweep == "adc_bits"})
        lines = [
            f"Exact (golden) accuracy: {self.exact_accuracy:.4f} on {self.n_samples} samples; "
            + ", ".join(f"lossless ADC: {self.lossless_bits[c]} bits ({c})" for c in combines),
            "",
        ]
        if combines:
            lines += ["| ADC bits | " + " | ".join(combines) + " |"]
            lines += ["|---:|" + "---:|" * len(combines)]
            by_bits = {
                (p.adc_bits, p.combine): p.accuracy for p in self.points if p.sweep == "adc_bits"
            }
            for bits in sorted({b for b, _ in by_bits}):
                cells = [f"{by_bits.get((bits, c), float('nan')):.4f}" for c in combines]
                lines.append(f"| {bits} | " + " | ".join(cells) + " |")
            lines.append("")
        knobs = [k for k in KNOB_VALUES if self.knob_points(k)]
        if knobs:
            lines.append(
                f"Knobs at {self.knob_adc_bits}-bit ADC, digital combine; tolerance = the largest "
                f"value losing at most {TOLERANCE:.0%} accuracy."
            )
            lines += [
                "",
                "| knob | unit | tolerance | accuracy at each value |",
                "|---|---|---:|---|",
            ]
            for knob in knobs:
                tol = self.tolerance(knob)
                values = ", ".join(f"{p.value:g}: {p.accuracy:.3f}" for p in self.knob_points(knob))
                tol_text = "none" if tol is None else f"{tol:g}"
                lines.append(f"| {knob} | {KNOB_UNITS[knob]} | {tol_text} | {values} |")
        return "\n".join(lines) + "\n"


def _fmt(value: object) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def exact_first_layer(bundle: Bundle, x: np.ndarray) -> np.ndarray:
    """Layer 1's exact sums, shaped like ``pim_first_layer``'s."""
    layer, codes = bundle.layers[0], golden.check_input(bundle, x)
    lo, hi = bundle.input.code_range
    engine = golden.exact_engine(golden.sum_bound(layer.weight, max(-lo, hi)))
    sums = golden.synaptic_input(layer, codes.reshape(-1, *layer.in_shape), engine)
    return sums.reshape(*codes.shape[: 1 if bundle.input.encoding == "direct" else 2], -1)


def evaluate(
    bundle: Bundle,
    x: np.ndarray,
    labels: np.ndarray,
    config: PimConfig,
    reference: tuple[np.ndarray, np.ndarray],
) -> tuple[float, float, float]:
    """``(accuracy, agreement, mean |sum error|)`` of the golden model with a PIM layer 1.

    ``reference``: the exact model's predictions and layer-1 sums.
    """
    sums = pim_first_layer(bundle, x, config).sums
    pred = golden.run(bundle, x, first_layer_sums=sums).pred
    exact_pred, exact_sums = reference
    return (
        float(np.mean(pred == labels)),
        float(np.mean(pred == exact_pred)),
        float(np.abs(sums - exact_sums).mean()),
    )


def _point(
    sweep: str,
    value: float,
    configs: Sequence[PimConfig],
    run: Callable[[PimConfig], tuple[float, float, float]],
) -> Point:
    results = np.array([run(c) for c in configs])
    first = configs[0]
    return Point(
        sweep=sweep,
        combine=first.combine,
        adc_bits=int(first.adc_bits or 0),
        value=float(value),
        accuracy=float(results[:, 0].mean()),
        accuracy_std=float(results[:, 0].std()),
        seeds=len(configs),
        agreement=float(results[:, 1].mean()),
        sum_error=float(results[:, 2].mean()),
    )


def run_sweep(
    bundle: Bundle,
    x: np.ndarray,
    labels: np.ndarray,
    *,
    adc_bits: Sequence[int] = tuple(range(4, 15)),
    combines: Sequence[str] = ("digital", "analog"),
    knobs: Sequence[str] = tuple(KNOB_VALUES),
    knob_adc_bits: int | None = None,
    seeds: int = 3,
    base: PimConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Sweep:
    """Sweep ADC bits (per combine mode) and each knob (at ``knob_adc_bits``, digital combine).

    ``knob_adc_bits=None`` picks the fewest swept bits whose ideal digital-combine accuracy is
    within ``TOLERANCE`` of exact (the lossless bits when none is).
    """

    base = base or PimConfig()
    labels = np.asarray(labels)
    exact = golden.run(bundle, x)
    exact_sums = exact_first_layer(bundle, x)
    reference = (exact.pred, exact_sums)
    exact_acc = float(np.mean(exact.pred == labels))

    def run(config: PimConfig) -> tuple[float, float, float]:
        return evaluate(bundle, x, labels, config, reference)

    lossless = {
        c: PimLayer(bundle.layers[0], bundle.input, dataclasses.replace(base, combine=c)).adc.bits
        for c in ("digital", "analog")
    }
    points: list[Point] = []
    for combine in combines:
        for bits in adc_bits:
            config = dataclasses.replace(base, adc_bits=bits, combine=combine)
            points.append(_point("adc_bits", bits, [config], run))
            if progress:
                progress(f"{combine} ADC {bits} bits: accuracy {points[-1].accuracy:.4f}")
    if knob_adc_bits is None:
        digital = [p for p in points if p.sweep == "adc_bits" and p.combine == "digital"]
        good = [p.adc_bits for p in digital if p.accuracy >= exact_acc - TOLERANCE]
        knob_adc_bits = min(good) if good else lossless["digital"]
    knob_base = dataclasses.replace(base, adc_bits=knob_adc_bits, combine="digital")
    for knob in knobs:
        n_seeds = seeds if knob in RANDOM_KNOBS else 1
        for value in KNOB_VALUES[knob]:
            configs = [
                dataclasses.replace(
                    knob_base,
                    nonideal=dataclasses.replace(base.nonideal, seed=s, **{knob: value}),
                )
                for s in range(n_seeds)
            ]
            points.append(_point(knob, value, configs, run))
            if progress:
                progress(f"{knob} = {value:g}: accuracy {points[-1].accuracy:.4f}")
    return Sweep(exact_acc, lossless, knob_adc_bits, points, int(labels.shape[0]))


def plot(sweep: Sweep, path: str, title: str = "") -> None:
    """Accuracy vs ADC bits (left) and vs each knob (small panels), saved to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    knobs = [k for k in KNOB_VALUES if sweep.knob_points(k)]
    cols = 5
    rows = max(1, -(-(len(knobs) + 1) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False)
    flat = axes.ravel()
    floor = sweep.exact_accuracy - TOLERANCE
    ax = flat[0]
    for combine, marker in (("digital", "o"), ("analog", "s")):
        pts = sweep.adc_points(combine)
        if pts:
            ax.plot(
                [p.adc_bits for p in pts], [p.accuracy for p in pts], marker=marker, label=combine
            )
            color = ax.lines[-1].get_color()
            ax.axvline(sweep.lossless_bits[combine], ls=":", lw=0.8, color=color)
    ax.axhline(sweep.exact_accuracy, color="k", ls="--", lw=0.8, label="exact")
    ax.axhline(floor, color="r", ls=":", lw=0.8, label=f"-{TOLERANCE:.0%}")
    ax.set(xlabel="ADC bits", ylabel="test accuracy", title="ADC resolution")
    ax.legend(fontsize=7)
    for ax, knob in zip(flat[1:], knobs, strict=False):
        pts = sweep.knob_points(knob)
        xs = np.arange(len(pts))
        acc = np.array([p.accuracy for p in pts])
        std = np.array([p.accuracy_std for p in pts])
        ax.errorbar(xs, acc, yerr=std, marker="o", ms=3, capsize=2)
        ax.axhline(sweep.exact_accuracy, color="k", ls="--", lw=0.8)
        ax.axhline(floor, color="r", ls=":", lw=0.8)
        ax.set_xticks(xs, [f"{p.value:g}" for p in pts], fontsize=7)
        ax.set(title=knob, xlabel=KNOB_UNITS[knob])
    for ax in flat[: 1 + len(knobs)]:
        ax.set_ylim(0.0, 1.02)
        ax.grid(alpha=0.3)
    for ax in flat[1 + len(knobs) :]:
        ax.axis("off")
    fig.suptitle(
        (title + ": " if title else "")
        + f"PIM first layer; knobs at {sweep.knob_adc_bits}-bit ADC (digital combine)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
