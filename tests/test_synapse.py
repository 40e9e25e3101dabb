"""One synaptic-layer type: the pool kept as data, its folded equivalent, the walk over a model's
layers, the stage weights' closed forms against their definition, prepared integer layers, and
integer programs written in format version 1 (pooled kernels stored folded)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.neuron.fixedpoint import STATE_LIMIT
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.layers import LIF, NeuronConfig, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import layer_groups
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.prepared import PreparedLayer
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.quant.qat import programs_equal
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.quant.stages import dense_from_chain, model_stages
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.reference import ReferenceTarget

FIXTURES = Path(__file__).parent / "fixtures"


# --- the synapse ----------------------------------------------------------------------------------
def test_pool_then_conv_by_hand_and_its_folded_equivalent() -> None:
    """x = 1..5, sum-pool 2 (the 5 is dropped): [3, 7]; kernel [1, -1]: 3 - 7 = -4. Folded: kernel
    [1, 1, -1, -1], stride 2: 1 + 2 - 3 - 4 = -4."""
    s = Synapse("conv1d", np.array([[[1, -1]]], np.int32), (1, 5), (1, 1), (1,), (0,), pool=(2,))
    x = torch.arange(1.0, 6.0).view(1, 1, 5)
    assert s.apply(x).tolist() == [[[-4.0]]]
    f = s.pool_folded()
    assert f.weight.tolist() == [[[1, 1, -1, -1]]] and (f.stride, f.padding, f.pool) == (
        (2,),
        (0,),
        (),
    )
    assert f.apply(x).tolist() == [[[-4.0]]]
    assert (s.num_weights, s.fan_in, s.dense_ops(), s.max_fan_in()) == (
        4,
        4,
        4,
        4,
    )  # counted folded


@pytest.mark.parametrize("dims", [1, 2])
@pytest.mark.parametrize(("size", "pad"), [((8, 10), 1), ((7, 9), 0)])
def test_pooled_synapse_equals_torch_avgpool_conv_and_its_folded_form(
    dims: int, size: tuple[int, ...], pad: int
) -> None:
    """Against torch's own AvgPool(2) + Conv(k3, stride 1) (unpadded on odd sizes: a remainder the
    pool drops): the float map matches to rounding, the integer map is exact in both forms."""
    torch.manual_seed(0)
    conv = (nn.Conv2d if dims == 2 else nn.Conv1d)(3, 4, 3, padding=pad, bias=False).double()
    pool = nn.AvgPool2d(2) if dims == 2 else nn.AvgPool1d(2)
    size = size[:dims]
    x = torch.rand(5, 3, *size, dtype=torch.float64)
    want = conv(pool(x))
    w = conv.weight.detach().numpy()
    s = Synapse(
        f"conv{dims}d",
        w / 2**dims,
        (3, *size),
        tuple(want.shape[1:]),
        (1,) * dims,
        (pad,) * dims,
        pool=(2,) * dims,
    )
    assert torch.allclose(s.apply(x), want, rtol=0, atol=1e-12)
    assert torch.allclose(s.pool_folded().apply(x), want, rtol=0, atol=1e-12)
    wi = np.random.default_rng(0).integers(-100, 100, size=w.shape).astype(np.int32) * 2
    si = Synapse(s.kind, wi, s.in_shape, s.out_shape, s.stride, s.padding, pool=s.pool)
    xi = torch.randint(0, 2, x.shape).double()
    assert torch.equal(si.apply(xi), si.pool_folded().apply(xi))


def test_a_padded_pool_over_a_remainder_is_refused_and_staged_dense() -> None:
    """Pool 2 on length 7 drops x[6]; the folded kernel with padding 2 would read it."""
    with pytest.raises(
        ValueError, match=r"layer p: pool \(2,\) leaves a remainder of input \(1, 7\)"
    ):
        Synapse(
            "conv1d", np.ones((1, 1, 3)), (1, 7), (1, 3), (1,), (1,), pool=(2,), where="layer p"
        )
    torch.manual_seed(0)
    body = nn.Sequential(
        PerStep(nn.Conv1d(1, 2, 3, padding=1)),
        LIF(),
        PerStep(nn.AvgPool1d(2)),
        PerStep(nn.Conv1d(2, 2, 3, padding=1)),
        LIF(),
        PerStep(nn.Flatten()),
        PerStep(nn.Linear(6, 2)),
    )
    model = SpikingNet("odd", body, (1, 7), 2).eval()
    st = model_stages(model)[1]
    assert st.kind == "dense"  # the definition (identity basis through pool and conv), exact
    x = torch.rand(4, 2, 7, dtype=torch.float64)
    chain = nn.Sequential(nn.AvgPool1d(2), copy.deepcopy(body[3].module).double())
    assert torch.allclose(st.apply(x), chain(x).flatten(1), rtol=0, atol=1e-12)


def test_inconsistent_geometry_is_refused_naming_the_layer() -> None:
    # length 8, pooled 4, kernel 3, padding 1: 4 outputs
    with pytest.raises(
        ValueError, match=r"layer c: output \(2, 2\) does not follow .*expected \(2, 4\)"
    ):
        Synapse(
            "conv1d", np.ones((2, 1, 3)), (1, 8), (2, 2), (1,), (1,), pool=(2,), where="layer c"
        )
    with pytest.raises(ValueError, match="layer d: a dense synapse has no stride"):
        Synapse("dense", np.ones((2, 3)), (3,), (2,), (1,), where="layer d")
    with pytest.raises(ValueError, match="layer e: synapse kind 'conv3d'"):
        Synapse("conv3d", np.ones((1, 1, 1, 1, 1)), (1, 1, 1, 1), (1, 1, 1, 1), where="layer e")


# --- the walk and the stages ----------------------------------------------------------------------
def test_layer_groups_of_a_vgg() -> None:
    m = build_model("vgg", (2, 8, 8), 4, NeuronConfig(), channels=(4, "P", 6))
    m.train()
    stats = [b.clone() for b in m.buffers()]
    groups = layer_groups(m)
    assert [g.name for g in groups] == ["body.2", "body.6", "readout"]
    assert [[layer.role for layer in g.layers] for g in groups] == [
        ["synapse", "other"],
        ["pass", "synapse", "other"],
        ["pass", "synapse"],
    ]  # BN is "other" unfolded
    assert [(g.in_shape, g.out_shape) for g in groups] == [
        ((2, 8, 8), (4, 8, 8)),
        ((4, 8, 8), (6, 4, 4)),
        ((6, 4, 4), (4,)),
    ]
    assert isinstance(groups[0].lif, LIF) and groups[-1].lif is None
    # the shapes were found in eval mode: no BatchNorm statistics moved, every mode restored
    assert all(torch.equal(a, b) for a, b in zip(stats, m.buffers()))
    assert all(mod.training for mod in m.modules())


def _models() -> list[SpikingNet]:
    """Zoo models covering every closed form of model_stages: Linear alone (mlp), average pooling
    and flatten before a Linear (vgg, power-of-two factors), a mean over 12 points (not a power of
    two: the cached basis path), and a Scale before a Linear."""
    cfg = NeuronConfig()
    torch.manual_seed(1)
    scaled = SpikingNet(
        "scaled",
        nn.Sequential(
            PerStep(nn.Flatten()),
            PerStep(Scale(torch.linspace(0.3, 1.7, 12))),
            PerStep(nn.Linear(12, 5)),
            LIF(),
            PerStep(nn.Linear(5, 3)),
        ),
        (3, 4),
        3,
    )
    return [
        build_model("mlp", (1, 6, 6), 4, cfg),
        build_model("vgg", (2, 8, 8), 4, cfg, channels=(8, "P", 8, "P")),
        build_model("pointnet", (3, 12), 4, cfg, channels=(8, 16), hidden=16),
        scaled,
    ]


@pytest.mark.parametrize("k", range(4))
def test_stage_weights_equal_their_definition_bit_for_bit(k: int) -> None:
    """Dense stages: the closed forms give the bits of pushing the identity basis through the
    chain (dense_from_chain); pooled convolutions: the small kernel / k^2, repeated when folded."""
    model = _models()[k].eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_var.uniform_(0.5, 2.0)
                mod.running_mean.uniform_(-0.1, 0.1)
    for _ in range(2):  # the second call reuses the cached pass-through maps
        stages = model_stages(model)
        for st, group in zip(stages, layer_groups(fold_batchnorm(model))):
            mods = [layer.inner for layer in group.layers]
            if st.kind == "dense":
                w, b = dense_from_chain(mods, st.in_shape)
                assert np.array_equal(st.synapse.weight, w) and np.array_equal(st.bias, b), st.name
            elif st.synapse.pool:
                kernel = mods[-1].weight.detach().double().numpy()
                folded = np.repeat(np.repeat(kernel, 2, axis=2), 2, axis=3) / 4.0
                assert np.array_equal(st.synapse.pool_folded().weight, folded), st.name


def test_stage_apply_matches_the_float_layers() -> None:
    model = build_model("vgg", (2, 8, 8), 4, NeuronConfig(), channels=(4, "P", 6)).eval()
    folded = fold_batchnorm(model)
    x = torch.rand(3, 2, 8, 8, dtype=torch.float64)
    for st, group in zip(model_stages(model), layer_groups(folded)):
        chain = nn.Sequential(*[copy.deepcopy(layer.inner).double() for layer in group.layers])
        assert torch.allclose(
            st.apply(x), chain(x).flatten(1).view(3, *st.out_shape), rtol=0, atol=1e-12
        )
        x = (torch.rand(3, *st.out_shape, dtype=torch.float64) < 0.3).double()


def test_a_dilated_convolution_is_refused_naming_the_layer() -> None:
    body = nn.Sequential(
        PerStep(nn.Conv1d(1, 2, 3, dilation=2)),
        LIF(),
        PerStep(nn.Flatten()),
        PerStep(nn.Linear(16, 2)),
    )
    with pytest.raises(ValueError, match=r"layer body.0: dilation \(2,\) is not supported"):
        model_stages(SpikingNet("d", body, (1, 12), 2))


# --- prepared integer layers ----------------------------------------------------------------------
def test_prepared_layer_dtype_and_conv_wrap_by_hand() -> None:
    """One conv1d weight 254, exponent 7, pool 2 over inputs of 255: the sum 2 * 255 * 254 =
    129540 is exact in float32 (bound 129540 < 2^24); << 7 = 16581120 >= 2^23 wraps to
    16581120 - 2^24 = -196096, counted once."""
    syn = Synapse("conv1d", np.array([[[254]]], np.int32), (1, 2), (1, 1), (1,), (0,), pool=(2,))
    layer = IntLayer("c", syn, 7, du=4095, dv=0, vth=1, bias_mant=np.zeros((1, 1), np.int32))
    d = PreparedLayer.build(layer, max_input=255, device=torch.device("cpu"))
    assert d.dtype == torch.float32
    a, wraps = d.synapse(torch.full((1, 1, 2), 255.0))
    assert (a.item(), wraps) == (129540 * 128 - 2 * STATE_LIMIT, 1)
    big = PreparedLayer.build(layer, max_input=2**20, device=torch.device("cpu"))
    assert big.dtype == torch.float64  # 2 * 254 * 2^20 > 2^24


# --- program files -------------------------------------------------------------------------------
def _fixture_model() -> SpikingNet:
    """The model the version-1 fixtures were quantised from.

    They were written with the code of commit 224e20e (format version 1)::

        torch.manual_seed(0)
        cfg = NeuronConfig(mps=True, alpha_init=0.4)
        m = build_model("vgg", (1, 4, 4), 5, cfg, channels=(2, "P", 3)).eval()
        # BatchNorm: running_mean U(-0.05, 0.05), running_var U(0.002, 0.01),
        # weight U(0.5, 1.5), bias U(-0.2, 0.4)
        torch.save(m.state_dict(), "vgg_pooled_state.pt")
        quantize_model(m).save("program_v1_vgg_pooled.npz")
        quantize_model(m, percentile=90.0).save("program_v1_vgg_pooled_p90.npz")
    """
    m = build_model(
        "vgg", (1, 4, 4), 5, NeuronConfig(mps=True, alpha_init=0.4), channels=(2, "P", 3)
    ).eval()
    m.load_state_dict(torch.load(FIXTURES / "vgg_pooled_state.pt", weights_only=True))
    return m


@pytest.mark.parametrize(
    ("name", "percentile"),
    [("program_v1_vgg_pooled.npz", None), ("program_v1_vgg_pooled_p90.npz", 90.0)],
)
def test_version1_files_load_as_the_same_program(
    name: str, percentile: float | None, tmp_path: Path
) -> None:
    """A version-1 file (pooled kernel stored folded) loads as the program today's quantiser makes
    of the same model: same small kernels and scales, the same clipped count (percentile), and the
    folded kernel is the stored one; version 2 round-trips it; the reference runs them alike."""
    path = FIXTURES / name
    old = IntProgram.load(path)
    new = quantize_model(_fixture_model(), percentile=percentile)
    assert programs_equal(old, new)
    pooled = old.layers[1].synapse
    assert pooled.pool == (2, 2) and pooled.stride == (1, 1) and pooled.padding == (1, 1)
    with np.load(path) as raw:
        assert np.array_equal(pooled.pool_folded().weight, raw["l1.weight"])
    for a, b in zip(old.layers, new.layers):
        assert (a.w_scale, a.a_scale, a.clipped_weights) == (
            b.w_scale,
            b.a_scale,
            b.clipped_weights,
        )
    if percentile is not None:
        assert old.layers[1].clipped_weights > 0 and old.layers[1].clipped_weights % 4 == 0
    again = IntProgram.load(new.save(tmp_path / "v2.npz"))
    assert programs_equal(again, new) and again.layers[1].synapse.weight.shape == (3, 2, 3, 3)
    x = (np.random.default_rng(0).random((6, 4, 1, 4, 4)) < 0.4).astype(np.int64)
    r_old, r_new = (
        ReferenceTarget(old, device="cpu").run(x),
        ReferenceTarget(again, device="cpu").run(x),
    )
    assert all(np.array_equal(a, b) for a, b in zip(r_old.spikes, r_new.spikes))
    assert np.array_equal(r_old.output, r_new.output)


def test_a_version1_kernel_that_is_not_pool_folded_is_refused(tmp_path: Path) -> None:
    import json

    with np.load(FIXTURES / "program_v1_vgg_pooled.npz") as z:
        arrays = {k: z[k] for k in z.files}
    w = arrays["l1.weight"].copy()
    w[0, 0, 0, 0] += 2  # breaks one constant 2x2 block
    arrays["l1.weight"] = w
    header = json.loads(bytes(arrays.pop("header")).decode())
    np.savez(
        tmp_path / "bad.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays
    )
    with pytest.raises(
        ValueError, match=r"bad.npz: layer body.6: version-1 pooled kernel is not made of constant"
    ):
        IntProgram.load(tmp_path / "bad.npz")
