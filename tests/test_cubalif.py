"""CubaLIF on the chip's current decay (issue 15, item 4): NIR CubaLIF (snnTorch ``Synaptic``),
imported as synapse [Scale] LI(tau_syn) [Scale] LIF, quantises to Loihi's CUBA neuron with
du = round(4096 / tau_syn) - 1 and dv = round(4096 / tau_mem); the integer core follows a
hand-computed trace, the reference simulator and Lava's stock LIF agree spike for spike, and the
float import and the integer program agree above a measured floor."""

from __future__ import annotations

import math
import warnings

import nir
import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.measure.analysis import run_recording_spikes
from neurodeploy.neuron.fixedpoint import (
    DU_NO_CURRENT_MEMORY,
    du_to_beta,
    du_to_tau_syn,
    lif_int_step,
    tau_syn_to_du,
    tau_to_dv,
)
from neurodeploy.nn.layers import LI, LIF, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.quantize import QuantizationError, quantize_model
from neurodeploy.quant.stages import model_stages
from neurodeploy.targets.reference import ReferenceTarget

TAU_SYN, TAU_MEM, THETA = 4.0, 2.0, 0.5  # du = 1023 (u * 3/4 per step), dv = 2048 (v / 2)


# --- the mapping functions --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tau_syn", "du"),
    [(1.0, 4095), (2.0, 2047), (4.0, 1023), (5.0, 818), (4096.0, 0), (1e6, 0), (math.inf, 0)],
)
def test_tau_syn_to_du(tau_syn: float, du: int) -> None:
    # du + 1 = round(4096 / tau_syn): 4096/5 = 819.2 -> 819 -> du 818
    assert tau_syn_to_du(tau_syn) == du
    if du:
        assert tau_syn_to_du(du_to_tau_syn(du)) == du  # the inverse is exact on the chip's values
    assert du_to_beta(du) == (4096 - (du + 1)) / 4096


def test_tau_syn_below_one_step_is_refused() -> None:
    with pytest.raises(ValueError, match="tau_syn must be >= 1"):
        tau_syn_to_du(0.5)


# --- the integer core: a hand-computed trace ----------------------------------------------------------
def test_cuba_integer_trace_by_hand() -> None:
    """du = 1023: u <- rtz(u * 3072 / 4096) + (a << 6); dv = 2048: v <- rtz(v / 2) + u;
    vth = 4: spike when v > 256, v -> 0, u kept. a = +1 and -1 (rounding toward zero)."""
    u_pos = [64, 112, 148, 175, 195]  # 175 * 3/4 = 131.25 -> 131, + 64
    v_pos = [64, 144, 220, 285, 195]  # 285 > 256 fires at step 4; v = 0 + 195 after
    s_pos = [0, 0, 0, 1, 0]
    u_neg = [-64, -112, -148, -175, -195]
    v_neg = [-64, -144, -220, -285, -337]  # rtz(-285 / 2) = -142, - 195
    a = torch.tensor([1, -1], dtype=torch.int64)
    for dtype in (torch.int64, torch.float64):
        u = torch.zeros(2, dtype=dtype)
        v = torch.zeros(2, dtype=dtype)
        for t in range(5):
            s, u, v = lif_int_step(a.to(dtype), u, v, du=1023, dv=2048, vth=4, bias=0)
            assert u.tolist() == [u_pos[t], u_neg[t]], t
            assert v.tolist() == [0 if s_pos[t] else v_pos[t], v_neg[t]], t
            assert s.tolist() == [bool(s_pos[t]), False], t


# --- a small CubaLIF network ---------------------------------------------------------------------
def _cuba_net(*, readout: bool = True, bias: bool = False) -> SpikingNet:
    """Linear -> Scale -> LI(4) -> LIF(2) twice (the importer's form of two CubaLIF layers), then
    a Linear readout or none (the second CubaLIF layer spikes out)."""
    torch.manual_seed(3)
    l1, l2 = nn.Linear(6, 12, bias=bias), nn.Linear(12, 5, bias=bias)
    with torch.no_grad():
        l1.weight.uniform_(-0.2, 0.4)
        l2.weight.uniform_(-0.3, 0.3)
    layers: list[nn.Module] = [
        PerStep(l1),
        PerStep(Scale(0.5)),
        LI(TAU_SYN),
        LIF(tau=TAU_MEM, theta=THETA, mps=False),
        PerStep(l2),
        LI(TAU_SYN),
        PerStep(Scale(0.5)),
        LIF(tau=TAU_MEM, theta=THETA, mps=False),
    ]
    if readout:
        layers.append(PerStep(nn.Linear(5, 3)))
    return SpikingNet("cuba", nn.Sequential(*layers), (6,), 3 if readout else 5).eval()


def test_stages_fold_the_gains_and_keep_the_current() -> None:
    model = _cuba_net()
    st = model_stages(model)
    assert [s.syn_tau for s in st] == [TAU_SYN, TAU_SYN, None]
    w1 = model.body[0].module.weight.detach().double().numpy()
    assert np.array_equal(st[0].synapse.weight, w1 * 0.5)  # I' = g I: the gain moves to W
    assert st[0].sources == ["body.0", "body.1", "body.2"]
    prog = quantize_model(model)
    assert [layer.du for layer in prog.layers[:2]] == [1023, 1023]
    assert [layer.dv for layer in prog.layers[:2]] == [tau_to_dv(TAU_MEM)] * 2 == [2048] * 2
    assert prog.layers[2].neuron is None


def test_plain_lif_keeps_no_current() -> None:
    body = nn.Sequential(PerStep(nn.Linear(4, 3)), LIF(tau=2.0, theta=0.5, mps=False))
    prog = quantize_model(SpikingNet("lif", body, (4,), 3).eval())
    assert prog.layers[0].du == DU_NO_CURRENT_MEMORY


def test_current_with_smoothing_is_refused_by_name() -> None:
    body = nn.Sequential(PerStep(nn.Linear(4, 3)), LI(3.0), LIF(tau=2.0, theta=0.5, mps=True))
    with pytest.raises(QuantizationError, match=r"layer body\.2: a synaptic current"):
        quantize_model(SpikingNet("m", body, (4,), 3).eval())


def test_bias_is_the_currents_steady_state() -> None:
    """A float bias b enters the current; Lava adds its bias to v: b * 4096 / (du + 1) per step."""
    body = nn.Sequential(PerStep(nn.Linear(2, 2)), LI(TAU_SYN), LIF(tau=2.0, theta=0.5, mps=False))
    model = SpikingNet("b", body, (2,), 2).eval()
    with torch.no_grad():
        body[0].module.weight.fill_(0.25)
        body[0].module.bias.copy_(torch.tensor([0.125, -0.0625]))
    (layer,) = quantize_model(model).layers
    got = layer.bias_mant.astype(np.float64) * 2.0**layer.bias_exp
    want = np.array([0.125, -0.0625]) * 4.0 * layer.a_scale * 64  # tau_syn' = 4096/1024 = 4
    assert np.array_equal(got, want)


def _agreement(model: SpikingNet, prog: IntProgram, x: torch.Tensor) -> list[float]:
    with torch.no_grad():
        _, rec = run_recording_spikes(model, x)
    ref = ReferenceTarget(prog, device="cpu").run(x.numpy().astype(np.int64))
    rates = [float(s.mean()) for s in ref.spikes]
    assert all(0 < r < 1 for r in rates), rates  # neither silent nor saturated: not trivial
    print(f"\ninteger spike rates {rates}")
    return [float((a == b.numpy()).mean()) for a, b in zip(ref.spikes, rec, strict=True)]


AGREEMENT_FLOOR = 0.95  # measured: see the printed values (issue 15's note)


@pytest.mark.parametrize("readout", [True, False], ids=["readout", "spiking-out"])
def test_float_vs_integer_agreement(readout: bool) -> None:
    model = _cuba_net(readout=readout)
    prog = quantize_model(model)
    torch.manual_seed(0)
    x = (torch.rand(20, 16, 6) < 0.3).float()
    agree = _agreement(model, prog, x)
    print(f"\ncuba ({'readout' if readout else 'spiking out'}): float-vs-integer agreement {agree}")
    assert min(agree) >= AGREEMENT_FLOOR


@pytest.mark.lava
@pytest.mark.parametrize("readout", [True, False], ids=["readout", "spiking-out"])
def test_lava_equals_the_reference_with_latency(readout: bool) -> None:
    pytest.importorskip("lava.magma.core.run_configs")
    from neurodeploy.targets.lava import LavaTarget

    prog = quantize_model(_cuba_net(readout=readout))
    torch.manual_seed(1)
    x_int, _ = prog.quantize_input((torch.rand(10, 2, 6) < 0.4).float().numpy())
    lava = LavaTarget(prog).run(x_int)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x_int, steps=lava.steps)
    assert len(lava.spikes) == len(ref.spikes) == 2
    assert all(float(s.sum()) > 0 for s in ref.spikes)
    for a, b in zip(lava.spikes, ref.spikes, strict=True):
        assert np.array_equal(a, b)
    if ref.output is not None:
        assert np.array_equal(lava.output, ref.output)
    assert lava.predictions().tolist() == ref.predictions().tolist()


# --- snnTorch's own exporter ---------------------------------------------------------------------
# measured floors: without bias the quantisation alone (~0.99); snnTorch's Linear bias enters the
# current, which Lava cannot bias: mapped to its steady state, off in the first ~tau_syn steps
SNN_FLOORS = {False: AGREEMENT_FLOOR, True: 0.9}


@pytest.mark.parametrize("bias", [False, True], ids=["no-bias", "bias"])
def test_snntorch_synaptic_export_quantises_and_runs(tmp_path, bias: bool) -> None:
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    from neurodeploy.converters.nir_import import nir_to_model

    torch.manual_seed(2)
    full = lambda n, v: torch.full((n,), float(v))  # noqa: E731
    net = nn.Sequential(
        nn.Linear(5, 10),
        snn.Synaptic(
            alpha=full(10, 0.75),  # tau_syn = 4 steps: du = 1023
            beta=full(10, 0.5),
            threshold=full(10, 1.0),
            init_hidden=True,
            reset_mechanism="zero",
            reset_delay=False,
        ),
        nn.Linear(10, 4),
        snn.Synaptic(
            alpha=full(4, 0.75),
            beta=full(4, 0.5),
            threshold=full(4, 1.0),
            init_hidden=True,
            output=True,
            reset_mechanism="zero",
            reset_delay=False,
        ),
    )
    with torch.no_grad():
        net[0].weight.uniform_(-0.1, 0.3)
        net[2].weight.uniform_(-0.1, 0.4)
        if not bias:
            net[0].bias.zero_()
            net[2].bias.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.zeros(1, 5), ignore_dims=[0])
        nir.write(str(tmp_path / "syn.nir"), graph)
        model = nir_to_model(tmp_path / "syn.nir").eval()
    assert sum(isinstance(n, nir.CubaLIF) for n in graph.nodes.values()) == 2
    prog = quantize_model(model)
    assert [layer.du for layer in prog.layers] == [1023, 1023]
    assert [layer.dv for layer in prog.layers] == [2048, 2048]
    torch.manual_seed(0)
    x = (torch.rand(20, 16, 5) < 0.4).float()
    agree = _agreement(model, prog, x)
    print(f"\nsnntorch Synaptic (bias={bias}): float-vs-integer agreement {agree}")
    assert min(agree) >= SNN_FLOORS[bias]


def test_qat_runs_the_current_exactly_and_passes_gradients() -> None:
    """QAT's forward pass is the integer program's (the reference simulator's spikes) and its
    gradient proxy integrates the current: the first layer's weights get finite, non-zero grads."""
    from neurodeploy.quant.qat import QATNet

    model = _cuba_net(readout=True, bias=True)
    qat = QATNet(model).train()
    torch.manual_seed(0)
    x = (torch.rand(12, 4, 6) < 0.3).float()
    run = qat.run(x)
    ref = ReferenceTarget(run.program, device="cpu").run(x.numpy().astype(np.int64))
    for a, b in zip(run.spikes, ref.spikes, strict=True):
        assert np.array_equal(a.detach().numpy().astype(np.uint8), b)
    assert np.array_equal(run.output_int.numpy().astype(np.int64), ref.output)
    run.logits.sum().backward()
    g = model.body[0].module.weight.grad
    assert g is not None and bool(torch.isfinite(g).all()) and float(g.abs().sum()) > 0
