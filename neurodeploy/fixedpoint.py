"""Loihi-style integer neuron dynamics, as Lava's bit-accurate models compute them (the integer
side of :mod:`neurodeploy.lif`; read from lava-nc 0.10.0 ``lava/proc/lif/models.py``).

Per step, all integers (int64 here; the chip's widths are enforced explicitly):

    decay(x, d)   = sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12)        round toward zero
    u <- wrap24(decay(u, du + 1) + (a_in << 6))       wrap: > 2^23 -> -2^24, <= -2^23 -> +2^24
    v <- sat24(decay(v, dv) + u + (bias_mant << bias_exp))    saturate to +-(2^23 - 1)
    s  = v > (vth << 6)                                strict
    v <- 0 where s                                     hard reset (u is not reset)

With du = 4095 the current has no memory (u = a_in << 6): a plain LIF, which is what our float
LIF maps to. The smoothed-reset neuron (MPS) keeps the smoothed state m instead of v and a
12-bit coefficient c = round(4096 * alpha):

    h  = sat24(decay(m, dv) + (a_in << 6) + bias);   s = h > (vth << 6);   U = 0 where s else h
    m <- sat24(rtz((c * m + (4096 - c) * U) / 4096))

With c = 0, m = U and this is exactly the stock LIF with du = 4095 (tested against Lava).
Counters of saturation and wrap events are returned so that nothing overflows silently.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

DECAY_SHIFT = 12                 # decays are fractions of 2^12
DECAY_UNIT = 1 << DECAY_SHIFT    # 4096
CURRENT_DECAY_OFFSET = 1         # Lava's ds_offset: u decays by (du + 1) / 4096
VOLTAGE_DECAY_OFFSET = 0         # dm_offset
ACT_SHIFT = 6                    # synaptic input enters u as a_in << 6
VTH_SHIFT = 6                    # threshold compared as v > vth << 6
STATE_BITS = 24
STATE_LIMIT = 1 << (STATE_BITS - 1)   # 2^23: u wraps beyond it, v saturates at +-(2^23 - 1)
V_MAX = STATE_LIMIT - 1


def rtz_shift(x: torch.Tensor, shift: int) -> torch.Tensor:
    """x / 2^shift rounded toward zero: sign(x) * (|x| >> shift)."""
    return torch.sign(x) * (x.abs() >> shift)


def decay(x: torch.Tensor, d: int | torch.Tensor) -> torch.Tensor:
    """Lava's decay: sign(x*(4096-d)) * (|x*(4096-d)| >> 12)."""
    return rtz_shift(x * (DECAY_UNIT - d), DECAY_SHIFT)


def wrap24(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Lava's current wrap: values > 2^23 lose 2^24, values <= -2^23 gain 2^24. Returns (x, count)."""
    hi, lo = x > STATE_LIMIT, x <= -STATE_LIMIT
    out = torch.where(hi, x - 2 * STATE_LIMIT, torch.where(lo, x + 2 * STATE_LIMIT, x))
    return out, (hi | lo)


def sat24(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Saturate to +-(2^23 - 1). Returns (x, mask of saturated elements)."""
    mask = (x > V_MAX) | (x < -V_MAX)
    return x.clamp(-V_MAX, V_MAX), mask


def shift_exp(x: torch.Tensor, exp: int) -> torch.Tensor:
    """x << exp, or an arithmetic (flooring) x >> -exp for a negative exponent (Lava's weight_exp)."""
    return x << exp if exp >= 0 else x >> (-exp)


@dataclass
class Counters:
    """Overflow events of one layer over a run (summed over batch, neurons and steps)."""

    saturations: int = 0
    wraps: int = 0

    def add(self, sat: torch.Tensor | None = None, wrap: torch.Tensor | None = None) -> None:
        if sat is not None:
            self.saturations += int(sat.sum())
        if wrap is not None:
            self.wraps += int(wrap.sum())


def lif_int_step(a_in: torch.Tensor, u: torch.Tensor, v: torch.Tensor, du: int, dv: int, vth: int,
                 bias: torch.Tensor | int, counters: Counters | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Lava's bit-accurate LIF. All int64. Returns (spikes bool, u, v)."""
    u, wrapped = wrap24(decay(u, du + CURRENT_DECAY_OFFSET) + (a_in << ACT_SHIFT))
    v, sat = sat24(decay(v, dv + VOLTAGE_DECAY_OFFSET) + u + bias)
    s = v > (vth << VTH_SHIFT)
    v = torch.where(s, torch.zeros_like(v), v)
    if counters is not None:
        counters.add(sat, wrapped)
    return s, u, v


def mps_int_step(a_in: torch.Tensor, m: torch.Tensor, dv: int, vth: int, bias: torch.Tensor | int, coef: int,
                 counters: Counters | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the smoothed-reset neuron (module docstring). Returns (spikes bool, m, h)."""
    h, sat_h = sat24(decay(m, dv + VOLTAGE_DECAY_OFFSET) + (a_in << ACT_SHIFT) + bias)
    s = h > (vth << VTH_SHIFT)
    post = torch.where(s, torch.zeros_like(h), h)
    if coef == 0:
        m_new, sat_m = post, None
    else:
        m_new, sat_m = sat24(rtz_shift(coef * m + (DECAY_UNIT - coef) * post, DECAY_SHIFT))
    if counters is not None:
        counters.add(sat_h)
        if sat_m is not None:
            counters.add(sat_m)
    return s, m_new, h
