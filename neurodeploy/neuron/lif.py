"""The neuron's equations, once: a multi-step LIF with membrane potential smoothing (MPS).

Every back end (this torch core, the integer simulator, the Lava process models) follows the
equations written here; other modules refer to this docstring instead of copying it.

Layer l, timestep t = 1..T, I(t) its synaptic input (dimensionless, threshold units),
beta = 1 - 1/tau (per-step decay, tau in timesteps, tau > 1), theta the threshold,
alpha in [0, 1] the layer-shared smoothing coefficient (alpha = sigmoid(a), a learnable).

Reading ``"reset"`` (default; the smoothed *reset* state is what the next step starts from)::

    H(t) = beta * M(t-1) + I(t)                 charge
    S(t) = Heaviside(H(t) - theta)              fire (strict >, as on Loihi)
    U(t) = H(t) * (1 - S(t))                    hard reset (default)
         | H(t) - theta * S(t)                  soft reset (option)
    M(t) = alpha * M(t-1) + (1 - alpha) * U(t)  smoothing;  M(0) = 0

Reading ``"charge"`` (smooth the charged potential and fire on it)::

    H(t) = beta * U(t-1) + I(t)
    M(t) = alpha * M(t-1) + (1 - alpha) * H(t)  M(0) = U(0) = 0
    S(t) = Heaviside(M(t) - theta)
    U(t) = M(t) * (1 - S(t))   |   M(t) - theta * S(t)

alpha = 0 gives the plain (vanilla) LIF in both readings: M = U (resp. M = H).

Delayed reset (``reset_delay``; vanilla hard-reset neurons only): snnTorch's reset_mechanism="zero"
with reset_delay=True (its default) as its Synaptic, RLeaky and RSynaptic compute it (read from
snntorch 1.0 ``_base_zero``): R(t) = Heaviside(V(t-1) - theta), V(t) = (1 - R(t)) * (beta V(t-1)
+ I(t)), S(t) = Heaviside(V(t) - theta), V not reset at the spiking step. Spike for spike this is
the hard reset above plus a one-step refractory period::

    H(t) = (1 - S(t-1)) * (beta * U(t-1) + I(t))   the step after a spike holds the membrane at 0
    S(t) = Heaviside(H(t) - theta)                 (its input is dropped; theta > 0: no spike)
    U(t) = H(t) * (1 - S(t))

(A CubaLIF's synaptic current is a separate LI in front of the LIF: it keeps integrating, as in
snnTorch.) snnTorch's Leaky computes V(t) = beta (1 - R(t)) V(t-1) + I(t): the input is kept, which
is exactly the plain hard reset, so Leaky needs no option. S(t-1) is detached like the reset.
In the backward pass dS/dH is a surrogate (:mod:`neurodeploy.neuron.surrogate`); with
``detach_reset`` the S inside the reset is detached (default), so gradients reach earlier
timesteps only through the leak beta*M and, with MPS, the smoothing path alpha*M.

All functions are pure: tensors shaped (T, B, ...) in, tensors out, any device and dtype.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import torch

from neurodeploy.neuron.surrogate import Surrogate

RESETS = ("hard", "soft")
MPS_MODES = ("reset", "charge")


@dataclass(frozen=True)
class LIFParams:
    """Fixed (non-learned) neuron parameters. ``tau`` in timesteps (``math.inf``: integrate-and-
    fire, beta = 1), ``theta`` in input units."""

    tau: float = 2.0
    theta: float = 1.0
    reset: str = "hard"
    mps_mode: str = "reset"
    detach_reset: bool = True
    surrogate: Surrogate = field(default_factory=Surrogate)
    reset_delay: bool = False  # snnTorch's delayed zero reset: one refractory step (docstring)

    def __post_init__(self) -> None:
        if not (isinstance(self.tau, (int, float)) and self.tau > 1):  # NaN fails too; inf is IF
            raise ValueError(
                f"tau must be a number > 1 (beta = 1 - 1/tau; inf gives the "
                f"non-leaky IF neuron), got {self.tau!r}"
            )
        if not (
            isinstance(self.theta, (int, float)) and math.isfinite(self.theta) and self.theta > 0
        ):
            raise ValueError(f"theta (threshold) must be a finite number > 0, got {self.theta!r}")
        if self.reset not in RESETS:
            raise ValueError(f"reset must be one of {RESETS}, got {self.reset!r}")
        if self.mps_mode not in MPS_MODES:
            raise ValueError(f"mps_mode must be one of {MPS_MODES}, got {self.mps_mode!r}")
        if self.reset_delay and self.reset != "hard":
            raise ValueError(
                f"reset_delay (snnTorch's delayed zero reset) needs reset='hard', got "
                f"reset={self.reset!r}"
            )

    @property
    def beta(self) -> float:
        """Per-timestep decay of the membrane, 1 - 1/tau."""
        return 1.0 - 1.0 / self.tau


class LIFState(NamedTuple):
    """State carried between timesteps: U(t) post-reset potential, M(t) smoothed state, and
    S(t) the spikes (``reset_delay`` only: the next step is refractory where S = 1; None: none)."""

    u: torch.Tensor
    m: torch.Tensor
    s: torch.Tensor | None = None


class LIFTrace(NamedTuple):
    """Per-timestep record, each (T, B, ...): spikes S, charge H, post-reset U, smoothed M,
    and ``start``: the state timestep t charges from (M(t-1) for "reset", U(t-1) for "charge"),
    i.e. the initial state of subnetwork t (the paper's Figure 1 quantity)."""

    spikes: torch.Tensor
    h: torch.Tensor
    u: torch.Tensor
    m: torch.Tensor
    start: torch.Tensor


def check_alpha(alpha: torch.Tensor | float | None) -> None:
    """Refuse NaN or out-of-range smoothing coefficients (``None`` means vanilla LIF)."""
    if alpha is None:
        return
    a = float(alpha.detach()) if isinstance(alpha, torch.Tensor) else float(alpha)
    if not (0.0 <= a <= 1.0):
        raise ValueError(f"alpha (MPS coefficient) must be in [0, 1], got {a}")


def lif_step(
    i_t: torch.Tensor, state: LIFState, alpha: torch.Tensor | float | None, p: LIFParams
) -> tuple[torch.Tensor, LIFState, torch.Tensor]:
    """One timestep of the equations above. Returns (S(t), new state, H(t))."""
    if p.reset_delay:
        if alpha is not None:
            raise ValueError(
                "reset_delay (snnTorch's delayed zero reset) is defined for vanilla neurons; "
                "membrane potential smoothing (alpha) with it is not supported"
            )
        h = p.beta * state.u + i_t
        if state.s is not None:
            h = h * (1 - state.s.detach())  # refractory step: membrane held at 0, input dropped
        s = p.surrogate(h - p.theta)
        u = _reset(h, s, p)
        return s, LIFState(u, u, s), h
    if p.mps_mode == "reset":
        h = p.beta * state.m + i_t
        s = p.surrogate(h - p.theta)
        u = _reset(h, s, p)
        m = u if alpha is None else alpha * state.m + (1 - alpha) * u
        return s, LIFState(u, m), h
    h = p.beta * state.u + i_t
    m = h if alpha is None else alpha * state.m + (1 - alpha) * h
    s = p.surrogate(m - p.theta)
    return s, LIFState(_reset(m, s, p), m), h


def _reset(v: torch.Tensor, s: torch.Tensor, p: LIFParams) -> torch.Tensor:
    sr = s.detach() if p.detach_reset else s
    return v * (1 - sr) if p.reset == "hard" else v - p.theta * sr


def initial_state(like: torch.Tensor) -> LIFState:
    """Zero state for one timestep's input ``like`` (B, ...)."""
    z = torch.zeros_like(like)
    return LIFState(z, z)


def check_input(x: torch.Tensor, name: str = "x") -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor shaped (T, B, ...), got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"{name} must be shaped (T, B, ...) (rank >= 2), got shape {tuple(x.shape)}"
        )
    if x.shape[0] < 1:
        raise ValueError(f"{name} has T = {x.shape[0]} timesteps; T must be >= 1")


def lif_multistep(
    x: torch.Tensor, alpha: torch.Tensor | float | None, p: LIFParams
) -> torch.Tensor:
    """Run the LIF over all timesteps of ``x`` (T, B, ...) from the zero state; spikes (T, B, ...)."""
    check_input(x)
    check_alpha(alpha)
    state = initial_state(x[0])
    out = []
    for t in range(x.shape[0]):
        s, state, _ = lif_step(x[t], state, alpha, p)
        out.append(s)
    return torch.stack(out)


def lif_trace(x: torch.Tensor, alpha: torch.Tensor | float | None, p: LIFParams) -> LIFTrace:
    """As :func:`lif_multistep`, recording every state (for figures, tests and conformance)."""
    check_input(x)
    check_alpha(alpha)
    state = initial_state(x[0])
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in LIFTrace._fields}
    for t in range(x.shape[0]):
        rec["start"].append(state.m if p.mps_mode == "reset" else state.u)
        s, state, h = lif_step(x[t], state, alpha, p)
        for k, v in (("spikes", s), ("h", h), ("u", state.u), ("m", state.m)):
            rec[k].append(v)
    return LIFTrace(**{k: torch.stack(v) for k, v in rec.items()})


def li_multistep(x: torch.Tensor, beta: float) -> torch.Tensor:
    """Leaky integrator (non-spiking readout): V(t) = beta * V(t-1) + I(t), V(0) = 0.

    Returns V for every step, shape (T, B, ...) like ``x``."""
    check_input(x)
    v = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        v = beta * v + x[t]
        out.append(v)
    return torch.stack(out)
