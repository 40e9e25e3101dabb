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
from dataclasses import dataclass

from neurodeploy.neuron.hardware import HardwareSpec
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.quant.stages import Stage, model_stages


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


@dataclass
class ResourceReport:
    hardware: str
    layers: list[LayerResources]
    chip_cores: int
    problems: list[str]

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
        lines = [
            f"{self.hardware}: {verdict} -- {self.cores} of {self.chip_cores} cores",
            f"{'layer':<12}{'kind':<8}{'neurons':>9}{'fan-in':>8}{'synapses':>11}"
            f"{'memory KiB':>12}{'cores':>7}  binding",
        ]
        lines.extend(
            f"{l.name:<12}{l.kind:<8}{l.neurons:>9}{l.fan_in:>8}{l.synapses:>11}"
            f"{l.memory_bytes / 1024:>12.1f}{l.cores:>7}  {l.binding}"
            for l in self.layers
        )
        lines.append(
            f"{'total':<20}{self.neurons:>9}{'':>8}{self.synapses:>11}{self.memory_bytes / 1024:>12.1f}"
            f"{self.cores:>7}"
        )
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)


def layer_resources(layer: Stage | IntLayer, hw: HardwareSpec) -> tuple[LayerResources, list[str]]:
    """One stage's needs on ``hw`` (module docstring) and the limits it breaks, if any."""
    syn = layer.synapse  # counted pool-folded: the convolution a core stores (quant.synapse)
    neurons = syn.neurons_out
    fan_in = syn.max_fan_in()
    synapses = syn.dense_ops()
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
        layer.name, layer.kind, neurons, fan_in, synapses, memory, max(1, need[binding]), binding
    ), problems


def resource_report(
    model: SpikingNet | IntProgram | list[Stage] | list[IntLayer], hw: HardwareSpec
) -> ResourceReport:
    """The mapping report of a model (its hardware stages), an integer program or a list of stages."""
    layers: Sequence[Stage | IntLayer]
    if isinstance(model, SpikingNet):
        layers = model_stages(model)
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
    return ResourceReport(hw.name, rows, hw.cores, problems)


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
    stages = model_stages(target) if isinstance(target, SpikingNet) else target
    reports = [resource_report(stages, hw) for hw in specs]
    return "\n\n".join(r.format() for r in reports), all(r.fits for r in reports)
