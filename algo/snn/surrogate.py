"""Spike functions with surrogate gradients, selected by name.

Every surrogate is written in the normalised variable ``z = u/theta - 1`` (ACE-SNN eq. 3), so the
same surrogate serves the float domain and the integer (bit-true) domain: ``d spike/du`` is
``g(z)/theta`` and ``d spike/d theta`` is ``-g(z)·u/theta^2``. The forward pass is always the
hardware comparator ``u >= theta``.

Names: ``triangle`` (ACE-SNN eq. 21, after Bellec et al.), ``lee`` (Lee et al. 2020 leak-corrected
straight-through estimator), ``fast_sigmoid`` (SuperSpike) and ``gaussian``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Surrogate:
    """Base class: ``derivative(z)`` is ``d spike / dz`` with ``z = u/theta - 1``."""

    name: str = "base"

    def derivative(self, z: Tensor) -> Tensor:
        raise NotImplementedError

    def output_correction(self, spikes: Tensor, leak: Tensor | float) -> Tensor | None:
        """Optional factor on ``dL/d spikes`` for a whole spike train ``[T, ...]`` (None: none)."""
        return None


@dataclass(frozen=True)
class Triangle(Surrogate):
    """ACE-SNN eq. 21: ``gamma · max(0, 1 - |z|)``, gamma 0.3 in the paper."""

    name: str = "triangle"
    gamma: float = 0.3

    def derivative(self, z: Tensor) -> Tensor:
        return self.gamma * torch.clamp(1.0 - z.abs(), min=0.0)


@dataclass(frozen=True)
class FastSigmoid(Surrogate):
    """SuperSpike / snnTorch fast sigmoid: ``1 / (1 + slope·|z|)^2``."""

    name: str = "fast_sigmoid"
    slope: float = 10.0

    def derivative(self, z: Tensor) -> Tensor:
        return 1.0 / (1.0 + self.slope * z.abs()) ** 2


@dataclass(frozen=True)
class Gaussian(Surrogate):
    """A Gaussian bump of height ``gamma`` and width ``sigma`` (in units of the threshold)."""

    name: str = "gaussian"
    gamma: float = 1.0
    sigma: float = 0.5

    def derivative(self, z: Tensor) -> Tensor:
        return self.gamma * torch.exp(-0.5 * (z / self.sigma) ** 2)


@dataclass(frozen=True)
class LeakCorrectedSTE(Surrogate):
    """Lee et al. 2020 eq. 22: straight-through ``1/theta`` at steps where the neuron fires.

    As in the authors' released code, the gradient reaching the spike train is multiplied by
    ``1 + ln(lambda)·f(T)/gamma`` where ``f(T) = Σ_k lambda^(T-t_k)`` and ``gamma`` counts the
    neuron's spikes (``ln lambda ≈ -1/tau_m``); a silent neuron gets no gradient.
    """

    name: str = "lee"

    def derivative(self, z: Tensor) -> Tensor:
        return (z >= 0).to(z.dtype)

    def output_correction(self, spikes: Tensor, leak: Tensor | float) -> Tensor | None:
        lam = torch.as_tensor(leak, dtype=spikes.dtype).detach().clamp(1e-6, 1.0)
        steps = spikes.shape[0]
        ages = torch.arange(steps - 1, -1, -1, dtype=spikes.dtype).view(
            -1, *[1] * (spikes.dim() - 1)
        )
        trace = (spikes.detach() * lam**ages).sum(0)
        count = spikes.detach().sum(0)
        return 1.0 + torch.log(lam) * trace / count.clamp(min=1.0)


SURROGATES: dict[str, Callable[..., Surrogate]] = {
    "triangle": Triangle,
    "lee": LeakCorrectedSTE,
    "fast_sigmoid": FastSigmoid,
    "gaussian": Gaussian,
}


def get_surrogate(name: str | Surrogate, **params: float) -> Surrogate:
    """The surrogate called ``name`` (see ``SURROGATES``), with optional parameters."""
    if isinstance(name, Surrogate):
        return name
    if name not in SURROGATES:
        raise ValueError(f"unknown surrogate {name!r}; expected one of {sorted(SURROGATES)}")
    return SURROGATES[name](**params)


def _reduce_to(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a broadcast gradient back to ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis, keepdim=True)
    return grad


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u: Tensor, theta: Tensor, surrogate: Surrogate) -> Tensor:
        ctx.save_for_backward(u, theta)
        ctx.surrogate = surrogate
        return (u >= theta).to(u.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor):
        u, theta = ctx.saved_tensors
        d = grad * ctx.surrogate.derivative(u / theta - 1.0) / theta
        grad_u = d if ctx.needs_input_grad[0] else None
        grad_theta = None
        if ctx.needs_input_grad[1]:
            grad_theta = _reduce_to(-d * u / theta, theta.shape)
        return grad_u, grad_theta, None


def spike(u: Tensor, theta: Tensor | float, surrogate: Surrogate) -> Tensor:
    """``1.0 where u >= theta else 0.0``, differentiable through ``surrogate``."""
    theta_t = torch.as_tensor(theta, dtype=u.dtype, device=u.device)
    return _Spike.apply(u, theta_t, surrogate)


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, factor: Tensor) -> Tensor:
        ctx.save_for_backward(factor)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (factor,) = ctx.saved_tensors
        return grad * factor, None


def scale_grad(x: Tensor, factor: Tensor) -> Tensor:
    """Identity forward; multiplies the incoming gradient by ``factor`` (broadcast)."""
    return _ScaleGrad.apply(x, factor)


__all__ = [
    "SURROGATES",
    "FastSigmoid",
    "Gaussian",
    "LeakCorrectedSTE",
    "Surrogate",
    "Triangle",
    "get_surrogate",
    "scale_grad",
    "spike",
]
