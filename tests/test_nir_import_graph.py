"""NIR import of general graphs (converters/nir_import.py): fan-out, fan-in, recurrent loops and
nested subgraphs, checked against the producers' own modules (snnTorch) and round trips of our
residual and recurrent zoo models, and the NIR paper's Braille SRNN against snnTorch's RSynaptic.
"""

import warnings

import nir
import numpy as np
import pytest
import torch

from neurodeploy.converters.nir_common import NIRConversionError
from neurodeploy.converters.nir_export import model_to_nir
from neurodeploy.converters.nir_import import flatten_graph, nir_to_model
from neurodeploy.nn.graph import GraphBody, Recurrent

from .test_graph_model import _small

snn = pytest.importorskip("snntorch")
warnings.filterwarnings("ignore", module="snntorch")
warnings.filterwarnings("ignore", module="nirtorch")

BRAILLE = "/work/shared/fixtures/nir-paper/braille_noDelay_bias_zero.nir"
BRAILLE_DT = 1e-4  # snnTorch's export dt (the graph records none)
BRAILLE_RATE = 0.1  # input spike probability per channel and step (Braille-like)
BRAILLE_T = 256
# Measured: our import (NIR's reset-to-zero right after the spike) vs snnTorch with its reset
# moved to the spiking step (Synaptic reset_delay=False, recurrence closed by hand): every spike
# equal (both layers). vs snnTorch's RSynaptic as trained (reset_delay=True: the step after a
# spike is zeroed, its input lost): 99.2 % (lif1) and 63.9 % (lif2, the output layer, which fires
# near every step with our reset and about every other step with snnTorch's) of (step, neuron)
# pairs, 32 samples x 256 steps at rate 0.1.
BRAILLE_DELAYED_FLOOR = {"lif1": 0.98, "lif2": 0.6}


@pytest.mark.parametrize("name", ["resnet19", "sew_resnet", "srnn"])
@pytest.mark.parametrize("mps", [False, True])
def test_our_graph_exports_import_to_equal_outputs(name, mps):
    """Round trip: our export of resnet19 / sew_resnet / srnn (tiny widths) imported by us gives
    the original model's outputs exactly (smoothing metadata included)."""
    orig = _small(name, mps=mps)
    imported = nir_to_model(model_to_nir(orig))
    assert isinstance(imported.body, GraphBody)
    assert (name == "srnn") == any(isinstance(m, Recurrent) for m in imported.body.nodes.values())
    torch.manual_seed(5)
    x = (torch.rand(8, 3, *orig.input_shape) < 0.5).float()
    with torch.no_grad():
        want, got = orig(x), imported(x)
    assert want.abs().sum() > 0
    assert torch.equal(want, got)


def _snn_rnet(seed=0):
    """Linear -> RLeaky -> Linear -> RSynaptic -> Linear -> Leaky (snnTorch), reset to zero."""
    torch.manual_seed(seed)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(6, 8)
            self.r1 = snn.RLeaky(
                beta=0.75, linear_features=8, reset_mechanism="zero", reset_delay=False
            )
            self.fc2 = torch.nn.Linear(8, 5)
            self.r2 = snn.RSynaptic(alpha=0.5, beta=0.75, linear_features=5, reset_mechanism="zero")

        def forward(self, x):
            spk, _ = self.r1(self.fc1(x))
            return self.r2(self.fc2(spk))[0]

    net = Net()
    with torch.no_grad():
        net.fc1.weight.uniform_(-0.2, 0.6)
        net.fc2.weight.uniform_(-0.2, 0.6)
        net.r1.recurrent.weight.uniform_(-0.3, 0.3)
        net.r2.recurrent.weight.uniform_(-0.3, 0.3)
    return net


def _nest(graph: nir.NIRGraph, prefix: str) -> nir.NIRGraph:
    """``graph`` with the nodes ``prefix.*`` moved into a 4-node recurrent subgraph ``prefix``
    (Input, neuron, w_rec, Output), the nested form snnTorch and the NIR paper write."""
    inner = {k.split(".", 1)[1]: v for k, v in graph.nodes.items() if k.startswith(prefix + ".")}
    lif = next(k for k, v in inner.items() if not isinstance(v, (nir.Affine, nir.Linear)))
    n = inner[lif].tau_mem.shape if hasattr(inner[lif], "tau_mem") else inner[lif].tau.shape
    inner["input"] = nir.Input(input_type={"input": np.array(n)})
    inner["output"] = nir.Output(output_type={"output": np.array(n)})
    in_edges = [(a[len(prefix) + 1 :], b[len(prefix) + 1 :]) for a, b in graph.edges]
    sub_edges = [
        (a, b)
        for (a, b), (a0, b0) in zip(in_edges, graph.edges, strict=True)
        if a0.startswith(prefix + ".") and b0.startswith(prefix + ".")
    ]
    sub_edges += [("input", lif), (lif, "output")]
    outer = {k: v for k, v in graph.nodes.items() if not k.startswith(prefix + ".")}
    outer[prefix] = nir.NIRGraph(nodes=inner, edges=sub_edges, type_check=False)
    edges = [
        (prefix if a.startswith(prefix + ".") else a, prefix if b.startswith(prefix + ".") else b)
        for a, b in graph.edges
        if not (a.startswith(prefix + ".") and b.startswith(prefix + "."))
    ]
    return nir.NIRGraph(nodes=outer, edges=edges, metadata=graph.metadata, type_check=False)


def test_snntorch_rleaky_rsynaptic_export(tmp_path):
    """snnTorch's own export (flat, dotted names r1.lif / r1.w_rec) imports as two Recurrent
    nodes; the RLeaky layer (reset_delay=False: snnTorch's reset at the spiking step, NIR's
    semantics) equals snnTorch spike for spike. RSynaptic's reset_delay=False crashes in snnTorch
    1.0 (TypeError in its forward), so its delayed reset differs (measured in the Braille test)."""
    from snntorch.export_nir import export_to_nir

    net = _snn_rnet()
    graph = export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0])
    assert ("r1.w_rec", "r1.lif") in graph.edges
    model = nir_to_model(graph)
    nested = nir_to_model(_nest(_nest(graph, "r1"), "r2"))
    assert list(model.body.nodes) == ["fc1", "r1_lif", "fc2", "r2_lif"]
    assert isinstance(model.body.nodes["r1_lif"], Recurrent)
    torch.manual_seed(1)
    x = (torch.rand(40, 16, 6) < 0.4).float()
    with torch.no_grad():
        ours = model.body.run_all(x)
        assert torch.equal(nested(x), ours["r2_lif"])
        spk, mem = net.r1.init_rleaky()
        theirs = []
        for t in range(x.shape[0]):
            spk, mem = net.r1(net.fc1(x[t]), spk, mem)
            theirs.append(spk)
    theirs_t = torch.stack(theirs)
    assert theirs_t.mean() > 0.05
    assert torch.equal(ours["r1_lif"], theirs_t)


def _braille_snntorch(graph: nir.NIRGraph, x: torch.Tensor, *, delayed: bool):
    """The Braille SRNN with snnTorch's modules from the graph's parameters: lif1 as RSynaptic
    (``delayed``: snnTorch's default reset_delay=True, as trained) or as Synaptic with
    reset_delay=False and the recurrent Affine closed by hand (syn(t) = alpha syn(t-1) + x(t) +
    W_rec s(t-1) + b_rec, RSynaptic's equation); lif2 as Synaptic. Spikes per layer (T, B, n)."""
    nd = graph.nodes
    lin = {}
    for k in ("fc1", "fc2", "lif1.w_rec"):
        w = torch.tensor(nd[k].weight, dtype=torch.float32)
        lin[k] = torch.nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin[k].weight.copy_(w)
            lin[k].bias.copy_(torch.tensor(nd[k].bias, dtype=torch.float32))

    def ab(node):
        alpha = 1 - BRAILLE_DT / float(np.asarray(node.tau_syn).flat[0])
        beta = 1 - BRAILLE_DT / float(np.asarray(node.tau_mem).flat[0])
        return alpha, beta

    a1, b1 = ab(nd["lif1.lif"])
    a2, b2 = ab(nd["lif2"])
    if delayed:
        l1 = snn.RSynaptic(alpha=a1, beta=b1, linear_features=38, reset_mechanism="zero")
        with torch.no_grad():
            l1.recurrent.weight.copy_(lin["lif1.w_rec"].weight)
            l1.recurrent.bias.copy_(lin["lif1.w_rec"].bias)
    else:
        l1 = snn.Synaptic(alpha=a1, beta=b1, reset_mechanism="zero", reset_delay=False)
    l2 = snn.Synaptic(alpha=a2, beta=b2, reset_mechanism="zero", reset_delay=delayed)
    s1 = torch.zeros(x.shape[1], 38)
    syn1, mem1 = torch.zeros_like(s1), torch.zeros_like(s1)
    syn2, mem2 = torch.zeros(x.shape[1], 7), torch.zeros(x.shape[1], 7)
    out1, out2 = [], []
    with torch.no_grad():
        for t in range(x.shape[0]):
            if delayed:
                s1, syn1, mem1 = l1(lin["fc1"](x[t]), s1, syn1, mem1)
            else:
                drive = lin["fc1"](x[t]) + lin["lif1.w_rec"](s1)
                s1, syn1, mem1 = l1(drive, syn1, mem1)
            s2, syn2, mem2 = l2(lin["fc2"](s1), syn2, mem2)
            out1.append(s1)
            out2.append(s2)
    return torch.stack(out1), torch.stack(out2)


def test_braille_graph_against_snntorch_semantics():
    """The NIR paper's Braille SRNN (flat file; lif1.lif CubaLIF with per-neuron arrays of equal
    values and the lif1.w_rec Affine cycle) and its nested form import alike, and spike with
    snnTorch's Synaptic/RSynaptic on random spike trains at a Braille-like rate."""
    graph = nir.read(BRAILLE)
    model = nir_to_model(graph, dt=BRAILLE_DT)
    nested = nir_to_model(_nest(graph, "lif1"), dt=BRAILLE_DT)
    assert isinstance(model.body.nodes["lif1_lif"], Recurrent)
    torch.manual_seed(7)
    x = (torch.rand(BRAILLE_T, 32, 12) < BRAILLE_RATE).float()
    with torch.no_grad():
        ours = model.body.run_all(x)
        assert torch.equal(nested(x), ours["lif2"])
    ours1, ours2 = ours["lif1_lif"], ours["lif2"]
    assert ours1.mean() > 0.005 and ours2.mean() > 0.005
    same1, same2 = _braille_snntorch(graph, x, delayed=False)
    assert torch.equal(ours1, same1) and torch.equal(ours2, same2)
    del1, del2 = _braille_snntorch(graph, x, delayed=True)
    agree = {
        "lif1": (ours1 == del1).float().mean().item(),
        "lif2": (ours2 == del2).float().mean().item(),
    }
    print(f"\nBraille vs snnTorch RSynaptic (reset_delay=True) per-layer agreement: {agree}")
    for k, floor in BRAILLE_DELAYED_FLOOR.items():
        assert agree[k] >= floor, (k, agree[k])
    print(
        f"rates ours {ours1.mean():.4f} {ours2.mean():.4f}, snnTorch {del1.mean():.4f} {del2.mean():.4f}"
    )


def _tiny(edges, nodes):
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _lif(n):
    return nir.LIF(
        tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n)
    )


def test_fan_in_sums_and_fan_out_by_hand():
    """input -> a, input -> b, (a + b) -> lif: the neuron's current is the sum, computed by hand
    (tau 10 steps: v(t) = 0.9 v(t-1) + I; r = tau/dt: unit gain; spike at v >= 1, reset to 0)."""
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "a": nir.Linear(weight=np.array([[0.5, 0.0]])),
        "b": nir.Linear(weight=np.array([[0.0, 0.25]])),
        "lif": _lif(1),
        "output": nir.Output(output_type={"output": np.array([1])}),
    }
    edges = [("input", "a"), ("input", "b"), ("a", "lif"), ("b", "lif"), ("lif", "output")]
    model = nir_to_model(_tiny(edges, nodes), dt=1e-4)
    assert model.body.sources["lif"] == ["a", "b"]
    x = torch.tensor([[1.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]).reshape(4, 1, 2)
    # I = 0.75, 0.5, 0.25, 0.75; v = 0.75, 1.175 -> spike, 0.25, 0.975
    with torch.no_grad():
        y = model(x)
    assert y.flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


def test_three_neuron_recurrent_loop_by_hand():
    """One 3-neuron LIF layer with a recurrent Linear (a ring 0 -> 1 -> 2 -> 0, weight 1.5): a spike
    of neuron i at step t drives neuron i+1 at t+1 (v(t) = 0.9 v(t-1) + x(t) + W s(t-1))."""
    ring = 1.5 * np.roll(np.eye(3), 1, axis=0)  # W[i+1, i] = 1.5 > theta = 1
    nodes = {
        "input": nir.Input(input_type={"input": np.array([3])}),
        "ff": nir.Linear(weight=np.eye(3)),
        "lif": _lif(3),
        "rec": nir.Linear(weight=ring),
        "output": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("input", "ff"), ("ff", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")]
    model = nir_to_model(_tiny(edges, nodes), dt=1e-4)
    x = torch.zeros(5, 1, 3)
    x[0, 0, 0] = 1.5  # v = 1.5 > 1: spike, reset to 0; 1.5 arrives at the next neuron at t+1
    with torch.no_grad():
        y = model(x)[:, 0]
    assert y.tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 0]]


def test_cycle_through_two_neuron_layers_refused_by_name():
    nodes = {
        "input": nir.Input(input_type={"input": np.array([2])}),
        "l1": _lif(2),
        "w12": nir.Linear(weight=np.eye(2)),
        "l2": _lif(2),
        "w21": nir.Linear(weight=np.eye(2)),
        "output": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [
        ("input", "l1"),
        ("l1", "w12"),
        ("w12", "l2"),
        ("l2", "w21"),
        ("w21", "l1"),
        ("l2", "output"),
    ]
    with pytest.raises(NIRConversionError, match=r"node 'l1'.*cycle through 2 neuron nodes.*Loihi"):
        nir_to_model(_tiny(edges, nodes), dt=1e-4)


def test_truly_per_neuron_cuba_parameters_refused_by_name():
    graph = nir.read(BRAILLE)
    tau = np.array(graph.nodes["lif1.lif"].tau_mem, dtype=np.float64)
    tau[3] *= 2
    graph.nodes["lif1.lif"].tau_mem = tau
    with pytest.raises(NIRConversionError, match=r"'lif1.lif', field 'tau_mem': differs"):
        nir_to_model(graph, dt=BRAILLE_DT)


def test_nested_subgraph_flattened_names(tmp_path):
    graph = _nest(nir.read(BRAILLE), "lif1")
    nir.write(str(tmp_path / "nested.nir"), graph)
    flat = flatten_graph(graph)
    assert set(flat.nodes) == {"input", "fc1", "lif1.lif", "lif1.w_rec", "fc2", "lif2", "output"}
    assert ("fc1", "lif1.lif") in flat.edges and ("lif1.lif", "fc2") in flat.edges
    assert ("lif1.w_rec", "lif1.lif") in flat.edges
    model = nir_to_model(tmp_path / "nested.nir", dt=BRAILLE_DT)  # read_nir reads nesting
    assert isinstance(model.body.nodes["lif1_lif"], Recurrent)


def test_inspect_prints_graph_structure():
    from neurodeploy.converters.nir_inspect import format_summary

    text = format_summary(_nest(nir.read(BRAILLE), "lif1"), dt=BRAILLE_DT)
    assert "structure: graph" in text
    assert "fan-out: lif1.lif -> ['lif1.w_rec', 'fc2']" in text
    assert "fan-in (summed): lif1.lif <- " in text
    assert "recurrent cycles: lif1.lif -> lif1.w_rec -> lif1.lif" in text
    chain = format_summary(model_to_nir(_small("srnn", mps=False)))
    assert "recurrent cycles: 0_lif -> 0_lif_rec -> 0_lif; 1_lif -> 1_lif_rec -> 1_lif" in chain


@pytest.mark.parametrize("which", ["snntorch-rnet", "braille"])
def test_nirtorch_nir_to_torch_equal_where_semantics_coincide(which):
    """nirtorch's ``nir_to_torch`` (its graph interpreter, closing each cycle with the previous
    step's output; our node map for the nodes) computes our import's outputs spike for spike when
    the recurrent Affine has no bias. With a bias they differ at t = 0 only by construction:
    nirtorch feeds the cycle zeros before the first step, snnTorch and we feed rec(s(-1) = 0) =
    b_rec (snnTorch's RLeaky/RSynaptic compute recurrent(spk) with spk = 0): measured below."""
    nirtorch = pytest.importorskip("nirtorch")
    from neurodeploy.converters.nirtorch_bridge import nirtorch_node_map

    from .test_nir_export_graph import _run_stepwise

    if which == "braille":
        graph = nir.read(BRAILLE)
    else:
        from snntorch.export_nir import export_to_nir

        graph = export_to_nir(_snn_rnet(), torch.zeros(1, 6), ignore_dims=[0])
    rec = [k for k in graph.nodes if k.endswith("w_rec")]
    assert rec and all(np.any(graph.nodes[k].bias != 0) for k in rec)
    torch.manual_seed(0)
    x = (torch.rand(100, 8, graph.nodes["fc1"].weight.shape[1]) < BRAILLE_RATE).float()
    agree = {}
    for zero_bias in (False, True):
        if zero_bias:
            for k in rec:
                graph.nodes[k].bias = np.zeros_like(graph.nodes[k].bias)
        exe = nirtorch.nir_to_torch(graph, nirtorch_node_map(BRAILLE_DT))
        _, theirs = _run_stepwise(exe, x)
        with torch.no_grad():
            ours = nir_to_model(graph, dt=BRAILLE_DT)(x)
        assert ours.abs().sum() > 0
        agree[zero_bias] = (ours == theirs).float().mean().item()
    print(f"\n{which}: nirtorch vs ours, output agreement with b_rec / without: {agree}")
    assert agree[True] == 1.0
    assert agree[False] < 1.0
