"""Model files the commands accept, read in one place: a NIR graph (.nir), a training checkpoint
(.pt) or an integer program (.npz), each with the task and T recorded in it (if any)."""

from __future__ import annotations

import os
from pathlib import Path

from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram

NIR_SUFFIXES = (".nir", ".h5", ".hdf5")


def load_model_file(
    path: str | os.PathLike[str],
    programs: bool = True,
    *,
    dt: float | None = None,
    reset: str = "nir",
) -> tuple[SpikingNet | IntProgram, str | None, int | None]:
    """(model or integer program, task, T). With ``programs=False`` an integer program is refused
    (the caller needs the float model). Anything else is an error naming the file. ``dt``
    (seconds per timestep) reads a NIR graph with that dt instead of the one it records (or the
    default); other files have no dt and ignore it. ``reset`` ("nir" or "snntorch", snnTorch's
    delayed reset: see :func:`~neurodeploy.converters.nir_import.nir_to_model`) likewise applies
    to NIR graphs only."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if p.suffix == ".npz":
        if not programs:
            raise ValueError(
                f"{path}: an integer program; this command needs the float model (.nir or .pt)"
            )
        prog = IntProgram.load(p)
        T = prog.meta.get("T")
        return prog, prog.meta.get("task"), int(T) if T is not None else None
    if p.suffix == ".pt":
        from neurodeploy.training.checkpoint import load_model

        model, cfg = load_model(p)
        return model, cfg.task, cfg.T
    if p.suffix in NIR_SUFFIXES:
        from neurodeploy.converters.nir_import import nir_to_model, read_nir

        graph = read_nir(p)
        meta = graph.metadata if isinstance(graph.metadata, dict) else {}
        task, T = meta.get("task"), meta.get("T")
        return (
            nir_to_model(graph, dt=dt, reset=reset),
            (str(task) if task is not None else None),
            (int(T) if T is not None else None),
        )
    kinds = "a .nir graph, a checkpoint .pt" + (" or an integer program .npz" if programs else "")
    raise ValueError(f"{path}: not a model file this command reads (expected {kinds})")
