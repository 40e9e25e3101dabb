"""The simulated DVS (neurodeploy/data/dvs.py) against hand-computed events, and the
``event-fashion`` task built from it (neurodeploy/data/event_fashion.py): determinism, the fixed
class-balanced split, T-independent event streams and the on-disk cache."""

from __future__ import annotations

import gzip
import math
import os
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.data import dvs, event_fashion, fashion

C = 0.2  # contrast threshold of the hand-computed cases
EPS = 0.1
EXACT = dvs.DVSParams(
    micro_steps=12,
    log_eps=EPS,
    c_on=C,
    c_off=C,
    threshold_mismatch=0.0,
    refractory_steps=0,
    noise_rate=0.0,
)
EDGE_COL = 3  # columns < 3 bright (I = 1), columns >= 3 dark (I = 0)


def _edge(h: int = 4, w: int = 6) -> torch.Tensor:
    img = torch.zeros(1, h, w)
    img[:, :, :EDGE_COL] = 1.0
    return img


def _linear_path(params: dvs.DVSParams, dx: float) -> torch.Tensor:
    """(1, M + 1, 2): from (0, 0) to (0, dx) at constant speed."""
    s = torch.linspace(0.0, 1.0, params.micro_steps + 1)
    return torch.stack([torch.zeros_like(s), dx * s], dim=-1).unsqueeze(0)


def _thresholds(params: dvs.DVSParams, h: int, w: int) -> torch.Tensor:
    return dvs.thresholds(params, torch.zeros(1, 2, h, w))


def _run(img: torch.Tensor, path: torch.Tensor, params: dvs.DVSParams) -> torch.Tensor:
    """Per-micro-step counts (1, M, 2, H, W) (T = M)."""
    h, w = img.shape[1:]
    return dvs.simulate(img, path, _thresholds(params, h, w), params, T=params.micro_steps)


def _expected_edge_counts(params: dvs.DVSParams) -> list[int]:
    """Events per micro-step at the pixel the edge crosses: its intensity goes 0 -> 1 linearly
    (I_m = m / M), log intensity rises monotonically, the reference moves in whole thresholds,
    so after step m the pixel has emitted floor((log(I_m + eps) - log(eps)) / C) events."""
    M = params.micro_steps
    total = [math.floor((math.log(m / M + EPS) - math.log(EPS)) / C + 1e-9) for m in range(M + 1)]
    return [total[m] - total[m - 1] for m in range(1, M + 1)]


def test_edge_moving_right_gives_on_events_at_the_edge_only() -> None:
    counts = _run(_edge(), _linear_path(EXACT, 1.0), EXACT)
    per_step = _expected_edge_counts(EXACT)
    assert sum(per_step) == math.floor(math.log(1.1 / 0.1) / C) == 11
    expected = torch.zeros_like(counts)
    expected[0, :, dvs.ON, :, EDGE_COL] = torch.tensor(per_step, dtype=torch.int32).view(-1, 1)
    assert torch.equal(counts, expected)


def test_edge_moving_left_gives_off_events_at_the_edge_only() -> None:
    counts = _run(_edge(), _linear_path(EXACT, -1.0), EXACT)
    # pixel EDGE_COL - 1 goes 1 -> 0: the mirror image of the ON case (log falls monotonically)
    M = EXACT.micro_steps
    total = [
        math.floor((math.log(1 + EPS) - math.log(1 - m / M + EPS)) / C + 1e-9) for m in range(M + 1)
    ]
    per_step = [total[m] - total[m - 1] for m in range(1, M + 1)]
    assert sum(per_step) == 11
    expected = torch.zeros_like(counts)
    expected[0, :, dvs.OFF, :, EDGE_COL - 1] = torch.tensor(per_step, dtype=torch.int32).view(-1, 1)
    assert torch.equal(counts, expected)


def _jump_path(offsets: list[float]) -> torch.Tensor:
    """(1, len, 2): x offsets per position (position 0 first)."""
    x = torch.tensor(offsets, dtype=torch.float32)
    return torch.stack([torch.zeros_like(x), x], dim=-1).unsqueeze(0)


@pytest.mark.parametrize(
    ("refractory", "off_at_step"),
    [(0, {2: 11}), (1, {3: 11}), (2, {})],  # step 2 suppressed, caught up at 3 / still refractory
)
def test_refractory_period_suppresses_and_keeps_the_reference(
    refractory: int, off_at_step: dict[int, int]
) -> None:
    # the edge jumps one pixel right at step 1 (pixel 3: 0 -> 1, 11 ON events, reference
    # log(0.1) + 11 * 0.2) and back at step 2 (1 -> 0: -2.2 from the reference = 11 OFF events)
    params = replace(EXACT, micro_steps=3, refractory_steps=refractory)
    counts = _run(_edge(), _jump_path([0.0, 1.0, 0.0, 0.0]), params)
    col = counts[0, :, :, :, EDGE_COL]  # (M, 2, H)
    assert col[:, dvs.ON].tolist() == [[11] * 4, [0] * 4, [0] * 4]
    for step in (1, 2, 3):
        assert col[step - 1, dvs.OFF].tolist() == [off_at_step.get(step, 0)] * 4
    counts[0, :, :, :, EDGE_COL] = 0
    assert not counts.any()


def test_k_thresholds_give_k_events_and_the_residual_is_kept() -> None:
    # pixel 2 sees intensity c -> b -> a as the image moves right by 1 px per step; log steps are
    # 3.5 C then 0.6 C: 3 events at step 1 (residual 0.5 C kept), 1 at step 2 (0.5 + 0.6 = 1.1 C)
    i_c = 0.0
    i_b = (i_c + EPS) * math.exp(3.5 * C) - EPS
    i_a = (i_b + EPS) * math.exp(0.6 * C) - EPS
    img = torch.tensor([[i_a, i_b, i_c]] * 2, dtype=torch.float32).unsqueeze(0)
    params = replace(EXACT, micro_steps=3)
    counts = _run(img, _jump_path([0.0, 1.0, 2.0, 2.0]), params)
    assert counts[0, :, dvs.ON, :, 2].tolist() == [[3, 3], [1, 1], [0, 0]]
    counts[0, :, dvs.ON, :, 2] = 0
    assert not counts.any()  # columns 0 and 1 change by 0.6 C at most: no events


def test_threshold_mismatch_and_clamp() -> None:
    z = torch.tensor([0.0, 1.0, -1.0, -100.0]).view(1, 1, 2, 2).expand(1, 2, 2, 2)
    params = dvs.DVSParams(c_on=0.2, c_off=0.3, threshold_mismatch=0.1, min_threshold=0.05)
    c = dvs.thresholds(params, z)
    assert torch.allclose(c[0, dvs.ON].flatten(), torch.tensor([0.2, 0.22, 0.18, 0.05]))
    assert torch.allclose(c[0, dvs.OFF].flatten(), torch.tensor([0.3, 0.33, 0.27, 0.05]))


def test_shot_noise_rate_within_poisson_tolerance() -> None:
    # black image: no signal events; the noise total over n samples is Poisson(lambda) with
    # lambda = rate * n * M * 2 * H * W; accept within 5 standard deviations (sqrt(lambda)),
    # each polarity Binomial(total, 1/2) within 5 sd too.
    rate, n, h, w = 0.01, 50, 8, 8
    params = replace(EXACT, noise_rate=rate, threshold_mismatch=0.15)
    rng = np.random.default_rng(0)
    draws = [dvs.draw_sample(params, (h, w), rng) for _ in range(n)]
    counts = dvs.events_for(torch.zeros(n, h, w), draws, params, T=4)
    lam = rate * n * params.micro_steps * 2 * h * w
    assert lam == pytest.approx(768.0)
    total = int(counts.sum())
    assert total == sum(len(d.noise) for d in draws)
    assert abs(total - lam) <= 5 * math.sqrt(lam)
    on = int(counts[:, :, dvs.ON].sum())
    assert abs(on - total / 2) <= 5 * math.sqrt(total / 4)
    # frames of equal length (M / T = 3 micro-steps) share the events evenly
    per_frame = counts.sum(dim=(0, 2, 3, 4)).double()
    assert (per_frame - lam / 4).abs().max() <= 5 * math.sqrt(lam / 4)


def test_saccade_path_is_a_closed_triangle() -> None:
    params = dvs.DVSParams(micro_steps=6)
    path = dvs.saccade_path(params, np.zeros((1, 3, 2)))
    v = torch.tensor(dvs.TRIANGLE_VERTICES_PX, dtype=torch.float32)
    assert torch.allclose(path[0, ::2], torch.cat([v, v[:1]]), atol=1e-6)
    assert torch.allclose(path[0, 1], (v[0] + v[1]) / 2, atol=1e-6)


def _images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = np.zeros((n, 28, 28), dtype=np.uint8)
    img[:, 6:22, 8:20] = rng.integers(60, 255, size=(n, 1, 1), dtype=np.uint8)
    return img, np.arange(n)


SMALL = event_fashion.EventFashionParams(
    train_per_class=1, test_per_class=1, sensor=dvs.DVSParams(micro_steps=24)
)


def test_record_deterministic_per_sample_and_independent_of_T() -> None:
    img, src = _images(3)
    a = event_fashion.record(img, src, "train", T=4, seed=7, params=SMALL)
    assert a.dtype == np.uint8 and a.shape == (3, 4, 2, 32, 32)
    assert a.sum() > 0
    np.testing.assert_array_equal(
        a, event_fashion.record(img, src, "train", T=4, seed=7, params=SMALL)
    )
    assert not np.array_equal(a, event_fashion.record(img, src, "train", T=4, seed=8, params=SMALL))
    assert not np.array_equal(a, event_fashion.record(img, src, "test", T=4, seed=7, params=SMALL))
    # sample 2 alone: same events (its draws depend on (seed, split, source index) only)
    np.testing.assert_array_equal(
        a[2:], event_fashion.record(img[2:], src[2:], "train", T=4, seed=7, params=SMALL)
    )
    # T = 2 bins the same event stream: the sums of frame pairs of T = 4
    b = event_fashion.record(img, src, "train", T=2, seed=7, params=SMALL)
    np.testing.assert_array_equal(b, a.reshape(3, 2, 2, 2, 32, 32).sum(axis=2))


def test_balanced_indices_fixed_rule() -> None:
    labels = np.array([3, 0, 1, 0, 2, 4, 5, 6, 7, 8, 9, 9, 1, 2, 3, 4, 5, 6, 7, 8])
    assert event_fashion.balanced_indices(labels, 1).tolist() == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10]
    assert len(event_fashion.balanced_indices(labels, 2)) == 20
    with pytest.raises(ValueError, match="class 0 has 2 images, fewer than 3"):
        event_fashion.balanced_indices(labels, 3)


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


@pytest.fixture
def tiny_fashion(tmp_path: Path) -> Path:
    """A 20 / 10 image Fashion-MNIST folder (labels 0..9 twice / once) in the IDX layout."""
    root = tmp_path / "fashion"
    root.mkdir()
    for split, n in (("train", 20), ("t10k", 10)):
        img, _ = _images(n, seed=n)
        _write_idx(root / f"{split}-images-idx3-ubyte.gz", img)
        _write_idx(root / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    return root


def test_cache_built_once_and_damaged_entry_rebuilt(
    tiny_fashion: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEURODEPLOY_CACHE", str(tmp_path / "cache"))
    x_tr, y_tr, x_te, y_te = event_fashion.load(4, 0, SMALL, root=tiny_fashion)
    assert x_tr.shape == (10, 4, 2, 32, 32) and x_tr.dtype == torch.float32
    assert y_tr.tolist() == list(range(10)) and y_te.tolist() == list(range(10))
    (entry,) = (tmp_path / "cache").glob("event-fashion-*.npz")
    raw = bytearray(entry.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    entry.write_bytes(bytes(raw))
    with pytest.warns(UserWarning, match="rebuilding"):
        again = event_fashion.load(4, 0, SMALL, root=tiny_fashion)
    assert torch.equal(again[0], x_tr) and torch.equal(again[2], x_te)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # valid again: read, not rebuilt
        event_fashion.load(4, 0, SMALL, root=tiny_fashion)
    # the split does not depend on the seed; the events do
    other = event_fashion.load(4, 1, SMALL, root=tiny_fashion)
    assert torch.equal(other[1], y_tr) and not torch.equal(other[0], x_tr)
    assert len(list((tmp_path / "cache").glob("event-fashion-*.npz"))) == 2


def test_missing_folder_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEURODEPLOY_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        event_fashion.load(4, 0, SMALL, root=tmp_path / "nowhere")


def test_registered_task_from_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not (fashion.DEFAULT_ROOT / "train-images-idx3-ubyte.gz").is_file():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI: {fashion.DEBIAN_PACKAGE} is not installed ({fashion.DEFAULT_ROOT})")
        pytest.skip(f"needs `apt-get install {fashion.DEBIAN_PACKAGE}`")
    from neurodeploy.data import TASKS

    spec = TASKS[event_fashion.NAME]
    assert spec.input_shape == (2, 32, 32) and spec.temporal and spec.num_classes == 10
    monkeypatch.setenv("NEURODEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(fashion.ROOT_ENV, raising=False)
    x_tr, y_tr, x_te, y_te = event_fashion.load(2, 0, SMALL)
    assert x_tr.shape == (10, 2, 2, 32, 32) and x_te.shape == (10, 2, 2, 32, 32)
    assert sorted(y_tr.tolist()) == list(range(10)) and sorted(y_te.tolist()) == list(range(10))
    # the fixed rule: the first image of every class in each file
    _, labels_tr, _, _ = fashion.read_fashion_mnist()
    first = sorted(int(np.flatnonzero(labels_tr == c)[0]) for c in range(10))
    assert y_tr.tolist() == labels_tr[first].tolist()
    assert float(x_tr.sum(dim=(1, 2, 3, 4)).min()) > 500  # every image gives events
    assert len(list((tmp_path / "cache").glob("event-fashion-*.npz"))) == 1
