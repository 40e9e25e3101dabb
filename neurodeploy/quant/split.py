"""Weight precision beyond 8 bits: one synapse written as K synapses of 8-bit parts.

A synapse with float weights W, quantised at w_scale and exponent e_0 (quantize.py: W_0 = even
round(W w_scale), clipped to [weight_min, weight_max]), carries T = W w_scale in units of 2^e_0
with an error of at most one unit (even rounding: steps of 2, half a step either way). Written as
K parts from the same source into the same neuron,

    W w_scale 2^e_0  ~=  sum_{k<K} W_k 2^e_k,      e_k = max(e_{k-1} - 7, lo)

    W_0 = even round(T) (clipped, the quantiser's own part: unchanged)
    R_1 = T - W_0                           (0 where W_0 was clipped), |R_1| <= 1
    W_k = even round(R_k 2^(e_{k-1} - e_k)),  R_{k+1} = R_k 2^(e_{k-1} - e_k) - W_k

each residual |R_k| <= 1 in units of 2^e_{k-1}, so |W_k| <= 2^7 = 128: every part is even and
within the 8-bit range, never clipped. After K parts the weight error is at most one unit of
2^e_{K-1} (weights clipped in part 0 excepted)::

    |W - sum_k W_k 2^(e_k - e_0) / w_scale|  <=  2^(e_{K-1} - e_0) / w_scale
                                              =  2^(-7 (K - 1)) / w_scale   (exponents in range)

i.e. about 7 more bits per part. Part k is an :class:`~neurodeploy.quant.program.IntEdge` with
weight exponent e_k and w_scale_k = w_scale 2^(e_0 - e_k), so w_scale_k x_scale 2^e_k equals the
layer's a_scale like every edge (quantize.py, "Several synapses into one neuron layer"); the
layer's current is the sum over its synapses, each ``(W_k x) << e_k`` a flooring shift for
e_k < 0 (as Lava's Dense), so the integer current is exact on every target (Lava: K Dense/Conv
processes into one ``a_in``). Rounding of the flooring shifts adds at most one a-unit per part
with a negative exponent.

**Bound on K (the weight-exponent range).** Loihi's Dense takes weight_exp in [weight_exp_min,
weight_exp_max] = [-8, 7] (hardware.py, spec ``loihi-fixed-point.md``, "Dense"); Lava's Conv
ignores weight_exp, so a convolution's parts use e_k >= 0 (handed over as w << e_k). Hence
lo = weight_exp_min for dense synapses and max(weight_exp_min, 0) for convolutions, and a part
below lo cannot exist: e_k = max(e_{k-1} - 7, lo) takes a smaller step at the floor, and once
e_{k-1} = lo no further part adds precision, so the synapse gets fewer parts than asked (a
warning names the layer, the edge and its exponents). A dense synapse at the largest exponent 7
holds at most K = 3 parts (7, 0, -7; then -8 adds one bit), one at e_0 = 0 only 2 (0, -7, -8).
Specs that fix the exponent (the netx variant) cannot split and are refused by name.

Cost: every part is a full synapse, so K parts hold K times the synaptic memory and do K times the
synaptic operations of the layer's unsplit synapses (``resources`` and ``profile`` count every
edge). Split is opt-in: ``weight_split`` 1 (the default) leaves programs unchanged bit for bit.
LI readouts are not split (their exponent comes from a worst-case bound over the summed weights,
quantize.py "LI readout"); they keep one part.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections.abc import Mapping

import numpy as np

from neurodeploy.neuron.hardware import HardwareSpec
from neurodeploy.quant.program import IntEdge, IntLayer, IntProgram
from neurodeploy.quant.stages import Stage

#: bits of precision one more part adds (the largest step for which an even 8-bit part always
#: holds the residual: |R| <= 1 unit, times 2^7 = 128 <= weight_max)
PART_STEP = 7
#: the program meta key recording the split (absent: 1, no split)
META_KEY = "weight_split"

WeightSplit = int | Mapping[str, int]


def check_split(split: WeightSplit, hw: HardwareSpec) -> None:
    """Refuse part counts below 1, and any split on a spec with a fixed weight exponent."""
    counts = dict(split) if isinstance(split, Mapping) else {"*": split}
    for name, k in counts.items():
        if int(k) != k or k < 1:
            raise ValueError(
                f"weight_split for {name}: part count must be an integer >= 1, got {k}"
            )
    if hw.fixed_weight_exp is not None and any(k > 1 for k in counts.values()):
        raise ValueError(
            f"weight_split: {hw.name} fixes the weight exponent at {hw.fixed_weight_exp}, so "
            "a synapse cannot be split into parts at lower exponents"
        )


def splits_nothing(split: WeightSplit) -> bool:
    """True when every layer keeps one part (1, or a mapping of ones): programs unchanged."""
    if isinstance(split, Mapping):
        return all(int(k) == 1 for k in split.values())
    return int(split) == 1


def parts_for(split: WeightSplit, layer: str) -> int:
    """The part count of ``layer``: the int itself, or the mapping's entry (default 1)."""
    if isinstance(split, Mapping):
        return int(split.get(layer, 1))
    return int(split)


def part_exponents(e0: int, parts: int, lo: int) -> list[int]:
    """e_k = max(e_{k-1} - PART_STEP, lo) for k < ``parts``, stopping once e_{k-1} = lo (a part
    at the floor's exponent adds no precision): at most ``parts`` exponents, the first e0."""
    exps = [e0]
    while len(exps) < parts and exps[-1] > lo:
        exps.append(max(exps[-1] - PART_STEP, lo))
    return exps


def split_weights(
    w: np.ndarray, w_scale: float, exps: list[int], hw: HardwareSpec
) -> tuple[list[np.ndarray], int]:
    """The parts W_k (int32, even, in range) of float weights ``w`` at ``w_scale`` for the
    exponents ``exps`` (module docstring), and the number of weights clipped in part 0 (the
    quantiser's count; later parts never clip)."""
    target = np.asarray(w, dtype=np.float64) * w_scale
    q0 = 2 * np.rint(target / 2)
    clipped = (q0 > hw.weight_max) | (q0 < hw.weight_min)
    w0 = np.clip(q0, hw.weight_min, hw.weight_max)
    parts = [w0.astype(np.int32)]
    residual = np.where(clipped, 0.0, target - w0)
    for prev, e in itertools.pairwise(exps):
        residual = residual * 2.0 ** (prev - e)
        wk = 2 * np.rint(residual / 2)
        if wk.max(initial=0) > hw.weight_max or wk.min(initial=0) < hw.weight_min:
            raise AssertionError("weight split: a residual part left the 8-bit range")
        parts.append(wk.astype(np.int32))
        residual = residual - wk
    return parts, int(clipped.sum())


def _edge_parts(
    layer_name: str,
    edge: IntEdge,
    w: np.ndarray,
    *,
    parts: int,
    hw: HardwareSpec,
) -> list[IntEdge]:
    """``edge`` (part 0, unchanged) followed by its further parts (module docstring)."""
    lo = hw.weight_exp_min if edge.synapse.kind == "dense" else max(hw.weight_exp_min, 0)
    exps = part_exponents(edge.weight_exp, parts, lo)
    if len(exps) < parts:
        warnings.warn(
            f"layer {layer_name}: synapse from {edge.source} at weight exponent "
            f"{edge.weight_exp} holds {len(exps)} of {parts} parts (exponents {exps}; the "
            f"{'convolution' if edge.synapse.kind != 'dense' else 'dense'} floor is {lo})",
            stacklevel=3,
        )
    ws, _ = split_weights(w, edge.w_scale, exps, hw)
    if not np.array_equal(ws[0], edge.synapse.weight):
        raise AssertionError(
            f"layer {layer_name}: weight split part 0 differs from the quantiser's"
        )
    return [edge] + [
        IntEdge(
            source=edge.source,
            synapse=dataclasses.replace(edge.synapse, weight=wk),
            weight_exp=e,
            recurrent=edge.recurrent,
            w_scale=edge.w_scale * 2.0 ** (edge.weight_exp - e),
            in_scale=edge.in_scale,
            clipped_weights=0,
        )
        for wk, e in zip(ws[1:], exps[1:])
    ]


def split_layer(
    program: IntProgram, k: int, stage: Stage, *, parts: int, hw: HardwareSpec
) -> IntLayer:
    """Layer ``k`` of ``program`` with every synapse (inline and ``extra``) split into ``parts``
    parts from ``stage``'s float weights; the inline synapse stays inline, every further part
    an ``extra`` edge (order: the inline synapse's parts, then each edge followed by its own)."""
    layer = program.layers[k]
    if parts == 1 or layer.li_readout:
        return layer
    if len(stage.extra) != len(layer.extra) or stage.name != layer.name:
        raise ValueError(
            f"layer {layer.name}: weight split needs the stage it was quantised from "
            f"(stage {stage.name} with {len(stage.extra)} edges, layer {len(layer.extra)})"
        )
    edges = program.edges(k)
    floats = [stage.synapse.weight, *(e.synapse.weight for e in stage.extra)]
    split = [_edge_parts(layer.name, e, w, parts=parts, hw=hw) for e, w in zip(edges, floats)]
    extra = split[0][1:] + [p for edge_parts in split[1:] for p in edge_parts]
    return dataclasses.replace(layer, extra=extra)


def split_program(
    program: IntProgram, stages: list[Stage], split: WeightSplit, hw: HardwareSpec
) -> IntProgram:
    """``program`` (quantised from ``stages``) with each layer's synapses split into the part
    count ``split`` gives it (an int for every layer, or per layer name); recorded in
    ``meta["weight_split"]``. A split of 1 everywhere returns ``program`` itself."""
    check_split(split, hw)
    if isinstance(split, Mapping):
        unknown = sorted(set(split) - {layer.name for layer in program.layers})
        if unknown:
            raise ValueError(
                f"weight_split names unknown layers {unknown} (layers: "
                f"{[layer.name for layer in program.layers]})"
            )
    if all(parts_for(split, layer.name) == 1 for layer in program.layers):
        return program
    layers = [
        split_layer(program, k, st, parts=parts_for(split, st.name), hw=hw)
        for k, st in enumerate(stages)
    ]
    meta = dict(program.meta)
    meta[META_KEY] = dict(split) if isinstance(split, Mapping) else int(split)
    return dataclasses.replace(program, layers=layers, meta=meta)


def weight_split_of(program: IntProgram) -> WeightSplit:
    """The split a program was made with (1 when none is recorded)."""
    value = program.meta.get(META_KEY, 1)
    return dict(value) if isinstance(value, Mapping) else int(value)


__all__ = [
    "META_KEY",
    "PART_STEP",
    "check_split",
    "part_exponents",
    "split_layer",
    "split_program",
    "split_weights",
    "splits_nothing",
    "weight_split_of",
]
