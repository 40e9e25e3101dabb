"""Speed and memory of multi-step LIF neurons: ours (fused kernel and reference path) against
snntorch Leaky, SpikingJelly LIFNode (multi-step), norse LIF and lava-dl slayer's CUBA neuron,
all in one run, timings interleaved (each repetition times every contestant once, in turn, so
load from other processes hits them alike).

Sizes: (T, n) in {(32, 1024), (100, 1024), (100, 4096)}, batch B=16 (``--device cuda``:
the open-neuromorphic sizes T=500, n in {4096, 16384}). Two settings: the neuron alone (input
(T, B, n) floats that require grad) and Linear(n, n) + neuron (input: binary spikes at 20%,
the Linear's weight learns). Two passes: forward, and forward + backward of output.sum().
Times are medians of ``--reps`` after ``--warmup`` runs. Peak memory: what one
forward+backward adds (see :func:`peak_bytes`). Neuron settings: tau=2 (beta=0.5), threshold 1,
hard reset to 0, reset detached, each library's default surrogate (norse: its LIF defaults,
a current-based LIF; lava-dl: CUBA with current decay 1, voltage decay 0.5); ours with
smoothing on (alpha=0.5, learnable) and off. First-call compile time of our kernel is measured
in fresh subprocesses with an empty and then a warm numba cache (``--device cuda``: Triton's kernel cache).

Our fused rows run the numba loops on CPU and, with ``--device cuda``, the Triton kernels of
neurodeploy.neuron.kernels.triton_lif (forced: ``kernel="fused"``, so a missing or failing Triton
shows as a failed row instead of a silent fallback to the reference path). SpikingJelly's
LIFNode picks its own CUDA implementation (SJ_LIF_CUDA_IMPLEMENTATION, default "auto").

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/neuron_speed.py [--reps 7] [--device cpu|cuda]

Writes benchmarks/results/neuron_speed[_cuda].md and .json.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from neurodeploy.nn.layers import LIF

RESULTS = Path(__file__).parent / "results"
CPU_SIZES = ((32, 1024), (100, 1024), (100, 4096))
GPU_SIZES = ((500, 4096), (500, 16384))
PEERS = ("snntorch Leaky", "SpikingJelly LIFNode", "norse LIF", "lava-dl CUBA")


@dataclass
class Contestant:
    """A neuron as a callable on time-major (T, B, n) input, or on (B, n, T) if ``time_last``."""

    name: str
    make: Callable[[int, str], nn.Module]
    run: Callable[[nn.Module, torch.Tensor], torch.Tensor]
    time_last: bool = False
    peer: bool = True


def _ours(mps: bool, kernel: str) -> Callable[[int, str], nn.Module]:
    return lambda n, dev: LIF(tau=2.0, theta=1.0, mps=mps, alpha_init=0.5, kernel=kernel).to(dev)


def _snntorch(n: int, dev: str) -> nn.Module:
    import snntorch as snn

    return snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism="zero").to(dev)


def _run_snntorch(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    mem = m.init_leaky()
    out = []
    for t in range(x.shape[0]):
        spk, mem = m(x[t], mem)
        out.append(spk)
    return torch.stack(out)


def _sj(n: int, dev: str) -> nn.Module:
    from spikingjelly.activation_based import neuron

    return neuron.LIFNode(
        tau=2.0, v_threshold=1.0, v_reset=0.0, detach_reset=True, step_mode="m"
    ).to(dev)


def _run_sj(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    m.reset()
    return m(x)


def _norse(n: int, dev: str) -> nn.Module:
    import norse.torch as nt

    return nt.LIF().to(dev)


def _run_norse(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m(x)[0]


def _slayer(n: int, dev: str) -> nn.Module:
    from lava.lib.dl import slayer

    return slayer.neuron.cuba.Neuron(
        threshold=1.0,
        current_decay=1.0,
        voltage_decay=0.5,
        persistent_state=False,
        shared_param=True,
    ).to(dev)


def contestants(dev: str = "cpu") -> list[Contestant]:
    fused = (
        "fused"  # the fused kernel or a failed row, never a silent fallback to the reference path
    )
    own = [
        Contestant("ours fused, MPS", _ours(True, fused), lambda m, x: m(x), peer=False),
        Contestant("ours fused, vanilla", _ours(False, fused), lambda m, x: m(x), peer=False),
        Contestant("ours reference, MPS", _ours(True, "reference"), lambda m, x: m(x), peer=False),
    ]
    peers = [
        Contestant("snntorch Leaky", _snntorch, _run_snntorch),
        Contestant("SpikingJelly LIFNode", _sj, _run_sj),
        Contestant("norse LIF", _norse, _run_norse),
        Contestant("lava-dl CUBA", _slayer, lambda m, x: m(x), time_last=True),
    ]
    return own + peers


class Case:
    """One contestant at one size and setting: builds modules and inputs once."""

    def __init__(self, c: Contestant, T: int, n: int, B: int, linear: bool, dev: str) -> None:
        self.c, self.dev = c, dev
        g = torch.Generator().manual_seed(0)
        self.neuron = c.make(n, dev)
        self.lin = None
        if linear:
            self.lin = nn.Linear(n, n).to(dev)
            with torch.no_grad():
                self.lin.weight.mul_(6.0)  # a few % of the neurons fire
            x = (torch.rand(T, B, n, generator=g) < 0.2).float()
        else:
            x = torch.randn(T, B, n, generator=g) * 0.6 + 0.5
        self.x = x.to(dev)
        if c.time_last and not linear:
            self.x = self.x.permute(1, 2, 0).contiguous()  # slayer's native (B, n, T)
        self.x.requires_grad_(not linear)

    def forward(self) -> torch.Tensor:
        x = self.x
        if self.lin is not None:
            x = self.lin(x)  # (T, B, n)
            if self.c.time_last:
                x = x.permute(1, 2, 0)
        return self.c.run(self.neuron, x)

    def step(self, backward: bool) -> None:
        if backward:
            self.forward().sum().backward()
            self.x.grad = None
            if self.lin is not None:
                self.lin.zero_grad(set_to_none=True)
            for p in self.neuron.parameters():
                p.grad = None
        else:
            with torch.no_grad():
                self.forward()
        if self.dev == "cuda":
            torch.cuda.synchronize()


def linear_only(T: int, n: int, B: int, dev: str, backward: bool) -> Callable[[], None]:
    lin = nn.Linear(n, n).to(dev)
    x = (torch.rand(T, B, n) < 0.2).float().to(dev)

    def f() -> None:
        if backward:
            lin(x).sum().backward()
            lin.zero_grad(set_to_none=True)
        else:
            with torch.no_grad():
                lin(x)
        if dev == "cuda":
            torch.cuda.synchronize()

    return f


def _proc_status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {key}")


def peak_bytes(fn: Callable[[], None], dev: str) -> int | None:
    """Peak memory that ``fn`` adds: on CUDA torch's max_memory_allocated above the bytes live
    before it; on CPU (Linux) the resident-set high-water mark (VmHWM, reset through
    /proc/self/clear_refs) above the resident set before it. With MALLOC_MMAP_THRESHOLD_=65536
    (:func:`memory_in_child`) every buffer over 64 KiB is its own mapping, returned to the OS
    when freed, so the resident set follows the live buffers of every library alike."""
    if dev == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        return int(torch.cuda.max_memory_allocated() - base)
    try:
        base = _proc_status("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")
    except (OSError, RuntimeError):
        return None
    fn()
    return _proc_status("VmHWM") - base


def memory_peaks(conts: list[Contestant], sizes: tuple, B: int, dev: str) -> dict[str, int]:
    """Peak bytes of one forward+backward per (size, setting, contestant), after one warm-up."""
    out: dict[str, int] = {}
    for T, n in sizes:
        for lin in (False, True):
            for c in conts:
                try:
                    case = Case(c, T, n, B, lin, dev)
                    case.step(True)
                    pk = peak_bytes(functools.partial(case.step, True), dev)
                except Exception:  # noqa: BLE001 - failures are reported by the timing pass
                    continue
                if pk is not None:
                    out[f"{T}x{n}x{int(lin)}x{c.name}"] = pk
                del case
    return out


def memory_in_child(a: argparse.Namespace, dev: str) -> dict[str, int]:
    """Run :func:`memory_peaks` in a child process with MALLOC_MMAP_THRESHOLD_=65536 (see
    :func:`peak_bytes`); timings stay in this process, with the allocator's defaults (the
    threshold makes every allocation over 64 KiB a fresh mapping, which would slow down the
    many-small-ops contestants far more than one fused loop)."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "peaks.json"
        argv = [sys.executable, *sys.argv, "--memory-only", str(path)]
        subprocess.run(
            argv,
            env=dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536"),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        peaks: dict[str, int] = json.loads(path.read_text())
    return peaks


def compile_times(dev: str = "cpu") -> dict[str, float]:
    """Seconds to the first fused forward+backward (MPS, defaults) in a fresh process, with an
    empty numba cache (CUDA: Triton cache) and then the cache that run left behind
    (NUMBA_CACHE_DIR / TRITON_CACHE_DIR in a temporary folder): a small layer and (T, B, n) =
    (100, 16, 1024). Each is the run's full compile cost: forward, state rebuild and backward
    loops (CUDA: after CUDA is initialised, so the context start-up is not counted)."""
    code = (
        "import time, sys; import torch; from neurodeploy.nn.layers import LIF; "
        f"dev = {dev!r}; "
        "x = torch.rand(*map(int, sys.argv[1:]), device=dev, requires_grad=True); "
        "sync = torch.cuda.synchronize if dev == 'cuda' else (lambda: None); sync(); "
        "t1 = time.perf_counter(); LIF(kernel='fused').to(dev)(x).sum().backward(); "
        "sync(); print(time.perf_counter() - t1)"
    )
    out: dict[str, float] = {}
    for shape in (("8", "4", "64"), ("100", "16", "1024")):
        with tempfile.TemporaryDirectory() as d:
            env = dict(os.environ, NUMBA_CACHE_DIR=d, TRITON_CACHE_DIR=d)
            for cache in ("empty", "warm"):
                r = subprocess.run(
                    [sys.executable, "-c", code, *shape],
                    env=env,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                key = f"x {'x'.join(shape)}, {cache} cache (s)"
                out[key] = float(r.stdout.strip().splitlines()[-1])
    return out


def versions() -> dict[str, str]:
    v = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("numba", "triton", "numpy", "snntorch", "spikingjelly", "norse", "lava-dl"):
        try:
            v[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            v[dist] = "not installed"
    return v


def machine(dev: str) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    s = f"{cpu}, {os.cpu_count()} logical CPUs, torch threads {torch.get_num_threads()}"
    if dev == "cuda":
        s += f"; GPU {torch.cuda.get_device_name()}"
    return s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--B", type=int, default=16)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--sizes", default=None, help="e.g. 32x1024,100x1024 (T x n)")
    ap.add_argument("--skip", default="", help="comma-separated contestant names to leave out")
    ap.add_argument("--out", default=None)
    ap.add_argument("--memory-only", default=None, help=argparse.SUPPRESS)  # child process
    a = ap.parse_args()
    dev = a.device
    if dev == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device visible to torch")
    sizes = (
        tuple(tuple(int(v) for v in s.split("x")) for s in a.sizes.split(","))
        if a.sizes
        else (GPU_SIZES if dev == "cuda" else CPU_SIZES)
    )
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    conts = [c for c in contestants(dev) if c.name not in skip]
    warnings.filterwarnings("ignore")  # the peers' deprecation chatter
    if a.memory_only:
        Path(a.memory_only).write_text(json.dumps(memory_peaks(conts, sizes, a.B, dev)))
        return
    peaks = memory_in_child(a, dev)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    comp = compile_times(dev)
    rows = []
    from tqdm import tqdm

    plan = [(T, n, lin, bw) for T, n in sizes for lin in (False, True) for bw in (False, True)]
    for T, n, lin, bw in tqdm(plan, desc="neuron_speed"):
        cases: dict[str, Case | None] = {}
        errors: dict[str, str] = {}
        for c in conts:
            try:
                cases[c.name] = Case(c, T, n, a.B, lin, dev)
                for _ in range(a.warmup):
                    cases[c.name].step(bw)  # type: ignore[union-attr]
            except Exception as e:  # noqa: BLE001 - a peer that cannot run is reported, not fatal
                cases[c.name] = None
                errors[c.name] = f"{type(e).__name__}: {e}"[:160]
        base = linear_only(T, n, a.B, dev, bw) if lin else None
        if base is not None:
            for _ in range(a.warmup):
                base()
        times: dict[str, list[float]] = {k: [] for k, v in cases.items() if v is not None}
        if base is not None:
            times["Linear alone"] = []
        for _ in range(a.reps):  # interleaved: each rep times everyone once
            for name in list(times):
                fn = base if name == "Linear alone" else (lambda cs=cases[name]: cs.step(bw))  # type: ignore[misc]
                t0 = time.perf_counter()
                fn()  # type: ignore[misc]
                times[name].append(time.perf_counter() - t0)
        for name, ts in times.items():
            mem = peaks.get(f"{T}x{n}x{int(lin)}x{name}") if bw else None
            rows.append(
                {
                    "T": T,
                    "n": n,
                    "B": a.B,
                    "linear": lin,
                    "backward": bw,
                    "name": name,
                    "median_ms": 1e3 * statistics.median(ts),
                    "min_ms": 1e3 * min(ts),
                    "peak_mib": None if mem is None else mem / 2**20,
                }
            )
        for name, err in errors.items():
            rows.append(
                {
                    "T": T,
                    "n": n,
                    "B": a.B,
                    "linear": lin,
                    "backward": bw,
                    "name": name,
                    "error": err,
                }
            )
        del cases
    res = {
        "date": stamp,
        "device": dev,
        "machine": machine(dev),
        "versions": versions(),
        "B": a.B,
        "reps": a.reps,
        "warmup": a.warmup,
        "compile": comp,
        "rows": rows,
    }
    out = Path(a.out) if a.out else RESULTS / ("neuron_speed" + ("_cuda" if dev == "cuda" else ""))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=1))
    md = render(res)
    out.with_suffix(".md").write_text(md)
    print(md)


def render(res: dict) -> str:
    rows = res["rows"]
    v = res["versions"]
    lines = [
        f"# Multi-step LIF neurons: speed and memory ({res['device'].upper()})",
        "",
        f"Date {res['date']}; {res['machine']}; "
        + ", ".join(f"{k} {x}" for k, x in v.items())
        + ".",
        "",
        f"B={res['B']}, median of {res['reps']} interleaved runs after {res['warmup']} "
        "warm-up runs, milliseconds; forward+backward = backward of output.sum(). "
        "`x peer`: time / the fastest peer's time in that column (< 1 is faster). "
        "Peak: memory added during one forward+backward (MiB; CPU: resident-set high-water "
        "mark with every buffer > 64 KiB mapped on its own, so all libraries are counted "
        "alike, measured in a separate process so that this allocator setting does not "
        "touch the timings; CUDA: torch's max_memory_allocated).",
        "",
    ]
    if res["device"] == "cuda":
        lines += [
            "On CUDA the `ours fused` rows run the Triton kernels of "
            "neurodeploy.neuron.kernels.triton_lif (float32; forced, so a failure shows as a "
            "failed row, not a fallback).",
            "",
        ]
    if res["compile"]:
        lines += [
            "Our kernel's first forward+backward in a fresh process (compile or cache "
            "load included), input "
            + ", ".join(f"{k} {val:.2f}" for k, val in res["compile"].items())
            + ".",
            "",
        ]
    sizes = sorted({(r["T"], r["n"]) for r in rows})
    for lin in (False, True):
        lines += [
            f"## {'Linear(n, n) + neuron' if lin else 'Neuron alone'}",
            "",
            "| T, n | contestant | forward ms | x peer | fwd+bwd ms | x peer | peak MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for T, n in sizes:
            sel = [r for r in rows if (r["T"], r["n"]) == (T, n) and r["linear"] == lin]
            best = {}
            for bw in (False, True):
                peer = [
                    r["median_ms"]
                    for r in sel
                    if r["backward"] == bw and r["name"] in PEERS and "median_ms" in r
                ]
                best[bw] = min(peer) if peer else None
            names = list(dict.fromkeys(r["name"] for r in sel))
            for name in names:
                f = next((r for r in sel if r["name"] == name and not r["backward"]), {})
                b = next((r for r in sel if r["name"] == name and r["backward"]), {})
                if "error" in f or "error" in b:
                    err = f.get("error") or b.get("error")
                    lines.append(f"| {T}, {n} | {name} | failed: {err} | | | | |")
                    continue

                def cell(r: dict, bw: bool) -> tuple[str, str]:
                    if "median_ms" not in r:
                        return "", ""
                    ratio = f"{r['median_ms'] / best[bw]:.2f}" if best[bw] else ""
                    return f"{r['median_ms']:.2f}", ratio

                fm, fr = cell(f, False)
                bm, br = cell(b, True)
                pk = "" if b.get("peak_mib") is None else f"{b['peak_mib']:.1f}"
                lines.append(f"| {T}, {n} | {name} | {fm} | {fr} | {bm} | {br} | {pk} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
