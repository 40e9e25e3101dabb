"""lava-dl's netx networks imported (issue 18, item 2): our reference simulator on
:func:`~neurodeploy.converters.netx_import.netx_to_program`'s program against lava-dl's own
``netx.hdf5.Network`` built from the same file and run in Lava fixed_pt
(:func:`~neurodeploy.targets.netx.run_netx_file`), on the three fixtures in
``../shared/fixtures/lava-dl``: spikes of every layer at every step and every layer's final
membrane voltage (the read-out of PilotNet's non-spiking last layer) must be equal; the script
fails otherwise. tests/test_netx_import.py runs the cheap fixtures (mnist, tiny) in the suite;
PilotNet takes ~100 s in Lava's Python convolution, so it is checked here.

Inputs: mnist, Bernoulli spikes at rate ``RATE``; tiny and PilotNet (graded ``input`` layer),
uniform random pixels p through the file's input transform ``x = trunc(2 w p - w + b)`` (lava-dl's
PilotNet ``dataset.py``), a new frame every step. ``T_IN`` input steps, then the pipeline drains.

    OMP_NUM_THREADS=2 .venv/bin/python -P benchmarks/netx_fixtures.py
"""

from __future__ import annotations

import json
import os
import platform
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from neurodeploy.converters.netx_import import netx_pixels, netx_to_program
from neurodeploy.targets.netx import run_netx_file
from neurodeploy.targets.reference import ReferenceTarget

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lava-dl"
RESULTS = Path(__file__).parent / "results"
NAMES = ("mnist_network", "tiny", "pilotnet_snn_network")
RATE = 0.2  # binary input spikes per neuron and step
T_IN = 16  # input steps (Intel's PilotNet benchmark: 16 steps per inference)
SEED = 18


def inputs(prog, rng: np.random.Generator) -> np.ndarray:  # type: ignore[no-untyped-def]
    """(T_IN, *input_shape) integers as the file's network expects them."""
    if prog.input_kind == "binary":
        return (rng.random((T_IN, *prog.input_shape)) < RATE).astype(np.int32)
    return netx_pixels(rng.random((T_IN, *prog.input_shape)), prog.meta["netx_input_transform"])


def check(name: str) -> dict[str, object]:
    path = FIXTURES / f"{name}.net"
    prog = netx_to_program(path)
    x = inputs(prog, np.random.default_rng(SEED))
    steps = T_IN + len(prog.layers) + 1
    t0 = time.perf_counter()
    ours = ReferenceTarget(prog, device="cpu", latency=True).run(
        x[:, None], steps=steps, record_states=True
    )
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    spikes, volts = run_netx_file(path, x, steps, graded=prog.input_kind == "graded")
    t_netx = time.perf_counter() - t0
    assert ours.states is not None
    rows = []
    for layer, mine, theirs, mv, tv in zip(
        prog.layers, ours.spikes, spikes, ours.states, volts, strict=True
    ):
        s_eq = np.array_equal(np.asarray(mine)[:, 0].reshape(theirs.shape), theirs)
        v_eq = np.array_equal(np.asarray(mv)[-1, 0].reshape(tv.shape), tv)
        rows.append(
            {
                "layer": layer.name,
                "kind": layer.synapse.kind,
                "shape": list(layer.out_shape),
                "spikes_ours": int(np.asarray(mine).sum()),
                "spikes_netx": int(theirs.sum()),
                "spikes_equal": bool(s_eq),
                "v_equal": bool(v_eq),
                "v_abs_max": int(np.abs(tv).max()),
            }
        )
    ok = all(r["spikes_equal"] and r["v_equal"] for r in rows)
    return {
        "name": name,
        "steps": steps,
        "input": prog.input_kind,
        "layers": rows,
        "equal": ok,
        "seconds_reference": round(t_ours, 3),
        "seconds_netx_lava": round(t_netx, 2),
    }


def main() -> None:
    runs = [check(n) for n in NAMES if (FIXTURES / f"{n}.net").exists()]
    versions = {p: metadata.version(p) for p in ("lava-nc", "lava-dl", "torch", "numpy")}
    head = (
        f"{time.strftime('%Y-%m-%d')}; {platform.machine()} {platform.processor() or ''}, "
        f"{os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads; "
        + ", ".join(f"{k} {v}" for k, v in versions.items())
    )
    lines = [
        "# netx fixtures: reference == lava-dl netx in Lava fixed_pt",
        "",
        head,
        "",
        f"Inputs: mnist Bernoulli spikes at rate {RATE}; tiny and PilotNet uniform random pixels "
        "through the file's input transform, a new frame every step; "
        f"{T_IN} input steps, then the pipeline drains (steps below). Equal: every layer's "
        "spikes at every step and its final membrane voltage. `benchmarks/netx_fixtures.py`.",
        "",
        "| fixture | steps | layer | kind | shape | spikes (ours / netx) | spikes equal | "
        "final max abs v (netx) | v equal |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        for row in r["layers"]:  # type: ignore[attr-defined]
            lines.append(
                f"| {r['name']} | {r['steps']} | {row['layer']} | {row['kind']} | "
                f"{'x'.join(map(str, row['shape']))} | {row['spikes_ours']} / "
                f"{row['spikes_netx']} | {row['spikes_equal']} | {row['v_abs_max']} | "
                f"{row['v_equal']} |"
            )
    lines += [
        "",
        "| fixture | reference s | netx in Lava s | ratio |",
        "|---|---|---|---|",
    ]
    for r in runs:
        ratio = r["seconds_netx_lava"] / max(r["seconds_reference"], 1e-9)  # type: ignore[operator]
        lines.append(
            f"| {r['name']} | {r['seconds_reference']} | {r['seconds_netx_lava']} | "
            f"{ratio:.0f}x |"
        )
    lines.append("")
    lines.append("Times: one sample, wall seconds including Lava's build, compile and stop.")
    text = "\n".join(lines) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "netx_fixtures.md").write_text(text)
    (RESULTS / "netx_fixtures.json").write_text(
        json.dumps({"header": head, "runs": runs}, indent=1)
    )
    bad = [r["name"] for r in runs if not r["equal"]]
    if bad:
        raise SystemExit(f"not bit-exact with netx: {bad}")


if __name__ == "__main__":
    main()
