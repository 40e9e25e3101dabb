"""Training throughput (samples/s) of the demo conv model on ``event-digits``: our VGG
(Conv3x3(2->32)-BN-LIF-AvgPool2, Conv3x3(32->64)-BN-LIF-AvgPool2, Flatten, Linear readout; MPS on,
guidance loss on, as in the demo) with the fused LIF kernel against the same model on the
reference path, and the same layer sizes built from lava-dl slayer's CUBA blocks (Conv, Pool,
Conv, Pool, Flatten, Dense; slayer's standard blocks carry a neuron after each pooling and a
spiking readout, no BatchNorm; loss: cross-entropy of the mean output spike rate).

One training step = forward, loss, backward, Adam step on one batch. Steps of all contestants are
interleaved (each repetition times every contestant once, in turn); the median per-step time
gives samples/s. Writes benchmarks/results/train_throughput.md and .json.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train_throughput.py [--T 4 32] [--batch 16]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from neurodeploy.data import load_task
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.training.losses import GuidanceConfig, SNNLoss

RESULTS = Path(__file__).parent / "results"
CHANNELS = (32, "P", 64, "P")  # the vgg default of the demo


Step = Callable[[torch.Tensor, torch.Tensor], None]


def ours(kernel: str, shape: tuple[int, ...], classes: int) -> Step:
    torch.manual_seed(0)
    neuron = NeuronConfig(mps=True, kernel=kernel)
    model = build_model("vgg", shape, classes, neuron, channels=CHANNELS)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    loss_fn = SNNLoss("ce", GuidanceConfig(1.0, 2.0, 0.0, "both"))

    def step(x: torch.Tensor, y: torch.Tensor) -> None:  # x (B, T, C, H, W)
        opt.zero_grad(set_to_none=True)
        loss, _ = loss_fn(model(x.transpose(0, 1)), y)
        loss.backward()
        opt.step()

    return step


def slayer_net(shape: tuple[int, ...], classes: int) -> Step:
    from lava.lib.dl import slayer

    torch.manual_seed(0)
    c, h, w = shape
    npar = {"threshold": 1.0, "current_decay": 1.0, "voltage_decay": 0.5}
    blocks = nn.Sequential(
        slayer.block.cuba.Conv(npar, c, 32, 3, padding=1, weight_scale=2),
        slayer.block.cuba.Pool(npar, 2),
        slayer.block.cuba.Conv(npar, 32, 64, 3, padding=1, weight_scale=2),
        slayer.block.cuba.Pool(npar, 2),
        slayer.block.cuba.Flatten(),
        slayer.block.cuba.Dense(npar, 64 * (h // 4) * (w // 4), classes, weight_scale=2),
    )
    opt = torch.optim.Adam(blocks.parameters(), lr=5e-3)
    ce = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:  # slayer's layout: (B, C, H, W, T)
        opt.zero_grad(set_to_none=True)
        out = blocks(x.permute(0, 2, 3, 4, 1))
        loss = ce(out.mean(-1) * 10.0, y)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--T", type=int, nargs="+", default=[4, 32])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default=str(RESULTS / "train_throughput"))
    a = ap.parse_args()
    warnings.filterwarnings("ignore")
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    rows = []
    from tqdm import tqdm

    for T in tqdm(a.T, desc="train_throughput"):
        task = load_task("event-digits", T=T)
        shape, classes = tuple(task.input_shape), int(task.y_train.max()) + 1
        xs = task.x_train[: a.batch * (a.reps + a.warmup)]
        ys = task.y_train[: a.batch * (a.reps + a.warmup)]
        steps = {
            "ours, fused kernel": ours("fused", shape, classes),  # fails rather than fall back
            "ours, reference path": ours("reference", shape, classes),
            "lava-dl slayer CUBA blocks": slayer_net(shape, classes),
        }
        times: dict[str, list[float]] = {k: [] for k in steps}
        for i in range(a.warmup + a.reps):
            x = xs[i * a.batch : (i + 1) * a.batch]
            y = ys[i * a.batch : (i + 1) * a.batch]
            for name, fn in steps.items():  # interleaved
                t0 = time.perf_counter()
                fn(x, y)
                if i >= a.warmup:
                    times[name].append(time.perf_counter() - t0)
        for name, ts in times.items():
            med = statistics.median(ts)
            rows.append(
                {
                    "T": T,
                    "batch": a.batch,
                    "name": name,
                    "s_per_batch": med,
                    "samples_per_s": a.batch / med,
                }
            )
    res = {"date": stamp, "rows": rows, "reps": a.reps, "warmup": a.warmup}
    res.update(machine_and_versions())
    out = Path(a.out)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    md = render(res)
    out.with_suffix(".md").write_text(md)
    print(md)


def machine_and_versions() -> dict:
    cpu = platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    v = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("numba", "lava-dl"):
        try:
            v[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            v[dist] = "not installed"
    return {
        "machine": f"{cpu}, {os.cpu_count()} logical CPUs, torch threads "
        f"{torch.get_num_threads()}",
        "versions": v,
    }


def render(res: dict) -> str:
    lines = [
        "# Training throughput on event-digits (CPU)",
        "",
        f"Date {res['date']}; {res['machine']}; "
        + ", ".join(f"{k} {v}" for k, v in res["versions"].items())
        + ".",
        "",
        f"One step: forward, loss, backward, Adam step on a batch; median of {res['reps']} "
        f"interleaved steps after {res['warmup']} warm-up steps.",
        "",
        "| T | batch | model | s per batch | samples/s | x fused |",
        "|---|---|---|---|---|---|",
    ]
    for T in sorted({r["T"] for r in res["rows"]}):
        sel = [r for r in res["rows"] if r["T"] == T]
        fused = next(r for r in sel if r["name"] == "ours, fused kernel")
        for r in sel:
            ratio = r["s_per_batch"] / fused["s_per_batch"]
            lines.append(
                f"| {T} | {r['batch']} | {r['name']} | {r['s_per_batch']:.4f} | "
                f"{r['samples_per_s']:.1f} | {ratio:.2f} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
