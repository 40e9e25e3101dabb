"""netx HDF5 export: a stock-neuron program runs through lava-dl netx with the same spikes."""
import numpy as np
import pytest
import torch

pytest.importorskip("lava.lib.dl.netx")
pytestmark = pytest.mark.lava


from neurodeploy.neuron.hardware import LOIHI2  # noqa: E402
from neurodeploy.nn.layers import NeuronConfig  # noqa: E402
from neurodeploy.nn.zoo import build_model  # noqa: E402
from neurodeploy.quant.quantize import quantize_model  # noqa: E402
from neurodeploy.targets.lava import LavaTarget  # noqa: E402
from neurodeploy.targets.netx import NetxTarget, export_netx  # noqa: E402


def _program(name, shape, mps=False):
    torch.manual_seed(0)
    m = build_model(name, shape, 4, NeuronConfig(mps=mps, alpha_init=0.3), **({"hidden": [24, 16]} if name == "mlp" else {})).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_var.uniform_(0.05, 0.2)
    return quantize_model(m, LOIHI2, input_kind="binary", netx=True)


@pytest.mark.parametrize("name,shape", [("mlp", (1, 6, 6)), ("vgg", (2, 8, 8))])
def test_netx_round_trip_same_spikes_as_our_lava_graph(tmp_path, name, shape):
    prog = _program(name, shape)
    assert all(l.weight_exp == 0 for l in prog.layers)
    x = (np.random.default_rng(1).random((30, *shape)) < 0.3).astype(np.int64)
    ours = LavaTarget(prog).run(x)
    theirs = NetxTarget(prog, tmp_path / "net.h5").run(x).spikes
    assert (tmp_path / "net.h5").stat().st_size > 0
    assert len(theirs) == len(ours.spikes)
    for a, b in zip(ours.spikes, theirs):
        assert np.array_equal(a, b) and 0 < a.mean() < 1


def test_smoothed_programs_are_refused_with_guidance(tmp_path):
    prog = _program("mlp", (1, 6, 6), mps=True)
    with pytest.raises(ValueError, match="fine-tune the smoothing coefficient to 0"):
        export_netx(prog, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()
