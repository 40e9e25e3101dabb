"""Guidance loss and baselines against hand-computed values."""

import math

import pytest
import torch
import torch.nn.functional as F

from neurodeploy.training.losses import (
    GuidanceConfig,
    SNNLoss,
    ensemble_ce,
    guidance_loss,
    tet_loss,
)

# z0 -> p0 = (.5, .5); z1 -> p1 = (.75, .25) at tau_kd = 1
Z = torch.tensor([[[0.0, 0.0]], [[math.log(3.0), 0.0]]], dtype=torch.float64)
KL_P1_P0 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)  # 0.130812...
KL_P0_P1 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(2.0)  # 0.143841...


@pytest.mark.parametrize(
    ("direction", "want"),
    [
        ("later-teaches-earlier", KL_P1_P0),
        ("earlier-teaches-later", KL_P0_P1),
        ("both", (KL_P1_P0 + KL_P0_P1) / 2),
    ],
)
def test_direction_values(direction, want):
    got = guidance_loss(Z, GuidanceConfig(lam=1.0, tau_kd=1.0, direction=direction))
    assert math.isclose(float(got), want, rel_tol=1e-9)
    got2 = guidance_loss(Z, GuidanceConfig(lam=0.5, tau_kd=1.0, direction=direction))
    assert math.isclose(float(got2), want / 2, rel_tol=1e-9)


def test_temperature_scaling():
    # at tau_kd = 2 the logits are halved and the KL multiplied by 4
    p0, p1 = torch.softmax(Z[0, 0] / 2, -1), torch.softmax(Z[1, 0] / 2, -1)
    want = 4 * float((p1 * (p1 / p0).log()).sum())
    got = guidance_loss(Z, GuidanceConfig(tau_kd=2.0, direction="later-teaches-earlier"))
    assert math.isclose(float(got), want, rel_tol=1e-9)


def test_zero_for_identical_outputs():
    z = torch.randn(1, 8, 10).repeat(5, 1, 1)
    for d in ("later-teaches-earlier", "earlier-teaches-later", "both"):
        assert abs(float(guidance_loss(z, GuidanceConfig(direction=d)))) < 1e-6
    assert float(guidance_loss(torch.randn(1, 4, 3), GuidanceConfig())) == 0.0  # T = 1


@pytest.mark.parametrize(
    ("direction", "teacher_idx"), [("later-teaches-earlier", 1), ("earlier-teaches-later", 0)]
)
def test_teacher_gets_no_gradient(direction, teacher_idx):
    z = torch.randn(2, 6, 5, requires_grad=True)
    guidance_loss(z, GuidanceConfig(direction=direction)).backward()
    assert torch.count_nonzero(z.grad[teacher_idx]) == 0
    assert torch.count_nonzero(z.grad[1 - teacher_idx]) > 0


def test_both_directions_reach_every_timestep():
    z = torch.randn(3, 4, 5, requires_grad=True)
    guidance_loss(z, GuidanceConfig(direction="both")).backward()
    assert all(torch.count_nonzero(z.grad[t]) > 0 for t in range(3))
    z.grad = None
    guidance_loss(
        z, GuidanceConfig(direction="later-teaches-earlier")
    ).backward()  # the last step only teaches
    assert torch.count_nonzero(z.grad[2]) == 0 and torch.count_nonzero(z.grad[0]) > 0


def test_default_direction_is_both():
    assert GuidanceConfig().direction == "both"


def test_drop():
    z = torch.randn(6, 4, 5)
    assert float(guidance_loss(z, GuidanceConfig(p_drop=1.0))) == 0.0
    full = guidance_loss(z, GuidanceConfig(p_drop=0.0))
    # with p_drop = .5 the loss is a sum over a random subset of the same terms
    terms = [float(guidance_loss(z[t : t + 2], GuidanceConfig())) for t in range(5)]
    assert math.isclose(sum(terms) / 5, float(full), rel_tol=1e-5)
    g = torch.Generator().manual_seed(0)
    keep = (torch.rand(5, generator=torch.Generator().manual_seed(0)) >= 0.5).tolist()
    got = float(guidance_loss(z, GuidanceConfig(p_drop=0.5), generator=g))
    assert 0 < sum(keep) < 5
    assert math.isclose(got, sum(t for t, k in zip(terms, keep) if k) / 5, rel_tol=1e-5)
    kept = [float(guidance_loss(z, GuidanceConfig(p_drop=0.5))) > 0 for _ in range(200)]
    assert 0 < sum(kept) < 200


def test_tet_and_ensemble_ce():
    z = torch.randn(3, 4, 5)
    y = torch.tensor([0, 1, 2, 3])
    assert torch.isclose(
        tet_loss(z, y), torch.stack([F.cross_entropy(z[t], y) for t in range(3)]).mean()
    )
    assert torch.isclose(ensemble_ce(z, y), F.cross_entropy(z.mean(0), y))
    loss, parts = SNNLoss("ce", GuidanceConfig())(z, y)
    assert math.isclose(float(loss), parts["ce"] + parts["guidance"], rel_tol=1e-6)


def test_bad_input():
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="p_drop"):
            GuidanceConfig(p_drop=bad)
    with pytest.raises(ValueError, match="tau_kd"):
        GuidanceConfig(tau_kd=0)
    with pytest.raises(ValueError, match="lam"):
        GuidanceConfig(lam=-1)
    with pytest.raises(ValueError, match="direction"):
        GuidanceConfig(direction="sideways")
    with pytest.raises(ValueError, match="logits"):
        guidance_loss(torch.randn(4, 5), GuidanceConfig())
    with pytest.raises(ValueError, match="loss kind"):
        SNNLoss("mse")
