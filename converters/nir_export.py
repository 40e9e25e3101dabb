"""torch -> NIR: any :class:`~neurodeploy.nn.zoo.SpikingNet` built from our layers.

Mapping (BatchNorm is folded into the preceding Linear/Conv first, see neurodeploy/nn/fold.py;
NIR has no batch or time axis, so shapes are per sample and per timestep):

=========================  ===============================================================
ours                       NIR
=========================  ===============================================================
PerStep(Linear)            Affine(weight, bias) (Linear(weight) when there is no bias)
PerStep(Conv1d / Conv2d)   Conv1d / Conv2d (input_shape = spatial shape, bias zeros if none)
PerStep(Flatten)           Flatten (start_dim - 1: NIR has no batch dimension)
PerStep(AvgPool2d)         AvgPool2d (SumPool2d when divisor_override=1)
PerStep(Scale), LI         Scale, LI (readout; tau = dt*tau_steps, r = tau/dt)
PerStep(AvgPool1d)         Conv1d, depthwise, weights 1/k (NIR has no 1D pooling)
PerStep(GlobalPool mean)   Conv1d, depthwise, kernel = #points, weights 1/N; then Flatten
LIF                        LIF (tau = dt*tau_steps, r = tau/dt, v_leak = 0, v_threshold =
                           theta, v_reset = 0; arrays of the neuron shape) + metadata
PerStep(AdaptiveAvgPool2d)  AvgPool2d, kernel = stride = input / output size (must divide)
Recurrent(neuron, rec)     the neuron's node(s) (LIF; LI, Scale, LIF), an Affine/Linear
                           ``<name>_rec`` and the cycle last neuron node -> rec -> first
GraphBody sources          one edge per source into the node (fan-in: NIR sums the inputs);
                           a node read by several nodes has several out-edges (fan-out)
=========================  ===============================================================

Graph models (a :class:`~neurodeploy.nn.graph.GraphBody`, or a chain holding our residual or
recurrent blocks, lowered by :func:`~neurodeploy.nn.graph.to_graph`) are written as graphs with
those edges; an ``nn.Identity`` node that only sums is dissolved (its readers get its sources'
edges). Chains keep the chain export (nodes ``<index>_<type>``); graph nodes keep the graph's
node names.

Anything else is refused with an error naming the layer. Conventions: converters/nir_common.py.
"""

from __future__ import annotations

import io
import itertools
import math
import os
from collections.abc import Callable
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from neurodeploy.checks import describe_nonfinite
from neurodeploy.files import atomic_write
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.graph import INPUT, GraphBody, Recurrent, fold_graph, is_chain, to_graph
from neurodeploy.nn.layers import LI, LIF, GlobalPool, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import body_layers

from .nir_common import (
    DEFAULT_DT,
    GRAPH_FORMAT_VERSION,
    METADATA_KEY,
    PRODUCER,
    NIRConversionError,
    check_dt,
)

Shape = tuple[int, ...]
Exported = list[tuple[str, nir.NIRNode]]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().to(torch.float32).numpy().copy()


def _linear(m: nn.Linear, name: str, _in: Shape, _out: Shape, _dt: float) -> Exported:
    if m.bias is None:
        return [(name, nir.Linear(weight=_np(m.weight)))]
    return [(name, nir.Affine(weight=_np(m.weight), bias=_np(m.bias)))]


def _conv_bias(m: nn.Conv1d | nn.Conv2d) -> np.ndarray:
    return _np(m.bias) if m.bias is not None else np.zeros(m.out_channels, dtype=np.float32)


def _conv1d(m: nn.Conv1d, name: str, in_shape: Shape, _out: Shape, _dt: float) -> Exported:
    if m.padding_mode != "zeros":
        raise NIRConversionError(
            name, "padding_mode", f"{m.padding_mode!r} padding has no NIR equivalent"
        )
    pad = m.padding if isinstance(m.padding, str) else m.padding[0]
    return [
        (
            name,
            nir.Conv1d(
                input_shape=in_shape[1],
                weight=_np(m.weight),
                stride=m.stride[0],
                padding=pad,
                dilation=m.dilation[0],
                groups=m.groups,
                bias=_conv_bias(m),
            ),
        )
    ]


def _conv2d(m: nn.Conv2d, name: str, in_shape: Shape, _out: Shape, _dt: float) -> Exported:
    if m.padding_mode != "zeros":
        raise NIRConversionError(
            name, "padding_mode", f"{m.padding_mode!r} padding has no NIR equivalent"
        )
    pad = m.padding if isinstance(m.padding, str) else tuple(m.padding)
    return [
        (
            name,
            nir.Conv2d(
                input_shape=tuple(in_shape[1:]),
                weight=_np(m.weight),
                stride=tuple(m.stride),
                padding=pad,
                dilation=tuple(m.dilation),
                groups=m.groups,
                bias=_conv_bias(m),
            ),
        )
    ]


def _flatten(m: nn.Flatten, name: str, in_shape: Shape, _out: Shape, _dt: float) -> Exported:
    if m.start_dim < 1:
        raise NIRConversionError(
            name, "start_dim", "a Flatten over the batch dimension has no NIR equivalent"
        )
    end = m.end_dim - 1 if m.end_dim > 0 else m.end_dim
    return [
        (
            name,
            nir.Flatten(
                input_type={"input": np.array(in_shape)}, start_dim=m.start_dim - 1, end_dim=end
            ),
        )
    ]


def _first(v: int | tuple[int, ...]) -> int:
    """A 1-D pooling size (torch stores a 1-tuple, its type also allows an int) as an int."""
    return v if isinstance(v, int) else v[0]


def _pair(v: Any) -> np.ndarray:
    return np.array(v if isinstance(v, (tuple, list)) else (v, v))


def _avgpool2d(m: nn.AvgPool2d, name: str, _in: Shape, _out: Shape, _dt: float) -> Exported:
    if m.ceil_mode:
        raise NIRConversionError(name, "ceil_mode", "ceil_mode=True has no NIR equivalent")
    if any(_pair(m.padding)) and not m.count_include_pad:
        raise NIRConversionError(
            name, "count_include_pad", "padded pooling must count the padding in NIR"
        )
    stride = m.stride if m.stride is not None else m.kernel_size
    args = dict(kernel_size=_pair(m.kernel_size), stride=_pair(stride), padding=_pair(m.padding))
    if m.divisor_override == 1:  # a sum pool (how we import NIR's SumPool2d)
        return [(name, nir.SumPool2d(**args))]
    if m.divisor_override is not None:
        raise NIRConversionError(
            name, "divisor_override", f"{m.divisor_override} has no NIR equivalent"
        )
    return [(name, nir.AvgPool2d(**args))]


def _depthwise_mean(
    name: str, channels: int, *, length: int, kernel: int, stride: int
) -> nir.Conv1d:
    """Per-channel mean over ``kernel`` samples as a Conv1d. Written dense (weight 1/k on the
    channel diagonal, 0 elsewhere, groups=1) because nir 1.0.8's type inference ignores
    ``groups``; with spike inputs the zero terms change nothing, so the result is exact."""
    w = np.zeros((channels, channels, kernel), dtype=np.float32)
    w[np.arange(channels), np.arange(channels), :] = 1.0 / kernel
    return nir.Conv1d(
        input_shape=length,
        weight=w,
        stride=stride,
        padding=0,
        dilation=1,
        groups=1,
        bias=np.zeros(channels, dtype=np.float32),
        metadata={METADATA_KEY: {"from": name}},
    )


def _avgpool1d(m: nn.AvgPool1d, name: str, in_shape: Shape, _out: Shape, _dt: float) -> Exported:
    k, s, p = _first(m.kernel_size), _first(m.stride), _first(m.padding)
    if p or m.ceil_mode:
        raise NIRConversionError(
            name, "padding", "only unpadded AvgPool1d (ceil_mode=False) is exported"
        )
    node = _depthwise_mean("AvgPool1d", in_shape[0], length=in_shape[1], kernel=k, stride=s)
    return [(name, node)]


def _global_pool(m: GlobalPool, name: str, in_shape: Shape, _out: Shape, _dt: float) -> Exported:
    if m.mode != "mean":
        raise NIRConversionError(
            name, "mode", "a max over points has no NIR primitive; train with pool='mean'"
        )
    c, n = in_shape
    flat = nir.Flatten(
        input_type={"input": np.array((c, 1))},
        start_dim=0,
        end_dim=-1,
        metadata={METADATA_KEY: {"from": "GlobalPool(mean)"}},
    )
    mean = _depthwise_mean("GlobalPool(mean)", c, length=n, kernel=n, stride=n)
    return [(name, mean), (f"{name}_flatten", flat)]


def lif_node(layer: LIF, shape: Shape, dt: float) -> nir.LIF:
    """The NIR LIF for our layer (see converters/nir_common.py for the formulas)."""
    p = layer.params
    tau = dt * p.tau
    full = lambda v: np.full(shape, v, dtype=np.float32)  # noqa: E731
    meta = {
        "mps_alpha": layer.alpha_value(),
        "mps_mode": p.mps_mode,
        "reset": p.reset,
        "beta": p.beta,
        "tau_steps": p.tau,
        "detach_reset": p.detach_reset,
        "surrogate": p.surrogate.kind,
        "surrogate_width": p.surrogate.w,
    }
    if layer.a is not None:  # the logit itself, so that a round trip restores alpha bit for bit
        meta["mps_logit"] = float(layer.a.detach())
    if p.reset_delay:  # snnTorch's delayed reset (one refractory step); read back by nir_import
        meta["reset_delay"] = True
    return nir.LIF(
        tau=full(tau),
        r=full(tau / dt),
        v_leak=full(0.0),
        v_threshold=full(p.theta),
        v_reset=full(0.0),
        metadata={METADATA_KEY: meta},
    )


def _lif(m: LIF, name: str, in_shape: Shape, _out: Shape, dt: float) -> Exported:
    if math.isinf(m.params.tau):
        full = lambda v: np.full(in_shape, v, dtype=np.float32)  # noqa: E731
        node = nir.IF(r=full(1.0 / dt), v_threshold=full(m.params.theta), v_reset=full(0.0))
        node.metadata = lif_node(m, in_shape, dt).metadata
        return [(name, node)]
    return [(name, lif_node(m, in_shape, dt))]


def _li(m: LI, name: str, in_shape: Shape, _out: Shape, dt: float) -> Exported:
    """Leaky integrator: tau = dt*tau_steps, r = tau/dt (unit gain), v_leak = 0."""
    full = lambda v: np.full(in_shape, v, dtype=np.float32)  # noqa: E731
    tau = dt * m.tau
    if math.isinf(tau):
        raise NIRConversionError(
            name, "tau", "a non-leaky integrator (tau = inf) has no NIR LI form"
        )
    return [(name, nir.LI(tau=full(tau), r=full(tau / dt), v_leak=full(0.0)))]


def _scale(m: Scale, name: str, in_shape: Shape, _out: Shape, _dt: float) -> Exported:
    return [
        (name, nir.Scale(scale=np.broadcast_to(_np(m.scale), in_shape).astype(np.float32).copy()))
    ]


def _adaptive_avgpool2d(
    m: nn.AdaptiveAvgPool2d, name: str, in_shape: Shape, out_shape: Shape, _dt: float
) -> Exported:
    """An adaptive average pool whose output size divides the input (global pooling: output 1)
    is AvgPool2d with kernel = stride = input / output."""
    (h, w), (oh, ow) = in_shape[1:], out_shape[1:]
    if h % oh or w % ow:
        raise NIRConversionError(
            name, "output_size", f"output {(oh, ow)} does not divide input {(h, w)}: no NIR form"
        )
    k = np.array((h // oh, w // ow))
    return [(name, nir.AvgPool2d(kernel_size=k, stride=k, padding=np.array((0, 0))))]


def _cuba_lif(seq: list[nn.Module], name: str, shape: Shape, dt: float) -> Exported | None:
    """A neuron node ``[LI(tau_syn), Scale(g)..., LIF]`` as one NIR CubaLIF (None for any other):
    tau_syn dI/dt = -I + w_in x, tau_mem dv/dt = -v + r I with tau_syn = dt*LI.tau,
    tau_mem = dt*LIF.tau, w_in = tau_syn/dt (unit gain into the current) and r = tau_mem/dt * prod g
    (the gains, linear, commute with the LI): the importer's ``_cuba_lif`` reads back
    [LI, Scale(prod g), LIF] (no Scale where prod g = 1). A graph cannot write LI -> LIF as two
    nodes in a recurrent loop (that is a cycle through two neuron nodes)."""
    if len(seq) < 2 or not isinstance(seq[0], LI) or not isinstance(seq[-1], LIF):
        return None
    if not all(isinstance(m, Scale) for m in seq[1:-1]):
        return None
    li, lif = seq[0], seq[-1]
    assert isinstance(li, LI) and isinstance(lif, LIF)
    gain = np.ones(shape, dtype=np.float64)
    for g in seq[1:-1]:
        assert isinstance(g, Scale)
        gain = gain * np.broadcast_to(_np(g.scale), shape)
    if math.isinf(li.tau) or math.isinf(lif.params.tau):
        raise NIRConversionError(name, "tau", "a non-leaky current or membrane has no CubaLIF form")
    base = lif_node(lif, shape, dt)
    full = lambda v: np.full(shape, v, dtype=np.float32)  # noqa: E731
    node = nir.CubaLIF(
        tau_syn=full(dt * li.tau),
        tau_mem=np.asarray(base.tau),
        r=(np.asarray(base.r, dtype=np.float64) * gain).astype(np.float32),
        v_leak=full(0.0),
        v_threshold=np.asarray(base.v_threshold),
        v_reset=full(0.0),
        w_in=full(li.tau),
        metadata=base.metadata,
    )
    return [(name, node)]


EXPORTERS: dict[type, Callable[..., Exported]] = {
    nn.AdaptiveAvgPool2d: _adaptive_avgpool2d,
    nn.Linear: _linear,
    nn.Conv1d: _conv1d,
    nn.Conv2d: _conv2d,
    nn.Flatten: _flatten,
    nn.AvgPool2d: _avgpool2d,
    nn.AvgPool1d: _avgpool1d,
    GlobalPool: _global_pool,
    LIF: _lif,
    LI: _li,
    Scale: _scale,
}


def _exporter(module: nn.Module, name: str) -> Callable[..., Exported]:
    for cls in type(module).__mro__:  # registry keyed by type, walking the MRO
        if cls in EXPORTERS:
            return EXPORTERS[cls]
    raise NIRConversionError(
        name,
        None,
        f"{type(module).__name__} has no NIR export "
        f"(supported: {sorted(c.__name__ for c in EXPORTERS)})",
    )


def _graph_nodes(
    model: SpikingNet, dt: float
) -> tuple[dict[str, nir.NIRNode], list[tuple[str, str]], Shape]:
    """Nodes and edges of a graph model (BatchNorm folded): one or more NIR nodes per graph node,
    an edge from the last NIR node of every source to the first of the node (several edges into
    one node: fan-in, a sum), and per :class:`Recurrent` its neuron nodes, an Affine/Linear
    ``<name>_rec`` and the cycle ``<last neuron node> -> <name>_rec -> <first neuron node>``."""
    body = model.body if isinstance(model.body, GraphBody) else to_graph(model).body
    assert isinstance(body, GraphBody)
    body = fold_graph(body)
    shapes = body.node_shapes(model.input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(model.input_shape))}
    edges: list[tuple[str, str]] = []
    ends: dict[str, tuple[str, str]] = {INPUT: ("input", "input")}  # node: (first, last) NIR node
    for name, module in body.nodes.items():
        in_shape, out_shape = shapes[name]
        inner = module.module if isinstance(module, PerStep) else module
        if isinstance(inner, nn.Identity):
            exported: Exported = []
        elif isinstance(inner, Recurrent | nn.Sequential):  # a Sequential: a CubaLIF node
            seq = inner.neuron if isinstance(inner, Recurrent) else inner
            cuba = _cuba_lif(list(seq), name, in_shape, dt)
            exported = cuba if cuba is not None else []
            for i, m in enumerate(seq if cuba is None else []):
                if not isinstance(m, LI | Scale | LIF):
                    raise NIRConversionError(
                        name, None, f"{type(m).__name__} in a neuron node has no NIR export"
                    )
                sub = f"{name}_{i}_{type(m).__name__.lower()}" if len(seq) > 1 else name
                exported += _exporter(m, sub)(m, sub, in_shape, in_shape, dt)
        else:
            exported = _exporter(inner, name)(inner, name, in_shape, out_shape, dt)
        srcs = [ends[s][1] for s in body.sources[name]]
        if not exported:  # a pass-through sum: its readers read the sources' sum directly
            if len(srcs) > 1 and name == body.output:
                raise NIRConversionError(name, None, "a graph cannot end in a bare sum")
            ends[name] = ends[body.sources[name][0]]
            if len(srcs) > 1:
                ends[name] = ("", "")
                for reader in body.consumers(name):
                    body.sources[reader] = [
                        *(s for s in body.sources[reader] if s != name),
                        *body.sources[name],
                    ]
            continue
        nodes.update(exported)
        first, last = exported[0][0], exported[-1][0]
        edges += [(s, first) for s in srcs]
        edges += [(a[0], b[0]) for a, b in itertools.pairwise(exported)]
        if isinstance(inner, Recurrent):
            rec = inner.rec.module if isinstance(inner.rec, PerStep) else inner.rec
            if not isinstance(rec, nn.Linear):
                raise NIRConversionError(
                    f"{name}_rec", None, f"{type(rec).__name__} recurrence has no NIR export"
                )
            for sub, node in _linear(rec, f"{name}_rec", in_shape, in_shape, dt):
                nodes[sub] = node
                edges += [(last, sub), (sub, first)]
        ends[name] = (first, last)
    edges.append((ends[body.output][1], "output"))
    return nodes, edges, shapes[body.output][1]


def check_finite_model(model: nn.Module) -> None:
    """ValueError naming the first parameter or buffer of ``model`` that holds NaN or inf: a NIR
    graph of it would carry them to every tool (and our importer refuses it)."""
    for kind, named in (("parameter", model.named_parameters()), ("buffer", model.named_buffers())):
        for name, t in named:
            bad = describe_nonfinite(t.detach().cpu().numpy())
            if bad is not None:
                raise ValueError(
                    f"export: {kind} {name!r} has {bad}; the model's numbers must be finite "
                    "(was training diverging?)"
                )


def model_to_nir(
    model: SpikingNet, dt: float = DEFAULT_DT, extra_metadata: dict | None = None
) -> nir.NIRGraph:
    """The NIR graph of ``model`` (BatchNorm folded, eval mode): a chain input -> ... -> output,
    or for a graph model (a :class:`GraphBody`, or a chain holding residual / recurrent blocks,
    lowered by :func:`~neurodeploy.nn.graph.to_graph`) a graph with fan-out, fan-in and cycles
    (see :func:`_graph_nodes`)."""
    from neurodeploy import __version__

    dt = check_dt(dt)
    check_finite_model(model)
    if not is_chain(model):
        g_nodes, g_edges, out_shape = _graph_nodes(model, dt)
        g_nodes["output"] = nir.Output(output_type=np.array(out_shape))
        return _graph(
            model, g_nodes, g_edges, dt=dt, extra_metadata=extra_metadata, version=__version__
        )
    layers = body_layers(fold_batchnorm(model))  # per child: the module and its shapes
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(model.input_shape))}
    edges: list[tuple[str, str]] = []
    prev = "input"
    for i, layer in enumerate(layers):
        inner = layer.inner
        if isinstance(inner, nn.Identity):
            continue
        base = f"{i}_{type(inner).__name__.lower()}"
        for name, node in _exporter(inner, base)(inner, base, layer.in_shape, layer.out_shape, dt):
            nodes[name] = node
            edges.append((prev, name))
            prev = name
    nodes["output"] = nir.Output(output_type=np.array(layers[-1].out_shape))
    edges.append((prev, "output"))
    return _graph(model, nodes, edges, dt=dt, extra_metadata=extra_metadata, version=__version__)


def _graph(
    model: SpikingNet,
    nodes: dict[str, nir.NIRNode],
    edges: list[tuple[str, str]],
    *,
    dt: float,
    extra_metadata: dict | None,
    version: str,
) -> nir.NIRGraph:
    meta = {
        "producer": PRODUCER,
        "producer_version": version,
        "format_version": GRAPH_FORMAT_VERSION,
        "dt": dt,
        "model": model.name,
        "input_shape": list(model.input_shape),
        "num_classes": model.num_classes,
        "semantics": "per-timestep outputs; the prediction is the mean over timesteps",
        **(extra_metadata or {}),
    }
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)
    except Exception as e:  # nir's own type check: a bug on our side, say where
        raise NIRConversionError(model.name, None, f"nir rejected the exported graph: {e}") from e


def export_nir(
    model: SpikingNet,
    path: str | os.PathLike[str],
    dt: float = DEFAULT_DT,
    extra_metadata: dict | None = None,
) -> nir.NIRGraph:
    """Write ``model`` as a NIR file (HDF5, via ``nir.write``); returns the graph.
    ``extra_metadata`` (e.g. the training task and T) goes into the graph's metadata."""
    graph = model_to_nir(model, dt, extra_metadata)
    write_graph(graph, path)
    return graph


def write_graph(graph: nir.NIRGraph, path: str | os.PathLike[str]) -> None:
    """Write ``graph`` to ``path`` with ``nir.write``, atomically (whole or not at all)."""
    buf = io.BytesIO()  # h5py reads back while writing: build the file in memory first,
    nir.write(buf, graph)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))  # then write it whole or not at all (issue 17)
