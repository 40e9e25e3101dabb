"""A cochlear front end (numpy / scipy): waveform -> spike counts per channel and time step,
in the manner of the Spiking Heidelberg Digits (SHD), whose audio went through a model of the
cochlea and hair cells with 700 outputs.

Stages (``x``: waveform sampled at ``fs`` Hz, full scale 1.0):

1. **Filter bank** of ``channels`` 4th-order gammatone filters (``scipy.signal.gammatone``,
   IIR form, Slaney's design: bandwidth ``1.019 * ERB(fc)``) with centre frequencies ``fc``
   equally spaced on the ERB-rate scale of Glasberg & Moore (1990) from ``low_hz`` to
   ``high_hz`` (both included):
   ``E(f) = 21.4 * log10(1 + 0.00437 f)`` [ERB number, f in Hz],
   ``fc_k = (10 ** (E_k / 21.4) - 1) / 0.00437``, ``E_k = E(low) + k (E(high) - E(low)) /
   (channels - 1)``. ``y_k = gammatone_k * x``.
2. **Half-wave rectification** (the inner hair cell's one-sided transduction):
   ``r_k = max(y_k, 0)``.
3. **Compression** by a power law with exponent ``compression`` (default 1/3, Stevens' law of
   loudness, as in Lyon-style cochlear models): ``c_k = r_k ** compression``.
4. **Envelope**: a causal 2nd-order Butterworth low-pass at ``envelope_hz`` Hz,
   ``e_k = LP(c_k)``, sampled every ``step_ms`` ms (every ``fs * step_ms / 1000``-th sample;
   the low-pass keeps the aliasing of that decimation small).
5. **Delta modulation** (send-on-delta, the DVS pixel's rule applied to each channel's
   envelope): a reference ``ref_k`` starts at 0 (silence); at each step ``n``,
   ``d = e_k[n] - ref_k``; if ``d >= theta`` the channel emits ``floor(d / theta)`` ON spikes
   and ``ref_k += floor(d / theta) * theta``; if ``d <= -theta`` it emits ``floor(-d / theta)``
   OFF spikes and ``ref_k -= floor(-d / theta) * theta``. ``theta = delta_threshold`` in units
   of the compressed envelope (full-scale waveform ^ ``compression``).

Why delta modulation (not threshold crossing of an integrate-and-fire unit): it sends spikes
where the spectrum *changes* (onsets, formant transitions, offsets), which is what separates
words, keeps steady background noise nearly silent, and is the same encoding as the event
camera of ``event-digits``; ON/OFF polarities double the inputs (64 channels -> 128 inputs).
Why 64 channels by default: SHD's 700 hair-cell outputs are usually pooled 5-10x for small
networks; 64 ERB-spaced gammatones cover 100 Hz - 7 kHz at ~0.5 ERB spacing, enough to resolve
the formants, and 128 ON/OFF inputs keep ``srnn``'s first layer small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, gammatone, lfilter, sosfilt

#: Glasberg & Moore (1990) ERB-rate scale: E(f) = ERB_SCALE * log10(1 + ERB_SLOPE * f)
ERB_SCALE = 21.4
ERB_SLOPE = 0.00437  # 1/Hz
ENVELOPE_ORDER = 2
ON, OFF = 0, 1
CUBE_ROOT = 1.0 / 3.0


@dataclass(frozen=True)
class CochleaParams:
    """Front-end parameters (units in the names; equations in the module docstring)."""

    fs: int = 16_000  # Hz, waveform sample rate
    channels: int = 64  # gammatone filters
    low_hz: float = 100.0  # lowest centre frequency, Hz
    high_hz: float = 7_000.0  # highest centre frequency, Hz (below fs / 2)
    compression: float = CUBE_ROOT  # power-law exponent
    envelope_hz: float = 50.0  # envelope low-pass cut-off, Hz
    step_ms: float = 1.0  # spike time step, ms
    delta_threshold: float = 0.02  # delta-modulation step, compressed-envelope units

    def __post_init__(self) -> None:
        if not 0 < self.low_hz < self.high_hz < self.fs / 2:
            raise ValueError(f"need 0 < low_hz < high_hz < fs/2, got {self}")
        if self.channels < 2 or self.compression <= 0 or self.delta_threshold <= 0:
            raise ValueError(f"need channels >= 2, compression > 0, delta_threshold > 0: {self}")
        hop = self.fs * self.step_ms / 1000.0
        if hop < 1 or abs(hop - round(hop)) > 1e-9:
            raise ValueError(f"step_ms * fs / 1000 must be a whole number of samples, got {hop}")
        if not 0 < self.envelope_hz < self.fs / 2:
            raise ValueError(f"envelope_hz must be in (0, fs/2), got {self.envelope_hz}")

    @property
    def hop(self) -> int:
        """Waveform samples per spike time step."""
        return round(self.fs * self.step_ms / 1000.0)


def erb_rate(f_hz: np.ndarray | float) -> np.ndarray:
    """ERB number ``E(f) = 21.4 log10(1 + 0.00437 f)`` (Glasberg & Moore 1990)."""
    return ERB_SCALE * np.log10(1.0 + ERB_SLOPE * np.asarray(f_hz, dtype=np.float64))


def inverse_erb_rate(e: np.ndarray | float) -> np.ndarray:
    """Frequency (Hz) of ERB number ``e``: ``(10 ** (e / 21.4) - 1) / 0.00437``."""
    return (10.0 ** (np.asarray(e, dtype=np.float64) / ERB_SCALE) - 1.0) / ERB_SLOPE


def centre_frequencies(p: CochleaParams) -> np.ndarray:
    """``(channels,)`` centre frequencies (Hz), equally spaced in ERB number, ascending."""
    e = np.linspace(erb_rate(p.low_hz), erb_rate(p.high_hz), p.channels)
    return inverse_erb_rate(e)


def filter_bank(x: np.ndarray, p: CochleaParams) -> np.ndarray:
    """``(channels, len(x))`` gammatone outputs ``y_k`` (stage 1)."""
    out = np.empty((p.channels, len(x)), dtype=np.float64)
    for k, fc in enumerate(centre_frequencies(p)):
        b, a = gammatone(float(fc), "iir", fs=p.fs)
        out[k] = lfilter(b, a, x)
    return out


def rectify_compress(y: np.ndarray, compression: float) -> np.ndarray:
    """Stages 2-3: ``max(y, 0) ** compression`` (``np.cbrt`` for 1/3, five times faster)."""
    r = np.maximum(y, 0.0)
    return np.cbrt(r) if compression == CUBE_ROOT else r**compression


def envelope(c: np.ndarray, p: CochleaParams) -> np.ndarray:
    """Stage 4: causal Butterworth low-pass along the last axis, then every ``hop``-th sample
    (starting with sample ``hop - 1``, the end of the first step)."""
    sos = butter(ENVELOPE_ORDER, p.envelope_hz, btype="low", fs=p.fs, output="sos")
    e = sosfilt(sos, c, axis=-1)
    return np.ascontiguousarray(e[..., p.hop - 1 :: p.hop])


def delta_modulate(e: np.ndarray, theta: float) -> np.ndarray:
    """Stage 5: ``(2, channels, steps)`` int32 spike counts (ON, OFF) of the envelopes
    ``e`` ``(channels, steps)`` (or ``(steps,)``, giving ``(2, 1, steps)``)."""
    e = np.atleast_2d(np.asarray(e, dtype=np.float64))
    ref = np.zeros(e.shape[0])
    counts = np.zeros((2, *e.shape), dtype=np.int32)
    for n in range(e.shape[1]):
        d = e[:, n] - ref
        up = np.floor(np.maximum(d, 0.0) / theta)
        down = np.floor(np.maximum(-d, 0.0) / theta)
        counts[ON, :, n] = up
        counts[OFF, :, n] = down
        ref += (up - down) * theta
    return counts


def cochleagram(x: np.ndarray, p: CochleaParams) -> np.ndarray:
    """Stages 1-4: ``(channels, floor(len(x) / hop))`` envelopes of waveform ``x``."""
    return envelope(rectify_compress(filter_bank(x, p), p.compression), p)


def spikes(x: np.ndarray, p: CochleaParams) -> np.ndarray:
    """The whole front end: ``(2, channels, steps)`` ON/OFF spike counts of waveform ``x``."""
    return delta_modulate(cochleagram(x, p), p.delta_threshold)


def steps(n_samples: int, p: CochleaParams) -> int:
    """Number of spike time steps of a waveform of ``n_samples`` samples."""
    return math.floor(n_samples / p.hop)
