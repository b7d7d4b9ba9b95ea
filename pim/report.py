"""Per-bundle energy/delay report: layer 1 in PIM vs digital MACs, hidden-layer ACs, totals.

All figures are per input sample. Operation counts come from the golden model's counters
(``spikeforge.sim.golden.LayerCounters``), divided by the number of samples; the dense counts the
paper's equations use come from the layer shapes. Direct encoding gives the same input at every
step, so layer 1 runs once per sample (one pass) whether in PIM or digital; spike inputs need one
pass per step.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikeforge.pim.array import map_layer
from spikeforge.pim.energy import (
    E_SOP_ZOU,
    TABLE4,
    LayerDims,
    PimCounts,
    Table4,
    e_ac_at,
    e_mac_at,
    eq22_energy,
    eq23_delay,
    eq24_energy,
    eq25_delay,
    eq26_energy,
    eq27_delay,
    pim_corrected,
    t_ac_at,
    t_mac_at,
)
from spikeforge.pim.model import PimConfig
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.golden import LayerCounters


@dataclass(frozen=True)
class Row:
    """One line of the report: what, which model, energy (pJ) and delay (ns) per sample."""

    part: str
    model: str
    energy_pj: float
    delay_ns: float


@dataclass
class EnergyReport:
    """Rows per layer and variant, plus the totals of the two implementations."""

    rows: list[Row]
    totals: dict[str, tuple[float, float]]  # implementation -> (energy pJ, delay ns)
    r: float

    def format(self) -> str:
        """A plain-text table."""
        lines = [f"{'part':<28} {'model':<34} {'energy pJ':>12} {'delay ns':>12}"]
        lines += [
            f"{r.part:<28} {r.model:<34} {r.energy_pj:>12.1f} {r.delay_ns:>12.1f}"
            for r in self.rows
        ]
        (e_dig, t_dig), (e_pim, t_pim) = self.totals["digital"], self.totals["pim"]
        lines.append(f"{'total, all digital':<63} {e_dig:>12.1f} {t_dig:>12.1f}")
        lines.append(f"{'total, layer 1 in PIM':<63} {e_pim:>12.1f} {t_pim:>12.1f}")
        lines.append(
            f"PIM gain: energy {e_dig / e_pim:.2f}x, delay {t_dig / t_pim:.2f}x, "
            f"EDP {e_dig * t_dig / (e_pim * t_pim):.2f}x  (R = {self.r:.2f} MACs per conversion)"
        )
        return "\n".join(lines)


def bundle_report(
    bundle: Bundle,
    counters: dict[str, LayerCounters],
    n_samples: int,
    config: PimConfig | None = None,
    c: Table4 = TABLE4,
) -> EnergyReport:
    """The report for ``bundle`` from golden ``counters`` over ``n_samples`` samples.

    Totals use the corrected PIM variant, corrected digital layer 1 (zero-gated MACs at the
    input x weight precision) and counted hidden-layer ACs.
    """
    config = config or PimConfig()
    first, hidden = bundle.layers[0], bundle.layers[1:]
    passes = 1 if bundle.input.encoding == "direct" else bundle.timesteps
    dims = LayerDims.of(first)
    counts = PimCounts.of(map_layer(first, config.geometry), config.combine)
    r = counts.r
    e_corr, t_corr = pim_corrected(dims, r, passes, c)
    literal = Row(
        "layer 1 PIM",
        f"Eq.26/27 literal (R={r:.2f})",
        eq26_energy(dims, r, c),
        eq27_delay(dims, r, c),
    )
    mapped = Row(
        "layer 1 PIM",
        "mapped (row-group activations)",
        counts.energy(passes, c),
        counts.delay(passes, c),
    )
    rows = [literal, Row("layer 1 PIM", "corrected (docs/pim.md)", e_corr, t_corr), mapped]
    mac_bits = max(bundle.input.bits, first.w_bits)
    macs = counters[first.name].synaptic_ops / n_samples / bundle.timesteps * passes
    e_mac, t_mac = e_mac_at(mac_bits, c), t_mac_at(mac_bits, c)
    dig_t = eq23_delay(dims, c, t_mac) * passes
    dig_e = dims.weights * c.e_read + macs * e_mac + c.p_leak * dig_t
    rows += [
        Row(
            "layer 1 digital",
            "Eq.22/23 Table 4 (32-bit MAC)",
            eq22_energy(dims, c),
            eq23_delay(dims, c),
        ),
        Row("layer 1 digital", f"counted MACs at {mac_bits} bits", dig_e, dig_t),
    ]
    hidden_e = hidden_t = 0.0
    for layer in hidden:
        d = LayerDims.of(layer)
        ops = counters[layer.name]
        activity = ops.input_events / n_samples / layer.n_in
        e_ac, t_ac = e_ac_at(layer.w_bits, c), t_ac_at(layer.w_bits, c)
        delay = eq25_delay(d, c, t_ac)
        energy = d.weights * c.e_read + ops.synaptic_ops / n_samples * e_ac + c.p_leak * delay
        rows += [
            Row(
                layer.name,
                f"Eq.24/25 (activity {activity:.3f})",
                eq24_energy(d, activity, c, e_ac),
                delay,
            ),
            Row(layer.name, f"counted ACs at {layer.w_bits} bits", energy, delay),
            Row(layer.name, "Zou 0.57 pJ/SOP", ops.synaptic_ops / n_samples * E_SOP_ZOU, delay),
        ]
        hidden_e, hidden_t = hidden_e + energy, hidden_t + delay
    totals = {
        "digital": (dig_e + hidden_e, dig_t + hidden_t),
        "pim": (e_corr + hidden_e, t_corr + hidden_t),
    }
    return EnergyReport(rows=rows, totals=totals, r=r)
