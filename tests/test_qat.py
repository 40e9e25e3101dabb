"""Quantisation-aware forward: bit for bit the reference simulator's integers, with gradients."""

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.qat import QATNet, programs_equal, straight_through
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.targets.reference import ReferenceTarget

# (model, input shape, input kind, signed input, architecture): every kind the quantiser maps
KINDS = {
    "mlp": ((1, 6, 6), "graded", False, {}),
    "vgg": ((2, 8, 8), "binary", False, dict(channels=(8, "P", 8, "P"))),
    "conv1d": ((1, 16), "graded", False, {}),
    "pointnet": ((3, 16), "graded", True, dict(channels=(8, 16, 16), hidden=16)),
}


def active_net(name, mps, seed=0, theta=1.0):
    """A random zoo model whose every layer fires (BN statistics chosen to amplify)."""
    shape, _, _, arch = KINDS[name]
    torch.manual_seed(seed)
    m = build_model(
        name, shape, 4, NeuronConfig(mps=mps, alpha_init=0.4, theta=theta), **arch
    ).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.05, 0.05)
                mod.running_var.uniform_(0.002, 0.01)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.2, 0.4)
    return m


def inputs(name, batch=6, seed=1):
    shape, kind, signed, _ = KINDS[name]
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, batch, *shape, generator=g)
    if kind == "binary":
        return (x > 0.7).float()
    return x * 2 - 1 if signed else x


def qkw(name):
    _, kind, signed, _ = KINDS[name]
    return dict(input_kind=kind, input_range=1.0, input_signed=signed)


def test_straight_through_keeps_the_value_and_passes_the_proxy_gradient():
    x = torch.tensor([0.3, -1.7], requires_grad=True)
    y = straight_through(torch.tensor([7.0, -2.0]), 3 * x)
    assert y.tolist() == [7.0, -2.0]
    (y * torch.tensor([1.0, 2.0])).sum().backward()
    assert x.grad.tolist() == [3.0, 6.0]
    with pytest.raises(ValueError, match="shape"):
        straight_through(torch.zeros(2), torch.zeros(3))


@pytest.mark.parametrize("mps", [True, False])
@pytest.mark.parametrize("name", list(KINDS))
def test_spikes_equal_reference_bit_for_bit(name, mps):
    m = active_net(name, mps)
    x = inputs(name)
    prog = quantize_model(m, **qkw(name))
    assert all((l.neuron == "mps") == mps for l in prog.layers if l.neuron)
    ref = ReferenceTarget(prog, device="cpu").run(prog.quantize_input(x.numpy())[0])
    assert all(
        s.any() for s in ref.spikes
    ), "every layer must fire for the comparison to mean something"
    q = QATNet(m, **qkw(name))
    for train_mode in (
        False,
        True,
    ):  # eval: quantize_model's program (cached); train: rebuilt every pass
        q.train(train_mode)
        run = q.run(x)
        for k, (a, b) in enumerate(zip(ref.spikes, run.spikes)):
            assert np.array_equal(
                a, b.detach().numpy().astype(np.uint8)
            ), f"layer {k}, train={train_mode}"
        assert np.array_equal(ref.output, run.output_int.numpy().astype(np.int64))
        assert [c.saturations for c in run.counters] == [c.saturations for c in ref.counters]
        assert [c.wraps for c in run.counters] == [c.wraps for c in ref.counters]
        # logits are the integer readout in float units: same ranking, scale a_scale
        assert torch.allclose(
            run.logits.detach() * prog.layers[-1].a_scale, run.output_int, rtol=0, atol=1e-6
        )


def test_overflow_is_counted_like_the_reference():
    m = active_net(
        "mlp", True, theta=0.002
    )  # inputs of hundreds of thresholds: beyond the 3-bit headroom
    with torch.no_grad():  # no bias, so that the exponent is set by the threshold alone
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.bias.zero_()
                mod.running_mean.zero_()
    x = inputs("mlp")
    q = QATNet(m, **qkw("mlp")).eval()
    run = q.run(x)
    ref = ReferenceTarget(run.program, device="cpu").run(run.program.quantize_input(x.numpy())[0])
    assert run.counters[0].saturations > 0
    assert [c.saturations for c in run.counters] == [c.saturations for c in ref.counters]
    for a, b in zip(ref.spikes, run.spikes):
        assert np.array_equal(a, b.detach().numpy().astype(np.uint8))


@pytest.fixture(scope="module")
def trained_digits():
    from neurodeploy.data import load_task
    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.loop import train

    torch.manual_seed(0)
    res = train(TrainConfig(task="digits", T=4, epochs=2, seed=0), progress=False)
    return res.model.eval(), load_task("digits", T=4)


def test_trained_network_bit_exact_and_gradients(trained_digits):
    from neurodeploy.quant.quantize import input_settings

    model, task = trained_digits
    x = task.encode(task.x_test[:64], 4)
    y = task.y_test[:64]
    q = QATNet(model, **input_settings(task))
    prog = quantize_model(model, **input_settings(task))
    assert programs_equal(q.program_exact(), prog)
    q.train()
    assert programs_equal(q.program(), prog)  # the training path builds the same program
    run = q.run(x)
    ref = ReferenceTarget(prog, device="cpu").run(prog.quantize_input(x.numpy())[0])
    for a, b in zip(ref.spikes, run.spikes):
        assert np.array_equal(a, b.detach().numpy().astype(np.uint8))
    assert np.array_equal(ref.output, run.output_int.numpy().astype(np.int64))
    assert (ref.predictions() == run.logits.detach().sum(0).argmax(-1).numpy()).all()
    loss = torch.nn.functional.cross_entropy(run.logits.mean(0).float(), y)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    for n, g in grads.items():  # every weight, BN affine and smoothing logit receives a gradient
        assert g.abs().sum() > 0, n
    model.zero_grad()
