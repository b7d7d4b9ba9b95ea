"""The float LIF over all ``T`` steps as one autograd node, with its BPTT written by hand.

``spikeforge.algo.snn.neurons.lif_sequence`` builds the graph step by step: every step adds a leak
product, a sum, a spike node, a reset product and a difference to the autograd tape, and the tape
then replays them one by one. ``lif_fused`` computes the same forward pass under ``no_grad`` (only
the membrane potentials ``u [T, ...]`` are saved; spikes and reset potentials are recomputed from
them) and runs backpropagation through time in one Python loop of in-place tensor ops on
preallocated one-step buffers, so each step's working set stays in cache and no ``[T, ...]``
temporary is allocated (fresh large allocations cost page faults that dominated a vectorised
version). The threshold and leak gradients are accumulated step by step as dot products.

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
from spikeforge.algo.snn import lif_native
from spikeforge.algo.snn.surrogate import Surrogate, Triangle
from torch import Tensor

RESETS = ("sub", "zero", "none")


def _reduce_to(grad: Tensor, like: Tensor) -> Tensor:
    """Sum ``grad`` down to the shape of ``like`` (a scalar or per-neuron parameter)."""
    if like.dim() == 0:
        return grad.sum()
    lead = grad.dim() - like.dim()
    total = grad.sum(dim=tuple(range(lead))) if lead else grad
    keep = tuple(i for i, size in enumerate(like.shape) if size == 1 and total.shape[i] != 1)
    return total.sum(dim=keep, keepdim=True) if keep else total


def _dot(a: Tensor, b: Tensor, like: Tensor) -> Tensor:
    """``sum(a * b)`` reduced to the shape of the parameter ``like`` (one BLAS dot if scalar)."""
    if like.dim() == 0 and a.is_contiguous() and b.is_contiguous():
        return torch.dot(a.view(-1), b.view(-1))
    return _reduce_to(a * b, like)


def _derivative(surrogate: Surrogate, u: Tensor, theta: Tensor, out: Tensor) -> Tensor:
    """``surrogate.derivative(u/theta - 1)``; the triangle is evaluated in place in ``out``.

    In place, the triangle ``gamma * clamp(1 - |z|, min=0)`` takes the same float operations
    (``1 - a`` is ``-a + 1`` exactly in IEEE arithmetic) without allocating five temporaries.
    """
    if type(surrogate) is not Triangle:
        return surrogate.derivative(u / theta - 1.0)
    torch.div(u, theta, out=out)
    out.sub_(1.0).abs_().neg_().add_(1.0).clamp_(min=0.0)
    return out.mul_(surrogate.gamma)


def _native_backward(
    ctx, kept: Tensor, grad: Tensor, theta: Tensor, lam: Tensor, gamma: float, pool: bool = False
) -> tuple:
    """The C kernel's backward pass as an autograd ``backward`` result (6 gradients)."""
    th = theta.item()
    args = (kept, grad, th, lam.item(), gamma, ctx.reset, ctx.detach_reset)
    grad_in, du, gs, gl = (
        lif_native.backward(*args, pool=True) if pool else lif_native.backward(*args)
    )
    grad_theta = theta.new_tensor(-du / th - gs) if ctx.needs_input_grad[1] else None
    grad_lam = lam.new_tensor(gl) if ctx.needs_input_grad[2] else None
    return grad_in, grad_theta, grad_lam, None, None, None


def _parameters(current: Tensor, theta, lam, reset: str) -> tuple[Tensor, Tensor]:
    """``theta`` and ``lam`` as tensors of ``current``'s dtype and device; checks ``reset``."""
    if reset not in RESETS:
        raise ValueError(f"unknown reset {reset!r}; expected one of {list(RESETS)}")
    theta = torch.as_tensor(theta, dtype=current.dtype, device=current.device)
    lam = torch.as_tensor(lam, dtype=current.dtype, device=current.device)
    return theta, lam


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
    ) -> tuple[Tensor, Tensor]:
        ctx.surrogate = surrogate
        ctx.reset = reset
        ctx.detach_reset = detach_reset
        ctx.set_materialize_grads(False)  # no zero-filled gradient for v_final (never used)
        ctx.native = type(surrogate) is Triangle and lif_native.supports(current, theta, lam)
        if ctx.native:
            kept, spikes, v = lif_native.forward(current, theta.item(), lam.item(), reset)
            ctx.save_for_backward(kept, theta, lam)
            ctx.mark_non_differentiable(v)
            return spikes, v
        steps = current.shape[0]
        u_seq = torch.empty_like(current, memory_format=torch.contiguous_format)
        spikes = torch.empty_like(u_seq)
        v = torch.zeros_like(u_seq[0])
        scratch = torch.empty_like(v)
        for t in range(steps):
            u = u_seq[t]
            torch.mul(v, lam, out=u)
            u.add_(current[t])
            s = spikes[t]
            torch.ge(u, theta, out=s)
            if reset == "sub":
                torch.mul(s, theta, out=scratch)
                torch.sub(u, scratch, out=v)
            elif reset == "zero":
                torch.sub(1.0, s, out=scratch)
                torch.mul(u, scratch, out=v)
            else:
                v.copy_(u)
        ctx.save_for_backward(u_seq, theta, lam)
        ctx.mark_non_differentiable(v)
        return spikes, v

    @staticmethod
    def backward(ctx, grad_spikes: Tensor, _grad_v: Tensor | None):
        if grad_spikes is None:  # the spikes were not used
            return None, None, None, None, None, None
        u_seq, theta, lam = ctx.saved_tensors
        reset, detached = ctx.reset, ctx.detach_reset
        want_theta, want_lam = ctx.needs_input_grad[1], ctx.needs_input_grad[2]
        if ctx.native:
            return _native_backward(ctx, u_seq, grad_spikes, theta, lam, ctx.surrogate.gamma)
        steps = u_seq.shape[0]
        grad_in = torch.empty_like(u_seq)
        # one step's working set stays in cache: every buffer below is [N, ...]
        d = torch.empty_like(u_seq[0])
        gs_buf = torch.empty_like(d)
        deriv_buf = torch.empty_like(d)
        s = torch.empty_like(d)
        s_prev = torch.empty_like(d)
        v_prev = torch.empty_like(d)
        gv = None
        gv_buf = torch.empty_like(d)
        grad_theta = torch.zeros_like(theta) if want_theta else None
        grad_lam = torch.zeros_like(lam) if want_lam else None
        if reset == "zero" or want_theta or want_lam:
            torch.ge(u_seq[steps - 1], theta, out=s)
        for t in range(steps - 1, -1, -1):
            u = u_seq[t]
            deriv = _derivative(ctx.surrogate, u, theta, deriv_buf)
            if gv is None or detached or reset == "none":
                gs = grad_spikes[t]
            else:
                gs = gs_buf
                torch.mul(gv, theta if reset == "sub" else u, out=gs)
                torch.sub(grad_spikes[t], gs, out=gs)
            torch.mul(gs, deriv, out=d)
            d.div_(theta)
            gu = grad_in[t]
            if gv is None:
                gu.copy_(d)
            elif reset == "zero":
                torch.sub(1.0, s, out=gu)
                gu.mul_(gv)
                gu.add_(d)
            else:
                torch.add(gv, d, out=gu)
            if want_theta:
                # spike: -d*u/theta; soft reset v = u - s*theta: -dL/dv[t] * s[t]
                grad_theta -= _dot(d, u, theta) / theta
                if reset == "sub" and gv is not None:
                    grad_theta -= _dot(gv, s, theta)
            if t > 0 and (want_lam or reset == "zero" or want_theta):
                u_before = u_seq[t - 1]
                torch.ge(u_before, theta, out=s_prev)
                if want_lam:
                    if reset == "sub":
                        torch.mul(s_prev, theta, out=v_prev)
                        torch.sub(u_before, v_prev, out=v_prev)
                    elif reset == "zero":
                        torch.sub(1.0, s_prev, out=v_prev)
                        v_prev.mul_(u_before)
                    else:
                        v_prev = u_before
                    grad_lam += _dot(gu, v_prev, lam)
                s, s_prev = s_prev, s
            gv = torch.mul(gu, lam, out=gv_buf)
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
    if current.dim() < 1 or current.shape[0] == 0:
        raise ValueError(f"current must be [T, N, ...] with T >= 1, got {list(current.shape)}")
    theta, lam = _parameters(current, theta, lam, reset)
    return _LIFSequence.apply(current, theta, lam, surrogate, reset, detach_reset)


class _LIFPoolSequence(torch.autograd.Function):
    """The LIF sequence followed by a 2x2 max pool, in the C kernel only (``lif_native``)."""

    @staticmethod
    def forward(
        ctx,
        current: Tensor,
        theta: Tensor,
        lam: Tensor,
        gamma: float,
        reset: str,
        detach_reset: bool,
    ):
        kept, pooled, _ = lif_native.forward(current, theta.item(), lam.item(), reset, pool=True)
        ctx.save_for_backward(kept, theta, lam)
        ctx.gamma, ctx.reset, ctx.detach_reset = gamma, reset, detach_reset
        return pooled

    @staticmethod
    def backward(ctx, grad_pooled: Tensor):
        kept, theta, lam = ctx.saved_tensors
        return _native_backward(ctx, kept, grad_pooled, theta, lam, ctx.gamma, pool=True)


def lif_maxpool(
    current: Tensor,
    theta: Tensor,
    lam: Tensor,
    surrogate: Surrogate,
    reset: str = "sub",
    *,
    detach_reset: bool = False,
) -> Tensor:
    """Spikes of ``lif_fused`` on ``current [T, N, C, H, W]`` after a 2x2 max pool of stride 2.

    Equal to ``F.max_pool2d(spikes, 2)`` step by step, gradients included (each window's
    gradient goes to its first maximum in row-major order, as torch routes it). With the C
    kernel (triangle surrogate, scalar threshold and leak, even H and W) the unpooled spikes are
    never stored: the pool is taken as they are computed and the backward pass recomputes them.
    """
    if current.dim() != 5 or current.shape[0] == 0:
        raise ValueError(f"current must be [T, N, C, H, W] with T >= 1, got {list(current.shape)}")
    theta, lam = _parameters(current, theta, lam, reset)
    if (
        type(surrogate) is Triangle
        and lif_native.pool_width(current)
        and lif_native.supports(current, theta, lam)
    ):
        return _LIFPoolSequence.apply(current, theta, lam, surrogate.gamma, reset, detach_reset)
    spikes, _ = lif_fused(current, theta, lam, surrogate, reset, detach_reset=detach_reset)
    steps, n = spikes.shape[:2]
    pooled = torch.nn.functional.max_pool2d(spikes.reshape(steps * n, *spikes.shape[2:]), 2)
    return pooled.reshape(steps, n, *pooled.shape[1:])
