"""One walk over a model's layers: the body's children with their shapes, grouped by neuron layer.

A :class:`~neurodeploy.nn.net.SpikingNet` body is a sequence of children; each is a synapse
(``Linear``, ``Conv1d``, ``Conv2d``), a parameter-free pass-through map (flatten, pooling, scale,
identity), a neuron layer (``LIF``; ``LI``) or something else (BatchNorm before folding, blocks).
Stateless modules are wrapped in :class:`~neurodeploy.nn.layers.PerStep`; :attr:`BodyLayer.inner`
is the module inside. :func:`layer_groups` cuts the body after every ``LIF``: each group is the
layers in front of one LIF layer (normally pass-throughs and one synapse) and that LIF, and the
layers after the last LIF form the readout group (no neuron). Hardware stages
(:mod:`neurodeploy.quant.stages`), quantisation-aware training, the counting views and the NIR
export all read a model through this walk.

Shapes are per sample and timestep, found by running each child once (in eval mode) on zeros of
batch 1 and one timestep (a LIF keeps its input's shape and is not run).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from neurodeploy.nn.layers import LI, LIF, GlobalPool, PerStep, Scale
from neurodeploy.nn.net import SpikingNet

SYNAPSES = (nn.Linear, nn.Conv1d, nn.Conv2d)
POOLS = (nn.AvgPool1d, nn.AvgPool2d)
PASS_THROUGH = (nn.Flatten, nn.AvgPool1d, nn.AvgPool2d, GlobalPool, Scale, nn.Identity)
ROLES = ("synapse", "pass", "lif", "li", "other")


@dataclass(frozen=True)
class BodyLayer:
    """One child of a model's body, with its per-sample, per-timestep shapes."""

    name: str  # qualified, as in the model's state dict: "body.<child>"
    module: nn.Module  # as in the body (PerStep kept): maps (T, B, *in_shape) -> (T, B, *out_shape)
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def inner(self) -> nn.Module:
        """The module inside a PerStep wrapper, else the module itself."""
        return self.module.module if isinstance(self.module, PerStep) else self.module

    @property
    def role(self) -> str:
        """ "synapse", "pass" (parameter-free pass-through), "lif", "li" or "other"."""
        m = self.inner
        if isinstance(m, SYNAPSES):
            return "synapse"
        if isinstance(m, PASS_THROUGH):
            return "pass"
        if isinstance(m, LIF):
            return "lif"
        return "li" if isinstance(m, LI) else "other"


@dataclass(frozen=True)
class LayerGroup:
    """The body's layers in front of one LIF layer and that LIF (``neuron``), or the layers after
    the last LIF (the readout group, ``neuron`` None)."""

    layers: tuple[BodyLayer, ...]
    neuron: BodyLayer | None
    in_shape: tuple[int, ...]

    @property
    def name(self) -> str:
        """The LIF's qualified name, or "readout"."""
        return self.neuron.name if self.neuron is not None else "readout"

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.layers[-1].out_shape if self.layers else self.in_shape

    @property
    def synapses(self) -> list[BodyLayer]:
        return [layer for layer in self.layers if layer.role == "synapse"]

    @property
    def lif(self) -> LIF | None:
        return self.neuron.module if self.neuron is not None else None  # type: ignore[return-value]


def _eval_run(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module(x)`` in eval mode (no BatchNorm statistics updated), its modes restored after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        y: torch.Tensor = module(x)
        return y
    finally:
        for m, training in modes:
            m.training = training


@torch.no_grad()
def body_layers(model: SpikingNet) -> list[BodyLayer]:
    """The body's children in order with their shapes (module docstring)."""
    p = next(model.parameters(), None)
    dtype, device = (p.dtype, p.device) if p is not None else (torch.float32, torch.device("cpu"))
    shape = tuple(model.input_shape)
    out: list[BodyLayer] = []
    for name, child in model.body.named_children():
        if isinstance(child, LIF):
            nxt = shape
        else:
            nxt = tuple(
                _eval_run(child, torch.zeros((1, 1, *shape), dtype=dtype, device=device)).shape[2:]
            )
        out.append(BodyLayer(f"body.{name}", child, shape, nxt))
        shape = nxt
    return out


def layer_groups(model: SpikingNet) -> list[LayerGroup]:
    """The body cut after every LIF layer (module docstring); a trailing group without a LIF is the
    readout. Every child of the body is in exactly one group, in order."""
    groups: list[LayerGroup] = []
    pending: list[BodyLayer] = []
    shape = tuple(model.input_shape)
    for layer in body_layers(model):
        if layer.role == "lif":
            groups.append(LayerGroup(tuple(pending), layer, shape))
            shape, pending = layer.out_shape, []
        else:
            pending.append(layer)
    if pending:
        groups.append(LayerGroup(tuple(pending), None, shape))
    return groups
