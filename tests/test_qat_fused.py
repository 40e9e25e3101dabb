"""The fused neuron of quantisation-aware training (neurodeploy.quant.qat_neuron): its forward is
the step-by-step graph's exact spikes bit for bit, and its reverse-time backward gives the same
gradients w.r.t. the current, the bias and the smoothing coefficient (and through them the
model's parameters) as autograd through that graph.

Model-level comparisons run the models in float64, where both gradients agree to float64
rounding: a float32 model casts its float64 proxies' gradients to float32, where a float64
rounding difference now and then flips a float32 rounding (one float32 ulp, carried on by the
float32 backward), so those are compared at float32 resolution."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from neurodeploy.neuron.fixedpoint import DECAY_UNIT, Counters
from neurodeploy.nn.layers import LIF, NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.prepared import STATE_DTYPE, PreparedLayer
from neurodeploy.quant.qat import QATNet, straight_through
from neurodeploy.quant.quantize import quantize_model

RTOL, ATOL = 1e-9, 1e-12
T, B, N = 6, 5, 12


@contextmanager
def _fused(flag: bool) -> Iterator[None]:
    """QATNet._neuron with its ``fused`` default set to ``flag``."""
    orig: Callable[..., torch.Tensor] = QATNet.__dict__["_neuron"].__func__
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(QATNet, "_neuron", staticmethod(functools.partial(orig, fused=flag)))
        yield


def _base_layer() -> Any:
    """The hidden layer of a small MLP's integer program (a real IntLayer to vary)."""
    torch.manual_seed(0)
    m = build_model("mlp", (1, 4, 3), 3, NeuronConfig(mps=True, alpha_init=0.4)).eval()
    prog = quantize_model(m, input_kind="graded", input_range=1.0, input_signed=False)
    return next(l for l in prog.layers if l.neuron is not None)


def _layer(neuron: str, **kw: Any) -> PreparedLayer:
    base = _base_layer()
    rng = np.random.default_rng(3)
    out = int(np.prod(base.out_shape))
    layer = dataclasses.replace(
        base,
        neuron=neuron,
        dv=kw.get("dv", 700),
        du=kw.get("du", 4095),
        vth=200,
        coef=kw.get("coef", 1600 if neuron == "mps" else 0),
        bias_mant=rng.integers(-60, 90, out).astype(np.int32).reshape(base.out_shape),
        bias_exp=6,
        reset_delay=kw.get("reset_delay", False),
        u_init_bias=kw.get("u_init_bias", False),
    )
    return PreparedLayer.build(layer, max_input=1 << 10, device=torch.device("cpu"))


def _grads_of_neuron(
    d: PreparedLayer, lif: LIF, fused: bool, seed: int
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Spikes and the gradients (a, bias, the LIF's alpha logit) of one ``_neuron`` call whose
    current and bias carry float proxies of their own."""
    shape = d.layer.out_shape
    g = torch.Generator().manual_seed(seed)
    a_int = torch.randint(-300, 700, (T, B, *shape), generator=g).to(STATE_DTYPE)
    a_leaf = (a_int + torch.rand(a_int.shape, generator=g, dtype=STATE_DTYPE)).requires_grad_()
    b_leaf = torch.randn(shape, generator=g, dtype=STATE_DTYPE).requires_grad_()
    a = straight_through(a_int, a_leaf * 0.9)
    bias = straight_through(d.bias.expand(shape).clone(), b_leaf * 1e4)
    s = QATNet._neuron(d, lif, a=a, bias=bias, counters=Counters(), grad=True, fused=fused)
    w = torch.randn(s.shape, generator=g, dtype=STATE_DTYPE)
    params = [a_leaf, b_leaf] + [p for p in lif.parameters() if p.requires_grad]
    grads = torch.autograd.grad((s * w).sum() + (s * w).square().sum(), params, allow_unused=True)
    return s.detach(), list(grads)


def _same(x: list[torch.Tensor | None], y: list[torch.Tensor | None]) -> None:
    assert len(x) == len(y)
    for p, q in zip(x, y):
        assert (p is None) == (q is None)
        if p is not None and q is not None:
            assert p.dtype == q.dtype and p.shape == q.shape
            torch.testing.assert_close(p, q, rtol=RTOL, atol=ATOL)


CASES = [
    dict(neuron="mps"),
    dict(neuron="mps", coef=0),
    dict(neuron="mps", learn_alpha=False),
    dict(neuron="mps", reset_delay=True),
    dict(neuron="lif"),
    dict(neuron="lif", reset_delay=True),
    dict(neuron="lif", du=3000),
    dict(neuron="lif", du=1200, u_init_bias=True),
    dict(neuron="lif", du=1200, u_init_bias=True, reset_delay=True),
    dict(neuron="lif", du=4095, u_init_bias=True),
    dict(neuron="lif", coef=2000, du=3500),  # a trained alpha on a LIF layer
]


@pytest.mark.parametrize("surrogate", ["rectangular", "arctan", "sigmoid"])
@pytest.mark.parametrize("detach_reset", [True, False])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_fused_neuron_equals_the_step_graph(
    case: dict[str, Any], detach_reset: bool, surrogate: str
) -> None:
    kw = dict(case)
    neuron = kw.pop("neuron")
    learn = kw.pop("learn_alpha", True)
    d = _layer(neuron, **kw)
    smoothed = d.layer.coef > 0
    lif = LIF(
        mps=smoothed,
        alpha_init=(d.layer.coef / DECAY_UNIT) if smoothed else 0.5,
        learn_alpha=learn,
        surrogate=surrogate,
        surrogate_width=3.0 if surrogate == "rectangular" else None,
        detach_reset=detach_reset,
    ).to(STATE_DTYPE)
    s0, g0 = _grads_of_neuron(d, lif, fused=False, seed=7)
    s1, g1 = _grads_of_neuron(d, lif, fused=True, seed=7)
    assert 0 < float(s0.mean()) < 1, "the layer must fire, and not always"
    assert s0.dtype == s1.dtype and torch.equal(s0, s1)
    assert any(float(x.abs().sum()) > 0 for x in g0 if x is not None)
    _same(g0, g1)


def _dtype(model: torch.nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _model_grads(
    model: torch.nn.Module, qnet: QATNet, x: torch.Tensor, fused: bool, y: torch.Tensor | None
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    model.zero_grad(set_to_none=True)
    with _fused(fused):
        run = qnet.run(x)
    logits = run.logits
    loss = (
        torch.nn.functional.cross_entropy(logits.mean(0).to(_dtype(model)), y)
        if y is not None
        else (logits * torch.linspace(-1, 2, logits.shape[-1], dtype=logits.dtype)).sum()
    )
    loss.backward()
    return logits.detach(), [p.grad for p in model.parameters() if p.requires_grad]


def _fused_equals_unfused(model: torch.nn.Module, qnet: QATNet, x: torch.Tensor) -> None:
    """The same loss bit for bit and the same parameter gradients (:func:`_same`), some of them
    non-zero, with the fused and the step-by-step neuron."""
    l0, g0 = _model_grads(model, qnet, x, False, None)
    l1, g1 = _model_grads(model, qnet, x, True, None)
    assert torch.equal(l0, l1)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in g0)
    _same(g0, g1)


@pytest.mark.parametrize("mps", [True, False])
@pytest.mark.parametrize("name", ["mlp", "vgg"])
def test_qatnet_gradients_fused_equal_unfused(name: str, mps: bool) -> None:
    from tests.test_qat import active_net, inputs, qkw

    model = active_net(name, mps).double()  # float32 parameters: module docstring of the test
    qnet = QATNet(model, **qkw(name)).train()
    x = inputs(name).double()
    _fused_equals_unfused(model, qnet, x)


def test_cubalif_chain_gradients_fused_equal_unfused(tmp_path: Path) -> None:
    """snnTorch Linear -> Synaptic (a CubaLIF whose current starts at -bias) -> Linear -> Leaky."""
    from tests.test_current_start import _cubalif_chain

    model = _cubalif_chain(tmp_path).double()
    qnet = QATNet(model).train()
    assert [l.u_init_bias for l in qnet.program().layers if l.neuron is not None] == [True, False]
    x = torch.from_numpy(
        (np.random.default_rng(1).random((12, 8, 1, 8, 8)) < 0.3).astype(np.float64)
    )
    _fused_equals_unfused(model, qnet, x)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_demo_vgg_training_step_fused_equals_unfused(dtype: torch.dtype) -> None:
    """One batch of the demo's training (event-digits, T = 4, its VGG and batch size): float64
    parameters to 1e-9 of each gradient's scale; float32 ones, as trained, to a few float32 ulp
    (their float64 gradients differ by float64 rounding, which flips a float32 rounding now and
    then, and the float32 backward carries that on)."""
    from neurodeploy.data import load_task
    from neurodeploy.demo import DEMO_CONFIG
    from neurodeploy.quant.quantize import input_settings

    task = load_task("event-digits", T=DEMO_CONFIG.T)
    torch.manual_seed(0)
    model = build_model(
        "vgg", task.input_shape, task.num_classes, DEMO_CONFIG.neuron_config()
    ).eval()
    with torch.no_grad():  # the untrained VGG is silent: BN statistics that make both layers fire
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                assert mod.running_var is not None
                mod.running_var.fill_(0.05)
                mod.bias.fill_(0.1)
    model = model.to(dtype)
    qnet = QATNet(model, **input_settings(task)).train()
    n = DEMO_CONFIG.batch_size
    x = task.encode(task.x_train[:n], DEMO_CONFIG.T).to(dtype)
    y = torch.as_tensor(task.y_train[:n])
    l0, g0 = _model_grads(model, qnet, x, False, y)
    l1, g1 = _model_grads(model, qnet, x, True, y)
    assert torch.equal(l0, l1)
    assert all(g is not None and float(g.abs().sum()) > 0 for g in g0)
    rel = 1e-9 if dtype == torch.float64 else 1e-6
    for p, q in zip(g0, g1):
        assert p is not None and q is not None and p.dtype == q.dtype == dtype
        assert float((p - q).abs().max()) <= rel * float(p.abs().max())


@pytest.mark.parametrize("kind", ["rectangular", "arctan", "sigmoid"])
def test_surrogate_slope_of_any_callable_equals_the_surrogates_own(kind: str) -> None:
    """A surrogate that is not a :class:`Surrogate` (any function with a custom gradient) gets
    its slope from its own backward, equal to the pseudo-derivative the fast path reads."""
    from neurodeploy.neuron.surrogate import Surrogate
    from neurodeploy.quant.qat_neuron import _surrogate_slope

    sur = Surrogate(kind)
    x = torch.linspace(-2, 2, 401, dtype=STATE_DTYPE)
    fast = _surrogate_slope(sur, x, 0.25)
    generic = _surrogate_slope(lambda z: sur(z), x, 0.25)
    assert float(fast.abs().sum()) > 0
    torch.testing.assert_close(fast, generic, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["resnet19", "sew_resnet", "srnn", "two_branch_rec"])
def test_graph_gradients_fused_equal_unfused(name: str) -> None:
    """Graph models (tests/test_qat_graph.py): feed-forward neuron layers fused, recurrent ones
    (a self-edge) still step by step, in one backward pass."""
    from tests.test_qat_graph import case, spikes_in

    model, shape = case(name, True)
    model = model.double()
    qnet = QATNet(model).train()
    x = spikes_in(shape).double()
    _fused_equals_unfused(model, qnet, x)
