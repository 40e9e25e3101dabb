"""Fold BatchNorm into the preceding Linear/Conv (inference form), as export and hardware need.

For BN in eval mode, y = g * (x - mu) / sqrt(var + eps) + b_bn, so with s = g / sqrt(var + eps)
a preceding layer W x + b becomes (s W) x + (s (b - mu) + b_bn), per output channel.
The folded model computes the same function up to float rounding (not bit-identical:
the products are rounded in a different order); spikes can differ where a membrane lands
within rounding of the threshold.
"""

from __future__ import annotations

import copy
from collections import OrderedDict

import torch
from torch import nn

from neurodeploy.nn.layers import PerStep
from neurodeploy.nn.net import SpikingNet

# the layers a BatchNorm folds into, and the BatchNorms folded (also isinstance's classes)
Foldable = nn.Linear | nn.Conv1d | nn.Conv2d
BatchNorm = nn.BatchNorm1d | nn.BatchNorm2d


@torch.no_grad()
def fold_layer(layer: Foldable, bn: BatchNorm) -> Foldable:
    """A copy of ``layer`` (Linear/Conv) with eval-mode ``bn`` folded in."""
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:
        raise ValueError(
            f"{type(bn).__name__} has no running statistics (track_running_stats=False): cannot fold"
        )
    out = copy.deepcopy(layer)
    scale = (bn.weight if bn.affine else torch.ones_like(var)) / torch.sqrt(var + bn.eps)
    shift = bn.bias if bn.affine else torch.zeros_like(mean)
    w = layer.weight * scale.reshape(-1, *([1] * (layer.weight.dim() - 1)))
    b = layer.bias if layer.bias is not None else torch.zeros_like(mean)
    out.weight = nn.Parameter(w)
    out.bias = nn.Parameter(scale * (b - mean) + shift)
    return out


def fold_batchnorm(model: SpikingNet) -> SpikingNet:
    """A copy of ``model`` (eval mode) in which every PerStep(BN) that follows a PerStep(Linear/
    Conv) is folded into it. A BN with nothing to fold into is an error naming the layer."""
    body = model.body
    if not isinstance(body, nn.Sequential):
        raise ValueError(
            f"model {model.name!r}: fold_batchnorm folds chains; a {type(body).__name__} body "
            "is folded by neurodeploy.nn.graph.fold_graph"
        )
    layers: list[
        tuple[str, nn.Module]
    ] = []  # original names kept, so errors name the user's layers
    i = 0
    names = [n for n, _ in body.named_children()]
    while i < len(body):
        m = body[i]
        nxt = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(m, PerStep)
            and isinstance(m.module, Foldable)
            and isinstance(nxt, PerStep)
            and isinstance(nxt.module, BatchNorm)
        ):
            layers.append((names[i], PerStep(fold_layer(m.module, nxt.module))))
            i += 2
            continue
        if isinstance(m, PerStep) and isinstance(m.module, BatchNorm):
            raise ValueError(
                f"layer body.{names[i]}: {type(m.module).__name__} does not follow a Linear/Conv "
                "layer, so it cannot be folded"
            )
        layers.append((names[i], copy.deepcopy(m)))
        i += 1
    folded = SpikingNet(
        model.name, nn.Sequential(OrderedDict(layers)), model.input_shape, model.num_classes
    )
    return folded.to(next(model.parameters()).device).eval()
