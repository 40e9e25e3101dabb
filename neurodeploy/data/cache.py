"""An on-disk cache for generated data sets (``event-fashion``, ``spoken-digits``): built once,
read whole or rebuilt, never half-read.

A cache entry is one ``.npz`` under :func:`cache_dir` named ``<name>-<key>.npz``, where
``key`` is the first :data:`KEY_CHARS` hex digits of the SHA-256 of the generator's parameters
(JSON, sorted keys, including :data:`CACHE_FORMAT` and the generator's own version), so changing
any parameter builds a new entry instead of reading a stale one. The file holds the arrays and
a ``__meta__`` JSON record (name, parameters, array names, shapes, dtypes and a SHA-256 of every
array's bytes). Reading checks all of them; any mismatch, a truncated or corrupt file, or a
missing array means the entry is invalid: it is rebuilt (and the reason said through
``warnings``), never partly used. Writes go through :func:`neurodeploy.files.atomic_write`, so
a reader sees the old file or the complete new one; concurrent builders of the same entry each
write a complete file and the last rename wins.

``NEURODEPLOY_CACHE`` sets the folder (default ``$XDG_CACHE_HOME/neurodeploy``, else
``~/.cache/neurodeploy``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from neurodeploy.files import atomic_write

#: bump when the file layout of a cache entry changes
CACHE_FORMAT = 1
#: hex digits of the parameter hash in a cache file's name
KEY_CHARS = 16
ENV_VAR = "NEURODEPLOY_CACHE"
_META = "__meta__"


class CacheInvalid(ValueError):
    """A cache entry that cannot be used as it is (the message says why)."""


def cache_dir() -> Path:
    """The cache folder: ``$NEURODEPLOY_CACHE``, else ``$XDG_CACHE_HOME/neurodeploy``, else
    ``~/.cache/neurodeploy`` (not created here)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "neurodeploy"


def cache_key(name: str, params: Mapping[str, Any]) -> str:
    """The hex key of (name, params): stable across runs and machines (JSON, sorted keys)."""
    blob = json.dumps(
        {"name": name, "format": CACHE_FORMAT, "params": params}, sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:KEY_CHARS]


def cache_path(name: str, params: Mapping[str, Any], folder: Path | None = None) -> Path:
    """Where the entry of (name, params) lives."""
    return (folder if folder is not None else cache_dir()) / f"{name}-{cache_key(name, params)}.npz"


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def read_entry(path: Path, name: str, params: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of a complete, matching entry; :class:`CacheInvalid` (naming the file and the
    reason) otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if _META not in z.files:
                raise CacheInvalid(f"{path}: no {_META} record")
            meta = json.loads(bytes(z[_META]).decode())
            arrays = {k: z[k] for k in z.files if k != _META}
    except CacheInvalid:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, UnicodeDecodeError) as e:
        raise CacheInvalid(f"{path}: unreadable ({type(e).__name__}: {e})") from e
    want = json.loads(json.dumps(dict(params), sort_keys=True, default=str))
    if meta.get("name") != name or meta.get("format") != CACHE_FORMAT or meta.get("params") != want:
        raise CacheInvalid(f"{path}: written for other parameters")
    listed = meta.get("arrays", {})
    if set(listed) != set(arrays):
        raise CacheInvalid(f"{path}: arrays {sorted(arrays)} but the record lists {sorted(listed)}")
    for k, a in arrays.items():
        rec = listed[k]
        if (
            list(a.shape) != rec["shape"]
            or str(a.dtype) != rec["dtype"]
            or _digest(a) != rec["sha256"]
        ):
            raise CacheInvalid(f"{path}: array {k!r} does not match its record (damaged)")
    return arrays


def write_entry(
    path: Path, name: str, params: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
) -> None:
    """Write a complete entry atomically (module docstring)."""
    meta = {
        "name": name,
        "format": CACHE_FORMAT,
        "params": json.loads(json.dumps(dict(params), sort_keys=True, default=str)),
        "arrays": {
            k: {"shape": list(a.shape), "dtype": str(a.dtype), "sha256": _digest(a)}
            for k, a in arrays.items()
        },
    }
    buf = io.BytesIO()
    record = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(buf, **{_META: record}, **{k: np.asarray(a) for k, a in arrays.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    data = buf.getvalue()
    atomic_write(path, lambda f: f.write(data))


def cached_arrays(
    name: str,
    params: Mapping[str, Any],
    build: Callable[[], Mapping[str, np.ndarray]],
    *,
    folder: Path | None = None,
) -> dict[str, np.ndarray]:
    """The arrays ``build()`` returns for (name, params), from the cache when a valid entry
    exists, else built, written (atomically) and returned. An invalid entry is rebuilt with a
    warning naming the file and the reason; a cache folder that cannot be written only costs
    the rebuild next time (warned), never the result."""
    path = cache_path(name, params, folder)
    if path.exists():
        try:
            return read_entry(path, name, params)
        except CacheInvalid as e:
            warnings.warn(f"cache: {e}; rebuilding", stacklevel=2)
    arrays = {k: np.asarray(v) for k, v in build().items()}
    try:
        write_entry(path, name, params, arrays)
    except OSError as e:
        warnings.warn(
            f"cache: cannot write {path} ({e}); the data will be rebuilt next time", stacklevel=2
        )
    return arrays
