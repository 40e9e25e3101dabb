"""Quantiser and reference simulator (Lava comparisons are in test_lava_reference.py)."""

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.neuron.fixedpoint import lif_int_step
from neurodeploy.neuron.hardware import LOIHI1, LOIHI2, get_spec
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.quantize import (
    QuantizationError,
    quantize_model,
    quantize_weights,
    weight_scale,
)
from neurodeploy.targets.reference import ReferenceTarget


def small(name="mlp", shape=(1, 6, 6), seed=0, **neuron):
    torch.manual_seed(seed)
    m = build_model(
        name, shape, 4, NeuronConfig(**{"mps": True, "alpha_init": 0.3, **neuron})
    ).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_var.uniform_(0.2, 0.6)
                mod.bias.uniform_(-0.3, 0.3)
    return m


def test_weights_are_even_and_in_range():
    w = np.array([-1.0, -0.5, -0.001, 0.0, 0.3, 0.999, 1.0])
    q, clipped = quantize_weights(w, weight_scale(w, LOIHI2), LOIHI2)
    assert (q % 2 == 0).all() and q.min() >= -256 and q.max() <= 254 and clipped == 0
    assert q.tolist() == [-254, -128, 0, 0, 76, 254, 254]
    q, clipped = quantize_weights(w, weight_scale(w, LOIHI2, percentile=50), LOIHI2)
    assert clipped == int((np.abs(w) > np.percentile(np.abs(w), 50) * 256 / 254).sum()) > 0
    assert q.min() == -256 and q.max() == 254  # clipped, and counted


def test_program_fields_and_save_load(tmp_path):
    prog = quantize_model(small(), LOIHI2, input_kind="graded", input_range=1.0)
    for layer in prog.layers:
        w = layer.synapse.weight
        assert w.dtype == np.int32 and (w % 2 == 0).all()
        assert w.min() >= -256 and w.max() <= 254
        assert LOIHI2.weight_exp_min <= layer.weight_exp <= LOIHI2.weight_exp_max
        if layer.neuron:
            assert 1 <= layer.vth <= 131071 and layer.dv == 2048 and layer.du == 4095
            assert np.abs(layer.bias_mant).max() <= 4095 and 0 <= layer.bias_exp <= 7
            assert (layer.neuron == "mps" and layer.coef == round(4096 * 0.3)) or layer.coef > 0
            assert layer.vth == round(1.0 * layer.a_scale)  # theta * a_scale
    assert prog.layers[-1].neuron is None and prog.input_scale == 255
    path = prog.save(tmp_path / "p.npz")
    back = IntProgram.load(path)
    assert back.layers[0].name == prog.layers[0].name and back.input_kind == "graded"
    for a, b in zip(prog.layers, back.layers):
        assert np.array_equal(a.synapse.weight, b.synapse.weight) and np.array_equal(
            a.bias_mant, b.bias_mant
        )
        assert (a.vth, a.dv, a.coef, a.weight_exp, a.in_shape) == (
            b.vth,
            b.dv,
            b.coef,
            b.weight_exp,
            b.in_shape,
        )
    x = torch.rand(4, 3, 1, 6, 6).numpy()
    xi, _ = prog.quantize_input(x)
    r1, r2 = ReferenceTarget(prog).run(xi), ReferenceTarget(back).run(xi)
    assert all(np.array_equal(a, b) for a, b in zip(r1.spikes, r2.spikes)) and np.array_equal(
        r1.output, r2.output
    )
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="bad.npz"):
        IntProgram.load(tmp_path / "bad.npz")


def test_out_of_range_values_name_the_layer_and_limit():
    m = small()
    with torch.no_grad():
        m.body[1].module.weight.mul_(1e-7)  # tiny weights: the threshold would need > 17 bits
    with pytest.raises(QuantizationError, match=r"body\.3.*131071"):
        quantize_model(m, LOIHI2, input_kind="binary")
    m = small()
    soft = small(reset="soft")
    with pytest.raises(QuantizationError, match="soft reset"):
        quantize_model(soft)
    with pytest.raises(QuantizationError, match="charge"):
        quantize_model(small(mps_mode="charge"))
    with pytest.raises(QuantizationError, match="graded"):
        quantize_model(m, LOIHI1, input_kind="graded")
    assert get_spec("loihi1") is LOIHI1
    with pytest.raises(ValueError, match="hardware"):
        get_spec("truenorth")


def test_simulator_follows_the_integer_equations():
    """One dense layer, binary input: compare with lif_int_step applied by hand."""
    prog = quantize_model(small("mlp", (1, 6, 6), mps=False), LOIHI2, input_kind="binary")
    layer = prog.layers[0]
    x = (torch.rand(6, 2, 1, 6, 6) < 0.5).long().numpy()
    r = ReferenceTarget(prog).run(x, record_states=True)
    u = v = torch.zeros(2, layer.out_shape[0], dtype=torch.int64)
    bias = torch.as_tensor(layer.bias_mant.astype(np.int64)) << layer.bias_exp
    w = torch.as_tensor(layer.synapse.weight.astype(np.int64))
    for t in range(6):
        a = torch.as_tensor(x[t].reshape(2, -1)) @ w.T
        a = a << layer.weight_exp if layer.weight_exp >= 0 else a >> -layer.weight_exp
        s, u, v = lif_int_step(a, u, v, du=layer.du, dv=layer.dv, vth=layer.vth, bias=bias)
        assert np.array_equal(r.spikes[0][t], s.numpy().astype(np.uint8))
        assert np.array_equal(r.states[0][t], v.numpy())
    assert 0 < r.spikes[0].mean() < 1


def test_latency_delays_each_layer_by_one_step():
    m = small("mlp", (1, 6, 6), mps=False)
    with torch.no_grad():  # no biases: silence stays silence, so the delayed run is a pure shift
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm1d):
                mod.bias.zero_()
                mod.running_mean.zero_()
    prog = quantize_model(m, LOIHI2, input_kind="binary")
    x = (torch.rand(8, 3, 1, 6, 6) < 0.5).long().numpy()
    plain = ReferenceTarget(prog).run(x)
    late = ReferenceTarget(prog, latency=True).run(x)
    for k, (a, b) in enumerate(zip(plain.spikes, late.spikes), start=1):
        assert np.array_equal(b[k : k + 8], a) and not b[:k].any()
    assert np.array_equal(late.output[3:11], plain.output)


def test_conv_program_runs_and_matches_float_closely():
    from neurodeploy.nn.fold import fold_batchnorm

    m = small("vgg", (2, 8, 8), mps=True)
    prog = quantize_model(m, LOIHI2, input_kind="binary")
    assert [l.kind for l in prog.layers] == ["conv2d", "conv2d", "dense"]
    x = (torch.rand(6, 16, 2, 8, 8) < 0.3).float()
    r = ReferenceTarget(prog).run(x.long().numpy())
    from neurodeploy.measure.analysis import run_recording_spikes

    _, rec = run_recording_spikes(fold_batchnorm(m), x)
    for si, sf in zip(r.spikes, rec):
        agree = (si == sf.numpy()).mean()
        assert agree > 0.97, agree  # quantisation flips only a few spikes


def test_event_digits_integer_accuracy_close_to_float(tmp_path, capsys):
    """Post-training quantisation of a trained event-digits model, via the CLI (export -> quantize)."""
    from neurodeploy.cli import main
    from neurodeploy.data import load_task
    from neurodeploy.measure.qreport import compare, quantize_for_task
    from neurodeploy.training.checkpoint import load_model
    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.loop import train

    train(
        TrainConfig(task="event-digits", T=4, epochs=3, lr=2e-3),
        out_dir=tmp_path / "run",
        progress=False,
    )
    assert (
        main(["export", str(tmp_path / "run" / "checkpoint.pt"), "-o", str(tmp_path / "m.nir")])
        == 0
    )
    assert main(["quantize", str(tmp_path / "m.nir"), "-o", str(tmp_path / "m.int.npz")]) == 0
    out = capsys.readouterr().out
    assert "integer (reference simulator)" in out and (tmp_path / "m.int.npz").exists()
    model, _ = load_model(tmp_path / "run" / "checkpoint.pt")
    task = load_task("event-digits", T=4)
    rep = compare(model, quantize_for_task(model, task, LOIHI2), task=task, T=4)
    assert rep.float_acc > 0.8
    assert abs(rep.int_acc - rep.float_acc) <= 0.03, (rep.float_acc, rep.int_acc)
    assert all(l.spike_agreement > 0.97 for l in rep.layers[:-1])
    assert (
        main(
            ["quantize", str(tmp_path / "m.nir"), "-o", str(tmp_path / "x.npz"), "--task", "digits"]
        )
        == 2
    )
    assert "expects" in capsys.readouterr().err


def test_make_target_names_the_choices():
    from neurodeploy.targets import make_target

    prog = quantize_model(small(), LOIHI2, input_kind="graded")
    assert make_target("reference", prog, device="cpu").name == "reference"
    with pytest.raises(ValueError, match="target: unknown 'truenorth'"):
        make_target("truenorth", prog)
