"""PNG figures of profiles (:mod:`neurodeploy.measure.profiling`): spike raster, firing rate per layer,
per-timestep membrane-potential distributions (the paper's Figure 1), energy per layer.
Every function takes one or more profiles; several are drawn side by side or overlaid."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from neurodeploy.measure.plots import plt, save_figure
from neurodeploy.measure.profiling import Profile

MAX_TIMESTEP_PANELS = 8
MAX_MEMBRANE_LAYERS = 4
COLORS = ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")


def plot_raster(profiles: Sequence[Profile], path: str | Path) -> Path:
    """One column per profile, one row per neuron layer: spikes of the first test sample."""
    layers = max((list(p.raster) for p in profiles), key=len)
    fig, axes = plt.subplots(
        len(layers),
        len(profiles),
        figsize=(4.2 * len(profiles), 1.6 + 1.3 * len(layers)),
        squeeze=False,
        sharex=True,
    )
    for j, p in enumerate(profiles):
        for i, name in enumerate(layers):
            ax = axes[i][j]
            r = p.raster.get(name)
            if r is None:
                ax.axis("off")
                continue
            t, n = np.nonzero(r)
            ax.scatter(t + 1, n, s=4, marker="|", color="black")
            ax.set_xlim(0.5, r.shape[0] + 0.5)
            ax.set_ylim(-0.5, r.shape[1] - 0.5)
            ax.set_ylabel(f"{name}\nneuron", fontsize=8)
            if i == 0:
                ax.set_title(p.label, fontsize=9)
        axes[-1][j].set_xlabel("timestep")
    fig.suptitle(
        "spike raster, first test sample (up to 256 neurons per layer, evenly spaced)", fontsize=9
    )
    fig.tight_layout()
    return save_figure(fig, path)


def _grouped_bars(
    ax, profiles: Sequence[Profile], names: list[str], values: list[list[float]]
) -> None:
    width = 0.8 / max(len(profiles), 1)
    x = np.arange(len(names))
    for k, (p, v) in enumerate(zip(profiles, values)):
        ax.bar(
            x + (k - (len(profiles) - 1) / 2) * width,
            v,
            width,
            label=p.label,
            color=COLORS[k % len(COLORS)],
        )
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)


def plot_firing_rates(profiles: Sequence[Profile], path: str | Path) -> Path:
    names = [l.name for l in profiles[0].counts.layers if l.neurons > 0]
    values = []
    for p in profiles:
        rates = {l.name: l.per_sample()["firing_rate"] for l in p.counts.layers if l.neurons > 0}
        values.append([rates.get(n, np.nan) for n in names])
    fig, ax = plt.subplots(figsize=(1.2 + 1.1 * len(names) * max(1, len(profiles) / 2), 3.2))
    _grouped_bars(ax, profiles, names, values)
    ax.set_ylabel("firing rate (spikes / neuron / step)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_membranes(profiles: Sequence[Profile], path: str | Path) -> Path:
    """Rows: neuron layers (up to 4); columns: timesteps (up to 8, evenly spaced); each panel the
    histogram of the state that timestep starts from, in threshold units, one outline per profile."""
    layers = list(profiles[0].membranes)[:MAX_MEMBRANE_LAYERS]
    if not layers:
        raise ValueError("no membrane potentials were recorded (profile with membranes=True)")
    T = len(profiles[0].membranes[layers[0]])
    steps = sorted(set(np.linspace(0, T - 1, min(T, MAX_TIMESTEP_PANELS)).astype(int).tolist()))
    fig, axes = plt.subplots(
        len(layers), len(steps), figsize=(2.3 * len(steps), 1.9 * len(layers) + 0.6), squeeze=False
    )
    for i, name in enumerate(layers):
        vals = [v for p in profiles for v in p.membranes.get(name, []) if v.size]
        lo = min((float(np.percentile(v, 0.5)) for v in vals), default=-1.0)
        hi = max((float(np.percentile(v, 99.5)) for v in vals), default=1.0)
        lo, hi = min(lo, -0.05), max(hi, 0.05)
        bins = np.linspace(lo, hi, 41)
        for j, t in enumerate(steps):
            ax = axes[i][j]
            for k, p in enumerate(profiles):
                v = p.membranes.get(name, [])
                if t < len(v) and v[t].size:
                    ax.hist(
                        np.clip(v[t], lo, hi),
                        bins=bins,
                        histtype="step",
                        density=True,
                        color=COLORS[k % len(COLORS)],
                        label=p.label,
                    )
            ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t = {t + 1}", fontsize=9)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if i == len(layers) - 1:
                ax.set_xlabel("start state / threshold", fontsize=8)
    axes[0][-1].legend(fontsize=7)
    fig.suptitle("membrane state each timestep starts from (t = 1 starts at 0)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_energy(profiles: Sequence[Profile], path: str | Path) -> Path:
    """One panel per energy model: energy per sample (pJ) by layer, bars per profile."""
    models = [e.model for e in profiles[0].energy]
    if not models:
        raise ValueError("no energy estimates to plot (profile with at least one energy model)")
    names = [l.name for l in profiles[0].counts.layers]
    fig, axes = plt.subplots(
        1, len(models), figsize=(1.5 + 1.0 * len(names) * len(models), 3.4), squeeze=False
    )
    for ax, m in zip(axes[0], models):
        values = [
            [
                p.energy_by_model()[m].per_layer_pj.get(n, np.nan)
                if m in p.energy_by_model()
                else np.nan
                for n in names
            ]
            for p in profiles
        ]
        _grouped_bars(ax, profiles, names, values)
        ax.set_title(f"energy model: {m}", fontsize=9)
        ax.set_ylabel("pJ per sample (dynamic)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)
