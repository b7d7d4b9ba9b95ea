"""A LIF layer followed by 2x2 max pooling, fused into one pass when the C kernel can run it.

Pooling is not a hardware layer (docs/semantics.md), so ``SNN`` has none; torch-level conv networks
such as the benchmark's (``spikeforge.bench.train``) pool the spike maps of a LIF layer.
``LIFMaxPool`` gives exactly ``max_pool2d(LIF(current), 2)`` (spikes and gradients) and, on the
default path (fused LIF, triangle surrogate), computes it in ``spikeforge.algo.snn.lif_native``'s
kernel without storing the unpooled spikes, the pooling indices or their gradient.
"""

from __future__ import annotations

import torch.nn.functional as F
from spikeforge.algo.snn.lif_fused import lif_maxpool
from spikeforge.algo.snn.neurons import LIF
from spikeforge.algo.snn.surrogate import Triangle
from torch import Tensor, nn


class LIFMaxPool(nn.Module):
    """``lif`` on ``current [T, N, C, H, W]``, then a 2x2 max pool of stride 2 at every step."""

    def __init__(self, lif: LIF) -> None:
        super().__init__()
        self.lif = lif

    def forward(self, current: Tensor) -> Tensor:
        """Pooled spikes ``[T, N, C, H//2, W//2]``."""
        if current.dim() != 5:
            raise ValueError(f"LIFMaxPool needs [T, N, C, H, W], got {list(current.shape)}")
        lif = self.lif
        if lif.fused and type(lif.surrogate) is Triangle:
            lam = lif.lam().to(current.dtype)
            theta = lif.threshold.clamp(min=1e-3)
            return lif_maxpool(
                current, theta, lam, lif.surrogate, lif.reset, detach_reset=lif.detach_reset
            )
        spikes = lif(current)
        steps, n = spikes.shape[:2]
        pooled = F.max_pool2d(spikes.reshape(steps * n, *spikes.shape[2:]), 2)
        return pooled.reshape(steps, n, *pooled.shape[1:])
