"""The fuzz suite's long profile (issue 17): the damage of tests/test_fuzz_files.py (truncations,
bit flips, byte insertions, type swaps in a program's header, a NIR file's datasets, a
checkpoint's payload and a recipe's values) applied EXAMPLES times per format; every load ends
loaded (a valid object), refused by name (a ValueError subclass naming the file) or failed (any
other exception: a bug). Prints a table and writes benchmarks/results/fuzz_files.md.
Run: ``.venv/bin/python -P benchmarks/fuzz_files.py [EXAMPLES]`` (default 300)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from tests.test_fuzz_files import FORMATS, NAMED, OK, damaged_file, outcome

DEFAULT_EXAMPLES = 300
# the same suite on the loaders as they were before issue 17 (commit ba68a40), 300 examples
BEFORE = """Before the fixes (commit ba68a40, `benchmarks/fuzz_files.py 300`):

| format | examples | loaded | named error | failed |
|---|---|---|---|---|
| nir-ours | 300 | 61 | 191 | 48 |
| nir-snntorch | 300 | 25 | 208 | 67 |
| program-chain | 300 | 30 | 98 | 172 |
| program-graph | 300 | 28 | 126 | 146 |
| checkpoint | 300 | 49 | 198 | 53 |
| recipe | 300 | 47 | 199 | 54 |

(zip and zlib errors, EOFError, KeyError, TypeError and AttributeError from a damaged program
header; NIR node errors and recipe decoding errors without the file name; a checkpoint config
that allocated 2^47 bytes.)
"""


HANG_S = 60  # an example that runs this long is a hang: the child is stopped, the file kept


def fuzz(name: str, examples: int, folder: Path, progress: Path) -> None:
    """Run one format's examples (in a child process), writing the counts, the distinct failure
    messages and the seconds so far to ``progress`` (JSON) after every example."""
    fmt = FORMATS[name]
    counts: Counter[str] = Counter()
    failures: list[str] = []
    t0 = time.perf_counter()

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        got = outcome(fmt.load, damaged_file(fmt, folder, data))
        counts[got if got in (OK, NAMED) else "failed"] += 1
        if got not in (OK, NAMED) and got not in failures:
            failures.append(got)
        state = {"counts": counts, "failures": failures, "seconds": time.perf_counter() - t0}
        progress.write_text(json.dumps(state))

    run()


def supervise(name: str, examples: int) -> tuple[Counter[str], list[str], float]:
    """(outcome counts, failures, seconds) of one format, run in a child process that is stopped
    when one example takes more than :data:`HANG_S` (counted as "hung", its file kept under
    results/fuzz_hangs/); the remaining examples then run in a new child (new random seed)."""
    counts: Counter[str] = Counter()
    failures: list[str] = []
    seconds = 0.0
    with tempfile.TemporaryDirectory() as d:
        folder, progress = Path(d), Path(d) / "progress.json"
        while sum(counts.values()) < examples:
            progress.unlink(missing_ok=True)
            left = examples - sum(counts.values())
            cmd = [sys.executable, "-P", __file__, "--one", name, str(left), d]
            child = subprocess.Popen(cmd)
            last = time.monotonic()
            seen = -1.0
            while child.poll() is None:
                time.sleep(0.5)
                mtime = progress.stat().st_mtime if progress.exists() else -1.0
                if mtime != seen:
                    seen, last = mtime, time.monotonic()
                elif time.monotonic() - last > HANG_S:
                    child.kill()
                    child.wait()
                    counts["hung"] += 1
                    hangs = ROOT / "results" / "fuzz_hangs"
                    hangs.mkdir(exist_ok=True)
                    for f in folder.glob("damaged*"):
                        shutil.copy(f, hangs / f"{name}_{counts['hung']}{f.suffix}")
                    hung = f"hung > {HANG_S} s (files in results/fuzz_hangs/)"
                    failures += [hung] if hung not in failures else []
            state = json.loads(progress.read_text()) if progress.exists() else None
            if state is not None:
                counts.update(state["counts"])
                failures += [f for f in state["failures"] if f not in failures]
                seconds += state["seconds"]
            if child.returncode not in (0, -9) or (state is None and not counts["hung"]):
                raise RuntimeError(f"{name}: the fuzzing child failed (exit {child.returncode})")
    return counts, failures, seconds


def main(examples: int = DEFAULT_EXAMPLES) -> None:
    rows, all_failures = [], []
    for name in FORMATS:
        counts, failures, seconds = supervise(name, examples)
        total = sum(counts.values())
        rows.append(
            f"| {name} | {total} | {counts[OK]} | {counts[NAMED]} | {counts['failed']} "
            f"| {counts['hung']} | {seconds:.1f} |"
        )
        all_failures += [f"- {name}: {f}" for f in failures]
        print(rows[-1], flush=True)
    lines = [
        "# Fuzzing the loaders of user files",
        "",
        f"`benchmarks/fuzz_files.py {examples}`: hypothesis examples per format (the damage of "
        "tests/test_fuzz_files.py: truncations, bit flips, byte insertions; type swaps in a "
        "program's JSON header and arrays, a NIR file's datasets, a checkpoint's payload, a "
        "recipe's values). Each load ends loaded (a valid object: a model runs a step, a program "
        "passes its shape, graph and hardware checks), refused by a named error (a ValueError "
        "subclass naming the file) or failed (any other exception, or an error without the "
        f"file name) or hung (one load ran over {HANG_S} s).",
        "",
        "| format | examples | loaded | named error | failed | hung | seconds |",
        "|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Failures:" if all_failures else "No failures.",
        *all_failures,
        "",
        BEFORE,
    ]
    out = ROOT / "results" / "fuzz_files.md"
    out.write_text("\n".join(lines))
    print("\n".join(all_failures) or "no failures")
    print(f"wrote {out}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--one"]:  # a child of supervise()
        _, _, fmt_name, n, folder = sys.argv
        fuzz(fmt_name, int(n), Path(folder), Path(folder) / "progress.json")
    else:
        main(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_EXAMPLES)
