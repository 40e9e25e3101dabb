"""Resource report: hand-counted numbers for small networks, refusals naming the layer and limit."""

import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.measure.resources import ResourceError, resource_report
from neurodeploy.neuron.hardware import LOIHI1, LOIHI2
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.stages import Stage
from neurodeploy.quant.synapse import Synapse


def test_dense_network_hand_counted():
    # 16 inputs -> 8 LIF -> 3 outputs: 8*16 = 128 and 3*8 = 24 synapses of 1 byte each
    m = build_model("mlp", (1, 4, 4), 3, NeuronConfig(mps=False), hidden=(8,), batchnorm=False)
    r1 = resource_report(m, LOIHI1)
    assert [(l.neurons, l.fan_in, l.synapses, l.memory_bytes, l.cores) for l in r1.layers] == [
        (8, 16, 128, 128, 1),
        (3, 8, 24, 24, 1),
    ]
    assert (r1.neurons, r1.synapses, r1.cores, r1.fits) == (11, 152, 2, True)
    # Loihi 2 keeps neuron state (8 bytes each) in the same memory: 128 + 64, 24 + 24
    r2 = resource_report(m, LOIHI2)
    assert [l.memory_bytes for l in r2.layers] == [192, 48]


def test_conv_and_pooled_conv_hand_counted():
    # conv 1->2, 3x3, padding 1 on 4x4: in-bounds taps per position 4 (corners), 6 (edges), 9 (inside):
    # 4*4 + 8*6 + 4*9 = 100 per channel pair -> 200 synapses, busiest neuron 9 inputs.
    # Then AvgPool2 folded into conv 2->3 (3x3, padding 1 on 2x2) = one 6x6 stride-2 conv with padding 2
    # on 4x4: every one of the 2x2 outputs sees all 16 pixels: 3 * 2 * 4 * 16 = 384 synapses, fan-in 32.
    m = build_model("vgg", (1, 4, 4), 5, NeuronConfig(mps=False), channels=(2, "P", 3))
    r = resource_report(m, LOIHI1)
    assert [(l.kind, l.neurons, l.fan_in, l.synapses) for l in r.layers] == [
        ("conv2d", 32, 9, 200),
        ("conv2d", 12, 32, 384),
        ("dense", 5, 12, 60),
    ]


def test_oversize_layers_are_refused_with_layer_and_limit():
    wide = Stage(
        "body.wide", Synapse("dense", np.zeros((2, 140_000)), (140_000,), (2,)), np.zeros(2)
    )
    r = resource_report([wide], LOIHI1)
    assert not r.fits
    with pytest.raises(ResourceError, match=r"body\.wide.*140000 input synapses.*131072 bytes"):
        r.require_fit()
    assert resource_report([wide], LOIHI2).fits  # 140000 + 8 bytes < 192 KiB
    many = Stage(
        "body.many", Synapse("dense", np.zeros((140_000, 1)), (1,), (140_000,)), np.zeros(140_000)
    )
    r = resource_report([many], LOIHI1)
    assert r.layers[0].cores == 137 and r.layers[0].binding == "neurons"  # ceil(140000 / 1024)
    with pytest.raises(ResourceError, match=r"137 cores.*128 per chip.*body\.many"):
        r.require_fit()


def test_cli_resources(tmp_path, capsys):
    from neurodeploy.quant.quantize import quantize_model

    m = build_model("mlp", (1, 4, 4), 3, NeuronConfig(mps=False), hidden=(8,), batchnorm=False)
    quantize_model(m).save(tmp_path / "p.npz")
    assert main(["resources", str(tmp_path / "p.npz")]) == 0
    out = capsys.readouterr().out
    assert "loihi1: fits -- 2 of 128 cores" in out and "loihi2: fits" in out
