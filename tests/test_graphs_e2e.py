"""The paper's residual and recurrent models end to end through the CLI (issue 16, item 6): a tiny
SEW-ResNet (ADD connection) on ``event-digits`` and a tiny SRNN (recurrent LIF layers) on
``seq1d``, each trained one epoch with MPS + guidance (widths from a recipe's ``[arch]`` table),
then ``export`` (a NIR graph: fan-out/fan-in, or recurrent cycles), ``quantize``, ``verify``
with Lava on 2 samples and ``profile``. Asserted: every command exits 0; the NIR export is a
graph of the expected kind; the reference simulator and Lava agree spike for spike in every
layer and on the predictions; every layer spikes; the float (NIR import) vs integer spike
agreement per layer is at least the floor measured on 2026-11-30. The full-size numbers are in
benchmarks/results/graphs.md (benchmarks/graphs.py)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from neurodeploy.cli import main

pytest.importorskip("nir")

# name -> (recipe TOML, the export's structure line, float-vs-integer agreement floor (min over
# layers), measured 2026-11-30 on 4 test samples: sew_resnet 0.9951, srnn 1.0)
MODELS: dict[str, tuple[str, str, float]] = {
    "sew_resnet": (
        """task = "event-digits"
model = "sew_resnet"
T = 4
mps = true
guidance = true
epochs = 1
lr = 0.01
[arch]
stem = 4
widths = [4, 8]
blocks = [1, 1]
""",
        "fan-in (summed):",
        0.99,
    ),
    "srnn": (
        """task = "seq1d"
model = "srnn"
T = 4
mps = true
guidance = true
epochs = 1
lr = 0.01
[arch]
hidden = [16, 16]
""",
        "recurrent cycles: 1_lif -> 1_lif_rec -> 1_lif",
        0.99,
    ),
}


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(args)
    captured = capsys.readouterr()
    assert rc == 0, f"neurodeploy {' '.join(args)} exited {rc}: {captured.err}{captured.out}"
    return captured.out


def _table(out: str, first: str) -> dict[str, list[float]]:
    """Rows of a printed table under the header line starting with ``first``: name -> numbers."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    rows: dict[str, list[float]] = {}
    for line in lines[start + 1 :]:
        parts = line.split()
        # layer names may be digits (a graph node "2"); the line after verify's table reads
        # "4 samples; ..."
        if not parts or parts[0] == "accuracy" or parts[1:2] == ["samples;"]:
            break
        if not re.fullmatch(r"\w[\w.]*", parts[0]):
            break
        nums = [float(v) for v in re.findall(r"(?<![\w/])[-+]?\d+\.\d+|(?<=/)\d+\.\d+", line)]
        rows[parts[0]] = nums
    return rows


@pytest.mark.lava
@pytest.mark.parametrize("name", list(MODELS))
def test_graph_model_train_to_lava(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("lava.magma.core.run_configs")
    recipe, structure, floor = MODELS[name]
    (tmp_path / "r.toml").write_text(recipe)
    run = tmp_path / "run"
    _cli(
        ["train", "--config", str(tmp_path / "r.toml"), "--out", str(run), "--no-progress"], capsys
    )
    f = tmp_path / "model.nir"
    e = _cli(["export", str(run / "checkpoint.pt"), "--out", str(f)], capsys)
    assert "structure: graph" in e and structure in e, e
    data = ["--samples", "4"]  # the task and T recorded in the model
    q = _cli(["quantize", str(f), *data, "--out", str(tmp_path / "q")], capsys)
    rates = _table(q, "layer ")  # w err, vth err, spike agree, rate float, rate integer, ...
    hidden = {k: r for k, r in rates.items() if k != "readout"}
    assert hidden and all(r[4] > 0 for r in hidden.values()), f"{name}: a silent layer\n{q}"
    assert "accuracy on 4 test samples" in q, q
    v = _cli(["verify", str(f), *data], capsys)
    rows = _table(v, "layer ")  # float~ref, ref~lava, float~lava
    layers = {k: r for k, r in rows.items() if k != "prediction"}
    assert layers.keys() == hidden.keys(), v
    assert all(r[1] == 1.0 for r in layers.values()), f"{name}: reference != Lava\n{v}"
    assert rows["prediction"][1] == 1.0, v
    per_layer = [r[0] for r in layers.values()]
    with capsys.disabled():
        print(f"\n{name}: float vs integer spike agreement per layer {per_layer}")
    assert min(per_layer) >= floor, v
    p = _cli(["profile", str(f), *data, "--out", str(tmp_path / "p")], capsys)
    assert (tmp_path / "p" / "profile.md").is_file(), p


def test_srnn_reads_a_one_channel_signal() -> None:
    """seq1d's (1, 40) samples reach the SRNN as 40 values per timestep (a leading Flatten);
    two channels are refused by name."""
    import torch

    from neurodeploy.nn.zoo import build_model

    m = build_model("srnn", (1, 40), 10, hidden=(8,))
    assert m(torch.zeros(3, 2, 1, 40)).shape == (3, 2, 10)
    assert m.body[1].ff.in_features == 40
    with pytest.raises(ValueError, match="srnn.*one-channel"):
        build_model("srnn", (2, 40), 10)
