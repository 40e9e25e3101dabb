"""Data sets read from the user's own disk: the container, the per-sample base class and the
registry behind ``TrainConfig(task=..., data_root=...)``.

Nothing here downloads. Each loader takes a folder (``root``), checks that the files it needs
are there and otherwise raises :class:`DatasetNotFoundError`, whose message says which files
were expected where and how to obtain them.

=================  ==============================  ==========  =======  ======================
name               per-sample ``x``                classes     kind     module
=================  ==============================  ==========  =======  ======================
cifar10-dvs        (T, 2, S, S) counts, S = 48     10          events   data/events.py
dvs-gesture        (T, 2, S, S) counts, S = 128    11          events   data/events.py
n-caltech101       (T, 2, S, S) counts, S = 48     101 (dirs)  events   data/events.py
n-mnist            (T, 2, 34, 34) counts           10          events   data/events.py
shd                (T, 700 / k) counts             20          events   data/events.py
cifar10, cifar100  (3, 32, 32) normalised          10 / 100    static   data/cifar.py
modelnet10/40      (3, N) xyz, unit sphere          10 / 40     static   data/modelnet.py
=================  ==============================  ==========  =======  ======================

Temporal samples are stored time-first, ``(T, *input_shape)``; static ones ``input_shape`` and
are presented identically at every timestep (direct encoding). :meth:`RealDataset.encode`
turns a batch into the time-major ``(T, B, *input_shape)`` network input, the same contract as
:meth:`neurodeploy.data.TaskData.encode`.

Augmentation is deterministic: sample ``i`` of epoch ``e`` is augmented with a generator
seeded by ``(seed, e, i)`` (:func:`sample_rng`), so that a run is reproducible, resumes
exactly, and gives the same batches whether it runs in one process or in several.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from neurodeploy.data.base import encode_time_major


class DatasetNotFoundError(FileNotFoundError):
    """A data set folder is missing or incomplete; the message says what was expected where."""


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator that augments sample ``index`` in ``epoch`` (independent of process/rank)."""
    return np.random.default_rng([int(seed), int(epoch), int(index)])


class SampleDataset(Dataset):
    """Map-style data set of ``(x float32 tensor, y int)`` pairs with epoch-seeded augmentation.

    Subclasses implement :meth:`load` (the un-augmented sample) and optionally :meth:`augment`.
    ``set_epoch`` is called by the training loop before each epoch (DataLoader workers receive
    a copy of the data set when an epoch's iterator is created, so they see the new epoch).
    """

    def __init__(self, labels: list[int], augment: bool, seed: int) -> None:
        self.labels = [int(y) for y in labels]
        self.do_augment = bool(augment)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        x = self.load(index)
        if self.do_augment:
            x = self.augment(x, sample_rng(self.seed, self.epoch, index))
        return x, self.labels[index]


@dataclass(frozen=True, eq=False)
class RealDataset:
    """A train/test pair read from disk plus what a model needs to know (see module docstring)."""

    name: str
    train: SampleDataset
    test: SampleDataset
    input_shape: tuple[int, ...]
    num_classes: int
    temporal: bool
    T: int
    classes: tuple[str, ...]
    root: str

    def encode(self, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
        """Batch ``(B, ...)`` as stored -> ``(T, B, *input_shape)`` (see TaskData.encode)."""
        return encode_time_major(x, self, T, what="data set", reload=f"load_dataset(..., T={T})")


# name -> "module:function"; loaders are imported on first use (tonic, h5py load lazily)
DATASETS: dict[str, str] = {
    "cifar10-dvs": "neurodeploy.data.events:load_cifar10_dvs",
    "dvs-gesture": "neurodeploy.data.events:load_dvs_gesture",
    "n-caltech101": "neurodeploy.data.events:load_ncaltech101",
    "n-mnist": "neurodeploy.data.events:load_nmnist",
    "shd": "neurodeploy.data.events:load_shd",
    "cifar10": "neurodeploy.data.cifar:load_cifar10",
    "cifar100": "neurodeploy.data.cifar:load_cifar100",
    "modelnet10": "neurodeploy.data.modelnet:load_modelnet10",
    "modelnet40": "neurodeploy.data.modelnet:load_modelnet40",
}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset` (and by ``TrainConfig.task`` with ``data_root``)."""
    return list(DATASETS)


def dataset_loader(name: str) -> Callable[..., RealDataset]:
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(DATASETS)}")
    module, func = DATASETS[name].split(":")
    return getattr(importlib.import_module(module), func)


def load_dataset(
    name: str, root: str | Path, T: int = 4, seed: int = 0, **options: Any
) -> RealDataset:
    """Read data set ``name`` from the folder ``root``; ``options`` go to its loader (see
    docs/real-data.md for each loader's options). ``seed`` drives the augmentation only."""
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1 (number of timesteps), got {T!r}")
    loader = dataset_loader(name)
    allowed = [p for p in inspect.signature(loader).parameters if p not in ("root", "T", "seed")]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"data set {name!r}: unknown option(s) {unknown}; available: {allowed}")
    return loader(root, T=T, seed=seed, **options)


def require_dir(path: Path, what: str, expected: str, how: str) -> Path:
    """``path`` if it is a folder, else :class:`DatasetNotFoundError` with the layout and source."""
    if not path.is_dir():
        raise DatasetNotFoundError(f"{what}: folder {path} not found; expected {expected}. {how}")
    return path


def first_existing(root: Path, candidates: list[str]) -> Path:
    """The first of ``root/candidate`` that is a folder (``""`` means ``root`` itself), else ``root``."""
    for c in candidates:
        p = root / c if c else root
        if p.is_dir():
            return p
    return root
