"""The model zoo: every model is built from the same layers (:class:`PerStep` around stateless
torch modules, :class:`LIF` neurons) and returns per-timestep logits (T, B, classes) from a
non-spiking linear readout; the prediction is the mean over timesteps.

========== ================================================ =========================
name       architecture                                     input (per timestep)
========== ================================================ =========================
mlp        Flatten-[Linear-BN-LIF] x n-Linear                any
vgg        [Conv3x3-BN-LIF(-AvgPool2)] blocks-Flatten-Linear (C, H, W)
conv1d     [Conv1d k3-BN-LIF-AvgPool2] x2-Linear-LIF-Linear  (C, L)
pointnet   shared per-point [Conv1d k1-BN-LIF] x3, mean (or   (3, N points)
           max) over points, Linear-BN-LIF-Linear
========== ================================================ =========================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from neurodeploy.nn.archs import ARCHS, build_spiking_pointnet, build_vgg_snn
from neurodeploy.nn.layers import NeuronConfig, PerStep
from neurodeploy.nn.net import SpikingNet


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def build_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    hidden: Sequence[int] = (256, 128),
    batchnorm: bool = True,
) -> nn.Sequential:
    layers: list[nn.Module] = [PerStep(nn.Flatten())]
    width = _numel(input_shape)
    for h in hidden:
        # BN (folded into the Linear at export) keeps deeper layers from falling silent at init
        norm = [PerStep(nn.BatchNorm1d(h))] if batchnorm else []
        layers += [PerStep(nn.Linear(width, h, bias=not batchnorm)), *norm, neuron.build()]
        width = h
    layers.append(PerStep(nn.Linear(width, num_classes)))
    return nn.Sequential(*layers)


def build_vgg(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    channels: Sequence[int | str] = (32, "P", 64, "P"),
) -> nn.Sequential:
    """[Conv3x3-BN-LIF | "P": AvgPool2] per ``channels``, Flatten, Linear readout (VGGSNN without
    the hidden FC layers)."""
    return build_vgg_snn(input_shape, num_classes, neuron, channels=channels, hidden=(), name="vgg")


def build_conv1d(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    channels: Sequence[int] = (16, 32),
    hidden: int = 64,
) -> nn.Sequential:
    if len(input_shape) != 2:
        raise ValueError(
            f"model 'conv1d' needs sequence input (C, L), got input shape {tuple(input_shape)}"
        )
    c, length = input_shape
    layers: list[nn.Module] = []
    for ch in channels:
        layers += [
            PerStep(nn.Conv1d(c, ch, 3, padding=1, bias=False)),
            PerStep(nn.BatchNorm1d(ch)),
            neuron.build(),
            PerStep(nn.AvgPool1d(2)),
        ]
        c, length = ch, length // 2
    if length < 1:
        raise ValueError(
            f"model 'conv1d': sequence length {input_shape[1]} too short for {len(channels)} poolings"
        )
    layers += [
        PerStep(nn.Flatten()),
        PerStep(nn.Linear(c * length, hidden)),
        neuron.build(),
        PerStep(nn.Linear(hidden, num_classes)),
    ]
    return nn.Sequential(*layers)


def build_pointnet(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    channels: Sequence[int] = (32, 64, 128),
    hidden: int = 64,
    pool: str = "mean",
) -> nn.Sequential:
    """Shared per-point [Conv1d k1-BN-LIF] x3, GlobalPool, Linear-BN-LIF, Linear readout."""
    return build_spiking_pointnet(
        input_shape,
        num_classes,
        neuron,
        channels=channels,
        hidden=(hidden,),
        pool=pool,
        name="pointnet",
    )


MODELS: dict[str, Callable[..., nn.Sequential]] = {
    "mlp": build_mlp,
    "vgg": build_vgg,
    "conv1d": build_conv1d,
    "pointnet": build_pointnet,
    **ARCHS,  # the paper's architectures and baselines (neurodeploy/nn/archs.py)
}


def build_model(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig | None = None,
    **arch: object,
) -> SpikingNet:
    """Build zoo model ``name`` for ``input_shape`` (one timestep) and ``num_classes``."""
    if name not in MODELS:
        raise ValueError(f"model: unknown name {name!r}; available: {sorted(MODELS)}")
    body = MODELS[name](tuple(input_shape), num_classes, neuron or NeuronConfig(), **arch)
    return SpikingNet(name, body, input_shape, num_classes)
