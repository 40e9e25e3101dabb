"""Training: a :class:`TrainConfig` dataclass, :func:`train` (Python API behind
``neurodeploy train``) and :func:`evaluate`.

A run folder holds ``checkpoint.pt`` (written atomically after every epoch), ``metrics.jsonl``
(one JSON object per epoch) and ``config.json``. ``resume=True`` continues from the checkpoint
exactly: the model, optimiser, scheduler and RNG state are restored and the per-epoch shuffling
is derived from (seed, epoch), so an interrupted run reproduces an uninterrupted one.

Data: the offline tasks (``neurodeploy.data.load_task``), or, with ``data_root``, a data set on
the user's disk (``neurodeploy.data.real``: CIFAR10-DVS, DVS128 Gesture, N-Caltech101, N-MNIST,
SHD, CIFAR10/100, ModelNet10/40; ``data`` holds the loader's options). Under torchrun the
same call trains data-parallel (neurodeploy/training/distributed.py: every rank takes its share of each
global batch, rank 0 writes the run folder); ``amp`` turns on mixed precision on CUDA.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from neurodeploy.data import TaskData, load_task
from neurodeploy.data.real import RealDataset, load_dataset
from neurodeploy.files import RunLock, atomic_write_text, clean_temporaries
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.zoo import build_model
from neurodeploy.training import distributed as D
from neurodeploy.training.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from neurodeploy.training.config import (
    CHECKPOINT_NAME,
    DEFAULT_MODEL,
    METRICS_NAME,
    NPZ_TASK,
    TrainConfig,
    TrainResult,
)
from neurodeploy.training.losses import SNNLoss


def load_data(cfg: TrainConfig) -> TaskData | RealDataset:
    """The offline task, the data set in ``cfg.data_root`` (augmentation seeded by ``cfg.seed``),
    or for task "npz" the train and test split of the labelled file ``cfg.data["file"]``."""
    if cfg.task == NPZ_TASK:
        from neurodeploy.data.inputs import labelled_splits

        shape = tuple(int(d) for d in cfg.data["input_shape"])
        return labelled_splits(shape, data=str(cfg.data["file"]), T=cfg.T)
    if cfg.data_root:
        return load_dataset(cfg.task, cfg.data_root, T=cfg.T, seed=cfg.seed, **cfg.data)
    return load_task(cfg.task, T=cfg.T, seed=cfg.data_seed)


def model_for(cfg: TrainConfig, task: TaskData | RealDataset) -> SpikingNet:
    return build_model(
        cfg.model or DEFAULT_MODEL[cfg.task],
        task.input_shape,
        task.num_classes,
        cfg.neuron_config(),
        **cfg.arch,
    )


@torch.no_grad()
def evaluate(
    model: SpikingNet,
    task: TaskData,
    T: int | None = None,
    *,
    split: str = "test",
    batch_size: int = 256,
    device: torch.device | None = None,
) -> float:
    """Accuracy of the time-averaged output on ``split`` ("test" or "train")."""
    x_all, y_all = (task.x_test, task.y_test) if split == "test" else (task.x_train, task.y_train)
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    for i in range(0, len(y_all), batch_size):
        x = task.encode(x_all[i : i + batch_size], T).to(device)
        correct += int((model(x).mean(0).argmax(-1).cpu() == y_all[i : i + batch_size]).sum())
    model.train(was_training)
    return correct / len(y_all)


def _epoch_order(seed: int, epoch: int, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g)


def _build(
    cfg: TrainConfig, task: TaskData | RealDataset, device: torch.device
) -> tuple[SpikingNet, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The model (seeded by ``cfg.seed``, on ``device``), its optimiser and its lr schedule."""
    torch.manual_seed(cfg.seed)
    model = model_for(cfg, task).to(device)
    if cfg.optimizer == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(
            model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    sched: torch.optim.lr_scheduler.LRScheduler
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(
            opt, milestones=list(cfg.milestones), gamma=cfg.gamma
        )
    return model, opt, sched


class _Batches:
    """This rank's share of every global training batch, time-major, with the global batch size.

    Global batch b of an epoch is ``_epoch_order(seed, epoch, n)[b*B:(b+1)*B]`` for every data
    source and any number of processes; rank r keeps elements r, r+W, ... (distributed.shard).
    A last global batch smaller than the number of processes is skipped everywhere (``dropped``)."""

    def __init__(
        self,
        cfg: TrainConfig,
        data: TaskData | RealDataset,
        ctx: D.DistContext,
        device: torch.device,
    ):
        self.cfg, self.data, self.ctx, self.device = cfg, data, ctx, device
        self.n = len(data.y_train) if isinstance(data, TaskData) else len(data.train)
        if cfg.batch_size < ctx.world_size:
            raise ValueError(
                f"batch_size {cfg.batch_size} is the global batch: it must be at least the number "
                f"of processes ({ctx.world_size})"
            )
        # only the last global batch can be short; it is skipped when some rank would get nothing
        tail = self.n % cfg.batch_size
        self.dropped = tail if 0 < tail < ctx.world_size else 0

    def _global(self, epoch: int) -> list[torch.Tensor]:
        order = _epoch_order(self.cfg.seed, epoch, self.n)
        return [order[i : i + self.cfg.batch_size] for i in range(0, self.n, self.cfg.batch_size)]

    def epoch(self, epoch: int):
        cfg, data, ctx = self.cfg, self.data, self.ctx
        batches = [g for g in self._global(epoch) if len(g) >= ctx.world_size]
        if isinstance(data, TaskData):
            for g in batches:
                idx = D.shard(g, ctx)
                yield data.encode(data.x_train[idx], cfg.T), data.y_train[idx], len(g)
            return
        from torch.utils.data import DataLoader

        data.train.set_epoch(epoch)
        loader = DataLoader(
            data.train,
            batch_sampler=[D.shard(g, ctx).tolist() for g in batches],
            num_workers=cfg.workers,
            pin_memory=self.device.type == "cuda",
        )
        for (x, y), g in zip(loader, batches):
            yield data.encode(x, cfg.T), y, len(g)


@torch.no_grad()
def evaluate_dataset(
    model: SpikingNet,
    data: RealDataset,
    T: int | None = None,
    *,
    split: str = "test",
    batch_size: int = 256,
    device: torch.device | None = None,
    workers: int = 0,
    ctx: D.DistContext | None = None,
) -> float:
    """Accuracy of the time-averaged output on a data set from disk; under DDP each rank scores
    samples rank, rank+W, ... and the counts are summed."""
    from torch.utils.data import DataLoader, Subset

    ctx = ctx or D.DistContext()
    ds = data.test if split == "test" else data.train
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = 0
    part = Subset(ds, list(range(ctx.rank, len(ds), ctx.world_size)))
    for x, y in DataLoader(part, batch_size=batch_size, num_workers=workers):
        z = model(data.encode(x, T).to(device))
        correct += int((z.mean(0).argmax(-1).cpu() == y).sum())
    model.train(was_training)
    correct_all, n_all = D.all_reduce_sum([float(correct), float(len(part))], ctx, device)
    return correct_all / n_all


def train_step(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    loss_fn: SNNLoss,
    *,
    x: torch.Tensor,
    y: torch.Tensor,
    amp: torch.dtype | None = None,
    device: torch.device | None = None,
    scaler: torch.amp.GradScaler | None = None,
    share: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """One optimiser step on a batch: forward and loss (under autocast when ``amp``), backward
    of ``loss * share`` (``share``: this rank's weight under DDP), step. Returns (z, loss, parts)."""
    with D.autocast(amp, device or x.device):
        z = net(x)
        loss, parts = loss_fn(z, y)
    if not torch.isfinite(loss):
        raise FloatingPointError(f"loss became {float(loss)}")
    opt.zero_grad(set_to_none=True)
    step_loss = loss if share is None else loss * share
    if scaler is not None:
        scaler.scale(step_loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        step_loss.backward()
        opt.step()
    return z, loss, parts


def train(
    cfg: TrainConfig,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train ``cfg``; with ``out_dir``, checkpoint every epoch and log metrics there.

    ``stop_after`` ends this call after that many epochs in total (the schedule still spans
    ``cfg.epochs``), e.g. to split a run across jobs with a time limit and ``resume`` later.

    ``resume`` continues the run in ``out_dir`` (the checkpoint's config is used; only a
    larger ``epochs`` from ``cfg`` is taken over, and ``cfg.data_root`` if the data moved).
    Without ``resume``, an existing checkpoint in ``out_dir`` is an error: nothing is overwritten.

    Started by torchrun (WORLD_SIZE > 1), the call joins the process group and trains
    data-parallel (neurodeploy/training/distributed.py); only rank 0 writes to ``out_dir``.

    ``out_dir`` is locked for the whole call (:class:`neurodeploy.files.RunLock`): a second
    writer is refused naming this process's PID; a lock left by a killed process is taken over
    (said on stderr). Temporaries a killed checkpoint write left are removed on start, and on
    ``resume`` a torn last line of ``metrics.jsonl`` is dropped (said on stderr).
    """
    ctx = D.init_from_env(cfg.device)
    # one writer per run folder: held before the "already exists" check (no check-then-act)
    lock = RunLock(out_dir) if out_dir is not None and ctx.is_main else None
    try:
        with lock if lock is not None else contextlib.nullcontext():
            return _train(
                cfg, ctx, out_dir=out_dir, resume=resume, progress=progress, stop_after=stop_after
            )
    finally:
        D.shutdown(ctx)


def _train(
    cfg: TrainConfig,
    ctx: D.DistContext,
    *,
    out_dir: str | os.PathLike[str] | None,
    resume: bool,
    progress: bool,
    stop_after: int | None,
) -> TrainResult:
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / CHECKPOINT_NAME if out else None
    state = None
    if out is not None and ctx.is_main:
        left = clean_temporaries(out)
        if left:
            _say(
                f"{out}: removed {len(left)} temporary file(s) a killed write left "
                f"({', '.join(p.name for p in left)})"
            )
    if resume:
        if ckpt_path is None:
            raise ValueError("resume needs out_dir (the run folder holding checkpoint.pt)")
        state = load_checkpoint(ckpt_path)
        saved = TrainConfig.from_dict(state["config"])
        cfg = dataclasses.replace(
            saved, epochs=max(saved.epochs, cfg.epochs), data_root=cfg.data_root or saved.data_root
        )
    elif ckpt_path is not None and ckpt_path.exists():
        raise FileExistsError(
            f"{ckpt_path} already exists: pass resume=True (--resume) to continue "
            f"that run, or choose another output folder; nothing was overwritten"
        )
    device = D.device_for(ctx, cfg.device)
    task = load_data(cfg)
    model, opt, sched = _build(cfg, task, device)
    amp = D.amp_dtype(cfg.amp, device)
    scaler = D.grad_scaler(amp)
    history: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            if scaler is not None and "scaler" in state:
                scaler.load_state_dict(state["scaler"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"checkpoint {ckpt_path}: does not match the model/optimiser it describes: {e}"
            ) from e
        # a CosineAnnealingLR exactly where cfg.schedule == "cosine"
        if isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR) and (
            sched.T_max != cfg.epochs
        ):
            # more (or fewer) epochs than the run was started with: continue on the cosine of the
            # new length. CosineAnnealingLR steps recursively from the current lr, which is 0 at
            # the end of a finished run, so set every group to the new curve's value first.
            sched.T_max = cfg.epochs
            k = sched.last_epoch
            for g, base in zip(opt.param_groups, sched.base_lrs):
                g["lr"] = (
                    sched.eta_min
                    + (base - sched.eta_min) * (1 + math.cos(math.pi * k / cfg.epochs)) / 2
                )
            sched._last_lr = [g["lr"] for g in opt.param_groups]
        torch.set_rng_state(state["rng"])
        history = list(state.get("history", []))
        start_epoch = int(state["epoch"])
    if out is not None and ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2))
        _truncate_metrics(out / METRICS_NAME, start_epoch)
    net = D.wrap_model(model, ctx, device, cfg.sync_bn)
    loss_fn = cfg.loss_fn()
    batches = _Batches(cfg, task, ctx, device)
    end = cfg.epochs if stop_after is None else min(cfg.epochs, max(start_epoch, stop_after))
    bar = tqdm(
        range(start_epoch, end),
        desc=f"train {cfg.task}/{cfg.model}",
        disable=not (progress and ctx.is_main),
        initial=start_epoch,
        total=cfg.epochs,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        tot_loss, tot_correct = 0.0, 0
        parts_sum: dict[str, float] = {}  # per loss term, summed over samples
        for x_batch, y_batch, n_global in batches.epoch(epoch):
            x, y = x_batch.to(device), y_batch.to(device)
            # DDP averages gradients over ranks: weigh each rank's mean loss by its share
            share = None if not ctx.enabled else len(y) * ctx.world_size / n_global
            try:
                z, loss, parts = train_step(
                    net, opt, loss_fn, x=x, y=y, amp=amp, device=device, scaler=scaler, share=share
                )
            except FloatingPointError as e:
                raise FloatingPointError(
                    f"epoch {epoch + 1}: {e}; lower lr (now {cfg.lr}) or check the input data"
                ) from None
            tot_loss += float(loss.detach()) * len(y)
            tot_correct += int((z.detach().mean(0).argmax(-1) == y).sum())
            for term, v in parts.items():
                parts_sum[term] = parts_sum.get(term, 0.0) + v * len(y)
        sched.step()
        keys = sorted(parts_sum)
        sums = D.all_reduce_sum(
            [tot_loss, float(tot_correct), *(parts_sum[k] for k in keys)], ctx, device
        )
        n = batches.n - batches.dropped
        D.sync_buffers(model, ctx)
        if isinstance(task, TaskData):
            test_acc = evaluate(model, task, cfg.T, device=device)
        else:
            test_acc = evaluate_dataset(
                model, task, cfg.T, device=device, workers=cfg.workers, ctx=ctx
            )
        record = {
            "epoch": epoch + 1,
            "train_loss": sums[0] / n,
            "train_acc": sums[1] / n,
            "test_acc": test_acc,
            "loss_parts": {k: v / n for k, v in zip(keys, sums[2:])},
            "alphas": model.alphas(),
            "lr": opt.param_groups[0]["lr"],
            "time_s": round(time.perf_counter() - t0, 3),
        }
        if ctx.enabled:
            record.update(world_size=ctx.world_size, dropped=batches.dropped)
        if amp is not None:
            record["amp"] = cfg.amp
        history.append(record)
        bar.set_postfix(loss=f"{record['train_loss']:.3f}", test=f"{record['test_acc']:.3f}")
        if out is not None and ctx.is_main:
            payload = {
                "config": cfg.to_dict(),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "epoch": epoch + 1,
                "rng": torch.get_rng_state(),
                "history": history,
                "input_shape": list(task.input_shape),
                "num_classes": task.num_classes,
            }
            if scaler is not None:
                payload["scaler"] = scaler.state_dict()
            save_checkpoint(payload, ckpt_path)  # type: ignore[arg-type]
            with open(out / METRICS_NAME, "a") as f:
                f.write(json.dumps(record) + "\n")
    return TrainResult(model, cfg, history)


def _say(message: str) -> None:
    print(f"neurodeploy: {message}", file=sys.stderr, flush=True)


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Keep only metric lines of epochs the checkpoint covers (a crash may leave one more).

    A last line that is not JSON (a writer killed mid-line) is dropped and said so; a torn
    line before the last is corruption, refused naming the file and line."""
    if not path.exists():
        return
    lines = [(i, ln) for i, ln in enumerate(path.read_text().splitlines(), 1) if ln.strip()]
    keep = []
    for k, (i, ln) in enumerate(lines):
        try:
            record = json.loads(ln)
            if not isinstance(record, dict):
                raise ValueError(f"a JSON {type(record).__name__}, not an object")
        except ValueError as e:
            if k == len(lines) - 1:
                _say(
                    f"{path}: dropped a torn last line (line {i}, {len(ln)} characters, not "
                    f"JSON: {e}); the checkpoint covers epoch {epochs_done}"
                )
                break
            raise ValueError(
                f"{path}: line {i} is not a JSON object ({e}); only a torn last line is "
                "repaired: fix or remove that line, then --resume"
            ) from None
        if record.get("epoch", 0) <= epochs_done:
            keep.append(ln)
    atomic_write_text(path, "".join(ln + "\n" for ln in keep))
