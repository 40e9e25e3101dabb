"""A spiking model as a chain of stages: one synapse (:class:`~neurodeploy.quant.synapse.Synapse`:
dense or convolution, with any pooling, flattening and scaling in front of it folded in exactly)
followed by one neuron layer, or by nothing for the final readout. This is the form neuromorphic
hardware runs: synapses between neuron layers, no pooling units of their own.

The model is read through :func:`neurodeploy.nn.walk.layer_groups` (BatchNorm folded first): each
group (pass-through modules, one synapse, one LIF) becomes one stage. Folding rules (exact
algebra, float64):

- AvgPool(k, stride k) followed by a stride-1 Conv(W, padding p) is the synapse with pool k and
  kernel W / prod(k): sum-pool, then the scaled kernel (the pool stays data on the synapse;
  hardware that cannot pool runs :meth:`Synapse.pool_folded`). Not when p > 0 and the input is
  not a multiple of k (the folded kernel would read the remainder the pool drops): then, like
  any other chain, the pair is one dense matrix.
- Any chain of Flatten / pooling / Scale ending in a Linear becomes one dense matrix M, bias b: the
  chain's affine map, by definition the identity basis pushed through the chain,
  M[:, j] = chain(e_j) - chain(0) (:func:`dense_from_chain`). When the parameter-free part P in
  front of the Linear (W, b) sends every input to at most one place with a power-of-two factor
  c_j (flatten, non-overlapping average pools of 2^n inputs, power-of-two scales), the column is
  (W[:, idx_j] c_j + b) - b, the same floating-point operations without the push: the product is
  exact, so any summation order gives these bits. Otherwise P's basis response (the expensive
  part) is pushed through the Linear, again the same operations as the definition. Either way P
  is analysed once per architecture and input shape (a module-level cache keyed by the modules'
  settings), so that model_stages is cheap enough to run at every quantisation-aware training
  step (about 2 ms for the demo's VGG, 9 ms for the shapes3d PointNet; benchmarks/qat_step_time.py).
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.layers import LIF
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import POOLS, LayerGroup, layer_groups
from neurodeploy.quant.synapse import HoldsSynapse, Synapse, conv_synapse

__all__ = ["Stage", "dense_from_chain", "model_stages"]

BASIS_CHUNK = 512  # identity-basis rows pushed through a pass-through chain at once (memory bound)
PASS_MAP_CACHE = 16  # pass-through chains whose basis response is kept (distinct architectures)


@dataclass
class Stage(HoldsSynapse):
    """One float synapse plus (optionally) one neuron layer."""

    name: str  # the neuron's layer name, or "readout"
    synapse: Synapse  # float64 weights (torch layout; a pooled conv keeps its small kernel)
    bias: np.ndarray  # float64, one per output feature (dense) or channel (conv)
    neuron: LIF | None = None  # None: readout (no neuron)
    sources: list[str] = field(default_factory=list)  # the float layers folded into this stage

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """The synaptic map plus bias on float input (N, *in_shape) -> (N, *out_shape)."""
        return self.synapse.apply(
            x, bias=torch.as_tensor(self.bias, dtype=x.dtype, device=x.device)
        )


def dense_from_chain(
    mods: list[nn.Module], in_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The affine map of a module chain as (matrix, bias), via the identity basis (float64)."""
    n_in = int(np.prod(in_shape))
    seq = nn.Sequential(*[copy.deepcopy(m).double() for m in mods])
    with torch.no_grad():
        zero = seq(torch.zeros(1, *in_shape, dtype=torch.float64)).flatten(1)
        basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *in_shape)
        cols = seq(basis).flatten(1) - zero
    return cols.T.numpy().copy(), zero[0].numpy().copy()


@dataclass(frozen=True)
class _PassMap:
    """A parameter-free chain as a linear map of n_in inputs: input j lands at ``idx[j]`` with
    the power-of-two factor ``coef[j]`` (0 where dropped), or, where that does not describe it,
    ``basis`` = the chain applied to the identity basis, (n_in, n_mid)."""

    idx: torch.Tensor | None = None
    coef: torch.Tensor | None = None
    basis: torch.Tensor | None = None


_PASS_MAPS: OrderedDict[tuple[object, ...], _PassMap] = OrderedDict()


def _module_key(m: nn.Module) -> tuple[object, ...]:
    """A parameter-free module by value: its type, settings and buffers."""
    settings = tuple(
        sorted(
            (k, repr(v)) for k, v in vars(m).items() if not k.startswith("_") and k != "training"
        )
    )
    buffers = tuple(
        (tuple(b.shape), str(b.dtype), b.detach().cpu().numpy().tobytes()) for b in m.buffers()
    )
    return type(m).__qualname__, settings, buffers


def _pass_map(mods: list[nn.Module], in_shape: tuple[int, ...]) -> _PassMap:
    """The :class:`_PassMap` of ``mods`` on input ``in_shape`` (cached by value)."""
    key = (tuple(in_shape), tuple(_module_key(m) for m in mods))
    if key in _PASS_MAPS:
        _PASS_MAPS.move_to_end(key)
        return _PASS_MAPS[key]
    n_in = int(np.prod(in_shape))
    seq = nn.Sequential(*[copy.deepcopy(m).double() for m in mods])
    rows = []
    with torch.no_grad():
        for lo in range(0, n_in, BASIS_CHUNK):  # elementwise per row: chunking changes no value
            hi = min(lo + BASIS_CHUNK, n_in)
            basis = torch.zeros(hi - lo, n_in, dtype=torch.float64)
            basis[torch.arange(hi - lo), torch.arange(lo, hi)] = 1.0
            rows.append(seq(basis.reshape(hi - lo, *in_shape)).flatten(1))
    mid = torch.cat(rows)  # (n_in, n_mid)
    nnz = (mid != 0).sum(1)
    pm = _PassMap(basis=mid)
    if nnz.numel() and int(nnz.max()) <= 1:
        idx = mid.abs().argmax(1)
        coef = mid.gather(1, idx[:, None])[:, 0]
        mant = np.frexp(coef.numpy())[0]
        if bool(((mant == 0.5) | (coef.numpy() == 0)).all()):  # powers of two: exact products
            pm = _PassMap(idx=idx, coef=coef)
    _PASS_MAPS[key] = pm
    if len(_PASS_MAPS) > PASS_MAP_CACHE:
        _PASS_MAPS.popitem(last=False)
    return pm


def _dense_after_pass(group: LayerGroup, k_syn: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(matrix, bias) of a group that is pass-through modules then a Linear on flat input, by the
    closed forms of the module docstring; None for any other group."""
    syn = group.layers[k_syn]
    if (
        k_syn != len(group.layers) - 1
        or not isinstance(syn.inner, nn.Linear)
        or len(syn.in_shape) != 1
    ):
        return None
    lin = syn.inner
    assert isinstance(lin, nn.Linear)
    w = lin.weight.detach().double().cpu()
    b = (
        lin.bias.detach().double().cpu()
        if lin.bias is not None
        else torch.zeros(w.shape[0], dtype=torch.float64)
    )
    before = [layer.inner for layer in group.layers[:k_syn]]
    if not before:  # e_j through the Linear alone: W[:, j] * 1 + b, exact product
        return ((w + b[:, None]) - b[:, None]).numpy(), b.numpy().copy()
    pm = _pass_map(before, group.in_shape)
    if pm.idx is not None and pm.coef is not None:
        cols = (w[:, pm.idx] * pm.coef + b[:, None]) - b[:, None]
        return cols.numpy(), b.numpy().copy()
    assert pm.basis is not None
    with torch.no_grad():
        zero = F.linear(torch.zeros(1, pm.basis.shape[1], dtype=torch.float64), w, b)
        cols = F.linear(pm.basis, w, b) - zero
    return cols.T.numpy().copy(), zero[0].numpy().copy()


def _pool_then_conv(group: LayerGroup) -> tuple[tuple[int, ...], nn.Conv1d | nn.Conv2d] | None:
    """(k, conv) when the group is AvgPool(k, stride k, unpadded) then a stride-1, ungrouped conv
    (module docstring), else None."""
    if (
        len(group.layers) != 2
        or group.layers[1].role != "synapse"
        or isinstance(group.layers[1].inner, nn.Linear)
    ):
        return None
    pool, conv = group.layers[0].inner, group.layers[1].inner
    if not isinstance(pool, POOLS) or not isinstance(conv, (nn.Conv1d, nn.Conv2d)):
        return None
    dims = 2 if isinstance(conv, nn.Conv2d) else 1
    k, s, p = (
        tuple(v) if isinstance(v, tuple) else (v,) * dims
        for v in (pool.kernel_size, pool.stride, pool.padding)
    )
    if k != s or any(p) or pool.ceil_mode or getattr(pool, "divisor_override", None):
        return None
    if (
        any(v != 1 for v in conv.stride)
        or any(v != 1 for v in conv.dilation)
        or conv.groups != 1
        or isinstance(conv.padding, str)
    ):
        return None
    if any(conv.padding) and any(n % kk for n, kk in zip(group.in_shape[1:], k)):
        return None  # the folded kernel's padding would read the remainder the pool drops
    return k, conv


def model_stages(model: SpikingNet) -> list[Stage]:
    """Split a model into stages (BatchNorm folded first). Unsupported layers raise ValueError
    naming them."""
    stages: list[Stage] = []
    for group in layer_groups(fold_batchnorm(model)):
        for layer in group.layers:
            if layer.role == "li":
                raise ValueError(
                    f"layer {layer.name}: LI (non-spiking leaky readout) has no integer mapping "
                    "yet; use a plain Linear readout"
                )
            if layer.role == "other":
                raise ValueError(
                    f"layer {layer.name}: {type(layer.inner).__name__} cannot be mapped to "
                    "hardware stages"
                )
        stages.append(_make_stage(group))
    return stages


def _make_stage(group: LayerGroup) -> Stage:
    name, neuron = group.name, group.lif
    srcs = [layer.name for layer in group.layers]
    syn = [i for i, layer in enumerate(group.layers) if layer.role == "synapse"]
    if len(syn) != 1:
        raise ValueError(
            f"layer {name}: expected exactly one Linear/Conv before it, found {len(syn)} "
            f"({', '.join(srcs) or 'none'})"
        )
    last = group.layers[syn[0]].inner
    in_shape, out_shape = group.in_shape, group.out_shape
    if isinstance(last, (nn.Conv1d, nn.Conv2d)):
        kind = "conv2d" if isinstance(last, nn.Conv2d) else "conv1d"
        w = last.weight.detach().double().cpu().numpy()
        bias = (
            last.bias.detach().double().cpu().numpy().copy()
            if last.bias is not None
            else np.zeros(last.out_channels)
        )
        if len(group.layers) == 1:
            synapse = conv_synapse(
                last,
                w.copy(),
                in_shape=in_shape,
                out_shape=out_shape,
                name=group.layers[syn[0]].name,
            )
            return Stage(name, synapse, bias, neuron, srcs)
        pooled = _pool_then_conv(group)
        if pooled is not None:
            k, conv = pooled
            assert not isinstance(conv.padding, str)  # refused by _pool_then_conv
            small = Synapse(
                kind,
                w / float(np.prod(k)),
                in_shape,
                out_shape,
                tuple(conv.stride),
                tuple(conv.padding),
                1,
                k,
                where=f"layer {name}",
            )
            return Stage(name, small, bias, neuron, srcs)
    mods = [layer.inner for layer in group.layers]
    fast = _dense_after_pass(group, syn[0])
    w, b = fast if fast is not None else dense_from_chain(mods, in_shape)
    return Stage(
        name, Synapse("dense", w, in_shape, out_shape, where=f"layer {name}"), b, neuron, srcs
    )
