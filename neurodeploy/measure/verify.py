"""Conformance between execution stages: float torch, the reference integer simulator, and Lava
fixed_pt (``neurodeploy verify``).

Pairs compared, per neuron layer (fraction of (step, sample, neuron) spikes that agree) and on the
predicted class:
- float torch (BatchNorm folded) vs reference simulator: what quantisation changes;
- reference simulator with Lava's pipeline latency vs Lava fixed_pt: must be identical (1.0);
- float torch vs Lava fixed_pt, Lava's layer k shifted back by its k+1 steps of latency (close,
  not exact: quantisation, and biases integrate alone during the latency steps).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurodeploy.measure.analysis import run_recording_spikes
from neurodeploy.data import TaskData
from neurodeploy.nn.fold import fold_batchnorm
from neurodeploy.quant.program import IntProgram
from neurodeploy.nn.net import SpikingNet
from neurodeploy.targets.reference import ReferenceTarget


@dataclass
class Conformance:
    layers: list[str]
    float_vs_ref: list[float]
    ref_vs_lava: list[float] | None
    pred_float_vs_ref: float
    pred_ref_vs_lava: float | None
    n_samples: int
    lava_seconds_per_sample: float | None = None
    ref_seconds_per_sample: float | None = None
    float_vs_lava: list[float] | None = None   # Lava's layer k shifted back by its k+1 steps of latency

    def format(self) -> str:
        head = f"{'layer':<12}{'float~ref':>11}" + (f"{'ref~lava':>11}{'float~lava':>12}"
                                                       if self.ref_vs_lava is not None else "")
        lines = [head]
        for i, name in enumerate(self.layers):
            row = f"{name:<12}{self.float_vs_ref[i]:>11.4f}"
            if self.ref_vs_lava is not None:
                row += f"{self.ref_vs_lava[i]:>11.4f}{self.float_vs_lava[i]:>12.4f}"
            lines.append(row)
        lines.append(f"{'prediction':<12}{self.pred_float_vs_ref:>11.4f}"
                     + (f"{self.pred_ref_vs_lava:>11.4f}" if self.pred_ref_vs_lava is not None
                        else (f"{'-':>11}" if self.ref_vs_lava is not None else "")))
        lines.append(f"{self.n_samples} samples; reference {self.ref_seconds_per_sample * 1000:.2f} ms/sample"
                     + (f"; Lava fixed_pt {self.lava_seconds_per_sample:.2f} s/sample (build, run, read, stop)"
                        if self.lava_seconds_per_sample is not None else ""))
        return "\n".join(lines)


@torch.no_grad()
def verify(model: SpikingNet, program: IntProgram, task: TaskData, T: int, n: int = 10,
           lava: bool = True, target: str = "lava") -> Conformance:
    """``target`` "lava" (our process graph) or "netx" (the exported netx HDF5 network) for the
    Lava comparison."""
    import time

    x = task.encode(task.x_test[:n], T)
    z, float_spikes = run_recording_spikes(fold_batchnorm(model).eval(), x)
    z_float = z.mean(0).argmax(-1).numpy()
    x_int, _ = program.quantize_input(x.numpy())
    t0 = time.perf_counter()
    ref = ReferenceTarget(program, device="cpu").run(x_int)
    ref_s = (time.perf_counter() - t0) / n
    names = ref.layer_names
    fvr = [float((fs.numpy().astype(np.uint8) == rs).mean()) for fs, rs in zip(float_spikes, ref.spikes)]
    pred_ref = ref.predictions()
    out = Conformance(names, fvr, None, float((z_float == pred_ref).mean()), None, n, ref_seconds_per_sample=ref_s)
    if lava:
        from neurodeploy.targets import make_target
        lt = make_target(target, program)
        ref_lat = ReferenceTarget(program, device="cpu", latency=True).run(x_int)
        agree = np.zeros(len(names))
        total = np.zeros(len(names))
        agree_f = np.zeros(len(names))
        total_f = np.zeros(len(names))
        same_pred = 0
        t0 = time.perf_counter()
        readout = program.layers[-1].readout_bias if program.layers[-1].neuron is None else None
        for b in range(n):
            r = lt.run(x_int[:, b])
            for k, (sl, sr) in enumerate(zip(r.spikes, ref_lat.spikes)):
                agree[k] += (sl == sr[:, b]).sum()
                total[k] += sl.size
                # layer k sees the input k+1 steps late in Lava (biases integrate alone meanwhile,
                # so this pair is close, not exact)
                fs = float_spikes[k][:, b].numpy().astype(np.uint8)
                agree_f[k] += (sl[k + 1:k + 1 + T] == fs).sum()
                total_f[k] += fs.size
            if r.output is not None and readout is not None:
                lava_logits = (r.output + readout).sum(0)
                same_pred += int(lava_logits.argmax() == ref_lat.output[:, b].sum(0).argmax())
        out.lava_seconds_per_sample = (time.perf_counter() - t0) / n
        out.ref_vs_lava = list(agree / total)
        out.float_vs_lava = list(agree_f / total_f)
        out.pred_ref_vs_lava = same_pred / n if r.output is not None else None  # netx: hidden layers only
    return out
