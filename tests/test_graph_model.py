"""Graph models (neurodeploy/nn/graph.py): GraphBody sums and fan-out, Recurrent's one-step
delay by hand, and to_graph lowering our residual/recurrent zoo models with shared parameters and
equal outputs."""

import pytest
import torch
from torch import nn

from neurodeploy.nn.graph import INPUT, GraphBody, Recurrent, fold_graph, to_graph
from neurodeploy.nn.layers import LI, LIF, NeuronConfig, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.zoo import build_model

SMALL = {
    "resnet19": ((2, 8, 8), {"stem": 4, "widths": (4, 8), "blocks": (2, 1), "hidden": (6,)}),
    "sew_resnet": ((2, 8, 8), {"stem": 4, "widths": (4, 8), "blocks": (2, 2)}),
    "srnn": ((6,), {"hidden": (7, 5)}),
}


def _small(name: str, mps: bool, seed: int = 0) -> SpikingNet:
    shape, kw = SMALL[name]
    torch.manual_seed(seed)
    neuron = NeuronConfig(mps=mps, tau=3.0, theta=0.5, alpha_init=0.3)
    m = build_model(name, shape, 4, neuron, **kw)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_var.uniform_(0.3, 1.0)
                mod.weight.uniform_(1.0, 2.0)
            if isinstance(mod, nn.Linear):  # default init leaves small hidden layers silent
                mod.weight.mul_(3.0)
    return m.eval()


def test_two_branch_sum_and_fan_out_by_hand():
    """y = LIF(2x + 3x) with x fanned out to two Scales; tau=inf (IF), theta=4: by hand."""
    lif = LIF(tau=float("inf"), theta=4.0, mps=False, kernel="reference")
    body = GraphBody(
        {"a": Scale(2.0), "b": Scale(3.0), "n": lif},
        {"a": [INPUT], "b": [INPUT], "n": ["a", "b"]},
        "n",
    )
    x = torch.tensor([0.5, 0.5, 0.0, 1.0]).reshape(4, 1, 1)
    # I = 5x = 2.5, 2.5, 0, 5 -> V = 2.5, 5 (>4: spike, reset 0), 0, 5 (spike)
    assert body(x).flatten().tolist() == [0.0, 1.0, 0.0, 1.0]


def test_three_neuron_recurrent_loop_by_hand():
    """Three IF neurons in a ring (0 -> 1 -> 2 -> 0, weight 1), theta 0.5, one input pulse into
    neuron 0 at t=0: the spike travels one neuron per step (one-step recurrent delay)."""
    rec = nn.Linear(3, 3, bias=False)
    with torch.no_grad():
        rec.weight.copy_(torch.tensor([[0.0, 0, 1], [1, 0, 0], [0, 1, 0]]))
    layer = Recurrent(nn.Sequential(LIF(tau=float("inf"), theta=0.5, mps=False)), rec)
    x = torch.zeros(5, 1, 3)
    x[0, 0, 0] = 1.0
    s = layer(x)[:, 0]
    want = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]])
    assert torch.equal(s, want)


def test_recurrent_cuba_neuron_steps_li_scale_lif():
    """[LI(tau=2), Scale(2), IF(theta=1.5)] with a self-loop of weight -1: by hand.
    t0: I=1, LI 1, x2 = 2 > 1.5 spike; t1: I = 0 + (-1) = -1, LI 0.5 - 1 = -0.5, -1: no spike."""
    rec = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        rec.weight.fill_(-1.0)
    neuron = nn.Sequential(LI(2.0), Scale(2.0), LIF(tau=float("inf"), theta=1.5, mps=False))
    s = Recurrent(neuron, rec)(torch.tensor([1.0, 0.0]).reshape(2, 1, 1))
    assert s.flatten().tolist() == [1.0, 0.0]


def test_graph_refuses_bad_order_by_name():
    with pytest.raises(ValueError, match="'a'.*'b'"):
        GraphBody({"a": Scale(1.0), "b": Scale(1.0)}, {"a": ["b"], "b": [INPUT]}, "b")
    with pytest.raises(ValueError, match="neuron\\[0\\] is Linear"):
        Recurrent(nn.Sequential(nn.Linear(2, 2)), nn.Linear(2, 2))


@pytest.mark.parametrize("mps", [False, True])
@pytest.mark.parametrize("name", sorted(SMALL))
def test_to_graph_same_outputs_shared_parameters(name, mps):
    model = _small(name, mps)
    graph = to_graph(model)
    assert isinstance(graph.body, GraphBody)
    ids = {id(p) for p in model.parameters()}
    assert {id(p) for p in graph.parameters()} == ids  # shared, not copied
    assert sum(1 for _ in graph.parameters()) == len(ids)
    shape = SMALL[name][0]
    x = (torch.rand(6, 3, *shape) < 0.5).float()
    with torch.no_grad():
        want, got = model(x), graph(x)
    assert torch.equal(got, want)
    assert float(want.abs().sum()) > 0
    lifs = {n for n, m in graph.body.nodes.items() if isinstance(m, (LIF, Recurrent))}
    assert len(lifs) == (
        len(model.lif_layers()) if name != "srnn" else len(SMALL[name][1]["hidden"])
    )
    # training the graph trains the model: one step moves the model's parameters
    model.train()
    opt = torch.optim.SGD(graph.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    graph(x).sum().backward()
    opt.step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_resnet_block_structure():
    """Basic block: lif2 sums conv2 and the shortcut (fan-in); the block input fans out."""
    g = to_graph(_small("resnet19", False)).body
    down = [n for n, src in g.sources.items() if n.endswith("lif2") and len(src) == 2]
    assert len(down) == 3  # every basic block
    sew = to_graph(_small("sew_resnet", False)).body
    assert any(len(src) == 3 for src in sew.sources.values())  # identity after identity


def test_fold_graph_same_function():
    model = _small("resnet19", False)
    g = to_graph(model).body
    folded = fold_graph(g)
    assert not any(
        isinstance(m, PerStep) and isinstance(m.module, nn.BatchNorm2d)
        for m in folded.nodes.values()
    )
    x = (torch.rand(5, 2, 2, 8, 8) < 0.5).float()
    with torch.no_grad():
        assert torch.allclose(folded(x), g(x), atol=1e-4)
