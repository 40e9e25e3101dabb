"""A CubaLIF (NIR CubaLIF, snnTorch Synaptic) in the float Lava conformance check
(neurodeploy.measure.lava_conformance): Lava's float LIF with its current decay du = 1 / tau_syn',
dv = 1 / tau_mem', against float torch with the same current dynamics and one step of latency per
synapse."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
import torch

from neurodeploy.measure.lava_conformance import (
    current_du,
    float_graph_layers,
    torch_with_latency,
)
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.stages import model_stages

N_IN, N_HID, N_OUT = 12, 16, 4


def _cuba_graph(*, bias: float, tau_syn: float = 2e-3, w_scale: float = 0.6) -> nir.NIRGraph:
    """Affine -> CubaLIF (tau_syn, tau_mem 4 ms, gains 1 at dt 1 ms) -> Affine -> LI (5 ms)."""
    rng = np.random.default_rng(0)
    nodes = {
        "input": nir.Input(input_type=np.array([N_IN])),
        "fc1": nir.Affine(
            weight=rng.uniform(-0.2 * w_scale, w_scale, (N_HID, N_IN)).astype(np.float32),
            bias=np.full(N_HID, bias, np.float32),
        ),
        "cuba": nir.CubaLIF(
            tau_syn=np.full(N_HID, tau_syn),
            tau_mem=np.full(N_HID, 4e-3),
            r=np.full(N_HID, 4.0),
            v_leak=np.zeros(N_HID),
            v_threshold=np.full(N_HID, 1.0),
            w_in=np.full(N_HID, tau_syn / 1e-3),
        ),
        "fc2": nir.Affine(
            weight=rng.normal(0.0, 0.5, (N_OUT, N_HID)).astype(np.float32),
            bias=np.zeros(N_OUT, np.float32),
        ),
        "li": nir.LI(tau=np.full(N_OUT, 5e-3), r=np.full(N_OUT, 5.0), v_leak=np.zeros(N_OUT)),
        "output": nir.Output(output_type=np.array([N_OUT])),
    }
    edges = [("input", "fc1"), ("fc1", "cuba"), ("cuba", "fc2"), ("fc2", "li"), ("li", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _model(**kw: float) -> SpikingNet:
    from neurodeploy.converters.nir_import import nir_to_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return nir_to_model(_cuba_graph(**kw), dt=1e-3).eval()


def _spikes(steps: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((steps, N_IN)) < rng.random(N_IN) * 0.5).astype(np.float64)


def test_current_decay_and_bias_by_hand() -> None:
    """tau_syn 2 steps: du_int = round(4096 / 2) - 1 = 2047, tau_syn' = 4096 / 2048 = 2, so Lava's
    float du = 0.5; tau_syn 3 steps: du_int = 1364, tau_syn' = 4096 / 1365, du = 1365 / 4096.
    The bias enters v as its steady state b tau_syn' (quantize.py, CubaLIF)."""
    st = model_stages(_model(bias=0.1))[0]
    assert st.syn_tau == 2.0 and current_du(st) == 0.5
    layer = float_graph_layers(model_stages(_model(bias=0.1)), graded=False)[0][1]
    assert layer is not None and not layer.smoothed
    assert (layer.du, layer.dv) == (0.5, 0.25)
    assert np.allclose(layer.bias_mant, 0.1 * 2.0)
    st3 = model_stages(_model(bias=0.0, tau_syn=3e-3))[0]
    assert current_du(st3) == 1365 / 4096


def test_torch_side_is_the_float_import_without_bias() -> None:
    """With b = 0 and time constants the 12-bit decays hold exactly (tau_syn 2, tau_mem 4), the
    torch side of the check is the imported model's own float CubaLIF, one step later (the
    synapse's latency): I = I/2 + W s, H = 3/4 v + I."""
    model = _model(bias=0.0)
    x = _spikes(30, seed=1)
    ref = torch_with_latency(model_stages(model), x, steps=31)[0]
    with torch.no_grad():
        hidden = model.double().body[:3](torch.as_tensor(x[:, None]))[:, 0].numpy().astype(np.uint8)
    assert 0 < hidden.mean() < 1
    assert np.array_equal(ref[1:], hidden) and not ref[0].any()


@pytest.mark.lava
@pytest.mark.parametrize(
    ("bias", "tau_syn", "w_scale"), [(0.0, 2e-3, 0.6), (0.05, 3e-3, 0.1), (-0.03, 3e-3, 0.2)]
)
def test_float_lava_equals_float_torch(bias: float, tau_syn: float, w_scale: float) -> None:
    """Every spike agrees (measured: 0 of 16 x 43 differ in each case). The two sides compute
    the same float64 operations in the same order except the synaptic sum (Lava's dense
    product vs torch's) and v's last additions (Lava (v (1 - dv) + u) + b, torch beta v +
    (u + b)): a spike flips only if H lies within a few ulps of theta."""
    pytest.importorskip("lava.magma.core.run_configs")
    from neurodeploy.measure.lava_conformance import run_lava_float

    model = _model(bias=bias, tau_syn=tau_syn, w_scale=w_scale)
    x = _spikes(40, seed=2)
    lava, ref = run_lava_float(model, x, graded=False)
    assert len(lava) == len(ref) == 1
    assert 0.05 < ref[0].mean() < 0.95
    assert np.array_equal(lava[0], ref[0])


@pytest.mark.lava
def test_snntorch_synaptic_graph_through_the_check(tmp_path) -> None:
    """A graph written by snnTorch's own exporter: Linear -> Synaptic (NIR CubaLIF, bias on) ->
    Linear -> Leaky. Both neuron layers agree spike for spike (measured: all 32 x 16 and 32 x 4)."""
    snn = pytest.importorskip("snntorch")
    pytest.importorskip("lava.magma.core.run_configs")
    from snntorch.export_nir import export_to_nir

    from neurodeploy.converters.nir_import import nir_to_model
    from neurodeploy.measure.lava_conformance import run_lava_float

    torch.manual_seed(0)
    kw = dict(threshold=torch.full((16,), 0.5), init_hidden=True, reset_mechanism="zero")
    net = torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(64, 16),
        snn.Synaptic(alpha=torch.full((16,), 0.5), beta=torch.full((16,), 0.5), **kw),
        torch.nn.Linear(16, 4),
        snn.Leaky(
            beta=torch.full((4,), 0.5),
            threshold=torch.full((4,), 0.5),
            init_hidden=True,
            reset_mechanism="zero",
            output=True,
        ),
    )
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(4.0)
    path = tmp_path / "synaptic.nir"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(str(path), export_to_nir(net, torch.zeros(1, 1, 8, 8), ignore_dims=[0]))
        model = nir_to_model(nir.read(str(path))).eval()
    stages = model_stages(model)
    assert stages[0].syn_tau is not None and np.abs(stages[0].bias).max() > 0
    x = (np.random.default_rng(0).random((30, 1, 8, 8)) < 0.3).astype(np.float64)
    lava, ref = run_lava_float(model, x, graded=False)
    assert len(lava) == len(ref) == 2
    for a, b in zip(lava, ref, strict=True):
        assert 0 < b.mean() < 1 and np.array_equal(a, b)
