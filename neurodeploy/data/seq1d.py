"""``seq1d``: 1D sequence classification in the spirit of mnist1d (own generator, no mnist1d code).

Stands in for SHD (Spiking Heidelberg Digits) only as a *1D* benchmark of the right flavour:
this is static 1D structure (a length-40 signal presented identically at every timestep,
direct-encoded), NOT SHD's temporal spike dynamics.

Generation recipe (per sample, all random draws from ``numpy.random.default_rng(seed)``)
-----------------------------------------------------------------------------------------
1. Pick the class template: one of ``NUM_CLASSES`` distinct 1D shapes defined on ``u in [0, 1]``
   with ``TEMPLATE_POINTS`` points (bump, plateau, dip, two bumps, sawtooth up / down, sine,
   minus sine, three spikes, big + small bump); zero outside ``[0, 1]`` (padding).
2. Place it on the output axis ``t in [0, 1]`` (``LENGTH`` points) by linear interpolation:
   width ``BASE_WIDTH * s`` with ``s ~ U(1 +- SCALE_RANGE)``, centre ``0.5 + U(+-MAX_SHIFT)``.
3. Multiply by an amplitude ``~ U(1 +- AMPLITUDE_RANGE)`` and add a shear (linear trend)
   ``k * (t - centre)`` with ``k ~ U(+-SHEAR_RANGE)``.
4. Add smooth correlated noise (white noise Gaussian-filtered with ``CORR_NOISE_SIGMA`` samples,
   rescaled to std ``CORR_NOISE_SCALE``) and white noise of std ``WHITE_NOISE_SCALE``.

Classes are balanced: 400 train / 100 test per class (4000 / 1000). The split is fixed by
construction (the first ``TRAIN_PER_CLASS`` samples of each class train, the rest test); the
data ``seed`` changes every sample. The shift, scale and shear make raw values hard for a linear
model (logistic regression clearly below a small MLP), as in mnist1d.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

NAME = "seq1d"
LENGTH = 40
NUM_CLASSES = 10
INPUT_SHAPE: tuple[int, ...] = (1, LENGTH)
TEMPORAL = False
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100
TEMPLATE_POINTS = 24
BASE_WIDTH = 0.5
SCALE_RANGE = 0.3
MAX_SHIFT = 0.1
AMPLITUDE_RANGE = 0.4
SHEAR_RANGE = 0.5
CORR_NOISE_SIGMA = 3.0
CORR_NOISE_SCALE = 0.1
WHITE_NOISE_SCALE = 0.05
DESCRIPTION = "mnist1d-style length-40 1D signals (shifted, scaled, sheared, noisy templates)"
STANDS_IN_FOR = "SHD (1D only; static structure, not SHD's temporal dynamics)"


def _bump(u: np.ndarray, centre: float, width: float) -> np.ndarray:
    return np.exp(-(((u - centre) / width) ** 2))


def templates() -> np.ndarray:
    """The ``(NUM_CLASSES, TEMPLATE_POINTS)`` class shapes on ``u = linspace(0, 1)``."""
    u = np.linspace(0.0, 1.0, TEMPLATE_POINTS)
    shapes = [
        _bump(u, 0.5, 0.15),  # 0 single bump
        ((u > 0.2) & (u < 0.8)).astype(float) * 0.8,  # 1 plateau
        -_bump(u, 0.5, 0.15),  # 2 dip
        _bump(u, 0.25, 0.1) + _bump(u, 0.75, 0.1),  # 3 two bumps
        np.where(u < 0.9, u / 0.9, 0.0),  # 4 sawtooth up
        np.where(u > 0.1, (1.0 - u) / 0.9, 0.0),  # 5 sawtooth down
        np.sin(2 * np.pi * u),  # 6 sine
        -np.sin(2 * np.pi * u),  # 7 minus sine
        sum(_bump(u, c, 0.05) for c in (0.2, 0.5, 0.8)),  # 8 three spikes
        _bump(u, 0.3, 0.12) + 0.4 * _bump(u, 0.75, 0.12),  # 9 big + small bump
    ]
    return np.stack(shapes).astype(np.float64)


def sample(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw one float32 ``(LENGTH,)`` signal per label: ``(len(labels), LENGTH)``."""
    n = len(labels)
    shapes = templates()
    t = np.linspace(0.0, 1.0, LENGTH)[None, :]
    width = BASE_WIDTH * rng.uniform(1 - SCALE_RANGE, 1 + SCALE_RANGE, (n, 1))
    centre = 0.5 + rng.uniform(-MAX_SHIFT, MAX_SHIFT, (n, 1))
    amplitude = rng.uniform(1 - AMPLITUDE_RANGE, 1 + AMPLITUDE_RANGE, (n, 1))
    shear = rng.uniform(-SHEAR_RANGE, SHEAR_RANGE, (n, 1))
    u = (t - centre) / width + 0.5
    grid = np.linspace(0.0, 1.0, TEMPLATE_POINTS)
    x = np.zeros((n, LENGTH))
    for c in range(NUM_CLASSES):
        rows = labels == c
        x[rows] = np.interp(u[rows], grid, shapes[c], left=0.0, right=0.0)
    x = amplitude * x + shear * (t - centre)
    corr = gaussian_filter1d(rng.standard_normal((n, LENGTH)), CORR_NOISE_SIGMA, axis=1)
    corr *= CORR_NOISE_SCALE / corr.std(axis=1, keepdims=True)
    x = x + corr + WHITE_NOISE_SCALE * rng.standard_normal((n, LENGTH))
    return x.astype(np.float32)


def generate(T: int, seed: int) -> Split:
    """``(x_train, y_train, x_test, y_test)``; x is ``(N, 1, LENGTH)``; ``T`` is unused (static)."""
    del T  # static task: the same signal at every timestep
    rng = np.random.default_rng(seed)
    per_class = TRAIN_PER_CLASS + TEST_PER_CLASS
    labels = np.repeat(np.arange(NUM_CLASSES), per_class)
    x = sample(labels, rng)
    is_train = np.tile(np.arange(per_class) < TRAIN_PER_CLASS, NUM_CLASSES)
    out = []
    for mask in (is_train, ~is_train):
        order = rng.permutation(int(mask.sum()))
        xs = torch.from_numpy(x[mask][order]).unsqueeze(1)
        ys = torch.from_numpy(labels[mask][order].astype(np.int64))
        out += [xs, ys]
    return out[0], out[1], out[2], out[3]
