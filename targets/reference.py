"""The reference target: a batched, bit-exact integer simulator of an :class:`IntProgram`.

Neuron arithmetic is :mod:`neurodeploy.neuron.fixedpoint` (Lava's bit-accurate LIF, and the smoothed-reset
neuron). Synaptic sums are :class:`~neurodeploy.quant.prepared.PreparedLayer`'s: exact sums in
float32 or float64 BLAS/convolutions (a pooled convolution sum-pools, then convolves with its
small kernel), ``a = sum << weight_exp`` as Lava's Dense does, and convolution outputs wrapped to
24 bits as Lava's Conv does (counted with the layer's wraps). Quantisation-aware training runs
the same prepared layers.

``latency=True`` adds Lava's one-step delay per synaptic layer (the input of layer k at step t
is what layer k-1 sent at step t-1), so that results line up with Lava step for step; run for
T + (number of layers) steps to drain it. Runs on CPU (torch over numpy buffers) or CUDA.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import Counters, lif_int_step, mps_int_step
from neurodeploy.quant.prepared import STATE_DTYPE, PreparedLayer, prepare
from neurodeploy.quant.program import IntProgram
from neurodeploy.targets.base import TargetResult, check_input


class ReferenceTarget:
    """Build from an integer program, run a batch, get spikes per layer (the targets' protocol)."""

    name = "reference"

    def __init__(self, program: IntProgram, device: str = "auto", latency: bool = False) -> None:
        program.check_shapes()  # a named error before torch sees a mismatched state
        self.program = program
        self.device = torch.device(
            "cuda"
            if device == "auto" and torch.cuda.is_available()
            else ("cpu" if device == "auto" else device)
        )
        self.latency = latency
        # per layer: the IntLayer and its tensors (neurodeploy.quant.qat runs the same prepared layers)
        self.layers: list[PreparedLayer] = prepare(program, self.device)

    @torch.no_grad()
    def run(
        self,
        x_int: np.ndarray | torch.Tensor,
        *,
        steps: int | None = None,
        record_states: bool = False,
    ) -> TargetResult:
        """Run integer input (T, B, *input_shape) for ``steps`` (default T, plus the pipeline
        depth with ``latency``); missing input steps are zeros."""
        t_start = time.perf_counter()
        x = torch.as_tensor(
            np.asarray(x_int) if not isinstance(x_int, torch.Tensor) else x_int, device=self.device
        ).to(STATE_DTYPE)
        T, B = check_input(self.program.input_shape, tuple(x.shape))
        n = len(self.layers)
        steps = steps if steps is not None else T + (n if self.latency else 0)
        neurons = [d for d in self.layers if d.layer.neuron is not None]
        state = [
            (
                torch.zeros((B, *d.layer.out_shape), dtype=STATE_DTYPE, device=self.device),
                torch.zeros((B, *d.layer.out_shape), dtype=STATE_DTYPE, device=self.device),
            )
            for d in neurons
        ]
        counters = [Counters() for _ in neurons]
        spikes = [
            torch.zeros((steps, B, *d.layer.out_shape), dtype=torch.uint8, device=self.device)
            for d in neurons
        ]
        states = (
            [
                torch.zeros((steps, B, *d.layer.out_shape), dtype=STATE_DTYPE, device=self.device)
                for d in neurons
            ]
            if record_states
            else None
        )
        readout = self.layers[-1] if self.layers[-1].layer.neuron is None else None
        out = (
            torch.zeros((steps, B, *readout.layer.out_shape), dtype=STATE_DTYPE, device=self.device)
            if readout
            else None
        )
        zero_in = torch.zeros((B, *self.program.input_shape), dtype=STATE_DTYPE, device=self.device)
        li_v = (  # an LI readout's membrane (du = 4095: its u is each step's input, not kept)
            torch.zeros((B, *readout.layer.out_shape), dtype=STATE_DTYPE, device=self.device)
            if readout is not None
            else zero_in
        )
        # with latency, pending[k] holds what layer k receives next step
        pending: list[torch.Tensor | None] = [None] * n
        for t in range(steps):
            cur = x[t] if t < T else zero_in
            k_neuron = 0
            for k, d in enumerate(self.layers):
                if self.latency:
                    inp, pending[k] = pending[k], cur
                    if inp is None:
                        inp = torch.zeros_like(cur)
                else:
                    inp = cur
                a, wraps = d.synapse(inp)
                layer = d.layer
                if layer.neuron is None:
                    assert out is not None  # the readout: the last layer
                    if layer.li_readout:  # a LIF that cannot fire (quantize: "LI readout")
                        _, _, li_v = lif_int_step(
                            a,
                            li_v,
                            li_v,
                            du=layer.du,
                            dv=layer.dv,
                            vth=layer.vth,
                            bias=d.bias,
                            may_wrap=False,
                            may_saturate=False,
                        )
                        out[t] = li_v
                    else:
                        out[t] = a + d.bias
                    continue
                counters[k_neuron].add_count(wraps=wraps)
                u, v = state[k_neuron]
                if layer.neuron == "mps":
                    s, v, _ = mps_int_step(
                        a,
                        v,
                        dv=layer.dv,
                        vth=layer.vth,
                        bias=d.bias,
                        coef=layer.coef,
                        counters=counters[k_neuron],
                        may_saturate=d.may_saturate,
                    )
                else:
                    s, u, v = lif_int_step(
                        a,
                        u,
                        v,
                        du=layer.du,
                        dv=layer.dv,
                        vth=layer.vth,
                        bias=d.bias,
                        counters=counters[k_neuron],
                        may_wrap=d.may_wrap,
                        may_saturate=d.may_saturate,
                    )
                state[k_neuron] = (u, v)
                spikes[k_neuron][t] = s.to(torch.uint8)
                if states is not None:
                    states[k_neuron][t] = v
                cur = s.to(STATE_DTYPE)
                k_neuron += 1
        return TargetResult(
            spikes=[s.cpu().numpy() for s in spikes],
            output=out.cpu().numpy().astype(np.int64) if out is not None else None,
            counters=counters,
            states=[s.cpu().numpy().astype(np.int64) for s in states]
            if states is not None
            else None,
            layer_names=[d.layer.name for d in neurons],
            seconds={"run": time.perf_counter() - t_start},
            spike_output=self.program.layers[-1].neuron is not None,
        )  # evaluated last: incl. the copies
