"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of plain types and tensors::

    {"format": "neurodeploy.checkpoint", "version": 1, "config": {...TrainConfig...},
     "model": state_dict, "optimizer": ..., "scheduler": ..., "epoch": completed epochs,
     "rng": torch CPU RNG state, "history": [per-epoch metrics]}

Writing goes to a temporary file in the same folder, flushed and fsync'ed, then renamed over
the target (:func:`neurodeploy.files.atomic_write`), so a crash never leaves a half-written
checkpoint under the real name; a ``kill -9`` may leave the hidden temporary, which the next
``train`` in that folder removes (:func:`neurodeploy.files.clean_temporaries`).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from neurodeploy.files import atomic_write
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.zoo import build_model
from neurodeploy.training.config import DEFAULT_MODEL, TrainConfig

CHECKPOINT_FORMAT = "neurodeploy.checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("config", "model", "epoch", "input_shape", "num_classes")


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable, truncated or not one of ours."""


def save_checkpoint(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Atomically write ``payload`` (plus the format tag) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    return atomic_write(path, lambda f: torch.save(data, f))


def load_checkpoint(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> dict[str, Any]:
    """Read and validate a checkpoint; raise :class:`CheckpointError` naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path}: no such file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except (
        RuntimeError,
        EOFError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        ValueError,
        OSError,
        TypeError,
        KeyError,
        AttributeError,
        IndexError,
        NotImplementedError,
        MemoryError,
    ) as e:  # a damaged pickle stream surfaces as any of these inside torch.load
        first_line = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(
            f"checkpoint {path}: cannot be read as a torch checkpoint (truncated, corrupt, or a "
            f"foreign file; loading uses weights_only=True): {type(e).__name__}: {first_line}"
        ) from e
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path}: not a neurodeploy checkpoint (expected a dict with "
            f"format={CHECKPOINT_FORMAT!r}; plain state_dicts from other tools are not accepted here)"
        )
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path}: version {data.get('version')!r} is not supported "
            f"(this neurodeploy reads version {CHECKPOINT_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"checkpoint {path}: missing field(s) {missing}")
    return data


def load_model(path: str | os.PathLike[str], device: str = "cpu") -> tuple[SpikingNet, TrainConfig]:
    """Rebuild the trained model stored in a checkpoint (evaluation mode).

    The config, the input shape, the class count and the weights' names and shapes are checked
    before any weight is allocated (the model is first built on torch's "meta" device, which
    holds shapes only, so a damaged size cannot allocate terabytes); every mismatch is a
    :class:`CheckpointError` naming the file and the field."""
    state = load_checkpoint(path, map_location=device)
    where = f"checkpoint {path}"
    try:
        config = state["config"]
        if not isinstance(config, dict):
            raise TypeError(f"'config' must be a dict, got {type(config).__name__}")
        cfg = TrainConfig.from_dict(config)
        input_shape = _shape_field(state["input_shape"], "input_shape")
        num_classes = _shape_field([state["num_classes"]], "num_classes")[0]
        arch = dict(cfg.arch)
        name = cfg.model or DEFAULT_MODEL[cfg.task]
        with torch.device("meta"):  # shapes only: nothing allocated
            skeleton = build_model(name, input_shape, num_classes, cfg.neuron_config(), **arch)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{where}: config cannot build the model: {e}") from e
    weights = state["model"]
    if not isinstance(weights, dict) or not all(
        isinstance(v, torch.Tensor) for v in weights.values()
    ):
        raise CheckpointError(f"{where}: 'model' is not a state dict of tensors")
    want = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if want != got:
        bad = sorted(set(want) ^ set(got)) or [k for k in want if want[k] != got[k]]
        raise CheckpointError(
            f"{where}: weights do not fit model {name!r}: {bad[:4]} "
            + ", ".join(f"{k}: {got.get(k)} vs {want.get(k)}" for k in bad[:4])
        )
    try:
        model = build_model(name, input_shape, num_classes, cfg.neuron_config(), **arch)
        model.load_state_dict(weights)
    except (RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{where}: weights do not fit model {name!r}: {e}") from e
    return model.to(device).eval(), cfg


def _shape_field(v: object, field: str) -> list[int]:
    """``v`` as a list of ints >= 1, or TypeError naming ``field``."""
    if not isinstance(v, (list, tuple)) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in v
    ):
        raise TypeError(f"{field!r} must be integer(s) >= 1, got {v!r:.60}")
    return list(v)
