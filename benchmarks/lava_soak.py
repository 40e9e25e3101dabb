"""Soak of the Lava target (issue 17): many consecutive ``LavaTarget`` runs in one process, and
runs interrupted by a real SIGINT in a subprocess, must leave nothing behind: no Lava worker
processes (descendants of the process, read from /proc; Python's own ``resource_tracker``, a
per-interpreter singleton that exits with its parent, is not Lava's and is not counted), no
threads (each Extractor's receiving thread), no shared-memory segments (/dev/shm entries), no
temporary files (entries of ``tempfile.gettempdir()``), and per-run time and resident memory
(VmRSS) that do not grow.

Programs: a chain (input 6 -> LIF 8 -> LIF 5 -> readout 3) and a graph (input 6 -> a: LIF 4
with a recurrent self-loop -> b: LIF 5 -> c: LIF 4 <- b, a (a skip edge: one relay stage) ->
readout 3 <- c), alternated run by run, each checked against ``ReferenceTarget(latency=True)``.

Writes benchmarks/results/lava_soak.md (the full 50 runs of each program; the test suite,
tests/test_lava_soak.py, runs fewer). Run: ``.venv/bin/python -P benchmarks/lava_soak.py``.
The module is also the interrupted child: ``python -P benchmarks/lava_soak.py --child``
prints ``running`` and runs a long batch until a signal stops it.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurodeploy.quant.program import IntEdge, IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse

ROOT = Path(__file__).resolve().parent
RESULT = ROOT / "results" / "lava_soak.md"
T, BATCH = 10, 2  # steps and samples of one soak run
RUNS = 50  # per program, in the benchmark
RSS_GROWTH_BOUND_KIB = 16 * 1024  # VmRSS after the last run - after the warm-up runs
# (it grows ~8 MiB over the first ~25 runs, allocator warm-up, then stays flat)
WARMUP = 4  # runs (both programs twice) before the memory baseline: imports, caches
CHILD_T, CHILD_BATCH = 200, 64  # the interrupted child's batch: many seconds of Lava


# ---------------------------------------------------------------------------------------------
# programs
# ---------------------------------------------------------------------------------------------
def _even(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return (2 * rng.integers(-30, 31, size=shape)).astype(np.int32)


def _dense(rng: np.random.Generator, n_in: int, n_out: int) -> Synapse:
    return Synapse("dense", _even(rng, (n_out, n_in)), (n_in,), (n_out,))


def _lif(rng: np.random.Generator, n: int, vth: int) -> dict[str, object]:
    return dict(
        neuron="lif",
        du=4095,
        dv=800,
        vth=vth,
        bias_exp=1,
        bias_mant=rng.integers(-150, 150, size=(n,)).astype(np.int32),
    )


def _program(layers: list[IntLayer]) -> IntProgram:
    return IntProgram(layers, "loihi2", "binary", 1.0, 1, (6,), input_signed=False, num_classes=3)


def chain_program(seed: int = 0) -> IntProgram:
    """input 6 -> LIF 8 -> LIF 5 -> readout 3."""
    rng = np.random.default_rng(seed)
    return _program(
        [
            IntLayer("l1", _dense(rng, 6, 8), 1, **_lif(rng, 8, 25)),  # type: ignore[arg-type]
            IntLayer("l2", _dense(rng, 8, 5), 1, **_lif(rng, 5, 20)),  # type: ignore[arg-type]
            IntLayer("out", _dense(rng, 5, 3), 0, neuron=None, readout_bias=np.zeros(3)),
        ]
    )


def graph_program(seed: int = 0) -> IntProgram:
    """input 6 -> a: LIF 4 (recurrent self-loop) -> b: LIF 5 -> c: LIF 4 <- b, a (skip edge:
    one relay) -> readout 3 <- c."""
    rng = np.random.default_rng(seed)
    lif = _lif
    return _program(
        [
            IntLayer(
                "a",
                _dense(rng, 6, 4),
                1,
                **lif(rng, 4, 25),  # type: ignore[arg-type]
                extra=[IntEdge("a", _dense(rng, 4, 4), 1, recurrent=True)],
            ),
            IntLayer("b", _dense(rng, 4, 5), 1, **lif(rng, 5, 20)),  # type: ignore[arg-type]
            IntLayer(
                "c",
                _dense(rng, 5, 4),
                1,
                **lif(rng, 4, 20),  # type: ignore[arg-type]
                extra=[IntEdge("a", _dense(rng, 4, 4), 1)],
            ),
            IntLayer("out", _dense(rng, 4, 3), 0, neuron=None, readout_bias=np.zeros(3)),
        ]
    )


def spikes(steps: int, batch: int, seed: int) -> np.ndarray:
    """Bernoulli(0.5) binary input (steps, batch, 6)."""
    return (np.random.default_rng(seed).random((steps, batch, 6)) < 0.5).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# what a process leaves behind (/proc: psutil is not a dependency)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # /proc/<pid>/stat field 22 (clock ticks since boot): tells a reused PID apart
    cmdline: str


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of ``pid``, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def descendants(pid: int) -> list[Proc]:
    """Live (not zombie) descendants of ``pid``, Python's resource_tracker excluded."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None and st[1] != "Z":
            parent[int(entry)] = st[0]
    found, frontier = [], {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier}
        for p in frontier:
            try:
                cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            st = _stat(p)
            if st is not None and "resource_tracker" not in cmd:
                found.append(Proc(p, st[2], cmd.strip()))
    return found


def alive(procs: list[Proc]) -> list[Proc]:
    """Those of ``procs`` still running (same PID and start time, not a zombie)."""
    return [
        p for p in procs if (st := _stat(p.pid)) is not None and st[2] == p.start and st[1] != "Z"
    ]


def shm_entries() -> set[str]:
    """Names in /dev/shm (POSIX shared memory: Lava's channels' SharedMemoryManager segments)."""
    try:
        return set(os.listdir("/dev/shm"))
    except FileNotFoundError:
        return set()


def temp_entries() -> set[str]:
    return set(os.listdir(tempfile.gettempdir()))


def rss_kib() -> int:
    """Resident memory of this process (VmRSS, KiB)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmRSS")


# ---------------------------------------------------------------------------------------------
# the soak
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecord:
    kind: str  # "chain" or "graph"
    seconds: float  # wall time of LavaTarget(...).run
    rss_kib: int  # after the run
    threads: int  # threading.active_count() after the run
    children: int  # live descendants after the run


def soak(runs: int) -> list[RunRecord]:
    """``runs`` runs of each program, alternated; every result equal to the reference's."""
    from neurodeploy.targets.lava import LavaTarget
    from neurodeploy.targets.reference import ReferenceTarget

    programs = {"chain": chain_program(), "graph": graph_program()}
    x = spikes(T, BATCH, seed=1)
    want = {k: ReferenceTarget(p, latency=True).run(x) for k, p in programs.items()}
    records = []
    for i in range(2 * runs):
        kind = "chain" if i % 2 == 0 else "graph"
        t0 = time.perf_counter()
        got = LavaTarget(programs[kind]).run(x)
        seconds = time.perf_counter() - t0
        ref = want[kind]
        if not (
            np.array_equal(got.output, ref.output)
            and all(np.array_equal(a, b) for a, b in zip(got.spikes, ref.spikes, strict=True))
        ):
            raise AssertionError(f"run {i} ({kind}): Lava differs from the reference")
        records.append(
            RunRecord(
                kind, seconds, rss_kib(), threading.active_count(), len(descendants(os.getpid()))
            )
        )
    return records


def child() -> None:
    """The interrupted child: a long batch (a chain with recorded states, so VarWires too)."""
    from neurodeploy.targets.lava import LavaTarget

    target = LavaTarget(chain_program())
    print("running", flush=True)
    target.run(spikes(CHILD_T, CHILD_BATCH, seed=2), record_states=True)
    print("finished", flush=True)


def main() -> None:
    private = tempfile.mkdtemp(prefix="lava-soak-")  # only this process's temporaries in it
    os.environ["TMPDIR"] = tempfile.tempdir = private
    shm0, tmp0 = shm_entries(), temp_entries()
    threads0 = threading.active_count()
    t0 = time.perf_counter()
    records = soak(RUNS)
    total = time.perf_counter() - t0
    time.sleep(1.0)  # let concurrent processes' segments go before comparing
    base = records[WARMUP - 1].rss_kib
    growth = records[-1].rss_kib - base
    lines = [
        "# Lava target soak (issue 17)",
        "",
        f"`benchmarks/lava_soak.py`: {RUNS} runs of a chain and {RUNS} of a graph program "
        f"(recurrent self-loop, a skip edge through one relay), alternated, one process; "
        f"T = {T}, batch {BATCH}; every run equal to `ReferenceTarget(latency=True)`.",
        "",
        "| program | runs | median s | first s | last s | max s |",
        "|---|---|---|---|---|---|",
    ]
    for kind in ("chain", "graph"):
        s = [r.seconds for r in records if r.kind == kind]
        lines.append(
            f"| {kind} | {len(s)} | {statistics.median(s):.3f} | {s[0]:.3f} | {s[-1]:.3f} "
            f"| {max(s):.3f} |"
        )
    lines += [
        "",
        f"- total {total:.1f} s for {len(records)} runs",
        f"- VmRSS after run {WARMUP} (warm-up): {base} KiB; after the last: "
        f"{records[-1].rss_kib} KiB; growth {growth} KiB (bound {RSS_GROWTH_BOUND_KIB} KiB), "
        f"{growth / max(1, len(records) - WARMUP):.1f} KiB per run",
        "- VmRSS (KiB) after runs "
        + ", ".join(f"{k}: {records[k - 1].rss_kib}" for k in (WARMUP, 25, 50, 75, len(records))),
        f"- threads before: {threads0}; after each run: min {min(r.threads for r in records)}, "
        f"max {max(r.threads for r in records)}",
        f"- live descendants after each run (resource_tracker excluded): max "
        f"{max(r.children for r in records)}",
        f"- new /dev/shm entries after the soak: {sorted(shm_entries() - shm0)}",
        f"- new entries in the soak's own tempfile.gettempdir() after it: "
        f"{sorted(temp_entries() - tmp0)}",
        f"- load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
        "(the suite and other jobs shared them: the seconds above include that)",
        "",
    ]
    shutil.rmtree(private, ignore_errors=True)  # reported above; the run may hold its own
    RESULT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        child()
    else:
        main()
