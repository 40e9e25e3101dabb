"""NIR export/import: exact round trips, metadata, and clear errors for bad graphs and files."""

import copy
import math

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.converters.nir_common import METADATA_KEY, NIRConversionError
from neurodeploy.converters.nir_export import export_nir, model_to_nir
from neurodeploy.converters.nir_import import NIRFileError, nir_to_model, read_nir
from neurodeploy.measure.analysis import run_recording_spikes
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.layers import LIF, NeuronConfig
from neurodeploy.nn.zoo import build_model

ZOO = [("mlp", (1, 8, 8)), ("vgg", (2, 12, 12)), ("conv1d", (1, 16)), ("pointnet", (3, 32))]
NEURONS = {
    "mps": dict(mps=True, alpha_init=0.3),
    "vanilla": dict(mps=False),
    "charge-soft": dict(mps=True, alpha_init=0.7, mps_mode="charge", reset="soft", tau=3.0),
}


def randomised(name, shape, neuron, seed=0):
    """A zoo model with non-trivial weights and BatchNorm statistics (eval mode)."""
    torch.manual_seed(seed)
    m = build_model(name, shape, 10, NeuronConfig(**neuron)).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.3, 0.3)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.8, 2.0)
                mod.bias.uniform_(-0.2, 0.4)
            if isinstance(mod, LIF) and mod.a is not None:
                mod.a.add_(0.123)  # an alpha that is not a round number
    return m


@pytest.mark.parametrize("neuron", list(NEURONS))
@pytest.mark.parametrize(("name", "shape"), ZOO)
def test_round_trip_is_exact(tmp_path, name, shape, neuron):
    model = randomised(name, shape, NEURONS[neuron])
    path = tmp_path / "m.nir"
    export_nir(model, path)
    back = nir_to_model(path)
    folded = fold_batchnorm(model)
    x = (torch.rand(8, 5, *shape, generator=torch.Generator().manual_seed(1)) < 0.3).float() * 1.5
    out_a, rec_a = run_recording_spikes(folded, x)
    out_b, rec_b = run_recording_spikes(back, x)
    assert torch.equal(out_a, out_b)
    assert len(rec_a) == len(rec_b) > 0
    for sa, sb in zip(rec_a, rec_b):
        assert torch.equal(sa, sb)
    assert sum(0 < float(s.mean()) < 1 for s in rec_a) >= len(rec_a) / 2  # non-trivial spike trains
    assert [l.alpha_value() for _, l in back.lif_layers()] == [
        l.alpha_value() for _, l in folded.lif_layers()
    ]
    # a second round trip writes the same graph
    g1, g2 = model_to_nir(model), model_to_nir(back)
    assert list(g1.nodes) == list(g2.nodes)
    for k in g1.nodes:
        for f in ("weight", "bias", "tau", "r", "v_threshold"):
            if hasattr(g1.nodes[k], f):
                assert np.array_equal(getattr(g1.nodes[k], f), getattr(g2.nodes[k], f)), (k, f)


def test_folding_keeps_the_function():
    model = randomised("vgg", (2, 12, 12), NEURONS["mps"])
    x = (torch.rand(4, 8, 2, 12, 12) < 0.3).float()
    with torch.no_grad():
        a, b = model(x), fold_batchnorm(model)(x)
    assert torch.allclose(a, b, atol=1e-4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fold_batchnorm(model).modules())


def test_lif_fields_follow_the_documented_convention():
    model = build_model(
        "mlp", (4,), 3, NeuronConfig(mps=True, tau=4.0, theta=0.75, alpha_init=0.25)
    )
    g = model_to_nir(model, dt=1e-3)
    lif = g.nodes["2_lif"]
    assert isinstance(lif, nir.LIF) and lif.tau.shape == (256,)
    assert np.allclose(lif.tau, 4e-3) and np.allclose(lif.r, 4.0)  # tau = dt*tau_steps, r = tau/dt
    assert (
        np.all(lif.v_threshold == np.float32(0.75))
        and not lif.v_leak.any()
        and not lif.v_reset.any()
    )
    meta = lif.metadata[METADATA_KEY]
    assert math.isclose(meta["mps_alpha"], 0.25, rel_tol=1e-6) and meta["mps_mode"] == "reset"
    assert g.metadata["dt"] == 1e-3 and g.metadata["producer"] == "neurodeploy"
    assert isinstance(g.nodes["0_flatten"], nir.Flatten) and g.nodes["0_flatten"].start_dim == 0
    assert tuple(g.nodes["input"].input_type["input"]) == (4,)  # no batch dimension


def test_dt_is_symmetric(tmp_path):
    model = randomised("mlp", (1, 8, 8), NEURONS["vanilla"])
    export_nir(model, tmp_path / "a.nir", dt=1e-3)
    back = nir_to_model(tmp_path / "a.nir")  # dt from the graph's metadata
    assert back.lif_layers()[0][1].params.tau == 2.0
    # forcing another dt reinterprets the time constants (tau_steps = tau/dt), loudly if absurd
    g = read_nir(tmp_path / "a.nir")
    for node in g.nodes.values():
        if isinstance(node, nir.LIF):
            node.metadata = {}
    assert nir_to_model(g, dt=5e-4).lif_layers()[0][1].params.tau == pytest.approx(4.0)
    with pytest.raises(NIRConversionError, match="tau"):
        nir_to_model(g, dt=1e-2)


def test_metadata_blind_import_is_a_vanilla_lif():
    model = randomised("mlp", (1, 8, 8), NEURONS["mps"])
    blind = nir_to_model(model_to_nir(model), ignore_metadata=True)
    assert all(not l.mps for _, l in blind.lif_layers())
    vanilla = copy.deepcopy(fold_batchnorm(model))
    for _, l in vanilla.lif_layers():
        l.a, l.mps = None, False
    x = torch.rand(6, 4, 1, 8, 8) * 2
    with torch.no_grad():
        assert torch.equal(blind(x), vanilla(x))


def _chain(*pairs):
    nodes = {"input": nir.Input(input_type=np.array([4]))}
    edges, prev = [], "input"
    for name, node in pairs:
        nodes[name], prev = node, (edges.append((prev, name)) or name)
    nodes["output"] = nir.Output(output_type=np.array([3]))
    edges.append((prev, "output"))
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _affine(n_in=4, n_out=3):
    return nir.Affine(weight=np.ones((n_out, n_in), np.float32), bias=np.zeros(n_out, np.float32))


def _lif3(**over):
    f = dict(
        tau=np.full(3, 2e-4),
        r=np.full(3, 2.0),
        v_leak=np.zeros(3),
        v_threshold=np.ones(3),
        v_reset=np.zeros(3),
    )
    f.update(over)
    return nir.LIF(**{k: np.asarray(v, np.float32) for k, v in f.items()})


@pytest.mark.parametrize(
    ("graph", "node", "field"),
    [
        (
            lambda: _chain(("fc", _affine()), ("thr", nir.Threshold(threshold=np.ones(3)))),
            "thr",
            None,
        ),
        (lambda: _chain(("fc", _affine(n_in=5))), "fc", "weight"),
        (
            lambda: _chain(
                ("fc", _affine()),
                (
                    "lif",
                    _lif3(
                        tau=np.full(4, 2e-4),
                        r=np.full(4, 2.0),
                        v_leak=np.zeros(4),
                        v_threshold=np.ones(4),
                        v_reset=np.zeros(4),
                    ),
                ),
            ),
            "lif",
            "v_threshold",
        ),
        (
            lambda: _chain(("fc", _affine()), ("lif", _lif3(tau=np.array([2e-4, np.nan, 2e-4])))),
            "lif",
            "tau",
        ),
        (
            lambda: _chain(
                (
                    "fc",
                    nir.Affine(
                        weight=np.full((3, 4), np.inf, np.float32), bias=np.zeros(3, np.float32)
                    ),
                )
            ),
            "fc",
            "weight",
        ),
        (
            lambda: _chain(("fc", _affine()), ("lif", _lif3(v_leak=np.full(3, 0.1)))),
            "lif",
            "v_leak",
        ),
        (
            lambda: _chain(("fc", _affine()), ("lif", _lif3(v_reset=np.full(3, -1.0)))),
            "lif",
            "v_reset",
        ),
        (
            lambda: _chain(("fc", _affine()), ("lif", _lif3(tau=np.array([2e-4, 3e-4, 2e-4])))),
            "lif",
            "tau",
        ),
    ],
)
def test_bad_graphs_name_node_and_field(graph, node, field):
    with pytest.raises(NIRConversionError) as e:
        nir_to_model(graph())
    assert e.value.node == node and e.value.field == field
    assert repr(node) in str(e.value)


def test_missing_field_names_node_and_field():
    g = _chain(("fc", _affine()))
    del g.nodes["fc"].bias
    with pytest.raises(NIRConversionError, match="'fc'.*'bias'"):
        nir_to_model(g)


def test_branches_and_cycles_are_refused():
    g = _chain(
        ("fc", _affine()),
        ("fc2", nir.Affine(weight=np.ones((3, 3), np.float32), bias=np.zeros(3, np.float32))),
    )
    g.edges.append(("fc2", "fc"))  # recurrent edge
    with pytest.raises(NIRConversionError, match="recurrent"):
        nir_to_model(g)


def test_bad_files(tmp_path):
    good = tmp_path / "good.nir"
    export_nir(randomised("mlp", (1, 8, 8), NEURONS["mps"]), good)
    data = good.read_bytes()
    (tmp_path / "trunc.nir").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.nir").write_text("not a graph")
    for path, match in (
        (tmp_path / "trunc.nir", "trunc.nir"),
        (tmp_path / "text.nir", "not an HDF5"),
        (tmp_path, "directory"),
        (tmp_path / "none.nir", "no such file"),
    ):
        with pytest.raises(NIRFileError, match=match):
            nir_to_model(path)
    assert good.read_bytes() == data  # reading never writes


def test_unknown_node_type_in_a_file(tmp_path):
    import h5py

    path = tmp_path / "m.nir"
    export_nir(randomised("mlp", (1, 8, 8), NEURONS["mps"]), path)
    with h5py.File(path, "r+") as f:
        del f["node/nodes/2_lif/type"]
        f["node/nodes/2_lif/type"] = b"FancyNeuron"
        del f["node/nodes/1_linear/bias"]
    with pytest.raises(NIRConversionError, match="'1_linear', field 'bias'|'2_lif', field 'type'"):
        read_nir(path)


# ---- property test: mutated graphs give a model or one of our documented errors, nothing else
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_BASE = {}


def _base_graph(kind):
    if kind not in _BASE:
        name, shape = {"mlp": ZOO[0], "vgg": ZOO[1], "conv1d": ZOO[2], "pointnet": ZOO[3]}[kind]
        _BASE[kind] = model_to_nir(randomised(name, shape, NEURONS["mps"]))
    return copy.deepcopy(_BASE[kind])


def _mutate(g, node_i, kind, field_i, value):
    names = [n for n in g.nodes if n not in ("input", "output")]
    name = names[node_i % len(names)]
    node = g.nodes[name]
    fields = [f for f, v in vars(node).items() if f not in ("input_type", "output_type")]
    field = fields[field_i % len(fields)]
    if kind == "nan":
        v = getattr(node, field)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and v.size:
            v = v.copy()
            v.flat[field_i % v.size] = value
            setattr(node, field, v)
    elif kind == "drop_field":
        delattr(node, field)
    elif kind == "truncate":
        v = getattr(node, field)
        if isinstance(v, np.ndarray) and v.ndim and v.shape[0] > 1:
            setattr(node, field, v[:-1])
    elif kind == "scale":
        v = getattr(node, field)
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            setattr(node, field, v * value)
    elif kind == "drop_edge":
        g.edges.pop(node_i % len(g.edges))
    elif kind == "add_edge":
        g.edges.append((name, names[field_i % len(names)]))
    elif kind == "replace_node":
        g.nodes[name] = [
            nir.Threshold(threshold=np.ones(3)),
            nir.Delay(delay=np.ones(3)),
            nir.Scale(scale=np.full(3, value)),
            _affine(),
        ][field_i % 4]
    elif kind == "metadata":
        node.metadata = {
            METADATA_KEY: {"mps_alpha": value, "mps_mode": ["reset", "x"][field_i % 2]}
        }
    return g


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    base=st.sampled_from(["mlp", "vgg", "conv1d", "pointnet"]),
    node_i=st.integers(0, 50),
    kind=st.sampled_from(
        [
            "nan",
            "drop_field",
            "truncate",
            "scale",
            "drop_edge",
            "add_edge",
            "replace_node",
            "metadata",
        ]
    ),
    field_i=st.integers(0, 50),
    value=st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -1.0, 1.5, 1e9]),
)
def test_mutated_graphs_fail_only_with_documented_errors(base, node_i, kind, field_i, value):
    g = _mutate(_base_graph(base), node_i, kind, field_i, value)
    error: NIRConversionError | NIRFileError | None = None
    try:
        model = nir_to_model(g)
    except (NIRConversionError, NIRFileError) as e:
        error = e
    if error is not None:
        assert "node" in str(error) or ".nir" in str(error)
        return
    x = torch.rand(2, 2, *model.input_shape)
    with torch.no_grad():
        assert model(x).shape[:2] == (2, 2)  # whatever loads, runs


def test_cli_export_and_inspect(tmp_path, capsys):
    from neurodeploy.cli import main
    from neurodeploy.converters.nir_inspect import summarize
    from neurodeploy.training.checkpoint import load_model
    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.loop import train

    train(
        TrainConfig(task="digits", model="mlp", T=2, epochs=1, arch={"hidden": [16]}),
        out_dir=tmp_path / "run",
        progress=False,
    )
    assert (
        main(["export", str(tmp_path / "run" / "checkpoint.pt"), "-o", str(tmp_path / "m.nir")])
        == 0
    )
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "m.nir")]) == 0
    text = capsys.readouterr().out
    # Flatten(64) -> Affine 64x16 (BN folded) -> LIF(16) -> Affine 16x10
    assert "neurons: 16; synaptic weights: 1184; synaptic connections: 1184" in text
    assert "smoothed (MPS) neurons in: 2_lif" in text and "mps_alpha" in text
    model, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    x = torch.rand(3, 2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(nir_to_model(tmp_path / "m.nir")(x), fold_batchnorm(model)(x))
    conv = summarize(model_to_nir(build_model("vgg", (2, 4, 4), 3, NeuronConfig(mps=False))))
    c0 = next(s for s in conv if s.type == "Conv2d")
    assert c0.weights == 32 * 2 * 9 and c0.connections == 32 * 4 * 4 * 2 * 9  # padding counted
    assert main(["inspect", str(tmp_path / "run" / "checkpoint.pt")]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "x.nir")]) == 2
    assert not (tmp_path / "x.nir").exists()


def test_sumpool_scale_and_li_from_other_producers():
    w = np.arange(12, dtype=np.float32).reshape(3, 4) / 10
    g = nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([1, 4, 4])),
            "pool": nir.SumPool2d(
                kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])
            ),
            "flat": nir.Flatten(input_type={"input": np.array([1, 2, 2])}, start_dim=0, end_dim=-1),
            "scale": nir.Scale(scale=np.full(4, 0.5, np.float32)),
            "fc": nir.Affine(weight=w, bias=np.zeros(3, np.float32)),
            "li": nir.LI(
                tau=np.full(3, 2e-4, np.float32),
                r=np.full(3, 2.0, np.float32),
                v_leak=np.zeros(3, np.float32),
            ),
            "out": nir.Output(output_type=np.array([3])),
        },
        edges=[
            ("in", "pool"),
            ("pool", "flat"),
            ("flat", "scale"),
            ("scale", "fc"),
            ("fc", "li"),
            ("li", "out"),
        ],
    )
    m = nir_to_model(g)
    x = torch.rand(3, 2, 1, 4, 4)
    pooled = x.reshape(3, 2, 2, 2, 2, 2).sum((3, 5)).reshape(3, 2, 4) * 0.5  # 2x2 sums
    cur = pooled @ torch.from_numpy(w).T
    v, want = torch.zeros(2, 3), []
    for t in range(3):  # LI with beta = 1 - dt/tau = 0.5, gain r*dt/tau = 1
        v = 0.5 * v + cur[t]
        want.append(v)
    with torch.no_grad():
        assert torch.allclose(m(x), torch.stack(want), atol=1e-6)
    again = model_to_nir(m)
    assert [type(n).__name__ for n in again.nodes.values()][1:-1] == [
        "SumPool2d",
        "Flatten",
        "Scale",
        "Affine",
        "LI",
    ]


def _conv2d_graph(stride, padding):
    """in (1, 4, 4) -> Conv2d(1 -> 1, 2x2 of ones) -> out, as another producer may write it."""
    conv = nir.Conv2d(
        input_shape=None,
        weight=np.ones((1, 1, 2, 2), np.float32),
        stride=stride,
        padding=padding,
        dilation=1,
        groups=1,
        bias=np.zeros(1, np.float32),
    )
    return nir.NIRGraph(
        nodes={
            "in": nir.Input(input_type=np.array([1, 4, 4])),
            "conv": conv,
            "out": nir.Output(output_type=np.array([1, 3, 3])),
        },
        edges=[("in", "conv"), ("conv", "out")],
        type_check=False,
    )


def test_conv2d_single_stride_value_applies_to_both_axes():
    m = nir_to_model(_conv2d_graph(np.array([2]), 1))  # one stride value, padding 1 on each side
    (conv,) = [l for l in m.modules() if isinstance(l, nn.Conv2d)]
    assert conv.stride == (2, 2) and conv.padding == (1, 1) and conv.dilation == (1, 1)
    # ones (4x4) padded to 6x6, 2x2 windows of ones at stride 2: a corner window holds one input
    # value, an edge window two, the centre four
    want = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]])
    with torch.no_grad():
        out = m(torch.ones(1, 1, 1, 4, 4))
    assert torch.equal(out[0, 0, 0], want)


def test_conv2d_geometry_of_the_wrong_length_names_node_and_field():
    with pytest.raises(NIRConversionError) as e:
        nir_to_model(_conv2d_graph(np.array([1, 1, 1]), 0))
    assert (e.value.node, e.value.field) == ("conv", "stride")
    assert "expected 1 or 2 values" in str(e.value)
