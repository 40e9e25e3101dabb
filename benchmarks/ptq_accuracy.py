"""Post-training quantisation: float accuracy vs the integer program on the reference simulator,
per offline task, for models trained with the shipped defaults (MPS + guidance) and with a
vanilla LIF. Writes benchmarks/results/ptq_accuracy.md.

    .venv/bin/python benchmarks/ptq_accuracy.py [--seeds 0]
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from neurodeploy.data import load_task
from neurodeploy.measure.qreport import compare, quantize_for_task
from neurodeploy.measure.reproduce import FULL, TASK_BASE
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "ptq_accuracy.md"))
    a = ap.parse_args()
    t0 = time.time()
    lines = [
        "# Post-training quantisation for Loihi 2: float vs integer accuracy",
        "",
        f"Date {time.strftime('%Y-%m-%d')}; {platform.machine()}, Python {platform.python_version()}, torch "
        f"{torch.__version__}; seeds {a.seeds}; epochs {FULL.epochs}; T=4. "
        "Integer accuracy from the reference "
        "simulator (bit-exact with Lava fixed_pt), no fine-tuning. Input: binary spikes for "
        "event-digits, 8-bit "
        "graded payloads otherwise.",
        "",
        "| task | model | float acc | integer acc | difference (points) "
        "| min spike agreement | saturations | wraps |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for task_name in TASK_BASE:
        task = load_task(task_name, T=4)
        for label, kw in (
            ("MPS + guidance (defaults)", {}),
            ("vanilla LIF", dict(mps=False, guidance=False)),
        ):
            for seed in a.seeds:
                cfg = TrainConfig(
                    task=task_name,
                    T=4,
                    seed=seed,
                    epochs=FULL.epochs[task_name],
                    **TASK_BASE[task_name],
                    **kw,
                )
                model = train(cfg, progress=False).model.eval()
                rep = compare(model, quantize_for_task(model, task, LOIHI2), task=task, T=4)
                agree = min(
                    l.spike_agreement for l in rep.layers if l.spike_agreement == l.spike_agreement
                )
                sat = sum(l.saturations for l in rep.layers)
                wr = sum(l.wraps for l in rep.layers)
                lines.append(
                    f"| {task_name} | {label} | {100 * rep.float_acc:.2f} | {100 * rep.int_acc:.2f} | "
                    f"{100 * (rep.int_acc - rep.float_acc):+.2f} | {agree:.4f} | {sat} | {wr} |"
                )
                print(lines[-1], flush=True)
    lines += ["", f"Wall time {time.time() - t0:.0f} s."]
    Path(a.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
