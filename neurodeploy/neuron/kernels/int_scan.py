"""Compiled CPU loops (numba) for the integer neurons of :mod:`neurodeploy.neuron.fixedpoint`, all
timesteps of one layer in one call (the reference simulator's and QAT's layer-major fast path).

The equations are the integer core's (:func:`~neurodeploy.neuron.fixedpoint.lif_int_step`,
:func:`~neurodeploy.neuron.fixedpoint.mps_int_step`); this module only evaluates them,
elementwise over the N = B * F neurons (F = neurons per sample) and sequentially over T, and is
held to the core bit for bit by ``tests/test_int_scan.py`` (random currents at the 24-bit edges,
wraps, saturation, refractory steps, a current that starts at -bias) and, through the reference
simulator, by every Lava bit-exactness test.

Per step t and neuron n, from the synapse's exact sum y(t, n) (an integer held in float32 or
float64, :class:`~neurodeploy.quant.prepared.PreparedSynapse`)::

    a = y << e                     (a flooring y >> -e for e < 0: Lava's weight exponent)
    a = wrap(a)                    only for a convolution (``conv_wrap``): a signed 24-bit wrap,
                                   ((a + 2^23) mod 2^24) - 2^23, counted as a wrap
    LIF:  u = decay(u, du + 1) + (a << 6)     (u = a << 6 when du + 1 = 4096)
          u = wrap24(u)                       only with ``may_wrap``; counted
          v = decay(v, dv) + u + bias[f]      v = 0 where refractory (spiked at t - 1)
          v = sat24(v)                        only with ``may_saturate``; counted
          s = v > vth << 6;  v = 0 where s
    MPS:  h = sat24(decay(m, dv) + (a << 6) + bias[f]);  s = h > vth << 6;  U = 0 where s else h
          m = rtz((c m + (4096 - c) U) / 4096)             (m = U when c = 0)

with decay(x, d) = sign(x (4096 - d)) (|x (4096 - d)| >> 12) and f = n mod F.

Bounds (why int64 registers and int32 records are exact): y is exact in its dtype (the
synapse's own bound, < 2^24 in float32, < 2^53 in float64), and the caller runs a layer here
only when its worst current |a| = bound 2^e (:attr:`PreparedSynapse.max_a`) is below
:data:`MAX_A` = 2^40, so a << 6 < 2^46 (every quantised and imported program is far below:
8-bit weights, e <= 7, fan-in < 2^16 give < 2^31). The states entering a decay are in range,
|u|, |v|, |m| <= 2^23 (wrapped, saturated, or proved in range by
:func:`~neurodeploy.neuron.fixedpoint.state_bounds` when a check is skipped), so
x (4096 - d) < 2^35 and every sum stays below 2^47: int64 holds all of it. The recorded v and m
are such in-range states (after saturation or proved), so their int32 records are exact; u is
recorded in int64, because Lava's wrap is one conditional subtraction of 2^24, which leaves a
current outside 24 bits when a single step's input exceeds 2^24 (the core does the same).

Loops: the neurons are cut into chunks of about ``BLOCK`` (:func:`chunks`; a chunk's states stay
in L1/L2 across its T steps, and its rows are 1-D unit-stride slices, which numba vectorises);
the states are float64 holding integers, as the core's torch form, because float64 multiply,
trunc and floor vectorise on AVX2 where int64 multiplies do not (every value is an integer below
2^47, exact in float64's 53 bits). The options (a negative exponent's floor, the convolution
wrap, the refractory step) are closure constants, one compiled loop per set: as runtime flags
they kept the loop from vectorising (2.4x slower on the machine of
benchmarks/results/intsim_speed.md). The u wrap and the v saturation always run: where the
caller proved they cannot fire they change nothing. The loops run on one thread: numba's
``parallel`` more than tripled the compile time (3.6 s against 1.1 s per loop), and splitting
the chunks over Python threads made a layer 4x slower inside the simulator (the threads met
torch's OpenMP workers, still spinning after the layer's matrix product) while gaining nothing
on the 2-core machine of the benchmark.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from neurodeploy.neuron.fixedpoint import (
    ACT_SHIFT,
    CURRENT_DECAY_OFFSET,
    DECAY_UNIT,
    STATE_LIMIT,
    V_MAX,
    VOLTAGE_DECAY_OFFSET,
    VTH_SHIFT,
)

BLOCK = 2048  # neurons per chunk: 2048 x (u, v) float64 = 32 KiB of state
MAX_A = float(1 << 40)  # the largest worst-case |a| run here (module docstring, "Bounds")

_UNIT = float(DECAY_UNIT)
_INV_UNIT = 1.0 / DECAY_UNIT
_LIMIT = float(STATE_LIMIT)
_SPAN = float(2 * STATE_LIMIT)
_INV_SPAN = 1.0 / _SPAN
_VMAX = float(V_MAX)
_ACT = float(1 << ACT_SHIFT)


def _compile(fn: Any) -> Any:
    """numba.njit ``fn`` (one thread, without the GIL); cached on disk where a cache folder is
    writable (numba keys a closure's entries by its constants)."""
    import numba

    try:
        return numba.njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:  # "no locator available": no writable cache folder
        return numba.njit(nogil=True, error_model="numpy")(fn)


@functools.cache
def _synaptic_input(floor_it: bool, conv_wrap: bool) -> Any:
    """The inlined first lines of both loops: ``a(y, scale) -> (a, 1 if it wrapped else 0)``,
    a = y 2^e (floored for e < 0), a convolution's a wrapped to signed 24 bits."""
    import numba

    limit, span, span_inv = _LIMIT, _SPAN, _INV_SPAN

    @numba.njit(inline="always")
    def synaptic_input(y: float, scale: float) -> tuple[float, np.int64]:
        a = y * scale
        if floor_it:  # a flooring right shift (negative exponent)
            a = np.floor(a)
        if conv_wrap:  # signed 24-bit wrap of a convolution's output
            aw = a - span * np.floor((a + limit) * span_inv)
            return aw, np.int64(aw != a)
        return a, np.int64(0)

    return synaptic_input


@functools.cache
def _copy_row() -> Any:
    """``copy_row(dst, src)``: dst[n] = src[n] (integer-valued float64 into an integer row)."""
    import numba

    @numba.njit(inline="always")
    def copy_row(dst: np.ndarray, src: np.ndarray) -> None:
        for n in range(src.shape[0]):
            dst[n] = src[n]

    return copy_row


@functools.cache
def lif_kernel(floor_it: bool, conv_wrap: bool, refractory: bool) -> Any:
    """The LIF loop for one option set (module docstring: closure constants, one vectorised
    loop per set)."""

    unit_inv, limit, span, vmax, act = _INV_UNIT, _LIMIT, _SPAN, _VMAX, _ACT
    synaptic_input, copy_row = _synaptic_input(floor_it, conv_wrap), _copy_row()

    def lif_scan(  # type: ignore[no-untyped-def]
        y, scale, chunks, bias, keep_u, keep_v, vth64, u, v, s_out, rec_u, rec_v, record_u,
        record_v,
    ):  # fmt: skip
        T = y.shape[0]
        sat = np.int64(0)
        wraps = np.int64(0)
        for k in range(chunks.shape[0]):
            lo, hi, f0 = chunks[k, 0], chunks[k, 1], chunks[k, 2]
            m = hi - lo
            uk = u[lo:hi]  # 1-D slices of C-contiguous rows: unit stride, no index wraparound
            vk = v[lo:hi]
            bk = bias[f0 : f0 + m]
            n_sat = np.int64(0)
            n_wrap = np.int64(0)
            for t in range(T):
                yk = y[t, lo:hi]
                sk = s_out[t, lo:hi]
                if refractory and t > 0:
                    prev = s_out[t - 1, lo:hi]
                for n in range(m):
                    a, wrapped = synaptic_input(yk[n], scale)
                    n_wrap += wrapped
                    uu = np.trunc(uk[n] * keep_u * unit_inv) + a * act
                    uw = uu - span * (uu > limit) + span * (uu <= -limit)
                    n_wrap += np.int64(uw != uu)
                    vv = np.trunc(vk[n] * keep_v * unit_inv) + uw + bk[n]
                    if refractory and t > 0:
                        vv = vv * (1.0 - prev[n])  # held at 0 the step after a spike
                    vc = min(max(vv, -vmax), vmax)
                    n_sat += np.int64(vc != vv)
                    s = vc > vth64
                    sk[n] = s
                    vk[n] = vc * (1.0 - s)
                    uk[n] = uw
                if record_u:
                    copy_row(rec_u[t, lo:hi], uk)
                if record_v:
                    copy_row(rec_v[t, lo:hi], vk)
            sat += n_sat
            wraps += n_wrap
        return sat, wraps

    return _compile(lif_scan)


@functools.cache
def mps_kernel(floor_it: bool, conv_wrap: bool) -> Any:
    """The smoothed-reset loop for one option set (see :func:`lif_kernel`)."""

    unit, unit_inv, vmax, act = _UNIT, _INV_UNIT, _VMAX, _ACT
    synaptic_input, copy_row = _synaptic_input(floor_it, conv_wrap), _copy_row()

    def mps_scan(  # type: ignore[no-untyped-def]
        y, scale, chunks, bias, keep_v, vth64, coef, m_state, s_out, rec_v, record_v
    ):  # fmt: skip
        T = y.shape[0]
        sat = np.int64(0)
        wraps = np.int64(0)
        mix = unit - coef
        for k in range(chunks.shape[0]):
            lo, hi, f0 = chunks[k, 0], chunks[k, 1], chunks[k, 2]
            m = hi - lo
            mk = m_state[lo:hi]
            bk = bias[f0 : f0 + m]
            n_sat = np.int64(0)
            n_wrap = np.int64(0)
            for t in range(T):
                yk = y[t, lo:hi]
                sk = s_out[t, lo:hi]
                for n in range(m):
                    a, wrapped = synaptic_input(yk[n], scale)
                    n_wrap += wrapped
                    h = np.trunc(mk[n] * keep_v * unit_inv) + a * act + bk[n]
                    hc = min(max(h, -vmax), vmax)
                    n_sat += np.int64(hc != h)
                    s = hc > vth64
                    sk[n] = s
                    mk[n] = np.trunc((coef * mk[n] + mix * (hc * (1.0 - s))) * unit_inv)
                if record_v:
                    copy_row(rec_v[t, lo:hi], mk)
            sat += n_sat
            wraps += n_wrap
        return sat, wraps

    return _compile(mps_scan)


_NO_RECORD = np.zeros((1, 1), dtype=np.int32)
_NO_RECORD_U = np.zeros((1, 1), dtype=np.int64)


@functools.lru_cache(maxsize=64)
def chunks(n: int, f: int, block: int = BLOCK) -> tuple[np.ndarray, int]:
    """Cut N = B F neurons (F per sample) into chunks that run in parallel: rows (lo, hi, f0) of
    neurons lo..hi-1 whose bias is ``bias_t[f0 + n - lo]``, and the length of ``bias_t`` (the
    bias tiled over whole samples). F <= block: chunks of floor(block / F) whole samples (bias
    tiled that often); F > block: pieces of one sample, f0 their offset in it."""
    rows, length = _chunks(n, max(1, f), block)
    rows.flags.writeable = False  # shared by the calls of one layout (lru_cache)
    return rows, length


def _chunks(n: int, f: int, block: int) -> tuple[np.ndarray, int]:
    if f <= block:
        per = max(1, block // f) * f
        lo = np.arange(0, n, per, dtype=np.int64)
        rows = np.stack([lo, np.minimum(lo + per, n), np.zeros_like(lo)], axis=1)
        return rows, max(1, min(per, n))
    starts = np.arange(0, f, block, dtype=np.int64)
    samples = np.arange(0, n, f, dtype=np.int64)
    lo = (samples[:, None] + starts[None, :]).reshape(-1)
    f0 = np.tile(starts, len(samples))
    hi = np.minimum(lo + block, (lo // f + 1) * f)
    return np.stack([lo, hi, f0], axis=1), f


def _layout(n: int, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chunks, the bias tiled as float64) for N = ``n`` neurons with per-sample ``bias`` (F,)."""
    rows, length = chunks(n, bias.shape[0])
    reps = -(-length // max(1, bias.shape[0]))
    return rows, np.ascontiguousarray(np.tile(bias.astype(np.float64), reps)[:length])


def lif_scan(
    y: np.ndarray,
    *,
    exp: int,
    conv_wrap: bool,
    bias: np.ndarray,
    du: int,
    dv: int,
    vth: int,
    u: np.ndarray,
    v: np.ndarray,
    refractory: bool,
    spikes: np.ndarray,
    rec_u: np.ndarray | None = None,
    rec_v: np.ndarray | None = None,
) -> tuple[int, int]:
    """Run Lava's LIF over the synaptic sums ``y`` (T, N; float32/float64 integers, C-contiguous)
    from the states ``u``, ``v`` (N, float64 integers; updated in place to the states after step
    T - 1). ``bias`` (F, int64): membrane units per neuron of a sample (N = B F). Writes the
    spikes into ``spikes`` (T, N, uint8) and, where given, each step's u / v into ``rec_u``
    (T, N, int64) / ``rec_v`` (T, N, int32). Every range check runs (a check the caller proved
    idle changes nothing). Returns
    (saturations, wraps): wraps of convolution outputs and of u."""
    rows, bias_t = _layout(y.shape[1], bias)
    kern = lif_kernel(exp < 0, bool(conv_wrap), bool(refractory))
    sat, wraps = kern(
        y,
        float(2.0**exp),
        rows,
        bias_t,
        float(DECAY_UNIT - (int(du) + CURRENT_DECAY_OFFSET)),
        float(DECAY_UNIT - (int(dv) + VOLTAGE_DECAY_OFFSET)),
        float(int(vth) << VTH_SHIFT),
        u,
        v,
        spikes,
        _NO_RECORD_U if rec_u is None else rec_u,
        _NO_RECORD if rec_v is None else rec_v,
        rec_u is not None,
        rec_v is not None,
    )
    return int(sat), int(wraps)


def mps_scan(
    y: np.ndarray,
    *,
    exp: int,
    conv_wrap: bool,
    bias: np.ndarray,
    dv: int,
    vth: int,
    coef: int,
    m: np.ndarray,
    spikes: np.ndarray,
    rec_v: np.ndarray | None = None,
) -> tuple[int, int]:
    """Run the smoothed-reset neuron over ``y`` (T, N) from the smoothed state ``m`` (N, float64
    integers; updated in place); arguments as :func:`lif_scan`, ``rec_v`` records m. Returns
    (saturations, wraps of the convolution outputs)."""
    rows, bias_t = _layout(y.shape[1], bias)
    kern = mps_kernel(exp < 0, bool(conv_wrap))
    sat, wraps = kern(
        y,
        float(2.0**exp),
        rows,
        bias_t,
        float(DECAY_UNIT - (int(dv) + VOLTAGE_DECAY_OFFSET)),
        float(int(vth) << VTH_SHIFT),
        float(coef),
        m,
        spikes,
        _NO_RECORD if rec_v is None else rec_v,
        rec_v is not None,
    )
    return int(sat), int(wraps)
