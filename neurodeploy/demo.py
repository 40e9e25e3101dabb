"""The main job: train MPS + guidance on ``event-digits`` at T=4 on the CPU in a few minutes,
next to a vanilla-LIF baseline, then export it through NIR, quantise it for Loihi 2 and run it on
the reference simulator and in Lava fixed_pt, printing a per-stage table; last, profile spikes,
synaptic operations and energy of both models (report and plots in <out>/profile)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from neurodeploy.data import load_task
from neurodeploy.files import RunLock
from neurodeploy.measure.analysis import run_recording_spikes
from neurodeploy.nn.net import SpikingNet
from neurodeploy.training.config import TrainConfig, TrainResult
from neurodeploy.training.loop import train

DEMO_CONFIG = TrainConfig(
    task="event-digits",
    model="vgg",
    T=4,
    mps=True,
    guidance=True,
    epochs=8,
    batch_size=64,
    lr=2e-3,
    seed=0,
)


@torch.no_grad()
def firing_rates(model: SpikingNet, x: torch.Tensor) -> dict[str, float]:
    """Mean spikes per neuron per timestep of every LIF layer on input ``x`` (T, B, ...)."""
    model.eval()
    _, spikes = run_recording_spikes(model, x)
    return {name: float(s.mean()) for (name, _), s in zip(model.lif_layers(), spikes)}


def summarize(label: str, res: TrainResult, seconds: float) -> str:
    task = load_task(res.config.task, T=res.config.T, seed=res.config.data_seed)
    rates = firing_rates(
        res.model,
        task.encode(task.x_test[:256], res.config.T).to(next(res.model.parameters()).device),
    )
    alphas = ", ".join(f"{n}={a:.3f}" for n, a in res.model.alphas().items())
    rate_s = ", ".join(f"{n}={r:.3f}" for n, r in rates.items())
    return (
        f"{label:<22} test acc {res.test_acc:6.2%}  train acc {res.history[-1]['train_acc']:6.2%}  "
        f"{seconds:5.0f} s\n{'':<22} alpha: {alphas or '-'}\n{'':<22} firing rate: {rate_s}"
    )


def run_demo(
    out_dir: str | Path,
    *,
    epochs: int | None = None,
    compare: bool = True,
    progress: bool = True,
    deploy_chain: bool = True,
    lava_samples: int = 5,
    profile_models: bool = True,
) -> list[tuple[str, TrainResult]]:
    """Train the demo configuration (and, with ``compare``, the vanilla baseline) into ``out_dir``,
    then take the MPS model through NIR, quantisation, the reference simulator and Lava.
    ``out_dir`` is locked for the run (:class:`neurodeploy.files.RunLock`)."""
    with RunLock(out_dir, what="demo output folder"):
        return _run_demo(
            out_dir,
            epochs=epochs,
            compare=compare,
            progress=progress,
            deploy_chain=deploy_chain,
            lava_samples=lava_samples,
            profile_models=profile_models,
        )


def _run_demo(
    out_dir: str | Path,
    *,
    epochs: int | None,
    compare: bool,
    progress: bool,
    deploy_chain: bool,
    lava_samples: int,
    profile_models: bool,
) -> list[tuple[str, TrainResult]]:
    cfg = DEMO_CONFIG if epochs is None else dataclasses.replace(DEMO_CONFIG, epochs=epochs)
    runs = [("MPS + guidance", cfg)]
    if compare:
        runs.append(("vanilla LIF, CE only", dataclasses.replace(cfg, mps=False, guidance=False)))
    results = []
    lines = [
        f"neurodeploy demo: task={cfg.task} model={cfg.model} T={cfg.T} epochs={cfg.epochs} "
        f"threads={torch.get_num_threads()} device={'cuda' if torch.cuda.is_available() else 'cpu'}"
    ]
    for i, (label, c) in enumerate(runs):
        t0 = time.perf_counter()
        res = train(
            c,
            out_dir=Path(out_dir) / f"run{i}-{'mps-tag' if c.mps else 'vanilla'}",
            progress=progress,
        )
        lines.append(summarize(label, res, time.perf_counter() - t0))
        results.append((label, res))
    if len(results) == 2:
        diff = 100 * (results[0][1].test_acc - results[1][1].test_acc)
        n_test = len(load_task(cfg.task, T=cfg.T).y_test)
        lines.append(
            f"MPS + guidance minus vanilla: {diff:+.2f} points on {n_test} test samples, one seed "
            f"(1 sample = {100 / n_test:.2f} points); several seeds: benchmarks/demo_ablation.py"
        )
    lines.append(f"checkpoints and metrics: {out_dir}")
    print("\n".join(lines), flush=True)
    if deploy_chain:
        from neurodeploy.deploy import deploy

        target = "lava"
        try:
            import lava.magma.core.run_configs  # noqa: F401
        except ImportError:
            target = "reference"
        print(
            deploy(
                results[0][1].model,
                cfg.task,
                T=cfg.T,
                out_dir=Path(out_dir) / "deploy",
                target=target,
                lava_samples=lava_samples,
            )
        )
    if profile_models:
        print(profile_demo(results, cfg, Path(out_dir) / "profile", progress))
    return results


def profile_demo(
    results: list[tuple[str, TrainResult]], cfg: TrainConfig, out_dir: Path, progress: bool
) -> str:
    """Profile the trained models (float, all test samples) into ``out_dir``; a short summary."""
    from neurodeploy.measure.profiling import profile
    from neurodeploy.measure.report import fmt, write_report

    task = load_task(cfg.task, T=cfg.T)
    profiles = [
        profile(res.model, task, cfg.T, "torch", samples=None, label=label, progress=progress)
        for label, res in results
    ]
    paths = write_report(profiles, out_dir)
    lines = ["profile (float, hardware view, per test sample):"]
    for p in profiles:
        t = p.counts.totals()
        e = p.energy_by_model()
        lines.append(
            f"  {p.label:<22} spikes {fmt(t['spikes'])}, ACs {fmt(t['acs'])}, MACs {fmt(t['macs'])}; "
            f"SNN/ANN energy: cmos45 {e['cmos45'].snn_over_ann:.3f}, loihi {e['loihi'].snn_over_ann:.3f}"
        )
    lines.append(f"  report and plots: {paths.markdown}")
    return "\n".join(lines)
