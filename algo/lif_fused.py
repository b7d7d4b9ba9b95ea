"""The float LIF over all ``T`` steps as one autograd node, with its BPTT written by hand.

``algo.neurons.lif_sequence`` builds the graph step by step: every step adds a leak product, a
sum, a spike node, a reset product and a difference to the autograd tape, and the tape then
replays them one by one. ``lif_fused`` computes the same forward pass under ``no_grad`` (only the
membrane potentials ``u [T, ...]`` are saved; spikes and reset potentials are recomputed from
them) and runs backpropagation through time in one Python loop of a few in-place tensor ops per
step. The surrogate derivative, the spike count and the reset potentials are computed for all
steps at once; only the recursion ``dL/dv[t-1] = lambda * dL/du[t]`` is sequential.

Same maths as the reference, op for op, so the results are identical (``tests/algo``):

* forward: ``u = v*lam + I[t]``, ``s = (u >= theta)``, then ``v = u - s*theta`` (``sub``),
  ``u*(1 - s)`` (``zero``) or ``u`` (``none``), each as the same float operation the reference
  performs, so spikes and potentials are bit-identical;
* backward, per step (``g`` = the surrogate's ``derivative(u/theta - 1)``; ``gv`` = dL/dv[t])::

      gs = dL/ds[t] - gv*theta  (sub)  |  dL/ds[t] - gv*u  (zero)  |  dL/ds[t]  (none / detached)
      d  = gs * g / theta
      gu = gv + d  (sub, none)  |  gv*(1 - s) + d  (zero)      -> dL/dI[t] = gu
      gv = gu * lam                                             -> the step before

  Every element of ``dL/dI`` is the reference's expression evaluated in the same order (a sum
  of two terms is commutative in IEEE arithmetic), so the input gradient is bit-identical.
  ``dL/dtheta`` and ``dL/dlam`` are sums over all steps and neurons; the reference's autograd
  accumulates them in another order, so they agree to float rounding only.
"""

from __future__ import annotations

import torch
from torch import Tensor

from algo.surrogate import Surrogate

RESETS = ("sub", "zero", "none")


def _reduce_to(grad: Tensor, like: Tensor) -> Tensor:
    """Sum ``grad`` down to the shape of ``like`` (a scalar or per-neuron parameter)."""
    if like.dim() == 0:
        return grad.sum()
    lead = grad.dim() - like.dim()
    total = grad.sum(dim=tuple(range(lead))) if lead else grad
    keep = tuple(i for i, size in enumerate(like.shape) if size == 1 and total.shape[i] != 1)
    return total.sum(dim=keep, keepdim=True) if keep else total


class _LIFSequence(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        current: Tensor,
        theta: Tensor,
        lam: Tensor,
        surrogate: Surrogate,
        reset: str,
        detach_reset: bool,
    ) -> Tensor:
        steps = current.shape[0]
        u_seq = torch.empty_like(current, memory_format=torch.contiguous_format)
        spikes = torch.empty_like(u_seq)
        v = None
        for t in range(steps):
            u = u_seq[t]
            if v is None:
                torch.mul(torch.zeros_like(u), lam, out=u)
            else:
                torch.mul(v, lam, out=u)
            u.add_(current[t])
            s = spikes[t]
            torch.ge(u, theta, out=s)
            if reset == "sub":
                v = u - s * theta
            elif reset == "zero":
                v = u * (1.0 - s)
            else:
                v = u
        ctx.save_for_backward(u_seq, theta, lam)
        ctx.surrogate = surrogate
        ctx.reset = reset
        ctx.detach_reset = detach_reset
        v_final = v.clone() if v is u else v
        ctx.mark_non_differentiable(v_final)
        return spikes, v_final

    @staticmethod
    def backward(ctx, grad_spikes: Tensor, _grad_v: Tensor | None):
        u_seq, theta, lam = ctx.saved_tensors
        reset, detached = ctx.reset, ctx.detach_reset
        steps = u_seq.shape[0]
        deriv = ctx.surrogate.derivative(u_seq / theta - 1.0)
        need_s = reset == "zero" or (reset == "sub" and ctx.needs_input_grad[1])
        s_seq = (u_seq >= theta).to(u_seq.dtype) if need_s or ctx.needs_input_grad[2] else None
        grad_in = torch.empty_like(u_seq)
        d_seq = torch.empty_like(u_seq)
        gv = None
        for t in range(steps - 1, -1, -1):
            gs = grad_spikes[t]
            if gv is not None and not detached:
                if reset == "sub":
                    gs = gs - gv * theta
                elif reset == "zero":
                    gs = gs - gv * u_seq[t]
            d = d_seq[t]
            torch.mul(gs, deriv[t], out=d)
            d.div_(theta)
            gu = grad_in[t]
            if gv is None:
                gu.copy_(d)
            elif reset == "zero":
                torch.mul(gv, 1.0 - s_seq[t], out=gu)
                gu.add_(d)
            else:
                torch.add(gv, d, out=gu)
            gv = gu * lam
        grad_theta = grad_lam = None
        if ctx.needs_input_grad[1]:
            total = -d_seq * u_seq / theta
            if reset == "sub" and steps > 1:
                # v[t] = u[t] - s[t]*theta: dL/dtheta gets -dL/dv[t] * s[t], dL/dv[t] = lam*gu[t+1]
                total[:-1] -= grad_in[1:] * lam * s_seq[:-1]
            grad_theta = _reduce_to(total, theta)
        if ctx.needs_input_grad[2] and steps > 1:
            if reset == "sub":
                v_prev = u_seq[:-1] - s_seq[:-1] * theta
            elif reset == "zero":
                v_prev = u_seq[:-1] * (1.0 - s_seq[:-1])
            else:
                v_prev = u_seq[:-1]
            grad_lam = _reduce_to(grad_in[1:] * v_prev, lam)
        elif ctx.needs_input_grad[2]:
            grad_lam = torch.zeros_like(lam)
        return grad_in, grad_theta, grad_lam, None, None, None


def lif_fused(
    current: Tensor,
    theta: Tensor,
    lam: Tensor,
    surrogate: Surrogate,
    reset: str = "sub",
    *,
    detach_reset: bool = False,
) -> tuple[Tensor, Tensor]:
    """``(spikes [T, N, ...], v_final [N, ...])`` of float LIF neurons driven by ``current``.

    ``theta`` and ``lam`` are tensors (scalars, or broadcastable to one step) and receive
    gradients; the result equals ``lif_sequence(current, theta, lambda v: v * lam, reset,
    surrogate, detach_reset=detach_reset)`` with identical spikes, potentials and input
    gradients. ``v_final`` carries no gradient (the LIF layer's output is its spikes).
    """
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; expected one of {list(RESETS)}")
    if current.dim() < 1 or current.shape[0] == 0:
        raise ValueError(f"current must be [T, N, ...] with T >= 1, got {list(current.shape)}")
    theta = torch.as_tensor(theta, dtype=current.dtype, device=current.device)
    lam = torch.as_tensor(lam, dtype=current.dtype, device=current.device)
    return _LIFSequence.apply(current, theta, lam, surrogate, reset, detach_reset)
