"""Activity counts: a hand-counted network, and agreement with NeuroBench 2.3.0 on the same models.

NeuroBench (``neurobench==2.3.0``, a test dependency installed with --no-deps by
scripts/setup_env.sh) counts per nn.Linear / nn.Conv*: it binarises the layer's input and
weights, zeroes the bias, reruns the layer and sums the output; ACs when the input is in
{-1, 0, 1}, else MACs; results per sample. Activation sparsity is over all activation layers,
timesteps and samples. Our "module" view defines the same numbers and must match exactly.

Where the definitions differ: our default "hardware" view folds average pooling into the next
convolution (as the chip runs it), so that layer is fed spikes (ACs) through a larger, strided
kernel, where NeuroBench sees averaged spikes (MACs) through the 3x3 kernel. We check the
converted numbers by running NeuroBench on the folded network (the stages built as torch
layers): it must then agree with our hardware view exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.data import load_task
from neurodeploy.measure.energy import CMOS45, LOIHI
from neurodeploy.measure.profiling import profile
from neurodeploy.nn.layers import LIF, PerStep
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.counts import Counts
from neurodeploy.quant.synapse import Synapse
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train


# --- a network small enough to count by hand ---------------------------------------------------
def _tiny() -> SpikingNet:
    """2 inputs -> Linear(2, 3) -> LIF(theta 1, tau inf, no MPS) -> Linear(3, 2) readout.

    W1 = [[1.5, 0], [0.6, 0.6], [0, 0]] (one zero column entry, one dead neuron), W2 all 1.
    """
    lin1 = nn.Linear(2, 3, bias=False)
    lin2 = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        lin1.weight.copy_(torch.tensor([[1.5, 0.0], [0.6, 0.6], [0.0, 0.0]]))
        lin2.weight.fill_(1.0)
    body = nn.Sequential(PerStep(lin1), LIF(tau=float("inf"), theta=1.0, mps=False), PerStep(lin2))
    return SpikingNet("tiny", body, (2,), 2).eval()


def test_hand_counted_network() -> None:
    """Input over T = 3 steps, one sample: x(1) = [1, 1], x(2) = [0, 1], x(3) = [1, 0].

    Layer 1 (non-zero weights: input 0 -> neuron 0; input 1 -> neuron 1 only... and input 0 -> neuron 1):
      column counts of W1 != 0: input 0 reaches 2 neurons, input 1 reaches 1 neuron.
      SynOps: t1 2 + 1 = 3, t2 1, t3 2   -> 6 ACs; dense 2 x 3 = 6 per step -> 18.
    Neurons (IF, theta 1, hard reset to 0; fire when H > 1):
      n0: H = 1.5 (fire, reset) | 0 | 1.5 (fire)            -> spikes at t1, t3
      n1: H = 1.2 (fire, reset) | 0.6 | 1.2 (fire)          -> spikes at t1, t3
      n2: 0 always
      spikes per step [2, 0, 2] = 4; rate 4 / (3 neurons x 3 steps) = 4/9; sparsity 5/9.
    Readout (all weights 1, 2 outputs): each spike reaches 2 outputs -> SynOps 4, 0, 4 = 8 ACs.
    Totals: 14 ACs, 0 MACs, dense 18 + 3 x 6 = 36, ANN one pass 6 + 6 = 12 MACs.
    """
    model = _tiny()
    x = torch.tensor([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]).view(3, 1, 2)
    from neurodeploy.measure.profiling import TorchHardwareRecorder, TorchModuleRecorder

    for rec in (TorchHardwareRecorder(model), TorchModuleRecorder(model)):
        c = rec.empty_counts(3)
        b = rec.record(x)
        for lc, syn, xin, s in zip(c.layers, rec.synapses, b.inputs, b.spikes):
            lc.add(xin, s, syn)
        l1, l2 = c.layers
        assert l1.synops.tolist() == [3, 1, 2]
        assert l1.spikes.tolist() == [2, 0, 2]
        assert l2.synops.tolist() == [4, 0, 4]
        assert (l1.fan_in, l1.nonzero_weights, l1.connections, l1.dense_ops_per_step) == (
            2,
            3,
            3,
            6,
        )
        t = c.totals()
        assert t["acs"] == 14 and t["macs"] == 0 and t["dense_ops"] == 36 and t["ann_macs"] == 12
        assert t["spikes"] == 4 and t["neuron_updates"] == 9 and t["active_updates"] == 4
        assert t["firing_rate"] == pytest.approx(4 / 9) and t[
            "activation_sparsity"
        ] == pytest.approx(5 / 9)
        assert t["connection_sparsity"] == pytest.approx(1 - (3 + 6) / (6 + 6))
        assert t["parameters"] == 12
        # energies by hand: cmos45 = 14 x 0.9 pJ; ANN = 12 x 4.6 pJ
        e = CMOS45.estimate(c)
        assert e.total_pj == pytest.approx(12.6) and e.ann_total_pj == pytest.approx(55.2)
        assert e.model == "cmos45"
        # loihi: 14 x 23.6 + 4 x 81 + 5 x 52 + 4 x 1.7 pJ; time 14 x 3.5 + 4 x 8.4 + 5 x 5.3 ns
        el = LOIHI.estimate(c)
        assert el.total_pj == pytest.approx(14 * 23.6 + 4 * 81 + 5 * 52 + 4 * 1.7)
        assert el.time_s == pytest.approx((14 * 3.5 + 4 * 8.4 + 5 * 5.3) * 1e-9)
        assert el.static_pj == pytest.approx(0.1 * el.time_s * 1e12)
        # ANN on the neuromorphic model: 12 connections x 23.6 pJ + 3 neurons x (81 + 1.7) pJ
        assert el.ann_total_pj == pytest.approx(12 * 23.6 + 3 * 82.7)


def test_analog_first_layer_counts_macs() -> None:
    model = _tiny()
    x = torch.tensor([[0.5, 1.0]]).view(1, 1, 2)
    from neurodeploy.measure.profiling import TorchHardwareRecorder

    rec = TorchHardwareRecorder(model)
    c = rec.empty_counts(1)
    b = rec.record(x)
    for lc, syn, xin, s in zip(c.layers, rec.synapses, b.inputs, b.spikes):
        lc.add(xin, s, syn)
    p = c.layers[0].per_sample()
    assert (p["macs"], p["acs"]) == (3.0, 0.0)  # 0.5 is not a spike: 2 + 1 operations are MACs


def test_conv_synapse_counts_respect_padding_and_stride() -> None:
    """Conv1d k3 pad 1 on 4 inputs, one channel, all weights non-zero: an input at the border
    reaches 2 outputs, inside 3 (sum 10 = dense); stride 2 gives outputs 0, 1 reading inputs
    {-1..1}, {1..3} -> input 0: 1, input 1: 2, input 2: 1, input 3: 1."""
    s = Synapse("conv1d", np.ones((1, 1, 3)), (1, 4), (1, 4), (1,), (1,))
    assert s.dense_ops() == 10
    assert s.ops(torch.tensor([[[1.0, 0, 0, 0]]])).item() == 2
    assert s.ops(torch.tensor([[[0, 1.0, 0, 0]]])).item() == 3
    s2 = Synapse("conv1d", np.ones((1, 1, 3)), (1, 4), (1, 2), (2,), (1,))
    assert [s2.ops(torch.eye(4)[i].view(1, 1, 4)).item() for i in range(4)] == [1, 2, 1, 1]
    with pytest.raises(ValueError, match="input of shape"):
        s.ops(torch.zeros(1, 1, 5))
    c = Counts.empty(
        "torch",
        "module",
        T=1,
        names=["c"],
        synapses=[s],
        neurons=[4],
        parameters=3,
        footprint_bytes=12,
    )
    with pytest.raises(ValueError, match="layer c: input shape"):
        c.layers[0].add(torch.zeros(1, 1, 1, 5), None, s)


# --- NeuroBench ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two briefly trained models: an MLP on digits (analog input) and the VGG on event-digits."""
    out = {}
    for task, model, kw in (("digits", "mlp", {"hidden": [48, 32]}), ("event-digits", "vgg", {})):
        res = train(TrainConfig(task=task, model=model, T=4, epochs=1, arch=kw), progress=False)
        out[task] = res.model.eval()
    return out


class _BatchFirst(nn.Module):
    """NeuroBench feeds (B, T, ...); our models are time-first."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.transpose(0, 1)).mean(0)


def _neurobench(net: nn.Module, x_tb: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import TorchModel

    nb = TorchModel(_BatchFirst(net))
    nb.add_activation_module(LIF)
    nb.register_hooks()
    data = (x_tb.transpose(0, 1).contiguous(), y)
    with torch.no_grad():
        preds = nb(data[0])
    ops = SynapticOperations()(nb, preds, data)
    sparsity = ActivationSparsity()(nb, preds, data)
    nb.cleanup_hooks()
    return {**ops, "sparsity": sparsity}


def _stage_net(model: SpikingNet) -> SpikingNet:
    """The folded network as torch layers (one Linear / Conv per stage, pooling composed in)."""
    from neurodeploy.quant.stages import model_stages

    layers: list[nn.Module] = []
    for st in model_stages(model):
        syn = st.synapse.pool_folded()
        w = torch.from_numpy(syn.weight).float()
        if syn.kind == "dense":
            m = nn.Linear(w.shape[1], w.shape[0])
            layers.append(PerStep(nn.Flatten()))
        else:
            conv = nn.Conv2d if syn.kind == "conv2d" else nn.Conv1d
            m = conv(
                w.shape[1] * syn.groups,
                w.shape[0],
                w.shape[2:],
                stride=syn.stride,
                padding=syn.padding,
                groups=syn.groups,
            )
        with torch.no_grad():
            m.weight.copy_(w)
            m.bias.copy_(torch.from_numpy(st.bias).float())
        layers.append(PerStep(m))
        if st.neuron is not None:
            layers.append(st.neuron)
    return SpikingNet("stages", nn.Sequential(*layers), model.input_shape, model.num_classes).eval()


@pytest.mark.parametrize("task_name", ["digits", "event-digits"])
def test_module_view_equals_neurobench(trained, task_name: str) -> None:
    import copy

    from neurodeploy.nn.fold import fold_batchnorm

    model = copy.deepcopy(trained[task_name])
    # prune every other weight of the first synapse: zero weights are neither operations nor connections
    first = next(m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)))
    with torch.no_grad():
        first.weight.view(-1)[::2] = 0.0
    task = load_task(task_name, T=4)
    n = 64
    p = profile(
        model,
        task,
        4,
        "torch",
        view="module",
        samples=n,
        batch_size=n,
        energy_models=(),
        progress=False,
    )
    nb = _neurobench(fold_batchnorm(model), task.encode(task.x_test[:n], 4), task.y_test[:n])
    t = p.counts.totals()
    assert t["spikes"] > 0
    assert t["acs"] == nb["Effective_ACs"] and t["macs"] == nb["Effective_MACs"]
    assert t["dense_ops"] == nb["Dense"]
    assert t["activation_sparsity"] == pytest.approx(nb["sparsity"], abs=1e-12)
    # static metrics on the unfolded model: parameters and footprint (parameters + buffers, bytes)
    from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
    from neurobench.models import TorchModel

    static = TorchModel(model)
    assert t["parameters"] == ParameterCount()(static)
    assert t["footprint_bytes"] == Footprint()(static)
    assert t["connection_sparsity"] > 0.005
    assert t["connection_sparsity"] == pytest.approx(
        ConnectionSparsity()(static), abs=5e-4
    )  # NB rounds to 3 places
    if task_name == "digits":
        assert t["macs"] > 0  # analog pixels into the first layer
    else:
        assert (
            t["macs"] > 0 and t["acs"] > 0
        )  # pooled spikes into conv 2 / the readout are MACs for NeuroBench


def test_hardware_view_equals_neurobench_on_the_folded_network(trained) -> None:
    """Converted numbers: NeuroBench on the stages-as-torch network == our hardware view."""
    model = trained["event-digits"]
    task = load_task("event-digits", T=4)
    n = 48
    hw = profile(
        model,
        task,
        4,
        "torch",
        view="hardware",
        samples=n,
        batch_size=n,
        energy_models=(),
        progress=False,
    )
    mod = profile(
        model,
        task,
        4,
        "torch",
        view="module",
        samples=n,
        batch_size=n,
        energy_models=(),
        progress=False,
    )
    net = _stage_net(model)
    nb = _neurobench(net, task.encode(task.x_test[:n], 4), task.y_test[:n])
    t = hw.counts.totals()
    assert (
        t["macs"] == 0 and nb["Effective_MACs"] == 0
    )  # every synapse is fed spikes once pooling is folded
    assert t["acs"] == nb["Effective_ACs"]
    assert t["dense_ops"] == nb["Dense"]
    # same spikes in both views, so the same activation sparsity; more synaptic events on the chip
    assert t["activation_sparsity"] == mod.counts.totals()["activation_sparsity"]
    assert t["activation_sparsity"] == pytest.approx(nb["sparsity"], abs=1e-12)
    assert t["acs"] > mod.counts.totals()["acs"] + mod.counts.totals()["macs"]
