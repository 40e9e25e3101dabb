"""Training, checkpoints and resume on the offline tasks."""

import json

import pytest
import torch

from neurodeploy.data import load_task
from neurodeploy.nn.zoo import build_model
from neurodeploy.training.checkpoint import (
    CheckpointError,
    load_checkpoint,
    load_model,
    save_checkpoint,
)
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import evaluate, train

QUICK = dict(task="digits", model="mlp", T=2, batch_size=64, lr=5e-3, arch={"hidden": [64]})


def test_short_training_beats_chance_by_far():
    res = train(TrainConfig(**QUICK, epochs=3, mps=True, guidance=True), progress=False)
    assert res.test_acc > 0.8  # chance is 0.1
    assert len(res.history) == 3
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert set(res.history[-1]["loss_parts"]) == {"ce", "guidance"}
    (alpha,) = res.model.alphas().values()
    assert 0 < alpha < 1 and alpha != 0.5  # learned


def test_vanilla_has_no_alpha_parameters():
    res = train(TrainConfig(**QUICK, epochs=1, mps=False, guidance=False), progress=False)
    assert res.model.alphas() == {"body.3": 0.0}
    assert "guidance" not in res.history[0]["loss_parts"]


def test_resume_continues_exactly(tmp_path):
    cfg = TrainConfig(**QUICK, epochs=3, p_drop=0.5)  # dropping exercises the RNG restore
    full = train(cfg, out_dir=tmp_path / "full", progress=False)
    cut = train(cfg, out_dir=tmp_path / "cut", progress=False, stop_after=1)  # "interrupted"
    assert len(cut.history) == 1
    resumed = train(cfg, out_dir=tmp_path / "cut", resume=True, progress=False)
    for a, b in zip(full.history, resumed.history, strict=True):
        assert a["train_loss"] == b["train_loss"] and a["test_acc"] == b["test_acc"]
    for (k, v), (k2, v2) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items()
    ):
        assert k == k2 and torch.equal(v, v2)
    lines = [json.loads(ln) for ln in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2, 3]


def test_checkpoint_reload_gives_same_outputs(tmp_path):
    res = train(TrainConfig(**QUICK, epochs=1), out_dir=tmp_path, progress=False)
    model, cfg = load_model(tmp_path / "checkpoint.pt")
    task = load_task("digits", T=2)
    assert evaluate(model, task, 2) == res.test_acc
    x = task.encode(task.x_test[:8], 2)
    res.model.eval()
    assert torch.equal(model(x), res.model(x))
    assert cfg == res.config


def test_existing_run_is_not_overwritten(tmp_path):
    train(TrainConfig(**QUICK, epochs=1), out_dir=tmp_path, progress=False)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    with pytest.raises(FileExistsError, match="checkpoint.pt"):
        train(TrainConfig(**QUICK, epochs=1), out_dir=tmp_path, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign_state_dict", "pickled_object"])
def test_bad_checkpoints_raise_naming_the_file_and_stay_untouched(tmp_path, damage):
    train(TrainConfig(**QUICK, epochs=1), out_dir=tmp_path, progress=False)
    path = tmp_path / "checkpoint.pt"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "foreign_state_dict":
        torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    else:
        import pickle

        path.write_bytes(
            pickle.dumps(TrainConfig(**QUICK), protocol=2)
        )  # arbitrary objects are refused
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        train(TrainConfig(**QUICK, epochs=2), out_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(CheckpointError, match="checkpoint.pt"):
        load_model(path)
    assert path.read_bytes() == before


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        load_checkpoint(tmp_path / "nope.pt")


def test_atomic_save_leaves_no_temporary(tmp_path):
    save_checkpoint(
        {"config": {}, "model": {}, "epoch": 0, "input_shape": [1], "num_classes": 2},
        tmp_path / "c.pt",
    )
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]
    assert load_checkpoint(tmp_path / "c.pt")["epoch"] == 0


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        (dict(T=0), "T"),
        (dict(T=-2), "T"),
        (dict(epochs=0), "epochs"),
        (dict(task="mnist"), "task"),
        (dict(model="resnet"), "model"),
        (dict(tau=1.0), "tau"),
        (dict(p_drop=1.2), "p_drop"),
        (dict(p_drop=-0.1), "p_drop"),
        (dict(lr=0.0), "lr"),
        (dict(batch_size=0), "batch_size"),
        (dict(optimizer="lbfgs"), "optimizer"),
        (dict(direction="up"), "direction"),
    ],
)
def test_bad_config_names_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_model_rejects_wrong_input_shape():
    m = build_model("vgg", (2, 20, 20), 10)
    with pytest.raises(ValueError, match="vgg.*expected input"):
        m(torch.rand(4, 3, 2, 16, 16))
    with pytest.raises(ValueError, match="vgg"):
        m(torch.rand(3, 2, 20, 20))  # missing T axis
    with pytest.raises(ValueError, match="model: unknown"):
        build_model("transformer", (1,), 2)
    with pytest.raises(ValueError, match="needs image input"):
        build_model("vgg", (1, 40), 10)


@pytest.mark.parametrize("task", ["digits", "event-digits", "seq1d", "shapes3d"])
def test_every_task_trains_with_its_default_model(task):
    cfg = TrainConfig(task=task, T=2, epochs=1, batch_size=64)
    t = load_task(task, T=2)
    torch.manual_seed(0)
    res = train(cfg, progress=False)
    z = res.model(t.encode(t.x_test[:4], 2))
    assert z.shape == (2, 4, t.num_classes)
    assert res.history[0]["test_acc"] > 1.5 / t.num_classes  # learning has started


def test_kernel_option_reaches_every_lif_and_is_validated() -> None:
    from neurodeploy.nn.layers import LIF
    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.loop import load_data, model_for

    cfg = TrainConfig(task="digits", model="mlp", kernel="reference", arch={"hidden": [8]})
    model = model_for(cfg, load_data(cfg))
    kinds = {m.kernel for m in model.modules() if isinstance(m, LIF)}
    assert kinds == {"reference"}
    with pytest.raises(ValueError, match="kernel must be one of"):
        TrainConfig(task="digits", kernel="cuda")
    # configs saved before the option existed load with the default
    d = cfg.to_dict()
    d.pop("kernel")
    assert TrainConfig.from_dict(d).kernel == "auto"


def test_resume_with_more_epochs_continues_on_the_longer_cosine(tmp_path) -> None:
    """A finished 2-epoch cosine run ends at lr 0; resumed for 4 epochs it must go on training on the
    4-epoch cosine: epoch 3 trains at lr0 * (1 + cos(2 pi / 4)) / 2 = lr0 / 2, and the lr logged after
    it (the next epoch's) is lr0 * (1 + cos(3 pi / 4)) / 2; after epoch 4 it is 0 again."""
    import math

    cfg = TrainConfig(task="digits", model="mlp", T=2, epochs=2, lr=1e-2, arch={"hidden": [8]})
    train(cfg, out_dir=tmp_path, progress=False)
    before = {
        k: v.clone() for k, v in load_model(tmp_path / "checkpoint.pt")[0].state_dict().items()
    }
    res = train(
        TrainConfig(**{**cfg.to_dict(), "epochs": 4}), out_dir=tmp_path, resume=True, progress=False
    )
    lrs = [h["lr"] for h in res.history]
    assert len(lrs) == 4
    assert lrs[1] == pytest.approx(0.0, abs=1e-12)  # where the finished run stopped
    assert lrs[2] == pytest.approx(1e-2 * (1 + math.cos(3 * math.pi / 4)) / 2) and lrs[
        3
    ] == pytest.approx(0.0, abs=1e-12)
    after = res.model.state_dict()
    assert not torch.equal(before["body.1.module.weight"], after["body.1.module.weight"])
