"""A readable summary of a NIR graph: nodes, shapes, parameter ranges, neuron and synapse counts,
metadata (``neurodeploy inspect model.nir``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import nir
import numpy as np

from .nir_common import METADATA_KEY, resolve_dt

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
    )  # field: (min, max, shape)
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
                s.params[f] = (float(np.nanmin(a)), float(np.nanmax(a)), tuple(a.shape))
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


def format_summary(graph: nir.NIRGraph, source: str = "", dt: float | None = None) -> str:
    """The summary text; ``dt`` (seconds per timestep, e.g. ``--dt``) overrides the graph's. It
    prints the dt the graph is read with and where it came from (metadata / --dt / default),
    and each neuron's time constants in timesteps (tau/dt)."""
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
        params = ", ".join(f"{k} {lo:.4g}..{hi:.4g}" for k, (lo, hi, _) in r.params.items())
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
    lines += [
        f"edges: {len(graph.edges)}; neurons: {neurons}; synaptic weights: {weights}; "
        f"synaptic connections: {conns}",
        f"smoothed (MPS) neurons in: {', '.join(smoothed) if smoothed else 'none'}"
        + (" -- a tool that ignores metadata runs these as plain LIF" if smoothed else ""),
    ]
    return "\n".join(lines)
