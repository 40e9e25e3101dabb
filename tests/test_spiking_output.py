"""A spiking last layer (no linear readout, snnTorch's usual Linear -> Leaky -> Linear -> Leaky)
is a valid output: predictions are the argmax of its spike counts, on every integer command."""

import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.cli import main
from neurodeploy.converters.nir_export import export_nir
from neurodeploy.data import load_task
from neurodeploy.measure.qreport import quantize_for_task
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.layers import LIF, PerStep
from neurodeploy.nn.net import SpikingNet
from neurodeploy.targets.base import TargetResult
from neurodeploy.targets.reference import ReferenceTarget

T = 4
TAU, THETA = 2.0, 0.5  # beta = 1 - 1/tau = 0.5


def test_predictions_are_spike_count_argmax_ties_to_lowest():
    # (steps=3, B=3, 4 neurons); counts: [1,2,2,0] -> 1 (tie 1/2), [0,0,0,0] -> 0, [0,0,1,3] -> 3
    s = np.zeros((3, 3, 4), np.uint8)
    s[0, 0, 0] = s[0, 0, 1] = s[1, 0, 1] = s[1, 0, 2] = s[2, 0, 2] = 1
    s[0, 2, 3] = s[1, 2, 3] = s[2, 2, 3] = s[2, 2, 2] = 1
    r = TargetResult(spikes=[s], output=None, layer_names=["out"], spike_output=True)
    assert r.predictions().tolist() == [1, 0, 3]
    with pytest.raises(ValueError, match="no readout"):  # hidden spikes only (netx): no guess
        TargetResult(spikes=[s], output=None, layer_names=["h"]).predictions()


@pytest.fixture(scope="module")
def trained():
    """Flatten-Linear-LIF-Linear-LIF on digits, a few epochs of surrogate-gradient Adam."""
    torch.manual_seed(0)
    task = load_task("digits", T=T)
    body = nn.Sequential(
        PerStep(nn.Flatten()),
        PerStep(nn.Linear(64, 32)),
        LIF(tau=TAU, theta=THETA, mps=False),
        PerStep(nn.Linear(32, 10)),
        LIF(tau=TAU, theta=THETA, mps=False),
    )
    net = SpikingNet("spiking-out", body, (1, 8, 8), 10)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    x, y = task.encode(task.x_train), torch.as_tensor(task.y_train)
    for _ in range(3):
        for i in range(0, x.shape[1], 64):
            loss = nn.functional.cross_entropy(5 * net(x[:, i : i + 64]).mean(0), y[i : i + 64])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    return net, task


def test_reference_predicts_from_spike_counts_and_lava_agrees(trained):
    pytest.importorskip("lava.magma.core.run_configs")
    from neurodeploy.targets.lava import LavaTarget

    net, task = trained
    prog = quantize_for_task(net, task, LOIHI2)
    assert prog.layers[-1].neuron is not None  # no readout
    x = task.encode(task.x_test[:40], T)
    x_int, _ = prog.quantize_input(x.numpy())
    ref = ReferenceTarget(prog, device="cpu").run(x_int)
    counts = ref.spikes[-1].sum(0)
    assert ref.output is None and ref.predictions().tolist() == counts.argmax(-1).tolist()
    acc = float((ref.predictions() == task.y_test[:40].numpy()).mean())
    assert acc > 0.3  # well above chance (0.1)
    with torch.no_grad():
        z = net(x).mean(0).argmax(-1).numpy()
    assert (z == ref.predictions()).mean() >= 0.9  # the float model's rule is the same
    lava = LavaTarget(prog).run(x_int[:, :8])
    ref_lat = ReferenceTarget(prog, device="cpu", latency=True).run(x_int[:, :8], steps=lava.steps)
    for a, b in zip(lava.spikes, ref_lat.spikes, strict=True):
        assert np.array_equal(a, b)
    assert lava.predictions().tolist() == ref_lat.predictions().tolist()


def test_qat_integer_accuracy_uses_the_spike_count_rule(trained):
    from neurodeploy.quant.qat import QATNet, integer_accuracy
    from neurodeploy.quant.quantize import input_settings

    net, task = trained
    qnet = QATNet(net, LOIHI2, **input_settings(task))
    prog = quantize_for_task(net, task, LOIHI2)
    x = task.encode(task.x_test[:40], T)
    y = torch.as_tensor(task.y_test[:40])
    x_int, _ = prog.quantize_input(x.numpy())
    ref = ReferenceTarget(prog, device="cpu").run(x_int)
    expected = float((ref.predictions() == y.numpy()).mean())
    assert integer_accuracy(qnet, x, y) == pytest.approx(expected)


def _cli_ok(args, capsys, *, word="accuracy"):
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert word in out
    return out


def test_cli_on_spiking_output(trained, tmp_path, capsys):
    net, _ = trained
    f = tmp_path / "spk.nir"
    export_nir(net, f, extra_metadata={"task": "digits", "T": T})
    _cli_ok(["quantize", str(f), "-o", str(tmp_path / "spk.int.npz")], capsys)
    _cli_ok(["verify", str(f), "--samples", "20", "--no-lava"], capsys, word="prediction")
    _cli_ok(["deploy", str(f), "--target", "reference", "-o", str(tmp_path / "dep")], capsys)
    _cli_ok(["profile", str(f), "--target", "reference", "-o", str(tmp_path / "p")], capsys)
    _cli_ok(["profile", str(f), "--target", "torch", "-o", str(tmp_path / "pt")], capsys)
    _cli_ok(["resources", str(f)], capsys, word="body.4")
    if pytest.importorskip("lava.magma.core.run_configs"):
        _cli_ok(["deploy", str(f), "--target", "lava", "-o", str(tmp_path / "dl")], capsys)
        out = _cli_ok(["profile", str(f), "--target", "lava", "-o", str(tmp_path / "pl")], capsys)
        assert float(re.search(r"accuracy ([0-9.]+)", out).group(1)) > 0.3  # was 0, unsaid


def test_cli_on_snntorch_export(trained, tmp_path, capsys):
    """snnTorch's own exporter, the trained weights copied into its Linear -> Leaky layers."""
    snn = pytest.importorskip("snntorch")
    import nir
    from snntorch.export_nir import export_to_nir

    warnings.filterwarnings("ignore", module="snntorch")
    net, _ = trained
    lins = [
        m.module for m in net.body if isinstance(m, PerStep) and isinstance(m.module, nn.Linear)
    ]

    def leaky(n: int, **kw: object) -> nn.Module:  # per-neuron parameters: NIR types them
        beta, thr = torch.full((n,), 1 - 1 / TAU), torch.full((n,), THETA)
        return snn.Leaky(beta=beta, threshold=thr, init_hidden=True, reset_mechanism="zero", **kw)

    s = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), leaky(32), nn.Linear(32, 10), leaky(10, output=True)
    )
    s[1].load_state_dict(lins[0].state_dict())
    s[3].load_state_dict(lins[1].state_dict())
    f = tmp_path / "snntorch.nir"
    nir.write(str(f), export_to_nir(s, torch.zeros(1, 1, 8, 8), ignore_dims=[0]))
    task = ["--task", "digits", "--T", str(T)]
    _cli_ok(["quantize", str(f), *task, "-o", str(tmp_path / "s.int.npz")], capsys)
    _cli_ok(["verify", str(f), *task, "--samples", "20", "--no-lava"], capsys, word="prediction")
    _cli_ok(["deploy", str(f), *task, "--target", "reference", "-o", str(tmp_path / "d")], capsys)
    out = _cli_ok(
        ["profile", str(f), *task, "--target", "reference", "-o", str(tmp_path / "p")], capsys
    )
    assert float(re.search(r"accuracy ([0-9.]+)", out).group(1)) > 0.3
