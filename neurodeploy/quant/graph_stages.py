"""A graph model as hardware stages: one stage per neuron node, each with all its synapses.

A graph model (:class:`~neurodeploy.nn.graph.GraphBody`; a chain holding our blocks is lowered by
:func:`~neurodeploy.nn.graph.to_graph`, BatchNorm folded by :func:`fold_graph`) has *neuron
nodes* (``LIF``; :class:`~neurodeploy.nn.graph.Recurrent`, whose neuron is ``[LIF]`` or a
CubaLIF's ``[LI, Scale..., LIF]``) and *linear nodes* (``Linear``, ``Conv1d/2d``, pooling,
``Flatten``, ``Scale``, ``Identity``, in :class:`PerStep` or bare). A node's input is the sum of
its sources, so a neuron node N's input current is a sum over *paths*: every chain of linear
nodes that reaches N's input backward from an *origin* (the input or a neuron node)::

    I_N(t) = sum over paths p = (origin o, linear nodes m_1 .. m_k) of  m_k(...m_1(s_o(t)))

A linear node with several sources distributes (m(a + b) = L a + L b + m(0)): one path per
source, so SEW's ADD makes the next conv an edge from each summed spike source. Each path
becomes one synapse through the chain machinery of :mod:`neurodeploy.quant.stages` (its
[pool] conv [Scale] and dense fallbacks, :func:`~neurodeploy.quant.stages._make_stage`); a path
with no Linear/Conv (an identity shortcut, a Scale) gets an identity synapse appended first: a
1 x 1 identity convolution on (C, *spatial) shapes, an identity matrix on flat ones, never a dense
(CHW)^2 map. The stage's bias is the constant m(0) of the sum: every distinct path suffix that
starts at a Linear/Conv node contributes that node's bias pushed through the rest of the path,
once (paths that share the suffix share the bias). A ``Recurrent``'s ``rec`` map is one more
path from the node itself, ``recurrent=True`` (the spikes of step t-1, a self-loop); a
CubaLIF's gains (the Scale modules between its LI and LIF) multiply every path, its LI's tau is
the stage's ``syn_tau``.

The first path (the node's first source, depth first) is the stage's inline synapse
(``source``), the others its ``extra`` edges. Stages are in node order (topological); the
readout (the output node when it is linear) is last; a neuron output node has no readout.
Refused by name: a path with two Linear/Conv nodes in a row (no neuron between them), a node of
no known kind, an LI that is neither a CubaLIF's current nor the output node.

Node forms (:func:`normal_graph`, run first; the NIR importer writes a node as an
``nn.Sequential`` when one NIR node is several of our modules): a Sequential node is split into
its modules, a linear prefix (Flatten, Linear/Conv, pools, Scale gains: one linear node each) and
a neuron tail: ``LIF`` (LIF, IF: an IF is a LIF with tau = inf), a CubaLIF's
``[LI, Scale..., LIF]`` (its input gain w_in dt/tau_syn, a Scale in front of the LI, joins the
prefix: gains and the LI are elementwise and linear, so they commute), or an ``LI`` alone. The
tail keeps the node's name (the stage's name), the prefix nodes get ``<name>_<i>``. A Recurrent's
neuron may be ``Scale... [LI] Scale... LIF``: every gain multiplies every path (the rec one too,
as Recurrent applies its neuron to drive + rec). An ``LI`` output node is an LI readout
(``readout_tau``, as chains map it: synapse [Scale] LI; several paths make an LI readout with
several synapses). A ``Flatten`` between a convolution and a neuron node (Conv -> Flatten -> LIF,
as NIR graphs write a flat neuron layer after a conv) moves after the neuron node, as chains do
(:func:`neurodeploy.quant.stages._views_after_neurons`): a neuron is elementwise, so
flatten(LIF(x)) = LIF(flatten(x)) spike for spike; the stage stays a convolution with (C, *spatial)
neurons and its readers read them flat. A view-only output node (Flatten/Identity) reading one
neuron node is dropped: the spiking last layer is the output, read flat (C order) by the targets.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch import nn

from neurodeploy.nn.graph import INPUT, GraphBody, Recurrent, fold_graph, graph_body
from neurodeploy.nn.layers import LI, LIF, GlobalPool, PerStep, Scale
from neurodeploy.nn.net import SpikingNet
from neurodeploy.nn.walk import SYNAPSES, BodyLayer, LayerGroup
from neurodeploy.quant.stages import Stage, StageEdge, _make_stage

LINEAR_NODES = (
    *SYNAPSES,
    nn.Flatten,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    GlobalPool,
    Scale,
    nn.Identity,
)


@dataclasses.dataclass(frozen=True)
class _Path:
    """Linear nodes (names, in data order) from ``origin`` to a neuron's input."""

    origin: str
    nodes: tuple[str, ...]


def _inner(m: nn.Module) -> nn.Module:
    return m.module if isinstance(m, PerStep) else m


def _is_cuba(m: nn.Module) -> bool:
    """A feed-forward CubaLIF node as :func:`normal_graph` leaves it: ``nn.Sequential(LI,
    Scale..., LIF)`` (synaptic current I(t) = beta_syn I(t-1) + x(t), gains, then the LIF)."""
    mods = list(m) if isinstance(m, nn.Sequential) else []
    return (
        len(mods) >= 2
        and isinstance(mods[0], LI)
        and isinstance(mods[-1], LIF)
        and all(isinstance(x, Scale) for x in mods[1:-1])
    )


def is_neuron_node(m: nn.Module) -> bool:
    """Whether a node of a :func:`normal_graph` body is a neuron layer (a stage of its own):
    ``LIF``, :class:`~neurodeploy.nn.graph.Recurrent` or a CubaLIF's ``Sequential(LI, Scale...,
    LIF)``."""
    return isinstance(m, (LIF, Recurrent)) or _is_cuba(m)


_is_neuron = is_neuron_node


def _flat_modules(m: nn.Module) -> list[nn.Module]:
    """A node's modules in data order (nested Sequentials opened)."""
    if not isinstance(m, nn.Sequential):
        return [m]
    return [x for c in m for x in _flat_modules(c)]


def _split_node(name: str, m: nn.Module) -> list[tuple[str | None, nn.Module]]:
    """A Sequential node as (name or None: a prefix node, module) in data order: its linear
    prefix one module per node, then its neuron tail (module docstring, "Node forms"); the
    modules are the node's own (shared, not copied). Any other node: itself."""
    if not isinstance(m, nn.Sequential):
        return [(name, m)]
    mods = _flat_modules(m)
    inner = [_inner(x) for x in mods]
    start = len(mods)  # the tail's first module
    tail: nn.Module | None = None
    if inner and isinstance(inner[-1], LIF):
        lis = [i for i, x in enumerate(inner) if isinstance(x, LI)]
        start = lis[0] if lis else len(mods) - 1
        if lis and not all(isinstance(x, Scale) for x in inner[start + 1 : -1]):
            raise ValueError(
                f"graph node {name!r}: a neuron node maps to hardware as [linear...] LIF or a "
                f"CubaLIF's [LI, Scale..., LIF], got {[type(x).__name__ for x in inner]}"
            )
        tail = inner[-1] if start == len(mods) - 1 else nn.Sequential(*inner[start:])
    elif inner and isinstance(inner[-1], LI):
        start, tail = len(mods) - 1, inner[-1]
    for i in inner[:start]:
        if not isinstance(i, LINEAR_NODES):
            raise ValueError(
                f"graph node {name!r}: {type(i).__name__} in front of its neuron cannot be "
                f"mapped to hardware stages (modules {[type(y).__name__ for y in inner]})"
            )
    parts: list[tuple[str | None, nn.Module]] = [(None, x) for x in mods[:start]]
    if tail is not None:
        parts.append((name, tail))
    elif parts:
        parts[-1] = (name, parts[-1][1])
    else:
        parts = [(name, nn.Identity())]
    return parts


def _view_after_neuron(
    nodes: dict[str, nn.Module], sources: dict[str, list[str]], output: str
) -> tuple[dict[str, nn.Module], str]:
    """Move each Flatten node F between a convolution and a (non-recurrent) neuron node N, read
    by N alone, after N (module docstring, "Node forms"): N reads F's source, F reads N, N's
    readers read F. ``sources`` is updated in place; returns the reordered nodes and output."""
    for n in list(nodes):
        if not (isinstance(nodes[n], LIF) or _is_cuba(nodes[n])) or len(sources[n]) != 1:
            continue
        f = sources[n][0]
        readers_f = [c for c, src in sources.items() if f in src]
        if (
            f == INPUT
            or not isinstance(_inner(nodes[f]), nn.Flatten)
            or readers_f != [n]
            or len(sources[f]) != 1
        ):
            continue
        c = sources[f][0]
        while c != INPUT and isinstance(_inner(nodes[c]), (Scale, nn.Identity)):
            if len(sources[c]) != 1:
                break
            c = sources[c][0]
        if c == INPUT or not isinstance(_inner(nodes[c]), (nn.Conv1d, nn.Conv2d)):
            continue
        readers = [r for r, src in sources.items() if n in src]
        sources[n], sources[f] = list(sources[f]), [n]
        for r in readers:
            sources[r] = [f if x == n else x for x in sources[r]]
        order = [k for k in nodes if k != f]
        order.insert(order.index(n) + 1, f)
        nodes = {k: nodes[k] for k in order}
        sources_order = {k: sources[k] for k in order}
        sources.clear()
        sources.update(sources_order)
        if output == n:
            output = f
    return nodes, output


def normal_graph(body: GraphBody) -> GraphBody:
    """``body`` with every node in a form :func:`graph_stages` maps (module docstring, "Node
    forms"): Sequential nodes split, Flatten views moved after conv neuron layers, a view-only
    output after a neuron node dropped. Same module objects (parameters shared); the float
    model it computes is the same (for the dropped view: the same values, unflattened)."""
    nodes: dict[str, nn.Module] = {}
    sources: dict[str, list[str]] = {}
    used = set(body.nodes) | {INPUT}
    rename: dict[str, str] = {}
    for name, m in body.nodes.items():
        src = [rename.get(x, x) for x in body.sources[name]]
        for i, (given, mod) in enumerate(_split_node(name, m)):
            part = given
            if part is None:
                part, k = f"{name}_{i}", i
                while part in used:
                    k += 1
                    part = f"{name}_{i}_{k}"
                used.add(part)
            nodes[part], sources[part] = mod, src
            src = [part]
        rename[name] = src[0]
    output = rename.get(body.output, body.output)
    nodes, output = _view_after_neuron(nodes, sources, output)
    while (
        isinstance(_inner(nodes[output]), (nn.Flatten, nn.Identity))
        and len(sources[output]) == 1
        and sources[output][0] != INPUT
        and is_neuron_node(nodes[sources[output][0]])
        and not any(output in src for src in sources.values())
    ):
        last = sources[output][0]
        del nodes[output], sources[output]
        output = last
    return GraphBody(nodes, {n: sources[n] for n in nodes}, output)


def graph_stages(model: SpikingNet) -> list[Stage]:
    """The stages of a graph model (module docstring); a chain model's body is lowered with
    :func:`~neurodeploy.nn.graph.graph_body` first. Errors name the node."""
    body = fold_graph(normal_graph(graph_body(model.body)))
    shapes = body.node_shapes(tuple(model.input_shape))
    out_shape = {INPUT: tuple(model.input_shape), **{n: s[1] for n, s in shapes.items()}}
    for name, m in body.nodes.items():
        li_out = name == body.output and isinstance(_inner(m), LI)
        if not _is_neuron(m) and not isinstance(_inner(m), LINEAR_NODES) and not li_out:
            hint = (
                " (an LI maps to hardware as a CubaLIF's current or as the output node: an LI "
                "readout)"
                if isinstance(_inner(m), LI)
                else ""
            )
            raise ValueError(
                f"graph node {name!r}: {type(_inner(m)).__name__} cannot be mapped to hardware "
                f"stages{hint}"
            )
    cache: dict[str, list[_Path]] = {}

    def paths_to(name: str) -> list[_Path]:
        """Paths that end with ``name``'s value (an origin: the empty path)."""
        if name == INPUT or _is_neuron(body.nodes[name]):
            return [_Path(name, ())]
        if name not in cache:
            cache[name] = [
                _Path(p.origin, (*p.nodes, name)) for s in body.sources[name] for p in paths_to(s)
            ]
        return cache[name]

    stages: list[Stage] = []
    for name, m in body.nodes.items():
        if not _is_neuron(m):
            continue
        paths = [p for s in body.sources[name] for p in paths_to(s)]
        stages.append(_stage(body, name, paths, out_shape))
    out = body.nodes[body.output]
    if isinstance(_inner(out), LI):  # an LI readout: its input's paths, its tau
        li = _inner(out)
        assert isinstance(li, LI)
        paths = [p for s in body.sources[body.output] for p in paths_to(s)]
        stage = _stage(body, body.output, paths, out_shape, readout=True)
        stages.append(dataclasses.replace(stage, readout_tau=li.tau))
    elif not _is_neuron(out):
        stages.append(_stage(body, body.output, paths_to(body.output), out_shape, readout=True))
    return stages


def neuron_parts(m: nn.Module, name: str) -> tuple[LIF, float | None, list[Scale]]:
    """A neuron node as (its LIF, the CubaLIF current's tau or None, the gains between them)."""
    if isinstance(m, LIF):
        return m, None, []
    assert isinstance(m, Recurrent) or _is_cuba(m)
    seq = m.neuron if isinstance(m, Recurrent) else m
    assert isinstance(seq, nn.Sequential)
    mods = [_inner(x) for x in seq]
    lifs = [i for i, x in enumerate(mods) if isinstance(x, LIF)]
    lis = [i for i, x in enumerate(mods) if isinstance(x, LI)]
    if (
        lifs != [len(mods) - 1]
        or len(lis) > 1
        or not all(isinstance(x, (LI, Scale)) for x in mods[:-1])
    ):
        raise ValueError(
            f"graph node {name!r}: a Recurrent's neuron maps to hardware as Scale... [LIF] or a "
            f"CubaLIF's Scale... [LI, Scale..., LIF], got {[type(x).__name__ for x in mods]}"
        )
    lif = mods[-1]
    assert isinstance(lif, LIF)
    # gains are elementwise and linear: before or after the LI, they multiply every path
    gains = [x for x in mods[:-1] if isinstance(x, Scale)]
    li = mods[lis[0]] if lis else None
    return lif, (li.tau if isinstance(li, LI) else None), gains


def _identity_synapse(shape: tuple[int, ...]) -> nn.Module:
    """An exact identity map on ``shape`` as a synapse: 1 x 1 conv on (C, *spatial), else dense."""
    c = shape[0]
    conv: nn.Module
    if len(shape) == 3:
        conv = nn.Conv2d(c, c, 1, bias=False)
    elif len(shape) == 2:
        conv = nn.Conv1d(c, c, 1, bias=False)
    else:
        n = int(np.prod(shape))
        lin = nn.Linear(n, n, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.eye(n))
        return lin
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[torch.arange(c), torch.arange(c)] = 1.0
    return conv


def _path_stage(
    path_mods: list[tuple[str, nn.Module, tuple[int, ...], tuple[int, ...]]],
    in_shape: tuple[int, ...],
    where: str,
) -> Stage:
    """One path (name, module, in_shape, out_shape per linear module) as a float stage through
    the chain machinery (synapse and the path's own bias)."""
    syn = [n for n, m, _, _ in path_mods if isinstance(_inner(m), SYNAPSES)]
    if len(syn) > 1:
        raise ValueError(
            f"{where}: the path {' -> '.join(n for n, *_ in path_mods)} has {len(syn)} "
            f"Linear/Conv nodes ({', '.join(syn)}) with no neuron between them; a synapse maps "
            "one neuron layer (or the input) to the next"
        )
    mods = list(path_mods)
    if not syn:
        shape = mods[-1][3] if mods else in_shape
        mods.append((f"{where}.identity", _identity_synapse(shape), shape, shape))
    layers = tuple(BodyLayer(n, m, i, o) for n, m, i, o in mods)
    return _make_stage(LayerGroup(layers, None, in_shape))


def _stage(
    body: GraphBody,
    name: str,
    paths: list[_Path],
    out_shape: dict[str, tuple[int, ...]],
    *,
    readout: bool = False,
) -> Stage:
    """The stage of neuron node ``name`` (or of the readout, the linear output node ``name``)."""
    where = f"graph node {name!r}"
    node = body.nodes[name]
    gains: list[Scale] = []
    lif: LIF | None = None
    syn_tau: float | None = None
    if not readout:
        lif, syn_tau, gains = neuron_parts(node, name)
        paths = list(paths)
        if isinstance(node, Recurrent):  # the rec map: a self-loop of the neuron's own spikes
            paths.append(_Path(name, ("<rec>",)))
    edges: list[tuple[_Path, Stage]] = []
    bias: np.ndarray | None = None
    seen_suffix: set[tuple[str, ...]] = set()
    for p in paths:
        mods: list[tuple[str, nn.Module, tuple[int, ...], tuple[int, ...]]] = []
        shape = out_shape[p.origin]
        for n in p.nodes:
            m = node.rec if n == "<rec>" and isinstance(node, Recurrent) else body.nodes[n]
            qual = f"{name}.rec" if n == "<rec>" else n
            if isinstance(_inner(m), LINEAR_NODES):
                o = shape if n == "<rec>" else out_shape[n]
                mods.append((qual, m, shape, o))
                shape = o
            else:
                raise ValueError(f"{where}: node {n!r} on a path into it is not linear")
        # a CubaLIF's gains (elementwise, linear) commute with its LI
        mods.extend((f"{name}.gain", g, shape, shape) for g in gains)
        st = _path_stage(mods, out_shape[p.origin], f"{where} (path from {p.origin})")
        k = next(
            (i for i, (_, m, _, _) in enumerate(mods) if isinstance(_inner(m), SYNAPSES)), None
        )
        suffix = (p.origin, *p.nodes) if k is None else tuple(n for n, *_ in mods[k:])
        if k is not None and suffix in seen_suffix:
            pass  # this synapse node's bias is in already (module docstring)
        else:
            seen_suffix.add(suffix)
            b = np.asarray(st.bias, dtype=np.float64)
            bias = b.copy() if bias is None else _add_bias(bias, b, where)
        edges.append((p, st))
    if not edges:
        raise ValueError(f"{where}: no synapse reaches it")
    (p0, first), rest = edges[0], edges[1:]
    assert bias is not None
    if first.kind != "dense" and bias.shape != first.bias.shape:
        bias = _channel_bias(bias, first.out_shape, where)
    extra = [
        StageEdge(source=p.origin, synapse=st.synapse, recurrent=p.nodes == ("<rec>",))
        for p, st in rest
    ]
    srcs = [f"{name}.rec" if n == "<rec>" else n for p, _ in edges for n in p.nodes]
    return dataclasses.replace(
        first,
        name="readout" if readout else name,
        bias=bias,
        neuron=lif,
        sources=list(dict.fromkeys(srcs)) + ([] if readout else [name]),
        syn_tau=syn_tau,
        source=p0.origin,
        extra=extra,
    )


def _add_bias(a: np.ndarray, b: np.ndarray, where: str) -> np.ndarray:
    """Two paths' biases summed: per channel (conv) or per neuron (dense, flat)."""
    if a.shape == b.shape:
        return a + b
    raise ValueError(
        f"{where}: its paths' biases have shapes {a.shape} and {b.shape} (a dense path into a "
        "convolutional neuron layer has no per-channel bias)"
    )


def _channel_bias(bias: np.ndarray, shape: tuple[int, ...], where: str) -> np.ndarray:
    flat = bias.reshape(shape[0], -1)
    if not (flat == flat[:, :1]).all():
        raise ValueError(f"{where}: its bias varies within a channel; no conv describes it")
    return flat[:, 0].copy()


def graph_ann_macs(model: SpikingNet) -> float:
    """MACs of one pass of the equivalent ANN of a graph model: every Linear/Conv node's
    connections once (BatchNorm folded; a node after a sum is counted once, not per edge), as
    :func:`neurodeploy.quant.counts.ann_macs` counts a chain."""
    body = fold_graph(normal_graph(graph_body(model.body)))
    shapes = body.node_shapes(tuple(model.input_shape))
    total = 0.0
    for name, m in body.nodes.items():
        if isinstance(_inner(m), SYNAPSES):
            i, o = shapes[name]
            st = _make_stage(LayerGroup((BodyLayer(name, m, i, o),), None, i))
            total += float(st.synapse.dense_ops())
        elif isinstance(m, Recurrent):
            i, o = shapes[name]
            st = _make_stage(LayerGroup((BodyLayer(f"{name}.rec", m.rec, o, o),), None, o))
            total += float(st.synapse.dense_ops())
    return total
