"""A readable summary of a NIR graph: nodes, shapes, parameter ranges, neuron and synapse counts,
metadata, and whether the network spikes at the dt it is read with (``neurodeploy inspect
model.nir``).

Silence check (:func:`silence_check`): NIR time constants are in seconds and an IF node's input
gain is r*dt, so a graph read with another producer's dt can be silent (sinabs' IF, r = 1, read
at dt = 1e-4: gain 1e-4). The float import runs on seeded Bernoulli spikes (probability
:data:`SILENCE_RATE` per input and step, :data:`SILENCE_SAMPLES` samples x :data:`SILENCE_T`
steps); a spiking layer with no spike at all is *silent*. For a NIR graph the same runs are made
at each producer's dt (:data:`~.nir_common.PRODUCER_DT`) to say which dt would make it spike.
A silent layer is reported, never refused: a deep layer may be quiet by design.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np
import torch

from neurodeploy.checks import nonfinite_counts
from neurodeploy.data.inputs import random_inputs
from neurodeploy.nn.graph import Recurrent
from neurodeploy.nn.net import SpikingNet

from .nir_common import METADATA_KEY, PRODUCER_DT, DtChoice, NIRDtWarning, resolve_dt

#: the range (min, max) of a field without finite values
NAN = float("nan")
#: Bernoulli spike probability per input and step of the silence check
SILENCE_RATE = 0.15
#: timesteps of the silence check
SILENCE_T = 16
#: samples of the silence check
SILENCE_SAMPLES = 8
#: seed of the silence check's input
SILENCE_SEED = 0
#: who uses which dt (seconds per timestep): PRODUCER_DT, plus sinabs (IF with r = 1: dt = 1)
PRODUCERS_BY_DT: dict[float, str] = {
    dt: "/".join([p for p, v in PRODUCER_DT.items() if v == dt] + (["sinabs"] if dt == 1.0 else []))
    for dt in sorted(set(PRODUCER_DT.values()))
}
#: NIR node types that become one spiking (LIF) layer each on import, in chain order
SPIKING_TYPES = (nir.LIF, nir.IF, nir.CubaLIF)

NEURON_TYPES = (nir.LIF, nir.IF, nir.LI, nir.CubaLIF, nir.CubaLI)
PARAM_FIELDS = (
    "weight",
    "bias",
    "tau",
    "tau_mem",
    "tau_syn",
    "r",
    "v_leak",
    "v_threshold",
    "v_reset",
    "w_in",
    "scale",
)


@dataclass
class NodeSummary:
    name: str
    type: str
    input_shape: tuple[int, ...] | None
    output_shape: tuple[int, ...] | None
    params: dict[str, tuple[float, float, tuple[int, ...]]] = field(
        default_factory=dict
    )  # field: (min, max, shape) of the finite values (NaN, NaN when none is finite)
    #: field: (number of NaN, number of +-inf) for the fields that hold any
    nonfinite: dict[str, tuple[int, int]] = field(default_factory=dict)
    neurons: int = 0
    weights: int = 0
    connections: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


def _shape(types: Any, key: str) -> tuple[int, ...] | None:
    if not isinstance(types, dict) or types.get(key) is None:
        return None
    a = np.asarray(types[key]).ravel()
    return tuple(int(v) for v in a) if a.size else None


def summarize(graph: nir.NIRGraph) -> list[NodeSummary]:
    out = []
    for name, node in graph.nodes.items():
        s = NodeSummary(
            name,
            type(node).__name__,
            _shape(node.input_type, "input"),
            _shape(node.output_type, "output"),
        )
        for f in PARAM_FIELDS:
            v = getattr(node, f, None)
            if v is None or isinstance(v, str):
                continue
            a = np.asarray(v, dtype=np.float64)
            if a.size:
                finite = a[np.isfinite(a)]
                lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (NAN, NAN)
                s.params[f] = (lo, hi, tuple(a.shape))
                nan, inf = nonfinite_counts(a)
                if nan or inf:
                    s.nonfinite[f] = (nan, inf)
        if isinstance(node, NEURON_TYPES) and s.output_shape:
            s.neurons = int(np.prod(s.output_shape))
        w = getattr(node, "weight", None)
        if w is not None and not isinstance(node, NEURON_TYPES):
            w = np.asarray(w)
            s.weights = int(w.size)
            if isinstance(node, (nir.Conv1d, nir.Conv2d)) and s.output_shape:
                # every output element sums C_in/groups x kernel inputs (padding included)
                s.connections = int(np.prod(s.output_shape)) * int(np.prod(w.shape[1:]))
            else:
                s.connections = int(w.size)
        if isinstance(node.metadata, dict) and node.metadata:
            s.metadata = dict(node.metadata.get(METADATA_KEY, node.metadata))
        out.append(s)
    return out


def _time_constants(node: nir.NIRNode) -> dict[str, float]:
    """The node's time constants in seconds (first value of each tau field present)."""
    out = {}
    for f in ("tau", "tau_mem", "tau_syn"):
        v = getattr(node, f, None)
        if v is not None and not isinstance(v, str) and np.asarray(v).size:
            out[f] = float(np.asarray(v, dtype=np.float64).flat[0])
    return out


def _param_text(r: NodeSummary, k: str) -> str:
    """``"weight -0.25..1"`` (min..max), or with NaN/inf ``"weight 2 NaN, 1 inf of 6, finite
    -0.25..1"``: a range never hides them."""
    lo, hi, shape = r.params[k]
    span = f"{lo:.4g}..{hi:.4g}" if np.isfinite(lo) else "none"
    if k not in r.nonfinite:
        return f"{k} {span}"
    nan, inf = r.nonfinite[k]
    return f"{k} {nan} NaN, {inf} inf of {int(np.prod(shape))}, finite {span}"


def format_summary(
    graph: nir.NIRGraph,
    source: str = "",
    dt: float | None = None,
    *,
    activity: bool = False,
    reset: str = "nir",
) -> str:
    """The summary text; ``dt`` (seconds per timestep, e.g. ``--dt``) overrides the graph's. It
    prints the dt the graph is read with and where it came from (metadata / --dt / default),
    and each neuron's time constants in timesteps (tau/dt). With ``activity`` it ends with the
    :func:`silence_check` (every spiking layer's rate on random input, silent layers named with
    the dt that would make them spike), the float model read with ``reset`` ("nir" or
    "snntorch": :func:`~.nir_import.nir_to_model`; the delayed reset's refractory step lowers
    the rates)."""
    from .nir_import import flatten_graph

    graph = flatten_graph(graph)  # nested subgraphs as 'sub.node'
    rows = summarize(graph)
    choice = resolve_dt(graph.metadata, dt, warn=False)
    lines = [
        f"NIR graph {source}".rstrip(),
        f"metadata: {dict(graph.metadata) if graph.metadata else '{}'}",
        choice.describe()
        + (
            "; pass --dt with the producer's dt if it differs" if choice.source == "default" else ""
        ),
        f"{'node':<24}{'type':<11}{'input':<16}{'output':<16}parameters (min..max)",
    ]
    for r in rows:
        params = ", ".join(_param_text(r, k) for k in r.params)
        lines.append(
            f"{r.name:<24}{r.type:<11}{r.input_shape or '-'!s:<16}{r.output_shape or '-'!s:<16}{params}"
        )
        taus = _time_constants(graph.nodes[r.name])
        if taus:
            steps = ", ".join(f"{k}/dt {v / choice.dt:.4g}" for k, v in taus.items())
            lines.append(f"{'':<24}timesteps: {steps}")
        if r.metadata:
            lines.append(f"{'':<24}metadata: {r.metadata}")
    neurons = sum(r.neurons for r in rows)
    weights = sum(r.weights for r in rows)
    conns = sum(r.connections for r in rows)
    smoothed = [r.name for r in rows if float(r.metadata.get("mps_alpha", 0) or 0) > 0]
    bad = [
        f"{r.name}.{k} ({nan} NaN, {inf} inf)"
        for r in rows
        for k, (nan, inf) in r.nonfinite.items()
    ]
    lines += [
        f"non-finite values: {', '.join(bad) if bad else 'none'}"
        + (" -- the graph cannot run or quantise until they are replaced" if bad else ""),
        f"edges: {len(graph.edges)}; neurons: {neurons}; synaptic weights: {weights}; "
        f"synaptic connections: {conns}",
        f"smoothed (MPS) neurons in: {', '.join(smoothed) if smoothed else 'none'}"
        + (" -- a tool that ignores metadata runs these as plain LIF" if smoothed else ""),
    ]
    lines += graph_structure_lines(graph)
    if activity:
        lines.append(_activity_text(graph, dt, reset))
    return "\n".join(lines)


def graph_structure_lines(graph: nir.NIRGraph) -> list[str]:
    """The graph's shape in words: 'chain' or its edges, the nodes with fan-out (several
    consumers) and fan-in (several sources, whose currents sum) and its recurrent cycles."""
    from .nir_import import graph_cycles, is_chain_graph

    if is_chain_graph(graph):
        return ["structure: chain (feed-forward, one edge in and out per node)"]
    n_in: dict[str, list[str]] = {}
    n_out: dict[str, list[str]] = {}
    for a, b in graph.edges:
        n_out.setdefault(a, []).append(b)
        n_in.setdefault(b, []).append(a)
    fan_out = [f"{n} -> {v}" for n, v in n_out.items() if len(v) > 1]
    fan_in = [f"{n} <- {v}" for n, v in n_in.items() if len(v) > 1]
    cycles = [" -> ".join([*c, c[0]]) for c in graph_cycles(graph)]
    return [
        "structure: graph",
        f"edges: {', '.join(f'{a} -> {b}' for a, b in graph.edges)}",
        f"fan-out: {'; '.join(fan_out) or 'none'}",
        f"fan-in (summed): {'; '.join(fan_in) or 'none'}",
        f"recurrent cycles: {'; '.join(cycles) or 'none'}",
    ]


def _activity_text(graph: nir.NIRGraph, dt: float | None, reset: str = "nir") -> str:
    from .nir_import import nir_to_model

    try:
        with warnings.catch_warnings():  # the summary states the dt; the report names the cause
            warnings.simplefilter("ignore", NIRDtWarning)
            model = nir_to_model(graph, dt=dt, reset=reset)
    except ValueError as e:  # NIRConversionError names node and field
        return f"spike rates: not checked (the graph does not import: {e})"
    return silence_check(model, graph, dt=dt, reset=reset).format()


@dataclass(frozen=True)
class LayerActivity:
    """One spiking layer of the float model: its module name, the NIR node it came from (if
    known) and its spike rate (spikes per neuron per step) on the silence check's input."""

    name: str
    node: str | None
    rate: float

    @property
    def label(self) -> str:
        return self.name + (f" (NIR node {self.node!r})" if self.node is not None else "")


@dataclass
class SilenceReport:
    """What :func:`silence_check` found: per spiking layer its rate at the dt the model was read
    with (``dt``; ``None``: not a NIR graph), and for a NIR graph, per other producer dt, the
    layers silent there (``None``: the graph does not import at that dt); ``reset``: the reset
    reading of a NIR graph (``nir_to_model(reset=...)``)."""

    layers: list[LayerActivity]
    dt: DtChoice | None = None
    reset: str | None = None
    others: dict[float, list[str] | None] = field(default_factory=dict)
    rate: float = SILENCE_RATE
    T: int = SILENCE_T
    samples: int = SILENCE_SAMPLES
    seed: int = SILENCE_SEED

    @property
    def silent(self) -> list[str]:
        """Labels of the layers with no spike at all."""
        return [l.label for l in self.layers if l.rate == 0]

    @property
    def input_text(self) -> str:
        return (
            f"{self.samples} samples x {self.T} steps of Bernoulli spikes (rate {self.rate:g}, "
            f"seed {self.seed})"
        )

    def spiking_dts(self) -> list[float]:
        """The other producer dts at which no layer is silent."""
        return [dt for dt, bad in self.others.items() if bad is not None and not bad]

    def format(self) -> str:
        """Every layer's rate (``inspect``), then :meth:`warning` if a layer is silent."""
        head = f"spike rates of the float import on {self.input_text}"
        if self.dt is not None:
            head += f" at dt = {self.dt.dt:g} s"
        if self.reset is not None:
            head += f", reset read as '{self.reset}'"
        rows = [f"  {l.label}: {l.rate:.4g} spikes/neuron/step" for l in self.layers]
        return "\n".join([head + ":", *rows] + ([self.warning()] if self.silent else []))

    def warning(self) -> str:
        """One paragraph: the silent layers, the dt, and which dt would make them spike."""
        if not self.silent:
            return ""
        whole = len(self.silent) == len(self.layers)
        text = (
            f"silent {'network' if whole else 'layers'}: {', '.join(self.silent)} gave no spike "
            f"on {self.input_text}"
        )
        if self.dt is None:
            return (
                text + " (not a NIR graph: dt plays no part; a deep layer may be quiet by design)"
            )
        text += f" at {self.dt.describe()}"
        fine = self.spiking_dts()
        if fine:
            best = fine[0]
            text += (
                "; NIR time constants and IF gains (r*dt) depend on dt: every layer spikes at "
                + ", ".join(f"dt={d:g} ({PRODUCERS_BY_DT.get(d, 'other')})" for d in fine)
                + f": pass --dt {best:g} if the graph comes from that producer"
            )
        else:
            tried = ", ".join(
                f"dt={d:g} ({PRODUCERS_BY_DT.get(d, 'other')}): "
                + ("does not import" if bad is None else f"{len(bad)} silent")
                for d, bad in self.others.items()
            )
            text += (
                f"; no producer dt makes every layer spike ({tried}): a deep layer may be quiet "
                "by design, or the input rate is too low for it"
            )
        return (
            text + ". Producers: snnTorch and SpikingJelly use dt=1e-4, norse 1e-3, sinabs and "
            "spyx 1 (a warning: the command goes on)"
        )


@torch.no_grad()
def layer_activity(
    model: SpikingNet,
    *,
    nodes: list[str] | None = None,
    rate: float = SILENCE_RATE,
    T: int = SILENCE_T,
    samples: int = SILENCE_SAMPLES,
    seed: int = SILENCE_SEED,
) -> list[LayerActivity]:
    """Spike rate of every spiking (LIF) layer of ``model`` on seeded Bernoulli input,
    ``rate = spikes / (neurons * samples * T)``; ``nodes`` names the NIR node of each layer (used
    only when there is one per layer)."""
    src = random_inputs(rate, tuple(model.input_shape), T=T, n=samples, seed=seed)
    lifs = model.lif_layers()
    # A Recurrent node steps its LIF with the float core (no module call): record its output,
    # the spikes of its last neuron module, instead.
    owner: dict[int, torch.nn.Module] = {
        id(r.neuron[-1]): r for r in model.modules() if isinstance(r, Recurrent)
    }
    out: list[torch.Tensor] = []
    hooks = [
        owner.get(id(m), m).register_forward_hook(lambda _m, _i, o: out.append(o)) for _, m in lifs
    ]
    was = model.training
    model.eval()
    try:
        model(src.encode(src.x, T))
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    named: list[str | None] = (
        list(nodes) if nodes is not None and len(nodes) == len(lifs) else [None] * len(lifs)
    )
    return [
        LayerActivity(n, node, float(s.float().mean()))
        for (n, _), node, s in zip(lifs, named, out, strict=True)
    ]


def layer_nodes(model: SpikingNet, graph: nir.NIRGraph) -> list[str]:
    """The NIR node of each spiking layer of ``model`` (``model.lif_layers()`` order) read from
    ``graph``: for a graph model by its GraphBody node name (``body.nodes.<name>...``, NIR's
    '.' as '_'), else (a chain) :func:`spiking_nodes`' order."""
    from .nir_import import _node_names

    lifs = [name.split(".") for name, _ in model.lif_layers()]
    if not all(len(p) > 2 and p[:2] == ["body", "nodes"] for p in lifs):
        return spiking_nodes(graph)
    try:
        by_key = {v: k for k, v in _node_names(graph).items()}
    except ValueError:
        return spiking_nodes(graph)
    found = [by_key.get(p[2]) for p in lifs]
    return [n for n in found if n is not None] if None not in found else spiking_nodes(graph)


def spiking_nodes(graph: nir.NIRGraph) -> list[str]:
    """The graph's spiking neuron nodes (LIF, IF, CubaLIF) in chain order (insertion order when
    the graph is not a chain)."""
    from .nir_import import _chain

    try:
        order = _chain(graph)
    except ValueError:
        order = list(graph.nodes)
    return [n for n in order if isinstance(graph.nodes[n], SPIKING_TYPES)]


def silence_check(
    model: SpikingNet,
    graph: nir.NIRGraph | str | os.PathLike[str] | None = None,
    *,
    dt: float | None = None,
    reset: str = "nir",
    **kw: Any,
) -> SilenceReport:
    """:func:`layer_activity` of ``model`` (read from ``graph`` with ``dt``, if a graph); when a
    layer is silent and there is a graph, the graph is read again at each other producer dt
    (:data:`~.nir_common.PRODUCER_DT`, warnings muted, with the same ``reset`` reading as
    ``model``) and its silent layers listed per dt.
    ``kw``: rate, T, samples, seed of :func:`layer_activity`."""
    if graph is None:
        return SilenceReport(layer_activity(model, **kw), **_settings(kw))
    from .nir_import import nir_to_model, read_nir

    g = graph if isinstance(graph, nir.NIRGraph) else read_nir(graph)
    nodes = layer_nodes(model, g)
    choice = resolve_dt(g.metadata, dt, warn=False)
    rep = SilenceReport(
        layer_activity(model, nodes=nodes, **kw), dt=choice, reset=reset, **_settings(kw)
    )
    if not rep.silent:
        return rep
    for other in PRODUCERS_BY_DT:
        if abs(other - choice.dt) <= 1e-12 * other:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m = nir_to_model(g, dt=other, reset=reset)
        except ValueError:  # NIRConversionError: tau/dt <= 1 at this dt, say
            rep.others[other] = None
            continue
        acts = layer_activity(m, nodes=layer_nodes(m, g), **kw)
        rep.others[other] = [a.label for a in acts if a.rate == 0]
    return rep


def _settings(kw: dict[str, Any]) -> dict[str, Any]:
    return {k: kw[k] for k in ("rate", "T", "samples", "seed") if k in kw}


def warn_if_silent(
    model: SpikingNet,
    path: str | os.PathLike[str],
    *,
    dt: float | None = None,
    reset: str = "nir",
) -> SilenceReport:
    """The deployment commands' check of a float model read from ``path``: :func:`silence_check`
    (a NIR graph: with the dt advice; other files: rates only); returns the report, whose
    :meth:`SilenceReport.warning` is non-empty when a layer is silent."""
    from .model_files import NIR_SUFFIXES

    graph = path if os.fspath(path).endswith(NIR_SUFFIXES) else None
    return silence_check(model, graph, dt=dt, reset=reset)
