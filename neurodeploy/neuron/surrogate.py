"""Surrogate gradients for the spike function S = Heaviside(x), x = H - theta.

The forward pass is always the exact step (x > 0 -> 1, written ``(x > 0)``, strict, as on
Loihi). The backward pass replaces the Dirac delta by a smooth or boxcar pseudo-derivative:

================  =========================================  ===================
name              dS/dx used in the backward pass             width parameter
================  =========================================  ===================
``rectangular``   1/w  if |x| < w/2 else 0                    w (default 1.0)
``arctan``        (k/2) / (1 + (pi/2 * k * x)^2)             k (default 2.0)
``sigmoid``       k * sig(k x) * (1 - sig(k x))              k (default 4.0)
================  =========================================  ===================

Each pseudo-derivative integrates to 1 over the real line, so the three are comparable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

SURROGATES = ("rectangular", "arctan", "sigmoid")
# the integer each compiled kernel (neurodeploy.neuron.kernels: numba and Triton) branches on
SURROGATE_CODES = {"rectangular": 0, "arctan": 1, "sigmoid": 2}
DEFAULT_WIDTH = {"rectangular": 1.0, "arctan": 2.0, "sigmoid": 4.0}


def pseudo_derivative(x: torch.Tensor, kind: str, width: float) -> torch.Tensor:
    if kind == "rectangular":
        return (x.abs() < width / 2).to(x.dtype) / width
    if kind == "arctan":
        return (width / 2) / (1 + (math.pi / 2 * width * x) ** 2)
    sig = torch.sigmoid(width * x)
    return width * sig * (1 - sig)


class _SpikeFn(torch.autograd.Function):
    # ``ctx`` is torch's per-call context object (FunctionCtx plus whatever forward stores on
    # it), typed Any as in torch.autograd.Function itself.
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, kind: str, width: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.kind, ctx.width = kind, width
        return (x > 0).to(x.dtype)

    @staticmethod
    # torch declares backward(ctx, *grad_outputs); autograd calls it with one gradient per
    # forward output, here exactly one
    def backward(  # type: ignore[override]
        ctx: Any, grad_out: torch.Tensor
    ) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        return grad_out * pseudo_derivative(x, ctx.kind, ctx.width), None, None


@dataclass(frozen=True)
class Surrogate:
    """A spike function with a named pseudo-derivative; call it on x = H - theta."""

    kind: str = "rectangular"
    width: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in SURROGATES:
            raise ValueError(f"surrogate: unknown kind {self.kind!r}; choose one of {SURROGATES}")
        if self.width is not None and not (self.width > 0 and math.isfinite(self.width)):
            raise ValueError(f"surrogate width must be a positive finite number, got {self.width}")

    @property
    def w(self) -> float:
        return DEFAULT_WIDTH[self.kind] if self.width is None else float(self.width)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        spikes: torch.Tensor = _SpikeFn.apply(x, self.kind, self.w)  # apply is untyped in torch
        return spikes
