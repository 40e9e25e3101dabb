"""Losses over per-timestep outputs z (T, B, C): ensemble cross-entropy, temporally adjacent
subnetwork guidance (TAG) and the TET baseline.

Guidance, with p = softmax(z / tau_kd) and m_t ~ Bernoulli(1 - p_drop) drawn per term::

    L_TAG = lam / (T-1) * sum_{t=1}^{T-1} m_t * KL(p_teacher || p_student) * tau_kd^2

The teacher's logits are detached. ``direction`` picks the pair for each t:
"later-teaches-earlier" (student t, teacher t+1; the spec's starting point), "earlier-teaches-later"
(student t+1, teacher t), "both" (the mean of the two; the shipped default, chosen from the
measured reproduction: it keeps guidance's gain at reduced timesteps without its cost at full T).
KL is averaged over the batch.
The full training loss is ``CE(mean_t z_t, y) + L_TAG``; TET is ``mean_t CE(z_t, y)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

DIRECTIONS = ("later-teaches-earlier", "earlier-teaches-later", "both")
LOSS_KINDS = ("ce", "tet")


def check_logits(z: torch.Tensor, name: str = "logits") -> None:
    if not isinstance(z, torch.Tensor) or z.dim() != 3:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"{name} must be per-timestep outputs shaped (T, B, C), got {shape}")
    if z.shape[0] < 1:
        raise ValueError(f"{name} has T = 0 timesteps")


@dataclass(frozen=True)
class GuidanceConfig:
    """Temporally adjacent subnetwork guidance settings (see module docstring)."""

    lam: float = 1.0
    tau_kd: float = 2.0
    p_drop: float = 0.0
    direction: str = "both"  # shipped default, chosen by the reproduction (docs/defaults.md)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lam) and self.lam >= 0):
            raise ValueError(f"lam (guidance weight) must be finite and >= 0, got {self.lam}")
        if not (math.isfinite(self.tau_kd) and self.tau_kd > 0):
            raise ValueError(f"tau_kd (distillation temperature) must be > 0, got {self.tau_kd}")
        if not (0.0 <= self.p_drop <= 1.0):
            raise ValueError(f"p_drop must be in [0, 1], got {self.p_drop}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")


def kl_distill(student: torch.Tensor, teacher: torch.Tensor, tau_kd: float) -> torch.Tensor:
    """KL(softmax(teacher/tau) || softmax(student/tau)) * tau^2, batch mean; teacher detached."""
    log_ps = F.log_softmax(student / tau_kd, dim=-1)
    log_pt = F.log_softmax(teacher.detach() / tau_kd, dim=-1)
    return F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True) * tau_kd**2


def guidance_loss(
    z: torch.Tensor, cfg: GuidanceConfig, generator: torch.Generator | None = None
) -> torch.Tensor:
    """The TAG term for outputs ``z`` (T, B, C); zero when T == 1."""
    check_logits(z)
    T = z.shape[0]
    if T == 1 or cfg.lam == 0:
        return z.new_zeros(())
    # Masks drawn on the CPU generator (global one by default, so checkpoints that save the
    # RNG state resume exactly); a dropped term is not computed at all.
    keep = (torch.rand(T - 1, generator=generator) >= cfg.p_drop).tolist()
    total = z.new_zeros(())
    for t in range(T - 1):
        if not keep[t]:
            continue
        if cfg.direction == "later-teaches-earlier":
            term = kl_distill(z[t], z[t + 1], cfg.tau_kd)
        elif cfg.direction == "earlier-teaches-later":
            term = kl_distill(z[t + 1], z[t], cfg.tau_kd)
        else:
            term = 0.5 * (
                kl_distill(z[t], z[t + 1], cfg.tau_kd) + kl_distill(z[t + 1], z[t], cfg.tau_kd)
            )
        total = total + term
    return cfg.lam * total / (T - 1)


def ensemble_ce(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the time-averaged output, CE(mean_t z_t, y)."""
    check_logits(z)
    return F.cross_entropy(z.mean(0), y)


def tet_loss(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """TET baseline: mean over timesteps of CE(z_t, y)."""
    check_logits(z)
    T, B, C = z.shape
    return F.cross_entropy(z.reshape(T * B, C), y.repeat(T))


@dataclass(frozen=True)
class SNNLoss:
    """Training loss: ``kind`` "ce" (ensemble CE) or "tet", plus optional guidance."""

    kind: str = "ce"
    guidance: GuidanceConfig | None = None

    def __post_init__(self) -> None:
        if self.kind not in LOSS_KINDS:
            raise ValueError(f"loss kind must be one of {LOSS_KINDS}, got {self.kind!r}")

    def __call__(self, z: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        base = ensemble_ce(z, y) if self.kind == "ce" else tet_loss(z, y)
        parts = {self.kind: float(base.detach())}
        if self.guidance is None:
            return base, parts
        g = guidance_loss(z, self.guidance)
        parts["guidance"] = float(g.detach())
        return base + g, parts
