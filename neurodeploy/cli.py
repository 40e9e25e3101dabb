"""The ``neurodeploy`` command line: a thin layer over the Python API.

Every command is one row of :data:`COMMANDS` (name -> :class:`Command`: help, parent parsers,
own options, handler); :func:`build_parser` builds the sub-commands from it and :func:`main`
dispatches through it. The options several commands share (``--hardware``, ``--dt``, the input
family ``--task``/``--data``/``--random-input``/``--T``/``--input-kind``, ``--samples``,
``--out``) are defined once each, in the ``_*_options`` parent-parser factories below, so their
spelling and help read the same in every command. A factory returns a fresh
parser per call: argparse copies a parent's actions by reference, and commands differ in
defaults (``--samples`` is 10 for ``verify``, 256 for ``profile``).
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

BOOL = argparse.BooleanOptionalAction
DEFAULT_HARDWARE = "loihi2"
#: timesteps when neither --T nor the model file says
DEFAULT_T = 4
REPRODUCE_OUT = "runs/reproduce"
#: exit status of a refused command (argparse's own for a bad option) and of Ctrl-C (128 + SIGINT)
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
#: ``NEURODEPLOY_DEBUG=1`` (anything but empty or 0): tracebacks, as ``--debug``
DEBUG_ENV = "NEURODEPLOY_DEBUG"
Handler = Callable[[argparse.Namespace, Sequence[str] | None], int]


# ---------------------------------------------------------------------------------------------
# option types: every numeric option checked where it is parsed (argparse names the option)
# ---------------------------------------------------------------------------------------------
def _count(minimum: int = 1) -> Callable[[str], int]:
    """An integer >= ``minimum`` (counts: samples, epochs, T, batch size, threads, ...)."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be an integer >= {minimum}, got {text!r}"
            ) from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {v}")
        return v

    return parse


def _real(text: str) -> float:
    """A finite float (NaN and inf refused)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return v


def _positive(text: str) -> float:
    """A finite float > 0 (dt in seconds, learning rates, temperatures)."""
    v = _real(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return v


def _non_negative(text: str) -> float:
    """A finite float >= 0 (weight decay, loss weights)."""
    v = _real(text)
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return v


def _rate(text: str) -> float:
    """A probability in [0, 1] (``--random-input``; train's ``--p-drop`` is TrainConfig's)."""
    v = _real(text)
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"must be a rate in [0, 1], got {text!r}")
    return v


def _percentile(text: str) -> float:
    """A percentile in (0, 100]."""
    v = _real(text)
    if not 0 < v <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentile in (0, 100], got {text!r}")
    return v


def _device(text: str) -> str:
    """A torch device that exists here: auto, cpu, cuda, cuda:N (N < the GPUs visible), mps."""
    if text in ("auto", "cpu"):
        return text
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(
            f"unknown device {text!r}; use auto, cpu, cuda, cuda:N or mps"
        ) from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise argparse.ArgumentTypeError(
                f"{text!r}: no CUDA GPU is visible to torch here (torch.cuda.is_available() is "
                "False); use --device cpu, or auto (CUDA when present)"
            )
        if dev.index is not None and dev.index >= n:
            raise argparse.ArgumentTypeError(
                f"{text!r}: {n} CUDA GPU(s) visible here (cuda:0 .. cuda:{n - 1})"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no Apple MPS device here; use cpu or auto")
    elif dev.type not in ("cuda", "mps", "cpu"):
        raise argparse.ArgumentTypeError(
            f"{text!r}: device type {dev.type!r} is not supported; use auto, cpu, cuda[:N], mps"
        )
    return text


POSITIVE = _count(1)
NON_NEGATIVE = _count(0)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``neurodeploy <cmd>: error: argument --X: ...`` and a
    pointer to ``--help`` (instead of the usage block), exit 2."""

    def error(self, message: str) -> Any:  # argparse's signature: NoReturn
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


# ---------------------------------------------------------------------------------------------
# shared options: one definition each (parent parsers)
# ---------------------------------------------------------------------------------------------
def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def _hardware_options(*, many: bool = False) -> argparse.ArgumentParser:
    """``--hardware``: a spec name of :data:`neurodeploy.neuron.hardware.SPECS` (``many``: one
    or more, for reports over several specs; default then: each of loihi1 and loihi2)."""
    from neurodeploy.neuron.hardware import SPECS

    p = _parent()
    names = ", ".join(SPECS)
    if many:
        p.add_argument(
            "--hardware",
            nargs="+",
            default=None,
            metavar="SPEC",
            help=f"hardware spec(s): {names} (default: loihi1 and loihi2)",
        )
    else:
        p.add_argument(
            "--hardware",
            default=DEFAULT_HARDWARE,
            metavar="SPEC",
            help=f"hardware spec: {names} (default: %(default)s)",
        )
    return p


def _task_options(*, task: str | None = None, T: int | None = None) -> argparse.ArgumentParser:
    """``--task`` and ``--T``. Defaults ``None``: what the model file records (T else 4)."""
    p = _parent()
    p.add_argument(
        "--task",
        default=task,
        help="task (see `neurodeploy tasks`); default: "
        + ("%(default)s" if task is not None else "the one recorded in the model"),
    )
    p.add_argument(
        "--T",
        type=POSITIVE,
        default=T,
        help="timesteps; default: "
        + ("%(default)s" if T is not None else f"the model's, else {DEFAULT_T}"),
    )
    return p


def _input_options() -> argparse.ArgumentParser:
    """Where the input comes from (one of --task, --data, --dataset, --config, --random-input;
    default: the task the model file records), with --T, --seed and --input-kind
    (:mod:`neurodeploy.data.inputs`)."""
    from neurodeploy.data.inputs import INPUT_KINDS

    p = _task_options()
    p.add_argument(
        "--data",
        default=None,
        metavar="FILE.npz",
        help="your own inputs: a .npz with array x of shape (N, T, *input) (T frames) or "
        "(N, *input) (static, repeated over --T steps) and optional integer labels y (N,); "
        "without y, accuracy is n/a",
    )
    p.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="a data set on disk that `train` reads (with --data-root; docs/real-data.md): "
        "its test split and labels",
    )
    p.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="folder of --dataset NAME on disk (with --config: overrides the recipe's data_root)",
    )
    p.add_argument(
        "--config",
        default=None,
        metavar="TOML",
        help="a training recipe (recipes/*.toml): the data it names, read as `train --config` "
        "reads it (task, [data] options, data_root or --data-root), its test split and labels; "
        "T from the recipe unless --T",
    )
    p.add_argument(
        "--random-input",
        type=_rate,
        default=None,
        metavar="RATE",
        help="no data: Bernoulli spikes with probability RATE per input and step (--T steps, "
        "--samples samples, --seed); no labels, calibration from the weights alone. A netx "
        "network with an input layer gets graded pixels x = weight (2 s - 1) + bias from those "
        "spikes s and its file's input transform",
    )
    p.add_argument(
        "--seed", type=NON_NEGATIVE, default=0, help="seed of --random-input (default: %(default)s)"
    )
    p.add_argument(
        "--input-kind",
        choices=INPUT_KINDS,
        default=None,
        help="binary spikes or graded payloads; default: inferred from the data (0/1 frames: "
        "binary), binary without data",
    )
    return p


def _samples_options(default: int | None) -> argparse.ArgumentParser:
    """``--samples``: how many test samples to run (``None``: the whole test set)."""
    p = _parent()
    p.add_argument(
        "--samples",
        type=POSITIVE,
        default=default,
        metavar="N",
        help="test samples to run; default: " + ("%(default)s" if default is not None else "all"),
    )
    return p


def _out_options(
    what: str, *, required: bool = True, default: str | None = None
) -> argparse.ArgumentParser:
    """``--out``/``-o``: where the command writes ``what`` (with ``required=False``, ``what``
    says what happens without it)."""
    p = _parent()
    if required:
        p.add_argument("--out", "-o", required=True, help=f"output: {what}")
    else:
        p.add_argument("--out", "-o", default=default, help=f"output: {what}")
    return p


def _dt_options(*, reset_used: bool = True) -> argparse.ArgumentParser:
    """``--dt``: seconds per timestep to read a NIR graph with (NIR's tau are in seconds),
    overriding the graph's ``metadata["dt"]``; other model files ignore it. ``--reset``: the
    reset timing to read it with; ``reset_used=False`` (a command whose result does not depend
    on it, e.g. resources: neurons and synapses are the same) accepts it and says it is ignored."""
    from neurodeploy.converters.nir_common import DEFAULT_DT, PRODUCER_NOTES

    p = _parent()
    p.add_argument(
        "--dt",
        type=_positive,
        default=None,
        metavar="SECONDS",
        help="seconds per timestep of a NIR graph; default: the graph's recorded dt, else "
        f"{DEFAULT_DT:g} with a warning ({PRODUCER_NOTES})",
    )
    p.add_argument(
        "--reset",
        choices=("nir", "snntorch"),
        default="nir",
        help=(
            "reset timing to read a NIR graph with: 'nir' (default; v to 0 at the spiking step, "
            "NIR's LIF) or 'snntorch' (snnTorch's default delayed zero reset, reset_delay=True, "
            "as its Synaptic/RLeaky/RSynaptic train: the step after a spike is refractory; use it "
            "for graphs exported by snnTorch, e.g. the NIR paper's Braille SRNN)"
            if reset_used
            else "accepted for a uniform command line and ignored: neurons, synapses, memory "
            "and cores do not depend on the reset timing"
        ),
    )
    return p


def _progress_options() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


# ---------------------------------------------------------------------------------------------
# each command's own options
# ---------------------------------------------------------------------------------------------
def _add_train_args(p: argparse.ArgumentParser) -> None:
    """TrainConfig's fields as options (--task/--T come from :func:`_train_task_options`)."""
    from neurodeploy.neuron.surrogate import SURROGATES
    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.losses import DIRECTIONS, LOSS_KINDS

    d = TrainConfig().to_dict()  # defaults from TrainConfig: the CLI and the API cannot disagree
    p.add_argument("--model", default=None, help="zoo model; default: the task's own")
    p.add_argument("--mps", action=BOOL, default=d["mps"], help="membrane potential smoothing")
    p.add_argument("--mps-mode", choices=("reset", "charge"), default=d["mps_mode"])
    p.add_argument("--alpha-init", type=_real, default=d["alpha_init"])
    p.add_argument(
        "--tau", type=_positive, default=d["tau"], help="membrane time constant (> 1), timesteps"
    )
    p.add_argument("--theta", type=_positive, default=d["theta"], help="threshold")
    p.add_argument("--reset", choices=("hard", "soft"), default=d["reset"])
    p.add_argument("--surrogate", choices=SURROGATES, default=d["surrogate"])
    p.add_argument("--detach-reset", action=BOOL, default=d["detach_reset"])
    p.add_argument("--loss", choices=LOSS_KINDS, default=d["loss"])
    p.add_argument(
        "--guidance", action=BOOL, default=d["guidance"], help="adjacent-timestep guidance"
    )
    p.add_argument("--lam", type=_non_negative, default=d["lam"], help="guidance weight")
    p.add_argument("--tau-kd", type=_positive, default=d["tau_kd"], help="distillation temperature")
    p.add_argument(
        "--p-drop", type=float, default=d["p_drop"], help="probability of dropping a guidance term"
    )
    p.add_argument("--direction", choices=DIRECTIONS, default=d["direction"])
    p.add_argument("--epochs", type=POSITIVE, default=d["epochs"])
    p.add_argument("--batch-size", type=POSITIVE, default=d["batch_size"])
    p.add_argument("--lr", type=_positive, default=d["lr"])
    p.add_argument("--weight-decay", type=_non_negative, default=d["weight_decay"])
    p.add_argument("--optimizer", choices=("adam", "sgd"), default=d["optimizer"])
    p.add_argument("--seed", type=NON_NEGATIVE, default=d["seed"])
    p.add_argument("--data-seed", type=NON_NEGATIVE, default=d["data_seed"])
    p.add_argument(
        "--device",
        type=_device,
        default=d["device"],
        help="auto (CUDA when present), cpu, cuda, cuda:1 ...",
    )
    p.add_argument(
        "--kernel",
        choices=("auto", "fused", "reference"),
        default=d["kernel"],
        help="neuron kernel: fused (numba on CPU, Triton on CUDA) where it runs, "
        "or the reference path",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--config",
        default=None,
        metavar="TOML",
        help="recipe (recipes/*.toml): TrainConfig fields; options typed here " "override it",
    )
    p.add_argument(
        "--data-root",
        default=None,
        metavar="DIR",
        help="folder of a data set on disk for tasks cifar10-dvs, dvs-gesture, "
        "n-caltech101, n-mnist, shd, cifar10, cifar100, modelnet10, modelnet40 "
        "(docs/real-data.md)",
    )
    p.add_argument(
        "--workers",
        type=NON_NEGATIVE,
        default=0,
        help="DataLoader worker processes (data sets on disk)",
    )
    p.add_argument(
        "--amp", choices=("off", "bf16", "fp16"), default="off", help="mixed precision (CUDA only)"
    )


def _add_demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=POSITIVE, default=None)
    p.add_argument(
        "--no-deploy", action="store_true", help="stop after training (no NIR/quantise/Lava)"
    )
    p.add_argument(
        "--no-profile", action="store_true", help="skip the spike/energy profile at the end"
    )
    p.add_argument(
        "--compare",
        action=BOOL,
        default=True,
        help="also train the vanilla-LIF, CE-only baseline the same way (default on)",
    )


def _add_reproduce_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--quick",
        action="store_true",
        help="small size for CI (minutes); default: full (~35 min on 2 cores with " "--workers 2)",
    )
    p.add_argument(
        "--tasks",
        nargs="+",
        default=None,
        help="offline tasks (default: digits event-digits seq1d shapes3d; name fashion-mnist, "
        "event-fashion, ... to run them)",
    )
    p.add_argument(
        "--workers",
        type=POSITIVE,
        default=1,
        help="parallel training processes (1 torch thread each)",
    )
    p.add_argument(
        "--report-from",
        default=None,
        metavar="JSON",
        help="only re-render the report and figures from a saved reproduction.json "
        "(no training)",
    )
    for opt, metavar, what in (
        ("--data", "FILE.npz", "the ablation on labelled arrays x, y (the zoo's default model)"),
        ("--dataset", "NAME", "the ablation on a data set on disk (with --data-root)"),
        ("--data-root", "DIR", "folder of --dataset, or over a --config recipe's"),
        ("--config", "TOML", "the ablation on a recipe's data set, model and T"),
        ("--random-input", "RATE", "refused by name: the ablation needs labels"),
    ):
        p.add_argument(opt, default=None, metavar=metavar, help=what)
    p.add_argument(
        "--seeds",
        type=POSITIVE,
        default=None,
        metavar="N",
        help="run seeds 0..N-1 (default: the plan's)",
    )
    p.add_argument(
        "--epochs",
        type=POSITIVE,
        default=None,
        metavar="N",
        help="epochs per run (default: the plan's)",
    )
    p.add_argument(
        "--refresh-analysis",
        default=None,
        metavar="JSON",
        help="retrain the seed-0 T=4 runs of a saved reproduction.json, recompute "
        "initial states and gradients with the current code (accuracies must "
        "reproduce exactly) and rewrite the report",
    )


def _add_export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        metavar="model",
        help="checkpoint.pt written by `neurodeploy train`, or a lava-dl netx network (.net): "
        "its CUBA neurons as NIR CubaLIF, the float reading of its integers",
    )
    p.add_argument(
        "--dt",
        type=_positive,
        default=None,
        help="seconds per timestep in the NIR graph (default 1e-4)",
    )


def _add_inspect_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help=".nir file, or a lava-dl netx .net (summarised as its NIR graph)")


#: the model argument of verify / deploy
NETX_MODELS = (
    ".nir file, checkpoint.pt, or a lava-dl netx .net (run as its integers, no quantisation)"
)


def _add_model_arg(p: argparse.ArgumentParser, what: str = ".nir file or checkpoint.pt") -> None:
    p.add_argument("model", help=what)


def _add_quantize_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p, ".nir file (written by `neurodeploy export`) or a checkpoint.pt")
    p.add_argument(
        "--percentile",
        type=_percentile,
        default=None,
        help="scale weights to this percentile of |w| instead of the max (outliers "
        "clipped, counted)",
    )
    _add_overflow_arg(p)


def _add_overflow_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-overflow",
        action="store_true",
        help="accept saturation/wrap of the 24-bit state on the inputs (counts reported); "
        "default: lower the offending layer's weight exponent until none, else refuse naming "
        "the layer and the count",
    )
    p.add_argument(
        "--weight-split",
        type=POSITIVE,
        default=1,
        metavar="K",
        help="write each synapse as K 8-bit parts at weight exponents 7 apart (about 7 more "
        "bits of weight precision per part, bounded by the exponent range [-8, 7], e >= 0 for "
        "convolutions); costs K times the synapses, synaptic memory and synaptic operations "
        "(default 1: no split)",
    )


def _target_help() -> str:
    from neurodeploy.targets import TARGET_NAMES

    return f"target: {', '.join(TARGET_NAMES)} (netx: stock neurons only)"


def _profile_target_help() -> str:
    from neurodeploy.targets import target_names

    ints = ", ".join(target_names(readout=True, states=True))
    return f"torch (the float model) or an integer target: {ints}; default: %(default)s"


def _add_deploy_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p, NETX_MODELS)
    p.add_argument("--target", default="lava", help=_target_help() + "; default: %(default)s")
    _add_overflow_arg(p)


def _add_verify_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p, NETX_MODELS)
    p.add_argument("--no-lava", action="store_true", help="compare float and reference only")
    _add_overflow_arg(p)


def _add_profile_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p, ".nir graph, checkpoint.pt, integer program .npz or lava-dl netx .net")
    p.add_argument("--target", default="torch", help=_profile_target_help())
    p.add_argument(
        "--compare",
        default=None,
        metavar="MODEL",
        help="a second model profiled side by side (e.g. vanilla vs MPS); default: the "
        "same model when --compare-target is given (e.g. float vs integer)",
    )
    p.add_argument(
        "--compare-target", default=None, help="target for the second profile (default: --target)"
    )
    p.add_argument(
        "--view",
        choices=("hardware", "module"),
        default="hardware",
        help="count per hardware stage (pooling folded into synapses; default) or per "
        "torch layer (NeuroBench's view; torch target only)",
    )
    p.add_argument(
        "--energy-model",
        action="append",
        default=None,
        metavar="NAME|FILE",
        help="cmos45, loihi, or a .json/.toml model file; repeat for several "
        "(default: cmos45 and loihi)",
    )
    p.add_argument(
        "--latency",
        action="store_true",
        help="reference target: run with Lava's one step per synapse (T + depth "
        "steps, = Lava's counts)",
    )
    _add_overflow_arg(p)


def _add_finetune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "checkpoint",
        metavar="model",
        help="checkpoint.pt written by `neurodeploy train`, or any .nir graph with labelled "
        "data (--task, --data FILE.npz with y, --dataset + --data-root, --config)",
    )
    p.add_argument(
        "--stock-neurons",
        action="store_true",
        help="anneal the smoothing coefficient to 0 and finish as stock Loihi LIF "
        "(netx, snntorch)",
    )
    p.add_argument(
        "--epochs",
        type=POSITIVE,
        default=None,
        help="fine-tuning epochs (default: FinetuneConfig's)",
    )
    p.add_argument(
        "--lr", type=_positive, default=None, help="learning rate (default: FinetuneConfig's)"
    )
    _add_overflow_arg(p)


def _add_resources_args(p: argparse.ArgumentParser) -> None:
    _add_model_arg(p, ".nir file, checkpoint.pt, integer program (.int.npz) or lava-dl netx .net")


def _no_args(_: argparse.ArgumentParser) -> None:
    """A command without options of its own."""


# ---------------------------------------------------------------------------------------------
# handlers: (parsed arguments, the argv they came from) -> exit status
# ---------------------------------------------------------------------------------------------
def _cmd_train(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.loop import train

    fields = {
        k: getattr(a, k)
        for k in TrainConfig().to_dict()
        if k not in ("arch", "data") and hasattr(a, k)
    }
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
    print(
        f"{res.config.task}/{res.config.model} T={res.config.T}: test acc {res.test_acc:.4f} "
        f"after {len(res.history)} epochs; alpha: {alphas or '-'}; run folder {a.out}"
    )
    return 0


def _cmd_demo(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.demo import run_demo

    out = a.out or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}"
    run_demo(
        out,
        epochs=a.epochs,
        compare=a.compare,
        progress=not a.no_progress,
        deploy_chain=not a.no_deploy,
        profile_models=not a.no_profile,
    )
    return 0


def _cmd_reproduce(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.measure.reproduce import (
        check_sources,
        data_source,
        refresh_analysis,
        reproduce,
        rewrite_report,
    )

    given = ("--data", "--dataset", "--config", "--random-input", "--data-root")
    check_sources([o for o in given if getattr(a, o[2:].replace("-", "_")) is not None])
    source = None
    if a.data or a.dataset or a.config or a.data_root:
        source = data_source(config=a.config, dataset=a.dataset, data_root=a.data_root, data=a.data)

    if a.refresh_analysis:
        md = refresh_analysis(a.refresh_analysis, workers=a.workers, progress=not a.no_progress)
        print(f"report: {md}")
        return 0
    if a.report_from:
        out = a.out if a.out != REPRODUCE_OUT else None
        print(f"report: {rewrite_report(a.report_from, out)}")
        return 0
    md = reproduce(
        quick=a.quick,
        tasks=a.tasks,
        out=a.out,
        workers=a.workers,
        progress=not a.no_progress,
        source=source,
        seeds=a.seeds,
        epochs=a.epochs,
    )
    print(f"report: {md}")
    return 0


def _refuse_output_over_inputs(a: argparse.Namespace, outputs: Sequence[Any]) -> None:
    """Refuse, before any work, an output file that is one of the command's input files
    (``export ck.pt -o ck.pt``; ``deploy out/model.nir -o out``), naming the option."""
    from neurodeploy.files import check_not_input

    inputs = [getattr(a, k, None) for k in ("checkpoint", "model", "data", "config")]
    for out in outputs:
        check_not_input(out, [i for i in inputs if isinstance(i, str)], option="--out/-o")


def _cmd_export(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.converters.nir_common import DEFAULT_DT
    from neurodeploy.converters.nir_export import export_nir
    from neurodeploy.converters.nir_inspect import format_summary
    from neurodeploy.training.checkpoint import load_model

    _refuse_output_over_inputs(a, [a.out])
    from neurodeploy.converters.model_files import is_netx_path

    if is_netx_path(a.checkpoint):
        from neurodeploy.converters.netx_nir import export_netx_nir

        print(format_summary(export_netx_nir(a.checkpoint, a.out, dt=a.dt or DEFAULT_DT), a.out))
        return 0
    model, cfg = load_model(a.checkpoint)
    graph = export_nir(
        model, a.out, dt=a.dt or DEFAULT_DT, extra_metadata={"task": cfg.task, "T": cfg.T}
    )
    print(format_summary(graph, a.out))
    return 0


def _cmd_inspect(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.converters.model_files import is_netx_path
    from neurodeploy.converters.nir_import import read_nir
    from neurodeploy.converters.nir_inspect import format_summary

    if is_netx_path(a.path):
        import warnings

        from neurodeploy.converters.netx_nir import netx_to_nir
        from neurodeploy.converters.nir_common import DEFAULT_DT, NIRDtWarning

        graph = netx_to_nir(a.path, dt=a.dt or DEFAULT_DT)
        binary = graph.metadata.get("input_kind") != "graded"  # random 0/1 spikes fit binary input
        with warnings.catch_warnings():  # dv = 0 is written as a leak below the chip's decay
            warnings.simplefilter("ignore", NIRDtWarning)
            print(format_summary(graph, a.path, dt=a.dt, activity=binary, reset=a.reset))
        if not binary:
            print(
                "spike rates: not estimated here (graded input); run `neurodeploy profile "
                f"{a.path} --target reference --random-input RATE` (the file's input transform)"
            )
        return 0
    print(format_summary(read_nir(a.path), a.path, dt=a.dt, activity=True, reset=a.reset))
    return 0


def _warn_if_silent(model: Any, path: str, a: argparse.Namespace) -> None:
    """A float model with a layer that never spikes on random input: a warning on stderr naming
    the layers and, for a NIR graph, the dt that would make them spike (never an error)."""
    from neurodeploy.converters.nir_inspect import warn_if_silent
    from neurodeploy.nn.net import SpikingNet

    if isinstance(model, SpikingNet):
        report = warn_if_silent(
            model, path, dt=getattr(a, "dt", None), reset=getattr(a, "reset", "nir")
        )
        if report.silent:
            print(f"neurodeploy {a.command}: warning: {report.warning()}", file=sys.stderr)


def _check_sources(a: argparse.Namespace) -> None:
    from neurodeploy.data.inputs import check_sources

    check_sources(
        task=a.task,
        data=a.data,
        dataset=a.dataset,
        data_root=a.data_root,
        config=a.config,
        random_rate=a.random_input,
    )


def _recipe_data(a: argparse.Namespace) -> Any:
    """The data that ``--config`` names, loaded as ``train --config`` loads it
    (:func:`neurodeploy.training.recipe.load_recipe`, :func:`neurodeploy.training.loop.load_data`),
    with --T and --data-root typed here over the recipe's; ``None`` without --config. Loaded once
    per command (kept on ``a``)."""
    if not a.config:
        return None
    if getattr(a, "_recipe_data", None) is None:
        from neurodeploy.training.loop import load_data
        from neurodeploy.training.recipe import load_recipe

        _check_sources(a)
        over = {k: v for k, v in (("T", a.T), ("data_root", a.data_root)) if v is not None}
        a._recipe_data = load_data(load_recipe(a.config, over))
    return a._recipe_data


def _load_with_inputs(
    path: str, a: argparse.Namespace, *, programs: bool = False, required: bool = True
) -> tuple[Any, Any, int]:
    """(model, :class:`~neurodeploy.data.inputs.Inputs` or None, T) from a model file and the
    input options (--task, --data, --dataset, --config, --random-input; else the task the file
    records). With
    ``required``, no input at all is an error naming the options."""
    from neurodeploy.converters.model_files import load_model_file
    from neurodeploy.data.inputs import resolve_inputs

    _check_sources(a)
    model, task_name, T = load_model_file(
        path, programs=programs, dt=getattr(a, "dt", None), reset=getattr(a, "reset", "nir")
    )
    _warn_if_silent(model, path, a)
    inputs = resolve_inputs(
        tuple(model.input_shape),
        task=a.task,
        data=a.data,
        random_rate=a.random_input,
        dataset=a.dataset,
        data_root=a.data_root,
        config=a.config,
        config_data=_recipe_data(a),
        T=a.T,
        seed=a.seed,
        samples=a.samples,
        input_kind=a.input_kind,
        recorded_task=task_name,
        recorded_T=T,
        default_T=DEFAULT_T,
    )
    if inputs is None and required:
        raise ValueError(
            f"{path}: no inputs: the model records no task; pass --data FILE.npz, "
            "--dataset NAME --data-root DIR, --config recipe.toml, --random-input RATE --T T, "
            "or --task NAME"
        )
    if inputs is not None and a.random_input is not None:
        inputs = _netx_random_pixels(model, inputs)
    return model, inputs, inputs.T if inputs is not None else a.T or T or DEFAULT_T


def _netx_random_pixels(model: Any, inputs: Any) -> Any:
    """--random-input for a netx network with graded input (its ``input`` layer): the Bernoulli
    spikes s are read as pixels p in {0, 1} and sent as lava-dl's PilotNet tutorial sends frames,
    x = weight (2 p - 1) + bias with the file's input transform (off pixels below the input
    neurons' threshold, on pixels above it), so RATE sets the input layer's activity; any other
    input is returned as it is."""
    import dataclasses

    import torch

    from neurodeploy.converters.netx_import import netx_pixels
    from neurodeploy.data.inputs import InputSettings
    from neurodeploy.quant.program import IntProgram

    tr = model.meta.get("netx_input_transform") if isinstance(model, IntProgram) else None
    if tr is None or model.input_kind != "graded":
        return inputs
    w, b = int(tr["weight"]), int(tr["bias"])
    x = torch.from_numpy(netx_pixels(inputs.x.numpy(), tr)).to(inputs.x.dtype)
    top = float(x.abs().max()) if x.numel() else 1.0
    return dataclasses.replace(
        inputs,
        x=x,
        settings=InputSettings("graded", top or 1.0, bool((x < 0).any())),
        description=inputs.description
        + f"; graded pixels x = {w} (2 s - 1) + {b} (the file's input transform)",
    )


def _netx_program(model: Any, path: str, a: argparse.Namespace) -> Any:
    """``model`` if it is a netx network's integer program (verify / deploy run it as the file
    holds it), ``None`` for a float model; any other integer program is refused by name."""
    from neurodeploy.quant.program import IntProgram

    if not isinstance(model, IntProgram):
        return None
    if model.meta.get("format") != "netx":
        raise ValueError(
            f"{path}: an integer program; this command needs the float model (.nir or .pt) or "
            "a lava-dl netx network (.net)"
        )
    if a.weight_split != 1:
        raise ValueError(f"--weight-split {a.weight_split}: {path} holds fixed netx integers")
    return model


def _cmd_quantize(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.data.inputs import WEIGHTS_ONLY, weights_only_settings
    from neurodeploy.measure.calibrate import quantize_checked
    from neurodeploy.measure.qreport import compare
    from neurodeploy.neuron.hardware import get_spec

    _refuse_output_over_inputs(a, [a.out])
    model, inputs, T = _load_with_inputs(a.model, a, required=False)
    hw = get_spec(a.hardware)
    # no data at all: the weights alone (overflow not checked); else the overflow search
    checked = quantize_checked(
        model,
        hw,
        inputs,
        T=T,
        percentile=a.percentile,
        allow_overflow=a.allow_overflow,
        settings=weights_only_settings(a.input_kind).as_kwargs(),
        weight_split=a.weight_split,
    )
    prog = checked.program
    prog.meta.update(T=T, **({"task": inputs.task} if inputs is not None and inputs.task else {}))
    prog.save(a.out)
    print(
        f"integer program for {a.hardware}: {a.out} ({len(prog.layers)} layers, "
        f"input {prog.input_kind}, input scale {prog.input_scale:g})"
    )
    for l in prog.layers:
        print(
            f"  {l.name:<10} {l.kind:<7} weight_exp {l.weight_exp:>3}  vth {l.vth:>6}  "
            f"dv {l.dv:>4}  coef {l.coef:>4}  bias_exp {l.bias_exp}  v_scale {l.v_scale:.4g}"
        )
    if inputs is None:
        print(
            f"calibration: {WEIGHTS_ONLY}; no comparison run (pass --data FILE.npz, "
            "--random-input RATE or --task NAME for per-layer agreement and accuracy)"
        )
    else:
        print(compare(model, prog, task=inputs, T=T, n=a.samples).format())
    print(checked.format())
    return 0


def _cmd_deploy(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from pathlib import Path

    from neurodeploy.deploy import deploy

    names = ("model.nir", "model.int.npz", "model.netx.h5", "summary.md", "conformance.json")
    _refuse_output_over_inputs(a, [Path(a.out) / n for n in names])
    model, inputs, T = _load_with_inputs(a.model, a, programs=True)
    program = _netx_program(model, a.model, a)
    if program is not None:
        from neurodeploy.deploy import deploy_program

        out = deploy_program(
            program, inputs, T=T, out_dir=a.out, target=a.target, lava_samples=a.samples
        )
        print(out)
        return 0
    print(
        deploy(
            model,
            task_name=inputs,
            T=T,
            out_dir=a.out,
            hardware=a.hardware,
            target=a.target,
            lava_samples=a.samples,
            allow_overflow=a.allow_overflow,
            weight_split=a.weight_split,
        )
    )
    return 0


def _cmd_verify(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.measure.calibrate import quantize_checked
    from neurodeploy.measure.verify import verify
    from neurodeploy.neuron.hardware import get_spec

    model, inputs, T = _load_with_inputs(a.model, a, programs=True)
    program = _netx_program(model, a.model, a)
    if program is not None:  # a netx network: its integers as they are, float = their reading
        from neurodeploy.converters.netx_nir import netx_float_model

        conf = verify(
            netx_float_model(program), program, task=inputs, T=T, n=a.samples, lava=not a.no_lava
        )
        print(conf.format())
        print(
            f"inputs: {inputs.description}; {a.model}: netx integers as the file holds them "
            "(no quantisation); float = their NIR CubaLIF reading"
        )
        return 0
    checked = quantize_checked(
        model,
        get_spec(a.hardware),
        inputs,
        T=T,
        allow_overflow=a.allow_overflow,
        weight_split=a.weight_split,
    )
    prog = checked.program
    print(verify(model, prog, task=inputs, T=T, n=a.samples, lava=not a.no_lava).format())
    print(f"inputs: {inputs.description}; calibration: {inputs.calibration}")
    print(checked.format())
    return 0


def _cmd_profile(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.measure.energy import DEFAULT_ENERGY_MODELS, get_energy_model
    from neurodeploy.measure.profiling import profile
    from neurodeploy.measure.report import (
        distinct_labels,
        fmt_value,
        summary_rows,
        write_report,
    )

    energy = [get_energy_model(m) for m in (a.energy_model or DEFAULT_ENERGY_MODELS)]  # fail early
    runs = [(a.model, a.target)]
    if a.compare or a.compare_target:
        runs.append((a.compare or a.model, a.compare_target or a.target))
    # each file read once
    loaded = {path: _load_with_inputs(path, a, programs=True) for path, _ in runs}
    profiles = []
    for (path, target), label in zip(runs, distinct_labels(runs), strict=True):
        subject, inputs, T = loaded[path]
        profiles.append(
            profile(
                subject,
                inputs,
                T=T,
                target=target,
                view=a.view,
                samples=a.samples,
                energy_models=energy,
                hardware=a.hardware,
                label=label,
                latency=a.latency and target == "reference",
                progress=not a.no_progress,
                allow_overflow=a.allow_overflow,
                weight_split=a.weight_split,
            )
        )
    paths = write_report(profiles, a.out)
    shown = ("accuracy", "spikes", "ACs", "MACs", "energy", "SNN")
    for p in profiles:
        print(
            f"{p.label}: "
            + ", ".join(f"{k} {fmt_value(k, v)}" for k, v in summary_rows(p) if k.startswith(shown))
        )
        if "overflow" in p.meta:
            print(f"{p.label}: {p.meta['overflow']}")
    plots = ", ".join(p.name for p in paths.plots.values())
    print(f"report: {paths.markdown} (+ {paths.json.name}, {plots})")
    return 0


def _finetune_data(a: argparse.Namespace) -> Any:
    """The labelled train/test split of ``finetune`` (:func:`neurodeploy.data.inputs.labelled_splits`)
    from the input options; ``None`` for a checkpoint with none given (its own task, as
    ``train`` made it)."""
    from pathlib import Path

    from neurodeploy.converters.model_files import load_model_file
    from neurodeploy.data.inputs import labelled_splits

    _check_sources(a)
    given = any(v is not None for v in (a.task, a.data, a.dataset, a.config, a.random_input))
    if not given and Path(a.checkpoint).suffix == ".pt":
        return None
    model, task_name, T = load_model_file(
        a.checkpoint, programs=False, dt=a.dt, reset=getattr(a, "reset", "nir")
    )
    return labelled_splits(
        tuple(model.input_shape),
        task=a.task,
        data=a.data,
        random_rate=a.random_input,
        dataset=a.dataset,
        data_root=a.data_root,
        config=a.config,
        config_data=_recipe_data(a),
        T=a.T,
        recorded_task=task_name,
        recorded_T=T,
        default_T=DEFAULT_T,
    )


def _cmd_finetune(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.finetune import FinetuneConfig, finetune

    over = {k: v for k, v in (("epochs", a.epochs), ("lr", a.lr)) if v is not None}
    cfg = FinetuneConfig(
        hardware=a.hardware,
        stock_neurons=a.stock_neurons,
        allow_overflow=a.allow_overflow,
        weight_split=a.weight_split,
        **over,
    )
    data = _finetune_data(a)
    res = finetune(
        a.checkpoint,
        out_dir=a.out,
        config=cfg,
        progress=not a.no_progress,
        data=data,
        dt=a.dt,
        reset=a.reset,
    )
    print(res.format())
    return 0


def _cmd_resources(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from neurodeploy.measure.resources import report_for_path

    text, fits = report_for_path(a.model, a.hardware, dt=a.dt)
    print(text)
    return 0 if fits else 2


def _cmd_tasks(a: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """List the offline tasks. The in-package synthetic ones are generated (fast) to show their
    sizes; the ones that read a Debian package's files or build with its tool (fashion-mnist,
    event-fashion, spoken-digits: minutes on first use, then cached) are listed from their
    metadata only, never built here."""
    from neurodeploy.data import TASKS, load_task

    for name, spec in TASKS.items():
        kind = "temporal" if spec.temporal else "static"
        head = f"{name:<13} input {spec.input_shape} {kind}  {spec.num_classes} classes  "
        if spec.requires:
            sizes = f"needs {spec.requires}; built on first use, cached"
        else:
            t = load_task(name)
            sizes = f"train {len(t.y_train)} / test {len(t.y_test)}"
        print(f"{head}{sizes}  (stands in for {spec.stands_in_for}): {spec.description}")
    return 0


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------
ParentFactory = Callable[[], argparse.ArgumentParser]


@dataclass(frozen=True)
class Command:
    """One sub-command: its help line, handler, own options and shared options (parent-parser
    factories, called afresh for each parser built)."""

    help: str
    run: Handler
    arguments: Callable[[argparse.ArgumentParser], None] = _no_args
    parents: tuple[ParentFactory, ...] = ()


def _train_task_options() -> argparse.ArgumentParser:
    """--task/--T with TrainConfig's defaults (what `train` trains on)."""
    from neurodeploy.training.config import TrainConfig

    d = TrainConfig().to_dict()
    return _task_options(task=d["task"], T=d["T"])


_MANY_HARDWARE = partial(_hardware_options, many=True)

COMMANDS: dict[str, Command] = {
    "train": Command(
        "train a spiking model on an offline task",
        _cmd_train,
        _add_train_args,
        parents=(
            _train_task_options,
            partial(_out_options, "run folder (checkpoint.pt, metrics.jsonl)"),
            _progress_options,
        ),
    ),
    "demo": Command(
        "main job: MPS + guidance on event-digits, T=4, about 40 s on 2 CPU cores",
        _cmd_demo,
        _add_demo_args,
        parents=(
            partial(_out_options, "folder for the runs (default runs/demo-<time>)", required=False),
            _progress_options,
        ),
    ),
    "reproduce": Command(
        "the paper's claims on the offline tasks or the user's data (--config, --dataset, "
        "--data): ablation, variants, reduced-timestep inference, initial states, gradient flow",
        _cmd_reproduce,
        _add_reproduce_args,
        parents=(
            partial(
                _out_options,
                f"folder for reproduction.md/.json and figures/ (default {REPRODUCE_OUT})",
                required=False,
                default=REPRODUCE_OUT,
            ),
            _progress_options,
        ),
    ),
    "export": Command(
        "export a trained checkpoint or a lava-dl netx network (.net) as a NIR graph",
        _cmd_export,
        _add_export_args,
        parents=(partial(_out_options, ".nir file"),),
    ),
    "inspect": Command(
        "summarise a NIR graph (or a netx .net as its graph): nodes, shapes, parameter ranges, "
        "counts",
        _cmd_inspect,
        _add_inspect_args,
        parents=(_dt_options,),
    ),
    "quantize": Command(
        "quantise a NIR model for a hardware spec: integer program + accuracy report",
        _cmd_quantize,
        _add_quantize_args,
        parents=(
            _hardware_options,
            _input_options,
            partial(_samples_options, None),
            partial(_out_options, "integer program file (.npz)"),
            _dt_options,
        ),
    ),
    "deploy": Command(
        "export -> quantise -> run on a target -> conformance summary",
        _cmd_deploy,
        _add_deploy_args,
        parents=(
            _hardware_options,
            _input_options,
            partial(_samples_options, 10),
            partial(_out_options, "folder (summary.md, conformance.json, model files)"),
            _dt_options,
        ),
    ),
    "verify": Command(
        "conformance: float torch vs reference simulator vs Lava fixed_pt, per layer",
        _cmd_verify,
        _add_verify_args,
        parents=(_hardware_options, _input_options, partial(_samples_options, 10), _dt_options),
    ),
    "profile": Command(
        "spikes, synaptic operations and energy of a model on a target: JSON + Markdown report "
        "+ PNG plots",
        _cmd_profile,
        _add_profile_args,
        parents=(
            _hardware_options,
            _input_options,
            partial(_samples_options, 256),
            partial(_out_options, "report folder"),
            _progress_options,
            _dt_options,
        ),
    ),
    "finetune": Command(
        "fine-tune a checkpoint or a NIR graph through its integer program (quantisation-aware) "
        "on labelled data, optionally down to stock LIF neurons; writes checkpoint (checkpoint "
        "sources), NIR and integer program",
        _cmd_finetune,
        _add_finetune_args,
        parents=(
            _hardware_options,
            _input_options,
            _dt_options,
            partial(_out_options, "folder (checkpoint.pt, model.nir, model.int.npz)"),
            _progress_options,
        ),
    ),
    "resources": Command(
        "mapping report: neurons, fan-in, synapses, memory and cores per layer",
        _cmd_resources,
        _add_resources_args,
        parents=(_MANY_HARDWARE, partial(_dt_options, reset_used=False)),
    ),
    "tasks": Command("list the offline tasks", _cmd_tasks),
}


def _debug_option(p: argparse.ArgumentParser, *, default: Any) -> None:
    p.add_argument(
        "--debug",
        action="store_true",
        default=default,
        help=f"on an error, show the Python traceback too (or set {DEBUG_ENV}=1)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = _Parser(  # its sub-commands are _Parsers too
        prog="neurodeploy",
        description=(
            "Spiking networks from training to Loihi-style execution. Run `neurodeploy demo` for the "
            "main job on the embedded offline task."
        ),
    )
    parser.add_argument(
        "--threads", type=POSITIVE, default=None, help="torch CPU threads (default: torch's)"
    )
    _debug_option(parser, default=False)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, cmd in COMMANDS.items():
        parents = [make() for make in cmd.parents]
        p = sub.add_parser(name, help=cmd.help, description=cmd.help, parents=parents)
        cmd.arguments(p)
        _debug_option(p, default=argparse.SUPPRESS)  # also after the command's name
    return parser


def describe_error(e: BaseException) -> str:
    """One line for an error a user can cause: the message of a ValueError (the project's named
    errors name their file, option or layer); for an OSError the file(s) and the system's reason,
    with what to do for the common ones (permissions, a full disk)."""
    if isinstance(e, OSError) and e.strerror:
        where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        text = f"{where}: {e.strerror}" if where else e.strerror
        if e.errno == errno.ENOSPC:
            text += " (disk full: free space or write elsewhere; no partial output was left)"
        elif e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            text += " (no permission: check the folder's permissions or write elsewhere)"
        return text
    if isinstance(e, MemoryError):
        return f"out of memory{f': {e}' if str(e) else ''} (try a smaller --batch-size/--samples)"
    return str(e) or type(e).__name__


#: the failures a user can cause (bad values, files, the OS, memory); anything else is a bug
#: and keeps its traceback. The project's named errors (CheckpointError, NIRFileError,
#: QuantizationError, ResourceError, RunLockError, ...) are ValueErrors, DatasetNotFoundError
#: a FileNotFoundError.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, MemoryError)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command; the one error boundary of the command line.

    A failure a user can cause (:data:`USER_ERRORS`) ends in one line on stderr,
    ``neurodeploy <cmd>: error: <what, naming the file, option or layer>``, exit status 2;
    Ctrl-C in ``neurodeploy <cmd>: interrupted (Ctrl-C)``, exit 130. With ``--debug`` (before
    or after the command's name) or ``NEURODEPLOY_DEBUG=1`` the traceback comes first. A bad
    option is refused by argparse in one line naming it, exit 2, before anything runs.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a refused option (2): argparse printed it
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    debug = args.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    prefix = f"neurodeploy {args.command}"
    try:
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        return COMMANDS[args.command].run(args, argv)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{prefix}: interrupted (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
    except USER_ERRORS as e:
        if debug:
            traceback.print_exc()
        print(f"{prefix}: error: {describe_error(e)}", file=sys.stderr)
        return EXIT_ERROR
