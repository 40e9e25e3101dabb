"""A spiking model as a chain of stages: one synapse (:class:`~neurodeploy.quant.synapse.Synapse`:
dense or convolution, with any pooling, flattening and scaling in front of it folded in exactly)
followed by one neuron layer, or by nothing for the final readout. This is the form neuromorphic
hardware runs: synapses between neuron layers, no pooling units of their own.

The model is read through :func:`neurodeploy.nn.walk.layer_groups` (BatchNorm folded first): each
group (pass-through modules, one synapse, one LIF) becomes one stage. Folding rules (exact
algebra, float64):

- AvgPool(k, stride k) followed by a stride-1 Conv(W, padding p) is the synapse with pool k and
  kernel W / d, d the pool's divisor: prod(k) for an average, 1 for a sum pool (NIR SumPool2d,
  imported as AvgPool with divisor_override=1; sum = average x prod(k)): sum-pool, then the
  scaled kernel (the pool stays data on the synapse; hardware that cannot pool runs
  :meth:`Synapse.pool_folded`). Not when p > 0 and the input is not a multiple of k (the folded
  kernel would read the remainder the pool drops): then, like any other chain, the group is one
  dense matrix.
- Scale layers after a Conv (input gains: SpikingJelly's LIF, norse, sinabs IF) whose product g
  is one factor per output channel c (a scalar, (C, 1, 1), or per neuron but constant within each
  channel) fold into the conv: g (conv(x, W) + b) = conv(x, g W) + g b, i.e. W[c] -> g[c] W[c],
  b[c] -> g[c] b[c] (float64; a float32 weight times a float32 gain is exact). The stage stays a
  convolution. A gain that varies within a channel is no convolution: the group is a dense matrix
  and its flat output cannot be a conv-shaped neuron layer's state, which
  :meth:`~neurodeploy.quant.program.IntProgram.check_shapes` refuses by name before any target
  runs.
- Scale layers before a Conv (an input gain g per input channel or a scalar; a pool may be
  among them) fold into its kernel: conv(g x, W) = conv(x, W'), W'[:, c] = g[c] W[:, c].
- A Flatten between a conv and its LIF (a flat neuron layer after a conv) moves after the LIF
  (:func:`_views_after_neurons`): the stage stays a convolution and the next synapse reads it flat.
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
from neurodeploy.nn.layers import LI, LIF, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import POOLS, BodyLayer, LayerGroup, layer_groups
from neurodeploy.quant.synapse import HoldsSynapse, Synapse, conv_synapse

__all__ = ["Stage", "dense_from_chain", "model_stages"]

BASIS_CHUNK = 512  # identity-basis rows pushed through a pass-through chain at once (memory bound)
PASS_MAP_CACHE = 16  # pass-through chains whose basis response is kept (distinct architectures)


@dataclass
class StageEdge(HoldsSynapse):
    """One more float synapse into a graph stage (:mod:`neurodeploy.quant.graph_stages`): it
    reads ``source`` (a stage's name or ``"input"``), ``recurrent``: the stage's own spikes of
    the previous step (a self-loop). Its bias is already in the stage's bias."""

    source: str
    synapse: Synapse  # float64 weights, as Stage.synapse
    recurrent: bool = False


@dataclass
class Stage(HoldsSynapse):
    """One float synapse plus (optionally) one neuron layer. In a graph (``graph_stages``) the
    synapse reads ``source`` and ``extra`` edges add further synapses into the same neurons;
    chains leave ``source`` None (the previous stage, or the input) and ``extra`` empty."""

    name: str  # the neuron's layer name, or "readout"
    synapse: Synapse  # float64 weights (torch layout; a pooled conv keeps its small kernel)
    bias: np.ndarray  # float64, one per output feature (dense) or channel (conv)
    neuron: LIF | None = None  # None: readout (no neuron)
    sources: list[str] = field(default_factory=list)  # the float layers folded into this stage
    syn_tau: float | None = None  # CubaLIF: the synaptic current's tau (timesteps); None: none
    readout_tau: float | None = None  # LI readout: the LI's tau (timesteps); None: plain readout
    source: str | None = None  # graphs: the inline synapse's source; None: the chain's previous
    extra: list[StageEdge] = field(default_factory=list)  # graphs: further synapses in

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


@dataclass(frozen=True)
class _ConvGroup:
    """A group that stays a convolution: ``pool`` (k, or empty) with ``pool_div`` (the pool's
    divisor: prod(k) for an average, 1 for a sum pool), ``conv``, and ``gain`` (C_out,) = the
    product of the Scale layers after the conv (all ones when there are none; None: no Scale)."""

    pool: tuple[int, ...]
    pool_div: int
    conv: nn.Conv1d | nn.Conv2d
    gain: np.ndarray | None
    in_gain: np.ndarray | None = None  # (C_in,): the Scale layers in front of the conv; None: none


def _input_gain(layers: list[BodyLayer]) -> np.ndarray | None:
    """The Scale layers among ``layers`` (in front of a conv: each with its own input shape
    (C, *spatial)) as one factor per input channel, float64 (C,); None when their product varies
    over a channel's positions. A per-channel gain commutes with a pool and with zero padding, so
    conv(g x, W) = conv(x, W'), W'[:, c] = g[c] W[:, c]."""
    gain: np.ndarray | None = None
    for layer in layers:
        m = layer.inner
        if not isinstance(m, Scale):
            continue
        try:
            g = torch.broadcast_to(m.scale.detach().double().cpu(), layer.in_shape)
        except RuntimeError:
            return None
        flat = g.reshape(layer.in_shape[0], -1)
        if not bool((flat == flat[:, :1]).all()):
            return None
        gc = flat[:, 0].numpy()
        gain = gc.copy() if gain is None else gain * gc
    return gain


def _channel_gain(mods: list[nn.Module], out_shape: tuple[int, ...]) -> np.ndarray | None:
    """The Scale layers ``mods`` (applied after a conv with output ``out_shape`` = (C, *spatial))
    as one factor per output channel, float64 (C,); None when one is not a Scale or Identity, or
    their product varies over a channel's positions (then no per-channel gain describes it)."""
    gain = torch.ones(out_shape, dtype=torch.float64)
    for m in mods:
        if isinstance(m, nn.Identity):
            continue
        if not isinstance(m, Scale):
            return None
        try:
            gain = gain * torch.broadcast_to(m.scale.detach().double().cpu(), out_shape)
        except RuntimeError:
            return None
    flat = gain.reshape(out_shape[0], -1)
    if not bool((flat == flat[:, :1]).all()):
        return None
    return flat[:, 0].numpy().copy()


def _conv_group(group: LayerGroup, k_syn: int) -> _ConvGroup | None:
    """The group as [pool] conv [Scale...] (module docstring), else None. The pool is an
    unpadded AvgPool(k, stride k) (any divisor: a SumPool is AvgPool with divisor 1) followed by a
    stride-1, undilated, ungrouped conv whose padding reads no pool remainder."""
    conv = group.layers[k_syn].inner
    if not isinstance(conv, (nn.Conv1d, nn.Conv2d)):
        return None
    after = [layer.inner for layer in group.layers[k_syn + 1 :]]
    gain = _channel_gain(after, group.layers[k_syn].out_shape) if after else None
    if after and gain is None:
        return None
    front = [layer for layer in group.layers[:k_syn] if not isinstance(layer.inner, nn.Identity)]
    in_gain = _input_gain(front)
    if any(isinstance(layer.inner, Scale) for layer in front) and in_gain is None:
        return None
    before = [layer.inner for layer in front if not isinstance(layer.inner, Scale)]
    if not before:
        return _ConvGroup((), 1, conv, gain, in_gain)
    if len(before) != 1 or not isinstance(before[0], POOLS):
        return None
    pool = before[0]
    dims = 2 if isinstance(conv, nn.Conv2d) else 1
    k, s, p = (
        tuple(v) if isinstance(v, tuple) else (v,) * dims
        for v in (pool.kernel_size, pool.stride, pool.padding)
    )
    if k != s or any(p) or pool.ceil_mode:
        return None
    if (
        any(v != 1 for v in conv.stride)
        or any(v != 1 for v in conv.dilation)
        or conv.groups != 1
        or isinstance(conv.padding, str)
        or conv.padding_mode != "zeros"
    ):
        return None
    if any(conv.padding) and any(n % kk for n, kk in zip(group.in_shape[1:], k)):
        return None  # the folded kernel's padding would read the remainder the pool drops
    divisor = getattr(pool, "divisor_override", None)
    return _ConvGroup(k, int(divisor) if divisor else int(np.prod(k)), conv, gain, in_gain)


def _current_group(group: LayerGroup) -> tuple[LayerGroup, float] | None:
    """A CubaLIF group, synapse [Scale g_syn] LI(tau_syn) [Scale g_mem] LIF, as the group without
    its LI and the LI's tau (timesteps); None for any other group.

    The float layers compute x = W s + b, I(t) = beta_syn I(t-1) + g_syn x(t) (the LI, beta_syn =
    1 - 1/tau_syn), H(t) = beta_mem v(t-1) + g_mem I(t). Gains and the LI are elementwise and
    linear, so they commute: with I' = g_mem I and x' = g_syn g_mem x,
    I'(t) = beta_syn I'(t-1) + x'(t), H(t) = beta_mem v(t-1) + I'(t). The gains fold into the
    synapse like any Scale after it (W' = g_syn g_mem W, b' = g_syn g_mem b) and I' is Loihi's
    current u (:func:`neurodeploy.neuron.fixedpoint.tau_syn_to_du`)."""
    if group.neuron is None:
        return None
    syn = [i for i, layer in enumerate(group.layers) if layer.role == "synapse"]
    li = [i for i, layer in enumerate(group.layers) if layer.role == "li"]
    if len(syn) != 1 or len(li) != 1 or li[0] < syn[0]:
        return None
    if any(
        not isinstance(layer.inner, (Scale, nn.Identity))
        for i, layer in enumerate(group.layers[syn[0] + 1 :], start=syn[0] + 1)
        if i != li[0]
    ):
        return None
    current = group.layers[li[0]].inner
    assert isinstance(current, LI)
    kept = tuple(layer for i, layer in enumerate(group.layers) if i != li[0])
    return LayerGroup(kept, group.neuron, group.in_shape), current.tau


def _li_readout_group(group: LayerGroup) -> tuple[LayerGroup, float] | None:
    """A readout group that ends in a non-spiking LI, synapse [Scale...] LI(tau), as the group
    without its LI and the LI's tau (timesteps); None for any other group.

    The float layers compute x = g (W s + b) and V(t) = beta V(t-1) + x(t), beta = 1 - 1/tau (the
    model's output is V per step). The gains fold into the synapse like any Scale after it; V is
    the integer LI compartment's membrane (:mod:`neurodeploy.quant.quantize`)."""
    if group.neuron is not None or not group.layers or group.layers[-1].role != "li":
        return None
    syn = [i for i, layer in enumerate(group.layers) if layer.role == "synapse"]
    if len(syn) != 1 or any(
        not isinstance(layer.inner, (Scale, nn.Identity)) for layer in group.layers[syn[0] + 1 : -1]
    ):
        return None
    li = group.layers[-1].inner
    assert isinstance(li, LI)
    return LayerGroup(group.layers[:-1], None, group.in_shape), li.tau


def _views_after_neurons(groups: list[LayerGroup]) -> list[LayerGroup]:
    """Move the Flatten layers that end a neuron group (Conv -> Flatten -> LIF: a flat neuron
    layer after a conv, as snnTorch and NIR graphs write it) to the front of the next group. A
    neuron layer is elementwise, so flatten(LIF(x)) = LIF(flatten(x)) spike for spike (same
    state, same order); the conv stage keeps its (C, *spatial) neurons and the next stage's
    synapse reads them flattened (a view). The neuron's shape is only a view of the conv's."""
    out: list[LayerGroup] = []
    carry: tuple[BodyLayer, ...] = ()
    for group in groups:
        layers = carry + group.layers
        in_shape = carry[0].in_shape if carry else group.in_shape
        carry = ()
        k = len(layers)
        while (
            group.neuron is not None
            and k > 0
            and isinstance(layers[k - 1].inner, (nn.Flatten, nn.Identity))
            and any(layer.role == "synapse" for layer in layers[: k - 1])
        ):
            k -= 1
        if k < len(layers) and any(isinstance(x.inner, nn.Flatten) for x in layers[k:]):
            carry, layers = layers[k:], layers[:k]
        out.append(LayerGroup(layers, group.neuron, in_shape))
    if carry:  # the last group had a neuron: nothing follows to read the view
        out[-1] = LayerGroup(out[-1].layers + carry, out[-1].neuron, out[-1].in_shape)
    if (
        len(out) > 1
        and out[-1].neuron is None
        and all(isinstance(x.inner, (nn.Flatten, nn.Identity)) for x in out[-1].layers)
    ):  # a spiking last layer read flat (C order): the targets count its neurons in that order
        out.pop()
    return out


def model_stages(model: SpikingNet) -> list[Stage]:
    """Split a model into stages (BatchNorm folded first). Unsupported layers raise ValueError
    naming them. A CubaLIF group (an LI current between the synapse and the LIF) becomes a stage
    with ``syn_tau`` (:func:`_current_group`); a readout ending in an LI (synapse [Scale] LI: NIR
    LI, snnTorch ``Leaky(output=True)``-style membrane readouts) becomes a readout stage with
    ``readout_tau`` (:func:`_li_readout_group`)."""
    stages: list[Stage] = []
    for group in _views_after_neurons(layer_groups(fold_batchnorm(model))):
        cuba = _current_group(group)
        li_out = _li_readout_group(group)
        found = cuba if cuba is not None else li_out
        if found is not None:
            kept, tau = found
            stage = _make_stage(kept)
            if cuba is not None:
                stage.syn_tau = tau
            else:
                stage.readout_tau = tau
            stage.sources = [layer.name for layer in group.layers]
            stages.append(stage)
            continue
        for layer in group.layers:
            if layer.role == "li":
                raise ValueError(
                    f"layer {layer.name}: an LI maps to hardware only as a CubaLIF's current "
                    "(synapse [Scale] LI [Scale] LIF) or as the last layer after the readout "
                    "synapse (synapse [Scale] LI)"
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
    in_shape, out_shape = group.in_shape, group.out_shape
    cg = _conv_group(group, syn[0])
    if cg is not None:
        conv = cg.conv
        w = conv.weight.detach().double().cpu().numpy()
        bias = (
            conv.bias.detach().double().cpu().numpy().copy()
            if conv.bias is not None
            else np.zeros(conv.out_channels)
        )
        if cg.pool_div != 1:
            w = w / float(cg.pool_div)
        if cg.in_gain is not None:  # conv(g x, W) = conv(x, W'), W'[:, c] = g[c] W[:, c]
            w = w * cg.in_gain.reshape(1, -1, *([1] * (w.ndim - 2)))
        if cg.gain is not None:  # y = g (conv(x, W) + b) = conv(x, g W) + g b, per channel
            w = w * cg.gain.reshape(-1, *([1] * (w.ndim - 1)))
            bias = bias * cg.gain
        synapse = conv_synapse(
            conv,
            w.copy(),
            in_shape=in_shape,
            out_shape=out_shape,
            name=group.layers[syn[0]].name,
            pool=cg.pool,
        )
        return Stage(name, synapse, bias, neuron, srcs)
    mods = [layer.inner for layer in group.layers]
    fast = _dense_after_pass(group, syn[0])
    w, b = fast if fast is not None else dense_from_chain(mods, in_shape)
    return Stage(
        name, Synapse("dense", w, in_shape, out_shape, where=f"layer {name}"), b, neuron, srcs
    )
