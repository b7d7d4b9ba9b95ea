"""Multi-step neurons: LIF with trainable leak and threshold, the output accumulator, dropout.

All modules take a whole sequence ``[T, N, *shape]`` at once (SpikingJelly's multi-step mode):
a layer's input current for every step is computed in one batched product, then the neuron
dynamics run over ``T``. The update order is docs/semantics.md's: leak the previous potential, add
this step's input, (saturate), compare ``u >= theta``, reset.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from spikeforge.algo.snn.lif_fused import lif_fused
from spikeforge.algo.snn.surrogate import Surrogate, get_surrogate, scale_grad, spike
from spikeforge.sim.semantics import LEAK_MODES, RESET_MODES
from torch import Tensor, nn


def lif_sequence(
    current: Tensor,
    theta: Tensor | float,
    leak: Callable[[Tensor], Tensor],
    reset: str,
    surrogate: Surrogate | None,
    *,
    fire: str = "lif",
    clamp: Callable[[Tensor], Tensor] | None = None,
    detach_reset: bool = False,
) -> tuple[Tensor | None, Tensor]:
    """Run the neuron dynamics over ``current [T, N, ...]``: returns ``(spikes, v_final)``.

    ``spikes`` is ``[T, N, ...]`` (``None`` for ``fire == "accum"``). ``leak`` and ``clamp`` are
    the float or integer-domain operators, so one loop serves every mode.
    """
    v = torch.zeros_like(current[0])
    spikes = []
    for t in range(current.shape[0]):
        u = leak(v) + current[t]
        if clamp is not None:
            u = clamp(u)
        if fire == "accum":
            v = u
            continue
        s = spike(u, theta, surrogate)
        r = s.detach() if detach_reset else s
        if reset == "sub":
            v = u - r * theta
        elif reset == "zero":
            v = u * (1.0 - r)
        else:
            v = u
        spikes.append(s)
    return (torch.stack(spikes) if spikes else None), v


class LIF(nn.Module):
    """Leaky integrate-and-fire layer, one trainable threshold and leak per layer (ACE-SNN).

    ``leak_mode`` ``mult`` trains ``leak`` (lambda in [0, 1]); ``shift`` fixes lambda to
    ``1 - 2^-k``; ``none`` is an IF neuron. ``reset``: ``sub`` (soft), ``zero`` (hard), ``none``.
    ``fused`` (default) runs all steps as one autograd node with a hand-written BPTT
    (``spikeforge.algo.snn.lif_fused``: same spikes and input gradients); ``False`` uses the
    step-by-step
    reference ``lif_sequence``.
    """

    fire = "lif"

    def __init__(
        self,
        threshold: float = 1.0,
        leak: float = 1.0,
        reset: str = "sub",
        surrogate: str | Surrogate = "triangle",
        *,
        leak_mode: str = "mult",
        shift_k: int = 4,
        learn_threshold: bool = True,
        learn_leak: bool = True,
        detach_reset: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if reset not in RESET_MODES:
            raise ValueError(f"unknown reset {reset!r}; expected one of {list(RESET_MODES)}")
        if leak_mode not in LEAK_MODES:
            raise ValueError(f"unknown leak mode {leak_mode!r}; expected one of {list(LEAK_MODES)}")
        self.threshold = nn.Parameter(torch.tensor(float(threshold)), requires_grad=learn_threshold)
        self.leak = nn.Parameter(
            torch.tensor(float(leak)), requires_grad=learn_leak and leak_mode == "mult"
        )
        self.reset = reset
        self.leak_mode = leak_mode
        self.shift_k = shift_k
        self.surrogate = get_surrogate(surrogate)
        self.detach_reset = detach_reset
        self.fused = fused

    def lam(self) -> Tensor:
        """The effective multiplicative leak lambda in [0, 1]."""
        if self.leak_mode == "mult":
            return self.leak.clamp(0.0, 1.0)
        if self.leak_mode == "shift":
            return torch.tensor(1.0 - 2.0**-self.shift_k)
        return torch.tensor(1.0)

    def forward(self, current: Tensor) -> Tensor:
        """Spikes ``[T, N, ...]`` for the input current ``[T, N, ...]`` (float domain)."""
        lam = self.lam().to(current.dtype)
        theta = self.threshold.clamp(min=1e-3)
        if self.fused:
            spikes, _ = lif_fused(
                current, theta, lam, self.surrogate, self.reset, detach_reset=self.detach_reset
            )
        else:
            spikes, _ = lif_sequence(
                current,
                theta,
                lambda v: v * lam,
                self.reset,
                self.surrogate,
                detach_reset=self.detach_reset,
            )
        return self.correct(spikes, lam)

    def correct(self, spikes: Tensor, lam: Tensor | float) -> Tensor:
        """Apply the surrogate's whole-train gradient correction (Lee et al.), if any."""
        factor = self.surrogate.output_correction(spikes, lam)
        return spikes if factor is None else scale_grad(spikes, factor)

    def extra_repr(self) -> str:
        return (
            f"threshold={self.threshold.item():.4g}, leak={self.lam().item():.4g}, "
            f"leak_mode={self.leak_mode}, reset={self.reset}, surrogate={self.surrogate.name}"
        )


class Accumulator(nn.Module):
    """Accumulate-only output layer: never spikes, no leak; the final potential is the logit."""

    fire = "accum"
    reset = "none"
    leak_mode = "none"

    def forward(self, current: Tensor) -> Tensor:
        """Final potential ``[N, ...]`` = the sum of ``current`` over the steps."""
        return current.sum(0)


class SpikeDropout(nn.Module):
    """Dropout with one mask per sample held over all time steps (Lee et al. 2020, Alg. 1).

    Input ``[T, N, ...]``. With ``rescale`` the kept values are scaled by ``1/(1-p)``; the
    bit-true mode drops without rescaling so spikes stay 0/1.
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor, rescale: bool = True) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape[1:], device=x.device) >= self.p
        mask = keep.to(x.dtype)
        return x * (mask / (1.0 - self.p) if rescale else mask)
