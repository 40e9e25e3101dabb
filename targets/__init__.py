"""Execution back ends, installed as ``neurodeploy.targets``: reference, lava, netx.

All targets follow one protocol: build from an integer program (:class:`neurodeploy.quant.program.
IntProgram`), ``run`` integer input, get spikes per neuron layer (``.spikes``, time first).
The reference simulator runs batches (T, B, ...); the Lava-based targets run one sample
(T, ...) per call and add one step of latency per synapse, as Lava does. Lava is imported
lazily by :mod:`neurodeploy.targets.lava` and :mod:`neurodeploy.targets.netx`, never here,
because importing ``lava.proc`` changes the multiprocessing start method process-wide.
"""
from __future__ import annotations

from typing import Any, Protocol

TARGET_NAMES = ("reference", "lava", "netx")


class Target(Protocol):
    name: str

    def run(self, x_int: Any, *args: Any, **kwargs: Any) -> Any:
        """Integer input -> a result with ``.spikes`` (one array per neuron layer)."""


def make_target(name: str, program: Any, **kwargs: Any) -> Target:
    """The target called ``name`` built from ``program``."""
    if name == "reference":
        from neurodeploy.targets.reference import ReferenceTarget
        return ReferenceTarget(program, **kwargs)
    if name == "lava":
        from neurodeploy.targets.lava import LavaTarget
        return LavaTarget(program)
    if name == "netx":
        from neurodeploy.targets.netx import NetxTarget
        return NetxTarget(program, **kwargs)
    raise ValueError(f"target: unknown {name!r}; available: {TARGET_NAMES}")
