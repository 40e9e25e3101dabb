"""The fused multi-step LIF as a ``torch.autograd.Function``: one compiled forward over all T
steps and a hand-written reverse-time backward (equations: :mod:`neurodeploy.neuron.lif`; the loops
and their derivation: :mod:`neurodeploy.neuron.kernels.cpu`).

Where it runs: CPU tensors of dtype float32 or float64, with numba importable; CUDA tensors of
dtype float32 with triton importable, through the Triton kernels of
:mod:`neurodeploy.neuron.kernels.triton_lif` (verified in Triton's interpreter only; see there).
Everywhere else (half precision, other devices, no numba / triton) :func:`unavailable_reason`
says why, and :class:`neurodeploy.nn.layers.LIF` falls back to the reference path of
:mod:`neurodeploy.neuron.lif`. :func:`select_backend` is the one place that decides.

Memory: the forward saves only the input I (T, B, ...); the backward rebuilds the smoothed
state M block by block of neurons in a small scratch
(:func:`neurodeploy.neuron.kernels.cpu.lif_backward`) and allocates only dL/dI (the reference path
keeps several tensors per timestep in the autograd graph).
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from neurodeploy.neuron.kernels import cpu, triton_lif
from neurodeploy.neuron.lif import LIFParams, check_alpha, check_input

FUSED_DTYPES = (torch.float32, torch.float64)


@functools.lru_cache(maxsize=1)
def numba_available() -> bool:
    """Whether numba imports (checked once per process)."""
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


def select_backend(device_type: str, dtype: torch.dtype) -> tuple[str, str | None]:
    """The fused kernel for tensors on ``device_type`` of ``dtype``: ("numba", None) on CPU,
    ("triton", None) on CUDA, or ("reference", why) where neither can run."""
    if device_type == "cuda":
        why = triton_lif.unavailable_reason_for(dtype)
        return ("triton", None) if why is None else ("reference", why)
    if device_type != "cpu":
        return "reference", (
            f"no fused kernel for {device_type} tensors (numba on CPU, " f"Triton on CUDA)"
        )
    if dtype not in FUSED_DTYPES:
        return "reference", f"the fused kernel supports float32/float64, got {dtype}"
    if not numba_available():
        return "reference", "numba is not installed (pip install numba)"
    return "numba", None


def unavailable_reason(x: torch.Tensor) -> str | None:
    """Why the fused kernel cannot run on ``x`` (None: it can)."""
    return select_backend(x.device.type, x.dtype)[1]


def _alpha_values(alpha: torch.Tensor | float | None) -> tuple[float, float]:
    """(alpha, 1 - alpha) as Python floats, 1 - alpha rounded as the reference rounds it:
    in alpha's own dtype for a tensor, in double for a Python float."""
    if alpha is None:
        return 0.0, 1.0
    if isinstance(alpha, torch.Tensor):
        a = alpha.detach()
        return float(a), float(1 - a)
    return float(alpha), 1.0 - float(alpha)


class _FusedLIF(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        alpha: torch.Tensor | None,
        cfg: dict[str, Any],
    ) -> torch.Tensor:
        x2 = x.detach().reshape(x.shape[0], -1).contiguous()
        spikes = torch.empty_like(x2)
        cpu.lif_forward(x2.numpy(), spikes.numpy(), **_fwd_args(cfg))
        ctx.save_for_backward(x2, alpha)
        ctx.cfg = cfg
        ctx.x_shape = x.shape
        return spikes.reshape(x.shape)

    @staticmethod
    @once_differentiable
    # torch declares backward(ctx, *grad_outputs); autograd passes one gradient per forward
    # output, here exactly one
    def backward(ctx: Any, grad_s: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x2, alpha = ctx.saved_tensors
        cfg = ctx.cfg
        xn = x2.numpy()
        g = grad_s.reshape(x2.shape).to(x2.dtype).contiguous().numpy()
        grad_x = torch.empty_like(x2)
        dalpha = cpu.lif_backward(
            xn,
            g,
            grad_x.numpy(),
            detach=cfg["detach"],
            kind=cfg["kind"],
            width=cfg["width"],
            **_fwd_args(cfg),
        )
        gx = grad_x.reshape(ctx.x_shape) if ctx.needs_input_grad[0] else None
        ga = None
        if alpha is not None and ctx.needs_input_grad[1]:
            ga = torch.full_like(alpha, dalpha)
        return gx, ga, None


def _fwd_args(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: cfg[k] for k in ("beta", "theta", "alpha", "oma", "charge", "hard", "smooth")}


def lif_multistep_fused(
    x: torch.Tensor, alpha: torch.Tensor | float | None, p: LIFParams
) -> torch.Tensor:
    """Same contract and, in float32 and float64, the same spikes as
    :func:`neurodeploy.neuron.lif.lif_multistep` (T, B, ...) -> (T, B, ...), from one compiled loop
    (numba on CPU, Triton on CUDA: :func:`select_backend`);
    gradients to ``x`` and to a tensor ``alpha`` from the hand-written backward.

    Raises ValueError when the kernel cannot run on ``x`` (see :func:`unavailable_reason`).
    """
    check_input(x)
    check_alpha(alpha)
    backend, why = select_backend(x.device.type, x.dtype)
    if why is not None:
        raise ValueError(f"fused LIF kernel: {why}")
    if backend == "triton":
        return triton_lif.lif_multistep_triton(x, alpha, p)
    a, oma = _alpha_values(alpha)
    cfg = {
        "beta": p.beta,
        "theta": p.theta,
        "alpha": a,
        "oma": oma,
        "charge": p.mps_mode == "charge",
        "hard": p.reset == "hard",
        "smooth": alpha is not None,
        "detach": p.detach_reset,
        "kind": p.surrogate.kind,
        "width": p.surrogate.w,
    }
    a_t = alpha if isinstance(alpha, torch.Tensor) else None
    out: torch.Tensor = _FusedLIF.apply(x, a_t, cfg)
    return out


__all__ = [
    "FUSED_DTYPES",
    "lif_multistep_fused",
    "numba_available",
    "select_backend",
    "unavailable_reason",
]
