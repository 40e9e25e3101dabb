"""Conformance between execution stages: float torch, the reference integer simulator, and Lava
fixed_pt (``neurodeploy verify``).

Pairs compared, per neuron layer (fraction of (step, sample, neuron) spikes that agree) and on the
predicted class:
- float torch (BatchNorm folded) vs reference simulator: what quantisation changes;
- reference simulator with Lava's pipeline latency vs Lava fixed_pt: must be identical (1.0);
- float torch vs Lava fixed_pt, Lava's layer L shifted back by its depth(L) steps of latency
  (:meth:`IntProgram.depths`: k + 1 for a chain's layer k; 1 + the deepest feed-forward source
  in a graph) (close, not exact: quantisation, and biases integrate alone during the latency
  steps).

Graph programs (residual, recurrent) compare layer by layer by name: the float spikes of each
neuron node of the graph model (:func:`~neurodeploy.measure.profiling.float_layer_spikes`)
against the program layer of the same name.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from neurodeploy.checks import check_count, check_optional_count
from neurodeploy.data import TaskData
from neurodeploy.data.inputs import Inputs, as_inputs
from neurodeploy.measure.profiling import float_layer_spikes
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram
from neurodeploy.targets import make_target
from neurodeploy.targets.reference import ReferenceTarget


@dataclass
class Conformance:
    layers: list[str]
    float_vs_ref: list[float]
    ref_vs_lava: list[float] | None
    pred_float_vs_ref: float
    pred_ref_vs_lava: float | None
    n_samples: int
    lava_seconds_per_sample: float | None = None  # with a Lava target: build to stop, per sample
    # the reference simulator's wall time per sample (always measured; keyword-only, so that the
    # fields keep their order, as in the JSON written by ``neurodeploy deploy``)
    ref_seconds_per_sample: float = field(kw_only=True)
    float_vs_lava: list[float] | None = (
        None  # Lava's layer k shifted back by its k+1 steps of latency
    )

    def format(self) -> str:
        head = f"{'layer':<12}{'float~ref':>11}" + (
            f"{'ref~lava':>11}{'float~lava':>12}" if self.ref_vs_lava is not None else ""
        )
        lines = [head]
        for i, name in enumerate(self.layers):
            row = f"{name:<12}{self.float_vs_ref[i]:>11.4f}"
            if self.ref_vs_lava is not None and self.float_vs_lava is not None:
                row += f"{self.ref_vs_lava[i]:>11.4f}{self.float_vs_lava[i]:>12.4f}"
            lines.append(row)
        lines.append(
            f"{'prediction':<12}{self.pred_float_vs_ref:>11.4f}"
            + (
                f"{self.pred_ref_vs_lava:>11.4f}"
                if self.pred_ref_vs_lava is not None
                else (f"{'-':>11}" if self.ref_vs_lava is not None else "")
            )
        )
        lines.append(
            f"{self.n_samples} samples; reference {self.ref_seconds_per_sample * 1000:.2f} ms/sample"
            + (
                f"; Lava fixed_pt {self.lava_seconds_per_sample:.2f} s/sample (one runtime for the batch: "
                "build, compile, run, read, stop)"
                if self.lava_seconds_per_sample is not None
                else ""
            )
        )
        return "\n".join(lines)


@torch.no_grad()
def verify(
    model: SpikingNet,
    program: IntProgram,
    task: TaskData | Inputs,
    T: int,
    *,
    n: int | None = 10,
    lava: bool = True,
    target: str = "lava",
) -> Conformance:
    """Compare float torch, the reference simulator and (with ``lava``) the Lava-based ``target``
    ("lava": our process graph; "netx": the exported netx HDF5 network) on the first ``n`` test
    samples of ``task`` (an offline task or resolved inputs, labels not needed; all with
    ``None``), T timesteps; the Lava target runs the whole batch in one runtime."""
    T = check_count("T", T)
    n = check_optional_count("n (samples)", n)
    src = as_inputs(task)
    n = len(src) if n is None else min(n, len(src))
    if n < 1:
        raise ValueError(f"{src.description}: no samples to verify on")
    x = src.encode(src.x[:n], T)
    z, float_spikes = float_layer_spikes(model, x, program)
    z_float = z.mean(0).argmax(-1).numpy()
    x_int, _ = program.quantize_input(x.numpy())
    t0 = time.perf_counter()
    ref = ReferenceTarget(program, device="cpu").run(x_int)
    ref_s = (time.perf_counter() - t0) / n
    names = ref.layer_names
    fvr = [
        float((fs.numpy().astype(np.uint8) == rs).mean())
        for fs, rs in zip(float_spikes, ref.spikes, strict=True)
    ]
    pred_ref = ref.predictions()
    out = Conformance(
        names, fvr, None, float((z_float == pred_ref).mean()), None, n, ref_seconds_per_sample=ref_s
    )
    if not lava:
        return out
    lt = make_target(target, program)
    t0 = time.perf_counter()
    r = lt.run(x_int)  # (T + depth, n, ...) per layer
    out.lava_seconds_per_sample = (time.perf_counter() - t0) / n
    ref_lat = ReferenceTarget(program, device="cpu", latency=True).run(x_int, steps=r.steps)
    out.ref_vs_lava = [
        float((sl == sr).mean()) for sl, sr in zip(r.spikes, ref_lat.spikes, strict=True)
    ]
    # layer L sees the input depth(L) steps late in Lava (biases integrate alone meanwhile,
    # so this pair is close, not exact)
    depth = program.depths()
    shifts = [depth[l.name] for l in program.layers if l.neuron is not None]
    out.float_vs_lava = [
        float((sl[d : d + T] == fs.numpy().astype(np.uint8)).mean())
        for d, sl, fs in zip(shifts, r.spikes, float_spikes, strict=True)
    ]
    if r.output is not None or r.spike_output:  # netx: hidden layers only
        out.pred_ref_vs_lava = float((r.predictions() == ref_lat.predictions()).mean())
    return out
