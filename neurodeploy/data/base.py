"""Task container, registry and cached loader for the built-in synthetic / bundled tasks.

Every task lives in its own module (``digits``, ``event_digits``, ``seq1d``, ``shapes3d``) that
exposes metadata constants and ``generate(T, seed) -> (x_train, y_train, x_test, y_test)``.
``TASKS`` maps each task name to a :class:`TaskSpec` built from that module; :func:`load_task`
validates its arguments, generates the data once per ``(name, T, seed)`` (in-memory LRU
cache) and returns fresh copies, so callers cannot corrupt the cache.
"""

from __future__ import annotations

import dataclasses
import functools
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import torch

from neurodeploy.data import (
    digits,
    event_digits,
    event_fashion,
    fashion,
    seq1d,
    shapes3d,
    spoken_digits,
)

CACHE_SIZE = 8
Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _check_T(T: object) -> int:
    if isinstance(T, bool) or not isinstance(T, numbers.Integral) or T < 1:
        raise ValueError(f"T must be an integer >= 1 (number of timesteps), got {T!r}")
    return int(T)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer (the data seed), got {seed!r}")
    return int(seed)


@dataclass(frozen=True, eq=False)
class TaskData:
    """One classification task: fixed train/test tensors plus what a model needs to know.

    ``x_*`` are float32: ``(N, *input_shape)`` for static tasks (direct encoding: the same
    input at every timestep) and ``(N, T, *input_shape)`` for temporal tasks (events binned
    into ``T`` frames). ``y_*`` are int64 ``(N,)`` labels in ``[0, num_classes)``.
    ``eq=False``: instances compare by identity (tensor fields have no boolean equality).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    input_shape: tuple[int, ...]
    num_classes: int
    temporal: bool
    T: int
    description: str
    stands_in_for: str

    def __post_init__(self) -> None:
        lead = (self.T,) if self.temporal else ()
        for split in ("train", "test"):
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if tuple(x.shape[1:]) != lead + tuple(self.input_shape) or len(x) != len(y):
                dims = ", ".join(map(str, lead + tuple(self.input_shape)))
                raise ValueError(f"x_{split} has shape {tuple(x.shape)}, expected (N, {dims})")
            if x.dtype != torch.float32 or y.dtype != torch.int64:
                raise ValueError(
                    f"x_{split}/y_{split} must be float32/int64, " f"got {x.dtype}/{y.dtype}"
                )

    def encode(self, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
        """Batch ``(B, ...)`` as stored -> ``(T, B, *input_shape)`` time-major network input.

        Static tasks: ``x.unsqueeze(0).expand(T, ...)`` (``T`` defaults to ``self.T``); the
        result is an expanded *view* (no copy; clone it before writing in place).
        Temporal tasks: ``x.transpose(0, 1)``; ``T`` must be ``None`` or ``self.T``.
        """
        return encode_time_major(x, self, T, what="task", reload=f"load_task({self.name!r}, T={T})")


def encode_time_major(
    x: torch.Tensor, data: Any, T: int | None, *, what: str, reload: str
) -> torch.Tensor:
    """The encoding of :meth:`TaskData.encode` for any ``data`` with ``name``, ``T``, ``temporal``
    and ``input_shape`` (offline tasks and data sets on disk); ``what``/``reload`` word the errors."""
    lead = (data.T,) if data.temporal else ()
    if tuple(x.shape[1:]) != lead + tuple(data.input_shape):
        dims = ", ".join(map(str, lead + tuple(data.input_shape)))
        raise ValueError(
            f"x must have shape (B, {dims}) for {what} {data.name!r}, got {tuple(x.shape)}"
        )
    if data.temporal:
        if T is not None and _check_T(T) != data.T:
            raise ValueError(
                f"T={T} does not match the {data.T} frames of {what} {data.name!r}; "
                f"reload it with {reload}"
            )
        return x.transpose(0, 1)
    steps = data.T if T is None else _check_T(T)
    return x.unsqueeze(0).expand(steps, *x.shape)


@dataclass(frozen=True)
class TaskSpec:
    """Registry entry: a task's metadata and its uncached generator."""

    name: str
    generate: Callable[[int, int], Split]
    input_shape: tuple[int, ...]
    num_classes: int
    temporal: bool
    description: str
    stands_in_for: str
    # the Debian package whose files the task reads or whose tool builds it ("" for the
    # in-package synthetic tasks); such tasks are built on first use and cached on disk
    requires: str = ""

    @classmethod
    def from_module(cls, module: ModuleType) -> TaskSpec:
        return cls(
            module.NAME,
            module.generate,
            tuple(module.INPUT_SHAPE),
            module.NUM_CLASSES,
            module.TEMPORAL,
            module.DESCRIPTION,
            module.STANDS_IN_FOR,
            getattr(module, "REQUIRES", ""),
        )

    def build(self, T: int = 4, seed: int = 0) -> TaskData:
        """Generate the task afresh (no cache); same ``(T, seed)`` -> bit-identical tensors."""
        T, seed = _check_T(T), _check_seed(seed)
        x_train, y_train, x_test, y_test = self.generate(T, seed)
        return TaskData(
            self.name,
            x_train,
            y_train,
            x_test,
            y_test,
            self.input_shape,
            self.num_classes,
            self.temporal,
            T,
            self.description,
            self.stands_in_for,
        )


TASKS: dict[str, TaskSpec] = {
    m.NAME: TaskSpec.from_module(m)
    for m in (digits, event_digits, seq1d, shapes3d, fashion, event_fashion, spoken_digits)
}


def list_tasks() -> list[str]:
    """Names accepted by :func:`load_task`."""
    return list(TASKS)


@functools.lru_cache(maxsize=CACHE_SIZE)
def _load_cached(name: str, T: int, seed: int) -> TaskData:
    return TASKS[name].build(T, seed)


def load_task(name: str, T: int = 4, seed: int = 0) -> TaskData:
    """Load task ``name`` with ``T`` timesteps and data seed ``seed``.

    ``T`` is the number of event frames for temporal tasks and the default number of
    direct-encoding steps (``TaskData.T``, used by ``encode``) for static ones. ``seed`` drives
    the synthetic data; the same ``(name, T, seed)`` always gives bit-identical tensors and the
    train/test split never depends on it. Results are cached in memory; every call returns
    fresh tensor copies, so modifying them does not affect later calls.
    """
    if not isinstance(name, str) or name not in TASKS:
        raise ValueError(f"unknown task {name!r}; available tasks: {', '.join(TASKS)}")
    T, seed = _check_T(T), _check_seed(seed)
    spec = TASKS[name]
    # static data do not depend on T: generate once and only set TaskData.T per call
    data = _load_cached(name, T if spec.temporal else 1, seed)
    return dataclasses.replace(
        data,
        T=T,
        x_train=data.x_train.clone(),
        y_train=data.y_train.clone(),
        x_test=data.x_test.clone(),
        y_test=data.y_test.clone(),
    )
