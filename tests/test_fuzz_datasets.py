"""Fuzz every data-set reader on small valid files written here in the real formats: random
truncations, bit flips and type swaps must end in a named error (a ``ValueError`` whose message
holds the file's path) or a well-formed load, never another exception (issue 17).

In-suite budget: ``ND_FUZZ_EXAMPLES`` examples per reader (default 25, no deadline); a longer
benchmark-style run: ``ND_FUZZ_EXAMPLES=2000 pytest tests/test_fuzz_datasets.py``."""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurodeploy.data.cifar import read_batches
from neurodeploy.data.events import (
    FrameSpec,
    bin_events,
    load_shd,
    read_bin,
    read_cifar10_dvs,
    read_gesture_npy,
    read_ncaltech_bin,
)
from neurodeploy.data.inputs import load_npz_inputs
from neurodeploy.data.modelnet import PointClouds, read_off
from tests.test_real_data import CUBE_OFF, random_events, write_aedat2, write_nmnist_bin, write_shd

EXAMPLES = int(os.environ.get("ND_FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
EVENTS = random_events(np.random.default_rng(0), 12, 34, 34)


@dataclass
class Reader:
    """A reader under fuzz: ``write(path, swap)`` writes the valid file (or the ``swap``-th
    type-swapped variant), ``read(path)`` loads it and checks that the result is well formed."""

    name: str
    filename: str
    write: Callable[[Path, int | None], None]
    read: Callable[[Path], object]
    swaps: int = 0
    extra: dict = field(default_factory=dict)


def _well_formed_events(ev, path: Path, sensor=(34, 34)) -> None:
    n = len(ev.t)
    for a in ev:
        assert a.ndim == 1 and len(a) == n, "events of unequal length loaded"
    for a in ev[1:]:
        assert a.dtype == np.int64, "non-integer coordinates loaded"
    assert np.all(np.isfinite(ev.t.astype(np.float64))), "non-finite time loaded"
    frames = bin_events(ev, FrameSpec(sensor, 2, 4), source=str(path))
    assert frames.sum() == n  # every event counted once


# ------------------------------------------------------------------ writers with type swaps
_BAD_VALUES = [
    np.array([np.nan, 1.0]),
    np.array(["a", "b"]),
    np.zeros((2, 2, 2)),
    np.array([], dtype=np.float64),
    np.array([1.5, 2.5]),
    np.array([-(2**40), 2**40]),
]
_BAD_PY = [None, "text", 3.5, {b"x": 1}, [[1, 2]], b"\x00" * 7]


def _cifar(path: Path, swap: int | None) -> None:
    d: dict = {b"data": np.arange(2 * 3072).reshape(2, 3072).astype(np.uint8), b"labels": [1, 2]}
    if swap is not None:
        key = (b"data", b"labels")[swap % 2]
        d[key] = (_BAD_VALUES + _BAD_PY)[swap // 2]
    path.write_bytes(pickle.dumps(d, protocol=2 + (swap or 0) % 4))


def _read_cifar(path: Path) -> None:
    x, y = read_batches([path], b"labels")
    assert x.dtype == np.uint8 and x.shape[1:] == (3, 32, 32) and y.shape == (len(x),)


def _aedat(path: Path, swap: int | None) -> None:
    write_aedat2(path, EVENTS)
    if swap is not None:
        body = path.read_bytes().split(b"raw AE data file\r\n", 1)[1]
        head = [b"#!AER-DAT3.1\r\n", b"#!AER-DATxx\r\n", b"", b"#no version\r\n", b"#\xff\xfe\r\n"]
        path.write_bytes(head[swap] + body)


def _npz(path: Path, swap: int | None) -> None:
    arrays = dict(zip("txyp", (np.asarray(a) for a in EVENTS)))
    if swap is not None:
        arrays["txyp"[swap % 4]] = _BAD_VALUES[swap // 4]
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _gesture(path: Path, swap: int | None) -> None:
    t, x, y, p = EVENTS
    a = np.stack([x, y, p, t // 1000], 1)
    if swap is not None:
        a = [a.astype(np.float64) * np.nan, a[:, :3], a.astype("U8"), a.astype(np.float64) + 0.5][
            swap
        ]
    np.save(path, a)


def _shd(path: Path, swap: int | None) -> None:
    samples = [([0.0, 0.05, 0.5], [0, 699, 7]), ([0.2], [3])]
    labels: list = [4, 19]
    if swap == 0:
        samples[1] = ([np.nan], [3])
    if swap == 1:
        samples[0] = ([0.1, -0.1, 0.2], [1, 2, 3])
    write_shd(path, samples, labels)
    with h5py.File(path, "a") as f:
        if swap == 2:
            del f["labels"]
            f.create_dataset("labels", data=np.asarray([0.5, 1.0]))
        if swap == 3:
            del f["labels"]
            f.create_dataset("labels", data=np.asarray([1, 2, 3], np.uint16))
        if swap == 4:
            del f["spikes/units"]
            f.create_dataset("spikes/units", data=np.zeros((2, 2), np.float32))
        if swap == 5:
            del f["spikes/times"]
            f.create_dataset("spikes/times", data=np.array([b"a", b"b"]))
    if path.name == "shd_train.h5":
        write_shd(path.with_name("shd_test.h5"), samples[:1], [4])


def _read_shd(path: Path) -> None:
    d = load_shd(path.parent, T=14)
    for part in (d.train, d.test):
        for i in range(len(part)):
            x, y = part[i]
            assert x.shape == (14, 700) and 0 <= y < 20


def _off(path: Path, swap: int | None) -> None:
    tokens = CUBE_OFF.split("\n")
    if swap is not None:
        bad = ["nan", "inf", "-1", "x", "1e999", "99999999999999999999"][swap % 6]
        line = [1, 2, 10][swap // 6]  # the counts line, a vertex, a face
        parts = tokens[line].split()
        parts[swap % len(parts)] = bad
        tokens[line] = " ".join(parts)
    path.write_text("\n".join(tokens))


def _read_off(path: Path) -> None:
    verts, tris = read_off(path)
    assert verts.ndim == 2 and verts.shape[1] == 3 and np.all(np.isfinite(verts))
    assert tris.min() >= 0 and tris.max() < len(verts)


def _txt(path: Path, swap: int | None) -> None:
    a = np.random.default_rng(1).normal(size=(6, 6))
    buf = io.StringIO()
    np.savetxt(buf, a, delimiter=",", fmt="%.4f")
    text = buf.getvalue()
    if swap is not None:
        text = text.replace(text.split(",")[swap % 5 + 1], ["nan", "inf", "abc", "", "1,2"][swap])
    path.write_text(text)


def _read_txt(path: Path) -> None:
    x = PointClouds([path], [0], "resampled", 4).load(0)
    assert tuple(x.shape) == (3, 4) and bool(x.isfinite().all())


def _inputs_npz(path: Path, swap: int | None) -> None:
    arrays = {"x": np.arange(12, dtype=np.float32).reshape(3, 4), "y": np.array([0, 1, 2])}
    if swap is not None:
        arrays["xy"[swap % 2]] = _BAD_VALUES[swap // 2]
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _read_inputs(path: Path) -> None:
    got = load_npz_inputs(path, (4,), T=2)
    assert tuple(got.x.shape[-1:]) == (4,)


READERS = [
    Reader("cifar-pickle", "data_batch_1", _cifar, _read_cifar, swaps=2 * 12),
    Reader(
        "cifar10-dvs-aedat",
        "a.aedat",
        _aedat,
        lambda p: _well_formed_events(read_cifar10_dvs(p), p, (128, 128)),
        swaps=5,
    ),
    Reader(
        "cifar10-dvs-npz",
        "a.npz",
        _npz,
        lambda p: _well_formed_events(read_cifar10_dvs(p), p),
        swaps=4 * len(_BAD_VALUES),
    ),
    Reader(
        "n-mnist-bin",
        "a.bin",
        lambda p, s: write_nmnist_bin(p, EVENTS),
        lambda p: _well_formed_events(read_bin(p), p, (256, 256)),
    ),
    Reader(
        "n-caltech101-bin",
        "b.bin",
        lambda p, s: write_nmnist_bin(p, EVENTS),
        lambda p: _well_formed_events(read_ncaltech_bin(p), p, (256, 256)),
    ),
    Reader(
        "dvs-gesture-npy",
        "1.npy",
        _gesture,
        lambda p: _well_formed_events(read_gesture_npy(p), p),
        swaps=4,
    ),
    Reader("shd-h5", "shd_train.h5", _shd, _read_shd, swaps=6),
    Reader("modelnet-off", "a.off", _off, _read_off, swaps=18),
    Reader("data-npz", "inputs.npz", _inputs_npz, _read_inputs, swaps=2 * len(_BAD_VALUES)),
    Reader("modelnet-resampled-txt", "a_0001.txt", _txt, _read_txt, swaps=5),
]


def _named_or_loaded(reader: Reader, path: Path) -> None:
    try:
        reader.read(path)
    except ValueError as e:
        if str(path) not in str(e):
            pytest.fail(f"{reader.name}: error does not name {path}: {e}")
    except Exception as e:  # noqa: BLE001 -- the property under test
        pytest.fail(f"{reader.name}: {type(e).__name__} instead of a named error: {e}")


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.name)
def test_valid_file_loads(tmp_path, reader):
    path = tmp_path / reader.filename
    reader.write(path, None)
    reader.read(path)


@pytest.mark.parametrize(
    ("reader", "swap"),
    [(r, s) for r in READERS for s in range(r.swaps)],
    ids=lambda v: v.name if isinstance(v, Reader) else str(v),
)
def test_type_swaps_are_named_errors_or_loads(tmp_path, reader, swap):
    path = tmp_path / reader.filename
    reader.write(path, swap)
    _named_or_loaded(reader, path)


@pytest.mark.parametrize("reader", READERS, ids=lambda r: r.name)
def test_truncations_and_bit_flips_are_named_errors_or_loads(tmp_path, reader):
    path = tmp_path / reader.filename
    reader.write(path, None)
    valid = path.read_bytes()

    @FUZZ
    @given(data=st.data())
    def fuzz(data):
        if data.draw(st.booleans(), label="truncate"):
            blob = valid[: data.draw(st.integers(0, len(valid) - 1), label="cut")]
        else:
            b = bytearray(valid)
            for _ in range(data.draw(st.integers(1, 4), label="flips")):
                i = data.draw(st.integers(0, len(b) - 1), label="byte")
                b[i] ^= 1 << data.draw(st.integers(0, 7), label="bit")
            blob = bytes(b)
        path.write_bytes(blob)
        _named_or_loaded(reader, path)

    fuzz()
