"""Interoperability through NIR files with snntorch (its own exporter and importer) and nirtorch."""

import warnings

import nir
import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch")
from snntorch.export_nir import export_to_nir  # noqa: E402
from snntorch.import_nir import import_from_nir  # noqa: E402

from neurodeploy.converters.nir_export import export_nir  # noqa: E402
from neurodeploy.converters.nir_import import nir_to_model  # noqa: E402
from neurodeploy.converters.nirtorch_bridge import nirtorch_node_map  # noqa: E402
from neurodeploy.measure.analysis import run_recording_spikes  # noqa: E402
from neurodeploy.nn.layers import NeuronConfig  # noqa: E402
from neurodeploy.nn.zoo import build_model  # noqa: E402

T = 25
warnings.filterwarnings("ignore", module="snntorch")
warnings.filterwarnings("ignore", module="nirtorch")


def _snn_spikes(net, x):
    """Run an snntorch Sequential (init_hidden=True neurons) step by step; spikes of every neuron layer."""
    leaky = [m for m in net.modules() if isinstance(m, (snn.Leaky, snn.Synaptic))]
    for m in leaky:
        m.reset_mem()
    rec = {i: [] for i in range(len(leaky))}
    hooks = [
        m.register_forward_hook(
            lambda _m, _i, o, i=i: rec[i].append(o[0] if isinstance(o, tuple) else o)
        )
        for i, m in enumerate(leaky)
    ]
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
    for h in hooks:
        h.remove()
    return [torch.stack(v) for v in rec.values()]


def _our_spikes(model, x):
    out, rec = run_recording_spikes(model, x)
    return rec, out


def _full(shape, v):
    return torch.full(shape, float(v))


@pytest.mark.parametrize(("beta", "thr"), [(0.5, 1.0), (0.9, 1.5), (0.95, 0.7)])
def test_snntorch_mlp_to_us(tmp_path, beta, thr):
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 12),
        snn.Leaky(
            beta=_full((12,), beta),
            threshold=_full((12,), thr),
            init_hidden=True,
            reset_mechanism="zero",
        ),
        nn.Linear(12, 4),
        snn.Leaky(
            beta=_full((4,), beta),
            threshold=_full((4,), thr),
            init_hidden=True,
            reset_mechanism="zero",
            output=True,
        ),
    )
    with torch.no_grad():
        for lin in (net[0], net[2]):
            lin.weight.mul_(3.0)
    nir.write(str(tmp_path / "snn.nir"), export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0]))
    ours = nir_to_model(tmp_path / "snn.nir")
    x = torch.rand(T, 3, 6)
    ref = _snn_spikes(net, x)
    got, out = _our_spikes(ours, x)
    assert len(got) == len(ref) == 2
    for a, b in zip(ref, got):
        assert torch.equal(a, b)
    assert 0 < float(ref[0].mean()) < 1 and float(ref[1].sum()) > 0  # non-trivial activity
    assert torch.equal(out, ref[-1])


def test_snntorch_conv_to_us(tmp_path):
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        snn.Leaky(
            beta=_full((4, 6, 6), 0.7),
            threshold=_full((4, 6, 6), 1.0),
            init_hidden=True,
            reset_mechanism="zero",
        ),
        nn.AvgPool2d((2, 2)),
        nn.Flatten(),
        nn.Linear(36, 5),
        snn.Leaky(
            beta=_full((5,), 0.7),
            threshold=_full((5,), 1.0),
            init_hidden=True,
            reset_mechanism="zero",
            output=True,
        ),
    )
    with torch.no_grad():
        net[0].weight.mul_(3.0)
        net[4].weight.abs_().mul_(6.0)
    nir.write(
        str(tmp_path / "conv.nir"), export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0])
    )
    ours = nir_to_model(tmp_path / "conv.nir")
    x = torch.rand(T, 2, 1, 8, 8)
    ref = _snn_spikes(net, x)
    got, _ = _our_spikes(ours, x)
    for a, b in zip(ref, got, strict=True):
        assert torch.equal(a, b)
    assert 0 < float(ref[0].mean()) < 1 and float(ref[1].sum()) > 0


def test_snntorch_synaptic_to_us(tmp_path):
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Linear(5, 8),
        snn.Synaptic(
            alpha=_full((8,), 0.8),
            beta=_full((8,), 0.5),
            threshold=_full((8,), 1.0),
            init_hidden=True,
            output=True,
            reset_mechanism="zero",
            reset_delay=False,
        ),
    )
    with torch.no_grad():
        net[0].weight.uniform_(0, 0.4)
    nir.write(str(tmp_path / "syn.nir"), export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0]))
    graph = nir.read(str(tmp_path / "syn.nir"))
    assert any(isinstance(n, nir.CubaLIF) for n in graph.nodes.values())
    ours = nir_to_model(tmp_path / "syn.nir")
    x = torch.rand(T, 3, 5)
    (ref,) = _snn_spikes(net, x)
    (got,), _ = _our_spikes(ours, x)
    assert torch.equal(ref, got) and 0 < float(ref.mean()) < 1


def _vanilla(name, shape, seed):
    torch.manual_seed(seed)
    m = build_model(name, shape, 5, NeuronConfig(mps=False, tau=4.0)).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_var.uniform_(0.3, 1.0)
                mod.weight.uniform_(1.0, 2.0)
    return m


@pytest.mark.parametrize(("name", "shape"), [("mlp", (1, 6, 6)), ("vgg", (2, 8, 8))])
def test_us_to_snntorch(tmp_path, name, shape):
    model = _vanilla(name, shape, 3)
    export_nir(model, tmp_path / "ours.nir")
    net = import_from_nir(nir.read(str(tmp_path / "ours.nir")))
    leaky = [m for m in net.modules() if isinstance(m, snn.Leaky)]
    assert len(leaky) == len(model.lif_layers())
    x = (torch.rand(T, 3, *shape) < 0.4).float()
    ours, out = _our_spikes(model, x)
    # snntorch's imported Flatten also flattens the batch axis: one sample at a time
    for b in range(x.shape[1]):
        for m in leaky:
            m.reset_mem()
        rec = {i: [] for i in range(len(leaky))}
        hooks = [
            m.register_forward_hook(
                lambda _m, _i, o, i=i, rec=rec: rec[i].append(o[0] if isinstance(o, tuple) else o)
            )
            for i, m in enumerate(leaky)
        ]
        outs, state = [], None
        with torch.no_grad():
            for t in range(T):
                o, state = net(x[t, b : b + 1], state)
                outs.append(o.reshape(-1))
        for h in hooks:
            h.remove()
        for i, ours_i in enumerate(ours):
            theirs = torch.stack(rec[i]).reshape(T, -1)
            assert torch.equal(theirs, ours_i[:, b].reshape(T, -1)), f"layer {i}, sample {b}"
        assert torch.allclose(torch.stack(outs), out[:, b], atol=1e-5)
    assert all(0 < float(s.mean()) < 1 for s in ours)


@pytest.mark.parametrize("mps", [True, False])
def test_nirtorch_loads_our_graph_with_our_node_map(tmp_path, mps):
    import nirtorch

    torch.manual_seed(4)
    model = build_model("mlp", (1, 6, 6), 5, NeuronConfig(mps=mps, alpha_init=0.4)).eval()
    export_nir(model, tmp_path / "m.nir")
    exe = nirtorch.nir_to_torch(nir.read(str(tmp_path / "m.nir")), nirtorch_node_map())
    x = (torch.rand(T, 4, 1, 6, 6) < 0.4).float()
    with torch.no_grad():
        want = model(x)
        state, got = None, []
        for t in range(T):
            o, state = exe(x[t], state)
            got.append(o)
    assert torch.allclose(torch.stack(got), want, atol=1e-5)


def test_imported_synaptic_model_round_trips(tmp_path):
    """CubaLIF comes in as LI (synaptic current) + LIF; exported again and re-imported, same spikes."""
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Linear(5, 8),
        snn.Synaptic(
            alpha=_full((8,), 0.6),
            beta=_full((8,), 0.8),
            threshold=_full((8,), 1.0),
            init_hidden=True,
            output=True,
            reset_mechanism="zero",
            reset_delay=False,
        ),
    )
    with torch.no_grad():
        net[0].weight.uniform_(0, 0.5)
    nir.write(str(tmp_path / "syn.nir"), export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0]))
    first = nir_to_model(tmp_path / "syn.nir")
    export_nir(first, tmp_path / "again.nir")
    assert any(isinstance(n, nir.LI) for n in nir.read(str(tmp_path / "again.nir")).nodes.values())
    second = nir_to_model(tmp_path / "again.nir")
    x = torch.rand(T, 3, 5)
    with torch.no_grad():
        assert torch.equal(first(x), second(x)) and float(first(x).sum()) > 0
