"""The reference simulator against Lava's bit-accurate models (Loihi2SimCfg fixed_pt), bit for bit."""
import numpy as np
import pytest
import torch

pytest.importorskip("lava.magma.core.run_configs")
pytestmark = pytest.mark.lava

from neurodeploy.neuron.hardware import LOIHI2  # noqa: E402
from neurodeploy.quant.program import IntLayer, IntProgram  # noqa: E402
from neurodeploy.nn.layers import NeuronConfig  # noqa: E402
from neurodeploy.nn.zoo import build_model  # noqa: E402
from neurodeploy.quant.quantize import quantize_model  # noqa: E402
from neurodeploy.targets.lava import LavaTarget  # noqa: E402
from neurodeploy.targets.reference import ReferenceTarget  # noqa: E402

STEPS = 50


def _even(rng, shape, lo=-60, hi=60):
    return (2 * rng.integers(lo // 2, hi // 2 + 1, size=shape)).astype(np.int32)


def _neuron(rng, out_shape, vth, dv, bias_scale=300):
    return dict(neuron="lif", du=4095, dv=dv, vth=vth, bias_exp=int(rng.integers(0, 3)),
                bias_mant=rng.integers(-bias_scale, bias_scale, size=out_shape).astype(np.int32))


def dense_program(seed, graded):
    rng = np.random.default_rng(seed)
    n0, n1, n2, n3 = 12, 16, 10, 4
    layers = [
        IntLayer("l1", "dense", _even(rng, (n1, n0)), -3 if graded else 1, (n0,), (n1,),
                 **_neuron(rng, (n1,), vth=60 if graded else 40, dv=700)),
        IntLayer("l2", "dense", _even(rng, (n2, n1)), 2, (n1,), (n2,), **_neuron(rng, (n2,), vth=150, dv=2048)),
        IntLayer("out", "dense", _even(rng, (n3, n2)), 0, (n2,), (n3,), neuron=None,
                 readout_bias=np.zeros(n3, np.int64)),
    ]
    return IntProgram(layers, "loihi2", "graded" if graded else "binary", 1.0, 8 if graded else 1, (n0,),
                      input_signed=False, num_classes=n3)


def conv_program(seed, graded):
    """conv 3x3 pad 1 -> LIF -> 2x2 sum pool (stride 2, groups) -> LIF -> dense -> LIF -> readout."""
    rng = np.random.default_rng(seed)
    C0, H, W, C1 = 2, 8, 8, 4
    pool = np.zeros((C1, 1, 2, 2), np.int32) + 2
    layers = [
        IntLayer("c1", "conv2d", _even(rng, (C1, C0, 3, 3)), 0 if graded else 1, (C0, H, W), (C1, H, W), (1, 1), (1, 1),
                 **_neuron(rng, (C1, H, W), vth=300 if graded else 20, dv=1024, bias_scale=100)),
        IntLayer("pool", "conv2d", pool, 3, (C1, H, W), (C1, H // 2, W // 2), (2, 2), (0, 0), groups=C1,
                 **_neuron(rng, (C1, H // 2, W // 2), vth=1, dv=2048, bias_scale=10)),
        IntLayer("fc", "dense", _even(rng, (6, C1 * (H // 2) * (W // 2))), 0, (C1, H // 2, W // 2), (6,),
                 **_neuron(rng, (6,), vth=40, dv=512)),
        IntLayer("out", "dense", _even(rng, (3, 6)), 0, (6,), (3,), neuron=None, readout_bias=np.zeros(3, np.int64)),
    ]
    return IntProgram(layers, "loihi2", "graded" if graded else "binary", 1.0, 8 if graded else 1, (C0, H, W),
                      input_signed=False, num_classes=3)


def _input(prog, seed, T):
    rng = np.random.default_rng(seed + 100)
    shape = (T, *prog.input_shape)
    if prog.input_kind == "graded":
        x = rng.integers(0, 256, size=shape)
        x[rng.random(shape) < 0.4] = 0
        return x.astype(np.int64)
    return (rng.random(shape) < 0.3).astype(np.int64)


def _compare(prog, seed, T=STEPS):
    x = _input(prog, seed, T)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x[:, None], record_states=True, steps=T + len(prog.layers))
    lava = LavaTarget(prog).run(x, record_v=True)
    assert len(lava.spikes) == len(ref.spikes)
    for k, (sl, sr) in enumerate(zip(lava.spikes, ref.spikes)):
        assert np.array_equal(sl, sr[:, 0]), f"layer {k}: spikes differ"
        assert np.array_equal(lava.v[k], ref.states[k][:, 0]), f"layer {k}: v differs"
        assert 0 < sl.mean() < 1, f"layer {k} is silent or saturated: the comparison would be weak"
    assert np.array_equal(lava.output, ref.output[:, 0] - prog.layers[-1].readout_bias)  # Lava: no readout bias
    return ref


@pytest.mark.parametrize("graded", [False, True])
def test_dense_network_bit_exact(graded):
    _compare(dense_program(1, graded), 1)


@pytest.mark.parametrize("graded", [False, True])
def test_conv_network_with_pooling_bit_exact(graded):
    _compare(conv_program(2, graded), 2)


def test_smoothed_neuron_with_zero_coefficient_is_lavas_lif():
    prog = dense_program(3, graded=False)
    x = _input(prog, 3, STEPS)
    lava = LavaTarget(prog).run(x, record_v=True)
    for layer in prog.layers:
        if layer.neuron:
            layer.neuron, layer.coef = "mps", 0
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x[:, None], record_states=True)
    for sl, sr, vl, vr in zip(lava.spikes, ref.spikes, lava.v, ref.states):
        assert np.array_equal(sl, sr[:, 0]) and np.array_equal(vl, vr[:, 0])


def test_quantised_model_runs_identically_in_lava():
    torch.manual_seed(0)
    model = build_model("vgg", (2, 8, 8), 3, NeuronConfig(mps=False)).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.1, 0.3)
    prog = quantize_model(model, LOIHI2, input_kind="binary")
    _compare(prog, 4)
