"""The reference simulator against Lava's bit-accurate models (Loihi2SimCfg fixed_pt), bit for bit,
with a batch of samples streamed through one Lava runtime."""

import numpy as np
import pytest
import torch

pytest.importorskip("lava.magma.core.run_configs")
pytestmark = pytest.mark.lava

from neurodeploy.neuron.hardware import LOIHI2  # noqa: E402
from neurodeploy.nn.layers import NeuronConfig  # noqa: E402
from neurodeploy.nn.zoo import build_model  # noqa: E402
from neurodeploy.quant.program import IntLayer, IntProgram  # noqa: E402
from neurodeploy.quant.quantize import quantize_model  # noqa: E402
from neurodeploy.quant.synapse import Synapse  # noqa: E402
from neurodeploy.targets.lava import LavaTarget  # noqa: E402
from neurodeploy.targets.reference import ReferenceTarget  # noqa: E402

STEPS = 50


def _even(rng, shape, lo=-60, hi=60):
    return (2 * rng.integers(lo // 2, hi // 2 + 1, size=shape)).astype(np.int32)


def _neuron(rng, out_shape, vth, dv, bias_scale=300):
    return dict(
        neuron="lif",
        du=4095,
        dv=dv,
        vth=vth,
        bias_exp=int(rng.integers(0, 3)),
        bias_mant=rng.integers(-bias_scale, bias_scale, size=out_shape).astype(np.int32),
    )


def dense_program(seed, graded):
    rng = np.random.default_rng(seed)
    n0, n1, n2, n3 = 12, 16, 10, 4
    layers = [
        IntLayer(
            "l1",
            Synapse("dense", _even(rng, (n1, n0)), (n0,), (n1,)),
            -3 if graded else 1,
            **_neuron(rng, (n1,), vth=60 if graded else 40, dv=700),
        ),
        IntLayer(
            "l2",
            Synapse("dense", _even(rng, (n2, n1)), (n1,), (n2,)),
            2,
            **_neuron(rng, (n2,), vth=150, dv=2048),
        ),
        IntLayer(
            "out",
            Synapse("dense", _even(rng, (n3, n2)), (n2,), (n3,)),
            0,
            neuron=None,
            readout_bias=rng.integers(-50, 50, size=n3),
        ),
    ]
    return IntProgram(
        layers,
        "loihi2",
        "graded" if graded else "binary",
        1.0,
        8 if graded else 1,
        (n0,),
        input_signed=False,
        num_classes=n3,
    )


def conv_program(seed, graded):
    """conv 3x3 pad 1 -> LIF -> 2x2 sum pool (stride 2, groups) -> LIF -> dense -> LIF -> readout."""
    rng = np.random.default_rng(seed)
    C0, H, W, C1 = 2, 8, 8, 4
    pool = np.zeros((C1, 1, 2, 2), np.int32) + 2
    layers = [
        IntLayer(
            "c1",
            Synapse("conv2d", _even(rng, (C1, C0, 3, 3)), (C0, H, W), (C1, H, W), (1, 1), (1, 1)),
            0 if graded else 1,
            **_neuron(rng, (C1, H, W), vth=300 if graded else 20, dv=1024, bias_scale=100),
        ),
        IntLayer(
            "pool",
            Synapse("conv2d", pool, (C1, H, W), (C1, H // 2, W // 2), (2, 2), (0, 0), groups=C1),
            3,
            **_neuron(rng, (C1, H // 2, W // 2), vth=1, dv=2048, bias_scale=10),
        ),
        IntLayer(
            "fc",
            Synapse("dense", _even(rng, (6, C1 * (H // 2) * (W // 2))), (C1, H // 2, W // 2), (6,)),
            0,
            **_neuron(rng, (6,), vth=40, dv=512),
        ),
        IntLayer(
            "out",
            Synapse("dense", _even(rng, (3, 6)), (6,), (3,)),
            0,
            neuron=None,
            readout_bias=rng.integers(-50, 50, size=3),
        ),
    ]
    return IntProgram(
        layers,
        "loihi2",
        "graded" if graded else "binary",
        1.0,
        8 if graded else 1,
        (C0, H, W),
        input_signed=False,
        num_classes=3,
    )


def _input(prog, seed, T):
    rng = np.random.default_rng(seed + 100)
    shape = (T, *prog.input_shape)
    if prog.input_kind == "graded":
        x = rng.integers(0, 256, size=shape)
        x[rng.random(shape) < 0.4] = 0
        return x.astype(np.int64)
    return (rng.random(shape) < 0.3).astype(np.int64)


def _heavy(prog, T):
    """Every input at its maximum every step: drives the first layers to spike a lot."""
    top = 2**prog.input_bits - 1 if prog.input_kind == "graded" else 1
    return np.full((T, *prog.input_shape), top, dtype=np.int64)


def _batch(prog, seed, T):
    """Four different samples (T, 4, ...): a random one, a heavy one, a random one right after the
    heavy one (a state or a synaptic buffer carried over from it would show), silence."""
    return np.stack(
        [
            _input(prog, seed, T),
            _heavy(prog, T),
            _input(prog, seed + 1, T),
            np.zeros((T, *prog.input_shape), np.int64),
        ],
        axis=1,
    )


def _compare(prog, seed, T=STEPS):
    """A batch of samples in one Lava runtime == the reference with Lava's latency, sample by
    sample, bit for bit: spikes, states (v, or m for smoothed neurons) and the readout (bias
    included on both)."""
    x = _batch(prog, seed, T)
    steps = T + len(prog.layers)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x, record_states=True, steps=steps)
    lava = LavaTarget(prog).run(x, record_states=True)
    assert len(lava.spikes) == len(ref.spikes) and lava.layer_names == ref.layer_names
    assert lava.steps == steps and lava.batch == x.shape[1]
    for k, (sl, sr) in enumerate(zip(lava.spikes, ref.spikes)):
        assert sl.dtype == np.uint8 and sl.shape == sr.shape
        for b in range(x.shape[1]):
            assert np.array_equal(sl[:, b], sr[:, b]), f"layer {k}, sample {b}: spikes differ"
            assert np.array_equal(
                lava.states[k][:, b], ref.states[k][:, b]
            ), f"layer {k}, sample {b}: state differs"
        assert (
            0 < sl[:, 0].mean() < 1
        ), f"layer {k} is silent or saturated: the comparison would be weak"
        # the heavy sample ends with a non-zero state: the sample after it must start from zero
        # (test_a_run_cut_short_with_spikes_in_flight: the synaptic buffers)
        assert ref.states[k][-1, 1].any(), f"layer {k}: heavy sample ends at zero state"
    assert ref.output is not None and np.array_equal(lava.output, ref.output)
    assert np.array_equal(lava.predictions(), ref.predictions())
    assert set(lava.seconds) == {"build", "compile", "run", "read", "stop"}
    return ref


def _streamed_without_reset(prog, x, steps):
    """The reference run of the samples back to back as one long sample (what Lava would
    compute without the resets): per sample (steps, B, ...) spikes."""
    T, B = x.shape[:2]
    long = np.zeros((B * steps, 1, *x.shape[2:]), np.int64)
    for b in range(B):
        long[b * steps : b * steps + T, 0] = x[:, b]
    r = ReferenceTarget(prog, device="cpu", latency=True).run(long, steps=B * steps)
    return [np.swapaxes(s[:, 0].reshape(B, steps, *s.shape[2:]), 0, 1) for s in r.spikes]


@pytest.mark.parametrize("graded", [False, True])
def test_the_batches_would_show_a_missing_reset(graded):
    """The test batches are sensitive: without the resets, the samples after the heavy one would
    run differently (computed with the reference, so this costs no Lava run)."""
    for prog, seed in ((dense_program(1, graded), 1), (conv_program(2, graded), 2)):
        x = _batch(prog, seed, STEPS)
        steps = STEPS + len(prog.layers)
        ref = ReferenceTarget(prog, device="cpu", latency=True).run(x, steps=steps)
        carried = _streamed_without_reset(prog, x, steps)
        assert any(not np.array_equal(c[:, 2], r[:, 2]) for c, r in zip(carried, ref.spikes))


@pytest.mark.parametrize("graded", [False, True])
def test_dense_network_bit_exact(graded):
    _compare(dense_program(1, graded), 1)


@pytest.mark.parametrize("graded", [False, True])
def test_conv_network_with_pooling_bit_exact(graded):
    _compare(conv_program(2, graded), 2)


def test_smoothed_neuron_with_zero_coefficient_is_lavas_lif():
    prog = dense_program(3, graded=False)
    x = _batch(prog, 3, STEPS)
    lava = LavaTarget(prog).run(x, record_states=True)
    for layer in prog.layers:
        if layer.neuron:
            layer.neuron, layer.coef = "mps", 0
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x, record_states=True)
    for sl, sr, vl, vr in zip(lava.spikes, ref.spikes, lava.states, ref.states):
        assert np.array_equal(sl, sr) and np.array_equal(vl, vr)


def test_a_run_cut_short_with_spikes_in_flight():
    """steps = T: the heavy first sample still spikes in every layer at its last step, so every
    synapse holds spikes in its one-step buffer when the next sample starts; they must not reach
    it (the readout of the next sample's first step is its bias alone). B = 1 too."""
    prog = conv_program(8, graded=False)
    T = 12
    x = np.stack([_heavy(prog, T), _input(prog, 8, T)], axis=1)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x, steps=T)
    assert all(s[-1, 0].any() for s in ref.spikes)
    assert (
        np.array_equal(ref.output[0, 1], prog.layers[-1].readout_bias)
        and prog.layers[-1].readout_bias.any()
    )
    lava = LavaTarget(prog).run(x, steps=T)
    alone = LavaTarget(prog).run(x[:, 1:], steps=T)
    assert lava.steps == T and lava.batch == 2 and alone.batch == 1 and lava.states is None
    for sl, sa, sr in zip(lava.spikes, alone.spikes, ref.spikes):
        assert np.array_equal(sl, sr) and np.array_equal(sa[:, 0], sr[:, 1])
    assert np.array_equal(lava.output, ref.output) and np.array_equal(
        alone.output[:, 0], ref.output[:, 1]
    )


def test_quantised_model_runs_identically_in_lava():
    torch.manual_seed(0)
    model = build_model("vgg", (2, 8, 8), 3, NeuronConfig(mps=False)).eval()
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.1, 0.3)
    prog = quantize_model(model, LOIHI2, input_kind="binary")
    _compare(prog, 4)


def _count_lava_conv_calls(monkeypatch, log):
    """Wrap ``lava.proc.conv.utils.conv`` so that every call (in Lava's forked process model
    processes too) appends a line to ``log``."""
    from lava.proc.conv import utils as conv_utils

    lava_conv = conv_utils.conv

    def counted(*args, **kwargs):
        with open(log, "a") as f:
            f.write("1\n")
        return lava_conv(*args, **kwargs)

    monkeypatch.setattr(conv_utils, "conv", counted)


def _calls(log):
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.parametrize("graded", [False, True])
def test_lavas_own_conv_and_the_exact_conv_both_equal_the_reference(graded, monkeypatch, tmp_path):
    """conv="lava" runs every fixed_pt Conv through lava.proc.conv.utils.conv itself (Lava's
    PyConvModelFixed arithmetic end to end), conv="exact" (the default) through conv_exact; both
    equal the reference with Lava's latency in every layer's spikes and the readout, sample by
    sample (3 samples: random, heavy, random right after the heavy one)."""
    prog = conv_program(2, graded)
    x = _batch(prog, 2, STEPS)[:, :3]
    steps = STEPS + len(prog.layers)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x, steps=steps)
    log = tmp_path / "lava_conv_calls"
    _count_lava_conv_calls(monkeypatch, log)
    n_conv = sum(layer.synapse.kind == "conv2d" for layer in prog.layers)
    for conv, calls in (("lava", n_conv * 3 * steps), ("exact", 0)):
        log.unlink(missing_ok=True)
        lava = LavaTarget(prog, conv=conv).run(x)
        assert _calls(log) == calls, f"conv={conv}: Lava's conv called {_calls(log)} times"
        assert lava.steps == steps and lava.batch == 3
        for k, (sl, sr) in enumerate(zip(lava.spikes, ref.spikes, strict=True)):
            assert 0 < sr.mean() < 1, f"layer {k} is silent or saturated"
            for b in range(3):
                assert np.array_equal(sl[:, b], sr[:, b]), f"conv={conv}, layer {k}, sample {b}"
        for b in range(3):
            assert np.array_equal(lava.output[:, b], ref.output[:, b]), f"conv={conv}, sample {b}"


def test_an_unknown_conv_is_refused():
    with pytest.raises(ValueError, match=r"LavaTarget: conv = 'scipy'; expected one of 'exact'"):
        LavaTarget(conv_program(2, graded=False), conv="scipy")
    from neurodeploy.targets.lava_reset.process import ResetConv

    with pytest.raises(ValueError, match=r"ResetConv: conv = 'torch'; expected one of 'exact'"):
        ResetConv(weight=np.ones((1, 3, 3, 1), np.int32), input_shape=(4, 4, 1), conv="torch")
