"""The neuron core against hand-computed traces and an independent plain LIF."""

import inspect
import math

import pytest
import torch

from neurodeploy.neuron.lif import LIFParams, lif_multistep, lif_trace
from neurodeploy.neuron.surrogate import Surrogate
from neurodeploy.nn.layers import LIF, LIFOptions, NeuronConfig

I = 0.9  # constant input; tau = 2 (beta = 0.5), theta = 1, alpha = 0.5


def run(alpha, reset, mode, steps=4, dtype=torch.float64):
    x = torch.full((steps, 1, 1), I, dtype=dtype)
    return lif_trace(x, alpha, LIFParams(tau=2.0, theta=1.0, reset=reset, mps_mode=mode))


# Hand-computed (see the derivations in the comments).
CASES = {
    # reset reading, hard: H = .5 M + .9; U = H(1-S); M = .5 M + .5 U
    # t1 H=.9 U=.9 M=.45 | t2 H=1.125 S U=0 M=.225 | t3 H=1.0125 S U=0 M=.1125
    # t4 H=.95625 U=.95625 M=.534375
    ("reset", "hard"): dict(
        s=[0, 1, 1, 0],
        h=[0.9, 1.125, 1.0125, 0.95625],
        u=[0.9, 0, 0, 0.95625],
        m=[0.45, 0.225, 0.1125, 0.534375],
        start=[0, 0.45, 0.225, 0.1125],
    ),
    # reset reading, soft: U = H - S
    ("reset", "soft"): dict(
        s=[0, 1, 1, 0],
        h=[0.9, 1.125, 1.04375, 0.9828125],
        u=[0.9, 0.125, 0.04375, 0.9828125],
        m=[0.45, 0.2875, 0.165625, 0.57421875],
        start=[0, 0.45, 0.2875, 0.165625],
    ),
    # charge reading, hard: H = .5 U + .9; M = .5 M + .5 H; S = [M > 1]; U = M(1-S)
    # t1 H=.9 M=.45 U=.45 | t2 H=1.125 M=.7875 U=.7875 | t3 H=1.29375 M=1.040625 S U=0 | t4 H=.9 M=.9703125
    ("charge", "hard"): dict(
        s=[0, 0, 1, 0],
        h=[0.9, 1.125, 1.29375, 0.9],
        u=[0.45, 0.7875, 0, 0.9703125],
        m=[0.45, 0.7875, 1.040625, 0.9703125],
        start=[0, 0.45, 0.7875, 0],
    ),
    ("charge", "soft"): dict(
        s=[0, 0, 1, 0],
        h=[0.9, 1.125, 1.29375, 0.9203125],
        u=[0.45, 0.7875, 0.040625, 0.98046875],
        m=[0.45, 0.7875, 1.040625, 0.98046875],
        start=[0, 0.45, 0.7875, 0.040625],
    ),
}


@pytest.mark.parametrize(("mode", "reset"), list(CASES))
def test_hand_computed_trace(mode, reset):
    tr = run(0.5, reset, mode)
    want = CASES[(mode, reset)]
    got = {"s": tr.spikes, "h": tr.h, "u": tr.u, "m": tr.m, "start": tr.start}
    for k, v in want.items():
        assert torch.allclose(got[k].flatten(), torch.tensor(v, dtype=torch.float64), atol=1e-12), (
            k,
            got[k].flatten(),
        )


def test_vanilla_trace_by_hand():
    # alpha = 0: t1 H=.9 | t2 H=1.35 spike, U=0 | t3 H=.9 | t4 H=1.35 spike
    for mode in ("reset", "charge"):
        tr = run(0.0, "hard", mode)
        assert tr.spikes.flatten().tolist() == [0, 1, 0, 1]
        assert torch.allclose(
            tr.h.flatten(), torch.tensor([0.9, 1.35, 0.9, 1.35], dtype=torch.float64)
        )


def plain_lif(x, beta, theta, soft):
    """An independent plain LIF: v = beta v + x; spike if v > theta; reset."""
    v = torch.zeros_like(x[0])
    out = []
    for xt in x:
        v = beta * v + xt
        s = (v > theta).to(x.dtype)
        v = v - theta * s if soft else v * (1 - s)
        out.append(s)
    return torch.stack(out)


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("mode", ["reset", "charge"])
@pytest.mark.parametrize(("tau", "theta"), [(2.0, 1.0), (4.0, 0.5), (1.5, 2.0)])
def test_alpha_zero_is_plain_lif(reset, mode, tau, theta):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(12, 5, 7, generator=g, dtype=torch.float64) * 2 * theta
    want = plain_lif(x, 1 - 1 / tau, theta, reset == "soft")
    p = LIFParams(tau=tau, theta=theta, reset=reset, mps_mode=mode)
    assert torch.equal(lif_multistep(x, 0.0, p), want)  # through the smoothing formula
    assert torch.equal(lif_multistep(x, None, p), want)  # vanilla fast path
    layer = LIF(tau=tau, theta=theta, reset=reset, mps=False, mps_mode=mode).double()
    assert torch.equal(layer(x), want)
    assert want.sum() > 0 and (1 - want).sum() > 0  # the input exercises both spike and silence


def test_mps_changes_dynamics_and_alpha_is_sigmoid():
    layer = LIF(alpha_init=0.8)
    assert math.isclose(layer.alpha_value(), 0.8, rel_tol=1e-6)
    assert isinstance(layer.a, torch.nn.Parameter)
    frozen = LIF(alpha_init=0.8, learn_alpha=False)
    assert not any(p is frozen.a for p in frozen.parameters())
    x = torch.full((4, 1, 1), I)
    assert not torch.equal(LIF(alpha_init=0.5)(x), LIF(mps=False)(x))


def test_smoothing_carries_gradient_past_a_detached_reset():
    """Hard reset at t=2 with a detached spike cuts vanilla's path from I(1) to H(3);
    the smoothing path alpha * M keeps it."""
    grads = {}
    for name, alpha in (("vanilla", None), ("mps", 0.5)):
        x = torch.full((3, 1, 1), I, dtype=torch.float64, requires_grad=True)
        tr = lif_trace(x, alpha, LIFParams(detach_reset=True))
        assert tr.spikes.flatten().tolist()[1] == 1  # spike (and reset) at t=2
        tr.h[2].sum().backward()
        grads[name] = x.grad.flatten()
    assert grads["vanilla"][0] == 0
    # H3 = .5 M2 + I3, M2 = .5 M1 + .5 U2, M1 = .5 U1 = .5 I1  ->  dH3/dI1 = .5 * .5 * .5
    assert torch.isclose(grads["mps"][0], torch.tensor(0.125, dtype=torch.float64))


def test_alpha_receives_gradient():
    layer = LIF(alpha_init=0.5)
    x = torch.rand(6, 4, 10) * 2
    layer(x).sum().backward()
    assert layer.a.grad is not None and layer.a.grad != 0


def test_reset_not_detached_passes_spike_gradient():
    x = torch.full((2, 1, 1), 1.2, dtype=torch.float64, requires_grad=True)
    for detach, expect_zero in ((True, True), (False, False)):
        x.grad = None
        # With a rectangular surrogate, H=1.2 at t=1 is inside the window |H-1| < .5.
        tr = lif_trace(x, None, LIFParams(detach_reset=detach))
        tr.u[0].sum().backward()
        # U = H (1 - S): dU/dH = (1 - S) - H dS/dH; only the second term depends on detaching
        assert (x.grad[0].item() == 0) == expect_zero


@pytest.mark.parametrize(
    ("kind", "deriv_at_0"), [("rectangular", 1.0), ("arctan", 1.0), ("sigmoid", 1.0)]
)
def test_surrogates(kind, deriv_at_0):
    x = torch.tensor([-2.0, -0.1, 0.0, 0.1, 2.0], requires_grad=True)
    s = Surrogate(kind)(x)
    assert s.tolist() == [0, 0, 0, 1, 1]  # strict threshold
    s.sum().backward()
    assert math.isclose(x.grad[2].item(), deriv_at_0, rel_tol=1e-6)
    assert x.grad[0] < x.grad[1]
    # each pseudo-derivative integrates to ~1
    grid = torch.linspace(-50, 50, 200001, requires_grad=True)
    Surrogate(kind)(grid).sum().backward()
    assert abs(float(grid.grad.sum()) * float((grid[1] - grid[0]).detach()) - 1) < 0.02


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_any_dtype_and_device(dtype):
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for dev in devices:
        layer = LIF().to(dev)
        x = torch.rand(3, 2, 5, device=dev, dtype=dtype) * 2
        y = layer(x)
        assert y.dtype == dtype and y.device.type == dev and y.shape == x.shape


def test_bad_input_errors():
    with pytest.raises(ValueError, match="tau"):
        LIF(tau=1.0)
    with pytest.raises(ValueError, match="tau"):
        LIFParams(tau=0.5)
    with pytest.raises(ValueError, match="theta"):
        LIF(theta=0.0)
    with pytest.raises(ValueError, match="reset"):
        LIF(reset="subtract")
    with pytest.raises(ValueError, match="mps_mode"):
        LIF(mps_mode="both")
    with pytest.raises(ValueError, match="alpha_init"):
        LIF(alpha_init=1.0)
    with pytest.raises(ValueError, match="surrogate"):
        LIF(surrogate="triangle")
    with pytest.raises(ValueError, match=r"\(T, B, \.\.\.\)"):
        LIF()(torch.rand(5))
    with pytest.raises(ValueError, match="T = 0"):
        LIF()(torch.rand(0, 3))
    with pytest.raises(ValueError, match="alpha"):
        lif_multistep(torch.rand(2, 3), 1.5, LIFParams())
    layer = LIF()
    with torch.no_grad():
        layer.a.fill_(float("nan"))
    with pytest.raises(ValueError, match="alpha"):
        layer(torch.rand(2, 3))


def test_neuron_config_options_are_the_lif_keyword_arguments():
    """LIFOptions (NeuronConfig's typed keywords) names exactly LIF's parameters, and build()
    passes them on."""
    params = set(inspect.signature(LIF).parameters)
    assert LIFOptions.__optional_keys__ == params and not LIFOptions.__required_keys__
    layer = NeuronConfig(tau=4.0, theta=0.75, mps=False, reset="soft").build()
    assert (layer.params.tau, layer.params.theta, layer.params.reset) == (4.0, 0.75, "soft")
    assert layer.a is None
