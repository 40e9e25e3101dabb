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

Layer-major (:mod:`neurodeploy.quant.scan`): layers run one after the other in program order,
each over all steps at once. Synapse e of layer k reads its source's whole sequence delayed by
delay_e steps (:meth:`IntProgram.edge_delays`: 0 feed-forward, 1 recurrent; with ``latency``
depth(layer) - depth(source) feed-forward, so every layer runs its own time t - depth(layer)),
zeros before step 0: one matrix product or convolution over (steps x B) samples, then the
neurons over the steps in one compiled loop (numba on CPU; the integer core stepped in torch on
CUDA or with ``kernel="torch"``). Program order is topological over feed-forward edges and the
only cycles are recurrent self-loops, so every source's sequence is complete when a layer runs;
a layer with a recurrent self-edge adds that current step by step. This is the step-by-step
schedule (every layer at step t, then t + 1) reordered, bit for bit: a neuron at step t sees
the same current, and its state is the same recurrence. T + max depth steps drain the latency
schedule. Chains are graphs whose layers read the layer before.

Per-synapse delays (``IntLayer.delay``, a dense inline synapse; Lava's ``DelayDense``): with
x(t) what the synapse reads at step t under the timing above, and delay values v, the layer
receives

    a(t) = sum over v of  (sum over (i, j) with delay[i, j] = v of W[i, j] x_j(t - v)) << weight_exp

each delay value's sum shifted on its own (a flooring right shift for negative exponents), as
Lava's ``PyDelayDenseModelBitAcc`` shifts each delay column of its buffer: a delay of 0 is the
plain synapse's timing (DelayDense, like Dense, delivers at t + 1 in Lava). Computed as one
product with the stacked matrix [W_v1; W_v2; ...] (W_v: W where delay = v, else 0) per step,
each block added into a ring of max(delay) + 1 pending currents, v steps ahead
(:class:`_DelayLine`, the one synapse that runs step by step).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import Counters
from neurodeploy.quant.prepared import STATE_DTYPE, PreparedLayer, PreparedSynapse, prepare
from neurodeploy.quant.program import INPUT, IntProgram
from neurodeploy.quant.scan import LayerRun, kernel_for, run_layer
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.base import TargetResult, check_input


class ReferenceTarget:
    """Build from an integer program, run a batch, get spikes per layer (the targets' protocol)."""

    name = "reference"

    def __init__(
        self,
        program: IntProgram,
        device: str = "auto",
        latency: bool = False,
        kernel: str = "auto",
    ) -> None:
        program.check_shapes()  # a named error before torch sees a mismatched state
        self.program = program
        self.device = torch.device(
            "cuda"
            if device == "auto" and torch.cuda.is_available()
            else ("cpu" if device == "auto" else device)
        )
        self.latency = latency
        self.kernel = kernel  # the neuron back end (neurodeploy.quant.scan): auto, numba, torch
        # per layer: the IntLayer and its tensors (neurodeploy.quant.qat runs the same prepared layers)
        self.layers: list[PreparedLayer] = prepare(program, self.device)
        # a delayed layer's |a| may exceed the plain synapse's bound by one per delay value (each
        # value's sum floors on its own): its neuron keeps every range check
        self.layers = [
            replace(d, may_wrap=True, may_saturate=True) if d.layer.has_delays else d
            for d in self.layers
        ]
        for d in self.layers:  # an unknown kernel, or numba where it cannot run: named now
            kernel_for(d, self.device, kernel)
        # the schedule, fixed with the program: per layer its edges and their delays (steps)
        self._edges = [program.edges(k) for k in range(len(self.layers))]
        self._delays = [program.edge_delays(k, latency=latency) for k in range(len(self.layers))]
        # steps after the input that drain it: the pipeline (a chain's depth is its number of
        # layers) with latency, and every synaptic delay
        self._drain = (max(program.depths().values()) if latency else 0) + program.max_delay_path

    @torch.no_grad()
    def run(
        self,
        x_int: np.ndarray | torch.Tensor,
        *,
        steps: int | None = None,
        record_states: bool = False,
    ) -> TargetResult:
        """Run integer input (T, B, *input_shape) for ``steps`` (default T, plus the pipeline
        depth with ``latency``: the number of layers of a chain, the largest depth of a graph);
        missing input steps are zeros."""
        t_start = time.perf_counter()
        x = torch.as_tensor(
            np.asarray(x_int) if not isinstance(x_int, torch.Tensor) else x_int, device=self.device
        ).to(STATE_DTYPE)
        T, _ = check_input(self.program.input_shape, tuple(x.shape))
        if steps is None:  # the last input step's effect needs the pipeline and every delay
            steps = T + self._drain
        if steps > T:
            x = torch.cat([x, x.new_zeros((steps - T, *x.shape[1:]))])
        runs = self._run_layers(x[:steps], steps=steps, record=record_states)
        neurons = [(d, r) for d, r in zip(self.layers, runs) if d.layer.neuron is not None]
        counters = []
        for _, r in neurons:
            c = Counters()
            c.add_count(wraps=r.wraps, saturations=r.saturations)
            counters.append(c)
        readout = runs[-1].out if self.layers[-1].layer.neuron is None else None
        return TargetResult(
            spikes=[r.spikes.cpu().numpy() for _, r in neurons if r.spikes is not None],
            output=readout.cpu().numpy().astype(np.int64) if readout is not None else None,
            counters=counters,
            states=[r.v.cpu().numpy().astype(np.int64) for _, r in neurons if r.v is not None]
            if record_states
            else None,
            layer_names=[d.layer.name for d, _ in neurons],
            seconds={"run": time.perf_counter() - t_start},
            spike_output=self.program.layers[-1].neuron is not None,
        )  # evaluated last: incl. the copies

    def _run_layers(self, x: torch.Tensor, *, steps: int, record: bool) -> list[LayerRun]:
        """Every layer over all ``steps`` in program order (module docstring, "Layer-major"):
        synapse e of layer k reads its source's whole sequence shifted by its delay (zeros before
        step 0); a recurrent self-edge is added step by step inside the layer's run."""
        seqs: dict[str, torch.Tensor] = {INPUT: x}
        runs: list[LayerRun] = []
        for d, edges, delays in zip(self.layers, self._edges, self._delays):
            ff = [_shifted(seqs[e.source], dl) for e, dl in zip(edges, delays) if not e.recurrent]
            rec = [syn for syn, e in zip(d.synapses, edges) if e.recurrent]
            if d.layer.has_delays or rec:  # the current first: a delay line, or ff edges only
                ff_syn = [syn for syn, e in zip(d.synapses, edges) if not e.recurrent]
                a, wraps = _ff_current(d, ff_syn, ff, steps=steps, delayed=d.layer.has_delays)
                r = run_layer(
                    d, current=a, current_wraps=wraps, recurrent=rec, kernel=self.kernel,
                    record_v=record,
                )  # fmt: skip
            else:
                r = run_layer(d, ff, kernel=self.kernel, record_v=record)
            runs.append(r)
            if r.spikes is not None:
                seqs[d.layer.name] = r.spikes
        return runs


def _shifted(seq: torch.Tensor, delay: int) -> torch.Tensor:
    """``seq`` (steps, ...) delayed by ``delay`` steps: zeros first, the last ``delay`` dropped."""
    if delay == 0:
        return seq
    steps = seq.shape[0]
    pad = seq.new_zeros((min(delay, steps), *seq.shape[1:]))
    return torch.cat([pad, seq[: max(0, steps - delay)]])


def _ff_current(
    d: PreparedLayer,
    synapses: list[PreparedSynapse],
    inputs: list[torch.Tensor],
    *,
    steps: int,
    delayed: bool,
) -> tuple[torch.Tensor, int]:
    """The summed feed-forward current (steps, B, *out_shape) of ``d`` and its wrapped
    convolution outputs: the inline synapse through its delay line when ``delayed``
    (:class:`_DelayLine`, step by step), each other synapse over all steps at once."""
    batch = inputs[0].shape[1]
    total: torch.Tensor | None = None
    wraps = 0
    for j, (syn, xin) in enumerate(zip(synapses, inputs)):
        if j == 0 and delayed:
            line = _DelayLine.start(d, batch=batch, device=xin.device)
            a = torch.stack([line.step(xin[t], t) for t in range(steps)])
        else:
            flat, w = syn.apply(xin.reshape(steps * batch, *xin.shape[2:]))
            a = flat.reshape(steps, batch, *flat.shape[1:])
            wraps += w
        total = a if total is None else total + a
    if total is None:  # a layer fed only by its own recurrent edge (no feed-forward input)
        total = torch.zeros(
            (steps, batch, *d.layer.out_shape), dtype=STATE_DTYPE, device=d.bias.device
        )
    return total, wraps


@dataclass
class _DelayLine:
    """A dense synapse with per-synapse delays during one run (module docstring): ``stacked``
    maps the input to one block of currents per delay value (``values``), each block already
    shifted by the exponent; ``pending[(t + v) % R]`` collects what arrives at step t + v,
    R = max(values) + 1."""

    stacked: PreparedSynapse
    values: tuple[int, ...]
    pending: torch.Tensor  # (R, B, n_out) STATE_DTYPE

    @classmethod
    def start(cls, d: PreparedLayer, *, batch: int, device: torch.device) -> _DelayLine:
        """The delay line of ``d``'s inline synapse, empty (nothing pending before step 0)."""
        layer = d.layer
        w = np.asarray(layer.synapse.weight)
        delay = np.asarray(layer.delay)
        values = tuple(int(v) for v in np.unique(delay))
        stacked = np.concatenate([np.where(delay == v, w, 0) for v in values])
        syn = Synapse(
            "dense",
            stacked,
            layer.synapse.in_shape,
            (stacked.shape[0],),
            where=f"layer {layer.name} (delays)",
        )
        inline = d.synapses[0]  # each block's rows are rows of W: the same exact dtype serves
        prepared = PreparedSynapse(
            syn,
            layer.weight_exp,
            inline.dtype,
            torch.as_tensor(stacked.astype(np.float64), dtype=inline.dtype, device=device),
            inline.bound,
        )
        pending = torch.zeros(
            (max(values) + 1, batch, w.shape[0]), dtype=STATE_DTYPE, device=device
        )
        return cls(prepared, values, pending)

    def step(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Send ``x`` (what the synapse reads at step t) down the line; the current that arrives
        at step t (B, n_out)."""
        y, _ = self.stacked.apply(x)  # (B, len(values) * n_out), each block shifted on its own
        size, n_out = self.pending.shape[0], self.pending.shape[2]
        blocks = y.reshape(y.shape[0], len(self.values), n_out)
        for k, v in enumerate(self.values):
            self.pending[(t + v) % size] += blocks[:, k]
        a = self.pending[t % size].clone()
        self.pending[t % size] = 0
        return a
