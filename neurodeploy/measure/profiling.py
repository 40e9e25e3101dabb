"""Profile a spiking model on a target: record its activity on task data, count it
(:mod:`neurodeploy.quant.counts`), estimate its energy (:mod:`neurodeploy.measure.energy`).

Targets and what is recorded, batch by batch:

========== ============================================ =========================================
target     runs                                          view(s)
========== ============================================ =========================================
torch      the float model (BatchNorm folded, eval)      "hardware" (stages) or "module" (nn layers)
reference  its integer program, batched bit-exact sim    "hardware"
lava       its integer program on Lava fixed_pt, one     "hardware"
           runtime per batch (neurodeploy.targets.lava)
========== ============================================ =========================================

Lava adds one step of latency per synapse and runs every neuron from step 0, so a layer's bias
acts for a few steps before the first input reaches it: Lava's activity is not a time-shifted
copy of the latency-free reference. A Lava profile (and a reference profile with
``latency=True``, which reproduces Lava bit for bit) therefore counts all T + depth steps the
chip runs; synaptic operations are attributed to the step in which the presynaptic spike is sent.

Graphs (residual and recurrent programs, :mod:`neurodeploy.quant.program`): every synapse into
a layer is counted from its own source's output as sent (:class:`~neurodeploy.quant.counts.
EdgeCounts`, a layer's row is their sum); a latency record covers T + max depth steps
(:meth:`IntProgram.depths`); a Lava record adds the relay stages Lava builds for latency
alignment as rows of their own (``Counts.relays``, named as Lava names them). The float model of
a graph is counted in the hardware view (its node spikes by name, no membranes); the module view
(NeuroBench's) takes chains only and refuses a graph by name.

Membrane potentials: per neuron layer and timestep, the state each timestep *starts from*
(M(t-1) for the reset reading, zero at t = 1), in threshold units (float: / theta; integer:
/ (vth << 6), the value v is compared with) -- the quantity of the paper's Figure 1. At most
``MEMBRANE_VALUES`` values per layer and timestep are kept (the first recorded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from neurodeploy.checks import check_count, check_optional_count
from neurodeploy.data import TaskData
from neurodeploy.data.inputs import Inputs, as_inputs
from neurodeploy.measure.calibrate import OverflowSearch
from neurodeploy.measure.energy import (
    DEFAULT_ENERGY_MODELS,
    EnergyEstimate,
    EnergyModel,
    get_energy_model,
)
from neurodeploy.neuron.fixedpoint import vth_membrane
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.graph import is_chain, to_graph
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.counts import (
    Counts,
    graph_layer_counts,
    hardware_stages,
    layer_counts,
    model_ann_macs,
    module_synapses,
    relay_synapse,
)
from neurodeploy.quant.program import INPUT, IntProgram
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets import TARGETS, make_target, target_names

# the float model, and every registered target whose results carry the readout and states
# (neurodeploy.targets.TARGETS: reference, lava)
PROFILE_TARGETS = ("torch", *target_names(readout=True, states=True))
MEMBRANE_VALUES = 20000  # values kept per layer and timestep for the distributions
RASTER_NEURONS = 256  # neurons per layer kept for the raster (evenly spaced)
WEIGHT_BITS_BYTES = (
    1  # integer programs: weights stored as 8-bit mantissas (plus one exponent per layer)
)
BIAS_BYTES = 2  # integer programs: biases as 13-bit mantissas, stored in 16 bits


#: one synapse into a graph layer: (source, synapse, recurrent)
Edge = tuple[str, Synapse, bool]


@dataclass
class Batch:
    """One recorded batch: per synaptic layer its input (T, B, *in) and its neurons' spikes
    (T, B, *out) or None (readout); per neuron layer the start states (T, B, *out) in threshold
    units (or None); the predicted classes (B,). Graphs: per layer the inputs of its further
    synapses (``edge_inputs``, the sources' outputs as sent) and the relay stages' (input,
    spikes) per relay (``relays``, Lava)."""

    inputs: list[torch.Tensor]
    spikes: list[torch.Tensor | None]
    starts: list[torch.Tensor] | None
    predictions: np.ndarray
    edge_inputs: list[list[torch.Tensor]] = field(default_factory=list)
    relays: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


class Recorder:
    """Records one target's activity; ``names``, ``synapses`` and ``neurons`` (per synapse, the
    neurons it drives; 0 for a readout) describe its layers."""

    source: str
    view: str = "hardware"
    names: list[str]
    synapses: list[Synapse]
    neurons: list[int]
    parameters: int
    footprint_bytes: int
    hardware: str | None = None
    latency: bool = False
    clipped: int = 0  # graded input values clipped to the payload range (integer programs)
    #: graphs: per layer every synapse into it (the inline one first); empty for a chain
    edges: Sequence[list[Edge]] = ()
    #: Lava graphs: the relay stages (name, neuron shape), in Batch.relays order
    relays: Sequence[tuple[str, tuple[int, ...]]] = ()

    def steps(self, T: int) -> int:
        """Steps recorded for T input timesteps."""
        return T

    def empty_counts(self, T: int) -> Counts:
        """Zero counts of this recorder's layers (and relays) for ``T`` recorded steps."""
        counts = Counts.empty(
            self.source,
            self.view,
            T=T,
            names=self.names,
            synapses=self.synapses,
            neurons=self.neurons,
            parameters=self.parameters,
            footprint_bytes=self.footprint_bytes,
            hardware=self.hardware,
        )
        if self.edges:
            counts.layers = [
                graph_layer_counts(nm, edges, n, T)
                for nm, edges, n in zip(self.names, self.edges, self.neurons)
            ]
        counts.relays = [
            layer_counts(nm, relay_synapse(shape), _neuron_count(shape), T)
            for nm, shape in self.relays
        ]
        return counts

    def record(self, x: torch.Tensor) -> Batch:  # pragma: no cover - interface
        raise NotImplementedError


def _neuron_count(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def _torch_sizes(model: nn.Module) -> tuple[int, int]:
    """(parameter count, footprint in bytes of parameters and buffers), as NeuroBench counts them."""
    return (
        int(sum(p.numel() for p in model.parameters())),
        int(sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])),
    )


def _chain(
    x: torch.Tensor, spikes: list[torch.Tensor], n_synapses: int
) -> tuple[list[torch.Tensor], list[torch.Tensor | None]]:
    """A chain of stages: synapse k is fed the input (k = 0) or layer k-1's spikes and drives
    layer k's neurons (none for the readout)."""
    return [x, *spikes][:n_synapses], [*spikes, *([None] * (n_synapses - len(spikes)))]


def _graph_inputs(
    x: torch.Tensor, spikes: dict[str, torch.Tensor], edges: Sequence[list[Edge]]
) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
    """Per graph layer the input of its inline synapse and of its further ones: the source's
    output as sent (the network input ``x`` for :data:`INPUT`)."""

    def value(src: str) -> torch.Tensor:
        return x if src == INPUT else spikes[src]

    return (
        [value(es[0][0]) for es in edges],
        [[value(src) for src, _, _ in es[1:]] for es in edges],
    )


def _stage_edges(stages: Sequence[Any], program: IntProgram | None = None) -> list[list[Edge]]:
    """Every synapse into each stage or program layer (the inline one first, its source
    resolved), or [] for a chain."""
    if program is not None:
        if program.is_chain:
            return []
        return [
            [(e.source, e.synapse, e.recurrent) for e in program.edges(k)]
            for k in range(len(program.layers))
        ]
    if all(st.source is None and not st.extra for st in stages):
        return []
    out: list[list[Edge]] = []
    for k, st in enumerate(stages):
        src = st.source if st.source is not None else (stages[k - 1].name if k else INPUT)
        out.append(
            [(src, st.synapse, False), *[(e.source, e.synapse, e.recurrent) for e in st.extra]]
        )
    return out


@torch.no_grad()
def graph_node_spikes(
    model: SpikingNet, x: torch.Tensor, names: Sequence[str]
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``model(x)`` (the model as a BatchNorm-folded graph, :func:`~neurodeploy.nn.graph.
    to_graph`) and the spikes (T, B, ...) of the neuron nodes ``names`` (the stage names of
    :func:`~neurodeploy.quant.graph_stages.graph_stages`), by name."""
    from neurodeploy.nn.graph import fold_graph, graph_body

    g = to_graph(model).eval()
    folded = fold_graph(graph_body(g.body))
    g.body = folded
    seen: dict[str, torch.Tensor] = {}
    missing = [n for n in names if n not in folded.nodes]
    if missing:
        raise ValueError(f"graph nodes {missing}: not in the model (nodes: {list(folded.nodes)})")
    hooks = [
        folded.nodes[n].register_forward_hook(lambda _m, _i, out, n=n: seen.__setitem__(n, out))
        for n in names
    ]
    try:
        z = g(x)
    finally:
        for h in hooks:
            h.remove()
    return z, seen


def float_layer_spikes(
    model: SpikingNet, x: torch.Tensor, program: IntProgram
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``model(x)`` (BatchNorm folded) and the float spikes of each of ``program``'s neuron
    layers, in program order: a chain's LIF layers in order, a graph's neuron nodes by name
    (:func:`graph_node_spikes`; the program's layer names are the graph's node names)."""
    from neurodeploy.measure.analysis import run_recording_spikes

    if program.is_chain and is_chain(model):
        return run_recording_spikes(fold_batchnorm(model).eval(), x)
    names = [l.name for l in program.layers if l.neuron is not None]
    z, by_name = graph_node_spikes(model, x, names)
    return z, [by_name[n] for n in names]


class TorchHardwareRecorder(Recorder):
    """The float model, counted stage by stage (pooling, BN and flatten folded into synapses)."""

    source = "torch"
    view = "hardware"

    def __init__(self, model: SpikingNet) -> None:
        self.chain = is_chain(model)
        self.orig = model.eval()
        self.model = fold_batchnorm(model).eval() if self.chain else self.orig
        self.stages = hardware_stages(model)
        self.names = [st.name for st in self.stages]
        self.synapses = [st.synapse for st in self.stages]
        self.neurons = [
            _neuron_count(st.out_shape) if st.neuron is not None else 0 for st in self.stages
        ]
        self.edges = [] if self.chain else _stage_edges(self.stages)
        self.parameters, self.footprint_bytes = _torch_sizes(model)

    @torch.no_grad()
    def record(self, x: torch.Tensor) -> Batch:
        if self.chain:
            spikes, starts, z = _run_recording(self.model, x)
            inputs, outs = _chain(x, spikes, len(self.synapses))
            return Batch(inputs, outs, starts, z.mean(0).argmax(-1).numpy())
        neurons = [nm for nm, n in zip(self.names, self.neurons) if n > 0]
        z, by_name = graph_node_spikes(self.orig, x, neurons)
        inline, further = _graph_inputs(x, by_name, self.edges)
        outs = [by_name.get(nm) if n > 0 else None for nm, n in zip(self.names, self.neurons)]
        return Batch(inline, outs, None, z.mean(0).argmax(-1).numpy(), edge_inputs=further)


def _run_recording(
    model: SpikingNet, x: torch.Tensor
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """Spikes and start states (threshold units) of every LIF layer, and the logits."""
    lifs = [m for _, m in model.lif_layers()]
    seen: dict[int, torch.Tensor] = {}
    hooks = [
        m.register_forward_pre_hook(lambda m, a, k=k: seen.__setitem__(k, a[0]))
        for k, m in enumerate(lifs)
    ]
    try:
        z = model(x)
    finally:
        for h in hooks:
            h.remove()
    spikes, starts = [], []
    for k, m in enumerate(lifs):
        tr = m.trace(seen[k])
        spikes.append(tr.spikes)
        starts.append(tr.start / m.params.theta)
    return spikes, starts, z


class TorchModuleRecorder(Recorder):
    """The float model, counted per ``nn.Linear``/``nn.Conv*`` as the PyTorch graph feeds them
    (NeuroBench's view, :func:`neurodeploy.quant.counts.module_synapses`): the spikes attributed
    to a synapse are those of the LIF layer it drives (none for the readout)."""

    source = "torch"
    view = "module"

    def __init__(self, model: SpikingNet) -> None:
        if not is_chain(model):
            raise ValueError(
                f"view 'module': model {model.name!r} is a graph (residual or recurrent); the "
                "module view (NeuroBench's, one row per nn.Linear/Conv fed what the torch graph "
                "feeds it) is computed for chains only; use view 'hardware' (per synapse edge)"
            )
        self.model = fold_batchnorm(model).eval()
        self.layers = module_synapses(self.model)
        self.names = [s.name for s in self.layers]
        self.synapses = [s.synapse for s in self.layers]
        self.neurons = [
            _neuron_count(s.synapse.out_shape) if s.lif is not None else 0 for s in self.layers
        ]
        self.parameters, self.footprint_bytes = _torch_sizes(model)

    @torch.no_grad()
    def record(self, x: torch.Tensor) -> Batch:
        T, B = x.shape[:2]
        ins: dict[str, torch.Tensor] = {}
        hooks = [
            s.module.register_forward_pre_hook(lambda m, a, n=s.name: ins.__setitem__(n, a[0]))
            for s in self.layers
        ]
        try:
            spikes, starts, z = _run_recording(self.model, x)
        finally:
            for h in hooks:
                h.remove()
        inputs = [ins[s.name].unflatten(0, (T, B)) for s in self.layers]
        outs = [spikes[s.lif] if s.lif is not None else None for s in self.layers]
        return Batch(inputs, outs, starts, z.mean(0).argmax(-1).numpy())


class ProgramRecorder(Recorder):
    """An integer program on the reference simulator or on Lava (fixed_pt). With ``latency``
    (always on for Lava) the record covers T + depth steps, as the chip runs."""

    view = "hardware"

    def __init__(
        self,
        program: IntProgram,
        target: str = "reference",
        membranes: bool = True,
        latency: bool = False,
    ) -> None:
        if target not in PROFILE_TARGETS[1:]:
            raise ValueError(
                f"target: {target!r} does not run integer programs with a readout and states; "
                f"use one of {PROFILE_TARGETS[1:]}"
            )
        program.validate()
        self.program = program
        #: the overflow record when the recorder quantised a float model (make_recorder)
        self.overflow: OverflowSearch | None = None
        self.source = target
        self.membranes = membranes
        self.latency = latency or bool(TARGETS[target].latency)  # None (on request) -> latency
        self.clipped = 0
        self.hardware = program.hardware
        self.names = [l.name for l in program.layers]
        self.synapses = [l.synapse for l in program.layers]
        self.neurons = [
            _neuron_count(l.out_shape) if l.neuron is not None else 0 for l in program.layers
        ]
        self.edges = _stage_edges([], program)
        self.depths = program.depths()
        # Lava's relays (targets.lava.build_graph): behind a source whose spikes reach a layer
        # d = depth(L) - depth(src) - 1 > 0 steps later than Lava's own one step, d relay stages
        # named "<src>.relay<j>", shared by every edge of the source
        relay_depth: dict[str, int] = {}
        if target == "lava":
            for k, layer in enumerate(program.layers):
                for e in program.edges(k):
                    if e.recurrent or e.source == INPUT:
                        continue
                    d = self.depths[layer.name] - self.depths[e.source] - 1
                    relay_depth[e.source] = max(relay_depth.get(e.source, 0), d)
        shapes = {l.name: tuple(l.out_shape) for l in program.layers}
        self.relay_of = [
            (src, j) for src, d in relay_depth.items() for j in range(1, d + 1)
        ]  # (source, stage j: the source's spikes j steps later)
        self.relays = [(f"{src}.relay{j}", shapes[src]) for src, j in self.relay_of]
        weights = sum(
            e.synapse.num_weights for k in range(len(program.layers)) for e in program.edges(k)
        )  # pool-folded, as a core stores them
        biases = sum(
            np.asarray(l.bias_mant).size
            if l.neuron is not None
            else np.asarray(l.readout_bias).size
            for l in program.layers
        )
        self.parameters = int(weights + biases)
        self.footprint_bytes = int(weights * WEIGHT_BITS_BYTES + biases * BIAS_BYTES)
        opts = {"device": "cpu", "latency": self.latency} if target == "reference" else {}
        self._target = make_target(target, program, **opts)

    def steps(self, T: int) -> int:
        """T, or with latency T + the largest depth (a chain's: its number of layers)."""
        return T + max(self.depths.values()) if self.latency else T

    def _vth(self) -> list[float]:
        """The threshold in membrane units: the neuron fires when v > vth << VTH_SHIFT."""
        return [float(vth_membrane(l.vth)) for l in self.program.layers if l.neuron is not None]

    def record(self, x: torch.Tensor) -> Batch:
        xi, clipped = self.program.quantize_input(x.numpy())
        self.clipped += clipped
        steps = self.steps(xi.shape[0])
        r = self._target.run(
            xi, steps=steps, record_states=self.membranes
        )  # the whole batch at once
        spikes = [torch.from_numpy(s) for s in r.spikes]
        states, preds = r.states, r.predictions()
        starts = None
        if states is not None:
            starts = []
            for s, vth in zip(states, self._vth()):
                st = torch.zeros(s.shape, dtype=torch.float64)
                st[1:] = torch.from_numpy(s[:-1].astype(np.float64)) / vth
                starts.append(st)
        x_steps = np.zeros((steps, *xi.shape[1:]), dtype=xi.dtype)
        x_steps[: xi.shape[0]] = xi
        x_t = torch.from_numpy(x_steps)
        if not self.edges:
            inputs, outs = _chain(x_t, spikes, len(self.synapses))
            return Batch(inputs, outs, starts, np.asarray(preds))
        spiking = [nm for nm, n in zip(self.names, self.neurons) if n > 0]
        by_name = dict(zip(spiking, spikes, strict=True))
        inline, further = _graph_inputs(x_t, by_name, self.edges)
        outs = [by_name.get(nm) if n > 0 else None for nm, n in zip(self.names, self.neurons)]
        relays = [
            (_shift(by_name[src], j - 1), _shift(by_name[src], j)) for src, j in self.relay_of
        ]
        return Batch(inline, outs, starts, np.asarray(preds), edge_inputs=further, relays=relays)


def _shift(s: torch.Tensor, d: int) -> torch.Tensor:
    """Spikes (steps, B, ...) ``d`` steps later (zeros first; the last d steps drop out): what a
    chain of d relays repeats of them within the sample's steps."""
    if d == 0:
        return s
    out = torch.zeros_like(s)
    out[d:] = s[:-d]
    return out


@dataclass
class Profile:
    """Everything measured for one model on one target."""

    label: str
    target: str
    counts: Counts
    energy: list[EnergyEstimate]
    accuracy: float | None  # None: the inputs have no labels (reported as n/a)
    raster: dict[str, np.ndarray]  # layer -> (T, neurons kept) uint8, sample 0
    membranes: dict[str, list[np.ndarray]]  # layer -> per timestep, start states (threshold units)
    meta: dict[str, Any] = field(default_factory=dict)

    def energy_by_model(self) -> dict[str, EnergyEstimate]:
        return {e.model: e for e in self.energy}

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "target": self.target,
            "accuracy": self.accuracy,
            "meta": self.meta,
            "counts": self.counts.to_dict(),
            "energy": [e.to_dict() for e in self.energy],
            "membrane_summary": {
                k: [
                    {
                        "mean": float(v.mean()) if v.size else float("nan"),
                        "std": float(v.std()) if v.size else float("nan"),
                    }
                    for v in vals
                ]
                for k, vals in self.membranes.items()
            },
        }


def make_recorder(
    model: SpikingNet | IntProgram,
    target: str,
    *,
    view: str = "hardware",
    task: TaskData | Inputs | None = None,
    hardware: str = "loihi2",
    membranes: bool = True,
    latency: bool = False,
    T: int | None = None,
    allow_overflow: bool | None = None,
    weight_split: int = 1,
) -> Recorder:
    """The recorder for ``model`` on ``target``; a float model bound for an integer target is
    quantised for ``hardware`` first (input settings from ``task``) by
    :func:`~neurodeploy.measure.calibrate.quantize_checked` with ``allow_overflow`` (``None``:
    no overflow check; ``False``: search exponents free of 24-bit overflow on the first samples
    of ``task`` over ``T`` steps, or refuse; ``True``: accept and count), its record kept as the
    recorder's ``overflow``."""
    if target not in PROFILE_TARGETS:
        raise ValueError(f"target: unknown {target!r}; available: {PROFILE_TARGETS}")
    if isinstance(model, IntProgram):
        if target == "torch":
            raise ValueError(
                "target 'torch' runs a float model; an integer program runs on 'reference' or 'lava'"
            )
        return ProgramRecorder(model, target, membranes, latency)
    if target == "torch":
        if view == "module":
            return TorchModuleRecorder(model)
        if view != "hardware":
            raise ValueError(f"view: unknown {view!r}; expected 'hardware' or 'module'")
        return TorchHardwareRecorder(model)
    if view != "hardware":
        raise ValueError(f"view {view!r}: integer targets count in the 'hardware' view only")
    if task is None:
        raise ValueError("quantising for an integer target needs the task (its input range)")
    from neurodeploy.measure.calibrate import quantize_checked
    from neurodeploy.neuron.hardware import get_spec

    checked = quantize_checked(  # weight_split: neurodeploy.quant.split (edges counted each)
        model,
        get_spec(hardware),
        task,
        T=T,
        allow_overflow=allow_overflow,
        weight_split=weight_split,
    )
    rec = ProgramRecorder(checked.program, target, membranes, latency)
    rec.overflow = checked
    return rec


def check_task_fits(
    model: SpikingNet | IntProgram, task: TaskData | Inputs, what: str = "model"
) -> None:
    if tuple(task.input_shape) != tuple(model.input_shape):
        raise ValueError(
            f"task {task.name!r} gives input of shape {tuple(task.input_shape)} per timestep, but the "
            f"{what} expects {tuple(model.input_shape)}"
        )


def profile(
    model: SpikingNet | IntProgram,
    task: TaskData | Inputs,
    T: int,
    target: str = "torch",
    *,
    view: str = "hardware",
    samples: int | None = 256,
    batch_size: int = 128,
    energy_models: Sequence[str | EnergyModel] = DEFAULT_ENERGY_MODELS,
    hardware: str = "loihi2",
    label: str | None = None,
    membranes: bool = True,
    latency: bool = False,
    progress: bool = True,
    allow_overflow: bool | None = None,
    weight_split: int = 1,
) -> Profile:
    """Run ``samples`` test samples of ``task`` (all with None) through ``model`` on ``target``
    and count everything; energy under each of ``energy_models`` (names, files or objects).
    ``latency`` (reference target): run with Lava's one step per synapse, T + depth steps.
    A float model on an integer target is quantised with ``allow_overflow`` as in
    :func:`make_recorder` (the CLI passes ``False`` unless ``--allow-overflow``); the overflow
    record goes to ``meta["overflow"]`` (text) and ``meta["overflow_counts"]`` (per layer
    saturations and wraps of the program profiled) when it was checked."""
    models = [get_energy_model(m) for m in energy_models]  # fail before any work on a bad name
    T = check_count("T", T)
    samples = check_optional_count("samples", samples)
    batch_size = check_count("batch_size", batch_size)
    check_task_fits(model, task)
    if latency and target == "torch":
        raise ValueError(
            "latency: the float model has none; use it with target 'reference' (Lava always has it)"
        )
    rec = make_recorder(
        model,
        target,
        view=view,
        task=task,
        hardware=hardware,
        membranes=membranes,
        latency=latency,
        T=T,
        allow_overflow=allow_overflow,
        weight_split=weight_split,
    )
    steps = rec.steps(T)
    src = as_inputs(task)  # an offline task, the user's data or random spikes; labels optional
    n = len(src) if samples is None else min(samples, len(src))
    if n < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    counts = rec.empty_counts(steps)
    if isinstance(rec, ProgramRecorder):  # the quantiser recorded it from the torch graph
        counts.ann_macs = rec.program.meta.get("ann_macs")
    elif isinstance(rec, TorchModuleRecorder):
        counts.ann_macs = float(sum(syn.dense_ops() for syn in rec.synapses))  # = ann_macs(model)
    else:
        assert isinstance(model, SpikingNet)  # an integer program is recorded by ProgramRecorder
        counts.ann_macs = model_ann_macs(model)
    neuron_names = [name for name, k in zip(rec.names, rec.neurons) if k > 0]
    membranes_acc: dict[str, list[list[np.ndarray]]] = {
        nm: [[] for _ in range(steps)] for nm in neuron_names
    }
    raster: dict[str, np.ndarray] = {}
    relay_syns = [relay_synapse(shape) for _, shape in rec.relays]
    correct = 0
    bar = tqdm(total=n, desc=f"profile {label or rec.source}", unit="sample", disable=not progress)
    try:
        for i in range(0, n, batch_size):
            j = min(i + batch_size, n)
            x = src.encode(src.x[i:j], T)
            b = rec.record(x)
            if src.y is not None:
                correct += int((b.predictions == src.y[i:j].numpy()).sum())
            for lc, syn, xin, s in zip(counts.layers, rec.synapses, b.inputs, b.spikes):
                lc.add(xin, s, syn)
            for lc, edges, xs in zip(counts.layers, rec.edges, b.edge_inputs):
                lc.add_edges(xs, [syn for _, syn, _ in edges[1:]])
            for rc, rsyn, (xin, s) in zip(counts.relays, relay_syns, b.relays):
                rc.add(xin, s, rsyn)
            for k, nm in enumerate(neuron_names):
                s = b.spikes[k]
                assert s is not None  # neuron layers come first; only the readout has none
                if i == 0:
                    flat = s[:, 0].flatten(1).numpy().astype(np.uint8)
                    keep = np.unique(
                        np.linspace(
                            0, flat.shape[1] - 1, min(RASTER_NEURONS, flat.shape[1])
                        ).astype(int)
                    )
                    raster[nm] = flat[:, keep]
                if b.starts is not None:
                    for t in range(steps):
                        have = sum(a.size for a in membranes_acc[nm][t])
                        if have < MEMBRANE_VALUES:
                            membranes_acc[nm][t].append(
                                b.starts[k][t].flatten().double().numpy()[: MEMBRANE_VALUES - have]
                            )
            bar.update(j - i)
    finally:
        bar.close()
    membranes_out = (
        {
            nm: [np.concatenate(v) if v else np.zeros(0) for v in per_t]
            for nm, per_t in membranes_acc.items()
        }
        if membranes
        else {}
    )
    meta: dict[str, Any] = {
        "task": task.name,
        "inputs": src.description,
        "T": T,
        "steps": steps,
        "samples": n,
        "view": rec.view,
    }
    if steps != T:
        meta["latency"] = f"one step per synapse: {steps} steps recorded for T = {T}"
    if rec.hardware:
        meta["hardware"] = rec.hardware
    if rec.clipped:  # graded input values beyond the payload range (counted, not hidden)
        meta["input_values_clipped"] = rec.clipped
    overflow = rec.overflow if isinstance(rec, ProgramRecorder) else None
    if overflow is not None and overflow.checked:
        meta["overflow"] = overflow.format()
        meta["overflow_counts"] = {
            l.name: {"saturations": l.after.saturations, "wraps": l.after.wraps}
            for l in overflow.layers
        }
    return Profile(
        label or rec.source,
        target,
        counts,
        [m.estimate(counts) for m in models],
        correct / n if src.y is not None else None,
        raster,
        membranes_out,
        meta,
    )
