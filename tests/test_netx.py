"""netx HDF5 export: a stock-neuron program runs through lava-dl netx with the same spikes, a batch
in one runtime."""

import numpy as np
import pytest
import torch

pytest.importorskip("lava.lib.dl.netx")
pytestmark = pytest.mark.lava


from neurodeploy.neuron.hardware import LOIHI2_NETX  # noqa: E402
from neurodeploy.nn.layers import NeuronConfig  # noqa: E402
from neurodeploy.nn.zoo import build_model  # noqa: E402
from neurodeploy.quant.quantize import quantize_model  # noqa: E402
from neurodeploy.targets.lava import LavaTarget  # noqa: E402
from neurodeploy.targets.netx import NetxTarget, export_netx  # noqa: E402
from neurodeploy.targets.reference import ReferenceTarget  # noqa: E402


def _program(name, shape, mps=False):
    torch.manual_seed(0)
    m = build_model(
        name,
        shape,
        4,
        NeuronConfig(mps=mps, alpha_init=0.3),
        **({"hidden": [24, 16]} if name == "mlp" else {}),
    ).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_var.uniform_(0.05, 0.2)
    return quantize_model(m, LOIHI2_NETX, input_kind="binary")


@pytest.mark.parametrize(("name", "shape"), [("mlp", (1, 6, 6)), ("vgg", (2, 8, 8))])
def test_netx_round_trip_same_spikes_as_our_lava_graph(tmp_path, name, shape):
    """A batch of three samples (a dense one first, so a state carried over would show) through
    netx in one runtime: the same spikes as our graph and the reference, sample by sample."""
    prog = _program(name, shape)
    assert all(l.weight_exp == 0 for l in prog.layers)
    rng = np.random.default_rng(1)
    x = np.stack([(rng.random((30, *shape)) < p).astype(np.int64) for p in (0.8, 0.3, 0.1)], axis=1)
    ours = LavaTarget(prog).run(x)
    theirs = NetxTarget(prog, tmp_path / "net.h5").run(x)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x)
    assert (tmp_path / "net.h5").stat().st_size > 0
    assert len(theirs.spikes) == len(ours.spikes) == len(ref.spikes)
    assert theirs.output is None and theirs.layer_names == ours.layer_names
    for a, b, r in zip(ours.spikes, theirs.spikes, ref.spikes):
        assert np.array_equal(a, b) and np.array_equal(b, r) and 0 < a.mean() < 1
        assert all(b[:, i].mean() > 0 for i in range(2))


def test_smoothed_programs_are_refused_with_guidance(tmp_path):
    prog = _program("mlp", (1, 6, 6), mps=True)
    with pytest.raises(ValueError, match="fine-tune the smoothing coefficient to 0"):
        export_netx(prog, tmp_path / "x.h5")
    assert not (tmp_path / "x.h5").exists()


def test_netx_records_no_states_and_checks_the_input(tmp_path):
    prog = _program("mlp", (1, 6, 6))
    target = NetxTarget(prog, tmp_path / "net.h5")
    x = np.zeros((4, 2, 1, 6, 6), dtype=np.int64)
    with pytest.raises(ValueError, match="states cannot be recorded"):
        target.run(x, record_states=True)
    with pytest.raises(ValueError, match=r"input: expected \(T, B, 1, 6, 6\)"):
        target.run(x[:, 0])
