"""Where a deployment command's input comes from: one option family, resolved once.

``quantize``, ``verify``, ``deploy`` and ``profile`` take their input from exactly one of

- ``--task NAME``: an offline task (:func:`neurodeploy.data.load_task`), its test split and labels;
- ``--data FILE.npz``: the user's own arrays, ``x`` of shape ``(N, T, *input_shape)`` (a sequence:
  T frames) or ``(N, *input_shape)`` (static: the same input at each of the T steps), and an
  optional integer ``y`` of shape ``(N,)`` (labels; without them accuracy is "n/a");
- ``--dataset NAME --data-root DIR``: a data set on disk that ``train`` reads
  (:func:`neurodeploy.data.real.load_dataset`), its test split and labels;
- ``--config recipe.toml``: the data a training recipe names, read exactly as ``train --config``
  reads it (its ``task``; a data set on disk with the recipe's ``[data]`` options and
  ``data_root``, or --data-root; T from the recipe unless --T): its test split and labels. The
  caller loads the recipe (``training`` sits above ``data``) and passes the loaded data here;
- ``--random-input RATE --T T [--seed S]``: Bernoulli spikes, P(x = 1) = RATE per input, step and
  sample, seeded, no labels (conformance, resources, timing, energy when there is no data).

``finetune`` needs a training split as well (:func:`labelled_splits`): --task, --dataset and
--config bring theirs; a --data file either holds ``x_train``/``y_train`` next to ``x``/``y``
(train and test split), or only ``x``/``y``, split deterministically: sample ``i`` is held out
for testing when ``i % HOLDOUT_EVERY == HOLDOUT_EVERY - 1`` (every fifth sample, 20 %), the
others train (interleaved, so a file sorted by class keeps every class in both splits).

The result is one :class:`Inputs`: the inputs, labels or ``None``, the quantiser's input settings
(:class:`InputSettings`), T and a description. Without data (random input), the quantiser's
calibration uses the weights alone, which :attr:`Inputs.calibration` says.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from neurodeploy.checks import check_count, check_optional_count
from neurodeploy.data.base import TaskData, encode_time_major, load_task

if TYPE_CHECKING:
    from neurodeploy.data.real import RealDataset

INPUT_KINDS = ("binary", "graded")
#: random-input samples when the command gives no --samples
DEFAULT_RANDOM_SAMPLES = 64
#: the input range assumed for graded random input (Bernoulli values are 0 or 1)
RANDOM_INPUT_RANGE = 1.0
WEIGHTS_ONLY = "weights alone (no data)"
#: a --data file without x_train: every HOLDOUT_EVERY-th sample is the test split (finetune)
HOLDOUT_EVERY = 5
#: the options that name an input source, in the order errors list them
SOURCE_OPTIONS = ("--task", "--data", "--dataset", "--config", "--random-input")


@dataclass(frozen=True)
class InputSettings:
    """The quantiser's input keywords (:func:`neurodeploy.quant.quantize.quantize_model`):
    ``kind`` "binary" (event spikes 0/1) or "graded" (payloads; ``input_range`` = the largest |x|
    mapped to the largest payload, ``signed`` when inputs go below zero)."""

    kind: str
    input_range: float = 1.0
    signed: bool = False

    def as_kwargs(self) -> dict[str, Any]:
        if self.kind == "binary":
            return dict(input_kind="binary")
        return dict(input_kind="graded", input_range=self.input_range, input_signed=self.signed)


def infer_input_settings(x: torch.Tensor, *, temporal: bool) -> InputSettings:
    """Binary spikes for sequences of 0/1 frames, graded payloads otherwise (range: max |x|,
    signed when any x < 0). The one rule for offline tasks and the user's data."""
    if temporal and bool(((x == 0) | (x == 1)).all()):
        return InputSettings("binary")
    top = float(x.abs().max()) if x.numel() else 0.0
    return InputSettings("graded", top if top > 0 else 1.0, bool((x < 0).any()))


@dataclass(frozen=True, eq=False)
class Inputs:
    """Resolved inputs of a deployment command.

    ``x``: float32 ``(N, T, *input_shape)`` when ``temporal`` else ``(N, *input_shape)`` (repeated
    over the T steps by :meth:`encode`); ``y``: int64 ``(N,)`` labels or ``None``. The names
    ``x_test``/``y_test`` and :meth:`encode` read as :class:`TaskData`'s, so a task and an
    ``Inputs`` run through the same code. ``eq=False``: compared by identity (tensor fields)."""

    name: str
    x: torch.Tensor
    y: torch.Tensor | None
    input_shape: tuple[int, ...]
    temporal: bool
    T: int
    settings: InputSettings
    description: str
    calibration: str = "data"
    task: str | None = None  # the offline task's name, when the inputs are one

    @property
    def x_test(self) -> torch.Tensor:
        return self.x

    @property
    def y_test(self) -> torch.Tensor | None:
        return self.y

    @property
    def has_labels(self) -> bool:
        return self.y is not None

    def __len__(self) -> int:
        return len(self.x)

    def encode(self, x: torch.Tensor, T: int | None = None) -> torch.Tensor:
        """Batch ``(B, ...)`` as stored -> ``(T, B, *input_shape)`` time-major (as
        :meth:`TaskData.encode`)."""
        return encode_time_major(x, self, T, what="input", reload=f"--T {self.T}")

    def head(self, n: int | None) -> Inputs:
        """The first ``n`` samples (all with ``None``)."""
        if n is None or n >= len(self.x):
            return self
        y = None if self.y is None else self.y[:n]
        return dataclasses.replace(self, x=self.x[:n], y=y)


def from_task(task: TaskData) -> Inputs:
    """An offline task's test split; input settings from its training split."""
    return Inputs(
        task.name,
        task.x_test,
        task.y_test,
        tuple(task.input_shape),
        task.temporal,
        task.T,
        infer_input_settings(task.x_train, temporal=task.temporal),
        f"task {task.name} (test split, {len(task.y_test)} samples)",
        task=task.name,
    )


def as_inputs(src: TaskData | Inputs) -> Inputs:
    return src if isinstance(src, Inputs) else from_task(src)


def _override(
    settings: InputSettings, kind: str | None, x: torch.Tensor, what: str
) -> InputSettings:
    if kind is None or kind == settings.kind:
        return settings
    if kind not in INPUT_KINDS:
        raise ValueError(f"--input-kind: expected one of {', '.join(INPUT_KINDS)}, got {kind!r}")
    if kind == "binary":
        if not bool(((x == 0) | (x == 1)).all()):
            raise ValueError(f"--input-kind binary: {what} has values other than 0 and 1")
        return InputSettings("binary")
    top = float(x.abs().max()) if x.numel() else 0.0
    return InputSettings("graded", top if top > 0 else 1.0, bool((x < 0).any()))


def load_npz_inputs(
    path: str | os.PathLike[str],
    input_shape: tuple[int, ...],
    *,
    T: int | None = None,
    default_T: int = 4,
    input_kind: str | None = None,
    keys: tuple[str, str] = ("x", "y"),
) -> Inputs:
    """The user's ``.npz``: ``x`` (N, T, *input_shape) or (N, *input_shape), optional ``y`` (N,)
    (``keys``: the arrays read as x and y, e.g. ``x_train``/``y_train``).
    ``T`` (--T) repeats static data over T steps and must match a sequence's frames; errors name
    the file and the shapes."""
    T = check_optional_count("T", T)  # 0 is refused, not read as "the default"
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"--data {path}: no such file")
    try:
        with np.load(p, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as e:  # untrusted bytes: zipfile/numpy raise BadZipFile, EOFError, ...
        raise ValueError(
            f"--data {path}: not a readable .npz file ({type(e).__name__}: {e})"
        ) from e
    xk, yk = keys
    if xk not in arrays:
        raise ValueError(
            f"--data {path}: no array {xk!r} (found: {', '.join(arrays) or 'none'}); expected x of "
            "shape (N, T, *input) or (N, *input) and optional labels y (N,)"
        )
    x_np, shape = arrays[xk], tuple(int(d) for d in input_shape)
    dims = ", ".join(map(str, shape))
    if tuple(x_np.shape[1:]) == shape:
        temporal, steps = False, T or default_T
    elif x_np.ndim == len(shape) + 2 and tuple(x_np.shape[2:]) == shape:
        temporal, steps = True, int(x_np.shape[1])
        if T is not None and steps != T:
            raise ValueError(
                f"--data {path}: {xk} has {steps} frames (shape {tuple(x_np.shape)}) but --T is {T}"
            )
    else:
        raise ValueError(
            f"--data {path}: {xk} has shape {tuple(x_np.shape)}; the model takes ({dims}) per "
            f"timestep: expected (N, {dims}) or (N, T, {dims})"
        )
    if len(x_np) < 1:
        raise ValueError(f"--data {path}: {xk} has no samples (shape {tuple(x_np.shape)})")
    if not (np.issubdtype(x_np.dtype, np.number) or x_np.dtype == bool):
        raise ValueError(f"--data {path}: {xk} must be numeric, got dtype {x_np.dtype}")
    x = torch.as_tensor(x_np.astype(np.float32))
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"--data {path}: {xk} has non-finite values")
    y: torch.Tensor | None = None
    if yk in arrays:
        y_np = arrays[yk]
        if y_np.shape != (len(x_np),) or not np.issubdtype(y_np.dtype, np.integer):
            raise ValueError(
                f"--data {path}: {yk} must be integer labels of shape ({len(x_np)},) to match x "
                f"{tuple(x_np.shape)}, got shape {tuple(y_np.shape)} dtype {y_np.dtype}"
            )
        if (y_np < 0).any():
            raise ValueError(f"--data {path}: {yk} has negative labels")
        y = torch.as_tensor(y_np.astype(np.int64))
    what = f"--data {path}"
    settings = _override(infer_input_settings(x, temporal=temporal), input_kind, x, what)
    labels = "labels y" if y is not None else "no labels"
    form = f"{steps} frames" if temporal else f"static, repeated over T={steps}"
    return Inputs(
        p.name,
        x,
        y,
        shape,
        temporal,
        steps,
        settings,
        f"{p} ({len(x)} samples, {form}, {labels})",
    )


def random_inputs(
    rate: float,
    input_shape: tuple[int, ...],
    *,
    T: int,
    n: int = DEFAULT_RANDOM_SAMPLES,
    seed: int = 0,
    input_kind: str | None = None,
) -> Inputs:
    """``n`` samples of Bernoulli spikes: x[i, t, ...] = 1 with probability ``rate``, drawn
    from ``torch.Generator().manual_seed(seed)``; no labels; calibration from the weights alone."""
    if not (0.0 < rate <= 1.0):
        raise ValueError(f"--random-input: the spike rate must be in (0, 1], got {rate}")
    if T < 1 or n < 1:
        raise ValueError(f"--random-input: T and the sample count must be >= 1, got T={T}, n={n}")
    shape = tuple(int(d) for d in input_shape)
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand((n, T, *shape), generator=g) < rate).to(torch.float32)
    settings = _override(InputSettings("binary"), input_kind, x, "--random-input")
    if settings.kind == "graded":
        settings = InputSettings("graded", RANDOM_INPUT_RANGE, False)
    return Inputs(
        f"random({rate:g})",
        x,
        None,
        shape,
        True,
        T,
        settings,
        f"random Bernoulli spikes, rate {rate:g}, T={T}, {n} samples, seed {seed}, no labels",
        calibration=WEIGHTS_ONLY,
    )


def task_inputs(
    name: str, input_shape: tuple[int, ...], *, T: int, input_kind: str | None = None
) -> Inputs:
    """Offline task ``name`` at T steps, checked against the model's input shape."""
    task = load_task(name, T=T)
    if tuple(task.input_shape) != tuple(input_shape):
        raise ValueError(
            f"task {name!r} gives input of shape {tuple(task.input_shape)} per timestep, "
            f"but the model expects {tuple(input_shape)}"
        )
    inp = from_task(task)
    settings = _override(inp.settings, input_kind, task.x_train, f"task {name}")
    return dataclasses.replace(inp, settings=settings)


def _check_shape(what: str, got: tuple[int, ...], want: tuple[int, ...]) -> None:
    if tuple(got) != tuple(want):
        raise ValueError(
            f"{what} gives input of shape {tuple(got)} per timestep, but the model expects "
            f"{tuple(want)}"
        )


def _stack(ds: Any, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` samples of a :class:`~neurodeploy.data.real.SampleDataset`,
    un-augmented (its ``load``), and their labels."""
    x = torch.stack([torch.as_tensor(ds.load(i), dtype=torch.float32) for i in range(count)])
    return x, torch.tensor([int(v) for v in ds.labels[:count]], dtype=torch.int64)


def from_loaded(
    data: TaskData | RealDataset,
    input_shape: tuple[int, ...],
    *,
    what: str,
    n: int | None = None,
    input_kind: str | None = None,
) -> Inputs:
    """The test split (its first ``n`` samples; all with ``None``) of an offline task or of a data
    set read from disk, with its labels, checked against the model's input shape. ``what`` names
    the source in errors and the description (e.g. "--config recipes/shd.toml")."""
    _check_shape(what, tuple(data.input_shape), input_shape)
    if isinstance(data, TaskData):
        inp = from_task(data)
        settings = _override(inp.settings, input_kind, data.x_train, what)
        return dataclasses.replace(
            inp.head(n), settings=settings, description=f"{what}: {inp.description}"
        )
    count = len(data.test) if n is None else min(n, len(data.test))
    if count < 1:
        raise ValueError(f"{what}: the test split of data set {data.name!r} has no samples")
    x, y = _stack(data.test, count)
    settings = _override(infer_input_settings(x, temporal=data.temporal), input_kind, x, what)
    return Inputs(
        data.name,
        x,
        y,
        tuple(data.input_shape),
        data.temporal,
        data.T,
        settings,
        f"{what}: data set {data.name} from {data.root} (test split, {count} of "
        f"{len(data.test)} samples)",
    )


def dataset_inputs(
    name: str,
    root: str | os.PathLike[str],
    input_shape: tuple[int, ...],
    *,
    T: int,
    n: int | None = None,
    input_kind: str | None = None,
) -> Inputs:
    """The test split of data set ``name`` read from ``root`` by
    :func:`neurodeploy.data.real.load_dataset` at T steps (its first ``n`` samples; all with
    ``None``), with its labels, checked against the model's input shape."""
    from neurodeploy.data.real import load_dataset

    what = f"--dataset {name} (--data-root {root})"
    data = load_dataset(name, Path(root), T=T)
    _check_shape(what, tuple(data.input_shape), input_shape)
    return from_loaded(data, input_shape, what=what, n=n, input_kind=input_kind)


def check_sources(
    *,
    task: str | None = None,
    data: str | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    config: str | None = None,
    random_rate: float | None = None,
) -> None:
    """At most one input source, named in the error when several are given; ``--data-root``
    goes with ``--dataset`` (or overrides the folder of a ``--config`` recipe)."""
    given = [
        o
        for o, v in zip(SOURCE_OPTIONS, (task, data, dataset, config, random_rate), strict=True)
        if v is not None and v != ""
    ]
    if len(given) > 1:
        raise ValueError(f"{' and '.join(given)}: give one input source, not several")
    if dataset and not data_root:
        raise ValueError("--dataset NAME and --data-root DIR go together: give both")
    if data_root and not (dataset or config):
        raise ValueError(
            "--dataset NAME and --data-root DIR go together: give both (or --data-root with "
            "--config recipe.toml)"
        )


def resolve_inputs(
    input_shape: tuple[int, ...],
    *,
    task: str | None = None,
    data: str | None = None,
    random_rate: float | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    config: str | None = None,
    config_data: TaskData | RealDataset | None = None,
    T: int | None = None,
    seed: int = 0,
    samples: int | None = None,
    input_kind: str | None = None,
    recorded_task: str | None = None,
    recorded_T: int | None = None,
    default_T: int = 4,
) -> Inputs | None:
    """The one resolution of --task / --data / --dataset / --config / --random-input (at most one
    may be given; ``dataset`` needs ``data_root``; ``config`` comes with ``config_data``, the data
    its recipe names as loaded by the caller); without any, the task recorded in the model file,
    else ``None``: the caller decides whether it can go on without inputs. T: --T, else the
    model's recorded T, else ``default_T`` (a sequence in --data, a recipe bring their own)."""
    check_sources(
        task=task,
        data=data,
        dataset=dataset,
        data_root=data_root,
        config=config,
        random_rate=random_rate,
    )
    T = check_optional_count("T", T)  # 0 is refused, not read as "the default"
    samples = check_optional_count("samples", samples)
    seed = check_count("seed", seed, minimum=0)
    steps = T or recorded_T or default_T
    if config:
        if config_data is None:
            raise ValueError(f"--config {config}: the recipe's data was not loaded")
        what = f"--config {config}"
        return from_loaded(config_data, input_shape, what=what, n=samples, input_kind=input_kind)
    if dataset and data_root:
        return dataset_inputs(
            dataset, data_root, input_shape, T=steps, n=samples, input_kind=input_kind
        )
    if data:
        return load_npz_inputs(
            data, input_shape, T=T, default_T=recorded_T or default_T, input_kind=input_kind
        )
    if random_rate is not None:
        n = DEFAULT_RANDOM_SAMPLES if samples is None else samples
        return random_inputs(
            random_rate, input_shape, T=steps, n=n, seed=seed, input_kind=input_kind
        )
    name = task or recorded_task
    if name:
        return task_inputs(name, input_shape, T=steps, input_kind=input_kind)
    return None


def _npz_splits(
    path: str, input_shape: tuple[int, ...], *, T: int | None, default_T: int
) -> TaskData:
    """Train and test split of a --data file (module docstring): ``x_train``/``y_train`` and
    ``x``/``y``, else ``x``/``y`` split by :data:`HOLDOUT_EVERY`. Labels required."""
    test = load_npz_inputs(path, input_shape, T=T, default_T=default_T)
    if test.y is None:
        raise ValueError(
            f"--data {path}: no labels (array y); finetune trains on labels: add integer y of "
            "shape (N,) (and optionally x_train/y_train)"
        )
    with np.load(path, allow_pickle=False) as f:
        has_train = "x_train" in f.files
        if has_train and "y_train" not in f.files:
            raise ValueError(f"--data {path}: x_train without y_train (its labels)")
    if has_train:
        train = load_npz_inputs(
            path, input_shape, T=test.T, default_T=test.T, keys=("x_train", "y_train")
        )
        if train.temporal != test.temporal:
            raise ValueError(
                f"--data {path}: x_train {tuple(train.x.shape)} and x {tuple(test.x.shape)} "
                "must both be sequences or both static"
            )
        x_tr, y_tr, x_te, y_te = train.x, train.y, test.x, test.y
        how = "x_train/y_train and x/y"
    else:
        idx = torch.arange(len(test.x))
        held = idx % HOLDOUT_EVERY == HOLDOUT_EVERY - 1
        if not bool(held.any()) or bool(held.all()):
            raise ValueError(
                f"--data {path}: {len(test.x)} samples; finetune holds out every "
                f"{HOLDOUT_EVERY}th sample for testing and needs at least {HOLDOUT_EVERY} "
                "(or give x_train/y_train)"
            )
        x_tr, y_tr, x_te, y_te = test.x[~held], test.y[~held], test.x[held], test.y[held]
        how = f"x/y, every {HOLDOUT_EVERY}th sample held out for testing"
    assert y_tr is not None and y_te is not None
    return TaskData(
        test.name,
        x_tr,
        y_tr,
        x_te,
        y_te,
        test.input_shape,
        int(max(int(y_tr.max()), int(y_te.max()))) + 1,
        test.temporal,
        test.T,
        f"{path}: {how} ({len(y_tr)} train, {len(y_te)} test)",
        "the user's data",
    )


def _real_splits(data: RealDataset, what: str) -> TaskData:
    x_tr, y_tr = _stack(data.train, len(data.train))
    x_te, y_te = _stack(data.test, len(data.test))
    return TaskData(
        data.name,
        x_tr,
        y_tr,
        x_te,
        y_te,
        tuple(data.input_shape),
        data.num_classes,
        data.temporal,
        data.T,
        f"{what}: data set {data.name} from {data.root} ({len(y_tr)} train, {len(y_te)} test, "
        "un-augmented)",
        data.name,
    )


def labelled_splits(
    input_shape: tuple[int, ...],
    *,
    task: str | None = None,
    data: str | None = None,
    random_rate: float | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    config: str | None = None,
    config_data: TaskData | RealDataset | None = None,
    T: int | None = None,
    recorded_task: str | None = None,
    recorded_T: int | None = None,
    default_T: int = 4,
) -> TaskData:
    """Train and test split with labels (``finetune``), from the same options as
    :func:`resolve_inputs`: an offline task, a --data file (module docstring), a data set on
    disk (``dataset``/``data_root``, or a recipe's ``config_data``), all loaded whole into memory
    as :class:`TaskData`. Sources without labels are refused by name."""
    check_sources(
        task=task,
        data=data,
        dataset=dataset,
        data_root=data_root,
        config=config,
        random_rate=random_rate,
    )
    if random_rate is not None:
        raise ValueError(
            "--random-input: finetune trains on labels and random input has none; give "
            "--data FILE.npz (with y), --dataset NAME --data-root DIR, --config recipe.toml "
            "or --task NAME"
        )
    T = check_optional_count("T", T)  # 0 is refused, not read as "the default"
    steps = T or recorded_T or default_T
    out: TaskData
    if config:
        if config_data is None:
            raise ValueError(f"--config {config}: the recipe's data was not loaded")
        what = f"--config {config}"
        _check_shape(what, tuple(config_data.input_shape), input_shape)
        if isinstance(config_data, TaskData):
            return config_data
        return _real_splits(config_data, what)
    if dataset and data_root:
        from neurodeploy.data.real import load_dataset

        what = f"--dataset {dataset} (--data-root {data_root})"
        real = load_dataset(dataset, Path(data_root), T=steps)
        _check_shape(what, tuple(real.input_shape), input_shape)
        return _real_splits(real, what)
    if data:
        return _npz_splits(data, input_shape, T=T, default_T=recorded_T or default_T)
    name = task or recorded_task
    if not name:
        raise ValueError(
            "no labelled data (the model records no task): finetune needs a training split; "
            "pass --data FILE.npz (x, y), "
            "--dataset NAME --data-root DIR, --config recipe.toml or --task NAME"
        )
    out = load_task(name, T=steps)
    _check_shape(f"task {name!r}", tuple(out.input_shape), input_shape)
    return out


def weights_only_settings(input_kind: str | None) -> InputSettings:
    """Input settings with no data at all: binary spikes unless ``--input-kind graded`` (then
    inputs are taken to lie in [0, 1])."""
    if input_kind is None or input_kind == "binary":
        return InputSettings("binary")
    if input_kind != "graded":
        raise ValueError(
            f"--input-kind: expected one of {', '.join(INPUT_KINDS)}, got {input_kind!r}"
        )
    return InputSettings("graded", RANDOM_INPUT_RANGE, False)
