"""One input option family for quantize/verify/deploy/profile (issue 15, items 1-2): --task,
--data FILE.npz, --random-input RATE --T T, --input-kind; a graph with no task recorded goes
through every command, accuracy is "n/a" without labels."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.cli import main
from neurodeploy.converters.nir_export import export_nir
from neurodeploy.converters.nir_import import read_nir
from neurodeploy.data import load_task
from neurodeploy.data.inputs import (
    WEIGHTS_ONLY,
    InputSettings,
    load_npz_inputs,
    random_inputs,
    resolve_inputs,
)
from neurodeploy.nn.layers import LIF, PerStep
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.quantize import input_settings

SHAPE = (1, 8, 8)


def _net() -> SpikingNet:
    torch.manual_seed(0)
    body = nn.Sequential(
        PerStep(nn.Flatten()),
        PerStep(nn.Linear(64, 16)),
        LIF(tau=2.0, theta=0.5, mps=False),
        PerStep(nn.Linear(16, 10)),
    )
    with torch.no_grad():
        body[1].module.weight.mul_(3)  # hidden layer spikes on random input
    return SpikingNet("no-task", body, SHAPE, 10).eval()


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> tuple[SpikingNet, Path]:
    net = _net()
    f = tmp_path_factory.mktemp("g") / "m.nir"
    export_nir(net, f)  # no extra metadata: no task, no T
    meta = read_nir(f).metadata
    assert "task" not in meta and "T" not in meta
    return net, f


def _ok(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    if args[-1] == "-q":  # quiet profile: no progress bars
        args = [*args[:-1], "--no-progress"]
    assert main(args) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _err(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# resolution
# ---------------------------------------------------------------------------------------------
def test_random_input_is_seeded_bernoulli_without_labels():
    a = random_inputs(0.25, SHAPE, T=5, n=200, seed=3)
    b = random_inputs(0.25, SHAPE, T=5, n=200, seed=3)
    c = random_inputs(0.25, SHAPE, T=5, n=200, seed=4)
    assert a.x.shape == (200, 5, *SHAPE) and a.temporal and a.T == 5
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert set(a.x.unique().tolist()) <= {0.0, 1.0}
    assert abs(float(a.x.mean()) - 0.25) < 0.01  # 64,000 draws: std 0.0017
    assert a.y is None and a.settings == InputSettings("binary") and a.calibration == WEIGHTS_ONLY
    assert a.encode(a.x[:3]).shape == (5, 3, *SHAPE)
    graded = random_inputs(0.25, SHAPE, T=5, n=4, input_kind="graded")
    assert graded.settings == InputSettings("graded", 1.0, False)
    with pytest.raises(ValueError, match="rate must be in"):
        random_inputs(0.0, SHAPE, T=5)


def test_task_settings_are_the_quantisers():
    # event-digits: 0/1 frames -> binary; digits: static analog -> graded, range max |x_train|
    ev, dg = load_task("event-digits", T=4), load_task("digits", T=4)
    assert input_settings(ev) == {"input_kind": "binary"}
    top = float(dg.x_train.abs().max())
    assert input_settings(dg) == {"input_kind": "graded", "input_range": top, "input_signed": False}
    inp = resolve_inputs(SHAPE, task="digits", T=3)
    assert inp is not None and inp.task == "digits" and inp.T == 3
    assert inp.settings == InputSettings("graded", top, False)
    assert torch.equal(inp.y_test, dg.y_test)


def test_npz_static_and_sequence(tmp_path):
    rng = np.random.default_rng(0)
    static = tmp_path / "s.npz"
    x = rng.uniform(-1, 2, (6, *SHAPE)).astype(np.float32)
    np.savez(static, x=x, y=np.arange(6))
    inp = load_npz_inputs(static, SHAPE, T=3)
    assert not inp.temporal and inp.T == 3 and inp.y.tolist() == list(range(6))
    assert inp.settings == InputSettings("graded", float(np.abs(x).max()), True)
    assert torch.equal(inp.encode(inp.x[:2])[2], torch.as_tensor(x[:2]))  # repeated over T
    seq = tmp_path / "q.npz"
    np.savez(seq, x=(rng.random((5, 7, *SHAPE)) < 0.3).astype(np.uint8))
    inp = load_npz_inputs(seq, SHAPE)
    assert inp.temporal and inp.T == 7 and inp.y is None
    assert inp.settings == InputSettings("binary")
    assert load_npz_inputs(seq, SHAPE, input_kind="graded").settings == InputSettings("graded")


def test_npz_errors_name_the_file_and_shapes(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((4, 5, 7), np.float32))
    with pytest.raises(ValueError, match=r"bad\.npz: x has shape \(4, 5, 7\).*\(N, 1, 8, 8\)"):
        load_npz_inputs(bad, SHAPE)
    np.savez(bad, x=np.zeros((4, *SHAPE), np.float32), y=np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"bad\.npz: y must be integer labels of shape \(4,\)"):
        load_npz_inputs(bad, SHAPE)
    np.savez(bad, x=np.zeros((4, 2, *SHAPE), np.float32))
    with pytest.raises(ValueError, match=r"bad\.npz: x has 2 frames .* --T is 5"):
        load_npz_inputs(bad, SHAPE, T=5)
    np.savez(bad, inputs=np.zeros((4, *SHAPE), np.float32))
    with pytest.raises(ValueError, match=r"bad\.npz: no array 'x' \(found: inputs\)"):
        load_npz_inputs(bad, SHAPE)
    np.savez(bad, x=np.full((4, *SHAPE), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"binary: --data .*bad\.npz has values other than 0"):
        load_npz_inputs(bad, SHAPE, input_kind="binary")
    with pytest.raises(ValueError, match="--task and --random-input: give one input source"):
        resolve_inputs(SHAPE, task="digits", random_rate=0.1)
    assert resolve_inputs(SHAPE) is None


# ---------------------------------------------------------------------------------------------
# the commands, on a graph that records no task
# ---------------------------------------------------------------------------------------------
def test_quantize_without_data_uses_the_weights(graph, tmp_path, capsys):
    _, f = graph
    out = _ok(["quantize", str(f), "-o", str(tmp_path / "q.int.npz")], capsys)
    assert "input binary" in out and f"calibration: {WEIGHTS_ONLY}" in out
    out = _ok(
        ["quantize", str(f), "--random-input", "0.2", "--T", "3", "-o", str(tmp_path / "r.npz")],
        capsys,
    )
    assert "accuracy on 64 samples: n/a" in out and WEIGHTS_ONLY in out


def test_verify_and_deploy_on_random_input(graph, tmp_path, capsys):
    _, f = graph
    out = _ok(["verify", str(f), "--random-input", "0.1", "--T", "4", "--no-lava"], capsys)
    assert re.search(r"body\.2\s+[01]\.\d{4}", out) and "rate 0.1, T=4, 10 samples" in out
    out = _ok(
        [
            "deploy",
            str(f),
            "--target",
            "reference",
            "--random-input",
            "0.2",
            "--T",
            "4",
            "-o",
            str(tmp_path / "dep"),
        ],
        capsys,
    )
    assert out.count("n/a (no labels)") == 2
    assert _err(["verify", str(f)], capsys).count("--random-input") == 1  # names the options


def test_verify_on_random_input_in_lava(graph, capsys):
    pytest.importorskip("lava.magma.core.run_configs")
    _, f = graph
    args = ["verify", str(f), "--random-input", "0.3", "--T", "4", "--samples", "3"]
    out = _ok(args, capsys)
    row = re.search(r"body\.2\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)", out)
    assert row is not None and float(row.group(2)) == 1.0  # reference == Lava, spike for spike


def test_profile_with_a_data_file(graph, tmp_path, capsys):
    net, f = graph
    rng = np.random.default_rng(1)
    x = rng.random((20, *SHAPE)).astype(np.float32)
    y = rng.integers(0, 10, 20)
    np.savez(tmp_path / "ly.npz", x=x, y=y)
    np.savez(tmp_path / "nl.npz", x=x)
    with torch.no_grad():  # hand-computed: the float model's predictions on the file, T = 4
        xt = torch.as_tensor(x).unsqueeze(0).expand(4, *x.shape)
        acc = float((net(xt).mean(0).argmax(-1).numpy() == y).mean())
    out = _ok(
        ["profile", str(f), "--data", str(tmp_path / "ly.npz"), "-o", str(tmp_path / "p1"), "-q"],
        capsys,
    )
    assert float(re.search(r"accuracy ([0-9.]+)", out).group(1)) == pytest.approx(acc, abs=1e-5)
    nolabels = ["--target", "reference", "--data", str(tmp_path / "nl.npz")]
    out = _ok(["profile", str(f), *nolabels, "-o", str(tmp_path / "p2"), "-q"], capsys)
    assert "accuracy n/a" in out
    np.savez(tmp_path / "wrong.npz", x=x[:, 0])
    err = _err(["profile", str(f), "--data", str(tmp_path / "wrong.npz"), "-o", "x"], capsys)
    assert "wrong.npz: x has shape (20, 8, 8)" in err and "(N, 1, 8, 8)" in err
