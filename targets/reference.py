"""The reference target: a batched, bit-exact integer simulator of an :class:`IntProgram`.

Neuron arithmetic is :mod:`neurodeploy.neuron.fixedpoint` (Lava's bit-accurate LIF, and the smoothed-reset
neuron). Synaptic sums are computed with floating-point BLAS/convolutions, which is exact while
every partial sum stays below the mantissa (2^24 in float32, 2^53 in float64): the simulator
checks each layer's worst case (sum |W_int| * max |input|) and picks float32 only where that
bound is below 2^24, float64 otherwise. Then ``a = sum << weight_exp`` (a flooring right shift
for negative exponents), as Lava's Dense does; convolution outputs wrap to 24 bits as Lava's
Conv does (counted with the layer's wraps).

``latency=True`` adds Lava's one-step delay per synaptic layer (the input of layer k at step t
is what layer k-1 sent at step t-1), so that results line up with Lava step for step; run for
T + (number of layers) steps to drain it. Runs on CPU (torch over numpy buffers) or CUDA.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from neurodeploy.neuron.fixedpoint import STATE_LIMIT, Counters, lif_int_step, mps_int_step, shift_exp, state_bounds
from neurodeploy.quant.program import IntLayer, IntProgram

FLOAT32_EXACT = 2 ** 24
# Neuron states are integers held in float64 (exact: they stay below 2^36), which needs fewer
# kernels than int64; neurodeploy.neuron.fixedpoint computes the same in both (tested).
STATE_DTYPE = torch.float64


def _block_kernel(w: np.ndarray, layer: IntLayer) -> np.ndarray | None:
    """The small kernel if ``w`` is a pooled conv's kernel (constant k x k blocks, stride k,
    padding a multiple of k, groups 1), else None."""
    k = tuple(layer.pool)
    if not k or layer.kind == "dense" or layer.groups != 1 or tuple(layer.stride) != k:
        return None
    if any(p % kk for p, kk in zip(layer.padding, k)) or any(n % kk for n, kk in zip(w.shape[2:], k)):
        return None
    small = w[(..., *[slice(None, None, kk) for kk in k])]
    big = small
    for axis, kk in enumerate(k):
        big = np.repeat(big, kk, axis=2 + axis)
    return small if np.array_equal(big, w) else None


@dataclass
class RunResult:
    """Spikes per neuron layer (T, B, *shape) as uint8, the readout's integer output per step
    (T, B, classes; bias included), optional membrane states per layer, overflow counters."""

    spikes: list[np.ndarray]
    output: np.ndarray | None
    counters: list[Counters]
    states: list[np.ndarray] | None = None
    layer_names: list[str] = field(default_factory=list)

    def predictions(self) -> np.ndarray:
        if self.output is None:
            raise ValueError("this program has no readout layer")
        return self.output.sum(0).argmax(-1)


class ReferenceTarget:
    """Build from an integer program, run a batch, get spikes per layer (the targets' protocol)."""

    name = "reference"

    def __init__(self, program: IntProgram, device: str = "auto", latency: bool = False) -> None:
        self.program = program
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.latency = latency
        # per layer: the IntLayer and its prepared tensors (public: neurodeploy.quant.qat runs these
        # very synapses inside its quantisation-aware forward, so the two cannot drift apart)
        self.layers = [self._prepare(l, i == 0) for i, l in enumerate(program.layers)]

    def _prepare(self, layer: IntLayer, first: bool) -> dict:
        w = layer.weight.astype(np.float64)
        d_pool = _block_kernel(w, layer)
        max_in = (2 ** self.program.input_bits - 1) if first and self.program.input_kind == "graded" else 1
        bound = float(np.abs(w).reshape(w.shape[0], -1).sum(1).max(initial=0.0)) * max_in
        dtype = torch.float32 if bound < FLOAT32_EXACT else torch.float64
        d = {"layer": layer, "dtype": dtype, "w": torch.as_tensor(w, dtype=dtype, device=self.device)}
        if d_pool is not None:  # sum-pool then the small kernel: same integers, 1/k^2 of the work
            d["pool_w"] = torch.as_tensor(d_pool, dtype=dtype, device=self.device)
        if layer.neuron is not None:
            max_a = bound * (2.0 ** layer.weight_exp)
            if layer.kind != "dense":
                max_a = min(max_a, float(STATE_LIMIT))  # conv outputs wrap into 24 bits
            d["may_wrap"], d["may_saturate"] = state_bounds(
                max_a, float(np.abs(np.asarray(layer.bias_mant, dtype=np.float64)).max(initial=0) * 2 ** layer.bias_exp),
                layer.du, layer.dv)
            d["bias"] = (torch.as_tensor(np.asarray(layer.bias_mant, dtype=np.int64), device=self.device)
                         << layer.bias_exp).to(STATE_DTYPE)
        else:
            d["rbias"] = torch.as_tensor(np.asarray(layer.readout_bias, dtype=np.int64), device=self.device
                                         ).to(STATE_DTYPE)
        return d

    def synapse(self, d: dict, x: torch.Tensor) -> torch.Tensor:
        """The integer synaptic input of prepared layer ``d`` (an entry of ``self.layers``) for
        input ``x`` (N, *in_shape): the exact sum, shifted by the weight exponent, with Lava's
        24-bit wrap of Conv outputs (counted in ``d["conv_wraps"]``)."""
        layer: IntLayer = d["layer"]
        xf = x.to(d["dtype"])
        if layer.kind == "dense":
            y = xf.flatten(1) @ d["w"].T
        elif "pool_w" in d:
            k = layer.pool
            pooled = (F.avg_pool2d(xf, k) if layer.kind == "conv2d" else F.avg_pool1d(xf, k)) * float(np.prod(k))
            pad = tuple(p // kk for p, kk in zip(layer.padding, k))
            conv = F.conv2d if layer.kind == "conv2d" else F.conv1d
            y = conv(pooled, d["pool_w"], padding=pad)
        elif layer.kind == "conv2d":
            y = F.conv2d(xf, d["w"], stride=layer.stride, padding=layer.padding, groups=layer.groups)
        else:
            y = F.conv1d(xf, d["w"], stride=layer.stride, padding=layer.padding, groups=layer.groups)
        a = shift_exp(y.to(STATE_DTYPE), layer.weight_exp)
        if layer.kind != "dense":  # Lava's Conv wraps its output to 24 bits (signed)
            out_of_range = (a >= STATE_LIMIT) | (a < -STATE_LIMIT)
            if bool(out_of_range.any()):
                d["conv_wraps"] += int(out_of_range.sum())
                a = torch.remainder(a + STATE_LIMIT, 2 * STATE_LIMIT) - STATE_LIMIT
        return a

    @torch.no_grad()
    def run(self, x_int: np.ndarray | torch.Tensor, steps: int | None = None,
            record_states: bool = False) -> RunResult:
        """Run integer input (T, B, *input_shape) for ``steps`` (default T, plus the pipeline
        depth with ``latency``); missing input steps are zeros."""
        x = torch.as_tensor(np.asarray(x_int) if not isinstance(x_int, torch.Tensor) else x_int,
                            device=self.device).to(STATE_DTYPE)
        if tuple(x.shape[2:]) != tuple(self.program.input_shape):
            raise ValueError(f"input: expected (T, B, {', '.join(map(str, self.program.input_shape))}), "
                             f"got {tuple(x.shape)}")
        T, B = x.shape[:2]
        n = len(self.layers)
        steps = steps if steps is not None else T + (n if self.latency else 0)
        neurons = [d for d in self.layers if d["layer"].neuron is not None]
        state = [(torch.zeros((B, *d["layer"].out_shape), dtype=STATE_DTYPE, device=self.device),
                  torch.zeros((B, *d["layer"].out_shape), dtype=STATE_DTYPE, device=self.device)) for d in neurons]
        counters = [Counters() for _ in neurons]
        spikes = [torch.zeros((steps, B, *d["layer"].out_shape), dtype=torch.uint8, device=self.device)
                  for d in neurons]
        states = [torch.zeros((steps, B, *d["layer"].out_shape), dtype=STATE_DTYPE, device=self.device)
                  for d in neurons] if record_states else None
        readout = self.layers[-1] if self.layers[-1]["layer"].neuron is None else None
        out = torch.zeros((steps, B, *readout["layer"].out_shape), dtype=STATE_DTYPE, device=self.device) \
            if readout else None
        zero_in = torch.zeros((B, *self.program.input_shape), dtype=STATE_DTYPE, device=self.device)
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
                d["conv_wraps"] = 0
                a = self.synapse(d, inp)
                layer = d["layer"]
                if layer.neuron is None:
                    out[t] = a + d["rbias"]
                    continue
                counters[k_neuron].add_count(wraps=d["conv_wraps"])
                u, v = state[k_neuron]
                if layer.neuron == "mps":
                    s, v, _ = mps_int_step(a, v, layer.dv, layer.vth, d["bias"], layer.coef, counters[k_neuron],
                                           may_saturate=d["may_saturate"])
                else:
                    s, u, v = lif_int_step(a, u, v, layer.du, layer.dv, layer.vth, d["bias"], counters[k_neuron],
                                           may_wrap=d["may_wrap"], may_saturate=d["may_saturate"])
                state[k_neuron] = (u, v)
                spikes[k_neuron][t] = s.to(torch.uint8)
                if states is not None:
                    states[k_neuron][t] = v
                cur = s.to(STATE_DTYPE)
                k_neuron += 1
        return RunResult(spikes=[s.cpu().numpy() for s in spikes],
                         output=out.cpu().numpy().astype(np.int64) if out is not None else None, counters=counters,
                         states=[s.cpu().numpy().astype(np.int64) for s in states] if states is not None else None,
                         layer_names=[d["layer"].name for d in neurons])
