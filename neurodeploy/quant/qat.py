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

so a weight's gradient is that of the float network evaluated on the integer network's spikes
(the usual straight-through estimator), and the smoothing coefficient alpha stays trainable.
BatchNorm is used in its inference form throughout (running statistics frozen): the wrapped model
is kept in eval mode, because the chip runs the folded weights.
"""

from __future__ import annotations

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
from neurodeploy.nn.layers import LIF
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import LayerGroup, layer_groups
from neurodeploy.quant.prepared import STATE_DTYPE, prepare
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.quant.quantize import quantize_model, quantize_stages
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
    biases, coefficients)."""
    if len(a.layers) != len(b.layers):
        return False
    for la, lb in zip(a.layers, b.layers):
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
    integer output (T, B, classes), spikes per neuron layer (T, B, *shape; 0/1 float64 carrying
    gradients), overflow counters per neuron layer, the program that was run and the number of
    input values clipped to the payload range. A program without a readout (its last layer
    spikes) gives that layer's spikes (T, B, neurons) as both logits and integer output."""

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
        hw: hardware spec (a netx variant, e.g. ``LOIHI2_NETX``, trains in netx's formats);
            input_kind, input_range, input_signed, percentile: as
            :func:`~neurodeploy.quant.quantize.quantize_model`.
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
        )
        self._exact_cache: tuple[tuple[int, ...], IntProgram] | None = None
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
            return quantize_stages(model_stages(self.model), self._header, self.hw, self.percentile)
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
        if prog.layers and prog.layers[-1].li_readout:
            raise ValueError(
                f"QAT: layer {prog.layers[-1].name}: an LI readout has no quantisation-aware "
                "training path yet; quantise it after training (quantize_model)"
            )
        prepared = prepare(prog, device)
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
            a_flat, wraps = d.synapse(cur.detach().flatten(0, 1))
            a_exact = a_flat.unflatten(0, (T, B))
            chain = nn.Sequential(  # the float modules, BatchNorm unfolded; a CubaLIF's current
                *[  # (LI) is not one: _neuron runs it as the integer current u
                    g.module
                    for g in group.layers
                    if not (group.neuron is not None and g.role == "li")
                ]
            )
            if layer.neuron is None:
                out_int = a_exact + d.bias
                z = out_int
                if grad:
                    z = straight_through(
                        out_int,
                        chain((cur / layer.in_scale).to(pdtype)).to(STATE_DTYPE) * layer.a_scale,
                    )
                logits = z / layer.a_scale
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
            s_all = self._neuron(layer, group.lif, a=a, bias=bias, counters=cnt, grad=grad)
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

    @staticmethod
    def _neuron(
        layer: IntLayer,
        lif: LIF | None,
        *,
        a: torch.Tensor,
        bias: torch.Tensor,
        counters: Counters,
        grad: bool,
    ) -> torch.Tensor:
        """All T steps of one neuron layer: exact integers from neurodeploy.neuron.fixedpoint, proxies
        for the gradient (module docstring)."""
        T = a.shape[0]
        m = torch.zeros(a.shape[1:], dtype=STATE_DTYPE, device=a.device)
        u = torch.zeros_like(m)
        keep = dv_to_beta(layer.dv)
        keep_u = du_to_beta(layer.du)  # a CubaLIF current's decay; 0 without current (du 4095)
        u_p = torch.zeros_like(m)
        vth64 = float(vth_membrane(layer.vth))
        coef: torch.Tensor | float = float(layer.coef)
        if grad and lif is not None and lif.alpha is not None:
            coef = straight_through(
                torch.tensor(float(layer.coef), dtype=STATE_DTYPE, device=a.device),
                DECAY_UNIT * lif.alpha.to(STATE_DTYPE),
            )
        bias_e = bias.detach()
        out = []
        for t in range(T):
            with torch.no_grad():
                if layer.neuron == "mps":
                    s_e, m_e, _ = mps_int_step(
                        a[t].detach(),
                        m.detach(),
                        dv=layer.dv,
                        vth=layer.vth,
                        bias=bias_e,
                        coef=layer.coef,
                        counters=counters,
                    )
                else:
                    s_e, u, m_e = lif_int_step(
                        a[t].detach(),
                        u,
                        m.detach(),
                        du=layer.du,
                        dv=layer.dv,
                        vth=layer.vth,
                        bias=bias_e,
                        counters=counters,
                    )
            s_e = s_e.to(STATE_DTYPE)
            if not grad:
                m = m_e
                out.append(s_e)
                continue
            if layer.neuron == "mps":
                u_p = act_in(a[t])
            else:  # the current's proxy (exact value u): u_p = beta_u u_p + a << 6
                u_p = straight_through(u, u_p * keep_u + act_in(a[t]))
            h_p = m * keep + u_p + bias
            assert lif is not None  # grad: the layer's float LIF gives the surrogate
            s = straight_through(s_e, lif.params.surrogate((h_p - vth64) / layer.v_scale))
            s_reset = s.detach() if lif.params.detach_reset else s
            post = h_p * (1 - s_reset)
            m = straight_through(m_e, (coef * m + (DECAY_UNIT - coef) * post) / DECAY_UNIT)
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
