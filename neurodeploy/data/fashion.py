"""``fashion-mnist``: Zalando's Fashion-MNIST read from the Debian package, a static image task.

Stands in for the static image benchmarks of the paper (CIFAR10/100, ImageNet) at a size that
trains on a CPU, and unlike ``digits`` it is not at the ceiling: small SNNs land between about
80 and 92 % test accuracy.

Data
----
The four IDX files of the standard split (60,000 train / 10,000 test 28x28 greyscale images of
ten clothing classes, 6,000 / 1,000 per class) as the Debian package ``dataset-fashion-mnist``
installs them under :data:`DEFAULT_ROOT` (gzip-compressed); the same files unzipped are read as
well. The folder is, in order: the ``root`` argument, the environment variable :data:`ROOT_ENV`
(``NEURODEPLOY_FASHION_ROOT``; how ``neurodeploy train --task fashion-mnist`` and every other
command find a folder elsewhere, since offline tasks take no ``--data-root``), else
:data:`DEFAULT_ROOT`. Nothing is downloaded; a missing folder or file is a
:class:`FashionMNISTNotFoundError` that says ``apt-get install dataset-fashion-mnist`` and which
files to put where.

IDX format (:func:`read_idx`): a 4-byte magic ``00 00 <type> <ndim>``, ``ndim`` big-endian
uint32 dimension sizes, then ``prod(dims)`` big-endian items of ``<type>`` (0x08 uint8,
0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32, 0x0E float64). A file whose magic, type or
dimensions are wrong, or whose payload is shorter or longer than the dimensions say (a truncated
download, a damaged gzip stream), is an :class:`IDXError` naming the file and what is wrong,
never a silently short array.

Encoding
--------
Direct (analog) encoding, as the paper does for static images: ``x = pixel / 255`` (float32 in
[0, 1], shape ``(1, 28, 28)``, channels first) is presented unchanged at every one of the ``T``
timesteps (:meth:`neurodeploy.data.TaskData.encode`); the first layer's synaptic current is the
spike-free analog input.

Splits
------
The standard split: the 60,000 training images train, the 10,000 test images test. Validation
(:func:`validation_split`): the fixed last :data:`VALIDATION_SIZE` (5,000) training images, the
first 55,000 fit. The training loop holds out nothing today (it reports the test accuracy after
every epoch and keeps the last epoch, no selection), so ``x_train`` is all 60,000 images; a
hyperparameter search should fit on the first 55,000 and select on the 5,000. Images and splits
are fixed: the data ``seed`` and ``T`` have no effect on this task.
"""

from __future__ import annotations

import functools
import gzip
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

NAME = "fashion-mnist"
DEFAULT_ROOT = Path("/usr/share/datasets/fashion-mnist")
ROOT_ENV = "NEURODEPLOY_FASHION_ROOT"
DEBIAN_PACKAGE = "dataset-fashion-mnist"
IMAGE_SIZE = 28
MAX_PIXEL_VALUE = 255.0
NUM_CLASSES = 10
NUM_TRAIN = 60_000
NUM_TEST = 10_000
VALIDATION_SIZE = 5_000
INPUT_SHAPE: tuple[int, ...] = (1, IMAGE_SIZE, IMAGE_SIZE)
TEMPORAL = False
#: the Debian package this task needs (its files or its tool); see scripts/setup_env.sh
REQUIRES = "dataset-fashion-mnist"
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
DESCRIPTION = (
    "Fashion-MNIST 28x28 greyscale clothing images in [0, 1] (Debian dataset-fashion-mnist), "
    "static, direct-encoded, standard 60k/10k split"
)
STANDS_IN_FOR = "CIFAR10 / static image benchmarks"

#: the four files of the standard split, without the optional ``.gz``
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
GZIP_MAGIC = b"\x1f\x8b"
IDX_HEADER_BYTES = 4
IDX_DIM_BYTES = 4
#: IDX type byte -> big-endian numpy dtype
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """An IDX file that cannot be read as it is; the message names the file and the fault."""


class FashionMNISTNotFoundError(FileNotFoundError):
    """The Fashion-MNIST folder or one of its files is missing; the message says how to get it."""


@dataclass(frozen=True)
class IDXHeader:
    """The parsed header of an IDX file: item type and dimension sizes."""

    dtype: np.dtype
    dims: tuple[int, ...]


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise IDXError(f"{path}: cannot read ({e})") from e
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as e:
        raise IDXError(f"{path}: damaged gzip stream ({type(e).__name__}: {e})") from e


def parse_idx_header(data: bytes, path: Path) -> tuple[IDXHeader, int]:
    """The header of IDX bytes ``data`` and the offset where the items start."""
    if len(data) < IDX_HEADER_BYTES:
        raise IDXError(f"{path}: {len(data)} bytes, too short for the 4-byte IDX magic")
    zero0, zero1, code, ndim = data[:IDX_HEADER_BYTES]
    if zero0 or zero1 or code not in IDX_DTYPES or ndim < 1:
        raise IDXError(
            f"{path}: not an IDX file (magic {data[:IDX_HEADER_BYTES].hex()}; expected "
            f"00 00 <type in {[hex(c) for c in IDX_DTYPES]}> <ndim >= 1>)"
        )
    start = IDX_HEADER_BYTES + IDX_DIM_BYTES * ndim
    if len(data) < start:
        raise IDXError(f"{path}: truncated in the header ({ndim} dimension sizes announced)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=IDX_HEADER_BYTES))
    return IDXHeader(IDX_DTYPES[code], dims), start


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """The array in IDX file ``path`` (gzip-compressed or plain), in native byte order.

    The payload must hold exactly ``prod(dims)`` items: a shorter one is "truncated", a longer
    one "has trailing bytes"; both are :class:`IDXError` naming the file (module docstring).
    """
    path = Path(path)
    data = _read_bytes(path)
    header, start = parse_idx_header(data, path)
    count = int(np.prod(header.dims, dtype=np.int64))
    want = count * header.dtype.itemsize
    got = len(data) - start
    if got < want:
        raise IDXError(
            f"{path}: truncated: dims {header.dims} of {header.dtype.name} need {want} bytes of "
            f"data, the file has {got}"
        )
    if got > want:
        raise IDXError(
            f"{path}: {got - want} trailing bytes after the {want} bytes that dims "
            f"{header.dims} of {header.dtype.name} need"
        )
    items = np.frombuffer(data, header.dtype, count=count, offset=start)
    return items.astype(header.dtype.newbyteorder("="), copy=True).reshape(header.dims)


def fashion_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder to read: ``root``, else ``$NEURODEPLOY_FASHION_ROOT``, else DEFAULT_ROOT."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ROOT_ENV)
    return Path(env) if env else DEFAULT_ROOT


def _how_to_get(root: Path) -> str:
    names = ", ".join(f"{f}[.gz]" for f in FILES.values())
    return (
        f"Install the Debian package: `apt-get install {DEBIAN_PACKAGE}` (it puts the four "
        f"files in {DEFAULT_ROOT}), or put {names} (gzip-compressed or not) in a folder and name "
        f"it with {ROOT_ENV}=DIR (the `root` argument in Python); looked in {root}"
    )


def find_file(root: Path, stem: str) -> Path:
    """``root/stem.gz`` or ``root/stem``; :class:`FashionMNISTNotFoundError` when neither exists."""
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    raise FashionMNISTNotFoundError(
        f"Fashion-MNIST: {stem}.gz (or {stem}) not found in {root}. {_how_to_get(root)}"
    )


def _checked(path: Path, array: np.ndarray, dims: tuple[int | None, ...]) -> np.ndarray:
    """``array`` if it is uint8 of ``dims`` (None: any size), else an IDXError naming ``path``."""
    shape_ok = len(array.shape) == len(dims) and all(
        d is None or d == s for d, s in zip(dims, array.shape)
    )
    if array.dtype != np.uint8 or not shape_ok:
        want = "(" + ", ".join("N" if d is None else str(d) for d in dims) + ")"
        raise IDXError(
            f"{path}: holds {array.dtype} {array.shape}, expected uint8 {want} for Fashion-MNIST"
        )
    return array


def _read_split(img_path: Path, lab_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = _checked(img_path, read_idx(img_path), (None, IMAGE_SIZE, IMAGE_SIZE))
    labels = _checked(lab_path, read_idx(lab_path), (None,))
    if len(images) != len(labels):
        raise IDXError(f"{img_path}: {len(images)} images but {lab_path} has {len(labels)} labels")
    if labels.size and int(labels.max()) >= NUM_CLASSES:
        raise IDXError(f"{lab_path}: label {int(labels.max())} outside 0..{NUM_CLASSES - 1}")
    return images, labels.astype(np.int64)


@functools.lru_cache(maxsize=1)
def _read_cached(paths: tuple[Path, ...], stamps: tuple[tuple[int, int], ...]) -> Arrays:
    """The four files' arrays; ``stamps`` (mtime, size) make a replaced file a new cache key."""
    del stamps
    train_img, train_lab, test_img, test_lab = paths
    return (*_read_split(train_img, train_lab), *_read_split(test_img, test_lab))


def read_fashion_mnist(root: str | os.PathLike[str] | None = None) -> Arrays:
    """``(x_train uint8 (N, 28, 28), y_train int64 (N,), x_test uint8 (M, 28, 28), y_test int64
    (M,))`` from ``root`` (see :func:`fashion_root`; module docstring); N, M = 60000, 10000 for
    the package's files.

    The decoded arrays of the last folder read are kept in memory (47 MB; a file replaced on
    disk is read again); every call returns fresh copies. Errors:
    :class:`FashionMNISTNotFoundError` (folder or file missing), :class:`IDXError` (a file that
    is not the IDX it should be).
    """
    folder = fashion_root(root)
    if not folder.is_dir():
        raise FashionMNISTNotFoundError(
            f"Fashion-MNIST: folder {folder} not found. {_how_to_get(folder)}"
        )
    paths = tuple(find_file(folder, stem).resolve() for stem in FILES.values())
    stamps = tuple((p.stat().st_mtime_ns, p.stat().st_size) for p in paths)
    arrays = _read_cached(paths, stamps)
    return tuple(a.copy() for a in arrays)  # type: ignore[return-value]


def validation_split(
    x_train: torch.Tensor, y_train: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x_fit, y_fit, x_val, y_val)``: the first ``len - VALIDATION_SIZE`` training samples fit,
    the last :data:`VALIDATION_SIZE` validate (fixed, independent of any seed; views, no copy)."""
    if len(x_train) != len(y_train) or len(y_train) <= VALIDATION_SIZE:
        raise ValueError(
            f"validation_split needs more than {VALIDATION_SIZE} training samples with as many "
            f"labels, got {len(x_train)} samples and {len(y_train)} labels"
        )
    cut = len(y_train) - VALIDATION_SIZE
    return x_train[:cut], y_train[:cut], x_train[cut:], y_train[cut:]


def to_tensors(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 1, 28, 28)`` = pixel / 255, and int64 labels."""
    x = torch.from_numpy(images).to(torch.float32).div_(MAX_PIXEL_VALUE).unsqueeze(1)
    return x, torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))


def generate(T: int, seed: int) -> Split:
    """``(x_train, y_train, x_test, y_test)`` of the standard split; ``T`` and ``seed`` are
    unused (fixed images, fixed split). The folder: :func:`fashion_root` (``$ROOT_ENV``)."""
    del T, seed  # static task with fixed images and a fixed split
    x_tr, y_tr, x_te, y_te = read_fashion_mnist()
    return (*to_tensors(x_tr, y_tr), *to_tensors(x_te, y_te))
