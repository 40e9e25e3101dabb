"""fashion-mnist: the IDX reader on tiny hand-written files, the folder lookup and its errors, the
task's direct encoding, the validation rule, and the real Debian files (skipped without the
package, failed under CI=true)."""

from __future__ import annotations

import dataclasses
import gzip
import os
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.cli import main
from neurodeploy.data import TASKS, base, load_task
from neurodeploy.data import fashion as F
from neurodeploy.training.config import TrainConfig

UBYTE, SHORT = 0x08, 0x0B


def _idx(code: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims) + payload


def _write(path: Path, blob: bytes, gz: bool) -> Path:
    path = path.with_name(path.name + ".gz") if gz else path
    path.write_bytes(gzip.compress(blob) if gz else blob)
    return path


def _images(values: list[int], n: int) -> bytes:
    """``n`` 28x28 images: image i is all ``values[i]`` except pixel (0, 0) = i."""
    out = np.empty((n, 28, 28), np.uint8)
    for i in range(n):
        out[i] = values[i]
        out[i, 0, 0] = i
    return _idx(UBYTE, (n, 28, 28), out.tobytes())


def _tiny_folder(root: Path, gz_train: bool = True, gz_test: bool = False) -> Path:
    """3 train images (values 0, 51, 255; labels 9, 0, 3) and 2 test (values 102, 204; 1, 8)."""
    root.mkdir(parents=True, exist_ok=True)
    _write(root / F.FILES["train_images"], _images([0, 51, 255], 3), gz_train)
    _write(root / F.FILES["train_labels"], _idx(UBYTE, (3,), bytes([9, 0, 3])), gz_train)
    _write(root / F.FILES["test_images"], _images([102, 204], 2), gz_test)
    _write(root / F.FILES["test_labels"], _idx(UBYTE, (2,), bytes([1, 8])), gz_test)
    return root


# ------------------------------------------------------------------------------ IDX reader
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_uint8_matrix(tmp_path: Path, gz: bool) -> None:
    path = _write(tmp_path / "m-idx2-ubyte", _idx(UBYTE, (2, 3), bytes([1, 2, 3, 4, 5, 250])), gz)
    a = F.read_idx(path)
    assert a.dtype == np.uint8 and a.shape == (2, 3)
    assert a.tolist() == [[1, 2, 3], [4, 5, 250]]


def test_read_idx_big_endian_int16_to_native(tmp_path: Path) -> None:
    # 0x0102 = 258 and 0xFFFF = -1 as big-endian int16
    path = _write(tmp_path / "s", _idx(SHORT, (2,), bytes([0x01, 0x02, 0xFF, 0xFF])), False)
    a = F.read_idx(path)
    assert a.tolist() == [258, -1] and a.dtype == np.int16 and a.dtype.isnative


@pytest.mark.parametrize(
    ("blob", "fault"),
    [
        (bytes([0, 1, UBYTE, 1]) + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
        (bytes([0, 0, 0x07, 1]) + struct.pack(">I", 1) + b"\x00", "not an IDX file"),
        (bytes([0, 0, UBYTE, 0]), "not an IDX file"),
        (bytes([0, 0]), "too short"),
        (bytes([0, 0, UBYTE, 3]) + struct.pack(">I", 5), "truncated in the header"),
        (_idx(UBYTE, (2, 3), bytes(5)), "truncated: dims (2, 3) of uint8 need 6 bytes"),
        (_idx(SHORT, (3,), bytes(5)), "need 6 bytes of data, the file has 5"),
        (_idx(UBYTE, (2,), bytes(3)), "1 trailing bytes"),
    ],
    ids=["magic", "type", "ndim0", "short", "header", "payload", "int16", "trailing"],
)
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_faults_are_named(tmp_path: Path, blob: bytes, fault: str, gz: bool) -> None:
    path = _write(tmp_path / "bad-idx", blob, gz)
    with pytest.raises(F.IDXError, match=re.escape(fault)) as e:
        F.read_idx(path)
    assert str(path) in str(e.value)


def test_read_idx_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    full = gzip.compress(_idx(UBYTE, (100,), bytes(range(100))))
    path.write_bytes(full[: len(full) - 12])  # the stream ends before its CRC and length
    with pytest.raises(F.IDXError, match="damaged gzip stream") as e:
        F.read_idx(path)
    assert str(path) in str(e.value)


# ------------------------------------------------------------------------------ the folder
@pytest.mark.parametrize(("gz_train", "gz_test"), [(True, False), (False, True)])
def test_read_tiny_folder(tmp_path: Path, gz_train: bool, gz_test: bool) -> None:
    root = _tiny_folder(tmp_path / "fm", gz_train, gz_test)
    x_tr, y_tr, x_te, y_te = F.read_fashion_mnist(root)
    assert (x_tr.shape, x_tr.dtype, x_te.shape) == ((3, 28, 28), np.uint8, (2, 28, 28))
    assert y_tr.tolist() == [9, 0, 3] and y_te.tolist() == [1, 8] and y_tr.dtype == np.int64
    assert x_tr[2, 5, 5] == 255 and x_tr[1, 0, 0] == 1 and x_te[1, 27, 27] == 204
    x_tr[:] = 7  # the caller's copy: the next call still sees the files
    assert F.read_fashion_mnist(root)[0][2, 5, 5] == 255


def test_a_replaced_file_is_read_again(tmp_path: Path) -> None:
    root = _tiny_folder(tmp_path / "fm")
    assert F.read_fashion_mnist(root)[3].tolist() == [1, 8]
    (root / "t10k-images-idx3-ubyte").write_bytes(_images([0, 0, 0], 3))
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(UBYTE, (3,), bytes([2, 2, 7])))
    assert F.read_fashion_mnist(root)[3].tolist() == [2, 2, 7]


def test_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _tiny_folder(tmp_path / "elsewhere")
    monkeypatch.setenv(F.ROOT_ENV, str(root))
    assert F.fashion_root() == root
    assert F.read_fashion_mnist()[1].tolist() == [9, 0, 3]
    assert F.fashion_root(tmp_path) == tmp_path  # the argument wins
    monkeypatch.delenv(F.ROOT_ENV)
    assert F.fashion_root() == F.DEFAULT_ROOT == Path("/usr/share/datasets/fashion-mnist")


def test_missing_folder_says_apt_get(tmp_path: Path) -> None:
    with pytest.raises(F.FashionMNISTNotFoundError) as e:
        F.read_fashion_mnist(tmp_path / "nowhere")
    msg = str(e.value)
    assert "apt-get install dataset-fashion-mnist" in msg and str(tmp_path / "nowhere") in msg
    assert F.ROOT_ENV in msg and "train-images-idx3-ubyte" in msg


def test_missing_file_is_named(tmp_path: Path) -> None:
    root = _tiny_folder(tmp_path / "fm")
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(F.FashionMNISTNotFoundError, match=r"t10k-labels-idx1-ubyte\.gz \(or "):
        F.read_fashion_mnist(root)


def test_wrong_contents_are_named(tmp_path: Path) -> None:
    root = _tiny_folder(tmp_path / "a")
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(UBYTE, (2,), bytes([1, 10])))
    with pytest.raises(F.IDXError, match="label 10 outside 0..9"):
        F.read_fashion_mnist(root)
    (root / "t10k-labels-idx1-ubyte").write_bytes(_idx(UBYTE, (3,), bytes([1, 2, 3])))
    with pytest.raises(F.IDXError, match="2 images but .* has 3 labels"):
        F.read_fashion_mnist(root)
    root = _tiny_folder(tmp_path / "b")
    (root / "t10k-images-idx3-ubyte").write_bytes(_idx(UBYTE, (2, 28, 27), bytes(2 * 28 * 27)))
    with pytest.raises(F.IDXError, match=r"expected uint8 \(N, 28, 28\)"):
        F.read_fashion_mnist(root)


# ------------------------------------------------------------------------------ the task
def test_task_direct_encoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(F.ROOT_ENV, str(_tiny_folder(tmp_path / "fm")))
    data = TASKS["fashion-mnist"].build(T=3, seed=5)  # no in-memory cache: tiny data stay here
    assert (data.input_shape, data.num_classes, data.temporal) == ((1, 28, 28), 10, False)
    assert data.x_train.shape == (3, 1, 28, 28) and data.x_train.dtype == torch.float32
    # x = pixel / 255: 51 -> 0.2, 255 -> 1.0, 102 -> 0.4
    assert data.x_train[1, 0, 9, 9] == pytest.approx(0.2) and data.x_train[2, 0, 3, 3] == 1.0
    assert data.x_test[0, 0, 9, 9] == pytest.approx(0.4) and float(data.x_train[0].max()) == 0.0
    assert data.y_train.tolist() == [9, 0, 3] and data.y_test.dtype == torch.int64
    seq = data.encode(data.x_train)  # (T, B, 1, 28, 28): the same image at every step
    assert seq.shape == (3, 3, 1, 28, 28) and all(torch.equal(s, data.x_train) for s in seq)
    other = TASKS["fashion-mnist"].build(T=1, seed=0)  # seed and T change nothing
    assert torch.equal(other.x_train, data.x_train) and torch.equal(other.y_test, data.y_test)


def test_validation_split_is_the_last_5000() -> None:
    x, y = torch.arange(5003.0).view(-1, 1), torch.arange(5003)
    x_fit, y_fit, x_val, y_val = F.validation_split(x, y)
    assert y_fit.tolist() == [0, 1, 2] and len(y_val) == 5000 and int(y_val[0]) == 3
    assert torch.equal(x_fit[:, 0], torch.tensor([0.0, 1.0, 2.0]))
    assert torch.equal(x_val[:, 0], torch.arange(3.0, 5003.0))
    with pytest.raises(ValueError, match="more than 5000"):
        F.validation_split(x[:5000], y[:5000])


def test_default_model_and_no_data_root() -> None:
    assert TrainConfig(task="fashion-mnist").model == "vgg"
    with pytest.raises(ValueError, match=F.ROOT_ENV):
        TrainConfig(task="fashion-mnist", data_root="/somewhere")


def test_tasks_command_lists_without_building(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`neurodeploy tasks` lists the package-backed tasks from their metadata: it neither reads
    the files (works without the package) nor builds event-fashion / spoken-digits."""
    monkeypatch.setenv(F.ROOT_ENV, str(tmp_path / "nowhere"))

    def boom(T: int, seed: int) -> None:
        raise AssertionError("`tasks` built a package-backed task")

    for name in ("fashion-mnist", "event-fashion", "spoken-digits"):
        monkeypatch.setitem(TASKS, name, dataclasses.replace(TASKS[name], generate=boom))
    base._load_cached.cache_clear()
    try:
        assert main(["tasks"]) == 0
    finally:
        base._load_cached.cache_clear()
    out = capsys.readouterr().out
    assert "fashion-mnist" in out and "needs dataset-fashion-mnist" in out
    assert "spoken-digits" in out and "needs espeak-ng" in out


# ------------------------------------------------------------------------------ the real files
def _real_root() -> Path:
    """The Debian package's folder; skipped without it, a failure under CI=true (the set-up
    script installs dataset-fashion-mnist there)."""
    root = F.DEFAULT_ROOT
    if not root.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {root} missing; scripts/setup_env.sh installs it")
        pytest.skip(f"{root} missing: apt-get install dataset-fashion-mnist")
    return root


def test_real_files_shapes_labels_and_statistics() -> None:
    x_tr, y_tr, x_te, y_te = F.read_fashion_mnist(_real_root())
    assert x_tr.shape == (60000, 28, 28) and x_te.shape == (10000, 28, 28)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    # the published files' first labels (Zalando's README order: 9 = ankle boot, 0 = T-shirt)
    assert y_tr[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]
    assert y_te[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]
    assert np.bincount(y_tr).tolist() == [6000] * 10
    assert np.bincount(y_te).tolist() == [1000] * 10
    assert abs(x_tr.mean() / 255 - 0.2860) < 1e-4  # the data set's well-known mean


def test_real_task_and_validation_balance(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(F.ROOT_ENV, str(_real_root()))
    data = load_task("fashion-mnist", T=2)
    assert tuple(data.x_train.shape) == (60000, 1, 28, 28)
    assert float(data.x_train.max()) == 1.0 and float(data.x_train.min()) == 0.0
    _, _, _, y_val = F.validation_split(data.x_train, data.y_train)
    counts = torch.bincount(y_val, minlength=10)
    assert len(y_val) == F.VALIDATION_SIZE and int(counts.min()) >= 400
