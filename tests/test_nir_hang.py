"""A damaged .nir file must end in a named error, never hang the reader (issue 17).

The fuzz benchmark found a bit-flipped NIR file (tests/data/damaged_edges.nir: our exporter's MLP
graph with three flipped bits) on which libhdf5 loops forever, in C, while reading the string
dataset ``node/edges``. Root cause: one flip raised the stored size of the last string of the
file's global heap collection (at byte 2064) from 8 ('NIRGraph') to 10, so that, aligned to 16
bytes, the walk of the collection skips 8 bytes too far, lands in the free-space object and then
reads an all-zero object header: index 0 (free space) with size 0, so the walk advances by 0
bytes. :func:`neurodeploy.converters.nir_file.global_heap_damage` walks every collection as
libhdf5 does and :func:`read_nir` refuses such a file by name before reading any string.

Every read of a damaged file here runs in a child process with a hard timeout, so a regression
fails the test instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import nir
import pytest
import torch

from neurodeploy.converters.nir_file import MIN_COLLECTION_SIZE, SIGNATURE, global_heap_damage
from neurodeploy.converters.nir_import import read_nir

DATA = Path(__file__).resolve().parent / "data"
DAMAGED = DATA / "damaged_edges.nir"
FIXTURES = Path("/work/shared/fixtures/nir-paper")
REPO = Path(__file__).resolve().parents[1]
HARD_TIMEOUT_S = 120  # the child imports torch (seconds); each read takes milliseconds
OBJHDR = 16  # bytes of a global heap object header with 8-byte lengths: idx, nrefs, 4, size

CHILD = """
import json, sys
from neurodeploy.converters.nir_import import read_nir
for p in sys.argv[1:]:
    try:
        read_nir(p)
        print(json.dumps([p, "loaded", ""]), flush=True)
    except Exception as e:
        print(json.dumps([p, type(e).__name__, str(e)]), flush=True)
"""


def read_in_child(*paths: Path) -> dict[str, tuple[str, str]]:
    """read_nir each path in one child process, killed after HARD_TIMEOUT_S; path -> (ending,
    message), the ending "loaded" or the exception's class name."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        out = subprocess.run(
            [sys.executable, "-P", "-c", CHILD, *map(str, paths)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=HARD_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"read_nir hung (> {HARD_TIMEOUT_S} s) on one of {paths}: {e.stdout!r}")
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("[")]
    return {p: (ending, msg) for p, ending, msg in rows}


def write_our_nir(path: Path, **metadata: object) -> Path:
    """Our exporter's graph of a small MLP (Linear -> LIF -> Linear -> LI readout)."""
    from neurodeploy.converters.nir_export import model_to_nir
    from neurodeploy.nn.zoo import build_model

    torch.manual_seed(0)
    model = build_model("mlp", (6,), 3, hidden=[4])
    nir.write(str(path), model_to_nir(model, extra_metadata={"task": "x", "T": 2, **metadata}))
    return path


def heap_objects(raw: bytes) -> tuple[int, list[tuple[int, int, int]]]:
    """The first global heap collection of a file written by libhdf5: its byte offset and its
    objects as (byte offset, index, size), walked by the file format (8-byte lengths)."""
    start = raw.index(SIGNATURE)
    (size,) = struct.unpack_from("<Q", raw, start + 8)
    assert raw[start + 4] == 1 and size >= MIN_COLLECTION_SIZE
    p, objs = start + 16, []
    while p + OBJHDR <= start + size:
        idx, _, _, osize = struct.unpack_from("<HHIQ", raw, p)
        objs.append((p, idx, osize))
        if idx == 0:
            break  # the free-space object ends the collection
        p += OBJHDR + (osize + 7) // 8 * 8
    return start, objs


def with_size(raw: bytes, at: int, size: int) -> bytes:
    """``raw`` with the 8-byte size field of the object header at byte ``at`` set to ``size``."""
    return raw[: at + 8] + struct.pack("<Q", size) + raw[at + 16 :]


@dataclass(frozen=True)
class Copies:
    valid: Path  # our exporter's file
    free0: Path  # its free-space object's size set to 0
    wrap: Path  # its last string's size set to 2**64 - 16
    start: int  # byte offset of the damaged global heap collection


@pytest.fixture(scope="module")
def copies(tmp_path_factory: pytest.TempPathFactory) -> Copies:
    """Our exporter's file with one object size damaged by hand, two ways that each make the
    walk advance by 0 bytes: the free-space object (index 0, need = size) with size 0, and the
    last string (index > 0, need = 16 + align8(size) mod 2**64) with size 2**64 - 16."""
    d = tmp_path_factory.mktemp("nir_hang")
    raw = write_our_nir(d / "valid.nir").read_bytes()
    start, objs = heap_objects(raw)
    (free_at, free_idx, _), (last_at, last_idx, _) = objs[-1], objs[-2]
    assert free_idx == 0 and last_idx > 0
    free0, wrap = d / "free_size_0.nir", d / "wrapping_size.nir"
    free0.write_bytes(with_size(raw, free_at, 0))
    wrap.write_bytes(with_size(raw, last_at, 2**64 - 16))
    return Copies(valid=d / "valid.nir", free0=free0, wrap=wrap, start=start)


def test_fixture_root_cause_by_hand() -> None:
    """The fuzz file: the string 'NIRGraph' (8 bytes) is stored with size 10, so the next header
    is read 8 bytes into the free-space object's header, and after it an all-zero header."""
    raw = DAMAGED.read_bytes()
    start, objs = heap_objects(raw)
    assert start == 2064
    at, idx, size = next(o for o in objs if raw[o[0] + 16 : o[0] + 24] == b"NIRGraph")
    assert (idx, size) == (26, 10)
    # libhdf5's walk: 2768 + 16 + align8(10) = 2800, then idx = 3368 (the free size's low 16
    # bits), size 0 -> 2816: idx 0, size 0 -> need 0: no progress
    assert at == 2768
    assert struct.unpack_from("<HHIQ", raw, 2800) == (3368, 0, 0, 0)
    assert struct.unpack_from("<HHIQ", raw, 2816) == (0, 0, 0, 0)
    assert global_heap_damage(DAMAGED) == (
        "global heap collection at byte 2064: object 0 at byte 2816 has size 0, so libhdf5's "
        "walk of the collection would not advance (it would hang)"
    )


def test_damaged_files_end_in_a_named_error_in_bounded_time(copies: Copies) -> None:
    """The fuzz file and both hand-made damages (each hangs h5py 3.16 / libhdf5 2.0 without the
    check: a plain ``h5py.File(p)["node/edges"][()]`` ran into a 10 s timeout)."""
    free0, wrap = copies.free0, copies.wrap
    ends = read_in_child(DAMAGED, free0, wrap)
    for path in (DAMAGED, free0, wrap):
        ending, msg = ends[str(path)]
        assert ending == "NIRFileError", (path, ending, msg)
        assert msg.startswith(f"{path}: damaged HDF5 file: global heap collection at byte")
        assert "would hang" in msg
    assert f"at byte {copies.start}: object 0 " in ends[str(free0)][1]
    assert "has size 18446744073709551600" in ends[str(wrap)][1]


def test_normal_files_still_load(copies: Copies, tmp_path: Path) -> None:
    """Our exporter's file, one whose metadata string holds the signature and version bytes,
    and the NIR paper's files (sinabs, Braille) load; the check finds nothing in them."""
    tricky = write_our_nir(tmp_path / "gcol.nir", note="GCOL\x01GCOL")
    paths = [copies.valid, tricky, *sorted(FIXTURES.glob("*.nir"))]
    for p in paths:
        assert global_heap_damage(p) is None, p
        g = read_nir(p)
        assert g.nodes and g.edges, p


def test_check_is_cheap(copies: Copies) -> None:
    """The pre-check is a scan of the file: well under a millisecond per 100 kB here; bound
    generously (shared CI machines) at 50 ms for our file."""
    t = time.perf_counter()
    for _ in range(10):
        global_heap_damage(copies.valid)
    assert (time.perf_counter() - t) / 10 < 0.05
