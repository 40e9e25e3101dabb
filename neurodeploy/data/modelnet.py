"""ModelNet10 / ModelNet40 point clouds from the two local layouts in common use.

``layout="off"``: the Princeton release (ModelNet10.zip / ModelNet40.zip) of meshes::

    <root>/<class>/train/<class>_0001.off    <root>/<class>/test/<class>_0627.off

classes = the sorted class folders. Each sample draws ``num_points`` points uniformly from the
mesh surface (a triangle is chosen with probability proportional to its area, then a uniform
point in it: p = (1 - sqrt(r1)) a + sqrt(r1) (1 - r2) b + sqrt(r1) r2 c); test clouds are drawn
once per index (fixed), training clouds afresh every epoch. Polygons are split into triangle
fans; the header may be the malformed ``OFF<nv> <nf> <ne>`` on one line found in ModelNet.

``layout="resampled"``: PointNet++'s ``modelnet40_normal_resampled`` (10000 points with normals
per shape, the layout most SNN point-cloud code reads)::

    <root>/modelnet{10,40}_shape_names.txt  modelnet{10,40}_{train,test}.txt  <class>/<id>.txt

each line of a shape file "x,y,z,nx,ny,nz"; the first ``num_points`` points are used (as
PointNet++'s loader does without farthest-point sampling); normals are ignored.
``layout="auto"`` picks "resampled" when the shape-names file is there, else "off".

Every cloud is centred on its centroid and scaled into the unit sphere (divided by its largest
point norm); ``x`` is (3, num_points), channels = xyz, the PointNet ``Conv1d`` layout. Training
augmentation (``augment``): ``scale`` multiplies by U(0.8, 1.25), ``shift`` adds U(-0.1, 0.1)
per axis (PointNet++'s), ``jitter`` adds N(0, 0.01^2) per coordinate, ``rotate`` turns the
cloud by a uniform angle about the up axis (z in the OFF files, y in the resampled files).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from neurodeploy.data.real import DatasetNotFoundError, RealDataset, SampleDataset

LAYOUTS = ("auto", "off", "resampled")
AUGMENTATIONS = ("scale", "shift", "jitter", "rotate")
SCALE_RANGE = (0.8, 1.25)
SHIFT_RANGE = 0.1
JITTER_STD = 0.01
UP_AXIS = {"off": 2, "resampled": 1}
HOW = (
    "Obtain ModelNet{n}.zip (Princeton ModelNet, meshes in .off) or PointNet++'s "
    "modelnet40_normal_resampled.zip and extract it into <root>."
)


def read_off(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and triangles (F, 3) int64 of an OFF mesh (polygons fanned)."""
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: cannot read as an OFF text file ({e})") from e
    tokens = text.split()
    if not tokens or not tokens[0].startswith("OFF"):
        raise ValueError(f"{path}: not an OFF file (first token {tokens[:1]})")
    head = tokens[0][3:]
    rest = tokens[1:]
    if head:  # "OFF490 518 0": counts glued to the keyword
        rest = [head, *rest]
    try:
        nv, nf = int(rest[0]), int(rest[1])
        if nv < 1 or nf < 1:
            raise ValueError(f"counts {nv} vertices, {nf} faces must be >= 1")
        vals = rest[3:]
        verts = np.asarray(vals[: 3 * nv], dtype=np.float64).reshape(nv, 3)
        faces_tok = np.asarray(vals[3 * nv :], dtype=np.int64)
    except (ValueError, IndexError, OverflowError) as e:
        raise ValueError(f"{path}: malformed OFF counts or vertices ({e})") from e
    if not np.all(np.isfinite(verts)):
        raise ValueError(f"{path}: vertices hold non-finite (NaN/inf) coordinates")
    if len(faces_tok) >= 4 * nf and np.all(faces_tok[: 4 * nf : 4] == 3):
        tris = faces_tok[: 4 * nf].reshape(nf, 4)[:, 1:]
    else:
        out, i = [], 0
        for face in range(nf):
            if i >= len(faces_tok) or i + 1 + int(faces_tok[i]) > len(faces_tok):
                raise ValueError(
                    f"{path}: the header promises {nf} faces, the file ends at face {face}"
                )
            k = int(faces_tok[i])
            poly = faces_tok[i + 1 : i + 1 + k]
            out += [(poly[0], poly[j], poly[j + 1]) for j in range(1, k - 1)]
            i += 1 + k
        tris = np.asarray(out, dtype=np.int64).reshape(-1, 3)
    if len(tris) == 0 or tris.min() < 0 or tris.max() >= nv:
        raise ValueError(f"{path}: faces index vertices outside 0..{nv - 1} or there are no faces")
    return verts, tris


def sample_surface(
    verts: np.ndarray, tris: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` points (n, 3) uniform on the mesh surface (module docstring)."""
    t = verts[tris]  # (F, 3, 3)
    area = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=-1)
    if not area.sum() > 0:
        raise ValueError("mesh has zero surface area")
    pick = t[rng.choice(len(t), size=n, p=area / area.sum())]
    r1, r2 = np.sqrt(rng.random((n, 1))), rng.random((n, 1))
    return (1 - r1) * pick[:, 0] + r1 * (1 - r2) * pick[:, 1] + r1 * r2 * pick[:, 2]


def normalise(points: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale into the unit sphere."""
    p = points - points.mean(axis=0, keepdims=True)
    r = np.linalg.norm(p, axis=1).max()
    return p / r if r > 0 else p


class PointClouds(SampleDataset):
    """Clouds (3, num_points) from .off meshes or resampled .txt files (module docstring)."""

    def __init__(
        self,
        files: list[Path],
        labels: list[int],
        layout: str,
        num_points: int,
        *,
        augment: Sequence[str] = (),
        seed: int = 0,
        resample_each_epoch: bool = False,
    ) -> None:
        bad = [a for a in augment if a not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"augment: unknown kind(s) {bad}; available: {AUGMENTATIONS}")
        super().__init__(labels, augment=bool(augment), seed=seed)
        self.files, self.layout, self.num_points = files, layout, int(num_points)
        self.kinds, self.resample = tuple(augment), resample_each_epoch

    def load(self, index: int) -> torch.Tensor:
        path = self.files[index]
        if self.layout == "off":
            rng = np.random.default_rng([self.seed, self.epoch if self.resample else 0, index, 1])
            pts = sample_surface(*read_off(path), self.num_points, rng)
        else:
            # only the first num_points rows are used: parse no more (files hold 10 000)
            try:
                a = np.loadtxt(
                    path, delimiter=",", dtype=np.float64, ndmin=2, max_rows=self.num_points
                )
            except (OSError, ValueError) as e:
                raise ValueError(f"{path}: not rows of x,y,z[,nx,ny,nz] numbers ({e})") from e
            if a.shape[1] < 3 or len(a) < self.num_points:
                raise ValueError(
                    f"{path}: {a.shape[0]} points x {a.shape[1]} values; need >= {self.num_points} "
                    f"points of x,y,z[,nx,ny,nz]"
                )
            pts = a[: self.num_points, :3]
            if not np.all(np.isfinite(pts)):
                raise ValueError(f"{path}: points hold non-finite (NaN/inf) coordinates")
        return torch.from_numpy(normalise(pts).T.astype(np.float32)).contiguous()

    def augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if "rotate" in self.kinds:
            phi = rng.uniform(0, 2 * math.pi)
            c, s = math.cos(phi), math.sin(phi)
            axes = [a for a in range(3) if a != UP_AXIS[self.layout]]
            rot = torch.eye(3)
            (
                rot[axes[0], axes[0]],
                rot[axes[0], axes[1]],
                rot[axes[1], axes[0]],
                rot[axes[1], axes[1]],
            ) = c, -s, s, c
            x = rot @ x
        if "scale" in self.kinds:
            x = x * float(rng.uniform(*SCALE_RANGE))
        if "shift" in self.kinds:
            x = x + torch.from_numpy(
                rng.uniform(-SHIFT_RANGE, SHIFT_RANGE, (3, 1)).astype(np.float32)
            )
        if "jitter" in self.kinds:
            x = x + torch.from_numpy(
                (JITTER_STD * rng.standard_normal(tuple(x.shape))).astype(np.float32)
            )
        return x.contiguous()


def _read_list(path: Path) -> list[str]:
    return [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]


def _resampled(root: Path, n: int) -> tuple[list[str], dict[str, list[Path]], dict[str, list[int]]]:
    names = _read_list(root / f"modelnet{n}_shape_names.txt")
    index = {c: i for i, c in enumerate(names)}
    files: dict[str, list[Path]] = {}
    labels: dict[str, list[int]] = {}
    for split in ("train", "test"):
        lst = root / f"modelnet{n}_{split}.txt"
        if not lst.is_file():
            raise DatasetNotFoundError(
                f"ModelNet{n}: {lst} not found; expected <root>/modelnet{n}_{{shape_names,"
                f"train,test}}.txt and <root>/<class>/<id>.txt. {HOW.format(n=n)}"
            )
        files[split], labels[split] = [], []
        for sid in _read_list(lst):
            cls = sid.rsplit("_", 1)[0]  # "night_stand_0001" -> "night_stand"
            if cls not in index:
                raise ValueError(
                    f"{lst}: shape {sid!r} has class {cls!r}, not in modelnet{n}_shape_names.txt"
                )
            path = root / cls / f"{sid}.txt"
            if not path.is_file():
                raise DatasetNotFoundError(
                    f"ModelNet{n}: {path} listed in {lst.name} is missing; the folder is "
                    f"incomplete. {HOW.format(n=n)}"
                )
            files[split].append(path)
            labels[split].append(index[cls])
    return names, files, labels


def _off(root: Path, n: int) -> tuple[list[str], dict[str, list[Path]], dict[str, list[int]]]:
    names = sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "train").is_dir())
    if len(names) != n:
        raise DatasetNotFoundError(
            f"ModelNet{n}: {root} has {len(names)} class folders with a train/ subfolder, "
            f"expected {n}: <root>/<class>/{{train,test}}/*.off. {HOW.format(n=n)}"
        )
    files: dict[str, list[Path]] = {"train": [], "test": []}
    labels: dict[str, list[int]] = {"train": [], "test": []}
    for c, name in enumerate(names):
        for split in ("train", "test"):
            found = (
                sorted((root / name / split).glob("*.off"))
                if (root / name / split).is_dir()
                else []
            )
            if not found:
                raise DatasetNotFoundError(
                    f"ModelNet{n}: no .off files in {root / name / split}; the folder is "
                    f"incomplete. {HOW.format(n=n)}"
                )
            files[split] += found
            labels[split] += [c] * len(found)
    return names, files, labels


def load_modelnet(
    root: str | Path,
    n: int,
    T: int = 4,
    seed: int = 0,
    *,
    num_points: int = 1024,
    layout: str = "auto",
    augment: Sequence[str] = (),
) -> RealDataset:
    """ModelNet``n`` (10 or 40) from ``root`` (module docstring); ``x``: (3, num_points)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if num_points < 1:
        raise ValueError(f"num_points must be >= 1, got {num_points}")
    root = Path(root)
    for cand in (root / "modelnet40_normal_resampled", root / f"ModelNet{n}", root):
        if cand.is_dir() and (
            layout != "resampled" or (cand / f"modelnet{n}_shape_names.txt").is_file()
        ):
            base = cand
            break
    else:
        raise DatasetNotFoundError(
            f"ModelNet{n}: folder {root} not found; expected <root>/<class>/{{train,test}}/*.off "
            f"or <root>/modelnet{n}_shape_names.txt with <class>/<id>.txt. {HOW.format(n=n)}"
        )
    if layout == "auto":
        layout = "resampled" if (base / f"modelnet{n}_shape_names.txt").is_file() else "off"
    names, files, labels = (_resampled if layout == "resampled" else _off)(base, n)
    train = PointClouds(
        files["train"],
        labels["train"],
        layout,
        num_points,
        augment=augment,
        seed=seed,
        resample_each_epoch=True,
    )
    test = PointClouds(files["test"], labels["test"], layout, num_points, seed=seed)
    return RealDataset(
        f"modelnet{n}", train, test, (3, num_points), n, False, T, tuple(names), str(base)
    )


def load_modelnet10(
    root: str | Path,
    T: int = 4,
    seed: int = 0,
    *,
    num_points: int = 1024,
    layout: str = "auto",
    augment: Sequence[str] = (),
) -> RealDataset:
    return load_modelnet(root, 10, T, seed, num_points=num_points, layout=layout, augment=augment)


def load_modelnet40(
    root: str | Path,
    T: int = 4,
    seed: int = 0,
    *,
    num_points: int = 1024,
    layout: str = "auto",
    augment: Sequence[str] = (),
) -> RealDataset:
    return load_modelnet(root, 40, T, seed, num_points=num_points, layout=layout, augment=augment)
