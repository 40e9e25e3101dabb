"""``spoken-digits``: the ten English digits spoken by ``espeak-ng`` over many voices, turned into
spikes by a cochlear front end, with speaker-disjoint train and test sets.

Stands in for SHD (Spiking Heidelberg Digits: spoken digits through a cochlea model, 700
channels, speaker-disjoint test set) and, more loosely, for spoken-command data sets (SSC/GSC).

Generation recipe (:class:`SpokenDigitsParams` holds every parameter)
-------------------------------------------------------------------
1. **Speakers.** A speaker is one ``(accent, variant)`` pair of espeak-ng: ``ACCENTS`` are its
   8 English accent voices (``espeak-ng --voices=en`` without the MBROLA ones), ``VARIANTS`` 16
   voice variants (``espeak-ng --voices=variant``: the voice's own, male ``m1``-``m7``, female
   ``f1``-``f5``, the ``klatt`` synthesiser family ``klatt``-``klatt3``): 128 speakers. The split
   is fixed, not seed-dependent: accent ``a`` and variant ``v`` (their indices) form a *test*
   speaker iff ``(a + v) % test_modulus == 0`` (default 4: 32 test speakers, 96 train; every
   accent and every variant occurs in both sets, but no test speaker's voice is ever trained on).
2. **Renditions.** Every speaker says every word ``renditions`` times; rendition ``i`` (samples
   ordered by speaker, word, rendition) draws from ``numpy.random.default_rng(seed)`` (in this
   order, one array each over all samples): speaking rate ``~ U{rate_wpm}`` words/min, pitch
   ``~ U{pitch}`` (espeak-ng 0..99), amplitude ``~ U{amplitude}`` (espeak-ng 0..200), a
   signal-to-noise ratio from ``snr_db``, an onset ``~ U(0, max_onset_s)`` s.
3. **Audio.** :func:`neurodeploy.data.speech.synthesize` at ``cochlea.fs`` (16 kHz); silence at
   both ends trimmed (first to last sample with ``|x| >= trim_level * max|x|``); placed at the
   onset in a ``duration_s`` window of zeros (cut at its end); white Gaussian noise added at the
   drawn SNR: ``sigma^2 = mean(x_word^2) / 10 ** (snr / 10)`` (mean over the trimmed word),
   drawn from ``default_rng([seed, i])``.
4. **Spikes.** :func:`neurodeploy.data.cochlea.spikes` (64 ERB-spaced gammatones 100 Hz - 7 kHz,
   half-wave rectification, cube-root compression, 50 Hz envelope, delta modulation at 1 ms
   steps): ON/OFF counts for ``2 * channels`` inputs (ON channels first, then OFF) over
   ``duration_s * 1000 / step_ms`` steps (1000).
5. **Frames.** Step ``n`` of ``S`` goes to frame ``floor(n * T / S)``; ``x[i, f, j]`` is the
   number of spikes of input ``j`` in frame ``f`` (counts, as the SHD loader's default), float32
   ``(N, T, 128)``. The events do not depend on ``T``.

Steps 1-4 are the slow part (about 0.1 s per sample) and are cached on disk
(:func:`neurodeploy.data.cache.cached_arrays`, keyed on every parameter, the seed and the
espeak-ng version); step 5 runs on every load. Train and test are shuffled with
``default_rng([seed, SHUFFLE_STREAM])``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from neurodeploy.data import cochlea, speech
from neurodeploy.data.cache import cached_arrays

Split = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]

NAME = "spoken-digits"
WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
ACCENTS: tuple[str, ...] = (
    "en-gb",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-rp",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
VARIANTS: tuple[str, ...] = (
    "",
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
)
CHANNELS = cochlea.CochleaParams().channels
NUM_POLARITIES = 2
NUM_CLASSES = len(WORDS)
INPUT_SHAPE: tuple[int, ...] = (NUM_POLARITIES * CHANNELS,)
TEMPORAL = True
#: the Debian package this task needs (its files or its tool); see scripts/setup_env.sh
REQUIRES = "espeak-ng"
#: bump when the generator changes in a way its parameters do not show
GENERATOR_VERSION = 1
SHUFFLE_STREAM = 1
#: the prosody record of every sample: columns of ``prosody``
PROSODY_COLUMNS = ("rate_wpm", "pitch", "amplitude", "snr_db", "onset_s")
DESCRIPTION = (
    "digits 0-9 spoken by espeak-ng (8 accents x 16 variants, random rate/pitch/amplitude, "
    "white noise at 5-30 dB SNR), 64-channel gammatone cochlea, ON/OFF delta-modulation spike "
    "counts over 1 s binned into T frames; speaker-disjoint split"
)
STANDS_IN_FOR = "SHD (Spiking Heidelberg Digits)"


@dataclass(frozen=True)
class SpokenDigitsParams:
    """Every parameter of the generator (module docstring; ranges are inclusive integers)."""

    words: tuple[str, ...] = WORDS
    accents: tuple[str, ...] = ACCENTS
    variants: tuple[str, ...] = VARIANTS
    renditions: int = 4  # per speaker and word
    rate_wpm: tuple[int, int] = (130, 210)  # espeak-ng -s range, words per minute
    pitch: tuple[int, int] = (25, 75)  # espeak-ng -p range, 0..99
    amplitude: tuple[int, int] = (60, 140)  # espeak-ng -a range, 0..200
    snr_db: tuple[float, ...] = (30.0, 20.0, 10.0, 5.0)  # drawn uniformly per sample, dB
    max_onset_s: float = 0.1  # word onset ~ U(0, max_onset_s), s
    duration_s: float = 1.0  # window length, s
    trim_level: float = 0.01  # silence trim, fraction of the peak |x|
    test_modulus: int = 4  # (accent + variant) % test_modulus == 0 -> test speaker
    cochlea: cochlea.CochleaParams = field(default_factory=cochlea.CochleaParams)

    @property
    def speakers(self) -> list[tuple[str, str]]:
        """All ``(accent, variant)`` pairs, accent-major."""
        return [(a, v) for a in self.accents for v in self.variants]

    def is_test_speaker(self) -> np.ndarray:
        """``(len(speakers),)`` bool: the fixed test speakers (module docstring, step 1)."""
        a, v = np.divmod(np.arange(len(self.accents) * len(self.variants)), len(self.variants))
        return (a + v) % self.test_modulus == 0

    @property
    def n_steps(self) -> int:
        """Spike time steps per sample."""
        return cochlea.steps(self.n_samples, self.cochlea)

    @property
    def n_samples(self) -> int:
        """Waveform samples per window."""
        return round(self.duration_s * self.cochlea.fs)

    @property
    def n_inputs(self) -> int:
        return NUM_POLARITIES * self.cochlea.channels


def place(word: np.ndarray, onset_s: float, p: SpokenDigitsParams) -> tuple[np.ndarray, slice]:
    """The trimmed ``word`` placed at ``onset_s`` in a ``duration_s`` window of zeros (cut at
    its end), and the slice of the window that holds the word."""
    peak = float(np.max(np.abs(word))) if len(word) else 0.0
    if peak == 0.0:
        raise ValueError("espeak-ng produced silence")
    loud = np.flatnonzero(np.abs(word) >= p.trim_level * peak)
    word = word[loud[0] : loud[-1] + 1]
    out = np.zeros(p.n_samples)
    start = min(round(onset_s * p.cochlea.fs), p.n_samples)
    piece = word[: p.n_samples - start]
    out[start : start + len(piece)] = piece
    return out, slice(start, start + len(piece))


def add_noise(
    x: np.ndarray, signal_power: float, snr_db: float, rng: np.random.Generator
) -> np.ndarray:
    """``x`` plus white Gaussian noise of variance ``signal_power / 10 ** (snr_db / 10)``."""
    sigma = np.sqrt(signal_power / 10.0 ** (snr_db / 10.0))
    return x + sigma * rng.standard_normal(len(x))


def _draw_prosody(n: int, p: SpokenDigitsParams, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rate = rng.integers(p.rate_wpm[0], p.rate_wpm[1] + 1, n)
    pitch = rng.integers(p.pitch[0], p.pitch[1] + 1, n)
    amp = rng.integers(p.amplitude[0], p.amplitude[1] + 1, n)
    snr = np.asarray(p.snr_db, dtype=np.float64)[rng.integers(0, len(p.snr_db), n)]
    onset = rng.uniform(0.0, p.max_onset_s, n)
    return np.stack([rate, pitch, amp, snr, onset], axis=1).astype(np.float64)


def render(
    i: int,
    *,
    word: str,
    accent: str,
    variant: str,
    prosody: np.ndarray,
    p: SpokenDigitsParams,
    seed: int,
) -> np.ndarray:
    """Sample ``i``: ``(2, channels, n_steps)`` spike counts (recipe steps 3-4)."""
    rate, pitch, amp, snr, onset = prosody
    voice = speech.Voice(accent, variant, int(rate), int(pitch), int(amp))
    audio = speech.synthesize(word, voice, p.cochlea.fs)
    x, where = place(audio, float(onset), p)
    power = float(np.mean(x[where] ** 2)) if where.stop > where.start else 0.0
    x = add_noise(x, power, float(snr), np.random.default_rng([seed, i]))
    return cochlea.spikes(x, p.cochlea)


def build_events(
    p: SpokenDigitsParams, seed: int, *, progress: bool = True
) -> dict[str, np.ndarray]:
    """Recipe steps 1-4 for every sample, as sparse events (not cached; see :func:`events`).

    Arrays: ``offsets`` (N+1,) int64 (sample ``i``'s events are ``offsets[i]:offsets[i+1]``),
    ``step`` uint16, ``input`` uint8 (``polarity * channels + channel``), ``count`` uint8,
    ``label`` int64, ``speaker`` int16 (index into ``p.speakers``), ``is_train`` bool,
    ``prosody`` float32 (N, 5) (:data:`PROSODY_COLUMNS`).
    """
    speakers = p.speakers
    test = p.is_test_speaker()
    jobs = [
        (s, w)
        for s in range(len(speakers))
        for w in range(len(p.words))
        for _ in range(p.renditions)
    ]
    prosody = _draw_prosody(len(jobs), p, seed)

    def one(i: int) -> np.ndarray:
        s, w = jobs[i]
        accent, variant = speakers[s]
        return render(
            i, word=p.words[w], accent=accent, variant=variant, prosody=prosody[i], p=p, seed=seed
        )

    offsets = [0]
    steps, inputs, counts = [], [], []
    workers = max(1, min(os.cpu_count() or 1, 8))
    with ThreadPoolExecutor(workers) as pool:
        results = pool.map(one, range(len(jobs)))
        for c in tqdm(results, total=len(jobs), desc=f"{NAME} (seed {seed})", disable=not progress):
            pol, ch, n = np.nonzero(c)
            order = np.lexsort((pol * p.cochlea.channels + ch, n))
            steps.append(n[order].astype(np.uint16))
            inputs.append((pol * p.cochlea.channels + ch)[order].astype(np.uint8))
            counts.append(np.minimum(c[pol, ch, n][order], np.iinfo(np.uint8).max).astype(np.uint8))
            offsets.append(offsets[-1] + len(order))
    spk = np.asarray([s for s, _ in jobs], dtype=np.int16)
    return {
        "offsets": np.asarray(offsets, dtype=np.int64),
        "step": np.concatenate(steps) if steps else np.zeros(0, np.uint16),
        "input": np.concatenate(inputs) if inputs else np.zeros(0, np.uint8),
        "count": np.concatenate(counts) if counts else np.zeros(0, np.uint8),
        "label": np.asarray([w for _, w in jobs], dtype=np.int64),
        "speaker": spk,
        "is_train": ~test[spk],
        "prosody": prosody.astype(np.float32),
    }


def cache_params(p: SpokenDigitsParams, seed: int) -> Mapping[str, Any]:
    """What the on-disk cache entry is keyed on."""
    return {
        "generator": GENERATOR_VERSION,
        "seed": int(seed),
        "espeak": speech.espeak_version(),
        "params": dataclasses.asdict(p),
    }


def events(p: SpokenDigitsParams, seed: int, *, progress: bool = True) -> dict[str, np.ndarray]:
    """:func:`build_events`, from the on-disk cache when it holds them."""
    if p.cochlea.channels * NUM_POLARITIES > np.iinfo(np.uint8).max + 1:
        raise ValueError(f"at most 128 cochlear channels (inputs are stored as uint8), got {p}")
    return cached_arrays(
        NAME, cache_params(p, seed), lambda: build_events(p, seed, progress=progress)
    )


def frames(ev: Mapping[str, np.ndarray], T: int, p: SpokenDigitsParams) -> np.ndarray:
    """Recipe step 5: float32 ``(N, T, 2 * channels)`` spike counts per frame."""
    n = len(ev["label"])
    lengths = np.diff(ev["offsets"])
    sample = np.repeat(np.arange(n), lengths)
    frame = ev["step"].astype(np.int64) * T // p.n_steps
    flat = (sample * T + frame) * p.n_inputs + ev["input"].astype(np.int64)
    x = np.bincount(flat, weights=ev["count"].astype(np.float64), minlength=n * T * p.n_inputs)
    return x.reshape(n, T, p.n_inputs).astype(np.float32)


def generate_with(p: SpokenDigitsParams, T: int, seed: int, *, progress: bool = True) -> Split:
    """``(x_train, y_train, x_test, y_test)`` for parameters ``p``; x is ``(N, T, 2*channels)``."""
    ev = events(p, seed, progress=progress)
    x = frames(ev, T, p)
    rng = np.random.default_rng([seed, SHUFFLE_STREAM])
    out: list[torch.Tensor] = []
    for mask in (ev["is_train"], ~ev["is_train"]):
        idx = np.flatnonzero(mask)
        idx = idx[rng.permutation(len(idx))]
        out += [torch.from_numpy(x[idx]), torch.from_numpy(ev["label"][idx].astype(np.int64))]
    return out[0], out[1], out[2], out[3]


def generate(T: int, seed: int) -> Split:
    """The task with the default :class:`SpokenDigitsParams` (built once per seed, cached)."""
    return generate_with(SpokenDigitsParams(), T, seed)
