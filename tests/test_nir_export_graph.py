"""NIR export of graph models (converters/nir_export.py): our residual (resnet19, sew_resnet) and
recurrent (srnn) models as NIR graphs with fan-out, fan-in and cycles, loaded by the other tools'
own importers, spike for spike with vanilla neurons.

snnTorch 1.0's ``import_from_nir`` cannot load any recurrent graph with nirtorch 2.6 (ours or its
own ``RLeaky`` export): nirtorch recurses into the 4-node RNN subgraph that snnTorch wraps the
cycle in, before snnTorch's mapping sees it (AttributeError 'GraphModule' has no attribute
'items'). The recurrent test therefore uses snnTorch's own steps of that importer (its cycle
detection ``_replace_rnn_subgraph_with_nirgraph`` and node mapping ``_nir_to_snntorch_module``,
which builds ``RLeaky``) and steps the modules itself.
"""

import warnings

import nir
import numpy as np
import pytest
import torch

from neurodeploy.converters.nir_common import METADATA_KEY, NIRConversionError
from neurodeploy.converters.nir_export import export_nir, model_to_nir
from neurodeploy.converters.nirtorch_bridge import nirtorch_node_map
from neurodeploy.nn.graph import to_graph
from neurodeploy.nn.zoo import build_model

from .test_graph_model import _small

snn = pytest.importorskip("snntorch")
nirtorch = pytest.importorskip("nirtorch")
warnings.filterwarnings("ignore", module="snntorch")
warnings.filterwarnings("ignore", module="nirtorch")

T = 8
NEURONS = ("LIFStep", "Leaky", "_NIRStatefulModule")


def _ours(model, x):
    """Every neuron node's spikes (T, B, ...) of the graph form, and the logits."""
    body = to_graph(model).body
    with torch.no_grad():
        out = body.run_all(x)
    lifs = {n for n, m in body.nodes.items() if type(m).__name__ in ("LIF", "Recurrent")}
    return {n: out[n] for n in lifs}, out[body.output]


def _run_stepwise(exe, x):
    """Run a nirtorch-style executor ``(x_t, state) -> (y, state)`` one sample at a time (snnTorch's
    Flatten also flattens the batch axis); spikes of its neuron modules by name, and the outputs."""
    rec: dict[str, list[torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, o, n=n: rec.setdefault(n, []).append(o[0] if isinstance(o, tuple) else o)
        )
        for n, m in exe.named_modules()
        if type(m).__name__ in NEURONS
    ]
    outs = []
    with torch.no_grad():
        for b in range(x.shape[1]):
            for m in exe.modules():
                if hasattr(m, "reset_mem"):
                    m.reset_mem()
            state, o = None, []
            for t in range(x.shape[0]):
                y, state = exe(x[t, b : b + 1], state)
                o.append(y.reshape(-1))
            outs.append(torch.stack(o))
    for h in hooks:
        h.remove()
    spikes = {
        n: torch.stack(v).reshape(x.shape[1], x.shape[0], -1).transpose(0, 1)
        for n, v in rec.items()
    }
    return spikes, torch.stack(outs, 1)


def _importer(lib):
    if lib == "nirtorch":
        return lambda g: nirtorch.nir_to_torch(g, nirtorch_node_map())
    if lib == "snntorch":
        from snntorch.import_nir import import_from_nir

        return import_from_nir
    sj = pytest.importorskip("spikingjelly.activation_based.nir_exchange")
    return sj.import_from_nir


def _check_equal(model, theirs_spikes, theirs_out, x):
    ours, out = _ours(model, x)
    assert set(theirs_spikes) == set(ours)
    for n, s in ours.items():
        assert torch.equal(theirs_spikes[n], s.reshape(*s.shape[:2], -1)), n
        assert 0 < float(s.mean()) < 1, n  # the comparison means something
    torch.testing.assert_close(theirs_out, out, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("lib", ["nirtorch", "snntorch", "spikingjelly"])
@pytest.mark.parametrize("name", ["resnet19", "sew_resnet"])
def test_residual_graphs_load_in_other_tools_spike_for_spike(tmp_path, name, lib):
    model = _small(name, mps=False)
    export_nir(model, tmp_path / "m.nir")
    exe = _importer(lib)(nir.read(str(tmp_path / "m.nir")))
    torch.manual_seed(1)
    x = (torch.rand(T, 2, *model.input_shape) < 0.5).float()
    spikes, out = _run_stepwise(exe, x)
    _check_equal(model, spikes, out, x)


@pytest.mark.parametrize("lib", ["nirtorch", "spikingjelly"])
def test_recurrent_graph_loads_in_other_tools_spike_for_spike(tmp_path, lib):
    model = _small("srnn", mps=False)
    export_nir(model, tmp_path / "m.nir")
    exe = _importer(lib)(nir.read(str(tmp_path / "m.nir")))
    torch.manual_seed(2)
    x = (torch.rand(T, 3, *model.input_shape) < 0.5).float()
    spikes, out = _run_stepwise(exe, x)
    _check_equal(model, spikes, out, x)


def test_recurrent_graph_is_snntorch_rleaky_spike_for_spike(tmp_path):
    from snntorch.import_nir import _nir_to_snntorch_module, _replace_rnn_subgraph_with_nirgraph

    model = _small("srnn", mps=False)
    export_nir(model, tmp_path / "m.nir")
    graph = _replace_rnn_subgraph_with_nirgraph(nir.read(str(tmp_path / "m.nir")))
    mods = {
        k: _nir_to_snntorch_module(v) for k, v in graph.nodes.items() if k in ("0_lif", "1_lif")
    }
    assert all(isinstance(m, snn.RLeaky) for m in mods.values())  # the cycle became RLeaky
    layers = {k: _nir_to_snntorch_module(graph.nodes[k]) for k in ("0_ff", "1_ff", "2")}
    torch.manual_seed(3)
    x = (torch.rand(T, 3, *model.input_shape) < 0.5).float()
    rec: dict[str, list[torch.Tensor]] = {k: [] for k in mods}
    outs = []
    with torch.no_grad():
        state = {k: m.init_rleaky() for k, m in mods.items()}
        for t in range(T):
            a = x[t]
            for ff, lif in (("0_ff", "0_lif"), ("1_ff", "1_lif")):
                state[lif] = mods[lif](layers[ff](a), *state[lif])
                a = state[lif][0]
                rec[lif].append(a)
            outs.append(layers["2"](a))
    _check_equal(model, {k: torch.stack(v) for k, v in rec.items()}, torch.stack(outs), x)


@pytest.mark.parametrize("name", ["resnet19", "sew_resnet", "srnn"])
def test_smoothed_graphs_run_through_nirtorch_with_our_node_map(name):
    """MPS on: the smoothing metadata on every LIF node carries alpha; nirtorch + our node map
    computes the model's outputs."""
    model = _small(name, mps=True)
    graph = model_to_nir(model)
    lifs = [n for n in graph.nodes.values() if isinstance(n, nir.LIF)]
    assert len(lifs) == len(model.lif_layers())
    assert sorted(n.metadata[METADATA_KEY]["mps_alpha"] for n in lifs) == pytest.approx(
        sorted(model.alphas().values())
    )
    torch.manual_seed(4)
    x = (torch.rand(T, 2, *model.input_shape) < 0.5).float()
    spikes, out = _run_stepwise(nirtorch.nir_to_torch(graph, nirtorch_node_map()), x)
    _check_equal(model, spikes, out, x)


def test_graph_structure_fan_in_fan_out_cycles():
    res = model_to_nir(_small("resnet19", mps=False))
    into = lambda g, n: [a for a, b in g.edges if b == n]  # noqa: E731
    out_of = lambda g, n: [b for a, b in g.edges if a == n]  # noqa: E731
    # every basic block: lif2 sums conv2 and the shortcut; the block input fans out
    assert [len(into(res, n)) for n in res.nodes if n.endswith("lif2")] == [2, 2, 2]
    assert sorted(out_of(res, "2")) == ["3_conv1_0", "3_lif2"]
    assert isinstance(res.nodes["5_shortcut_0"], nir.Conv2d)  # the 1x1 downsampling conv
    rnn = model_to_nir(_small("srnn", mps=False))
    for lif in ("0_lif", "1_lif"):
        assert (lif, f"{lif}_rec") in rnn.edges and (f"{lif}_rec", lif) in rnn.edges
        w = rnn.nodes[f"{lif}_rec"].weight
        assert isinstance(rnn.nodes[f"{lif}_rec"], nir.Linear) and w.shape[0] == w.shape[1]
    graph_model = to_graph(_small("srnn", mps=False))  # a GraphBody model exports the same
    assert model_to_nir(graph_model).edges == rnn.edges
    sew = model_to_nir(_small("sew_resnet", mps=False))
    assert max(len(into(sew, n)) for n in sew.nodes) == 3  # identity after identity: 3 terms
    assert np.all(sew.nodes["input"].input_type["input"] == np.array([2, 8, 8]))


def test_max_pool_still_refused_by_name():
    m = build_model("spiking_pointnet", (3, 16), 5, channels=(4,), hidden=(4,), pool="max")
    with pytest.raises(NIRConversionError, match="max over points has no NIR primitive"):
        model_to_nir(m)
