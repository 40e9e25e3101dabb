"""Quantisation-aware training through an LI readout (neurodeploy.quant.qat): the forward values
are the reference simulator's integers bit for bit (the LI compartment's membrane v, read every
step), gradients come from the model's own float LI, and a few optimiser steps learn."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

from neurodeploy.nn.layers import LI
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.qat import QATNet, integer_accuracy
from neurodeploy.targets.reference import ReferenceTarget

N_IN, N_HID, N_OUT = 10, 16, 3


def _cuba_li_graph(seed: int = 0) -> nir.NIRGraph:
    """Affine -> CubaLIF -> Affine -> LI, dt 1e-3: tau_syn 2 ms, tau_mem 4 ms, LI tau 5 ms."""
    rng = np.random.default_rng(seed)
    nodes = {
        "input": nir.Input(input_type=np.array([N_IN])),
        "fc1": nir.Affine(
            weight=rng.uniform(0.0, 0.6, (N_HID, N_IN)).astype(np.float32),
            bias=np.zeros(N_HID, np.float32),
        ),
        "cuba": nir.CubaLIF(
            tau_syn=np.full(N_HID, 2e-3),
            tau_mem=np.full(N_HID, 4e-3),
            r=np.full(N_HID, 4.0),
            v_leak=np.zeros(N_HID),
            v_threshold=np.full(N_HID, 1.0),
            w_in=np.full(N_HID, 2.0),
        ),
        "fc2": nir.Affine(
            weight=rng.normal(0.0, 0.5, (N_OUT, N_HID)).astype(np.float32),
            bias=rng.uniform(-0.1, 0.1, N_OUT).astype(np.float32),
        ),
        "li": nir.LI(tau=np.full(N_OUT, 5e-3), r=np.full(N_OUT, 5.0), v_leak=np.zeros(N_OUT)),
        "output": nir.Output(output_type=np.array([N_OUT])),
    }
    edges = [("input", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _model(seed: int = 0) -> SpikingNet:
    from neurodeploy.converters.nir_import import nir_to_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nir_to_model(_cuba_li_graph(seed), dt=1e-3).eval()
    assert isinstance(model.body[-1], LI)
    return model


def _spikes(steps: int, batch: int, seed: int) -> torch.Tensor:
    """Binary input, each sample and channel at its own rate in [0, 0.6)."""
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(1, batch, N_IN, generator=g) * 0.6
    return (torch.rand(steps, batch, N_IN, generator=g) < rate).float()


@pytest.mark.parametrize("training", [False, True])
def test_forward_equals_the_reference_bit_for_bit(training: bool) -> None:
    """Both programs (eval: quantize_model's; train: quantize_stages' of the current weights):
    the LI membrane per step and the CubaLIF spikes equal the reference simulator's."""
    qnet = QATNet(_model()).train(training)
    x = _spikes(25, 8, seed=1)
    run = qnet.run(x)
    prog = run.program
    last = prog.layers[-1]
    assert last.li_readout and prog.layers[0].du != 4095  # an LI readout behind a CubaLIF
    ref = ReferenceTarget(prog, device="cpu").run(prog.quantize_input(x.numpy())[0])
    assert ref.output is not None
    assert len(np.unique(ref.output)) > 20 and np.abs(ref.output).max() > 0
    assert np.array_equal(run.output_int.numpy().astype(np.int64), ref.output)
    for s_qat, s_ref in zip(run.spikes, ref.spikes, strict=True):
        assert s_ref.any() and np.array_equal(s_qat.detach().numpy().astype(np.uint8), s_ref)
    # logits are v in float units (v / v_scale), exactly
    assert torch.equal(run.logits.detach(), run.output_int / last.v_scale)
    assert run.logits.detach().sum(0).argmax(-1).tolist() == ref.predictions().tolist()


def test_gradients_follow_the_float_li() -> None:
    """Every weight and bias gets a finite, nonzero gradient; the readout's gradient is that of
    the float LI proxy: d sum_t logits / d b_c = sum_t sum_k beta^k gain (the LI's impulse
    response to a constant; the NIR LI's input gain r dt / tau is 1, so no Scale)."""
    model = _model()
    qnet = QATNet(model).train()
    x = _spikes(12, 4, seed=2)
    run = qnet.run(x)
    run.logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    li = model.body[-1]
    assert isinstance(li, LI)
    bias = [p for n, p in model.named_parameters() if n.endswith("bias")][-1]
    assert bias.shape == (N_OUT,)
    beta = 1.0 - 1.0 / li.tau
    steps = x.shape[0]
    expected = x.shape[1] * sum(sum(beta**k for k in range(t + 1)) for t in range(steps))
    assert torch.allclose(bias.grad, torch.full((N_OUT,), expected, dtype=bias.grad.dtype))


def test_a_few_steps_learn_a_tiny_problem() -> None:
    """Label = which third of the input channels fires most: cross-entropy on the integer
    program's logits (summed over time) falls within a few Adam steps, and so does the integer
    program's error."""
    model = _model(seed=3)
    qnet = QATNet(model).train()
    x = _spikes(15, 48, seed=4)
    y = x.sum(0)[:, : 3 * (N_IN // 3)].reshape(48, 3, -1).sum(-1).argmax(-1)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    acc0 = integer_accuracy(qnet, x, y)
    for _ in range(12):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(qnet(x).mean(0), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    acc1 = integer_accuracy(qnet, x, y)
    print(
        f"\nQAT through an LI readout: loss {losses[0]:.3f} -> {losses[-1]:.3f}, "
        f"integer accuracy {acc0:.3f} -> {acc1:.3f}"
    )
    assert min(losses[-3:]) < 0.8 * losses[0]
    assert acc1 > acc0
