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
  operations are what a neuromorphic core performs. The reference simulator and Lava count in
  this view; the float model can be counted in it too, so float and integer compare row by row.

All per-timestep quantities are sums over the recorded samples; divide by ``samples`` for the
per-sample figures that reports print (:meth:`LayerCounts.per_sample`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KINDS = ("dense", "conv1d", "conv2d")
VIEWS = ("module", "hardware")
FLOAT32_EXACT = 2 ** 24   # integers below this are exact in float32 (the counting convolutions' sums)


@dataclass
class Synapse:
    """The connectivity of one synaptic layer, enough to count its operations.

    ``weight``: dense (out, in) or torch conv layout (C_out, C_in / groups, *kernel); only its
    zero pattern matters for counting.
    """

    name: str
    kind: str
    weight: np.ndarray
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    groups: int = 1
    bias_count: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"layer {self.name}: unknown synapse kind {self.kind!r}; expected one of {KINDS}")
        self.weight = np.asarray(self.weight)
        if not np.isfinite(self.weight).all():
            raise ValueError(f"layer {self.name}: weight has NaN or infinite entries")
        if self.weight.ndim < 2 or math.prod(self.weight.shape[1:]) >= FLOAT32_EXACT:
            raise ValueError(f"layer {self.name}: weight of shape {self.weight.shape}: fan-in too large to count")
        if self.kind == "dense" and self.weight.shape != (math.prod(self.out_shape), math.prod(self.in_shape)):
            raise ValueError(f"layer {self.name}: dense weight {self.weight.shape} does not map input "
                             f"{self.in_shape} to output {self.out_shape}")

    # --- static ------------------------------------------------------------------------------
    @property
    def neurons_out(self) -> int:
        return math.prod(self.out_shape)

    @property
    def num_weights(self) -> int:
        return int(self.weight.size)

    @property
    def nonzero_weights(self) -> int:
        return int(np.count_nonzero(self.weight))

    @property
    def fan_in(self) -> int:
        """Inputs per output neuron: in_features (dense) or C_in/groups * kernel size (conv)."""
        return int(self.weight.shape[1]) if self.kind == "dense" else int(math.prod(self.weight.shape[1:]))

    def connections(self) -> int:
        """Synapses with a non-zero weight, counted per connection (a shared conv weight counts
        once per output position it serves): what a sparse synapse format would store
        (:mod:`neurodeploy.measure.resources` plans with the dense count, :meth:`dense_ops`)."""
        return int(self._apply(torch.ones((1, *self.in_shape), dtype=torch.float64), nonzero_only=True).sum())

    # --- dynamic -----------------------------------------------------------------------------
    def _apply(self, x: torch.Tensor, nonzero_only: bool) -> torch.Tensor:
        """The layer on a 0/1 input with a 0/1 weight (1 where the weight is non-zero, or
        everywhere), no bias: output j counts the operations that reach neuron j. (N, *out)."""
        # float32 is exact here: every partial sum is an integer <= fan-in < 2^24 (checked below)
        w = torch.from_numpy((self.weight != 0) if nonzero_only else np.ones_like(self.weight, dtype=bool))
        w = w.to(torch.float32)
        x = x.to(torch.float32)
        if self.kind == "dense":
            y = x.flatten(1) @ w.T
        else:
            conv = F.conv2d if self.kind == "conv2d" else F.conv1d
            y = conv(x, w, stride=self.stride, padding=self.padding, groups=self.groups)
        return y.to(torch.float64)

    def ops(self, x: torch.Tensor) -> torch.Tensor:
        """Effective operations per row of ``x`` (N, *in_shape): (N,) float64 (exact integers)."""
        if tuple(x.shape[1:]) != tuple(self.in_shape):
            raise ValueError(f"layer {self.name}: input shape {tuple(x.shape[1:])} does not match the "
                             f"layer's {self.in_shape}")
        nz = (x != 0).to(torch.float32)
        return self._apply(nz, nonzero_only=True).flatten(1).sum(1)

    def dense_ops(self) -> int:
        """Every input times every weight, one sample and timestep (what the equivalent ANN does;
        also every (input, neuron) connection, convolutions unrolled, padding excluded)."""
        return int(self._apply(torch.ones((1, *self.in_shape), dtype=torch.float64), nonzero_only=False).sum())

    def max_fan_in(self) -> int:
        """Inputs that reach the busiest output neuron (for a convolution: the in-bounds taps at
        its busiest position times C_in / groups)."""
        return int(self._apply(torch.ones((1, *self.in_shape), dtype=torch.float64), nonzero_only=False).max())

    # --- constructors ------------------------------------------------------------------------
    @classmethod
    def from_module(cls, name: str, m: nn.Module, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> Synapse:
        w = m.weight.detach().cpu().double().numpy()
        nb = int(m.bias.numel()) if getattr(m, "bias", None) is not None else 0
        if isinstance(m, nn.Linear):
            # nn.Linear acts on the last axis; rows beyond it (e.g. points) would be extra samples
            return cls(name, "dense", w, (m.in_features,), (m.out_features,), bias_count=nb)
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            if isinstance(m.padding, str):
                raise ValueError(f"layer {name}: string padding {m.padding!r} is not supported for counting")
            kind = "conv2d" if isinstance(m, nn.Conv2d) else "conv1d"
            return cls(name, kind, w, tuple(in_shape), tuple(out_shape), tuple(m.stride), tuple(m.padding),
                       m.groups, nb)
        raise ValueError(f"layer {name}: {type(m).__name__} is not a synaptic layer (Linear, Conv1d, Conv2d)")

    @classmethod
    def from_stage(cls, st: Any) -> Synapse:
        """From a :class:`neurodeploy.quant.stages.Stage` (float weights, pooling folded in)."""
        return cls(st.name, st.kind, st.weight, tuple(st.in_shape), tuple(st.out_shape), tuple(st.stride),
                   tuple(st.padding), int(st.groups), int(np.count_nonzero(st.bias)))

    @classmethod
    def from_int_layer(cls, layer: Any) -> Synapse:
        """From an :class:`neurodeploy.quant.program.IntLayer` (integer weights)."""
        nb = int(np.count_nonzero(layer.bias_mant)) if layer.neuron is not None else \
            int(np.count_nonzero(layer.readout_bias))
        return cls(layer.name, layer.kind, layer.weight, tuple(layer.in_shape), tuple(layer.out_shape),
                   tuple(layer.stride), tuple(layer.padding), int(layer.groups), nb)


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

    def __post_init__(self) -> None:
        if self.synops.size == 0:
            self.synops = np.zeros(self.T)
        if self.spikes.size == 0:
            self.spikes = np.zeros(self.T)

    def add(self, x: torch.Tensor, spikes: torch.Tensor | None, syn: Synapse) -> None:
        """Accumulate one batch: synapse input ``x`` (T, B, *in_shape), neuron output ``spikes``
        (T, B, *out_shape) or None for a readout."""
        T, B = x.shape[:2]
        if T != self.T:
            raise ValueError(f"layer {self.name}: {T} timesteps recorded, counts were set up for {self.T}")
        xf = x.to(torch.float64)
        self.input_spiking &= bool(((xf == 0) | (xf == 1) | (xf == -1)).all())
        self.synops += syn.ops(xf.flatten(0, 1)).view(T, B).sum(1).numpy()
        if spikes is not None:
            if tuple(spikes.shape[:2]) != (T, B) or math.prod(spikes.shape[2:]) != self.neurons:
                raise ValueError(f"layer {self.name}: spikes of shape {tuple(spikes.shape)} do not match "
                                 f"{T} steps x {B} samples x {self.neurons} neurons")
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
        return {
            "name": self.name, "kind": self.kind, "neurons": self.neurons, "fan_in": self.fan_in,
            "weights": self.weights, "nonzero_weights": self.nonzero_weights, "connections": self.connections,
            "dense_ops_per_step": self.dense_ops_per_step, "T": self.T, "samples": self.samples,
            "input_spiking": self.input_spiking, "synops_per_step": (self.synops / max(self.samples, 1)).tolist(),
            "spikes_per_step": (self.spikes / max(self.samples, 1)).tolist(), **self.per_sample(),
        }


@dataclass
class Counts:
    """All layers' counts for one model on one target (per-sample figures via :meth:`totals`)."""

    source: str                 # "torch", "reference", "lava"
    view: str                   # "module" or "hardware"
    T: int
    layers: list[LayerCounts]
    parameters: int             # parameter count of the record (weights + biases [+ other])
    footprint_bytes: int
    hardware: str | None = None  # the integer program's hardware spec, for integer records
    # MACs of one pass of the equivalent ANN. Set from the torch graph (module view) where the
    # model is known: the hardware view's folded synapses (pooling composed into convolutions)
    # are larger than the layers an ANN of the same architecture would compute.
    ann_macs: float | None = None

    @classmethod
    def empty(cls, source: str, view: str, T: int, synapses: list[Synapse], neurons: list[int],
              parameters: int, footprint_bytes: int, hardware: str | None = None) -> Counts:
        if view not in VIEWS:
            raise ValueError(f"view: unknown {view!r}; expected one of {VIEWS}")
        layers = [LayerCounts(s.name, s.kind, n, s.fan_in, s.num_weights, s.nonzero_weights, s.connections(),
                              s.dense_ops(), T) for s, n in zip(synapses, neurons)]
        return cls(source, view, T, layers, parameters, footprint_bytes, hardware)

    @property
    def samples(self) -> int:
        return self.layers[0].samples if self.layers else 0

    def totals(self) -> dict[str, float]:
        per = [l.per_sample() for l in self.layers]
        keys = ("synops", "acs", "macs", "dense_ops", "spikes", "neuron_updates", "active_updates", "inactive_updates")
        t = {k: float(sum(p[k] for p in per)) for k in keys}
        updates = t["neuron_updates"]
        t["firing_rate"] = t["spikes"] / updates if updates else float("nan")
        t["activation_sparsity"] = 1.0 - t["firing_rate"] if updates else float("nan")
        weights = sum(l.weights for l in self.layers)
        t["connection_sparsity"] = 1.0 - sum(l.nonzero_weights for l in self.layers) / weights if weights else float("nan")
        t["parameters"] = float(self.parameters)
        t["footprint_bytes"] = float(self.footprint_bytes)
        t["connections"] = float(sum(l.connections for l in self.layers))
        t["neurons"] = float(sum(l.neurons for l in self.layers))
        # the equivalent ANN: same layers, one pass, every connection a MAC
        t["ann_macs"] = float(self.ann_macs if self.ann_macs is not None
                              else sum(l.dense_ops_per_step for l in self.layers))
        return t

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "view": self.view, "hardware": self.hardware, "T": self.T,
                "samples": self.samples,
                "ann_macs_from": "torch graph (module view)" if self.ann_macs is not None else "these layers",
                "layers": [l.to_dict() for l in self.layers], "totals": self.totals()}
