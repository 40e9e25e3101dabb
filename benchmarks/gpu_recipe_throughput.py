"""Training throughput of a recipe (default: CIFAR10-DVS, VGGSNN, T=4, 48x48, batch 64, SGD,
MPS + guidance) on synthetic data of the real shape, for one short epoch on the GPU.

The data are event-count frames drawn on the device (Poisson counts, mean ``--rate`` per pixel,
polarity and bin), so the number is the model's training speed (forward, loss, backward,
optimiser step through neurodeploy.training.train_step), without reading or binning events.
Each mixed-precision setting (the recipe's and "off") runs ``--warmup`` batches untimed, then
``--samples`` samples timed with CUDA synchronisation. Writes a table with machine, versions
and date to benchmarks/results/gpu_recipe_throughput.md (and .json).

    python benchmarks/gpu_recipe_throughput.py                       # on a CUDA machine
    python benchmarks/gpu_recipe_throughput.py --tiny --device cpu --out /tmp/t.md   # CPU smoke test
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from neurodeploy.training import distributed as D
from neurodeploy.training.loop import _build, train_step
from neurodeploy.training.recipe import load_recipe

ROOT = Path(__file__).resolve().parents[1]
CIFAR10_DVS_SHAPE = (2, 48, 48)  # per timestep, after the recipe's 48x48 resize
CIFAR10_DVS_CLASSES = 10


def run_setting(
    cfg,
    device: torch.device,
    amp_mode: str,
    samples: int,
    warmup: int,
    rate: float,
    input_shape: tuple[int, ...],
) -> dict:
    spec = SimpleNamespace(input_shape=input_shape, num_classes=CIFAR10_DVS_CLASSES)
    model, opt, _ = _build(cfg, spec, device)
    model.train()
    amp = D.amp_dtype(amp_mode, device)
    scaler = D.grad_scaler(amp)
    loss_fn = cfg.loss_fn()
    g = torch.Generator(device=device).manual_seed(0)
    B = cfg.batch_size

    def batch():
        x = torch.poisson(torch.full((cfg.T, B, *input_shape), rate, device=device), generator=g)
        y = torch.randint(0, CIFAR10_DVS_CLASSES, (B,), device=device, generator=g)
        return x, y

    data = [batch() for _ in range(4)]  # reused: generation stays out of the timing
    for i in range(warmup):
        x, y = data[i % 4]
        train_step(model, opt, loss_fn, x=x, y=y, amp=amp, device=device, scaler=scaler)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    steps = max(1, samples // B)
    t0 = time.perf_counter()
    for i in range(steps):
        x, y = data[i % 4]
        _, loss, _ = train_step(
            model, opt, loss_fn, x=x, y=y, amp=amp, device=device, scaler=scaler
        )
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t0
    peak = (
        torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    )
    return {
        "amp": amp_mode if amp is not None else "off",
        "samples": steps * B,
        "seconds": dt,
        "samples_per_s": steps * B / dt,
        "ms_per_batch": 1000 * dt / steps,
        "peak_gib": peak,
        "final_loss": float(loss.detach()),
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default=str(ROOT / "recipes" / "cifar10-dvs.toml"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--samples", type=int, default=4096, help="timed samples per setting (one short epoch)"
    )
    ap.add_argument("--warmup", type=int, default=5, help="untimed batches first")
    ap.add_argument(
        "--rate", type=float, default=0.2, help="mean events per pixel, polarity and bin"
    )
    ap.add_argument(
        "--tiny", action="store_true", help="small model and frames (CPU smoke test of this script)"
    )
    ap.add_argument(
        "--out", default=str(ROOT / "benchmarks" / "results" / "gpu_recipe_throughput.md")
    )
    a = ap.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device: this benchmark measures GPU throughput (use --device cpu --tiny to "
            "check the script itself)"
        )
    overrides: dict = {"data_root": "(synthetic)", "device": a.device}
    shape = CIFAR10_DVS_SHAPE
    if a.tiny:
        overrides.update(batch_size=4, arch={"channels": [8, "P", 16, "P"]})
        shape = (2, 16, 16)
    cfg = load_recipe(a.recipe, overrides)
    # the recipe's mixed precision and full precision; on the CPU autocast is off, so one row
    modes = [cfg.amp, "off"] if D.amp_dtype(cfg.amp, device) is not None else ["off"]
    rows = [run_setting(cfg, device, m, a.samples, a.warmup, a.rate, shape) for m in modes]
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "none"
    head = (
        f"Date {time.strftime('%Y-%m-%d %H:%M')}; {platform.machine()}, Python {platform.python_version()}, "
        f"torch {torch.__version__} (CUDA {torch.version.cuda}), device {device} ({gpu})."
    )
    setup = (
        f"Recipe {Path(a.recipe).name}{' (--tiny)' if a.tiny else ''}: model {cfg.model}, T={cfg.T}, input "
        f"{shape} per step, batch {cfg.batch_size}, {cfg.optimizer} lr {cfg.lr}, MPS {cfg.mps}, guidance "
        f"{cfg.guidance}; synthetic Poisson frames (rate {a.rate}), data generation and loading excluded; "
        f"{a.warmup} warm-up batches, then {rows[0]['samples']} samples timed per setting."
    )
    lines = [
        "# Training throughput of a recipe on the GPU (synthetic CIFAR10-DVS-shaped data)",
        "",
        head,
        setup,
        "",
        "| mixed precision | samples/s | ms per batch | peak GPU memory (GiB) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['amp']} | {r['samples_per_s']:.1f} | {r['ms_per_batch']:.1f} | {r['peak_gib']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "device": str(device),
        "gpu": gpu,
        "torch": torch.__version__,
        "recipe": Path(a.recipe).name,
        "tiny": a.tiny,
        "config": cfg.to_dict(),
        "rows": rows,
    }
    out.with_suffix(".json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
