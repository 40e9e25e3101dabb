"""The command line over the API."""

import json

from neurodeploy.cli import main


def test_train_and_resume_via_cli(tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        "--task",
        "digits",
        "--model",
        "mlp",
        "--T",
        "2",
        "--epochs",
        "1",
        "--no-mps",
        "--no-guidance",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(args) == 0
    assert "test acc" in capsys.readouterr().out
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["mps"] is False and cfg["guidance"] is False and cfg["T"] == 2
    assert main(args) == 2  # refuses to overwrite
    assert "already exists" in capsys.readouterr().err
    assert main(args[:-4] + ["--epochs", "2", "--out", str(out), "--resume", "--no-progress"]) == 0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2]


def test_cli_errors_name_the_argument(tmp_path, capsys):
    assert main(["train", "--task", "cifar", "--out", str(tmp_path)]) == 2
    assert "task" in capsys.readouterr().err
    assert main(["train", "--p-drop", "2", "--out", str(tmp_path)]) == 2
    assert "p_drop" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "checkpoint.pt").write_bytes(b"\x00" * 10)
    assert main(["train", "--resume", "--out", str(bad)]) == 2
    assert "checkpoint.pt" in capsys.readouterr().err
    assert (bad / "checkpoint.pt").read_bytes() == b"\x00" * 10


def test_tasks_lists_all(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in ("digits", "event-digits", "seq1d", "shapes3d"):
        assert name in out
