"""``neurodeploy reproduce``: the paper's claims measured on the offline tasks.

Per task: the ablation (vanilla / +MPS / +guidance / +both at each T, several seeds), the
variants the paper leaves open (reading, guidance direction, drop rate, alpha initialisation,
guidance weight; each changes one setting of "+both" at T=4), reduced-timestep inference of the
T=4 models, initial-state statistics and gradient flow of the seed-0 T=4 models, and the learned
alphas. Writes ``reproduction.md``, ``reproduction.json`` and ``figures/*.png`` into ``out``.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import statistics
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from neurodeploy.data import list_tasks, load_task
from neurodeploy.measure.analysis import accuracy_by_timesteps, gradient_flow, initial_state_stats
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train

ARMS: dict[str, dict[str, Any]] = {
    "vanilla": dict(mps=False, guidance=False),
    "+MPS": dict(mps=True, guidance=False),
    "+guidance": dict(mps=False, guidance=True),
    "+both": dict(mps=True, guidance=True),
}
# The settings the ablation and the variants start from (the spec's starting values), pinned here
# so that the study does not move when the shipped defaults (chosen from it) change.
STUDY_BASE: dict[str, Any] = dict(
    mps_mode="reset",
    alpha_init=0.5,
    direction="later-teaches-earlier",
    lam=1.0,
    tau_kd=2.0,
    p_drop=0.0,
    loss="ce",
)
# Each variant changes one setting of "+both" (reset reading, later teaches earlier, p_drop 0,
# alpha_init 0.5, lam 1); "+both" at T=4 is their reference row.
VARIANTS: dict[str, dict[str, Any]] = {
    "reading=charge": dict(mps_mode="charge"),
    "direction=earlier-teaches-later": dict(direction="earlier-teaches-later"),
    "direction=both": dict(direction="both"),
    "p_drop=0.5": dict(p_drop=0.5),
    "alpha_init=0.2": dict(alpha_init=0.2),
    "alpha_init=0.8": dict(alpha_init=0.8),
    "lam=0.25": dict(lam=0.25),
}
TASK_BASE: dict[str, dict[str, Any]] = {
    "digits": dict(model="mlp", lr=5e-3),
    "event-digits": dict(model="vgg", lr=2e-3),
    "seq1d": dict(model="conv1d", lr=5e-3),
    "shapes3d": dict(model="pointnet", lr=5e-3),
}
ANALYSIS_T = 4  # reduced-timestep inference, initial states and gradients use T=4 models
STATS_SAMPLES = 256  # test samples for initial-state statistics and gradient flow


@dataclass(frozen=True)
class Plan:
    """How much to run. ``epochs`` per task; std needs >= 2 seeds."""

    name: str
    epochs: dict[str, int]
    seeds: tuple[int, ...] = (0, 1, 2)
    variant_seeds: tuple[int, ...] = (0, 1, 2)
    Ts: tuple[int, ...] = (2, 4)
    batch_size: int = 64
    tasks: tuple[str, ...] = field(default_factory=lambda: tuple(TASK_BASE))

    def runs(self) -> list[dict[str, Any]]:
        specs = []
        for task in self.tasks:
            for arm in ARMS:
                for T in self.Ts:
                    specs += [
                        dict(study="ablation", task=task, arm=arm, T=T, seed=s) for s in self.seeds
                    ]
            for var in VARIANTS:
                specs += [
                    dict(study="variant", task=task, arm=var, T=ANALYSIS_T, seed=s)
                    for s in self.variant_seeds
                ]
        return specs

    def config(self, spec: dict[str, Any]) -> TrainConfig:
        over = (
            ARMS[spec["arm"]]
            if spec["study"] == "ablation"
            else {**ARMS["+both"], **VARIANTS[spec["arm"]]}
        )
        return TrainConfig(
            task=spec["task"],
            T=spec["T"],
            seed=spec["seed"],
            epochs=self.epochs[spec["task"]],
            batch_size=self.batch_size,
            **TASK_BASE[spec["task"]],
            **{**STUDY_BASE, **over},
        )


QUICK = Plan(
    "quick",
    epochs={"digits": 2, "event-digits": 1, "seq1d": 1, "shapes3d": 1},
    seeds=(0, 1),
    variant_seeds=(0,),
)
# Sized for about 40-60 minutes with 2 workers on 2 cores (measured per-epoch costs at 1 thread,
# T=4: digits 0.1 s, event-digits 2.4 s, seq1d 0.6 s, shapes3d 3.9 s).
FULL = Plan("full", epochs={"digits": 20, "event-digits": 15, "seq1d": 20, "shapes3d": 12})


def run_one(spec: dict[str, Any], plan: Plan) -> dict[str, Any]:
    """Train one configuration and measure it; returns a JSON-able record."""
    cfg = plan.config(spec)
    t0 = time.perf_counter()
    res = train(cfg, progress=False)
    rec = dict(
        spec,
        test_acc=res.test_acc,
        train_acc=res.history[-1]["train_acc"],
        alphas=res.model.alphas(),
        seconds=round(time.perf_counter() - t0, 2),
        epochs=cfg.epochs,
    )
    if spec["T"] == ANALYSIS_T:
        task = load_task(cfg.task, T=cfg.T, seed=cfg.data_seed)
        acc = accuracy_by_timesteps(res.model, task, T=cfg.T, steps=range(1, cfg.T + 1))
        rec["acc_by_t"] = [acc[t] for t in range(1, cfg.T + 1)]
        if spec["study"] == "ablation" and spec["seed"] == plan.seeds[0]:
            x = task.encode(task.x_test[:STATS_SAMPLES], cfg.T)
            rec["initial_state"] = initial_state_stats(res.model, x)
            y = task.y_test[:STATS_SAMPLES]
            rec["gradient_flow"] = gradient_flow(res.model, x, y)
            rec["gradient_flow_last"] = gradient_flow(res.model, x, y, last_only=True)
    return rec


def _worker_init() -> None:
    torch.set_num_threads(1)


def _run_specs(
    specs: list[dict[str, Any]], plan: Plan, *, workers: int, progress: bool, desc: str
) -> list[dict[str, Any]]:
    """Train and measure each spec, in order; ``workers`` > 1 uses a spawn pool of 1-thread workers."""
    bar = tqdm(total=len(specs), desc=desc, disable=not progress)
    records = []
    if workers <= 1:
        for s in specs:
            records.append(run_one(s, plan))
            bar.update()
    else:
        with ProcessPoolExecutor(
            workers, mp_context=get_context("spawn"), initializer=_worker_init
        ) as ex:
            for rec in ex.map(run_one, specs, [plan] * len(specs)):
                records.append(rec)
                bar.update()
    bar.close()
    return records


def run_plan(plan: Plan, workers: int = 1, progress: bool = True) -> list[dict[str, Any]]:
    desc = f"reproduce ({plan.name})"
    return _run_specs(plan.runs(), plan, workers=workers, progress=progress, desc=desc)


def _ms(values: Sequence[float]) -> tuple[float, float]:
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _pct(values: Sequence[float]) -> str:
    m, s = _ms(values)
    return f"{100 * m:.2f} +- {100 * s:.2f}"


def summarize(records: list[dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """Group the run records into the tables the report shows."""
    acc: dict[tuple[str, str, str, int], list[float]] = defaultdict(list)
    by_t: dict[tuple[str, str], list[list[float]]] = defaultdict(list)
    alphas: dict[tuple[str, str, int], list[dict[str, float]]] = defaultdict(list)
    for r in records:
        acc[(r["task"], r["study"], r["arm"], r["T"])].append(r["test_acc"])
        if r["study"] == "ablation" and "acc_by_t" in r:
            by_t[(r["task"], r["arm"])].append(r["acc_by_t"])
        if any(r["alphas"].values()):
            alphas[(r["task"], r["arm"], r["T"])].append(r["alphas"])
    return dict(acc=acc, by_t=by_t, alphas=alphas)


def write_report(records: list[dict[str, Any]], plan: Plan, out: Path, wall_s: float) -> Path:
    from neurodeploy.measure import plots

    out.mkdir(parents=True, exist_ok=True)
    figs = out / "figures"
    s = summarize(records, plan)
    acc, by_t, alphas = s["acc"], s["by_t"], s["alphas"]
    tasks = [t for t in plan.tasks if any(r["task"] == t for r in records)]
    L = [
        f"# Reproduction: MPS and adjacent-timestep guidance on the offline tasks ({plan.name} size)",
        "",
        f"Date {time.strftime('%Y-%m-%d %H:%M')}; machine {platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}; wall time {wall_s / 60:.1f} min for "
        f"{len(records)} training runs. Seeds {list(plan.seeds)} (variants: {list(plan.variant_seeds)}); "
        f"epochs {plan.epochs}; batch {plan.batch_size}; Adam with cosine schedule; "
        f"per-task model and lr {TASK_BASE}. Accuracies are test accuracy in %, mean +- std over seeds.",
        "",
        "## Ablation",
        "",
        "| task | arm | "
        + " | ".join(f"T={T}" for T in plan.Ts)
        + f" | delta vs vanilla at T={plan.Ts[-1]} |",
        "|---|---|" + "---|" * len(plan.Ts) + "---|",
    ]
    for task in tasks:
        base = _ms(acc[(task, "ablation", "vanilla", plan.Ts[-1])])[0]
        for arm in ARMS:
            cells = [_pct(acc[(task, "ablation", arm, T)]) for T in plan.Ts]
            d = 100 * (_ms(acc[(task, "ablation", arm, plan.Ts[-1])])[0] - base)
            L.append(f"| {task} | {arm} | " + " | ".join(cells) + f" | {d:+.2f} |")
    L += [
        "",
        f"## Variants (each changes one setting of +both, T={ANALYSIS_T})",
        "",
        "| task | variant | accuracy | delta vs +both |",
        "|---|---|---|---|",
    ]
    variant_delta: dict[str, list[float]] = defaultdict(list)
    for task in tasks:
        ref = acc[(task, "ablation", "+both", ANALYSIS_T)]
        L.append(
            f"| {task} | +both (reset reading, later teaches earlier, p_drop 0, alpha_init 0.5, lam 1) | "
            f"{_pct(ref)} | 0 |"
        )
        for var in VARIANTS:
            v = acc.get((task, "variant", var, ANALYSIS_T))
            if not v:
                continue
            d = 100 * (_ms(v)[0] - _ms(ref)[0])
            variant_delta[var].append(d)
            L.append(f"| {task} | {var} | {_pct(v)} | {d:+.2f} |")
    if variant_delta:
        L += [
            "",
            "Mean delta over tasks: "
            + "; ".join(f"{k} {statistics.mean(v):+.2f}" for k, v in variant_delta.items()),
        ]
    L += [
        "",
        f"## Reduced-timestep inference (trained at T={ANALYSIS_T}, run for the first t steps)",
        "",
        "| task | arm | " + " | ".join(f"t={t}" for t in range(1, ANALYSIS_T + 1)) + " |",
        "|---|---|" + "---|" * ANALYSIS_T,
    ]
    curves: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for task in tasks:
        curves[task] = {}
        for arm in ARMS:
            rows = by_t.get((task, arm))
            if not rows:
                continue
            cols = list(zip(*rows))
            L.append(f"| {task} | {arm} | " + " | ".join(_pct(c) for c in cols) + " |")
            curves[task][arm] = ([_ms(c)[0] for c in cols], [_ms(c)[1] for c in cols])
    plots.plot_reduced_timesteps(curves, figs / "reduced_timesteps.png")
    L += [
        "",
        "![reduced-timestep inference](figures/reduced_timesteps.png)",
        "",
        "## Initial-state consistency (the paper's Figure 1)",
        "",
        "Mean and std (over test samples and neurons) of the membrane state each timestep starts from, "
        f"per LIF layer, seed {plan.seeds[0]}, T={ANALYSIS_T}. "
        "'drift' = std over t = 2..T of the per-timestep "
        "mean, averaged over layers (lower = more consistent start states; t = 1 always starts at 0).",
        "",
        "| task | arm | drift of the mean | mean std within a timestep (t>=2) |",
        "|---|---|---|---|",
    ]
    for task in tasks:
        stats = {
            r["arm"]: r["initial_state"]
            for r in records
            if r["task"] == task and "initial_state" in r
        }
        if not stats:
            continue
        for arm, st in stats.items():
            drift = statistics.mean(statistics.pstdev(v["mean"][1:]) for v in st.values())
            spread = statistics.mean(statistics.mean(v["std"][1:]) for v in st.values())
            L.append(f"| {task} | {arm} | {drift:.4f} | {spread:.4f} |")
        plots.plot_initial_state(
            stats,
            f"{task}: initial membrane state per timestep",
            figs / f"initial_state_{task}.png",
        )
    L += [""] + [f"![initial state {t}](figures/initial_state_{t}.png)" for t in tasks]
    L += [
        "",
        "## Gradient flow",
        "",
        f"Seed {plan.seeds[0]}, T={ANALYSIS_T}, trained models, {STATS_SAMPLES} test samples, "
        "||dL/dI(t)|| reaching "
        "each timestep's input current. 'all outputs': L = CE of the time-averaged output. 'last output': "
        "L = CE(z_T, y), so the gradient at t < T arrives only through the neuron state across time (the "
        "temporal path). Ratios are the norm at t=1 over the norm at t=T, mean over layers; higher means "
        "more gradient reaches the first timestep.",
        "",
        "| task | arm | t=1/t=T, all outputs | t=1/t=T, last output | per layer, last output (t=1..T) |",
        "|---|---|---|---|---|",
    ]
    for task in tasks:
        flows = {
            key: {r["arm"]: r[key] for r in records if r["task"] == task and key in r}
            for key in ("gradient_flow", "gradient_flow_last")
        }
        if not flows["gradient_flow"]:
            continue
        for arm in flows["gradient_flow"]:
            ratios = [
                statistics.mean(
                    v[0] / v[-1] if v[-1] > 0 else float("nan") for v in flows[k][arm].values()
                )
                for k in ("gradient_flow", "gradient_flow_last")
            ]
            per = "; ".join(
                f"{n}: " + ", ".join(f"{g:.1e}" for g in v)
                for n, v in flows["gradient_flow_last"][arm].items()
            )
            L.append(f"| {task} | {arm} | {ratios[0]:.3f} | {ratios[1]:.3f} | {per} |")
        plots.plot_gradient_flow(
            flows["gradient_flow_last"],
            f"{task}: gradient of CE(z_T) reaching each timestep",
            figs / f"gradient_flow_{task}.png",
        )
    L += [""] + [f"![gradient flow {t}](figures/gradient_flow_{t}.png)" for t in tasks]
    L += [
        "",
        "## Learned alpha per layer (end of training, mean over seeds)",
        "",
        "| task | arm | T | alpha per layer |",
        "|---|---|---|---|",
    ]
    for (task, arm, T), al in sorted(alphas.items()):
        layers = list(al[0])
        L.append(
            f"| {task} | {arm} | {T} | "
            + ", ".join(f"{n}={statistics.mean(a[n] for a in al):.3f}" for n in layers)
            + " |"
        )
    md = out / "reproduction.md"
    md.write_text("\n".join(L) + "\n")
    (out / "reproduction.json").write_text(
        json.dumps(
            {
                "plan": dataclasses.asdict(plan),
                "wall_s": wall_s,
                "torch": torch.__version__,
                "date": time.strftime("%Y-%m-%d"),
                "machine": platform.machine(),
                "runs": records,
            },
            indent=1,
        )
    )
    return md


def _load_json(json_path: Path) -> tuple[Plan, list[dict[str, Any]], float]:
    try:
        data = json.loads(json_path.read_text())
        p = data["plan"]
        plan = Plan(
            p["name"],
            dict(p["epochs"]),
            tuple(p["seeds"]),
            tuple(p["variant_seeds"]),
            tuple(p["Ts"]),
            p["batch_size"],
            tuple(p["tasks"]),
        )
        return plan, data["runs"], float(data["wall_s"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{json_path}: not a readable reproduction.json ({type(e).__name__}: {e})"
        ) from e


def rewrite_report(json_path: str | Path, out: str | Path | None = None) -> Path:
    """Render reproduction.md and the figures again from a saved reproduction.json (no training)."""
    json_path = Path(json_path)
    plan, records, wall_s = _load_json(json_path)
    return write_report(records, plan, Path(out) if out else json_path.parent, wall_s)


def refresh_analysis(json_path: str | Path, workers: int = 1, progress: bool = True) -> Path:
    """Retrain the seed-0 T=4 ablation runs of a saved reproduction (training is deterministic for
    a seed and thread count, so they are the same models), recompute their initial-state and
    gradient measurements with the current analysis code, check that the accuracies are
    reproduced exactly, and rewrite the JSON and the report."""
    json_path = Path(json_path)
    plan, records, wall_s = _load_json(json_path)
    idx = [
        i
        for i, r in enumerate(records)
        if r["study"] == "ablation" and r["T"] == ANALYSIS_T and r["seed"] == plan.seeds[0]
    ]
    specs = [{k: records[i][k] for k in ("study", "task", "arm", "T", "seed")} for i in idx]
    fresh = _run_specs(specs, plan, workers=workers, progress=progress, desc="refresh analysis")
    for i, rec in zip(idx, fresh):
        if rec["test_acc"] != records[i]["test_acc"]:
            raise RuntimeError(
                f"run {specs[idx.index(i)]} did not reproduce: test accuracy {rec['test_acc']} "
                f"now vs {records[i]['test_acc']} saved (different threads or library versions?)"
            )
        rec["seconds"] = records[i]["seconds"]
        records[i] = rec
    data = json.loads(json_path.read_text())
    data["runs"] = records
    json_path.write_text(json.dumps(data, indent=1))
    return write_report(records, plan, json_path.parent, wall_s)


def reproduce(
    *,
    quick: bool = False,
    tasks: Sequence[str] | None = None,
    out: str | Path = "runs/reproduce",
    workers: int = 1,
    progress: bool = True,
) -> Path:
    """Run the plan (``QUICK`` or ``FULL``) on ``tasks`` (default: all) and write the report."""
    plan = QUICK if quick else FULL
    if tasks:
        unknown = [t for t in tasks if t not in list_tasks()]
        if unknown:
            raise ValueError(f"tasks: unknown name(s) {unknown}; available: {list_tasks()}")
        plan = dataclasses.replace(plan, tasks=tuple(tasks))
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    t0 = time.time()
    records = run_plan(plan, workers=workers, progress=progress)
    return write_report(records, plan, Path(out), time.time() - t0)
