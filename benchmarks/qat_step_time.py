"""Time of one quantisation-aware training step (integer program built from the current weights,
integer forward, backward, Adam step) on the demo's VGG (event-digits, T = 4, batch 64) and on the
shapes3d PointNet, where pushing an identity basis through the pooling chain used to cost seconds.

    OMP_NUM_THREADS=1 python -P benchmarks/qat_step_time.py [--steps 5]

Prints per model the median over ``--steps`` timed steps (one warm-up step first) of the whole
step and of building the training program alone (:meth:`QATNet.program` in train mode).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

import torch

from neurodeploy.data import load_task
from neurodeploy.demo import DEMO_CONFIG
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.qat import QATNet
from neurodeploy.quant.quantize import input_settings

BATCH = 64
MODELS = (("event-digits", "vgg", DEMO_CONFIG.T), ("shapes3d", "pointnet", 4))


def time_model(task_name: str, model_name: str, T: int, steps: int) -> tuple[float, float]:
    """(median seconds per training step, median seconds to build the training program)."""
    task = load_task(task_name, T=T)
    torch.manual_seed(0)
    model = build_model(
        model_name, task.input_shape, task.num_classes, DEMO_CONFIG.neuron_config()
    ).eval()
    qnet = QATNet(model, **input_settings(task)).train()
    x = task.encode(task.x_train[:BATCH], T)
    y = task.y_train[:BATCH]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    step_s, build_s = [], []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        qnet.program()
        t1 = time.perf_counter()
        run = qnet.run(x)
        loss = torch.nn.functional.cross_entropy(run.logits.mean(0).float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        t2 = time.perf_counter()
        if i:  # the first step warms caches up
            build_s.append(t1 - t0)
            step_s.append(t2 - t1 + (t1 - t0))
    return statistics.median(step_s), statistics.median(build_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    print(
        f"{date.today()}; {platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s); batch {BATCH}, median of {args.steps} steps"
    )
    for task_name, model_name, T in MODELS:
        step, build = time_model(task_name, model_name, T, args.steps)
        print(
            f"{task_name:<14}{model_name:<10} step {step:7.3f} s   "
            f"of which program build {build:7.3f} s"
        )


if __name__ == "__main__":
    main()
