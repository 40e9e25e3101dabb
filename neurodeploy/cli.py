"""The ``neurodeploy`` command line: a thin layer over the Python API."""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from neurodeploy.training.checkpoint import CheckpointError

BOOL = argparse.BooleanOptionalAction


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from neurodeploy.training.losses import DIRECTIONS, LOSS_KINDS
    from neurodeploy.neuron.surrogate import SURROGATES
    from neurodeploy.training.config import TrainConfig
    d = TrainConfig().to_dict()  # defaults from TrainConfig: the CLI and the API cannot disagree
    p.add_argument("--task", default=d["task"], help="offline task (see `neurodeploy tasks`)")
    p.add_argument("--model", default=None, help="zoo model; default: the task's own")
    p.add_argument("--T", type=int, default=d["T"], help="timesteps")
    p.add_argument("--mps", action=BOOL, default=d["mps"], help="membrane potential smoothing")
    p.add_argument("--mps-mode", choices=("reset", "charge"), default=d["mps_mode"])
    p.add_argument("--alpha-init", type=float, default=d["alpha_init"])
    p.add_argument("--tau", type=float, default=d["tau"], help="membrane time constant (> 1), timesteps")
    p.add_argument("--theta", type=float, default=d["theta"], help="threshold")
    p.add_argument("--reset", choices=("hard", "soft"), default=d["reset"])
    p.add_argument("--surrogate", choices=SURROGATES, default=d["surrogate"])
    p.add_argument("--detach-reset", action=BOOL, default=d["detach_reset"])
    p.add_argument("--loss", choices=LOSS_KINDS, default=d["loss"])
    p.add_argument("--guidance", action=BOOL, default=d["guidance"], help="adjacent-timestep guidance")
    p.add_argument("--lam", type=float, default=d["lam"], help="guidance weight")
    p.add_argument("--tau-kd", type=float, default=d["tau_kd"], help="distillation temperature")
    p.add_argument("--p-drop", type=float, default=d["p_drop"], help="probability of dropping a guidance term")
    p.add_argument("--direction", choices=DIRECTIONS, default=d["direction"])
    p.add_argument("--epochs", type=int, default=d["epochs"])
    p.add_argument("--batch-size", type=int, default=d["batch_size"])
    p.add_argument("--lr", type=float, default=d["lr"])
    p.add_argument("--weight-decay", type=float, default=d["weight_decay"])
    p.add_argument("--optimizer", choices=("adam", "sgd"), default=d["optimizer"])
    p.add_argument("--seed", type=int, default=d["seed"])
    p.add_argument("--data-seed", type=int, default=d["data_seed"])
    p.add_argument("--device", default=d["device"], help="auto (CUDA when present), cpu, cuda, cuda:1 ...")
    p.add_argument("--kernel", choices=("auto", "fused", "reference"), default=d["kernel"],
                   help="neuron kernel: fused (numba on CPU, Triton on CUDA) where it runs, or the reference path")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="neurodeploy", description=(
        "Spiking networks from training to Loihi-style execution. Run `neurodeploy demo` for the "
        "main job on the embedded offline task."))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a spiking model on an offline task")
    _add_train_args(p)
    p.add_argument("--out", "-o", required=True, help="run folder (checkpoint.pt, metrics.jsonl)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--config", default=None, metavar="TOML",
                   help="recipe (recipes/*.toml): TrainConfig fields; options typed here override it")
    p.add_argument("--data-root", default=None, metavar="DIR",
                   help="folder of a data set on disk for tasks cifar10-dvs, dvs-gesture, n-caltech101, n-mnist, "
                        "shd, cifar10, cifar100, modelnet10, modelnet40 (docs/real-data.md)")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (data sets on disk)")
    p.add_argument("--amp", choices=("off", "bf16", "fp16"), default="off", help="mixed precision (CUDA only)")

    p = sub.add_parser("demo", help="main job: MPS + guidance on event-digits, T=4, about 40 s on 2 CPU cores")
    p.add_argument("--out", "-o", default=None, help="folder for the runs (default runs/demo-<time>)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--no-deploy", action="store_true", help="stop after training (no NIR/quantise/Lava)")
    p.add_argument("--no-profile", action="store_true", help="skip the spike/energy profile at the end")
    p.add_argument("--compare", action=BOOL, default=True,
                   help="also train the vanilla-LIF, CE-only baseline the same way (default on)")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("reproduce", help="the paper's claims on the offline tasks: ablation, variants, "
                       "reduced-timestep inference, initial states, gradient flow")
    p.add_argument("--quick", action="store_true", help="small size for CI (minutes); default: full (~35 min on 2 cores with --workers 2)")
    p.add_argument("--tasks", nargs="+", default=None, help="subset of the offline tasks (default: all)")
    p.add_argument("--out", "-o", default="runs/reproduce", help="folder for reproduction.md/.json and figures/")
    p.add_argument("--workers", type=int, default=1, help="parallel training processes (1 torch thread each)")
    p.add_argument("--report-from", default=None, metavar="JSON",
                   help="only re-render the report and figures from a saved reproduction.json (no training)")
    p.add_argument("--refresh-analysis", default=None, metavar="JSON",
                   help="retrain the seed-0 T=4 runs of a saved reproduction.json, recompute initial states and "
                        "gradients with the current code (accuracies must reproduce exactly) and rewrite the report")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("export", help="export a trained checkpoint as a NIR graph")
    p.add_argument("checkpoint", help="checkpoint.pt written by `neurodeploy train`")
    p.add_argument("--out", "-o", required=True, help="output .nir file")
    p.add_argument("--dt", type=float, default=None, help="seconds per timestep in the NIR graph (default 1e-4)")

    p = sub.add_parser("inspect", help="summarise a NIR graph: nodes, shapes, parameter ranges, counts")
    p.add_argument("path", help=".nir file")

    p = sub.add_parser("quantize", help="quantise a NIR model for a hardware spec: integer program + accuracy report")
    p.add_argument("model", help=".nir file (written by `neurodeploy export`) or a checkpoint.pt")
    p.add_argument("--out", "-o", required=True, help="integer program file (.npz)")
    p.add_argument("--hardware", default="loihi2", help="hardware spec: loihi2 (default) or loihi1")
    p.add_argument("--task", default=None, help="task to measure on (default: the one recorded in the model)")
    p.add_argument("--T", type=int, default=None, help="timesteps (default: the model's)")
    p.add_argument("--percentile", type=float, default=None,
                   help="scale weights to this percentile of |w| instead of the max (outliers clipped, counted)")
    p.add_argument("--samples", type=int, default=None, help="test samples to compare on (default: all)")

    p = sub.add_parser("deploy", help="export -> quantise -> run on a target -> conformance summary")
    p.add_argument("model", help=".nir file or checkpoint.pt")
    p.add_argument("--target", default="lava", help="reference, lava, or netx (stock neurons only)")
    p.add_argument("--hardware", default="loihi2")
    p.add_argument("--task", default=None)
    p.add_argument("--T", type=int, default=None)
    p.add_argument("--samples", type=int, default=10, help="test samples run through Lava")
    p.add_argument("--out", "-o", required=True, help="output folder")

    p = sub.add_parser("verify", help="conformance: float torch vs reference simulator vs Lava fixed_pt, per layer")
    p.add_argument("model", help=".nir file or checkpoint.pt")
    p.add_argument("--hardware", default="loihi2")
    p.add_argument("--task", default=None)
    p.add_argument("--T", type=int, default=None)
    p.add_argument("--samples", type=int, default=10)
    p.add_argument("--no-lava", action="store_true", help="compare float and reference only")

    p = sub.add_parser("profile", help="spikes, synaptic operations and energy of a model on a target: "
                       "JSON + Markdown report + PNG plots")
    p.add_argument("model", help=".nir graph, checkpoint.pt or integer program .npz")
    p.add_argument("--target", default="torch", help="torch (float), reference (integer simulator) or lava")
    p.add_argument("--compare", default=None, metavar="MODEL",
                   help="a second model profiled side by side (e.g. vanilla vs MPS); default: the same model "
                        "when --compare-target is given (e.g. float vs integer)")
    p.add_argument("--compare-target", default=None, help="target for the second profile (default: --target)")
    p.add_argument("--view", choices=("hardware", "module"), default="hardware",
                   help="count per hardware stage (pooling folded into synapses; default) or per torch layer "
                        "(NeuroBench's view; torch target only)")
    p.add_argument("--task", default=None, help="task to run (default: the one recorded in the model)")
    p.add_argument("--T", type=int, default=None, help="timesteps (default: the model's)")
    p.add_argument("--samples", type=int, default=256, help="test samples (Lava: ~2 s each)")
    p.add_argument("--energy-model", action="append", default=None, metavar="NAME|FILE",
                   help="cmos45, loihi, or a .json/.toml model file; repeat for several (default: cmos45 and loihi)")
    p.add_argument("--hardware", default="loihi2", help="hardware spec for integer targets")
    p.add_argument("--latency", action="store_true",
                   help="reference target: run with Lava's one step per synapse (T + depth steps, = Lava's counts)")
    p.add_argument("--out", "-o", required=True, help="report folder")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("finetune", help="fine-tune a checkpoint through its integer program (quantisation-aware), "
                       "optionally down to stock LIF neurons; writes checkpoint, NIR and integer program")
    p.add_argument("checkpoint", help="checkpoint.pt written by `neurodeploy train`")
    p.add_argument("--hardware", default="loihi2", help="hardware spec: loihi2 (default) or loihi1")
    p.add_argument("--stock-neurons", action="store_true",
                   help="anneal the smoothing coefficient to 0 and finish as stock Loihi LIF (netx, snntorch)")
    p.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: FinetuneConfig's)")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: FinetuneConfig's)")
    p.add_argument("--out", "-o", required=True, help="output folder (checkpoint.pt, model.nir, model.int.npz)")
    p.add_argument("--no-progress", action="store_true")

    p = sub.add_parser("resources", help="mapping report: neurons, fan-in, synapses, memory and cores per layer")
    p.add_argument("model", help=".nir file, checkpoint.pt or integer program (.int.npz)")
    p.add_argument("--hardware", nargs="+", default=None, help="spec(s) to map to (default: loihi1 and loihi2)")

    sub.add_parser("tasks", help="list the offline tasks")
    return parser


def _cmd_train(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.loop import train
    fields = {k: getattr(a, k) for k in TrainConfig().to_dict() if k not in ("arch", "data") and hasattr(a, k)}
    if a.config:  # the recipe, overridden by the options typed on the command line
        from neurodeploy.training.recipe import explicit_options, load_recipe
        typed = explicit_options(build_parser(), "train", argv)
        cfg = load_recipe(a.config, {k: v for k, v in fields.items() if k in typed})
    else:
        cfg = TrainConfig(**fields)
    res = train(cfg, out_dir=a.out, resume=a.resume, progress=not a.no_progress)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, rank 0 reports
        return 0
    alphas = ", ".join(f"{n}={v:.3f}" for n, v in res.model.alphas().items())
    print(f"{res.config.task}/{res.config.model} T={res.config.T}: test acc {res.test_acc:.4f} "
          f"after {len(res.history)} epochs; alpha: {alphas or '-'}; run folder {a.out}")
    return 0


def _load_with_task(path: str, a: argparse.Namespace, programs: bool = False):
    """(model, task name, T) from a model file; --task and --T override what the file records,
    T defaults to 4, and a task must be known one way or the other."""
    from neurodeploy.converters.model_files import load_model_file
    model, task_name, T = load_model_file(path, programs=programs)
    task_name, T = a.task or task_name, a.T or T or 4
    if task_name is None:
        raise ValueError(f"{path}: no task recorded in the model; pass --task")
    return model, task_name, T


def _cmd_quantize(a: argparse.Namespace) -> int:
    from neurodeploy.data import load_task
    from neurodeploy.neuron.hardware import get_spec
    from neurodeploy.measure.qreport import compare, quantize_for_task
    model, task_name, T = _load_with_task(a.model, a)
    task = load_task(task_name, T=T)
    if tuple(task.input_shape) != tuple(model.input_shape):
        raise ValueError(f"task {task_name!r} gives input {task.input_shape}, the model expects {model.input_shape}")
    prog = quantize_for_task(model, task, get_spec(a.hardware), a.percentile)
    prog.meta.update(task=task_name, T=T)
    prog.save(a.out)
    print(f"integer program for {a.hardware}: {a.out} ({len(prog.layers)} layers, input {prog.input_kind}, "
          f"input scale {prog.input_scale:g})")
    for l in prog.layers:
        print(f"  {l.name:<10} {l.kind:<7} weight_exp {l.weight_exp:>3}  vth {l.vth:>6}  dv {l.dv:>4}  "
              f"coef {l.coef:>4}  bias_exp {l.bias_exp}  v_scale {l.v_scale:.4g}")
    print(compare(model, prog, task, T, a.samples).format())
    return 0


def _cmd_profile(a: argparse.Namespace) -> int:
    from pathlib import Path

    from neurodeploy.data import load_task
    from neurodeploy.measure.energy import DEFAULT_ENERGY_MODELS, get_energy_model
    from neurodeploy.measure.report import summary_rows, fmt, write_report
    from neurodeploy.measure.profiling import profile
    energy = [get_energy_model(m) for m in (a.energy_model or DEFAULT_ENERGY_MODELS)]  # fail early
    runs = [(a.model, a.target)]
    if a.compare or a.compare_target:
        runs.append((a.compare or a.model, a.compare_target or a.target))
    loaded = {path: _load_with_task(path, a, programs=True) for path, _ in runs}   # each file read once
    profiles = []
    for path, target in runs:
        subject, task_name, T = loaded[path]
        label = f"{Path(path).stem} ({target})"
        profiles.append(profile(subject, load_task(task_name, T=T), T, target, view=a.view, samples=a.samples,
                                energy_models=energy, hardware=a.hardware, label=label,
                                latency=a.latency and target == "reference", progress=not a.no_progress))
    paths = write_report(profiles, a.out)
    for p in profiles:
        print(f"{p.label}: " + ", ".join(f"{k} {fmt(v)}" for k, v in summary_rows(p)
                                          if k.startswith(("accuracy", "spikes", "ACs", "MACs", "energy", "SNN"))))
    print(f"report: {paths.markdown} (+ {paths.json.name}, {', '.join(p.name for p in paths.plots.values())})")
    return 0


def _cmd_tasks(_: argparse.Namespace) -> int:
    from neurodeploy.data import list_tasks, load_task
    for name in list_tasks():
        t = load_task(name)
        print(f"{name:<13} input {t.input_shape} {'temporal' if t.temporal else 'static'}  "
              f"{t.num_classes} classes  train {len(t.y_train)} / test {len(t.y_test)}  "
              f"(stands in for {t.stands_in_for}): {t.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads is not None:
        import torch
        torch.set_num_threads(args.threads)
    try:
        if args.command == "train":
            return _cmd_train(args, argv)
        if args.command == "demo":
            from neurodeploy.demo import run_demo
            out = args.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
            run_demo(out, epochs=args.epochs, compare=args.compare, progress=not args.no_progress,
                     deploy_chain=not args.no_deploy, profile_models=not args.no_profile)
            return 0
        if args.command == "reproduce":
            from neurodeploy.measure.reproduce import refresh_analysis, reproduce, rewrite_report
            if args.refresh_analysis:
                print(f"report: {refresh_analysis(args.refresh_analysis, args.workers, not args.no_progress)}")
                return 0
            if args.report_from:
                print(f"report: {rewrite_report(args.report_from, args.out if args.out != 'runs/reproduce' else None)}")
                return 0
            md = reproduce(quick=args.quick, tasks=args.tasks, out=args.out, workers=args.workers,
                           progress=not args.no_progress)
            print(f"report: {md}")
            return 0
        if args.command == "export":
            from neurodeploy.converters.nir_common import DEFAULT_DT
            from neurodeploy.converters.nir_export import export_nir
            from neurodeploy.converters.nir_inspect import format_summary
            from neurodeploy.training.checkpoint import load_model
            model, cfg = load_model(args.checkpoint)
            graph = export_nir(model, args.out, dt=args.dt or DEFAULT_DT,
                               extra_metadata={"task": cfg.task, "T": cfg.T})
            print(format_summary(graph, args.out))
            return 0
        if args.command == "inspect":
            from neurodeploy.converters.nir_import import read_nir
            from neurodeploy.converters.nir_inspect import format_summary
            print(format_summary(read_nir(args.path), args.path))
            return 0
        if args.command == "quantize":
            return _cmd_quantize(args)
        if args.command == "deploy":
            from neurodeploy.deploy import deploy
            model, task_name, T = _load_with_task(args.model, args)
            print(deploy(model, task_name, T, args.out, args.hardware, args.target, args.samples))
            return 0
        if args.command == "verify":
            from neurodeploy.data import load_task
            from neurodeploy.neuron.hardware import get_spec
            from neurodeploy.measure.qreport import quantize_for_task
            from neurodeploy.measure.verify import verify
            model, task_name, T = _load_with_task(args.model, args)
            task = load_task(task_name, T=T)
            prog = quantize_for_task(model, task, get_spec(args.hardware))
            print(verify(model, prog, task, T, args.samples, lava=not args.no_lava).format())
            return 0
        if args.command == "profile":
            return _cmd_profile(args)
        if args.command == "finetune":
            from neurodeploy.finetune import FinetuneConfig, finetune
            over = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr)) if v is not None}
            cfg = FinetuneConfig(hardware=args.hardware, stock_neurons=args.stock_neurons, **over)
            print(finetune(args.checkpoint, out_dir=args.out, config=cfg, progress=not args.no_progress).format())
            return 0
        if args.command == "resources":
            from neurodeploy.measure.resources import report_for_path
            text, fits = report_for_path(args.model, args.hardware)
            print(text)
            return 0 if fits else 2
        if args.command == "tasks":
            return _cmd_tasks(args)
    except (ValueError, FileExistsError, CheckpointError, FileNotFoundError) as e:
        print(f"neurodeploy {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 1
