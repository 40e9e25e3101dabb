"""An LI readout (NIR LI, a membrane readout after the last synapse) as the chip runs it: a stock
LIF compartment with du = 4095, dv = round(4096 / tau) and a threshold its membrane provably never
reaches, its v read every step (neurodeploy.quant.quantize, "LI readout")."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.neuron.fixedpoint import DU_NO_CURRENT_MEMORY, VTH_SHIFT
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.layers import LI, LIF, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import READOUT_LI, IntLayer, IntProgram
from neurodeploy.quant.quantize import QuantizationError, quantize_model
from neurodeploy.quant.stages import model_stages
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.reference import ReferenceTarget


def _li_program(weights: list[float], *, dv: int, bias_mant: int) -> IntProgram:
    layer = IntLayer(
        name="readout",
        synapse=Synapse("dense", np.array([weights], dtype=np.int32), (2,), (1,), where="t"),
        weight_exp=0,
        neuron=None,
        readout_kind=READOUT_LI,
        du=DU_NO_CURRENT_MEMORY,
        dv=dv,
        vth=LOIHI2.vth_max,
        bias_mant=np.array([bias_mant], dtype=np.int32),
        bias_exp=0,
    )
    return IntProgram(
        layers=[layer],
        hardware="loihi2",
        input_kind="binary",
        input_scale=1.0,
        input_bits=1,
        input_shape=(2,),
        input_signed=False,
        num_classes=1,
    )


def test_li_compartment_trace_by_hand() -> None:
    """W = [2, -8], dv = 1024 (decay x 3/4, rounded toward zero), bias 3, u = a << 6:
    a = 2, -6, 0, -8 -> u = 128, -384, 0, -512;
    v0 = 0 + 128 + 3 = 131; v1 = trunc(98.25) - 384 + 3 = -283;
    v2 = trunc(-212.25) + 0 + 3 = -209; v3 = trunc(-156.75) - 512 + 3 = -665."""
    prog = _li_program([2, -8], dv=1024, bias_mant=3)
    prog.validate()
    x = np.array([[1, 0], [1, 1], [0, 0], [0, 1]], dtype=np.int64)[:, None, :]
    out = ReferenceTarget(prog, device="cpu").run(x).output
    assert out is not None
    assert out[:, 0, 0].tolist() == [131, -283, -209, -665]


def _li_net(*, bias: bool = True, tau: float = 4.0) -> SpikingNet:
    torch.manual_seed(0)
    body = nn.Sequential(
        PerStep(nn.Linear(6, 8, bias=bias)),
        LIF(tau=2.0, theta=1.0, reset="hard"),
        PerStep(nn.Linear(8, 3, bias=bias)),
        PerStep(Scale(0.5)),
        LI(tau=tau),
    )
    torch.manual_seed(1)  # a net whose predictions spread over the classes (177/62/17 of 256)
    with torch.no_grad():
        body[0].module.weight.uniform_(0.0, 1.0)
        body[2].module.weight.normal_(0.0, 0.5)
        if bias:
            body[0].module.bias.zero_()
    return SpikingNet("li", body, (6,), 3).eval()


def _spikes(steps: int, batch: int, n: int, seed: int) -> torch.Tensor:
    """Binary input, each sample and channel at its own rate in [0, 0.8)."""
    torch.manual_seed(seed)
    rate = torch.rand(1, batch, n) * 0.8
    return (torch.rand(steps, batch, n) < rate).float()


def test_stages_fold_the_gain_and_keep_the_li_tau() -> None:
    model = _li_net()
    st = model_stages(model)[-1]
    assert st.neuron is None and st.readout_tau == 4.0
    w = model.body[2].module.weight.detach().double().numpy()
    assert np.allclose(st.synapse.weight, 0.5 * w)


def test_quantiser_exponent_is_the_bound_by_hand() -> None:
    """Linear(2 -> 1) W = [0.5, -1], tau 4: w_scale 254, W_int = [128, -254] (2 round(63.5) =
    128), dv = 1024, vth 131071. M(e) = 382 * 2^e * 64 must satisfy M * 4096 <= 1024 * (131071 <<
    6) = 8589869056, i.e. 2^e <= 85.8: e = 6."""
    body = nn.Sequential(PerStep(nn.Linear(2, 1, bias=False)), LI(tau=4.0))
    with torch.no_grad():
        body[0].module.weight.copy_(torch.tensor([[0.5, -1.0]]))
    layer = quantize_model(SpikingNet("li1", body, (2,), 1)).layers[0]
    assert layer.li_readout and layer.neuron is None
    assert layer.synapse.weight.tolist() == [[128, -254]]
    assert (layer.dv, layer.du, layer.vth, layer.weight_exp) == (1024, 4095, 131071, 6)
    # worst case: every input on every step -> v stays below vth << 6 (cannot fire or saturate)
    prog = quantize_model(SpikingNet("li1", body, (2,), 1))
    x = np.zeros((200, 1, 2), dtype=np.int64)
    x[:, 0, 0] = 1
    out = ReferenceTarget(prog, device="cpu").run(x).output
    assert out is not None and 0 < out.max() <= layer.vth << VTH_SHIFT
    # steady state: v -> M * 4096 / dv = (128 << 6 << 6) * 4 = 2097152, less the truncations;
    # in float units (v / v_scale) tau * 128/254, the quantised 0.5
    assert 2097152 - 8 <= out[-1, 0, 0] <= 2097152
    assert abs(out[-1, 0, 0] / layer.v_scale - 4 * 128 / 254) < 1e-5


def test_li_readout_refusals_name_the_layer() -> None:
    body = nn.Sequential(PerStep(nn.Linear(2, 1)), LI(tau=1e5))  # dv = round(4096/1e5) = 0
    with pytest.raises(QuantizationError, match="readout.*dv = 0"):
        quantize_model(SpikingNet("li", body, (2,), 1))
    body = nn.Sequential(LI(tau=4.0), PerStep(nn.Linear(2, 1)))  # an LI that is no readout
    with pytest.raises(ValueError, match="body.0: an LI maps to hardware only"):
        model_stages(SpikingNet("li", body, (2,), 1))


def test_program_round_trips_through_a_file(tmp_path) -> None:
    prog = quantize_model(_li_net())
    back = IntProgram.load(prog.save(tmp_path / "li.npz"))
    assert back.layers[-1].li_readout and back.layers[-1].dv == prog.layers[-1].dv
    x, _ = prog.quantize_input((torch.rand(8, 2, 6) < 0.5).float().numpy())
    a = ReferenceTarget(prog, device="cpu").run(x).output
    b = ReferenceTarget(back, device="cpu").run(x).output
    assert np.array_equal(a, b)


def _agreement(model: SpikingNet, prog: IntProgram, x: torch.Tensor) -> float:
    """Fraction of samples whose float prediction (argmax of the LI membrane summed over time,
    as the float model's output.mean(0).argmax(-1)) equals the integer one."""
    with torch.no_grad():
        float_pred = model(x).mean(0).argmax(-1).numpy()
    counts = np.bincount(float_pred, minlength=prog.num_classes)
    print(f"\nfloat predictions per class: {counts.tolist()}")
    assert (counts > 0).sum() >= 2, "a test net whose float model predicts one class proves nothing"
    x_int, _ = prog.quantize_input(x.numpy())
    int_pred = ReferenceTarget(prog, device="cpu").run(x_int).predictions()
    return float((float_pred == int_pred).mean())


# measured (256 samples each): 0.980 for the hand-built net (classes 177/62/17), 0.973 for the NIR
# graph (its float model: classes 44/0/0/212)
AGREEMENT_FLOOR = 0.95


def test_float_vs_integer_agreement() -> None:
    model = _li_net()
    x = _spikes(20, 256, 6, seed=3)
    agree = _agreement(model, prog := quantize_model(model), x)
    print(
        f"\nLI readout net: float-vs-integer agreement {agree:.3f} (e = {prog.layers[-1].weight_exp})"
    )
    assert agree >= AGREEMENT_FLOOR


def test_nir_li_readout_quantises_and_predicts_like_its_float_import() -> None:
    """A hand-built NIR graph Affine -> LIF -> Affine -> LI (dt 1e-3, tau_mem 2 ms, LI tau 5 ms):
    imports to a model whose output is the LI membrane, quantises, and predicts as the float."""
    from neurodeploy.converters.nir_import import nir_to_model

    rng = np.random.default_rng(0)
    n_in, n_hid, n_out = 10, 16, 4
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc1": nir.Affine(
            weight=rng.uniform(0.0, 0.5, (n_hid, n_in)).astype(np.float32),
            bias=np.zeros(n_hid, np.float32),
        ),
        "lif1": nir.LIF(
            tau=np.full(n_hid, 2e-3),
            r=np.full(n_hid, 2.0),
            v_leak=np.zeros(n_hid),
            v_threshold=np.full(n_hid, 1.0),
        ),
        "fc2": nir.Affine(
            weight=rng.normal(0.0, 0.5, (n_out, n_hid)).astype(np.float32),
            bias=rng.uniform(-0.1, 0.1, n_out).astype(np.float32),
        ),
        "li": nir.LI(tau=np.full(n_out, 5e-3), r=np.full(n_out, 5.0), v_leak=np.zeros(n_out)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "li"), ("li", "output")]
    graph = nir.NIRGraph(nodes=nodes, edges=edges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nir_to_model(graph, dt=1e-3).eval()
    assert isinstance(model.body[-1], LI) and model.body[-1].tau == 5.0
    prog = quantize_model(model)
    last = prog.layers[-1]
    assert last.li_readout and last.dv == round(4096 / 5)
    x = _spikes(30, 256, n_in, seed=0)
    agree = _agreement(model, prog, x)
    print(f"\nNIR LI readout: float-vs-integer agreement {agree:.3f} (e = {last.weight_exp})")
    assert agree >= AGREEMENT_FLOOR


def test_qat_runs_an_li_readout_as_the_reference() -> None:
    """QAT has an LI readout path (tests/test_qat_li.py): its output is the reference's v."""
    from neurodeploy.quant.qat import QATNet

    x = _spikes(10, 4, 6, seed=5)
    run = QATNet(_li_net()).run(x)
    ref = ReferenceTarget(run.program, device="cpu").run(run.program.quantize_input(x.numpy())[0])
    assert ref.output is not None and np.abs(ref.output).max() > 0
    assert np.array_equal(run.output_int.numpy().astype(np.int64), ref.output)


@pytest.mark.lava
def test_lava_equals_the_reference_with_latency() -> None:
    pytest.importorskip("lava.magma.core.run_configs")
    from neurodeploy.targets.lava import LavaTarget

    prog = quantize_model(_li_net())
    torch.manual_seed(1)
    x_int, _ = prog.quantize_input((torch.rand(10, 2, 6) < 0.4).float().numpy())
    lava = LavaTarget(prog).run(x_int)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x_int, steps=lava.steps)
    assert ref.output is not None and lava.output is not None
    assert np.abs(ref.output).max() > 0 and len(np.unique(ref.output)) > 10
    assert np.array_equal(lava.output, ref.output)
    for a, b in zip(lava.spikes, ref.spikes, strict=True):
        assert np.array_equal(a, b)
    assert lava.predictions().tolist() == ref.predictions().tolist()
