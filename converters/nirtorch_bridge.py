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
from neurodeploy.nn.layers import LI, LIF, PerStep

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


class NeuronStep(nn.Module):
    """One timestep of a neuron node that imports as several modules (CubaLIF: [gain] LI [gain]
    LIF; LI: [gain] LI): ``(x, state) -> (y, state)``, state one entry per module (None for
    gains). LI: V(t) = beta V(t-1) + I(t); LIF: :func:`~neurodeploy.neuron.lif.lif_step`."""

    def __init__(self, mods: list[nn.Module]) -> None:
        super().__init__()
        self.mods = nn.ModuleList(m.module if isinstance(m, PerStep) else m for m in mods)

    def forward(
        self, x: torch.Tensor, state: tuple[object, ...] | None = None
    ) -> tuple[torch.Tensor, tuple[object, ...]]:
        old: list[object] = [None] * len(self.mods) if state is None else list(state)
        new: list[object] = []
        for m, st in zip(self.mods, old, strict=True):
            if isinstance(m, LIF):
                lst = initial_state(x) if st is None else st
                assert isinstance(lst, LIFState)
                x, nst, _ = lif_step(x, lst, m.alpha, m.params)
                new.append(nst)
            elif isinstance(m, LI):
                if st is not None:
                    assert isinstance(st, torch.Tensor)
                    x = m.beta * st + x
                new.append(x)
            else:
                x = m(x)
                new.append(None)
        return x, tuple(new)


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
        if isinstance(node, (nir.CubaLIF, nir.LI)):
            return NeuronStep(mods)
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
    """``{NIR node type: builder}`` for nirtorch: neurons (LIF with our smoothing metadata, IF,
    CubaLIF, LI) and
    the layers, built exactly as our importer builds them (Flatten without the batch axis)."""
    types = (
        nir.LIF,
        nir.IF,
        nir.CubaLIF,
        nir.LI,
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
