"""The fused multi-step LIF (neurodeploy.neuron.kernels) against the pure-PyTorch reference path
(neurodeploy.neuron.lif.lif_multistep) and against a hand-computed trajectory: spikes, dL/dI and
dL/dalpha, every option combination, float64 (to rounding) and float32 (spikes bit for bit)."""

from __future__ import annotations

import itertools
import warnings

import pytest
import torch

from neurodeploy.neuron.kernels import fused as fused_mod
from neurodeploy.neuron.kernels import lif_multistep_fused, unavailable_reason
from neurodeploy.neuron.lif import LIFParams, lif_multistep
from neurodeploy.neuron.surrogate import SURROGATES, Surrogate
from neurodeploy.nn.layers import LIF

pytestmark = pytest.mark.skipif(not fused_mod.numba_available(), reason="numba not installed")

ALPHAS = ("none", "tensor", "float")


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


@pytest.mark.parametrize(("mode", "reset", "detach", "kind", "alpha_kind"), COMBOS)
def test_float64_matches_reference(mode, reset, detach, kind, alpha_kind):
    p = LIFParams(
        tau=2.5,
        theta=1.0,
        reset=reset,
        mps_mode=mode,
        detach_reset=detach,
        surrogate=Surrogate(kind),
    )
    x, w = _inputs((7, 3, 5), torch.float64)  # odd shapes: 15 neurons, 7 steps
    ref = _run(lif_multistep, x, alpha_kind, p, w)
    got = _run(lif_multistep_fused, x, alpha_kind, p, w)
    assert torch.equal(got[0], ref[0])
    assert 0.05 < float(ref[0].detach().mean()) < 0.95  # the spikes do switch
    torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-12)
    assert float(ref[1].abs().sum()) > 0
    if alpha_kind == "tensor":
        torch.testing.assert_close(got[2], ref[2], rtol=1e-11, atol=1e-12)
        assert got[2].shape == ref[2].shape == ()


@pytest.mark.parametrize(
    ("mode", "reset"), list(itertools.product(("reset", "charge"), ("hard", "soft")))
)
@pytest.mark.parametrize("smooth", [True, False])
def test_float32_spikes_bit_identical_grads_close(mode, reset, smooth):
    """Same float32 operations in the same order: identical spikes over 2 x 2100 neurons
    (two blocks of the loop, one ragged), gradients to float32 rounding."""
    p = LIFParams(reset=reset, mps_mode=mode)
    x, w = _inputs((12, 2, 2100), torch.float32, seed=1)
    ak = "tensor" if smooth else "none"
    ref = _run(lif_multistep, x, ak, p, w)
    got = _run(lif_multistep_fused, x, ak, p, w)
    assert torch.equal(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1], rtol=1e-5, atol=1e-5)
    if smooth:
        torch.testing.assert_close(got[2], ref[2], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("mode", ["reset", "charge"])
def test_backward_blocks_of_neurons_match_reference(monkeypatch, mode):
    """The backward's per-block forward re-run and reverse sweep, with blocks of 16 neurons
    (39 neurons: 16 + 16 + a ragged 7): dL/dI and dL/dalpha as the reference's autograd."""
    from neurodeploy.neuron.kernels import cpu

    monkeypatch.setattr(cpu, "GRAD_SCRATCH", 7 * 16)
    assert cpu.grad_block(7, 39) == 16
    p = LIFParams(tau=2.5, theta=1.0, mps_mode=mode, detach_reset=False)
    x, w = _inputs((7, 3, 13), torch.float64, seed=3)
    ref = _run(lif_multistep, x, "tensor", p, w)
    got = _run(lif_multistep_fused, x, "tensor", p, w)
    assert torch.equal(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[2], ref[2], rtol=1e-11, atol=1e-12)
    assert float(ref[1].reshape(7, 39)[:, 32:].abs().sum()) > 0  # the ragged block has gradient


@pytest.mark.parametrize("shape", [(1, 4), (1, 2, 3, 5), (3, 1, 1), (5, 2, 3, 4)])
def test_odd_shapes_and_single_step(shape):
    p = LIFParams(
        mps_mode="charge", reset="soft", detach_reset=False, surrogate=Surrogate("sigmoid")
    )
    x, w = _inputs(shape, torch.float64, seed=2)
    ref = _run(lif_multistep, x, "tensor", p, w)
    got = _run(lif_multistep_fused, x, "tensor", p, w)
    assert got[0].shape == shape
    assert torch.equal(got[0], ref[0])
    torch.testing.assert_close(got[1], ref[1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got[2], ref[2], rtol=1e-11, atol=1e-12)


def test_hand_computed_trajectory_and_gradients():
    """One neuron, tau=2 (beta=0.5), theta=1, alpha=0.5, hard reset, smoothed reset state,
    rectangular surrogate (w=1), I = (1.2, 0.6, 0.9), L = S(3):
      t1: H=1.2, S=1, U=0, M=0;  t2: H=0.6, S=0, U=0.6, M=0.3;  t3: H=1.05, S=1, U=0, M=0.15
    backward: dI3 = g(0.05) = 1;  gM2 = beta*1 = 0.5;  dI2 = (1-alpha)*gM2*(1-S2) = 0.25;
      gM1 = alpha*gM2 + beta*dI2 = 0.375;  dI1 = (1-alpha)*gM1*(1-S1) = 0 (reset detached);
      dL/dalpha = sum_t gM(t)*(M(t-1) - U(t)) = 0 + 0.5*(0 - 0.6) + 0.375*(0 - 0) = -0.3."""
    p = LIFParams(tau=2.0, theta=1.0)
    for fn in (lif_multistep_fused, lif_multistep):
        x = torch.tensor([[1.2], [0.6], [0.9]], dtype=torch.float64, requires_grad=True)
        a = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
        s = fn(x, a, p)
        s[2].sum().backward()
        assert s.flatten().tolist() == [1.0, 0.0, 1.0]
        torch.testing.assert_close(
            x.grad.flatten(), torch.tensor([0.0, 0.25, 1.0], dtype=torch.float64)
        )
        torch.testing.assert_close(a.grad, torch.tensor(-0.3, dtype=torch.float64))


def test_layer_default_is_fused_and_learns_alpha():
    """LIF's default kernel gives the reference's spikes and the gradient of the logit a."""
    torch.manual_seed(3)
    x = torch.randn(6, 4, 33) + 0.7
    fused, ref = LIF(alpha_init=0.4), LIF(alpha_init=0.4, kernel="reference")
    assert fused.kernel == "auto" and unavailable_reason(x) is None
    outs = []
    for layer in (fused, ref):
        xx = x.clone().requires_grad_()
        y = layer(xx)
        (y * torch.linspace(-1, 1, 33)).sum().backward()
        outs.append((y, xx.grad, layer.a.grad))
    assert torch.equal(outs[0][0], outs[1][0])
    torch.testing.assert_close(outs[0][1], outs[1][1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(outs[0][2], outs[1][2], rtol=1e-4, atol=1e-4)
    assert float(outs[0][2].abs()) > 0


def test_non_contiguous_input_and_no_grad():
    p = LIFParams()
    x = (torch.randn(5, 7, 3, dtype=torch.float64) + 0.8).transpose(1, 2)  # (5, 3, 7) strided
    with torch.no_grad():
        assert torch.equal(lif_multistep_fused(x, 0.2, p), lif_multistep(x, 0.2, p))
    a = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)  # x without grad
    lif_multistep_fused(x, a, p).sum().backward()
    a_ref = a.detach().clone().requires_grad_()
    lif_multistep(x, a_ref, p).sum().backward()
    torch.testing.assert_close(a.grad, a_ref.grad, rtol=1e-12, atol=1e-12)


def test_fallback_notice_and_forced_kernels(monkeypatch):
    x = torch.rand(3, 2, 4, dtype=torch.bfloat16) * 2
    assert "bfloat16" in unavailable_reason(x)
    with pytest.warns(RuntimeWarning, match="reference PyTorch path"):
        y = LIF()(x)
    assert torch.equal(y, LIF(kernel="reference")(x))
    with pytest.raises(ValueError, match="kernel='fused'.*bfloat16"):
        LIF(kernel="fused")(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LIF(kernel="reference")(x)  # forced reference: silent
    with pytest.raises(ValueError, match="kernel must be one of"):
        LIF(kernel="triton")
    with pytest.raises(ValueError, match="fused LIF kernel"):
        lif_multistep_fused(x, None, LIFParams())
    # without numba: the notice names it, and the reference path runs
    monkeypatch.setattr(fused_mod, "numba_available", lambda: False)
    x32 = torch.rand(3, 2, 4)
    assert "numba" in unavailable_reason(x32)
    with pytest.warns(RuntimeWarning, match="numba is not installed"):
        assert torch.equal(LIF()(x32), LIF(kernel="reference")(x32))


def test_bad_input_is_refused_by_name():
    with pytest.raises(ValueError, match="T, B"):
        lif_multistep_fused(torch.zeros(4), None, LIFParams())
    with pytest.raises(ValueError, match="alpha"):
        lif_multistep_fused(torch.zeros(2, 3), 1.5, LIFParams())
