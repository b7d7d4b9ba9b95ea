"""Lee et al. 2020's operation and energy model (their section 4.4, 45 nm numbers of Han et al.).

Per layer ``l``: ``#MAC_l = N_l · S_l`` (neurons times synapses per neuron) and ``a_l`` the
average spiking activity of the spikes feeding it (per neuron and step). Then

* ANN: ``#MAC = Σ_l #MAC_l``;
* SNN: ``#AC = T · Σ_l #MAC_l · a_l``;
* energy: ``E_ANN = #MAC · E_MAC``, ``E_SNN = #AC · E_AC`` with, at 45 nm, 32-bit integer
  ``E_MAC = 3.2 pJ``, ``E_AC = 0.1 pJ`` and 32-bit float ``E_MAC = 4.6 pJ``, ``E_AC = 0.9 pJ``.

So the SNN's advantage over the ANN is ``E_MAC / (E_AC · #AC/#MAC)`` and over a converted SNN
``#AC_conv / #AC``; ``PAPER_RATIOS`` and ``PAPER_CLAIMS`` hold the printed numbers they
reproduce. This is a different model from ACE-SNN's (``spikeforge.pim.energy``): no memory traffic,
no neuron updates, only synaptic operations.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from spikeforge.sim.bundle import Bundle
from spikeforge.sim.golden import GoldenResult


@dataclass(frozen=True)
class OpEnergy:
    """Energy of one multiply-accumulate and one accumulate, in pJ."""

    mac_pj: float
    ac_pj: float


#: 45 nm (Horowitz / Han et al. 2015), as the paper uses them.
INT32 = OpEnergy(mac_pj=3.2, ac_pj=0.1)
FP32 = OpEnergy(mac_pj=4.6, ac_pj=0.9)
ENERGIES: dict[str, OpEnergy] = {"int32": INT32, "fp32": FP32}

#: Printed ``#AC(conversion scheme 1 - scheme 2) : #AC(SNN) : #MAC(ANN)`` (max.-accuracy case).
PAPER_RATIOS: dict[str, tuple[float, float, float]] = {
    "VGG9": (28.18, 25.60, 3.61),
    "ResNet9": (11.67, 18.42, 5.06),
    "ResNet11": (9.6, 10.16, 2.09),
}
#: Printed energy advantages (int): vs the ANN, vs conversion scheme 1, vs scheme 2.
PAPER_CLAIMS: dict[str, tuple[float, float, float]] = {
    "VGG9": (8.87, 7.81, 7.10),
    "ResNet9": (6.32, 2.31, 3.64),
    "ResNet11": (15.32, 4.6, 4.87),
}


def snn_accumulates(macs: Sequence[float], activity: Sequence[float], timesteps: int) -> float:
    """``#AC = T · Σ_l #MAC_l · a_l``."""
    if len(macs) != len(activity):
        raise ValueError(f"{len(macs)} layers of MACs but {len(activity)} activities")
    return float(timesteps * sum(m * a for m, a in zip(macs, activity, strict=True)))


def gain_vs_ann(ac_per_mac: float, energy: OpEnergy = INT32) -> float:
    """``E_ANN / E_SNN = E_MAC / (E_AC · #AC/#MAC)``."""
    if ac_per_mac <= 0:
        raise ValueError(f"#AC/#MAC must be positive, got {ac_per_mac}")
    return energy.mac_pj / (energy.ac_pj * ac_per_mac)


def gain_vs_snn(ac_other: float, ac_ours: float) -> float:
    """Energy advantage over another SNN on the same hardware: ``#AC_other / #AC_ours``."""
    if ac_ours <= 0:
        raise ValueError(f"#AC must be positive, got {ac_ours}")
    return ac_other / ac_ours


def layer_macs(bundle: Bundle) -> list[int]:
    """``#MAC_l = N_l · S_l`` per bundle layer (synapses per neuron: the kernel or fan-in size,
    padding included, so a conv neuron on the border counts its whole kernel, as the paper)."""
    return [int(math.prod(layer.out_shape) * (layer.weight[0].size)) for layer in bundle.layers]


@dataclass(frozen=True)
class OpReport:
    """The paper's counts for one network on a batch (per inference, i.e. per sample)."""

    macs: list[int]
    activity: list[float]
    timesteps: int
    ann_macs: float
    snn_acs: float
    golden_synaptic_ops: float

    @property
    def ac_per_mac(self) -> float:
        return self.snn_acs / self.ann_macs

    def gain_vs_ann(self, energy: OpEnergy = INT32) -> float:
        return gain_vs_ann(self.ac_per_mac, energy)

    def as_dict(self) -> dict[str, object]:
        return {
            "macs_per_layer": self.macs,
            "input_activity_per_layer": self.activity,
            "timesteps": self.timesteps,
            "ann_macs": self.ann_macs,
            "snn_acs": self.snn_acs,
            "ac_per_mac": self.ac_per_mac,
            "golden_synaptic_ops": self.golden_synaptic_ops,
            "gain_vs_ann_int32": self.gain_vs_ann(INT32),
            "gain_vs_ann_fp32": self.gain_vs_ann(FP32),
        }


def op_report(bundle: Bundle, x: np.ndarray, result: GoldenResult) -> OpReport:
    """The paper's counts for ``bundle`` on spike input ``x [N, T, ...]`` from a golden run.

    ``a_l`` is the mean of the spikes feeding layer ``l`` (the input trains for layer 1).
    ``golden_synaptic_ops`` (events x non-zero fan-out, per sample) is the golden model's
    event-driven count, for comparison: it equals ``#AC`` when no weight is zero and no
    conv kernel reaches into the padding.
    """
    if bundle.input.encoding != "spikes":
        raise ValueError("Lee et al.'s #AC counts spike inputs: the bundle must use 'spikes'")
    n = x.shape[0]
    feeds = [np.asarray(x)] + [result.spikes[layer.name] for layer in bundle.layers[:-1]]
    activity = [float(f.mean()) for f in feeds]
    macs = layer_macs(bundle)
    synaptic = sum(c.synaptic_ops for c in result.counters.values()) / n
    return OpReport(
        macs=macs,
        activity=activity,
        timesteps=bundle.timesteps,
        ann_macs=float(sum(macs)),
        snn_acs=snn_accumulates(macs, activity, bundle.timesteps),
        golden_synaptic_ops=float(synaptic),
    )
