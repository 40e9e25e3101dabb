"""Lava's fixed-point convolution (``lava.proc.conv.utils.conv``), computed as one matrix product
per group instead of C_in x C_out scipy convolutions.

Lava's Conv (lava-nc 0.10, ``conv_scipy``), input x (W, H, C_in) and kernel w (C_out, kW, kH,
C_in / groups) in Lava's layout, computes in float64

    y[m, n, k] = sum_{c in group(k)} sum_{i, j} x_pad[s_W m + i, s_H n + j, c]
                                                * w_d[k, kW' - 1 - i, kH' - 1 - j, c]

(``signal.convolve2d`` in "valid" mode on the zero-padded input, a true convolution, so the
dilated kernel w_d is flipped; then every s-th output), and casts it to the kernel's integer
type. Here the same sum is a product of the input's sliding windows with the flipped kernel, in
float64. With integer inputs and weights every product and partial sum is an integer below 2^53
(|x| < 2^24 graded payloads, |w| < 2^15 with the exponent folded in, fan-in < 2^14), so both
sums are exact and equal: the result is Lava's bit for bit (tests/test_lava_reference.py checks
it against ``lava.proc.conv.utils.conv`` over random geometries). About 50x faster on the
benchmark network's pooled convolution, where Lava's own loop dominated every step.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# the fixed_pt Conv's arithmetic (ResetConv(conv=...), LavaTarget(conv=...))
CONV_EXACT = "exact"  # conv_exact below: one matrix product per group, Lava's integers
CONV_LAVA = "lava"  # lava.proc.conv.utils.conv itself, as Lava's own PyConvModelFixed calls it
CONV_IMPLS = (CONV_EXACT, CONV_LAVA)


def check_conv(conv: str, *, owner: str) -> str:
    """``conv`` if it names a fixed_pt convolution (:data:`CONV_IMPLS`), else a ValueError
    naming ``owner`` (the class that was given it)."""
    if conv not in CONV_IMPLS:
        raise ValueError(
            f"{owner}: conv = {conv!r}; expected one of {', '.join(map(repr, CONV_IMPLS))}"
        )
    return conv


def conv_exact(
    x: np.ndarray,
    weight: np.ndarray,
    *,
    kernel_size: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
    dilation: Sequence[int],
    groups: int,
) -> np.ndarray:
    """``lava.proc.conv.utils.conv(x, weight, kernel_size, stride, padding, dilation, groups)``
    for integer data (module docstring): (W, H, C_in) -> (W', H', C_out) in weight's dtype."""
    kw, kh = (int(k) for k in kernel_size)
    dw, dh = (int(d) for d in dilation)
    sw, sh = (int(s) for s in stride)
    pw, ph = (int(p) for p in padding)
    c_out, _, _, c_grp = weight.shape
    groups = int(groups)
    dilated = np.zeros((c_out, dw * (kw - 1) + 1, dh * (kh - 1) + 1, c_grp))
    dilated[:, ::dw, ::dh, :] = weight
    flipped = dilated[:, ::-1, ::-1, :]
    padded = np.pad(np.asarray(x, dtype=np.float64), ((pw, pw), (ph, ph), (0, 0)))
    # (W', H', kW', kH', C): every s-th window of the padded input, all channels
    window = (int(flipped.shape[1]), int(flipped.shape[2]), int(padded.shape[2]))
    windows = sliding_window_view(padded, window)[::sw, ::sh, 0]
    wo, ho = windows.shape[:2]
    k_grp = c_out // groups
    out = np.empty((wo, ho, c_out))
    for g in range(groups):
        cols = windows[..., g * c_grp : (g + 1) * c_grp].reshape(wo * ho, -1)  # (W'H', kW' kH' c)
        kern = flipped[g * k_grp : (g + 1) * k_grp].reshape(k_grp, -1)  # (k, kW' kH' c)
        out[:, :, g * k_grp : (g + 1) * k_grp] = (cols @ kern.T).reshape(wo, ho, k_grp)
    return out.astype(weight.dtype)
