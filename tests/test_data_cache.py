"""The on-disk data cache (neurodeploy/data/cache.py): built once, read back identical, any
damaged or foreign entry rebuilt with a warning, never partly used."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.data.cache import cache_dir, cache_path, cached_arrays


def _builder(calls: list[int]):  # type: ignore[no-untyped-def]
    def build() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.array([1, 2, 3])}

    return build


def test_built_once_then_read(tmp_path: Path) -> None:
    calls: list[int] = []
    a = cached_arrays("t", {"n": 3}, _builder(calls), folder=tmp_path)
    b = cached_arrays("t", {"n": 3}, _builder(calls), folder=tmp_path)
    assert calls == [1]
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        assert a[k].dtype == b[k].dtype
    cached_arrays("t", {"n": 4}, _builder(calls), folder=tmp_path)  # other params: new entry
    assert calls == [1, 1]
    assert len(list(tmp_path.glob("t-*.npz"))) == 2


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage"])
def test_damaged_entry_rebuilt_with_a_warning(tmp_path: Path, damage: str) -> None:
    calls: list[int] = []
    cached_arrays("t", {"n": 3}, _builder(calls), folder=tmp_path)
    path = cache_path("t", {"n": 3}, tmp_path)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "flip":  # inside the stored (uncompressed) bytes of array x
        i = raw.find(bytes(range(12)))
        assert i > 0
        raw[i + 5] ^= 0xFF
    else:
        raw = bytearray(b"not a zip at all")
    path.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match=r"cache: .*t-[0-9a-f]+\.npz: .*rebuilding"):
        out = cached_arrays("t", {"n": 3}, _builder(calls), folder=tmp_path)
    assert calls == [1, 1]
    np.testing.assert_array_equal(out["x"], np.arange(12).reshape(3, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rebuilt entry is valid again
        cached_arrays("t", {"n": 3}, _builder(calls), folder=tmp_path)
    assert calls == [1, 1]


def test_cache_dir_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NEURODEPLOY_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("NEURODEPLOY_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "neurodeploy"
