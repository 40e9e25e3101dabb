"""Quantise a float spiking model for a hardware spec: the integer program.

Per stage (neurodeploy/quant/stages.py) with weights W, bias b, threshold theta, beta = 1 - 1/tau,
smoothing alpha, and x_scale the integer units of one float unit of the stage's input
(``input_scale`` for graded first-layer input, 1 for spikes). The float <-> integer neuron
mapping is :mod:`neurodeploy.neuron.fixedpoint`'s (named in brackets):

    w_scale = weight_max / r             r = max|W| (or the given percentile of |W|)
    W_int   = 2 * round(W * w_scale / 2) even, in [weight_min, weight_max]; clipped ones counted
    e       = the largest weight exponent in [weight_exp_min, weight_exp_max] for which the
              threshold and the bias fit their bits (finest integer resolution) and the
              threshold leaves ``headroom_bits`` (default 3) below the 24-bit state: vth << 6 <=
              2^(23 - headroom_bits), so one step's input of up to 2^headroom_bits thresholds
              neither wraps the current nor saturates the voltage
    a_scale = w_scale * x_scale * 2^e    synaptic input a_int = (sum W_int x_int) << e ~ I * a_scale
    vth     = round(theta * a_scale)     (theta_to_vth; Lava compares v > vth << 6, v ~ H * a_scale * 64)
    bias    = round(b * a_scale * 64) = bias_mant << bias_exp      (bias_to_membrane, bias_exponent)
    dv      = round(4096 / tau) (tau_to_dv),  du = 4095 (DU_NO_CURRENT_MEMORY),
    coef    = round(4096 * alpha) (alpha_to_coef)

CubaLIF (a stage with ``syn_tau``: NIR CubaLIF, snnTorch ``Synaptic``; stages.py folds the gains
w_in dt/tau_syn and r dt/tau_mem into W and b). Float, per step, I the current and x = W s + b
(threshold units)::

    I(t) = beta_syn I(t-1) + x(t),   beta_syn = 1 - 1/tau_syn
    H(t) = beta_mem v(t-1) + I(t);   spike if H > theta; v = 0 on a spike (I is not reset)

Loihi's CUBA neuron, u in membrane units (u ~ I * v_scale, v ~ H * v_scale, v_scale = a_scale*64)::

    u <- decay(u, du + 1) + (a_in << 6);   v <- decay(v, dv) + u + bias

    du      = round(4096 / tau_syn) - 1 (tau_syn_to_du; Lava decays u by (du + 1) / 4096)
    dv, vth, W_int as above (the current adds nothing to the threshold's scale)
    e       as above with ceil(log2(tau_syn')) more bits of headroom: the current holds up to
            tau_syn' steps of input, so vth << 6 <= 2^(23 - headroom_bits - ceil(log2 tau_syn'))
    bias    = round(b * tau_syn' * a_scale * 64),  tau_syn' = 4096 / (du + 1) (du_to_tau_syn)

Lava adds the bias to v, not to u, so a float bias b (which enters the current) goes to v as the
current's steady state B = bias_mant << bias_exp ~ b tau_syn' v_scale, and the current starts at
u(-1) = -B instead of 0 (``IntLayer.u_init_bias``, Lava LIF's initial ``u``; at every sample
boundary too). Without input the current is then u_b(t) = decay^(t+1)(-B), and v receives

    u_b(t) + B = B (1 - r^(t+1)),   r = 1 - (du + 1) / 4096 = 1 - 1 / tau_syn'

in exact arithmetic: the float current's bias part b tau_syn (1 - beta_syn^(t+1)) (at the chip's
tau_syn', B's rounding aside), ramping up as the float one does. Lava's decay rounds toward
zero, so each step's decay of u_b leaves it at most one unit (membrane units) nearer zero:
0 <= u_b,int(t) - u_b(t) < 1 + r + ... + r^t < min(t + 1, tau_syn') units, i.e. below
tau_syn' / v_scale float units. (With u(-1) = 0, as before this flag, the bias is fully on from
step 0 while the float current ramps: off by b tau_syn beta_syn^(t+1) in step t, which a
chaotic layer never forgets: benchmarks/results/graphs.md.) The netx variant (``*-netx``) keeps
u(-1) = 0 and that error: netx's HDF5 has no initial current. With du = 4095 (no current)
tau_syn' = 1, no flag, and this is the LIF mapping above.

LI readout (a stage with ``readout_tau``: NIR LI, snnTorch membrane readouts, norse ``LICell``).
Float, per step, x = W s + b and the model's output V(t) = beta V(t-1) + x(t), beta = 1 - 1/tau;
the prediction is argmax_c sum_t V(t, c). On Loihi: a stock LIF compartment that never spikes,
its membrane v read every step as the output (``readout_kind`` "li", v ~ V * a_scale * 64)::

    u <- a_in << 6 (du = 4095);   v <- decay(v, dv) + u + bias;   never v > vth << 6

    dv = round(4096 / tau), vth = hw.vth_max (2^17 - 1: vth << 6 = 8388544), bias as a LIF's
    e  = the largest exponent (at most ``exp_cap``) with  M * 4096 <= dv * (vth << 6),
         M = max_i (ceil(sum_j |W_int[i, j]| x_max 2^e) << 6) + |bias_i|

Why it cannot fire: the decay rounds toward zero, so |decay(v, dv)| <= |v| (1 - dv/4096) and
|v(t)| <= M (1 + r + r^2 + ...) < M 4096 / dv <= vth << 6 (r = 1 - dv/4096). A threshold alone
would not do it: the 17-bit vth << 6 = 8388544 lies below v's saturation at 2^23 - 1 = 8388607,
so a saturated v would fire; the bound keeps v below vth << 6, hence also unsaturated, and u = a
<< 6 <= M below 2^23 (no wrap). The price is resolution: the exponent is chosen for the worst
case (every input at x_max every step), up to log2(tau) bits below a plain readout's. A readout
that no exponent in range fits, or dv = 0 (tau > 8192 steps: v unbounded), is refused by name.

Lava's Conv ignores weight_exp, so convolution stages use e >= 0 (handed to Lava as w << e);
where the limits would need e < 0, the weights get fewer levels instead (w_scale * 2^e, e = 0).
A spec that fixes the exponents (``fixed_weight_exp``, ``fixed_bias_exp``: the netx variant
``loihi2-netx``) gets them in every layer: an exponent the search puts below the fixed one is
spent on weight levels the same way, and weight levels are given up until the bias mantissa fits
at the fixed bias exponent. The readout stage keeps e = 0 (or the fixed one) and an integer bias
in a-units. Anything that does not fit (a threshold above 2^17 - 1 at the smallest exponent, a
bias beyond 13-bit mantissa << 7) raises an error naming the layer and the limit; weights beyond
the range (percentile scaling) are clipped and counted, never silently. ``exp_caps`` (per stage
name) bounds e from above: :mod:`neurodeploy.measure.calibrate` lowers a layer's cap until its
24-bit state neither saturates nor wraps on the user's inputs, or refuses naming layer and count.

Several synapses into one neuron layer (graph stages, :mod:`neurodeploy.quant.graph_stages`: a
residual sum, SEW's ADD distributed over the next conv, a recurrent self-edge). The layer's
a_scale = w_scale x_scale 2^e comes from its inline (primary) synapse as above. Each further edge
with float weights W_e reading a source of x_e integer units per float unit (``input_scale`` for
the input, 1 for spikes) gets

    e_e     = the smallest exponent in [weight_exp_min, weight_exp_max] (>= 0 for a convolution;
              the spec's fixed one where it fixes it) with  max|W_e| a_scale / (x_e 2^e_e) <=
              weight_max
    w_scale_e = a_scale / (x_e 2^e_e)   so  w_scale_e x_e 2^e_e = a_scale exactly
    W_int   = 2 round(W_e w_scale_e / 2)

so every edge's (sum W_int x) << e_e is in the layer's a-units and the sum is the float current's
integer. Error per weight: |W_int / w_scale_e - W_e| <= 1 / w_scale_e = 2^e_e x_e / a_scale (even
rounding: one integer step of 2 is 2 / w_scale_e, half of it either way), at most one bit above
the error 1 / w_scale of a lone synapse with the same max|W_e| (e_e is the smallest that fits, so
max|W_e| w_scale_e > weight_max / 2); a conv edge whose fitting exponent is negative takes e_e = 0
and fewer levels, as a conv layer does. An edge that would need e_e above weight_exp_max lowers
the layer's exponent cap by the excess and quantises the layer again (a warning names layer,
edge and exponent); where the layer cannot go lower (the range, or a fixed exponent) it is
refused by name. Headroom: each synapse may bring one step of up to 2^headroom_bits thresholds, so
the threshold rule reserves ceil(log2(number of synapses)) more bits (the sum of the edges' worst
cases; none for a chain, whose programs are unchanged).

An LI readout with several synapses (graph stages: its LI node reads a sum): for each candidate
exponent e of the inline synapse (from the top down, as above) every edge is quantised at the
layer's a_scale as above (e_e, W_int per edge; an e at which an edge would need e_e above the
range is skipped), and the bound M takes the sum of the edges' worst cases, since a = sum over
synapses of (sum_j W_int[i, j] x_j) << e_s and a flooring shift rounds each |term| up at most::

    M = max_i (sum over synapses s of ceil(sum_j |W_s,int[i, j]| x_max,s 2^e_s)) << 6 + |bias_i|

(x_max,s: the largest integer input of the synapse's source: the input's payload maximum, 1 for
spikes; i per neuron when all synapses are dense, else the sum of each synapse's largest row).
The same argument then keeps |v| < M 4096 / dv <= vth << 6: it cannot fire, saturate or wrap.

Weight precision beyond 8 bits (``weight_split`` K, opt-in): after a layer is quantised as above,
each of its synapses is written as K 8-bit parts at exponents e_k = max(e_{k-1} - 7, floor), all
in the layer's a-units, weight error <= 2^(e_{K-1} - e_0) / w_scale; the rule, the bound on K from
the exponent range and the cost are in :mod:`neurodeploy.quant.split`.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from neurodeploy.neuron.fixedpoint import (
    ACT_SHIFT,
    DECAY_UNIT,
    DU_NO_CURRENT_MEMORY,
    STATE_LIMIT,
    VTH_SHIFT,
    alpha_to_coef,
    bias_exponent,
    bias_to_mant_exp,
    bias_to_membrane,
    bias_value,
    du_to_tau_syn,
    tau_syn_to_du,
    tau_to_dv,
    theta_to_vth,
    to_synaptic_units,
    vth_membrane,
)
from neurodeploy.neuron.hardware import LOIHI2, NETX_SUFFIX, HardwareSpec
from neurodeploy.nn.graph import is_chain
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.counts import ann_macs
from neurodeploy.quant.graph_stages import graph_ann_macs, graph_stages
from neurodeploy.quant.program import INPUT, READOUT_LI, IntEdge, IntLayer, IntProgram
from neurodeploy.quant.split import META_KEY as SPLIT_META_KEY
from neurodeploy.quant.split import WeightSplit, check_split, split_program, splits_nothing
from neurodeploy.quant.stages import Stage, StageEdge, model_stages
from neurodeploy.quant.synapse import Synapse

if TYPE_CHECKING:
    from neurodeploy.data import TaskData


class QuantizationError(ValueError):
    """A value does not fit the hardware's format; the message names the layer and the limit."""


def weight_scale(w: np.ndarray, hw: HardwareSpec, percentile: float | None = None) -> float:
    """Integer weight units per float unit: the reference magnitude lands on ``hw.weight_max``."""
    a = np.abs(w)
    ref = (
        float(np.percentile(a, percentile)) if percentile is not None else float(a.max(initial=0.0))
    )
    return hw.weight_max / ref if ref > 0 else 1.0


def quantize_weights(w: np.ndarray, scale: float, hw: HardwareSpec) -> tuple[np.ndarray, int]:
    """Even integers 2*round(w*scale/2) within the spec's range; returns (weights, number clipped)."""
    q = 2 * np.rint(w * scale / 2)
    clipped = int(((q > hw.weight_max) | (q < hw.weight_min)).sum())
    return np.clip(q, hw.weight_min, hw.weight_max).astype(np.int32), clipped


def _stage_weights(st: Stage, ws: float, hw: HardwareSpec) -> tuple[Synapse, int]:
    """The stage's synapse with its kernel quantised at ``ws``, and the number of weights clipped,
    counted in the deployed (pool-folded) kernel: a pooled kernel's entry stands for prod(pool)."""
    w_int, clipped = quantize_weights(st.synapse.weight, ws, hw)
    return dataclasses.replace(st.synapse, weight=w_int), clipped * st.synapse.pool_size


def _requantize(
    st: Stage, ws: float, hw: HardwareSpec, common: dict[str, Any]
) -> tuple[Synapse, int]:
    """Weights at a new scale ``ws``, recorded in ``common`` (the IntLayer's shared fields)."""
    synapse, clipped = _stage_weights(st, ws, hw)
    common.update(synapse=synapse, w_scale=ws, clipped_weights=clipped)
    return synapse, clipped


def quantize_stage(
    st: Stage,
    x_scale: float,
    hw: HardwareSpec,
    percentile: float | None,
    *,
    exp_cap: int | None = None,
    x_max: int = 1,
    input_scale: float = 1.0,
    input_max: int = 1,
) -> IntLayer:
    """The integer layer of one stage: :func:`_quantize_primary` for its inline synapse, then,
    for a graph stage, each ``extra`` edge at the layer's a_scale (module docstring, "Several
    synapses into one neuron layer"); ``input_scale``, ``input_max``: an edge from the input's
    x_e and largest integer value. An edge that needs an exponent above the range lowers the
    layer's exponent (a warning says so). An LI readout's edges join its bound (module
    docstring, "An LI readout with several synapses")."""
    if not st.extra:
        return _quantize_primary(st, x_scale, hw, percentile, exp_cap=exp_cap, x_max=x_max)
    if st.neuron is None and st.readout_tau is not None:
        ws = weight_scale(st.synapse.pool_folded().weight, hw, percentile)
        return _li_readout(
            st,
            ws,
            x_scale=x_scale,
            x_max=x_max,
            hw=hw,
            exp_cap=exp_cap,
            edge_inputs={INPUT: (input_scale, input_max)},
        )
    headroom = math.ceil(math.log2(1 + len(st.extra)))
    cap = exp_cap
    while True:
        layer = _quantize_primary(
            st, x_scale, hw, percentile, exp_cap=cap, x_max=x_max, edge_bits=headroom
        )
        try:
            layer.extra = [
                _quantize_edge(
                    e, layer.a_scale, x_e=input_scale if e.source == INPUT else 1.0, hw=hw
                )
                for e in st.extra
            ]
            return layer
        except _EdgeOverRange as over:
            cap = layer.weight_exp - over.excess
            if cap < hw.weight_exp_min or hw.fixed_weight_exp is not None:
                raise QuantizationError(
                    f"layer {st.name}: edge from {over.source} needs weight exponent "
                    f"{over.needed} > {hw.weight_exp_max} at the layer's a_scale, and the "
                    f"layer's exponent cannot go {over.excess} lower (range "
                    f"[{hw.weight_exp_min}, {hw.weight_exp_max}]"
                    + (
                        f", fixed {hw.fixed_weight_exp} on {hw.name}"
                        if hw.fixed_weight_exp is not None
                        else ""
                    )
                    + ")"
                ) from None
            warnings.warn(
                f"layer {st.name}: edge from {over.source} needs weight exponent {over.needed} "
                f"> {hw.weight_exp_max}; lowering the layer's weight exponent to at most {cap}",
                stacklevel=2,
            )


class _EdgeOverRange(Exception):
    """An edge's weights need an exponent above the range at the layer's a_scale."""

    def __init__(self, source: str, needed: int, excess: int) -> None:
        super().__init__(source, needed, excess)
        self.source, self.needed, self.excess = source, needed, excess


def _quantize_edge(edge: StageEdge, a_scale: float, *, x_e: float, hw: HardwareSpec) -> IntEdge:
    """One further synapse into a layer at its ``a_scale`` (module docstring): the smallest
    exponent e_e in range (>= 0 for a convolution; the spec's fixed one if it has one) with
    max|W_e| a_scale / (x_e 2^e_e) <= weight_max, W_int = even round(W_e a_scale / (x_e 2^e_e))."""
    r = float(np.abs(edge.synapse.pool_folded().weight).max(initial=0.0))
    lo = hw.weight_exp_min if edge.kind == "dense" else max(hw.weight_exp_min, 0)
    if hw.fixed_weight_exp is not None:
        candidates = [hw.fixed_weight_exp]
    else:
        candidates = list(range(lo, hw.weight_exp_max + 1))
    found = next((e for e in candidates if r * a_scale / (x_e * 2.0**e) <= hw.weight_max), None)
    if found is None:
        needed = math.ceil(math.log2(r * a_scale / (x_e * hw.weight_max)))
        while r * a_scale / (x_e * 2.0**needed) > hw.weight_max:
            needed += 1
        raise _EdgeOverRange(edge.source, needed, needed - candidates[-1])
    ws = a_scale / (x_e * 2.0**found)
    w_int, clipped = quantize_weights(edge.synapse.weight, ws, hw)
    return IntEdge(
        source=edge.source,
        synapse=dataclasses.replace(edge.synapse, weight=w_int),
        weight_exp=found,
        recurrent=edge.recurrent,
        w_scale=ws,
        in_scale=x_e,
        clipped_weights=clipped * edge.synapse.pool_size,
    )


def _quantize_primary(
    st: Stage,
    x_scale: float,
    hw: HardwareSpec,
    percentile: float | None,
    *,
    exp_cap: int | None = None,
    x_max: int = 1,
    edge_bits: int = 0,
) -> IntLayer:
    """The integer layer of one stage whose input carries ``x_scale`` integer units per float unit
    (module docstring). ``exp_cap``: the largest weight exponent the search may choose (the
    overflow search of :mod:`neurodeploy.measure.calibrate` lowers it; a cap below the spec's fixed
    or Lava's conv exponent is spent on weight levels, as in the module docstring). ``x_max``: the
    largest integer input magnitude (1 for spikes; bounds an LI readout's membrane).
    ``edge_bits``: more threshold headroom for a layer with several synapses (module docstring)."""
    # the scale from the deployed kernel: a percentile counts a pooled kernel's entries prod(pool) times
    ws = weight_scale(st.synapse.pool_folded().weight, hw, percentile)
    if st.neuron is None and st.readout_tau is not None:
        return _li_readout(st, ws, x_scale=x_scale, x_max=x_max, hw=hw, exp_cap=exp_cap)
    synapse, clipped = _stage_weights(st, ws, hw)
    common: dict[str, Any] = dict(
        name=st.name, synapse=synapse, w_scale=ws, in_scale=x_scale, clipped_weights=clipped
    )
    if (
        st.neuron is None
    ):  # readout: a = (sum W x) << 0 (or the spec's fixed exponent), bias in a-units
        e_out = hw.fixed_weight_exp or 0
        a_scale = ws * x_scale * 2.0**e_out
        return IntLayer(
            **common,
            weight_exp=e_out,
            neuron=None,
            a_scale=a_scale,
            readout_bias=to_synaptic_units(st.bias, a_scale).astype(np.int64),
        )
    p = st.neuron.params
    if p.reset != "hard":
        raise QuantizationError(
            f"layer {st.name}: soft reset is not what Loihi's LIF does (hard reset "
            "to 0); train with reset='hard'"
        )
    if p.mps_mode != "reset":
        raise QuantizationError(
            f"layer {st.name}: MPS reading {p.mps_mode!r} has no integer mapping; "
            "only the smoothed reset state ('reset') is deployable"
        )
    du = DU_NO_CURRENT_MEMORY
    if st.syn_tau is not None:  # CubaLIF: the current decays on the chip (module docstring)
        if st.neuron.alpha_value() > 0:
            raise QuantizationError(
                f"layer {st.name}: a synaptic current (CubaLIF) with membrane smoothing has no "
                "integer mapping; the smoothed neuron has no current"
            )
        try:
            du = tau_syn_to_du(st.syn_tau)
        except ValueError as err:
            raise QuantizationError(f"layer {st.name}: {err}") from err
    # the current's steady state: b * 4096 / (du + 1); a factor of 1 without current
    bias_full = _bias_full(st) * du_to_tau_syn(du)
    e = _best_exponent(
        st,
        ws,
        theta=p.theta,
        x_scale=x_scale,
        hw=hw,
        bias_full=bias_full,
        exp_cap=exp_cap,
        current_bits=math.ceil(math.log2(du_to_tau_syn(du))) + edge_bits,
    )
    fixed_e = hw.fixed_weight_exp
    if fixed_e is not None and e != fixed_e:
        # e.g. netx re-derives each layer's exponent from the stored 8-bit weights (effectively 0):
        # express the exponent in the weights' scale instead (fewer levels when e < fixed_e)
        ws = ws * 2.0 ** min(e - fixed_e, 0)
        _requantize(st, ws, hw, common)
        e = fixed_e
    if e < 0 and st.kind != "dense":
        # Lava's Conv ignores weight_exp; a non-negative exponent is folded into the weights handed
        # to it (w << e), a negative one cannot be: spend weight bits instead (fewer levels).
        ws = ws * 2.0**e
        _requantize(st, ws, hw, common)
        e = 0
    a_scale = ws * x_scale * 2.0**e
    fixed_bexp = hw.fixed_bias_exp
    if (
        fixed_bexp is not None
    ):  # give up weight levels until the bias mantissa fits the fixed exponent
        peak = float(np.abs(bias_to_membrane(bias_full, a_scale)).max(initial=0.0))
        shrink = (
            max(0, math.ceil(math.log2(peak / (hw.bias_mant_max << fixed_bexp)))) if peak > 0 else 0
        )
        if shrink:
            ws = ws / 2.0**shrink
            _requantize(st, ws, hw, common)
            a_scale = ws * x_scale * 2.0**e
    vth = theta_to_vth(p.theta, a_scale)
    if vth < 1:
        raise QuantizationError(
            f"layer {st.name}: threshold {p.theta} rounds to 0 (vth must be >= 1)"
        )
    try:  # the smallest exponent that fits (the search above made sure one does), or the fixed one
        bias_mant, bexp = bias_to_mant_exp(bias_full, a_scale, hw, exp=fixed_bexp)
    except ValueError as err:
        only = f" (the only bias exponent {hw.name} uses)" if fixed_bexp is not None else ""
        raise QuantizationError(f"layer {st.name}: {err}{only}") from err
    alpha = st.neuron.alpha_value()
    return IntLayer(
        **common,
        weight_exp=e,
        neuron="mps" if alpha > 0 else "lif",
        du=du,
        dv=tau_to_dv(p.tau),
        vth=vth,
        bias_mant=bias_mant,
        bias_exp=bexp,
        coef=alpha_to_coef(alpha),
        a_scale=a_scale,
        reset_delay=p.reset_delay,  # snnTorch's delayed reset: one refractory step (lif.py)
        # a CubaLIF's bias carried exactly: the current starts at -bias (module docstring);
        # netx's HDF5 has no initial current, its variant keeps the steady state from step 0
        u_init_bias=bool(
            du < DU_NO_CURRENT_MEMORY and np.any(bias_mant) and not hw.name.endswith(NETX_SUFFIX)
        ),
    )


def _row_bounds(synapse: Synapse, weight_exp: int, x_max: int) -> np.ndarray:
    """Per output (neuron, or channel of a conv), ceil(sum_j |W_int[i, j]| x_max 2^e): the
    largest |a| this synapse adds (a flooring shift rounds |a| up at most)."""
    w = np.abs(synapse.pool_folded().weight.astype(np.float64))
    row_sum = w.reshape(w.shape[0], -1).sum(1) * x_max
    bound: np.ndarray = np.ceil(row_sum * 2.0**weight_exp)
    return bound


def _li_readout(
    st: Stage,
    ws: float,
    *,
    x_scale: float,
    x_max: int,
    hw: HardwareSpec,
    exp_cap: int | None,
    edge_inputs: Mapping[str, tuple[float, int]] | None = None,
) -> IntLayer:
    """The LI readout's integer layer (module docstring, "LI readout"): the largest exponent at
    which the membrane provably stays at or below vth_max << 6. A convolution's negative exponent
    and a spec's fixed one are spent on weight levels (as for a LIF). A graph stage's ``extra``
    edges are quantised at each candidate's a_scale and join the bound (module docstring, "An LI
    readout with several synapses"); ``edge_inputs``: (x_e, x_max) per source other than spikes
    (the input), (1, 1) for the rest."""
    assert st.readout_tau is not None
    try:
        dv = tau_to_dv(st.readout_tau)
    except ValueError as err:
        raise QuantizationError(f"layer {st.name}: LI readout: {err}") from err
    if dv == 0:
        raise QuantizationError(
            f"layer {st.name}: LI readout tau {st.readout_tau:g} steps gives dv = 0 (tau > "
            f"{2 * DECAY_UNIT} steps): its membrane is an unbounded sum; use a shorter tau"
        )
    vth = hw.vth_max
    limit = dv * vth_membrane(vth)  # M * 4096 must not exceed it
    fixed = hw.fixed_weight_exp
    top = hw.weight_exp_max if exp_cap is None else min(exp_cap, hw.weight_exp_max)
    if fixed is not None:
        top = min(top, fixed)
    for e in range(top, hw.weight_exp_min - 1, -1):
        e_real = fixed if fixed is not None else (max(e, 0) if st.kind != "dense" else e)
        ws_e = ws * 2.0 ** (e - e_real)  # what the exponent cannot do, the weights do
        synapse, clipped = _stage_weights(st, ws_e, hw)
        a_scale = ws_e * x_scale * 2.0**e_real
        try:
            mant, bexp = bias_to_mant_exp(_bias_full(st), a_scale, hw, exp=hw.fixed_bias_exp)
        except ValueError:
            continue
        try:
            extra = [
                _quantize_edge(
                    edge,
                    a_scale,
                    x_e=(edge_inputs or {}).get(edge.source, (1.0, 1))[0],
                    hw=hw,
                )
                for edge in st.extra
            ]
        except _EdgeOverRange:
            continue  # a lower exponent (smaller a_scale) needs smaller edge exponents
        bounds = [_row_bounds(synapse, e_real, x_max)] + [
            _row_bounds(x.synapse, x.weight_exp, (edge_inputs or {}).get(x.source, (1.0, 1))[1])
            for x in extra
        ]
        n_out = synapse.weight.shape[0]
        if all(b.shape == (n_out,) for b in bounds) and all(
            x.synapse.kind == synapse.kind for x in extra
        ):
            a_max = np.sum(bounds, axis=0)  # per output (neuron or channel)
        else:  # differing layouts: each synapse's largest row
            a_max = np.full(n_out, sum(float(b.max(initial=0.0)) for b in bounds))
        b_max = np.abs(bias_value(mant, bexp)).reshape(n_out, -1).max(1, initial=0)
        m = (a_max.astype(np.int64) << ACT_SHIFT) + b_max
        if int(m.max(initial=0)) * DECAY_UNIT > limit:
            continue
        return IntLayer(
            name=st.name,
            synapse=synapse,
            w_scale=ws_e,
            in_scale=x_scale,
            clipped_weights=clipped,
            weight_exp=e_real,
            neuron=None,
            readout_kind=READOUT_LI,
            du=DU_NO_CURRENT_MEMORY,
            dv=dv,
            vth=vth,
            bias_mant=mant,
            bias_exp=bexp,
            a_scale=a_scale,
            extra=extra,
        )
    raise QuantizationError(
        f"layer {st.name}: LI readout: no weight exponent in [{hw.weight_exp_min}, {top}] keeps "
        f"its membrane provably below vth_max << 6 = {vth_membrane(vth)} (tau {st.readout_tau:g} "
        f"steps, dv {dv}) with the bias within a {hw.bias_mant_bits}-bit mantissa"
    )


def _bias_full(st: Stage) -> np.ndarray:
    """The stage's float bias per neuron (out_shape): a conv's per-channel bias broadcast."""
    if st.kind == "dense":
        return st.bias
    return np.broadcast_to(st.bias.reshape(-1, *([1] * (len(st.out_shape) - 1))), st.out_shape)


HEADROOM_BITS = 3


def _best_exponent(
    st: Stage,
    ws: float,
    *,
    theta: float,
    x_scale: float,
    hw: HardwareSpec,
    bias_full: np.ndarray,
    headroom_bits: int = HEADROOM_BITS,
    exp_cap: int | None = None,
    current_bits: int = 0,
) -> int:
    """The largest weight exponent (at most ``exp_cap``) at which the threshold ``theta`` (with
    headroom) and the bias fit. ``current_bits`` = ceil(log2(tau_syn')) more headroom for a
    CubaLIF current, which holds up to tau_syn' = 4096 / (du + 1) steps of input (else 0)."""
    # vth << 6 <= 2^(23 - headroom_bits - current_bits): below the 24-bit state
    vth_cap = min(hw.vth_max, STATE_LIMIT >> (VTH_SHIFT + headroom_bits + current_bits))
    top = hw.weight_exp_max if exp_cap is None else min(exp_cap, hw.weight_exp_max)
    for e in range(top, hw.weight_exp_min - 1, -1):
        a_scale = ws * x_scale * 2.0**e
        if theta_to_vth(theta, a_scale) > vth_cap:
            continue
        if bias_exponent(bias_to_membrane(bias_full, a_scale), hw) is None:
            continue
        return e
    raise QuantizationError(
        f"layer {st.name}: no weight exponent in [{hw.weight_exp_min}, "
        f"{top}] keeps the threshold within {hw.threshold_bits} bits "
        f"(<= {hw.vth_max}; <= {vth_cap} with {headroom_bits} bits of headroom) and "
        f"the bias within a {hw.bias_mant_bits}-bit "
        f"mantissa << {hw.bias_exp_range[1]}"
    )


def input_settings(task: TaskData) -> dict[str, Any]:
    """:func:`quantize_model`'s input keywords for a task: binary spikes for event tasks, graded
    payloads for analog ones (``input_range`` = the largest |x| of the training set,
    ``input_signed`` when it has values below zero): the rule of
    :func:`neurodeploy.data.inputs.infer_input_settings`, shared with the user's data."""
    from neurodeploy.data.inputs import infer_input_settings

    return infer_input_settings(task.x_train, temporal=task.temporal).as_kwargs()


def quantize_model(
    model: SpikingNet,
    hw: HardwareSpec = LOIHI2,
    *,
    input_kind: str = "binary",
    input_range: float = 1.0,
    input_signed: bool = False,
    percentile: float | None = None,
    weight_split: WeightSplit = 1,
) -> IntProgram:
    """The integer program of ``model`` for ``hw``. ``input_kind`` "binary" (event spikes) or
    "graded" (analog input as ``hw.graded_spike_bits``-bit payloads; ``input_range`` = the largest
    |x| expected, mapped to the largest payload; ``input_signed`` for inputs below zero).
    ``hw = LOIHI2_NETX`` (``neurodeploy.neuron.hardware.netx_variant``) restricts the program to
    what lava-dl netx HDF5 expresses: weight exponent 0 and bias exponent 6 in every layer.
    ``weight_split`` K (an int, or per layer name): each synapse as K 8-bit parts at exponents
    7 apart (:mod:`neurodeploy.quant.split`: ~7 more bits of weight precision per part, at K
    times the synaptic memory and operations); 1, the default, splits nothing."""
    check_split(weight_split, hw)
    if input_kind not in ("binary", "graded"):
        raise ValueError(f"input_kind must be 'binary' or 'graded', got {input_kind!r}")
    if percentile is not None and not (0 < percentile <= 100):
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if input_kind == "graded":
        if hw.graded_spike_bits < 2:
            raise QuantizationError(
                f"input: {hw.name} has no graded spikes; encode the input as " "binary spikes"
            )
        if not (input_range > 0 and math.isfinite(input_range)):
            raise ValueError(f"input_range must be > 0, got {input_range}")
        top = 2 ** (hw.graded_spike_bits - 1) - 1 if input_signed else 2**hw.graded_spike_bits - 1
        in_scale = top / input_range
    else:
        in_scale = 1.0
    header = IntProgram(
        layers=[],
        hardware=hw.name,
        input_kind=input_kind,
        input_scale=in_scale,
        input_bits=hw.graded_spike_bits if input_kind == "graded" else 1,
        input_shape=tuple(model.input_shape),
        num_classes=model.num_classes,
        input_signed=bool(input_signed and input_kind == "graded"),
        meta={
            "model": model.name,
            "percentile": percentile,
            # what an ANN of the model's own architecture computes per pass; the
            # folded stages above are larger (neurodeploy.measure.profiling reads this)
            "ann_macs": ann_macs(model) if is_chain(model) else graph_ann_macs(model),
        },
    )
    if not splits_nothing(weight_split):  # read by quantize_stages
        header.meta[SPLIT_META_KEY] = (
            dict(weight_split) if isinstance(weight_split, Mapping) else int(weight_split)
        )
    stages = model_stages(model) if is_chain(model) else graph_stages(model)
    return quantize_stages(stages, header, hw, percentile)


def quantize_stages(
    stages: list[Stage],
    header: IntProgram,
    hw: HardwareSpec,
    percentile: float | None = None,
    *,
    exp_caps: Mapping[str, int] | None = None,
) -> IntProgram:
    """The integer program of ``stages`` with ``header``'s input settings and meta (its layers are
    ignored). The first stage receives the input at ``header.input_scale``, later ones binary spikes.
    ``exp_caps``: per stage name, the largest weight exponent allowed (:func:`quantize_stage`).
    A ``weight_split`` in ``header.meta`` (:func:`quantize_model`) splits every layer's synapses
    after it is quantised (:func:`neurodeploy.quant.split.split_program`)."""
    caps = exp_caps or {}
    layers = []
    x_scale = header.input_scale
    x_max = 2**header.input_bits - 1 if header.input_kind == "graded" else 1
    in_max = 2**header.input_bits - 1 if header.input_kind == "graded" else 1
    for st in stages:
        if st.source is not None:  # a graph stage: its inline synapse's source decides
            from_input = st.source == INPUT
            x_scale, x_max = (header.input_scale, in_max) if from_input else (1.0, 1)
        layers.append(
            quantize_stage(
                st,
                x_scale,
                hw,
                percentile,
                exp_cap=caps.get(st.name),
                x_max=x_max,
                input_scale=header.input_scale,
                input_max=in_max,
            )
        )
        layers[-1].source = st.source
        x_scale, x_max = 1.0, 1  # later stages receive binary spikes
    program = dataclasses.replace(header, layers=layers, meta=dict(header.meta))
    split = header.meta.get(SPLIT_META_KEY, 1)
    if not splits_nothing(split):
        program = split_program(program, stages, split, hw)
    return program
