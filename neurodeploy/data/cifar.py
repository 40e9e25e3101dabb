"""CIFAR10 / CIFAR100 from the local python-pickle release (no torchvision: the PyPI wheel is a
CUDA build that does not import beside the CPU torch of this project).

Layouts (the extracted ``cifar-10-python.tar.gz`` / ``cifar-100-python.tar.gz``)::

    <root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}
    <root>/cifar-100-python/{train, test, meta}

(``<root>`` may also be the inner folder itself). Each batch is a pickle of a dict with
``b"data"``, a (N, 3072) uint8 array of 32x32 images stored channel-major (R plane, G plane,
B plane, each row-major), and ``b"labels"`` (CIFAR10) or ``b"fine_labels"`` (CIFAR100).

Sample ``x`` = (image / 255 - mean_c) / std_c, shape (3, 32, 32), with the usual per-channel
statistics of the training sets (``CIFAR10_MEAN`` ...). Training augmentation (``augment``):
``crop`` pads 4 zero pixels on each side and takes a random 32x32 window, ``flip`` mirrors
horizontally with probability 1/2, ``cutout`` zeroes a 16x16 square (DeVries & Taylor 2017)
centred at a random pixel; applied in that order, after normalisation (so padding is 0 =
the channel mean, as with torchvision's ``RandomCrop`` on normalised tensors).

Batches are read through a restricted unpickler (:class:`SafeUnpickler`): a pickle may build
dicts, lists, tuples, bytes, str and numbers, and numpy arrays / dtypes / scalars through the
few numpy globals listed in ``ALLOWED_GLOBALS``; any other global (``os.system``,
``builtins.eval``, ...) is refused with :class:`UnsafePickleError` naming the file and the
global, before anything is called. Every other malformation is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from neurodeploy.data.real import DatasetNotFoundError, RealDataset, SampleDataset, first_existing

CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
CROP_PAD = 4
CUTOUT_SIDE = 16
IMAGE_SHAPE = (3, 32, 32)
PIXELS = 3072  # 3 * 32 * 32 values per stored image row
UINT8_MAX = 255
# (module, name) a CIFAR pickle may reference: numpy arrays as numpy 1.x / 2.x pickle them
# (protocol 2-4: _reconstruct + ndarray + dtype; protocol 5: _frombuffer), numpy scalars, and
# _codecs.encode, through which Python 3 writes bytes at protocol <= 2 (a pure text -> bytes
# transform, it calls nothing else).
ALLOWED_GLOBALS = frozenset(
    (module, name)
    for core in ("numpy.core", "numpy._core")
    for module, name in (
        (f"{core}.multiarray", "_reconstruct"),
        (f"{core}.multiarray", "scalar"),
        (f"{core}.numeric", "_frombuffer"),
    )
) | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
AUGMENTATIONS = ("crop", "flip", "cutout")
HOW = (
    "Obtain the python version of the data set (cifar-10-python.tar.gz / cifar-100-python.tar.gz from "
    "https://www.cs.toronto.edu/~kriz/cifar.html) and extract it into <root>."
)


class UnsafePickleError(ValueError):
    """A pickle references a global outside :data:`ALLOWED_GLOBALS`; nothing was executed."""


class SafeUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only :data:`ALLOWED_GLOBALS`."""

    def __init__(self, file: BinaryIO, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise UnsafePickleError(
                f"{self.path}: refused to unpickle global {module}.{name} (a CIFAR batch holds "
                f"only dicts, lists, bytes, str, numbers and numpy arrays); the file was not "
                f"loaded and nothing in it was executed"
            )
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    """The dict pickled in ``path``, through :class:`SafeUnpickler`."""
    try:
        with open(path, "rb") as f:
            d = SafeUnpickler(f, path).load()
    except UnsafePickleError:
        raise
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from e
    except Exception as e:  # any malformation of untrusted bytes: named, never a traceback
        raise ValueError(f"{path}: not a CIFAR python pickle ({type(e).__name__}: {e})") from e
    if not isinstance(d, dict):
        raise ValueError(
            f"{path}: pickle holds a {type(d).__name__}, not a dict (not a CIFAR file?)"
        )
    return d


def _pixels(path: Path, value: Any) -> np.ndarray:
    """``value`` as (N, 3072) uint8; integers outside 0..255 are refused, never wrapped."""
    try:
        a = np.asarray(value)
    except Exception as e:
        raise ValueError(f"{path}: data is not an array ({type(e).__name__}: {e})") from e
    if a.ndim != 2 or a.shape[1] != PIXELS:
        raise ValueError(f"{path}: data has shape {a.shape}, expected (N, {PIXELS})")
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind not in "iu":
        raise ValueError(f"{path}: data has dtype {a.dtype}, expected uint8 pixels")
    if a.size and (a.min() < 0 or a.max() > UINT8_MAX):
        raise ValueError(
            f"{path}: data has values {a.min()}..{a.max()} outside 0..{UINT8_MAX} (not clipped)"
        )
    return a.astype(np.uint8)


def _labels(path: Path, key: bytes, value: Any) -> np.ndarray:
    try:
        y = np.asarray(value)
    except Exception as e:
        raise ValueError(f"{path}: {key!r} is not a list of labels ({e})") from e
    if y.ndim != 1 or (y.size and y.dtype.kind not in "iu"):
        raise ValueError(
            f"{path}: {key!r} must be a 1-D list of integers, got shape {y.shape} dtype {y.dtype}"
        )
    return y.astype(np.int64)


def read_batches(paths: Sequence[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 from CIFAR pickle batches."""
    xs, ys = [], []
    for p in paths:
        d = _unpickle(p)
        if b"data" not in d or label_key not in d:
            raise ValueError(f"{p}: pickle lacks {b'data'!r} or {label_key!r} (not a CIFAR batch?)")
        data = _pixels(p, d[b"data"])
        labels = _labels(p, label_key, d[label_key])
        if len(labels) != len(data):
            raise ValueError(f"{p}: {len(data)} images but {len(labels)} labels")
        xs.append(data.reshape(-1, *IMAGE_SHAPE))
        ys.append(labels)
    return np.concatenate(xs), np.concatenate(ys)


class CifarImages(SampleDataset):
    """In-memory uint8 images, normalised on access; augmentation as in the module docstring."""

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        augment: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        bad = [a for a in augment if a not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"augment: unknown kind(s) {bad}; available: {AUGMENTATIONS}")
        super().__init__(labels.tolist(), augment=bool(augment), seed=seed)
        self.images = torch.from_numpy(np.ascontiguousarray(images))
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.kinds = tuple(augment)

    def load(self, index: int) -> torch.Tensor:
        return (self.images[index].to(torch.float32) / 255.0 - self.mean) / self.std

    def augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        h, w = x.shape[-2:]
        if "crop" in self.kinds:
            padded = torch.nn.functional.pad(x, (CROP_PAD,) * 4)
            dy, dx = (int(v) for v in rng.integers(0, 2 * CROP_PAD + 1, size=2))
            x = padded[:, dy : dy + h, dx : dx + w]
        if "flip" in self.kinds and rng.random() < 0.5:
            x = x.flip(-1)
        if "cutout" in self.kinds:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
            x = x.clone()
            x[
                :,
                max(0, cy - CUTOUT_SIDE // 2) : cy + CUTOUT_SIDE // 2,
                max(0, cx - CUTOUT_SIDE // 2) : cx + CUTOUT_SIDE // 2,
            ] = 0
        return x.contiguous()


def _load(
    name: str,
    root: str | Path,
    *,
    T: int,
    seed: int,
    augment: Sequence[str],
    inner: str,
    train_files: Sequence[str],
    test_files: Sequence[str],
    meta: str,
    meta_key: bytes,
    label_key: bytes,
    mean: Sequence[float],
    std: Sequence[float],
    num_classes: int,
) -> RealDataset:
    root = Path(root)
    base = first_existing(root, [inner, ""])
    needed = [*train_files, *test_files, meta]
    missing = [f for f in needed if not (base / f).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{name}: {base} lacks {missing}; expected <root>/{inner}/{{{', '.join(needed)}}}. "
            f"{HOW}"
        )
    x_tr, y_tr = read_batches([base / f for f in train_files], label_key)
    x_te, y_te = read_batches([base / f for f in test_files], label_key)
    names = _unpickle(base / meta).get(meta_key)
    if not isinstance(names, list) or not all(isinstance(c, (bytes, str)) for c in names):
        raise ValueError(f"{base / meta}: {meta_key!r} must be a list of class names")
    try:
        classes = tuple(c.decode() if isinstance(c, bytes) else c for c in names)
    except UnicodeDecodeError as e:
        raise ValueError(f"{base / meta}: a class name is not UTF-8 ({e})") from e
    for split, y in (("train", y_tr), ("test", y_te)):
        if len(y) == 0:
            raise ValueError(f"{name}: the {split} batches in {base} hold no images")
        if y.min() < 0 or y.max() >= num_classes:
            raise ValueError(f"{name}: {split} labels outside 0..{num_classes - 1} in {base}")
    return RealDataset(
        name,
        CifarImages(x_tr, y_tr, mean, std, augment=augment, seed=seed),
        CifarImages(x_te, y_te, mean, std),
        IMAGE_SHAPE,
        num_classes,
        False,
        T,
        classes,
        str(base),
    )


def load_cifar10(
    root: str | Path, T: int = 4, seed: int = 0, augment: Sequence[str] = ()
) -> RealDataset:
    """CIFAR10 (50000 / 10000 images, 10 classes); ``x``: (3, 32, 32) normalised."""
    return _load(
        "cifar10",
        root,
        T=T,
        seed=seed,
        augment=augment,
        inner="cifar-10-batches-py",
        train_files=[f"data_batch_{i}" for i in range(1, 6)],
        test_files=["test_batch"],
        meta="batches.meta",
        meta_key=b"label_names",
        label_key=b"labels",
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        num_classes=10,
    )


def load_cifar100(
    root: str | Path, T: int = 4, seed: int = 0, augment: Sequence[str] = ()
) -> RealDataset:
    """CIFAR100 (fine labels, 100 classes); ``x``: (3, 32, 32) normalised."""
    return _load(
        "cifar100",
        root,
        T=T,
        seed=seed,
        augment=augment,
        inner="cifar-100-python",
        train_files=["train"],
        test_files=["test"],
        meta="meta",
        meta_key=b"fine_label_names",
        label_key=b"fine_labels",
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
        num_classes=100,
    )
