"""PilotNet SNN energy against Intel's Loihi 2 measurement (issue 18, item 4).

lava-dl's PilotNet SNN (``../shared/fixtures/lava-dl/pilotnet_snn_network.net``), imported with
:func:`~neurodeploy.converters.netx_import.netx_to_program`, profiled on our reference simulator
(bit-exact with Lava fixed_pt) at stated input activity, its counts priced under each energy
model (``cmos45``, ``loihi``) and set against Intel's measurement on one Loihi 2 chip (fixtures
README): 408.9 inferences/s at 16 steps per inference, 0.447 W dynamic, 0.232 W static,
1.094 mJ dynamic per inference. Result: the ``loihi`` model lands within 0.89x to 1.06x of the
measurement over the whole sweep (1.01x at the plausible point), so no Loihi 2 model was
calibrated (the issue asks for one only beyond 2x).

Input pipeline (lava-dl tutorial ``tutorials/lava/lib/dl/netx/pilotnet_snn``): a frame of pixels
p in [0, 1] becomes the integers ``x = trunc(2 w p - w + b)`` (``dataset.py``; w = 40, b = 36,
the file's input-layer ``weight`` and ``bias``), delta-encoded between frames and integrated into
the input neuron's current, which the tutorial makes persistent (``du = -1``); the network resets
every 16 steps. Each input neuron therefore sees the constant current ``x << 6`` for the 16 steps
of one inference, which is what feeding the imported program the constant graded input x at every
step gives (its input neuron has du = 4095: u = a_in << 6 each step).

The input neuron (CUBA, dv = 1024, vth = 25 << 6 = 1600, no bias) with that constant current::

    v(t) = v(t-1) - (v(t-1) * 1024 >> 12) + 64 x ;   spike and v = 0 when v > 1600

reaches ``v = 256 x`` at most, so it is silent for x <= 6 (p < 0.1375), fires every step for
x >= 26 (p >= 0.375: 64 x > 1600 on the first step) and in between every k-th step (table
:func:`input_rate_table`, computed by these two lines, not by the simulator).

The PilotNet driving data set is not available here. Frames are synthesised (:func:`frames`):
a smooth random field (Gaussian-filtered white noise, sigma ``SMOOTH_PX`` pixels) plus a vertical
ramp (sky to road), shared by the three channels with a weaker per-channel field, rescaled to a
stated mean and standard deviation of p, clipped to [0, 1]. The sweep varies the mean and the
contrast (standard deviation) so that the input layer's rate spans ~0 to 1. The *plausible* point
is natural-image statistics: mean 0.45, standard deviation 0.225 (ImageNet's per-channel means
0.485 / 0.456 / 0.406 and standard deviations 0.229 / 0.224 / 0.225; daytime dash-cam frames are
natural images), where most pixels have p >= 0.375 and the input layer fires nearly every step.

    OMP_NUM_THREADS=2 .venv/bin/python -P benchmarks/pilotnet_energy.py [--samples N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from neurodeploy.converters.netx_import import netx_pixels, netx_to_program
from neurodeploy.data.inputs import Inputs, InputSettings
from neurodeploy.measure.energy import PJ
from neurodeploy.measure.profiling import profile
from neurodeploy.quant.program import IntProgram
from neurodeploy.targets.reference import ReferenceTarget

RESULTS = Path(__file__).parent / "results"
NAME = "pilotnet_energy"
FIXTURE = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "fixtures"
    / "lava-dl"
    / ("pilotnet_snn_network.net")
)
STEPS = 16  # steps per inference (the file's simulation/tSample; Intel's benchmark)
MODELS = ("cmos45", "loihi")
SAMPLES = 16  # frames per sweep point
THROUGHPUT_BATCH = 32  # frames per reference-simulator run for the inferences/s figure
SMOOTH_PX = 4.0  # Gaussian smoothing of the random field (pixels)
RAMP_SHARE = 0.5  # share of the vertical ramp in the shared field (before rescaling)
CHANNEL_SHARE = 0.3  # weight of the per-channel field against the shared one
PLAUSIBLE = (0.45, 0.225)  # (mean, std) of p: natural-image statistics (module docstring)
#: (mean, std) of the pixel level p: a mean sweep at the plausible contrast, a contrast sweep
#: at the plausible mean
SWEEP = (
    (0.05, 0.05),
    (0.1, 0.1),
    (0.2, 0.15),
    (0.3, 0.225),
    PLAUSIBLE,
    (0.6, 0.225),
    (0.8, 0.15),
    (0.45, 0.05),
    (0.45, 0.12),
    (0.45, 0.35),
)


@dataclass(frozen=True)
class Measurement:
    """Intel's PilotNet SNN benchmark on one Loihi 2 chip (fixtures README)."""

    inferences_per_s: float = 408.9
    steps_per_inference: int = 16
    dynamic_w: float = 0.447
    static_w: float = 0.232
    dynamic_mj: float = 1.094  # = dynamic_w / inferences_per_s (0.447 / 408.9 = 1.0932 mJ)
    source: str = (
        "lava-nc/lava-dl tutorials/lava/lib/dl/netx/pilotnet_snn, benchmark on one Loihi 2 "
        "chip (../shared/fixtures/README.md)"
    )


INTEL = Measurement()
HAND_P = (0.0, 0.1, 0.1375, 0.15, 0.2, 0.25, 0.3, 0.35, 0.375, 0.45, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class InputLayer:
    """The netx input layer's transform and neuron (from the file)."""

    weight: int
    bias: int
    dv: int
    vth: int

    def x(self, p: np.ndarray) -> np.ndarray:
        """Pixels p in [0, 1] -> the tutorial's integers ``trunc(2 w p - w + b)``."""
        return netx_pixels(p, {"weight": self.weight, "bias": self.bias})

    def rate(self, x: int, steps: int = STEPS) -> float:
        """Spikes per step of the input neuron fed the constant current ``x << 6`` for ``steps``
        steps from v = 0 (Lava's LIF, fixed_pt; the decay rounds the magnitude down)."""
        v, n = 0, 0
        for _ in range(steps):
            dec = v * (4096 - self.dv)
            v = int(math.copysign(abs(dec) >> 12, dec)) + (x << 6)
            if v > self.vth << 6:
                n, v = n + 1, 0
        return n / steps


def input_layer(path: Path = FIXTURE) -> InputLayer:
    with h5py.File(path, "r") as f:
        g = f["layer/0"]
        return InputLayer(
            int(g["weight"][()]),
            int(g["bias"][()]),
            int(g["neuron/vDecay"][()]),
            int(g["neuron/vThMant"][()]),
        )


def input_rate_table(layer: InputLayer) -> list[dict[str, float]]:
    return [
        {"p": p, "x": int(layer.x(np.array(p))), "rate": layer.rate(int(layer.x(np.array(p))))}
        for p in HAND_P
    ]


def _smooth(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Gaussian-filtered white noise (sigma SMOOTH_PX, FFT), zero mean, unit std."""
    h, w = shape
    z = rng.standard_normal(shape)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    g = np.exp(-2 * (math.pi * SMOOTH_PX) ** 2 * (fx**2 + fy**2))
    s = np.fft.ifft2(np.fft.fft2(z) * g).real
    return (s - s.mean()) / s.std()


def frames(n: int, mean: float, std: float, *, seed: int = 0) -> np.ndarray:
    """``n`` synthetic frames (n, 3, 66, 200) of pixel levels in [0, 1] (module docstring)."""
    rng = np.random.default_rng(seed)
    h, w = 66, 200
    ramp = np.linspace(-1.0, 1.0, h)[:, None] * np.ones((1, w))
    ramp = (ramp - ramp.mean()) / ramp.std()
    out = np.empty((n, 3, h, w))
    for i in range(n):
        shared = RAMP_SHARE * ramp + (1 - RAMP_SHARE) * _smooth(rng, (h, w))
        for c in range(3):
            f = shared + CHANNEL_SHARE * _smooth(rng, (h, w))
            out[i, c] = mean + std * (f - f.mean()) / f.std()
    return np.clip(out, 0.0, 1.0)


def to_program_layout(x: np.ndarray, program: IntProgram) -> np.ndarray:
    """(n, 3, 66, 200) -> (n, *program.input_shape): CHW as is, or netx's WHC order."""
    want = tuple(program.input_shape)
    if want == x.shape[1:]:
        return x
    if want == (x.shape[3], x.shape[2], x.shape[1]):
        return np.ascontiguousarray(x.transpose(0, 3, 2, 1))
    raise ValueError(f"program input shape {want}: expected (3, 66, 200) or (200, 66, 3)")


@dataclass
class Point:
    mean: float
    std: float
    p_mean: float  # mean pixel level after clipping
    x_mean: float
    input_rate: float
    rates: dict[str, float]  # per layer
    synops: float  # per inference
    spikes: float
    neuron_updates: float
    energy_mj: dict[str, float]  # per model, dynamic
    components_mj: dict[str, dict[str, float]]
    ratio: dict[str, float]  # estimate / Intel's dynamic energy
    layers: list[dict[str, float | str]]  # per layer: neurons, synops, spikes, loihi mJ


def load_program() -> IntProgram:
    return netx_to_program(FIXTURE)


def measure(program: IntProgram, layer: InputLayer, mean: float, std: float, n: int) -> Point:
    p = frames(n, mean, std)
    x = to_program_layout(layer.x(p).astype(np.float32), program)
    inputs = Inputs(
        "pilotnet-synthetic",
        torch.from_numpy(x),
        None,
        tuple(program.input_shape),
        False,
        STEPS,
        InputSettings("graded", float(np.abs(x).max() or 1), True),
        f"synthetic frames, pixel mean {mean}, std {std}, {n} frames",
    )
    prof = profile(
        program,
        inputs,
        STEPS,
        "reference",
        samples=n,
        batch_size=n,
        energy_models=MODELS,
        membranes=False,
        progress=False,
    )
    tot = prof.counts.totals()
    rates = {l.name: l.per_sample()["firing_rate"] for l in prof.counts.layers if l.neurons}
    first = next(iter(rates))
    energy = {e.model: e.total_pj * PJ * 1e3 for e in prof.energy}
    loihi = prof.energy_by_model()["loihi"]
    per_layer: list[dict[str, float | str]] = [
        {
            "name": l.name,
            "neurons": l.neurons,
            "synops": l.per_sample()["synops"],
            "macs": l.per_sample()["macs"],
            "spikes": l.per_sample()["spikes"],
            "loihi_mj": loihi.per_layer_pj[l.name] * PJ * 1e3,
        }
        for l in prof.counts.layers
    ]
    return Point(
        mean,
        std,
        float(p.mean()),
        float(x.mean()),
        rates[first],
        rates,
        tot["synops"],
        tot["spikes"],
        tot["neuron_updates"],
        energy,
        {e.model: {k: v * PJ * 1e3 for k, v in e.components_pj.items()} for e in prof.energy},
        {m: v / INTEL.dynamic_mj for m, v in energy.items()},
        per_layer,
    )


def throughput(program: IntProgram, layer: InputLayer, batch: int = THROUGHPUT_BATCH) -> float:
    """Inferences per second of the reference simulator: ``batch`` plausible frames, 16 steps
    each, one run (best of three; conversion to integers included)."""
    p = frames(batch, *PLAUSIBLE, seed=1)
    x = to_program_layout(layer.x(p), program)
    xi = np.broadcast_to(x[None], (STEPS, *x.shape)).astype(np.int64)
    target = ReferenceTarget(program, device="cpu")
    target.run(xi[:, :2], steps=STEPS)  # warm-up
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        target.run(xi, steps=STEPS)
        best = min(best, time.perf_counter() - t0)
    return batch / best


def write(points: list[Point], hand: list[dict[str, float]], meta: dict[str, Any]) -> str:
    m = INTEL
    lines = [
        "# PilotNet SNN: our energy estimate against Intel's Loihi 2 measurement",
        "",
        f"Written by `benchmarks/pilotnet_energy.py` on {meta['date']}; {meta['machine']}; "
        f"OMP_NUM_THREADS={meta['threads']}; torch {meta['torch']}, lava-nc {meta['lava']}. "
        f"Network: `{FIXTURE.name}` via `netx_to_program`; {meta['neurons']} neurons "
        f"(input layer {meta['input_neurons']}), {STEPS} steps per inference, "
        f"{meta['samples']} synthetic frames per point, reference simulator (bit-exact with "
        "Lava fixed_pt).",
        "",
        f"Intel, one Loihi 2 chip ({m.source}): {m.inferences_per_s} inferences/s, "
        f"{m.dynamic_w} W dynamic, {m.static_w} W static, **{m.dynamic_mj} mJ dynamic per "
        "inference**.",
        "",
        "## Input neuron by hand: x = trunc(80 p - 4), constant current x << 6, 16 steps",
        "",
        "| p | x | spikes per step |",
        "|---|---|---|",
    ]
    lines += [f"| {h['p']:.4g} | {h['x']} | {h['rate']:.4f} |" for h in hand]
    lines += [
        "",
        "## Sweep (per inference; energy dynamic, mJ; ratio = estimate / 1.094 mJ)",
        "",
        "| pixel mean / std | p mean | input rate | mean rate, other layers | SynOps | spikes | "
        + " | ".join(f"{k} mJ (ratio)" for k in MODELS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(MODELS),
    ]
    for pt in points:
        others = list(pt.rates.values())[1:]
        mark = " **(plausible)**" if (pt.mean, pt.std) == PLAUSIBLE else ""
        lines.append(
            f"| {pt.mean} / {pt.std}{mark} | {pt.p_mean:.3f} | {pt.input_rate:.3f} | "
            f"{np.mean(others):.3f} | {pt.synops:.4g} | {pt.spikes:.4g} | "
            + " | ".join(f"{pt.energy_mj[k]:.4g} ({pt.ratio[k]:.2f})" for k in MODELS)
            + " |"
        )
    pl = next(pt for pt in points if (pt.mean, pt.std) == PLAUSIBLE)
    lines += [
        "",
        "## Firing rate per layer (spikes per neuron and step)",
        "",
        "| pixel mean / std | " + " | ".join(pl.rates) + " |",
        "|---|" + "---|" * len(pl.rates),
    ]
    for pt in points:
        lines.append(
            f"| {pt.mean} / {pt.std} | " + " | ".join(f"{r:.3f}" for r in pt.rates.values()) + " |"
        )
    lines += [
        "",
        "## Where the energy goes at the plausible point (mJ per inference)",
        "",
        "| model | " + " | ".join(pl.components_mj["loihi"]) + " | total |",
        "|---|" + "---|" * (len(pl.components_mj["loihi"]) + 1),
    ]
    for k in ("loihi",):
        c = pl.components_mj[k]
        lines.append(
            f"| {k} | " + " | ".join(f"{v:.4g}" for v in c.values()) + f" | {sum(c.values()):.4g} |"
        )
    lines += [
        "",
        "## Per layer at the plausible point (per inference)",
        "",
        "| layer | neurons | SynOps into it (of which graded MACs) | spikes | loihi mJ | share |",
        "|---|---|---|---|---|---|",
    ]
    for r in pl.layers:
        lines.append(
            f"| {r['name']} | {r['neurons']} | {r['synops']:.4g} ({r['macs']:.4g}) | "
            f"{r['spikes']:.4g} | {r['loihi_mj']:.4g} | "
            f"{float(r['loihi_mj']) / pl.energy_mj['loihi']:.1%} |"
        )
    lines += [
        "",
        f"Neuron updates per inference: {meta['neurons']} neurons x {STEPS} steps = "
        f"{pl.neuron_updates:.4g} (Loihi updates every compartment every step).",
        "",
        "## Throughput",
        "",
        f"Reference simulator on this CPU ({meta['threads']} threads, batch of "
        f"{THROUGHPUT_BATCH} plausible frames, {STEPS} steps): **{meta['inferences_per_s']:.1f} "
        f"inferences/s**, against Intel's {m.inferences_per_s} inferences/s on one Loihi 2 chip "
        f"({meta['inferences_per_s'] / m.inferences_per_s:.3f}x).",
        "",
        NOTES,
    ]
    return "\n".join(lines)


NOTES = """## Notes

- Plausible activity: natural-image statistics (pixel mean 0.45, std 0.225). The input neuron
  fires every step from p = 0.375 on (table above), so at that point most of the 39,600 input
  neurons fire every step and the first convolution's synaptic operations dominate. Dark or
  low-contrast frames are the low end of the sweep; they are not what a daytime dash-cam sees.
- Counts are per inference as the chip runs it: 16 steps, every layer reset each inference
  (netx's pipelined reset gives each layer 16 steps of its input). The input layer's synapse is
  the one-to-one graded feed of our program (counted as MACs each step); on the chip the frame
  arrives once per inference as a delta and is held in the persistent current, so those few
  operations are a small overcount (see the synops row of the input layer in the JSON).
- `loihi` is the Loihi 1 per-operation model (Davies et al. 2018, pre-silicon minimum per-op
  figures) applied to a Loihi 2 program. It lands within 0.89x-1.06x of Intel's measured
  dynamic energy over the whole sweep, so no `loihi2` model was calibrated (the issue asks for
  one beyond 2x). The agreement is a statement about totals, not per-op figures: Loihi 2's
  per-op energies are not public, and the measured dynamic power also pays for what the model
  leaves out (tile hops, the embedded processors and I/O that feed frames and read the output,
  barrier synchronisation). Static power is not compared: Intel's 0.232 W (0.567 mJ per
  inference) is the chip's; ours is 0.1 W times a serial one-core time bound.
- `cmos45` prices only arithmetic (0.9 pJ per AC, 4.6 pJ per MAC: no neuron updates, no
  memory access) and is ~28x below the chip: it is the figure SNN papers quote, not a chip's.
- The data set is synthetic: deeper layers' rates depend on image structure that only real
  frames have; the sweep shows how far the estimate moves with input activity.
"""


def run(samples: int) -> None:
    program = load_program()
    layer = input_layer()
    hand = input_rate_table(layer)
    points = []
    for mean, std in SWEEP:
        t0 = time.time()
        points.append(measure(program, layer, mean, std, samples))
        pt = points[-1]
        print(
            f"mean {mean} std {std}: input rate {pt.input_rate:.3f}, synops {pt.synops:.4g}, "
            + ", ".join(f"{k} {v:.4g} mJ" for k, v in pt.energy_mj.items())
            + f" ({time.time() - t0:.1f} s)",
            flush=True,
        )
    neurons = sum(math.prod(l.out_shape) for l in program.layers if l.neuron is not None)
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}, "
        f"{os.cpu_count()} CPUs",
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "torch": torch.__version__,
        "lava": metadata.version("lava-nc"),
        "samples": samples,
        "neurons": neurons,
        "input_neurons": math.prod(program.layers[0].out_shape),
        "inferences_per_s": throughput(program, layer),
        "intel": asdict(INTEL),
        "plausible": PLAUSIBLE,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(
        json.dumps(
            {"meta": meta, "input_neuron": hand, "points": [asdict(p) for p in points]}, indent=1
        )
    )
    md = write(points, hand, meta)
    (RESULTS / f"{NAME}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=SAMPLES, help="frames per sweep point")
    run(ap.parse_args().samples)
