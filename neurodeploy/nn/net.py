"""The container every model is: a sequential spiking network over time-major input.

``SpikingNet(name, body, input_shape, num_classes)`` maps (T, B, *input_shape) to per-timestep
logits (T, B, num_classes); the zoo (:mod:`neurodeploy.nn.zoo`), the NIR importer and the
quantiser all produce or consume it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from neurodeploy.nn.layers import LIF


class SpikingNet(nn.Module):
    """A spiking network: input (T, B, *input_shape) -> logits (T, B, num_classes). ``body`` is a
    chain (``nn.Sequential``) or a graph (:class:`neurodeploy.nn.graph.GraphBody`)."""

    def __init__(self, name: str, body: nn.Module, input_shape: Sequence[int], num_classes: int):
        super().__init__()
        self.name = name
        self.body = body
        self.input_shape = tuple(int(s) for s in input_shape)
        self.num_classes = int(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 + len(self.input_shape) or tuple(x.shape[2:]) != self.input_shape:
            raise ValueError(
                f"model {self.name!r}: expected input (T, B, {', '.join(map(str, self.input_shape))}), "
                f"got shape {tuple(x.shape)}"
            )
        return self.body(x)

    def lif_layers(self) -> list[tuple[str, LIF]]:
        return [(n, m) for n, m in self.named_modules() if isinstance(m, LIF)]

    def alphas(self) -> dict[str, float]:
        """The smoothing coefficient of every LIF layer (0.0 where MPS is off)."""
        return {n: m.alpha_value() for n, m in self.lif_layers()}
