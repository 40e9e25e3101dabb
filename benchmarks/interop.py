"""Interoperability matrix (issue 18, item 3): producers (neurodeploy, snnTorch, SpikingJelly,
norse, lava-dl netx) x consumers (our float import, our integer reference, Lava, snnTorch's
``import_from_nir``, SpikingJelly's ``import_from_nir``, nirtorch's ``nir_to_torch``) on an MLP,
a conv net and a recurrent net.

Each producer builds a small seeded model in its own library and writes its NIR graph with its own
exporter to a file; every consumer reads the file and runs the same Bernoulli input (rate 0.2,
T = 16, batch 4; netx: one sample, netx streams one). Per neuron layer, agreement = the fraction
of equal spike entries against the producer's own forward (netx: netx's ``hdf5.Network`` in Lava
fixed_pt). A cell that cannot run holds the shortened exception; a cell below 1.0 its reason.
The cells are in ``benchmarks/_interop_cells.py``; ``tests/test_interop.py`` runs the cheap ones
(no Lava) with the bounds measured here, so that a peer's version change that breaks a cell
fails a test.

    OMP_NUM_THREADS=2 .venv/bin/python -P benchmarks/interop.py [--no-lava]

Writes benchmarks/results/interop.md and .json (versions, machine, date, threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _interop_cells import (
    ARCHS,
    BATCH,
    CONSUMERS,
    PRODUCERS,
    RATE,
    SEED,
    Cell,
    T,
    matrix,
)

RESULTS = Path(__file__).parent / "results"
PACKAGES = ("torch", "nir", "nirtorch", "snntorch", "spikingjelly", "norse", "lava-nc", "lava-dl")


def versions() -> dict[str, str]:
    out = {}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def write(cells: list[Cell], meta: dict[str, object]) -> str:
    consumers = list(dict.fromkeys(c.consumer for c in cells))
    lines = [
        "# Interoperability matrix",
        "",
        f"{meta['date']}, {meta['machine']}, OMP_NUM_THREADS={meta['threads']}, "
        f"{meta['seconds']:.0f} s. Versions: "
        + ", ".join(f"{k} {v}" for k, v in meta["versions"].items())  # type: ignore[attr-defined]
        + ".",
        "",
        f"Input: Bernoulli spikes, rate {RATE}, T = {T}, batch {BATCH} (netx: 1 sample), seed "
        f"{SEED}. Cell: spike agreement per neuron layer (fraction of equal (t, b, neuron) "
        "entries) of the consumer against the producer's own forward (netx: netx's Network in "
        "Lava fixed_pt); or why the cell cannot run. `benchmarks/interop.py`; the cells without "
        "Lava are asserted in `tests/test_interop.py`.",
        "",
        "| producer | arch | " + " | ".join(consumers) + " |",
        "|---|---|" + "---|" * len(consumers),
    ]
    rows: dict[tuple[str, str], dict[str, Cell]] = {}
    for c in cells:
        rows.setdefault((c.producer, c.arch), {})[c.consumer] = c
    failed: dict[tuple[str, str], str] = {}
    for (p, a), row in rows.items():
        texts = []
        for k in consumers:
            c = row.get(k)
            if c is not None and c.error.startswith("producer: "):
                failed[(p, a)] = c.error.removeprefix("producer: ")
                texts.append("-- (the producer fails, below)")
                continue
            texts.append("" if c is None else (c.text() if c.agreement else f"-- ({c.error})"))
        lines.append(f"| {p} | {a} | " + " | ".join(t.replace("|", "/") for t in texts) + " |")
    lines += ["", "## Reasons for every cell below 1.0", ""]
    for c in cells:
        if c.agreement is not None and c.reason:
            lines.append(f"- {c.producer} {c.arch} -> {c.consumer} ({c.text()}): {c.reason}")
    if failed:
        lines += ["", "## Producers that cannot build or write the graph", ""]
        lines += [f"- {p} {a}: {e}" for (p, a), e in failed.items()]
    notes = meta.get("notes") or []
    if notes:
        lines += ["", "## Producer notes", ""]
        lines += [f"- {n}" for n in notes]  # type: ignore[attr-defined]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-lava", action="store_true", help="leave out Lava and netx")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    notes: list[str] = []
    cells = matrix(list(PRODUCERS), ARCHS, list(CONSUMERS), lava=not args.no_lava, notes=notes)
    meta: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.processor() or platform.platform()}, "
        f"{os.cpu_count()} CPUs",
        "threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "versions": versions(),
        "input": {"rate": RATE, "T": T, "batch": BATCH, "seed": SEED},
        "seconds": time.perf_counter() - t0,
        "notes": notes,
    }
    md = write(cells, meta)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "interop.json").write_text(
        json.dumps({"meta": meta, "cells": [asdict(c) for c in cells]}, indent=1)
    )
    (RESULTS / "interop.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
