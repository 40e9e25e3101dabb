"""Data-set readers never execute data and refuse bad files by name (issue 17).

A crafted CIFAR batch whose pickle would run a command is refused naming the file and the
forbidden global, and the command does not run; NaN/inf SHD spike times, a text file in place
of an SHD .h5 and object arrays in .npy/.npz event files are refused naming the file."""

import os
import pickle

import h5py
import numpy as np
import pytest

from neurodeploy.data import load_dataset
from neurodeploy.data.cifar import UnsafePickleError, read_batches
from neurodeploy.data.events import read_cifar10_dvs, read_gesture_npy
from tests.test_real_data import write_cifar, write_shd


class _Payload:
    """Unpickling this calls ``func(*args)``: the classic pickle code-execution vector."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _crafted_batch(path, payload):
    with open(path, "wb") as fh:
        pickle.dump({b"data": payload, b"labels": [0]}, fh)


@pytest.mark.parametrize(
    ("func", "forbidden"),
    [(os.system, r"posix\.system"), (eval, r"builtins\.eval"), (exec, r"builtins\.exec")],
)
def test_cifar_pickle_payload_is_refused_and_never_runs(tmp_path, func, forbidden):
    write_cifar(tmp_path, "cifar10", 2)
    marker = tmp_path / "pwned"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    if func is os.system:
        arg = f"touch {marker}"
    else:
        arg = f"open({str(marker)!r}, 'w').close()"
    _crafted_batch(batch, _Payload(func, arg))
    with pytest.raises(UnsafePickleError, match=rf"data_batch_3.*{forbidden}"):
        load_dataset("cifar10", tmp_path, T=2)
    assert not marker.exists()
    assert issubclass(UnsafePickleError, ValueError)


def test_cifar_meta_payload_is_refused(tmp_path):
    write_cifar(tmp_path, "cifar100", 2)
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-100-python" / "meta", "wb") as fh:
        pickle.dump({b"fine_label_names": _Payload(os.system, f"touch {marker}")}, fh)
    with pytest.raises(UnsafePickleError, match=r"meta.*posix\.system"):
        load_dataset("cifar100", tmp_path, T=2)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batches_of_every_pickle_protocol_still_load(tmp_path, protocol):
    data = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072) % 256
    labels = [3, np.int64(7)]  # a numpy scalar among the labels
    path = tmp_path / "batch"
    with open(path, "wb") as fh:
        pickle.dump({b"data": data.astype(np.uint8), b"labels": labels}, fh, protocol=protocol)
    x, y = read_batches([path], b"labels")
    assert x.shape == (2, 3, 32, 32) and np.array_equal(x.reshape(2, -1), data)
    assert y.tolist() == [3, 7]


def test_cifar_values_are_never_wrapped_and_lengths_must_match(tmp_path):
    path = tmp_path / "batch"
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.full((1, 3072), 300, np.int64), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match=r"batch.*outside 0\.\.255"):
        read_batches([path], b"labels")
    with open(path, "wb") as fh:
        pickle.dump({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, fh)
    with pytest.raises(ValueError, match=r"batch.*2 images but 1 labels"):
        read_batches([path], b"labels")
    with open(path, "wb") as fh:
        pickle.dump([1, 2, 3], fh)
    with pytest.raises(ValueError, match=r"batch.*not a dict"):
        read_batches([path], b"labels")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_shd_non_finite_spike_time_is_refused_by_file_sample_and_field(tmp_path, bad):
    (tmp_path / "SHD").mkdir()
    samples = [([0.0, 0.5], [0, 1]), ([0.2, bad, 0.3], [3, 4, 5])]
    write_shd(tmp_path / "SHD" / "shd_train.h5", samples, [4, 19])
    write_shd(tmp_path / "SHD" / "shd_test.h5", samples[:1], [4])
    with (
        np.errstate(all="raise"),  # no numpy warning on the way
        pytest.raises(ValueError, match=r"shd_train\.h5.*sample 1.*spikes/times.*non-finite"),
    ):
        load_dataset("shd", tmp_path, T=14)


def test_shd_text_file_in_place_of_h5_is_a_named_error(tmp_path):
    (tmp_path / "SHD").mkdir()
    (tmp_path / "SHD" / "shd_train.h5").write_text("this is not HDF5\n")
    write_shd(tmp_path / "SHD" / "shd_test.h5", [([0.1], [1])], [4])
    with pytest.raises(ValueError, match=r"shd_train\.h5.*not an HDF5 file"):
        load_dataset("shd", tmp_path, T=14)


def test_shd_counts_and_types_must_agree(tmp_path):
    path = tmp_path / "shd_train.h5"
    write_shd(path, [([0.1], [1])], [4])
    with h5py.File(path, "a") as f:
        del f["labels"]
        f.create_dataset("labels", data=np.asarray([4, 5], np.uint16))
    write_shd(tmp_path / "shd_test.h5", [([0.1], [1])], [4])
    with pytest.raises(ValueError, match=r"shd_train\.h5.*2 labels but 1 samples"):
        load_dataset("shd", tmp_path, T=14)


def test_event_files_with_object_arrays_are_refused_by_name(tmp_path):
    npy = tmp_path / "0.npy"
    np.save(npy, np.array([[1, 2, 3, {"x": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"0\.npy"):
        read_gesture_npy(npy)
    npz = tmp_path / "a.npz"
    obj = np.array([1, None], dtype=object)
    np.savez(npz, t=obj, x=obj, y=obj, p=obj)
    with pytest.raises(ValueError, match=r"a\.npz"):
        read_cifar10_dvs(npz)


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_modelnet_non_finite_coordinates_are_refused_by_name(tmp_path, bad):
    from neurodeploy.data.modelnet import PointClouds, read_off

    off = tmp_path / "a.off"
    off.write_text(f"OFF\n3 1 0\n0 0 0\n1 0 0\n0 {bad} 0\n3 0 1 2\n")
    with pytest.raises(ValueError, match=r"a\.off.*non-finite"):
        read_off(off)
    txt = tmp_path / "a_0001.txt"
    txt.write_text(f"0,0,0\n1,0,0\n0,{bad},0\n")
    with pytest.raises(ValueError, match=r"a_0001\.txt.*non-finite"):
        PointClouds([txt], [0], "resampled", 3).load(0)


def test_binary_file_in_place_of_off_is_a_named_error(tmp_path):
    from neurodeploy.data.modelnet import read_off

    off = tmp_path / "a.off"
    off.write_bytes(b"OFF\n\xff\xfe\x00")
    with pytest.raises(ValueError, match=r"a\.off"):
        read_off(off)


def test_shd_file_lacking_a_dataset_is_a_bad_file_error(tmp_path):
    path = tmp_path / "shd_train.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.asarray([1], np.uint16))
    write_shd(tmp_path / "shd_test.h5", [([0.1], [1])], [4])
    with pytest.raises(ValueError, match=r"shd_train\.h5 lacks dataset 'spikes/times'"):
        load_dataset("shd", tmp_path, T=14)
