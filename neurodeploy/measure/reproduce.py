"""``neurodeploy reproduce``: the paper's claims measured on the offline tasks or the user's data.

Per task: the ablation (vanilla / +MPS / +guidance / +both at each T, several seeds), the
variants the paper leaves open (reading, guidance direction, drop rate, alpha initialisation,
guidance weight; each changes one setting of "+both" at T=4), reduced-timestep inference of the
T=4 models, initial-state statistics and gradient flow of the seed-0 T=4 models, and the learned
alphas. Writes ``reproduction.md``, ``reproduction.json`` and ``figures/*.png`` into ``out``.

The input option family of the deployment commands (:mod:`neurodeploy.data.inputs`) and
``reproduce``: the offline tasks (``--tasks``), or one labelled source of the user's
(:class:`DataSource`), on which the ablation runs (the 4 arms at the source's one T, the seeds and
epochs of ``--quick`` or the full plan, bounded by ``--seeds N`` / ``--epochs N``), each run
through :func:`neurodeploy.training.loop.train` exactly as ``train --config`` runs it:

- ``--config recipe.toml [--data-root DIR]``: the recipe's data, model, T and settings; only
  ``mps``/``guidance`` (the arm), ``seed`` and ``epochs`` change;
- ``--dataset NAME --data-root DIR``: the data set's default model
  (:data:`~neurodeploy.training.config.DEFAULT_MODEL`) at T = 4 with the study's settings
  (:data:`STUDY_BASE`, lr :data:`DATA_LR`);
- ``--data FILE.npz`` (``x``, ``y``, optional ``x_train``/``y_train``; train/test split as
  :func:`neurodeploy.data.inputs.labelled_splits`): the per-timestep input shape is read from
  ``x``'s rank (:func:`npz_layout`), the model is the zoo's default for it (:func:`npz_model`:
  ``mlp`` for a vector, ``vgg`` for a (C, H, W) frame), the study's settings, lr :data:`DATA_LR`.

Reduced-timestep inference, initial-state statistics and gradient flow run on the seed-0 models
at the source's T (on a data set on disk: its whole test split, un-augmented; statistics on the
first :data:`STATS_SAMPLES`). Not run on the user's data: the variants (7 more arms per seed) and
the second T (the T=2 column): the grid stays 4 arms x seeds. ``--random-input`` is refused by
name (:data:`REFUSED_SOURCES`): the ablation trains and scores on labels.
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
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from neurodeploy.data import TaskData, list_tasks, load_task
from neurodeploy.data.inputs import Inputs, from_loaded
from neurodeploy.data.real import list_datasets
from neurodeploy.files import RunLock, atomic_write_text
from neurodeploy.measure.analysis import accuracy_by_timesteps, gradient_flow, initial_state_stats
from neurodeploy.training.config import DEFAULT_MODEL, NPZ_TASK, TrainConfig
from neurodeploy.training.loop import load_data, train
from neurodeploy.training.recipe import load_recipe

ARMS: dict[str, dict[str, Any]] = {
    "vanilla": dict(mps=False, guidance=False),
    "+MPS": dict(mps=True, guidance=False),
    "+guidance": dict(mps=False, guidance=True),
    "+both": dict(mps=True, guidance=True),
}
#: input options of the deployment commands that reproduce refuses, with the reason (docstring)
REFUSED_SOURCES: dict[str, str] = {
    "--random-input": "the ablation trains and scores on labels; random input has none: give "
    "--config recipe.toml, --dataset NAME --data-root DIR or --data FILE.npz (with y)",
}


def check_sources(given: Sequence[str]) -> None:
    """ValueError naming the first refused input option in ``given`` and its reason."""
    for opt in given:
        if opt in REFUSED_SOURCES:
            raise ValueError(f"{opt}: reproduce runs on labelled data only: {REFUSED_SOURCES[opt]}")


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
    # issue 19's tasks: run when named (--tasks), not by default (DEFAULT_TASKS); the sizing
    # (vanilla 70-92 %, ~35-45 s per run at 1 thread) is measured in docs/tasks.md
    "fashion-mnist": dict(model="mlp", lr=5e-3),
    "event-fashion": dict(model="vgg", lr=2e-3, arch=dict(channels=[16, "P", 32, "P"])),
    # feed-forward: at T = 2 / 4 (500 / 250 ms frames) srnn's recurrence has little to do
    "spoken-digits": dict(model="mlp", lr=5e-3, arch=dict(hidden=[48, 48])),
}
#: the tasks ``reproduce`` runs without ``--tasks``: the four built-in offline tasks (the others
#: need a Debian package and about an hour more; name them with ``--tasks``)
DEFAULT_TASKS: tuple[str, ...] = ("digits", "event-digits", "seq1d", "shapes3d")
ANALYSIS_T = 4  # reduced-timestep inference, initial states and gradients use T=4 models
STATS_SAMPLES = 256  # test samples for initial-state statistics and gradient flow
#: the user's data (not a recipe): T of a static --data file and of --dataset, and the lr
DATA_T = ANALYSIS_T
DATA_LR = 5e-3
#: epochs per run on the user's data with --quick (the full plan: the recipe's, else FULL_DATA_EPOCHS)
QUICK_DATA_EPOCHS = 1
FULL_DATA_EPOCHS = 10
#: fields of the source's TrainConfig that each run sets itself
RUN_FIELDS = ("seed", "epochs", "mps", "guidance", "T")


@dataclass(frozen=True)
class DataSource:
    """The user's labelled data the ablation runs on (module docstring).

    ``label``: the report's "task" column; ``option``: the command-line options that named it;
    ``base``: the TrainConfig fields every run starts from (task, model, data_root, data, ...);
    ``T``: the one timestep count; ``recipe``: True when ``base`` is a recipe (its settings stay,
    else :data:`STUDY_BASE` applies); ``model_note``: which model and why."""

    label: str
    option: str
    base: dict[str, Any]
    T: int
    recipe: bool
    model_note: str


def npz_layout(path: str | Path) -> tuple[tuple[int, ...], int | None]:
    """(per-timestep input shape, frames or None) of a labelled ``.npz``'s ``x`` by its rank:
    (N, F) a static vector, (N, T, F) a sequence of vectors, (N, C, H, W) a static frame,
    (N, T, C, H, W) a sequence of frames. Errors name the file and what is missing."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--data {path}: no such file")
    try:
        with np.load(p, allow_pickle=False) as f:
            files = set(f.files)
            shape = tuple(int(d) for d in f["x"].shape) if "x" in files else None
    except (OSError, ValueError) as e:
        raise ValueError(f"--data {path}: not a readable .npz file ({e})") from e
    if shape is None or "y" not in files:
        raise ValueError(
            f"--data {path}: reproduce trains on labels: needs arrays x and integer y "
            f"(found: {', '.join(sorted(files)) or 'none'})"
        )
    layouts = {2: (shape[1:], None), 3: (shape[2:], shape[1]), 4: (shape[1:], None)}
    layouts[5] = (shape[2:], shape[1])
    if len(shape) not in layouts:
        raise ValueError(
            f"--data {path}: x has shape {shape}; reproduce reads (N, F), (N, T, F), "
            "(N, C, H, W) or (N, T, C, H, W)"
        )
    return layouts[len(shape)]


def npz_model(input_shape: tuple[int, ...]) -> str:
    """The zoo's default model for a per-timestep input shape: ``vgg`` for (C, H, W), else
    ``mlp`` (it flattens any shape)."""
    return "vgg" if len(input_shape) == 3 else "mlp"


def data_source(
    *,
    config: str | None = None,
    dataset: str | None = None,
    data_root: str | None = None,
    data: str | None = None,
) -> DataSource:
    """The :class:`DataSource` that ``--config`` / ``--dataset``+``--data-root`` / ``--data``
    name (exactly one; ``--data-root`` also overrides a recipe's folder)."""
    given = [o for o, v in (("--config", config), ("--dataset", dataset), ("--data", data)) if v]
    if len(given) != 1:
        raise ValueError(f"{' and '.join(given) or 'no source'}: give one input source")
    if data_root and not (config or dataset):
        raise ValueError("--data-root DIR goes with --dataset NAME or --config recipe.toml")
    if config:
        cfg = load_recipe(config, {"data_root": data_root} if data_root else None)
        base = {k: v for k, v in cfg.to_dict().items() if k not in RUN_FIELDS}
        where = f" --data-root {cfg.data_root}" if cfg.data_root else ""
        return DataSource(
            cfg.task,
            f"--config {config}{where}",
            base,
            cfg.T,
            True,
            f"model {cfg.model} and settings of the recipe {config}",
        )
    if dataset:
        if dataset not in list_datasets():
            raise ValueError(f"--dataset: unknown name {dataset!r}; available: {list_datasets()}")
        if not data_root:
            raise ValueError("--dataset NAME and --data-root DIR go together: give both")
        model = DEFAULT_MODEL[dataset]
        base = dict(task=dataset, data_root=data_root, model=model, lr=DATA_LR)
        TrainConfig(**base, **STUDY_BASE)  # validates names before anything runs
        return DataSource(
            dataset,
            f"--dataset {dataset} --data-root {data_root}",
            base,
            DATA_T,
            False,
            f"model {model} (the data set's default), T={DATA_T}, lr {DATA_LR}",
        )
    assert data is not None
    shape, frames = npz_layout(data)
    model = npz_model(shape)
    file_data = {"file": str(Path(data).resolve()), "input_shape": list(shape)}
    base = dict(task=NPZ_TASK, model=model, lr=DATA_LR, data=file_data)
    form = f"a sequence of {frames} frames" if frames else f"static, repeated over T={DATA_T}"
    return DataSource(
        Path(data).name,
        f"--data {data}",
        base,
        frames or DATA_T,
        False,
        f"model {model} (the zoo's default for input shape {shape}; {form}), lr {DATA_LR}",
    )


@dataclass(frozen=True)
class Plan:
    """How much to run. ``epochs`` per task; std needs >= 2 seeds."""

    name: str
    epochs: dict[str, int]
    seeds: tuple[int, ...] = (0, 1, 2)
    variant_seeds: tuple[int, ...] = (0, 1, 2)
    Ts: tuple[int, ...] = (2, 4)
    batch_size: int = 64
    tasks: tuple[str, ...] = DEFAULT_TASKS
    source: DataSource | None = None  # the user's data (tasks = (source.label,)), else offline

    @property
    def analysis_T(self) -> int:
        """T of the models that reduced-timestep inference, initial states and gradients use."""
        return ANALYSIS_T if self.source is None else self.source.T

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
                    dict(study="variant", task=task, arm=var, T=self.analysis_T, seed=s)
                    for s in self.variant_seeds
                ]
        return specs

    def config(self, spec: dict[str, Any]) -> TrainConfig:
        over = (
            ARMS[spec["arm"]]
            if spec["study"] == "ablation"
            else {**ARMS["+both"], **VARIANTS[spec["arm"]]}
        )
        if self.source is not None:
            study = {} if self.source.recipe else STUDY_BASE
            return TrainConfig(
                **{**self.source.base, **study, **over},
                T=spec["T"],
                seed=spec["seed"],
                epochs=self.epochs[spec["task"]],
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
    epochs={
        "digits": 2,
        "event-digits": 1,
        "seq1d": 1,
        "shapes3d": 1,
        "fashion-mnist": 1,
        "event-fashion": 1,
        "spoken-digits": 2,
    },
    seeds=(0, 1),
    variant_seeds=(0,),
)
# Sized for about 40-60 minutes with 2 workers on 2 cores (measured per-epoch costs at 1 thread,
# T=4: digits 0.1 s, event-digits 2.4 s, seq1d 0.6 s, shapes3d 3.9 s).
FULL = Plan(
    "full",
    epochs={
        "digits": 20,
        "event-digits": 15,
        "seq1d": 20,
        "shapes3d": 12,
        # --tasks only; sized in docs/tasks.md ("Reproduction sizing")
        "fashion-mnist": 6,
        "event-fashion": 3,
        "spoken-digits": 20,
    },
)


def source_plan(
    source: DataSource, *, quick: bool, seeds: int | None = None, epochs: int | None = None
) -> Plan:
    """The ablation on ``source``: 4 arms at ``source.T``; seeds of QUICK or FULL (``seeds``:
    0..seeds-1); epochs :data:`QUICK_DATA_EPOCHS` with ``quick``, else the recipe's (else
    :data:`FULL_DATA_EPOCHS`), ``epochs`` over both; no variants."""
    size = QUICK if quick else FULL
    recipe_epochs = int(source.base.get("epochs", FULL_DATA_EPOCHS))
    full_epochs = recipe_epochs if source.recipe else FULL_DATA_EPOCHS
    return Plan(
        f"{size.name}, {source.label}",
        epochs={source.label: epochs or (QUICK_DATA_EPOCHS if quick else full_epochs)},
        seeds=tuple(range(seeds)) if seeds else size.seeds,
        variant_seeds=(),
        Ts=(source.T,),
        batch_size=int(source.base.get("batch_size", size.batch_size)),
        tasks=(source.label,),
        source=source,
    )


def _eval_data(cfg: TrainConfig) -> TaskData | Inputs:
    """The labelled test split a trained model is analysed on: the offline task as before, the
    .npz file's test split, or a data set's whole test split un-augmented."""
    if cfg.task in list_tasks() and not cfg.data_root:
        return load_task(cfg.task, T=cfg.T, seed=cfg.data_seed)
    data = load_data(cfg)
    if isinstance(data, TaskData):
        return data
    return from_loaded(data, tuple(data.input_shape), what=f"data set {cfg.task}")


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
    if spec["T"] == plan.analysis_T:
        task = _eval_data(cfg)
        acc = accuracy_by_timesteps(
            res.model,
            task,  # type: ignore[arg-type]  # an Inputs reads as a TaskData's test split
            T=cfg.T,
            steps=range(1, cfg.T + 1),
        )
        rec["acc_by_t"] = [acc[t] for t in range(1, cfg.T + 1)]
        if spec["study"] == "ablation" and spec["seed"] == plan.seeds[0]:
            assert task.y_test is not None  # every source here has labels
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
    aT = plan.analysis_T
    src = plan.source
    where = "the offline tasks" if src is None else f"the user's data ({src.option})"
    setup = (
        f"per-task model and lr {TASK_BASE}"
        if src is None
        else f"{src.model_note}; variants and the T=2 column are not run on the user's data"
    )
    optim = "Adam with cosine schedule"
    if src is not None and src.recipe:
        optim = f"{src.base['optimizer']} with {src.base['schedule']} schedule (the recipe's)"
    L = [
        f"# Reproduction: MPS and adjacent-timestep guidance on {where} ({plan.name} size)",
        "",
        f"Date {time.strftime('%Y-%m-%d %H:%M')}; machine {platform.machine()}, {platform.system()}, "
        f"Python {platform.python_version()}, torch {torch.__version__}; wall time {wall_s / 60:.1f} min for "
        f"{len(records)} training runs. Seeds {list(plan.seeds)} (variants: {list(plan.variant_seeds)}); "
        f"epochs {plan.epochs}; batch {plan.batch_size}; {optim}; "
        f"{setup}. Accuracies are test accuracy in %, mean +- std over seeds.",
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
        f"## Variants (each changes one setting of +both, T={aT})",
        "",
        "| task | variant | accuracy | delta vs +both |",
        "|---|---|---|---|",
    ]
    variant_delta: dict[str, list[float]] = defaultdict(list)
    for task in tasks:
        ref = acc[(task, "ablation", "+both", aT)]
        L.append(
            f"| {task} | +both (reset reading, later teaches earlier, p_drop 0, alpha_init 0.5, lam 1) | "
            f"{_pct(ref)} | 0 |"
        )
        for var in VARIANTS:
            v = acc.get((task, "variant", var, aT))
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
        f"## Reduced-timestep inference (trained at T={aT}, run for the first t steps)",
        "",
        "| task | arm | " + " | ".join(f"t={t}" for t in range(1, aT + 1)) + " |",
        "|---|---|" + "---|" * aT,
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
        f"per LIF layer, seed {plan.seeds[0]}, T={aT}. "
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
        f"Seed {plan.seeds[0]}, T={aT}, trained models, {STATS_SAMPLES} test samples, "
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
    atomic_write_text(md, "\n".join(L) + "\n")  # whole or not at all
    atomic_write_text(
        out / "reproduction.json",
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
        ),
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
            DataSource(**p["source"]) if p.get("source") else None,
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
        if r["study"] == "ablation" and r["T"] == plan.analysis_T and r["seed"] == plan.seeds[0]
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
    atomic_write_text(json_path, json.dumps(data, indent=1))
    return write_report(records, plan, json_path.parent, wall_s)


def reproduce(
    *,
    quick: bool = False,
    tasks: Sequence[str] | None = None,
    out: str | Path = "runs/reproduce",
    workers: int = 1,
    progress: bool = True,
    source: DataSource | None = None,
    seeds: int | None = None,
    epochs: int | None = None,
) -> Path:
    """Run the plan (``QUICK`` or ``FULL``) on ``tasks`` (default: :data:`DEFAULT_TASKS`) or on
    the user's data ``source`` (:func:`source_plan`), and write the report. ``seeds`` (run seeds
    0..seeds-1) and ``epochs`` (per run) bound the work; left out, the plan's own."""
    for name, v in (("seeds", seeds), ("epochs", epochs)):
        if v is not None and v < 1:
            raise ValueError(f"--{name} must be >= 1, got {v}")
    if source is not None:
        if tasks:
            raise ValueError("--tasks: the offline tasks or the user's data, not both")
        plan = source_plan(source, quick=quick, seeds=seeds, epochs=epochs)
    else:
        plan = QUICK if quick else FULL
        if tasks:
            unknown = [t for t in tasks if t not in TASK_BASE]
            if unknown:
                raise ValueError(
                    f"tasks: unknown name(s) {unknown} (or no reproduction settings in "
                    f"TASK_BASE); available: {list(TASK_BASE)}"
                )
            plan = dataclasses.replace(plan, tasks=tuple(tasks))
        if seeds:
            kept = tuple(range(seeds))
            plan = dataclasses.replace(plan, seeds=kept, variant_seeds=plan.variant_seeds[:seeds])
        if epochs:
            plan = dataclasses.replace(plan, epochs={t: epochs for t in plan.epochs})
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    t0 = time.time()
    with RunLock(out, what="reproduce output folder"):  # one writer for the whole plan
        records = run_plan(plan, workers=workers, progress=progress)
        return write_report(records, plan, Path(out), time.time() - t0)
