"""spoken-digits: the cochlear front end against hand-computed values, espeak-ng synthesis, the
speaker-disjoint split and determinism (small sizes through SpokenDigitsParams)."""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import pytest
import torch

from neurodeploy.data import cochlea, speech
from neurodeploy.data import spoken_digits as sd
from neurodeploy.data.base import TASKS

HAVE_ESPEAK = shutil.which(speech.ESPEAK) is not None
IN_CI = os.environ.get("CI") == "true"


def needs_espeak() -> None:
    """Skip without espeak-ng, except under CI=true, where its absence fails the test."""
    if HAVE_ESPEAK:
        return
    msg = f"{speech.ESPEAK} not installed (apt-get install {speech.APT_PACKAGE})"
    if IN_CI:
        pytest.fail(f"CI=true: {msg}; scripts/setup_env.sh must install it")
    pytest.skip(msg)


# ---- cochlea ---------------------------------------------------------------------------------


def test_centre_frequencies_erb_spaced() -> None:
    p = cochlea.CochleaParams(channels=3, low_hz=100.0, high_hz=7000.0)
    fc = cochlea.centre_frequencies(p)
    # by hand: E(100) = 21.4 log10(1.437) = 3.3696, E(7000) = 21.4 log10(31.59) = 32.0904;
    # midpoint 17.7300 -> (10 ** (17.7300 / 21.4) - 1) / 0.00437 = 1312.9 Hz
    assert fc[0] == pytest.approx(100.0) and fc[-1] == pytest.approx(7000.0)
    assert fc[1] == pytest.approx(1312.9, abs=0.5)
    assert cochlea.erb_rate(1000.0) == pytest.approx(21.4 * np.log10(5.37))
    fc64 = cochlea.centre_frequencies(cochlea.CochleaParams())
    assert len(fc64) == 64 and np.all(np.diff(fc64) > 0)
    assert np.allclose(np.diff(cochlea.erb_rate(fc64)), (32.0904 - 3.3696) / 63, atol=1e-3)


@pytest.mark.parametrize("f_tone", [250.0, 1000.0, 4000.0])
def test_pure_tone_lands_in_nearest_channel(f_tone: float) -> None:
    p = cochlea.CochleaParams(channels=32)
    t = np.arange(p.fs // 4) / p.fs
    x = 0.1 * np.sin(2 * np.pi * f_tone * t)
    env = cochlea.cochleagram(x, p)
    loudest = int(np.argmax(env[:, env.shape[1] // 2 :].mean(axis=1)))
    nearest = int(
        np.argmin(
            np.abs(cochlea.erb_rate(cochlea.centre_frequencies(p)) - cochlea.erb_rate(f_tone))
        )
    )
    assert abs(loudest - nearest) <= 1


def test_rectify_compress_by_hand() -> None:
    y = np.array([-8.0, -0.5, 0.0, 0.125, 8.0, 27.0])
    assert np.allclose(cochlea.rectify_compress(y, 1 / 3), [0, 0, 0, 0.5, 2.0, 3.0])
    assert np.allclose(
        cochlea.rectify_compress(y, 0.5), [0, 0, 0, np.sqrt(0.125), np.sqrt(8), np.sqrt(27)]
    )


def test_delta_modulation_of_a_ramp() -> None:
    # theta = 0.25; ramp up by 0.125 per step to 1.0, hold, then a drop of 0.75 in one step.
    e = np.array([0.125, 0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.0, 0.25])
    c = cochlea.delta_modulate(e, 0.25)
    assert c.shape == (2, 1, 10)
    # ref 0 -> 0.25 at step 1, 0.5 at 3, 0.75 at 5, 1.0 at 7; the drop to 0.25 gives 3 OFF spikes
    assert c[cochlea.ON, 0].tolist() == [0, 1, 0, 1, 0, 1, 0, 1, 0, 0]
    assert c[cochlea.OFF, 0].tolist() == [0, 0, 0, 0, 0, 0, 0, 0, 0, 3]
    # a jump of 2.6 thetas in one step: floor(2.6) = 2 ON spikes, the rest stays below theta
    c2 = cochlea.delta_modulate(np.array([[0.65, 0.65]]), 0.25)
    assert c2[cochlea.ON, 0].tolist() == [2, 0] and c2[cochlea.OFF].sum() == 0


def test_envelope_decimation_and_silence() -> None:
    p = cochlea.CochleaParams(channels=4)
    s = cochlea.spikes(np.zeros(p.fs // 10), p)
    assert s.shape == (2, 4, 100) and s.sum() == 0


# ---- synthesis, split, determinism ------------------------------------------------------------


def test_parse_wav_streaming_header() -> None:
    import struct

    pcm = np.array([0, 16384, -32768, 32767], dtype="<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, 22050, 44100, 2, 16)
    blob = b"RIFF" + struct.pack("<I", 0x7FFFF024) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
    blob += b"data" + struct.pack("<I", 0x7FFFF000) + pcm
    x, rate = speech.parse_wav(blob)
    assert rate == 22050 and x.tolist() == [0, 16384, -32768, 32767]


def test_missing_espeak_is_a_named_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(speech.shutil, "which", lambda _: None)
    with pytest.raises(speech.EspeakNotFoundError, match="apt-get install espeak-ng"):
        speech.synthesize("one", speech.Voice("en-us"))


def test_espeak_speaks_one_word_deterministically() -> None:
    needs_espeak()
    v = speech.Voice("en-us", "f2", rate=175, pitch=50, amplitude=100)
    a = speech.synthesize("seven", v)
    b = speech.synthesize("seven", v)
    assert np.array_equal(a, b)
    assert 0.3 * speech.TARGET_RATE_HZ < len(a) < 2 * speech.TARGET_RATE_HZ
    assert 0.05 < np.max(np.abs(a)) <= 1.0
    assert not np.array_equal(
        a[: len(a) // 2],
        speech.synthesize("seven", dataclasses.replace(v, pitch=20))[: len(a) // 2],
    )


def test_split_is_speaker_disjoint_and_fixed() -> None:
    p = sd.SpokenDigitsParams()
    test = p.is_test_speaker()
    assert len(test) == 128 and test.sum() == 32
    speakers = p.speakers
    test_set = {speakers[i] for i in np.flatnonzero(test)}
    assert (
        ("en-gb", "") in test_set
        and ("en-us", "klatt3") in test_set
        and ("en-us", "") not in test_set
    )
    # every accent and every variant occurs on both sides
    assert {a for a, _ in test_set} == set(p.accents) and {v for _, v in test_set} == set(
        p.variants
    )


SMALL = sd.SpokenDigitsParams(
    words=("one", "two"),
    accents=("en-gb", "en-us"),
    variants=("", "f2"),
    renditions=1,
    duration_s=0.5,
    test_modulus=2,
)


def test_small_build_split_determinism_and_cache(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    needs_espeak()
    monkeypatch.setenv("NEURODEPLOY_CACHE", str(tmp_path))
    ev = sd.events(SMALL, seed=3, progress=False)
    # 4 speakers x 2 words x 1 rendition; (a + v) % 2 == 0 -> (en-gb, "") and (en-us, f2) test
    assert ev["label"].tolist() == [0, 1, 0, 1, 0, 1, 0, 1]
    assert ev["is_train"].tolist() == [False, False, True, True, True, True, False, False]
    assert ev["step"].max() < 500 and ev["input"].max() < 128 and ev["count"].min() >= 1
    assert len(list(tmp_path.glob("spoken-digits-*.npz"))) == 1
    again = sd.build_events(SMALL, seed=3, progress=False)
    for k in ev:
        assert np.array_equal(ev[k], again[k]), k
    other = sd.build_events(SMALL, seed=4, progress=False)
    assert not np.array_equal(other["prosody"], ev["prosody"])
    assert np.array_equal(other["is_train"], ev["is_train"])  # the split ignores the seed
    xtr, ytr, xte, yte = sd.generate_with(SMALL, 5, 3, progress=False)
    assert xtr.shape == (4, 5, 128) and xte.shape == (4, 5, 128) and xtr.dtype == torch.float32
    assert sorted(ytr.tolist()) == [0, 0, 1, 1] and sorted(yte.tolist()) == [0, 0, 1, 1]
    # frames are counts: every event is in exactly one frame, whatever T
    total = float(ev["count"].sum())
    x1 = sd.generate_with(SMALL, 1, 3, progress=False)
    assert float(x1[0].sum() + x1[2].sum()) == total == float(xtr.sum() + xte.sum())


def test_frames_binning_by_hand() -> None:
    p = dataclasses.replace(SMALL, duration_s=0.01)  # 10 steps of 1 ms
    ev = {
        "offsets": np.array([0, 2, 3]),
        "step": np.array([0, 9, 5], dtype=np.uint16),
        "input": np.array([3, 127, 64], dtype=np.uint8),
        "count": np.array([1, 2, 1], dtype=np.uint8),
        "label": np.array([0, 1]),
    }
    x = sd.frames(ev, 2, p)  # frame = floor(step * 2 / 10): steps 0-4 -> 0, 5-9 -> 1
    assert x.shape == (2, 2, 128) and x.sum() == 4
    assert x[0, 0, 3] == 1 and x[0, 1, 127] == 2 and x[1, 1, 64] == 1


def test_registered_as_temporal_task() -> None:
    spec = TASKS["spoken-digits"]
    assert spec.temporal and spec.input_shape == (128,) and spec.num_classes == 10
