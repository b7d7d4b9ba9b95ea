"""Input encoders: integer input codes -> what the bundle's first layer receives.

``direct`` keeps the multi-bit codes ``[N, *shape]`` (the same value at every step, ACE-SNN);
``poisson`` and ``latency`` produce binary trains ``[N, T, *shape]`` (bundle encoding
``spikes``). The float value of a code is ``code * scale``; rate and latency coding read it as an
intensity in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


class Encoder:
    """Base encoder; ``encoding`` is the bundle's ``input.encoding`` it produces."""

    name = "base"
    encoding = "direct"

    def __call__(
        self, codes: Tensor, timesteps: int, scale: float, generator: torch.Generator | None = None
    ) -> Tensor:
        raise NotImplementedError


class DirectEncoder(Encoder):
    """The integer codes themselves, applied at every step by the network."""

    name = "direct"
    encoding = "direct"

    def __call__(
        self, codes: Tensor, timesteps: int, scale: float, generator: torch.Generator | None = None
    ) -> Tensor:
        return codes.to(torch.float32)


class PoissonEncoder(Encoder):
    """Rate coding: at each step a pixel spikes with probability ``clamp(code*scale, 0, 1)``."""

    name = "poisson"
    encoding = "spikes"

    def __call__(
        self, codes: Tensor, timesteps: int, scale: float, generator: torch.Generator | None = None
    ) -> Tensor:
        p = (codes.to(torch.float32) * scale).clamp(0.0, 1.0)
        shape = (p.shape[0], timesteps, *p.shape[1:])
        noise = torch.rand(shape, generator=generator, device=p.device)
        return (noise < p.unsqueeze(1)).to(torch.float32)


class LatencyEncoder(Encoder):
    """Time-to-first-spike: one spike at ``round((1 - x)·(T-1))``; zero pixels stay silent."""

    name = "latency"
    encoding = "spikes"

    def __call__(
        self, codes: Tensor, timesteps: int, scale: float, generator: torch.Generator | None = None
    ) -> Tensor:
        x = (codes.to(torch.float32) * scale).clamp(0.0, 1.0)
        when = torch.floor((1.0 - x) * (timesteps - 1) + 0.5).long()
        steps = torch.arange(timesteps, device=x.device).view(1, -1, *[1] * (x.dim() - 1))
        trains = (steps == when.unsqueeze(1)) & (x.unsqueeze(1) > 0)
        return trains.to(torch.float32)


ENCODERS: dict[str, Callable[[], Encoder]] = {
    "direct": DirectEncoder,
    "poisson": PoissonEncoder,
    "latency": LatencyEncoder,
}


def get_encoder(name: str) -> Encoder:
    """The encoder called ``name`` (``direct``, ``poisson`` or ``latency``)."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; expected one of {sorted(ENCODERS)}")
    return ENCODERS[name]()
