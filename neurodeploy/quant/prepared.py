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

A layer of a graph program has several synapses (its inline one and its ``extra`` edges,
:class:`~neurodeploy.quant.program.IntEdge`); each is prepared on its own
(:class:`PreparedSynapse`: its own float32/float64 choice from its own bound, with max |input| the
largest graded payload for an edge from the network input, 1 for spikes), and the layer's current
is the sum of their terms (:meth:`PreparedLayer.current`), each wrapped (convolutions) before the
sum as Lava's Conv processes wrap before their outputs meet at the neuron's ``a_in``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import STATE_LIMIT, bias_value, shift_exp, state_bounds
from neurodeploy.quant.program import INPUT, IntLayer, IntProgram
from neurodeploy.quant.synapse import FLOAT32_EXACT, Synapse

# Neuron states are integers held in float64 (exact: they stay below 2^36), which needs fewer
# kernels than int64; neurodeploy.neuron.fixedpoint computes the same in both (tested).
STATE_DTYPE = torch.float64


@dataclass(frozen=True, eq=False)
class PreparedSynapse:
    """One integer synapse with its weights on a device: ``a = (W x) << weight_exp``, exact
    (module docstring), a convolution's output wrapped to 24 bits. ``bound``: the worst |W x|
    for inputs of magnitude at most the ``max_input`` it was built for."""

    synapse: Synapse
    weight_exp: int
    dtype: torch.dtype  # float32 where bound < 2^24, else float64
    weight: torch.Tensor
    bound: float

    @classmethod
    def build(
        cls, synapse: Synapse, weight_exp: int, *, max_input: int, device: torch.device
    ) -> PreparedSynapse:
        """Prepare ``synapse`` for inputs of magnitude at most ``max_input`` on ``device``:
        bound = prod(pool) * max_c sum |W_int[c]| * max_input."""
        w = synapse.weight.astype(np.float64)
        bound = (
            float(np.abs(w).reshape(w.shape[0], -1).sum(1).max(initial=0.0))
            * synapse.pool_size
            * max_input
        )
        dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        return cls(
            synapse, weight_exp, dtype, torch.as_tensor(w, dtype=dtype, device=device), bound
        )

    @property
    def max_a(self) -> float:
        """The worst |a| after the exponent (a convolution's at most 2^23: it wraps)."""
        max_a = self.bound * (2.0**self.weight_exp)
        return max_a if self.synapse.kind == "dense" else min(max_a, float(STATE_LIMIT))

    def apply(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The exact integer synaptic input for integer-valued ``x`` (N, *in_shape): (a (N,
        *out_shape) in STATE_DTYPE, number of convolution outputs wrapped to 24 bits)."""
        y = self.synapse.apply(x.to(self.dtype), weight=self.weight)
        a = shift_exp(y.to(STATE_DTYPE), self.weight_exp)
        if self.synapse.kind == "dense":
            return a, 0
        out_of_range = (a >= STATE_LIMIT) | (
            a < -STATE_LIMIT
        )  # Lava's Conv wraps its output (signed 24 bits)
        wraps = int(out_of_range.sum())
        if wraps:
            a = torch.remainder(a + STATE_LIMIT, 2 * STATE_LIMIT) - STATE_LIMIT
        return a, wraps


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
    # the inline synapse and every ``extra`` edge, in IntProgram.edges order
    synapses: tuple[PreparedSynapse, ...] = ()

    @classmethod
    def build(
        cls,
        layer: IntLayer,
        *,
        max_input: int,
        device: torch.device,
        extra_max_inputs: Sequence[int] = (),
    ) -> PreparedLayer:
        """Prepare ``layer`` for inputs of magnitude at most ``max_input`` (its inline synapse)
        and ``extra_max_inputs`` (one per ``extra`` edge; default 1, spikes) on ``device``. The
        neuron's range checks are skipped only where the summed worst case
        sum_e max|a_e| cannot reach them."""
        maxima = [max_input, *extra_max_inputs]
        maxima += [1] * (1 + len(layer.extra) - len(maxima))
        synapses = tuple(
            PreparedSynapse.build(syn, exp, max_input=m, device=device)
            for (syn, exp), m in zip(
                [
                    (layer.synapse, layer.weight_exp),
                    *[(e.synapse, e.weight_exp) for e in layer.extra],
                ],
                maxima,
            )
        )
        inline = synapses[0]
        if layer.li_readout:  # membrane bias; the quantiser proved v stays below vth << 6
            bias = torch.as_tensor(bias_value(layer.bias_mant, layer.bias_exp), device=device)
            return cls(
                layer,
                inline.dtype,
                inline.weight,
                bias.to(STATE_DTYPE),
                may_wrap=False,
                may_saturate=False,
                synapses=synapses,
            )
        if layer.neuron is None:
            bias = torch.as_tensor(
                np.asarray(layer.readout_bias, dtype=np.int64), device=device
            ).to(STATE_DTYPE)
            return cls(
                layer,
                inline.dtype,
                inline.weight,
                bias,
                may_wrap=False,
                may_saturate=False,
                synapses=synapses,
            )
        max_a = sum(s.max_a for s in synapses)
        b = bias_value(layer.bias_mant, layer.bias_exp)  # mant << exp, membrane units (int64)
        may_wrap, may_saturate = state_bounds(
            max_a,
            float(np.abs(b).max(initial=0)),
            layer.du,
            layer.dv,
            u_init_bias=layer.u_init_bias,
        )
        bias = torch.as_tensor(b, device=device).to(STATE_DTYPE)
        return cls(
            layer, inline.dtype, inline.weight, bias, may_wrap, may_saturate, synapses=synapses
        )

    @cached_property
    def bias_row(self) -> np.ndarray:
        """The bias of every neuron of one sample, flat (prod(out_shape),) int64 (zeros where the
        layer has none): what the compiled neuron loops read (:mod:`neurodeploy.quant.scan`)."""
        n = int(np.prod(self.layer.out_shape))
        b = self.bias.detach().cpu()
        if b.numel() == 0:
            return np.zeros(n, dtype=np.int64)
        row = b.expand(self.layer.out_shape).reshape(-1).numpy().astype(np.int64)
        return np.ascontiguousarray(row)

    def synapse(self, x: torch.Tensor) -> tuple[torch.Tensor, int]:
        """The inline synapse's exact integer input for integer-valued ``x`` (N, *in_shape): (a
        (N, *out_shape) in STATE_DTYPE, number of convolution outputs wrapped to 24 bits)."""
        return self.synapses[0].apply(x)

    def current(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
        """The layer's summed input current a = sum_e ((W_e x_e) << weight_exp_e) (each
        convolution term wrapped to 24 bits first) for its synapses' integer inputs ``inputs``
        (one per synapse, IntProgram.edges order: the inline source's value, then each ``extra``
        edge's): (a (N, *out_shape) in STATE_DTYPE, wrapped outputs over all synapses)."""
        if len(inputs) != len(self.synapses):
            raise ValueError(
                f"layer {self.layer.name}: {len(inputs)} inputs for its "
                f"{len(self.synapses)} synapses"
            )
        a, wraps = self.synapses[0].apply(inputs[0])
        for syn, x in zip(self.synapses[1:], inputs[1:]):
            a_e, w_e = syn.apply(x)
            a, wraps = a + a_e, wraps + w_e
        return a, wraps


def input_bound(program: IntProgram) -> int:
    """The largest input magnitude of the program's first layer: the largest graded payload
    (2^input_bits - 1, which also bounds signed payloads), or 1 for spikes."""
    return (2**program.input_bits - 1) if program.input_kind == "graded" else 1


def prepare(program: IntProgram, device: torch.device) -> list[PreparedLayer]:
    """Every layer of ``program`` prepared on ``device``: a synapse from :data:`INPUT` receives
    the input's payloads (:func:`input_bound`), every other one spikes (0/1)."""
    bound = input_bound(program)
    prepared = []
    for k, layer in enumerate(program.layers):
        maxima = [bound if src == INPUT else 1 for src in program.sources(k)]
        prepared.append(
            PreparedLayer.build(
                layer, max_input=maxima[0], extra_max_inputs=maxima[1:], device=device
            )
        )
    return prepared
