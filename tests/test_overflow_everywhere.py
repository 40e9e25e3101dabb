"""Item 7 of issue 15 in every command: ``profile`` and ``finetune`` quantise through the same
overflow search as quantize / verify / deploy (:func:`neurodeploy.measure.calibrate.quantize_checked`):
lowered exponents or a refusal naming the layer and its counts, unless ``--allow-overflow``.

The networks and their hand-computed counts are those of tests/test_overflow.py: ``saturating_net``
saturates twice per sample at the quantiser's exponent 6 on the alternating input and is clean at
5; ``wide_net(140_000)`` on all-ones input has 1 saturation and 2 wraps at every exponent down to
Loihi 2's minimum -8 (unfixable).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.cli import main
from neurodeploy.converters.nir_export import export_nir
from neurodeploy.data import TaskData
from neurodeploy.data.inputs import load_npz_inputs
from neurodeploy.finetune import finetune
from neurodeploy.measure.calibrate import OverflowRefused, count_overflow
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.quant.qat import programs_equal
from neurodeploy.quant.quantize import input_settings, quantize_model
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train

_spec = importlib.util.spec_from_file_location(
    "overflow_nets", Path(__file__).with_name("test_overflow.py")
)
assert _spec is not None and _spec.loader is not None
nets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nets)

WIDE = 140_000


def _profile_json(out: Path) -> dict:
    (p,) = json.loads((out / "profile.json").read_text())["profiles"]
    return p


def test_profile_lowers_the_exponent_of_a_saturating_layer(tmp_path, capsys):
    nir, data = tmp_path / "sat.nir", tmp_path / "alt.npz"
    export_nir(nets.saturating_net(), nir, dt=1e-4)
    np.savez(data, x=nets.alternating_x())
    out = tmp_path / "prof"
    cmd = ["profile", str(nir), "--data", str(data), "--target", "reference", "--out", str(out)]
    assert main([*cmd, "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "weight exponent 6 -> 5" in text and "2 saturations" not in text
    meta = _profile_json(out)["meta"]
    assert meta["overflow_counts"] == {"body.1": {"saturations": 0, "wraps": 0}}
    # accepted: the quantiser's exponent 6, 2 saturations per sample (3 samples), counted
    assert main([*cmd, "--no-progress", "--allow-overflow"]) == 0
    text = capsys.readouterr().out
    n = nets.N * nets.SATURATIONS_PER_SAMPLE
    assert f"accepted (--allow-overflow): body.1 {n} saturations, 0 wraps" in text
    assert _profile_json(out)["meta"]["overflow_counts"]["body.1"]["saturations"] == n


def test_profile_refuses_unfixable_overflow_unless_allowed(tmp_path, capsys):
    nir, data = tmp_path / "wide.nir", tmp_path / "ones.npz"
    export_nir(nets.wide_net(WIDE), nir, dt=1e-4)
    np.savez(data, x=np.ones((1, 2, WIDE), np.float32))
    cmd = ["profile", str(nir), "--data", str(data), "--target", "reference", "--no-progress"]
    assert main([*cmd, "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "layer body.1: 1 saturations and 2 wraps" in err and "--allow-overflow" in err
    assert not (tmp_path / "a" / "profile.json").exists()
    # accepted: the quantiser's own program (exponent 5, not the search's -8), its counts
    assert main([*cmd, "--out", str(tmp_path / "b"), "--allow-overflow"]) == 0
    prog = quantize_model(nets.wide_net(WIDE), LOIHI2, input_kind="binary")
    c = count_overflow(prog, load_npz_inputs(data, (WIDE,)))["body.1"]
    assert c.total > 0
    text = capsys.readouterr().out
    assert (
        f"accepted (--allow-overflow): body.1 {c.saturations} saturations, {c.wraps} wraps" in text
    )
    meta = _profile_json(tmp_path / "b")["meta"]
    assert meta["overflow_counts"] == {"body.1": {"saturations": c.saturations, "wraps": c.wraps}}


def test_profile_of_the_float_model_runs_no_search(tmp_path, capsys):
    nir, data = tmp_path / "wide.nir", tmp_path / "ones.npz"
    export_nir(nets.wide_net(WIDE), nir, dt=1e-4)
    np.savez(data, x=np.ones((1, 2, WIDE), np.float32))
    out = tmp_path / "t"
    assert main(["profile", str(nir), "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    assert "overflow" not in _profile_json(out)["meta"]


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    train(TrainConfig(task="digits", T=4, epochs=1, seed=0), out_dir=out, progress=False)
    return out / "checkpoint.pt"


def test_finetunes_final_program_is_checked_on_the_training_split(digits_ckpt):
    from neurodeploy.data import load_task

    res = finetune(digits_ckpt, "loihi2", progress=False, epochs=1, select="last")
    assert res.overflow is not None and res.overflow.checked and res.overflow.clean
    assert "train split" in res.overflow.source and res.overflow.T == 4
    assert "no saturation or wrap" in res.format()
    # clean: the program written is the quantiser's, the one QAT trained against
    settings = input_settings(load_task("digits", T=4))
    assert programs_equal(quantize_model(res.model, **settings), res.program)


def _wide_task(n: int = 2) -> TaskData:
    x = torch.ones((n, WIDE), dtype=torch.float32)
    y = torch.tensor([0, 1] * (n // 2), dtype=torch.int64)
    return TaskData("ones", x, y, x.clone(), y.clone(), (WIDE,), 2, False, 2, "all ones", "-")


def test_finetune_refuses_unfixable_overflow_unless_allowed(tmp_path):
    nir = tmp_path / "wide.nir"
    export_nir(nets.wide_net(WIDE), nir, dt=1e-4)
    kw = dict(progress=False, epochs=1, lr=1e-6, data=_wide_task())
    with pytest.raises(OverflowRefused, match=r"layer body.1: \d+ saturations and \d+ wraps"):
        finetune(nir, "loihi2", **kw)
    res = finetune(nir, "loihi2", allow_overflow=True, **kw)
    assert res.overflow is not None and res.overflow.allowed
    (rec,) = res.overflow.layers
    assert rec.after.total > 0 and "accepted (--allow-overflow)" in res.format()
