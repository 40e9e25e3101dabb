"""An integer program's layers prepared to run in torch, exactly: the synaptic sums of the
reference simulator (:mod:`neurodeploy.targets.reference`) and of quantisation-aware training
(:mod:`neurodeploy.quant.qat`), which therefore cannot drift apart.

Synaptic sums are computed with floating-point BLAS/convolutions (pool, then the dense product or
convolution: :meth:`Synapse.apply`), which is exact while every partial sum stays below the
significand: 2^24 in float32, 2^53 in float64. Each layer's worst case is

    bound = prod(pool) * max_c sum |W_int[c]| * max |input|

(a pooled value sums prod(pool) inputs); float32 is used only where bound < 2^24. Then

    a = sum << weight_exp        (a flooring right shift for negative exponents, as Lava's Dense)

and a convolution's output wraps to 24 bits (signed), as Lava's Conv does; the wrapped values
are counted. Integer states are held in :data:`STATE_DTYPE`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import STATE_LIMIT, bias_value, shift_exp, state_bounds
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.quant.synapse import FLOAT32_EXACT

# Neuron states are integers held in float64 (exact: they stay below 2^36), which needs fewer
# kernels than int64; neurodeploy.neuron.fixedpoint computes the same in both (tested).
STATE_DTYPE = torch.float64


@dataclass(frozen=True, eq=False)
class PreparedLayer:
    """One :class:`IntLayer` with its tensors on a device.

    ``bias``: a neuron layer's bias in membrane units, ``bias_mant << bias_exp`` (out_shape, or
    empty when the layer has none); the readout's ``readout_bias`` in synaptic-input units (an LI
    readout's: its membrane bias, like a neuron layer's).
    ``may_wrap`` / ``may_saturate``: whether the neuron state can reach the 24-bit limits at all
    (:func:`~neurodeploy.neuron.fixedpoint.state_bounds`; False for the readout), so that the
    neuron step skips checks that cannot fire."""

    layer: IntLayer
    dtype: torch.dtype  # of the synaptic sums: float32 where exact (module docstring), else float64
    weight: torch.Tensor  # the synapse's integer weights in ``dtype``
    bias: torch.Tensor  # STATE_DTYPE
    may_wrap: bool
    may_saturate: bool

    @classmethod
    def build(cls, layer: IntLayer, *, max_input: int, device: torch.device) -> PreparedLayer:
        """Prepare ``layer`` for inputs of magnitude at most ``max_input`` on ``device``."""
        syn = layer.synapse
        w = syn.weight.astype(np.float64)
        bound = (
            float(np.abs(w).reshape(w.shape[0], -1).sum(1).max(initial=0.0))
            * syn.pool_size
            * max_input
        )
        dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        weight = torch.as_tensor(w, dtype=dtype, device=device)
        if layer.li_readout:  # membrane bias; the quantiser proved v stays below vth << 6
            bias = torch.as_tensor(bias_value(layer.bias_mant, layer.bias_exp), device=device)
            return cls(
                layer, dtype, weight, bias.to(STATE_DTYPE), may_wrap=False, may_saturate=False
            )
        if layer.neuron is None:
            bias = torch.as_tensor(
                np.asarray(layer.readout_bias, dtype=np.int64), device=device
            ).to(STATE_DTYPE)
            return cls(layer, dtype, weight, bias, may_wrap=False, may_saturate=False)
        max_a = bound * (2.0**layer.weight_exp)
        if layer.kind != "dense":
            max_a = min(max_a, float(STATE_LIMIT))  # conv outputs wrap into 24 bits
        b = bias_value(layer.bias_mant, layer.bias_exp)  # mant << exp, membrane units (int64)
        may_wrap, may_saturate = state_bounds(
            max_a, float(np.abs(b).max(initial=0)), layer.du, layer.dv
        )
        bias = torch.as_tensor(b, device=device).to(STATE_DTYPE)
        return cls(layer, dtype, weight, bias, may_wrap, may_saturate)

    def synapse(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The exact integer synaptic input for integer-valued ``x`` (N, *in_shape): (a (N,
        *out_shape) in STATE_DTYPE, number of convolution outputs wrapped to 24 bits)."""
        y = self.layer.synapse.apply(x.to(self.dtype), weight=self.weight)
        a = shift_exp(y.to(STATE_DTYPE), self.layer.weight_exp)
        if self.layer.kind == "dense":
            return a, 0
        out_of_range = (a >= STATE_LIMIT) | (
            a < -STATE_LIMIT
        )  # Lava's Conv wraps its output (signed 24 bits)
        wraps = int(out_of_range.sum())
        if wraps:
            a = torch.remainder(a + STATE_LIMIT, 2 * STATE_LIMIT) - STATE_LIMIT
        return a, wraps


def input_bound(program: IntProgram) -> int:
    """The largest input magnitude of the program's first layer: the largest graded payload
    (2^input_bits - 1, which also bounds signed payloads), or 1 for spikes."""
    return (2**program.input_bits - 1) if program.input_kind == "graded" else 1


def prepare(program: IntProgram, device: torch.device) -> list[PreparedLayer]:
    """Every layer of ``program`` prepared on ``device``; later layers receive spikes (0/1)."""
    return [
        PreparedLayer.build(layer, max_input=input_bound(program) if k == 0 else 1, device=device)
        for k, layer in enumerate(program.layers)
    ]
