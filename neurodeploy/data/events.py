"""Event-camera and spiking-audio data sets from local folders, read with tonic's file readers:
CIFAR10-DVS, DVS128 Gesture, N-Caltech101, N-MNIST and SHD. Nothing is downloaded: tonic 1.7's
dataset classes download whenever their archive file is absent, so they are not instantiated;
their readers (``tonic.io``) and on-disk layouts are used instead (layouts: docs/real-data.md).

Frames
------
A recording is a list of events (t, x, y, p) on a sensor of W x H pixels and P polarities.
With ``binning="events"`` (default for the DVS sets, spikingjelly's ``split_by="number"``)
the N time-ordered events are cut into T bins of equal count: event k (0-based) goes to frame

    f(k) = floor(k * T / N)                                  (bins differ by at most 1 event)

every event is used (tonic's ``ToFrame(n_event_bins=T)`` drops the N mod T last events; for N
divisible by T the two agree, which the tests check). With ``binning="time"`` the span of the
recording is cut into T equal windows: f = floor((t - t_0) * T / (t_last - t_0 + 1)).
SHD uses a fixed window of ``duration`` seconds for every sample: f = floor(t * T / duration);
an event at t >= duration is an error found when the data set is opened, never dropped.

frame[f, p, y, x] = number of events of polarity p at pixel (x, y) in bin f (float32 counts;
``binary=True`` gives 1 where the count is > 0). Downsampling (``size``, e.g. 48 for
CIFAR10-DVS as in TET/MPS) resizes each frame bilinearly (``align_corners=False``, no
antialiasing: what torchvision's ``Resize`` did to tensors in the papers' code). SHD's 700
channels can be summed in groups of ``channel_factor`` (700 -> 700 / factor).

Augmentation (training split only, deterministic per (seed, epoch, index)):
``flip`` horizontal flip with probability 1/2 (never for DVS128 Gesture: it swaps the left- and
right-hand classes); ``roll`` a random shift of up to ``roll_max`` pixels in x and y, wrapped
around (TET's); ``cutout`` zeroes a random square of side ``cutout_frac * S``; ``nda`` picks one
of roll, rotation (+-15 degrees), horizontal shear (+-0.3) and cutout per sample, after NDA
(Li et al., ECCV 2022). The same transform applies to all T frames of a sample.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from neurodeploy.data.real import (
    DatasetNotFoundError,
    RealDataset,
    SampleDataset,
    first_existing,
    require_dir,
)

BINNINGS = ("events", "time")
AUGMENTATIONS = ("flip", "roll", "cutout", "nda")
NDA_ROTATE_DEG = 15.0
NDA_SHEAR = 0.3

CIFAR10_DVS_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
DVS_GESTURE_CLASSES = (
    "hand clapping",
    "right hand wave",
    "left hand wave",
    "right arm cw",
    "right arm ccw",
    "left arm cw",
    "left arm ccw",
    "arm roll",
    "air drums",
    "air guitar",
    "other gestures",
)
NCALTECH101_NUM_CLASSES = (
    101  # 100 object classes + BACKGROUND_Google (tonic keeps all 101 folders)
)
SHD_NUM_CLASSES = 20
SHD_CHANNELS = 700
SHD_DEFAULT_DURATION_S = 1.4  # the longest SHD recording is shorter than 1.4 s
DVS128 = (128, 128)  # (W, H) of CIFAR10-DVS and DVS128 Gesture
NMNIST_SENSOR = (34, 34)
NCALTECH101_SENSOR = (240, 180)

# CIFAR10-DVS as first released (AEDAT 2.0, jAER's DVS128 address word, big-endian):
# x_raw = bits 1-7, y_raw = bits 8-14, polarity = bit 0. Events are mapped as spikingjelly and
# events-tfds do, x = 127 - y_raw, y = 127 - x_raw, p = 1 - bit0, so that the .aedat files and
# spikingjelly's converted events_np/*.npz give identical frames (upright images).
C10DVS_X_MASK, C10DVS_X_SHIFT = 0x00FE, 1
C10DVS_Y_MASK, C10DVS_Y_SHIFT = 0x7F00, 8
C10DVS_P_MASK = 0x0001
C10DVS_SOURCE = (
    "CIFAR10-DVS (Li et al. 2017): the per-class zips of the figshare release (doi "
    "10.6084/m9.figshare.4724671) extracted to <root>/<class>/*.aedat, or tonic's "
    "CIFAR10DVS download (<save_to>/CIFAR10DVS/<class>/*.aedat4), or spikingjelly's "
    "converted <root>/events_np/<class>/*.npz"
)


class Events(NamedTuple):
    """One recording: timestamps ``t`` (microseconds; seconds for SHD), pixel ``x``, ``y`` and
    polarity ``p`` (0/1), each a 1-D integer (``t`` may be float) array of the same length."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray


@dataclass(frozen=True)
class FrameSpec:
    """How events become frames (module docstring): sensor (W, H) and polarities, T bins,
    ``binning``, optional fixed ``duration`` (same unit as t), output ``size``, ``binary``."""

    sensor: tuple[int, int]
    polarities: int
    T: int
    binning: str = "events"
    duration: float | None = None
    size: tuple[int, int] | None = None
    binary: bool = False
    channel_factor: int = 1

    def __post_init__(self) -> None:
        if self.binning not in BINNINGS:
            raise ValueError(f"binning must be one of {BINNINGS}, got {self.binning!r}")
        if self.size is not None and (len(self.size) != 2 or min(self.size) < 1):
            raise ValueError(f"size must be (height, width) >= 1, got {self.size!r}")

    @property
    def frame_shape(self) -> tuple[int, ...]:
        w, h = self.sensor
        if h == 1 and self.size is None:  # 1-D sensor (SHD): (channels / factor,)
            return (w // self.channel_factor,)
        return (self.polarities, *(self.size or (h, w)))


def bin_events(ev: Events, spec: FrameSpec, source: str = "recording") -> np.ndarray:
    """Frames ``(T, P, H, W)`` float32 from events (module docstring); bad coordinates raise."""
    w, h = spec.sensor
    T = spec.T
    n = len(ev.t)
    frames = np.zeros((T, spec.polarities, h, w), dtype=np.float32)
    if n == 0:
        return frames
    for name, v, hi in (("x", ev.x, w), ("y", ev.y, h), ("p", ev.p, spec.polarities)):
        if v.min() < 0 or v.max() >= hi:
            raise ValueError(
                f"{source}: event {name} outside [0, {hi - 1}] (found {int(v.min())}..{int(v.max())}) "
                f"for a {w}x{h} sensor with {spec.polarities} polarities"
            )
    if spec.duration is not None:
        t = np.asarray(ev.t, dtype=np.float64)
        if t.min() < 0 or t.max() >= spec.duration:
            raise ValueError(
                f"{source}: event times {t.min():g}..{t.max():g} outside the window [0, {spec.duration:g}); "
                f"raise `duration`"
            )
        f = np.floor(t * T / spec.duration).astype(np.int64)
    else:
        order = np.argsort(ev.t, kind="stable")
        ev = Events(*(np.asarray(a)[order] for a in ev))
        if spec.binning == "events":
            f = (np.arange(n, dtype=np.int64) * T) // n
        else:
            t = np.asarray(ev.t, dtype=np.float64) - float(ev.t[0])
            f = np.floor(t * T / (t[-1] + 1.0)).astype(np.int64)
    idx = (
        (f * spec.polarities + ev.p.astype(np.int64)) * h + ev.y.astype(np.int64)
    ) * w + ev.x.astype(np.int64)
    frames.reshape(-1)[:] = np.bincount(idx, minlength=frames.size).astype(np.float32)
    return frames


def to_output(frames: np.ndarray, spec: FrameSpec) -> torch.Tensor:
    """Resize / binarise / group channels: (T, P, H, W) -> (T, *spec.frame_shape)."""
    x = torch.from_numpy(frames)
    w, h = spec.sensor
    if h == 1 and spec.size is None:
        x = x.reshape(spec.T, w)
        if spec.channel_factor > 1:
            x = x.reshape(spec.T, w // spec.channel_factor, spec.channel_factor).sum(-1)
    elif spec.size is not None and tuple(spec.size) != (h, w):
        x = F.interpolate(
            x, size=tuple(spec.size), mode="bilinear", align_corners=False, antialias=False
        )
    if spec.binary:
        x = (x > 0).to(torch.float32)
    return x.contiguous()


def _affine(x: torch.Tensor, theta: list[list[float]]) -> torch.Tensor:
    """Apply a 2x3 affine map (normalised coordinates) to frames (T, C, H, W), nearest sampling."""
    mat = torch.tensor(theta, dtype=x.dtype).unsqueeze(0).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(mat, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def augment_frames(
    x: torch.Tensor,
    kinds: Sequence[str],
    rng: np.random.Generator,
    *,
    roll_max: int = 5,
    cutout_frac: float = 0.25,
) -> torch.Tensor:
    """The event-frame augmentations of the module docstring on one sample (T, C, H, W)."""
    h, w = x.shape[-2:]
    for kind in kinds:
        op = kind
        if kind == "nda":
            op = ("roll", "rotate", "shear", "cutout")[int(rng.integers(4))]
        if op == "flip":
            if rng.random() < 0.5:
                x = x.flip(-1)
        elif op == "roll":
            dy, dx = (int(v) for v in rng.integers(-roll_max, roll_max + 1, size=2))
            x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
        elif op == "rotate":
            a = math.radians(rng.uniform(-NDA_ROTATE_DEG, NDA_ROTATE_DEG))
            x = _affine(x, [[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0]])
        elif op == "shear":
            x = _affine(x, [[1.0, rng.uniform(-NDA_SHEAR, NDA_SHEAR), 0.0], [0.0, 1.0, 0.0]])
        elif op == "cutout":
            side = max(1, round(cutout_frac * min(h, w)))
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
            x = x.clone()
            x[
                ...,
                max(0, cy - side // 2) : cy + (side + 1) // 2,
                max(0, cx - side // 2) : cx + (side + 1) // 2,
            ] = 0
        else:
            raise ValueError(f"augment: unknown kind {kind!r}; available: {AUGMENTATIONS}")
    return x


class EventFrames(SampleDataset):
    """Recordings -> frames ``(T, *spec.frame_shape)``; ``read(i)`` returns recording i's Events."""

    def __init__(
        self,
        sources: list[str],
        labels: list[int],
        read: Callable[[int], Events],
        spec: FrameSpec,
        *,
        augment: Sequence[str] = (),
        seed: int = 0,
        roll_max: int = 5,
        cutout_frac: float = 0.25,
    ) -> None:
        super().__init__(labels, augment=bool(augment), seed=seed)
        bad = [a for a in augment if a not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"augment: unknown kind(s) {bad}; available: {AUGMENTATIONS}")
        if len(sources) != len(labels):
            raise ValueError(f"{len(sources)} recordings but {len(labels)} labels")
        self.sources, self.read, self.spec = list(sources), read, spec
        self.kinds, self.roll_max, self.cutout_frac = (
            tuple(augment),
            int(roll_max),
            float(cutout_frac),
        )

    def load(self, index: int) -> torch.Tensor:
        return to_output(bin_events(self.read(index), self.spec, self.sources[index]), self.spec)

    def augment(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return augment_frames(
            x, self.kinds, rng, roll_max=self.roll_max, cutout_frac=self.cutout_frac
        )


# ---------------------------------------------------------------------------------- readers
_XYTP = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
NMNIST_EVENT_BYTES = 5  # N-MNIST / N-Caltech101 .bin: 40 bits per event
AEDAT2_EVENT_BYTES = 8  # AEDAT 2.0: big-endian u32 address + u32 timestamp
# what a malformed binary file makes numpy / zipfile / tonic raise; turned into a named ValueError
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, IndexError, TypeError, NameError)


def _ints(path: Path | str, field: str, a: np.ndarray) -> np.ndarray:
    """``a`` as a 1-D int64 array; floats must be finite whole numbers (never truncated)."""
    a = np.asarray(a)
    if a.ndim != 1:
        raise ValueError(f"{path}: field {field!r} has shape {a.shape}, expected 1-D")
    if a.dtype.kind in "biu":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise ValueError(f"{path}: field {field!r} has non-finite or fractional values")
        return a.astype(np.int64)
    raise ValueError(f"{path}: field {field!r} has dtype {a.dtype}, expected integers")


def checked_events(path: Path | str, ev: Events) -> Events:
    """``ev`` after checking that t, x, y, p are 1-D, of one length, and t is finite."""
    n = len(ev.t)
    for name, v in zip(Events._fields, ev):
        if np.ndim(v) != 1 or len(v) != n:
            raise ValueError(
                f"{path}: field {name!r} has shape {np.shape(v)}, expected ({n},) like 't'"
            )
    if np.asarray(ev.t).dtype.kind == "f" and not np.all(np.isfinite(ev.t)):
        raise ValueError(f"{path}: field 't' has non-finite (NaN/inf) times")
    return ev


def _np_load(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """The array (.npy) or arrays (.npz) in ``path``; pickled objects are never loaded."""
    try:
        z = np.load(path, allow_pickle=False)
        if isinstance(z, np.lib.npyio.NpzFile):
            with z:
                return {k: z[k] for k in z.files}
        return np.asarray(z)
    except Exception as e:  # untrusted bytes: numpy's header parser raises even TokenError
        raise ValueError(f"{path}: unreadable .npy/.npz ({type(e).__name__}: {e})") from e


def read_bin(path: str | Path) -> Events:
    """N-MNIST / N-Caltech101 ``.bin`` (5 bytes per event), through ``tonic.io.read_mnist_file``."""
    from tonic.io import read_mnist_file

    try:
        size = Path(path).stat().st_size
        if size % NMNIST_EVENT_BYTES:
            raise ValueError(
                f"{path}: {size} bytes is not a whole number of {NMNIST_EVENT_BYTES}-byte events "
                f"(truncated?)"
            )
        ev = read_mnist_file(str(path), dtype=_XYTP)
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e})") from e
    return checked_events(path, Events(ev["t"], ev["x"], ev["y"], ev["p"]))


def read_cifar10_dvs(path: str | Path) -> Events:
    """One CIFAR10-DVS recording: ``.aedat`` (original AEDAT 2.0), ``.npz`` (spikingjelly's
    t, x, y, p) or ``.aedat4`` (tonic's; needs the ``aedat`` package)."""
    path = Path(path)
    if path.suffix == ".npz":
        z = _np_load(path)
        if not isinstance(z, dict):
            raise ValueError(f"{path}: a .npy array, not a .npz archive of t, x, y, p")
        missing = [k for k in "txyp" if k not in z]
        if missing:
            raise ValueError(
                f"{path}: .npz lacks array(s) {missing} (spikingjelly's events_np has t, x, y, p)"
            )
        return checked_events(path, Events(*(_ints(path, k, z[k]) for k in "txyp")))
    if path.suffix == ".aedat4":
        try:
            import aedat  # noqa: F401  (tonic.io.read_aedat4 imports it)
            from tonic.io import read_aedat4
        except ImportError as e:
            raise ImportError(
                f"{path}: reading .aedat4 (tonic's CIFAR10DVS files) needs the `aedat` package "
                f"(pip install aedat), which is not installed; or convert the recordings to "
                f"spikingjelly's .npz"
            ) from e
        ev = read_aedat4(str(path))
        return Events(
            ev["t"].astype(np.int64),
            ev["x"].astype(np.int64),
            ev["y"].astype(np.int64),
            ev["p"].astype(np.int64),
        )
    from tonic.io import get_aer_events_from_file, read_aedat_header_from_file

    try:  # tonic raises NameError (UnboundLocalError) when no '!AER-DAT' line is there
        version, start, _ = read_aedat_header_from_file(str(path))
    except _READ_ERRORS as e:
        raise ValueError(
            f"{path}: unreadable AEDAT header ({type(e).__name__}: {e}); expected '#!AER-DAT2.0' "
            f"lines ending in CR LF"
        ) from e
    if not 2 <= version < 3:
        raise ValueError(f"{path}: AEDAT version {version} is not CIFAR10-DVS's 2.0 format")
    try:
        payload = path.stat().st_size - start
        if payload % AEDAT2_EVENT_BYTES:
            raise ValueError(
                f"{path}: {payload} bytes after the header is not a whole number of "
                f"{AEDAT2_EVENT_BYTES}-byte events (truncated?)"
            )
        raw = get_aer_events_from_file(str(path), version, start)
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e})") from e
    addr = raw["address"].astype(np.int64)
    x_raw = (addr & C10DVS_X_MASK) >> C10DVS_X_SHIFT
    y_raw = (addr & C10DVS_Y_MASK) >> C10DVS_Y_SHIFT
    return Events(
        raw["timeStamp"].astype(np.int64), 127 - y_raw, 127 - x_raw, 1 - (addr & C10DVS_P_MASK)
    )


def read_gesture_npy(path: str | Path) -> Events:
    """tonic's preprocessed DVS128 Gesture sample: an (N, 4) array of x, y, p, t (ms)."""
    a = _np_load(Path(path))
    if isinstance(a, dict) or a.ndim != 2 or a.shape[1] != 4:
        raise ValueError(
            f"{path}: expected an (N, 4) array of x, y, p, t[ms] (tonic's DVSGesture), got "
            f"{'an .npz archive' if isinstance(a, dict) else a.shape}"
        )
    x, y, p, t = (_ints(path, k, a[:, i]) for i, k in enumerate("xypt"))
    return checked_events(path, Events(t * 1000, x, y, p))


class FileReader:
    """``read(i)`` = ``fn(paths[i])``; picklable, so DataLoader workers can be spawned."""

    def __init__(self, paths: Sequence[Path], fn: Callable[[Path], Events]) -> None:
        self.paths, self.fn = list(paths), fn

    def __call__(self, i: int) -> Events:
        return self.fn(self.paths[i])


def read_ncaltech_bin(path: str | Path) -> Events:
    """An N-Caltech101 ``.bin``, shifted so that x and y start at 0 (as tonic's NCALTECH101)."""
    ev = read_bin(path)
    if len(ev.t) == 0:
        return ev
    return Events(ev.t, ev.x - ev.x.min(), ev.y - ev.y.min(), ev.p)


# ---------------------------------------------------------------------------------- helpers
def _files(folder: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in suffixes)


def per_class_split(labels: Sequence[int], train_fraction: float) -> tuple[list[int], list[int]]:
    """Indices of the first ceil(train_fraction * n_c) samples of every class c (in the given,
    sorted order) for training, the rest for testing: spikingjelly's
    ``split_to_train_test_set(train_fraction, ..., random_split=False)``, the common 90/10 split."""
    if not 0.0 < train_fraction < 1.0:
        raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    train, test = [], []
    for c in sorted(by_class):
        idx = by_class[c]
        cut = math.ceil(len(idx) * train_fraction)
        train += idx[:cut]
        test += idx[cut:]
    return train, test


def _size(size: int | Sequence[int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


def _result(
    name: str,
    root: Path,
    *,
    T: int,
    spec: FrameSpec,
    classes: Sequence[str],
    train: EventFrames,
    test: EventFrames,
) -> RealDataset:
    if len(train) == 0 or len(test) == 0:
        raise DatasetNotFoundError(
            f"{name}: {root} gave {len(train)} training and {len(test)} test recordings; "
            f"both must be non-empty"
        )
    return RealDataset(
        name, train, test, spec.frame_shape, len(classes), True, T, tuple(classes), str(root)
    )


# ---------------------------------------------------------------------------------- loaders
def load_cifar10_dvs(
    root: str | Path,
    T: int = 4,
    seed: int = 0,
    *,
    size: int | Sequence[int] | None = 48,
    binning: str = "events",
    train_fraction: float = 0.9,
    augment: Sequence[str] = (),
    roll_max: int = 5,
    cutout_frac: float = 0.25,
    binary: bool = False,
) -> RealDataset:
    """CIFAR10-DVS: 10 class folders of recordings (``.aedat``, ``.aedat4`` or ``.npz``), split
    per class 90/10 by sorted file name (:func:`per_class_split`). ``x``: (T, 2, size, size)."""
    root = Path(root)
    base = first_existing(root, ["CIFAR10DVS", "events_np", ""])
    layout = "<root>/{" + ",".join(CIFAR10_DVS_CLASSES) + "}/*.aedat|*.aedat4|*.npz"
    require_dir(base, "CIFAR10-DVS", layout, f"Obtain {C10DVS_SOURCE}.")
    missing = [c for c in CIFAR10_DVS_CLASSES if not (base / c).is_dir()]
    empty = [
        c
        for c in CIFAR10_DVS_CLASSES
        if c not in missing and not _files(base / c, (".aedat", ".aedat4", ".npz"))
    ]
    if missing or empty:
        raise DatasetNotFoundError(
            f"CIFAR10-DVS: {base} is incomplete: missing class folder(s) {missing}, empty "
            f"{empty}; expected {layout} (1000 recordings per class). Obtain {C10DVS_SOURCE}."
        )
    files, labels = [], []
    for c, name in enumerate(CIFAR10_DVS_CLASSES):
        for f in _files(base / name, (".aedat", ".aedat4", ".npz")):
            files.append(f)
            labels.append(c)
    tr, te = per_class_split(labels, train_fraction)
    spec = FrameSpec(DVS128, 2, T, binning, size=_size(size), binary=binary)

    def make(idx: list[int], aug: Sequence[str]) -> EventFrames:
        sel = [files[i] for i in idx]
        return EventFrames(
            [str(f) for f in sel],
            [labels[i] for i in idx],
            FileReader(sel, read_cifar10_dvs),
            spec,
            augment=aug,
            seed=seed,
            roll_max=roll_max,
            cutout_frac=cutout_frac,
        )

    return _result(
        "cifar10-dvs",
        base,
        T=T,
        spec=spec,
        classes=CIFAR10_DVS_CLASSES,
        train=make(tr, augment),
        test=make(te, ()),
    )


def load_dvs_gesture(
    root: str | Path,
    T: int = 16,
    seed: int = 0,
    *,
    size: int | Sequence[int] | None = None,
    binning: str = "events",
    augment: Sequence[str] = (),
    roll_max: int = 5,
    cutout_frac: float = 0.25,
    binary: bool = False,
) -> RealDataset:
    """DVS128 Gesture in tonic's preprocessed layout (one ``<label>.npy`` per gesture):
    ``<root>/ibmGestureTrain/user*_<lighting>/*.npy`` and ``ibmGestureTest/...``; the official
    user split (23 train / 6 test users). ``x``: (T, 2, size, size), 128 when ``size`` is None."""
    if "flip" in augment:
        raise ValueError(
            "augment: 'flip' swaps DVS128 Gesture's left- and right-hand classes; use roll/cutout/nda"
        )
    root = Path(root)
    base = first_existing(root, ["DVSGesture", ""])
    how = (
        "Obtain tonic's preprocessed archives ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz "
        "(tonic.datasets.DVSGesture.train_url / test_url) and extract both into <root>."
    )
    layout = (
        "<root>/ibmGestureTrain/user<NN>_<lighting>/<label>.npy and <root>/ibmGestureTest/... "
        "(labels 0-10)"
    )
    spec = FrameSpec(DVS128, 2, T, binning, size=_size(size), binary=binary)
    parts = []
    for split, aug in (("ibmGestureTrain", augment), ("ibmGestureTest", ())):
        folder = require_dir(base / split, "DVS128 Gesture", layout, how)
        files = sorted(folder.glob("user*/*.npy"))
        if not files:
            raise DatasetNotFoundError(
                f"DVS128 Gesture: no user*/*.npy files under {folder}; expected {layout}. {how}"
            )
        labels = []
        for f in files:
            if not f.stem.isdigit() or not 0 <= int(f.stem) < len(DVS_GESTURE_CLASSES):
                raise ValueError(
                    f"{f}: file name must be the label 0..10 (tonic's DVSGesture layout)"
                )
            labels.append(int(f.stem))
        parts.append(
            EventFrames(
                [str(f) for f in files],
                labels,
                FileReader(files, read_gesture_npy),
                spec,
                augment=aug,
                seed=seed,
                roll_max=roll_max,
                cutout_frac=cutout_frac,
            )
        )
    return _result(
        "dvs-gesture",
        base,
        T=T,
        spec=spec,
        classes=DVS_GESTURE_CLASSES,
        train=parts[0],
        test=parts[1],
    )


def load_nmnist(
    root: str | Path,
    T: int = 10,
    seed: int = 0,
    *,
    size: int | Sequence[int] | None = None,
    binning: str = "time",
    augment: Sequence[str] = (),
    roll_max: int = 3,
    cutout_frac: float = 0.25,
    binary: bool = False,
) -> RealDataset:
    """N-MNIST in its released layout (tonic's): ``<root>/Train/<digit>/*.bin``,
    ``<root>/Test/<digit>/*.bin``. ``x``: (T, 2, 34, 34) (or ``size``)."""
    root = Path(root)
    base = first_existing(root, ["NMNIST", ""])
    layout = "<root>/Train/{0..9}/*.bin and <root>/Test/{0..9}/*.bin"
    how = (
        "Obtain N-MNIST (Orchard et al. 2015; Train.zip and Test.zip of its release) and extract "
        "both into <root>."
    )
    spec = FrameSpec(NMNIST_SENSOR, 2, T, binning, size=_size(size), binary=binary)
    parts = []
    for split, aug in (("Train", augment), ("Test", ())):
        folder = require_dir(base / split, "N-MNIST", layout, how)
        missing = [d for d in range(10) if not (folder / str(d)).is_dir()]
        if missing:
            raise DatasetNotFoundError(
                f"N-MNIST: {folder} is incomplete: missing digit folder(s) {missing}; "
                f"expected {layout}. {how}"
            )
        files, labels = [], []
        for d in range(10):
            for f in _files(folder / str(d), (".bin",)):
                files.append(f)
                labels.append(d)
        parts.append(
            EventFrames(
                [str(f) for f in files],
                labels,
                FileReader(files, read_bin),
                spec,
                augment=aug,
                seed=seed,
                roll_max=roll_max,
                cutout_frac=cutout_frac,
            )
        )
    return _result(
        "n-mnist",
        base,
        T=T,
        spec=spec,
        classes=[str(d) for d in range(10)],
        train=parts[0],
        test=parts[1],
    )


def load_ncaltech101(
    root: str | Path,
    T: int = 10,
    seed: int = 0,
    *,
    size: int | Sequence[int] | None = 48,
    binning: str = "events",
    train_fraction: float = 0.9,
    augment: Sequence[str] = (),
    roll_max: int = 5,
    cutout_frac: float = 0.25,
    binary: bool = False,
    allow_partial: bool = False,
) -> RealDataset:
    """N-Caltech101 in tonic's layout ``<root>/Caltech101/<class>/*.bin`` (101 class folders,
    labels = sorted folder names); coordinates are shifted to start at 0 as tonic does, on a
    240 x 180 canvas; 90/10 per-class split by sorted file name. ``allow_partial`` accepts fewer
    class folders (labels then index the folders found). ``x``: (T, 2, size, size)."""
    root = Path(root)
    base = first_existing(root, ["NCALTECH101/Caltech101", "Caltech101", ""])
    layout = "<root>/Caltech101/<class>/*.bin (101 class folders, e.g. accordion, BACKGROUND_Google, ...)"
    how = (
        "Obtain N-Caltech101 (Orchard et al. 2015; Caltech101.zip inside its release archive) and extract it "
        "into <root>."
    )
    require_dir(base, "N-Caltech101", layout, how)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and _files(p, (".bin",)))
    if not classes or (len(classes) != NCALTECH101_NUM_CLASSES and not allow_partial):
        raise DatasetNotFoundError(
            f"N-Caltech101: {base} has {len(classes)} class folders with .bin files, expected "
            f"{NCALTECH101_NUM_CLASSES}: {layout}. {how} (allow_partial=True trains on the "
            f"folders found)"
        )
    files, labels = [], []
    for c, name in enumerate(classes):
        for f in _files(base / name, (".bin",)):
            files.append(f)
            labels.append(c)
    tr, te = per_class_split(labels, train_fraction)
    spec = FrameSpec(NCALTECH101_SENSOR, 2, T, binning, size=_size(size), binary=binary)

    def make(idx: list[int], aug: Sequence[str]) -> EventFrames:
        sel = [files[i] for i in idx]
        return EventFrames(
            [str(f) for f in sel],
            [labels[i] for i in idx],
            FileReader(sel, read_ncaltech_bin),
            spec,
            augment=aug,
            seed=seed,
            roll_max=roll_max,
            cutout_frac=cutout_frac,
        )

    return _result(
        "n-caltech101",
        base,
        T=T,
        spec=spec,
        classes=classes,
        train=make(tr, augment),
        test=make(te, ()),
    )


class _SHDReader:
    """Sample i of an SHD file, from the spike times and units read once at load time (SHD is
    small; this avoids opening the HDF5 file for every sample of every epoch)."""

    def __init__(self, times: list[np.ndarray], units: list[np.ndarray]) -> None:
        self.times, self.units = times, units

    def __call__(self, i: int) -> Events:
        t = np.asarray(self.times[i], dtype=np.float64)
        x = np.asarray(self.units[i], dtype=np.int64)
        return Events(t, x, np.zeros_like(x), np.zeros_like(x))


def _read_shd(path: Path, how: str) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
    """Labels, spike times (s) and units of every sample of one SHD file, checked: as many
    labels as samples, integer labels and units, finite times >= 0, one unit per time."""
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"SHD: {path} is not an HDF5 file or cannot be read ({e})") from e
    try:
        with f:
            for key in ("spikes/times", "spikes/units", "labels"):
                if (
                    key not in f
                ):  # the file is there but is not SHD's: a bad file, not a missing one
                    raise ValueError(f"SHD: {path} lacks dataset {key!r} (not an SHD file?). {how}")
            raw_labels = np.asarray(f["labels"][()])
            times = [np.asarray(t) for t in f["spikes/times"]]
            units = [np.asarray(u) for u in f["spikes/units"]]
    except (OSError, KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
        if isinstance(e, ValueError) and str(path) in str(e):
            raise
        raise ValueError(f"SHD: {path}: unreadable HDF5 content ({type(e).__name__}: {e})") from e
    labels = _ints(path, "labels", raw_labels.reshape(-1)).tolist()
    if raw_labels.ndim != 1 or len(labels) != len(times) or len(units) != len(times):
        raise ValueError(
            f"SHD: {path} has {len(labels)} labels but {len(times)} samples of spikes/times and "
            f"{len(units)} of spikes/units"
        )
    for i, (t, u) in enumerate(zip(times, units)):
        if t.ndim != 1 or t.dtype.kind not in "fiu":
            raise ValueError(f"SHD: {path} sample {i}: field 'spikes/times' is not 1-D numbers")
        if not np.all(np.isfinite(t)):
            raise ValueError(
                f"SHD: {path} sample {i}: field 'spikes/times' has non-finite (NaN/inf) values"
            )
        if len(t) and t.min() < 0:
            raise ValueError(
                f"SHD: {path} sample {i}: field 'spikes/times' has negative times ({t.min():g} s)"
            )
        units[i] = _ints(f"SHD: {path} sample {i}", "spikes/units", u)
        if len(u) != len(t):
            raise ValueError(f"SHD: {path} sample {i}: {len(t)} spike times but {len(u)} units")
    return labels, times, units


def load_shd(
    root: str | Path,
    T: int = 100,
    seed: int = 0,
    *,
    duration: float = SHD_DEFAULT_DURATION_S,
    channel_factor: int = 1,
    binary: bool = False,
    augment: Sequence[str] = (),
) -> RealDataset:
    """Spiking Heidelberg Digits: ``<root>/shd_train.h5`` and ``shd_test.h5`` (tonic's SHD
    folder after unzipping), 700 input channels, 20 classes. Every sample is binned over the
    same window [0, ``duration``) s into T steps; ``x``: (T, 700 / channel_factor)."""
    if augment:
        raise ValueError(
            "augment: SHD has no augmentation here (spatial ones do not apply to 700 channels)"
        )
    if channel_factor < 1 or SHD_CHANNELS % channel_factor:
        raise ValueError(f"channel_factor must divide {SHD_CHANNELS}, got {channel_factor}")
    root = Path(root)
    base = first_existing(root, ["SHD", "hsd", ""])
    how = (
        "Obtain shd_train.h5.zip and shd_test.h5.zip (Cramer et al. 2020, the Heidelberg spiking data sets) "
        "and unzip both into <root>."
    )
    spec = FrameSpec(
        (SHD_CHANNELS, 1),
        1,
        T,
        "time",
        duration=float(duration),
        binary=binary,
        channel_factor=channel_factor,
    )
    parts = []
    for split in ("train", "test"):
        path = base / f"shd_{split}.h5"
        if not path.is_file():
            raise DatasetNotFoundError(
                f"SHD: file {path} not found; expected <root>/shd_train.h5 and "
                f"<root>/shd_test.h5. {how}"
            )
        labels, times, units = _read_shd(path, how)
        t_max = max((float(np.max(t)) for t in times if len(t)), default=0.0)
        if t_max >= duration:
            raise ValueError(
                f"SHD: {path} has events up to {t_max:.4f} s, beyond duration={duration} s; "
                f"raise duration (events are never dropped)"
            )
        bad = [y for y in labels if not 0 <= y < SHD_NUM_CLASSES]
        if bad:
            raise ValueError(
                f"SHD: {path} has labels outside 0..{SHD_NUM_CLASSES - 1}: {sorted(set(bad))[:5]}"
            )
        parts.append(
            EventFrames(
                [f"{path}[{i}]" for i in range(len(labels))],
                labels,
                _SHDReader(times, units),
                spec,
                augment=(),
                seed=seed,
            )
        )
    return _result(
        "shd",
        base,
        T=T,
        spec=spec,
        classes=[str(c) for c in range(SHD_NUM_CLASSES)],
        train=parts[0],
        test=parts[1],
    )
