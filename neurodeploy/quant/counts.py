"""Activity counts: spikes, firing rates, synaptic operations, neuron updates, sparsity.

Definitions (../shared/spec/energy.md; the same as NeuroBench's ``SynapticOperations`` and
``ActivationSparsity`` where both define a quantity):

- **Synaptic operations** of a layer at timestep t, one sample: the weight-input products that
  are actually performed, i.e. for every non-zero input the number of its *non-zero* outgoing
  weights, summed (zero weights are not stored, zero inputs send nothing)::

      SynOps(t) = sum_j sum_i [x_i(t) != 0] [W_ji != 0]        (dense; convolutions alike, with
                                                               padding and stride respected)

  They are **ACs** (accumulates) when every input of the layer is in {-1, 0, 1} over the
  recorded data (spikes), otherwise **MACs** (multiply-accumulates: analog or graded input,
  e.g. direct-encoded pixels into the first layer). **Dense** operations count every input and
  every weight: ``sum_j sum_i 1`` over the layer's connections (what an ANN of the same shape
  computes per timestep). Bias additions are not counted (NeuroBench's convention).
- **Spikes** and **firing rate** = spikes / (neurons * T); **activation sparsity** = the
  fraction of zero neuron outputs over all spiking layers, timesteps and samples.
- **Neuron updates** = neurons * T (Loihi updates every compartment every step); *active*
  updates are those in which the neuron spiked, the rest are *inactive*.
- Static: parameter count, connection sparsity (fraction of zero weights in the synapses),
  footprint (bytes of weights and biases at the record's precision).

Two views of one model:

- ``"module"``: one row per ``nn.Linear`` / ``nn.Conv*`` of the PyTorch graph, fed what the
  graph feeds it (after average pooling, an input of averaged spikes is not binary, so its
  operations are MACs). This is NeuroBench's view of the same torch model.
- ``"hardware"``: one row per stage (:mod:`neurodeploy.quant.stages`): pooling, flattening and
  BatchNorm are folded into the next synapse, every hidden synapse is fed spikes, and the
  operations are what a neuromorphic core performs (a pooled convolution counted as the
  pool-folded convolution a core runs, :meth:`~neurodeploy.quant.synapse.Synapse.pool_folded`).
  The reference simulator and Lava count in this view; the float model can be counted in it
  too, so float and integer compare row by row.

Graphs (:mod:`neurodeploy.quant.program`: several synapses into one neuron layer, recurrent
self-loops): a layer's row sums the operations of every synapse into it, and its ``edges`` list
them one by one (:class:`EdgeCounts`: source, kind "feed-forward" or "recurrent")::

    SynOps_e(t) = sum_j sum_i [s_src,i(t) != 0] [W_e,ji != 0]    (the spikes src sends at step t
                                                                 times their fan-out through e)
    SynOps_L(t) = sum over the synapses e into L of SynOps_e(t)

Operations are attributed to the step in which the source sends (a recurrent edge's spikes of
step t arrive at t + 1). A chain's rows carry no ``edges`` (one synapse each, the row itself).
Lava's latency alignment adds *relay* stages (``targets.lava``: an identity synapse of weight 2
into a stock LIF that repeats its input's spikes one step later, ``depth(L) - depth(src) - 1``
of them behind a source ``src`` whose spikes reach a deeper layer ``L``); a Lava record lists
them in :attr:`Counts.relays`, each a row of its own named ``<src>.relay<d>`` (synops = the
spikes it receives, one weight each; neuron updates = its neurons every step; spikes = its
input's, one step later), included in the totals and the energy, so that their cost is shown.
Delays of the network input are a second host source, not chip neurons, and cost nothing here.

The equivalent ANN (:func:`ann_macs`) is counted on the module view: MACs of one pass of the
torch graph's own layers, every connection once.

All per-timestep quantities are sums over the recorded samples; divide by ``samples`` for the
per-sample figures that reports print (:meth:`LayerCounts.per_sample`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.graph import is_chain
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import layer_groups
from neurodeploy.quant.graph_stages import graph_ann_macs, graph_stages
from neurodeploy.quant.stages import Stage, model_stages
from neurodeploy.quant.synapse import Synapse, conv_synapse

VIEWS = ("module", "hardware")
EDGE_FEEDFORWARD = "feed-forward"
EDGE_RECURRENT = "recurrent"
RELAY_WEIGHT = 2  # a relay's identity weight (targets.lava.RELAY_WEIGHT; non-zero is what counts)


def hardware_stages(model: SpikingNet) -> list[Stage]:
    """The hardware stages of any model: :func:`~neurodeploy.quant.stages.model_stages` for a
    chain, :func:`~neurodeploy.quant.graph_stages.graph_stages` for a graph (residual blocks,
    recurrent cells, a :class:`~neurodeploy.nn.graph.GraphBody`)."""
    return model_stages(model) if is_chain(model) else graph_stages(model)


def model_ann_macs(model: SpikingNet) -> float:
    """:func:`ann_macs` of a chain, :func:`~neurodeploy.quant.graph_stages.graph_ann_macs` of a
    graph."""
    return ann_macs(model) if is_chain(model) else graph_ann_macs(model)


def relay_synapse(shape: tuple[int, ...]) -> Synapse:
    """The identity synapse of one Lava relay stage on a layer of ``shape`` (targets.lava
    ``_relay``): a diagonal dense map for a flat layer, a depthwise 1 x 1 convolution for a
    (C, *spatial) one; one non-zero weight per neuron either way."""
    if len(shape) == 1:
        n = shape[0]
        return Synapse("dense", RELAY_WEIGHT * np.eye(n), shape, shape, where="relay")
    c = shape[0]
    kind = {2: "conv1d", 3: "conv2d"}[len(shape)]
    k = (1,) * (len(shape) - 1)
    return Synapse(
        kind,
        np.full((c, 1, *k), float(RELAY_WEIGHT)),
        shape,
        shape,
        stride=k,
        padding=(0,) * len(k),
        groups=c,
        where="relay",
    )


def module_synapse(
    m: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...], where: str
) -> Synapse:
    """The synapse of a torch ``Linear``/``Conv1d``/``Conv2d`` fed ``in_shape`` (per sample and
    timestep); errors name the layer ``where``."""
    if isinstance(m, nn.Linear):
        if len(in_shape) != 1:
            # nn.Linear acts on the last axis; rows before it (e.g. points) would be extra samples
            raise ValueError(
                f"layer {where}: Linear applied to input of shape {in_shape} "
                "(not flat); count it in the hardware view"
            )
        w = m.weight.detach().cpu().double().numpy()
        return Synapse("dense", w, (m.in_features,), (m.out_features,), where=f"layer {where}")
    if isinstance(m, (nn.Conv1d, nn.Conv2d)):
        w = m.weight.detach().cpu().double().numpy()
        return conv_synapse(m, w, in_shape=in_shape, out_shape=out_shape, name=where)
    raise ValueError(
        f"layer {where}: {type(m).__name__} is not a synaptic layer " "(Linear, Conv1d, Conv2d)"
    )


@dataclass(frozen=True)
class ModuleSynapse:
    """One ``Linear``/``Conv*`` of a model's body as the torch graph runs it (the module view)."""

    name: str  # qualified: "body.<child>"
    module: nn.Module  # the torch layer (inside its PerStep wrapper)
    synapse: Synapse
    lif: int | None  # index of the body's LIF layer it drives (the next LIF before any
    # other synapse), None when it drives none (the readout)


def module_synapses(model: SpikingNet) -> list[ModuleSynapse]:
    """Every synaptic layer of ``model``'s body, in order, with the LIF layer each drives
    (:func:`neurodeploy.nn.walk.layer_groups`: the last synapse in front of a LIF drives it).
    Pass a BatchNorm-folded model for NeuroBench's view (BatchNorm is not a synapse)."""
    out: list[ModuleSynapse] = []
    for k, group in enumerate(layer_groups(model)):
        syns = group.synapses
        for i, layer in enumerate(syns):
            drives = k if group.neuron is not None and i == len(syns) - 1 else None
            out.append(
                ModuleSynapse(
                    layer.name,
                    layer.inner,
                    module_synapse(layer.inner, layer.in_shape, layer.out_shape, layer.name),
                    drives,
                )
            )
    return out


def ann_macs(model: SpikingNet) -> float:
    """MACs of one pass of the equivalent ANN: every connection of the torch graph's own layers
    (BatchNorm folded), :meth:`Synapse.dense_ops` summed over :func:`module_synapses`."""
    return float(sum(s.synapse.dense_ops() for s in module_synapses(fold_batchnorm(model))))


@dataclass
class EdgeCounts:
    """The synaptic operations of one synapse into a graph layer, per step, summed over samples
    (module docstring)."""

    source: str
    kind: str  # EDGE_FEEDFORWARD or EDGE_RECURRENT
    synapse_kind: str  # "dense", "conv1d", "conv2d"
    fan_in: int
    weights: int
    nonzero_weights: int
    connections: int
    T: int
    input_spiking: bool = True
    synops: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __post_init__(self) -> None:
        if self.synops.size == 0:
            self.synops = np.zeros(self.T)

    def to_dict(self, samples: int) -> dict[str, Any]:
        n = max(samples, 1)
        syn = float(self.synops.sum()) / n
        return {
            "source": self.source,
            "kind": self.kind,
            "synapse_kind": self.synapse_kind,
            "fan_in": self.fan_in,
            "weights": self.weights,
            "nonzero_weights": self.nonzero_weights,
            "connections": self.connections,
            "input_spiking": self.input_spiking,
            "synops": syn,
            "acs": syn if self.input_spiking else 0.0,
            "macs": 0.0 if self.input_spiking else syn,
            "synops_per_step": (self.synops / n).tolist(),
        }


@dataclass
class LayerCounts:
    """Counts of one synaptic layer and the neuron layer it drives (``neurons == 0`` for a readout).

    Arrays are per timestep and summed over ``samples``."""

    name: str
    kind: str
    neurons: int
    fan_in: int
    weights: int
    nonzero_weights: int
    connections: int
    dense_ops_per_step: int
    T: int
    samples: int = 0
    input_spiking: bool = True
    synops: np.ndarray = field(default_factory=lambda: np.zeros(0))
    spikes: np.ndarray = field(default_factory=lambda: np.zeros(0))
    # graphs: every synapse into the layer (the inline one first); empty for a chain's layer
    edges: list[EdgeCounts] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.synops.size == 0:
            self.synops = np.zeros(self.T)
        if self.spikes.size == 0:
            self.spikes = np.zeros(self.T)

    def add_edges(self, inputs: list[torch.Tensor], synapses: list[Synapse]) -> None:
        """Accumulate one batch's operations of the layer's further synapses ``edges[1:]``:
        per edge its source's output (T, B, *in_shape) as sent; :meth:`add` counts the inline
        synapse (``edges[0]``) and the samples."""
        if len(inputs) != len(self.edges) - 1 or len(synapses) != len(inputs):
            raise ValueError(
                f"layer {self.name}: {len(inputs)} edge inputs for {len(self.edges) - 1} "
                "further synapses"
            )
        for e, x, syn in zip(self.edges[1:], inputs, synapses):
            ops, spiking = _edge_ops(f"layer {self.name}: edge from {e.source}", x, syn, self.T)
            e.synops += ops
            e.input_spiking &= spiking
            self.synops += ops
            self.input_spiking &= spiking

    def add(self, x: torch.Tensor, spikes: torch.Tensor | None, syn: Synapse) -> None:
        """Accumulate one batch: synapse input ``x`` (T, B, *in_shape), neuron output ``spikes``
        (T, B, *out_shape) or None for a readout."""
        T, B = x.shape[:2]
        ops, spiking = _edge_ops(f"layer {self.name}", x, syn, self.T)
        self.input_spiking &= spiking
        self.synops += ops
        if self.edges:
            self.edges[0].synops += ops
            self.edges[0].input_spiking &= spiking
        if spikes is not None:
            if tuple(spikes.shape[:2]) != (T, B) or math.prod(spikes.shape[2:]) != self.neurons:
                raise ValueError(
                    f"layer {self.name}: spikes of shape {tuple(spikes.shape)} do not match "
                    f"{T} steps x {B} samples x {self.neurons} neurons"
                )
            s = spikes.to(torch.float64)
            if not bool(((s == 0) | (s == 1)).all()):
                raise ValueError(f"layer {self.name}: neuron output is not binary (0/1)")
            self.spikes += s.flatten(2).sum((1, 2)).numpy()
        self.samples += B

    # --- derived, per sample -----------------------------------------------------------------
    def per_sample(self) -> dict[str, float]:
        n = max(self.samples, 1)
        syn = float(self.synops.sum()) / n
        spikes = float(self.spikes.sum()) / n
        updates = float(self.neurons * self.T)
        d = {
            "synops": syn,
            "acs": syn if self.input_spiking else 0.0,
            "macs": 0.0 if self.input_spiking else syn,
            "dense_ops": float(self.dense_ops_per_step * self.T),
            "spikes": spikes,
            "neuron_updates": updates,
            "active_updates": spikes,
            "inactive_updates": updates - spikes,
            "firing_rate": spikes / updates if updates else float("nan"),
        }
        d["activation_sparsity"] = 1.0 - d["firing_rate"] if updates else float("nan")
        return d

    def to_dict(self) -> dict[str, Any]:
        edges = {"edges": [e.to_dict(self.samples) for e in self.edges]} if self.edges else {}
        return {
            "name": self.name,
            "kind": self.kind,
            "neurons": self.neurons,
            "fan_in": self.fan_in,
            "weights": self.weights,
            "nonzero_weights": self.nonzero_weights,
            "connections": self.connections,
            "dense_ops_per_step": self.dense_ops_per_step,
            "T": self.T,
            "samples": self.samples,
            "input_spiking": self.input_spiking,
            "synops_per_step": (self.synops / max(self.samples, 1)).tolist(),
            "spikes_per_step": (self.spikes / max(self.samples, 1)).tolist(),
            **self.per_sample(),
            **edges,
        }


def _edge_ops(where: str, x: torch.Tensor, syn: Synapse, T: int) -> tuple[np.ndarray, bool]:
    """Per step, the operations of ``syn`` fed ``x`` (T, B, *in_shape), summed over the batch,
    and whether every input value is in {-1, 0, 1}."""
    if x.shape[0] != T:
        raise ValueError(f"{where}: {x.shape[0]} timesteps recorded, counts were set up for {T}")
    if tuple(x.shape[2:]) != syn.in_shape:
        raise ValueError(
            f"{where}: input shape {tuple(x.shape[2:])} does not match the layer's {syn.in_shape}"
        )
    xf = x.to(torch.float64)
    spiking = bool(((xf == 0) | (xf == 1) | (xf == -1)).all())
    return syn.ops(xf.flatten(0, 1)).view(T, x.shape[1]).sum(1).numpy(), spiking


def edge_counts(source: str, syn: Synapse, *, recurrent: bool, T: int) -> EdgeCounts:
    """Zero counts of one synapse into a graph layer."""
    return EdgeCounts(
        source,
        EDGE_RECURRENT if recurrent else EDGE_FEEDFORWARD,
        syn.kind,
        syn.fan_in,
        syn.num_weights,
        syn.nonzero_weights,
        syn.connections(),
        T,
    )


def graph_layer_counts(
    name: str, edges: list[tuple[str, Synapse, bool]], neurons: int, T: int
) -> LayerCounts:
    """Zero counts of a graph layer fed by ``edges`` (source, synapse, recurrent; the inline
    synapse first): its static figures (fan-in, weights, connections, dense operations) are
    sums over the edges, and each edge gets its :class:`EdgeCounts`."""
    syns = [syn for _, syn, _ in edges]
    return LayerCounts(
        name,
        syns[0].kind,
        neurons,
        sum(s.fan_in for s in syns),
        sum(s.num_weights for s in syns),
        sum(s.nonzero_weights for s in syns),
        sum(s.connections() for s in syns),
        sum(s.dense_ops() for s in syns),
        T,
        edges=[edge_counts(src, syn, recurrent=rec, T=T) for src, syn, rec in edges],
    )


def layer_counts(name: str, syn: Synapse, neurons: int, T: int) -> LayerCounts:
    """Zero counts of one layer: ``syn`` driving ``neurons`` neurons (0: a readout)."""
    return LayerCounts(
        name,
        syn.kind,
        neurons,
        syn.fan_in,
        syn.num_weights,
        syn.nonzero_weights,
        syn.connections(),
        syn.dense_ops(),
        T,
    )


@dataclass
class Counts:
    """All layers' counts for one model on one target (per-sample figures via :meth:`totals`)."""

    source: str  # "torch", "reference", "lava"
    view: str  # "module" or "hardware"
    T: int
    layers: list[LayerCounts]
    parameters: int  # parameter count of the record (weights + biases [+ other])
    footprint_bytes: int
    hardware: str | None = None  # the integer program's hardware spec, for integer records
    # MACs of one pass of the equivalent ANN. Set from the torch graph (module view) where the
    # model is known: the hardware view's folded synapses (pooling composed into convolutions)
    # are larger than the layers an ANN of the same architecture would compute.
    ann_macs: float | None = None
    # Lava records of graphs: the relay stages Lava adds for latency alignment (module docstring)
    relays: list[LayerCounts] = field(default_factory=list)

    @property
    def all_layers(self) -> list[LayerCounts]:
        """The program's layers, then the relay stages (what the chip runs)."""
        return [*self.layers, *self.relays]

    @classmethod
    def empty(
        cls,
        source: str,
        view: str,
        *,
        T: int,
        names: list[str],
        synapses: list[Synapse],
        neurons: list[int],
        parameters: int,
        footprint_bytes: int,
        hardware: str | None = None,
    ) -> Counts:
        """Zero counts for layers ``names`` with ``synapses`` driving ``neurons`` neurons each (0 for
        a readout), set up for ``T`` steps."""
        if view not in VIEWS:
            raise ValueError(f"view: unknown {view!r}; expected one of {VIEWS}")
        if not len(names) == len(synapses) == len(neurons):
            raise ValueError(
                f"counts: {len(names)} names, {len(synapses)} synapses and {len(neurons)} neuron "
                "counts; expected one of each per layer"
            )
        layers = [layer_counts(name, s, n, T) for name, s, n in zip(names, synapses, neurons)]
        return cls(source, view, T, layers, parameters, footprint_bytes, hardware)

    @property
    def samples(self) -> int:
        return self.layers[0].samples if self.layers else 0

    def totals(self) -> dict[str, float]:
        """Per-sample totals over every layer and relay stage (:attr:`all_layers`)."""
        per = [l.per_sample() for l in self.all_layers]
        keys = (
            "synops",
            "acs",
            "macs",
            "dense_ops",
            "spikes",
            "neuron_updates",
            "active_updates",
            "inactive_updates",
        )
        t = {k: float(sum(p[k] for p in per)) for k in keys}
        updates = t["neuron_updates"]
        t["firing_rate"] = t["spikes"] / updates if updates else float("nan")
        t["activation_sparsity"] = 1.0 - t["firing_rate"] if updates else float("nan")
        weights = sum(l.weights for l in self.all_layers)
        t["connection_sparsity"] = (
            1.0 - sum(l.nonzero_weights for l in self.all_layers) / weights
            if weights
            else float("nan")
        )
        t["parameters"] = float(self.parameters)
        t["footprint_bytes"] = float(self.footprint_bytes)
        t["connections"] = float(sum(l.connections for l in self.all_layers))
        t["neurons"] = float(sum(l.neurons for l in self.all_layers))
        # the equivalent ANN: same layers, one pass, every connection a MAC
        t["ann_macs"] = float(
            self.ann_macs
            if self.ann_macs is not None
            else sum(l.dense_ops_per_step for l in self.layers)
        )
        return t

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "view": self.view,
            "hardware": self.hardware,
            "T": self.T,
            "samples": self.samples,
            "ann_macs_from": "torch graph (module view)"
            if self.ann_macs is not None
            else "these layers",
            "layers": [l.to_dict() for l in self.layers],
            **({"relays": [l.to_dict() for l in self.relays]} if self.relays else {}),
            "totals": self.totals(),
        }
