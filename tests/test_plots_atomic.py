"""PNG figures are written whole or not at all (issue 17): a save that fails half-way leaves
neither a partial PNG nor a temporary behind, and a good save is a readable PNG."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from neurodeploy.measure.plots import plt, save_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_a_figure_is_a_whole_png(tmp_path: Path) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    out = save_figure(fig, tmp_path / "sub" / "f.png")
    assert out.read_bytes().startswith(PNG_MAGIC)
    assert [p.name for p in out.parent.iterdir()] == ["f.png"]


def test_a_failing_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])

    def half_then_full_disk(f, **kw):  # writes part of a PNG, then the disk is full
        f.write(PNG_MAGIC + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fig, "savefig", half_then_full_disk)
    (tmp_path / "f.png").write_bytes(b"old")
    with pytest.raises(OSError, match="No space left"):
        save_figure(fig, tmp_path / "f.png")
    assert (tmp_path / "f.png").read_bytes() == b"old"  # the old file untouched
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]  # no temporary left
