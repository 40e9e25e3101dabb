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
from dataclasses import asdict, dataclass, field
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


def _load(path: Path, dt: float | None = None) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_model_file(str(path), dt=dt)[0]


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


def braille() -> Result:
    model = _load(BRAILLE, BRAILLE_DT)
    inputs = random_inputs(
        BRAILLE_RATE, tuple(model.input_shape), T=BRAILLE_T, n=BRAILLE_SAMPLES, seed=0
    )
    return _conformance("braille", BRAILLE, model, inputs, BRAILLE_T, BRAILLE_SAMPLES)


def braille_sensitivity() -> dict[str, list[float]]:
    """Why Braille's output layer agrees less: the float model against itself with its Affine
    weights rounded to ``levels`` signed steps of max abs w (float arithmetic, no other change),
    lif1's two synapses on one shared grid (the fan-in rule) or each on its own; and against
    itself with weights x (1 + 0.1 % noise) and dt +- 0.1 %. Per layer, same inputs as
    :func:`braille`."""
    import copy

    from neurodeploy.measure.profiling import float_layer_spikes

    m = _load(BRAILLE, BRAILLE_DT).eval()
    inputs = random_inputs(BRAILLE_RATE, (12,), T=BRAILLE_T, n=BRAILLE_SAMPLES, seed=0)
    prog = quantize_checked(m, LOIHI2, inputs, T=BRAILLE_T).program
    x = inputs.encode(inputs.x, BRAILLE_T)
    _, ref = float_layer_spikes(m, x, prog)

    def agree(v: Any) -> list[float]:
        _, s = float_layer_spikes(v, x, prog)
        return [round(float((a == b).float().mean()), 4) for a, b in zip(ref, s, strict=True)]

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
        out[f"dt x {f}"] = agree(_load(BRAILLE, BRAILLE_DT * f).eval())
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
            "The float model against itself (float arithmetic), one change at a time; "
            "per-layer spike agreement lif1 / lif2:",
            "",
            "| change | lif1 | lif2 |",
            "|---|---|---|",
            *(f"| {k} | {v[0]:.4f} | {v[1]:.4f} |" for k, v in sens.items()),
        ]
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
    results = [braille(), trained("sew_resnet", runs), trained("srnn", runs)]
    meta["braille_sensitivity"] = braille_sensitivity()
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
  records none): lif1 (38 recurrent CubaLIF neurons) agrees >= 99 %; the spiking output layer
  lif2 (7 neurons, tau_mem 2.2 steps, ~34 % firing) agrees ~69 %, below the 99 % aim. The
  sensitivity table says why, and that it is not a mapping error: the float model against
  itself with only its Affine weights rounded to Loihi's 8-bit weight mantissa (127 steps of
  max abs w, float arithmetic) already agrees only 73 % (fan-in synapses on one grid) / 79 %
  (each on its own) on lif2; with 11-bit weights 97 %. The graph is chaotic at its output:
  0.1 % Gaussian weight noise or a 0.1 % change of dt alone costs lif2 1-2 points. Its weights
  are dominated by outliers (w_rec down to -13.4, fc1 to -5.7, typical abs w < 1), so 8 bits
  leave typical weights ~10 % rounding error; the fan-in rule (fc1 and w_rec into lif1 on one
  grid) costs lif2 ~5 points more. So the loss is the 8-bit weight mantissa, amplified by the
  network, not the decay mapping (dv 410 and 1843: within 0.1 % of 4096 dt / tau_mem) nor headroom (no
  saturation or wrap). Without the Braille data no accuracy can be measured here.
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
