"""Data-parallel training: a 2-process CPU run (gloo) started with torchrun, as the README
documents, takes the same steps as one process on the same global batches; rank 0 alone
writes the run folder; a recipe drives it; a DDP checkpoint resumes in a single process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from neurodeploy.data.real import list_datasets
from neurodeploy.training import distributed as D
from neurodeploy.training.checkpoint import load_model
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train
from neurodeploy.training.recipe import load_recipe, read_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
TINY = RECIPES / "tiny-digits.toml"


def test_shard_takes_every_world_size_th_element():
    g = torch.arange(10)
    assert D.shard(g, D.DistContext(1, 3)).tolist() == [1, 4, 7]
    assert D.shard(g, D.DistContext(0, 3)).tolist() == [0, 3, 6, 9]
    assert torch.equal(D.shard(g, D.DistContext()), g)
    # the shares of all ranks are the global batch, each sample once
    shares = [i for r in range(3) for i in D.shard(g, D.DistContext(r, 3)).tolist()]
    assert sorted(shares) == list(range(10))


def test_single_process_context_and_amp_off_the_gpu(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = D.init_from_env("cpu")
    assert ctx == D.DistContext() and ctx.is_main and not ctx.enabled
    assert D.amp_dtype("bf16", torch.device("cpu")) is None  # mixed precision is CUDA only
    assert D.amp_dtype("fp16", torch.device("cuda")) == torch.float16
    with pytest.raises(ValueError, match="amp must be one of"):
        D.amp_dtype("int8", torch.device("cpu"))
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        D.init_from_env("cpu")


def test_recipe_loading_and_errors(tmp_path):
    cfg = load_recipe(TINY, {"epochs": 1})
    assert (
        cfg.task == "digits"
        and cfg.arch == {"hidden": [32], "batchnorm": False}
        and cfg.epochs == 1
    )
    assert cfg.optimizer == "sgd" and cfg.lr == 0.1
    bad = tmp_path / "bad.toml"
    bad.write_text('task = "digits"\nlearning_rate = 0.1\n')
    with pytest.raises(ValueError, match=r"bad.toml: unknown key\(s\) \['learning_rate'\]"):
        read_recipe(bad)
    bad.write_text('task = "cifar10-dvs"\n')
    with pytest.raises(
        ValueError, match="bad.toml: data_root: task 'cifar10-dvs' reads a data set from disk"
    ):
        load_recipe(bad)
    for f in sorted(
        RECIPES.glob("*.toml")
    ):  # every shipped recipe is a valid config once given a folder
        fields = read_recipe(f)
        on_disk = fields["task"] in list_datasets()  # the offline tasks read no folder
        load_recipe(f, {"data_root": str(tmp_path)} if on_disk else {})


def _torchrun(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "neurodeploy",
        "train",
        *args,
    ]
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False
    )


def test_two_processes_match_one_on_the_same_global_batches(tmp_path):
    run = tmp_path / "ddp"
    # the CLI, as documented: the recipe, one option typed on the command line overriding it
    proc = _torchrun(
        tmp_path,
        "--config",
        str(TINY),
        "--device",
        "cpu",
        "--epochs",
        "2",
        "--out",
        str(run),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count("test acc") == 1  # rank 0 reports, once
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in lines] == [1, 2]  # rank 0 alone wrote, once per epoch
    assert all(r["world_size"] == 2 and r["dropped"] == 0 for r in lines)
    assert sorted(p.name for p in run.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
    ]

    torch.set_num_threads(1)
    single = train(
        load_recipe(TINY, {"device": "cpu"}), out_dir=tmp_path / "single", progress=False
    )
    ddp_model, cfg = load_model(run / "checkpoint.pt")
    assert cfg == single.config
    # 1437 samples in global batches of 64: the last one (29) splits 15/14, weighted by share
    for (k, a), (k2, b) in zip(
        single.model.state_dict().items(), ddp_model.state_dict().items(), strict=True
    ):
        assert k == k2
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    for r, s in zip(lines, single.history, strict=True):
        assert r["train_loss"] == pytest.approx(s["train_loss"], rel=1e-4)
        assert r["test_acc"] == pytest.approx(
            s["test_acc"], abs=1 / 360 + 1e-9
        )  # one test sample at most
        assert r["loss_parts"]["guidance"] == pytest.approx(s["loss_parts"]["guidance"], rel=1e-3)

    # the DDP checkpoint resumes in a single process (same format, rank-0 state) like the single run's
    more = load_recipe(TINY, {"device": "cpu", "epochs": 3})
    from_ddp = train(more, out_dir=run, resume=True, progress=False)
    from_single = train(more, out_dir=tmp_path / "single", resume=True, progress=False)
    assert [r["epoch"] for r in from_ddp.history] == [1, 2, 3]
    for a, b in zip(from_single.model.parameters(), from_ddp.model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_an_offline_task_refuses_a_data_root():
    with pytest.raises(ValueError, match="offline task and reads no folder"):
        TrainConfig(task="digits", data_root="/data")


def test_gpu_throughput_script_cpu_path_at_tiny_size(tmp_path):
    """The GPU benchmark's code path, on the CPU at tiny size (no timing is asserted)."""
    import importlib.util

    path = RECIPES.parent / "benchmarks" / "gpu_recipe_throughput.py"
    spec = importlib.util.spec_from_file_location("gpu_recipe_throughput", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main(
        [
            "--tiny",
            "--device",
            "cpu",
            "--samples",
            "8",
            "--warmup",
            "1",
            "--out",
            str(tmp_path / "t.md"),
        ]
    )
    (row,) = res["rows"]  # amp applies on CUDA only: one setting ("off") on the CPU
    assert row["amp"] == "off" and row["samples"] == 8 and row["samples_per_s"] > 0
    assert res["config"]["model"] == "vggsnn" and res["config"]["T"] == 4
    text = (tmp_path / "t.md").read_text()
    assert "| off |" in text and "torch" in text and (tmp_path / "t.json").exists()


def _write_nmnist(root: Path, per_digit: int) -> None:
    """N-MNIST .bin files: 5 bytes per event (x, y, p<<7 | t[22:16], t[15:8], t[7:0])."""
    import numpy as np

    rng = np.random.default_rng(0)
    for split in ("Train", "Test"):
        for d in range(10):
            (root / split / str(d)).mkdir(parents=True)
            for i in range(per_digit):
                n = 60
                t = np.sort(rng.integers(0, 200_000, n))
                x = (
                    rng.integers(0, 34, n) if d % 2 else rng.integers(0, 17, n)
                )  # a learnable difference
                y, p = rng.integers(0, 34, n), rng.integers(0, 2, n)
                raw = np.stack(
                    [x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], 1
                ).astype(np.uint8)
                (root / split / str(d) / f"{i:05d}.bin").write_bytes(raw.tobytes())


def test_two_processes_on_a_data_set_from_disk(tmp_path):
    """The DataLoader path: sharded batches (7 = 4 + 3 per global batch), per-sample augmentation
    seeded independently of the rank, sharded evaluation summed over ranks: the weights and the
    accuracy of one process."""
    _write_nmnist(tmp_path / "nm", per_digit=2)
    recipe = tmp_path / "nm.toml"
    recipe.write_text(
        'task = "n-mnist"\nmodel = "mlp"\nT = 2\nepochs = 2\nbatch_size = 7\noptimizer = "sgd"\n'
        "lr = 0.1\nguidance = true\n[arch]\nhidden = [16]\nbatchnorm = false\n"
        '[data]\naugment = ["roll", "cutout"]\n'
    )
    run = tmp_path / "ddp"
    proc = _torchrun(
        tmp_path,
        "--config",
        str(recipe),
        "--data-root",
        str(tmp_path / "nm"),
        "--device",
        "cpu",
        "--out",
        str(run),
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    single = train(
        load_recipe(recipe, {"data_root": str(tmp_path / "nm"), "device": "cpu"}), progress=False
    )
    ddp_model, _ = load_model(run / "checkpoint.pt")
    for a, b in zip(single.model.parameters(), ddp_model.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    for r, s in zip(lines, single.history, strict=True):
        assert r["train_loss"] == pytest.approx(s["train_loss"], rel=1e-4)
        assert r["test_acc"] == s["test_acc"]  # 20 test samples, 10 per rank, counts summed
