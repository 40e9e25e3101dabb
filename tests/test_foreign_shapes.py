"""Conv graphs in other producers' shapes (issue 15, item 3): a Scale after a conv (SpikingJelly's
LIF, norse and sinabs IF input gains) folds into the conv's weights and bias, and a SumPool or
AvgPool before a conv becomes the synapse's pool, so both stay convolution stages; they quantise,
run on the reference simulator and in Lava with the same spikes. A group that no convolution
describes but whose neuron layer is conv-shaped is refused by name before anything runs."""

from __future__ import annotations

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
