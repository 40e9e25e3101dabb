"""Loihi-style integer neuron dynamics, as Lava's bit-accurate models compute them (the integer
side of :mod:`neurodeploy.neuron.lif`; read from lava-nc 0.10.0 ``lava/proc/lif/models.py``).

Per step, all integers (int64 here; the chip's widths are enforced explicitly):

    decay(x, d)   = sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12)        round toward zero
    u <- wrap24(decay(u, du + 1) + (a_in << 6))       wrap: > 2^23 -> -2^24, <= -2^23 -> +2^24
    v <- sat24(decay(v, dv) + u + (bias_mant << bias_exp))    saturate to +-(2^23 - 1)
    s  = v > (vth << 6)                                strict
    v <- 0 where s                                     hard reset (u is not reset)

With du = 4095 the current has no memory (u = a_in << 6): a plain LIF, which is what our float
LIF maps to.

One refractory step (snnTorch's delayed zero reset, ``reset_delay`` in :mod:`neurodeploy.neuron.lif`;
a Loihi refractory period of 1): where the neuron spiked at the previous step, r = s(t-1),

    u <- wrap24(decay(u, du + 1) + (a_in << 6))       the current keeps integrating
    v <- 0 where r, else sat24(decay(v, dv) + u + bias)   the membrane is held at 0 (its input
    s  = v > (vth << 6)  (false where r: vth >= 0)        and bias dropped), no spike

The smoothed-reset neuron (MPS) keeps the smoothed state m instead of v and a
12-bit coefficient c = round(4096 * alpha):

    h  = sat24(decay(m, dv) + (a_in << 6) + bias);   s = h > (vth << 6);   U = 0 where s else h
    m <- rtz((c * m + (4096 - c) * U) / 4096)     (a convex mix of in-range values: no overflow)

With c = 0, m = U and this is exactly the stock LIF with du = 4095 (tested against Lava).
Counters of saturation and wrap events are returned so that nothing overflows silently.

This module is also the one home of the float <-> integer neuron mapping (section "The float <->
integer mapping" below): tau -> dv, tau_syn -> du (CubaLIF's current), alpha -> coef,
theta -> vth, the x64 activation shift, the bias mantissa/exponent, and their inverses. The
quantiser, QAT, the Lava process models and the float-Lava conformance check call these functions
instead of re-deriving them.

The constants below are Lava's bit-accurate conventions, hard-coded here (and in Lava's own LIF,
our SmoothedLIF process and lava-dl netx). :class:`neurodeploy.neuron.hardware.HardwareSpec`
refers to them and refuses a spec that declares other values, naming the field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from neurodeploy.neuron.hardware import HardwareSpec

DECAY_SHIFT = 12  # decays are fractions of 2^12
DECAY_UNIT = 1 << DECAY_SHIFT  # 4096
CURRENT_DECAY_OFFSET = 1  # Lava's ds_offset: u decays by (du + 1) / 4096
VOLTAGE_DECAY_OFFSET = 0  # dm_offset
ACT_SHIFT = 6  # synaptic input enters u as a_in << 6
VTH_SHIFT = 6  # threshold compared as v > vth << 6
STATE_BITS = 24
STATE_LIMIT = 1 << (STATE_BITS - 1)  # 2^23: u wraps beyond it, v saturates at +-(2^23 - 1)
V_MAX = STATE_LIMIT - 1
DECAY_MAX = DECAY_UNIT - 1  # largest 12-bit du, dv, coef: 4095
DU_NO_CURRENT_MEMORY = DECAY_UNIT - CURRENT_DECAY_OFFSET  # 4095: u = a_in << 6, no current memory


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


def lif_int_step(
    a_in: torch.Tensor,
    u: torch.Tensor,
    v: torch.Tensor,
    *,
    du: int,
    dv: int,
    vth: int,
    bias: torch.Tensor | int,
    counters: Counters | None = None,
    may_wrap: bool = True,
    may_saturate: bool = True,
    refractory: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step of Lava's bit-accurate LIF (int64 or integer-valued float64). Returns (spikes bool, u, v).

    ``refractory`` (bool, like ``v``): the previous step's spikes of a ``reset_delay`` layer; where
    set, this step is refractory (module docstring): v is held at 0 and cannot spike.

    ``may_wrap=False`` / ``may_saturate=False`` skip the range checks where a caller has proved
    they cannot trigger (:func:`state_bounds`); the result is the same, only faster."""
    if (
        du + CURRENT_DECAY_OFFSET == DECAY_UNIT
    ):  # du = 4095: no current memory, u is this step's input
        u = act_in(a_in)
    else:
        u = decay(u, du + CURRENT_DECAY_OFFSET) + act_in(a_in)
    wrapped = None
    if may_wrap:
        u, wrapped = wrap24(u)
    v = decay(v, dv + VOLTAGE_DECAY_OFFSET) + u + bias
    if refractory is not None:
        v = v.masked_fill(refractory, 0)
    sat = None
    if may_saturate:
        v, sat = sat24(v)
    s = v > (vth << VTH_SHIFT)
    v = v.masked_fill(s, 0)
    if counters is not None:
        counters.add(sat, wrapped)
    return s, u, v


def mps_int_step(
    a_in: torch.Tensor,
    m: torch.Tensor,
    *,
    dv: int,
    vth: int,
    bias: torch.Tensor | int,
    coef: int,
    counters: Counters | None = None,
    may_saturate: bool = True,
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


def state_bounds(
    max_abs_a: float, max_abs_bias: float, du: int, dv: int, *, u_init_bias: bool = False
) -> tuple[bool, bool]:
    """(may_wrap, may_saturate) for a layer whose synaptic input never exceeds ``max_abs_a`` and
    bias ``max_abs_bias`` in magnitude. Decays shrink magnitudes (rounding toward zero), so
    |u| <= A * 4096 / (du + 1) and |v| <= (|u|max + B) * 4096 / dv, with A = max_abs_a << 6.

    ``u_init_bias`` (the current starts at u(-1) = -bias, IntLayer.u_init_bias): decay is
    monotone and shrinks magnitudes, so by induction (bias B >= 0; B < 0 mirrors it) u(t) lies in
    [-B r^(t+1) - U, U], U = A 4096 / (du + 1), r = 1 - (du + 1) / 4096: |u| <= U + B, and
    u + B lies in [-U, U + B], so v's bound is unchanged."""
    a = max_abs_a * (1 << ACT_SHIFT)
    u_max = a * DECAY_UNIT / (du + CURRENT_DECAY_OFFSET)
    may_wrap = u_max + (max_abs_bias if u_init_bias else 0.0) > STATE_LIMIT - 1
    if dv + VOLTAGE_DECAY_OFFSET == 0:
        return may_wrap, True
    v_max = (u_max + max_abs_bias) * DECAY_UNIT / (dv + VOLTAGE_DECAY_OFFSET)
    return may_wrap, may_wrap or v_max > V_MAX


# --- The float <-> integer mapping ---------------------------------------------------------------
#
# A float layer (neurodeploy.neuron.lif) sees its synaptic input I, a bias b added to I every step,
# the threshold theta (all in float units), beta = 1 - 1/tau and the smoothing alpha. Its integer
# program sees
#
#     a_int = I * a_scale                 a_scale: integer synaptic-input units per float unit
#                                         (chosen by the quantiser: w_scale * x_scale * 2^weight_exp)
#     v_int = H * v_scale,  v_scale = a_scale * 2^ACT_SHIFT       (a_in enters u as a_in << 6)
#     v_int > vth << VTH_SHIFT  <=>  H > theta   with vth = round(theta * a_scale)
#
# The last line needs VTH_SHIFT == ACT_SHIFT (both 6 in Lava), asserted below. The floating_pt
# Lava models (Lava's float LIF, our SmoothedLIF float model) keep the state in synaptic-input
# units: a_scale = 1, v_scale = 64 for the bias, the threshold as the float theta.

assert VTH_SHIFT == ACT_SHIFT, "theta_to_vth assumes the threshold and the input share one shift"


def tau_to_dv(tau: float) -> int:
    """12-bit voltage decay of a membrane time constant ``tau`` (timesteps, > 1):
    dv = round(4096 / tau), so that the integer decay (4096 - dv) / 4096 ~ beta = 1 - 1/tau.
    tau = inf (no leak) -> 0; values that would round to 4096 (tau within 1/8192 of 1) -> 4095."""
    if math.isinf(tau):
        return 0
    return min(int(round(DECAY_UNIT / tau)), DECAY_MAX)


def dv_to_tau(dv: int) -> float:
    """Inverse of :func:`tau_to_dv`: the time constant whose beta = 1 - dv/4096 exactly,
    tau = 4096 / dv (timesteps); dv = 0 -> inf (no leak)."""
    return math.inf if int(dv) == 0 else DECAY_UNIT / int(dv)


def tau_syn_to_du(tau_syn: float) -> int:
    """12-bit current decay of a synaptic time constant ``tau_syn`` (timesteps, >= 1).

    Lava decays the current by (du + 1) / 4096 per step (:data:`CURRENT_DECAY_OFFSET`), so
    u(t) = u(t-1) (4096 - (du + 1)) / 4096 + (a_in << 6) matches the float current
    I(t) = beta_syn I(t-1) + x(t), beta_syn = 1 - 1/tau_syn, when
    du + 1 = round(4096 / tau_syn), i.e. du = round(4096 / tau_syn) - 1, clamped to 0..4095.
    tau_syn = 1 (no memory) -> 4095 (:data:`DU_NO_CURRENT_MEMORY`); the slowest decay the chip
    has is du = 0 (tau 4096 steps): tau_syn >= 8192 steps and inf (a current that never leaks,
    which Loihi cannot hold) map there."""
    if math.isnan(tau_syn) or tau_syn < 1:
        raise ValueError(f"tau_syn must be >= 1 timestep, got {tau_syn}")
    if math.isinf(tau_syn):
        return 0
    return min(max(int(round(DECAY_UNIT / tau_syn)) - CURRENT_DECAY_OFFSET, 0), DECAY_MAX)


def du_to_tau_syn(du: int) -> float:
    """Inverse of :func:`tau_syn_to_du`: the synaptic time constant whose decay is exactly the
    chip's, tau_syn = 4096 / (du + 1) timesteps (du = 4095 -> 1: no current memory)."""
    return DECAY_UNIT / (int(du) + CURRENT_DECAY_OFFSET)


def du_to_beta(du: int) -> float:
    """The current's per-step decay factor as the integer core applies it (before rounding
    toward zero): (4096 - (du + 1)) / 4096; 0 for du = 4095."""
    return (DECAY_UNIT - (int(du) + CURRENT_DECAY_OFFSET)) / DECAY_UNIT


def dv_to_beta(dv: int) -> float:
    """The voltage's per-step decay factor as the integer core applies it (before rounding toward
    zero): (4096 - (dv + VOLTAGE_DECAY_OFFSET)) / 4096."""
    return (DECAY_UNIT - (int(dv) + VOLTAGE_DECAY_OFFSET)) / DECAY_UNIT


def alpha_to_coef(alpha: float) -> int:
    """12-bit smoothing coefficient of ``alpha`` in [0, 1]: coef = round(4096 * alpha)
    (0 = stock LIF; alpha above 4095.5 / 4096 gives 4096, which the program's validation refuses)."""
    return int(round(DECAY_UNIT * float(alpha)))


def coef_to_alpha(coef: int) -> float:
    """Inverse of :func:`alpha_to_coef`: alpha = coef / 4096 (exact in binary floating point)."""
    return int(coef) / DECAY_UNIT


def membrane_scale(a_scale: float) -> float:
    """Integer membrane units per float unit (v_scale): a_scale * 2^ACT_SHIFT = a_scale * 64,
    because the synaptic input enters the current as a_in << 6."""
    return a_scale * float(1 << ACT_SHIFT)


def theta_to_vth(theta: float, a_scale: float) -> int:
    """Integer threshold of a float threshold ``theta`` for a layer whose synaptic input is
    scaled by ``a_scale``: vth = round(theta * a_scale). Lava compares v > vth << 6 with
    v ~ H * a_scale * 64, i.e. H > theta up to the rounding of vth."""
    return int(round(theta * a_scale))


def vth_to_theta(vth: int, a_scale: float) -> float:
    """Inverse of :func:`theta_to_vth`: the float threshold the integer one stands for, vth / a_scale."""
    return int(vth) / a_scale


def vth_membrane(vth: int) -> int:
    """The value the membrane v is compared with (strictly greater fires): vth << VTH_SHIFT."""
    return int(vth) << VTH_SHIFT


def to_synaptic_units(x: np.ndarray | float, a_scale: float) -> np.ndarray:
    """A float value in synaptic-input units as integers: rint(x * a_scale) (float64 array; the
    readout's bias, which is added to its a_int and never enters a membrane)."""
    out: np.ndarray = np.rint(np.asarray(x, dtype=np.float64) * a_scale)
    return out


def bias_to_membrane(b: np.ndarray | float, a_scale: float) -> np.ndarray:
    """A float bias (added to the synaptic input every step) in integer membrane units, not yet
    rounded: b * a_scale * 64 (float64 array). :func:`bias_exponent` / :func:`bias_mantissa`
    split it into Loihi's mantissa << exponent."""
    return np.asarray(b, dtype=np.float64) * membrane_scale(a_scale)


def from_membrane(v: np.ndarray | float, a_scale: float) -> np.ndarray:
    """Inverse of :func:`bias_to_membrane` (any membrane value): v / (a_scale * 64), float units.
    With ``a_scale = 1`` it gives the synaptic-input units of the floating_pt Lava models."""
    return np.asarray(v, dtype=np.float64) / membrane_scale(a_scale)


def bias_mantissa(b_v: np.ndarray, exp: int) -> np.ndarray:
    """The bias mantissa for exponent ``exp``: rint(b_v / 2^exp) (int32), b_v in membrane units."""
    mant: np.ndarray = np.rint(np.asarray(b_v, dtype=np.float64) / 2.0**exp).astype(np.int32)
    return mant


def bias_exponent(b_v: np.ndarray, hw: HardwareSpec) -> int | None:
    """The smallest bias exponent in ``hw.bias_exp_range`` at which every mantissa
    |rint(b_v / 2^exp)| fits ``hw.bias_mant_max`` (the finest resolution), or None if none does.
    An all-zero bias takes the smallest exponent."""
    b_v = np.asarray(b_v, dtype=np.float64)
    lo, hi = hw.bias_exp_range
    for exp in range(lo, hi + 1):
        if np.abs(np.rint(b_v / 2.0**exp)).max(initial=0.0) <= hw.bias_mant_max:
            return exp
    return None if float(np.abs(b_v).max(initial=0.0)) > 0 else lo


def bias_to_mant_exp(
    b: np.ndarray | float, a_scale: float, hw: HardwareSpec, exp: int | None = None
) -> tuple[np.ndarray, int]:
    """A float bias -> (mantissa int32, exponent): mantissa << exponent = round(b * a_scale * 64),
    with the smallest exponent that fits (:func:`bias_exponent`) unless ``exp`` fixes it.
    Raises ValueError when no exponent of ``hw`` (or the fixed one) holds the mantissa."""
    b_v = bias_to_membrane(b, a_scale)
    e = bias_exponent(b_v, hw) if exp is None else exp
    if e is None:
        raise ValueError(
            f"bias: {float(np.abs(b_v).max()):g} membrane units exceed the "
            f"{hw.bias_mant_bits}-bit mantissa << {hw.bias_exp_range[1]}"
        )
    peak = float(np.abs(np.rint(b_v / 2.0**e)).max(initial=0.0))  # checked before the int32 cast
    if peak > hw.bias_mant_max:
        raise ValueError(f"bias: mantissa {peak:g} beyond +-{hw.bias_mant_max} at exponent {e}")
    return bias_mantissa(b_v, e), e


def bias_value(mant: np.ndarray | int, exp: np.ndarray | int) -> np.ndarray:
    """The integer bias Lava adds to v every step (membrane units, int64): mant << exp, or an
    arithmetic (flooring) mant >> -exp for a negative exponent (Lava's effective_bias)."""
    m = np.asarray(mant, dtype=np.int64)
    e = np.asarray(exp, dtype=np.int64)
    return np.where(e >= 0, m << np.maximum(e, 0), m >> np.maximum(-e, 0))


def mant_exp_to_bias(mant: np.ndarray | int, exp: np.ndarray | int, a_scale: float) -> np.ndarray:
    """Inverse of :func:`bias_to_mant_exp`: the float bias an integer one stands for,
    (mant << exp) / (a_scale * 64)."""
    return from_membrane(bias_value(mant, exp).astype(np.float64), a_scale)
