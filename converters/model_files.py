"""Model files the commands accept, read in one place: a NIR graph (.nir), a training checkpoint
(.pt), an integer program (.npz) or a lava-dl netx network (.net, or an .h5/.hdf5 with a netx
layout; read as an integer program), each with the task and T recorded in it (if any)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram

NIR_SUFFIXES = (".nir", ".h5", ".hdf5")
#: lava-dl netx networks (an HDF5 ``.h5``/``.hdf5`` with a netx layout is one too: is_netx_file)
NETX_SUFFIXES = (".net",)
NETX_FLOAT_REFUSAL = (
    "a netx network holds integers only; this command needs the float model: run it with "
    "verify/deploy/profile/resources, or export it to NIR first (neurodeploy export FILE.net "
    "-o model.nir)"
)


def is_netx_file(path: str | os.PathLike[str]) -> bool:
    """An HDF5 file laid out as a netx network: a top-level ``layer`` group and no NIR graph
    (``node`` group). False for anything else, including files h5py cannot open."""
    import h5py

    try:
        if not h5py.is_hdf5(str(path)):
            return False
        with h5py.File(str(path), "r") as f:
            return isinstance(f.get("layer"), h5py.Group) and "node" not in f
    except (OSError, KeyError, RuntimeError, ValueError):
        return False


def is_netx_path(path: str | os.PathLike[str]) -> bool:
    """A ``.net`` file, or an ``.h5``/``.hdf5`` with a netx layout (:func:`is_netx_file`)."""
    p = Path(path)
    return p.suffix in NETX_SUFFIXES or (p.suffix in NIR_SUFFIXES and is_netx_file(p))


def load_netx(path: str | os.PathLike[str]) -> tuple[IntProgram, int | None]:
    """(integer program, T) of a lava-dl netx file:
    :func:`~neurodeploy.converters.netx_import.netx_to_program` (T from the file's
    ``simulation/tSample``, None when absent). A file that is not HDF5, is damaged or has no
    ``layer`` group: a ValueError naming the file."""
    from neurodeploy.converters.netx_import import netx_to_program

    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if p.is_dir():
        raise ValueError(f"{path}: is a directory, expected a netx network (.net, HDF5)")
    try:
        prog = netx_to_program(p)
    except ValueError as e:
        named = str(path) in str(e) or p.name in str(e)
        raise ValueError(str(e) if named else f"{path}: {e}") from e
    except (OSError, KeyError, RuntimeError, TypeError, IndexError) as e:  # h5py on damage
        raise ValueError(
            f"{path}: cannot be read as a netx network (truncated or corrupt HDF5): "
            f"{type(e).__name__}: {e}"
        ) from e
    return prog, _T(prog.meta.get("T"), path, "simulation/tSample")


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
        T, task = prog.meta.get("T"), prog.meta.get("task")
        return prog, (str(task) if task is not None else None), _T(T, path, "meta 'T'")
    if p.suffix == ".pt":
        from neurodeploy.training.checkpoint import load_model

        model, cfg = load_model(p)
        return model, cfg.task, cfg.T
    if is_netx_path(p):
        if not programs:
            raise ValueError(f"{path}: {NETX_FLOAT_REFUSAL}")
        prog, T = load_netx(p)
        return prog, None, T
    if p.suffix in NIR_SUFFIXES:
        from neurodeploy.converters.nir_import import NIRFileError, in_file, nir_to_model, read_nir

        graph = read_nir(p)
        meta = graph.metadata if isinstance(graph.metadata, dict) else {}
        task, T = meta.get("task"), meta.get("T")
        try:
            model = nir_to_model(graph, dt=dt, reset=reset)
        except ValueError as e:  # NIRConversionError names the node and field
            in_file(e, p)
            raise
        except (TypeError, AttributeError, IndexError, KeyError) as e:  # a field of a wrong type
            raise NIRFileError(f"{path}: malformed graph: {type(e).__name__}: {e}") from e
        return model, (_str(task) if task is not None else None), _T(T, path, "metadata 'T'")
    kinds = "a .nir graph, a checkpoint .pt" + (
        ", an integer program .npz or a lava-dl netx .net" if programs else ""
    )
    raise ValueError(f"{path}: not a model file this command reads (expected {kinds})")


def _str(v: object) -> str:
    return v.decode("utf8", "replace") if isinstance(v, bytes) else str(v)


def _T(v: object, path: str | os.PathLike[str], field: str) -> int | None:
    """The number of timesteps a file records (None if it records none): an integer >= 1, else
    a ValueError naming the file and the field."""
    if v is None:
        return None
    if isinstance(v, np.ndarray) and v.size == 1:  # HDF5 metadata reads back as numpy
        v = v.item()
    if isinstance(v, np.integer):
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{path}: {field} = {v!r:.60} is not a number of timesteps (integer >= 1)")
    return v
