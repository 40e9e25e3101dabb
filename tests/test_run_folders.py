"""Run folders are owned, nothing is overwritten, nothing is half-written (issue 17).

Real subprocesses hold the lock where the behaviour is about processes (a second ``train`` on
the same ``--out``, SIGTERM/SIGINT, a ``kill -9``'d holder); the rest runs in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from neurodeploy.cli import main
from neurodeploy.files import (
    LOCK_NAME,
    OutputIsInputError,
    RunLock,
    RunLockError,
    atomic_write,
    check_not_input,
    clean_temporaries,
)

TRAIN = ["train", "--task", "digits", "--model", "mlp", "--T", "2", "--no-mps", "--no-guidance"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
HOLD_SCRIPT = (
    "import sys, time\n"
    "from neurodeploy.files import RunLock\n"
    "with RunLock(sys.argv[1]):\n"
    "    print('held', flush=True)\n"
    "    time.sleep(120)\n"
)


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    t0 = time.monotonic()
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"holder exited ({proc.returncode}) before {path} appeared")
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.05)


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    return out


# ---------------------------------------------------------------------------------------------
# the files API
# ---------------------------------------------------------------------------------------------
def test_atomic_write_keeps_the_old_file_on_error(tmp_path):
    p = tmp_path / "out.bin"
    p.write_bytes(b"old")

    def torn(f):
        f.write(b"half of the new")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space"):
        atomic_write(p, torn)
    assert p.read_bytes() == b"old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.bin"]  # no temporary left
    atomic_write(p, lambda f: f.write(b"new"))
    assert p.read_bytes() == b"new"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["out.bin"]


def test_check_not_input_resolves_paths(tmp_path):
    ck = tmp_path / "a" / "ck.pt"
    ck.parent.mkdir()
    ck.write_bytes(b"x")
    (tmp_path / "link.pt").symlink_to(ck)
    for out in (ck, tmp_path / "a" / ".." / "a" / "ck.pt", tmp_path / "link.pt"):
        with pytest.raises(OutputIsInputError, match=r"--out .*is the input file .*ck\.pt"):
            check_not_input(out, [None, ck], option="--out")
    check_not_input(tmp_path / "a" / "other.pt", [ck])
    check_not_input(None, [ck])


def test_second_lock_refused_by_name_and_released(tmp_path):
    with RunLock(tmp_path) as lock:
        assert lock.held and (tmp_path / LOCK_NAME).exists()
        with pytest.raises(RunLockError, match=rf"{tmp_path}: in use by process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / LOCK_NAME).exists()
    with pytest.raises(RuntimeError, match="boom"), RunLock(tmp_path):
        raise RuntimeError("boom")
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path) as again:  # free again, nothing taken over
        assert again.took_over is None


def test_kill9_holder_stale_lock_taken_over(tmp_path, capsys):
    proc = _holder(tmp_path)
    with pytest.raises(RunLockError, match=f"in use by process {proc.pid}"):
        RunLock(tmp_path).acquire()
    proc.kill()  # SIGKILL: no finally, the file stays, the kernel drops the flock
    proc.wait()
    assert (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path) as lock:
        assert lock.took_over is not None
        assert f"stale lock of process {proc.pid}" in lock.took_over
        assert "no longer running" in lock.took_over
    assert "stale lock" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_holder_signal_releases_the_lock(tmp_path, sig):
    proc = _holder(tmp_path)
    proc.send_signal(sig)
    proc.wait(timeout=30)
    assert not (tmp_path / LOCK_NAME).exists()  # removed by the holder's own exit path
    with RunLock(tmp_path) as lock:
        assert lock.took_over is None


def test_clean_temporaries(tmp_path):
    names = [".checkpoint.pt.tmp4242", ".checkpoint.pt.k3j_x1.ndtmp", "checkpoint.pt", ".keep"]
    for n in names:
        (tmp_path / n).write_bytes(b"")
    removed = clean_temporaries(tmp_path)
    assert sorted(p.name for p in removed) == sorted(names[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep", "checkpoint.pt"]
    assert clean_temporaries(tmp_path / "missing") == []


# ---------------------------------------------------------------------------------------------
# train: one writer per run folder
# ---------------------------------------------------------------------------------------------
def test_second_train_on_same_out_refused_by_name(tmp_path):
    """Two real ``train`` processes; the first ended by SIGTERM (SIGINT: the holder test)."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "neurodeploy", *TRAIN, "--out", str(out), "--no-progress"]
    first = subprocess.Popen(
        [*cmd, "--epochs", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    try:
        _wait_for(out / LOCK_NAME, first)
        second = subprocess.run(
            [*cmd, "--epochs", "1"],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2, second.stderr
        assert f"in use by process {first.pid}" in second.stderr
        assert str(out) in second.stderr
        assert "test acc" not in second.stdout
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 128 + signal.SIGTERM  # exited through its finally blocks
    assert not (out / LOCK_NAME).exists()  # released on SIGTERM
    if (out / "metrics.jsonl").exists():  # only the first run's lines
        epochs = [
            json.loads(ln)["epoch"] for ln in (out / "metrics.jsonl").read_text().splitlines()
        ]
        assert epochs == list(range(1, len(epochs) + 1))


def test_train_takes_over_a_stale_lock(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (out / LOCK_NAME).write_text(f"pid={dead.pid}\nhost=elsewhere\n")
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"stale lock of process {dead.pid}" in err
    assert not (out / LOCK_NAME).exists()


def test_resume_drops_a_torn_last_metrics_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out), "--no-progress"]) == 0
    metrics = out / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"epoch": 2, "train_lo')  # a writer killed mid-line
    (out / ".checkpoint.pt.tmp999999").write_bytes(b"PK\x03")  # a killed checkpoint write
    (out / ".checkpoint.pt.a1b2.ndtmp").write_bytes(b"PK\x03")
    capsys.readouterr()
    args = [*TRAIN, "--epochs", "2", "--out", str(out), "--resume", "--no-progress"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "metrics.jsonl" in err and "torn last line" in err
    assert "temporar" in err and ".checkpoint.pt.tmp999999" in err
    assert [json.loads(ln)["epoch"] for ln in metrics.read_text().splitlines()] == [1, 2]
    assert sorted(p.name for p in out.iterdir()) == [
        "checkpoint.pt",
        "config.json",
        "metrics.jsonl",
    ]


def test_resume_refuses_a_torn_line_in_the_middle(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--epochs", "2", "--out", str(out), "--no-progress"]) == 0
    metrics = out / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text(lines[0][:10] + "\n" + lines[1] + "\n")
    capsys.readouterr()
    assert main([*TRAIN, "--epochs", "3", "--out", str(out), "--resume", "--no-progress"]) == 2
    assert f"{metrics}: line 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# no command writes over one of its inputs
# ---------------------------------------------------------------------------------------------
def test_export_over_its_checkpoint_refused(run_dir, capsys):
    ck = run_dir / "checkpoint.pt"
    before = ck.read_bytes()
    assert main(["export", str(ck), "-o", str(ck)]) == 2
    assert f"{ck}" in capsys.readouterr().err
    assert ck.read_bytes() == before


def test_quantize_over_its_graph_refused(run_dir, tmp_path, capsys):
    nir_path = tmp_path / "m.nir"
    assert main(["export", str(run_dir / "checkpoint.pt"), "-o", str(nir_path)]) == 0
    before = nir_path.read_bytes()
    capsys.readouterr()
    assert main(["quantize", str(nir_path), "-o", str(nir_path)]) == 2
    err = capsys.readouterr().err
    assert "is the input file" in err and "m.nir" in err
    assert nir_path.read_bytes() == before


def test_deploy_into_the_inputs_folder_refused(run_dir, tmp_path, capsys):
    out = tmp_path / "dep"
    out.mkdir()
    nir_path = out / "model.nir"
    assert main(["export", str(run_dir / "checkpoint.pt"), "-o", str(nir_path)]) == 0
    before = nir_path.read_bytes()
    capsys.readouterr()
    assert main(["deploy", str(nir_path), "--task", "digits", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is the input file" in err and "model.nir" in err
    assert nir_path.read_bytes() == before


def test_finetune_into_the_inputs_folder_refused(run_dir, tmp_path, capsys):
    import shutil

    out = tmp_path / "ft"
    out.mkdir()
    ck = out / "checkpoint.pt"
    shutil.copy(run_dir / "checkpoint.pt", ck)
    assert main(["finetune", str(ck), "-o", str(out), "--epochs", "1", "--no-progress"]) == 2
    assert "is the input file" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# finetune / reproduce / demo run folders are locked the same way
# ---------------------------------------------------------------------------------------------
def test_finetune_reproduce_demo_refuse_a_locked_folder(run_dir, tmp_path):
    from neurodeploy.demo import run_demo
    from neurodeploy.finetune import finetune
    from neurodeploy.measure.reproduce import reproduce

    with RunLock(tmp_path):
        with pytest.raises(RunLockError, match=f"{tmp_path}: in use"):
            finetune(run_dir / "checkpoint.pt", out_dir=tmp_path, epochs=1, progress=False)
        with pytest.raises(RunLockError, match=f"{tmp_path}: in use"):
            reproduce(quick=True, tasks=["digits"], out=tmp_path, seeds=1, epochs=1)
        with pytest.raises(RunLockError, match=f"{tmp_path}: in use"):
            run_demo(tmp_path, epochs=1, compare=False, deploy_chain=False, profile_models=False)
