"""A spiking model as a chain of stages: one synaptic map (dense or convolution, with any pooling,
flattening and scaling in front of it folded in exactly) followed by one neuron layer, or by
nothing for the final readout. This is the form neuromorphic hardware runs: synapses between
neuron layers, no pooling units of their own.

Folding rules (exact algebra, float64):
- AvgPool(k, stride k) followed by Conv(K, stride 1, padding p) is one Conv with kernel k*K,
  stride k, padding k*p and weights W[a, b] / k^2 repeated over each k x k block.
- Any chain of Flatten / pooling / Scale ending in a Linear becomes one dense matrix, found by
  pushing the identity basis through the chain.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.layers import LI, LIF, PerStep, Scale
from neurodeploy.nn.layers import GlobalPool
from neurodeploy.nn.net import SpikingNet

_POOLS = (nn.AvgPool1d, nn.AvgPool2d)
PASS_THROUGH = (nn.Flatten, nn.AvgPool1d, nn.AvgPool2d, GlobalPool, Scale, nn.Identity)


@dataclass
class Stage:
    """One synaptic map plus (optionally) one neuron layer."""

    name: str                     # the neuron's layer name, or "readout"
    kind: str                     # "dense", "conv1d" or "conv2d"
    weight: np.ndarray            # float64; dense (out, in); conv torch layout (C_out, C_in/groups, *k)
    bias: np.ndarray              # float64 (out,) or (C_out,)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    groups: int = 1
    neuron: LIF | None = None     # None: readout (no neuron)
    pool: tuple[int, ...] = ()    # set when an AvgPool(k) was folded into this conv (kernel = k-fold blocks)
    sources: list[str] = field(default_factory=list)   # the float layers folded into this stage

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The synaptic map on float64 input (N, *in_shape) -> (N, *out_shape)."""
        w = torch.from_numpy(self.weight)
        b = torch.from_numpy(self.bias)
        if self.kind == "dense":
            return x.flatten(1) @ w.T + b
        conv = torch.nn.functional.conv2d if self.kind == "conv2d" else torch.nn.functional.conv1d
        return conv(x, w, b, stride=self.stride, padding=self.padding, groups=self.groups)


def _shape_of(mods: list[nn.Module], shape: tuple[int, ...]) -> tuple[int, ...]:
    with torch.no_grad():
        return tuple(nn.Sequential(*mods)(torch.zeros(1, *shape, dtype=torch.float64)).shape[1:])


def dense_from_chain(mods: list[nn.Module], in_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The affine map of a module chain as (matrix, bias), via the identity basis (float64)."""
    n_in = int(np.prod(in_shape))
    seq = nn.Sequential(*[_double(m) for m in mods])
    with torch.no_grad():
        zero = seq(torch.zeros(1, *in_shape, dtype=torch.float64)).flatten(1)
        basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
        cols = seq(basis).flatten(1) - zero
    return cols.T.numpy().copy(), zero[0].numpy().copy()


def _double(m: nn.Module) -> nn.Module:
    import copy
    return copy.deepcopy(m).double()


def compose_pool_conv(pool: nn.Module, conv: nn.Module) -> tuple[np.ndarray, tuple[int, ...], tuple[int, ...]] | None:
    """Weights, stride and padding of AvgPool(k, stride k) followed by a stride-1 conv, or None."""
    dims = 2 if isinstance(conv, nn.Conv2d) else 1
    k = pool.kernel_size if isinstance(pool.kernel_size, tuple) else (pool.kernel_size,) * dims
    s = pool.stride if isinstance(pool.stride, tuple) else (pool.stride,) * dims
    p = pool.padding if isinstance(pool.padding, tuple) else (pool.padding,) * dims
    if tuple(k) != tuple(s) or any(p) or getattr(pool, "ceil_mode", False) or getattr(pool, "divisor_override", None):
        return None
    if any(v != 1 for v in conv.stride) or any(v != 1 for v in conv.dilation) or conv.groups != 1 \
            or isinstance(conv.padding, str):
        return None
    w = conv.weight.detach().double().numpy()
    for axis, kk in enumerate(k):
        w = np.repeat(w, kk, axis=2 + axis)
    w = w / float(np.prod(k))
    return w, tuple(k), tuple(kk * pp for kk, pp in zip(k, conv.padding))


def model_stages(model: SpikingNet) -> list[Stage]:
    """Split a model into stages (BatchNorm folded first). Unsupported layers raise ValueError naming them."""
    folded = fold_batchnorm(model)
    stages: list[Stage] = []
    pending: list[tuple[str, nn.Module]] = []
    shape = tuple(model.input_shape)
    stage_in = shape
    layers = list(folded.body.named_children())
    for idx, (name, layer) in enumerate(layers):
        inner = layer.module if isinstance(layer, PerStep) else layer
        if isinstance(inner, PASS_THROUGH) or isinstance(inner, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            pending.append((f"body.{name}", inner))
            continue
        if isinstance(inner, LIF):
            stages.append(_make_stage(f"body.{name}", pending, stage_in, inner))
            stage_in = stages[-1].out_shape
            pending = []
            continue
        if isinstance(inner, LI):
            raise ValueError(f"layer body.{name}: LI (non-spiking leaky readout) has no integer mapping yet; "
                             "use a plain Linear readout")
        raise ValueError(f"layer body.{name}: {type(inner).__name__} cannot be mapped to hardware stages")
    if pending:
        stages.append(_make_stage("readout", pending, stage_in, None))
    return stages


def _make_stage(name: str, pending: list[tuple[str, nn.Module]], in_shape: tuple[int, ...],
                neuron: LIF | None) -> Stage:
    mods = [m for _, m in pending]
    srcs = [n for n, _ in pending]
    syn = [i for i, m in enumerate(mods) if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))]
    if len(syn) != 1:
        raise ValueError(f"layer {name}: expected exactly one Linear/Conv before it, found {len(syn)} "
                         f"({', '.join(srcs) or 'none'})")
    out_shape = _shape_of([_double(m) for m in mods], in_shape)
    last = mods[syn[0]]
    after = mods[syn[0] + 1:]
    before = mods[:syn[0]]
    if isinstance(last, (nn.Conv1d, nn.Conv2d)) and not after:
        kind = "conv2d" if isinstance(last, nn.Conv2d) else "conv1d"
        bias = last.bias.detach().double().numpy() if last.bias is not None else np.zeros(last.out_channels)
        if not before:
            if isinstance(last.padding, str):
                raise ValueError(f"layer {name}: string padding {last.padding!r} is not supported")
            return Stage(name, kind, last.weight.detach().double().numpy().copy(), bias.copy(), in_shape, out_shape,
                         tuple(last.stride), tuple(last.padding), last.groups, neuron, sources=srcs)
        if len(before) == 1 and isinstance(before[0], _POOLS):
            composed = compose_pool_conv(before[0], last)
            if composed is not None:
                w, stride, pad = composed
                return Stage(name, kind, w, bias.copy(), in_shape, out_shape, stride, pad, 1, neuron,
                             sources=srcs, pool=stride)
    w, b = dense_from_chain(mods, in_shape)
    return Stage(name, "dense", w, b, in_shape, out_shape, neuron=neuron, sources=srcs)
