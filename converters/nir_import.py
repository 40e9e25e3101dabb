"""NIR -> torch: a :class:`~neurodeploy.nn.zoo.SpikingNet` from any producer's chain graph.

Honours our own metadata (smoothing coefficient and reading, reset, exact beta); graphs from
other tools (snntorch, norse, ...) carry none and load as plain neurons. Supported nodes:
Input, Output, Affine, Linear, Conv1d, Conv2d, Flatten, AvgPool2d, SumPool2d, Scale, LIF, IF,
LI (non-spiking readout), CubaLIF (synaptic current state). Discretisation with ``dt``
(the caller's, else the graph's ``metadata["dt"]``, else 1e-4 with a warning naming the
assumption and the producers' dt; see nir_common.py):

    LIF:  beta = 1 - dt/tau; input gain r*dt/tau (1 for snntorch's r = tau/dt; otherwise a
          Scale layer is inserted); v_leak must be 0 and v_reset 0 (hard reset to zero).
    IF:   beta = 1, gain r*dt.           LI: as LIF without spikes.

What our dynamics cannot express is refused with an error naming the node and field (never
approximated): per-neuron time constants or thresholds, non-zero v_leak or v_reset,
branching or recurrent edges, unknown node types, NaN/inf parameters, shape mismatches.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

import nir
import numpy as np
import torch
from torch import nn

from neurodeploy.nn.layers import LI, LIF, GlobalPool, PerStep, Scale
from neurodeploy.nn.net import SpikingNet

from .nir_common import (
    METADATA_KEY,
    DtChoice,
    NIRConversionError,
    check_if_gain,
    check_tau_steps,
    resolve_dt,
)

Modules = list[nn.Module]
GAIN_RTOL = 1e-6  # |gain - 1| below this is taken as exactly 1 (float32 storage of tau and r)


class NIRFileError(ValueError):
    """A NIR file is missing, a directory, truncated, not HDF5, or not a NIR graph."""


def read_nir(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """Read a NIR file node by node, so that a broken node is named with its field.

    Errors: :class:`NIRFileError` (naming the file) for a missing file, a directory, a file
    that is not HDF5, a truncated file or one without a NIR graph; :class:`NIRConversionError`
    (naming the node and field) for a node of unknown type or with a missing or bad field.
    Shapes between nodes are checked by :func:`nir_to_model`, which names the node.
    """
    import h5py
    from nir.serialization import hdf2dict

    path = Path(path)
    if path.is_dir():
        raise NIRFileError(f"{path}: is a directory, expected a NIR file (.nir, HDF5)")
    if not path.exists():
        raise NIRFileError(f"{path}: no such file")
    try:
        if not h5py.is_hdf5(str(path)):
            raise NIRFileError(f"{path}: is not an HDF5 file, so not a NIR file")
        with h5py.File(str(path), "r") as f:
            if "node" not in f:
                raise NIRFileError(f"{path}: HDF5 file without a NIR graph (no 'node' group)")
            data = hdf2dict(f["node"])
    except NIRFileError:
        raise
    except (
        Exception
    ) as e:  # h5py raises OSError for truncated files, KeyError/RuntimeError for damage
        raise NIRFileError(
            f"{path}: cannot be read (truncated or corrupt HDF5): {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        ) from e
    if (
        data.get("type") != "NIRGraph"
        or not isinstance(data.get("nodes"), dict)
        or "edges" not in data
    ):
        raise NIRFileError(
            f"{path}: the top node is {data.get('type')!r}, not a NIRGraph with nodes and edges"
        )
    nodes = {name: _read_node(name, d) for name, d in data["nodes"].items()}
    try:
        edges = [(_str(a), _str(b)) for a, b in np.asarray(data["edges"]).reshape(-1, 2)]
    except (ValueError, TypeError) as e:
        raise NIRFileError(
            f"{path}: field 'edges' is not a list of (source, target) pairs: {e}"
        ) from e
    meta = data.get("metadata", {})
    return nir.NIRGraph(
        nodes=nodes, edges=edges, metadata=meta if isinstance(meta, dict) else {}, type_check=False
    )


def _str(v: Any) -> str:
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _read_node(name: str, d: Any) -> nir.NIRNode:
    if not isinstance(d, dict) or "type" not in d:
        raise NIRConversionError(name, "type", "missing: not a NIR node")
    kind = _str(d["type"])
    if kind == "NIRGraph":
        raise NIRConversionError(name, "type", "nested subgraphs are not supported")
    try:
        cls = nir.str2NIRNode(kind)
    except (AssertionError, KeyError):  # nir asserts the name (KeyError under python -O)
        cls = None
    if cls is None or not isinstance(cls, type):
        raise NIRConversionError(name, "type", f"unknown NIR node type {kind!r}")
    d = dict(d)
    d["type"] = kind
    try:
        return nir.dict2NIRNode(d)
    except KeyError as e:
        raise NIRConversionError(
            name, str(e.args[0]) if e.args else None, f"{kind} node: field missing"
        ) from e
    except TypeError as e:
        missing = re.findall(r"'(\w+)'", str(e))
        raise NIRConversionError(name, missing[-1] if missing else None, f"{kind} node: {e}") from e
    except (AssertionError, ValueError, IndexError) as e:
        raise NIRConversionError(
            name, None, f"{kind} node is malformed: {e or type(e).__name__}"
        ) from e


@overload
def _arr(
    node_name: str, node: nir.NIRNode, field: str, *, required: Literal[True] = True
) -> np.ndarray: ...
@overload
def _arr(node_name: str, node: nir.NIRNode, field: str, *, required: bool) -> np.ndarray | None: ...
def _arr(
    node_name: str, node: nir.NIRNode, field: str, *, required: bool = True
) -> np.ndarray | None:
    """``node.field`` as a finite float64 array; a missing field is an error naming it, or
    None where not ``required``."""
    if not hasattr(node, field) or getattr(node, field) is None:
        if required:
            raise NIRConversionError(node_name, field, "missing")
        return None
    try:
        a = np.asarray(getattr(node, field), dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise NIRConversionError(node_name, field, f"not numeric: {e}") from e
    if not np.all(np.isfinite(a)):
        raise NIRConversionError(
            node_name, field, f"contains NaN or inf ({int((~np.isfinite(a)).sum())} values)"
        )
    return a


def _neuron_shape(node_name: str, field: str, a: np.ndarray, shape: tuple[int, ...]) -> None:
    """Neuron parameters are arrays of the neuron shape (or scalars): the shape must match the
    previous node's output."""
    if a.size != 1 and tuple(a.shape) != shape:
        raise NIRConversionError(
            node_name, field, f"has shape {tuple(a.shape)} but the previous node gives {shape}"
        )


def _uniform(node_name: str, field: str, a: np.ndarray) -> float:
    """Our neurons share one value per layer; a per-neuron array must be constant."""
    if a.size == 0:
        raise NIRConversionError(node_name, field, "is empty")
    v = float(a.flat[0])
    if not np.all(a == v):
        raise NIRConversionError(
            node_name,
            field,
            f"differs across neurons (min {a.min():g}, max {a.max():g}); "
            "neurodeploy layers share one value per layer",
        )
    return v


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


class _Ctx:
    def __init__(self, dt: float, ignore_metadata: bool = False) -> None:
        self.dt = dt
        self.ignore_metadata = ignore_metadata

    def meta(self, node: nir.NIRNode) -> dict[str, Any]:
        md = getattr(node, "metadata", None)
        if self.ignore_metadata or not isinstance(md, dict):
            return {}
        m = md.get(METADATA_KEY, {})
        return m if isinstance(m, dict) else {}


def _affine(name: str, node: nir.NIRNode, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    w = _arr(name, node, "weight")
    if w.ndim != 2:
        raise NIRConversionError(name, "weight", f"expected a 2-D matrix, got shape {w.shape}")
    b = _arr(name, node, "bias") if isinstance(node, nir.Affine) else None
    if b is not None and b.shape != (w.shape[0],):
        raise NIRConversionError(name, "bias", f"shape {b.shape} does not match weight {w.shape}")
    if shape != (w.shape[1],):
        raise NIRConversionError(
            name, "weight", f"expects input ({w.shape[1]},) but the previous node gives {shape}"
        )
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        lin.weight.copy_(_tensor(node.weight))
        if b is not None:
            lin.bias.copy_(_tensor(node.bias))
    return [PerStep(lin)]


def _conv(name: str, node: nir.NIRNode, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    w = _arr(name, node, "weight")
    b = _arr(name, node, "bias", required=False)
    two_d = isinstance(node, nir.Conv2d)
    if w.ndim != (4 if two_d else 3):
        raise NIRConversionError(name, "weight", f"unexpected shape {w.shape}")
    meta = ctx.meta(node)
    if not two_d and meta.get("from") in ("AvgPool1d", "GlobalPool(mean)") and _is_diagonal_mean(w):
        k = w.shape[2]
        if (
            meta["from"] == "GlobalPool(mean)"
            and len(shape) == 2
            and shape[1] == k
            and int(node.stride) == k
        ):
            return [PerStep(GlobalPool("mean"))]
        if meta["from"] == "AvgPool1d":
            return [PerStep(nn.AvgPool1d(k, int(node.stride)))]
    groups = int(node.groups)
    if shape[0] != w.shape[1] * groups:
        raise NIRConversionError(
            name,
            "weight",
            f"expects {w.shape[1] * groups} input channels but the previous "
            f"node gives shape {shape}",
        )
    c_in, c_out = w.shape[1] * groups, w.shape[0]
    conv: nn.Conv1d | nn.Conv2d
    if two_d:
        conv = nn.Conv2d(
            c_in,
            c_out,
            (w.shape[2], w.shape[3]),
            stride=_ints2(name, node, "stride"),
            padding=node.padding
            if isinstance(node.padding, str)
            else _ints2(name, node, "padding"),
            dilation=_ints2(name, node, "dilation"),
            groups=groups,
            bias=b is not None,
        )
    else:
        conv = nn.Conv1d(
            c_in,
            c_out,
            (w.shape[2],),
            stride=_ints1(name, node, "stride"),
            padding=node.padding
            if isinstance(node.padding, str)
            else _ints1(name, node, "padding"),
            dilation=_ints1(name, node, "dilation"),
            groups=groups,
            bias=b is not None,
        )
    with torch.no_grad():
        conv.weight.copy_(_tensor(node.weight))
        if conv.bias is not None:  # there is one exactly where the node has a bias
            conv.bias.copy_(_tensor(node.bias))
    return [PerStep(conv)]


def _ints(name: str, node: nir.NIRNode, field: str, n: int) -> tuple[int, ...]:
    """A convolution's ``field`` (stride, padding, dilation) as ``n`` ints, one per spatial
    axis; a single value stands for every axis (as torch reads it)."""
    v = tuple(int(x) for x in np.atleast_1d(getattr(node, field)))
    if len(v) == 1:
        v = v * n
    if len(v) != n:
        raise NIRConversionError(
            name, field, f"expected 1 or {n} values for a {n}-D convolution, got {len(v)}"
        )
    return v


def _ints1(name: str, node: nir.NIRNode, field: str) -> tuple[int]:
    """``field`` of a Conv1d node (see :func:`_ints`)."""
    (a,) = _ints(name, node, field, 1)
    return (a,)


def _ints2(name: str, node: nir.NIRNode, field: str) -> tuple[int, int]:
    """``field`` of a Conv2d node (see :func:`_ints`)."""
    a, b = _ints(name, node, field, 2)
    return a, b


def _is_diagonal_mean(w: np.ndarray) -> bool:
    c, c_in, k = w.shape
    if c != c_in:
        return False
    expect = np.zeros_like(w)
    expect[np.arange(c), np.arange(c), :] = np.float32(1.0 / k)
    return bool(np.array_equal(w.astype(np.float32), expect.astype(np.float32)))


def _flatten(name: str, node: nir.Flatten, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    if ctx.meta(node).get("from") == "GlobalPool(mean)" and len(shape) == 1:
        return []  # our GlobalPool already yields (C,); NIR needed this Flatten after its Conv1d
    start, end = int(node.start_dim), int(node.end_dim)
    return [PerStep(nn.Flatten(start + 1 if start >= 0 else start, end + 1 if end >= 0 else end))]


def _pool(name: str, node: nir.NIRNode, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    k, s, p = (_pair(_arr(name, node, f)) for f in ("kernel_size", "stride", "padding"))
    if isinstance(node, nir.SumPool2d):
        return [PerStep(nn.AvgPool2d(k, s, p, divisor_override=1))]
    return [PerStep(nn.AvgPool2d(k, s, p))]


def _pair(a: np.ndarray) -> tuple[int, int]:
    """A pooling window field (one value or one per spatial axis) as (height, width)."""
    h, w = np.broadcast_to(a, (2,))
    return int(h), int(w)


def _scale(name: str, node: nir.Scale, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    sc = _arr(name, node, "scale")
    _neuron_shape(name, "scale", sc, shape)
    return [PerStep(Scale(_tensor(sc)))]


def _gain(name: str, r: float, tau: float, ctx: _Ctx) -> Modules:
    gain = r * ctx.dt / tau if math.isfinite(tau) else r * ctx.dt
    if abs(gain - 1.0) <= GAIN_RTOL:
        return []
    return [PerStep(Scale(gain))]


def _lif_kwargs(
    name: str, node: nir.NIRNode, ctx: _Ctx, tau_nir: float | None, *, field: str = "tau"
) -> tuple[dict[str, Any], float]:
    theta = _uniform(name, "v_threshold", _arr(name, node, "v_threshold"))
    if theta <= 0:
        raise NIRConversionError(name, "v_threshold", f"must be > 0, got {theta}")
    v_reset = _arr(name, node, "v_reset", required=False)
    if v_reset is not None and np.any(v_reset != 0):
        raise NIRConversionError(
            name, "v_reset", "a non-zero reset potential is not supported (hard reset to 0)"
        )
    meta = ctx.meta(node)
    tau_steps = math.inf if tau_nir is None else check_tau_steps(name, field, tau_nir, ctx.dt)
    if "tau_steps" in meta and (
        tau_nir is None or math.isclose(float(meta["tau_steps"]), tau_steps, rel_tol=1e-5)
    ):
        tau_steps = float(meta["tau_steps"])  # our own export: the exact value, not via float32 tau
    kw: dict[str, Any] = dict(tau=tau_steps, theta=theta, mps=False)
    if meta:
        alpha = float(meta.get("mps_alpha", 0.0))
        if not (0.0 <= alpha < 1.0) or math.isnan(alpha):
            raise NIRConversionError(
                name, f"metadata.{METADATA_KEY}.mps_alpha", f"must be in [0, 1), got {alpha}"
            )
        if alpha > 0:
            kw.update(mps=True, alpha_init=alpha, mps_mode=str(meta.get("mps_mode", "reset")))
        kw["reset"] = str(meta.get("reset", "hard"))
        for k in ("detach_reset", "surrogate", "surrogate_width"):
            if k in meta:
                kw[k] = meta[k].item() if hasattr(meta[k], "item") else meta[k]
        kw["detach_reset"] = bool(kw.get("detach_reset", True))
        kw["surrogate"] = str(kw.get("surrogate", "rectangular"))
    return kw, float(meta.get("mps_logit", math.nan)) if meta else math.nan


def _make_lif(name: str, kw: dict[str, Any], logit: float) -> LIF:
    try:
        layer = LIF(**kw)
    except ValueError as e:
        raise NIRConversionError(name, None, str(e)) from e
    if layer.a is not None and math.isfinite(logit):
        with torch.no_grad():
            layer.a.fill_(logit)
    return layer


def _lif(name: str, node: nir.LIF, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    _neuron_shape(name, "v_threshold", _arr(name, node, "v_threshold"), shape)
    tau = _uniform(name, "tau", _arr(name, node, "tau"))
    r = _uniform(name, "r", _arr(name, node, "r"))
    if _uniform(name, "v_leak", _arr(name, node, "v_leak")) != 0:
        raise NIRConversionError(name, "v_leak", "a non-zero leak potential is not supported")
    if tau <= 0:
        raise NIRConversionError(name, "tau", f"must be > 0, got {tau}")
    kw, logit = _lif_kwargs(name, node, ctx, tau)
    return [*_gain(name, r, tau, ctx), _make_lif(name, kw, logit)]


def _if(name: str, node: nir.IF, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    _neuron_shape(name, "v_threshold", _arr(name, node, "v_threshold"), shape)
    r = _uniform(name, "r", _arr(name, node, "r"))
    check_if_gain(name, r, ctx.dt)
    kw, logit = _lif_kwargs(name, node, ctx, None)
    return [*_gain(name, r, math.inf, ctx), _make_lif(name, kw, logit)]


def _li(name: str, node: nir.LI, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    _neuron_shape(name, "tau", _arr(name, node, "tau"), shape)
    tau = _uniform(name, "tau", _arr(name, node, "tau"))
    r = _uniform(name, "r", _arr(name, node, "r"))
    if _uniform(name, "v_leak", _arr(name, node, "v_leak")) != 0:
        raise NIRConversionError(name, "v_leak", "a non-zero leak potential is not supported")
    if tau <= 0:
        raise NIRConversionError(name, "tau", f"must be > 0, got {tau}")
    return [*_gain(name, r, tau, ctx), LI(check_tau_steps(name, "tau", tau, ctx.dt))]


def _cuba_lif(name: str, node: nir.CubaLIF, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    """CubaLIF = a synaptic current I(t) = alpha_syn I(t-1) + g_syn x(t) (our LI) feeding a LIF:
    tau_syn dI/dt = -I + w_in x, tau_mem dv/dt = (v_leak - v) + r I, Euler at dt, so
    g_syn = w_in dt/tau_syn and the membrane gain is r dt/tau_mem (both 1 in snntorch's export).
    Spike for spike this is snntorch's Synaptic with reset_mechanism="zero", reset_delay=False."""
    _neuron_shape(name, "v_threshold", _arr(name, node, "v_threshold"), shape)
    tau_syn = _uniform(name, "tau_syn", _arr(name, node, "tau_syn"))
    tau_mem = _uniform(name, "tau_mem", _arr(name, node, "tau_mem"))
    r = _uniform(name, "r", _arr(name, node, "r"))
    w_in = _uniform(name, "w_in", _arr(name, node, "w_in"))
    if _uniform(name, "v_leak", _arr(name, node, "v_leak")) != 0:
        raise NIRConversionError(name, "v_leak", "a non-zero leak potential is not supported")
    for field, tau in (("tau_syn", tau_syn), ("tau_mem", tau_mem)):
        if tau <= 0:
            raise NIRConversionError(name, field, f"must be > 0, got {tau}")
    syn_steps = tau_syn / ctx.dt
    if abs(syn_steps - 1) > GAIN_RTOL:  # tau_syn = dt (within float32): no memory, no check
        check_tau_steps(name, "tau_syn", tau_syn, ctx.dt, allow_one=True)
    synapse: Modules = (
        [] if abs(syn_steps - 1) <= GAIN_RTOL else [LI(syn_steps)]
    )  # tau_syn = dt: no memory
    kw, logit = _lif_kwargs(name, node, ctx, tau_mem, field="tau_mem")
    return [
        *_gain(name, w_in, tau_syn, ctx),
        *synapse,
        *_gain(name, r, tau_mem, ctx),
        _make_lif(name, kw, logit),
    ]


IMPORTERS: dict[type, Callable[[str, Any, tuple[int, ...], _Ctx], Modules]] = {
    nir.Affine: _affine,
    nir.Linear: _affine,
    nir.Conv1d: _conv,
    nir.Conv2d: _conv,
    nir.Flatten: _flatten,
    nir.AvgPool2d: _pool,
    nir.SumPool2d: _pool,
    nir.Scale: _scale,
    nir.LIF: _lif,
    nir.IF: _if,
    nir.LI: _li,
    nir.CubaLIF: _cuba_lif,
}


def _importer(name: str, node: nir.NIRNode) -> Callable[..., Modules]:
    for cls in type(node).__mro__:
        if cls in IMPORTERS:
            return IMPORTERS[cls]
    raise NIRConversionError(
        name,
        None,
        f"node type {type(node).__name__} is not supported by neurodeploy "
        f"(supported: {sorted(c.__name__ for c in IMPORTERS)} plus Input/Output)",
    )


def _chain(graph: nir.NIRGraph) -> list[str]:
    """Node names from the single Input to the single Output; refuse anything but a chain."""
    nodes, edges = graph.nodes, list(graph.edges)
    for src, dst in edges:
        for end in (src, dst):
            if end not in nodes:
                raise NIRConversionError(
                    end, None, f"edge ({src!r} -> {dst!r}) names a node that does not exist"
                )
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRConversionError(
            "graph",
            None,
            f"expected exactly one Input and one Output node, found inputs "
            f"{inputs} and outputs {outputs}",
        )
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for src, dst in edges:
        succ[src].append(dst)
        pred[dst].append(src)
    for n in nodes:
        if len(succ[n]) > 1 or len(pred[n]) > 1:
            raise NIRConversionError(
                n,
                None,
                f"has {len(pred[n])} incoming and {len(succ[n])} outgoing edges: "
                "branching and recurrent graphs are not supported (feed-forward chains only)",
            )
    order, cur = [inputs[0]], inputs[0]
    while succ[cur]:
        cur = succ[cur][0]
        if cur in order:
            raise NIRConversionError(
                cur, None, "is part of a cycle: recurrent graphs are not supported"
            )
        order.append(cur)
    if order[-1] != outputs[0]:
        raise NIRConversionError(
            order[-1], None, "the chain from the Input does not end at the Output node"
        )
    unreached = set(nodes) - set(order)
    if unreached:
        raise NIRConversionError(
            sorted(unreached)[0], None, "is not connected to the Input -> Output chain"
        )
    return order


def _shape_after(mods: Modules, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    try:
        with torch.no_grad():
            y = nn.Sequential(*mods)(torch.zeros(1, 1, *shape))
    except (RuntimeError, ValueError) as e:
        raise NIRConversionError(
            name,
            "input_type",
            f"does not accept the previous node's output shape "
            f"{shape}: {str(e).splitlines()[0]}",
        ) from e
    return tuple(y.shape[2:])


def nir_to_model(
    graph: nir.NIRGraph | str | os.PathLike[str],
    dt: float | None = None,
    name: str | None = None,
    ignore_metadata: bool = False,
) -> SpikingNet:
    """Build our torch model from a NIR graph (or a .nir file).

    ``dt`` (seconds per timestep) overrides the graph's ``metadata["dt"]``; a graph without one
    is read with 1e-4 and a :class:`~neurodeploy.converters.nir_common.NIRDtWarning` naming that
    assumption (see :func:`graph_dt`). A time constant with tau/dt <= 1 is a
    :class:`NIRConversionError` naming node, tau, dt and the dt that fit.

    ``ignore_metadata=True`` reads only the NIR fields, as a tool that does not know our
    metadata would: smoothed neurons become plain LIFs (used to measure what that costs).
    """
    if not isinstance(graph, nir.NIRGraph):
        graph = read_nir(graph)
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    ctx = _Ctx(resolve_dt(meta, dt).dt, ignore_metadata)
    order = _chain(graph)
    in_node = graph.nodes[order[0]]
    in_type = in_node.input_type.get("input") if isinstance(in_node.input_type, dict) else None
    if in_type is None or np.asarray(in_type).size == 0:
        raise NIRConversionError(
            order[0], "input_type", "the Input node must declare the sample shape"
        )
    in_shape = tuple(int(v) for v in np.asarray(in_type).ravel())
    if any(v < 1 for v in in_shape):
        raise NIRConversionError(order[0], "input_type", f"invalid shape {in_shape}")
    shape, modules = in_shape, []
    for node_name in order[1:-1]:
        node = graph.nodes[node_name]
        convert = _importer(node_name, node)
        try:
            mods = convert(node_name, node, shape, ctx)
        except NIRConversionError:
            raise
        except (AttributeError, TypeError, ValueError, IndexError, KeyError, RuntimeError) as e:
            # a field missing or of the wrong kind, found by the mapping itself
            field = e.name if isinstance(e, AttributeError) else None
            raise NIRConversionError(
                node_name,
                field,
                f"malformed {type(node).__name__} node: " f"{type(e).__name__}: {e}",
            ) from e
        if mods:
            shape = _shape_after(mods, shape, node_name)
        modules += mods
    out_node = graph.nodes[order[-1]]
    out_type = (
        out_node.output_type.get("output") if isinstance(out_node.output_type, dict) else None
    )
    if (
        out_type is not None
        and np.asarray(out_type).size
        and tuple(int(v) for v in np.asarray(out_type).ravel()) != shape
    ):
        raise NIRConversionError(
            order[-1],
            "output_type",
            f"declares {tuple(np.asarray(out_type).ravel())} but the " f"graph produces {shape}",
        )
    if not modules:
        raise NIRConversionError("graph", None, "has no computational nodes")
    n_out = int(np.prod(shape))
    model_name = name or str(meta.get("model", "nir"))
    return SpikingNet(model_name, nn.Sequential(*modules), in_shape, n_out).eval()


def graph_dt(graph: nir.NIRGraph, dt: float | None = None, *, warn: bool = False) -> DtChoice:
    """The dt :func:`nir_to_model` reads ``graph`` with, and where it comes from (``dt`` given,
    the graph's metadata, or the default)."""
    return resolve_dt(graph.metadata, dt, warn=warn)
