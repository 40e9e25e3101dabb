"""``--config recipe.toml`` as an input source (the data ``train --config`` reads), the one-source
rule, the train/test split of a ``--data`` file for ``finetune`` and "n/a" for a missing
accuracy. The data set on disk is a two-sample SHD written by the test (h5py), the graph an
snnTorch MLP exported by snnTorch itself (tests/test_foreign_e2e.py)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.cli import main
from neurodeploy.data.inputs import HOLDOUT_EVERY, labelled_splits

pytest.importorskip("nir")
from .test_foreign_e2e import _cli, write_snntorch_mlp


def _write_shd(root: Path) -> None:
    """SHD as ``load_shd`` reads it: two samples per split, labels 4 and 19."""
    h5py = pytest.importorskip("h5py")
    base = root / "SHD"
    base.mkdir(parents=True)
    samples = [([0.0, 0.05, 0.5, 0.9], [0, 699, 7, 7]), ([0.2, 0.3], [3, 4])]
    for split in ("train", "test"):
        with h5py.File(base / f"shd_{split}.h5", "w") as h:
            vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
            times = h.create_dataset("spikes/times", (len(samples),), dtype=vf)
            units = h.create_dataset("spikes/units", (len(samples),), dtype=vu)
            for i, (t, u) in enumerate(samples):
                times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
            h.create_dataset("labels", data=np.asarray([4, 19], np.uint16))


def _err(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(args)
    assert rc == 2, f"neurodeploy {' '.join(args)} exited {rc}, expected 2"
    return capsys.readouterr().err


def test_config_through_verify_and_profile(tmp_path: Path, capsys) -> None:
    """The recipe's task, T and [data] options (binary = true: counts clipped to spikes) as
    ``train`` reads them; data_root from --data-root (verify) or from the recipe (profile)."""
    _write_shd(tmp_path)
    f = tmp_path / "shd.nir"
    write_snntorch_mlp(f, n_in=(700,), n_out=20)
    recipe = tmp_path / "shd.toml"
    recipe.write_text('task = "shd"\nmodel = "mlp"\nT = 3\n[data]\nbinary = true\n')
    v = _cli(
        ["verify", str(f), "--config", str(recipe), "--data-root", str(tmp_path), "--no-lava"],
        capsys,
    )
    assert f"--config {recipe}: data set shd" in v and "2 of 2 samples" in v, v
    rooted = tmp_path / "rooted.toml"
    rooted.write_text(recipe.read_text().replace("T = 3", f"T = 3\ndata_root = '{tmp_path}'"))
    out = tmp_path / "p"
    p = _cli(["profile", str(f), "--config", str(rooted), "-o", str(out)], capsys)
    acc = re.search(r"accuracy ([0-9.]+)", p)
    assert acc is not None and 0.0 <= float(acc.group(1)) <= 1.0, p
    # T from the recipe: 3 steps of the 700-channel input
    assert "T = 3, 2 test samples" in (out / "profile.md").read_text()


def test_config_offline_task(tmp_path: Path, capsys) -> None:
    """A recipe on an offline task (recipes/tiny-digits.toml: digits, T = 2) reads that task;
    verify reads its test split."""
    from neurodeploy.data import load_task

    f = tmp_path / "mlp.nir"
    task = load_task("digits")
    write_snntorch_mlp(f, n_in=tuple(task.input_shape), n_out=task.num_classes)
    v = _cli(
        ["verify", str(f), "--config", "recipes/tiny-digits.toml", "--no-lava", "--samples", "5"],
        capsys,
    )
    assert "--config recipes/tiny-digits.toml: task digits" in v, v


def test_config_refusals_name_the_options(tmp_path: Path, capsys) -> None:
    f = tmp_path / "mlp.nir"
    write_snntorch_mlp(f)
    err = _err(["verify", str(f), "--config", "recipes/shd.toml", "--task", "digits"], capsys)
    assert "--task and --config: give one input source" in err, err
    err = _err(["verify", str(f), "--data-root", str(tmp_path)], capsys)
    assert "--dataset NAME and --data-root DIR go together" in err, err
    # a data set on disk without a folder: the recipe validation names data_root
    err = _err(["verify", str(f), "--config", "recipes/shd.toml", "--no-lava"], capsys)
    assert "data_root" in err and "--data-root" in err, err
    err = _err(["verify", str(f), "--config", str(tmp_path / "none.toml")], capsys)
    assert "none.toml" in err, err


def test_missing_accuracy_reads_na(tmp_path: Path, capsys) -> None:
    """Random input has no labels: the profile's printout and its Markdown say n/a."""
    f = tmp_path / "mlp.nir"
    write_snntorch_mlp(f)
    out = tmp_path / "p"
    p = _cli(
        ["profile", str(f), "--random-input", "0.3", "--T", "4", "--samples", "4", "-o", str(out)],
        capsys,
    )
    assert "accuracy n/a" in p, p
    assert "| accuracy | n/a |" in (out / "profile.md").read_text()


def _npz(path: Path, n: int, **extra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = (np.arange(n * 4).reshape(n, 4) % 3).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.int64)
    np.savez(path, x=x, y=y, **extra)
    return x, y


def test_data_file_split_is_every_fifth_sample(tmp_path: Path) -> None:
    """Without x_train: sample i is test data iff i % 5 == 4 (here 4 and 9 of 10)."""
    p = tmp_path / "d.npz"
    x, y = _npz(p, 10)
    assert HOLDOUT_EVERY == 5
    d = labelled_splits((4,), data=str(p), T=2)
    assert torch.equal(d.x_test, torch.as_tensor(x[[4, 9]]))
    assert torch.equal(d.y_test, torch.as_tensor(y[[4, 9]]))
    assert torch.equal(d.x_train, torch.as_tensor(x[[0, 1, 2, 3, 5, 6, 7, 8]]))
    assert d.T == 2 and not d.temporal and d.num_classes == 2


def test_data_file_with_x_train(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    xt = np.ones((3, 4), np.float32)
    x, _ = _npz(p, 2, x_train=xt, y_train=np.array([0, 1, 2]))
    d = labelled_splits((4,), data=str(p))
    assert torch.equal(d.x_train, torch.ones(3, 4)) and d.y_train.tolist() == [0, 1, 2]
    assert torch.equal(d.x_test, torch.as_tensor(x)) and d.num_classes == 3


def test_labelled_splits_refuse_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--random-input: finetune trains on labels"):
        labelled_splits((4,), random_rate=0.2)
    p = tmp_path / "nolabels.npz"
    np.savez(p, x=np.zeros((10, 4), np.float32))
    with pytest.raises(ValueError, match=r"nolabels\.npz: no labels \(array y\)"):
        labelled_splits((4,), data=str(p))
    q = tmp_path / "few.npz"
    _npz(q, 3)
    with pytest.raises(ValueError, match=r"few\.npz: 3 samples"):
        labelled_splits((4,), data=str(q))
    r = tmp_path / "half.npz"
    _npz(r, 6, x_train=np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="x_train without y_train"):
        labelled_splits((4,), data=str(r))
    with pytest.raises(ValueError, match="no labelled data"):
        labelled_splits((4,))


@pytest.mark.parametrize(
    ("opts", "reason"),
    [
        (["--random-input", "0.2"], "random input has none"),
        (["--data", "x.npz"], "no such file"),
        (["--dataset", "shd"], "go together"),
    ],
)
def test_reproduce_refuses_unusable_sources_by_name(opts: list[str], reason: str, capsys) -> None:
    """--random-input has no labels; the other sources run (tests/test_reproduce_data.py) but
    are checked before anything trains."""
    err = _err(["reproduce", "--quick", *opts], capsys)
    assert opts[0] in err and reason in err, err
