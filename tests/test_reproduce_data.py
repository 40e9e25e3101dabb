"""`neurodeploy reproduce` on the user's data: a data set on disk through a recipe and a labelled
.npz file, each through the 4 ablation arms; --random-input refused by name."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.measure.reproduce import ARMS, npz_layout, npz_model

from .test_inputs_config import _write_shd


def _run(args: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["reproduce", *args, "--no-progress"]) == 0


def _check_report(out: Path, label: str, n_test: int, *, T: int, seeds: int) -> list[dict]:
    """4 arms x seeds runs on ``label`` at T, accuracies multiples of 1/n_test, in the report."""
    runs = json.loads((out / "reproduction.json").read_text())["runs"]
    assert sorted({r["arm"] for r in runs}) == sorted(ARMS)
    assert len(runs) == len(ARMS) * seeds and {r["T"] for r in runs} == {T}
    assert {r["task"] for r in runs} == {label} and {r["study"] for r in runs} == {"ablation"}
    md = (out / "reproduction.md").read_text()
    for r in runs:
        assert round(r["test_acc"] * n_test) == pytest.approx(r["test_acc"] * n_test)
    for arm in ARMS:
        accs = [r["test_acc"] for r in runs if r["arm"] == arm]
        mean = 100 * sum(accs) / len(accs)
        assert f"| {label} | {arm} | {mean:.2f} +- " in md, md
    # the seed-0 models are analysed at the source's T (reduced-timestep, initial states, grads)
    first = [r for r in runs if r["seed"] == 0]
    assert all(len(r["acc_by_t"]) == T and "gradient_flow" in r for r in first)
    assert first[0]["acc_by_t"][-1] == pytest.approx(first[0]["test_acc"])
    return runs


def test_reproduce_on_a_recipe_data_set(tmp_path: Path) -> None:
    """A two-sample SHD folder and a tiny recipe (mlp, T=3): 1 seed x 4 arms x 1 epoch."""
    _write_shd(tmp_path)
    recipe = tmp_path / "shd.toml"
    recipe.write_text(
        'task = "shd"\nmodel = "mlp"\nT = 3\nbatch_size = 2\n[arch]\nhidden = [8]\n'
        "[data]\nbinary = true\n"
    )
    out = tmp_path / "rep"
    _run(["--config", str(recipe), "--data-root", str(tmp_path), "--quick", "--seeds", "1",
          "--out", str(out)])  # fmt: skip
    runs = _check_report(out, "shd", 2, T=3, seeds=1)
    assert all(r["epochs"] == 1 for r in runs)
    md = (out / "reproduction.md").read_text()
    assert f"--config {recipe} --data-root {tmp_path}" in md and "model mlp" in md


def test_reproduce_on_a_labelled_npz(tmp_path: Path) -> None:
    """x (N, F) with labels y: static vectors repeated over T=4, the zoo's mlp; 2 seeds."""
    rng = np.random.default_rng(0)
    y = np.arange(20) % 2
    x = (rng.random((20, 6)) < 0.2 + 0.6 * y[:, None]).astype(np.float32)
    f = tmp_path / "mine.npz"
    np.savez(f, x=x, y=y)
    assert npz_layout(f) == ((6,), None) and npz_model((6,)) == "mlp"
    out = tmp_path / "rep"
    _run(["--data", str(f), "--seeds", "2", "--epochs", "2", "--out", str(out)])
    runs = _check_report(out, "mine.npz", 4, T=4, seeds=2)  # every 5th of 20 held out: 4 test
    assert all(r["epochs"] == 2 for r in runs)
    assert (
        "model mlp (the zoo's default for input shape (6,)" in (out / "reproduction.md").read_text()
    )


def test_npz_layouts_by_rank(tmp_path: Path) -> None:
    for shape, want in [((3, 5, 6), ((6,), 5)), ((3, 2, 4, 4), ((2, 4, 4), None))]:
        f = tmp_path / "a.npz"
        np.savez(f, x=np.zeros(shape, np.float32), y=np.zeros(3, np.int64))
        assert npz_layout(f) == want
    assert npz_model((2, 4, 4)) == "vgg"
    np.savez(tmp_path / "nolab.npz", x=np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match=r"nolab.npz: reproduce trains on labels"):
        npz_layout(tmp_path / "nolab.npz")


def test_reproduce_refuses_random_input_and_unlabelled_files(tmp_path: Path, capsys) -> None:
    assert main(["reproduce", "--quick", "--random-input", "0.2"]) == 2
    err = capsys.readouterr().err
    assert "--random-input: reproduce runs on labelled data only" in err and "labels" in err
    np.savez(tmp_path / "x.npz", x=np.zeros((5, 4), np.float32))
    assert main(["reproduce", "--quick", "--data", str(tmp_path / "x.npz")]) == 2
    assert "needs arrays x and integer y" in capsys.readouterr().err
    np.savez(tmp_path / "xy.npz", x=np.zeros((5, 4), np.float32), y=np.zeros(5, np.int64))
    assert main(["reproduce", "--tasks", "digits", "--data", str(tmp_path / "xy.npz")]) == 2
    assert "--tasks: the offline tasks or the user's data, not both" in capsys.readouterr().err
