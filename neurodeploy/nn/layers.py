"""Thin nn.Modules over the functional core (:mod:`neurodeploy.neuron.lif`).

:class:`LIF` owns the learnable smoothing logit ``a`` (alpha = sigmoid(a), one scalar per
layer, shared by its neurons) and runs the fused kernel of :mod:`neurodeploy.neuron.kernels` where it
can (CPU: float32/float64 with numba; CUDA: float32 with triton), else the reference
:func:`neurodeploy.neuron.lif.lif_multistep`.
:class:`PerStep` applies a stateless module (Linear, Conv, BatchNorm, pooling, Flatten) to
every timestep by folding T into the batch.
"""

from __future__ import annotations

import math
import warnings
from typing import TypedDict, Unpack

import torch
from torch import nn

from neurodeploy.neuron.kernels import KERNELS, lif_multistep_fused, unavailable_reason
from neurodeploy.neuron.lif import LIFParams, LIFTrace, li_multistep, lif_multistep, lif_trace
from neurodeploy.neuron.surrogate import Surrogate


class LIF(nn.Module):
    """Multi-step LIF with optional membrane potential smoothing; input and output (T, B, ...).

    Args:
        tau: membrane time constant in timesteps (> 1); beta = 1 - 1/tau.
        theta: threshold.
        reset: "hard" (to zero, Loihi's) or "soft" (subtract theta).
        mps: smoothing on (learnable alpha) or off (alpha = 0 exactly: vanilla LIF).
        mps_mode: "reset" (smooth the post-reset state, default) or "charge".
        alpha_init: initial alpha in (0, 1) when ``mps``; a = logit(alpha_init).
        learn_alpha: whether ``a`` is trained (a Parameter) or fixed (a buffer).
        surrogate, surrogate_width: pseudo-derivative of the spike (see surrogate.py).
        detach_reset: detach the spike inside the reset (default True).
        kernel: "auto" (default: the fused kernel of :mod:`neurodeploy.neuron.kernels` where it can
            run, else the reference path with a one-line warning), "fused" (an error where it
            cannot run) or "reference" (always the pure-PyTorch
            :func:`~neurodeploy.neuron.lif.lif_multistep`).
            Same spikes either way (bit for bit in float32/float64); gradients agree to rounding.
        reset_delay: snnTorch's delayed zero reset (reset_mechanism="zero", reset_delay=True, as
            its Synaptic, RLeaky and RSynaptic run it): hard reset plus one refractory step whose
            input is dropped (equations in :mod:`neurodeploy.neuron.lif`). Vanilla hard-reset
            neurons only (``mps=True`` with it is refused). The fused kernels do not implement
            it: such a layer runs the reference step loop (``kernel="fused"`` is refused).
    """

    def __init__(
        self,
        tau: float = 2.0,
        theta: float = 1.0,
        *,
        reset: str = "hard",
        mps: bool = True,
        mps_mode: str = "reset",
        alpha_init: float = 0.5,
        learn_alpha: bool = True,
        surrogate: str = "rectangular",
        surrogate_width: float | None = None,
        detach_reset: bool = True,
        kernel: str = "auto",
        reset_delay: bool = False,
    ) -> None:
        super().__init__()
        if kernel not in KERNELS:
            raise ValueError(f"LIF: kernel must be one of {KERNELS}, got {kernel!r}")
        if reset_delay and mps:
            raise ValueError(
                "LIF: reset_delay (snnTorch's delayed zero reset) is defined for vanilla neurons; "
                "membrane potential smoothing with it (mps=True) is not supported"
            )
        if reset_delay and kernel == "fused":
            raise ValueError(
                "LIF(kernel='fused'): the fused kernels do not implement reset_delay; "
                "use kernel='auto' or 'reference'"
            )
        self.kernel = kernel
        self.params = LIFParams(
            tau=tau,
            theta=theta,
            reset=reset,
            mps_mode=mps_mode,
            detach_reset=detach_reset,
            surrogate=Surrogate(surrogate, surrogate_width),
            reset_delay=bool(reset_delay),
        )
        self.mps = bool(mps)
        self.a: torch.Tensor | None
        if self.mps:
            if not (0.0 < alpha_init < 1.0):
                raise ValueError(f"alpha_init must be in (0, 1) when mps is on, got {alpha_init}")
            logit = torch.tensor(math.log(alpha_init / (1 - alpha_init)))
            if learn_alpha:
                self.a = nn.Parameter(logit)
            else:
                self.register_buffer("a", logit)
        else:
            self.a = None

    @property
    def alpha(self) -> torch.Tensor | None:
        """The smoothing coefficient sigmoid(a), or None for a vanilla LIF (alpha = 0)."""
        return None if self.a is None else torch.sigmoid(self.a)

    def alpha_value(self) -> float:
        a = self.alpha
        return 0.0 if a is None else float(a.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.params.reset_delay:  # no fused kernel for it: the reference step loop
            return lif_multistep(x, self.alpha, self.params)
        if self.kernel != "reference" and isinstance(x, torch.Tensor):
            why = unavailable_reason(x)
            if why is None:
                return lif_multistep_fused(x, self.alpha, self.params)
            if self.kernel == "fused":
                raise ValueError(f"LIF(kernel='fused'): {why}")
            # the warnings registry shows each distinct notice once per process
            warnings.warn(
                f"LIF: fused kernel not used ({why}); running the reference PyTorch path",
                RuntimeWarning,
                stacklevel=1,  # points at this layer (the caller is torch's Module.__call__)
            )
        return lif_multistep(x, self.alpha, self.params)

    def trace(self, x: torch.Tensor) -> LIFTrace:
        """All per-timestep states for input ``x`` (T, B, ...)."""
        return lif_trace(x, self.alpha, self.params)

    def extra_repr(self) -> str:
        p = self.params
        mps = f"mps={p.mps_mode}, alpha={self.alpha_value():.3f}" if self.mps else "mps=off"
        delay = ", reset_delay" if p.reset_delay else ""
        return (
            f"tau={p.tau}, theta={p.theta}, reset={p.reset}{delay}, {mps}, "
            f"surrogate={p.surrogate.kind}"
        )


class PerStep(nn.Module):
    """Apply a stateless module to each timestep: (T, B, ...) -> (T, B, ...')."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(
                f"{type(self.module).__name__}: expected input (T, B, ...), got shape {tuple(x.shape)}"
            )
        y = self.module(x.flatten(0, 1))
        return y.unflatten(0, x.shape[:2])

    def extra_repr(self) -> str:
        return "per timestep"


class LIFOptions(TypedDict, total=False):
    """The keyword arguments of :class:`LIF` (any subset; the rest keep LIF's defaults)."""

    tau: float
    theta: float
    reset: str
    mps: bool
    mps_mode: str
    alpha_init: float
    learn_alpha: bool
    surrogate: str
    surrogate_width: float | None
    detach_reset: bool
    kernel: str
    reset_delay: bool


class NeuronConfig:
    """Settings shared by every LIF layer of a model (keyword arguments of :class:`LIF`)."""

    __slots__ = ("kwargs",)

    def __init__(self, **kwargs: Unpack[LIFOptions]) -> None:
        LIF(**kwargs)  # validate eagerly: a bad tau or reset fails here, naming the argument
        self.kwargs: LIFOptions = kwargs.copy()

    def build(self) -> LIF:
        return LIF(**self.kwargs)

    def __repr__(self) -> str:
        return f"NeuronConfig({self.kwargs})"


class LI(nn.Module):
    """Non-spiking leaky-integrator readout, (T, B, ...) -> membrane (T, B, ...):
    V(t) = beta * V(t-1) + I(t), beta = 1 - 1/tau (tau in timesteps, > 1; inf: pure sum)."""

    def __init__(self, tau: float = 2.0) -> None:
        super().__init__()
        LIFParams(tau=tau)  # same validation as the LIF's tau
        self.tau = float(tau)

    @property
    def beta(self) -> float:
        return 1.0 - 1.0 / self.tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return li_multistep(x, self.beta)

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


class Scale(nn.Module):
    """Multiply by a fixed factor (scalar or per-feature); NIR's Scale node and input gains."""

    scale: torch.Tensor  # a buffer (float32), broadcast against the input's trailing axes

    def __init__(self, scale: torch.Tensor | float) -> None:
        super().__init__()
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class GlobalPool(nn.Module):
    """Symmetric pooling over the last (points) axis: (B, C, N) -> (B, C).

    "mean" (default): the fraction of points whose feature fired, a linear (sum-pool) map
    that neuromorphic hardware can run. "max": PointNet's max, on spikes "any point fired";
    with few channels and many points it saturates to all-ones and carries no information.
    """

    def __init__(self, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "max"):
            raise ValueError(f"pool must be 'mean' or 'max', got {mode!r}")
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=-1) if self.mode == "mean" else x.amax(dim=-1)

    def extra_repr(self) -> str:
        return self.mode
