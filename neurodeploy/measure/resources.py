"""Mapping report: what a model's hardware stages need on a chip, and whether it fits.

Per stage (one synaptic map into one layer of neurons; the readout counts as a layer of
non-spiking output neurons), with the folded weights of :mod:`neurodeploy.quant.stages` (a pooled
convolution as the pool-folded convolution a core stores, :meth:`Synapse.pool_folded`):

    neurons    N = prod(out_shape)
    fan-in     F = inputs of the busiest neuron: dense = in features; conv = C_in/groups * the
               kernel taps that land inside the (padded) input at the busiest position
    synapses   S = every (input, neuron) connection, convolutions unrolled (padding excluded),
               which is how a neuron core stores them
    memory     M = S * synapse_bits / 8 + N * neuron_state_bytes         bytes
    cores      C = max(ceil(N / neurons_per_core), ceil(M / memory_per_core),
                       ceil(S / synapses_per_core) where the spec gives it)

Graphs (residual and recurrent stages, :mod:`neurodeploy.quant.graph_stages`; graph programs,
:mod:`neurodeploy.quant.program`): a layer's neurons receive every synapse into it, so

    F = sum over the synapses e into the layer of F_e       (exact for dense edges; for
                                                           convolutions an upper bound: each
                                                           edge's busiest neuron may differ)
    S = sum over e of S_e,   M = S * synapse_bits / 8 + N * neuron_state_bytes

(every edge's weights are stored, a recurrent self-loop's too). The relay stages that Lava's
latency alignment adds (``targets.lava``: ``depth(L) - depth(src) - 1`` identity stages behind a
source) are listed apart (``relays``): N neurons and N synapses each; they are not in the totals,
since a chip can hold the same delays in its synapses (Loihi 2's synaptic delays) instead.

Each layer gets cores of its own (no sharing between layers: an upper bound the Lava compiler
may beat). A model is refused (:class:`ResourceError`, naming the layer and the limit) when one
neuron's synapses and state cannot fit in one core's memory (its fan-in is too large), or when
the stages need more cores than the chip has. The spec's figures and their sources are in
:mod:`neurodeploy.neuron.hardware`. Weight pruning is not offered: every offline-task model fits Loihi 1
and Loihi 2 with room to spare (``benchmarks/results/finetune_accuracy.md``), and the report says
for an over-size layer how much smaller its synapse count would have to be.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from neurodeploy.neuron.hardware import HardwareSpec
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.counts import hardware_stages
from neurodeploy.quant.program import INPUT, IntLayer, IntProgram
from neurodeploy.quant.stages import Stage


class ResourceError(ValueError):
    """A model does not fit the chip; the message names the layer and the limit."""


@dataclass
class LayerResources:
    name: str
    kind: str
    neurons: int
    fan_in: int
    synapses: int
    memory_bytes: int
    cores: int
    binding: str  # which limit sets the core count: "neurons", "memory" or "synapses"
    edges: int = 1  # synapses into the layer (graphs: the inline one and every extra edge)


@dataclass
class ResourceReport:
    hardware: str
    layers: list[LayerResources]
    chip_cores: int
    problems: list[str]
    relays: list[LayerResources] = field(default_factory=list)  # Lava's, apart (module doc)

    @property
    def neurons(self) -> int:
        return sum(l.neurons for l in self.layers)

    @property
    def synapses(self) -> int:
        return sum(l.synapses for l in self.layers)

    @property
    def memory_bytes(self) -> int:
        return sum(l.memory_bytes for l in self.layers)

    @property
    def cores(self) -> int:
        return sum(l.cores for l in self.layers)

    @property
    def fits(self) -> bool:
        return not self.problems

    def require_fit(self) -> None:
        """Raise :class:`ResourceError` listing every limit the model exceeds."""
        if self.problems:
            raise ResourceError(f"does not fit {self.hardware}: " + "; ".join(self.problems))

    def format(self) -> str:
        verdict = "fits" if self.fits else "DOES NOT FIT"
        w = max([12, *(len(l.name) + 2 for l in [*self.layers, *self.relays])])
        lines = [
            f"{self.hardware}: {verdict} -- {self.cores} of {self.chip_cores} cores",
            f"{'layer':<{w}}{'kind':<8}{'neurons':>9}{'fan-in':>8}{'synapses':>11}"
            f"{'memory KiB':>12}{'cores':>7}  binding",
        ]
        lines.extend(
            f"{l.name:<{w}}{l.kind:<8}{l.neurons:>9}{l.fan_in:>8}{l.synapses:>11}"
            f"{l.memory_bytes / 1024:>12.1f}{l.cores:>7}  {l.binding}"
            + (f" ({l.edges} synapses in)" if l.edges > 1 else "")
            for l in self.layers
        )
        lines.append(
            f"{'total':<{w + 8}}{self.neurons:>9}{'':>8}{self.synapses:>11}"
            f"{self.memory_bytes / 1024:>12.1f}{self.cores:>7}"
        )
        if self.relays:
            lines.append(
                f"Lava relays (latency alignment of skip edges; not in the totals): "
                f"{sum(r.neurons for r in self.relays)} neurons"
            )
            lines.extend(
                f"{r.name:<{w}}{r.kind:<8}{r.neurons:>9}{r.fan_in:>8}{r.synapses:>11}"
                f"{r.memory_bytes / 1024:>12.1f}{r.cores:>7}  {r.binding}"
                for r in self.relays
            )
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def layer_resources(layer: Stage | IntLayer, hw: HardwareSpec) -> tuple[LayerResources, list[str]]:
    """One stage's needs on ``hw`` (module docstring; a graph stage's over all its synapses)
    and the limits it breaks, if any."""
    # counted pool-folded: the convolution a core stores (quant.synapse)
    syns = [layer.synapse, *(e.synapse for e in layer.extra)]
    neurons = layer.synapse.neurons_out
    fan_in = sum(s.max_fan_in() for s in syns)
    synapses = sum(s.dense_ops() for s in syns)
    syn_bytes = math.ceil(synapses * hw.synapse_bits / 8)
    memory = syn_bytes + neurons * hw.neuron_state_bytes
    need = {"neurons": math.ceil(neurons / hw.neurons_per_core)}
    problems = []
    if hw.synapse_memory_bytes_per_core is not None:
        need["memory"] = math.ceil(memory / hw.synapse_memory_bytes_per_core)
        one = math.ceil(fan_in * hw.synapse_bits / 8) + hw.neuron_state_bytes
        if one > hw.synapse_memory_bytes_per_core:
            problems.append(
                f"layer {layer.name}: one neuron's {fan_in} input synapses take {one} bytes, more than the "
                f"{hw.synapse_memory_bytes_per_core} bytes of memory per core (largest fan-in that fits: "
                f"{(hw.synapse_memory_bytes_per_core - hw.neuron_state_bytes) * 8 // hw.synapse_bits}); "
                "split the layer's input or lower its fan-in"
            )
    if hw.synapses_per_core is not None:
        need["synapses"] = math.ceil(synapses / hw.synapses_per_core)
    binding = max(need, key=lambda k: need[k])
    return LayerResources(
        layer.name,
        layer.kind,
        neurons,
        fan_in,
        synapses,
        memory,
        max(1, need[binding]),
        binding,
        edges=len(syns),
    ), problems


def relay_resources(program: IntProgram, hw: HardwareSpec) -> list[LayerResources]:
    """The relay stages Lava adds to ``program`` (module docstring), one row each, named as
    Lava names them (``<source>.relay<j>``): N neurons, fan-in 1, N identity synapses."""
    if program.is_chain:
        return []
    depth = program.depths()
    need: dict[str, int] = {}
    for k, layer in enumerate(program.layers):
        for e in program.edges(k):
            if not e.recurrent and e.source != INPUT:
                d = depth[layer.name] - depth[e.source] - 1
                need[e.source] = max(need.get(e.source, 0), d)
    shapes = {l.name: tuple(l.out_shape) for l in program.layers}
    rows = []
    for src, d in need.items():
        n = math.prod(shapes[src])
        memory = math.ceil(n * hw.synapse_bits / 8) + n * hw.neuron_state_bytes
        cores = {"neurons": math.ceil(n / hw.neurons_per_core)}
        if hw.synapse_memory_bytes_per_core is not None:
            cores["memory"] = math.ceil(memory / hw.synapse_memory_bytes_per_core)
        binding = max(cores, key=lambda k: cores[k])
        rows += [
            LayerResources(f"{src}.relay{j}", "relay", n, 1, n, memory, cores[binding], binding)
            for j in range(1, d + 1)
        ]
    return rows


def resource_report(
    model: SpikingNet | IntProgram | list[Stage] | list[IntLayer], hw: HardwareSpec
) -> ResourceReport:
    """The mapping report of a model (its hardware stages), an integer program or a list of stages."""
    layers: Sequence[Stage | IntLayer]
    if isinstance(model, SpikingNet):
        layers = hardware_stages(model)
    elif isinstance(model, IntProgram):
        layers = model.layers
    else:
        layers = model
    rows, problems = [], []
    for layer in layers:
        row, p = layer_resources(layer, hw)
        rows.append(row)
        problems += p
    total = sum(r.cores for r in rows)
    if total > hw.cores:
        worst = max(rows, key=lambda r: r.cores)
        excess_share = 1 - (hw.cores - (total - worst.cores)) / worst.cores
        problems.append(
            f"the stages need {total} cores, {hw.name} has {hw.cores} per chip; the largest is layer "
            f"{worst.name} with {worst.cores} cores (limit: {worst.binding} per core)"
            + (
                f"; it alone would have to shrink by {100 * excess_share:.0f} % to fit"
                if 0 < excess_share < 1
                else ""
            )
        )
    relays = relay_resources(model, hw) if isinstance(model, IntProgram) else []
    return ResourceReport(hw.name, rows, hw.cores, problems, relays)


DEFAULT_SPECS = ("loihi1", "loihi2")


def report_for_path(
    path: str, hardware: list[str] | tuple[str, ...] | None = None, *, dt: float | None = None
) -> tuple[str, bool]:
    """``neurodeploy resources``: the report of a .nir file, checkpoint.pt or .npz integer program
    on each spec in ``hardware`` (default Loihi 1 and Loihi 2); returns (text, fits everywhere)."""
    from neurodeploy.neuron.hardware import get_spec

    specs = [get_spec(h) for h in (hardware or DEFAULT_SPECS)]
    from neurodeploy.converters.model_files import load_model_file

    target = load_model_file(path, dt=dt)[0]  # dt: seconds per timestep of a NIR graph
    stages = hardware_stages(target) if isinstance(target, SpikingNet) else target
    reports = [resource_report(stages, hw) for hw in specs]
    return "\n\n".join(r.format() for r in reports), all(r.fits for r in reports)
