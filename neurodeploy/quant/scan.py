"""One integer layer over all timesteps at once (layer-major): the synaptic sums of every step in
one matrix product or convolution over (steps x B) samples, then the neurons over the steps in one
compiled loop. The reference simulator (:mod:`neurodeploy.targets.reference`) and
quantisation-aware training (:mod:`neurodeploy.quant.qat`) run their layers through here.

For a layer whose synapses all read earlier layers (or the input), every step's input is known
before the layer runs, so

    y(t)  = W x(t)  for all t at once            (PreparedSynapse: exact float32/float64 sums)
    a(t)  = y(t) << weight_exp,  a conv's a wrapped to 24 bits
    neurons over t = 0 .. steps-1                 (the integer core, module fixedpoint)

equals the step-by-step schedule bit for bit: the neuron at step t sees the same a(t), and its
state is the same sequential recurrence. A layer with several synapses sums their terms, each
shifted (and a convolution's wrapped) on its own, as :meth:`PreparedLayer.current` does; a
recurrent self-edge (the layer's own spikes of t - 1) cannot be known in advance, so such a layer
adds it step by step (:func:`run_layer` with ``recurrent``).

Neuron back ends (``kernel``):

- ``"numba"``: :mod:`neurodeploy.neuron.kernels.int_scan`, CPU tensors only, the shift and the
  convolution wrap fused into the loop; states in int64 registers, spikes written as uint8.
- ``"torch"``: the integer core's step functions (:func:`~neurodeploy.neuron.fixedpoint.lif_int_step`,
  :func:`~neurodeploy.neuron.fixedpoint.mps_int_step`) in a loop over the steps, on any device
  (CUDA, or CPU without numba).
- ``"auto"``: numba where it can run (:func:`kernel_for`), else torch.

Both compute the same integers (``tests/test_int_scan.py``); only the speed differs.

Memory: a layer holds the sums of all steps at once, (steps x B x neurons) values of 4 or 8
bytes, where the step-by-step schedule held one step's; the spikes of every step were kept
before too. Batch long or large inputs (the measuring code runs batches of 256).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import (
    DU_NO_CURRENT_MEMORY,
    Counters,
    lif_int_step,
    mps_int_step,
)
from neurodeploy.quant.prepared import STATE_DTYPE, PreparedLayer, PreparedSynapse

KERNELS = ("auto", "numba", "torch")


def kernel_for(d: PreparedLayer, device: torch.device, kernel: str = "auto") -> str:
    """The neuron back end that runs layer ``d`` on ``device``: ``kernel`` itself unless "auto",
    which picks numba for a CPU layer whose worst current is within the kernel's int64 bounds
    (:data:`~neurodeploy.neuron.kernels.int_scan.MAX_A`) when numba imports, else torch.
    Raises ValueError for an unknown name, or "numba" where it cannot run."""
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
    if kernel == "torch":
        return "torch"
    why = numba_unavailable(d, device)
    if kernel == "numba" and why is not None:
        raise ValueError(f"layer {d.layer.name}: the numba kernel cannot run it: {why}")
    return "numba" if why is None else "torch"


def numba_unavailable(d: PreparedLayer, device: torch.device) -> str | None:
    """Why the numba kernel cannot run layer ``d`` on ``device`` (None: it can)."""
    from neurodeploy.neuron.kernels.fused import numba_available
    from neurodeploy.neuron.kernels.int_scan import MAX_A

    if device.type != "cpu":
        return f"{device.type} tensors (the kernel runs on CPU)"
    if not numba_available():
        return "numba is not installed"
    if d.layer.li_readout and d.layer.du != DU_NO_CURRENT_MEMORY:
        return "an LI readout with a current decay (the core passes its v as u)"
    max_a = sum(s.max_a for s in d.synapses)
    if max_a >= MAX_A:
        return f"its worst synaptic input {max_a:.3g} is beyond the kernel's 2^40"
    return None


@dataclass
class LayerRun:
    """One layer over all steps. A neuron layer: ``spikes`` (steps, B, *out_shape) uint8, and
    where asked each step's ``v`` (v, or m for the smoothed-reset neuron; int32) and ``u`` (int64)
    after the step. The readout: ``out`` (steps, B, *out_shape) STATE_DTYPE, its a + bias, or an
    LI readout's membrane. ``saturations``/``wraps``: the layer's overflow events."""

    spikes: torch.Tensor | None = None
    v: torch.Tensor | None = None
    u: torch.Tensor | None = None
    out: torch.Tensor | None = None
    saturations: int = 0
    wraps: int = 0


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def layer_current(d: PreparedLayer, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, int]:
    """The summed current a (steps, B, *out_shape) STATE_DTYPE of layer ``d`` for its synapses'
    inputs (each (steps, B, *in_shape), already aligned in time), and the wrapped convolution
    outputs (:meth:`PreparedLayer.current` over all steps at once)."""
    steps, batch = inputs[0].shape[:2]
    a, wraps = d.current([_flat(x) for x in inputs])
    return a.reshape(steps, batch, *a.shape[1:]), wraps


def run_layer(
    d: PreparedLayer,
    inputs: Sequence[torch.Tensor] | None = None,
    *,
    current: torch.Tensor | None = None,
    current_wraps: int = 0,
    recurrent: Sequence[PreparedSynapse] = (),
    kernel: str = "auto",
    record_v: bool = False,
    record_u: bool = False,
) -> LayerRun:
    """Run layer ``d`` over all steps (module docstring). Its input is either ``inputs``, one
    tensor (steps, B, *in_shape) per synapse of ``d`` (``d.synapses`` order, time-aligned), or a
    ready ``current`` a (steps, B, *out_shape) STATE_DTYPE whose convolution terms already
    wrapped ``current_wraps`` times (a delay line's, or QAT's). ``recurrent``: synapses from the
    layer's own spikes of the step before (zero at step 0), added to a(t) step by step; such a
    layer runs on the torch back end."""
    layer = d.layer
    device = d.bias.device
    if inputs is not None:
        steps, batch = inputs[0].shape[:2]
    elif current is not None:
        steps, batch = current.shape[:2]
    else:
        raise ValueError(f"layer {layer.name}: run_layer needs inputs or a current")
    out_shape = tuple(layer.out_shape)
    if layer.neuron is None and not layer.li_readout:  # the readout: a + bias, no neuron
        if current is None:
            assert inputs is not None
            current, current_wraps = layer_current(d, inputs)
        return LayerRun(out=current + d.bias, wraps=current_wraps)
    back = "torch" if recurrent else kernel_for(d, device, kernel)
    if back == "numba":
        return _run_numba(
            d,
            inputs=inputs,
            current=current,
            current_wraps=current_wraps,
            steps=steps,
            batch=batch,
            record_v=record_v,
            record_u=record_u,
        )
    if current is None:
        assert inputs is not None
        current, current_wraps = layer_current(d, inputs)
    return _run_torch(
        d,
        a=current,
        wraps0=current_wraps,
        recurrent=recurrent,
        record_v=record_v,
        record_u=record_u,
        out_shape=out_shape,
    )


def _run_numba(
    d: PreparedLayer,
    *,
    inputs: Sequence[torch.Tensor] | None,
    current: torch.Tensor | None,
    current_wraps: int,
    steps: int,
    batch: int,
    record_v: bool,
    record_u: bool,
) -> LayerRun:
    """The numba back end: one synapse's raw sums with the shift and wrap fused into the loop;
    several synapses (or a ready current) summed in torch first."""
    from neurodeploy.neuron.kernels.int_scan import lif_scan, mps_scan

    layer = d.layer
    if current is None and inputs is not None and len(d.synapses) == 1:
        syn = d.synapses[0]
        y = syn.synapse.apply(_flat(inputs[0]).to(syn.dtype), weight=syn.weight)
        exp, conv_wrap, wraps0 = syn.weight_exp, syn.synapse.kind != "dense", 0
    else:
        if current is None:
            assert inputs is not None
            current, current_wraps = layer_current(d, inputs)
        y, exp, conv_wrap, wraps0 = current, 0, False, current_wraps
    y_np = np.ascontiguousarray(y.detach().reshape(steps, -1).numpy())
    n = y_np.shape[1]
    bias = d.bias_row
    spikes = np.empty((steps, n), dtype=np.uint8)
    rec_v = np.empty((steps, n), dtype=np.int32) if record_v or layer.li_readout else None
    rec_u = np.empty((steps, n), dtype=np.int64) if record_u else None
    if layer.neuron == "mps":
        m = np.zeros(n, dtype=np.float64)
        sat, wraps = mps_scan(
            y_np,
            exp=exp,
            conv_wrap=conv_wrap,
            bias=bias,
            dv=layer.dv,
            vth=layer.vth,
            coef=layer.coef,
            m=m,
            spikes=spikes,
            rec_v=rec_v,
        )
    else:  # a LIF, or an LI readout (a LIF the quantiser proved cannot fire or overflow)
        u = np.zeros(n, dtype=np.float64)
        if layer.u_init_bias:
            u -= np.tile(bias, n // max(1, bias.shape[0]))
        sat, wraps = lif_scan(
            y_np,
            exp=exp,
            conv_wrap=conv_wrap,
            bias=bias,
            du=layer.du,
            dv=layer.dv,
            vth=layer.vth,
            u=u,
            v=np.zeros(n, dtype=np.float64),
            refractory=layer.reset_delay and not layer.li_readout,
            spikes=spikes,
            rec_u=rec_u,
            rec_v=rec_v,
        )
    shape = (steps, batch, *layer.out_shape)
    if layer.li_readout:
        assert rec_v is not None
        out = torch.from_numpy(rec_v).reshape(shape).to(STATE_DTYPE)
        return LayerRun(out=out, wraps=wraps0 + wraps, saturations=sat)
    return LayerRun(
        spikes=torch.from_numpy(spikes).reshape(shape),
        v=torch.from_numpy(rec_v).reshape(shape) if rec_v is not None and record_v else None,
        u=torch.from_numpy(rec_u).reshape(shape) if rec_u is not None else None,
        saturations=sat,
        wraps=wraps0 + wraps,
    )


def _run_torch(
    d: PreparedLayer,
    *,
    a: torch.Tensor,
    wraps0: int,
    recurrent: Sequence[PreparedSynapse],
    record_v: bool,
    record_u: bool,
    out_shape: tuple[int, ...],
) -> LayerRun:
    """The torch back end: the integer core's step functions, one step at a time."""
    layer = d.layer
    steps, batch = a.shape[:2]
    device = a.device
    counters = Counters()
    counters.add_count(wraps=wraps0)
    zeros = torch.zeros((batch, *out_shape), dtype=STATE_DTYPE, device=device)
    u = zeros - d.bias if layer.u_init_bias else zeros
    v = zeros
    spikes = torch.zeros((steps, batch, *out_shape), dtype=torch.uint8, device=device)
    rec_v = torch.zeros_like(spikes, dtype=torch.int32) if record_v or layer.li_readout else None
    rec_u = torch.zeros_like(spikes, dtype=torch.int64) if record_u else None
    s_prev = zeros
    for t in range(steps):
        a_t = a[t]
        if recurrent and t > 0:
            for syn in recurrent:
                a_r, w_r = syn.apply(s_prev)
                a_t = a_t + a_r
                counters.add_count(wraps=w_r)
        if layer.li_readout:
            _, _, v = lif_int_step(
                a_t, v, v, du=layer.du, dv=layer.dv, vth=layer.vth, bias=d.bias,
                may_wrap=False, may_saturate=False,
            )  # fmt: skip
        elif layer.neuron == "mps":
            s, v, _ = mps_int_step(
                a_t, v, dv=layer.dv, vth=layer.vth, bias=d.bias, coef=layer.coef,
                counters=counters, may_saturate=d.may_saturate,
            )  # fmt: skip
        else:
            s, u, v = lif_int_step(
                a_t, u, v, du=layer.du, dv=layer.dv, vth=layer.vth, bias=d.bias,
                counters=counters, may_wrap=d.may_wrap, may_saturate=d.may_saturate,
                refractory=spikes[t - 1].bool() if layer.reset_delay and t > 0 else None,
            )  # fmt: skip
        if not layer.li_readout:
            spikes[t] = s.to(torch.uint8)
            s_prev = s.to(STATE_DTYPE)
        if rec_v is not None:
            rec_v[t] = v.to(torch.int32)
        if rec_u is not None:
            rec_u[t] = u.to(torch.int64)
    if layer.li_readout:
        assert rec_v is not None
        return LayerRun(out=rec_v.to(STATE_DTYPE), wraps=counters.wraps)
    return LayerRun(
        spikes=spikes,
        v=rec_v if record_v else None,
        u=rec_u,
        saturations=counters.saturations,
        wraps=counters.wraps,
    )


__all__ = ["KERNELS", "LayerRun", "kernel_for", "layer_current", "numba_unavailable", "run_layer"]
