"""The reproduction's settings for issue 19's Fashion-MNIST tasks (sizing in docs/tasks.md).

No data is read: the configurations and models are built from the task metadata only.
"""

import dataclasses
from pathlib import Path

import pytest
import torch

from neurodeploy.cli import main
from neurodeploy.data import event_fashion, fashion, list_tasks
from neurodeploy.measure.reproduce import ARMS, DEFAULT_TASKS, FULL, QUICK, TASK_BASE, VARIANTS
from neurodeploy.nn.zoo import build_model
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

NEW = {"fashion-mnist": fashion, "event-fashion": event_fashion}
#: sizes measured for docs/tasks.md ("Reproduction sizing"): model, arch, epochs of FULL
SIZED = {
    "fashion-mnist": ("mlp", {}, 6),
    "event-fashion": ("vgg", {"channels": [16, "P", 32, "P"]}, 3),
}
#: parameters of the sized models, by hand:
#: mlp 784-256-128-10 with BN: 784*256 + 2*256 + 256*128 + 2*128 + 128*10 + 10
#: vgg 2->16 3x3 conv + BN, pool, 16->32 3x3 conv + BN, pool, 32*8*8 -> 10 (vanilla: no MPS alpha)
PARAMS = {
    "fashion-mnist": 784 * 256 + 2 * 256 + 256 * 128 + 2 * 128 + 128 * 10 + 10,
    "event-fashion": 2 * 16 * 9 + 2 * 16 + 16 * 32 * 9 + 2 * 32 + 32 * 8 * 8 * 10 + 10,
}


def test_default_run_keeps_the_four_builtin_tasks():
    assert DEFAULT_TASKS == ("digits", "event-digits", "seq1d", "shapes3d")
    assert QUICK.tasks == FULL.tasks == DEFAULT_TASKS


@pytest.mark.parametrize("task", sorted(NEW))
def test_sized_settings_build_every_run(task):
    model, arch, epochs = SIZED[task]
    assert TASK_BASE[task]["model"] == model and TASK_BASE[task].get("arch", {}) == arch
    assert FULL.epochs[task] == epochs and QUICK.epochs[task] == 1
    plan = dataclasses.replace(FULL, tasks=(task,))
    runs = plan.runs()
    assert len(runs) == len(ARMS) * len(plan.Ts) * 3 + len(VARIANTS) * 3 == 45
    for spec in runs:
        cfg = plan.config(spec)
        assert (cfg.task, cfg.model, cfg.arch, cfg.epochs) == (task, model, arch, epochs)
    vanilla = plan.config(dict(study="ablation", task=task, arm="vanilla", T=2, seed=0))
    assert not vanilla.mps and not vanilla.guidance and vanilla.T == 2
    shape, classes = NEW[task].INPUT_SHAPE, NEW[task].NUM_CLASSES
    net = build_model(model, shape, classes, vanilla.neuron_config(), **arch)
    assert sum(p.numel() for p in net.parameters()) == PARAMS[task]
    out = net(torch.zeros(2, 3, *NEW[task].INPUT_SHAPE))
    assert tuple(out.shape) == (2, 3, 10)


def test_a_task_without_settings_is_refused_by_name(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--tasks", "nonesuch", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "nonesuch" in err and "fashion-mnist" in err


@pytest.mark.parametrize("task", sorted(NEW))
def test_recipe_is_the_ablations_plus_both_run_at_t4(task):
    plan = dataclasses.replace(FULL, tasks=(task,))
    run = plan.config(dict(study="ablation", task=task, arm="+both", T=4, seed=0))
    assert load_recipe(RECIPES / f"{task}.toml").to_dict() == run.to_dict()


def test_every_offline_task_has_a_default_model():
    # event-fashion had none: `neurodeploy train --task event-fashion` without --model failed
    for task in NEW:
        assert task in list_tasks()
        assert TrainConfig(task=task).model == "vgg"
