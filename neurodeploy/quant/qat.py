"""Quantisation-aware forward pass: the integer program's arithmetic in torch, with straight-through
gradients, so that training sees exactly what the chip computes.

:class:`QATNet` wraps a float :class:`~neurodeploy.nn.zoo.SpikingNet` (whose parameters it
trains). Every forward pass:

1. builds the integer program of the current weights with the quantiser itself
   (:func:`neurodeploy.quant.quantize.quantize_stage`: even 8-bit weights, the layer's weight exponent,
   12-bit decay and smoothing coefficient, 17-bit threshold, bias mantissa/exponent). In eval mode
   that is :func:`~neurodeploy.quant.quantize.quantize_model` (the artefact a user deploys, cached while
   the parameters do not change); in train mode the same quantiser runs on stage weights built by
   :func:`fast_stages` (bit-equal to :func:`~neurodeploy.quant.stages.model_stages` on the zoo models,
   tested, but without its identity-basis push, which costs seconds per step on pointnet);
2. runs it layer by layer over all T steps with the reference simulator's own code: the synaptic
   map is :meth:`ReferenceTarget.synapse` (integer sum ``<< weight_exp``, the 24-bit wrap of
   convolution outputs) and the neurons are :func:`~neurodeploy.neuron.fixedpoint.lif_int_step` /
   :func:`~neurodeploy.neuron.fixedpoint.mps_int_step` (decays rounded toward zero, 24-bit saturation and
   wrap, strict threshold, hard reset). The values of every tensor are therefore the reference
   simulator's integers, bit for bit (``tests/test_qat.py``).

Gradients come from float *proxies* attached to those exact values by a straight-through function
``st(exact, proxy)`` (value ``exact``, gradient of ``proxy``). With a_scale the layer's integer
units per float input unit, v_scale = 64 a_scale, c the 12-bit coefficient and dv the decay::

    a~ = (chain(x / x_scale) - chain(0)) * a_scale         float modules of the stage (BN in eval form)
    b~ = chain(0) * v_scale                                 the folded bias, membrane units
    h~ = m (4096 - dv) / 4096 + 64 a + b                    rounding, saturation, wrap: identity
    s  = st(s_exact, surrogate((h~ - 64 vth) / v_scale))    the model's own surrogate, threshold units
    m~ = (c m + (4096 - c) h~ (1 - s)) / 4096,   c = st(round(4096 alpha), 4096 alpha)
    logits = st(a_exact + bias_readout, chain(x) * a_scale) / a_scale      readout, float units

so a weight's gradient is that of the float network evaluated on the integer network's spikes
(the usual straight-through estimator), and the smoothing coefficient alpha stays trainable.
BatchNorm is used in its inference form throughout (running statistics frozen): the wrapped model
is kept in eval mode, because the chip runs the folded weights.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from neurodeploy.neuron.fixedpoint import (ACT_SHIFT, DECAY_UNIT, VOLTAGE_DECAY_OFFSET, VTH_SHIFT, Counters, lif_int_step,
                                    mps_int_step)
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.neuron.hardware import LOIHI2, HardwareSpec
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.nn.layers import LIF, PerStep
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.quantize import quantize_model, quantize_stages
from neurodeploy.quant.stages import PASS_THROUGH, Stage, compose_pool_conv, dense_from_chain, model_stages
from neurodeploy.targets.reference import STATE_DTYPE, ReferenceTarget

_SYNAPSES = (nn.Linear, nn.Conv1d, nn.Conv2d)
BASIS_CHUNK = 512   # identity-basis columns pushed at once when a pass chain is analysed (memory bound)


class _StraightThrough(torch.autograd.Function):
    """Value of ``exact``, gradient of ``proxy`` (the two must have the same shape)."""

    @staticmethod
    def forward(ctx, exact: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.dtype = proxy.dtype
        return exact.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return None, grad.to(ctx.dtype)


def straight_through(exact: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
    """``exact`` in the forward pass (unchanged, bit for bit), d(proxy) in the backward pass."""
    if exact.shape != proxy.shape:
        raise ValueError(f"straight_through: exact {tuple(exact.shape)} and proxy {tuple(proxy.shape)} differ in shape")
    return _StraightThrough.apply(exact.detach(), proxy)


def stage_groups(model: SpikingNet) -> list[tuple[list[str], list[nn.Module], LIF | None]]:
    """The model's body split as :func:`~neurodeploy.quant.stages.model_stages` splits it: the modules in
    front of each LIF layer (and of the readout), with the LIF itself (None for the readout)."""
    groups: list[tuple[list[str], list[nn.Module], LIF | None]] = []
    names: list[str] = []
    mods: list[nn.Module] = []
    for name, layer in model.body.named_children():
        if isinstance(layer, LIF):
            groups.append((names + [f"body.{name}"], mods, layer))
            names, mods = [], []
        else:
            names.append(f"body.{name}")
            mods.append(layer)
    if mods:
        groups.append((names, mods, None))
    return groups


@dataclass
class _PassMap:
    """A parameter-free chain (pooling, flatten, scale) as a linear map: input j lands at
    ``idx[j]`` with factor ``coef[j]`` (0 where it is dropped) when every input reaches at most
    one output, else the dense matrix ``dense`` (n_mid, n_in)."""

    idx: torch.Tensor | None
    coef: torch.Tensor | None
    dense: torch.Tensor | None


def _pass_map(mods: list[nn.Module], in_shape: tuple[int, ...]) -> _PassMap:
    n_in = int(np.prod(in_shape))
    seq = nn.Sequential(*[copy.deepcopy(m).double() for m in mods])
    cols = []
    with torch.no_grad():
        for lo in range(0, n_in, BASIS_CHUNK):
            hi = min(lo + BASIS_CHUNK, n_in)
            basis = torch.zeros(hi - lo, n_in, dtype=torch.float64)
            basis[torch.arange(hi - lo), torch.arange(lo, hi)] = 1.0
            cols.append(seq(basis.reshape(hi - lo, *in_shape)).flatten(1))
    p = torch.cat(cols).T  # (n_mid, n_in)
    nnz = (p != 0).sum(0)
    if nnz.numel() == 0 or int(nnz.max()) <= 1:
        idx = p.abs().argmax(0)
        coef = p.gather(0, idx[None])[0]
        return _PassMap(idx, coef, None)
    return _PassMap(None, None, p)


class FastStages:
    """Stage weights of a model (BatchNorm folded, pooling folded into the next synapse) computed
    as :func:`~neurodeploy.quant.stages.model_stages` computes them, without its identity-basis push:
    parameter-free chains in front of a Linear are analysed once (:class:`_PassMap`) and
    composed with the current weights by a gather, ``col_j = (W[:, idx_j] * coef_j + b) - b`` in
    float64 -- the same operations, in the same order, as pushing e_j through the chain."""

    def __init__(self, model: SpikingNet) -> None:
        self.template = model_stages(model)
        self.maps: dict[int, _PassMap] = {}
        for k, (st, (_, mods, _)) in enumerate(zip(self.template, stage_groups(fold_batchnorm(model)))):
            if st.kind == "dense":
                plain = [m.module if isinstance(m, PerStep) else m for m in mods]
                syn = [i for i, m in enumerate(plain) if isinstance(m, _SYNAPSES)]
                if len(syn) == 1 and isinstance(plain[syn[0]], nn.Linear) and syn[0] == len(plain) - 1 \
                        and all(isinstance(m, PASS_THROUGH) for m in plain[:syn[0]]):
                    self.maps[k] = _pass_map(plain[:syn[0]], st.in_shape)

    def __call__(self, model: SpikingNet) -> list[Stage]:
        folded = fold_batchnorm(model)
        live = [g[2] for g in stage_groups(model)]
        out = []
        for k, (st, (_, mods, _)) in enumerate(zip(self.template, stage_groups(folded))):
            plain = [m.module if isinstance(m, PerStep) else m for m in mods]
            syn = next(m for m in plain if isinstance(m, _SYNAPSES))
            bias = syn.bias.detach().double() if syn.bias is not None else None
            if st.kind != "dense":
                bias_np = bias.numpy().copy() if bias is not None else np.zeros(syn.out_channels)
                if st.pool:
                    w = compose_pool_conv(plain[0], syn)[0]  # type: ignore[index]
                else:
                    w = syn.weight.detach().double().numpy().copy()
            elif k in self.maps:
                pm = self.maps[k]
                wl = syn.weight.detach().double()
                b = bias if bias is not None else torch.zeros(wl.shape[0], dtype=torch.float64)
                raw = wl[:, pm.idx] * pm.coef if pm.idx is not None else wl @ pm.dense
                w = ((raw + b[:, None]) - b[:, None]).numpy()
                bias_np = b.numpy().copy()
            else:
                w, bias_np = dense_from_chain(plain, st.in_shape)
            out.append(Stage(st.name, st.kind, w, bias_np, st.in_shape, st.out_shape, st.stride, st.padding,
                             st.groups, live[k], st.pool, list(st.sources)))
        return out


def programs_equal(a: IntProgram, b: IntProgram) -> bool:
    """Same integers in every layer (weights, exponents, thresholds, decays, biases, coefficients)."""
    if len(a.layers) != len(b.layers):
        return False
    for la, lb in zip(a.layers, b.layers):
        if (la.weight_exp, la.vth, la.dv, la.du, la.coef, la.bias_exp, la.neuron) != \
                (lb.weight_exp, lb.vth, lb.dv, lb.du, lb.coef, lb.bias_exp, lb.neuron):
            return False
        for f in ("weight", "bias_mant", "readout_bias"):
            if not np.array_equal(getattr(la, f), getattr(lb, f)):
                return False
    return True


@dataclass
class QATRun:
    """One forward pass: float-unit logits (T, B, classes) carrying gradients, the readout's exact
    integer output (T, B, classes), spikes per neuron layer (T, B, *shape; 0/1 float64 carrying
    gradients), overflow counters per neuron layer, the program that was run and the number of
    input values clipped to the payload range."""

    logits: torch.Tensor
    output_int: torch.Tensor
    spikes: list[torch.Tensor]
    counters: list[Counters]
    program: IntProgram
    input_clipped: int = 0
    layer_names: list[str] = field(default_factory=list)


class QATNet(nn.Module):
    """A float model trained through its integer program (module docstring).

    Args:
        model: the float model; its parameters are the ones trained (BatchNorm statistics frozen).
        hw: hardware spec; input_kind, input_range, input_signed, percentile, netx: as
            :func:`~neurodeploy.quant.quantize.quantize_model`.
    """

    def __init__(self, model: SpikingNet, hw: HardwareSpec = LOIHI2, input_kind: str = "binary",
                 input_range: float = 1.0, input_signed: bool = False, percentile: float | None = None,
                 netx: bool = False) -> None:
        super().__init__()
        self.model = model.eval()
        self.hw = hw
        self.qkw = dict(input_kind=input_kind, input_range=input_range, input_signed=input_signed,
                        percentile=percentile, netx=netx)
        self._exact_cache: tuple[tuple[int, ...], IntProgram] | None = None
        self._fast = FastStages(model)
        # refuses what cannot be quantised, naming the layer; its input settings and meta depend on
        # the architecture only, so the fast (training) programs reuse them as their header
        self._header = self.program_exact()
        self.program()

    def train(self, mode: bool = True) -> "QATNet":
        """Switch which program is built (module docstring); the float model stays in eval form."""
        self.training = mode
        self.model.eval()
        return self

    def _version(self) -> tuple[int, ...]:
        return tuple(p._version for p in self.model.parameters()) + tuple(id(p) for p in self.model.parameters()) \
            + tuple(int(m.a is None) for _, m in self.model.lif_layers())

    def program(self) -> IntProgram:
        """The integer program this forward pass runs (module docstring, step 1)."""
        if self.training:
            return quantize_stages(self._fast(self.model), self._header, self.hw, self.qkw["percentile"],
                                   self.qkw["netx"])
        return self.program_exact()

    def program_exact(self) -> IntProgram:
        """``quantize_model(model)``, recomputed only when a parameter changed."""
        key = self._version()
        if self._exact_cache is None or self._exact_cache[0] != key:
            self._exact_cache = (key, quantize_model(self.model, self.hw, **self.qkw))
        return self._exact_cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Float input (T, B, *input_shape) -> logits (T, B, classes) in float units."""
        return self.run(x).logits

    def run(self, x: torch.Tensor, program: IntProgram | None = None) -> QATRun:
        """Everything of one forward pass (:class:`QATRun`)."""
        prog = program or self.program()
        device = next(self.model.parameters()).device
        pdtype = next(self.model.parameters()).dtype
        x_int_np, clipped = prog.quantize_input(x.detach().cpu().numpy())
        x_int = torch.as_tensor(x_int_np, device=device).to(STATE_DTYPE)
        ref = ReferenceTarget(prog, device=str(device))
        groups = stage_groups(self.model)
        if [g[0][-1] if g[2] is not None else "readout" for g in groups] != [l.name for l in prog.layers]:
            raise ValueError("QAT: the model's layers do not line up with its integer program's stages "
                             f"({[l.name for l in prog.layers]})")
        grad = torch.is_grad_enabled()
        cur = x_int
        spikes: list[torch.Tensor] = []
        counters: list[Counters] = []
        logits = out_int = None
        for d, (_, mods, lif) in zip(ref.layers, groups):
            layer: IntLayer = d["layer"]
            T, B = cur.shape[:2]
            d["conv_wraps"] = 0
            a_exact = ref.synapse(d, cur.detach().flatten(0, 1)).unflatten(0, (T, B))
            chain = nn.Sequential(*mods)
            if layer.neuron is None:
                out_int = a_exact + d["rbias"]
                z = out_int
                if grad:
                    z = straight_through(out_int, chain((cur / layer.in_scale).to(pdtype)).to(STATE_DTYPE) * layer.a_scale)
                logits = z / layer.a_scale
                continue
            cnt = Counters()
            cnt.add_count(wraps=d["conv_wraps"])
            a = a_exact
            bias = d["bias"].expand(layer.out_shape) if d["bias"].dim() else d["bias"]
            if grad:
                c0 = chain(torch.zeros((1, 1, *layer.in_shape), dtype=pdtype, device=device))[0, 0].to(STATE_DTYPE)
                a = straight_through(a_exact, (chain((cur / layer.in_scale).to(pdtype)).to(STATE_DTYPE) - c0) * layer.a_scale)
                bias = straight_through(bias.expand(layer.out_shape).clone(), c0 * layer.v_scale)
            s_all = self._neuron(layer, lif, a, bias, cnt, grad)
            spikes.append(s_all)
            counters.append(cnt)
            cur = s_all
        if logits is None or out_int is None:
            raise ValueError("QAT: the program has no readout layer (a non-spiking Linear at the end)")
        return QATRun(logits, out_int.detach(), spikes, counters, prog, clipped,
                      [l.name for l in prog.layers if l.neuron is not None])

    @staticmethod
    def _neuron(layer: IntLayer, lif: LIF | None, a: torch.Tensor, bias: torch.Tensor, cnt: Counters,
                grad: bool) -> torch.Tensor:
        """All T steps of one neuron layer: exact integers from neurodeploy.neuron.fixedpoint, proxies
        for the gradient (module docstring)."""
        T = a.shape[0]
        m = torch.zeros(a.shape[1:], dtype=STATE_DTYPE, device=a.device)
        u = torch.zeros_like(m)
        keep = (DECAY_UNIT - (layer.dv + VOLTAGE_DECAY_OFFSET)) / DECAY_UNIT
        vth64 = float(layer.vth << VTH_SHIFT)
        coef: torch.Tensor | float = float(layer.coef)
        if grad and lif is not None and lif.alpha is not None:
            coef = straight_through(torch.tensor(float(layer.coef), dtype=STATE_DTYPE, device=a.device),
                                    DECAY_UNIT * lif.alpha.to(STATE_DTYPE))
        bias_e = bias.detach()
        out = []
        for t in range(T):
            with torch.no_grad():
                if layer.neuron == "mps":
                    s_e, m_e, _ = mps_int_step(a[t].detach(), m.detach(), layer.dv, layer.vth, bias_e, layer.coef, cnt)
                else:
                    s_e, u, m_e = lif_int_step(a[t].detach(), u, m.detach(), layer.du, layer.dv, layer.vth, bias_e, cnt)
            s_e = s_e.to(STATE_DTYPE)
            if not grad:
                m = m_e
                out.append(s_e)
                continue
            h_p = m * keep + a[t] * float(1 << ACT_SHIFT) + bias
            s = straight_through(s_e, lif.params.surrogate((h_p - vth64) / layer.v_scale))  # type: ignore[union-attr]
            s_reset = s.detach() if lif.params.detach_reset else s  # type: ignore[union-attr]
            post = h_p * (1 - s_reset)
            m = straight_through(m_e, (coef * m + (DECAY_UNIT - coef) * post) / DECAY_UNIT)
            out.append(s)
        return torch.stack(out)


def integer_accuracy(qnet: QATNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Accuracy of the integer program (eval mode: quantize_model's) on float inputs (T, N, ...)."""
    was = qnet.training
    qnet.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[1], batch_size):
            r = qnet.run(x[:, i:i + batch_size])
            correct += int((r.output_int.sum(0).argmax(-1).cpu() == y[i:i + batch_size]).sum())
    qnet.train(was)
    return correct / max(1, x.shape[1])


__all__ = ["QATNet", "QATRun", "FastStages", "straight_through", "stage_groups",
           "programs_equal", "integer_accuracy"]
