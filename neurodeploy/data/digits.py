"""``digits``: scikit-learn's bundled 8x8 handwritten digits as a static image task.

Stands in for MNIST (a static image benchmark) at a size that trains in seconds on a CPU.

Generation recipe
-----------------
1. ``sklearn.datasets.load_digits()``: 1797 greyscale images with integer values 0..16. The
   data ship inside the scikit-learn package, so nothing is downloaded.
2. Divide by 16 -> float32 in [0, 1], shape ``(1, 8, 8)`` per sample (channels first).
3. Fixed stratified 80/20 split (``train_test_split(..., stratify=y,
   random_state=SPLIT_RANDOM_STATE)``): 1437 train / 360 test images.

The task is static and direct-encoded: the same frame is presented at every timestep. The
images and the split are fixed, so the data ``seed`` has no effect on this task.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

NAME = "digits"
IMAGE_SIZE = 8
MAX_PIXEL_VALUE = 16.0
NUM_CLASSES = 10
INPUT_SHAPE: tuple[int, ...] = (1, IMAGE_SIZE, IMAGE_SIZE)
TEMPORAL = False
TEST_FRACTION = 0.2
SPLIT_RANDOM_STATE = 0
DESCRIPTION = "scikit-learn 8x8 handwritten digits in [0, 1], static, direct-encoded"
STANDS_IN_FOR = "MNIST"


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as ``(images float32 (N, 8, 8) in [0, 1], labels int64 (N,))``."""
    bunch = load_digits()
    images = (bunch.images / MAX_PIXEL_VALUE).astype(np.float32)
    return images, bunch.target.astype(np.int64)


def split_indices(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fixed stratified train/test split as index arrays (independent of any seed)."""
    idx = np.arange(len(labels))
    train_idx, test_idx = train_test_split(
        idx, test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_RANDOM_STATE
    )
    return np.sort(train_idx), np.sort(test_idx)


def generate(T: int, seed: int) -> Split:
    """``(x_train, y_train, x_test, y_test)``; ``T`` and ``seed`` are unused (fixed data)."""
    del T, seed  # static task with fixed images and a fixed split
    images, labels = load_images()
    train_idx, test_idx = split_indices(labels)
    x = torch.from_numpy(images).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(labels)
    return x[train_idx].clone(), y[train_idx].clone(), x[test_idx].clone(), y[test_idx].clone()
