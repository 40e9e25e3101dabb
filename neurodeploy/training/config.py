"""Training configuration: :class:`TrainConfig` (everything that defines a run; saved in every
checkpoint), :class:`TrainResult`, and the run folder's file names."""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from neurodeploy.checks import check_count, check_nonnegative
from neurodeploy.data import list_tasks
from neurodeploy.data.real import dataset_loader, list_datasets
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.zoo import MODELS
from neurodeploy.training import distributed as D
from neurodeploy.training.losses import GuidanceConfig, SNNLoss

DEFAULT_MODEL = {
    "digits": "mlp",
    "event-digits": "vgg",
    "seq1d": "conv1d",
    "shapes3d": "pointnet",
    "fashion-mnist": "vgg",
    "event-fashion": "vgg",
    "spoken-digits": "srnn",  # as shd; the reproduction and the recipe use a feed-forward mlp
    "cifar10-dvs": "vggsnn",
    "dvs-gesture": "vggsnn",
    "n-caltech101": "vggsnn",
    "n-mnist": "vgg",
    "shd": "srnn",
    "cifar10": "resnet19",
    "cifar100": "resnet19",
    "modelnet10": "spiking_pointnet",
    "modelnet40": "spiking_pointnet",
}
OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("cosine", "step")
#: TrainConfig.task of a run on the user's labelled arrays: ``data = {"file": PATH.npz,
#: "input_shape": [...]}`` (read by :func:`neurodeploy.data.inputs.labelled_splits`); needs ``model``
NPZ_TASK = "npz"
#: the builder parameters that TrainConfig fills (not ``arch`` options)
ARCH_POSITIONAL = ("input_shape", "num_classes", "neuron")
#: the loader parameters that TrainConfig fills (not ``data`` options)
DATA_POSITIONAL = ("root", "T", "seed")
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"


@dataclass
class TrainConfig:
    """Everything that defines a training run (saved in every checkpoint)."""

    task: str = "event-digits"
    model: str | None = None  # None: the task's default (DEFAULT_MODEL)
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
    direction: str = "both"  # chosen by the reproduction, see docs/defaults.md
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
    # schedule (defaults: the cosine schedule and SGD momentum used before these fields existed)
    momentum: float = 0.9  # SGD only
    schedule: str = "cosine"  # cosine over `epochs`, or step: lr *= gamma at each milestone
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    # real data sets and scale-out (neurodeploy/data/real.py, neurodeploy/training/distributed.py)
    data_root: str | None = None  # folder of a data set on disk; None: an offline task
    data: dict[str, Any] = field(default_factory=dict)  # options of that data set's loader
    workers: int = 0  # DataLoader worker processes (real data sets)
    amp: str = "off"  # mixed precision on CUDA: off, bf16, fp16
    sync_bn: bool = True  # SyncBatchNorm under DDP on CUDA
    kernel: str = "auto"  # neuron kernel: auto (fused where it runs), fused, reference

    def __post_init__(self) -> None:
        real = list_datasets()
        if self.task == NPZ_TASK:
            self._check_npz()
        elif self.task not in list_tasks() and self.task not in real:
            raise ValueError(
                f"task: unknown name {self.task!r}; available: {list_tasks()} (offline), "
                f"{real} (from disk, with data_root) and {NPZ_TASK!r} (a labelled .npz file)"
            )
        if self.task in real and not self.data_root:
            raise ValueError(
                f"data_root: task {self.task!r} reads a data set from disk; give its folder "
                f"(--data-root DIR); see docs/real-data.md for the layout"
            )
        if self.task not in real and self.task != NPZ_TASK and (self.data_root or self.data):
            raise ValueError(
                f"data_root/data: task {self.task!r} is an offline task and reads no folder "
                f"(the Fashion-MNIST tasks read the folder in $NEURODEPLOY_FASHION_ROOT, default "
                f"/usr/share/datasets/fashion-mnist)"
            )
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
        check_nonnegative("weight_decay", self.weight_decay)
        check_count("seed", self.seed, minimum=0)
        check_count("data_seed", self.data_seed, minimum=0)
        self._check_options()
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if any(isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be epochs >= 1, got {self.milestones!r}")
        if not (0 < self.gamma <= 1) or not (0 <= self.momentum < 1):
            raise ValueError(
                f"gamma must be in (0, 1] and momentum in [0, 1), got {self.gamma!r}, {self.momentum!r}"
            )
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 0:
            raise ValueError(f"workers must be an integer >= 0, got {self.workers!r}")
        if self.amp not in D.AMP_MODES:
            raise ValueError(f"amp must be one of {D.AMP_MODES}, got {self.amp!r}")
        self.neuron_config()  # validates tau, theta, reset, surrogate, alpha_init ...
        self.loss_fn()  # validates loss, lam, tau_kd, p_drop, direction

    def _check_options(self) -> None:
        """``arch`` keys against the model builder's keyword options, ``data`` keys against the
        data set loader's: an unknown key names itself and the allowed ones (a misspelt option
        would otherwise fail deep in model building, or be ignored)."""
        assert self.model is not None
        checks: list[tuple[str, Any, str, Callable[..., object], tuple[str, ...]]] = [
            ("arch", self.arch, f"model {self.model!r}", MODELS[self.model], ARCH_POSITIONAL)
        ]
        if self.task in list_datasets():
            loader = dataset_loader(self.task)
            checks.append(("data", self.data, f"data set {self.task!r}", loader, DATA_POSITIONAL))
        for table, given, whose, fn, positional in checks:
            if not isinstance(given, dict):
                raise ValueError(f"{table} must be a table (dict), got {type(given).__name__}")
            params = inspect.signature(fn).parameters
            if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
                continue
            allowed = sorted(set(params) - set(positional))
            unknown = sorted(set(given) - set(allowed))
            if unknown:
                raise ValueError(
                    f"{table}: unknown key(s) {unknown}; allowed for {whose}: {allowed}"
                )

    def _check_npz(self) -> None:
        """task "npz": ``data`` names the file and the per-timestep input shape; no default model."""
        if set(self.data) != {"file", "input_shape"} or self.data_root:
            raise ValueError(
                f"data: task {NPZ_TASK!r} needs data = {{file = PATH.npz, input_shape = [...]}} "
                f"and no data_root, got data={self.data!r}, data_root={self.data_root!r}"
            )
        if self.model is None:
            raise ValueError(f"model: task {NPZ_TASK!r} has no default model; name one")

    def neuron_config(self) -> NeuronConfig:
        return NeuronConfig(
            tau=self.tau,
            theta=self.theta,
            reset=self.reset,
            mps=self.mps,
            mps_mode=self.mps_mode,
            alpha_init=self.alpha_init,
            surrogate=self.surrogate,
            detach_reset=self.detach_reset,
            kernel=self.kernel,
        )

    def loss_fn(self) -> SNNLoss:
        g = (
            GuidanceConfig(self.lam, self.tau_kd, self.p_drop, self.direction)
            if self.guidance
            else None
        )
        return SNNLoss(self.loss, g)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
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
