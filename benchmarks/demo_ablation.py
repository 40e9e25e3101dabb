"""The demo's configuration (event-digits, VGG, T=4, 8 epochs) in four arms x several seeds:
vanilla LIF / +MPS / +guidance / +both. Prints a table and writes
benchmarks/results/demo_ablation.md with machine, versions, date and wall time.

    .venv/bin/python benchmarks/demo_ablation.py [--seeds 0 1 2] [--epochs 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time
from pathlib import Path

import numpy
import torch

from neurodeploy.demo import DEMO_CONFIG
from neurodeploy.training.loop import train

ARMS = {
    "vanilla": dict(mps=False, guidance=False),
    "+MPS": dict(mps=True, guidance=False),
    "+guidance": dict(mps=False, guidance=True),
    "+both": dict(mps=True, guidance=True),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=DEMO_CONFIG.epochs)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "demo_ablation.md"))
    a = ap.parse_args()
    t_start = time.time()
    rows = []
    for arm, kw in ARMS.items():
        accs, secs, alphas = [], [], []
        for seed in a.seeds:
            cfg = dataclasses.replace(DEMO_CONFIG, seed=seed, epochs=a.epochs, **kw)
            t0 = time.perf_counter()
            res = train(cfg, progress=False)
            secs.append(time.perf_counter() - t0)
            accs.append(res.test_acc)
            alphas.append(res.model.alphas())
            print(
                f"{arm:<10} seed {seed}: test acc {res.test_acc:.4f} ({secs[-1]:.0f} s)", flush=True
            )
        rows.append((arm, accs, secs, alphas))
    lines = [
        "# Demo configuration, four arms",
        "",
        f"Date {time.strftime('%Y-%m-%d')}; machine {platform.machine()} "
        f"{platform.processor() or ''}, "
        f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, "
        f"torch {torch.__version__}, "
        f"numpy {numpy.__version__}; wall time {time.time() - t_start:.0f} s.",
        f"Task event-digits, model vgg, T={DEMO_CONFIG.T}, epochs {a.epochs}, "
        f"batch {DEMO_CONFIG.batch_size}, "
        f"Adam lr {DEMO_CONFIG.lr} cosine, seeds {a.seeds}; guidance lam={DEMO_CONFIG.lam}, "
        f"tau_kd={DEMO_CONFIG.tau_kd}, "
        f"p_drop={DEMO_CONFIG.p_drop}, direction {DEMO_CONFIG.direction}; "
        f"MPS alpha_init=0.5, reset reading.",
        "",
        "| arm | test acc mean | std | per seed | learned alpha (seed 0) | s per run |",
        "|---|---|---|---|---|---|",
    ]
    for arm, accs, secs, alphas in rows:
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        al = ", ".join(f"{v:.3f}" for v in alphas[0].values()) if any(alphas[0].values()) else "-"
        lines.append(
            f"| {arm} | {100 * statistics.mean(accs):.2f} | {100 * sd:.2f} | "
            f"{', '.join(f'{100 * x:.2f}' for x in accs)} | {al} | {statistics.mean(secs):.0f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
