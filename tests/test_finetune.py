"""Fine-tuning through the integer program: accuracy kept, stock-neuron annealing, artefacts."""

import json

import pytest

from neurodeploy.cli import main
from neurodeploy.converters.nir_to_program import quantize_nir
from neurodeploy.finetune import FinetuneConfig, finetune
from neurodeploy.neuron.hardware import LOIHI2, LOIHI2_NETX
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.qat import programs_equal
from neurodeploy.quant.quantize import input_settings, quantize_model
from neurodeploy.training.checkpoint import load_model
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    train(TrainConfig(task="digits", T=4, epochs=2, seed=0), out_dir=out, progress=False)
    return out / "checkpoint.pt"


def test_short_finetune_does_not_lower_integer_accuracy(digits_ckpt, tmp_path):
    res = finetune(
        digits_ckpt, "loihi2", out_dir=tmp_path / "ft", progress=False, epochs=1, select="last"
    )
    assert res.int_acc >= res.ptq_acc
    assert res.history[0]["saturations"] == 0 and res.history[0]["selected"]
    # the artefacts: the checkpoint reloads to the same integer program, and so does its NIR export
    from neurodeploy.data import load_task

    settings = input_settings(load_task("digits", T=4))
    model, cfg = load_model(tmp_path / "ft" / "checkpoint.pt")
    assert cfg.mps and programs_equal(quantize_model(model, **settings), res.program)
    assert programs_equal(IntProgram.load(tmp_path / "ft" / "model.int.npz"), res.program)
    assert programs_equal(quantize_nir(tmp_path / "ft" / "model.nir", **settings), res.program)
    summary = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    assert summary["int_acc"] == res.int_acc and summary["hardware"] == "loihi2"
    with pytest.raises(FileExistsError, match="already exists"):
        finetune(digits_ckpt, out_dir=tmp_path / "ft", progress=False, epochs=1)


def test_stock_neurons_through_the_cli(digits_ckpt, tmp_path, capsys):
    assert (
        main(
            [
                "finetune",
                str(digits_ckpt),
                "--hardware",
                "loihi2",
                "--stock-neurons",
                "--epochs",
                "3",
                "--out",
                str(tmp_path / "stock"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "stock neurons" in capsys.readouterr().out
    summary = json.loads((tmp_path / "stock" / "finetune.json").read_text())
    hist = summary["history"]
    # alpha is annealed over the first half of the steps (to mid epoch 2), then the layers are stock LIF
    assert 0 < max(hist[0]["alphas"].values()) < max(load_model(digits_ckpt)[0].alphas().values())
    assert hist[1]["stock"] and all(a == 0 for a in hist[1]["alphas"].values())
    model, cfg = load_model(tmp_path / "stock" / "checkpoint.pt")
    assert cfg.mps is False and all(a == 0.0 for a in model.alphas().values())
    prog = IntProgram.load(tmp_path / "stock" / "model.int.npz")
    assert all(l.neuron == "lif" and l.coef == 0 for l in prog.layers if l.neuron)
    assert all(l.weight_exp == 0 for l in prog.layers)  # stock neurons default to netx's formats
    from neurodeploy.targets.netx import export_netx

    assert (
        export_netx(prog, tmp_path / "net.h5").stat().st_size > 0
    )  # netx accepts it (it refuses smoothed ones)
    assert summary["stock_ptq_acc"] is not None and summary["int_acc"] > 0.5


def test_config_is_checked():
    with pytest.raises(ValueError, match="epochs"):
        FinetuneConfig(epochs=0)
    with pytest.raises(ValueError, match="anneal_fraction"):
        FinetuneConfig(anneal_fraction=0)
    with pytest.raises(ValueError, match="hardware"):
        FinetuneConfig(hardware="truenorth")
    with pytest.raises(ValueError, match="select"):
        FinetuneConfig(select="best-test")
    assert (
        FinetuneConfig(stock_neurons=True).spec() == LOIHI2_NETX
        and FinetuneConfig().spec() == LOIHI2
    )
