"""One feed-forward neuron layer of quantisation-aware training as a single autograd function.

:meth:`QATNet._neuron <neurodeploy.quant.qat.QATNet._neuron>` attaches float proxies to the
integer trajectories step by step (module docstring of :mod:`neurodeploy.quant.qat`). Every
proxy's *value* is the exact integer's (``st(exact, proxy)``), so for a layer without a recurrent
edge all forward values follow from the exact run (:func:`~neurodeploy.quant.scan.run_layer`) at
once, over all T steps, and the gradient of that per-step graph is a short reverse-time recursion
that needs no autograd graph. With s, m, u the exact spikes, state and current of step t
(s(-1) = m(-1) = 0), keep = dv_to_beta(dv), keep_u = du_to_beta(du), c the coefficient's value
and v_scale the layer's membrane units per float unit, the forward values are::

    U(t)    = 64 a(t)                        (MPS)     u(t)   (LIF: the exact current)
    h(t)    = (m(t-1) keep + U(t) + b) r(t),  r(t) = 1 - s(t-1) with reset_delay, else 1
    x(t)    = (h(t) - 64 vth) / v_scale,      sg(t) = d surrogate / dx at x(t)
    post(t) = h(t) (1 - s(t))
    out(t)  = s(t)                           the exact spikes, bit for bit

and with G(t) = dL/d out(t), gm = dL/d m~(t), gu = dL/d u~(t) (both 0 after the last step), the
backward runs t = T-1 .. 0::

    dpost = gm (4096 - c) / 4096
    ds    = G(t) - dpost h(t)                (G(t) alone with detach_reset)
    dh0   = (dpost (1 - s(t)) + ds sg(t) / v_scale) r(t)
    dc   += sum gm (m(t-1) - post(t)) / 4096
    db   += dh0
    LIF:  dup = dh0 + gu,  da(t) = 64 dup,  gu <- keep_u dup
    MPS:  da(t) = 64 dh0
    gm   <- gm c / 4096 + keep dh0

and finally, for a LIF whose current starts at -b (u_init_bias), db -= gu (the u~(-1) = -b term).
All of it in STATE_DTYPE (float64); the gradients are cast to their inputs' dtypes.
The bias gradient is summed over steps and batch down to the bias's own shape; dc reaches alpha
through ``c = st(coef, 4096 alpha)``. Spikes of step t-1 enter h(t) only detached (the
refractory factor), so no gradient flows along them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from neurodeploy.neuron.fixedpoint import ACT_SHIFT, DECAY_UNIT
from neurodeploy.neuron.surrogate import Surrogate, pseudo_derivative
from neurodeploy.quant.prepared import STATE_DTYPE


@dataclass(frozen=True)
class NeuronSpec:
    """The constants and exact trajectories of one layer's run (module docstring).

    ``spikes``, ``v``: the exact spikes and state after every step (T, B, *shape); ``u``: the
    exact current after every step (a LIF) or None (an MPS neuron, whose input is 64 a)."""

    spikes: torch.Tensor
    v: torch.Tensor
    u: torch.Tensor | None
    keep: float
    keep_u: float
    coef: float
    vth64: float
    v_scale: float
    reset_delay: bool
    detach_reset: bool
    u_init_bias: bool
    surrogate: Callable[[torch.Tensor], torch.Tensor]


def _surrogate_slope(
    surrogate: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, scale: float
) -> torch.Tensor:
    """scale * d surrogate(x) / dx, elementwise: for a :class:`Surrogate` its pseudo-derivative
    (what its backward multiplies by), otherwise from the surrogate's own backward."""
    if isinstance(surrogate, Surrogate):
        return pseudo_derivative(x, surrogate.kind, surrogate.w).mul_(scale)
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        y = surrogate(leaf)
        (slope,) = torch.autograd.grad(y, leaf, torch.full_like(y, scale))
    return slope.detach()


class _FusedNeuron(torch.autograd.Function):
    """Forward: the exact spikes; backward: the reverse-time recursion (module docstring).

    Saved per step (T, B, *shape): P = (1 - s) r (uint8), the path of dpost to dh0; S = sg r / v_scale,
    that of ds; h (without detach_reset: the reset's own gradient); and D = m(t-1) - post(t)
    (where the coefficient is trained)."""

    @staticmethod
    def forward(  # noqa: PLR0917  (autograd's apply passes the inputs positionally)
        ctx: Any,
        a: torch.Tensor,
        bias: torch.Tensor,
        coef: torch.Tensor | None,
        spec: NeuronSpec,
    ) -> torch.Tensor:
        s = spec.spikes.to(STATE_DTYPE)
        m_prev = torch.zeros_like(s)  # m(t-1), 0 at t = 0
        m_prev[1:] = spec.v[:-1]
        # the step graph's own operations in its order, so that h is bit for bit its value
        # (64 a is exact, so adding it with alpha = 64 rounds once, as h + act_in(a) does)
        h = m_prev * spec.keep
        if spec.u is None:
            h.add_(a.detach(), alpha=float(1 << ACT_SHIFT))
        else:
            h += spec.u
        h += bias.detach().to(STATE_DTYPE)
        p = 1 - spec.spikes  # 0/1: uint8 (promoted to STATE_DTYPE where multiplied)
        r: torch.Tensor | None = None
        if spec.reset_delay:
            r = torch.ones_like(p)
            r[1:] -= spec.spikes[:-1]
            h *= r
        x = h - spec.vth64
        x /= spec.v_scale
        slope = _surrogate_slope(spec.surrogate, x, 1 / spec.v_scale)
        del x
        d: torch.Tensor | None = None
        if coef is not None:
            d = m_prev.sub_(h * p)
        del m_prev
        if r is not None:
            p *= r
            slope *= r
        ctx.save_for_backward(p, slope, None if spec.detach_reset else h, d)
        ctx.spec = spec
        ctx.a_dtype, ctx.bias_dtype, ctx.bias_shape = a.dtype, bias.dtype, bias.shape
        return s

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, g_out: torch.Tensor
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None, None]:
        p, slope, h, d = ctx.saved_tensors
        spec: NeuronSpec = ctx.spec
        c = spec.coef
        g_out = g_out.to(STATE_DTYPE)
        # dh0(t), filled from the last step: ds sg r / v_scale, then + dpost (1 - s) r
        dh0 = g_out * slope if spec.detach_reset else torch.empty_like(slope)
        gm = torch.zeros_like(slope[0])  # dL/dm~(t), 0 after the last step
        dc = torch.zeros((), dtype=STATE_DTYPE, device=slope.device)
        for t in range(slope.shape[0] - 1, -1, -1):
            dpost = gm * ((DECAY_UNIT - c) / DECAY_UNIT)
            if not spec.detach_reset:
                torch.mul(torch.addcmul(g_out[t], dpost, h[t], value=-1), slope[t], out=dh0[t])
            dh0[t].addcmul_(dpost, p[t])
            if d is not None:
                dc += torch.vdot(gm.flatten(), d[t].flatten()) / DECAY_UNIT
            gm = torch.add(gm * (c / DECAY_UNIT), dh0[t], alpha=spec.keep)
        db = dh0.sum_to_size(ctx.bias_shape)
        if spec.u is not None and spec.keep_u != 0:  # LIF: dup(t) = dh0(t) + keep_u dup(t+1)
            for t in range(dh0.shape[0] - 2, -1, -1):
                dh0[t].add_(dh0[t + 1], alpha=spec.keep_u)
            if spec.u_init_bias:  # u~(-1) = -b
                db = db - (dh0[0] * spec.keep_u).sum_to_size(ctx.bias_shape)
        da = dh0.mul_(float(1 << ACT_SHIFT))  # a enters as a << 6
        need_a, need_b, need_c = ctx.needs_input_grad[:3]
        return (
            da.to(ctx.a_dtype) if need_a else None,
            db.to(ctx.bias_dtype) if need_b else None,
            dc if need_c else None,
            None,
        )


def fused_neuron(
    a: torch.Tensor, bias: torch.Tensor, coef: torch.Tensor | None, spec: NeuronSpec
) -> torch.Tensor:
    """The exact spikes (T, B, *shape) in STATE_DTYPE, differentiable w.r.t. the proxies ``a``
    (T, B, *shape), ``bias`` (broadcast against one step) and ``coef`` (a 0-dim tensor whose
    value is ``spec.coef``, or None where the coefficient is not trained)."""
    out: torch.Tensor = _FusedNeuron.apply(a, bias, coef, spec)  # apply is untyped in torch
    return out


__all__ = ["NeuronSpec", "fused_neuron"]
