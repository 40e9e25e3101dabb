"""Training: a :class:`TrainConfig` dataclass, :func:`train` (Python API behind
``neurodeploy train``) and :func:`evaluate`.

A run folder holds ``checkpoint.pt`` (written atomically after every epoch), ``metrics.jsonl``
(one JSON object per epoch) and ``config.json``. ``resume=True`` continues from the checkpoint
exactly: the model, optimiser, scheduler and RNG state are restored and the per-epoch shuffling
is derived from (seed, epoch), so an interrupted run reproduces an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from neurodeploy.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from neurodeploy.data import TaskData, list_tasks, load_task
from neurodeploy.layers import NeuronConfig
from neurodeploy.losses import GuidanceConfig, SNNLoss
from neurodeploy.models import MODELS, SpikingNet, build_model

DEFAULT_MODEL = {"digits": "mlp", "event-digits": "vgg", "seq1d": "conv1d", "shapes3d": "pointnet"}
OPTIMIZERS = ("adam", "sgd")
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint)."""

    task: str = "event-digits"
    model: str | None = None          # None: the task's default (DEFAULT_MODEL)
    T: int = 4
    # neuron
    mps: bool = True
    mps_mode: str = "reset"
    alpha_init: float = 0.5
    tau: float = 2.0
    theta: float = 1.0
    reset: str = "hard"
    surrogate: str = "rectangular"
    detach_reset: bool = True
    # loss
    loss: str = "ce"
    guidance: bool = True
    lam: float = 1.0
    tau_kd: float = 2.0
    p_drop: float = 0.0
    direction: str = "both"           # chosen by the reproduction, see docs/defaults.md
    # optimisation
    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    seed: int = 0
    data_seed: int = 0
    device: str = "auto"
    arch: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.task not in list_tasks():
            raise ValueError(f"task: unknown name {self.task!r}; available: {list_tasks()}")
        if self.model is None:
            self.model = DEFAULT_MODEL[self.task]
        if self.model not in MODELS:
            raise ValueError(f"model: unknown name {self.model!r}; available: {sorted(MODELS)}")
        for name in ("T", "epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        self.neuron_config()        # validates tau, theta, reset, surrogate, alpha_init ...
        self.loss_fn()              # validates loss, lam, tau_kd, p_drop, direction

    def neuron_config(self) -> NeuronConfig:
        return NeuronConfig(tau=self.tau, theta=self.theta, reset=self.reset, mps=self.mps,
                            mps_mode=self.mps_mode, alpha_init=self.alpha_init,
                            surrogate=self.surrogate, detach_reset=self.detach_reset)

    def loss_fn(self) -> SNNLoss:
        g = GuidanceConfig(self.lam, self.tau_kd, self.p_drop, self.direction) if self.guidance else None
        return SNNLoss(self.loss, g)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"config: unknown field(s) {sorted(unknown)}")
        return cls(**d)


@dataclass
class TrainResult:
    model: SpikingNet
    config: TrainConfig
    history: list[dict[str, Any]]

    @property
    def test_acc(self) -> float:
        return self.history[-1]["test_acc"]


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def model_for(cfg: TrainConfig, task: TaskData) -> SpikingNet:
    return build_model(cfg.model or DEFAULT_MODEL[cfg.task], task.input_shape, task.num_classes,
                       cfg.neuron_config(), **cfg.arch)


@torch.no_grad()
def evaluate(model: SpikingNet, task: TaskData, T: int | None = None, split: str = "test",
             batch_size: int = 256, device: torch.device | None = None) -> float:
    """Accuracy of the time-averaged output on ``split`` ("test" or "train")."""
    x_all, y_all = (task.x_test, task.y_test) if split == "test" else (task.x_train, task.y_train)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y_all), batch_size):
        x = task.encode(x_all[i:i + batch_size], T).to(device)
        correct += int((model(x).mean(0).argmax(-1).cpu() == y_all[i:i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y_all)


def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def _build(cfg: TrainConfig, task: TaskData, device: torch.device):
    torch.manual_seed(cfg.seed)
    model = model_for(cfg, task).to(device)
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    return model, opt, sched


def train(cfg: TrainConfig, out_dir: str | os.PathLike[str] | None = None, resume: bool = False,
          progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train ``cfg``; with ``out_dir``, checkpoint every epoch and log metrics there.

    ``stop_after`` ends this call after that many epochs in total (the schedule still spans
    ``cfg.epochs``), e.g. to split a run across jobs with a time limit and ``resume`` later.

    ``resume`` continues the run in ``out_dir`` (the checkpoint's config is used; only a
    larger ``epochs`` from ``cfg`` is taken over). Without ``resume``, an existing checkpoint
    in ``out_dir`` is an error: nothing is overwritten.
    """
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT_NAME if out else None
    state = None
    if resume:
        if ckpt_path is None:
            raise ValueError("resume needs out_dir (the run folder holding checkpoint.pt)")
        state = load_checkpoint(ckpt_path)
        saved = TrainConfig.from_dict(state["config"])
        cfg = dataclasses.replace(saved, epochs=max(saved.epochs, cfg.epochs))
    elif ckpt_path is not None and ckpt_path.exists():
        raise FileExistsError(f"{ckpt_path} already exists: pass resume=True (--resume) to continue "
                              f"that run, or choose another output folder; nothing was overwritten")
    device = resolve_device(cfg.device)
    task = load_task(cfg.task, T=cfg.T, seed=cfg.data_seed)
    model, opt, sched = _build(cfg, task, device)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(f"checkpoint {ckpt_path}: does not match the model/optimiser it "
                                  f"describes: {e}") from e
        sched.T_max = cfg.epochs
        torch.set_rng_state(state["rng"])
        history = list(state.get("history", []))
        start_epoch = int(state["epoch"])
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
        _truncate_metrics(out / METRICS_NAME, start_epoch)
    loss_fn = cfg.loss_fn()
    n = len(task.y_train)
    end = cfg.epochs if stop_after is None else min(cfg.epochs, max(start_epoch, stop_after))
    bar = tqdm(range(start_epoch, end), desc=f"train {cfg.task}/{cfg.model}", disable=not progress,
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        order = _epoch_order(cfg.seed, epoch, n)
        tot_loss, tot_correct, parts_sum = 0.0, 0, {}
        for i in range(0, n, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = task.encode(task.x_train[idx], cfg.T).to(device)
            y = task.y_train[idx].to(device)
            z = model(x)
            loss, parts = loss_fn(z, y)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch + 1}: loss became {float(loss)}; lower lr "
                                         f"(now {cfg.lr}) or check the input data")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            tot_loss += float(loss.detach()) * len(idx)
            tot_correct += int((z.detach().mean(0).argmax(-1) == y).sum())
            for k, v in parts.items():
                parts_sum[k] = parts_sum.get(k, 0.0) + v * len(idx)
        sched.step()
        record = {
            "epoch": epoch + 1,
            "train_loss": tot_loss / n,
            "train_acc": tot_correct / n,
            "test_acc": evaluate(model, task, cfg.T, device=device),
            "loss_parts": {k: v / n for k, v in parts_sum.items()},
            "alphas": model.alphas(),
            "lr": opt.param_groups[0]["lr"],
            "time_s": round(time.perf_counter() - t0, 3),
        }
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", test=f"{record['test_acc']:.3f}")
        if out is not None:
            save_checkpoint({"config": cfg.to_dict(), "model": model.state_dict(),
                             "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                             "epoch": epoch + 1, "rng": torch.get_rng_state(), "history": history,
                             "input_shape": list(task.input_shape), "num_classes": task.num_classes},
                            ckpt_path)  # type: ignore[arg-type]
            with open(out / METRICS_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")
    return TrainResult(model, cfg, history)


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Keep only metric lines of epochs the checkpoint covers (a crash may leave one more)."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = [ln for ln in lines if json.loads(ln).get("epoch", 0) <= epochs_done]
    path.write_text("".join(ln + "\n" for ln in keep))


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> tuple[SpikingNet, TrainConfig]:
    """Rebuild the trained model stored in a checkpoint (evaluation mode)."""
    state = load_checkpoint(path, map_location=device)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(cfg.model or DEFAULT_MODEL[cfg.task], state["input_shape"], state["num_classes"],
                        cfg.neuron_config(), **cfg.arch)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint {path}: weights do not fit model {cfg.model!r}: {e}") from e
    return model.to(device).eval(), cfg
