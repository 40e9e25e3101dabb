"""Triton kernels (GPU) for the multi-step LIF of :mod:`neurodeploy.neuron.lif`: one launch for the
forward over all T steps, one for the hand-written reverse-time backward.

**Status: verified in Triton's CPU interpreter only.** The tests (tests/test_kernels_triton.py)
run these kernels through ``triton.runtime.interpreter`` on CPU tensors and compare spikes and
every gradient with the reference path; they have not yet been compiled or run on a GPU here,
and their GPU speed is not yet measured (``benchmarks/neuron_speed.py --device cuda`` does that
once a GPU is available). The block size and warp count below are untuned first guesses.

Equations and backward derivation: those of :mod:`neurodeploy.neuron.kernels.cpu` (same per-element
operations in the same order; states M, U, H; surrogate g = dS/dv at v - theta)::

    reset reading:  H = beta*M + I;  S = (H - theta) > 0;  U = H*(1 - S) | H - theta*S;
                    M = alpha*M + oma*U
    charge reading: H = beta*U + I;  M = alpha*M + oma*H;  S = (M - theta) > 0;
                    U = M*(1 - S) | M - theta*S

    backward, reset reading, carried gM = dL/dM(t):
        dU = oma*gM;  dS = dL/dS(t) + dU*dR/dS;  dL/dI(t) = dH = dU*dR/dv + dS*g
        dL/dalpha += gM*(M(t-1) - U(t));  gM <- alpha*gM + beta*dH
    backward, charge reading, carried gU = dL/dU(t), gM = dL/dM(t):
        dS = dL/dS(t) + gU*dR/dS;  dM = gM + gU*dR/dv + dS*g;  dL/dI(t) = dH = oma*dM
        dL/dalpha += dM*(M(t-1) - H(t));  gM <- alpha*dM;  gU <- beta*dH

(without smoothing oma -> 1 and the alpha terms vanish; dR/dv, dR/dS = (1 - S, -v) hard,
(1, -theta) soft; the dR/dS term only without ``detach_reset``).

Layout: I is viewed as (T, N), N = B * features, row-major. Each program owns ``BLOCK``
neurons and loops over the T rows with a runtime trip count (no unrolling: T = 500 is one
loop), so states stay in registers and every element of I is read once per pass. Memory: the
forward saves only I; the backward first re-runs the forward in "record" mode to write the
smoothed state M (T, N) into the buffer that then receives dL/dI in place (each program reads
row t - 1 of M before it overwrites row t - 1, and only its own columns). dL/dalpha: each
program sums its neurons' terms in float64 (a fixed-order tree ``tl.reduce``) and writes one
partial; ``torch.sum`` of the partials gives the total (deterministic: no atomics).

Scalars (beta, theta, alpha, 1 - alpha, surrogate constants) reach the kernels as a small
tensor of I's dtype, rounded as the reference rounds its Python scalars; alpha as a tensor stays
on the device (no host synchronisation).

Where it runs: CUDA tensors of dtype float32 with triton importable (half precision and
float64 on CUDA fall back to the reference path). CPU tensors of dtype float32/float64 go
through Triton's interpreter (for tests and debugging only: slow).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from neurodeploy.neuron.lif import LIFParams, check_alpha, check_input
from neurodeploy.neuron.surrogate import SURROGATE_CODES

try:  # triton is optional: without it the module still imports
    import triton
    import triton.language as tl
except Exception:  # noqa: BLE001 - a broken triton install counts as "not available"
    triton = None
    tl = None

GPU_DTYPES = (torch.float32,)
INTERPRETER_DTYPES = (torch.float32, torch.float64)
BLOCK = 128  # neurons per program on the GPU (untuned)
NUM_WARPS = 4  # untuned
# GPU compile options: no multiply-add contraction, so every product and sum is rounded on its
# own as in the reference's separate torch ops (the float32 forward can then match it bit for bit)
LAUNCH_OPTIONS = {"num_warps": NUM_WARPS, "enable_fp_fusion": False}
# slots of the scalar tensor handed to the kernels
C_BETA, C_THETA, C_ALPHA, C_OMA, C_WIDTH, C_HALF_W, C_INV_W, C_ATAN = range(8)
N_CONSTS = 8


def triton_available() -> bool:
    """Whether triton imported."""
    return triton is not None


def unavailable_reason_for(dtype: torch.dtype) -> str | None:
    """Why the Triton kernel cannot run on CUDA tensors of ``dtype`` (None: it can)."""
    if dtype not in GPU_DTYPES:
        return f"the Triton kernel supports float32 on CUDA, got {dtype}"
    if not triton_available():
        return "triton is not installed (pip install triton)"
    return None


# ---------------------------------------------------------------------------------------------
# Kernel sources: plain functions, wrapped by triton.jit (GPU) or by the interpreter (CPU
# tensors) in _kernels(). They use only triton builtins (tl.full, not tl.zeros; tl.reduce with
# our own combine function, not tl.sum) because the interpreter can run those without
# TRITON_INTERPRET=1 having been set before triton was imported.
# Their parameters stay unannotated: triton.jit reads parameter annotations as kernel types
# (tl.constexpr, pointer and integer types), so a Python type hint there would change the kernel.
# ---------------------------------------------------------------------------------------------


def _add(a, b):  # type: ignore[no-untyped-def]
    return a + b


def _lif_fwd(  # type: ignore[no-untyped-def]
    x_ptr,
    out_ptr,
    c_ptr,
    N,
    T,
    CHARGE: tl.constexpr,
    HARD: tl.constexpr,
    SMOOTH: tl.constexpr,
    RECORD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Spikes S (or, with RECORD, the smoothed state M) of N neurons over T steps."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta = tl.load(c_ptr + 0)
    theta = tl.load(c_ptr + 1)
    alpha = tl.load(c_ptr + 2)
    oma = tl.load(c_ptr + 3)
    m = tl.full([BLOCK], 0.0, x_ptr.dtype.element_ty)
    u = tl.full([BLOCK], 0.0, x_ptr.dtype.element_ty)
    xp = x_ptr + offs
    op = out_ptr + offs
    for _t in range(T):  # runtime trip count: not unrolled
        xv = tl.load(xp, mask=mask, other=0.0)
        if CHARGE:
            h = beta * u + xv
            if SMOOTH:
                m = alpha * m + oma * h
            else:
                m = h
            v = m
        else:
            v = beta * m + xv
        s = tl.where((v - theta) > 0, 1.0, 0.0)
        if HARD:
            r = v * (1.0 - s)
        else:
            r = v - theta * s
        if CHARGE:
            u = r
        elif SMOOTH:
            m = alpha * m + oma * r
        else:
            m = r
        if RECORD:
            tl.store(op, m, mask=mask)
        else:
            tl.store(op, s, mask=mask)
        xp += N
        op += N


def _lif_bwd(  # type: ignore[no-untyped-def]
    x_ptr,
    mg_ptr,
    gs_ptr,
    dalpha_ptr,
    c_ptr,
    N,
    T,
    last,
    CHARGE: tl.constexpr,
    HARD: tl.constexpr,
    SMOOTH: tl.constexpr,
    KEEP: tl.constexpr,
    KIND: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Reverse-time sweep: ``mg`` holds M (T, N) on entry and dL/dI on return; ``gs`` is
    dL/dS; ``last`` = (T - 1) * N; one float64 partial of dL/dalpha per program."""
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta = tl.load(c_ptr + 0)
    theta = tl.load(c_ptr + 1)
    alpha = tl.load(c_ptr + 2)
    oma = tl.load(c_ptr + 3)
    width = tl.load(c_ptr + 4)
    half_w = tl.load(c_ptr + 5)
    inv_w = tl.load(c_ptr + 6)
    c_atan = tl.load(c_ptr + 7)
    gm = tl.full([BLOCK], 0.0, x_ptr.dtype.element_ty)
    gu = tl.full([BLOCK], 0.0, x_ptr.dtype.element_ty)
    acc = tl.full([BLOCK], 0.0, tl.float64)
    xp = x_ptr + last + offs
    mp = mg_ptr + last + offs
    gp = gs_ptr + last + offs
    m_cur = tl.load(mp, mask=mask, other=0.0)  # M(T-1)
    for i in range(T):  # t = T-1 .. 0
        t = T - 1 - i
        lim = tl.where(t > 0, N, 0)  # no row -1: M(-1) = 0
        m_prev = tl.load(mp - N, mask=offs < lim, other=0.0)  # M(t-1), still M
        xv = tl.load(xp, mask=mask, other=0.0)
        gsv = tl.load(gp, mask=mask, other=0.0)
        if CHARGE:
            sp = tl.where((m_prev - theta) > 0, 1.0, 0.0)
            if HARD:
                u_prev = m_prev * (1.0 - sp)
            else:
                u_prev = m_prev - theta * sp
            h = beta * u_prev + xv
            v = m_cur
        else:
            h = beta * m_prev + xv
            v = h
        d = v - theta
        s = tl.where(d > 0, 1.0, 0.0)
        if KIND == 0:  # surrogate dS/dv
            g = tl.where(tl.abs(d) < half_w, inv_w, 0.0)
        elif KIND == 1:
            z = c_atan * d
            g = half_w / (1.0 + z * z)
        else:
            sg = 1.0 / (1.0 + tl.exp(-(width * d)))
            g = width * sg * (1.0 - sg)
        if HARD:  # reset partials dR/dv, dR/dS
            drdv = 1.0 - s
            drds = -v
        else:
            drdv = 1.0
            drds = -theta
        if CHARGE:
            du = gu
            if KEEP:
                ds = gsv + du * drds
            else:
                ds = gsv
            dm = gm + du * drdv + ds * g
            if SMOOTH:
                dh = oma * dm
                acc += tl.where(mask, (dm * (m_prev - h)).to(tl.float64), 0.0)
                gm = alpha * dm
            else:
                dh = dm
            gu = beta * dh
        else:
            if HARD:
                r = v * (1.0 - s)
            else:
                r = v - theta * s
            if SMOOTH:
                du = oma * gm
                acc += tl.where(mask, (gm * (m_prev - r)).to(tl.float64), 0.0)
            else:
                du = gm
            if KEEP:
                ds = gsv + du * drds
            else:
                ds = gsv
            dh = du * drdv + ds * g
            if SMOOTH:
                gm = alpha * gm + beta * dh
            else:
                gm = beta * dh
        tl.store(mp, dh.to(x_ptr.dtype.element_ty), mask=mask)  # row t of M already read
        m_cur = m_prev
        xp -= N
        mp -= N
        gp -= N
    tl.store(dalpha_ptr + pid, tl.reduce(acc, 0, _ADD))


# the combine function of the dL/dalpha reduction, jit-wrapped (the interpreter calls its .fn)
_ADD: Any = None if triton is None else triton.jit(_add)


@functools.lru_cache(maxsize=2)
def _kernels(interpret: bool) -> tuple[Any, Any]:
    """(forward, backward) kernels: compiled for the GPU by triton.jit, or run by Triton's
    interpreter (``interpret``; CPU tensors)."""
    if triton is None:
        raise RuntimeError("triton is not installed")
    if interpret:
        from triton.runtime.interpreter import InterpretedFunction

        return InterpretedFunction(_lif_fwd), InterpretedFunction(_lif_bwd)
    return triton.jit(_lif_fwd), triton.jit(_lif_bwd)


def _consts(x: torch.Tensor, alpha: torch.Tensor | float | None, p: LIFParams) -> torch.Tensor:
    """The kernels' scalars in x's dtype and on x's device, rounded as the reference rounds
    them: beta, theta and the surrogate constants from Python floats (1/w as a division in x's
    dtype), 1 - alpha in alpha's own dtype for a tensor, in double for a float."""
    w = p.surrogate.w
    a = 0.0 if (alpha is None or isinstance(alpha, torch.Tensor)) else float(alpha)
    c = torch.tensor([p.beta, p.theta, a, 1.0 - a, w, w / 2, 0.0, math.pi / 2 * w], dtype=x.dtype)
    c[C_INV_W] = 1 / c[C_WIDTH]
    c = c.to(x.device)
    if isinstance(alpha, torch.Tensor):
        ad = alpha.detach().reshape(()).to(x.device)
        c[C_ALPHA] = ad.to(x.dtype)
        c[C_OMA] = (1 - ad).to(x.dtype)
    return c


def _launch(
    kernel: Any, grid: tuple[int], interpret: bool, device: torch.device, *args: Any, **const: Any
) -> None:
    if interpret:
        kernel[grid](*args, **const)
        return
    with torch.cuda.device(device):
        kernel[grid](*args, **const, **LAUNCH_OPTIONS)


def _flags(cfg: dict[str, Any]) -> dict[str, Any]:
    return {"CHARGE": cfg["charge"], "HARD": cfg["hard"], "SMOOTH": cfg["smooth"]}


class _TritonLIF(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        alpha: torch.Tensor | None,
        consts: torch.Tensor,
        cfg: dict[str, Any],
    ) -> torch.Tensor:
        x2 = x.detach().reshape(x.shape[0], -1).contiguous()
        T, N = x2.shape
        spikes = torch.empty_like(x2)
        fwd, _ = _kernels(cfg["interpret"])
        if N > 0:
            _launch(
                fwd,
                (triton.cdiv(N, cfg["block"]),),
                cfg["interpret"],
                x2.device,
                x2,
                spikes,
                consts,
                N,
                T,
                RECORD=False,
                BLOCK=cfg["block"],
                **_flags(cfg),
            )
        ctx.save_for_backward(x2, alpha, consts)
        ctx.cfg = cfg
        ctx.x_shape = x.shape
        return spikes.reshape(x.shape)

    @staticmethod
    @once_differentiable
    # torch declares backward(ctx, *grad_outputs); autograd passes one gradient per forward
    # output, here exactly one
    def backward(ctx: Any, grad_s: torch.Tensor) -> tuple[Any, ...]:  # type: ignore[override]
        x2, alpha, consts = ctx.saved_tensors
        cfg = ctx.cfg
        T, N = x2.shape
        blk = cfg["block"]
        nprog = triton.cdiv(N, blk) if N > 0 else 0
        g = grad_s.reshape(x2.shape).to(x2.dtype).contiguous()
        grad_x = torch.empty_like(x2)  # the rebuilt state M, then dL/dI in place
        partials = torch.zeros(max(nprog, 1), dtype=torch.float64, device=x2.device)
        fwd, bwd = _kernels(cfg["interpret"])
        if N > 0:
            _launch(
                fwd,
                (nprog,),
                cfg["interpret"],
                x2.device,
                x2,
                grad_x,
                consts,
                N,
                T,
                RECORD=True,
                BLOCK=blk,
                **_flags(cfg),
            )
            _launch(
                bwd,
                (nprog,),
                cfg["interpret"],
                x2.device,
                x2,
                grad_x,
                g,
                partials,
                consts,
                N,
                T,
                (T - 1) * N,
                KEEP=not cfg["detach"],
                KIND=SURROGATE_CODES[cfg["kind"]],
                BLOCK=blk,
                **_flags(cfg),
            )
        gx = grad_x.reshape(ctx.x_shape) if ctx.needs_input_grad[0] else None
        ga = None
        if alpha is not None and ctx.needs_input_grad[1]:
            ga = partials.sum().to(alpha.dtype).reshape(alpha.shape)
        return gx, ga, None, None


def lif_multistep_triton(
    x: torch.Tensor, alpha: torch.Tensor | float | None, p: LIFParams, *, block: int | None = None
) -> torch.Tensor:
    """Same contract as :func:`neurodeploy.neuron.lif.lif_multistep` (T, B, ...) -> (T, B, ...), by the
    Triton kernels: compiled on CUDA tensors (float32), interpreted on CPU tensors (float32,
    float64; tests only). ``block``: neurons per program (a power of two; default
    :data:`BLOCK`). Gradients reach ``x`` and a tensor ``alpha``.

    Raises ValueError where it cannot run (no triton, another device or dtype, bad block)."""
    check_input(x)
    check_alpha(alpha)
    interpret = x.device.type == "cpu"
    if not triton_available():
        raise ValueError("Triton LIF kernel: triton is not installed (pip install triton)")
    if interpret:
        if x.dtype not in INTERPRETER_DTYPES:
            raise ValueError(
                f"Triton LIF kernel (interpreter, CPU tensors): float32/float64 "
                f"only, got {x.dtype}"
            )
    elif x.device.type != "cuda":
        raise ValueError(
            f"Triton LIF kernel: CUDA (or CPU, interpreted) tensors only, got " f"{x.device.type}"
        )
    else:
        why = unavailable_reason_for(x.dtype)
        if why is not None:
            raise ValueError(f"Triton LIF kernel: {why}")
    blk = BLOCK if block is None else int(block)
    if blk < 1 or blk & (blk - 1):
        raise ValueError(f"Triton LIF kernel: block must be a power of two, got {block}")
    cfg = {
        "charge": p.mps_mode == "charge",
        "hard": p.reset == "hard",
        "smooth": alpha is not None,
        "detach": p.detach_reset,
        "kind": p.surrogate.kind,
        "block": blk,
        "interpret": interpret,
    }
    a_t = alpha if isinstance(alpha, torch.Tensor) else None
    out: torch.Tensor = _TritonLIF.apply(x, a_t, _consts(x, alpha, p), cfg)
    return out


__all__ = [
    "BLOCK",
    "GPU_DTYPES",
    "INTERPRETER_DTYPES",
    "lif_multistep_triton",
    "triton_available",
    "unavailable_reason_for",
]
