"""Float vs integer: per-layer quantisation error and accuracy on the given inputs (an offline
task, the user's data or random spikes; :mod:`neurodeploy.data.inputs`), what ``neurodeploy
quantize`` prints. Without labels the accuracies are "n/a"."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurodeploy.data import TaskData
from neurodeploy.data.inputs import Inputs, as_inputs
from neurodeploy.measure.profiling import float_layer_spikes
from neurodeploy.neuron.fixedpoint import vth_to_theta
from neurodeploy.neuron.hardware import HardwareSpec
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.counts import hardware_stages
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.quant.stages import Stage
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.reference import ReferenceTarget


@dataclass
class LayerError:
    name: str
    weight_rel_error: float  # ||W_int / w_scale - W|| / ||W||
    threshold_rel_error: float  # |vth / a_scale - theta| / theta (0 for the readout)
    spike_agreement: float  # fraction of (t, sample, neuron) where float and integer spikes agree
    float_rate: float
    int_rate: float
    saturations: int
    wraps: int
    clipped_weights: int


@dataclass
class QuantReport:
    layers: list[LayerError]
    float_acc: float | None  # None: the inputs have no labels
    int_acc: float | None
    n_samples: int
    input_clipped: int
    source: str = ""  # what the inputs were (Inputs.description)
    calibration: str = "data"  # "data", or the weights alone when there were no data

    def format(self) -> str:
        lines = [
            f"{'layer':<12}{'w err':>9}{'vth err':>9}{'spike agree':>13}{'rate f/i':>15}"
            f"{'sat':>6}{'wrap':>6}{'clip':>6}"
        ]
        for e in self.layers:
            if e.spike_agreement != e.spike_agreement:  # readout: no spikes
                mid = f"{'-':>9}{'-':>13}{'-':>15}"
            else:
                mid = (
                    f"{e.threshold_rel_error:>9.4f}{e.spike_agreement:>13.4f}"
                    f"{e.float_rate:>9.3f}/{e.int_rate:<5.3f}"
                )
            lines.append(
                f"{e.name:<12}{e.weight_rel_error:>9.4f}{mid}{e.saturations:>6}{e.wraps:>6}{e.clipped_weights:>6}"
            )
        if self.float_acc is None or self.int_acc is None:
            acc = (
                f"accuracy on {self.n_samples} samples: n/a (no labels): float n/a, integer "
                "(reference simulator) n/a"
            )
        else:
            acc = (
                f"accuracy on {self.n_samples} test samples: float {self.float_acc:.4f}, integer "
                f"(reference simulator) {self.int_acc:.4f}, difference "
                f"{100 * (self.int_acc - self.float_acc):+.2f} points"
            )
        lines.append(f"{acc}; input values clipped: {self.input_clipped}")
        if self.source:
            lines.append(f"inputs: {self.source}; calibration: {self.calibration}")
        return "\n".join(lines)


@torch.no_grad()
def _synapse_key(syn: Synapse, *, recurrent: bool) -> tuple[object, ...]:
    """Synapses with this key act on the same positions: a layer's parts of one synapse
    (``--weight-split``) and the float synapse they stand for share it."""
    return (syn.kind, syn.weight.shape, syn.stride, syn.padding, syn.groups, syn.pool, recurrent)


def _weight_error(st: Stage, program: IntProgram, k: int) -> float:
    """Relative weight error of layer ``k``: ||W_eff - W|| / ||W|| over every synapse into it,
    in the deployed (pool-folded) kernels, where W_eff sums the float values W_int / w_scale of all
    integer synapses with the same geometry (a split synapse's K parts; graph edges alike), so
    the error is what the neuron receives, not the first part's alone."""
    ints: dict[tuple[object, ...], np.ndarray] = {}
    for e in program.edges(k):
        syn = e.synapse.pool_folded()
        key = _synapse_key(syn, recurrent=e.recurrent)
        ints[key] = ints.get(key, 0.0) + syn.weight.astype(np.float64) / e.w_scale
    floats: dict[tuple[object, ...], np.ndarray] = {}
    for syn, rec in [(st.synapse, False), *[(x.synapse, x.recurrent) for x in st.extra]]:
        f = syn.pool_folded()
        key = _synapse_key(f, recurrent=rec)
        floats[key] = floats.get(key, 0.0) + np.asarray(f.weight, dtype=np.float64)
    diff = sum(float(np.sum((ints.get(key, 0.0) - w) ** 2)) for key, w in floats.items()) + sum(
        float(np.sum(w**2)) for key, w in ints.items() if key not in floats
    )
    norm = sum(float(np.sum(w**2)) for w in floats.values())
    return float(np.sqrt(diff) / max(np.sqrt(norm), 1e-30))


def compare(
    model: SpikingNet,
    program: IntProgram,
    *,
    task: TaskData | Inputs,
    T: int,
    n: int | None = None,
    batch_size: int = 256,
) -> QuantReport:
    """Per-layer errors, spike agreement and (with labels) accuracy of ``program`` against
    ``model`` on the first ``n`` samples of ``task`` (all with ``None``)."""
    src = as_inputs(task)
    stages = hardware_stages(model)
    n = len(src) if n is None else min(n, len(src))
    sim = ReferenceTarget(program, device="cpu")
    agree = np.zeros(len(program.layers))
    count = np.zeros(len(program.layers))
    rate_f = np.zeros(len(program.layers))
    rate_i = np.zeros(len(program.layers))
    sats = np.zeros(len(program.layers), dtype=np.int64)
    wraps = np.zeros(len(program.layers), dtype=np.int64)
    correct_f = correct_i = clipped = 0
    for i in range(0, n, batch_size):
        x = src.encode(src.x[i : min(i + batch_size, n)], T)
        y = None if src.y is None else src.y[i : min(i + batch_size, n)].numpy()
        z, rec = float_layer_spikes(model, x, program)
        if y is not None:
            correct_f += int((z.mean(0).argmax(-1).numpy() == y).sum())
        xi, c = program.quantize_input(x.numpy())
        clipped += c
        r = sim.run(xi)
        assert r.counters is not None, "the reference simulator counts saturations and wraps"
        if y is not None:
            correct_i += int((r.predictions() == y).sum())
        for k, (sf, si) in enumerate(zip(rec, r.spikes)):
            sfn = sf.numpy().astype(np.uint8)
            agree[k] += (sfn == si).sum()
            count[k] += sfn.size
            rate_f[k] += sfn.sum()
            rate_i[k] += si.sum()
            sats[k] += r.counters[k].saturations
            wraps[k] += r.counters[k].wraps
    layers = []
    for k, (st, il) in enumerate(zip(stages, program.layers)):
        w_err = _weight_error(st, program, k)
        th_err = (
            abs(vth_to_theta(il.vth, il.a_scale) - st.neuron.params.theta) / st.neuron.params.theta
            if st.neuron
            else 0.0
        )
        has = count[k] > 0
        layers.append(
            LayerError(
                il.name,
                w_err,
                th_err,
                float(agree[k] / count[k]) if has else float("nan"),
                float(rate_f[k] / count[k]) if has else float("nan"),
                float(rate_i[k] / count[k]) if has else float("nan"),
                int(sats[k]),
                int(wraps[k]),
                il.clipped_weights,
            )
        )
    labelled = src.y is not None
    return QuantReport(
        layers,
        correct_f / n if labelled else None,
        correct_i / n if labelled else None,
        n,
        clipped,
        source=src.description,
        calibration=src.calibration,
    )


def quantize_for_task(
    model: SpikingNet,
    task: TaskData | Inputs,
    hw: HardwareSpec,
    percentile: float | None = None,
) -> IntProgram:
    """``model``'s integer program for ``hw`` with the input settings of ``task`` (an offline
    task: :func:`~neurodeploy.data.inputs.infer_input_settings` of its training split; resolved
    inputs: their :attr:`~neurodeploy.data.inputs.Inputs.settings`, ``--input-kind`` included);
    a netx variant of ``hw`` gives netx's formats."""
    settings = as_inputs(task).settings.as_kwargs()
    return quantize_model(model, hw, percentile=percentile, **settings)
