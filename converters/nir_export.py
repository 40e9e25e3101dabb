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
=========================  ===============================================================

Anything else is refused with an error naming the layer. Conventions: converters/nir_common.py.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.layers import LI, LIF, GlobalPool, Scale
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


EXPORTERS: dict[type, Callable[..., Exported]] = {
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


def model_to_nir(
    model: SpikingNet, dt: float = DEFAULT_DT, extra_metadata: dict | None = None
) -> nir.NIRGraph:
    """The NIR graph of ``model`` (BatchNorm folded, eval mode), a chain input -> ... -> output."""
    from neurodeploy import __version__

    dt = check_dt(dt)
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
    meta = {
        "producer": PRODUCER,
        "producer_version": __version__,
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
    nir.write(str(path), graph)
    return graph
