"""Profile the demo model: spikes, synaptic operations and energy of MPS + guidance vs the vanilla
LIF (float), and of the MPS model's integer program on the reference simulator (Loihi 2), in one
report under benchmarks/results/profile_demo/ (profile.md, profile.json, PNG plots).

    .venv/bin/python benchmarks/profile_demo.py [--samples 360] [--seed 0]

Trains both demo configurations first (neurodeploy.demo.DEMO_CONFIG: event-digits, VGG, T=4,
8 epochs; about a minute on 2 cores), then profiles them on the test set.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from neurodeploy.data import load_task
from neurodeploy.demo import DEMO_CONFIG
from neurodeploy.measure.profiling import profile
from neurodeploy.measure.report import fmt, summary_rows, write_report
from neurodeploy.training.loop import train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=None, help="test samples (default: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "profile_demo"))
    a = ap.parse_args()
    t0 = time.time()
    cfg = dataclasses.replace(DEMO_CONFIG, seed=a.seed)
    with tempfile.TemporaryDirectory() as tmp:
        mps = train(cfg, out_dir=Path(tmp) / "mps", progress=False).model
        van = train(
            dataclasses.replace(cfg, mps=False, guidance=False),
            out_dir=Path(tmp) / "van",
            progress=False,
        ).model
    task = load_task(cfg.task, T=cfg.T)
    profiles = [
        profile(mps, task, cfg.T, "torch", samples=a.samples, label="MPS + guidance (float)"),
        profile(van, task, cfg.T, "torch", samples=a.samples, label="vanilla LIF (float)"),
        profile(
            mps,
            task,
            cfg.T,
            "reference",
            samples=a.samples,
            label="MPS + guidance (Loihi 2 integer)",
        ),
    ]
    paths = write_report(profiles, a.out)
    print(f"\n{'quantity':<58}" + "".join(f"{p.label:>36}" for p in profiles))
    rows = [summary_rows(p) for p in profiles]
    for i, (label, _) in enumerate(rows[0]):
        print(f"{label:<58}" + "".join(f"{fmt(r[i][1]):>36}" for r in rows))
    print(f"\nreport: {paths.markdown}  ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
