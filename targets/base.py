"""What every target is: the :class:`Target` protocol, its one result type
:class:`TargetResult`, and the registry :data:`TARGETS` of target names.

A target is built from an integer program (:class:`neurodeploy.quant.program.IntProgram`, and
nothing above it) and runs a batch of integer input ``x_int`` of shape (T, B, *input_shape):
binary spikes (0/1) or graded payloads, as :meth:`IntProgram.quantize_input` makes them. It runs
``steps`` timesteps per sample (default T, or T + depth with one step of latency per synapse,
where depth is the number of synaptic layers, so that the pipeline drains) and returns, time
first and batch second:

- ``spikes``: per neuron layer, (steps, B, *out_shape) uint8;
- ``output``: the readout's integer synaptic input per step, (steps, B, classes) int64, its bias
  included: ``out[t] = (W x[t]) << weight_exp + readout_bias`` (None where the program has no
  readout or the target cannot read it); for an LI readout (``IntLayer.li_readout``) the
  membrane of its non-spiking compartment, ``v(t) = decay(v(t-1), dv) + (a[t] << 6) + bias``;
- ``spike_output``: True where the program has no readout (its last layer spikes, the common
  snnTorch shape Linear -> Leaky -> Linear -> Leaky): the last neuron layer's spikes are the output;
- ``states``: per neuron layer, (steps, B, *out_shape) int64, the state after each step in the
  x64 domain (``v`` for a stock LIF, the smoothed ``m`` for a smoothed neuron), when asked for;
- ``counters``: per neuron layer, saturation and wrap events, where the target counts them;
- ``seconds``: wall seconds per phase ("build", "compile", "run", "read", "stop").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from neurodeploy.neuron.fixedpoint import Counters
    from neurodeploy.quant.program import IntProgram


@dataclass
class TargetResult:
    """One batch run on a target (shapes in the module docstring)."""

    spikes: list[np.ndarray]
    output: np.ndarray | None
    layer_names: list[str]
    states: list[np.ndarray] | None = None
    counters: list[Counters] | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    spike_output: bool = False  # no readout: the last neuron layer's spikes are the output

    @property
    def steps(self) -> int:
        """Timesteps recorded per sample."""
        first = self.spikes[0] if self.spikes else self.output
        return 0 if first is None else int(first.shape[0])

    @property
    def batch(self) -> int:
        """Samples in the batch."""
        first = self.spikes[0] if self.spikes else self.output
        return 0 if first is None else int(first.shape[1])

    def predictions(self) -> np.ndarray:
        """Predicted class per sample (B,): ``argmax_c sum_t out[t, b, c]``, the readout summed
        over steps; for a program without a readout (``spike_output``), the last neuron layer's
        spike count ``argmax_c sum_t s[t, b, c]`` (neurons flattened in C order). Ties go to the
        lowest index (numpy's argmax), as in the float model's ``z.mean(0).argmax(-1)``."""
        if self.output is not None:
            return np.asarray(self.output.sum(0).argmax(-1))
        if self.spike_output and self.spikes:
            counts = self.spikes[-1].sum(0, dtype=np.int64)
            return np.asarray(counts.reshape(counts.shape[0], -1).argmax(-1))
        raise ValueError(
            "this result has no readout (the program has none, or the target does not read it)"
        )


class Target(Protocol):
    """Build from an integer program; ``run`` a batch of integer input (T, B, *input_shape)."""

    name: str
    program: IntProgram
    latency: bool  # one step of latency per synaptic layer (Lava's pipeline)

    def run(
        self, x_int: np.ndarray, *, steps: int | None = None, record_states: bool = False
    ) -> TargetResult:
        """Run every sample of ``x_int`` for ``steps`` steps (default: T, plus the depth with
        latency), each from zero state."""
        ...


@dataclass(frozen=True)
class TargetInfo:
    """A registered target: where its class lives and what its results hold."""

    name: str
    cls: str  # "module:Class", imported when the target is made
    description: str
    readout: bool  # results carry the readout (so predictions)
    states: bool  # can record states
    latency: bool | None  # always (True), never (False) or on request (None)


TARGETS: dict[str, TargetInfo] = {
    t.name: t
    for t in (
        TargetInfo(
            "reference",
            "neurodeploy.targets.reference:ReferenceTarget",
            "batched bit-exact integer simulator (torch, CPU or CUDA)",
            readout=True,
            states=True,
            latency=None,
        ),
        TargetInfo(
            "lava",
            "neurodeploy.targets.lava:LavaTarget",
            "Lava process graph, Loihi2SimCfg fixed_pt (bit-accurate), one runtime per batch",
            readout=True,
            states=True,
            latency=True,
        ),
        TargetInfo(
            "netx",
            "neurodeploy.targets.netx:NetxTarget",
            "lava-dl netx HDF5 network in Lava fixed_pt (stock neurons; hidden layers only)",
            readout=False,
            states=False,
            latency=True,
        ),
    )
}


def check_input(shape: tuple[int, ...], x_shape: tuple[int, ...]) -> tuple[int, int]:
    """(T, B) of a batch of input of shape ``x_shape`` = (T, B, *shape) for a program whose input
    is ``shape``; a ValueError naming both shapes otherwise (every target checks this first)."""
    shape, x_shape = tuple(shape), tuple(x_shape)
    if len(x_shape) != 2 + len(shape) or x_shape[2:] != shape:
        raise ValueError(f"input: expected (T, B, {', '.join(map(str, shape))}), got {x_shape}")
    return x_shape[0], x_shape[1]


def target_names(*, readout: bool = False, states: bool = False) -> tuple[str, ...]:
    """Names of the registered targets whose results carry the readout (``readout``) and can
    record states (``states``), in registry order."""
    return tuple(
        t.name for t in TARGETS.values() if (t.readout or not readout) and (t.states or not states)
    )


def make_target(name: str, program: IntProgram, **kwargs: object) -> Target:
    """The target called ``name`` (a key of :data:`TARGETS`) built from ``program``; ``kwargs``
    go to its constructor (e.g. ``device``/``latency`` for the reference)."""
    import importlib

    info = TARGETS.get(name)
    if info is None:
        raise ValueError(f"target: unknown {name!r}; available: {', '.join(TARGETS)}")
    module, cls = info.cls.split(":")
    target: Target = getattr(importlib.import_module(module), cls)(program, **kwargs)
    return target
