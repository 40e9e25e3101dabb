"""Throughput of Lava fixed_pt on a batch, one runtime for the whole batch against one runtime per
sample (the way before), and of the reference integer simulator (and float torch, for scale), on
the same integer program and inputs, in one run.

Network: the N-MNIST-sized conv net of the spec's anchor (2x34x34 events -> conv16 -> pool ->
conv32 -> pool -> dense10; each pooling is data on the next synapse, which Lava runs as the
equivalent pool-free kernel), ~5 % input event density, T = 8. Lava samples/s count everything
a user waits for: building the process graph, compiling, creating the runtime, running, reading
the sinks and stopping, for 1, 16 and 64 samples. "One runtime per sample" is
``LavaTarget.run`` with B = 1 in a loop; its time for n samples is the loop's time after n
samples (one loop of the largest n); one untimed run first imports Lava's process models for
both. Every Lava result (spikes of every layer and the readout,
per sample) is asserted bit-exact against ``ReferenceTarget(program, latency=True)``.
Writes benchmarks/results/reference_vs_lava.md and .json.

    OMP_NUM_THREADS=2 .venv/bin/python -P benchmarks/reference_vs_lava.py [--samples 1 16 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.nn.layers import NeuronConfig
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.targets import TargetResult
from neurodeploy.targets.reference import ReferenceTarget

RESULTS = Path(__file__).parent / "results"
# the committed result of this benchmark before Lava ran batches (commit 224e20e, 2026-11-27, this
# machine class): one runtime per sample, sinks read through Var.get (one value per message)
BEFORE = (
    "Before one runtime per batch (commit 224e20e, 2026-11-27, same machine class): Lava fixed_pt "
    "0.25 samples/s (3.96 s per sample: run 0.33 s, build, compile, read-out and stop 3.64 s)."
)
REPEAT = 5  # repeats of the (fast) reference and float timings; the median is reported
INPUT_DENSITY = 0.05


def network() -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_model(
        "vgg", (2, 34, 34), 10, NeuronConfig(mps=False), channels=(16, "P", 32, "P")
    ).eval()
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(
                    0.02, 0.04
                )  # enough drive for a few % firing in both layers
                mod.running_mean.uniform_(-0.02, 0.02)
    return m


def median_time(fn: Callable[[], Any], repeat: int = REPEAT) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@dataclass
class Row:
    what: str
    samples: int
    seconds: float  # wall seconds for all samples
    bit_exact: bool | None = None  # Lava vs the reference with latency, every layer and the readout

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds


def assert_equal(lava: TargetResult, ref: TargetResult, what: str) -> bool:
    """Every layer's spikes and the readout, per sample, bit for bit (raises otherwise)."""
    for k, (a, b) in enumerate(zip(lava.spikes, ref.spikes, strict=True)):
        if not np.array_equal(a, b):
            raise AssertionError(f"{what}: layer {k} spikes differ from the reference")
    if not np.array_equal(lava.output, ref.output):
        raise AssertionError(f"{what}: readout differs from the reference")
    if lava.states is not None:
        if ref.states is None:
            raise AssertionError(f"{what}: the reference recorded no states to compare with")
        for k, (a, b) in enumerate(zip(lava.states, ref.states, strict=True)):
            if not np.array_equal(a, b):
                raise AssertionError(f"{what}: layer {k} states differ from the reference")
    return True


def lava_rows(
    prog: IntProgram, x: np.ndarray, sizes: list[int]
) -> tuple[list[Row], dict[str, Any]]:
    from neurodeploy.targets.lava import LavaTarget

    lt = LavaTarget(prog)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(
        x[:, : max(sizes)], record_states=True
    )
    rows, phases = [], {}
    lt.run(x[:, :1])  # warm-up, untimed: Lava's first compile imports its process models
    for n in sizes:  # one runtime for the batch
        t0 = time.perf_counter()
        r = lt.run(x[:, :n])
        total = time.perf_counter() - t0
        sub = TargetResult([s[:, :n] for s in ref.spikes], ref.output[:, :n], ref.layer_names)
        rows.append(
            Row(
                f"Lava fixed_pt, one runtime for {n}",
                n,
                total,
                assert_equal(r, sub, f"batch of {n}"),
            )
        )
        phases[f"batch {n}"] = r.seconds
    n = max(sizes)  # the largest batch once more, recording every layer's state as well
    t0 = time.perf_counter()
    r = lt.run(x[:, :n], record_states=True)
    total = time.perf_counter() - t0
    sub = TargetResult(
        [s[:, :n] for s in ref.spikes],
        ref.output[:, :n],
        ref.layer_names,
        states=[s[:, :n] for s in ref.states or []],
    )
    rows.append(
        Row(
            f"Lava fixed_pt, one runtime for {n}, states recorded too",
            n,
            total,
            assert_equal(r, sub, f"batch of {n} with states"),
        )
    )
    phases[f"batch {n} with states"] = r.seconds
    elapsed, per_sample = 0.0, []
    for i in range(max(sizes)):  # one runtime per sample, the way before
        t0 = time.perf_counter()
        r = lt.run(x[:, i : i + 1])
        elapsed += time.perf_counter() - t0
        one = TargetResult(
            [s[:, i : i + 1] for s in ref.spikes], ref.output[:, i : i + 1], ref.layer_names
        )
        assert_equal(r, one, f"sample {i} alone")
        per_sample.append(r.seconds)
        if i + 1 in sizes:
            rows.append(
                Row(f"Lava fixed_pt, one runtime per sample, {i + 1} samples", i + 1, elapsed, True)
            )
    phases["one runtime per sample (median over samples)"] = {
        k: statistics.median(s[k] for s in per_sample) for k in per_sample[0]
    }
    return rows, phases


def machine() -> dict[str, Any]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": platform.machine(),
        "processor": platform.processor() or "",
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "lava-nc": version("lava-nc"),
        "lava-dl": version("lava-dl"),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--T", type=int, default=8)
    ap.add_argument("--samples", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--out", default=str(RESULTS / "reference_vs_lava.md"))
    a = ap.parse_args()
    sizes = sorted(set(a.samples))
    B = max(sizes)
    model = network()
    prog = quantize_model(model, LOIHI2, input_kind="binary")
    rng = np.random.default_rng(0)
    x = (rng.random((a.T, B, 2, 34, 34)) < INPUT_DENSITY).astype(np.int64)
    sim = ReferenceTarget(prog, device="cpu")
    res = sim.run(x)
    rates = [float(s.mean()) for s in res.spikes]
    rows = [
        Row(f"reference simulator, CPU, batch {B}", B, median_time(lambda: sim.run(x))),
        Row("reference simulator, CPU, batch 1", 1, median_time(lambda: sim.run(x[:, :1]))),
    ]
    sim_lat = ReferenceTarget(prog, device="cpu", latency=True)
    rows.append(
        Row(
            f"reference simulator with Lava's latency, CPU, batch {B}",
            B,
            median_time(lambda: sim_lat.run(x)),
        )
    )
    if torch.cuda.is_available():
        simg = ReferenceTarget(prog, device="cuda")
        simg.run(x)
        torch.cuda.synchronize()
        rows.append(
            Row(
                f"reference simulator, CUDA, batch {B}",
                B,
                median_time(lambda: (simg.run(x), torch.cuda.synchronize())),
            )
        )
    folded = fold_batchnorm(model)
    xf = torch.as_tensor(x, dtype=torch.float32)
    with torch.no_grad():
        rows.append(
            Row(
                f"float torch model, CPU, batch {B} (for scale)", B, median_time(lambda: folded(xf))
            )
        )
    phases: dict[str, Any] = {}
    note = ""
    try:
        lrows, phases = lava_rows(prog, x, sizes)
        rows += lrows
        batched = {r.samples: r for r in lrows if r.what.endswith(f"one runtime for {r.samples}")}
        looped = {r.samples: r for r in lrows if "one runtime per sample" in r.what}
        note = (
            "Lava speed-up of one runtime per batch over one runtime per sample: "
            + ", ".join(
                f"{n} samples {batched[n].samples_per_s / looped[n].samples_per_s:.1f}x"
                for n in sizes
            )
            + "."
        )
    except ImportError as e:
        note = f"Lava not available: {e}"
    info = machine()
    steps = a.T + max(prog.depths().values())  # a chain's: its number of layers
    lines = [
        "# Lava fixed_pt: one runtime per batch vs one per sample; the reference simulator",
        "",
        f"Date {info['date']}; {info['machine']} {info['processor']}, {info['cpu_count']} CPUs, "
        f"{info['torch_threads']} torch threads (OMP_NUM_THREADS={info['omp_num_threads']}), "
        f"Python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, "
        f"lava-nc {info['lava-nc']}, lava-dl {info['lava-dl']}; GPU: {info['gpu']}.",
        "Network: 2x34x34 events -> conv16 -> pool -> conv32 -> pool -> dense10 "
        f"({[l.kind for l in prog.layers]}, "
        f"pools {[l.synapse.pool for l in prog.layers]}), T={a.T} ({steps} steps per sample with Lava's "
        f"latency), input density {INPUT_DENSITY:.0%}, firing rates per layer "
        f"{[round(r, 3) for r in rates]}.",
        "Lava: wall time of everything (build, compile, create runtime, run, read, stop), once; "
        f"reference and float torch: median of {REPEAT} runs. Every Lava result is bit-exact with the "
        "reference (latency=True) in every layer's spikes and the readout (and states where "
        "recorded), sample by sample (asserted).",
        "",
        "| what | samples | seconds | samples/s | bit-exact |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        exact = "-" if r.bit_exact is None else ("yes" if r.bit_exact else "NO")
        lines.append(
            f"| {r.what} | {r.samples} | {r.seconds:.3f} | {r.samples_per_s:.2f} | {exact} |"
        )
    lines += ["", note, "", BEFORE, "", "Lava seconds per phase:", ""]
    lines += [
        f"- {k}: " + ", ".join(f"{p} {v:.2f}" for p, v in sec.items()) for k, sec in phases.items()
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(a.out)
    out.write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "machine": info,
                "T": a.T,
                "steps_per_sample": steps,
                "input_density": INPUT_DENSITY,
                "firing_rates": rates,
                "rows": [{**asdict(r), "samples_per_s": r.samples_per_s} for r in rows],
                "lava_phases": phases,
                "note": note,
                "before": BEFORE,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
