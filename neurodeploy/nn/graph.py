"""Spiking networks as graphs: fan-out, fan-in (sums) and recurrent layers.

A :class:`GraphBody` is a set of named nodes (plain modules on time-major tensors (T, B, *shape):
``PerStep(conv)``, ``PerStep(BN)``, ``LIF``, :class:`Recurrent`, ...) run in insertion order,
which must be topological. Node ``n`` with sources ``src_1 .. src_k`` computes

    y_n = node_n(y_{src_1} + y_{src_2} + ... + y_{src_k})      (summed left to right)

where ``y_input`` (:data:`INPUT`) is the network input. The body's value is ``y_output``.
A chain (``nn.Sequential``) is the special case of one source per node, each the previous one.

Recurrence lives inside a node, :class:`Recurrent`, so that the graph itself is acyclic:

    s(t) = neuron_step(drive(t) + rec(s(t-1))),   s(-1) = 0,   t = 0 .. T-1

with ``neuron_step`` one timestep of the neuron modules (LIF equations of
:mod:`neurodeploy.neuron.lif`; LI: V(t) = beta V(t-1) + I(t); Scale: a gain) and ``rec`` a
linear map from one step's spikes (B, *shape) to currents of the same shape.

:func:`to_graph` lowers a chain model whose body holds our blocks (:mod:`neurodeploy.nn.archs`:
``SpikingBasicBlock``, ``SEWBlock``, ``RecurrentLIF``) to a graph model over the *same* module
objects (parameters shared, not copied), computing the same outputs.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
from torch import nn

from neurodeploy.neuron.lif import LIFState, check_alpha, check_input, initial_state, lif_step
from neurodeploy.nn.archs import RecurrentLIF, SEWBlock, SpikingBasicBlock
from neurodeploy.nn.fold import BatchNorm, Foldable, fold_layer
from neurodeploy.nn.layers import LI, LIF, PerStep, Scale
from neurodeploy.nn.net import SpikingNet

INPUT = "input"  # the source name of the network input


class GraphBody(nn.Module):
    """Named nodes with named sources (module docstring); (T, B, *input) -> (T, B, *output).

    Args:
        nodes: name -> module, in a topological order (every source is defined earlier).
        sources: name -> the names whose outputs are summed into the node (:data:`INPUT` for the
            network input); at least one per node.
        output: the node whose value the body returns.
    """

    def __init__(
        self, nodes: dict[str, nn.Module], sources: dict[str, list[str]], output: str
    ) -> None:
        super().__init__()
        seen = {INPUT}
        for name in nodes:
            if name == INPUT or "." in name or not name:
                raise ValueError(
                    f"graph node {name!r}: a node name must be non-empty, without '.', "
                    f"and not {INPUT!r}"
                )
            src = sources.get(name)
            if not src:
                raise ValueError(f"graph node {name!r} has no sources")
            for s in src:
                if s not in seen:
                    raise ValueError(
                        f"graph node {name!r}: source {s!r} is not the input or an earlier node "
                        "(nodes must be in topological order; cycles belong inside Recurrent)"
                    )
            seen.add(name)
        extra = set(sources) - set(nodes)
        if extra:
            raise ValueError(f"graph sources name unknown nodes {sorted(extra)}")
        if output not in nodes:
            raise ValueError(f"graph output {output!r} is not a node")
        self.nodes = nn.ModuleDict(nodes)
        self.sources = {n: list(sources[n]) for n in nodes}
        self.output = output

    def consumers(self, name: str) -> list[str]:
        """The nodes that read ``name`` (fan-out), in order."""
        return [n for n, src in self.sources.items() if name in src]

    def run_all(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every node's output (T, B, ...) for input ``x``, and ``x`` itself under :data:`INPUT`."""
        out = {INPUT: x}
        for name, module in self.nodes.items():
            src = self.sources[name]
            a = out[src[0]]
            for s in src[1:]:
                a = a + out[s]
            out[name] = module(a)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_all(x)[self.output]

    @torch.no_grad()
    def node_shapes(
        self, input_shape: Iterable[int]
    ) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
        """Per node (input shape, output shape) per sample and timestep, found by one eval-mode
        run on zeros (T = B = 1); BatchNorm statistics are not touched."""
        p = next(self.parameters(), None)
        dtype, device = (p.dtype, p.device) if p is not None else (torch.float32, None)
        modes = [(m, m.training) for m in self.modules()]
        self.eval()
        try:
            y = self.run_all(torch.zeros((1, 1, *input_shape), dtype=dtype, device=device))
        finally:
            for m, training in modes:
                m.training = training
        return {
            n: (tuple(y[src[0]].shape[2:]), tuple(y[n].shape[2:]))
            for n, src in self.sources.items()
        }

    def extra_repr(self) -> str:
        return f"output={self.output!r}, sources={self.sources}"


class Recurrent(nn.Module):
    """A neuron layer with a recurrent synapse, (T, B, *shape) drive -> spikes (T, B, *shape):

        s(t) = neuron_step(drive(t) + rec(s(t-1))),   s(-1) = 0

    ``neuron`` is an ``nn.Sequential`` of our neuron modules stepped one timestep at a time
    (``LIF``: :func:`neurodeploy.neuron.lif.lif_step`, smoothing included; ``LI``:
    V(t) = beta V(t-1) + I(t), V(-1) = 0; ``Scale``: a fixed gain), e.g. ``[LIF]`` or a CubaLIF's
    ``[LI, Scale, LIF]``; ``rec`` maps one step's output (B, *shape) back to the neuron's input
    (a Linear in our models). The recurrent input arrives with a one-step delay, as on Loihi.
    """

    def __init__(self, neuron: nn.Sequential, rec: nn.Module) -> None:
        super().__init__()
        for i, m in enumerate(neuron):
            if not isinstance(m, (LIF, LI, Scale)):
                raise ValueError(
                    f"Recurrent: neuron[{i}] is {type(m).__name__}; only LIF, LI and Scale step"
                )
        self.neuron = neuron
        self.rec = rec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        for m in self.neuron:
            if isinstance(m, LIF):
                check_alpha(m.alpha)
        states: list[LIFState | torch.Tensor | None] = [None] * len(self.neuron)
        s = torch.zeros_like(x[0])
        out = []
        for t in range(x.shape[0]):
            a = x[t] + self.rec(s)
            for i, m in enumerate(self.neuron):
                st = states[i]
                if isinstance(m, LIF):
                    lst = initial_state(a) if st is None else st
                    assert isinstance(lst, LIFState)
                    a, states[i], _ = lif_step(a, lst, m.alpha, m.params)
                elif isinstance(m, LI):
                    v = torch.zeros_like(a) if st is None else st
                    assert isinstance(v, torch.Tensor)
                    a = m.beta * v + a  # as li_multistep
                    states[i] = a
                else:
                    a = m(a)
            s = a
            out.append(s)
        return torch.stack(out)


class _Builder:
    """Accumulates nodes and their sources while a chain is walked."""

    def __init__(self) -> None:
        self.nodes: dict[str, nn.Module] = {}
        self.sources: dict[str, list[str]] = {}

    def add(self, name: str, module: nn.Module, sources: list[str]) -> list[str]:
        if name in self.nodes:
            raise ValueError(f"to_graph: duplicate node name {name!r}")
        self.nodes[name] = module
        self.sources[name] = list(sources)
        return [name]

    def chain(self, prefix: str, seq: nn.Module, sources: list[str]) -> list[str]:
        """Add the children of ``seq`` (an nn.Sequential) one after another."""
        for child, m in seq.named_children():
            sources = self.module(f"{prefix}_{child}", m, sources)
        return sources

    def module(self, name: str, m: nn.Module, cur: list[str]) -> list[str]:
        """Add ``m`` reading the sum of ``cur``; the names whose sum is its output."""
        if isinstance(m, nn.Identity):
            return cur
        if isinstance(m, nn.Sequential):
            return self.chain(name, m, cur)
        if isinstance(m, SpikingBasicBlock):
            main = self.chain(f"{name}_conv1", m.conv1, cur)
            main = self.add(f"{name}_lif1", m.lif1, main)
            main = self.chain(f"{name}_conv2", m.conv2, main)
            short = self.module(f"{name}_shortcut", m.shortcut, cur)
            return self.add(f"{name}_lif2", m.lif2, main + short)
        if isinstance(m, SEWBlock):
            res = self.chain(f"{name}_residual", m.residual, cur)
            return res + self.module(f"{name}_shortcut", m.shortcut, cur)
        if isinstance(m, RecurrentLIF):
            cur = self.add(f"{name}_ff", PerStep(m.ff), cur)
            cur = self.module(f"{name}_norm", m.norm, cur)
            return self.add(f"{name}_lif", Recurrent(nn.Sequential(m.lif), m.rec), cur)
        return self.add(name, m, cur)


def graph_body(body: nn.Module) -> GraphBody:
    """The graph of a body: a GraphBody as is; a chain (its blocks lowered, module docstring)."""
    if isinstance(body, GraphBody):
        return body
    b = _Builder()
    out = b.chain("", body, [INPUT]) if isinstance(body, nn.Sequential) else [INPUT]
    if not isinstance(body, nn.Sequential):
        out = b.module("body", body, out)
    # names from chain("") start with "_": drop it
    rename = {n: n.lstrip("_") for n in b.nodes}
    nodes = {rename[n]: m for n, m in b.nodes.items()}
    sources = {rename[n]: [rename.get(s, s) for s in src] for n, src in b.sources.items()}
    out = [rename.get(s, s) for s in out]
    if len(out) > 1 or out == [INPUT]:  # the body ends in a sum (or is empty): name it
        nodes["output"], sources["output"] = nn.Identity(), out
        out = ["output"]
    return GraphBody(nodes, sources, out[0])


def to_graph(model: SpikingNet) -> SpikingNet:
    """``model`` as a graph model (module docstring): same modules, so same parameters and the
    same outputs (sums of more than two terms are taken left to right: exact for spikes)."""
    return SpikingNet(model.name, graph_body(model.body), model.input_shape, model.num_classes)


def is_chain(model: SpikingNet) -> bool:
    """Whether the model is a plain chain (no graph body, no block that :func:`to_graph` lowers)."""
    if isinstance(model.body, GraphBody):
        return False
    blocks = (SpikingBasicBlock, SEWBlock, RecurrentLIF, Recurrent, GraphBody)
    return not any(isinstance(m, blocks) for m in model.body.modules())


def fold_graph(body: GraphBody) -> GraphBody:
    """A copy of ``body`` (eval mode) with every ``PerStep(BN)`` node folded into its source when
    that source is a single ``PerStep(Linear/Conv)`` node read by the BN alone (see
    :mod:`neurodeploy.nn.fold`); a BN with nothing to fold into is an error naming the node."""
    nodes: dict[str, nn.Module] = {}
    sources: dict[str, list[str]] = {}
    alias: dict[str, str] = {}
    for name, m in body.nodes.items():
        src = [alias.get(s, s) for s in body.sources[name]]
        if isinstance(m, PerStep) and isinstance(m.module, BatchNorm):
            prev = nodes.get(src[0]) if len(src) == 1 else None
            if (
                isinstance(prev, PerStep)
                and isinstance(prev.module, Foldable)
                and body.consumers(src[0]) == [name]
            ):
                nodes[src[0]] = PerStep(fold_layer(prev.module, m.module))
                alias[name] = src[0]
                continue
            raise ValueError(
                f"graph node {name!r}: {type(m.module).__name__} does not follow a Linear/Conv "
                "node that only it reads, so it cannot be folded"
            )
        nodes[name], sources[name] = copy.deepcopy(m), src
    out = GraphBody(nodes, sources, alias.get(body.output, body.output))
    return out.eval()
