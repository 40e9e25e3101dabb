"""Hardware-constrained fine-tuning: train a float checkpoint through its integer program
(:class:`neurodeploy.quant.qat.QATNet`), optionally annealing the smoothing coefficient to 0 so that the
result runs on stock Loihi LIF neurons (netx, snntorch), and write a checkpoint, its NIR export and
its integer program (``neurodeploy finetune``).

Stock-neuron annealing: with alpha_k(0) the starting coefficient of layer k, S the number of
optimiser steps and S_a = round(anneal_fraction * S), after every step n the logit is projected onto

    alpha_k <= alpha_k(0) * max(0, 1 - n / S_a)            (a_k <= logit of that bound)

and once n reaches S_a every LIF layer is switched to a vanilla LIF (alpha = 0 exactly, no
parameter), which the quantiser maps to Lava's stock LIF. The remaining steps fine-tune the
stock network. Only epochs after the switch are candidates for the result.

Selection (``select="best-train"``): after every epoch the integer accuracy on the *training* set
is measured and the best epoch kept (ties: the later one); the starting point counts as epoch 0
unless stock neurons are asked for. The test set is only reported, never used to choose.

Sources: a ``checkpoint.pt`` written by ``train`` (its task's data, or the labelled ``.npz`` it
was trained on, unless ``data`` is given; chains and graph models alike: residual and recurrent
checkpoints such as ``resnet19``, ``sew_resnet`` and ``srnn`` train through their graph programs,
:mod:`neurodeploy.quant.qat` "Graphs"), or
any NIR graph (``.nir``, read as every command reads it, ``dt`` and ``reset`` included: with
``reset="snntorch"`` snnTorch's delayed reset, one refractory step after a spike, see
:func:`neurodeploy.converters.nir_import.nir_to_model`) with labelled ``data``
(:func:`neurodeploy.data.inputs.labelled_splits`: --task, --data, --dataset, --config), else the
task its metadata records. A NIR source is trained with the cross-entropy of the time-averaged
output, CE(mean_t z_t, y) (no guidance: a foreign graph has no training recipe), and written as
``model.nir`` (our exporter keeps the source's node types: Affine, Conv2d, pooling, Flatten,
LIF / CubaLIF / LI, with the dt it was read with; a delayed-reset neuron keeps metadata
``reset_delay``, so the other commands read ``model.nir`` right without ``--reset``),
``model.int.npz`` and ``finetune.json``; it
has no ``checkpoint.pt`` (its architecture lives in the graph, not in our zoo): ``model.nir`` is
the model file the other commands read.
"""

from __future__ import annotations

import copy
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

from neurodeploy.data import TaskData, load_task
from neurodeploy.data.inputs import Inputs, from_task
from neurodeploy.files import RunLock, check_not_input
from neurodeploy.measure.calibrate import OverflowSearch, quantize_checked
from neurodeploy.neuron.hardware import HardwareSpec, get_spec, netx_variant
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.qat import QATNet, integer_accuracy
from neurodeploy.quant.quantize import input_settings
from neurodeploy.training.checkpoint import load_checkpoint, load_model, save_checkpoint
from neurodeploy.training.config import CHECKPOINT_NAME, NPZ_TASK, TrainConfig
from neurodeploy.training.loop import evaluate
from neurodeploy.training.losses import SNNLoss

#: the loss of a NIR source: cross-entropy of the time-averaged output, no guidance
NIR_LOSS = "ce"

SELECTIONS = ("best-train", "last")
NIR_NAME = "model.nir"
PROGRAM_NAME = "model.int.npz"
SUMMARY_NAME = "finetune.json"


@dataclass
class FinetuneConfig:
    """Settings of one fine-tuning run (saved with its checkpoint)."""

    hardware: str = "loihi2"
    epochs: int = 4
    lr: float = 5e-4  # Adam, cosine-annealed to 0 over the epochs
    batch_size: int = 64
    stock_neurons: bool = False  # anneal alpha to 0 and finish as vanilla (stock Loihi) LIF,
    #                                   in the formats of the hardware's netx variant (spec())
    anneal_fraction: float = 0.5  # share of the steps over which alpha goes to 0
    percentile: float | None = None  # weight scaling as quantize_model's
    # the final program's 24-bit overflow on the training split: False searches exponents free
    # of it or refuses (measure.calibrate.quantize_checked); True accepts and reports the counts
    allow_overflow: bool = False
    weight_split: int = 1  # each synapse as K 8-bit parts (neurodeploy.quant.split); K x synapses
    select: str = "best-train"  # "best-train" or "last" (module docstring)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        get_spec(self.hardware)
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr!r}")
        if not (0 < self.anneal_fraction <= 1):
            raise ValueError(f"anneal_fraction must be in (0, 1], got {self.anneal_fraction!r}")
        if self.select not in SELECTIONS:
            raise ValueError(f"select must be one of {SELECTIONS}, got {self.select!r}")

    def spec(self) -> HardwareSpec:
        """The hardware spec trained against: ``hardware``, or with stock neurons its netx variant
        (weight exponent 0, bias exponent 6: the result exports to lava-dl netx)."""
        hw = get_spec(self.hardware)
        return netx_variant(hw) if self.stock_neurons else hw


@dataclass
class FinetuneResult:
    """The fine-tuned model, its training config (``mps=False`` after stock annealing), the integer
    program it was trained against, accuracies (fractions) and the per-epoch history."""

    model: SpikingNet
    train_config: TrainConfig | None  # None for a NIR source (no training recipe)
    config: FinetuneConfig
    program: IntProgram
    float_acc_before: float
    ptq_acc: float  # integer accuracy of the starting model (its own neurons)
    stock_ptq_acc: float | None  # stock neurons without fine-tuning: alpha set to 0, quantised
    float_acc: float  # the fine-tuned float model
    int_acc: float  # the fine-tuned integer program, reference arithmetic
    history: list[dict[str, Any]] = field(default_factory=list)
    out_dir: Path | None = None
    overflow: OverflowSearch | None = None  # the final program's overflow check
    data_name: str = ""  # the labelled data trained on (task, data set or file)
    source: str = ""  # the model file fine-tuned
    T: int = 0
    dt: float | None = None  # seconds per timestep of a NIR source

    @property
    def model_name(self) -> str:
        c = self.train_config
        return str(c.model) if c is not None else Path(self.source).name

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.data_name,
            "model": self.model_name,
            "source": self.source,
            "T": self.T,
            "hardware": self.config.hardware,
            "stock_neurons": self.config.stock_neurons,
            "spec": self.config.spec().name,
            "float_acc_before": self.float_acc_before,
            "ptq_acc": self.ptq_acc,
            "stock_ptq_acc": self.stock_ptq_acc,
            "float_acc": self.float_acc,
            "int_acc": self.int_acc,
            "alphas": self.model.alphas(),
            "config": dataclasses.asdict(self.config),
            "history": self.history,
            "overflow": self.overflow.format() if self.overflow is not None else None,
        }

    def format(self) -> str:
        pts = lambda v: f"{100 * v:.2f} %" if v is not None else "n/a"  # noqa: E731
        return "\n".join(
            [
                f"fine-tuned {self.data_name}/{self.model_name} T={self.T} for "
                f"{self.config.hardware}"
                f"{' (stock neurons)' if self.config.stock_neurons else ''}:",
                f"  float before {pts(self.float_acc_before)}   integer before (PTQ) {pts(self.ptq_acc)}"
                + (
                    f"   stock neurons before (alpha := 0) {pts(self.stock_ptq_acc)}"
                    if self.stock_ptq_acc is not None
                    else ""
                ),
                f"  float after  {pts(self.float_acc)}   "
                f"integer after (reference arithmetic) {pts(self.int_acc)}",
                f"  alpha: {', '.join(f'{n}={a:.3f}' for n, a in self.model.alphas().items()) or '-'}"
                + (f"; files in {self.out_dir}" if self.out_dir else ""),
            ]
            + ([f"  {self.overflow.format()}"] if self.overflow is not None else [])
        )


def make_stock(model: SpikingNet) -> None:
    """Switch every LIF layer of ``model`` to a vanilla LIF (alpha = 0 exactly, no parameter)."""
    for _, lif in model.lif_layers():
        lif.a = None
        lif.mps = False


def _stock_copy(model: SpikingNet) -> SpikingNet:
    m = copy.deepcopy(model)
    make_stock(m)
    return m


def _project_alpha(model: SpikingNet, caps: dict[str, float]) -> None:
    """a <= logit(cap) for every smoothed layer (alpha <= cap)."""
    with torch.no_grad():
        for name, lif in model.lif_layers():
            if lif.a is not None and name in caps:
                cap = caps[name]
                lif.a.clamp_(max=math.log(cap / (1 - cap)) if cap > 0 else -60.0)


def _encode_all(task: TaskData, split: str, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = (task.x_train, task.y_train) if split == "train" else (task.x_test, task.y_test)
    return task.encode(x, T), y


def _train_inputs(task: TaskData) -> Inputs:
    """The training split of ``task`` as inputs (settings from the training split)."""
    return dataclasses.replace(
        from_task(task),
        x=task.x_train,
        y=task.y_train,
        description=f"{task.name} (train split, {len(task.y_train)} samples)",
    )


def _program_accuracy(
    qnet: QATNet, program: IntProgram, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 256
) -> float:
    """Accuracy of ``program`` (the quantiser's, or the overflow search's) on float inputs
    (T, N, ...), run by ``qnet`` in eval mode (the reference arithmetic)."""
    if program is qnet.program_exact():
        return integer_accuracy(qnet, x, y, batch_size)
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[1], batch_size):
            r = qnet.run(x[:, i : i + batch_size], program=program)
            correct += int((r.output_int.sum(0).argmax(-1).cpu() == y[i : i + batch_size]).sum())
    return correct / max(1, x.shape[1])


def _load_source(
    path: str | os.PathLike[str],
    data: TaskData | None,
    dt: float | None,
    device: str,
    *,
    reset: str = "nir",
) -> tuple[SpikingNet, TrainConfig | None, dict[str, Any] | None, TaskData, float | None]:
    """(model, training config or None, checkpoint dict or None, labelled data, NIR dt) of a
    checkpoint or a NIR graph (module docstring; ``dt`` and ``reset`` apply to a graph only)."""
    p = Path(path)
    if p.suffix == ".pt":
        model, tcfg = load_model(p, device=device)
        if data is None and tcfg.task == NPZ_TASK:  # trained on a labelled .npz (--data)
            from neurodeploy.training.loop import load_data

            loaded = load_data(tcfg)
            assert isinstance(loaded, TaskData)
            data = loaded
        task = data or load_task(tcfg.task, T=tcfg.T, seed=tcfg.data_seed)
        return model, tcfg, load_checkpoint(p), task, None
    from neurodeploy.converters.model_files import NIR_SUFFIXES, load_model_file
    from neurodeploy.converters.nir_common import resolve_dt

    if p.suffix not in NIR_SUFFIXES:
        raise ValueError(f"{path}: finetune reads a checkpoint.pt or a NIR graph (.nir)")
    net, recorded, _ = load_model_file(p, programs=False, dt=dt, reset=reset)
    assert isinstance(net, SpikingNet)
    if data is None:
        if not recorded:
            raise ValueError(
                f"{path}: the graph records no task; finetune needs labelled data: pass "
                "--data FILE.npz (x, y), --dataset NAME --data-root DIR, --config recipe.toml "
                "or --task NAME"
            )
        data = load_task(recorded)
    import nir

    used = resolve_dt(nir.read(str(p)).metadata, dt, warn=False).dt
    return net.to(device), None, None, data, used


def finetune(
    checkpoint: str | os.PathLike[str],
    hardware: str | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    config: FinetuneConfig | None = None,
    progress: bool = True,
    data: TaskData | None = None,
    dt: float | None = None,
    reset: str = "nir",
    **overrides: Any,
) -> FinetuneResult:
    """Fine-tune the model in ``checkpoint`` (a ``checkpoint.pt`` or a NIR graph, read with
    ``dt`` seconds per timestep if given and the ``reset`` reading, "nir" or "snntorch", of
    :func:`~neurodeploy.converters.nir_import.nir_to_model`) through its integer program for
    ``hardware``, on
    ``data`` (train and test split with labels; default: the checkpoint's task, or the task a
    graph records).

    ``config`` (or keyword ``overrides`` of :class:`FinetuneConfig`) sets the run. With ``out_dir``
    the result is written there: ``checkpoint.pt`` (checkpoint sources; loads with
    :func:`neurodeploy.training.load_model`), ``model.nir`` (the NIR export), ``model.int.npz``
    (the integer program trained against) and ``finetune.json`` (accuracies, history). An existing
    checkpoint or ``model.nir`` there is never overwritten, ``out_dir`` is locked for the run
    (:class:`neurodeploy.files.RunLock`), and an output that is ``checkpoint`` itself is refused
    before any work."""
    out = Path(out_dir) if out_dir is not None else None
    if out is not None:
        names = (CHECKPOINT_NAME, NIR_NAME, PROGRAM_NAME, SUMMARY_NAME)
        for name in names:
            check_not_input(out / name, [checkpoint], option="--out (out_dir)")
    kwargs = dict(
        out_dir=out, config=config, progress=progress, data=data, dt=dt, reset=reset, **overrides
    )
    if out is None:
        return _finetune_unlocked(checkpoint, hardware, **kwargs)
    with RunLock(out, what="finetune output folder"):
        return _finetune_unlocked(checkpoint, hardware, **kwargs)


def _finetune_unlocked(
    checkpoint: str | os.PathLike[str],
    hardware: str | None = None,
    *,
    out_dir: str | os.PathLike[str] | None = None,
    config: FinetuneConfig | None = None,
    progress: bool = True,
    data: TaskData | None = None,
    dt: float | None = None,
    reset: str = "nir",
    **overrides: Any,
) -> FinetuneResult:
    """:func:`finetune` without the lock on ``out_dir``."""
    cfg = config or FinetuneConfig()
    if hardware is not None:
        overrides["hardware"] = hardware
    if overrides:
        cfg = dataclasses.replace(cfg, **overrides)
    out = Path(out_dir) if out_dir is not None else None
    for name in (CHECKPOINT_NAME, NIR_NAME):
        if out is not None and (out / name).exists():
            raise FileExistsError(
                f"{out / name} already exists; choose another output folder "
                "(nothing was overwritten)"
            )
    hw = cfg.spec()
    model, tcfg, source, task, used_dt = _load_source(checkpoint, data, dt, cfg.device, reset=reset)
    T = task.T if (data is not None or tcfg is None) else tcfg.T
    if task.num_classes > model.num_classes:
        raise ValueError(
            f"{checkpoint}: the model has {model.num_classes} outputs but the data ({task.name}) has labels "
            f"up to {task.num_classes - 1}"
        )
    qkw = dict(**input_settings(task), percentile=cfg.percentile, weight_split=cfg.weight_split)
    dev = torch.device(cfg.device)
    x_test, y_test = _encode_all(task, "test", T)
    x_train, y_train = _encode_all(task, "train", T)
    x_test, x_train = x_test.to(dev), x_train.to(dev)  # once, not per accuracy call
    float_before = evaluate(model, task, T, device=dev)
    qnet = QATNet(model, hw, **qkw)
    ptq = integer_accuracy(qnet, x_test, y_test)
    stock_ptq = None
    if cfg.stock_neurons:
        stock_ptq = integer_accuracy(QATNet(_stock_copy(model), hw, **qkw), x_test, y_test)

    torch.manual_seed(cfg.seed)
    loss_fn = tcfg.loss_fn() if tcfg is not None else SNNLoss(NIR_LOSS, None)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs)
    n = len(y_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    anneal_steps = max(1, round(cfg.anneal_fraction * cfg.epochs * steps_per_epoch))
    alpha0 = model.alphas()
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    if not cfg.stock_neurons:
        best = (integer_accuracy(qnet, x_train, y_train), 0, copy.deepcopy(model.state_dict()))
    history: list[dict[str, Any]] = []
    step = 0
    stock = False
    g = torch.Generator().manual_seed(cfg.seed)
    bar = tqdm(
        range(cfg.epochs),
        desc=f"finetune {task.name}/{tcfg.model if tcfg else Path(checkpoint).name} for "
        f"{hw.name}",
        disable=not progress,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        qnet.train()
        order = torch.randperm(n, generator=g)
        tot_loss = 0.0
        sat = wraps = 0
        for i in range(0, n, cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if cfg.stock_neurons and not stock:
                caps = {k: a * max(0.0, 1.0 - step / anneal_steps) for k, a in alpha0.items()}
                if step >= anneal_steps:
                    make_stock(model)
                    stock = True
                else:
                    _project_alpha(model, caps)
            run = qnet.run(x_train[:, idx])
            loss, _ = loss_fn(run.logits.float(), y_train[idx].to(dev))
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"finetune epoch {epoch + 1}: loss became {float(loss)}; lower lr (now {cfg.lr})"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            tot_loss += float(loss.detach()) * len(idx)
            sat += sum(c.saturations for c in run.counters)
            wraps += sum(c.wraps for c in run.counters)
        sched.step()
        if cfg.stock_neurons and not stock and step >= anneal_steps:
            make_stock(model)
            stock = True
        train_int = integer_accuracy(qnet, x_train, y_train)
        test_int = integer_accuracy(qnet, x_test, y_test)
        rec = {
            "epoch": epoch + 1,
            "loss": tot_loss / n,
            "train_int_acc": train_int,
            "test_int_acc": test_int,
            "alphas": model.alphas(),
            "stock": stock,
            "saturations": sat,
            "wraps": wraps,
            "lr": opt.param_groups[0]["lr"],
            "time_s": round(time.perf_counter() - t0, 3),
        }
        history.append(rec)
        bar.set_postfix(
            loss=f"{rec['loss']:.3f}", train_int=f"{train_int:.3f}", test_int=f"{test_int:.3f}"
        )
        eligible = stock or not cfg.stock_neurons
        if eligible and (cfg.select == "last" or best is None or train_int >= best[0]):
            best = (train_int, epoch + 1, copy.deepcopy(model.state_dict()))
    if best is not None:
        model.load_state_dict(best[2])
    for rec in history:
        rec["selected"] = best is not None and rec["epoch"] == best[1]
    out_cfg = dataclasses.replace(tcfg, mps=False) if cfg.stock_neurons and tcfg else tcfg
    qnet.eval()
    # the final program through the commands' one quantiser: its overflow on the training split
    # (the QAT program is not searched while training: its exponents follow the weights every
    # step and its saturations/wraps are counted per epoch in the history)
    overflow = quantize_checked(
        model,
        hw,
        _train_inputs(task),
        T=T,
        percentile=cfg.percentile,
        allow_overflow=cfg.allow_overflow,
        weight_split=cfg.weight_split,
    )
    prog = overflow.program
    res = FinetuneResult(
        model=model.eval(),
        train_config=out_cfg,
        config=cfg,
        program=prog,
        float_acc_before=float_before,
        ptq_acc=ptq,
        stock_ptq_acc=stock_ptq,
        float_acc=evaluate(model, task, T, device=dev),
        int_acc=_program_accuracy(qnet, prog, x_test, y_test),
        history=history,
        out_dir=out,
        overflow=overflow,
        data_name=task.name,
        source=str(checkpoint),
        T=T,
        dt=used_dt,
    )
    if out is not None:
        _write(res, source, out)
    return res


def _write(res: FinetuneResult, source: dict[str, Any] | None, out: Path) -> None:
    from neurodeploy.converters.nir_common import DEFAULT_DT
    from neurodeploy.converters.nir_export import export_nir
    from neurodeploy.files import atomic_write_text  # every file whole or not at all

    out.mkdir(parents=True, exist_ok=True)
    from neurodeploy.data import list_tasks

    # the task only where it is an offline task (what the commands can reload by name)
    task = {"task": res.data_name} if res.data_name in list_tasks() else {}
    meta = {
        **task,
        "T": res.T,
        "finetuned_for": res.config.hardware,
        "stock_neurons": res.config.stock_neurons,
    }
    c = res.train_config
    if c is None or source is None:  # a NIR source: the graph is the model file
        export_nir(res.model, out / NIR_NAME, dt=res.dt or DEFAULT_DT, extra_metadata=meta)
        res.program.meta.update(T=res.T, **task)
        res.program.save(out / PROGRAM_NAME)
        atomic_write_text(out / SUMMARY_NAME, json.dumps(res.summary(), indent=1))
        return
    save_checkpoint(
        {
            "config": c.to_dict(),
            "model": res.model.state_dict(),
            "epoch": int(source["epoch"]),
            "history": list(source.get("history", [])),
            "input_shape": list(source["input_shape"]),
            "num_classes": int(source["num_classes"]),
            "finetune": json.loads(json.dumps(res.summary())),
        },
        out / CHECKPOINT_NAME,
    )
    export_nir(res.model, out / NIR_NAME, extra_metadata=meta)
    # a .npz source has no task the commands can reload by name
    res.program.meta.update(T=c.T, **({"task": c.task} if c.task != NPZ_TASK else {}))
    res.program.save(out / PROGRAM_NAME)
    atomic_write_text(out / SUMMARY_NAME, json.dumps(res.summary(), indent=1))
