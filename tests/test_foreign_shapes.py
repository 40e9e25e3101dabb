"""Conv graphs in other producers' shapes (issue 15, item 3): a Scale after a conv (SpikingJelly's
LIF, norse and sinabs IF input gains) folds into the conv's weights and bias, and a SumPool or
AvgPool before a conv becomes the synapse's pool, so both stay convolution stages; they quantise,
run on the reference simulator and in Lava with the same spikes. A group that no convolution
describes but whose neuron layer is conv-shaped is refused by name before anything runs."""

from __future__ import annotations

import itertools
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.measure.analysis import run_recording_spikes
from neurodeploy.nn.layers import LIF, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.quant.stages import model_stages
from neurodeploy.targets.reference import ReferenceTarget

SINABS_CNN = Path(__file__).parents[2] / "shared" / "fixtures" / "nir-paper" / "cnn_sinabs.nir"
GAIN = torch.tensor([0.5, 1.0, 2.0, 1.5])  # per-channel input gains (exact in binary)


def _lif() -> LIF:
    return LIF(tau=2.0, theta=0.5, mps=False)


def _conv(c_in: int, c_out: int, seed: int) -> nn.Conv2d:
    torch.manual_seed(seed)
    return nn.Conv2d(c_in, c_out, 3, padding=1)


# --- (a) the folds, against hand-computed weights --------------------------------------------------
@pytest.mark.parametrize(
    "scale",
    [GAIN.reshape(4, 1, 1), GAIN.reshape(4, 1, 1).expand(4, 6, 6).clone(), torch.tensor(0.25)],
    ids=["per-channel", "per-neuron-constant-per-channel", "scalar"],
)
def test_scale_after_conv_folds_into_weights_and_bias(scale: torch.Tensor) -> None:
    conv = _conv(2, 4, 0)
    body = nn.Sequential(PerStep(conv), PerStep(Scale(scale)), _lif())
    model = SpikingNet("conv-scale", body, (2, 6, 6), 4).eval()
    (st,) = model_stages(model)
    g = torch.broadcast_to(scale.double(), (4, 6, 6))[:, 0, 0].numpy()
    w = conv.weight.detach().double().numpy()
    assert st.kind == "conv2d" and st.synapse.pool == () and st.out_shape == (4, 6, 6)
    # y = g (conv(x, W) + b) = conv(x, g W) + g b
    assert np.array_equal(st.synapse.weight, w * g[:, None, None, None])
    assert np.array_equal(st.bias, conv.bias.detach().double().numpy() * g)
    x = torch.rand(3, 2, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        ref = conv.double()(x) * scale.double()
    assert torch.allclose(st.apply(x), ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("divisor", "factor"), [(1, 1.0), (None, 0.25)], ids=["sum", "avg"])
def test_pool_before_conv_is_the_synapse_pool(divisor: int | None, factor: float) -> None:
    """SumPool(2) = AvgPool(2) x 4: the kernel is W (sum) or W / 4 (average), the pool is data."""
    conv = _conv(2, 3, 1)
    pool = nn.AvgPool2d(2, divisor_override=divisor)
    body = nn.Sequential(PerStep(pool), PerStep(conv), _lif())
    model = SpikingNet("pool-conv", body, (2, 8, 8), 3).eval()
    (st,) = model_stages(model)
    assert st.kind == "conv2d" and st.synapse.pool == (2, 2)
    assert (st.in_shape, st.out_shape) == ((2, 8, 8), (3, 4, 4))
    assert np.array_equal(st.synapse.weight, conv.weight.detach().double().numpy() * factor)
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64)
    with torch.no_grad():
        ref = conv.double()(pool(x))
    assert torch.allclose(st.apply(x), ref, rtol=0, atol=1e-12)


# --- (b) shapes that cannot be reconciled: a named error, before torch or Lava runs ---------------
def test_conv_shaped_neuron_behind_a_dense_map_is_refused_by_name() -> None:
    """A gain that varies within a channel is no convolution: the group is a dense matrix, whose
    flat output cannot be the (4, 6, 6) neuron layer's state."""
    varying = torch.arange(1.0, 1.0 + 4 * 36).reshape(4, 6, 6) / 64
    body = nn.Sequential(PerStep(_conv(2, 4, 0)), PerStep(Scale(varying)), _lif())
    model = SpikingNet("odd-gain", body, (2, 6, 6), 4).eval()
    (st,) = model_stages(model)
    assert st.kind == "dense"
    prog = quantize_model(model)
    msg = r"layer body\.2: .* 144 flat outputs, but its neuron layer has shape \(4, 6, 6\)"
    with pytest.raises(ValueError, match=msg):
        ReferenceTarget(prog, device="cpu")
    with pytest.raises(ValueError, match=msg):
        prog.validate()  # what LavaTarget and the netx export call before building anything


# --- end to end: quantise, reference, Lava, float-vs-integer agreement -----------------------------
def _both_patterns() -> SpikingNet:
    """Conv -> Scale -> LIF, then SumPool -> Conv -> Scale -> LIF, Flatten, Linear readout."""
    body = nn.Sequential(
        PerStep(_conv(2, 4, 2)),
        PerStep(Scale(GAIN.reshape(4, 1, 1))),
        _lif(),
        PerStep(nn.AvgPool2d(2, divisor_override=1)),
        PerStep(_conv(4, 6, 3)),
        PerStep(Scale(torch.tensor(0.5))),
        _lif(),
        PerStep(nn.Flatten()),
        PerStep(nn.Linear(6 * 4 * 4, 3)),
    )
    return SpikingNet("foreign-shapes", body, (2, 8, 8), 3).eval()


def _sinabs_cnn() -> SpikingNet:
    if not SINABS_CNN.is_file():
        pytest.skip(f"{SINABS_CNN} not present (the shared fixtures are not in a user's clone)")
    from neurodeploy.converters.nir_import import nir_to_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sinabs writes no dt; IF gain r*dt = 1 at dt = 1
        return nir_to_model(SINABS_CNN, dt=1.0).eval()


def _agreement(model: SpikingNet, prog: IntProgram, x: torch.Tensor) -> list[float]:
    """Per neuron layer: the fraction of (step, sample, neuron) where the float import and the
    reference simulator spike alike."""
    with torch.no_grad():
        _, rec = run_recording_spikes(model, x)
    ref = ReferenceTarget(prog, device="cpu").run(x.numpy().astype(np.int64))
    assert len(ref.spikes) == len(rec)
    return [float((a == b.numpy()).mean()) for a, b in zip(ref.spikes, rec, strict=True)]


# (model, T, input rate, measured agreement floor per layer)
CASES = {"both-patterns": (_both_patterns, 8, 0.3, 0.95), "cnn_sinabs": (_sinabs_cnn, 12, 0.1, 0.9)}


@pytest.fixture(scope="module", params=list(CASES))
def deployed(request: pytest.FixtureRequest) -> tuple[str, SpikingNet, IntProgram, torch.Tensor]:
    build, T, rate, _ = CASES[request.param]
    model = build()
    torch.manual_seed(0)
    x = (torch.rand(T, 8, *model.input_shape) < rate).float()
    return request.param, model, quantize_model(model), x


def test_conv_stages_and_float_integer_agreement(deployed) -> None:
    name, model, prog, x = deployed
    stages = model_stages(model)
    convs = [st for st in stages if st.kind != "dense"]
    assert convs and all(math.prod(st.out_shape) > 0 for st in convs)
    assert any(st.synapse.pool for st in convs)  # the sum pool stayed on a conv synapse
    assert all(len(st.out_shape) == 1 for st in stages if st.kind == "dense")
    agree = _agreement(model, prog, x)
    rates = [float(s.mean()) for s in ReferenceTarget(prog, device="cpu").run(x.numpy()).spikes]
    print(f"\n{name}: float-vs-integer spike agreement per layer {np.round(agree, 4).tolist()}")
    print(f"{name}: integer spike rates per layer {np.round(rates, 4).tolist()}")
    assert all(r > 0 for r in rates)  # no silent layer: the agreement is not trivially 1
    assert min(agree) >= CASES[name][3]


@pytest.mark.lava
def test_lava_equals_the_reference_with_latency(deployed) -> None:
    pytest.importorskip("lava.magma.core.run_configs")
    from neurodeploy.targets.lava import LavaTarget

    _, _, prog, x = deployed
    x_int, _ = prog.quantize_input(x[:, :2].numpy())
    lava = LavaTarget(prog).run(x_int)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x_int, steps=lava.steps)
    assert len(lava.spikes) == len(ref.spikes)
    for a, b in zip(lava.spikes, ref.spikes, strict=True):
        assert np.array_equal(a, b)
    if ref.output is not None:
        assert np.array_equal(lava.output, ref.output)
    assert lava.predictions().tolist() == ref.predictions().tolist()


# --- hand-built NIR graphs in other producers' layouts (Scale before conv, Flatten anywhere,
# flat and channel-last neuron parameters): stages, quantise, reference, Lava -----------------------
def _nir_graph(nodes: list, in_shape: tuple[int, ...]):
    nir = pytest.importorskip("nir")
    names = ["input", *(f"n{i}" for i in range(len(nodes))), "output"]
    d = {"input": nir.Input(np.array(in_shape)), "output": nir.Output(np.array([]))}
    d.update(zip(names[1:-1], nodes, strict=True))
    return nir.NIRGraph(nodes=d, edges=list(itertools.pairwise(names)), type_check=False)


def _nir_nodes(pattern: str) -> list:
    import nir

    rng = np.random.default_rng(0)

    def conv(ci: int, co: int):
        w = (rng.normal(size=(co, ci, 3, 3)) * 0.8).astype(np.float32)
        return nir.Conv2d(None, w, 1, 1, 1, 1, np.zeros(co, np.float32))

    def lif(shape: tuple[int, ...]):
        f = np.full  # tau 2e-4 s at dt 1e-4: 2 steps; r = 2: input gain r dt / tau = 1
        return nir.LIF(f(shape, 2e-4), f(shape, 2.0), np.zeros(shape), f(shape, 0.5))

    def affine(n_out: int, n_in: int):
        return nir.Affine(rng.normal(size=(n_out, n_in)).astype(np.float32), np.zeros(n_out))

    def flatten(shape: tuple[int, ...]):
        return nir.Flatten({"input": np.array(shape)}, 0, -1)

    gain_c = np.array([0.5, 2.0], np.float32)
    gain_out = np.array([0.5, 1.0, 2.0, 1.5], np.float32)
    sumpool = nir.SumPool2d(np.array([2, 2]), np.array([2, 2]), np.array([0, 0]))
    return {
        "scale-before-conv": [nir.Scale(gain_c.reshape(2, 1, 1)), conv(2, 4), lif((4, 6, 6))],
        "conv-flatten-lif-affine": [
            conv(2, 4), flatten((4, 6, 6)), lif((144,)), affine(5, 144), lif((5,))
        ],
        "conv-flat-lif-affine": [conv(2, 4), lif((144,)), affine(5, 144), lif((5,))],
        "conv-hwc-scale-lif": [
            conv(2, 4), nir.Scale(np.tile(gain_out, (6, 6, 1))), lif((6, 6, 4)),
            sumpool, flatten((4, 3, 3)), affine(5, 36), lif((5,)),
        ],
        "flatten-after-input": [flatten((2, 6, 6)), affine(5, 72), lif((5,))],
        "conv-flatten-lif-last": [conv(2, 4), flatten((4, 6, 6)), lif((144,))],
    }[pattern]  # fmt: skip


# pattern -> stage kinds; measured float-vs-integer agreement floor (min over layers)
NIR_PATTERNS = {
    "scale-before-conv": (["conv2d"], 0.95),
    "conv-flatten-lif-affine": (["conv2d", "dense"], 0.95),
    "conv-flat-lif-affine": (["conv2d", "dense"], 0.95),
    "conv-hwc-scale-lif": (["conv2d", "dense"], 0.95),
    "flatten-after-input": (["dense"], 0.95),
    "conv-flatten-lif-last": (["conv2d"], 0.95),
}


@pytest.fixture(scope="module", params=list(NIR_PATTERNS))
def nir_pattern(request: pytest.FixtureRequest):
    from neurodeploy.converters.nir_import import nir_to_model

    model = nir_to_model(_nir_graph(_nir_nodes(request.param), (2, 6, 6)), dt=1e-4).eval()
    torch.manual_seed(0)
    x = (torch.rand(10, 4, 2, 6, 6) < 0.3).float()
    return request.param, model, quantize_model(model), x


def test_nir_layouts_stay_convolutional(nir_pattern) -> None:
    name, model, prog, x = nir_pattern
    kinds, floor = NIR_PATTERNS[name]
    assert [st.kind for st in model_stages(model)] == kinds
    with torch.no_grad():
        _, rec = run_recording_spikes(model, x)
    ref = ReferenceTarget(prog, device="cpu").run(x.numpy().astype(np.int64))
    agree = [
        float((a.reshape(b.shape) == b.numpy()).mean())  # a flat float LIF is a view of the conv's
        for a, b in zip(ref.spikes, rec, strict=True)
    ]
    rates = [float(s.mean()) for s in ref.spikes]
    print(f"\n{name}: float-vs-integer agreement {np.round(agree, 4).tolist()}, rates {rates}")
    assert all(r > 0 for r in rates) and min(agree) >= floor


def test_scale_before_conv_folds_per_input_channel() -> None:
    """conv(g x, W) = conv(x, W'), W'[:, c] = g[c] W[:, c]; the bias is untouched."""
    conv = _conv(2, 4, 5)
    g = torch.tensor([0.5, 2.0]).reshape(2, 1, 1)
    body = nn.Sequential(PerStep(Scale(g)), PerStep(conv), _lif())
    (st,) = model_stages(SpikingNet("scale-conv", body, (2, 6, 6), 4).eval())
    w = conv.weight.detach().double().numpy()
    assert st.kind == "conv2d"
    assert np.array_equal(st.synapse.weight, w * np.array([0.5, 2.0])[None, :, None, None])
    assert np.array_equal(st.bias, conv.bias.detach().double().numpy())


@pytest.mark.lava
def test_nir_layouts_lava_equals_the_reference(nir_pattern) -> None:
    pytest.importorskip("lava.magma.core.run_configs")
    from neurodeploy.targets.lava import LavaTarget

    _, _, prog, x = nir_pattern
    x_int, _ = prog.quantize_input(x[:, :2].numpy())
    lava = LavaTarget(prog).run(x_int)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x_int, steps=lava.steps)
    for a, b in zip(lava.spikes, ref.spikes, strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("node", "field", "shapes"),
    [("lif", "v_threshold", r"\(5, 6, 6\) \(180 neurons\).*\(4, 6, 6\)"),
     ("scale", "scale", r"\(3, 1, 1\).*\(4, 6, 6\)")],
)  # fmt: skip
def test_unreconcilable_neuron_shapes_are_named(node: str, field: str, shapes: str) -> None:
    import nir

    from neurodeploy.converters.nir_common import NIRConversionError
    from neurodeploy.converters.nir_import import nir_to_model

    conv = nir.Conv2d(None, np.ones((4, 2, 3, 3), np.float32), 1, 1, 1, 1, np.zeros(4))
    bad = (
        nir.LIF(*(np.full((5, 6, 6), v) for v in (2e-4, 2.0, 0.0, 0.5)))
        if node == "lif"
        else nir.Scale(np.ones((3, 1, 1), np.float32))
    )
    with pytest.raises(NIRConversionError, match=rf"node 'n1', field '{field}'.*{shapes}"):
        nir_to_model(_nir_graph([conv, bad], (2, 6, 6)), dt=1e-4)


def test_flatten_between_conv_and_lif_in_a_torch_model() -> None:
    """Conv -> Flatten -> LIF -> Linear built in torch: the Flatten moves after the LIF
    (elementwise, so the same spikes), the conv stays a convolution with (C, H, W) neurons."""
    body = nn.Sequential(
        PerStep(_conv(2, 4, 6)), PerStep(nn.Flatten()), _lif(), PerStep(nn.Linear(144, 3))
    )
    stages = model_stages(SpikingNet("conv-flat", body, (2, 6, 6), 3).eval())
    assert [(st.kind, st.out_shape) for st in stages] == [("conv2d", (4, 6, 6)), ("dense", (3,))]
    assert stages[1].in_shape == (4, 6, 6)


@pytest.mark.parametrize("pattern", ["scale-before-conv", "conv-flatten-lif-affine"])
def test_nir_layouts_through_the_cli(pattern: str, tmp_path: Path, capsys) -> None:
    import nir

    from neurodeploy.cli import main

    nodes = _nir_nodes(pattern)
    for n in nodes:
        if isinstance(n, nir.Conv2d):
            n.input_shape = np.array([6, 6])  # nir.write needs it (the importer does not)
    f = tmp_path / f"{pattern}.nir"
    nir.write(str(f), _nir_graph(nodes, (2, 6, 6)))
    rnd = ["--random-input", "0.3", "--T", "8", "--samples", "4", "--dt", "1e-4"]
    for args in (
        ["quantize", str(f), *rnd, "-o", str(tmp_path / "q.int.npz")],
        ["verify", str(f), *rnd, "--no-lava"],
        ["resources", str(f), "--dt", "1e-4"],
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(args)
        out = capsys.readouterr()
        assert rc == 0, f"{args[0]}: {out.err}{out.out}"
        assert "conv2d" in out.out or args[0] == "verify"
