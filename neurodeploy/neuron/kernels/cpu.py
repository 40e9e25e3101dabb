"""Compiled CPU loops (numba) for the multi-step LIF of :mod:`neurodeploy.neuron.lif`.

The equations are the ones in :mod:`neurodeploy.neuron.lif` (both readings, both resets); this module
only evaluates them, elementwise over the N = B * features neurons and sequentially over T.
Arrays are C-contiguous (T, N), float32 or float64; every scalar argument is of the same dtype,
so the float32 arithmetic is float32 throughout and, operation for operation, the one the
pure-PyTorch reference performs:

    reset reading:  H = beta*M + I;  S = (H - theta) > 0;  U = H*(1 - S) | H - theta*S;
                    M = alpha*M + oma*U      (oma = 1 - alpha, computed by the caller)
    charge reading: H = beta*U + I;  M = alpha*M + oma*H;  S = (M - theta) > 0;
                    U = M*(1 - S) | M - theta*S

so the float32 forward is bit-identical to :func:`neurodeploy.neuron.lif.lif_multistep` (numba compiles
without fast-math, so no multiply-add is contracted). ``smooth = False`` is the vanilla LIF
(M = U, resp. M = H), as with ``alpha=None`` in the reference.

Backward (reverse time, hand-derived; g = surrogate dS/dv at v = H - theta, resp. M - theta;
dR/dv, dR/dS: the reset's partials, (1 - S, -v) hard, (1, -theta) soft; the dR/dS term only
without ``detach_reset``). Reset reading, carried gM = dL/dM(t)::

    dU = oma*gM (gM if not smooth);     dS = dL/dS(t) + dU*dR/dS
    dH = dU*dR/dv + dS*g;               dL/dI(t) = dH
    dL/dalpha += gM*(M(t-1) - U(t));    gM <- alpha*gM + beta*dH

Charge reading, carried gU = dL/dU(t) (through H(t+1)) and gM = dL/dM(t) (through M(t+1))::

    dS = dL/dS(t) + gU*dR/dS;           dM = gM + gU*dR/dv + dS*g
    dH = oma*dM (dM if not smooth);     dL/dI(t) = dH
    dL/dalpha += dM*(M(t-1) - H(t));    gM <- alpha*dM;  gU <- beta*dH

The backward needs only the input I and the smoothed state M(t) of every step: the autograd
wrapper saves I, and the backward loop takes the neurons in blocks of ``bs``
(:func:`grad_block`): it re-runs the forward over the block's T steps into a T x bs scratch of
M, then sweeps the same block in reverse time (H and U recomputed from M(t-1) and I(t) exactly
as in the forward). The scratch and the block's rows of I stay in cache between the two
sweeps, so I, dL/dS and dL/dI cross memory once each and nothing (T, N)-sized is stored
besides dL/dI. Measured against the former full-width re-run into a (T, N) buffer followed by
the reverse sweep: 2.3-5x faster loops at B=16, T=32-100, n=1024-4096 on the 2-core machine of
benchmarks/results/neuron_speed.md (wider blocks vectorise better, so ``GRAD_SCRATCH`` is
larger than L2 alone would suggest).

Surrogate codes (``kind``): 0 rectangular, 1 arctan, 2 sigmoid (:mod:`neurodeploy.neuron.surrogate`);
``width`` is its w (resp. k). The loops run on one thread, over blocks of ``BLOCK`` neurons
(states stay in L1/L2): a numba-parallel build measured no faster on the 2-core machine of
benchmarks/results/neuron_speed.md (its threads compete with torch's OpenMP threads), and it
doubles the compile time.
The option flags (reading, reset, smoothing, surrogate) are closure constants of the loop
factories, so numba compiles one branch-free, vectorisable inner loop per option set (a runtime
flag there costs 3-5x); ``detach_reset`` is the factor ``keep`` (0 or 1) on the dR/dS term,
which leaves dS exact for finite values (a + b*0 = a) and halves the number of variants.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from neurodeploy.neuron.surrogate import SURROGATE_CODES

BLOCK = 2048  # neurons per block (a few state rows stay in L1/L2)
GRAD_SCRATCH = 262144  # elements of the backward's T x block scratch of M (1 MiB float32)
GRAD_BLOCK_MIN = 16  # neurons per backward block at least (one vector width or more)

# The loops' argument types (numba ignores annotations; it compiles per argument dtype):
FloatArray = npt.NDArray[np.floating[Any]]  # C-contiguous float32/float64 arrays
Scalar = np.floating[Any]  # a scalar of the arrays' dtype (np.float32 for float32 arrays)


def _make_forward(charge: bool, hard: bool, smooth: bool) -> Callable[..., None]:
    """The forward loop for one option set."""

    def lif_forward_loop(
        x: FloatArray,
        out: FloatArray,
        beta: Scalar,
        theta: Scalar,
        alpha: Scalar,
        oma: Scalar,
        one: Scalar,
    ) -> None:  # pragma: no cover - compiled by numba
        T, N = x.shape
        nblk = (N + BLOCK - 1) // BLOCK
        for b in range(nblk):
            j0 = b * BLOCK
            n = min(N, j0 + BLOCK) - j0
            zero = one - one
            m = np.zeros(n, x.dtype)
            u = np.zeros(n, x.dtype)
            for t in range(T):
                for k in range(n):
                    j = j0 + k
                    if charge:
                        h = beta * u[k] + x[t, j]
                        v = alpha * m[k] + oma * h if smooth else h
                        m[k] = v
                    else:
                        v = beta * m[k] + x[t, j]
                    s = one if (v - theta) > 0 else zero
                    r = v * (one - s) if hard else v - theta * s
                    if charge:
                        u[k] = r
                    elif smooth:
                        m[k] = alpha * m[k] + oma * r
                    else:
                        m[k] = r
                    out[t, j] = s

    return lif_forward_loop


def _make_backward(charge: bool, hard: bool, smooth: bool, kind: int) -> Callable[..., None]:
    """The gradient loop for one option set: per block of ``bs`` neurons, the forward re-run
    into a T x bs scratch of M, then the reverse-time sweep over that block."""

    def lif_backward_loop(
        x: FloatArray,
        grad_s: FloatArray,
        gx: FloatArray,
        dalpha_blk: FloatArray,
        bs: int,
        beta: Scalar,
        theta: Scalar,
        alpha: Scalar,
        oma: Scalar,
        one: Scalar,
        keep: Scalar,
        width: Scalar,
        half_w: Scalar,
        inv_w: Scalar,
        c_atan: Scalar,
    ) -> None:  # pragma: no cover - numba
        T, N = x.shape
        nblk = (N + bs - 1) // bs
        zero = one - one
        mb = np.empty((T, bs), x.dtype)  # M(t) of the block's neurons (stays in L2)
        zrow = np.zeros(bs, x.dtype)  # M(-1) = 0
        m = np.empty(bs, x.dtype)
        u = np.empty(bs, x.dtype)
        gm = np.empty(bs, x.dtype)
        gu = np.empty(bs, x.dtype)
        acc = np.empty(bs, np.float64)  # per neuron: a scalar sum would stop vectorisation
        for b in range(nblk):
            j0 = b * bs
            n = min(N, j0 + bs) - j0
            # forward re-run: the arithmetic of lif_forward_loop, recording M(t)
            for k in range(n):
                m[k] = zero
                u[k] = zero
            for t in range(T):
                xr = x[t, j0 : j0 + n]
                mr = mb[t]
                for k in range(n):
                    if charge:
                        h = beta * u[k] + xr[k]
                        v = alpha * m[k] + oma * h if smooth else h
                        m[k] = v
                    else:
                        v = beta * m[k] + xr[k]
                    s = one if (v - theta) > 0 else zero
                    r = v * (one - s) if hard else v - theta * s
                    if charge:
                        u[k] = r
                    elif smooth:
                        m[k] = alpha * m[k] + oma * r
                    else:
                        m[k] = r
                    mr[k] = m[k]
            # reverse sweep
            for k in range(n):
                gm[k] = zero
                gu[k] = zero
                acc[k] = 0.0
            for t in range(T - 1, -1, -1):
                xr = x[t, j0 : j0 + n]
                gsr = grad_s[t, j0 : j0 + n]
                gxr = gx[t, j0 : j0 + n]
                mr = mb[t]
                pr = mb[t - 1] if t > 0 else zrow
                for k in range(n):
                    # the forward quantities of step t, recomputed from M(t-1) and I(t)
                    m_prev = pr[k]
                    if charge:
                        sp = one if (m_prev - theta) > 0 else zero
                        u_prev = m_prev * (one - sp) if hard else m_prev - theta * sp
                        h = beta * u_prev + xr[k]
                        v = mr[k]
                    else:
                        h = beta * m_prev + xr[k]
                        v = h
                    d = v - theta
                    s = one if d > 0 else zero
                    if kind == 0:  # surrogate dS/dv
                        g = inv_w if abs(d) < half_w else zero
                    elif kind == 1:
                        z = c_atan * d
                        g = half_w / (one + z * z)
                    else:
                        sg = one / (one + np.exp(-(width * d)))
                        g = width * sg * (one - sg)
                    drdv = one - s if hard else one  # reset partials
                    drds = keep * (-v if hard else -theta)  # keep = 0: reset detached
                    if charge:
                        du = gu[k]
                        ds = gsr[k] + du * drds
                        dm = gm[k] + du * drdv + ds * g
                        if smooth:
                            dh = oma * dm
                            acc[k] += dm * (m_prev - h)
                            gm[k] = alpha * dm
                        else:
                            dh = dm
                        gxr[k] = dh
                        gu[k] = beta * dh
                    else:
                        r = v * (one - s) if hard else v - theta * s
                        g_m = gm[k]
                        if smooth:
                            du = oma * g_m
                            acc[k] += g_m * (m_prev - r)
                        else:
                            du = g_m
                        ds = gsr[k] + du * drds
                        dh = du * drdv + ds * g
                        gxr[k] = dh
                        gm[k] = alpha * g_m + beta * dh if smooth else beta * dh
            dalpha_blk[b] = acc[:n].sum()

    return lif_backward_loop


def grad_block(T: int, N: int) -> int:
    """Neurons per block of the backward: the T x block scratch of M holds about
    ``GRAD_SCRATCH`` elements (with the block's rows of I it stays in L2 between the forward
    re-run and the reverse sweep), a multiple of ``GRAD_BLOCK_MIN``, at most ``BLOCK`` and at
    most N."""
    bs = max(
        GRAD_BLOCK_MIN, min(BLOCK, GRAD_SCRATCH // max(T, 1)) // GRAD_BLOCK_MIN * GRAD_BLOCK_MIN
    )
    return max(1, min(bs, N))


def _compile(fn: Callable[..., Any], cache: bool) -> Any:
    """numba.njit ``fn``: cached on disk when a writable cache folder exists (numba keys a
    closure's entries by its constants), else compiled once per process."""
    import numba

    try:
        return numba.njit(nogil=True, cache=cache)(fn)
    except RuntimeError:  # "no locator available": neither __pycache__ nor a user cache dir
        return numba.njit(nogil=True, cache=False)(fn)


@functools.cache
def forward_kernel(charge: bool, hard: bool, smooth: bool, cache: bool = True) -> Any:
    """The forward dispatcher for one option set (built once per process; numba compiles it
    per dtype at its first call, or loads it from its on-disk cache)."""
    return _compile(_make_forward(charge, hard, smooth), cache)


@functools.cache
def backward_kernel(charge: bool, hard: bool, smooth: bool, kind: str, cache: bool = True) -> Any:
    """The backward dispatcher for one option set (see :func:`forward_kernel`)."""
    return _compile(_make_backward(charge, hard, smooth, SURROGATE_CODES[kind]), cache)


def lif_forward(
    x: np.ndarray,
    out: np.ndarray,
    *,
    beta: float,
    theta: float,
    alpha: float,
    oma: float,
    charge: bool,
    hard: bool,
    smooth: bool,
) -> None:
    """Run the neuron over input ``x`` (T, N); write the spikes into ``out`` (T, N, allocated by
    the caller)."""
    dt = x.dtype.type
    kern = forward_kernel(charge, hard, smooth)
    kern(x, out, dt(beta), dt(theta), dt(alpha), dt(oma), dt(1))


def lif_backward(
    x: np.ndarray,
    grad_s: np.ndarray,
    gx: np.ndarray,
    *,
    beta: float,
    theta: float,
    alpha: float,
    oma: float,
    charge: bool,
    hard: bool,
    smooth: bool,
    detach: bool,
    kind: str,
    width: float,
) -> float:
    """Write dL/dI (T, N) into ``gx`` (allocated by the caller) from the input ``x`` (T, N) and
    the upstream dL/dS ``grad_s`` (T, N); the smoothed state M is rebuilt block by block
    (:func:`grad_block`), nothing is kept from the forward. Returns dL/dalpha (summed in
    float64)."""
    dt = x.dtype.type
    bs = grad_block(x.shape[0], x.shape[1])
    dalpha = np.zeros(max(1, math.ceil(x.shape[1] / bs)), np.float64)
    kern = backward_kernel(charge, hard, smooth, kind)
    # the surrogate's constants rounded as torch rounds the Python scalars of surrogate.py
    kern(
        x,
        grad_s,
        gx,
        dalpha,
        bs,
        dt(beta),
        dt(theta),
        dt(alpha),
        dt(oma),
        dt(1),
        dt(0) if detach else dt(1),
        dt(width),
        dt(width / 2),
        dt(1) / dt(width),
        dt(math.pi / 2 * width),
    )
    return float(dalpha.sum())
