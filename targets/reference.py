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

Graph programs (:mod:`neurodeploy.quant.program`: layers with named sources, ``extra`` edges,
recurrent self-loops) run layer by layer in program order each step; a layer's current is the sum
over its synapses (:meth:`PreparedLayer.current`), synapse e reading its source's value of step
t - delay_e (:meth:`IntProgram.edge_delays`: 0 feed-forward, 1 recurrent; with ``latency``
depth(layer) - depth(source) feed-forward, so every layer runs its own time t - depth(layer)),
zero before step 0; T + max depth steps drain the latency schedule. Chains keep their own loop.

Per-synapse delays (``IntLayer.delay``, a dense inline synapse; Lava's ``DelayDense``): with
x(t) what the synapse reads at step t under the timing above, and delay values v, the layer
receives

    a(t) = sum over v of  (sum over (i, j) with delay[i, j] = v of W[i, j] x_j(t - v)) << weight_exp

each delay value's sum shifted on its own (a flooring right shift for negative exponents), as
Lava's ``PyDelayDenseModelBitAcc`` shifts each delay column of its buffer: a delay of 0 is the
plain synapse's timing (DelayDense, like Dense, delivers at t + 1 in Lava). Computed as one
product with the stacked matrix [W_v1; W_v2; ...] (W_v: W where delay = v, else 0) per step,
each block added into a ring of max(delay) + 1 pending currents, v steps ahead
(:class:`_DelayLine`). Layers without delays run exactly as before.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import Counters, lif_int_step, mps_int_step
from neurodeploy.quant.prepared import STATE_DTYPE, PreparedLayer, PreparedSynapse, prepare
from neurodeploy.quant.program import INPUT, IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse
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
        # a delayed layer's |a| may exceed the plain synapse's bound by one per delay value (each
        # value's sum floors on its own): its neuron keeps every range check
        self.layers = [
            replace(d, may_wrap=True, may_saturate=True) if d.layer.has_delays else d
            for d in self.layers
        ]

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
        T, B = check_input(self.program.input_shape, tuple(x.shape))
        chain = self.program.is_chain
        depth = len(self.layers) if chain else max(self.program.depths().values())
        if steps is None:  # the last input step's effect needs the pipeline and every delay
            steps = T + (depth if self.latency else 0) + self.program.max_delay_path
        run = _Run.start(
            self.layers, steps=steps, batch=B, device=self.device, record=record_states
        )
        zero_in = torch.zeros((B, *self.program.input_shape), dtype=STATE_DTYPE, device=self.device)
        lines = {
            k: _DelayLine.start(d, batch=B, device=self.device)
            for k, d in enumerate(self.layers)
            if d.layer.has_delays
        }
        if chain:
            self._run_chain(run, x, zero_in, T=T, steps=steps, lines=lines)
        else:
            self._run_graph(run, x, zero_in, T=T, steps=steps, lines=lines)
        neurons = [d for d in self.layers if d.layer.neuron is not None]
        return TargetResult(
            spikes=[s.cpu().numpy() for s in run.spikes],
            output=run.out.cpu().numpy().astype(np.int64) if run.out is not None else None,
            counters=run.counters,
            states=[s.cpu().numpy().astype(np.int64) for s in run.states]
            if run.states is not None
            else None,
            layer_names=[d.layer.name for d in neurons],
            seconds={"run": time.perf_counter() - t_start},
            spike_output=self.program.layers[-1].neuron is not None,
        )  # evaluated last: incl. the copies

    def _run_chain(
        self,
        run: _Run,
        x: torch.Tensor,
        zero_in: torch.Tensor,
        *,
        T: int,
        steps: int,
        lines: dict[int, _DelayLine],
    ) -> None:
        """A chain: layer k reads layer k-1's spikes (with ``latency``, of the step before)."""
        n = len(self.layers)
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
                if lines and k in lines:
                    a, wraps = lines[k].step(inp, t), 0
                else:
                    a, wraps = d.synapse(inp)
                s = run.step(d, k_neuron, a, wraps=wraps, t=t)
                if s is None:
                    continue
                cur = s
                k_neuron += 1

    def _run_graph(
        self,
        run: _Run,
        x: torch.Tensor,
        zero_in: torch.Tensor,
        *,
        T: int,
        steps: int,
        lines: dict[int, _DelayLine],
    ) -> None:
        """A graph (module docstring): each step, every layer in program order sums its synapses,
        synapse e reading its source's value of step t - delay_e from a ring buffer of the last
        max(delay) + 1 values per source (zeros before step 0)."""
        prog = self.program
        sources = [prog.sources(k) for k in range(len(self.layers))]
        delays = [prog.edge_delays(k, latency=self.latency) for k in range(len(self.layers))]
        size: dict[str, int] = {}
        for srcs, dls in zip(sources, delays):
            for src, dl in zip(srcs, dls):
                size[src] = max(size.get(src, 1), dl + 1)
        zeros = {INPUT: zero_in}
        for d in self.layers:
            zeros[d.layer.name] = torch.zeros(
                (zero_in.shape[0], *d.layer.out_shape), dtype=STATE_DTYPE, device=self.device
            )
        ring: dict[str, list[torch.Tensor]] = {src: [zeros[src]] * n for src, n in size.items()}

        def value(src: str, t_src: int) -> torch.Tensor:
            return ring[src][t_src % size[src]] if t_src >= 0 else zeros[src]

        for t in range(steps):
            if INPUT in ring:
                ring[INPUT][t % size[INPUT]] = x[t] if t < T else zero_in
            k_neuron = 0
            for k, d in enumerate(self.layers):
                inputs = [value(src, t - dl) for src, dl in zip(sources[k], delays[k])]
                if lines and k in lines:  # the delayed inline synapse, then the extra edges
                    a, wraps = lines[k].step(inputs[0], t), 0
                    for syn, xe in zip(d.synapses[1:], inputs[1:]):
                        a_e, w_e = syn.apply(xe)
                        a, wraps = a + a_e, wraps + w_e
                else:
                    a, wraps = d.current(inputs)
                s = run.step(d, k_neuron, a, wraps=wraps, t=t)
                if s is None:
                    continue
                if d.layer.name in ring:
                    ring[d.layer.name][t % size[d.layer.name]] = s
                k_neuron += 1


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


@dataclass
class _Run:
    """The state of one run: per neuron layer (u, v), counters, recorded spikes (and v); the
    readout's output (and an LI readout's membrane)."""

    state: list[tuple[torch.Tensor, torch.Tensor]]
    counters: list[Counters]
    spikes: list[torch.Tensor]
    states: list[torch.Tensor] | None
    out: torch.Tensor | None
    li_v: torch.Tensor | None

    @classmethod
    def start(
        cls,
        layers: list[PreparedLayer],
        *,
        steps: int,
        batch: int,
        device: torch.device,
        record: bool,
    ) -> _Run:
        neurons = [d.layer for d in layers if d.layer.neuron is not None]

        def zeros(layer: IntLayer, *lead: int) -> torch.Tensor:
            return torch.zeros((*lead, batch, *layer.out_shape), dtype=STATE_DTYPE, device=device)

        def u_start(d: PreparedLayer) -> torch.Tensor:
            """u(-1): 0, or -bias where the current starts at -bias (IntLayer.u_init_bias)."""
            u = zeros(d.layer)
            return u - d.bias if d.layer.u_init_bias else u

        readout = layers[-1].layer if layers[-1].layer.neuron is None else None
        return cls(
            state=[(u_start(d), zeros(d.layer)) for d in layers if d.layer.neuron is not None],
            counters=[Counters() for _ in neurons],
            spikes=[
                torch.zeros((steps, batch, *l.out_shape), dtype=torch.uint8, device=device)
                for l in neurons
            ],
            states=[zeros(layer, steps) for layer in neurons] if record else None,
            out=zeros(readout, steps) if readout is not None else None,
            # an LI readout's membrane (du = 4095: its u is each step's input, not kept)
            li_v=zeros(readout) if readout is not None else None,
        )

    def step(
        self, d: PreparedLayer, k_neuron: int, a: torch.Tensor, *, wraps: int, t: int
    ) -> torch.Tensor | None:
        """Layer ``d`` (the ``k_neuron``-th neuron layer, unless the readout) at step ``t`` with
        input current ``a`` (``wraps`` of its convolution outputs wrapped): its spikes in
        STATE_DTYPE, or None for the readout (its output recorded)."""
        layer = d.layer
        if layer.neuron is None:
            assert self.out is not None and self.li_v is not None  # the readout: the last layer
            if layer.li_readout:  # a LIF that cannot fire (quantize: "LI readout")
                _, _, self.li_v = lif_int_step(
                    a,
                    self.li_v,
                    self.li_v,
                    du=layer.du,
                    dv=layer.dv,
                    vth=layer.vth,
                    bias=d.bias,
                    may_wrap=False,
                    may_saturate=False,
                )
                self.out[t] = self.li_v
            else:
                self.out[t] = a + d.bias
            return None
        counters = self.counters[k_neuron]
        counters.add_count(wraps=wraps)
        u, v = self.state[k_neuron]
        if layer.neuron == "mps":
            s, v, _ = mps_int_step(
                a,
                v,
                dv=layer.dv,
                vth=layer.vth,
                bias=d.bias,
                coef=layer.coef,
                counters=counters,
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
                counters=counters,
                may_wrap=d.may_wrap,
                may_saturate=d.may_saturate,
                refractory=(
                    self.spikes[k_neuron][t - 1].bool() if layer.reset_delay and t > 0 else None
                ),
            )
        self.state[k_neuron] = (u, v)
        self.spikes[k_neuron][t] = s.to(torch.uint8)
        if self.states is not None:
            self.states[k_neuron][t] = v
        return s.to(STATE_DTYPE)
