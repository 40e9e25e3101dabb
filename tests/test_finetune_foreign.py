"""``finetune`` on NIR graphs that other libraries exported (snnTorch MLP with a spiking output,
SpikingJelly conv net), on a small labelled ``--data`` file written by the test: the run
finishes, writes model.nir / model.int.npz / finetune.json, the written program is the
quantisation of the written graph, the graph keeps the source's node types, and the integer
accuracy is reported. Sources without labels are refused by name."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.finetune import NIR_NAME, PROGRAM_NAME, SUMMARY_NAME
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.qat import programs_equal

nir = pytest.importorskip("nir")
from .test_foreign_e2e import _cli, write_snntorch_mlp, write_spikingjelly_conv  # noqa: E402

T = 4
N = 60  # 48 train, 12 test (every 5th held out)


def _write_data(path: Path, shape: tuple[int, ...], classes: int, *, labels: bool = True) -> None:
    """Binary spike sequences (N, T, *shape): class c fires at rate 0.6 in the c-th band of the
    flattened input and 0.05 elsewhere (learnable by a linear readout of spike counts)."""
    rng = np.random.default_rng(0)
    size = int(np.prod(shape))
    y = np.arange(N) % classes
    rate = np.full((N, size), 0.05)
    band = size // classes
    for i, c in enumerate(y):
        rate[i, c * band : (c + 1) * band] = 0.6
    x = (rng.random((N, T, size)) < rate[:, None, :]).astype(np.float32).reshape(N, T, *shape)
    np.savez(path, x=x, **({"y": y.astype(np.int64)} if labels else {}))


def _node_types(path: Path) -> list[str]:
    return sorted({type(n).__name__ for n in nir.read(str(path)).nodes.values()})


@pytest.mark.parametrize(
    ("write", "shape", "classes"),
    [(write_snntorch_mlp, (1, 8, 8), 10), (write_spikingjelly_conv, (2, 8, 8), 3)],
    ids=["snntorch-mlp", "spikingjelly-conv"],
)
def test_finetune_nir_graph_on_data_file(tmp_path: Path, capsys, write, shape, classes) -> None:
    from neurodeploy.converters.model_files import load_model_file
    from neurodeploy.neuron.hardware import get_spec
    from neurodeploy.quant.quantize import quantize_model, quantize_stages
    from neurodeploy.quant.stages import model_stages

    src = tmp_path / "src.nir"
    write(src)
    data = tmp_path / "d.npz"
    _write_data(data, shape, min(classes, 3))
    out = tmp_path / "ft"
    text = _cli(
        [
            "finetune",
            str(src),
            "--data",
            str(data),
            "--epochs",
            "2",
            "--lr",
            "0.01",
            "-o",
            str(out),
            "--no-progress",
        ],
        capsys,
    )
    assert "integer after (reference arithmetic)" in text, text
    assert sorted(p.name for p in out.iterdir()) == sorted([NIR_NAME, PROGRAM_NAME, SUMMARY_NAME])
    summary = json.loads((out / SUMMARY_NAME).read_text())
    assert summary["source"] == str(src) and summary["T"] == T and len(summary["history"]) == 2
    for key in ("float_acc_before", "ptq_acc", "float_acc", "int_acc"):
        assert 0.0 <= summary[key] <= 1.0, (key, summary[key])
    assert f"{100 * summary['int_acc']:.2f} %" in text
    # the written program is the quantisation of the written graph (binary spikes), with the
    # weight-exponent caps the overflow search recorded in it
    written = IntProgram.load(out / PROGRAM_NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model, _, _ = load_model_file(out / NIR_NAME, programs=False)
    hw = get_spec("loihi2")
    header = quantize_model(model, hw, input_kind="binary")
    caps = written.meta.get("exp_caps") or {}
    assert programs_equal(quantize_stages(model_stages(model), header, hw, exp_caps=caps), written)
    assert written.meta["T"] == T and "task" not in written.meta
    assert _node_types(out / NIR_NAME) == _node_types(src)


def test_finetune_refuses_unlabelled_sources(tmp_path: Path, capsys) -> None:
    src = tmp_path / "src.nir"
    write_snntorch_mlp(src)
    cases = {
        "--random-input: finetune trains on labels": ["--random-input", "0.2", "--T", "4"],
        "no labels (array y)": ["--data", str(tmp_path / "nolabels.npz")],
        "no labelled data (the model records no task)": [],
    }
    _write_data(tmp_path / "nolabels.npz", (1, 8, 8), 3, labels=False)
    for msg, opts in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rc = main(["finetune", str(src), *opts, "-o", str(tmp_path / "o"), "--no-progress"])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err, (opts, err)
    assert not (tmp_path / "o").exists()
