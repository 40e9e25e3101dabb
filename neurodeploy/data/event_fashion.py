"""``event-fashion``: Fashion-MNIST recorded by a simulated DVS, the way N-MNIST / CIFAR10-DVS were.

Stands in for CIFAR10-DVS / N-MNIST (event-camera recordings of static images moved in front of
a dynamic vision sensor), at a difficulty below the ceiling (Fashion-MNIST's classes overlap).

Generation recipe
-----------------
1. Images: :func:`neurodeploy.data.fashion.read_fashion_mnist` (Debian ``dataset-fashion-mnist``;
   a missing folder is its named error saying ``apt-get install dataset-fashion-mnist``).
   ``I = pixel / 255``, each 28x28 image centred on a black ``CANVAS`` x ``CANVAS`` (32x32) canvas.
2. Subset (fixed, independent of the seed): the first ``train_per_class`` images of every class
   in the order of the 60k training file and the first ``test_per_class`` of every class in the
   10k test file, kept in file order. Default 900 + 100 per class = 9,000 / 1,000, the size of
   CIFAR10-DVS's usual 9:1 split.
3. Sensor: :mod:`neurodeploy.data.dvs` with :class:`~neurodeploy.data.dvs.DVSParams` (three
   saccades along a jittered triangle, 120 micro-steps of bilinear sub-pixel shifts, log intensity,
   ON/OFF thresholds 0.2 with 15 % per-pixel mismatch, several events per micro-step when a
   change spans several thresholds, refractory period of 1 micro-step, shot noise 1e-3 per pixel,
   polarity and micro-step).
4. Frames: micro-step ``m = 1..M`` -> frame ``floor((m - 1) * T / M)``; ``x[n, f, p, y, x]`` is
   the number of events (float32 counts, as the real-data loaders' default) of polarity ``p``
   (0 = ON, 1 = OFF): shape ``(N, T, 2, 32, 32)``.

Randomness: sample ``i`` of split ``s`` (0 train, 1 test; ``i`` its index in the source file)
draws its vertex jitter, threshold mismatch and noise from
``numpy.random.default_rng([seed, s, i])``, so a sample's events depend on ``(seed, s, i)`` and
the parameters only, not on the subset size, the chunking or ``T`` (only the binning depends on
``T``). Built once per ``(T, seed, parameters)`` and cached on disk
(:func:`neurodeploy.data.cache.cached_arrays`, uint8 counts; the key includes a digest of the
selected images, so other image files build another entry).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from neurodeploy.data import dvs, fashion
from neurodeploy.data.cache import cached_arrays

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

NAME = "event-fashion"
#: bump when the generated data change for the same parameters
GENERATOR_VERSION = 1
IMAGE_SIZE = fashion.IMAGE_SIZE
CANVAS = 32
NUM_CLASSES = fashion.NUM_CLASSES
INPUT_SHAPE: tuple[int, ...] = (dvs.NUM_POLARITIES, CANVAS, CANVAS)
TEMPORAL = True
#: the Debian package this task needs (its files or its tool); see scripts/setup_env.sh
REQUIRES = "dataset-fashion-mnist"
TRAIN_PER_CLASS = 900
TEST_PER_CLASS = 100
#: samples simulated together (memory ~ CHUNK * T * 2 * 32 * 32 * 4 bytes); results do not depend on it
CHUNK = 500
SPLIT_CODES = {"train": 0, "test": 1}
COUNT_DTYPE = np.uint8
DESCRIPTION = (
    "Fashion-MNIST moved along a 3-saccade triangle in front of a simulated 32x32 DVS "
    "(log intensity, ON/OFF thresholds with mismatch, refractory period, shot noise), "
    "event counts binned into T frames; 9,000 / 1,000 class-balanced"
)
STANDS_IN_FOR = "CIFAR10-DVS / N-MNIST"


@dataclass(frozen=True)
class EventFashionParams:
    """Everything the data depend on besides ``T`` and ``seed`` (module docstring)."""

    #: images per class from the 60k training file / the 10k test file
    train_per_class: int = TRAIN_PER_CLASS
    test_per_class: int = TEST_PER_CLASS
    #: canvas side in pixels (the 28x28 image centred on it)
    canvas: int = CANVAS
    sensor: dvs.DVSParams = field(default_factory=dvs.DVSParams)

    def __post_init__(self) -> None:
        if self.train_per_class < 0 or self.test_per_class < 0:
            raise ValueError("train_per_class and test_per_class must be >= 0")
        if self.canvas < IMAGE_SIZE:
            raise ValueError(f"canvas must be >= {IMAGE_SIZE}, got {self.canvas}")


def balanced_indices(labels: np.ndarray, per_class: int) -> np.ndarray:
    """The first ``per_class`` indices of every class in ``labels``, in file order (sorted).

    A class with fewer samples than ``per_class`` is an error (the subset would be unbalanced).
    """
    chosen = []
    for c in range(NUM_CLASSES):
        idx = np.flatnonzero(labels == c)[:per_class]
        if len(idx) < per_class:
            raise ValueError(f"class {c} has {len(idx)} images, fewer than {per_class} asked for")
        chosen.append(idx)
    return np.sort(np.concatenate(chosen))


def place_on_canvas(images: np.ndarray, canvas: int) -> torch.Tensor:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, canvas, canvas)`` intensities in [0, 1], centred."""
    pad = (canvas - IMAGE_SIZE) // 2
    out = torch.zeros(len(images), canvas, canvas)
    x = torch.from_numpy(images).to(torch.float32) / fashion.MAX_PIXEL_VALUE
    out[:, pad : pad + IMAGE_SIZE, pad : pad + IMAGE_SIZE] = x
    return out


def record(
    images: np.ndarray,
    sources: np.ndarray,
    split: str,
    *,
    T: int,
    seed: int,
    params: EventFashionParams,
    progress: tqdm | None = None,
) -> np.ndarray:
    """uint8 counts ``(N, T, 2, canvas, canvas)`` of uint8 ``(N, 28, 28)`` ``images`` whose
    indices in their source file are ``sources`` (they seed each sample's draws)."""
    shape = (params.canvas, params.canvas)
    out = np.zeros((len(images), T, dvs.NUM_POLARITIES, *shape), dtype=COUNT_DTYPE)
    limit = np.iinfo(COUNT_DTYPE).max
    for start in range(0, len(images), CHUNK):
        stop = min(start + CHUNK, len(images))
        draws = [
            dvs.draw_sample(
                params.sensor, shape, np.random.default_rng([seed, SPLIT_CODES[split], i])
            )
            for i in sources[start:stop]
        ]
        counts = dvs.events_for(
            place_on_canvas(images[start:stop], params.canvas), draws, params.sensor, T=T
        )
        if counts.numel() and int(counts.max()) > limit:
            raise OverflowError(f"an event count exceeds {limit}; store a wider dtype")
        out[start:stop] = counts.numpy().astype(COUNT_DTYPE)
        if progress is not None:
            progress.update(stop - start)
    return out


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def build_arrays(
    T: int,
    seed: int,
    params: EventFashionParams | None = None,
    root: str | os.PathLike[str] | None = None,
) -> dict[str, np.ndarray]:
    """The task's arrays (uint8 counts ``x_*``, int64 ``y_*``, source indices ``i_*``) for
    ``(T, seed, params)``, from the on-disk cache or built (and cached)."""
    params = params or EventFashionParams()
    x_tr, y_tr, x_te, y_te = fashion.read_fashion_mnist(root)
    i_tr = balanced_indices(y_tr, params.train_per_class)
    i_te = balanced_indices(y_te, params.test_per_class)
    key = {
        "version": GENERATOR_VERSION,
        "T": T,
        "seed": seed,
        "params": dataclasses.asdict(params),
        "images_sha256": _digest(x_tr[i_tr], y_tr[i_tr], x_te[i_te], y_te[i_te]),
    }

    def build() -> dict[str, np.ndarray]:
        with tqdm(total=len(i_tr) + len(i_te), desc=f"{NAME} T={T} seed={seed}", unit="img") as bar:
            return {
                "x_train": record(
                    x_tr[i_tr], i_tr, "train", T=T, seed=seed, params=params, progress=bar
                ),
                "y_train": y_tr[i_tr].astype(np.int64),
                "i_train": i_tr.astype(np.int64),
                "x_test": record(
                    x_te[i_te], i_te, "test", T=T, seed=seed, params=params, progress=bar
                ),
                "y_test": y_te[i_te].astype(np.int64),
                "i_test": i_te.astype(np.int64),
            }

    return cached_arrays(NAME, key, build)


def load(
    T: int,
    seed: int,
    params: EventFashionParams | None = None,
    root: str | os.PathLike[str] | None = None,
) -> Split:
    """``(x_train, y_train, x_test, y_test)``: float32 counts ``(N, T, 2, canvas, canvas)`` and
    int64 labels (module docstring); ``root`` is the Fashion-MNIST folder (default: Debian's)."""
    a = build_arrays(T, seed, params, root)
    return (
        torch.from_numpy(a["x_train"].astype(np.float32)),
        torch.from_numpy(a["y_train"].astype(np.int64)),
        torch.from_numpy(a["x_test"].astype(np.float32)),
        torch.from_numpy(a["y_test"].astype(np.int64)),
    )


def generate(T: int, seed: int) -> Split:
    """The default task: 9,000 / 1,000 samples ``(N, T, 2, 32, 32)`` float32 event counts."""
    return load(T, seed)


def event_statistics(x: torch.Tensor, y: torch.Tensor) -> dict[int, tuple[float, float]]:
    """Per class: mean (ON, OFF) events per sample of counts ``x`` ``(N, T, 2, H, W)``."""
    per = x.sum(dim=(1, 3, 4)).double()  # (N, 2)
    return {
        c: (float(per[y == c, 0].mean()), float(per[y == c, 1].mean()))
        for c in range(NUM_CLASSES)
        if bool((y == c).any())
    }
