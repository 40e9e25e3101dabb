"""Graphs end to end (issue 16, "Measure"): the NIR paper's recurrent Braille graph, a small
SEW-ResNet (residual, ADD connection) on ``event-digits`` and a small SRNN (recurrent LIF layers)
on ``seq1d``, each through NIR, the quantiser, the reference simulator and Lava fixed_pt.

Per model: per-layer spike agreement float vs integer (reference simulator), integer vs Lava
(must be 1.0: asserted), float vs integer accuracy on the task's test split (Braille: no data
here, so no accuracy), and for the two trained models the same after ``neurodeploy finetune``
(quantisation-aware, through the integer program). The SEW-ResNet's reference simulator
throughput is quoted against Lava's on the same samples (as benchmarks/reference_vs_lava.py does
for chains: Lava counts build, compile, run, read and stop; the reference its run).

Braille: ``braille_noDelay_bias_zero.nir`` records no dt; it was written by snnTorch, whose
exporter uses dt = 1e-4 s, which is what we read it with (tau_mem/dt = 10 and 2.2 steps). The
Braille data set is not available offline: inputs are Bernoulli spike trains at rate
``BRAILLE_RATE`` (stated in the table), ``BRAILLE_T`` steps.

The trained models are trained here with MPS + guidance, small widths and few epochs (CPU
minutes; the recipes are in ``RECIPES`` and in the results). ``--runs DIR`` reuses run folders
that hold a checkpoint already.

    OMP_NUM_THREADS=2 .venv/bin/python -P benchmarks/graphs.py [--runs DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from neurodeploy.cli import main
from neurodeploy.converters.model_files import load_model_file
from neurodeploy.data.inputs import random_inputs, task_inputs
from neurodeploy.measure.calibrate import quantize_checked
from neurodeploy.measure.verify import verify
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.layers import Scale

RESULTS = Path(__file__).parent / "results"
BRAILLE = (
    Path(__file__).parents[2]
    / "shared"
    / "fixtures"
    / "nir-paper"
    / ("braille_noDelay_bias_zero.nir")
)
BRAILLE_DT = 1e-4  # snnTorch's export dt (the file records none)
BRAILLE_RATE = 0.1  # input spikes per channel per step
BRAILLE_T = 64
BRAILLE_SAMPLES = 16
BRAILLE_RESETS = ("snntorch", "nir")  # snnTorch's delayed reset (as trained); NIR's immediate one
LAVA_SAMPLES = 16  # samples run in Lava (and the reference) per trained model
FINETUNE_EPOCHS = 2
RECIPES: dict[str, dict[str, Any]] = {
    "sew_resnet": {
        "task": "event-digits",
        "model": "sew_resnet",
        "T": 4,
        "mps": True,
        "guidance": True,
        "epochs": 12,
        "batch_size": 64,
        "lr": 0.01,
        "arch": {"stem": 16, "widths": [16, 32], "blocks": [1, 1]},
    },
    "srnn": {
        "task": "seq1d",
        "model": "srnn",
        "T": 4,
        "mps": True,
        "guidance": True,
        "epochs": 10,
        "batch_size": 64,
        "lr": 0.01,
        "arch": {"hidden": [32, 32]},
    },
}


@dataclass
class Result:
    name: str
    source: str
    inputs: str
    layers: list[str]
    float_vs_int: list[float]  # per layer, fraction of (step, sample, neuron) spikes equal
    int_vs_lava: list[float]  # per layer, must be 1.0
    float_rate: list[float]  # spikes / neuron / step of the float model
    int_rate: list[float]
    lava_samples: int
    ref_s_per_sample: float
    lava_s_per_sample: float
    recipe: dict[str, Any] | None = None
    accuracy: dict[str, float | None] = field(default_factory=dict)
    overflow: str = ""


def _toml(recipe: dict[str, Any]) -> str:
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return json.dumps(v)

    top = [f"{k} = {val(v)}" for k, v in recipe.items() if k != "arch"]
    arch = [f"{k} = {val(v)}" for k, v in recipe.get("arch", {}).items()]
    return "\n".join([*top, "", "[arch]", *arch, ""])


def _quiet_main(argv: list[str]) -> str:
    buf = io.StringIO()
    with (
        contextlib.redirect_stdout(buf),
        contextlib.redirect_stderr(buf),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        rc = main(argv)
    if rc != 0:
        raise RuntimeError(f"neurodeploy {' '.join(argv)} exited {rc}:\n{buf.getvalue()}")
    return buf.getvalue()


def _load(path: Path, dt: float | None = None, reset: str = "nir") -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model_file(str(path), dt=dt, reset=reset)[0]


def _conformance(name: str, model_path: Path, model: Any, inputs: Any, T: int, n: int) -> Result:
    checked = quantize_checked(model, LOIHI2, inputs, T=T)
    prog = checked.program
    c = verify(model, prog, task=inputs, T=T, n=n, lava=True)
    assert c.ref_vs_lava is not None and c.lava_seconds_per_sample is not None
    if min(c.ref_vs_lava) != 1.0:
        raise AssertionError(f"{name}: reference != Lava: {dict(zip(c.layers, c.ref_vs_lava))}")
    # spike rates of both, for the table (agreement alone is trivially high at low rates)
    from neurodeploy.measure.profiling import float_layer_spikes
    from neurodeploy.targets.reference import ReferenceTarget

    x = inputs.encode(inputs.x[:n], T)
    _, fs = float_layer_spikes(model, x, prog)
    ref = ReferenceTarget(prog, device="cpu").run(prog.quantize_input(x.numpy())[0])
    return Result(
        name=name,
        source=str(model_path),
        inputs=inputs.description,
        layers=c.layers,
        float_vs_int=c.float_vs_ref,
        int_vs_lava=c.ref_vs_lava,
        float_rate=[float(s.float().mean()) for s in fs],
        int_rate=[float(s.mean()) for s in ref.spikes],
        lava_samples=n,
        ref_s_per_sample=c.ref_seconds_per_sample,
        lava_s_per_sample=c.lava_seconds_per_sample,
        overflow=checked.format(),
    )


def braille(reset: str) -> Result:
    """The Braille graph read with ``reset`` ("snntorch": snnTorch's delayed reset, as trained;
    "nir": NIR's immediate reset) through the quantiser, the reference simulator and Lava."""
    model = _load(BRAILLE, BRAILLE_DT, reset)
    inputs = random_inputs(
        BRAILLE_RATE, tuple(model.input_shape), T=BRAILLE_T, n=BRAILLE_SAMPLES, seed=0
    )
    return _conformance(
        f"braille, reset {reset}", BRAILLE, model, inputs, BRAILLE_T, BRAILLE_SAMPLES
    )


class _AddBias(Scale):
    """x + b (a constant per neuron, threshold units): the bias moved from the synapse into the
    neuron's v, as Lava's LIF adds it (a Scale subclass so that ``Recurrent`` steps it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale


def _neuron_nodes(v: Any) -> dict[str, tuple[Any, Any, Any]]:
    """Braille's two CubaLIF layers by program name: (holder of the [LI, LIF] Sequential,
    its synapse Linear, the recurrent Linear or None)."""
    n = v.body.nodes
    return {
        "lif1_lif": (n["lif1_lif"], n["fc1"].module, n["lif1_lif"].rec),
        "lif2": (None, n["fc2"].module, None),
    }


def _cuba(v: Any, name: str) -> torch.nn.Sequential:
    seq = v.body.nodes["lif1_lif"].neuron if name == "lif1_lif" else v.body.nodes["lif2"]
    assert isinstance(seq, torch.nn.Sequential)
    return seq


def _chip_float(
    m: Any,
    prog: Any,
    *,
    du: bool = False,
    dv: bool = False,
    vth: bool = False,
    bias: str | None = None,
) -> Any:
    """A copy of the float model with some of the roundings the chip imposes besides the weights,
    in float arithmetic, from ``prog`` (the program quantised from ``m``) per CubaLIF layer:
    ``du``: the current decays 1 - (du + 1)/4096 instead of 1 - 1/tau_syn; ``dv``: the voltage
    decays 1 - dv/4096 instead of 1 - 1/tau_mem; ``vth``: the threshold vth / a_scale instead of
    theta; ``bias`` "steady": the synapse's bias b moved into v at its steady state b tau_syn
    (the exact float value: the current then starts settled, as on the chip), "rounded": the
    chip's bias_mant << bias_exp / (a_scale 64) there instead; "current": that rounded bias left
    in the current, divided by the chip's tau_syn' = 4096 / (du + 1) (what the chip computes if
    its current starts at u(-1) = -b tau_syn' instead of 0: v then receives u + bias exactly as
    the float H receives I)."""
    import copy
    import dataclasses

    from neurodeploy.neuron.fixedpoint import du_to_tau_syn, dv_to_tau, mant_exp_to_bias

    v = copy.deepcopy(m)
    layers = {L.name: L for L in prog.layers}
    for name, (_, lin, rec) in _neuron_nodes(v).items():
        L = layers[name]
        seq = _cuba(v, name)
        li, lif = seq[0], seq[-1]
        tau_syn = li.tau
        if du:
            li.tau = du_to_tau_syn(L.du)
        if dv:
            lif.params = dataclasses.replace(lif.params, tau=dv_to_tau(L.dv))
        if vth:
            lif.params = dataclasses.replace(lif.params, theta=L.vth / L.a_scale)
        if bias is not None:
            with torch.no_grad():
                b = lin.bias.detach().clone() + (0 if rec is None else rec.bias.detach())
                lin.bias.zero_()
                if rec is not None:
                    rec.bias.zero_()
            if bias == "current":  # rounded, left in the current: b' = b_chip / tau_syn'
                with torch.no_grad():
                    lin.bias.copy_(
                        torch.as_tensor(
                            mant_exp_to_bias(L.bias_mant, L.bias_exp, L.a_scale)
                            / du_to_tau_syn(L.du),
                            dtype=torch.float32,
                        )
                    )
                continue
            if bias == "steady":
                b_v = b * tau_syn
            else:
                b_v = torch.as_tensor(
                    mant_exp_to_bias(L.bias_mant, L.bias_exp, L.a_scale), dtype=torch.float32
                )
            new = torch.nn.Sequential(li, _AddBias(b_v), lif)
            if name == "lif1_lif":
                v.body.nodes["lif1_lif"].neuron = new
            else:
                v.body.nodes["lif2"] = new
    return v


def _agree(a: list[Any], b: list[Any]) -> list[float]:
    return [
        round(float((torch.as_tensor(p).float() == torch.as_tensor(q).float()).float().mean()), 4)
        for p, q in zip(a, b, strict=True)
    ]


def braille_sensitivity(reset: str) -> dict[str, list[float]]:
    """Where Braille's float vs integer disagreement comes from, the model read with ``reset``:
    the float model against itself (float arithmetic), one change at a time (per layer, same
    inputs as :func:`braille`): its Affine weights rounded to ``levels`` signed steps of max abs
    w, lif1's two synapses on one shared grid (the fan-in rule) or each on its own; weights x
    (1 + 0.1 % noise); dt +- 0.1 %; then the chip's other roundings (:func:`_chip_float`): the
    12-bit decays, the integer threshold, the bias in v at its steady state (exact, then
    rounded), all of those together with float weights. Then the integer program itself
    (reference simulator) at ``weight_split`` K = 1, 2, 3, and at K = 3 quantised with 0
    headroom bits instead of 3 (the quantiser's one free choice here; overflow checked on the
    same inputs)."""
    import copy

    from neurodeploy.measure.profiling import float_layer_spikes
    from neurodeploy.quant import quantize as q
    from neurodeploy.targets.reference import ReferenceTarget

    m = _load(BRAILLE, BRAILLE_DT, reset).eval()
    inputs = random_inputs(BRAILLE_RATE, (12,), T=BRAILLE_T, n=BRAILLE_SAMPLES, seed=0)
    prog = quantize_checked(m, LOIHI2, inputs, T=BRAILLE_T).program
    x = inputs.encode(inputs.x, BRAILLE_T)
    _, ref = float_layer_spikes(m, x, prog)

    def agree(v: Any) -> list[float]:
        return _agree(ref, float_layer_spikes(v, x, prog)[1])

    def linears(v: Any) -> tuple[torch.nn.Linear, torch.nn.Linear, torch.nn.Linear]:
        n = v.body.nodes
        return n["fc1"].module, n["lif1_lif"].rec, n["fc2"].module

    out: dict[str, list[float]] = {}
    for levels in (127, 255, 2047):
        for shared in (True, False):
            v = copy.deepcopy(m)
            fc1, rec, fc2 = linears(v)
            with torch.no_grad():
                top = max(fc1.weight.abs().max(), rec.weight.abs().max())
                for lin in (fc1, rec, fc2):
                    mx = top if (shared and lin is not fc2) else lin.weight.abs().max()
                    step = mx / levels
                    lin.weight.copy_(torch.round(lin.weight / step) * step)
            grid = "lif1 synapses on one grid" if shared else "each synapse on its own grid"
            out[f"weights rounded to {levels} steps of max abs w, {grid}"] = agree(v)
    v = copy.deepcopy(m)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for lin in linears(v):
            lin.weight.mul_(1 + 1e-3 * torch.randn(lin.weight.shape, generator=g))
    out["weights x (1 + 0.1 % Gaussian noise)"] = agree(v)
    for f in (0.999, 1.001):
        out[f"dt x {f}"] = agree(_load(BRAILLE, BRAILLE_DT * f, reset).eval())
    L1, L2 = prog.layers[0], prog.layers[-1]
    out[f"current decays as the chip's du ({L1.du}, {L2.du}), float weights"] = agree(
        _chip_float(m, prog, du=True)
    )
    out[f"voltage decays as the chip's dv ({L1.dv}, {L2.dv}), float weights"] = agree(
        _chip_float(m, prog, dv=True)
    )
    out["both decays (du, dv), float weights"] = agree(_chip_float(m, prog, du=True, dv=True))
    out[f"threshold vth / a_scale ({L1.vth}, {L2.vth}), float weights"] = agree(
        _chip_float(m, prog, vth=True)
    )
    out["bias in v at its steady state b tau_syn (exact), float weights"] = agree(
        _chip_float(m, prog, bias="steady")
    )
    out[f"bias in v rounded to mant << exp (exp {L1.bias_exp}, {L2.bias_exp}), float weights"] = (
        agree(_chip_float(m, prog, bias="rounded"))
    )
    out["ALL of decays, threshold, rounded bias in v, float weights"] = agree(
        _chip_float(m, prog, du=True, dv=True, vth=True, bias="rounded")
    )
    out["all but the rounded bias (decays, threshold, exact bias in v)"] = agree(
        _chip_float(m, prog, du=True, dv=True, vth=True, bias="steady")
    )
    out["rounded bias left in the current (u(-1) = -b tau_syn'), float weights"] = agree(
        _chip_float(m, prog, bias="current")
    )
    out["ALL of decays, threshold, rounded bias in the current (u(-1) = -b tau_syn')"] = agree(
        _chip_float(m, prog, du=True, dv=True, vth=True, bias="current")
    )

    def integer(k: int, label: str, *, current_at_zero: bool = False) -> None:
        chk = quantize_checked(m, LOIHI2, inputs, T=BRAILLE_T, weight_split=k)
        p = chk.program
        if current_at_zero:  # the mapping before IntLayer.u_init_bias: the bias on from step 0
            p = replace(p, layers=[replace(L, u_init_bias=False) for L in p.layers])
        _, fs = float_layer_spikes(m, x, p)
        run = ReferenceTarget(p, device="cpu").run(p.quantize_input(x.numpy())[0])
        vths = ", ".join(f"{L.vth}" for L in p.layers if L.neuron is not None)
        exps = ", ".join(f"{L.weight_exp}" for L in p.layers if L.neuron is not None)
        text = chk.format().strip()
        ovf = "no saturation or wrap" if "no saturation or wrap" in text else text
        out[f"{label}: integer program, K = {k} (vth {vths}, weight exp {exps}; {ovf})"] = _agree(
            fs, run.spikes
        )

    for k in (1, 2, 3):
        integer(k, "reference simulator")
    for k in (1, 2):
        integer(
            k,
            "the current starting at 0, not at -bias (the bias on from step 0, as before "
            "u_init_bias)",
            current_at_zero=True,
        )
    defaults = q._best_exponent.__kwdefaults__
    assert defaults is not None and defaults["headroom_bits"] == q.HEADROOM_BITS
    try:
        defaults["headroom_bits"] = 0
        for k in (1, 3):
            integer(k, "0 headroom bits (not the default 3)")
    finally:
        defaults["headroom_bits"] = q.HEADROOM_BITS
    return out


def trained(name: str, runs: Path) -> Result:
    recipe = RECIPES[name]
    run = runs / name
    run.mkdir(parents=True, exist_ok=True)
    ckpt = run / "checkpoint.pt"
    if not ckpt.exists():
        (run / "recipe.toml").write_text(_toml(recipe))
        _quiet_main(
            ["train", "--config", str(run / "recipe.toml"), "--out", str(run), "--no-progress"]
        )
    # training time from the run's own record (seconds per epoch, summed), also for reused runs
    metrics = (run / "metrics.jsonl").read_text().splitlines()
    train_s = sum(float(json.loads(line).get("time_s", 0.0)) for line in metrics if line)
    nir_path = run / "model.nir"
    _quiet_main(["export", str(ckpt), "--out", str(nir_path)])
    T = int(recipe["T"])
    model = _load(nir_path)
    inputs = task_inputs(recipe["task"], tuple(model.input_shape), T=T)
    res = _conformance(name, nir_path, model, inputs, T, LAVA_SAMPLES)
    res.recipe = {**recipe, "train_seconds": round(train_s, 1)}
    ft = run / "finetune"
    shutil.rmtree(ft, ignore_errors=True)  # finetune refuses to write over an earlier run
    _quiet_main(
        ["finetune", str(ckpt), "--epochs", str(FINETUNE_EPOCHS), "--out", str(ft), "--no-progress"]
    )
    d = json.loads((ft / "finetune.json").read_text())
    res.accuracy = {
        "float": d["float_acc_before"],
        "integer": d["ptq_acc"],
        "float_finetuned": d["float_acc"],
        "integer_finetuned": d["int_acc"],
    }
    return res


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f} %"


def write(results: list[Result], meta: dict[str, Any]) -> str:
    lines = [
        "# Graphs end to end: residual and recurrent models, NIR -> integer -> Lava",
        "",
        f"Written by `benchmarks/graphs.py` on {meta['date']}; {meta['machine']}; "
        f"OMP_NUM_THREADS={meta['threads']}; torch {meta['torch']}, lava-nc {meta['lava']}, "
        f"nir {meta['nir']}.",
        "",
        f"## Per-layer spike agreement on {LAVA_SAMPLES} samples (Braille: {BRAILLE_SAMPLES}); "
        "fraction of (step, sample, neuron) entries equal",
        "",
        "| model | inputs | layer | rate float / int | float vs int | int vs Lava |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for i, name in enumerate(r.layers):
            lines.append(
                f"| {r.name} | {r.inputs if i == 0 else ''} | {name} | "
                f"{r.float_rate[i]:.4f} / {r.int_rate[i]:.4f} | {r.float_vs_int[i]:.4f} | "
                f"{r.int_vs_lava[i]:.4f} |"
            )
    lines += [
        "",
        "## Accuracy (test split, float vs integer on the reference simulator)",
        "",
        "| model | task | float | integer (PTQ) | loss | float, fine-tuned | integer, fine-tuned | loss |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if not r.accuracy or r.recipe is None:
            continue
        a = r.accuracy
        lines.append(
            f"| {r.name} | {r.recipe['task']} | {_pct(a['float'])} | {_pct(a['integer'])} | "
            f"{100 * (a['float'] - a['integer']):+.2f} pt | {_pct(a['float_finetuned'])} | "
            f"{_pct(a['integer_finetuned'])} | "
            f"{100 * (a['float_finetuned'] - a['integer_finetuned']):+.2f} pt |"
        )
    lines += ["", "Training recipes (MPS + guidance, small widths, few epochs on shared CPUs):", ""]
    for r in results:
        if r.recipe is not None:
            lines.append(
                f"- {r.name}: `{json.dumps(r.recipe)}`; fine-tuned {FINETUNE_EPOCHS} epochs"
            )
    sew = next((r for r in results if r.name == "sew_resnet"), None)
    if sew is not None:
        lines += [
            "",
            "## Throughput on the SEW-ResNet (same samples)",
            "",
            f"{sew.lava_samples} samples of event-digits: reference simulator "
            f"{sew.lava_samples / (sew.ref_s_per_sample * sew.lava_samples):.1f} samples/s "
            f"({1000 * sew.ref_s_per_sample:.2f} ms/sample), Lava fixed_pt "
            f"{1 / sew.lava_s_per_sample:.2f} samples/s ({sew.lava_s_per_sample:.2f} s/sample, one "
            "runtime for the batch: build, compile, run, read, stop): the reference is "
            f"{sew.lava_s_per_sample / sew.ref_s_per_sample:.0f}x faster.",
        ]
    sens = meta.get("braille_sensitivity")
    if sens:
        lines += [
            "",
            "## Braille: where the output layer's disagreement comes from",
            "",
            "The float model against itself (float arithmetic), one change at a time, read "
            "with each reset; then the integer program (reference simulator) against the float "
            "model. Per-layer spike agreement lif1 / lif2, same inputs as above:",
            "",
            "| change | " + " | ".join(f"reset {r}: lif1 | lif2" for r in sens) + " |",
            "|---|" + "---|---|" * len(sens),
        ]
        first = next(iter(sens.values()))
        for k in first:
            cells = " | ".join(f"{v[k][0]:.4f} | {v[k][1]:.4f}" for v in sens.values())
            lines.append(f"| {k} | {cells} |")
    lines += ["", meta.get("notes", ""), ""]
    return "\n".join(lines)


def run(runs: Path) -> None:
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}, "
        f"{os.cpu_count()} CPUs",
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "torch": torch.__version__,
        "lava": metadata.version("lava-nc"),
        "nir": metadata.version("nir"),
        "braille": {"dt": BRAILLE_DT, "rate": BRAILLE_RATE, "T": BRAILLE_T},
    }
    results = [braille(r) for r in BRAILLE_RESETS]
    results += [trained("sew_resnet", runs), trained("srnn", runs)]
    meta["braille_sensitivity"] = {r: braille_sensitivity(r) for r in BRAILLE_RESETS}
    meta["notes"] = NOTES
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "graphs.json").write_text(
        json.dumps({"meta": meta, "results": [asdict(r) for r in results]}, indent=1)
    )
    md = write(results, meta)
    (RESULTS / "graphs.md").write_text(md)
    print(md)


NOTES = """## Notes

- **Reference == Lava** in every layer of all three graphs (asserted: a recurrent CubaLIF layer,
  SEW's fan-in sums and the SRNN's recurrent synapses included).
- **Braille** (snnTorch's CubaLIF SRNN, read with dt = 1e-4 s, snnTorch's export dt; the file
  records none; with reset "snntorch", snnTorch's delayed reset, our float import equals
  snnTorch spike for spike: benchmarks/results/reset_delay.md): lif1 (38 recurrent CubaLIF
  neurons) agrees >= 99 %; the spiking output layer lif2 (7 neurons, tau_mem 2.2 steps, 23-34 %
  firing) agrees 0.83 / 0.75 (reset snntorch / nir) at K = 1 and 0.986 / 0.990 at K = 2 (two
  8-bit weight parts), at the 99 % aim within 0.4 points; K = 3 adds nothing (0.978 / 0.976: a
  chaotic layer, the rest is noise). The sensitivity table says where it went. **It is not
  Loihi's 12-bit formats**: with float weights, the chip's decays (du 1842 / 2047, dv 410 /
  1843) cost lif2 0.2 points, the integer thresholds (vth 713 / 4691, 0.01 % off theta)
  nothing, the bias's 13-bit mantissa 0.5-1.1 points (all three together: 0.989 / 0.992).
  **It was the bias's start**: Lava's LIF adds the bias to v, so the quantiser puts the float
  bias b (which enters the current) there at its steady state B ~ b tau_syn' v_scale; with the
  current starting at 0 the chip's bias is fully on from step 0 while the float current ramps
  up (error b tau_syn beta_syn^(t+1) in step t), and this start-up difference alone, exact in
  float, drops lif2 to 0.80 / 0.74: the graph is chaotic, a transient perturbation is never
  forgotten (the integer program with the current starting at 0: 0.75 / 0.69 at K = 1, 0.79 /
  0.74 at K = 2, rows above). The quantiser now starts each biased CubaLIF compartment's
  current at u(-1) = -B (``IntLayer.u_init_bias``, Lava LIF's initial u, restored at every
  sample boundary): v then receives u + B = B (1 - r^(t+1)), the float current's ramp, up to
  the decay's rounding toward zero (< tau_syn' membrane units; quantiser docstring). With float
  weights that is the row "ALL of decays, threshold, rounded bias in the current": 0.989 /
  0.992, where K = 2 lands; the rest of the gap at K = 1 is the
  weights (8 bits, 127 levels: 0.87 / 0.79 on their own grids; 2047 levels: 0.98). The threshold's
  headroom bits are not what limits vth here: lif1's exponent (4, vth 713) is set by its
  largest bias fitting the 13-bit mantissa at exponent <= 7 (2672 << 7; one exponent more
  needs 5344), lif2's (7, vth 4691) by the weight exponent's maximum 7; quantised with 0
  headroom bits instead of 3 the programs are identical (same vth, same spikes, no overflow).
  Without the Braille data no accuracy can be measured here.
- **SEW-ResNet / SRNN**: per-layer agreement falls with depth in the SEW-ResNet (one layer's
  spike differences feed the next, and SEW's ADD passes them on along both paths), yet float
  and integer accuracy on the whole test split are within 0.5 points for both models, before
  and after `neurodeploy finetune` (2 epochs through the integer program, bit-exact with the
  reference; `finetune` keeps the epoch with the best integer accuracy on the training set,
  the start included: the SEW-ResNet's two epochs did not beat its start, so it stays as it was).
- Training was kept to CPU minutes on a shared machine (small widths, 10-12 epochs;
  train_seconds above: the epochs' own times from metrics.jsonl): these are small models, not
  the paper's full-size ones.
"""


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="/tmp/neurodeploy-graphs", help="run folders (reused)")
    torch.manual_seed(0)
    run(Path(ap.parse_args().runs))
