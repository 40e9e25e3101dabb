"""Initial-state statistics, gradient flow and reduced-timestep inference, checked by hand."""

import math

import pytest
import torch
from torch import nn

from neurodeploy.data import load_task
from neurodeploy.measure.analysis import accuracy_by_timesteps, gradient_flow, initial_state_stats
from neurodeploy.nn.layers import LIF, PerStep
from neurodeploy.nn.net import SpikingNet
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import evaluate, train


def one_layer(**lif):
    body = nn.Sequential(PerStep(nn.Identity()), LIF(**lif), PerStep(nn.Linear(2, 2)))
    return SpikingNet("hand", body, (2,), 2).double()


# two samples x two neurons, same input at both timesteps
X = torch.tensor([[0.9, 0.3], [1.2, -0.4]], dtype=torch.float64).expand(2, 2, 2)


@pytest.mark.parametrize(
    ("lif", "mean2", "std2"),
    [
        # reset reading, alpha .5: U(1) = [.9, .3, 0 (1.2 spiked), -.4], start(2) = M(1) = .5 U(1)
        (dict(alpha_init=0.5, learn_alpha=False), 0.1, math.sqrt(0.225 / 4)),
        # vanilla: start(2) = U(1) = [.9, .3, 0, -.4]
        (dict(mps=False), 0.2, math.sqrt(0.9 / 4)),
        # charge reading: M(1) = .5 H(1) = [.45, .15, .6, -.2], nothing fires, start(2) = U(1) = M(1)
        (dict(alpha_init=0.5, learn_alpha=False, mps_mode="charge"), 0.25, math.sqrt(0.375 / 4)),
    ],
)
def test_initial_state_stats_by_hand(lif, mean2, std2):
    st = initial_state_stats(one_layer(**lif), X)
    (s,) = st.values()
    assert s["mean"][0] == 0 and s["std"][0] == 0  # every first timestep starts from 0
    assert math.isclose(s["mean"][1], mean2, abs_tol=1e-12)
    assert math.isclose(s["std"][1], std2, abs_tol=1e-12)


def test_gradient_flow_last_output_follows_the_temporal_path():
    """Constant input .9: no spike at t=1, spike (detached hard reset) at t=2. Vanilla's state
    after t=2 is 0, so CE(z_3) gets no gradient to I(1); MPS's smoothed state carries it."""
    x = torch.full(
        (3, 1, 2), 0.9, dtype=torch.float64, requires_grad=True
    )  # Identity has no weights
    y = torch.tensor([0])
    torch.manual_seed(0)
    van = one_layer(mps=False)
    mps = one_layer(alpha_init=0.5, learn_alpha=False)
    mps.body[2].load_state_dict(van.body[2].state_dict())
    g_van = next(iter(gradient_flow(van, x, y, last_only=True).values()))
    g_mps = next(iter(gradient_flow(mps, x, y, last_only=True).values()))
    assert g_van[0] == 0 and g_van[2] > 0
    assert g_mps[0] > 0
    g_all = next(iter(gradient_flow(van, x, y).values()))
    assert g_all[0] > 0  # through its own output at t=1
    assert all(p.grad is None for p in van.parameters())  # leaves no gradients behind


def test_reduced_timestep_accuracy_equals_running_fewer_steps():
    res = train(
        TrainConfig(task="digits", model="mlp", T=4, epochs=1, arch={"hidden": [32]}),
        progress=False,
    )
    task = load_task("digits", T=4)
    by_t = accuracy_by_timesteps(res.model, task, T=4, steps=[1, 2, 3, 4])
    for t in (1, 2, 4):
        assert by_t[t] == evaluate(res.model, task, T=t)
    with pytest.raises(ValueError, match="steps"):
        accuracy_by_timesteps(res.model, task, T=4, steps=[5])
