"""NIR -> torch: a :class:`~neurodeploy.nn.zoo.SpikingNet` from any producer's graph.

Honours our own metadata (smoothing coefficient and reading, reset, exact beta); graphs from
other tools (snntorch, norse, ...) carry none and load as plain neurons. Supported nodes:
Input, Output, Affine, Linear, Conv1d, Conv2d, Flatten, AvgPool2d, SumPool2d, Scale, LIF, IF,
LI (non-spiking readout), CubaLIF (synaptic current state). Discretisation with ``dt``
(the caller's, else the graph's ``metadata["dt"]``, else 1e-4 with a warning naming the
assumption and the producers' dt; see nir_common.py):

    LIF:  beta = 1 - dt/tau; input gain r*dt/tau (1 for snntorch's r = tau/dt; otherwise a
          Scale layer is inserted); v_leak must be 0 and v_reset 0 (hard reset to zero).
    IF:   beta = 1, gain r*dt.           LI: as LIF without spikes.

Producers' layouts: neuron parameters may be flat (C*H*W,) or channel-last (H, W, C) after a conv
(they are uniform per layer, so only a view; the layer keeps the conv's (C, H, W)); a Scale may be
channel-last or flat (moved to channel-first, torch's flatten order); an Affine after a
multi-axis node reads it flattened (C-order); a Flatten in front of a neuron layer moves after
it (elementwise, same spikes; the neurons keep the conv's shape) and a conv-shaped spiking last
layer is read flat (C order, as the targets count its spikes); an Input/Output with a leading
batch axis of 1 (nirtorch, norse) is read without it. norse 1.1's LIFCell exports as CubaLIF but is not NIR's
CubaLIF: it adds the input to the current without the dt/tau_syn factor and its membrane reads the
previous step's current; we import NIR's semantics (measured agreement with norse in
tests/test_norse_graphs.py).

Graphs (issue 16). Nested ``NIRGraph`` nodes are inlined first (:func:`flatten_graph`: node
``x`` of subgraph ``sub`` becomes ``sub.x``; snnTorch's and the NIR paper's 4-node recurrent
subgraphs; torch node names replace '.' by '_'). A graph whose nodes all have one edge in and one
out imports as an ``nn.Sequential`` exactly as before; any other becomes a
:class:`~neurodeploy.nn.graph.GraphBody` (one node per NIR node, topological order):

    fan-out:  a node's output read by several nodes;
    fan-in:   y_n = node_n(sum over the edges src -> n of y_src)  (currents sum, NIR's rule);
    cycles:   a loop neuron N -> r_1 -> .. -> r_k -> N through Affine/Linear/Scale nodes only
              becomes Recurrent(N, r_k o .. o r_1):
              s_N(t) = N_step(sum of ff inputs(t) + r(s_N(t-1))),  s_N(-1) = 0,
              so the recurrent current enters the neuron's input (a CubaLIF's synaptic current
              via w_in) with one step of delay, as snnTorch's RLeaky/RSynaptic and Loihi do.
A cycle through two or more neuron nodes is refused by name: Loihi delays every synaptic hop by a
step, so a k-layer loop takes k steps there and one in the producers' semantics.

Where the producers' semantics differ (measured in tests/test_nir_import_graph.py):
- reset: NIR's (and ours) resets v to 0 right after the spike and integrates the next input
  (``reset="snntorch"`` reads snnTorch's delayed reset exactly instead: see nir_to_model);
  snnTorch's RSynaptic (reset_delay=True, its default and the only mode that runs in snnTorch
  1.0) zeroes v at the step after the spike, dropping that step's input. Spike for spike equal to
  snnTorch with the reset at the spiking step (Synaptic/RLeaky reset_delay=False); the NIR
  paper's Braille SRNN vs RSynaptic as trained: 99.2 % (hidden) / 63.9 % (output layer)
  per-(step, neuron) agreement at input rate 0.1.
- first step of a cycle: snnTorch and we feed rec(s(-1) = 0) = the recurrent Affine's bias at
  t = 0; nirtorch's interpreter feeds zeros (equal outputs without that bias; 83-86 % with it).
- dt: as for chains (the graph records none; snnTorch wrote the Braille graph with 1e-4).

What our dynamics cannot express is refused with an error naming the node and field (never
approximated): per-neuron time constants or thresholds (arrays of equal values are accepted),
non-zero v_leak or v_reset, cycles through several neuron nodes or through other node types,
unknown node types, NaN/inf parameters, shape mismatches (also between summed edges).
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

from neurodeploy.nn.graph import INPUT, GraphBody, Recurrent
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
from .nir_file import global_heap_damage

Modules = list[nn.Module]
RESET_READINGS = ("nir", "snntorch")  # nir_to_model(reset=...): NIR's reset, snnTorch's delayed
GAIN_RTOL = 1e-6  # |gain - 1| below this is taken as exactly 1 (float32 storage of tau and r)


class NIRFileError(ValueError):
    """A NIR file is missing, a directory, truncated, not HDF5, or not a NIR graph."""


def read_nir(path: str | os.PathLike[str]) -> nir.NIRGraph:
    """Read a NIR file node by node, so that a broken node is named with its field.

    Errors: :class:`NIRFileError` (naming the file) for a missing file, a directory, a file
    that is not HDF5, a truncated file, one whose string heap would hang libhdf5
    (:func:`~neurodeploy.converters.nir_file.global_heap_damage`) or one without a NIR
    graph; :class:`NIRConversionError`
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
            # before any string is read: a damaged string heap hangs libhdf5 (nir_file.py)
            damage = global_heap_damage(path, f.id.get_create_plist().get_sizes()[1])
            if damage is not None:
                raise NIRFileError(f"{path}: damaged HDF5 file: {damage}")
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
        _str(data.get("type")) != "NIRGraph"
        or not isinstance(data.get("nodes"), dict)
        or "edges" not in data
    ):
        raise NIRFileError(
            f"{path}: the top node is {data.get('type')!r}, not a NIRGraph with nodes and edges"
        )
    try:
        nodes = {name: _read_node(name, d) for name, d in data["nodes"].items()}
    except NIRConversionError as e:
        in_file(e, path)
        raise
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


def in_file(e: ValueError, path: str | os.PathLike[str]) -> None:
    """Prefix the message of ``e`` (kept as it is, e.g. a :class:`NIRConversionError` naming the
    node and field) with the file it came from; the caller re-raises it."""
    e.args = (f"{path}: {e}", *e.args[1:])


def _str(v: Any) -> str:
    return v.decode("utf8") if isinstance(v, bytes) else str(v)


def _read_node(name: str, d: Any) -> nir.NIRNode:
    if not isinstance(d, dict) or "type" not in d:
        raise NIRConversionError(name, "type", "missing: not a NIR node")
    kind = _str(d["type"])
    if kind == "NIRGraph":  # a nested subgraph (snnTorch's RLeaky/RSynaptic, the Braille files)
        sub = d.get("nodes")
        if not isinstance(sub, dict) or "edges" not in d:
            raise NIRConversionError(name, "nodes", "NIRGraph node without nodes and edges")
        try:
            sub_edges = [(_str(a), _str(b)) for a, b in np.asarray(d["edges"]).reshape(-1, 2)]
        except (ValueError, TypeError) as e:
            raise NIRConversionError(name, "edges", f"not (source, target) pairs: {e}") from e
        return nir.NIRGraph(
            nodes={f"{n}": _read_node(f"{name}.{n}", v) for n, v in sub.items()},
            edges=sub_edges,
            type_check=False,
        )
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
    except (AssertionError, ValueError, IndexError, AttributeError) as e:
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
    """Neuron parameters are arrays of the neuron shape (or scalars). Our neuron layers share one
    value per layer (:func:`_uniform` refuses anything else by name), so a parameter array is only
    a view of the layer: any layout with as many entries as the previous node's output is accepted
    (the producer's shapes differ: flat (C*H*W,) after a conv in snnTorch, channel-last (H, W, C)
    in some exporters) and the layer keeps the previous node's shape. A different number of
    entries cannot be reconciled: an error naming the node, the field and both shapes."""
    if a.size != 1 and tuple(a.shape) != shape and a.size != math.prod(shape):
        raise NIRConversionError(
            node_name,
            field,
            f"has shape {tuple(a.shape)} ({a.size} neurons) but the previous node gives {shape} "
            f"({math.prod(shape)} neurons)",
        )


def _scale_view(node_name: str, sc: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A Scale node's ``scale`` as an array that broadcasts onto the previous node's output
    ``shape`` = (C, *spatial) or (n,), elementwise in the same order:

    - its own shape is ``shape``, or broadcasts to it (a scalar, (C, 1, 1)): as is;
    - channel-last, ``shape[1:] + shape[:1]`` (e.g. (H, W, C) after a channel-first conv): moved
      to channel-first, s'[c, h, w] = s[h, w, c];
    - flat with prod(shape) entries: read in torch's flatten order (C-order), s'[c, h, w] =
      s[(c H + h) W + w].

    Anything else (a different number of entries) is an error naming the node and both shapes."""
    if tuple(sc.shape) == shape or sc.size == 1:
        return sc
    try:
        np.broadcast_to(sc, shape)
        return sc
    except ValueError:
        pass
    if len(shape) > 1 and tuple(sc.shape) == shape[1:] + shape[:1]:
        return np.moveaxis(sc, -1, 0)
    if sc.size == math.prod(shape) and sc.ndim == 1:
        return sc.reshape(shape)
    raise NIRConversionError(
        node_name,
        "scale",
        f"has shape {tuple(sc.shape)}, which neither equals, broadcasts to, is the channel-last "
        f"layout of, nor flattens the previous node's output {shape}",
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
    def __init__(
        self, dt: float, ignore_metadata: bool = False, delayed: frozenset[str] = frozenset()
    ) -> None:
        self.dt = dt
        self.ignore_metadata = ignore_metadata
        self.delayed = delayed  # neuron nodes read with snnTorch's delayed reset (reset_delay)

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
    flatten: Modules = []
    if shape != (w.shape[1],) and len(shape) > 1 and math.prod(shape) == w.shape[1]:
        flatten = [PerStep(nn.Flatten())]  # NIR Affine reads a flat vector: torch's C-order view
    elif shape != (w.shape[1],):
        raise NIRConversionError(
            name, "weight", f"expects input ({w.shape[1]},) but the previous node gives {shape}"
        )
    lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None)
    with torch.no_grad():
        lin.weight.copy_(_tensor(node.weight))
        if b is not None:
            lin.bias.copy_(_tensor(node.bias))
    return [*flatten, PerStep(lin)]


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
    sc = _scale_view(name, _arr(name, node, "scale"), shape)
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
        if bool(meta.get("reset_delay", False)):
            kw["reset_delay"] = True
    if name in ctx.delayed:
        kw["reset_delay"] = True
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
    Spike for spike this is snntorch's Synaptic with reset_mechanism="zero", reset_delay=False
    (with ``reset="snntorch"``: reset_delay=True, the LIF gets one refractory step)."""
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
    if node is None:
        raise NIRConversionError(
            name,
            None,
            "is None, not a NIR node: the exporter wrote nothing for this module (norse 1.1's "
            "to_nir does so for torch's nn.Flatten: put a nir.Flatten node in its place, or drop "
            "the node, since an Affine after a conv reads its input flattened)",
        )
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


def _build(
    graph: nir.NIRGraph, order: list[str], in_shape: tuple[int, ...], ctx: _Ctx
) -> tuple[Modules, tuple[int, ...]]:
    """The modules of the chain ``order`` (Input .. Output) on per-sample input ``in_shape``, and
    the shape they produce."""
    shape, modules = in_shape, []
    flat_in: dict[int, tuple[int, ...]] = {}  # id of each Flatten module -> its input shape
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
        for m in mods:
            if isinstance(m, PerStep) and isinstance(m.module, nn.Flatten):
                flat_in[id(m)] = shape
        if mods:
            shape = _shape_after(mods, shape, node_name)
        modules += mods
    return _flatten_after_neurons(modules, flat_in), shape


def _flatten_after_neurons(modules: Modules, flat_in: dict[int, tuple[int, ...]]) -> Modules:
    """Move each Flatten that stands in front of a neuron layer (Conv -> Flatten -> [Scale] [LI]
    [Scale] LIF: a flat neuron layer after a conv, as snnTorch and others write it) after that
    neuron layer. Neurons and gains are elementwise, so flatten(LIF(x)) = LIF(flatten(x)) spike
    for spike; a per-neuron Scale s of the flat shape becomes its C-order reshape to the Flatten's
    input shape (``flat_in``), s'[c, h, w] = s[(c H + h) W + w], exact. The neuron layer then has
    the conv's (C, *spatial) shape, which a convolution stage needs
    (:mod:`neurodeploy.quant.stages`)."""
    out = list(modules)
    i = 0
    while i < len(out):
        if id(out[i]) not in flat_in:
            i += 1
            continue
        j, last_lif = i + 1, -1
        while j < len(out) and _elementwise(out[j]):
            if isinstance(out[j], LIF):
                last_lif = j
            j += 1
        if last_lif < 0:
            i += 1
            continue
        pre = flat_in[id(out[i])]
        moved = [_unflat_scale(m, pre) for m in out[i + 1 : last_lif + 1]]
        out[i : last_lif + 1] = [*moved, out[i]]
        i = last_lif + 1
    return out


def _elementwise(m: nn.Module) -> bool:
    """A neuron layer or a gain: acts on each element alone (commutes with a Flatten)."""
    inner = m.module if isinstance(m, PerStep) else m
    return isinstance(inner, (LIF, LI, Scale))


def _unflat_scale(m: nn.Module, shape: tuple[int, ...]) -> nn.Module:
    """A Scale with one gain per flat element, reshaped (C-order) to ``shape``; others as is."""
    inner = m.module if isinstance(m, PerStep) else m
    if isinstance(inner, Scale) and inner.scale.numel() > 1:
        return PerStep(Scale(inner.scale.detach().reshape(shape).clone()))
    return m


def _check_output(node: nir.NIRNode, name: str, shape: tuple[int, ...], *, batch: bool) -> None:
    """The Output node's declared shape (if any) must be what the chain produces; with ``batch``
    (the Input's leading axis of 1 was a batch axis) a leading 1 on the Output is dropped too."""
    out_type = node.output_type.get("output") if isinstance(node.output_type, dict) else None
    if out_type is None or np.asarray(out_type).size == 0:
        return
    declared = tuple(int(v) for v in np.asarray(out_type).ravel())
    if batch and declared[:1] == (1,):
        declared = declared[1:]
    if declared != shape:
        raise NIRConversionError(
            name,
            "output_type",
            f"declares {tuple(np.asarray(out_type).ravel())} but the graph produces {shape}",
        )


# ---------------------------------------------------------------------------------------------
# General graphs: nested subgraphs, fan-out, fan-in, recurrent synapses
# ---------------------------------------------------------------------------------------------

NEURON_NODES = (nir.LIF, nir.IF, nir.CubaLIF, nir.LI)  # the node types a recurrent cycle enters
RECURRENT_SYNAPSES = (nir.Affine, nir.Linear, nir.Scale)  # what may carry spikes back to a neuron


def flatten_graph(graph: nir.NIRGraph) -> nir.NIRGraph:
    """``graph`` with every nested ``NIRGraph`` node inlined (recursively): node ``x`` of
    subgraph ``sub`` becomes ``sub.x``; an edge to ``sub`` enters its single Input node, an edge
    from ``sub`` leaves its single Output node (edges may also name ``sub.x`` directly, as
    snnTorch writes them); the inner Input/Output nodes are then bypassed (each predecessor is
    joined to each successor). A flat graph comes back with the same nodes and edges. A subgraph
    without exactly one Input and one Output is an error naming it."""
    if not any(isinstance(n, nir.NIRGraph) for n in graph.nodes.values()):
        return graph
    nodes, edges, ports = _inline(graph, "")
    for p in ports:
        into = [a for a, b in edges if b == p]
        out = [b for a, b in edges if a == p]
        edges = [(a, b) for a, b in edges if p not in (a, b)]
        edges += [(a, b) for a in into for b in out]
        del nodes[p]
    edges = list(dict.fromkeys(edges))
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=graph.metadata, type_check=False)


def _inline(
    graph: nir.NIRGraph, prefix: str
) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]], list[str]]:
    """(nodes, edges, inner port names) of ``graph`` with its subgraphs inlined under ``prefix``."""
    nodes: dict[str, nir.NIRNode] = {}
    edges: list[tuple[str, str]] = []
    ports: list[str] = []
    io: dict[str, tuple[str, str]] = {}  # subgraph -> (its Input, its Output), flattened names
    for name, node in graph.nodes.items():
        full = prefix + name
        if not isinstance(node, nir.NIRGraph):
            nodes[full] = node
            continue
        ins = [n for n, v in node.nodes.items() if isinstance(v, nir.Input)]
        outs = [n for n, v in node.nodes.items() if isinstance(v, nir.Output)]
        if len(ins) != 1 or len(outs) != 1:
            raise NIRConversionError(
                full,
                None,
                f"nested subgraph needs exactly one Input and one Output node, found inputs {ins} "
                f"and outputs {outs}",
            )
        sub_nodes, sub_edges, sub_ports = _inline(node, full + ".")
        nodes.update(sub_nodes)
        edges += sub_edges
        ports += [*sub_ports, f"{full}.{ins[0]}", f"{full}.{outs[0]}"]
        io[full] = (f"{full}.{ins[0]}", f"{full}.{outs[0]}")
    for a0, b0 in graph.edges:
        a, b = prefix + a0, prefix + b0
        edges.append((io[a][1] if a in io else a, io[b][0] if b in io else b))
    return nodes, edges, ports


def is_chain_graph(graph: nir.NIRGraph) -> bool:
    """Whether every node of the (flattened) graph has at most one incoming and one outgoing
    edge and no node reaches itself: the graphs that import as an ``nn.Sequential``."""
    n_in: dict[str, int] = {}
    n_out: dict[str, int] = {}
    for a, b in graph.edges:
        n_out[a] = n_out.get(a, 0) + 1
        n_in[b] = n_in.get(b, 0) + 1
    if any(v > 1 for v in (*n_in.values(), *n_out.values())):
        return False
    return not graph_cycles(graph)


def _reach(succ: dict[str, list[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for m in succ.get(todo.pop(), []):
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def graph_cycles(graph: nir.NIRGraph) -> list[list[str]]:
    """The strongly connected components with a cycle (a node that reaches itself), each as its
    node names in graph order; [] for a feed-forward graph."""
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ.setdefault(a, []).append(b)
    reach = {n: _reach(succ, n) for n in graph.nodes}
    cycles: list[list[str]] = []
    done: set[str] = set()
    for n in graph.nodes:
        if n in done or n not in reach[n]:
            continue
        comp = [m for m in graph.nodes if m in reach[n] and n in reach[m]]
        done.update(comp)
        cycles.append(comp)
    return cycles


def _recurrent_loops(graph: nir.NIRGraph) -> dict[str, list[str]]:
    """neuron node -> the synapse nodes of its recurrent loop, in order (neuron -> r1 -> .. -> rk
    -> neuron). Each cycle must pass through exactly one neuron node and otherwise through
    Affine/Linear/Scale nodes that feed nothing outside the loop; anything else is refused by
    name: a cycle through k >= 2 neuron layers runs on Loihi with one step of synaptic delay per
    hop (k steps around the loop), while snnTorch, Norse and nirtorch close it within one step
    per loop, so the two would compute different networks."""
    loops: dict[str, list[str]] = {}
    succ: dict[str, list[str]] = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
    for comp in graph_cycles(graph):
        neurons = [n for n in comp if isinstance(graph.nodes[n], NEURON_NODES)]
        if len(neurons) != 1:
            raise NIRConversionError(
                (neurons or comp)[0],
                None,
                f"is on a cycle through {len(neurons)} neuron nodes {neurons} (cycle {comp}): "
                "only a recurrent synapse back into one neuron node is supported; Loihi delays "
                "each synaptic hop by one step, so a loop through several neuron layers would "
                "take several steps there but one in the producers' semantics"
                if neurons
                else f"is on a recurrent cycle {comp} without a neuron node (an algebraic loop)",
            )
        (neuron,) = neurons
        path, cur = [], neuron
        inside = set(comp)
        while True:
            nxt = [m for m in succ[cur] if m in inside]
            if len(nxt) != 1:
                raise NIRConversionError(
                    cur, None, f"branches inside the recurrent loop {comp} (one path is supported)"
                )
            cur = nxt[0]
            if cur == neuron:
                break
            node = graph.nodes[cur]
            if not isinstance(node, RECURRENT_SYNAPSES):
                raise NIRConversionError(
                    cur,
                    None,
                    f"{type(node).__name__} on the recurrent loop of {neuron!r}: only "
                    f"{[c.__name__ for c in RECURRENT_SYNAPSES]} may carry spikes back",
                )
            if len(succ[cur]) != 1:
                raise NIRConversionError(
                    cur, None, f"recurrent synapse of {neuron!r} also feeds {succ[cur]}"
                )
            path.append(cur)
        if len(path) + 1 != len(comp):
            raise NIRConversionError(
                neuron, None, f"recurrent cycle {comp} is not a single loop through it"
            )
        loops[neuron] = path
    return loops


def _unwrap(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, PerStep) else m


def _one(mods: Modules) -> nn.Module:
    return nn.Identity() if not mods else mods[0] if len(mods) == 1 else nn.Sequential(*mods)


def _convert(name: str, node: nir.NIRNode, shape: tuple[int, ...], ctx: _Ctx) -> Modules:
    convert = _importer(name, node)
    try:
        return convert(name, node, shape, ctx)
    except NIRConversionError:
        raise
    except (AttributeError, TypeError, ValueError, IndexError, KeyError, RuntimeError) as e:
        field = e.name if isinstance(e, AttributeError) else None
        raise NIRConversionError(
            name, field, f"malformed {type(node).__name__} node: {type(e).__name__}: {e}"
        ) from e


def _node_names(graph: nir.NIRGraph) -> dict[str, str]:
    """NIR node name -> GraphBody node name ('.' of nested names becomes '_', kept unique)."""
    out: dict[str, str] = {}
    used = {INPUT, "output"}
    for n in graph.nodes:
        base = re.sub(r"[^0-9A-Za-z_]", "_", n) or "node"
        cand, i = base, 1
        while cand in used:
            cand, i = f"{base}_{i}", i + 1
        used.add(cand)
        out[n] = cand
    return out


def _build_graph(
    graph: nir.NIRGraph, in_shape: tuple[int, ...], ctx: _Ctx, *, batch: bool
) -> tuple[GraphBody, tuple[int, ...]]:
    """The GraphBody of a flattened graph with fan-out, fan-in and recurrent loops (see
    :func:`nir_to_model`), and its output shape per sample."""
    nodes = graph.nodes
    for src, dst in graph.edges:
        for end in (src, dst):
            if end not in nodes:
                raise NIRConversionError(
                    end, None, f"edge ({src!r} -> {dst!r}) names a node that does not exist"
                )
    inputs = [n for n, v in nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in nodes.items() if isinstance(v, nir.Output)]
    loops = _recurrent_loops(graph)
    in_loop = {r for path in loops.values() for r in path}
    pred: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in graph.edges:
        if a in in_loop or b in in_loop or (a == b and a in loops):
            continue  # the loops' edges live inside Recurrent
        pred[b].append(a)
    names = _node_names(graph)
    names[inputs[0]] = INPUT
    order: list[str] = []  # topological, insertion order among the ready nodes
    placed = {inputs[0]}
    todo = [n for n in nodes if n not in in_loop and n != inputs[0]]
    while todo:
        ready = [n for n in todo if all(p in placed for p in pred[n])]
        if not ready:
            raise NIRConversionError(todo[0], None, "is not reachable from the Input node")
        for n in ready:
            placed.add(n)
            order.append(n)
        todo = [n for n in todo if n not in placed]
    shapes: dict[str, tuple[int, ...]] = {inputs[0]: in_shape}
    body_nodes: dict[str, nn.Module] = {}
    sources: dict[str, list[str]] = {}
    for n in order:
        if not pred[n]:
            raise NIRConversionError(n, None, "has no incoming edge (not reached from the Input)")
        src_shapes = {p: shapes[p] for p in pred[n]}
        shape = src_shapes[pred[n][0]]
        if any(s != shape for s in src_shapes.values()):
            raise NIRConversionError(
                n, "input_type", f"its incoming edges carry different shapes {src_shapes}"
            )
        if n == outputs[0]:
            shapes[n] = shape
            continue
        mods = _convert(n, nodes[n], shape, ctx)
        out_shape = _shape_after(mods, shape, n) if mods else shape
        if n in loops:
            mods = _recurrent(
                n, mods, path=loops[n], shape=shape, out_shape=out_shape, graph=graph, ctx=ctx
            )
        shapes[n] = out_shape
        body_nodes[names[n]] = _one(mods)
        sources[names[n]] = [names[p] for p in pred[n]]
    out_src = [names[p] for p in pred[outputs[0]]]
    shape = shapes[outputs[0]]
    _check_output(nodes[outputs[0]], outputs[0], shape, batch=batch)
    last = body_nodes.get(out_src[0]) if len(out_src) == 1 else None
    if len(out_src) > 1 or out_src == [INPUT]:
        body_nodes["output"], sources["output"] = nn.Identity(), out_src
        out_src = ["output"]
    spiking_last = isinstance(last, (LIF, Recurrent)) or (
        isinstance(last, nn.Sequential) and isinstance(last[-1], LIF)
    )
    if len(shape) > 1 and spiking_last:  # a conv-shaped spiking output: read flat (C order)
        body_nodes["output_flat"] = PerStep(nn.Flatten())
        sources["output_flat"] = out_src
        out_src = ["output_flat"]
    return GraphBody(body_nodes, sources, out_src[0]), shape


def _recurrent(
    name: str,
    mods: Modules,
    *,
    path: list[str],
    shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    graph: nir.NIRGraph,
    ctx: _Ctx,
) -> Modules:
    """Neuron node ``name`` (modules ``mods``) closed by the loop ``path`` of synapse nodes:
    ``Recurrent(neuron, rec)``, s(t) = neuron_step(drive(t) + rec(s(t-1))), s(-1) = 0."""
    neuron = [_unwrap(m) for m in mods]
    for m in neuron:
        if not isinstance(m, (LIF, LI, Scale)):
            raise NIRConversionError(
                name, None, f"a recurrent neuron node imports as {type(m).__name__}"
            )
    if out_shape != shape:
        raise NIRConversionError(
            name, None, f"recurrent neuron changes shape {shape} -> {out_shape}"
        )
    rec: Modules = []
    cur = out_shape
    for r in path:
        r_mods = _convert(r, graph.nodes[r], cur, ctx)
        cur = _shape_after(r_mods, cur, r) if r_mods else cur
        rec += [_unwrap(m) for m in r_mods if not _is_flatten(m)]
    if cur != shape:
        raise NIRConversionError(
            path[-1] if path else name,
            None,
            f"the recurrent loop of {name!r} returns shape {cur}, the neuron takes {shape}",
        )
    return [Recurrent(nn.Sequential(*neuron), _one(rec))]


def _is_flatten(m: nn.Module) -> bool:
    return isinstance(_unwrap(m), nn.Flatten)


def nir_to_model(
    graph: nir.NIRGraph | str | os.PathLike[str],
    dt: float | None = None,
    name: str | None = None,
    ignore_metadata: bool = False,
    *,
    reset: str = "nir",
) -> SpikingNet:
    """Build our torch model from a NIR graph (or a .nir file).

    ``reset``: "nir" (default) resets v to 0 at the spiking step and integrates the next input
    (NIR's LIF). "snntorch" reads the graph as snnTorch trained it (reset_mechanism="zero",
    reset_delay=True, its default): every CubaLIF (Synaptic, RSynaptic) and every neuron in a
    recurrent loop (RLeaky, RSynaptic) gets ``LIF(reset_delay=True)``, one refractory step after
    each spike (:mod:`neurodeploy.neuron.lif`); a feed-forward LIF/IF (Leaky) keeps the plain
    reset, which is what Leaky's delayed reset computes. Our own export records the option per
    node (metadata ``reset_delay``), so round trips need no option.

    ``dt`` (seconds per timestep) overrides the graph's ``metadata["dt"]``; a graph without one
    is read with 1e-4 and a :class:`~neurodeploy.converters.nir_common.NIRDtWarning` naming that
    assumption (see :func:`graph_dt`). A time constant with tau/dt <= 1 is a
    :class:`NIRConversionError` naming node, tau, dt and the dt that fit.

    ``ignore_metadata=True`` reads only the NIR fields, as a tool that does not know our
    metadata would: smoothed neurons become plain LIFs (used to measure what that costs).
    """
    if not isinstance(graph, nir.NIRGraph):
        graph = read_nir(graph)
    graph = flatten_graph(graph)
    meta = graph.metadata if isinstance(graph.metadata, dict) else {}
    if reset not in RESET_READINGS:
        raise ValueError(f"reset must be one of {RESET_READINGS}, got {reset!r}")
    ctx = _Ctx(resolve_dt(meta, dt).dt, ignore_metadata, _delayed_nodes(graph, reset))
    if not is_chain_graph(graph):
        return _graph_model(graph, ctx, name or str(meta.get("model", "nir")))
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
    try:
        modules, shape = _build(graph, order, in_shape, ctx)
        _check_output(graph.nodes[order[-1]], order[-1], shape, batch=False)
    except NIRConversionError as first:
        if len(in_shape) < 2 or in_shape[0] != 1:
            raise
        try:  # nirtorch-based exporters (norse) record the sample's batch axis of 1: drop it
            modules, shape = _build(graph, order, in_shape[1:], ctx)
            _check_output(graph.nodes[order[-1]], order[-1], shape, batch=True)
        except NIRConversionError as second:
            rank = {n: i for i, n in enumerate(order)}  # report the reading that got further
            if rank.get(second.node, -1) > rank.get(first.node, -1):
                raise second from None
            raise first from None
        in_shape = in_shape[1:]
    if not modules:
        raise NIRConversionError("graph", None, "has no computational nodes")
    if len(shape) > 1 and isinstance(modules[-1], LIF):  # a conv-shaped spiking last layer: its
        modules.append(PerStep(nn.Flatten()))  # spikes read as one vector (C order), as targets do
    n_out = int(np.prod(shape))
    model_name = name or str(meta.get("model", "nir"))
    return SpikingNet(model_name, nn.Sequential(*modules), in_shape, n_out).eval()


def _delayed_nodes(graph: nir.NIRGraph, reset: str) -> frozenset[str]:
    """The neuron nodes that ``reset="snntorch"`` reads with the delayed reset: CubaLIF nodes and
    LIF/IF nodes closed by a recurrent loop (see :func:`nir_to_model`)."""
    if reset != "snntorch":
        return frozenset()
    cuba = {n for n, v in graph.nodes.items() if isinstance(v, nir.CubaLIF)}
    loops = set() if is_chain_graph(graph) else set(_recurrent_loops(graph))
    spiking = {n for n, v in graph.nodes.items() if isinstance(v, (nir.LIF, nir.IF))}
    return frozenset(cuba | (loops & spiking))


def graph_dt(graph: nir.NIRGraph, dt: float | None = None, *, warn: bool = False) -> DtChoice:
    """The dt :func:`nir_to_model` reads ``graph`` with, and where it comes from (``dt`` given,
    the graph's metadata, or the default)."""
    return resolve_dt(graph.metadata, dt, warn=warn)


def _in_shape(graph: nir.NIRGraph, node_name: str) -> tuple[int, ...]:
    in_node = graph.nodes[node_name]
    in_type = in_node.input_type.get("input") if isinstance(in_node.input_type, dict) else None
    if in_type is None or np.asarray(in_type).size == 0:
        raise NIRConversionError(
            node_name, "input_type", "the Input node must declare the sample shape"
        )
    in_shape = tuple(int(v) for v in np.asarray(in_type).ravel())
    if any(v < 1 for v in in_shape):
        raise NIRConversionError(node_name, "input_type", f"invalid shape {in_shape}")
    return in_shape


def _graph_model(graph: nir.NIRGraph, ctx: _Ctx, model_name: str) -> SpikingNet:
    """A SpikingNet with a GraphBody for a flattened graph that is not a chain."""
    inputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Input)]
    outputs = [n for n, v in graph.nodes.items() if isinstance(v, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRConversionError(
            "graph",
            None,
            f"expected exactly one Input and one Output node, found inputs "
            f"{inputs} and outputs {outputs}",
        )
    in_shape = _in_shape(graph, inputs[0])
    try:
        body, shape = _build_graph(graph, in_shape, ctx, batch=False)
    except NIRConversionError:
        if len(in_shape) < 2 or in_shape[0] != 1:
            raise
        # nirtorch-based exporters (norse) record the sample's batch axis of 1: drop it
        body, shape = _build_graph(graph, in_shape[1:], ctx, batch=True)
        in_shape = in_shape[1:]
    return SpikingNet(model_name, body, in_shape, int(np.prod(shape))).eval()
