"""PNG figures (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from neurodeploy.files import atomic_write

ARM_STYLE = {
    "vanilla": dict(color="tab:gray", ls="--", marker="o"),
    "+MPS": dict(color="tab:blue", ls="-", marker="s"),
    "+guidance": dict(color="tab:orange", ls="--", marker="^"),
    "+both": dict(color="tab:green", ls="-", marker="D"),
}


def _style(arm: str) -> dict:
    return ARM_STYLE.get(arm, dict(marker="o"))


def plot_initial_state(
    stats: Mapping[str, Mapping[str, Mapping[str, list[float]]]], title: str, path: str | Path
) -> Path:
    """``stats[arm][layer] = {"mean": [...], "std": [...]}``: one panel per layer, mean +- std
    of the state each timestep starts from, one line per arm (the paper's Figure 1)."""
    arms = list(stats)
    layers = list(next(iter(stats.values())))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for k, arm in enumerate(arms):
            s = stats[arm][layer]
            t = [i + 1 + 0.08 * (k - (len(arms) - 1) / 2) for i in range(len(s["mean"]))]
            ax.errorbar(t, s["mean"], yerr=s["std"], capsize=3, label=arm, **_style(arm))
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("timestep t")
        ax.set_xticks(range(1, len(s["mean"]) + 1))
    axes[0][0].set_ylabel("initial membrane state\nmean +- std")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_gradient_flow(
    flow: Mapping[str, Mapping[str, list[float]]], title: str, path: str | Path
) -> Path:
    """``flow[arm][layer] = [||dL/dI(t)|| ...]``: one panel per layer, log scale."""
    arms = list(flow)
    layers = list(next(iter(flow.values())))
    fig, axes = plt.subplots(1, len(layers), figsize=(3.2 * len(layers), 3.0), squeeze=False)
    for ax, layer in zip(axes[0], layers):
        for arm in arms:
            g = flow[arm][layer]
            ax.plot(range(1, len(g) + 1), [max(v, 1e-12) for v in g], label=arm, **_style(arm))
        ax.set_yscale("log")
        ax.set_title(f"layer {layer}", fontsize=9)
        ax.set_xlabel("timestep t")
    axes[0][0].set_ylabel("||dL/dI(t)||")
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_reduced_timesteps(
    curves: Mapping[str, Mapping[str, tuple[list[float], list[float]]]], path: str | Path
) -> Path:
    """``curves[task][arm] = (mean acc per t, std per t)``: one panel per task."""
    tasks = list(curves)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.2 * len(tasks), 3.0), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        for arm, (mean, std) in curves[task].items():
            ax.errorbar(
                range(1, len(mean) + 1), mean, yerr=std, capsize=3, label=arm, **_style(arm)
            )
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("inference timesteps")
        ax.set_ylim(0, 1)
    axes[0][0].set_ylabel("test accuracy (trained at T=4)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig: plt.Figure, path: str | Path) -> Path:
    """Write ``fig`` as a PNG at ``path`` atomically (:func:`neurodeploy.files.atomic_write`: whole
    or not at all) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, lambda f: fig.savefig(f, dpi=110, format="png"))
    finally:
        plt.close(fig)
    return path
