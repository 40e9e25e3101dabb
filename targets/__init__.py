"""Execution back ends, installed as ``neurodeploy.targets``: reference, lava, netx.

All targets follow one protocol (:mod:`neurodeploy.targets.base`): build from an integer program
(:class:`neurodeploy.quant.program.IntProgram`), ``run`` a batch of integer input
(T, B, *input_shape), get one :class:`TargetResult` (spikes per neuron layer, the readout with
its bias, optional states, counters, seconds per phase). :data:`TARGETS` is the one registry
of target names. The Lava-based targets add one step of latency per synapse, as Lava does.
Lava is imported lazily by :mod:`neurodeploy.targets.lava` and :mod:`neurodeploy.targets.netx`,
never here, because importing ``lava.proc`` changes the multiprocessing start method
process-wide.
"""

from __future__ import annotations

from neurodeploy.targets.base import (
    TARGETS,
    Target,
    TargetInfo,
    TargetResult,
    make_target,
    target_names,
)

TARGET_NAMES = tuple(TARGETS)

__all__ = [
    "TARGETS",
    "TARGET_NAMES",
    "Target",
    "TargetInfo",
    "TargetResult",
    "make_target",
    "target_names",
]
