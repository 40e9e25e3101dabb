"""Conformance of a trained model across stages: float torch, reference simulator, Lava fixed_pt."""

import pytest

from neurodeploy.cli import main
from neurodeploy.data import load_task
from neurodeploy.measure.qreport import quantize_for_task
from neurodeploy.measure.verify import verify
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train


@pytest.mark.lava
def test_trained_model_agrees_in_every_layer_on_ten_samples(tmp_path, capsys):
    pytest.importorskip("lava.magma.core.run_configs")
    res = train(
        TrainConfig(task="digits", model="mlp", T=4, epochs=2, arch={"hidden": [32]}),
        progress=False,
    )
    task = load_task("digits", T=4)
    prog = quantize_for_task(res.model, task, LOIHI2)
    assert any(l.neuron == "mps" for l in prog.layers)  # the smoothed neuron goes through Lava too
    c = verify(res.model, prog, task, 4, n=10)
    assert c.ref_vs_lava == [1.0] * len(c.layers) and c.pred_ref_vs_lava == 1.0
    assert all(a > 0.9 for a in c.float_vs_lava)
    assert all(a > 0.95 for a in c.float_vs_ref) and c.pred_float_vs_ref >= 0.9
    assert "ref~lava" in c.format()


def test_verify_cli_without_lava(tmp_path, capsys):
    train(
        TrainConfig(task="digits", model="mlp", T=2, epochs=1, arch={"hidden": [16]}),
        out_dir=tmp_path,
        progress=False,
    )
    assert main(["verify", str(tmp_path / "checkpoint.pt"), "--samples", "20", "--no-lava"]) == 0
    out = capsys.readouterr().out
    assert "float~ref" in out and "20 samples" in out


def test_deploy_writes_the_chain_and_a_summary(tmp_path, capsys):
    import json

    from neurodeploy.quant.program import IntProgram

    train(
        TrainConfig(task="digits", model="mlp", T=2, epochs=1, arch={"hidden": [16]}),
        out_dir=tmp_path / "run",
        progress=False,
    )
    out = tmp_path / "dep"
    assert (
        main(
            [
                "deploy",
                str(tmp_path / "run" / "checkpoint.pt"),
                "--target",
                "reference",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "reference simulator, loihi2 integers" in text
    for name in ("model.nir", "model.int.npz", "summary.md", "conformance.json"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "conformance.json").read_text())
    assert (
        0.5 < data["float_acc"] <= 1 and abs(data["int_acc"] - data["float_acc"]) < 0.05
    )  # 1 epoch, 16 neurons
    assert IntProgram.load(out / "model.int.npz").meta["task"] == "digits"
    assert (
        main(
            [
                "deploy",
                str(tmp_path / "run" / "checkpoint.pt"),
                "--target",
                "truenorth",
                "-o",
                str(out),
            ]
        )
        == 2
    )
    assert "target" in capsys.readouterr().err
    # the default model has smoothed neurons: netx refuses it and says how to get a stock network
    assert (
        main(
            ["deploy", str(tmp_path / "run" / "checkpoint.pt"), "--target", "netx", "-o", str(out)]
        )
        == 2
    )
    assert "fine-tune the smoothing coefficient to 0" in capsys.readouterr().err


@pytest.mark.lava
def test_deploy_netx_for_a_stock_network(tmp_path, capsys):
    pytest.importorskip("lava.lib.dl.netx")
    train(
        TrainConfig(
            task="digits",
            model="mlp",
            T=2,
            epochs=1,
            mps=False,
            guidance=False,
            arch={"hidden": [16]},
        ),
        out_dir=tmp_path / "run",
        progress=False,
    )
    out = tmp_path / "dep"
    assert (
        main(
            [
                "deploy",
                str(tmp_path / "run" / "checkpoint.pt"),
                "--target",
                "netx",
                "--samples",
                "3",
                "-o",
                str(out),
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "netx in Lava fixed_pt" in text and "1.0000 (min over layers, vs reference)" in text
    assert (out / "model.netx.h5").stat().st_size > 0
