"""Hardware-constrained fine-tuning, per offline task: float accuracy, post-training quantisation
(integer program on the reference simulator's arithmetic), quantisation-aware fine-tuning, and the
stock-neuron option (smoothing coefficient annealed to 0, netx formats), plus the cores the model
needs on Loihi 1 and Loihi 2. Writes benchmarks/results/finetune_accuracy.md and .json.

    .venv/bin/python benchmarks/finetune_accuracy.py [--seeds 0] [--event-digits-seeds 0 1 2] [--tasks ...]
    .venv/bin/python benchmarks/finetune_accuracy.py --merge --tasks fashion-mnist event-fashion \
        spoken-digits --seeds 0 1 2

``--merge`` keeps the rows of the existing .json and replaces those of the (task, seed) pairs run
now, so one table holds every task; each row carries the date of the run that made it.

Float models: the shipped defaults (MPS + guidance), per-task model and lr as the reproduction,
epochs as its full plan (the same models as benchmarks/results/ptq_accuracy.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from neurodeploy.data import load_task
from neurodeploy.finetune import FinetuneConfig, finetune
from neurodeploy.measure.reproduce import FULL, TASK_BASE
from neurodeploy.measure.resources import resource_report
from neurodeploy.neuron.hardware import LOIHI1, LOIHI2
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train

RESULTS = Path(__file__).parent / "results"


def run_one(task: str, seed: int, epochs: int, tmp: Path) -> dict:
    t0 = time.perf_counter()
    cfg = TrainConfig(task=task, T=4, seed=seed, epochs=FULL.epochs[task], **TASK_BASE[task])
    run = tmp / f"{task}-{seed}"
    train(cfg, out_dir=run, progress=False)
    t_train = time.perf_counter() - t0
    rec: dict = {
        "task": task,
        "model": cfg.model,
        "seed": seed,
        "float_epochs": cfg.epochs,
        "finetune_epochs": epochs,
        "train_s": round(t_train, 1),
        "n_test": len(load_task(task, T=4, seed=cfg.data_seed).y_test),
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
    }
    for label, stock in (("mps", False), ("stock", True)):
        t1 = time.perf_counter()
        res = finetune(
            run / "checkpoint.pt",
            "loihi2",
            out_dir=tmp / f"{task}-{seed}-{label}",
            progress=False,
            config=FinetuneConfig(epochs=epochs, stock_neurons=stock, seed=seed),
        )
        rec[label] = {k: v for k, v in res.summary().items() if k not in ("config", "history")}
        rec[label]["selected_epoch"] = next(
            (h["epoch"] for h in res.history if h.get("selected")), 0
        )
        rec[label]["saturations"] = sum(h["saturations"] for h in res.history)
        rec[label]["wraps"] = sum(h["wraps"] for h in res.history)
        rec[label]["seconds"] = round(time.perf_counter() - t1, 1)
        if not stock:
            rec["cores"] = {
                hw.name: resource_report(res.program, hw).cores for hw in (LOIHI1, LOIHI2)
            }
    return rec


def render(records: list[dict], meta: dict) -> str:
    p = lambda v: f"{100 * v:.2f}"  # noqa: E731
    finetune_epochs = records[0]["finetune_epochs"] if records else "-"
    lines = [
        "# Hardware-constrained fine-tuning: float, post-training quantisation, "
        "fine-tuned integer, stock neurons",
        "",
        f"Runs: {'; '.join(meta['runs'])}. {meta['machine']}, Python {meta['python']}, "
        f"torch {meta['torch']}, 1 torch thread per run (the date column says which run). "
        "Accuracies in % on the test set; "
        "integer accuracies are the integer program for Loihi 2 run with the reference "
        "simulator's arithmetic "
        "(bit-exact with Lava fixed_pt). Float models: MPS + guidance, the reproduction's "
        "full epochs, T=4. "
        f"Fine-tuning: {finetune_epochs} epochs of quantisation-aware training "
        "(Adam 5e-4, cosine), the epoch kept by integer accuracy on the training set. "
        "Stock: alpha annealed to 0 "
        "over the first half of the steps, then vanilla LIF in netx's formats "
        "(weight exponent 0, bias exponent "
        "6); 'alpha:=0 PTQ' is what setting alpha to 0 without fine-tuning gives.",
        "",
        "| task | model | seed | float | PTQ | fine-tuned int | int - float (points) "
        "| alpha:=0 PTQ | stock fine-tuned int "
        "| stock - float (points) | stock float | cores Loihi 1 / 2 "
        "| fine-tune s (mps / stock) | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        m, s = r["mps"], r["stock"]
        lines.append(
            f"| {r['task']} | {r['model']} | {r['seed']} | {p(m['float_acc_before'])} | {p(m['ptq_acc'])} | "
            f"{p(m['int_acc'])} | {100 * (m['int_acc'] - m['float_acc_before']):+.2f} | "
            f"{p(s['stock_ptq_acc'])} | {p(s['int_acc'])} | "
            f"{100 * (s['int_acc'] - s['float_acc_before']):+.2f} | "
            f"{p(s['float_acc'])} | {r['cores']['loihi1']} / {r['cores']['loihi2']} | "
            f"{m['seconds']:.0f} / {s['seconds']:.0f} | {r.get('date', meta['runs'][0][:10])} |"
        )
    over = [
        r
        for r in records
        if r["mps"]["saturations"]
        or r["mps"]["wraps"]
        or r["stock"]["saturations"]
        or r["stock"]["wraps"]
    ]
    over_tasks = "none" if not over else ", ".join(r["task"] for r in over)
    lines += [
        "",
        f"Saturations/wraps during fine-tuning: {over_tasks}.",
        "One test sample is "
        + ", ".join(
            f"{100 / n:.2g} points on {t}"
            for t, n in dict.fromkeys((r["task"], r["n_test"]) for r in records)
        )
        + ".",
    ]
    for note in meta.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument(
        "--event-digits-seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="seeds for event-digits, the task of the issue's done-when (default 0 1 2)",
    )
    ap.add_argument("--tasks", nargs="+", default=list(TASK_BASE))
    ap.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs")
    ap.add_argument("--out", default=str(RESULTS / "finetune_accuracy.md"))
    ap.add_argument(
        "--merge",
        action="store_true",
        help="keep the existing .json's rows; replace only the (task, seed) pairs run now",
    )
    a = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.time()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for task in a.tasks:
            for seed in a.event_digits_seeds if task == "event-digits" else a.seeds:
                records.append(run_one(task, seed, a.epochs, Path(tmp)))
                print(json.dumps(records[-1]), flush=True)
    run = f"{time.strftime('%Y-%m-%d')} ({', '.join(a.tasks)}; wall {time.time() - t0:.0f} s)"
    meta = {
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "runs": [run],
    }
    json_path = Path(a.out).with_suffix(".json")
    if a.merge and json_path.exists():
        old = json.loads(json_path.read_text())
        old_meta = old["meta"]
        old_runs = old_meta.get("runs") or [f"{old_meta['date']} (wall {old_meta['wall_s']:.0f} s)"]
        done_now = {(r["task"], r["seed"]) for r in records}
        kept = [r for r in old["records"] if (r["task"], r["seed"]) not in done_now]
        for r in kept:
            r.setdefault("date", old_meta.get("date", ""))
        order = list(TASK_BASE)
        meta["notes"] = old_meta.get("notes", [])
        records = sorted(
            kept + records,
            key=lambda r: (order.index(r["task"]) if r["task"] in order else len(order), r["seed"]),
        )
        meta["runs"] = old_runs + meta["runs"]
    md = render(records, meta)
    Path(a.out).write_text(md)
    json_path.write_text(json.dumps({"meta": meta, "records": records}, indent=1))
    print(md)


if __name__ == "__main__":
    main()
