"""Speed of the integer simulator against float inference (issue 21), in one run: samples/s of the
reference simulator (layer-major, numba neuron loops), of its torch back end (layer-major
synapses, the integer core step by step), of the reference as it was before issue 21 (commit
a1980cc, read from git: timestep-major, every layer every step) and of the float torch model
(BatchNorm folded, fused LIF kernels), on the demo's VGG (event-digits, MPS neurons) and on a
4-layer MLP (800-512-256-128-10, stock LIF), batch 1 / 64 / 256, T = 4 and 32, CPU (and CUDA
when a GPU is present). Every integer run is checked bit-exact against the torch back end
(spikes of every layer and the readout). Then QAT: one training step and one evaluation forward
pass, before (a1980cc's qat.py) and after. Writes benchmarks/results/intsim_speed.md and .json.

    OMP_NUM_THREADS=2 .venv/bin/python -P benchmarks/intsim_speed.py [--quick]

Inputs: event-digits test samples (the demo's task, T steps of its events), repeated to fill the
batch. Models: trained 2 epochs on event-digits, so that every layer fires as in a trained
network (the firing rates are in the table; the loops are branch-free, so the timing depends
little on them, but the bit-exactness check needs activity).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch

from neurodeploy.data import load_task
from neurodeploy.demo import DEMO_CONFIG
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.quant.qat import QATNet
from neurodeploy.quant.quantize import input_settings, quantize_model
from neurodeploy.targets.reference import ReferenceTarget
from neurodeploy.training.loop import train

sys.path.insert(0, str(Path(__file__).parent))
import reference_vs_lava as lava_bench

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
BEFORE = "a1980cc"  # the last commit before issue 21
BATCHES = (1, 64, 256)
STEPS = (4, 32)


def old_module(path: str, name: str) -> ModuleType | None:
    """``path`` as it was at commit BEFORE, imported as module ``name`` (None without git)."""
    try:
        src = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{BEFORE}:{path}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    folder = Path(tempfile.mkdtemp())
    file = folder / f"{name}.py"
    file.write_text(src)
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def seconds(fn: Callable[[], Any], budget: float = 1.5, most: int = 7) -> float:
    """Median wall time of ``fn`` over repeats (one warm-up call; at least 3 repeats, more while
    within ``budget`` seconds, at most ``most``)."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 3 or (len(times) < most and time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def models() -> dict[str, torch.nn.Module]:
    """The demo's VGG (its config, MPS + guidance) and the MLP (stock LIF), each trained for
    2 epochs on event-digits so that their layers fire as trained models do."""
    vgg = dataclasses.replace(DEMO_CONFIG, epochs=2)
    mlp = dataclasses.replace(
        DEMO_CONFIG,
        model="mlp",
        mps=False,
        guidance=False,
        epochs=2,
        arch={"hidden": [512, 256, 128]},
    )
    return {
        "demo VGG (MPS)": train(vgg, progress=False).model.eval(),
        "MLP 800-512-256-128-10 (LIF)": train(mlp, progress=False).model.eval(),
    }


def same(a: Any, b: Any) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a.spikes, b.spikes)) and np.array_equal(
        a.output, b.output
    )


def speed_rows(
    name: str, model: torch.nn.Module, tasks: dict[int, Any], old: ModuleType | None, quick: bool
) -> list[dict[str, Any]]:
    """Rows of the speed table for one model, on the event-digits task loaded at each T."""
    task = tasks[STEPS[0]]
    prog = quantize_model(model, LOIHI2, **input_settings(task))
    folded = fold_batchnorm(model).eval()
    rows = []
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for T in STEPS:
        if quick and STEPS[0] != T:
            continue
        x_all = tasks[T].encode(tasks[T].x_test[: max(BATCHES)], T)  # (T, B, ...) float
        while x_all.shape[1] < max(BATCHES):
            x_all = torch.cat([x_all, x_all], dim=1)[:, : max(BATCHES)]
        x_int_all, _ = prog.quantize_input(x_all.numpy())
        for B in BATCHES:
            if quick and max(BATCHES) == B:
                continue
            x, x_int = x_all[:, :B].contiguous(), x_int_all[:, :B]
            for dev in devices:
                fast = ReferenceTarget(prog, device=dev, kernel="auto")
                slow = ReferenceTarget(prog, device=dev, kernel="torch")
                r_fast, r_slow = fast.run(x_int), slow.run(x_int)
                exact = same(r_fast, r_slow)
                f_model = folded.to(dev)
                xd = x.to(dev)
                sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
                with torch.no_grad():
                    t_float = seconds(lambda: (f_model(xd), sync()))
                t_fast = seconds(lambda: (fast.run(x_int), sync()))
                t_slow = seconds(lambda: (slow.run(x_int), sync()), most=3)
                t_old = None
                if old is not None:
                    before = old.ReferenceTarget(prog, device=dev)
                    exact = exact and same(before.run(x_int), r_slow)
                    t_old = seconds(lambda: (before.run(x_int), sync()), most=3)
                rows.append(
                    {
                        "model": name,
                        "device": dev,
                        "T": T,
                        "batch": B,
                        "float_sps": B / t_float,
                        "int_sps": B / t_fast,
                        "int_torch_sps": B / t_slow,
                        "int_before_sps": None if t_old is None else B / t_old,
                        "bit_exact": exact,
                        "rates": [round(float(s.mean()), 3) for s in r_fast.spikes],
                    }
                )
                r = rows[-1]
                print(
                    f"{name:<30} {dev:<4} T={T:<3} B={B:<4} float {r['float_sps']:9.1f}/s  "
                    f"int {r['int_sps']:9.1f}/s ({r['int_sps'] / r['float_sps']:.2f}x)  "
                    f"torch back end {r['int_torch_sps']:8.1f}/s  "
                    f"before {r['int_before_sps'] or float('nan'):8.1f}/s  exact {exact}",
                    flush=True,
                )
            folded.cpu()
    return rows


def qat_rows(
    name: str, model: torch.nn.Module, task: Any, old_qat: ModuleType | None
) -> list[dict[str, Any]]:
    """One QAT training step (program build, forward, backward, Adam) and one evaluation
    forward (eval mode: the deployable program, as integer_accuracy runs it), batch 64, T = 4."""
    x = task.encode(task.x_train[:64], 4)
    y = task.y_train[:64]
    out = []
    for label, cls in (("after", QATNet), ("before", getattr(old_qat, "QATNet", None))):
        if cls is None:
            continue
        net = cls(model, **input_settings(task))
        opt = torch.optim.Adam(model.parameters(), lr=0.0)  # lr 0: the weights stay put

        def step(net: Any = net, opt: Any = opt) -> None:
            net.train()
            run = net.run(x)
            loss = torch.nn.functional.cross_entropy(run.logits.mean(0).float(), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def evaluate(net: Any = net) -> Any:
            net.eval()
            with torch.no_grad():
                return net.run(x).output_int

        out.append(
            {
                "model": name,
                "version": label,
                "train_step_s": seconds(step, most=5),
                "eval_forward_s": seconds(evaluate, most=5),
                "eval_output": evaluate().numpy().tolist(),
            }
        )
        print(
            f"QAT {name:<30} {label:<6} step {out[-1]['train_step_s']:.3f} s  "
            f"eval {out[-1]['eval_forward_s']:.3f} s",
            flush=True,
        )
    if len(out) == 2:  # the evaluation outputs are the same integers before and after
        assert out[0]["eval_output"] == out[1]["eval_output"], f"QAT {name}: outputs differ"
    for r in out:
        del r["eval_output"]
    return out


def machine() -> dict[str, Any]:
    """reference_vs_lava's record of the machine and versions, plus numba's version."""
    from importlib import metadata

    return {**lava_bench.machine(), "numba": metadata.version("numba")}


def render(info: dict[str, Any], rows: list[dict], qat: list[dict], wall: float) -> str:
    lines = [
        "# The integer simulator against float inference (issue 21)",
        "",
        f"Date {info['date']}; {info['machine']} {info['processor']}, {info['cpu_count']} CPUs, "
        f"{info['torch_threads']} torch threads (OMP_NUM_THREADS={info['omp_num_threads']}), "
        f"Python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, "
        f"numba {info['numba']}; GPU: {info['gpu']}; wall time {wall:.0f} s. "
        "These numbers depend on the CPU (thread count, vector width: AVX-512 here) and on "
        "the load of a shared machine: compare the columns of one row, not runs.",
        "",
        "Samples/s, median of repeated runs. *int*: the reference simulator now (layer-major, "
        "numba neuron loops); *torch back end*: the same layer-major synapses with the integer "
        'core stepped in torch (`kernel="torch"`, what CUDA runs); *before*: the reference '
        f"simulator of commit {BEFORE} (timestep-major). *exact*: every layer's spikes and the "
        "readout equal across the integer runs.",
        "",
        "| model | device | T | batch | float | int | int / float | torch back end | before "
        "| int / before | exact | firing rates |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        before = r["int_before_sps"]
        gain = "-" if before is None else f"{r['int_sps'] / before:.1f}x"
        lines.append(
            f"| {r['model']} | {r['device']} | {r['T']} | {r['batch']} | {r['float_sps']:.1f} "
            f"| {r['int_sps']:.1f} | {r['int_sps'] / r['float_sps']:.2f}x "
            f"| {r['int_torch_sps']:.1f} | {'-' if before is None else f'{before:.1f}'} "
            f"| {gain} "
            f"| {'yes' if r['bit_exact'] else 'NO'} | {r['rates']} |"
        )
    if qat:
        lines += [
            "",
            "QAT, batch 64, T = 4: one training step (program from the current weights, "
            "integer forward with straight-through proxies, backward, Adam) and one evaluation "
            "forward (the deployable program, as the fine-tuner's integer accuracy runs it); "
            f"*before*: commit {BEFORE}'s qat.py. The evaluation outputs are asserted equal.",
            "",
            "| model | step before (s) | step after (s) | eval before (s) | eval after (s) |",
            "|---|---|---|---|---|",
        ]
        by = {(q["model"], q["version"]): q for q in qat}
        for name in dict.fromkeys(q["model"] for q in qat):
            a, b = by.get((name, "after")), by.get((name, "before"))
            if a is None or b is None:
                continue
            lines.append(
                f"| {name} | {b['train_step_s']:.3f} | {a['train_step_s']:.3f} "
                f"| {b['eval_forward_s']:.3f} | {a['eval_forward_s']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="batch 1 and 64 at T = 4 only")
    ap.add_argument("--out", default=str(RESULTS / "intsim_speed.md"))
    a = ap.parse_args()
    t0 = time.time()
    tasks = {T: load_task("event-digits", T=T) for T in (STEPS[:1] if a.quick else STEPS)}
    task = tasks[STEPS[0]]
    old_ref = old_module("targets/reference.py", "reference_before_issue21")
    old_qat = old_module("neurodeploy/quant/qat.py", "qat_before_issue21")
    rows, qat = [], []
    for name, model in models().items():
        rows += speed_rows(name, model, tasks, old_ref, a.quick)
        qat += qat_rows(name, model, task, old_qat)
    info = machine()
    md = render(info, rows, qat, time.time() - t0)
    print(md)
    out = Path(a.out)
    out.write_text(md)
    out.with_suffix(".json").write_text(
        json.dumps({"machine": info, "rows": rows, "qat": qat}, indent=1)
    )
    if not all(r["bit_exact"] for r in rows):
        raise SystemExit("intsim_speed: an integer run differed (see the table)")


if __name__ == "__main__":
    main()
