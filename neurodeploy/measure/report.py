"""Write profiles as a report: ``profile.json`` (machines), ``profile.md`` (people) and PNG plots.

Several profiles (vanilla vs MPS, float vs integer) go side by side in one report: the totals
table has one column per profile (and the ratio to the first), then one per-layer table each.
Every energy figure is labelled with its model's name.
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurodeploy.files import atomic_write_text
from neurodeploy.measure.profiling import Profile

# (row label in profile.md, key in counts totals); energies are added per model below
TOTAL_ROWS: tuple[tuple[str, str], ...] = (
    ("spikes / sample", "spikes"),
    ("firing rate", "firing_rate"),
    ("activation sparsity", "activation_sparsity"),
    ("synaptic ops / sample", "synops"),
    ("ACs / sample", "acs"),
    ("MACs / sample", "macs"),
    ("dense ops / sample", "dense_ops"),
    ("neuron updates / sample", "neuron_updates"),
    ("equivalent ANN MACs / sample", "ann_macs"),
    ("neurons", "neurons"),
    ("synapses (connections)", "connections"),
    ("parameters", "parameters"),
    ("connection sparsity", "connection_sparsity"),
    ("footprint (bytes)", "footprint_bytes"),
)


def fmt(v: float | int | None) -> str:
    """Numbers as the report prints them (6 significant digits)."""
    if v is None:
        return "-"
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return f"{v:.6g}"


#: what a missing accuracy reads as (inputs without labels), in every printed table
NO_ACCURACY = "n/a"
ACCURACY_ROW = "accuracy"


def fmt_value(label: str, v: float | int | None) -> str:
    """:func:`fmt`, except that a missing accuracy (no labels) reads :data:`NO_ACCURACY`."""
    return NO_ACCURACY if label == ACCURACY_ROW and v is None else fmt(v)


@dataclass
class ReportPaths:
    json: Path
    markdown: Path
    plots: dict[str, Path]


def _versions() -> dict[str, str]:
    import numpy
    import torch

    from neurodeploy import __version__

    return {
        "neurodeploy": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
    }


def summary_rows(p: Profile) -> list[tuple[str, float | None]]:
    """(label, value) rows of the totals table for one profile."""
    t = p.counts.totals()
    rows: list[tuple[str, float | None]] = [(ACCURACY_ROW, p.accuracy)]
    rows += [(label, t[key]) for label, key in TOTAL_ROWS]
    for e in p.energy:
        rows.append((f"energy [{e.model}] pJ / sample", e.total_pj))
        if e.ann_total_pj is not None:
            rows.append((f"equivalent ANN energy [{e.model}] pJ / sample", e.ann_total_pj))
            rows.append((f"SNN / ANN energy [{e.model}]", e.snn_over_ann))
        if e.static_pj is not None:
            rows.append((f"static energy [{e.model}] pJ / sample (upper bound)", e.static_pj))
            rows.append((f"time [{e.model}] s / sample (one core, serial)", e.time_s))
    return rows


def _markdown(profiles: Sequence[Profile], meta: dict[str, Any], plots: dict[str, Path]) -> str:
    lines = [f"# Spike and energy profile: {' vs '.join(p.label for p in profiles)}", ""]
    lines.append(
        f"{meta['date']} · neurodeploy {meta['versions']['neurodeploy']} · torch {meta['versions']['torch']}"
        f" · {meta['machine']}"
    )
    lines.append("")
    for p in profiles:
        m = p.meta
        extra = f", hardware {m['hardware']}" if "hardware" in m else ""
        extra += f", {m['latency']}" if "latency" in m else ""
        extra += (
            f", {m['input_values_clipped']} input values clipped"
            if m.get("input_values_clipped")
            else ""
        )
        extra += f"; {m['overflow']}" if "overflow" in m else ""
        lines.append(
            f"- **{p.label}**: target `{p.target}`, {m['view']} view, task `{m['task']}`, T = {m['T']}, "
            f"{m['samples']} test samples{extra}"
        )
    lines += [
        "",
        "Counts are per sample (mean over the samples), summed over timesteps. Definitions: "
        "`neurodeploy.quant.counts`; energy models: `neurodeploy.measure.energy`.",
    ]
    for p in profiles:
        if p.counts.ann_macs is None:
            lines.append(
                f"The equivalent ANN of **{p.label}** is counted on its folded hardware layers (pooling "
                "composed into convolutions), which overstates an ANN of the original architecture: "
                "profile the float model or a program written by this version's quantiser to avoid it."
            )
    lines.append("")
    models = {e.model: e for p in profiles for e in p.energy}
    for e in models.values():
        lines.append(
            f"- energy model **{e.model}**: {e.source}"
            + (f" ({'; '.join(e.notes)})" if e.notes else "")
        )
    lines += ["", "## Totals", ""]
    rows = [summary_rows(p) for p in profiles]
    head = "| quantity | " + " | ".join(p.label for p in profiles)
    head += (
        " | " + " | ".join(f"{p.label} / {profiles[0].label}" for p in profiles[1:])
        if len(profiles) > 1
        else ""
    )
    lines += [head + " |", "|---" * (1 + len(profiles) + max(0, len(profiles) - 1)) + "|"]
    labels = [r[0] for r in rows[0]]
    for label in labels:
        vals = [dict(r).get(label) for r in rows]
        cells = [fmt_value(label, v) for v in vals]
        if len(profiles) > 1:
            base = vals[0]
            missing = NO_ACCURACY if label == ACCURACY_ROW else "-"
            cells += [
                fmt(v / base) if (v is not None and base is not None and base != 0) else missing
                for v in vals[1:]
            ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for p in profiles:
        lines += ["", f"## Per layer: {p.label}", ""]
        emodels = [e.model for e in p.energy]
        head = (
            "| layer | kind | neurons | fan-in | spikes / sample | firing rate | ACs | MACs | dense ops | "
            + " | ".join(f"energy share [{m}]" for m in emodels)
        )
        lines += [head.rstrip(" |") + " |", "|---" * (9 + len(emodels)) + "|"]
        for l in p.counts.all_layers:  # relay stages (Lava, graphs) last, named <src>.relay<j>
            s = l.per_sample()
            shares = [
                e.per_layer_pj.get(l.name, 0.0) / e.total_pj if e.total_pj else float("nan")
                for e in p.energy
            ]
            cells = [
                l.name,
                l.kind,
                str(l.neurons) if l.neurons else "readout",
                str(l.fan_in),
                fmt(s["spikes"]),
                fmt(s["firing_rate"]) if l.neurons else "-",
                fmt(s["acs"]),
                fmt(s["macs"]),
                fmt(s["dense_ops"]),
                *[f"{100 * x:.1f} %" for x in shares],
            ]
            lines.append("| " + " | ".join(cells) + " |")
        graph = [l for l in p.counts.layers if l.edges]
        if graph:
            lines += [
                "",
                f"### Per synapse edge: {p.label}",
                "",
                "Synaptic operations per sample of every synapse into a layer (the spikes its "
                "source sends times their fan-out through it); a layer's row above is their sum.",
                "",
                "| layer | from | edge | synapse | fan-in | synops / sample | ACs | MACs |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for l in graph:
                for edge in l.edges:
                    d = edge.to_dict(l.samples)
                    lines.append(
                        f"| {l.name} | {edge.source} | {edge.kind} | {edge.synapse_kind} | "
                        f"{edge.fan_in} | "
                        f"{fmt(d['synops'])} | {fmt(d['acs'])} | {fmt(d['macs'])} |"
                    )
    if plots:
        lines += ["", "## Plots", ""]
        for name, path in plots.items():
            lines.append(f"![{name}]({path.name})")
    return "\n".join(lines) + "\n"


def distinct_labels(runs: Sequence[tuple[str, str]]) -> list[str]:
    """A column label per (model file, target) run: ``"stem (target)"``, with as many parent
    folders as it takes to tell apart runs whose labels would be equal (``a/checkpoint (torch)``
    vs ``b/checkpoint (torch)``); the same file on the same target twice is numbered ``#k``."""

    def label(path: str, target: str, depth: int) -> str:
        p = Path(path)
        parts = [*p.parent.parts[len(p.parent.parts) - depth :], p.stem] if depth else [p.stem]
        return f"{Path(*parts).as_posix()} ({target})"

    out = [label(path, target, 0) for path, target in runs]
    deepest = max((len(Path(path).parent.parts) for path, _ in runs), default=0)
    for depth in range(1, deepest + 1):
        clash = [i for i, lab in enumerate(out) if out.count(lab) > 1]
        if not clash:
            break
        for i in clash:
            out[i] = label(*runs[i], depth)
    repeated = {lab for lab in out if out.count(lab) > 1}
    seen: dict[str, int] = {}
    for i, lab in enumerate(out):
        if lab in repeated:
            seen[lab] = seen.get(lab, 0) + 1
            out[i] = f"{lab} #{seen[lab]}"
    return out


def write_report(
    profiles: Sequence[Profile], out_dir: str | Path, plots: bool = True
) -> ReportPaths:
    """Write profile.json, profile.md and (with ``plots``) raster.png, firing_rate.png,
    membrane.png, energy.png into ``out_dir``."""
    from neurodeploy.measure import profile_plots as pp

    if not profiles:
        raise ValueError("no profiles to report")
    labels = [p.label for p in profiles]
    equal = sorted({lab for lab in labels if labels.count(lab) > 1})
    if equal:  # the report's columns and plot legends are keyed by label
        raise ValueError(
            f"profiles: labels must be distinct (one column each), got {', '.join(map(repr, equal))} "
            "more than once; see distinct_labels"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "versions": _versions(),
        "machine": f"{platform.machine()}, {platform.system()}, {platform.processor() or 'cpu'}",
    }
    paths: dict[str, Path] = {}
    if plots:
        paths["raster"] = pp.plot_raster(profiles, out / "raster.png")
        paths["firing rate"] = pp.plot_firing_rates(profiles, out / "firing_rate.png")
        if all(p.membranes for p in profiles):
            paths["membrane potentials"] = pp.plot_membranes(profiles, out / "membrane.png")
        if all(p.energy for p in profiles):
            paths["energy per layer"] = pp.plot_energy(profiles, out / "energy.png")
    doc = {
        "meta": meta,
        "profiles": [p.to_dict() for p in profiles],
        "plots": {k: v.name for k, v in paths.items()},
    }
    js = out / "profile.json"
    atomic_write_text(js, json.dumps(doc, indent=1, default=float))  # whole or not at all
    md = out / "profile.md"
    atomic_write_text(md, _markdown(profiles, meta, paths))
    return ReportPaths(js, md, paths)
