"""A simulated DVS (dynamic vision sensor) pixel array looking at a static image moved along a
saccade path, the way N-MNIST and CIFAR10-DVS were recorded.

N-MNIST (Orchard et al. 2015) moved an ATIS sensor in three saccades forming a triangle in front
of the MNIST digits shown on a monitor; CIFAR10-DVS (Li et al. 2017) moved the image itself on
the monitor in front of a DVS. Both amount to the image translated across the pixel array along
a closed path. The pixel model follows v2e (Hu, Liu and Delbruck 2021), without its photoreceptor
low-pass filter and leak events.

Motion (:func:`saccade_path`)
-----------------------------
Three linear saccades along a closed triangle with vertices ``v_k`` (``(dy, dx)`` pixels from
the canvas centre; every vertex jittered per sample by ``U(-j, j)`` in each coordinate),
sampled at ``M + 1`` positions ``p_0 .. p_M`` (``M`` = ``micro_steps``, each saccade ``M / 3``
micro-steps, constant speed within a saccade). Position ``p_m`` shows the image translated by
``p_m`` with a sub-pixel bilinear shift (:func:`translate`; the scene outside the canvas is the
canvas border extended, so a canvas with a black frame sees black enter).

Pixel model (:func:`simulate`), per pixel ``(y, x)`` and micro-step ``m = 1 .. M``
-------------------------------------------------------------------------------------
::

    L_m   = log(I_m + eps)                               log intensity, I in [0, 1]
    R_0   = L_0                                          reference (memorised) level
    D     = L_m - R_{m-1}
    n_on  = floor(D / C_on)    if  D >=  C_on  and the pixel is not refractory, else 0
    n_off = floor(-D / C_off)  if  D <= -C_off and the pixel is not refractory, else 0
    R_m   = R_{m-1} + n_on * C_on - n_off * C_off       (the residual below one threshold stays)
    refractory at m'  iff  0 < m' - m_last <= r          (m_last: last micro-step with an event)

``C_on = c_on * (1 + s * z_on)``, ``C_off = c_off * (1 + s * z_off)`` with per-pixel standard
normal ``z`` (threshold mismatch ``s``, relative), clamped below at ``min_threshold``. A change
that spans ``k`` thresholds gives ``k`` events in that micro-step, as v2e does: a real pixel
crosses the thresholds one after the other within the micro-step's interval, and the count keeps
the contrast that a one-event rule would throw away (with one event per step the reference
would lag behind fast edges and the next steps would emit stale events). A refractory pixel
emits nothing and keeps its reference, so after the refractory period it catches up with the
change accumulated meanwhile (v2e's behaviour too).

Shot noise: every (pixel, polarity, micro-step) slot receives a Poisson(``noise_rate``) number
of extra events, independent of the signal; they do not move the reference or start a
refractory period. Drawn as a Poisson total over all slots of a sample placed uniformly at
random, which is the same distribution (:func:`noise_events`).

Binning (:func:`bin_counts`)
----------------------------
Micro-step ``m = 1 .. M`` is time ``t = m - 1`` of a recording of ``M`` steps and goes to frame
``f = floor((m - 1) * T / M)``: the real-data loaders' ``binning="time"`` (neurodeploy.data.events,
N-MNIST's default) with ``t_0 = 0`` and ``t_last = M - 1``. ``frame[f, p, y, x]`` counts the
events of polarity ``p`` (0 = ON, 1 = OFF) at the pixel in bin ``f`` (counts, the loaders'
default ``binary=False``). The event stream does not depend on ``T``; for ``M`` divisible by
``T`` every frame spans ``M / T`` micro-steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

NUM_POLARITIES = 2
ON, OFF = 0, 1
#: an equilateral triangle of circumradius 2 px around the centre, (dy, dx) in pixels
TRIANGLE_VERTICES_PX: tuple[tuple[float, float], ...] = (
    (-2.0, 0.0),
    (1.0, 3.0**0.5),
    (1.0, -(3.0**0.5)),
)
#: "never fired": m - NEVER exceeds any refractory period
NEVER = -(2**30)


@dataclass(frozen=True)
class DVSParams:
    """Parameters of the simulated sensor and of the motion (module docstring for the model).

    Units: positions in pixels, thresholds in natural-log intensity units, time in micro-steps.
    Defaults: v2e's thresholds (0.2) and mismatch (0.03 absolute = 15 % relative); N-MNIST's
    three saccades of 100 ms each sampled at ``micro_steps`` = 120, i.e. 2.5 ms per micro-step,
    so ``refractory_steps`` = 1 is 2.5 ms and ``noise_rate`` = 1e-3 per micro-step is 0.4 Hz
    per pixel and polarity (v2e's shot noise is of the order of 1 Hz per pixel).
    """

    #: micro-steps M along the whole path (divisible by 3 saccades; 120 divides T = 1..6, 8, 10)
    micro_steps: int = 120
    #: saccade triangle vertices (dy, dx), pixels from the centre
    vertices_px: tuple[tuple[float, float], ...] = TRIANGLE_VERTICES_PX
    #: per-sample uniform jitter of every vertex coordinate, +- pixels
    vertex_jitter_px: float = 0.5
    #: eps in log(I + eps), I in [0, 1] (dark-current floor: a black pixel reads log(eps))
    log_eps: float = 0.1
    #: nominal ON / OFF contrast thresholds, log units
    c_on: float = 0.2
    c_off: float = 0.2
    #: per-pixel Gaussian threshold mismatch, relative standard deviation
    threshold_mismatch: float = 0.15
    #: lower clamp of a pixel's threshold, log units
    min_threshold: float = 0.05
    #: micro-steps after an event during which the pixel emits nothing (0: none)
    refractory_steps: int = 1
    #: expected shot-noise events per pixel, polarity and micro-step
    noise_rate: float = 1e-3

    def __post_init__(self) -> None:
        n_saccades = len(self.vertices_px)
        if self.micro_steps < 1 or self.micro_steps % max(n_saccades, 1):
            raise ValueError(
                f"micro_steps must be a positive multiple of the {n_saccades} saccades, "
                f"got {self.micro_steps}"
            )
        if min(self.c_on, self.c_off, self.min_threshold, self.log_eps) <= 0:
            raise ValueError("c_on, c_off, min_threshold and log_eps must be > 0")
        if self.refractory_steps < 0 or self.noise_rate < 0 or self.threshold_mismatch < 0:
            raise ValueError("refractory_steps, noise_rate and threshold_mismatch must be >= 0")


@dataclass(frozen=True)
class SampleDraws:
    """The random draws of one sample (independent of ``T``): vertex jitter ``(V, 2)``,
    threshold mismatch ``z`` ``(2, H, W)`` (ON, OFF) and the shot-noise events as flat indices
    into the ``(M, 2, H, W)`` slots."""

    jitter: np.ndarray
    z: np.ndarray
    noise: np.ndarray


def draw_sample(params: DVSParams, shape: tuple[int, int], rng: np.random.Generator) -> SampleDraws:
    """Draw one sample's randomness from ``rng`` in a fixed order (jitter, mismatch, noise)."""
    h, w = shape
    jitter = rng.uniform(-1.0, 1.0, size=(len(params.vertices_px), 2)) * params.vertex_jitter_px
    z = rng.standard_normal((NUM_POLARITIES, h, w))
    n_slots = params.micro_steps * NUM_POLARITIES * h * w
    count = int(rng.poisson(params.noise_rate * n_slots))
    noise = rng.integers(0, n_slots, size=count)
    return SampleDraws(jitter, z, noise)


def saccade_path(params: DVSParams, jitter: np.ndarray) -> torch.Tensor:
    """``(N, M + 1, 2)`` float32 (dy, dx) offsets along the closed triangle for ``(N, V, 2)``
    vertex jitters (zeros: the nominal triangle)."""
    vertices = torch.tensor(params.vertices_px, dtype=torch.float64)
    vertices = vertices + torch.as_tensor(jitter, dtype=torch.float64)
    closed = torch.cat([vertices, vertices[:, :1]], dim=1)
    n_saccades = len(params.vertices_px)
    m = torch.arange(params.micro_steps + 1, dtype=torch.float64)
    pos = m * n_saccades / params.micro_steps
    seg = pos.floor().long().clamp(max=n_saccades - 1)
    frac = (pos - seg).view(1, -1, 1)
    return (closed[:, seg] + frac * (closed[:, seg + 1] - closed[:, seg])).to(torch.float32)


def thresholds(params: DVSParams, z: torch.Tensor) -> torch.Tensor:
    """Per-pixel ``(N, 2, H, W)`` ON / OFF thresholds from standard normal ``z`` of that shape."""
    nominal = torch.tensor([params.c_on, params.c_off], dtype=torch.float32).view(1, 2, 1, 1)
    c = nominal * (1.0 + params.threshold_mismatch * z.to(torch.float32))
    return c.clamp(min=params.min_threshold)


def translate(images: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """``(N, H, W)`` images shifted by sub-pixel ``(N, 2)`` (dy, dx) offsets, bilinearly.

    ``out[y, x] = bilinear(images, y - dy, x - dx)``; the source is clamped at its border
    (the scene outside the canvas is the border extended).
    """
    n, h, w = images.shape
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * offset[:, 1] / w
    theta[:, 1, 2] = -2.0 * offset[:, 0] / h
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    out = F.grid_sample(
        images.unsqueeze(1), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out[:, 0]


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """One intra-op thread for the small per-micro-step tensors (restored afterwards): thread
    synchronisation costs more than it gains there (on a busy 2-core machine the 2-thread loop
    of event-digits ran ~10x slower; results are identical). Used by event-digits too."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def frame_of_step(params: DVSParams, T: int) -> torch.Tensor:
    """``(M,)`` int64: the frame ``floor((m - 1) * T / M)`` of micro-step ``m = 1 .. M``."""
    return torch.arange(params.micro_steps, dtype=torch.int64) * T // params.micro_steps


def simulate(
    images: torch.Tensor, path: torch.Tensor, threshold: torch.Tensor, params: DVSParams, *, T: int
) -> torch.Tensor:
    """Signal events (no noise) of ``(N, H, W)`` images in [0, 1] moved along ``(N, M + 1, 2)``
    ``path`` with ``(N, 2, H, W)`` thresholds, binned into ``T`` frames: int32 counts
    ``(N, T, 2, H, W)`` (module docstring). ``T = M`` gives one frame per micro-step."""
    n, h, w = images.shape
    frame = frame_of_step(params, T)
    counts = torch.zeros(n, T, NUM_POLARITIES, h, w, dtype=torch.int32)
    c_on, c_off = threshold[:, ON], threshold[:, OFF]
    images = images.to(torch.float32)
    with single_threaded():
        reference = torch.log(translate(images, path[:, 0]) + params.log_eps)
        last = torch.full((n, h, w), NEVER, dtype=torch.int64)
        for m in range(1, params.micro_steps + 1):
            current = torch.log(translate(images, path[:, m]) + params.log_eps)
            change = current - reference
            ready = (m - last) > params.refractory_steps
            n_on = torch.where(ready, torch.floor(change / c_on), 0.0).clamp(min=0.0)
            n_off = torch.where(ready, torch.floor(-change / c_off), 0.0).clamp(min=0.0)
            reference = reference + n_on * c_on - n_off * c_off
            last = torch.where((n_on + n_off) > 0, m, last)
            f = int(frame[m - 1])
            counts[:, f, ON] += n_on.to(torch.int32)
            counts[:, f, OFF] += n_off.to(torch.int32)
    return counts


def add_noise(counts: torch.Tensor, noise: list[np.ndarray], params: DVSParams) -> None:
    """Add each sample's shot-noise events (flat ``(M, 2, H, W)`` slot indices) to ``counts``
    ``(N, T, 2, H, W)`` in place, binned like the signal."""
    _, T, p, h, w = counts.shape
    frame = frame_of_step(params, T).numpy()
    for i, flat in enumerate(noise):
        if len(flat) == 0:
            continue
        micro, pol, y, x = np.unravel_index(flat, (params.micro_steps, p, h, w))
        idx = ((frame[micro] * p + pol) * h + y) * w + x
        counts[i].view(-1).add_(torch.from_numpy(np.bincount(idx, minlength=T * p * h * w)).int())


def events_for(
    images: torch.Tensor, draws: list[SampleDraws], params: DVSParams, *, T: int
) -> torch.Tensor:
    """int32 counts ``(N, T, 2, H, W)``: signal plus noise of ``(N, H, W)`` images with their
    per-sample ``draws`` (see :func:`draw_sample`)."""
    n, h, w = images.shape
    jitter = np.stack([d.jitter for d in draws]) if n else np.zeros((0, 3, 2))
    z = torch.from_numpy(np.stack([d.z for d in draws])) if n else torch.zeros(0, 2, h, w)
    counts = simulate(images, saccade_path(params, jitter), thresholds(params, z), params, T=T)
    add_noise(counts, [d.noise for d in draws], params)
    return counts
