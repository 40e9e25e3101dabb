"""The paper's architectures: forward/backward on small inputs, hand-checked block semantics,
NIR round trips for the chain ones, NIR graph export for residual and recurrent ones (their
interoperability: tests/test_nir_export_graph.py)."""

from __future__ import annotations

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.converters.nir_common import NIRConversionError
from neurodeploy.converters.nir_export import model_to_nir
from neurodeploy.converters.nir_import import nir_to_model
from neurodeploy.nn.archs import (
    ARCHS,
    NIR_EXPORTABLE,
    NIR_GRAPHS,
    RecurrentLIF,
    SEWBlock,
    SpikingBasicBlock,
)
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import MODELS, build_model
from neurodeploy.training.config import TrainConfig

# small versions of every architecture: (input shape, options)
SMALL = {
    "vggsnn": ((2, 16, 16), dict(channels=(8, "P", 16, "P"))),
    "vgg9": ((2, 16, 16), dict(channels=(8, 8, "P", 16, "P"), hidden=(32,))),
    "resnet19": ((3, 8, 8), dict(stem=8, widths=(8, 16), blocks=(2, 1), hidden=(16,))),
    "sew_resnet": ((3, 8, 8), dict(stem=8, widths=(8, 16), blocks=(1, 1))),
    "spiking_pointnet": ((3, 32), dict(channels=(8, 16), hidden=(16, 8))),
    "srnn": ((20,), dict(hidden=(12, 12))),
}


def test_registered_and_selectable():
    assert set(ARCHS) <= set(MODELS) and set(SMALL) == set(ARCHS) == set(NIR_EXPORTABLE)
    for name in ARCHS:
        assert TrainConfig(model=name).model == name  # `--model NAME` accepts them


@pytest.mark.parametrize("name", sorted(SMALL))
def test_forward_and_backward(name):
    torch.manual_seed(0)
    shape, kw = SMALL[name]
    m = build_model(name, shape, 5, NeuronConfig(mps=True), **kw)
    x = (
        (torch.rand(3, 4, *shape) < 0.5).float()
        if name != "spiking_pointnet"
        else torch.randn(3, 4, *shape)
    )
    z = m(x)
    assert z.shape == (3, 4, 5)
    torch.nn.functional.cross_entropy(z.mean(0), torch.arange(4) % 5).backward()
    for pname, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
    assert all(m.alphas()[k] == 0.5 for k in m.alphas())  # every LIF (inside blocks too) is found
    assert any(float(p.grad.abs().sum()) > 0 for n, p in m.named_parameters() if n.endswith(".a"))


def test_default_sizes_build_for_their_data():
    """The published sizes, on the data sets' shapes (no forward: ResNet-19 has 12.7 M weights)."""
    vgg = build_model("vggsnn", (2, 48, 48), 10)
    assert vgg.body[-1].module.in_features == 512 * 3 * 3  # 48 / 2^4 = 3
    res = build_model("resnet19", (3, 32, 32), 10)
    assert sum(isinstance(b, SpikingBasicBlock) for b in res.body) == 3 + 3 + 2
    pn = build_model("spiking_pointnet", (3, 1024), 40)
    assert pn.body[-1].module.in_features == 256
    with pytest.raises(ValueError, match="srnn.*channel input"):
        build_model("srnn", (2, 8, 8), 10)
    with pytest.raises(ValueError, match="resnet19.*image input"):
        build_model("resnet19", (700,), 20)


def test_vggsnn_parameter_count_by_hand():
    # conv 2->8 (3x3, no bias) 144 + BN 16 + LIF a 1, pool, Linear 8*2*2 -> 5: 160 + 5
    m = build_model("vggsnn", (2, 4, 4), 5, NeuronConfig(mps=True), channels=(8, "P"))
    assert sum(p.numel() for p in m.parameters()) == 144 + 16 + 1 + 165


def _silence(block: nn.Module) -> None:
    """Zero every conv weight and BN shift in a block (its convolution paths then output 0)."""
    with torch.no_grad():
        for mod in block.modules():
            if isinstance(mod, (nn.Conv2d, nn.BatchNorm2d)) and mod.weight is not None:
                mod.weight.zero_()
                if mod.bias is not None:
                    mod.bias.zero_()


def test_sew_block_adds_spikes_to_its_input():
    block = SEWBlock(4, 4, 1, NeuronConfig(mps=False)).eval()
    _silence(block)
    x = (torch.rand(3, 2, 4, 5, 5) < 0.5).float()
    assert torch.equal(block(x), x)  # residual path silent: identity shortcut only
    with torch.no_grad():  # an always-firing residual path adds exactly 1
        for bn in (m for m in block.residual.modules() if isinstance(m, nn.BatchNorm2d)):
            bn.bias.fill_(2.0)
    assert torch.equal(block(x), x + 1)


def test_basic_block_fires_on_input_plus_shortcut():
    block = SpikingBasicBlock(4, 4, 1, NeuronConfig(mps=False, tau=2.0, theta=1.0)).eval()
    _silence(block)
    x = torch.tensor([1.5, 0.6, 0.6, 0.0]).view(4, 1, 1, 1, 1).expand(4, 1, 4, 2, 2)
    # conv paths give 0, so the second LIF sees x: H = 1.5 -> spike; 0.6; 0.3 + 0.6 = 0.9; 0.45
    expect = torch.tensor([1.0, 0.0, 0.0, 0.0]).view(4, 1, 1, 1, 1).expand_as(x)
    assert torch.equal(block(x), expect)


def test_recurrent_lif_by_hand():
    layer = RecurrentLIF(1, 1, NeuronConfig(mps=False, tau=2.0, theta=1.0), batchnorm=False)
    with torch.no_grad():
        layer.ff.weight.fill_(1.0)
        layer.rec.weight.fill_(0.6)
    x = torch.tensor([1.2, 0.5, 0.5, 0.0]).view(4, 1, 1)
    # I(t) = x(t) + 0.6 S(t-1); H = 0.5 U(t-1) + I: 1.2 (fire), 1.1 (fire), 1.1 (fire), 0.6
    assert layer(x).view(-1).tolist() == [1.0, 1.0, 1.0, 0.0]
    with torch.no_grad():
        layer.rec.weight.zero_()  # no recurrence: 1.2 (fire), 0.5, 0.75, 0.375
    assert layer(x).view(-1).tolist() == [1.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    "name", sorted(n for n, ok in NIR_EXPORTABLE.items() if ok and n not in NIR_GRAPHS)
)
def test_exportable_ones_round_trip_through_nir(name):
    torch.manual_seed(1)
    shape, kw = SMALL[name]
    m = build_model(name, shape, 5, NeuronConfig(mps=True, alpha_init=0.3), **kw)
    with torch.no_grad():  # non-trivial BatchNorm statistics to fold
        for bn in (mod for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm)):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
    m.eval()
    back = nir_to_model(model_to_nir(m))
    x = (
        (torch.rand(4, 3, *shape) < 0.4).float()
        if name != "spiking_pointnet"
        else torch.randn(4, 3, *shape)
    )
    torch.testing.assert_close(back(x), m(x), rtol=1e-4, atol=1e-4)
    assert sorted(back.alphas().values()) == pytest.approx(sorted(m.alphas().values()))


@pytest.mark.parametrize(
    ("name", "block"),
    [("resnet19", "SpikingBasicBlock"), ("sew_resnet", "SEWBlock"), ("srnn", "RecurrentLIF")],
)
def test_residual_and_recurrent_ones_export_as_graphs(name, block):
    shape, kw = SMALL[name]
    graph = model_to_nir(build_model(name, shape, 5, **kw))
    fan_in = max(sum(1 for _, b in graph.edges if b == n) for n in graph.nodes)
    cycles = [(a, b) for a, b in graph.edges if (b, a) in graph.edges]
    # a residual block sums two paths into one node; a recurrent layer has LIF <-> rec cycles
    assert (cycles != []) if block == "RecurrentLIF" else (fan_in >= 2 and cycles == [])
    with pytest.raises(NIRConversionError, match="max over points has no NIR primitive"):
        model_to_nir(
            build_model("spiking_pointnet", (3, 16), 5, channels=(4,), hidden=(4,), pool="max")
        )


def _lif(n: int) -> nir.LIF:
    f = lambda v: np.full(n, v, dtype=np.float32)  # noqa: E731
    return nir.LIF(tau=f(2e-4), r=f(2.0), v_leak=f(0.0), v_threshold=f(1.0), v_reset=f(0.0))


def test_residual_and_recurrent_nir_graphs_import_as_graphs():
    """Issue 16: a skip edge (fan-out, fan-in) and a recurrent synapse import as a GraphBody.
    tau = 2 steps (beta 0.5), unit gain, theta 1, reset to 0; hand traces below."""
    w = np.eye(3, dtype=np.float32)
    io = {"in": nir.Input(input_type=np.array([3])), "out": nir.Output(output_type=np.array([3]))}
    residual = nir.NIRGraph(
        nodes={**io, "fc": nir.Linear(weight=w), "lif": _lif(3)},
        edges=[("in", "fc"), ("fc", "lif"), ("in", "lif"), ("lif", "out")],
    )  # skip edge: I = W x + x = 2 x
    model = nir_to_model(residual, dt=1e-4)
    assert model.body.sources["lif"] == ["fc", "input"]
    x = torch.full((3, 1, 3), 0.3)  # I = 0.6: v = 0.6, 0.9, 1.05 -> spike
    assert model(x)[:, 0, 0].tolist() == [0.0, 0.0, 1.0]
    recurrent = nir.NIRGraph(
        nodes={**io, "fc": nir.Linear(weight=w), "lif": _lif(3), "rec": nir.Linear(weight=w)},
        edges=[("in", "fc"), ("fc", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
    )
    model = nir_to_model(recurrent, dt=1e-4)
    # I(t) = 0.6 + s(t-1): v = 0.6, 0.9, 1.05 (spike), then 0 + 1.6 each step (spike)
    x = torch.full((5, 1, 3), 0.6)
    with torch.no_grad():
        assert model(x)[:, 0, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]
