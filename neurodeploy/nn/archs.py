"""The paper's architectures and its baselines, built from our layers (:class:`PerStep` around
stateless torch modules, :class:`LIF` neurons from one :class:`NeuronConfig`), registered in
:data:`neurodeploy.nn.zoo.MODELS` so that ``--model NAME`` selects them. Input (T, B, ...),
output per-timestep logits (T, B, classes) from a non-spiking linear readout, as every zoo model.

================  ============================================================  ========  =========
name              architecture (defaults)                                       input     NIR export
================  ============================================================  ========  =========
vggsnn            VGGSNN (TET, MPS on CIFAR10-DVS): [3x3 conv-BN-LIF] 64, 128,  (C,H,W)   yes
                  AP, 256, 256, AP, 512, 512, AP, 512, 512, AP; Linear
vgg9              VGG-9: 64, 64, AP, 128, 128, AP, 256, 256, 256, AP;           (C,H,W)   yes
                  Linear 1024-BN-LIF; Linear
resnet19          ResNet-19 (tdBN, Zheng et al. 2021): conv 128; basic blocks   (C,H,W)   graph
                  3 x 128, 3 x 256 /2, 2 x 512 /2; global AP; Linear 256-LIF;
                  Linear. Block: LIF(BN(conv(LIF(BN(conv x)))) + shortcut(x))
sew_resnet        SEW-ResNet-18 (Fang et al. 2021), ADD connection: stem conv   (C,H,W)   graph
                  64; 2 blocks each of 64, 128 /2, 256 /2, 512 /2; global AP;
                  Linear. Block: LIF(BN(conv LIF(BN(conv x)))) + shortcut(x)
spiking_pointnet  Spiking PointNet (Ren et al. 2023): per point [Conv1d k1-BN-   (3, N)    yes (mean
                  LIF] 64, 128, 1024; pool over points; [Linear-BN-LIF] 512,              pool)
                  256; Linear
srnn              spiking recurrent net for SHD: [RecurrentLIF] 128, 128;        (C,)      graph
                  Linear. I(t) = BN(W x(t)) + V S(t-1) feeds the LIF equations
================  ============================================================  ========  =========

NIR export (converters/nir_export.py): chains export as a chain of nodes. ``resnet19``,
``sew_resnet`` and ``srnn`` export as NIR *graphs* (through :func:`neurodeploy.nn.graph.to_graph`):
a residual block is fan-out of the block input to both paths and fan-in (two edges into one node,
a sum) where they meet -- before ``lif2`` in a basic block, after the LIFs in a SEW block; a
recurrent layer is its LIF node, a Linear ``<lif>_rec`` node and the cycle LIF -> rec -> LIF (one
step delay). snnTorch, SpikingJelly and nirtorch load these graphs with equal spikes for vanilla
neurons (tests/test_nir_export_graph.py). ``spiking_pointnet`` exports with ``pool="mean"`` (the
default here: a mean over points is a fixed linear map, a sum-pool on the chip); ``pool="max"``
(PointNet's own) has no NIR primitive and is refused by name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from neurodeploy.neuron.lif import check_alpha, check_input, initial_state, lif_step
from neurodeploy.nn.layers import LIF, GlobalPool, NeuronConfig, PerStep

VGGSNN_CHANNELS: tuple[int | str, ...] = (64, 128, "P", 256, 256, "P", 512, 512, "P", 512, 512, "P")
VGG9_CHANNELS: tuple[int | str, ...] = (64, 64, "P", 128, 128, "P", 256, 256, 256, "P")
# every architecture exports to NIR (spiking_pointnet with its default mean pool)
NIR_EXPORTABLE = {
    "vggsnn": True,
    "vgg9": True,
    "resnet19": True,
    "sew_resnet": True,
    "spiking_pointnet": True,
    "srnn": True,
}
# those that export as a graph (fan-out, fan-in, cycles) rather than a chain
NIR_GRAPHS = frozenset({"resnet19", "sew_resnet", "srnn"})


def _conv_bn(c_in: int, c_out: int, k: int = 3, stride: int = 1) -> list[nn.Module]:
    return [
        PerStep(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, bias=False)),
        PerStep(nn.BatchNorm2d(c_out)),
    ]


def _fc(
    c_in: int, hidden: Sequence[int], num_classes: int, neuron: NeuronConfig
) -> list[nn.Module]:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [
            PerStep(nn.Linear(c_in, h, bias=False)),
            PerStep(nn.BatchNorm1d(h)),
            neuron.build(),
        ]
        c_in = h
    return [*layers, PerStep(nn.Linear(c_in, num_classes))]


def _image(name: str, input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3:
        raise ValueError(
            f"model {name!r} needs image input (C, H, W), got input shape {tuple(input_shape)}"
        )
    c, h, w = (int(s) for s in input_shape)
    return c, h, w


def build_vgg_snn(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    channels: Sequence[int | str] = VGGSNN_CHANNELS,
    hidden: Sequence[int] = (),
    name: str = "vggsnn",
) -> nn.Sequential:
    """[3x3 conv-BN-LIF | "P": 2x2 average pool] per ``channels``, Flatten, hidden FC, Linear."""
    c, h, w = _image(name, input_shape)
    layers: list[nn.Module] = []
    for spec in channels:
        if spec == "P":
            layers.append(PerStep(nn.AvgPool2d(2)))
            h, w = h // 2, w // 2
        else:
            layers += [*_conv_bn(c, int(spec)), neuron.build()]
            c = int(spec)
    if h < 1 or w < 1:
        raise ValueError(
            f"model {name!r}: input {tuple(input_shape)} too small for "
            f"{list(channels).count('P')} poolings"
        )
    return nn.Sequential(
        *layers, PerStep(nn.Flatten()), *_fc(c * h * w, hidden, num_classes, neuron)
    )


def build_vgg9(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    channels: Sequence[int | str] = VGG9_CHANNELS,
    hidden: Sequence[int] = (1024,),
) -> nn.Sequential:
    return build_vgg_snn(
        input_shape, num_classes, neuron, channels=channels, hidden=hidden, name="vgg9"
    )


class SpikingBasicBlock(nn.Module):
    """ResNet-19's block on (T, B, C, H, W): S = LIF(BN(conv(LIF(BN(conv x)))) + shortcut(x)),
    shortcut = BN(1x1 conv, stride) when the shape changes, else x. The addition is of
    membrane inputs (pre-LIF), as in tdBN's spiking ResNet."""

    def __init__(self, c_in: int, c_out: int, stride: int, neuron: NeuronConfig) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*_conv_bn(c_in, c_out, 3, stride))
        self.lif1 = neuron.build()
        self.conv2 = nn.Sequential(*_conv_bn(c_out, c_out, 3, 1))
        self.shortcut = (
            nn.Sequential(*_conv_bn(c_in, c_out, 1, stride))
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )
        self.lif2 = neuron.build()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lif2(self.conv2(self.lif1(self.conv1(x))) + self.shortcut(x))


class SEWBlock(nn.Module):
    """SEW-ResNet's block with the ADD connection: out = LIF(BN(conv(LIF(BN(conv x))))) + s(x),
    s(x) = LIF(BN(1x1 conv, stride)) when the shape changes, else x (spikes in, so the output is
    a spike count in {0, 1, 2})."""

    def __init__(self, c_in: int, c_out: int, stride: int, neuron: NeuronConfig) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            *_conv_bn(c_in, c_out, 3, stride),
            neuron.build(),
            *_conv_bn(c_out, c_out, 3, 1),
            neuron.build(),
        )
        self.shortcut = (
            nn.Sequential(*_conv_bn(c_in, c_out, 1, stride), neuron.build())
            if stride != 1 or c_in != c_out
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.residual(x) + self.shortcut(x)


def _resnet(
    name: str,
    block: Callable[..., nn.Module],
    *,
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    stem: int,
    widths: Sequence[int],
    blocks: Sequence[int],
    hidden: Sequence[int],
) -> nn.Sequential:
    c, _, _ = _image(name, input_shape)
    if len(widths) != len(blocks):
        raise ValueError(
            f"model {name!r}: widths {list(widths)} and blocks {list(blocks)} differ in length"
        )
    layers: list[nn.Module] = [*_conv_bn(c, stem), neuron.build()]
    c = stem
    for i, (width, n) in enumerate(zip(widths, blocks)):
        for j in range(n):
            layers.append(block(c, width, 2 if (i > 0 and j == 0) else 1, neuron))
            c = width
    layers += [PerStep(nn.AdaptiveAvgPool2d(1)), PerStep(nn.Flatten())]
    if hidden:  # ResNet-19's FC 256 keeps a bias and no BN, then a LIF
        layers += [PerStep(nn.Linear(c, hidden[0])), neuron.build()]
        layers += _fc(hidden[0], hidden[1:], num_classes, neuron)
    else:
        layers.append(PerStep(nn.Linear(c, num_classes)))
    return nn.Sequential(*layers)


def build_resnet19(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    stem: int = 128,
    widths: Sequence[int] = (128, 256, 512),
    blocks: Sequence[int] = (3, 3, 2),
    hidden: Sequence[int] = (256,),
) -> nn.Sequential:
    return _resnet(
        "resnet19",
        SpikingBasicBlock,
        input_shape=input_shape,
        num_classes=num_classes,
        neuron=neuron,
        stem=stem,
        widths=widths,
        blocks=blocks,
        hidden=hidden,
    )


def build_sew_resnet(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    stem: int = 64,
    widths: Sequence[int] = (64, 128, 256, 512),
    blocks: Sequence[int] = (2, 2, 2, 2),
    hidden: Sequence[int] = (),
) -> nn.Sequential:
    return _resnet(
        "sew_resnet",
        SEWBlock,
        input_shape=input_shape,
        num_classes=num_classes,
        neuron=neuron,
        stem=stem,
        widths=widths,
        blocks=blocks,
        hidden=hidden,
    )


def build_spiking_pointnet(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    channels: Sequence[int] = (64, 128, 1024),
    hidden: Sequence[int] = (512, 256),
    pool: str = "mean",
    name: str = "spiking_pointnet",
) -> nn.Sequential:
    """Shared per-point [Conv1d k1-BN-LIF] x len(channels), GlobalPool, FC head (module table)."""
    if len(input_shape) != 2:
        raise ValueError(
            f"model {name!r} needs point input (3, N), got input shape {tuple(input_shape)}"
        )
    c = int(input_shape[0])
    layers: list[nn.Module] = []
    for ch in channels:
        layers += [
            PerStep(nn.Conv1d(c, ch, 1, bias=False)),
            PerStep(nn.BatchNorm1d(ch)),
            neuron.build(),
        ]
        c = ch
    return nn.Sequential(*layers, PerStep(GlobalPool(pool)), *_fc(c, hidden, num_classes, neuron))


class RecurrentLIF(nn.Module):
    """A LIF layer with recurrent synapses, (T, B, n_in) -> spikes (T, B, n_out):

        I(t) = BN(W x(t)) + V S(t-1),  S(0) = 0;  then the LIF/MPS equations of neurodeploy/neuron/lif.py

    ``W`` (``ff``) and ``V`` (``rec``) are bias-free Linear maps; BN (``norm``, over batch and
    time, optional) keeps sparse inputs such as SHD's 700 channels from leaving the layer
    silent at initialisation. The neuron (and its learnable smoothing coefficient) is the
    ``lif`` child, stepped with :func:`neurodeploy.neuron.lif.lif_step`."""

    def __init__(self, n_in: int, n_out: int, neuron: NeuronConfig, batchnorm: bool = True) -> None:
        super().__init__()
        self.ff = nn.Linear(n_in, n_out, bias=False)
        self.norm = PerStep(nn.BatchNorm1d(n_out)) if batchnorm else nn.Identity()
        self.rec = nn.Linear(n_out, n_out, bias=False)
        self.lif: LIF = neuron.build()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        alpha = self.lif.alpha
        check_alpha(alpha)
        drive = self.norm(self.ff(x))
        state = initial_state(drive[0])
        s = torch.zeros_like(drive[0])
        out = []
        for t in range(x.shape[0]):
            s, state, _ = lif_step(drive[t] + self.rec(s), state, alpha, self.lif.params)
            out.append(s)
        return torch.stack(out)


def build_srnn(
    input_shape: Sequence[int],
    num_classes: int,
    neuron: NeuronConfig,
    *,
    hidden: Sequence[int] = (128, 128),
    batchnorm: bool = True,
) -> nn.Sequential:
    if len(input_shape) != 1 and not (len(input_shape) == 2 and int(input_shape[0]) == 1):
        raise ValueError(
            "model 'srnn' needs channel input (C,) or one-channel (1, C) per timestep, got "
            f"input shape {tuple(input_shape)}"
        )
    c = int(input_shape[-1])
    # a one-channel 1D signal (seq1d's (1, 40)) is flattened to its C values per timestep
    layers: list[nn.Module] = [PerStep(nn.Flatten())] if len(input_shape) == 2 else []
    for h in hidden:
        layers.append(RecurrentLIF(c, h, neuron, batchnorm))
        c = h
    return nn.Sequential(*layers, PerStep(nn.Linear(c, num_classes)))


ARCHS: dict[str, Callable[..., nn.Sequential]] = {
    "vggsnn": build_vgg_snn,
    "vgg9": build_vgg9,
    "resnet19": build_resnet19,
    "sew_resnet": build_sew_resnet,
    "spiking_pointnet": build_spiking_pointnet,
    "srnn": build_srnn,
}
