"""Speech synthesis with ``espeak-ng`` (a subprocess, never a shell) for ``spoken-digits``.

:func:`synthesize` speaks one word with one voice and returns float64 samples in [-1, 1] at
:data:`TARGET_RATE_HZ`:

1. ``espeak-ng -v <accent>[+<variant>] -s <rate> -p <pitch> -a <amplitude> --stdout <word>``
   writes a 16-bit mono PCM WAV at espeak-ng's native rate (22050 Hz). Its streaming header
   carries a placeholder data size (0x7ffff000), so :func:`parse_wav` reads the ``fmt `` chunk and
   takes every byte after the ``data`` chunk header as samples, whatever the size field says.
2. ``x = pcm / 32768`` (full scale 1.0), resampled to ``TARGET_RATE_HZ`` by polyphase filtering
   (``scipy.signal.resample_poly`` with ``up / down = TARGET_RATE_HZ / native rate`` reduced).

Parameters (espeak-ng's own units): ``rate`` in words per minute (espeak-ng accepts 80..450,
default 175), ``pitch`` 0..99 (default 50; the voice's base pitch is scaled by it), ``amplitude``
0..200 (default 100; linear gain of the synthesiser). A *speaker* here is one
``(accent, variant)`` pair: an English accent voice (``espeak-ng --voices=en``; the MBROLA
``mb-*`` voices need the separate ``mbrola`` package and are not used) and a voice variant
(``espeak-ng --voices=variant``: formant sets such as ``m3``, ``f2``, ``klatt``).

espeak-ng is deterministic: the same arguments give byte-identical audio (checked for 1.51 in
tests/test_spoken_digits.py); the task also caches its features on disk
(:mod:`neurodeploy.data.cache`), keyed on :func:`espeak_version` among the other parameters.
"""

from __future__ import annotations

import functools
import math
import shutil
import struct
import subprocess
from dataclasses import dataclass

import numpy as np
from scipy.signal import resample_poly

ESPEAK = "espeak-ng"
APT_PACKAGE = "espeak-ng"
#: sample rate (Hz) every synthesised waveform is resampled to
TARGET_RATE_HZ = 16_000
#: full scale of 16-bit PCM
PCM_FULL_SCALE = 32768.0
#: seconds one espeak-ng call may take before it is treated as hung
TIMEOUT_S = 30.0


class EspeakNotFoundError(FileNotFoundError):
    """``espeak-ng`` is not installed (the message says how to install it)."""


@dataclass(frozen=True)
class Voice:
    """How one word is spoken: the espeak-ng voice and its prosody.

    ``accent``: an espeak-ng language voice (``en-us``); ``variant``: a variant name from
    ``espeak-ng --voices=variant`` (``m3``), ``""`` for the voice's own; ``rate``: words per
    minute; ``pitch``: 0..99; ``amplitude``: 0..200 (espeak-ng's units, module docstring).
    """

    accent: str
    variant: str = ""
    rate: int = 175
    pitch: int = 50
    amplitude: int = 100

    @property
    def name(self) -> str:
        """The ``-v`` argument: ``accent`` or ``accent+variant``."""
        return f"{self.accent}+{self.variant}" if self.variant else self.accent


def espeak_path() -> str:
    """The ``espeak-ng`` executable; :class:`EspeakNotFoundError` when it is not on PATH."""
    path = shutil.which(ESPEAK)
    if path is None:
        raise EspeakNotFoundError(
            f"{ESPEAK} not found on PATH; the spoken-digits task synthesises its audio with it: "
            f"apt-get install {APT_PACKAGE} (scripts/setup_env.sh does so when run as root)"
        )
    return path


@functools.lru_cache(maxsize=1)
def espeak_version() -> str:
    """The first line of ``espeak-ng --version`` (part of the cache key of the features)."""
    out = subprocess.run(
        [espeak_path(), "--version"], capture_output=True, text=True, check=True, timeout=TIMEOUT_S
    )
    return out.stdout.strip().splitlines()[0]


def parse_wav(blob: bytes) -> tuple[np.ndarray, int]:
    """``(int16 samples, rate_hz)`` of a mono 16-bit PCM RIFF/WAVE byte string; the ``data``
    chunk runs to the end of ``blob`` (espeak-ng's ``--stdout`` header has no true size)."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE stream")
    pos, rate = 12, None
    while pos + 8 <= len(blob):
        tag, size = blob[pos : pos + 4], struct.unpack("<I", blob[pos + 4 : pos + 8])[0]
        body = pos + 8
        if tag == b"fmt ":
            fmt, channels, rate, _, _, bits = struct.unpack("<HHIIHH", blob[body : body + 16])
            if fmt != 1 or channels != 1 or bits != 16:
                raise ValueError(
                    f"expected mono 16-bit PCM, got format {fmt}, {channels} ch, {bits} bit"
                )
        elif tag == b"data":
            if rate is None:
                raise ValueError("WAV data chunk before its fmt chunk")
            data = blob[body:]
            return np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.int16), rate
        pos = body + size + (size & 1)
    raise ValueError("WAV stream without a data chunk")


def synthesize(word: str, voice: Voice, rate_hz: int = TARGET_RATE_HZ) -> np.ndarray:
    """``word`` spoken by ``voice``: float64 samples (full scale 1.0) at ``rate_hz``."""
    cmd = [
        espeak_path(),
        "-v",
        voice.name,
        "-s",
        str(int(voice.rate)),
        "-p",
        str(int(voice.pitch)),
        "-a",
        str(int(voice.amplitude)),
        "--stdout",
        word,
    ]
    out = subprocess.run(cmd, capture_output=True, check=False, timeout=TIMEOUT_S)
    if out.returncode != 0 or not out.stdout:
        raise RuntimeError(
            f"{' '.join(cmd)} failed (exit {out.returncode}): "
            f"{out.stderr.decode(errors='replace').strip()}"
        )
    pcm, native = parse_wav(out.stdout)
    x = pcm.astype(np.float64) / PCM_FULL_SCALE
    if native != rate_hz:
        g = math.gcd(int(rate_hz), int(native))
        x = resample_poly(x, int(rate_hz) // g, int(native) // g)
    return np.asarray(x, dtype=np.float64)
