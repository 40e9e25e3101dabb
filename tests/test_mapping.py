"""The float <-> integer neuron mapping (neurodeploy.neuron.fixedpoint) against hand-computed values,
and the hardware spec's agreement with the integer core (a conflicting spec is refused)."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from neurodeploy.neuron.fixedpoint import (
    ACT_SHIFT,
    DECAY_UNIT,
    DU_NO_CURRENT_MEMORY,
    V_MAX,
    VTH_SHIFT,
    alpha_to_coef,
    bias_exponent,
    bias_mantissa,
    bias_to_mant_exp,
    bias_to_membrane,
    bias_value,
    coef_to_alpha,
    dv_to_beta,
    dv_to_tau,
    from_membrane,
    lif_int_step,
    mant_exp_to_bias,
    membrane_scale,
    tau_to_dv,
    theta_to_vth,
    to_synaptic_units,
    vth_membrane,
    vth_to_theta,
)
from neurodeploy.neuron.hardware import (
    LOIHI1,
    LOIHI1_NETX,
    LOIHI2,
    LOIHI2_NETX,
    HardwareSpec,
    get_spec,
    netx_variant,
)
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.quantize import quantize_model


def test_tau_and_dv():
    # 4096 / 2 = 2048; 4096 / 3.7 = 1107.03 -> 1107; 4096 / 1.5 = 2730.67 -> 2731; no leak -> 0
    assert [tau_to_dv(t) for t in (2.0, 3.7, 1.5, math.inf)] == [2048, 1107, 2731, 0]
    assert tau_to_dv(1.0001) == 4095  # 4095.59 would round to 4096, which 12 bits cannot hold
    assert dv_to_tau(2048) == 2.0 and dv_to_tau(1024) == 4.0 and dv_to_tau(0) == math.inf
    # every 12-bit dv survives the round trip
    assert all(tau_to_dv(dv_to_tau(dv)) == dv for dv in range(4096))
    # the integer core keeps (4096 - dv) / 4096 of v: 3072 / 4096 = 0.75 for dv = 1024
    assert dv_to_beta(1024) == 0.75 and dv_to_beta(0) == 1.0


def test_alpha_and_coef():
    # 4096 * 0.3 = 1228.8 -> 1229; 0.5 -> 2048; 0.8 -> 3276.8 -> 3277
    assert [alpha_to_coef(a) for a in (0.0, 0.3, 0.5, 0.8)] == [0, 1229, 2048, 3277]
    assert coef_to_alpha(1229) == 1229 / 4096 == 0.300048828125 and coef_to_alpha(0) == 0.0
    assert all(alpha_to_coef(coef_to_alpha(c)) == c for c in range(4096))


def test_threshold_and_activation_shift():
    assert ACT_SHIFT == VTH_SHIFT == 6
    assert membrane_scale(3.0) == 192.0  # a_scale << 6
    # theta 1.3 at 100 a-units per float unit: 130; 0.5 * 3 = 1.5 rounds half to even: 2
    assert (
        theta_to_vth(1.3, 100.0) == 130
        and theta_to_vth(0.5, 3.0) == 2
        and theta_to_vth(0.75, 3.0) == 2
    )
    assert vth_to_theta(130, 100.0) == 1.3
    assert vth_membrane(10) == 640  # Lava compares v > vth << 6
    # the readout bias in a-units: 0.26 * 10 = 2.6 -> 3
    assert to_synaptic_units(np.array([0.26, -0.26]), 10.0).tolist() == [3.0, -3.0]
    # the plain LIF's current: du = 4095 forgets u, u = a_in << 6 = 256 for a_in = 4
    assert DU_NO_CURRENT_MEMORY == 4095
    _, u, _ = lif_int_step(
        torch.tensor([4]),
        torch.tensor([99999]),
        torch.tensor([0]),
        du=DU_NO_CURRENT_MEMORY,
        dv=0,
        vth=100,
        bias=0,
    )
    assert u.tolist() == [256]


def test_bias_mantissa_and_exponent():
    # b = 0.5 at a_scale 10: 0.5 * 10 * 64 = 320 membrane units
    assert bias_to_membrane(0.5, 10.0) == 320.0 and from_membrane(320.0, 10.0) == 0.5
    # LOIHI2: 13-bit mantissa (|m| <= 4095), exponents 0..7: the smallest that fits
    assert bias_exponent(np.array([4095.0]), LOIHI2) == 0
    assert bias_exponent(np.array([4096.0]), LOIHI2) == 1  # 4096 / 2 = 2048
    assert bias_exponent(np.array([-10000.0, 3.0]), LOIHI2) == 2  # 5000 > 4095; 2500 fits
    assert bias_exponent(np.array([4095.0 * 128]), LOIHI2) == 7
    assert bias_exponent(np.array([4097.0 * 128]), LOIHI2) is None
    assert bias_exponent(np.zeros(3), LOIHI2) == 0
    assert bias_mantissa(np.array([5000.0, -5000.0, 3.0]), 2).tolist() == [
        1250,
        -1250,
        1,
    ]  # 0.75 -> 1
    # b = 1 at a_scale 100: 6400 -> exponent 1, mantissa 3200; with netx's fixed exponent 6: 100
    mant, exp = bias_to_mant_exp(np.array([1.0]), 100.0, LOIHI2)
    assert (mant.tolist(), exp) == ([3200], 1)
    assert bias_value(mant, exp).tolist() == [6400] and mant_exp_to_bias(
        mant, exp, 100.0
    ).tolist() == [1.0]
    mant, exp = bias_to_mant_exp(np.array([1.0]), 100.0, LOIHI2, exp=LOIHI2_NETX.fixed_bias_exp)
    assert (mant.tolist(), exp) == ([100], 6)
    with pytest.raises(ValueError, match="13-bit mantissa << 7"):
        bias_to_mant_exp(np.array([1e6]), 100.0, LOIHI2)
    with pytest.raises(ValueError, match="beyond"):
        bias_to_mant_exp(np.array([100.0]), 100.0, LOIHI2, exp=0)  # 6400 > 4095 at exponent 0
    # Lava's effective bias: mant << exp, a flooring shift for negative exponents (-3 >> 1 = -2)
    assert bias_value(np.array([3, -3, -3]), np.array([2, 2, -1])).tolist() == [12, -12, -2]


def test_spec_refers_to_the_cores_constants():
    assert LOIHI2.decay_unit == DECAY_UNIT == 4096 and LOIHI2.state_max == V_MAX == 2**23 - 1
    assert (
        LOIHI2.activation_shift == ACT_SHIFT and LOIHI1.decay_bits == 12 and LOIHI1.state_bits == 24
    )
    assert LOIHI2.synaptic_input_bits == 16  # the neuron's a_in port (Lava LIF: int16)


@pytest.mark.parametrize(
    ("field", "value"), [("activation_shift", 7), ("decay_bits", 10), ("state_bits", 32)]
)
def test_a_spec_the_integer_core_does_not_implement_is_refused(field, value):
    with pytest.raises(ValueError, match=rf"'odd': {field} = {value}.*implements"):
        HardwareSpec(name="odd", **{field: value})
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(LOIHI2, **{field: value})


def test_fixed_exponents_must_be_in_range():
    with pytest.raises(ValueError, match="fixed_bias_exp = 9 outside 0..7"):
        dataclasses.replace(LOIHI2, fixed_bias_exp=9)
    with pytest.raises(ValueError, match=r"fixed_weight_exp = 8 outside \[-8, 7\]"):
        dataclasses.replace(LOIHI2, fixed_weight_exp=8)


def test_netx_variant():
    assert get_spec("loihi2-netx") is LOIHI2_NETX and get_spec("loihi1-netx") is LOIHI1_NETX
    assert (LOIHI2_NETX.fixed_weight_exp, LOIHI2_NETX.fixed_bias_exp) == (0, 6)
    assert netx_variant(LOIHI2_NETX) is LOIHI2_NETX and netx_variant(LOIHI2).name == "loihi2-netx"
    # everything but the fixed exponents (and name, source) is Loihi 2's
    same = [
        f.name
        for f in dataclasses.fields(LOIHI2)
        if f.name not in ("name", "source", "fixed_weight_exp", "fixed_bias_exp")
    ]
    assert all(getattr(LOIHI2, f) == getattr(LOIHI2_NETX, f) for f in same)
    assert LOIHI2.fixed_weight_exp is None and LOIHI2.fixed_bias_exp is None


def _model(name="mlp", shape=(1, 6, 6), **neuron):
    torch.manual_seed(0)
    m = build_model(
        name,
        shape,
        4,
        NeuronConfig(**{"mps": True, "alpha_init": 0.3, **neuron}),
        **({"hidden": [24, 16]} if name == "mlp" else {}),
    ).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_var.uniform_(0.05, 0.2)
                mod.bias.uniform_(-0.5, 0.5)
    return m


@pytest.mark.parametrize(("name", "shape"), [("mlp", (1, 6, 6)), ("vgg", (2, 8, 8))])
def test_the_quantiser_reads_the_spec_and_the_mapping(name, shape):
    m = _model(name, shape, tau=3.7, theta=0.75)
    prog = quantize_model(m, LOIHI2_NETX, input_kind="graded", input_range=1.0)
    assert prog.hardware == "loihi2-netx"
    prog.validate()  # validated against the variant, found by name
    for layer, (_, lif) in zip([l for l in prog.layers if l.neuron], m.lif_layers()):
        assert layer.weight_exp == 0 and layer.bias_exp == 6
        assert (layer.dv, layer.du, layer.coef) == (1107, 4095, alpha_to_coef(lif.alpha_value()))
        assert layer.vth == theta_to_vth(0.75, layer.a_scale)
    assert prog.layers[-1].weight_exp == 0
    # another fixed weight exponent is honoured too (spec fields, not a netx flag)
    hw = dataclasses.replace(LOIHI2, name="fixed2", fixed_weight_exp=2, fixed_bias_exp=3)
    prog = quantize_model(m, hw, input_kind="graded", input_range=1.0)
    prog.validate(hw)
    assert all(l.weight_exp == 2 and l.bias_exp == 3 for l in prog.layers if l.neuron)


def test_validation_refuses_a_program_that_breaks_its_specs_fixed_exponents():
    prog = quantize_model(_model(), LOIHI2_NETX, input_kind="binary")
    prog.layers[0].weight_exp = 1
    with pytest.raises(ValueError, match=r"layer body\.\d+: weight_exp 1, but loihi2-netx fixes 0"):
        prog.validate()
    prog = quantize_model(_model(), LOIHI2_NETX, input_kind="binary")
    prog.layers[0].bias_exp = 5
    with pytest.raises(ValueError, match=r"layer body\.\d+: bias_exp 5, but loihi2-netx fixes 6"):
        prog.validate()
