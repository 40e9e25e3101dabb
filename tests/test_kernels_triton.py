"""The Triton LIF kernels (neurodeploy.neuron.kernels.triton_lif), run by Triton's interpreter on CPU
tensors, against the pure-PyTorch reference path (neurodeploy.neuron.lif.lif_multistep) and a
hand-computed trajectory: spikes, dL/dI and dL/dalpha for every option combination in float32
and float64; and the dispatch that sends CUDA tensors to them (no GPU needed: the selection
function and LIF's routing are checked with the device decision patched).

The kernels run with small blocks (``block=32`` over 70 neurons: three programs, the last one
masked) so that the per-program state, the masked tail and the per-program dL/dalpha partials
are all exercised. What this cannot show: the GPU compile and its speed."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

pytest.importorskip("triton")

from neurodeploy.neuron.kernels import fused as fused_mod
from neurodeploy.neuron.kernels import select_backend, triton_lif
from neurodeploy.neuron.kernels.triton_lif import lif_multistep_triton
from neurodeploy.neuron.lif import LIFParams, lif_multistep
from neurodeploy.neuron.surrogate import SURROGATES, Surrogate
from neurodeploy.nn.layers import LIF

ALPHAS = ("none", "tensor", "float")
SHAPE = (6, 2, 35)  # T=6 steps, 70 neurons
BLOCK = 32  # 3 programs, the last with 6 live lanes of 32


def _triton(block: int = BLOCK):
    return lambda x, a, p: lif_multistep_triton(x, a, p, block=block)


def _run(fn, x: torch.Tensor, alpha_kind: str, p: LIFParams, w: torch.Tensor):
    """Spikes and the gradients of sum(w * spikes) w.r.t. x and alpha."""
    xx = x.clone().requires_grad_()
    a_t = torch.tensor(0.3, dtype=x.dtype, requires_grad=True)
    alpha = {"none": None, "tensor": a_t, "float": 0.3}[alpha_kind]
    y = fn(xx, alpha, p)
    (y * w).sum().backward()
    return y, xx.grad, (a_t.grad if alpha_kind == "tensor" else None)


def _inputs(shape: tuple[int, ...], dtype: torch.dtype, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * 1.2 + 0.6).to(dtype)
    w = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    return x, w


COMBOS = list(
    itertools.product(("reset", "charge"), ("hard", "soft"), (True, False), SURROGATES, ALPHAS)
)
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("mode", "reset", "detach", "kind", "alpha_kind"), COMBOS)
def test_matches_reference(mode, reset, detach, kind, alpha_kind, dtype):
    """Spikes identical (the interpreter performs the reference's operations in numpy, in the
    same order and dtype), dL/dI and dL/dalpha to the dtype's rounding."""
    p = LIFParams(
        tau=2.5,
        theta=1.0,
        reset=reset,
        mps_mode=mode,
        detach_reset=detach,
        surrogate=Surrogate(kind),
    )
    x, w = _inputs(SHAPE, dtype)
    ref = _run(lif_multistep, x, alpha_kind, p, w)
    got = _run(_triton(), x, alpha_kind, p, w)
    assert got[0].dtype == dtype and got[0].shape == SHAPE
    assert torch.equal(got[0], ref[0])
    assert 0.05 < float(ref[0].detach().mean()) < 0.95  # the spikes do switch
    tol = TOL[dtype]
    torch.testing.assert_close(got[1], ref[1], rtol=tol, atol=tol)
    assert float(ref[1].abs().sum()) > 0
    # the masked tail (last program) carries gradient too
    assert float(ref[1].reshape(6, -1)[:, 64:].abs().sum()) > 0
    if alpha_kind == "tensor":
        assert got[2].shape == ref[2].shape == () and got[2].dtype == dtype
        torch.testing.assert_close(got[2], ref[2], rtol=tol, atol=tol)
        assert abs(float(ref[2])) > 0.1


def test_hand_computed_trajectory_and_gradients():
    """As in test_kernels.py: one neuron, tau=2 (beta=0.5), theta=1, alpha=0.5, hard reset,
    smoothed reset state, rectangular surrogate (w=1), I = (1.2, 0.6, 0.9), L = S(3):
      t1: H=1.2, S=1, U=0, M=0;  t2: H=0.6, S=0, U=0.6, M=0.3;  t3: H=1.05, S=1, U=0, M=0.15
    backward: dI3 = g(0.05) = 1;  gM2 = beta*1 = 0.5;  dI2 = (1-alpha)*gM2*(1-S2) = 0.25;
      gM1 = alpha*gM2 + beta*dI2 = 0.375;  dI1 = (1-alpha)*gM1*(1-S1) = 0 (reset detached);
      dL/dalpha = sum_t gM(t)*(M(t-1) - U(t)) = 0.5*(0 - 0.6) = -0.3."""
    x = torch.tensor([[1.2], [0.6], [0.9]], dtype=torch.float64, requires_grad=True)
    a = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    s = lif_multistep_triton(x, a, LIFParams(tau=2.0, theta=1.0))
    s[2].sum().backward()
    assert s.flatten().tolist() == [1.0, 0.0, 1.0]
    torch.testing.assert_close(
        x.grad.flatten(), torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
    )
    torch.testing.assert_close(a.grad, torch.tensor(-0.3, dtype=torch.float64))


@pytest.mark.parametrize(
    ("shape", "block"),
    [
        ((1, 4), 4),
        ((1, 2, 3, 5), 8),
        ((3, 1, 1), 1),
        ((5, 2, 3, 4), 128),
        ((80, 1, 3), 2),
        ((3, 0, 4), 8),
    ],
)
def test_odd_shapes_blocks_and_long_runs(shape, block):
    """Single steps, one neuron, a block larger than N (one masked program), 80 steps through
    the runtime time loop, an empty batch."""
    p = LIFParams(
        mps_mode="charge", reset="soft", detach_reset=False, surrogate=Surrogate("sigmoid")
    )
    x, w = _inputs(shape, torch.float64, seed=2)
    ref = _run(lif_multistep, x, "tensor", p, w)
    got = _run(_triton(block), x, "tensor", p, w)
    assert got[0].shape == shape
    assert torch.equal(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[2], ref[2], rtol=1e-11, atol=1e-12)


def test_non_contiguous_input_no_grad_and_alpha_only():
    p = LIFParams(reset="soft")
    x = (torch.randn(5, 7, 3, dtype=torch.float64) + 0.8).transpose(1, 2)  # (5, 3, 7) strided
    with torch.no_grad():
        assert torch.equal(lif_multistep_triton(x, 0.2, p, block=8), lif_multistep(x, 0.2, p))
    a = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)  # x without grad
    lif_multistep_triton(x, a, p, block=8).sum().backward()
    a_ref = a.detach().clone().requires_grad_()
    lif_multistep(x, a_ref, p).sum().backward()
    torch.testing.assert_close(a.grad, a_ref.grad, rtol=1e-12, atol=1e-12)


def test_time_is_a_runtime_loop_bound():
    """T and N are plain kernel arguments (one compiled kernel for every T; the loop is not
    unrolled); only the option flags and the block size are compile-time constants."""
    import inspect

    for fn, consts in (
        (triton_lif._lif_fwd, {"CHARGE", "HARD", "SMOOTH", "RECORD", "BLOCK"}),
        (triton_lif._lif_bwd, {"CHARGE", "HARD", "SMOOTH", "KEEP", "KIND", "BLOCK"}),
    ):
        ann = inspect.get_annotations(fn)
        assert {k for k, v in ann.items() if "constexpr" in str(v)} == consts
        assert "T" in inspect.signature(fn).parameters and "T" not in ann


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="power of two"):
        lif_multistep_triton(torch.zeros(2, 3), None, LIFParams(), block=3)
    with pytest.raises(ValueError, match="interpreter.*bfloat16"):
        lif_multistep_triton(torch.zeros(2, 3, dtype=torch.bfloat16), None, LIFParams())
    with pytest.raises(ValueError, match="T, B"):
        lif_multistep_triton(torch.zeros(4), None, LIFParams())
    with pytest.raises(ValueError, match="alpha"):
        lif_multistep_triton(torch.zeros(2, 3), 1.5, LIFParams())


def test_selection_sends_cuda_float32_to_triton(monkeypatch):
    assert select_backend("cuda", torch.float32) == ("triton", None)
    assert select_backend("cpu", torch.float32) == ("numba", None)
    for dt in (torch.float16, torch.bfloat16, torch.float64):
        backend, why = select_backend("cuda", dt)
        assert backend == "reference" and str(dt) in why
    backend, why = select_backend("mps", torch.float32)
    assert backend == "reference" and "mps" in why
    monkeypatch.setattr(triton_lif, "triton_available", lambda: False)
    assert select_backend("cuda", torch.float32) == (
        "reference",
        "triton is not installed (pip install triton)",
    )


@pytest.mark.parametrize("kernel", ["auto", "fused"])
def test_layer_routes_to_triton_where_selected(monkeypatch, kernel):
    """With the device decision patched to say "triton" (as it does for CUDA float32), LIF
    runs the Triton kernel (interpreted here, on CPU) and matches the reference layer, the
    gradient of the logit a included (a float32, x float64: alpha promoted as the reference
    promotes it)."""
    calls = []
    real = triton_lif.lif_multistep_triton

    def spy(x, alpha, p, **kw):
        calls.append(x.shape)
        return real(x, alpha, p, block=16, **kw)

    monkeypatch.setattr(fused_mod, "select_backend", lambda dev, dt: ("triton", None))
    monkeypatch.setattr(triton_lif, "lif_multistep_triton", spy)
    torch.manual_seed(3)
    x = torch.randn(5, 2, 21, dtype=torch.float64) + 0.7
    outs = []
    for layer in (
        LIF(alpha_init=0.4, mps_mode="charge", kernel=kernel),
        LIF(alpha_init=0.4, mps_mode="charge", kernel="reference"),
    ):
        xx = x.clone().requires_grad_()
        y = layer(xx)
        (y * torch.linspace(-1, 1, 21, dtype=torch.float64)).sum().backward()
        outs.append((y, xx.grad, layer.a.grad))
    assert calls == [x.shape]
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-12, atol=1e-12)
    assert outs[0][2].dtype == torch.float32
    torch.testing.assert_close(outs[0][2], outs[1][2], rtol=1e-6, atol=1e-6)
    assert float(outs[0][2].abs()) > 0


@pytest.mark.parametrize(
    ("which", "flags"),
    [
        ("fwd", dict(CHARGE=False, HARD=True, SMOOTH=True, RECORD=False)),
        ("fwd", dict(CHARGE=True, HARD=False, SMOOTH=True, RECORD=True)),
        ("bwd", dict(CHARGE=False, HARD=True, SMOOTH=True, KEEP=False, KIND=0)),
        ("bwd", dict(CHARGE=True, HARD=False, SMOOTH=True, KEEP=True, KIND=1)),
        ("bwd", dict(CHARGE=True, HARD=True, SMOOTH=False, KEEP=True, KIND=2)),
    ],
)
def test_compiles_for_sm90_without_a_gpu(which, flags, tmp_path, monkeypatch):
    """Ahead-of-time compile through Triton's whole NVIDIA pipeline (TTIR -> PTX -> cubin via
    the bundled ptxas) for an H100 (sm_90), float32, with the launch options the GPU path uses:
    the compiled (not interpreted) kernels type-check, and the PTX has no fused multiply-add
    (the rounding the reference's separate ops have). It does not run them."""
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource
    except ImportError as e:  # pragma: no cover - a triton without the NVIDIA backend
        pytest.skip(f"triton's NVIDIA compiler is not available: {e}")
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))  # really compile, cache nothing
    fwd, bwd = triton_lif._kernels(False)
    kern = fwd if which == "fwd" else bwd
    sig = {"x_ptr": "*fp32", "out_ptr": "*fp32", "c_ptr": "*fp32", "N": "i32", "T": "i32"}
    if which == "bwd":
        sig = {
            "x_ptr": "*fp32",
            "mg_ptr": "*fp32",
            "gs_ptr": "*fp32",
            "dalpha_ptr": "*fp64",
            "c_ptr": "*fp32",
            "N": "i32",
            "T": "i32",
            "last": "i32",
        }
    consts = dict(flags, BLOCK=triton_lif.BLOCK)
    sig.update({k: "constexpr" for k in consts})
    src = ASTSource(kern, sig, {(kern.arg_names.index(k),): v for k, v in consts.items()})
    compiled = triton.compile(
        src, target=GPUTarget("cuda", 90, 32), options=dict(triton_lif.LAUNCH_OPTIONS)
    )
    ptx = compiled.asm["ptx"]
    assert ".target sm_90" in ptx and len(compiled.asm["cubin"]) > 0
    assert "fma." not in ptx


GPU = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@GPU
@pytest.mark.parametrize(("mode", "reset", "detach", "kind", "alpha_kind"), COMBOS)
def test_gpu_matches_reference(mode, reset, detach, kind, alpha_kind):  # pragma: no cover
    """On a CUDA device (skipped elsewhere): the compiled kernels against the reference path on
    the same device, float32, 3 x 700 neurons (several programs, a masked tail)."""
    p = LIFParams(
        tau=2.5,
        theta=1.0,
        reset=reset,
        mps_mode=mode,
        detach_reset=detach,
        surrogate=Surrogate(kind),
    )
    x, w = (t.cuda() for t in _inputs((9, 3, 700), torch.float32, seed=4))
    ref = _run(lif_multistep, x, alpha_kind, p, w)
    got = _run(lambda x, a, p: lif_multistep_triton(x, a, p), x, alpha_kind, p, w)
    assert got[0].is_cuda and torch.equal(got[0], ref[0])  # no FMA: same roundings
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)
    if alpha_kind == "tensor":
        torch.testing.assert_close(got[2], ref[2], rtol=1e-5, atol=1e-4)


@GPU
def test_gpu_layer_default_is_triton(monkeypatch):  # pragma: no cover
    calls = []
    real = triton_lif.lif_multistep_triton
    monkeypatch.setattr(
        triton_lif, "lif_multistep_triton", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    layer = LIF(alpha_init=0.4).cuda()
    x = (torch.randn(6, 4, 33) + 0.7).cuda().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback notice
        layer(x).sum().backward()
    assert calls == [1] and x.grad is not None and layer.a.grad is not None
