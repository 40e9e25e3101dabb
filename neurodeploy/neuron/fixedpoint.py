"""Loihi-style integer neuron dynamics, as Lava's bit-accurate models compute them (the integer
side of :mod:`neurodeploy.neuron.lif`; read from lava-nc 0.10.0 ``lava/proc/lif/models.py``).

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
    m <- rtz((c * m + (4096 - c) * U) / 4096)     (a convex mix of in-range values: no overflow)

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
    """x / 2^shift rounded toward zero: sign(x) * (|x| >> shift).

    Every function here takes int64 tensors, or float64 tensors holding integers (exact below
    2^53, far above the 2^36 these products reach): the reference simulator runs float64 because
    it needs fewer kernels (trunc instead of sign/abs/shift); tests hold both to the same results."""
    if x.is_floating_point():
        return torch.trunc(x * (1.0 / (1 << shift)))
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
    if x.is_floating_point():
        return x * float(1 << exp) if exp >= 0 else torch.floor(x * (1.0 / (1 << -exp)))
    return x << exp if exp >= 0 else x >> (-exp)


def act_in(a_in: torch.Tensor) -> torch.Tensor:
    """Synaptic input as it enters the current: a_in << 6."""
    return a_in * float(1 << ACT_SHIFT) if a_in.is_floating_point() else a_in << ACT_SHIFT


@dataclass
class Counters:
    """Overflow events of one layer over a run (summed over batch, neurons and steps).
    Masks are summed on the device and read once (``saturations``/``wraps``), not every step."""

    _sat: torch.Tensor | int = 0
    _wrap: torch.Tensor | int = 0

    def add(self, sat: torch.Tensor | None = None, wrap: torch.Tensor | None = None) -> None:
        if sat is not None:
            self._sat = self._sat + sat.sum()
        if wrap is not None:
            self._wrap = self._wrap + wrap.sum()

    def add_count(self, wraps: int = 0, saturations: int = 0) -> None:
        self._wrap = self._wrap + wraps
        self._sat = self._sat + saturations

    @property
    def saturations(self) -> int:
        return int(self._sat)

    @property
    def wraps(self) -> int:
        return int(self._wrap)

    def __repr__(self) -> str:
        return f"Counters(saturations={self.saturations}, wraps={self.wraps})"


def lif_int_step(a_in: torch.Tensor, u: torch.Tensor, v: torch.Tensor, du: int, dv: int, vth: int,
                 bias: torch.Tensor | int, counters: Counters | None = None,
                 may_wrap: bool = True, may_saturate: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Lava's bit-accurate LIF (int64 or integer-valued float64). Returns (spikes bool, u, v).

    ``may_wrap=False`` / ``may_saturate=False`` skip the range checks where a caller has proved
    they cannot trigger (:func:`state_bounds`); the result is the same, only faster."""
    if du + CURRENT_DECAY_OFFSET == DECAY_UNIT:  # du = 4095: no current memory, u is this step's input
        u = act_in(a_in)
    else:
        u = decay(u, du + CURRENT_DECAY_OFFSET) + act_in(a_in)
    wrapped = None
    if may_wrap:
        u, wrapped = wrap24(u)
    v = decay(v, dv + VOLTAGE_DECAY_OFFSET) + u + bias
    sat = None
    if may_saturate:
        v, sat = sat24(v)
    s = v > (vth << VTH_SHIFT)
    v = v.masked_fill(s, 0)
    if counters is not None:
        counters.add(sat, wrapped)
    return s, u, v


def mps_int_step(a_in: torch.Tensor, m: torch.Tensor, dv: int, vth: int, bias: torch.Tensor | int, coef: int,
                 counters: Counters | None = None, may_saturate: bool = True
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of the smoothed-reset neuron (module docstring). Returns (spikes bool, m, h)."""
    h = decay(m, dv + VOLTAGE_DECAY_OFFSET) + act_in(a_in) + bias
    sat_h = None
    if may_saturate:
        h, sat_h = sat24(h)
    s = h > (vth << VTH_SHIFT)
    post = h.masked_fill(s, 0)
    if coef == 0:
        m_new = post
    else:  # a convex mix of two in-range values, rounded toward zero: stays in range
        m_new = rtz_shift(coef * m + (DECAY_UNIT - coef) * post, DECAY_SHIFT)
    if counters is not None and sat_h is not None:
        counters.add(sat_h)
    return s, m_new, h


def state_bounds(max_abs_a: float, max_abs_bias: float, du: int, dv: int) -> tuple[bool, bool]:
    """(may_wrap, may_saturate) for a layer whose synaptic input never exceeds ``max_abs_a`` and
    bias ``max_abs_bias`` in magnitude. Decays shrink magnitudes (rounding toward zero), so
    |u| <= A * 4096 / (du + 1) and |v| <= (|u|max + B) * 4096 / dv, with A = max_abs_a << 6."""
    a = max_abs_a * (1 << ACT_SHIFT)
    u_max = a * DECAY_UNIT / (du + CURRENT_DECAY_OFFSET)
    may_wrap = u_max > STATE_LIMIT - 1
    if dv + VOLTAGE_DECAY_OFFSET == 0:
        return may_wrap, True
    v_max = (u_max + max_abs_bias) * DECAY_UNIT / (dv + VOLTAGE_DECAY_OFFSET)
    return may_wrap, may_wrap or v_max > V_MAX
