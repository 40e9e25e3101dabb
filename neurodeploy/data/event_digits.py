"""``event-digits``: a DVS-like event-camera version of the 8x8 digits, in the manner of N-MNIST.

Stands in for N-MNIST / CIFAR10-DVS (event-camera recordings of static images moved in front
of a dynamic vision sensor).

Generation recipe
-----------------
1. Take the scikit-learn digits (see :mod:`neurodeploy.data.digits`), upsample each 8x8 image
   bilinearly to ``DIGIT_SIZE`` x ``DIGIT_SIZE`` and centre it on a black ``CANVAS`` x ``CANVAS``
   canvas.
2. Move the digit along a saccade path, as N-MNIST moves its sensor: three linear saccades
   forming a closed triangle (``SACCADE_VERTICES_PX``, each vertex jittered per sample by up to
   ``VERTEX_JITTER_PX``), sampled at ``MICRO_STEPS`` + 1 sub-pixel positions (bilinear shift).
3. DVS pixel model per micro-step: each pixel keeps a reference log-intensity
   ``log(I + LOG_EPS)``; when the current log-intensity has moved by at least the pixel's
   contrast threshold (``CONTRAST_THRESHOLD`` with a per-pixel relative mismatch of
   ``THRESHOLD_MISMATCH``) above (ON) or below (OFF) the reference, the pixel emits an event of
   that polarity and its reference is reset to the current log-intensity. Independent noise
   events are added at ``NOISE_RATE`` per pixel, polarity and micro-step (a Poisson number of
   events at uniformly random slots; they do not touch the reference).
4. Bin micro-step ``m`` (0..M-1) into frame ``floor(m * T / M)``: ``x`` has shape
   ``(N, T, 2, CANVAS, CANVAS)`` with channel 0 = ON and channel 1 = OFF. For ``T > M`` some
   frames are necessarily empty. The event stream does not depend on ``T`` (only the binning
   does), so when ``M`` is divisible by ``2T`` the frames for ``T`` are the OR of adjacent frame
   pairs for ``2T``.

Frames are BINARY: 1.0 where the pixel emitted at least one event of that polarity in that bin,
else 0.0, so they map directly onto binary input spikes on neuromorphic hardware (event counts
are not kept). The train/test split is the fixed split of ``digits``; the data ``seed`` drives
the saccade jitter, the threshold mismatch and the noise events.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from neurodeploy.data import digits
from neurodeploy.data.dvs import single_threaded

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

NAME = "event-digits"
DIGIT_SIZE = 16
CANVAS = 20
MICRO_STEPS = 60
SACCADE_VERTICES_PX = ((1.5, -1.5), (-1.5, 0.0), (1.5, 1.5))  # (dy, dx) from the canvas centre
VERTEX_JITTER_PX = 0.5
LOG_EPS = 0.25
CONTRAST_THRESHOLD = 0.4
THRESHOLD_MISMATCH = 0.1
MIN_THRESHOLD_FRACTION = 0.25
NOISE_RATE = 5e-4
NUM_POLARITIES = 2
NUM_CLASSES = digits.NUM_CLASSES
INPUT_SHAPE: tuple[int, ...] = (NUM_POLARITIES, CANVAS, CANVAS)
TEMPORAL = True
DESCRIPTION = (
    "8x8 digits upsampled to 16x16, moved along a 3-saccade triangle on a 20x20 canvas, "
    "DVS ON/OFF events binned into T binary frames"
)
STANDS_IN_FOR = "N-MNIST / CIFAR10-DVS"


def place_on_canvas(images: torch.Tensor) -> torch.Tensor:
    """``(N, 8, 8)`` images in [0, 1] -> ``(N, 1, CANVAS, CANVAS)``, upsampled and centred."""
    up = F.interpolate(
        images.unsqueeze(1), size=(DIGIT_SIZE, DIGIT_SIZE), mode="bilinear", align_corners=False
    ).clamp(0.0, 1.0)
    pad = (CANVAS - DIGIT_SIZE) // 2
    return F.pad(up, (pad, CANVAS - DIGIT_SIZE - pad, pad, CANVAS - DIGIT_SIZE - pad))


def saccade_path(n: int, generator: torch.Generator, motion_scale: float = 1.0) -> torch.Tensor:
    """``(n, MICRO_STEPS + 1, 2)`` (dy, dx) pixel offsets along the jittered closed triangle."""
    vertices = torch.tensor(SACCADE_VERTICES_PX, dtype=torch.float32).expand(n, -1, -1)
    jitter = torch.rand(n, len(SACCADE_VERTICES_PX), 2, generator=generator) * 2 - 1
    vertices = (vertices + VERTEX_JITTER_PX * jitter) * motion_scale
    closed = torch.cat([vertices, vertices[:, :1]], dim=1)  # back to the start vertex
    n_saccades = len(SACCADE_VERTICES_PX)
    pos = torch.arange(MICRO_STEPS + 1, dtype=torch.float32) * n_saccades / MICRO_STEPS
    seg = pos.floor().long().clamp(max=n_saccades - 1)
    frac = (pos - seg).view(1, -1, 1)
    return closed[:, seg] + frac * (closed[:, seg + 1] - closed[:, seg])


def translate(canvas: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Translate ``(N, 1, H, W)`` images by sub-pixel ``(N, 2)`` (dy, dx) offsets (bilinear)."""
    n, _, h, w = canvas.shape
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = -2.0 * offset[:, 1] / w
    theta[:, 1, 2] = -2.0 * offset[:, 0] / h
    grid = F.affine_grid(theta, list(canvas.shape), align_corners=False)
    return F.grid_sample(canvas, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def simulate_events(
    canvas: torch.Tensor,
    T: int,
    seed: int,
    *,
    noise_rate: float = NOISE_RATE,
    motion_scale: float = 1.0,
) -> torch.Tensor:
    """Run the DVS model on ``(N, 1, H, W)`` canvases moved along the saccade path.

    Returns binary float32 frames ``(N, T, 2, H, W)`` (channel 0 = ON, 1 = OFF). The random
    draws do not depend on ``T``, so different ``T`` bin the same event stream; the path is the
    first draw, i.e. ``saccade_path(N, torch.Generator().manual_seed(seed), motion_scale)``.
    ``motion_scale=0`` keeps the image still; ``noise_rate=0`` switches noise events off.
    """
    n, _, h, w = canvas.shape
    gen = torch.Generator().manual_seed(seed)
    path = saccade_path(n, gen, motion_scale)
    mismatch = 1.0 + THRESHOLD_MISMATCH * torch.randn(n, 1, h, w, generator=gen)
    threshold = CONTRAST_THRESHOLD * mismatch.clamp(min=MIN_THRESHOLD_FRACTION)
    frames = torch.zeros(n, T, NUM_POLARITIES, h, w, dtype=torch.bool)
    with single_threaded():  # the per-micro-step tensors are small: 1 thread is faster
        reference = torch.log(translate(canvas, path[:, 0]) + LOG_EPS)
        for m in range(MICRO_STEPS):
            current = torch.log(translate(canvas, path[:, m + 1]) + LOG_EPS)
            change = current - reference
            on, off = change >= threshold, change <= -threshold
            reference = torch.where(on | off, current, reference)
            b = m * T // MICRO_STEPS
            frames[:, b, 0] |= on[:, 0]
            frames[:, b, 1] |= off[:, 0]
    # noise: a Poisson number of events at uniformly random (sample, micro-step, polarity, pixel)
    slots = (n, MICRO_STEPS, NUM_POLARITIES, h, w)
    n_slots = math.prod(slots)
    rate = torch.tensor([noise_rate * n_slots], dtype=torch.float64)
    count = int(torch.poisson(rate, generator=gen))
    flat = torch.randint(0, n_slots, (count,), generator=gen)
    i, micro, p, y, x = torch.unravel_index(flat, slots)
    frames[i, micro * T // MICRO_STEPS, p, y, x] = True
    return frames.to(torch.float32)


def generate(T: int, seed: int) -> Split:
    """``(x_train, y_train, x_test, y_test)``; x is binary float32 ``(N, T, 2, 20, 20)``."""
    images, labels = digits.load_images()
    frames = simulate_events(place_on_canvas(torch.from_numpy(images)), T, seed)
    train_idx, test_idx = digits.split_indices(labels)
    y = torch.from_numpy(labels)
    tr, te = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return frames[tr], y[tr], frames[te], y[te]


def event_density(x: torch.Tensor) -> float:
    """Mean fraction of (frame, polarity, pixel) slots holding an event."""
    return float(x.double().mean())
