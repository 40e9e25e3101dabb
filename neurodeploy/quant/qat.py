"""Quantisation-aware forward pass: the integer program's arithmetic in torch, with straight-through
gradients, so that training sees exactly what the chip computes.

:class:`QATNet` wraps a float :class:`~neurodeploy.nn.zoo.SpikingNet` (whose parameters it
trains). Every forward pass:

1. builds the integer program of the current weights with the quantiser itself
   (:func:`neurodeploy.quant.quantize.quantize_stage`: even 8-bit weights, the layer's weight exponent,
   12-bit decay and smoothing coefficient, 17-bit threshold, bias mantissa/exponent). In eval mode
   that is :func:`~neurodeploy.quant.quantize.quantize_model` (the artefact a user deploys, cached while
   the parameters do not change); in train mode :func:`~neurodeploy.quant.quantize.quantize_stages`
   runs on :func:`~neurodeploy.quant.stages.model_stages` of the current weights, uncached;
2. runs it layer by layer over all T steps with the reference simulator's own code: the synaptic
   map is :meth:`PreparedLayer.synapse <neurodeploy.quant.prepared.PreparedLayer.synapse>` (integer
   sum ``<< weight_exp``, the 24-bit wrap of convolution outputs) and the neurons are
   :func:`~neurodeploy.neuron.fixedpoint.lif_int_step` /
   :func:`~neurodeploy.neuron.fixedpoint.mps_int_step` (decays rounded toward zero, 24-bit
   saturation and wrap, strict threshold, hard reset). The values of every tensor are therefore the reference
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
    logits = st(v_exact, chain(x) * v_scale) / v_scale          LI readout (chain ends in its LI)

so a weight's gradient is that of the float network evaluated on the integer network's spikes
(the usual straight-through estimator), and the smoothing coefficient alpha stays trainable.
BatchNorm is used in its inference form throughout (running statistics frozen): the wrapped model
is kept in eval mode, because the chip runs the folded weights.

Graphs (a model with a :class:`~neurodeploy.nn.graph.GraphBody`, or a chain holding residual or
recurrent blocks, which :func:`~neurodeploy.nn.graph.graph_body` lowers over the same modules):
the program comes from :func:`~neurodeploy.quant.graph_stages.graph_stages` and its layers run in
program order, each neuron layer with all T steps of its feed-forward synapses first, exactly as
:meth:`PreparedLayer.current <neurodeploy.quant.prepared.PreparedLayer.current>` sums them::

    a_exact(t) = sum over ff edges e of (W_e s_src(e)(t)) << e_e   (+ the recurrent self-edge,
                 (W_rec s(t-1)) << e_rec, s(-1) = 0, added step by step)

which is the reference simulator's non-latency schedule, so every layer's spikes, the readout
and the overflow counters are its integers bit for bit (``tests/test_qat_graph.py``). The proxy
of the summed current is the float graph itself: with D(.) the value reaching the neuron node's
input through the linear nodes (each applied to the sum of its sources, as GraphBody runs them;
by linearity the sum over graph_stages' paths) from the origins' values (input x_int/x_scale,
earlier layers' straight-through spikes), and g the CubaLIF's gains::

    a~(t) = g(D(s)(t) - D(0) + rec(s~(t-1)) - rec(0)) * a_scale       every edge in a-units
    b~    = g(D(0) + rec(0)) * v_scale * tau_syn                        the layer's bias

so each weight gets the gradient of its own float module on its own path (the rec map's from the
layer's straight-through spikes of t-1), and the neuron proxies are the chain's below.

An LI readout's v_exact is the reference simulator's non-spiking compartment
(``v <- decay(v, dv) + (a << 6) + bias``, quantize.py "LI readout") and its proxy the model's own
float LI, V(t) = (1 - 1/tau) V(t-1) + g (W s(t) + b), in membrane units (v ~ V * v_scale); in a
graph the LI output node applied to the sum of its sources (every edge of the readout). The
prediction is argmax_c sum_t of the output, as :meth:`TargetResult.predictions
<neurodeploy.targets.base.TargetResult.predictions>` takes it from the reference's ``output``
(v itself): v_scale > 0, so the float logits predict the same class.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from neurodeploy.neuron.fixedpoint import (
    DECAY_UNIT,
    Counters,
    act_in,
    du_to_beta,
    du_to_tau_syn,
    dv_to_beta,
    lif_int_step,
    mps_int_step,
    vth_membrane,
)
from neurodeploy.neuron.hardware import LOIHI2, HardwareSpec
from neurodeploy.nn.graph import GraphBody, Recurrent, graph_body, is_chain
from neurodeploy.nn.layers import LIF, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import LayerGroup, layer_groups
from neurodeploy.quant.graph_stages import graph_stages, is_neuron_node, neuron_parts, normal_graph
from neurodeploy.quant.prepared import STATE_DTYPE, PreparedLayer, PreparedSynapse, prepare
from neurodeploy.quant.program import INPUT, IntLayer, IntProgram
from neurodeploy.quant.qat_neuron import NeuronSpec, fused_neuron
from neurodeploy.quant.quantize import quantize_model, quantize_stages
from neurodeploy.quant.scan import LayerRun, run_layer
from neurodeploy.quant.split import WeightSplit
from neurodeploy.quant.stages import model_stages


class _StraightThrough(torch.autograd.Function):
    """Value of ``exact``, gradient of ``proxy`` (the two must have the same shape)."""

    @staticmethod
    def forward(ctx: Any, exact: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        ctx.dtype = proxy.dtype
        return exact.clone()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:  # type: ignore[override]
        return None, grad.to(ctx.dtype)


def straight_through(exact: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
    """``exact`` in the forward pass (unchanged, bit for bit), d(proxy) in the backward pass."""
    if exact.shape != proxy.shape:
        raise ValueError(
            f"straight_through: exact {tuple(exact.shape)} and proxy {tuple(proxy.shape)} "
            "differ in shape"
        )
    out: torch.Tensor = _StraightThrough.apply(exact.detach(), proxy)
    return out


def programs_equal(a: IntProgram, b: IntProgram) -> bool:
    """Same integers in every layer (synapse geometry and weights, exponents, thresholds, decays,
    biases, coefficients) and the same graph: every layer's synapses (inline and ``extra``) read
    the same sources (by position in program order, the input as -1: a chain's None equals the
    previous layer), with the same flags, exponents, geometry and weights. Two graph programs
    whose layers carry the same names are compared name by name: program order is one
    topological order of several (two importers may order independent layers differently), and
    the schedules do not depend on it (ff edges read s_src(t), or by depth with latency)."""
    if len(a.layers) != len(b.layers):
        return False
    names_a, names_b = [l.name for l in a.layers], [l.name for l in b.layers]
    if names_a != names_b and sorted(names_a) == sorted(names_b) and not a.is_chain:
        by_name = {  # sources made explicit, so that order no longer names them
            l.name: dataclasses.replace(l, source=b.source_of(k)) for k, l in enumerate(b.layers)
        }
        b = dataclasses.replace(b, layers=[by_name[n] for n in names_a])
    pos_a = {INPUT: -1, **{layer.name: i for i, layer in enumerate(a.layers)}}
    pos_b = {INPUT: -1, **{layer.name: i for i, layer in enumerate(b.layers)}}
    for k in range(len(a.layers)):
        ea, eb = a.edges(k), b.edges(k)
        if len(ea) != len(eb) or [pos_a.get(e.source) for e in ea] != [
            pos_b.get(e.source) for e in eb
        ]:
            return False
        for xa, xb in list(zip(ea, eb))[1:]:  # the inline synapse is compared below
            if (xa.recurrent, xa.weight_exp) != (xb.recurrent, xb.weight_exp):
                return False
            sx, sy = xa.synapse, xb.synapse
            if (sx.kind, sx.in_shape, sx.out_shape, sx.stride, sx.padding, sx.groups, sx.pool) != (
                sy.kind,
                sy.in_shape,
                sy.out_shape,
                sy.stride,
                sy.padding,
                sy.groups,
                sy.pool,
            ) or not np.array_equal(sx.weight, sy.weight):
                return False
    for la, lb in zip(a.layers, b.layers):
        if (la.u_init_bias, la.reset_delay) != (lb.u_init_bias, lb.reset_delay):
            return False
        if (la.weight_exp, la.vth, la.dv, la.du, la.coef, la.bias_exp, la.neuron) != (
            lb.weight_exp,
            lb.vth,
            lb.dv,
            lb.du,
            lb.coef,
            lb.bias_exp,
            lb.neuron,
        ):
            return False
        sa, sb = la.synapse, lb.synapse
        if (sa.kind, sa.in_shape, sa.out_shape, sa.stride, sa.padding, sa.groups, sa.pool) != (
            sb.kind,
            sb.in_shape,
            sb.out_shape,
            sb.stride,
            sb.padding,
            sb.groups,
            sb.pool,
        ):
            return False
        for x, y in (
            (sa.weight, sb.weight),
            (la.bias_mant, lb.bias_mant),
            (la.readout_bias, lb.readout_bias),
        ):
            if not np.array_equal(x, y):
                return False
    return True


@dataclass
class QATRun:
    """One forward pass: float-unit logits (T, B, classes) carrying gradients, the readout's exact
    integer output (T, B, classes; an LI readout's membrane v, as the reference's ``output``),
    spikes per neuron layer (T, B, *shape; 0/1 float64 carrying gradients), overflow counters
    per neuron layer, the program that was run and the number of input values clipped to the
    payload range. A program without a readout (its last layer spikes) gives that layer's spikes
    (T, B, neurons) as both logits and integer output."""

    logits: torch.Tensor
    output_int: torch.Tensor
    spikes: list[torch.Tensor]
    counters: list[Counters]
    program: IntProgram
    input_clipped: int = 0
    layer_names: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _RecEdge:
    """A layer's recurrent self-edge: its prepared integer synapse, and what its current's proxy
    needs: the float model's ``rec`` map, rec(0) (its bias, part of the layer's bias), the
    CubaLIF gains and the layer's a_scale."""

    synapses: tuple[PreparedSynapse, ...]  # several: a split synapse's parts
    rec: nn.Module
    r0: torch.Tensor
    gains: list[Scale]
    a_scale: float

    def proxy(self, s: torch.Tensor) -> torch.Tensor:
        """The proxy current (a-units, STATE_DTYPE) of one step's spikes ``s`` (B, *shape):
        gains(rec(s) - rec(0)) * a_scale."""
        z = self.rec(s.to(self.r0.dtype)) - self.r0
        for g in self.gains:
            z = g(z)
        return z.to(STATE_DTYPE) * self.a_scale


def _is_neuron_node(m: nn.Module) -> bool:
    return is_neuron_node(m)


def _drive(
    body: GraphBody, node: str, origins: dict[str, torch.Tensor], *, readout: bool
) -> torch.Tensor:
    """The float value reaching ``node``'s input (its own output for the readout, a linear node)
    through the linear nodes of ``body``, given the values of the origins (the input and the
    neuron nodes so far): each linear node applied to the sum of its sources, as
    :meth:`GraphBody.run_all` does, i.e. the sum over the graph_stages paths (module docstring,
    "Graphs")."""
    memo: dict[str, torch.Tensor] = {}

    def value(n: str) -> torch.Tensor:
        if n in origins:
            return origins[n]
        if n not in memo:
            if _is_neuron_node(body.nodes[n]):
                raise ValueError(f"QAT: graph node {n!r} is read before its layer ran")
            memo[n] = body.nodes[n](total(body.sources[n]))
        return memo[n]

    def total(srcs: list[str]) -> torch.Tensor:
        a = value(srcs[0])
        for src in srcs[1:]:
            a = a + value(src)
        return a

    return value(node) if readout else total(body.sources[node])


class QATNet(nn.Module):
    """A float model trained through its integer program (module docstring).

    Args:
        model: the float model; its parameters are the ones trained (BatchNorm statistics frozen).
        hw: hardware spec (a netx variant, e.g. ``LOIHI2_NETX``, trains in netx's formats);
            input_kind, input_range, input_signed, percentile, weight_split: as
            :func:`~neurodeploy.quant.quantize.quantize_model` (a split synapse's parts are
            summed exactly like a graph's edges; train mode's programs split alike, from the
            header's meta).
    """

    def __init__(
        self,
        model: SpikingNet,
        hw: HardwareSpec = LOIHI2,
        *,
        input_kind: str = "binary",
        input_range: float = 1.0,
        input_signed: bool = False,
        percentile: float | None = None,
        weight_split: WeightSplit = 1,
    ) -> None:
        super().__init__()
        self.model = model.eval()
        self.hw = hw
        self.percentile = percentile
        self.qkw: dict[str, Any] = dict(
            input_kind=input_kind,
            input_range=input_range,
            input_signed=input_signed,
            percentile=percentile,
            weight_split=weight_split,
        )
        self._exact_cache: tuple[tuple[int, ...], IntProgram] | None = None
        self._chain = is_chain(model)  # else a graph model (module docstring, "Graphs")
        # refuses what cannot be quantised, naming the layer; its input settings and meta depend on
        # the architecture only, so the training programs reuse them as their header
        self._header = self.program_exact()
        self.program()

    def train(self, mode: bool = True) -> QATNet:
        """Switch which program is built (module docstring); the float model stays in eval form."""
        self.training = mode
        self.model.eval()
        return self

    def _params_key(self) -> tuple[int, ...]:
        """Changes whenever a parameter is modified or replaced, or a smoothing is switched off."""
        params = list(self.model.parameters())
        return (
            tuple(p._version for p in params)
            + tuple(id(p) for p in params)
            + tuple(int(m.a is None) for _, m in self.model.lif_layers())
        )

    def program(self) -> IntProgram:
        """The integer program this forward pass runs (module docstring, step 1)."""
        if self.training:
            stages = model_stages(self.model) if self._chain else graph_stages(self.model)
            return quantize_stages(stages, self._header, self.hw, self.percentile)
        return self.program_exact()

    def program_exact(self) -> IntProgram:
        """``quantize_model(model)``, recomputed only when a parameter changed."""
        key = self._params_key()
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
        prepared = prepare(prog, device)
        if not self._chain:
            return self._run_graph(prog, prepared, x_int, clipped)
        groups: list[LayerGroup] = layer_groups(self.model)
        if [g.name for g in groups] != [l.name for l in prog.layers]:
            raise ValueError(
                "QAT: the model's layers do not line up with its integer program's stages "
                f"({[l.name for l in prog.layers]})"
            )
        grad = torch.is_grad_enabled()
        cur = x_int
        spikes: list[torch.Tensor] = []
        counters: list[Counters] = []
        logits = out_int = None
        for d, group in zip(prepared, groups):
            layer: IntLayer = d.layer
            T, B = cur.shape[:2]
            flat = cur.detach().flatten(0, 1)  # a split synapse's parts all read it
            a_flat, wraps = d.current([flat] * len(d.synapses))
            a_exact = a_flat.unflatten(0, (T, B))
            chain = nn.Sequential(  # the float modules, BatchNorm unfolded; a CubaLIF's current
                *[  # (LI) is not one: _neuron runs it as the integer current u
                    g.module
                    for g in group.layers
                    if not (group.neuron is not None and g.role == "li")
                ]
            )
            if layer.neuron is None:
                if layer.li_readout:  # chain ends in the model's LI: V(t) per step, float units
                    exact = self._li_readout(d, a_exact)
                    scale = layer.v_scale
                else:
                    exact = a_exact + d.bias
                    scale = layer.a_scale
                out_int = z = exact
                if grad:
                    z = straight_through(
                        exact, chain((cur / layer.in_scale).to(pdtype)).to(STATE_DTYPE) * scale
                    )
                logits = z / scale
                continue
            cnt = Counters()
            cnt.add_count(wraps=wraps)
            a = a_exact
            bias = d.bias.expand(layer.out_shape) if d.bias.dim() else d.bias
            if grad:
                c0 = chain(torch.zeros((1, 1, *layer.in_shape), dtype=pdtype, device=device))[
                    0, 0
                ].to(STATE_DTYPE)
                a = straight_through(
                    a_exact,
                    (chain((cur / layer.in_scale).to(pdtype)).to(STATE_DTYPE) - c0) * layer.a_scale,
                )
                bias = straight_through(  # a current's bias: its steady state (quantize.py)
                    bias.expand(layer.out_shape).clone(),
                    c0 * layer.v_scale * du_to_tau_syn(layer.du),
                )
            s_all = self._neuron(d, group.lif, a=a, bias=bias, counters=cnt, grad=grad)
            spikes.append(s_all)
            counters.append(cnt)
            cur = s_all
        if (logits is None or out_int is None) and spikes:  # the last layer spikes: its
            logits = spikes[-1].flatten(2)  # spikes are the output, predictions their counts
            out_int = logits.detach().to(STATE_DTYPE)
        if logits is None or out_int is None:
            raise ValueError("QAT: the program has neither a readout layer nor neuron layers")
        return QATRun(
            logits,
            out_int.detach(),
            spikes,
            counters,
            prog,
            clipped,
            [l.name for l in prog.layers if l.neuron is not None],
        )

    def _run_graph(
        self, prog: IntProgram, prepared: list[PreparedLayer], x_int: torch.Tensor, clipped: int
    ) -> QATRun:
        """A graph model's forward pass (module docstring, "Graphs"): layers in program order,
        each summing its feed-forward synapses over all T steps and its recurrent self-edge step
        by step, as the reference simulator's non-latency schedule."""
        body = normal_graph(graph_body(self.model.body))  # the node forms graph_stages maps
        device = x_int.device
        pdtype = next(self.model.parameters()).dtype
        neuron_nodes = [n for n, m in body.nodes.items() if _is_neuron_node(m)]
        names = neuron_nodes + ([] if body.output in neuron_nodes else ["readout"])
        if names != [l.name for l in prog.layers]:
            raise ValueError(
                f"QAT: the graph's neuron nodes {names} do not line up with its integer "
                f"program's layers {[l.name for l in prog.layers]}"
            )
        grad = torch.is_grad_enabled()
        T, B = x_int.shape[:2]
        exact: dict[str, torch.Tensor] = {INPUT: x_int}  # integer values per source
        proxy_in: dict[str, torch.Tensor] = {INPUT: (x_int / prog.input_scale).to(pdtype)}
        spikes: dict[str, torch.Tensor] = {}
        counters: list[Counters] = []
        logits = out_int = None
        for k, d in enumerate(prepared):
            layer = d.layer
            readout = layer.neuron is None
            node = body.output if readout else layer.name
            a_exact = torch.zeros((T, B, *layer.out_shape), dtype=STATE_DTYPE, device=device)
            wraps = 0
            rec_syn: list[PreparedSynapse] = []  # the self-edge (its split parts: several)
            for e, syn in zip(prog.edges(k), d.synapses):
                if e.recurrent:
                    if e.source != layer.name:
                        raise ValueError(
                            f"QAT: layer {layer.name}: a recurrent edge from {e.source} (only "
                            "self-edges are supported)"
                        )
                    rec_syn.append(syn)
                    continue
                a_e, w_e = syn.apply(exact[e.source].flatten(0, 1))
                a_exact, wraps = a_exact + a_e.unflatten(0, (T, B)), wraps + w_e
            lif: LIF | None = None
            gains: list[Scale] = []
            if not readout:
                lif, _, gains = neuron_parts(body.nodes[node], node)

            def gain(z: torch.Tensor, gains: list[Scale] = gains) -> torch.Tensor:
                for g in gains:
                    z = g(z)
                return z

            drive = c0_drive = None
            if grad:
                zeros = {
                    n: torch.zeros((1, 1, *v.shape[2:]), dtype=pdtype, device=device)
                    for n, v in proxy_in.items()
                }
                drive = gain(_drive(body, node, proxy_in, readout=readout)).to(STATE_DTYPE)
                c0_drive = gain(_drive(body, node, zeros, readout=readout)).to(STATE_DTYPE)
            if readout and layer.li_readout:  # the output LI node: V(t) per step, float units
                out_int = z = self._li_readout(d, a_exact)
                if grad:
                    v_in = _drive(body, node, proxy_in, readout=False)
                    z = straight_through(
                        out_int, body.nodes[node](v_in).to(STATE_DTYPE) * layer.v_scale
                    )
                logits = z / layer.v_scale
                continue
            if readout:
                out_int = z = a_exact + d.bias
                if drive is not None:
                    z = straight_through(out_int, drive * layer.a_scale)
                logits = z / layer.a_scale
                continue
            cnt = Counters()
            cnt.add_count(wraps=wraps)
            a = a_exact
            bias = d.bias.expand(layer.out_shape) if d.bias.dim() else d.bias
            node_mod = body.nodes[node]
            rmod = node_mod.rec if isinstance(node_mod, Recurrent) else None
            assert rmod is None or isinstance(rmod, nn.Module)
            r0 = None  # rec(0): the rec map's own bias, part of the layer's bias
            if rmod is not None:
                r0 = rmod(torch.zeros((1, *layer.out_shape), dtype=pdtype, device=device))
            rec = None
            if rec_syn:
                if rmod is None or r0 is None:
                    raise ValueError(f"QAT: layer {layer.name}: a recurrent edge with no rec map")
                rec = _RecEdge(tuple(rec_syn), rmod, r0, gains, layer.a_scale)
            if drive is not None and c0_drive is not None:
                c0 = c0_drive[0, 0]
                if r0 is not None:
                    c0 = c0 + gain(r0)[0].to(STATE_DTYPE)
                a = straight_through(a_exact, (drive - c0_drive) * layer.a_scale)
                bias = straight_through(  # a current's bias: its steady state (quantize.py)
                    bias.expand(layer.out_shape).clone(),
                    c0 * layer.v_scale * du_to_tau_syn(layer.du),
                )
            s_all = self._neuron(d, lif, a=a, bias=bias, counters=cnt, grad=grad, rec=rec)
            spikes[layer.name] = s_all
            counters.append(cnt)
            exact[layer.name] = s_all.detach()
            proxy_in[layer.name] = s_all.to(pdtype)
        if logits is None or out_int is None:  # no readout: the output layer's spikes
            logits = spikes[prog.output_name()].flatten(2)
            out_int = logits.detach().to(STATE_DTYPE)
        return QATRun(
            logits,
            out_int.detach(),
            list(spikes.values()),
            counters,
            prog,
            clipped,
            list(spikes),
        )

    @staticmethod
    def _li_readout(d: PreparedLayer, a: torch.Tensor) -> torch.Tensor:
        """The LI readout's membrane (T, B, classes), membrane units, all T steps: the reference
        simulator's non-spiking compartment (``v(t) = decay(v(t-1), dv) + (a(t) << 6) + bias``;
        the quantiser proved that v neither saturates nor reaches vth << 6), run by
        :func:`~neurodeploy.quant.scan.run_layer` as the reference runs it."""
        with torch.no_grad():
            out = run_layer(d, current=a.detach()).out
        assert out is not None
        return out

    @staticmethod
    def _neuron(
        d: PreparedLayer,
        lif: LIF | None,
        *,
        a: torch.Tensor,
        bias: torch.Tensor,
        counters: Counters,
        grad: bool,
        rec: _RecEdge | None = None,
        fused: bool = True,
    ) -> torch.Tensor:
        """All T steps of one neuron layer: exact integers from neurodeploy.neuron.fixedpoint, proxies
        for the gradient (module docstring). ``rec``: a recurrent self-edge, whose current from
        the layer's spikes of step t-1 (zero at t = 0) joins ``a[t]`` (module docstring, "Graphs").

        Without ``rec``, the exact integers of all T steps come first, in one call of the
        reference simulator's layer-major run (:func:`~neurodeploy.quant.scan.run_layer`: the
        compiled integer loop on CPU), and only the proxies run step by step (not at all in
        evaluation, where the exact spikes are the result). With ``fused`` (the default) the
        proxies of all T steps are one autograd function instead
        (:func:`~neurodeploy.quant.qat_neuron.fused_neuron`: the same values and gradients,
        its backward a reverse-time recursion); ``fused=False`` keeps the step-by-step graph."""
        layer = d.layer
        T = a.shape[0]
        exact: LayerRun | None = None
        if rec is None:
            with torch.no_grad():
                exact = run_layer(
                    d,
                    current=a.detach(),
                    record_v=grad,
                    record_u=grad and layer.neuron != "mps",
                )
            counters.add_count(saturations=exact.saturations, wraps=exact.wraps)
            assert exact.spikes is not None
            if not grad:
                return exact.spikes.to(STATE_DTYPE)
        m = torch.zeros(a.shape[1:], dtype=STATE_DTYPE, device=a.device)
        s_prev = torch.zeros_like(m)
        u = torch.zeros_like(m)
        keep = dv_to_beta(layer.dv)
        keep_u = du_to_beta(layer.du)  # a CubaLIF current's decay; 0 without current (du 4095)
        u_p = torch.zeros_like(m)
        if layer.u_init_bias:  # the current starts at -bias (IntLayer.u_init_bias): exact and
            u = u - bias.detach()  # proxy, whose u_p + bias then ramps as the float current's
            u_p = u_p - bias  # bias b tau_syn (1 - beta_syn^(t+1)) does
        vth64 = float(vth_membrane(layer.vth))
        coef: torch.Tensor | float = float(layer.coef)
        if grad and lif is not None and lif.alpha is not None:
            coef = straight_through(
                torch.tensor(float(layer.coef), dtype=STATE_DTYPE, device=a.device),
                DECAY_UNIT * lif.alpha.to(STATE_DTYPE),
            )
        if fused and exact is not None:
            assert lif is not None and exact.spikes is not None and exact.v is not None
            spec = NeuronSpec(
                spikes=exact.spikes,
                v=exact.v,
                u=exact.u if layer.neuron != "mps" else None,
                keep=keep,
                keep_u=keep_u,
                coef=float(layer.coef),
                vth64=vth64,
                v_scale=float(layer.v_scale),
                reset_delay=bool(layer.reset_delay),
                detach_reset=bool(lif.params.detach_reset),
                u_init_bias=bool(layer.u_init_bias),
                surrogate=lif.params.surrogate,
            )
            return fused_neuron(a, bias, coef if isinstance(coef, torch.Tensor) else None, spec)
        bias_e = bias.detach()
        out = []
        for t in range(T):
            a_t = a[t]
            if rec is not None:  # the exact sum of all synapses, as PreparedLayer.current
                with torch.no_grad():
                    a_rec = torch.zeros_like(a_t, dtype=STATE_DTYPE)
                    for syn in rec.synapses:
                        a_s, wraps = syn.apply(s_prev.detach())
                        a_rec = a_rec + a_s
                        counters.add_count(wraps=wraps)
                a_t = (
                    straight_through(a_t.detach() + a_rec, a_t + rec.proxy(s_prev))
                    if grad
                    else a_t + a_rec
                )
            with torch.no_grad():
                if exact is not None:  # the exact values of step t, computed above
                    assert exact.spikes is not None and exact.v is not None
                    s_e = exact.spikes[t].bool()
                    m_e = exact.v[t].to(STATE_DTYPE)
                    if exact.u is not None:
                        u = exact.u[t].to(STATE_DTYPE)
                elif layer.neuron == "mps":
                    s_e, m_e, _ = mps_int_step(
                        a_t.detach(),
                        m.detach(),
                        dv=layer.dv,
                        vth=layer.vth,
                        bias=bias_e,
                        coef=layer.coef,
                        counters=counters,
                    )
                else:
                    s_e, u, m_e = lif_int_step(
                        a_t.detach(),
                        u,
                        m.detach(),
                        du=layer.du,
                        dv=layer.dv,
                        vth=layer.vth,
                        bias=bias_e,
                        counters=counters,
                        refractory=s_prev.detach() > 0 if layer.reset_delay else None,
                    )
            s_e = s_e.to(STATE_DTYPE)
            if not grad:
                m, s_prev = m_e, s_e
                out.append(s_e)
                continue
            if layer.neuron == "mps":
                u_p = act_in(a_t)
            else:  # the current's proxy (exact value u): u_p = beta_u u_p + a << 6
                u_p = straight_through(u, u_p * keep_u + act_in(a_t))
            h_p = m * keep + u_p + bias
            if layer.reset_delay:  # refractory step after a spike: v held at 0 (lif.py)
                h_p = h_p * (1 - s_prev.detach())
            assert lif is not None  # grad: the layer's float LIF gives the surrogate
            s = straight_through(s_e, lif.params.surrogate((h_p - vth64) / layer.v_scale))
            s_reset = s.detach() if lif.params.detach_reset else s
            post = h_p * (1 - s_reset)
            m = straight_through(m_e, (coef * m + (DECAY_UNIT - coef) * post) / DECAY_UNIT)
            s_prev = s
            out.append(s)
        return torch.stack(out)


def integer_accuracy(
    qnet: QATNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256
) -> float:
    """Accuracy of the integer program (eval mode: quantize_model's) on float inputs (T, N, ...)."""
    was = qnet.training
    qnet.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, x.shape[1], batch_size):
            r = qnet.run(x[:, i : i + batch_size])
            correct += int((r.output_int.sum(0).argmax(-1).cpu() == y[i : i + batch_size]).sum())
    qnet.train(was)
    return correct / max(1, x.shape[1])


__all__ = ["QATNet", "QATRun", "integer_accuracy", "programs_equal", "straight_through"]
