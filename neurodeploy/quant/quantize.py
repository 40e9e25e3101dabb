"""Quantise a float spiking model (or a NIR graph) for a hardware spec: the integer program.

Per stage (neurodeploy/quant/stages.py) with weights W, bias b, threshold theta, beta = 1 - 1/tau,
smoothing alpha, and x_scale the integer units of one float unit of the stage's input
(``input_scale`` for graded first-layer input, 1 for spikes):

    w_scale = weight_max / r             r = max|W| (or the given percentile of |W|)
    W_int   = 2 * round(W * w_scale / 2) even, in [weight_min, weight_max]; clipped ones counted
    e       = the largest weight exponent in [weight_exp_min, weight_exp_max] for which the
              threshold and the bias fit their bits (finest integer resolution) and the
              threshold leaves ``headroom_bits`` (default 3) below the 24-bit state: vth << 6 <=
              2^(23 - headroom_bits), so one step's input of up to 2^headroom_bits thresholds
              neither wraps the current nor saturates the voltage
    a_scale = w_scale * x_scale * 2^e    synaptic input a_int = (sum W_int x_int) << e ~ I * a_scale
    vth     = round(theta * a_scale)     (Lava compares v > vth << 6, v ~ H * a_scale * 64)
    bias    = round(b * a_scale * 64) = bias_mant << bias_exp
    dv      = round(4096 / tau),  du = 4095 (no synaptic current memory),  coef = round(4096 * alpha)

Lava's Conv ignores weight_exp, so convolution stages use e >= 0 (handed to Lava as w << e);
where the limits would need e < 0, the weights get fewer levels instead (w_scale * 2^e, e = 0).
The readout stage keeps e = 0 and an integer bias in a-units. Anything that does not fit (a
threshold above 2^17 - 1 at the smallest exponent, a bias beyond 13-bit mantissa << 7) raises
an error naming the layer and the limit; weights beyond the range (percentile scaling) are
clipped and counted, never silently.
"""
from __future__ import annotations

import dataclasses
import math
import os

import nir
import numpy as np

from neurodeploy.neuron.hardware import LOIHI2, HardwareSpec
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.stages import Stage, model_stages


class QuantizationError(ValueError):
    """A value does not fit the hardware's format; the message names the layer and the limit."""


def weight_scale(w: np.ndarray, hw: HardwareSpec, percentile: float | None = None) -> float:
    """Integer weight units per float unit: the reference magnitude lands on ``hw.weight_max``."""
    a = np.abs(w)
    ref = float(np.percentile(a, percentile)) if percentile is not None else float(a.max(initial=0.0))
    return hw.weight_max / ref if ref > 0 else 1.0


def quantize_weights(w: np.ndarray, scale: float, hw: HardwareSpec) -> tuple[np.ndarray, int]:
    """Even integers 2*round(w*scale/2) within the spec's range; returns (weights, number clipped)."""
    q = 2 * np.rint(w * scale / 2)
    clipped = int(((q > hw.weight_max) | (q < hw.weight_min)).sum())
    return np.clip(q, hw.weight_min, hw.weight_max).astype(np.int32), clipped


def _bias_fits(b_v: np.ndarray, hw: HardwareSpec) -> int | None:
    """The smallest bias exponent with every |round(b_v / 2^exp)| <= mantissa max, or None."""
    peak = float(np.abs(b_v).max(initial=0.0))
    lo, hi = hw.bias_exp_range
    for exp in range(lo, hi + 1):
        if np.abs(np.rint(b_v / 2.0 ** exp)).max(initial=0.0) <= hw.bias_mant_max:
            return exp
    return None if peak > 0 else lo


NETX_BIAS_EXP = 6   # lava-dl netx builds every LIF with bias_exp = 6 (netx/hdf5.py get_neuron_params)


def quantize_stage(st: Stage, x_scale: float, hw: HardwareSpec, percentile: float | None,
                   netx: bool = False) -> IntLayer:
    ws = weight_scale(st.weight, hw, percentile)
    w_int, clipped = quantize_weights(st.weight, ws, hw)
    common = dict(name=st.name, kind=st.kind, weight=w_int, in_shape=st.in_shape, out_shape=st.out_shape,
                  stride=st.stride, padding=st.padding, groups=st.groups, pool=st.pool, w_scale=ws, in_scale=x_scale,
                  clipped_weights=clipped)
    if st.neuron is None:  # readout: a = (sum W x) << 0, bias in a-units
        a_scale = ws * x_scale
        return IntLayer(**common, weight_exp=0, neuron=None, a_scale=a_scale,
                        readout_bias=np.rint(st.bias * a_scale).astype(np.int64))
    p = st.neuron.params
    if p.reset != "hard":
        raise QuantizationError(f"layer {st.name}: soft reset is not what Loihi's LIF does (hard reset to 0); "
                                "train with reset='hard'")
    if p.mps_mode != "reset":
        raise QuantizationError(f"layer {st.name}: MPS reading {p.mps_mode!r} has no integer mapping; "
                                "only the smoothed reset state ('reset') is deployable")
    bias_full = np.broadcast_to(st.bias.reshape(-1, *([1] * (len(st.out_shape) - 1))), st.out_shape) \
        if st.kind != "dense" else st.bias
    e = _best_exponent(st, ws, x_scale, hw, bias_full)
    if netx and e != 0:
        # netx re-derives each layer's exponent from the stored 8-bit weights (effectively 0):
        # express the exponent in the weights' scale instead (fewer levels when e < 0)
        ws = ws * 2.0 ** min(e, 0)
        w_int, clipped = quantize_weights(st.weight, ws, hw)
        common.update(weight=w_int, w_scale=ws, clipped_weights=clipped)
        e = 0
    if e < 0 and st.kind != "dense":
        # Lava's Conv ignores weight_exp; a non-negative exponent is folded into the weights handed
        # to it (w << e), a negative one cannot be: spend weight bits instead (fewer levels).
        ws = ws * 2.0 ** e
        w_int, clipped = quantize_weights(st.weight, ws, hw)
        common.update(weight=w_int, w_scale=ws, clipped_weights=clipped)
        e = 0
    a_scale = ws * x_scale * 2.0 ** e
    if netx:  # the bias exponent is fixed at 6: give up weight levels until the bias mantissa fits
        peak = float(np.abs(np.asarray(bias_full, dtype=np.float64)).max(initial=0.0)) * a_scale * 64
        shrink = max(0, math.ceil(math.log2(peak / (hw.bias_mant_max << NETX_BIAS_EXP)))) if peak > 0 else 0
        if shrink:
            ws = ws / 2.0 ** shrink
            w_int, clipped = quantize_weights(st.weight, ws, hw)
            common.update(weight=w_int, w_scale=ws, clipped_weights=clipped)
            a_scale = ws * x_scale
    vth = int(round(p.theta * a_scale))
    if vth < 1:
        raise QuantizationError(f"layer {st.name}: threshold {p.theta} rounds to 0 (vth must be >= 1)")
    b_v = np.asarray(bias_full, dtype=np.float64) * a_scale * 64
    bexp = NETX_BIAS_EXP if netx else _bias_fits(b_v, hw)
    if netx and np.abs(np.rint(b_v / 2.0 ** bexp)).max(initial=0) > hw.bias_mant_max:
        raise QuantizationError(f"layer {st.name}: bias beyond {hw.bias_mant_max} << {NETX_BIAS_EXP}, "
                                "the only bias exponent netx uses")
    alpha = st.neuron.alpha_value()
    dv = 0 if math.isinf(p.tau) else int(round(hw.decay_unit / p.tau))
    return IntLayer(**common, weight_exp=e, neuron="mps" if alpha > 0 else "lif", du=hw.decay_unit - 1,
                    dv=min(dv, hw.decay_unit - 1), vth=vth,
                    bias_mant=np.rint(b_v / 2.0 ** bexp).astype(np.int32), bias_exp=bexp,
                    coef=int(round(hw.decay_unit * alpha)), a_scale=a_scale)


HEADROOM_BITS = 3


def _best_exponent(st: Stage, ws: float, x_scale: float, hw: HardwareSpec, bias_full: np.ndarray,
                   headroom_bits: int = HEADROOM_BITS) -> int:
    """The largest weight exponent at which the threshold (with headroom) and the bias fit."""
    p = st.neuron.params
    vth_cap = min(hw.vth_max, 2 ** (hw.state_bits - 1 - hw.activation_shift - headroom_bits))
    for e in range(hw.weight_exp_max, hw.weight_exp_min - 1, -1):
        a_scale = ws * x_scale * 2.0 ** e
        vth = int(round(p.theta * a_scale))
        if vth > vth_cap:
            continue
        if _bias_fits(np.asarray(bias_full, dtype=np.float64) * a_scale * 64, hw) is None:
            continue
        return e
    raise QuantizationError(f"layer {st.name}: no weight exponent in [{hw.weight_exp_min}, {hw.weight_exp_max}] keeps "
                            f"the threshold within {hw.threshold_bits} bits (<= {hw.vth_max}; <= {vth_cap} with "
                            f"{headroom_bits} bits of headroom) and the bias within a {hw.bias_mant_bits}-bit "
                            f"mantissa << {hw.bias_exp_range[1]}")


def quantize_model(model: SpikingNet, hw: HardwareSpec = LOIHI2, input_kind: str = "binary",
                   input_range: float = 1.0, input_signed: bool = False,
                   percentile: float | None = None, netx: bool = False) -> IntProgram:
    """The integer program of ``model`` for ``hw``. ``input_kind`` "binary" (event spikes) or
    "graded" (analog input as ``hw.graded_spike_bits``-bit payloads; ``input_range`` = the largest
    |x| expected, mapped to the largest payload; ``input_signed`` for inputs below zero).
    ``netx=True`` restricts the program to what lava-dl netx HDF5 expresses: weight exponent 0
    and bias exponent 6 in every layer."""
    if input_kind not in ("binary", "graded"):
        raise ValueError(f"input_kind must be 'binary' or 'graded', got {input_kind!r}")
    if percentile is not None and not (0 < percentile <= 100):
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if input_kind == "graded":
        if hw.graded_spike_bits < 2:
            raise QuantizationError(f"input: {hw.name} has no graded spikes; encode the input as binary spikes")
        if not (input_range > 0 and math.isfinite(input_range)):
            raise ValueError(f"input_range must be > 0, got {input_range}")
        top = 2 ** (hw.graded_spike_bits - 1) - 1 if input_signed else 2 ** hw.graded_spike_bits - 1
        in_scale = top / input_range
    else:
        in_scale = 1.0
    header = IntProgram(layers=[], hardware=hw.name, input_kind=input_kind, input_scale=in_scale,
                      input_bits=hw.graded_spike_bits if input_kind == "graded" else 1,
                      input_shape=tuple(model.input_shape), num_classes=model.num_classes,
                      input_signed=bool(input_signed and input_kind == "graded"),
                      meta={"model": model.name, "percentile": percentile,
                            # what an ANN of the model's own architecture computes per pass; the
                            # folded stages above are larger (neurodeploy.measure.profiling reads this)
                            "ann_macs": _ann_macs(model)})
    return quantize_stages(model_stages(model), header, hw, percentile, netx)


def quantize_stages(stages: list[Stage], header: IntProgram, hw: HardwareSpec, percentile: float | None = None,
                    netx: bool = False) -> IntProgram:
    """The integer program of ``stages`` with ``header``'s input settings and meta (its layers are
    ignored). The first stage receives the input at ``header.input_scale``, later ones binary spikes."""
    layers = []
    x_scale = header.input_scale
    for st in stages:
        layers.append(quantize_stage(st, x_scale, hw, percentile, netx))
        x_scale = 1.0  # later stages receive binary spikes
    return dataclasses.replace(header, layers=layers, meta=dict(header.meta))


def _ann_macs(model: SpikingNet) -> float:
    from neurodeploy.measure.profiling import ann_macs   # lazily: profiling imports the quantiser's neighbours
    return ann_macs(model)


def quantize_nir(graph: nir.NIRGraph | str | os.PathLike[str], hw: HardwareSpec = LOIHI2, **kw) -> IntProgram:
    """NIR graph (or .nir file) -> integer program, through our importer (metadata honoured)."""
    from neurodeploy.converters.nir_import import nir_to_model
    return quantize_model(nir_to_model(graph), hw, **kw)
