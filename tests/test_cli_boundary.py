"""The command line's one error boundary (issue 17): every numeric option checked where it is
parsed, every failure a user can cause (bad values, missing or unwritable files, a full disk, a
missing GPU, Ctrl-C) ends in ONE line ``neurodeploy <cmd>: error: ...`` naming the option or the
file, exit 2 (130 for Ctrl-C), no traceback unless ``--debug`` / ``NEURODEPLOY_DEBUG=1``; and an
output is written whole or not at all (a read-only folder, a disk filling up mid-write)."""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path

import nir
import numpy as np
import pytest

from neurodeploy import cli
from neurodeploy.cli import main

RND = ["--random-input", "0.3", "--T", "4", "--samples", "4"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Affine(4 -> 3) -> LIF(3), dt 1e-4 in the metadata."""
    rng = np.random.default_rng(0)
    g = nir.NIRGraph.from_list(
        nir.Affine(weight=rng.uniform(-0.2, 0.8, (3, 4)).astype(np.float32), bias=np.zeros(3)),
        nir.LIF(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3)),
    )
    g.metadata = {"dt": 1e-4}
    path = tmp_path_factory.mktemp("tiny") / "tiny.nir"
    nir.write(str(path), g)
    return path


def _one_error_line(err: str, cmd: str, *named: str) -> str:
    """The stderr of a refused command: exactly one error line (warnings before it allowed),
    starting ``neurodeploy <cmd>: error:`` (``neurodeploy: error:`` for a global option,
    ``cmd`` empty) and naming each of ``named``; no traceback."""
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip() and ": warning: " not in ln]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"neurodeploy{' ' + cmd if cmd else ''}: error: "), err
    for n in named:
        assert n in lines[0], (n, err)
    return lines[0]


# --- numeric options ----------------------------------------------------------------------------

BAD_OPTIONS = [
    # (argv after the command's name and its model, the option named)
    (["--samples", "-5"], "--samples"),
    (["--samples", "0"], "--samples"),
    (["--T", "0"], "--T"),
    (["--dt", "0"], "--dt"),
    (["--dt", "nan"], "--dt"),
    (["--dt", "-1e-4"], "--dt"),
    (["--random-input", "1.5"], "--random-input"),
    (["--random-input", "nan"], "--random-input"),
    (["--percentile", "0"], "--percentile"),
    (["--percentile", "100.5"], "--percentile"),
    (["--weight-split", "0"], "--weight-split"),
    (["--samples", "two"], "--samples"),
]


@pytest.mark.parametrize(("bad", "option"), BAD_OPTIONS, ids=[" ".join(b) for b, _ in BAD_OPTIONS])
def test_quantize_refuses_bad_numbers_by_name_before_writing(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: list[str], option: str
) -> None:
    out = tmp_path / "p.npz"
    base = ["quantize", str(tiny), "--random-input", "0.3", "--T", "4", "--samples", "4"]
    assert main([*base, *bad, "-o", str(out)]) == 2
    _one_error_line(capsys.readouterr().err, "quantize", option)
    assert not out.exists() and list(tmp_path.iterdir()) == []


OTHER_COMMANDS = [
    (["--threads", "0", "tasks"], "", "--threads"),
    (["train", "--epochs", "0"], "train", "--epochs"),
    (["train", "--batch-size", "-3"], "train", "--batch-size"),
    (["train", "--T", "0"], "train", "--T"),
    (["train", "--workers", "-1"], "train", "--workers"),
    (["train", "--lr", "inf"], "train", "--lr"),
    (["demo", "--epochs", "0"], "demo", "--epochs"),
    (["reproduce", "--seeds", "0"], "reproduce", "--seeds"),
    (["reproduce", "--workers", "0"], "reproduce", "--workers"),
    (["reproduce", "--epochs", "-2"], "reproduce", "--epochs"),
    (["profile", "m.nir", "--samples", "0"], "profile", "--samples"),
    (["verify", "m.nir", "--samples", "-1"], "verify", "--samples"),
    (["deploy", "m.nir", "--T", "-4"], "deploy", "--T"),
    (["finetune", "m.nir", "--epochs", "0"], "finetune", "--epochs"),
    (["finetune", "m.nir", "--lr", "0"], "finetune", "--lr"),
    (["export", "ck.pt", "--dt", "0"], "export", "--dt"),
    (["inspect", "m.nir", "--dt", "inf"], "inspect", "--dt"),
    (["resources", "m.nir", "--dt", "0"], "resources", "--dt"),
]


@pytest.mark.parametrize(
    ("argv", "cmd", "option"), OTHER_COMMANDS, ids=[" ".join(a) for a, _, _ in OTHER_COMMANDS]
)
def test_every_command_refuses_bad_numbers_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], cmd: str, option: str
) -> None:
    """Refused while parsing: nothing is read, trained or written (the run folder not made)."""
    out = tmp_path / "out"
    needs_out = cmd in ("train", "profile", "deploy", "finetune", "export")
    assert main([*argv, *(["--out", str(out)] if needs_out else [])]) == 2
    _one_error_line(capsys.readouterr().err, cmd, option)
    assert not out.exists()


def test_device_cuda_without_a_gpu_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    out = tmp_path / "run"
    for device in ("cuda", "cuda:1", "tpu"):
        assert main(["train", "--device", device, "--epochs", "1", "--out", str(out)]) == 2
        _one_error_line(capsys.readouterr().err, "train", "--device", device)
        assert not out.exists()


# --- the boundary: OS errors, interrupts, --debug -----------------------------------------------


def test_missing_input_and_a_folder_in_place_of_the_output(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.nir"
    assert main(["quantize", str(missing), *RND, "-o", str(tmp_path / "p.npz")]) == 2
    _one_error_line(capsys.readouterr().err, "quantize", str(missing))
    folder = tmp_path / "a_folder"
    folder.mkdir()
    assert main(["quantize", str(tiny), *RND, "-o", str(folder)]) == 2
    _one_error_line(capsys.readouterr().err, "quantize", str(folder))
    assert list(folder.iterdir()) == []
    afile = tmp_path / "a_file"
    afile.write_text("x")
    assert main(["quantize", str(tiny), *RND, "-o", str(afile / "p.npz")]) == 2
    _one_error_line(capsys.readouterr().err, "quantize", str(afile))


def _deny_writes_in(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a read-only ``folder`` does (for root too, whom chmod does not stop): creating a
    file in it fails with EACCES, whether through ``open`` or ``os.open``."""
    real_open, real_os_open = builtins.open, os.open

    def inside(p: object) -> bool:
        return isinstance(p, (str, os.PathLike)) and Path(p).resolve().parent == folder.resolve()

    def deny(p: object) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(p))  # type: ignore[arg-type]

    def fake_open(file: object, mode: str = "r", *a: object, **k: object) -> object:
        if inside(file) and any(c in mode for c in "wax+"):
            deny(file)
        return real_open(file, mode, *a, **k)  # type: ignore[call-overload]

    def fake_os_open(path: object, flags: int, *a: object, **k: object) -> int:
        if inside(path) and flags & os.O_CREAT:
            deny(path)
        return real_os_open(path, flags, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)


@pytest.mark.parametrize("how", ["chmod", "simulated"])
def test_read_only_output_folder_one_line_nothing_written(
    tiny: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    how: str,
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    if how == "chmod":
        if os.geteuid() == 0:
            pytest.skip("root writes into a read-only folder; the simulated case covers it")
        ro.chmod(0o500)
    else:
        _deny_writes_in(ro, monkeypatch)
    try:
        for argv in (
            ["quantize", str(tiny), *RND, "-o", str(ro / "p.npz")],
            ["profile", str(tiny), *RND, "--no-progress", "-o", str(ro)],
        ):
            assert main(argv) == 2
            _one_error_line(capsys.readouterr().err, argv[0], str(ro))
            assert os.listdir(ro) == []
    finally:
        ro.chmod(0o700)


def test_disk_full_mid_write_leaves_no_partial_file(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ENOSPC after part of the program was written: one line naming the file and the cause,
    the output absent (not a torn .npz), no temporary left."""
    from numpy.lib import format as npformat

    real = npformat.write_array
    calls = {"n": 0}

    def write_then_fill(fp, array, *a, **k):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # the header went through, the second array hits a full disk
            fp.write(b"\x93NUMPY partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fp, array, *a, **k)

    monkeypatch.setattr(npformat, "write_array", write_then_fill)
    out = tmp_path / "p.npz"
    assert main(["quantize", str(tiny), *RND, "-o", str(out)]) == 2
    line = _one_error_line(capsys.readouterr().err, "quantize", str(out))
    assert "no space left on device" in line.lower()
    assert calls["n"] == 2
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_is_exit_130_with_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(a: object, argv: object = None) -> int:
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, "tasks", cli.Command("list", interrupted))
    assert main(["tasks"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["neurodeploy tasks: interrupted (Ctrl-C)"]


def test_other_os_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def io_error(a: object, argv: object = None) -> int:
        raise OSError(errno.EIO, os.strerror(errno.EIO), "/dev/sdz")

    monkeypatch.setitem(cli.COMMANDS, "tasks", cli.Command("list", io_error))
    assert main(["tasks"]) == 2
    line = _one_error_line(capsys.readouterr().err, "tasks", "/dev/sdz")
    assert os.strerror(errno.EIO) in line


def test_debug_shows_the_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "nope.nir")
    argv = ["quantize", missing, *RND, "-o", str(tmp_path / "p.npz")]
    assert main(["--debug", *argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith(
        "neurodeploy quantize: error: "
    )
    assert main([*argv, "--debug"]) == 2  # after the command's name as well
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("NEURODEPLOY_DEBUG", "1")
    assert main(argv) == 2
    assert "Traceback" in capsys.readouterr().err
    monkeypatch.setenv("NEURODEPLOY_DEBUG", "0")
    assert main(argv) == 2
    _one_error_line(capsys.readouterr().err, "quantize", missing)


def test_python_m_neurodeploy_prints_one_line_no_traceback(tmp_path: Path) -> None:
    """The real entry point (one subprocess: about 5 s of imports): a bad option, one line."""
    import subprocess
    import sys

    argv = ["quantize", str(tmp_path / "m.nir"), "--samples", "-5", "-o", str(tmp_path / "p.npz")]
    proc = subprocess.run(
        [sys.executable, "-P", "-m", "neurodeploy", *argv],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    _one_error_line(proc.stderr, "quantize", "--samples", "-5")
    assert list(tmp_path.iterdir()) == []


def test_device_cuda_from_a_recipe_without_a_gpu_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A recipe's ``device = "cuda"`` does not pass through the option's check: the training
    loop refuses it by name (API side), before any epoch or checkpoint."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    recipe = tmp_path / "r.toml"
    recipe.write_text('task = "digits"\nmodel = "mlp"\nT = 2\nepochs = 1\ndevice = "cuda"\n')
    out = tmp_path / "run"
    argv = ["train", "--config", str(recipe), "--no-progress", "--out", str(out)]
    assert main(argv) == 2
    _one_error_line(capsys.readouterr().err, "train", "device", "'cuda'")
    assert not (out / "checkpoint.pt").exists()
