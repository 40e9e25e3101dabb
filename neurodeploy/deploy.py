"""The whole chain after training: NIR export -> quantisation -> integer targets -> conformance
(``neurodeploy deploy`` and the end of ``neurodeploy demo``), on an offline task, the user's data
or random spikes (:mod:`neurodeploy.data.inputs`); without labels the accuracies read "n/a"."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from neurodeploy.checks import check_count
from neurodeploy.converters.nir_export import export_nir
from neurodeploy.converters.nir_import import nir_to_model
from neurodeploy.data import load_task
from neurodeploy.data.inputs import Inputs, from_task
from neurodeploy.files import atomic_write_text
from neurodeploy.measure.calibrate import quantize_checked
from neurodeploy.measure.qreport import compare
from neurodeploy.measure.verify import verify
from neurodeploy.neuron.hardware import get_spec, netx_variant
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntProgram
from neurodeploy.targets import TARGETS


def _pct(acc: float | None) -> str:
    return "n/a (no labels)" if acc is None else f"{100 * acc:.2f} %"


def deploy(
    model: SpikingNet,
    task_name: str | Inputs,
    *,
    T: int,
    out_dir: str | Path,
    hardware: str = "loihi2",
    target: str = "lava",
    lava_samples: int = 10,
    allow_overflow: bool | None = None,
    weight_split: int = 1,
) -> str:
    """Export, quantise, run and compare on ``task_name`` (an offline task's name, or resolved
    :class:`~neurodeploy.data.inputs.Inputs`); writes model.nir, model.int.npz, conformance.json
    and summary.md into ``out_dir`` and returns the per-stage table as text. ``allow_overflow``:
    ``None`` quantises with the inputs' settings and no check; ``False`` searches exponents free
    of 24-bit overflow on the inputs or refuses; ``True`` accepts and reports it (all three:
    :func:`~neurodeploy.measure.calibrate.quantize_checked`, the commands' one quantiser)."""
    if target not in TARGETS:
        raise ValueError(f"target: unknown {target!r}; available: {', '.join(TARGETS)}")
    T = check_count("T", T)  # before anything is written
    lava_samples = check_count("lava_samples", lava_samples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    task = task_name if isinstance(task_name, Inputs) else from_task(load_task(task_name, T=T))
    recorded = {"task": task.task} if task.task else {}
    t0 = time.perf_counter()
    export_nir(model, out / "model.nir", extra_metadata={**recorded, "T": T})
    from_nir = nir_to_model(out / "model.nir")
    hw = get_spec(hardware)
    if target == "netx":  # netx's formats: the spec's netx variant (e.g. loihi2 -> loihi2-netx)
        hw = netx_variant(hw)
    overflow = quantize_checked(  # weight_split: neurodeploy.quant.split
        from_nir, hw, task, T=T, allow_overflow=allow_overflow, weight_split=weight_split
    )
    prog = overflow.program
    if target == "netx":
        from neurodeploy.targets.netx import export_netx

        export_netx(prog, out / "model.netx.h5")  # refuses smoothed neurons, naming the layer
    prog.meta.update(**recorded, T=T)
    prog.save(out / "model.int.npz")
    rep = compare(from_nir, prog, task=task, T=T)
    conf = verify(
        from_nir, prog, task, T, n=lava_samples, lava=target != "reference", target=target
    )
    rows = [
        ("float torch (BatchNorm folded, from NIR)", _pct(rep.float_acc), "-", "-"),
        (
            f"reference simulator, {hardware} integers",
            _pct(rep.int_acc),
            f"{min(conf.float_vs_ref):.4f} (min over layers, vs float)",
            f"{conf.ref_seconds_per_sample * 1000:.2f} ms",
        ),
    ]
    if conf.ref_vs_lava is not None:
        preds = (
            f"{100 * conf.pred_ref_vs_lava:.0f} % same predictions"
            if conf.pred_ref_vs_lava is not None
            else "hidden layers compared"
        )
        rows.append(
            (
                f"{'netx in ' if target == 'netx' else ''}Lava fixed_pt ({lava_samples} samples)",
                preds,
                f"{min(conf.ref_vs_lava):.4f} (min over layers, vs reference)",
                f"{conf.lava_seconds_per_sample:.2f} s",
            )
        )
    width = max(len(r[0]) for r in rows)
    graph = (
        ""
        if prog.is_chain
        else f" (a graph: {sum(len(prog.edges(k)) for k in range(len(prog.layers)))} synapses, "
        f"depth {max(prog.depths().values())})"
    )
    lines = [
        f"deploy {task.name}: {len(prog.layers)} integer layers{graph} for {hardware}, "
        f"{sum(l.neuron == 'mps' for l in prog.layers)} with smoothed neurons; files in {out}",
        f"{'stage':<{width}}  {'accuracy':<22}  {'spike agreement':<40}  time/sample",
    ]
    lines += [f"{a:<{width}}  {b:<22}  {c:<40}  {d}" for a, b, c, d in rows]
    lines.append(f"inputs: {task.description}; calibration: {task.calibration}")
    if overflow.checked:
        lines.append(overflow.format())
    text = "\n".join(lines)
    atomic_write_text(out / "summary.md", "```\n" + text + "\n```\n")  # whole or not at all
    atomic_write_text(
        out / "conformance.json",
        json.dumps(
            {
                "task": task.name,
                "inputs": task.description,
                "calibration": task.calibration,
                "T": T,
                "hardware": hardware,
                "target": target,
                "float_acc": rep.float_acc,
                "int_acc": rep.int_acc,
                "quantization": [asdict(l) for l in rep.layers],
                "conformance": asdict(conf),
                "seconds": time.perf_counter() - t0,
            },
            indent=1,
        ),
    )
    return text


def deploy_program(
    program: IntProgram,
    inputs: Inputs,
    *,
    T: int,
    out_dir: str | Path,
    target: str = "lava",
    lava_samples: int = 10,
) -> str:
    """``neurodeploy deploy`` of an integer program that comes as integers (a lava-dl netx
    network): no quantisation. Writes model.nir (its float reading,
    :func:`~neurodeploy.converters.netx_nir.program_to_nir`), model.int.npz, conformance.json
    and summary.md into ``out_dir``; compares that float reading, the reference simulator and
    (unless ``target`` is "reference") the Lava target on the first ``lava_samples`` inputs."""
    from neurodeploy.converters.netx_nir import netx_float_model, program_to_nir
    from neurodeploy.converters.nir_export import write_graph

    if target not in TARGETS:
        raise ValueError(f"target: unknown {target!r}; available: {', '.join(TARGETS)}")
    T = check_count("T", T)
    lava_samples = check_count("lava_samples", lava_samples)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    write_graph(program_to_nir(program, T=T), out / "model.nir")
    program.meta.update(T=T)
    program.save(out / "model.int.npz")
    conf = verify(
        netx_float_model(program),
        program,
        inputs,
        T,
        n=lava_samples,
        lava=target != "reference",
        target=target,
    )
    source = program.meta.get("source", "the program")
    lines = [
        f"deploy {source}: {len(program.layers)} integer layers as the file holds them "
        f"(no quantisation), target {target}; files in {out}",
        conf.format(),
        "float: the NIR CubaLIF reading of the integers (model.nir); "
        + ("reference only" if conf.ref_vs_lava is None else "ref~lava must be 1.0000"),
        f"inputs: {inputs.description}",
    ]
    text = "\n".join(lines)
    atomic_write_text(out / "summary.md", "```\n" + text + "\n```\n")
    atomic_write_text(
        out / "conformance.json",
        json.dumps(
            {
                "source": str(source),
                "inputs": inputs.description,
                "T": T,
                "hardware": program.hardware,
                "target": target,
                "conformance": asdict(conf),
                "seconds": time.perf_counter() - t0,
            },
            indent=1,
        ),
    )
    return text
