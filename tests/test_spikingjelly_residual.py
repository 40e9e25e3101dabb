"""SpikingJelly 2.0's ``nir_exchange`` on a residual (SEW, ADD connect) network (issue 16, item 1).

SpikingJelly's ``export_to_nir`` traces the model with nirtorch's ``torch_to_nir`` (torch.fx), which
bypasses ``operator.add`` nodes and connects both addends to the consumer: a SEW block's
``sn0 + sn1`` becomes two NIR edges into the next node (fan-in, summed). So the exporter CAN write
residual graphs. Checked here: the exported graph has the fan-in edges; our import runs it as a
``GraphBody`` and equals SpikingJelly's own forward spike for spike in every neuron layer, and
equals SpikingJelly's ``import_from_nir`` of the same graph (the LIFNode with ``decay_input=False``
is NIR's LIF with ``r = tau / dt``; both fire at ``v >= v_threshold`` and hard-reset to 0 in the
spiking step, so the semantics coincide exactly)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from neurodeploy.converters.nir_import import nir_to_model
from neurodeploy.nn.graph import GraphBody

nir = pytest.importorskip("nir")
pytest.importorskip("spikingjelly")

from spikingjelly.activation_based import functional, neuron  # noqa: E402
from spikingjelly.activation_based.nir_exchange import (  # noqa: E402
    export_to_nir,
    import_from_nir,
)

T, BATCH, RATE = 16, 4, 0.3
NEURONS = ("sn0", "sn1", "sn2", "sn3")
#: gain on the default-initialised weights so that every layer spikes at RATE
WEIGHT_GAIN = 4.0


def _lif() -> neuron.LIFNode:
    return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=0.5)


class SEWNet(nn.Module):
    """conv0 -> sn0 -> conv1 -> sn1; SEW ADD: (sn0 + sn1) -> conv2 -> sn2 -> flatten -> fc -> sn3.

    The residual sum of spikes feeds a convolution: in NIR two edges sn0 -> conv2 and sn1 ->
    conv2, i.e. conv2(sn0 + sn1) = conv2(sn0) + conv2(sn1) (the bias once: it is a node, not an
    edge, attribute)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv0, self.sn0 = nn.Conv2d(2, 4, 3, padding=1), _lif()
        self.conv1, self.sn1 = nn.Conv2d(4, 4, 3, padding=1), _lif()
        self.conv2, self.sn2 = nn.Conv2d(4, 4, 3, padding=1), _lif()
        self.flat, self.fc, self.sn3 = nn.Flatten(), nn.Linear(4 * 8 * 8, 3), _lif()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.sn0(self.conv0(x))
        b = self.sn1(self.conv1(a))
        c = self.sn2(self.conv2(a + b))
        return self.sn3(self.fc(self.flat(c)))


def sew_net(seed: int = 0) -> SEWNet:
    torch.manual_seed(seed)
    net = SEWNet()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.weight.mul_(WEIGHT_GAIN)
    return net


def write_spikingjelly_sew(path: Path) -> None:
    """The SEW net exported by SpikingJelly's own exporter to ``path`` (used by the CLI tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_to_nir(sew_net(), torch.zeros(1, 2, 8, 8), save_path=str(path))


def _spikingjelly_forward(net: SEWNet, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """SpikingJelly's own forward, single-step mode, step by step: spikes per neuron (T, B, ...)."""
    out: dict[str, list[torch.Tensor]] = {k: [] for k in NEURONS}
    hooks = [
        getattr(net, k).register_forward_hook(lambda _m, _i, o, k=k: out[k].append(o))
        for k in NEURONS
    ]
    functional.set_step_mode(net, "s")
    functional.reset_net(net)
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
    for h in hooks:
        h.remove()
    return {k: torch.stack(v) for k, v in out.items()}


def test_spikingjelly_exports_sew_fan_in_and_we_match_its_forward() -> None:
    net = sew_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.zeros(1, 2, 8, 8))
        model = nir_to_model(graph)
    assert ("sn0", "conv2") in graph.edges and ("sn1", "conv2") in graph.edges
    assert ("sn0", "conv1") in graph.edges  # fan-out of sn0
    assert isinstance(model.body, GraphBody)
    assert sorted(model.body.sources["conv2"]) == ["sn0", "sn1"]
    torch.manual_seed(1)
    x = (torch.rand(T, BATCH, 2, 8, 8) < RATE).float()
    theirs = _spikingjelly_forward(net, x)
    with torch.no_grad():
        ours = model.body.run_all(x)
    for k in NEURONS:
        rate = theirs[k].mean().item()
        assert 0.02 < rate < 0.98, f"{k}: rate {rate} (agreement would be trivial)"
        assert torch.equal(ours[k].reshape(theirs[k].shape), theirs[k]), k


def test_spikingjelly_import_from_nir_of_its_sew_export_equals_ours() -> None:
    """SpikingJelly's importer (nirtorch's interpreter with its LIFNode) on the same residual
    graph: multi-step mode, whole sequence at once; output spikes equal ours."""
    net = sew_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.zeros(1, 2, 8, 8))
        theirs_model = import_from_nir(graph, step_mode="m")
        model = nir_to_model(graph)
    torch.manual_seed(2)
    x = (torch.rand(T, BATCH, 2, 8, 8) < RATE).float()
    with torch.no_grad():
        theirs, _ = theirs_model(x)
        ours = model(x)
    assert theirs.mean() > 0.02
    assert torch.equal(ours.reshape(theirs.shape), theirs)
