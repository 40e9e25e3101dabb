"""Loaders for data sets on disk: each test writes a tiny data set in the real on-disk format
(written here from the format's description, not with our reader's code) and checks shapes,
labels and hand-counted frame values; missing folders give the promised message."""

from __future__ import annotations

import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch

from neurodeploy.data.events import (
    CIFAR10_DVS_CLASSES,
    EventFrames,
    Events,
    FrameSpec,
    bin_events,
    per_class_split,
)
from neurodeploy.data.modelnet import read_off, sample_surface
from neurodeploy.data.real import DatasetNotFoundError, list_datasets, load_dataset


# ------------------------------------------------------------------ writers (the formats)
def write_aedat2(path, events):
    """CIFAR10-DVS's original format: '#' header lines (CR LF), then big-endian uint32 pairs
    (address, timestamp); address = y_raw << 8 | x_raw << 1 | bit0 with x = 127 - y_raw,
    y = 127 - x_raw, p = 1 - bit0 (the events-tfds / spikingjelly orientation)."""
    t, x, y, p = (np.asarray(a, dtype=np.int64) for a in events)
    addr = ((127 - x) << 8) | ((127 - y) << 1) | (1 - p)
    body = np.empty(2 * len(t), dtype=">u4")
    body[0::2], body[1::2] = addr, t
    path.write_bytes(b"#!AER-DAT2.0\r\n# This is a raw AE data file\r\n" + body.tobytes())


def write_npz(path, events):
    t, x, y, p = events
    np.savez(path, t=np.asarray(t), x=np.asarray(x), y=np.asarray(y), p=np.asarray(p))


def write_nmnist_bin(path, events):
    """N-MNIST/N-Caltech101 .bin: 5 bytes per event: x, y, p<<7 | t[22:16], t[15:8], t[7:0]."""
    t, x, y, p = (np.asarray(a, dtype=np.int64) for a in events)
    raw = np.stack([x, y, (p << 7) | ((t >> 16) & 0x7F), (t >> 8) & 0xFF, t & 0xFF], axis=1).astype(
        np.uint8
    )
    path.write_bytes(raw.tobytes())


def random_events(rng, n, w, h, t_max=100_000):
    t = np.sort(rng.integers(0, t_max, n))
    return t, rng.integers(0, w, n), rng.integers(0, h, n), rng.integers(0, 2, n)


def make_cifar10_dvs(root, per_class=10, fmt="aedat", n_events=40, seed=0):
    rng = np.random.default_rng(seed)
    truth = {}
    for c in CIFAR10_DVS_CLASSES:
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            ev = random_events(rng, n_events, 128, 128)
            f = root / c / f"cifar10_{c}_{i}.{fmt}"
            (write_aedat2 if fmt == "aedat" else write_npz)(f, ev)
            truth[f.name] = ev
    return truth


# ------------------------------------------------------------------ binning
def test_event_binning_hand_counted():
    # 6 events, T = 3: events k go to frame floor(k * 3 / 6) = 0,0,1,1,2,2
    ev = Events(
        np.array([5, 1, 2, 9, 9, 30]),
        np.array([0, 1, 1, 2, 2, 3]),
        np.array([0, 0, 0, 1, 1, 2]),
        np.array([1, 0, 0, 1, 1, 0]),
    )
    f = bin_events(ev, FrameSpec((4, 3), 2, 3, "events"))
    assert f.shape == (3, 2, 3, 4) and f.sum() == 6
    # time order: t=1 (x1,y0,p0), t=2 (x1,y0,p0) | t=5 (x0,y0,p1), t=9 (x2,y1,p1)
    #           | t=9 (x2,y1,p1), t=30 (x3,y2,p0)
    assert f[0, 0, 0, 1] == 2
    assert f[1, 1, 0, 0] == 1 and f[1, 1, 1, 2] == 1
    assert f[2, 1, 1, 2] == 1 and f[2, 0, 2, 3] == 1
    # time binning: span 0..29 (+1): frame floor((t-1)*3/30) -> t=1,2,5,9,9 -> 0, t=30 -> 2
    g = bin_events(ev, FrameSpec((4, 3), 2, 3, "time"))
    assert g[0].sum() == 5 and g[1].sum() == 0 and g[2, 0, 2, 3] == 1


def test_event_binning_matches_tonic_when_count_divides():
    import tonic

    rng = np.random.default_rng(1)
    t, x, y, p = random_events(rng, 120, 34, 34)
    ev = np.zeros(120, dtype=[("x", int), ("y", int), ("t", int), ("p", int)])
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    ref = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), n_event_bins=4)(ev)
    ours = bin_events(Events(t, x, y, p), FrameSpec((34, 34), 2, 4, "events"))
    np.testing.assert_array_equal(ours, ref.astype(np.float32))


def test_out_of_range_event_is_an_error_naming_the_file():
    ev = Events(np.array([0, 1]), np.array([0, 40]), np.array([0, 0]), np.array([0, 1]))
    with pytest.raises(ValueError, match="rec.bin.*x outside"):
        bin_events(ev, FrameSpec((34, 34), 2, 2), "rec.bin")


def test_per_class_split_is_first_ninety_percent():
    labels = [0] * 10 + [1] * 5
    tr, te = per_class_split(labels, 0.9)
    assert tr == [*range(9), 10, 11, 12, 13, 14] and te == [9]  # ceil(4.5) = 5: class 1 all train


# ------------------------------------------------------------------ CIFAR10-DVS
def test_cifar10_dvs_aedat_and_npz_give_the_same_frames(tmp_path):
    truth = make_cifar10_dvs(tmp_path / "a", fmt="aedat")
    make_cifar10_dvs(tmp_path / "b" / "events_np", fmt="npz")  # spikingjelly's layout, same events
    da = load_dataset("cifar10-dvs", tmp_path / "a", T=4, size=None)
    db = load_dataset("cifar10-dvs", tmp_path / "b", T=4, size=None)
    assert da.input_shape == (2, 128, 128) and da.num_classes == 10 and da.temporal
    assert len(da.train) == 90 and len(da.test) == 10  # 9 + 1 per class
    assert da.test.labels == list(range(10))
    x, y = da.train[0]
    assert x.shape == (4, 2, 128, 128) and y == 0
    # hand count: 40 events, 10 per frame, at the written pixels
    _, xs, ys, ps = truth["cifar10_airplane_0.aedat"]
    expect = np.zeros((4, 2, 128, 128), dtype=np.float32)
    for k in range(40):
        expect[k * 4 // 40, ps[k], ys[k], xs[k]] += 1
    np.testing.assert_array_equal(x.numpy(), expect)
    for i in (0, 45, 89):
        assert torch.equal(da.train[i][0], db.train[i][0])


def test_cifar10_dvs_downsampled_and_augmented(tmp_path):
    make_cifar10_dvs(tmp_path, per_class=10)
    d = load_dataset("cifar10-dvs", tmp_path, T=4, size=48, augment=["flip", "roll"])
    x, _ = d.train[3]
    assert x.shape == (4, 2, 48, 48) and d.input_shape == (2, 48, 48)
    # bilinear resizing keeps the mean count (128/48 is not an integer, so only approximately)
    raw = load_dataset("cifar10-dvs", tmp_path, T=4, size=None).train[3][0]
    assert abs(float(x.sum()) * (128 / 48) ** 2 - float(raw.sum())) < 0.3 * float(raw.sum())
    d.train.set_epoch(0)
    a0 = d.train[3][0]
    d.train.set_epoch(1)
    a1 = d.train[3][0]
    d.train.set_epoch(0)
    assert torch.equal(d.train[3][0], a0)  # deterministic per (seed, epoch, index)
    assert float(a0.sum()) == pytest.approx(float(a1.sum())) and not torch.equal(
        a0, a1
    )  # moved, not dropped
    assert torch.equal(
        d.test[0][0], load_dataset("cifar10-dvs", tmp_path, T=4).test[0][0]
    )  # test never augmented


def test_cifar10_dvs_missing_or_incomplete(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="CIFAR10-DVS.*not found.*airplane.*figshare"):
        load_dataset("cifar10-dvs", tmp_path / "nowhere")
    make_cifar10_dvs(tmp_path, per_class=2)
    for f in (tmp_path / "truck").iterdir():
        f.unlink()
    (tmp_path / "ship").rename(tmp_path / "boat")
    with pytest.raises(
        DatasetNotFoundError,
        match=r"incomplete: missing class folder\(s\) \['ship'\], empty \['truck'\]",
    ):
        load_dataset("cifar10-dvs", tmp_path)


@pytest.mark.skipif(
    __import__("importlib").util.find_spec("aedat") is not None, reason="aedat installed"
)
def test_cifar10_dvs_aedat4_without_the_aedat_package_says_so(tmp_path):
    make_cifar10_dvs(tmp_path, per_class=10, fmt="npz")
    (tmp_path / "airplane" / "a0.aedat4").write_bytes(b"\x00" * 16)
    d = load_dataset("cifar10-dvs", tmp_path, T=2)
    with pytest.raises(ImportError, match="needs the `aedat` package"):
        d.train[0]


# ------------------------------------------------------------------ N-MNIST, N-Caltech101
def test_nmnist_bin_files(tmp_path):
    rng = np.random.default_rng(2)
    truth = {}
    for split in ("Train", "Test"):
        for d in range(10):
            (tmp_path / "NMNIST" / split / str(d)).mkdir(parents=True)
            ev = random_events(rng, 30, 34, 34, t_max=300_000)
            write_nmnist_bin(tmp_path / "NMNIST" / split / str(d) / "00001.bin", ev)
            truth[(split, d)] = ev
    data = load_dataset("n-mnist", tmp_path, T=3)
    assert data.input_shape == (2, 34, 34) and len(data.train) == 10 and len(data.test) == 10
    x, y = data.test[7]
    assert y == 7 and x.shape == (3, 2, 34, 34) and x.sum() == 30
    t, xs, ys, ps = truth[("Test", 7)]
    span = t[-1] - t[0] + 1
    expect = np.zeros((3, 2, 34, 34), dtype=np.float32)
    for k in range(30):
        expect[(t[k] - t[0]) * 3 // span, ps[k], ys[k], xs[k]] += 1
    np.testing.assert_array_equal(x.numpy(), expect)
    shutil.rmtree(tmp_path / "NMNIST" / "Test")
    with pytest.raises(
        DatasetNotFoundError, match=r"N-MNIST.*Test.*expected <root>/Train/\{0..9\}/\*.bin"
    ):
        load_dataset("n-mnist", tmp_path, T=3)


def test_ncaltech101_bin_files_shifted_to_origin(tmp_path):
    rng = np.random.default_rng(3)
    base = tmp_path / "Caltech101"
    for c in ("accordion", "BACKGROUND_Google"):
        (base / c).mkdir(parents=True)
        for i in range(10):
            t, x, y, p = random_events(rng, 20, 150, 100)
            write_nmnist_bin(base / c / f"image_{i:04d}.bin", (t, x + 30, y + 20, p))
    with pytest.raises(
        DatasetNotFoundError, match="has 2 class folders.*expected 101.*allow_partial"
    ):
        load_dataset("n-caltech101", tmp_path, T=2)
    d = load_dataset("n-caltech101", tmp_path, T=2, size=None, allow_partial=True)
    assert d.classes == ("BACKGROUND_Google", "accordion") and d.num_classes == 2
    assert len(d.train) == 18 and len(d.test) == 2 and d.input_shape == (2, 180, 240)
    x, y = d.train[0]
    nz = x.sum(dim=(0, 1)).nonzero()
    assert (
        nz[:, 0].min() == 0 and nz[:, 1].min() == 0
    )  # min x and min y moved to 0 (tonic's convention)
    assert load_dataset("n-caltech101", tmp_path, T=2, allow_partial=True).train[0][0].shape == (
        2,
        2,
        48,
        48,
    )


# ------------------------------------------------------------------ DVS128 Gesture
def test_dvs_gesture_tonic_npy_layout(tmp_path):
    rng = np.random.default_rng(4)
    for split, user, labels in (
        ("ibmGestureTrain", "user01_fluorescent", (0, 3, 10)),
        ("ibmGestureTest", "user24_led", (5,)),
    ):
        (tmp_path / "DVSGesture" / split / user).mkdir(parents=True)
        for lab in labels:
            t, x, y, p = random_events(
                rng, 64, 128, 128, t_max=6000
            )  # t in ms, tonic's preprocessing
            np.save(
                tmp_path / "DVSGesture" / split / user / f"{lab}.npy", np.stack([x, y, p, t], 1)
            )
    d = load_dataset("dvs-gesture", tmp_path, T=8, size=32, augment=["roll"])
    assert d.num_classes == 11 and sorted(d.train.labels) == [0, 3, 10] and d.test.labels == [5]
    x, _ = d.test[0]
    assert x.shape == (8, 2, 32, 32)
    with pytest.raises(ValueError, match="flip.*left- and right-hand"):
        load_dataset("dvs-gesture", tmp_path, T=8, augment=["flip"])
    with pytest.raises(DatasetNotFoundError, match="DVS128 Gesture.*ibmGestureTrain"):
        load_dataset("dvs-gesture", tmp_path / "empty", T=8)


# ------------------------------------------------------------------ SHD
def write_shd(path, samples, labels):
    with h5py.File(path, "w") as f:
        vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
        times = f.create_dataset("spikes/times", (len(samples),), dtype=vf)
        units = f.create_dataset("spikes/units", (len(samples),), dtype=vu)
        for i, (t, u) in enumerate(samples):
            times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.asarray(labels, np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"d%d" % i for i in range(20)]))


def test_shd_h5(tmp_path):
    (tmp_path / "SHD").mkdir()
    samples = [([0.0, 0.05, 0.5, 1.39], [0, 699, 7, 7]), ([0.2], [3])]
    write_shd(tmp_path / "SHD" / "shd_train.h5", samples, [4, 19])
    write_shd(tmp_path / "SHD" / "shd_test.h5", samples[:1], [4])
    d = load_dataset("shd", tmp_path, T=14)  # 0.1 s bins over [0, 1.4)
    assert d.input_shape == (700,) and d.num_classes == 20
    x, y = d.train[0]
    assert y == 4 and x.shape == (14, 700) and x.sum() == 4
    assert x[0, 0] == 1 and x[0, 699] == 1 and x[5, 7] == 1 and x[13, 7] == 1
    x7, _ = load_dataset("shd", tmp_path, T=14, channel_factor=7).train[0]
    assert x7.shape == (14, 100) and x7[0, 99] == 1 and x7[13, 1] == 1
    with pytest.raises(ValueError, match="events up to 1.39.*beyond duration=1.0"):
        load_dataset("shd", tmp_path, T=10, duration=1.0)
    (tmp_path / "SHD" / "shd_test.h5").unlink()
    with pytest.raises(DatasetNotFoundError, match="SHD.*shd_test.h5"):
        load_dataset("shd", tmp_path, T=10)


# ------------------------------------------------------------------ CIFAR10/100
def write_cifar(root, name, n_per_batch, seed=0):
    rng = np.random.default_rng(seed)
    images = {}
    if name == "cifar10":
        base = root / "cifar-10-batches-py"
        base.mkdir(parents=True)
        files, key = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
        meta = ("batches.meta", {b"label_names": [c.encode() for c in CIFAR10_DVS_CLASSES]})
    else:
        base = root / "cifar-100-python"
        base.mkdir(parents=True)
        files, key = ["train", "test"], b"fine_labels"
        meta = ("meta", {b"fine_label_names": [b"c%d" % i for i in range(100)]})
    for f in files:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n_per_batch).tolist()
        with open(base / f, "wb") as fh:
            pickle.dump({b"data": data, key: labels, b"batch_label": f.encode()}, fh)
        images[f] = (data, labels)
    with open(base / meta[0], "wb") as fh:
        pickle.dump(meta[1], fh)
    return images


def test_cifar10_pickles(tmp_path):
    images = write_cifar(tmp_path, "cifar10", 3)
    d = load_dataset("cifar10", tmp_path, T=4)
    assert (
        len(d.train) == 15 and len(d.test) == 3 and d.input_shape == (3, 32, 32) and not d.temporal
    )
    assert d.classes[0] == "airplane"
    x, y = d.train[4]  # second image of data_batch_2
    data, labels = images["data_batch_2"]
    assert y == labels[1]
    # pixel (row 5, col 7) of the G plane is byte 1024 + 5*32 + 7; normalised by CIFAR10's mean/std
    expect = (data[1, 1024 + 5 * 32 + 7] / 255 - 0.4822) / 0.2435
    assert float(x[1, 5, 7]) == pytest.approx(expect, abs=1e-6)
    assert d.encode(torch.stack([x, x]), 4).shape == (4, 2, 3, 32, 32)
    aug = load_dataset("cifar10", tmp_path, T=4, augment=["crop", "flip", "cutout"]).train[4][0]
    assert aug.shape == (3, 32, 32) and not torch.equal(aug, x)


def test_cifar100_and_missing_files(tmp_path):
    write_cifar(tmp_path, "cifar100", 4)
    d = load_dataset("cifar100", tmp_path / "cifar-100-python", T=2)
    assert d.num_classes == 100 and len(d.train) == 4 and d.classes[3] == "c3"
    (tmp_path / "cifar-100-python" / "test").unlink()
    with pytest.raises(
        DatasetNotFoundError, match=r"cifar100.*lacks \['test'\].*cifar-100-python.tar.gz"
    ):
        load_dataset("cifar100", tmp_path, T=2)


# ------------------------------------------------------------------ ModelNet
CUBE_OFF = """OFF
8 10 0
-1 -1 -1
1 -1 -1
1 1 -1
-1 1 -1
-1 -1 1
1 -1 1
1 1 1
-1 1 1
3 0 1 2
3 0 2 3
3 4 5 6
3 4 6 7
3 0 1 5
3 0 5 4
3 2 3 7
3 2 7 6
4 1 2 6 5
4 0 3 7 4
"""


def test_modelnet_off_layout_samples_the_surface(tmp_path):
    names = [f"class{i:02d}" for i in range(10)]
    for c in names:
        for split in ("train", "test"):
            (tmp_path / "ModelNet10" / c / split).mkdir(parents=True)
            text = (
                CUBE_OFF if c != "class03" else CUBE_OFF.replace("OFF\n8 10 0", "OFF8 10 0")
            )  # ModelNet's glued header
            (tmp_path / "ModelNet10" / c / split / f"{c}_0001.off").write_text(text)
    d = load_dataset("modelnet10", tmp_path, T=2, num_points=256)
    assert d.classes == tuple(names) and d.input_shape == (3, 256)
    assert len(d.train) == 10 and d.train.labels == list(range(10))
    x, y = d.test[3]
    assert y == 3 and x.shape == (3, 256)
    # centred on the centroid, farthest point at norm 1
    assert float(x.mean(1).abs().max()) < 1e-6 and float(x.norm(dim=0).max()) == pytest.approx(1.0)
    # the sampler puts every point on the cube's surface (largest |coordinate| = 1), quads included
    verts, tris = read_off(tmp_path / "ModelNet10" / "class03" / "test" / "class03_0001.off")
    assert len(tris) == 12
    pts = sample_surface(verts, tris, 2000, np.random.default_rng(0))
    np.testing.assert_allclose(np.abs(pts).max(1), 1.0, atol=1e-12)
    assert (np.abs(pts[:, 0] + 1) < 1e-12).mean() == pytest.approx(
        1 / 6, abs=0.03
    )  # area-weighted: 1/6 per face
    assert torch.equal(d.test[3][0], x)  # test clouds are fixed
    with pytest.raises(DatasetNotFoundError, match="ModelNet40.*has 10 class folders.*expected 40"):
        load_dataset("modelnet40", tmp_path / "ModelNet10", T=2)


def test_modelnet_resampled_layout(tmp_path):
    base = tmp_path / "modelnet40_normal_resampled"
    names = [f"c{i}" for i in range(40)]
    names[5] = "night_stand"
    base.mkdir()
    (base / "modelnet40_shape_names.txt").write_text("\n".join(names) + "\n")
    rng = np.random.default_rng(5)
    pts = {}
    for split, cls in (("train", ["night_stand", "c0"]), ("test", ["c7"])):
        ids = [f"{c}_0001" for c in cls]
        (base / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
        for c, sid in zip(cls, ids):
            (base / c).mkdir(exist_ok=True)
            a = rng.normal(size=(50, 6))
            np.savetxt(base / c / f"{sid}.txt", a, delimiter=",", fmt="%.6f")
            pts[sid] = np.round(a, 6)
    d = load_dataset(
        "modelnet40", tmp_path, T=2, num_points=20, augment=["scale", "shift", "jitter", "rotate"]
    )
    assert d.train.labels == [5, 0] and d.test.labels == [7] and d.input_shape == (3, 20)
    x, _ = d.test[0]
    p = pts["c7_0001"][:20, :3]
    p = p - p.mean(0)
    p = p / np.linalg.norm(p, axis=1).max()
    np.testing.assert_allclose(x.numpy(), p.T, atol=1e-5)
    assert d.train[0][0].shape == (3, 20)
    (base / "c0" / "c0_0001.txt").unlink()
    with pytest.raises(
        DatasetNotFoundError, match="c0_0001.txt listed in modelnet40_train.txt is missing"
    ):
        load_dataset("modelnet40", tmp_path, T=2)


def test_registry_and_unknown_name(tmp_path):
    assert set(list_datasets()) == {
        "cifar10-dvs",
        "dvs-gesture",
        "n-caltech101",
        "n-mnist",
        "shd",
        "cifar10",
        "cifar100",
        "modelnet10",
        "modelnet40",
    }
    with pytest.raises(ValueError, match="unknown data set 'imagenet'"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(
        ValueError,
        match=r"'modelnet40': unknown option\(s\) \['points'\]; available: \['num_points'",
    ):
        load_dataset("modelnet40", tmp_path, points=512)
    with pytest.raises(ValueError, match="augment: unknown"):
        EventFrames(["a"], [0], lambda i: None, FrameSpec((2, 2), 2, 1), augment=["warp"])


# ------------------------------------------------------------------ training from disk, end to end
def test_train_from_disk_through_the_cli_with_a_recipe(tmp_path):
    import json

    from neurodeploy.cli import main
    from neurodeploy.training.checkpoint import load_model

    rng = np.random.default_rng(6)
    for split in ("Train", "Test"):
        for d in range(10):
            (tmp_path / "nm" / split / str(d)).mkdir(parents=True)
            for i in range(2):
                write_nmnist_bin(
                    tmp_path / "nm" / split / str(d) / f"{i:05d}.bin",
                    random_events(rng, 50, 34, 34),
                )
    recipe = __import__("pathlib").Path(__file__).resolve().parents[1] / "recipes" / "n-mnist.toml"
    run = tmp_path / "run"
    rc = main(
        [
            "--threads",
            "1",
            "train",
            "--config",
            str(recipe),
            "--data-root",
            str(tmp_path / "nm"),
            "--T",
            "2",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--workers",
            "1",
            "--out",
            str(run),
            "--no-progress",
        ]
    )
    assert rc == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["task"] == "n-mnist" and cfg["T"] == 2 and cfg["epochs"] == 1  # typed options win
    assert cfg["lr"] == 1e-3 and cfg["data"] == {"binning": "time"}  # the rest from the recipe
    (rec,) = [json.loads(ln) for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert 0 <= rec["test_acc"] <= 1 and np.isfinite(rec["train_loss"])
    model, _ = load_model(run / "checkpoint.pt")
    assert model.input_shape == (2, 34, 34) and model.num_classes == 10
    assert (
        main(["train", "--task", "n-mnist", "--out", str(tmp_path / "r2")]) == 2
    )  # no --data-root: refused
