"""Tests for neurodeploy.data: shapes, determinism, event model, learnability, argument checks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from neurodeploy.data import TASKS, TaskData, digits, event_digits, list_tasks, load_task

# name: (input_shape, num_classes, n_train, n_test, temporal)
EXPECTED = {
    "digits": ((1, 8, 8), 10, 1437, 360, False),
    "event-digits": ((2, 20, 20), 10, 1437, 360, True),
    "seq1d": ((1, 40), 10, 4000, 1000, False),
    "shapes3d": ((3, 128), 10, 2000, 500, False),
}
SYNTHETIC = ["event-digits", "seq1d", "shapes3d"]
T = 4


def test_registry_lists_all_tasks() -> None:
    # the tasks of issue 19 (fashion-mnist, ...) come after these and have test files of their own
    assert list_tasks()[: len(EXPECTED)] == list(EXPECTED)
    assert set(EXPECTED) <= set(TASKS)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_shapes_dtypes_labels(name: str) -> None:
    shape, classes, n_train, n_test, temporal = EXPECTED[name]
    data = load_task(name, T=T)
    assert isinstance(data, TaskData)
    assert (data.name, data.input_shape, data.num_classes) == (name, shape, classes)
    assert (data.temporal, data.T) == (temporal, T)
    lead = (T,) if temporal else ()
    assert data.x_train.shape == (n_train, *lead, *shape)
    assert data.x_test.shape == (n_test, *lead, *shape)
    assert data.y_train.shape == (n_train,) and data.y_test.shape == (n_test,)
    for x, y in ((data.x_train, data.y_train), (data.x_test, data.y_test)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.isfinite(x).all()
        assert int(y.min()) == 0 and int(y.max()) == classes - 1
    assert data.description and data.stands_in_for


@pytest.mark.parametrize("name", list(EXPECTED))
def test_class_counts_and_fixed_split(name: str) -> None:
    data = load_task(name, T=T)
    train = torch.bincount(data.y_train, minlength=10)
    test = torch.bincount(data.y_test, minlength=10)
    if name in ("seq1d", "shapes3d"):  # balanced by construction
        assert (train == train[0]).all() and (test == test[0]).all()
    else:  # stratified 80/20 split of the sklearn digits, independent of the data seed
        total = torch.from_numpy(np.bincount(digits.load_images()[1]))
        assert torch.equal(train + test, total)
        assert ((test.double() - 0.2 * total).abs() <= 1).all()
        other = load_task(name, T=T, seed=1)
        assert torch.equal(other.y_train, data.y_train) and torch.equal(other.y_test, data.y_test)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_deterministic_and_cache_safe(name: str) -> None:
    a = load_task(name, T=T, seed=1)
    fresh = TASKS[name].build(T, 1)  # bypasses the cache
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(a, field), getattr(fresh, field))
    a.x_train.zero_()  # the caller's copy, not the cached tensor
    assert torch.equal(load_task(name, T=T, seed=1).x_train, fresh.x_train)


@pytest.mark.parametrize("name", SYNTHETIC)
def test_seed_changes_synthetic_data(name: str) -> None:
    a, b = load_task(name, T=T, seed=0), load_task(name, T=T, seed=1)
    assert not torch.equal(a.x_train, b.x_train) and not torch.equal(a.x_test, b.x_test)


def test_digits_ignores_seed_and_is_unit_range() -> None:
    a, b = load_task("digits", seed=0), load_task("digits", seed=5)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert float(a.x_train.min()) == 0.0 and float(a.x_train.max()) == 1.0


def test_shapes3d_clouds_are_centred_and_normalised() -> None:
    x = load_task("shapes3d").x_train
    assert torch.allclose(x.mean(dim=2), torch.zeros(1), atol=1e-5)
    assert torch.allclose(x.norm(dim=1).amax(dim=1), torch.ones(1), atol=1e-5)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_encode_is_time_major(name: str) -> None:
    data = load_task(name, T=T)
    x = data.x_test[:5]
    out = data.encode(x)
    assert out.shape == (T, 5, *data.input_shape)
    if data.temporal:
        assert torch.equal(out, x.transpose(0, 1))
        assert torch.equal(data.encode(x, T=T), out)
        with pytest.raises(ValueError, match="T"):
            data.encode(x, T=T + 1)
    else:
        for t in range(T):
            assert torch.equal(out[t], x)
        assert data.encode(x, T=7).shape == (7, 5, *data.input_shape)
    with pytest.raises(ValueError, match="x must have shape"):
        data.encode(x.flatten(1))


def test_event_frames_binary_sparse_two_polarities() -> None:
    x = load_task("event-digits", T=T).x_train
    assert set(torch.unique(x).tolist()) == {0.0, 1.0}
    on, off = x[:, :, 0], x[:, :, 1]
    assert on.mean() > 0.05 and off.mean() > 0.05  # both polarities present
    assert 0.05 < float(x.mean()) < 0.35  # sparse but non-trivial
    assert (on != off).float().mean() > 0.05  # polarities carry different information
    assert (x.sum(dim=(2, 3, 4)) > 0).all()  # every frame of every sample has events


def test_event_bins_nest() -> None:
    assert event_digits.MICRO_STEPS % 4 == 0
    threads = torch.get_num_threads()
    images = torch.from_numpy(digits.load_images()[0][:150])
    canvas = event_digits.place_on_canvas(images)
    x1, x2, x4 = (event_digits.simulate_events(canvas, t, seed=2) for t in (1, 2, 4))
    assert torch.equal(x2, torch.maximum(x4[:, 0::2], x4[:, 1::2]))
    assert torch.equal(x1[:, 0], x4.amax(dim=1))
    x3 = event_digits.simulate_events(canvas, 3, seed=2)  # T need not divide MICRO_STEPS
    assert x3.shape == (150, 3, *EXPECTED["event-digits"][0])
    assert torch.get_num_threads() == threads  # the single-threaded DVS loop restores it


def _pearson(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.flatten(1), b.flatten(1)
    a, b = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))


def test_events_follow_the_moving_digit() -> None:
    n, steps_per_saccade = 200, event_digits.MICRO_STEPS // 3
    canvas = event_digits.place_on_canvas(torch.from_numpy(digits.load_images()[0][:n]))
    # without motion and noise a DVS sees nothing; noise alone stays at the noise rate
    still = event_digits.simulate_events(canvas, T, seed=0, noise_rate=0.0, motion_scale=0.0)
    assert still.sum() == 0
    noise = event_digits.simulate_events(canvas, 1, seed=0, motion_scale=0.0)
    expected = 1 - (1 - event_digits.NOISE_RATE) ** event_digits.MICRO_STEPS
    assert abs(float(noise.mean()) - expected) < 0.3 * expected
    # T=3: one frame per saccade; the path is the first draw from Generator(seed)
    events = event_digits.simulate_events(canvas, 3, seed=0, noise_rate=0.0)
    path = event_digits.saccade_path(n, torch.Generator().manual_seed(0))
    # (1) spatially, event counts follow this digit's edges far better than another digit's
    grad = canvas[:, 0].diff(dim=1).abs()[:, :, :-1] + canvas[:, 0].diff(dim=2).abs()[:, :-1]
    edges = F.avg_pool2d(F.pad(grad, (0, 1, 0, 1)).unsqueeze(1), 5, stride=1, padding=2)[:, 0]
    counts = events.sum(dim=(1, 2))
    own, other = _pearson(counts, edges), _pearson(counts, edges.roll(1, dims=0))
    assert float(own.mean()) > 0.5 and float(own.mean()) > float(other.mean()) + 0.08
    # (2) temporally, each frame's event centroid moves with the digit along the saccade
    grid = torch.arange(event_digits.CANVAS, dtype=torch.float32)
    per_frame = events.sum(dim=2)
    centroid = (
        torch.stack(
            [(per_frame * grid.view(-1, 1)).sum((2, 3)), (per_frame * grid).sum((2, 3))], -1
        )
        / per_frame.sum((2, 3))[..., None]
    )
    mid = torch.stack(
        [
            path[:, k * steps_per_saccade : (k + 1) * steps_per_saccade + 1].mean(1)
            for k in range(3)
        ],
        dim=1,
    )
    moved, shift = centroid - centroid.mean(1, keepdim=True), mid - mid.mean(1, keepdim=True)
    slope = float((moved * shift).sum() / (shift * shift).sum())
    assert 0.7 < slope < 1.3 and float(_pearson(moved.reshape(1, -1), shift.reshape(1, -1))) > 0.7
    # (3) ON events where the pixel got brighter over the saccade, OFF where it got darker
    for k in range(3):
        before = event_digits.translate(canvas, path[:, k * steps_per_saccade])[:, 0]
        after = event_digits.translate(canvas, path[:, (k + 1) * steps_per_saccade])[:, 0]
        on, off = events[:, k, 0].bool(), events[:, k, 1].bool()
        assert float(((after - before)[on] > 0).float().mean()) > 0.9
        assert float(((after - before)[off] < 0).float().mean()) > 0.9


def _lr_accuracy(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> float:
    scaler = StandardScaler().fit(x_train)
    with warnings.catch_warnings(), threadpool_limits(limits=1):  # 1 thread: fast on busy CPUs
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(max_iter=300).fit(scaler.transform(x_train), y_train)
    return float(model.score(scaler.transform(x_test), y_test))


def _flat(data: TaskData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        data.x_train.flatten(1).numpy(),
        data.y_train.numpy(),
        data.x_test.flatten(1).numpy(),
        data.y_test.numpy(),
    )


@pytest.mark.parametrize("name", ["digits", "event-digits", "seq1d"])
def test_logistic_regression_beats_chance(name: str) -> None:
    assert _lr_accuracy(*_flat(load_task(name, T=T))) > 0.5


def test_seq1d_is_not_linearly_trivial() -> None:
    x_train, y_train, x_test, y_test = _flat(load_task("seq1d"))
    lr = _lr_accuracy(x_train, y_train, x_test, y_test)
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp = MLPClassifier((64,), max_iter=100, random_state=0).fit(x_train, y_train)
    assert lr < 0.85
    assert mlp.score(x_test, y_test) > lr + 0.1


def _invariant_features(x: torch.Tensor) -> np.ndarray:
    """Rotation/permutation-invariant features: sorted point radii + covariance eigenvalues."""
    radii = np.sort(x.norm(dim=1).numpy(), axis=1)
    cov = torch.einsum("nip,njp->nij", x, x) / x.shape[2]
    return np.concatenate([radii, torch.linalg.eigvalsh(cov).numpy()], axis=1)


def test_shapes3d_learnable_from_invariant_features_not_raw_coordinates() -> None:
    data = load_task("shapes3d")
    acc = _lr_accuracy(
        _invariant_features(data.x_train),
        data.y_train.numpy(),
        _invariant_features(data.x_test),
        data.y_test.numpy(),
    )
    assert acc > 0.5
    # random rotations and point order leave raw coordinates linearly uninformative
    assert _lr_accuracy(*_flat(data)) < 0.2


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"name": "mnist"}, "task"),
        ({"name": "digits", "T": 0}, "T"),
        ({"name": "digits", "T": -1}, "T"),
        ({"name": "digits", "T": 2.5}, "T"),
        ({"name": "digits", "T": True}, "T"),
        ({"name": "digits", "seed": -1}, "seed"),
        ({"name": "digits", "seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, argument: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{argument}\b") as info:
        load_task(**kwargs)
    if argument == "task":
        assert all(name in str(info.value) for name in EXPECTED)


def test_numpy_integers_are_accepted() -> None:
    data = load_task("digits", T=np.int64(3), seed=np.int64(0))
    assert data.T == 3 and type(data.T) is int
