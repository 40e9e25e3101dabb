"""Graph models -> graph integer programs (neurodeploy.quant.graph_stages, quantize.py's rule for
several synapses into one neuron layer): hand-computed exponents and weights per edge, a recurrent
self-edge, and resnet19 / sew_resnet / srnn at tiny widths against their float spikes."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.neuron.fixedpoint import STATE_LIMIT, VTH_SHIFT
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.archs import build_resnet19, build_sew_resnet, build_srnn
from neurodeploy.nn.graph import INPUT, GraphBody, Recurrent, fold_graph, graph_body, to_graph
from neurodeploy.nn.layers import LI, LIF, NeuronConfig, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.graph_stages import graph_stages
from neurodeploy.quant.qat import programs_equal
from neurodeploy.quant.quantize import QuantizationError, quantize_model
from neurodeploy.targets.reference import ReferenceTarget


def _linear(w, bias=None):
    w = torch.tensor(w, dtype=torch.float32)
    lin = nn.Linear(w.shape[1], w.shape[0], bias=bias is not None)
    with torch.no_grad():
        lin.weight.copy_(w)
        if bias is not None:
            lin.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return PerStep(lin)


def _lif():
    return LIF(tau=2.0, theta=1.0, reset="hard")


def two_branch():
    """input(3) -> fa -> s1 (LIF); s2 (LIF) sums fb(s1) and fc(input); readout from s2."""
    nodes = {
        "fa": _linear([[0.9, 0.6, 0.0], [0.0, 0.7, 1.1]]),
        "s1": _lif(),
        "fb": _linear([[0.5, -0.25], [0.125, 0.5]]),
        "fc": _linear([[1.0, 0.0, -0.5], [0.25, 0.75, 0.0]]),
        "s2": _lif(),
        "out": _linear([[1.0, -1.0], [0.5, 0.5]], bias=[0.0, 0.0]),
    }
    sources = {
        "fa": [INPUT],
        "s1": ["fa"],
        "fb": ["s1"],
        "fc": [INPUT],
        "s2": ["fb", "fc"],
        "out": ["s2"],
    }
    return SpikingNet("two_branch", GraphBody(nodes, sources, "out"), (3,), 2).eval()


def test_two_branch_sum_exponents_and_weights_by_hand():
    prog = quantize_model(two_branch(), LOIHI2)
    prog.validate()
    s2 = next(layer for layer in prog.layers if layer.name == "s2")
    assert prog.sources(prog.layers.index(s2)) == ["s1", INPUT]
    # primary fb: max|W| = 0.5 -> w_scale 254 / 0.5 = 508. Two synapses: one more bit of
    # headroom, vth << 6 <= 2^(23 - 3 - 1): vth <= 2^23 >> 10 = 8192
    assert STATE_LIMIT >> (VTH_SHIFT + 3 + 1) == 8192
    # e = 4: a_scale = 508 * 16 = 8128 = vth (theta 1) <= 8192; e = 5 would give 16256
    assert (s2.weight_exp, s2.w_scale, s2.a_scale, s2.vth) == (4, 508.0, 8128.0, 8128)
    # W * 508, even rounding (numpy rounds half to even: -63.5 -> -64, 31.75 -> 32)
    assert s2.synapse.weight.tolist() == [[254, -128], [64, 254]]
    (edge,) = s2.extra
    # edge fc from the input (x_e = 1, binary): smallest e_e with 1.0 * 8128 / 2^e_e <= 254:
    # 8128 / 32 = 254 -> e_e = 5, w_scale_e = 254, and 254 * 1 * 2^5 = 8128 = a_scale exactly
    assert (edge.source, edge.recurrent, edge.weight_exp, edge.w_scale) == (INPUT, False, 5, 254.0)
    assert edge.w_scale * edge.in_scale * 2**edge.weight_exp == s2.a_scale
    # 190.5 -> 2 * round(95.25) = 190; -127 -> 2 * round(-63.5) = -128
    assert edge.synapse.weight.tolist() == [[254, 0, -128], [64, 190, 0]]
    # two steps of x = [1, 0, 0]. s1: fa x = [0.9, 0]: H = 0.9, then 0.45 + 0.9 = 1.35 > 1, a
    # spike in neuron 0 at t = 1. s2 neuron 0: a = 254 << 5 = 8128 = vth at t = 0 (v = vth << 6
    # is not above it), then v = 4064 << 6 + (8128 + (254 << 4)) << 6 > vth << 6 (float: 1.0,
    # then 0.5 + 1.0 + 0.5 = 2.0 > 1). Neuron 1: 2048 << 6, then 1024 + (64 << 5) + (64 << 4)
    # = 4096 (<< 6) below 8128 (float 0.25, then 0.125 + 0.25 + 0.125 = 0.5)
    x = np.zeros((2, 1, 3), np.int64)
    x[:, 0, 0] = 1
    res = ReferenceTarget(prog, device="cpu").run(x)
    assert res.spikes[res.layer_names.index("s1")][:, 0].tolist() == [[0, 0], [1, 0]]
    assert res.spikes[res.layer_names.index("s2")][:, 0].tolist() == [[0, 0], [1, 0]]


def test_two_branch_agrees_with_float():
    torch.manual_seed(1)
    model = two_branch()
    x = (torch.rand(30, 64, 3) < 0.5).float()
    prog = quantize_model(model, LOIHI2)
    res = ReferenceTarget(prog, device="cpu").run(x.numpy().astype(np.int64))
    with torch.no_grad():
        out = model.body.run_all(x)
    for name, s in zip(res.layer_names, res.spikes):
        agree = float(np.mean(out[name].numpy() == s))
        print(f"two_branch {name}: agreement {agree:.4f}")
        assert out[name].mean() > 0.05  # not a silent comparison
        assert agree >= 0.97, name


def recurrent_model():
    rec = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        rec.weight.copy_(torch.tensor([[0.0, -0.5], [2.0, 0.0]]))
    nodes = {
        "ff": _linear([[1.0, 0.5, 0.0], [0.0, -0.5, 0.25]]),
        "r": Recurrent(nn.Sequential(_lif()), rec),
        "out": _linear([[1.0, 0.0], [0.0, 1.0]], bias=[0.0, 0.0]),
    }
    sources = {"ff": [INPUT], "r": ["ff"], "out": ["r"]}
    return SpikingNet("rec", GraphBody(nodes, sources, "out"), (3,), 2).eval()


def test_recurrent_self_edge_by_hand():
    prog = quantize_model(recurrent_model(), LOIHI2)
    prog.validate()
    r = prog.layers[0]
    # ff: w_scale 254, two synapses -> vth <= 8192: e = 5, a_scale = 8128
    assert (r.name, r.source, r.weight_exp, r.a_scale, r.vth) == ("r", INPUT, 5, 8128.0, 8128)
    assert r.synapse.weight.tolist() == [[254, 128, 0], [0, -128, 64]]
    (edge,) = r.extra
    # rec: max|W| = 2: smallest e with 2 * 8128 / 2^e <= 254 -> 2^6 = 64 (exactly 254)
    assert (edge.source, edge.recurrent, edge.weight_exp, edge.w_scale) == ("r", True, 6, 127.0)
    assert edge.synapse.weight.tolist() == [[0, -64], [254, 0]]  # -63.5 -> -64 (half to even)
    assert prog.edge_delays(0, latency=False) == [0, 1]


def test_recurrent_agrees_with_float():
    torch.manual_seed(2)
    model = recurrent_model()
    x = (torch.rand(40, 64, 3) < 0.5).float()
    res = ReferenceTarget(quantize_model(model, LOIHI2), device="cpu").run(
        x.numpy().astype(np.int64)
    )
    with torch.no_grad():
        s = model.body.run_all(x)["r"].numpy()
    agree = float(np.mean(s == res.spikes[0]))
    print(f"recurrent r: agreement {agree:.4f}")
    assert s[..., 1].mean() > 0.05 and s[..., 0].mean() > 0.05
    assert agree >= 0.97


def test_edge_over_range_lowers_the_layer_exponent():
    model = two_branch()
    with torch.no_grad():  # fb: e = -6, a_scale = 508000 / 64; fc x 16 needs e_e = 9 > 7
        model.body.nodes["fb"].module.weight.mul_(1e-3)
        model.body.nodes["fc"].module.weight.mul_(16.0)
    with pytest.warns(UserWarning, match="layer s2: edge from input needs weight exponent"):
        prog = quantize_model(model, LOIHI2)
    prog.validate()
    s2 = next(layer for layer in prog.layers if layer.name == "s2")
    (edge,) = s2.extra
    # the layer's exponent lowered by 2 (to -8): a_scale = 508000 / 256 = 1984.375; fc:
    # 16 * 1984.375 / 2^7 = 248.05 <= 254 -> e_e = 7
    assert (s2.weight_exp, edge.weight_exp) == (-8, 7)
    assert edge.w_scale * edge.in_scale * 2**edge.weight_exp == pytest.approx(s2.a_scale)
    assert np.abs(edge.synapse.weight).max() == 248  # 2 * round(248.05 / 2)


def test_two_linears_in_a_row_refused_by_name():
    nodes = {"f1": _linear([[1.0, 0.0]]), "f2": _linear([[1.0]]), "s": _lif()}
    sources = {"f1": [INPUT], "f2": ["f1"], "s": ["f2"]}
    model = SpikingNet("bad", GraphBody(nodes, sources, "s"), (2,), 1)
    with pytest.raises(ValueError, match="graph node 's'.*f1 -> f2.*no neuron between"):
        graph_stages(model)


def test_chain_model_programs_unchanged_through_the_graph_path():
    """A chain quantises as before (model_stages); its graph form gives the same integers."""
    torch.manual_seed(0)
    chain = build_model("mlp", (1, 6, 6), 4, NeuronConfig(mps=True, alpha_init=0.3)).eval()
    a = quantize_model(chain, LOIHI2)
    b = quantize_model(to_graph(chain), LOIHI2)
    assert all(layer.source is None and not layer.extra for layer in a.layers)
    assert programs_equal(a, b)


def _activate(model, gain=3.0, seed=0):
    """Weights x gain and random BatchNorm statistics, so that every layer spikes."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.mul_(gain)
            if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.1, 0.3)
    return model


NC = NeuronConfig()
ZOO = {
    "resnet19": (
        lambda: build_resnet19(
            (2, 8, 8), 3, NC, stem=8, widths=(8, 16), blocks=(1, 1), hidden=(16,)
        ),
        (2, 8, 8),
        0.90,
    ),
    "sew_resnet": (
        lambda: build_sew_resnet((2, 8, 8), 3, NC, stem=8, widths=(8, 16), blocks=(1, 1)),
        (2, 8, 8),
        0.94,
    ),
    "srnn": (lambda: build_srnn((20,), 3, NC, hidden=(16, 12)), (20,), 0.97),
}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_graph_models_agree_with_float_per_layer(name):
    build, shape, floor = ZOO[name]
    torch.manual_seed(0)
    model = to_graph(_activate(SpikingNet(name, build(), shape, 3).eval()))
    prog = quantize_model(model, LOIHI2)
    prog.validate()
    assert not prog.is_chain
    x = (torch.rand(12, 16, *shape) < 0.3).float()
    res = ReferenceTarget(prog, device="cpu").run(x.numpy().astype(np.int64))
    with torch.no_grad():
        out = fold_graph(graph_body(model.body)).run_all(x)
    for layer in prog.layers:  # every edge at the layer's a_scale (module docstring)
        for e in layer.extra:
            assert math.isclose(e.w_scale * e.in_scale * 2**e.weight_exp, layer.a_scale)
    for nm, s in zip(res.layer_names, res.spikes):
        f = out[nm].numpy()
        agree = float(np.mean(f == s))
        print(f"{name} {nm}: agreement {agree:.4f}, rate float {f.mean():.3f} int {s.mean():.3f}")
        assert agree >= floor, nm


def test_li_neither_a_current_nor_the_output_is_refused():
    """An LI maps as a CubaLIF's current or as the output node (an LI readout, mapped since
    tests/test_graph_stages_nodes.py); an LI feeding further nodes is neither."""
    nodes = {"f": _linear([[1.0, 0.5]]), "s": _lif(), "g": _linear([[1.0]]), "o": LI(tau=4.0)}
    nodes["p"] = _linear([[1.0]])
    sources = {"f": [INPUT], "s": ["f"], "g": ["s"], "o": ["g"], "p": ["o"]}
    with pytest.raises(ValueError, match="graph node 'o': LI"):
        graph_stages(SpikingNet("li", GraphBody(nodes, sources, "p"), (2,), 1))


def test_quantization_error_is_a_value_error():
    assert issubclass(QuantizationError, ValueError)


def test_recurrent_cubalif_current_and_self_edge():
    """A Recurrent CubaLIF neuron [LI(4), Scale(0.5), LIF]: du from tau_syn 4 (round(4096 / 4)
    - 1 = 1023), the gain folded into both synapses, the rec map a recurrent self-edge."""
    torch.manual_seed(0)
    rec, ff = nn.Linear(6, 6, bias=False), nn.Linear(4, 6, bias=False)
    with torch.no_grad():
        ff.weight.mul_(4.0)
        rec.weight.mul_(2.0)
    neuron = nn.Sequential(LI(tau=4.0), Scale(0.5), LIF(tau=2.0, theta=1.0, mps=False))
    nodes = {"ff": PerStep(ff), "r": Recurrent(neuron, rec), "out": PerStep(nn.Linear(6, 2))}
    sources = {"ff": [INPUT], "r": ["ff"], "out": ["r"]}
    model = SpikingNet("cuba", GraphBody(nodes, sources, "out"), (4,), 2).eval()
    prog = quantize_model(model, LOIHI2)
    prog.validate()
    r = prog.layers[0]
    assert r.du == 1023 and [(e.source, e.recurrent) for e in r.extra] == [("r", True)]
    x = (torch.rand(40, 32, 4) < 0.4).float()
    res = ReferenceTarget(prog, device="cpu").run(x.numpy().astype(np.int64))
    with torch.no_grad():
        s = model.body.run_all(x)["r"].numpy()
    agree = float(np.mean(s == res.spikes[0]))
    print(f"cuba recurrent r: agreement {agree:.4f}, rate {s.mean():.3f}")
    assert s.mean() > 0.05 and agree >= 0.99
