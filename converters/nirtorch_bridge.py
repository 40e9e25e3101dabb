"""A node map for ``nirtorch.nir_to_torch`` so that nirtorch users can run our graphs step by step,
smoothed neurons included (they follow the same functional core, neurodeploy/neuron/lif.py).

    import nirtorch, nir
    from neurodeploy.converters.nirtorch_bridge import nirtorch_node_map
    exe = nirtorch.nir_to_torch(nir.read("model.nir"), nirtorch_node_map())
    state = None
    for t in range(T):
        out, state = exe(x[t], state)

nirtorch calls a module whose ``forward`` takes ``state`` as ``module(x, state=...)`` and stores
the returned state; one call is one timestep. Its default Affine mapping does not load the bias
(nirtorch 2.6), so this map brings its own.
"""

from __future__ import annotations

from collections.abc import Callable

import nir
import torch
from torch import nn

from neurodeploy.neuron.lif import LIFState, initial_state, lif_step
from neurodeploy.nn.layers import LIF, PerStep

from .nir_common import DEFAULT_DT
from .nir_import import _Ctx, _importer


class LIFStep(nn.Module):
    """One timestep of one of our LIF layers: ``(x, state) -> (spikes, state)``."""

    def __init__(self, layer: LIF) -> None:
        super().__init__()
        self.layer = layer

    def forward(
        self, x: torch.Tensor, state: LIFState | None = None
    ) -> tuple[torch.Tensor, LIFState]:
        state = initial_state(x) if state is None else state
        s, new, _ = lif_step(x, state, self.layer.alpha, self.layer.params)
        return s, new


def _single(node_type: type, dt: float) -> Callable[[nir.NIRNode], nn.Module]:
    def build(node: nir.NIRNode) -> nn.Module:
        shape = (
            tuple(int(v) for v in node.input_type["input"])
            if node.input_type.get("input") is not None
            else ()
        )
        mods = _importer(type(node).__name__, node)(type(node).__name__, node, shape, _Ctx(dt))
        if not mods:
            return nn.Identity()
        if len(mods) != 1:
            raise ValueError(
                f"{type(node).__name__} node needs {len(mods)} modules; not supported through nirtorch"
            )
        mod = mods[0]
        if isinstance(mod, LIF):
            return LIFStep(mod)
        return mod.module if isinstance(mod, PerStep) else mod

    return build


def nirtorch_node_map(dt: float = DEFAULT_DT) -> dict[type, Callable[[nir.NIRNode], nn.Module]]:
    """``{NIR node type: builder}`` for nirtorch: neurons (LIF with our smoothing metadata, IF) and
    the layers, built exactly as our importer builds them (Flatten without the batch axis)."""
    types = (
        nir.LIF,
        nir.IF,
        nir.Affine,
        nir.Linear,
        nir.Flatten,
        nir.Conv1d,
        nir.Conv2d,
        nir.AvgPool2d,
        nir.SumPool2d,
        nir.Scale,
    )
    return {t: _single(t, dt) for t in types}
