"""The reproduction's settings for issue 19's spoken-digits task and its recipe (sizing in
docs/tasks.md, "Reproduction sizing").

No data is read and espeak-ng is not needed: configurations and models are built from the task
metadata only.
"""

import dataclasses
from pathlib import Path

import torch

from neurodeploy.data import list_tasks, spoken_digits
from neurodeploy.measure.reproduce import ARMS, DEFAULT_TASKS, FULL, QUICK, TASK_BASE, VARIANTS
from neurodeploy.nn.zoo import MODELS, build_model
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.recipe import load_recipe

TASK = "spoken-digits"
RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "spoken-digits.toml"
ARCH = {"hidden": [48, 48]}
#: mlp 128-48-48-10 with BN (no Linear bias before BN): by hand
PARAMS = 128 * 48 + 2 * 48 + 48 * 48 + 2 * 48 + 48 * 10 + 10


def test_spoken_digits_runs_only_when_named():
    assert TASK not in DEFAULT_TASKS and TASK not in FULL.tasks and TASK not in QUICK.tasks


def test_sized_settings_build_every_run_on_data_seed_0():
    assert TASK_BASE[TASK] == dict(model="mlp", lr=5e-3, arch=ARCH)
    assert FULL.epochs[TASK] == 20 and QUICK.epochs[TASK] == 2
    plan = dataclasses.replace(FULL, tasks=(TASK,))
    runs = plan.runs()
    assert len(runs) == len(ARMS) * 2 * 3 + len(VARIANTS) * 3 == 45
    assert {r["T"] for r in runs} == {2, 4}
    for spec in runs:
        cfg = plan.config(spec)
        assert (cfg.task, cfg.model, cfg.arch, cfg.epochs, cfg.lr) == (TASK, "mlp", ARCH, 20, 5e-3)
        # the run seed varies, the data does not: every run reads the seed-0 cache
        assert cfg.seed == spec["seed"] and cfg.data_seed == 0


def test_sized_model_shape_and_size():
    cfg = dataclasses.replace(FULL, tasks=(TASK,)).config(
        dict(study="ablation", task=TASK, arm="vanilla", T=2, seed=0)
    )
    assert not cfg.mps and not cfg.guidance and cfg.T == 2
    net = build_model("mlp", spoken_digits.INPUT_SHAPE, 10, cfg.neuron_config(), **ARCH)
    assert spoken_digits.INPUT_SHAPE == (128,)
    assert sum(p.numel() for p in net.parameters()) == PARAMS
    assert tuple(net(torch.zeros(2, 3, 128)).shape) == (2, 3, 10)


def test_recipe_matches_the_reproduction_settings():
    cfg = load_recipe(RECIPE)
    assert (cfg.task, cfg.model, cfg.arch, cfg.T) == (TASK, "mlp", ARCH, 4)
    assert (cfg.epochs, cfg.lr, cfg.batch_size) == (FULL.epochs[TASK], 5e-3, FULL.batch_size)
    assert cfg.mps and cfg.guidance and cfg.data_seed == 0


def test_every_offline_task_has_a_default_model():
    # `neurodeploy train --task spoken-digits` without --model raised KeyError before
    assert TrainConfig(task=TASK).model == "srnn"
    for task in list_tasks():
        assert TrainConfig(task=task).model in MODELS
