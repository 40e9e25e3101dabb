"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of plain types and tensors::

    {"format": "neurodeploy.checkpoint", "version": 1, "config": {...TrainConfig...},
     "model": state_dict, "optimizer": ..., "scheduler": ..., "epoch": completed epochs,
     "rng": torch CPU RNG state, "history": [per-epoch metrics]}

Writing goes to a temporary file in the same folder, flushed and fsync'ed, then renamed over
the target, so a crash never leaves a half-written checkpoint under the real name.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

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
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    data = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    try:
        with open(tmp, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


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
    ) as e:
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
    """Rebuild the trained model stored in a checkpoint (evaluation mode)."""
    state = load_checkpoint(path, map_location=device)
    cfg = TrainConfig.from_dict(state["config"])
    model = build_model(
        cfg.model or DEFAULT_MODEL[cfg.task],
        state["input_shape"],
        state["num_classes"],
        cfg.neuron_config(),
        **cfg.arch,
    )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        raise CheckpointError(
            f"checkpoint {path}: weights do not fit model {cfg.model!r}: {e}"
        ) from e
    return model.to(device).eval(), cfg
