"""Throughput of the reference integer simulator against Lava fixed_pt (and float torch) on the same
integer program and inputs, in one run. Network: the N-MNIST-sized conv net of the spec's anchor
(2x34x34 events -> conv16 -> pool -> conv32 -> pool -> dense10; pooling folded into the next
synapse), ~5% input event density, T=8. Lava runs one sample at a time; its start-up (build,
compile, create runtime) is timed apart from its steady-state run. Every Lava sample is checked
against the reference (bit for bit). Writes benchmarks/results/reference_vs_lava.md.

    .venv/bin/python benchmarks/reference_vs_lava.py [--lava-samples 8] [--batch 64]
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.targets.reference import ReferenceTarget


def network():
    torch.manual_seed(0)
    m = build_model("vgg", (2, 34, 34), 10, NeuronConfig(mps=False), channels=(16, "P", 32, "P")).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.02, 0.04)   # enough drive for a few % firing in both layers
                mod.running_mean.uniform_(-0.02, 0.02)
    return m


def best_of(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lava-samples", type=int, default=8)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "reference_vs_lava.md"))
    a = ap.parse_args()
    model = network()
    prog = quantize_model(model, LOIHI2, input_kind="binary")
    rng = np.random.default_rng(0)
    x = (rng.random((a.T, a.batch, 2, 34, 34)) < 0.05).astype(np.int64)
    rows = []
    sim = ReferenceTarget(prog, device="cpu")
    res = sim.run(x)
    rates = [float(s.mean()) for s in res.spikes]
    best, med = best_of(lambda: sim.run(x), 5)
    rows.append(("reference simulator, CPU, batch %d" % a.batch, a.batch / med, med / a.batch))
    sim1 = ReferenceTarget(prog, device="cpu")
    best1, med1 = best_of(lambda: sim1.run(x[:, :1]), 5)
    rows.append(("reference simulator, CPU, batch 1", 1 / med1, med1))
    if torch.cuda.is_available():
        simg = ReferenceTarget(prog, device="cuda")
        simg.run(x)
        torch.cuda.synchronize()
        bg, mg = best_of(lambda: (simg.run(x), torch.cuda.synchronize()), 5)
        rows.append(("reference simulator, CUDA, batch %d" % a.batch, a.batch / mg, mg / a.batch))
    folded = fold_batchnorm(model)
    xf = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        bf, mf = best_of(lambda: folded(xf), 5)
    rows.append(("float torch model, CPU, batch %d (for scale)" % a.batch, a.batch / mf, mf / a.batch))
    lava_note, equal = "", None
    try:
        from neurodeploy.targets.lava import LavaTarget
        lt = LavaTarget(prog)
        ref_lat = ReferenceTarget(prog, device="cpu", latency=True)
        runs, equal = [], True
        for i in range(a.lava_samples):
            t0 = time.perf_counter()
            r = lt.run(x[:, i])
            total = time.perf_counter() - t0
            runs.append((total, r.seconds))
            want = ref_lat.run(x[:, i:i + 1])
            equal &= all(np.array_equal(sl, sr[:, 0]) for sl, sr in zip(r.spikes, want.spikes))
        steady = statistics.median(s["run"] for _, s in runs)
        startup = statistics.median(t - s["run"] for t, s in runs)
        rows.append(("Lava fixed_pt, steady state (run only), 1 sample", 1 / steady, steady))
        rows.append(("Lava fixed_pt, incl. build/compile/read/stop, 1 sample",
                     1 / statistics.median(t for t, _ in runs), statistics.median(t for t, _ in runs)))
        lava_note = (f"Lava per sample: run {steady * 1000:.0f} ms for {a.T + len(prog.layers)} steps "
                     f"({steady / (a.T + len(prog.layers)) * 1000:.1f} ms per step), start-up and read-out "
                     f"{startup * 1000:.0f} ms; {a.lava_samples} samples, all bit-exact with the reference: {equal}.")
    except ImportError as e:
        lava_note = f"Lava not available: {e}"
    ref_rate = rows[0][1]
    lines = ["# Reference simulator vs Lava fixed_pt", "",
             f"Date {time.strftime('%Y-%m-%d %H:%M')}; {platform.machine()} {platform.processor() or ''}, "
             f"{torch.get_num_threads()} torch threads, Python {platform.python_version()}, torch {torch.__version__}, "
             f"numpy {np.__version__}; GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none'}.",
             f"Network: 2x34x34 events -> conv16 -> pool -> conv32 -> pool -> dense10 (pooling folded into the next "
             f"synapse: {[l.kind for l in prog.layers]}), T={a.T}, input density 5%, firing rates per layer "
             f"{[round(r, 3) for r in rates]}. Timings are medians of 5 runs (Lava: of {a.lava_samples} samples).",
             "", "| what | samples/s | s per sample | reference (batch) / this |", "|---|---|---|---|"]
    for name, sps, sec in rows:
        lines.append(f"| {name} | {sps:.1f} | {sec:.5f} | {ref_rate / sps:.1f}x |")
    lines += ["", lava_note]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
