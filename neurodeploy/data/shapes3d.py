"""``shapes3d``: synthetic 3D point clouds of primitive shapes, one class per shape.

Stands in for ModelNet10/40-style point-cloud classification (PointNet input layout).

Generation recipe (all random draws from ``numpy.random.default_rng(seed)``)
---------------------------------------------------------------------------
1. Sample ``NUM_POINTS`` points on the *surface* of the class's shape (area-weighted, except
   the torus tube angle, which uses its exact area density): sphere, cube, cylinder (with caps),
   cone (with base), torus, square pyramid, capsule, flat disc, octahedron, open hemisphere.
2. Scale each axis independently by ``U(1 +- SCALE_RANGE)`` (anisotropic), rotate by a uniformly
   random angle about the vertical z axis and add Gaussian jitter of std ``JITTER``. ModelNet's
   objects are aligned upright and its usual augmentation rotates about the up axis; full 3D
   rotation (``random_rotations``) is kept for harder variants.
3. Centre on the centroid, divide by the largest point norm (the cloud fits the unit sphere)
   and randomly permute the point order.

``input_shape`` is ``(3, NUM_POINTS)``: channels = xyz, points last, as PointNet's ``Conv1d``
layers expect. Static (direct-encoded). Classes are balanced, ``TRAIN_PER_CLASS`` train /
``TEST_PER_CLASS`` test per class; the split is fixed by construction, the ``seed`` changes
every cloud. Raw coordinates are rotated about z and unordered, so a *linear* model on the
flattened coordinates is at chance; invariant features (sorted radii) or a PointNet are needed.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

NAME = "shapes3d"
NUM_POINTS = 128
TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50
SCALE_RANGE = 0.25
JITTER = 0.02
TORUS_MAJOR, TORUS_MINOR = 1.0, 0.35
CAPSULE_RADIUS, CAPSULE_HALF_LENGTH = 0.5, 0.75
TEMPORAL = False
DESCRIPTION = "surface point clouds of 10 primitive shapes, random rotation about z, scale, jitter"
STANDS_IN_FOR = "ModelNet10 / ModelNet40 (point clouds)"

Sampler = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def _sphere(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    p = rng.standard_normal((*shape, 3))
    return p / np.linalg.norm(p, axis=-1, keepdims=True)


def _disc_points(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Uniform points on the unit disc in the z = 0 plane."""
    r, a = np.sqrt(rng.random(shape)), rng.uniform(0, 2 * np.pi, shape)
    return np.stack([r * np.cos(a), r * np.sin(a), np.zeros(shape)], axis=-1)


def _cube(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    p = rng.uniform(-1, 1, (*shape, 3))
    axis = rng.integers(0, 3, shape)[..., None]
    np.put_along_axis(p, axis, rng.choice([-1.0, 1.0], shape)[..., None], axis=-1)
    return p


def _cylinder(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi, shape)  # side area 4*pi vs caps 2*pi -> P(side) = 2/3
    side = np.stack([np.cos(a), np.sin(a), rng.uniform(-1, 1, shape)], axis=-1)
    cap = _disc_points(rng, shape)
    cap[..., 2] = rng.choice([-1.0, 1.0], shape)
    return np.where((rng.random(shape) < 2 / 3)[..., None], side, cap)


def _cone(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    s, a = np.sqrt(rng.random(shape)), rng.uniform(0, 2 * np.pi, shape)  # apex at z = 1
    lateral = np.stack([s * np.cos(a), s * np.sin(a), 1 - 2 * s], axis=-1)
    base = _disc_points(rng, shape)
    base[..., 2] = -1.0
    p_lateral = np.sqrt(5) / (np.sqrt(5) + 1)  # lateral area pi*sqrt(5) vs base pi
    return np.where((rng.random(shape) < p_lateral)[..., None], lateral, base)


def _torus(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    grid = np.linspace(0, 2 * np.pi, 1025)  # tube angle density ~ R + r cos(phi)
    cdf = np.concatenate([[0.0], np.cumsum(TORUS_MAJOR + TORUS_MINOR * np.cos(grid[1:]))])
    phi = np.interp(rng.random(shape), cdf / cdf[-1], grid)
    theta = rng.uniform(0, 2 * np.pi, shape)
    ring = TORUS_MAJOR + TORUS_MINOR * np.cos(phi)
    return np.stack([ring * np.cos(theta), ring * np.sin(theta), TORUS_MINOR * np.sin(phi)], -1)


def _capsule(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    a = rng.uniform(0, 2 * np.pi, shape)
    side = np.stack(
        [
            CAPSULE_RADIUS * np.cos(a),
            CAPSULE_RADIUS * np.sin(a),
            rng.uniform(-CAPSULE_HALF_LENGTH, CAPSULE_HALF_LENGTH, shape),
        ],
        axis=-1,
    )
    cap = CAPSULE_RADIUS * _sphere(rng, shape)
    cap[..., 2] += np.sign(cap[..., 2]) * CAPSULE_HALF_LENGTH
    side_area = 2 * np.pi * CAPSULE_RADIUS * 2 * CAPSULE_HALF_LENGTH
    p_side = side_area / (side_area + 4 * np.pi * CAPSULE_RADIUS**2)
    return np.where((rng.random(shape) < p_side)[..., None], side, cap)


def _mesh(vertices: list[list[float]], faces: list[list[int]]) -> Sampler:
    """Area-weighted uniform sampler on a triangle mesh."""
    tri = np.asarray(vertices, dtype=np.float64)[np.asarray(faces)]  # (F, 3, 3)
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=-1)

    def sample(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
        t = tri[rng.choice(len(tri), size=shape, p=area / area.sum())]
        r1, r2 = np.sqrt(rng.random((*shape, 1))), rng.random((*shape, 1))
        return (1 - r1) * t[..., 0, :] + r1 * (1 - r2) * t[..., 1, :] + r1 * r2 * t[..., 2, :]

    return sample


_PYRAMID = _mesh(
    [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [0, 0, 1]],
    [[0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4], [0, 1, 2], [0, 2, 3]],
)
_OCTAHEDRON = _mesh(
    [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
    [[x, y, z] for x in (0, 1) for y in (2, 3) for z in (4, 5)],
)


def _hemisphere(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    p = _sphere(rng, shape)
    p[..., 2] = np.abs(p[..., 2])
    return p


SHAPES: dict[str, Sampler] = {
    "sphere": _sphere,
    "cube": _cube,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
    "pyramid": _PYRAMID,
    "capsule": _capsule,
    "disc": _disc_points,
    "octahedron": _OCTAHEDRON,
    "hemisphere": _hemisphere,
}
CLASS_NAMES: tuple[str, ...] = tuple(SHAPES)
NUM_CLASSES = len(CLASS_NAMES)
INPUT_SHAPE: tuple[int, ...] = (3, NUM_POINTS)


def random_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 3, 3)`` uniformly random rotation matrices (QR of Gaussian matrices, det = +1)."""
    q, r = np.linalg.qr(rng.standard_normal((n, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    q[:, :, 0] *= np.sign(np.linalg.det(q))[:, None]
    return q


def random_z_rotations(rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, 3, 3)`` rotations by a uniform angle about the z (up) axis."""
    phi = rng.uniform(0, 2 * np.pi, n)
    c, s = np.cos(phi), np.sin(phi)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 1], rot[:, 1, 0], rot[:, 1, 1], rot[:, 2, 2] = c, -s, s, c, 1.0
    return rot


def sample_clouds(label: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` transformed, normalised, permuted clouds of class ``label``: ``(n, NUM_POINTS, 3)``."""
    p = SHAPES[CLASS_NAMES[label]](rng, (n, NUM_POINTS))
    p = p * rng.uniform(1 - SCALE_RANGE, 1 + SCALE_RANGE, (n, 1, 3))
    p = p @ random_z_rotations(rng, n).transpose(0, 2, 1)
    p = p + JITTER * rng.standard_normal(p.shape)
    p = p - p.mean(axis=1, keepdims=True)
    p = p / np.linalg.norm(p, axis=-1).max(axis=1)[:, None, None]
    order = rng.random((n, NUM_POINTS)).argsort(axis=1)
    return np.take_along_axis(p, order[..., None], axis=1)


def generate(T: int, seed: int) -> Split:
    """``(x_train, y_train, x_test, y_test)``; x is ``(N, 3, NUM_POINTS)``; ``T`` is unused."""
    del T  # static task
    rng = np.random.default_rng(seed)
    per_class = TRAIN_PER_CLASS + TEST_PER_CLASS
    clouds = [sample_clouds(c, per_class, rng) for c in range(NUM_CLASSES)]
    out: list[torch.Tensor] = []
    for part in (slice(0, TRAIN_PER_CLASS), slice(TRAIN_PER_CLASS, per_class)):
        x = np.concatenate([cl[part] for cl in clouds])
        y = np.repeat(np.arange(NUM_CLASSES), len(clouds[0][part]))
        order = rng.permutation(len(y))
        out += [
            torch.from_numpy(x[order].transpose(0, 2, 1).astype(np.float32)).contiguous(),
            torch.from_numpy(y[order].astype(np.int64)),
        ]
    return out[0], out[1], out[2], out[3]
