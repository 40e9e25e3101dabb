"""The reading options through every command (issue 16 loose ends): ``--reset snntorch`` in
finetune (and its model.nir read back without the option), inspect's float rates and resources
(ignored, and said so); the float Lava check refusing the delayed reset by name; ``--weight-split``
through deploy --target lava, profile, resources and finetune.

The graph: snnTorch's Linear(6, 8) -> RLeaky(8) -> Linear(8, 3) -> Leaky(3), exported by
snnTorch. Synapses by hand: r1 = fc1 6 x 8 + its recurrent 8 x 8 = 112, fan-in 6 + 8 = 14;
l2 = fc2 8 x 3 = 24, fan-in 8; 136 in all. With --reset snntorch the RLeaky (a neuron in a
recurrent loop) gets snnTorch's delayed reset, the Leaky does not (nir_import.nir_to_model).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import torch

snn = pytest.importorskip("snntorch")

from neurodeploy.cli import build_parser, main  # noqa: E402
from neurodeploy.converters.nir_common import METADATA_KEY  # noqa: E402
from neurodeploy.quant.program import IntProgram  # noqa: E402

DT = ["--dt", "1e-4"]
RND = ["--random-input", "0.3", "--T", "8", *DT]
R1_SYNAPSES, L2_SYNAPSES = 6 * 8 + 8 * 8, 8 * 3
R1_FAN_IN, L2_FAN_IN = 6 + 8, 8


def _graph(*, drive: float | None = None) -> nir.NIRGraph:
    """The snnTorch graph (module docstring). ``drive``: fc1's bias set to it and the recurrent
    weights to 0, so every r1 neuron's input is at least drive - |W| x 6 >= 1 (threshold 1) on
    every step."""
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc1 = torch.nn.Linear(6, 8)
            self.r1 = snn.RLeaky(beta=0.75, linear_features=8, reset_mechanism="zero")
            self.fc2 = torch.nn.Linear(8, 3)
            self.l2 = snn.Leaky(
                beta=torch.full((3,), 0.75), threshold=torch.ones(3), reset_mechanism="zero"
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            spk, _ = self.r1(self.fc1(x))
            return self.l2(self.fc2(spk))[0]

    net = Net()
    with torch.no_grad():
        net.fc1.weight.uniform_(-0.2, 0.7)
        net.fc1.bias.fill_(0.3)
        net.fc2.weight.uniform_(-0.2, 0.7)
        net.r1.recurrent.weight.uniform_(-0.3, 0.3)
        if drive is not None:
            net.fc1.weight.uniform_(0.0, 0.1)
            net.fc1.bias.fill_(drive)
            net.r1.recurrent.weight.zero_()
            net.r1.recurrent.bias.zero_()
    return export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.nir"
    nir.write(str(path), _graph())
    return path


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 labelled samples of 8 steps of Bernoulli(0.3) spikes, 3 classes."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("data") / "d.npz"
    np.savez(
        path,
        x=(rng.random((40, 8, 6)) < 0.3).astype(np.float32),
        y=rng.integers(0, 3, 40),
    )
    return path


def _quiet(argv: list[str]) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(argv)


# --- --reset ------------------------------------------------------------------------------------


def test_finetune_reads_reset_and_its_model_nir_keeps_it(
    tiny: Path, labelled: Path, tmp_path: Path
) -> None:
    """finetune --reset snntorch trains the delayed-reset model; its model.nir records
    reset_delay on r1.lif only, so quantize reads it back without the option: the program's r1 is
    refractory, l2 not (as the program finetune wrote). Without the option nothing is delayed."""
    for reset, want in (("snntorch", [True, False]), ("nir", [False, False])):
        out = tmp_path / reset
        argv = ["finetune", str(tiny), *DT, "--data", str(labelled), "--epochs", "1"]
        assert _quiet([*argv, "--reset", reset, "--no-progress", "--out", str(out)]) == 0
        graph = nir.read(str(out / "model.nir"))
        lifs = {n: v for n, v in graph.nodes.items() if isinstance(v, nir.LIF)}
        assert len(lifs) == 2
        delayed = sorted(
            n for n, v in lifs.items() if v.metadata.get(METADATA_KEY, {}).get("reset_delay")
        )
        assert len(delayed) == sum(want) and all("r1" in n for n in delayed), (reset, delayed)
        written = IntProgram.load(out / "model.int.npz")
        assert [l.reset_delay for l in written.layers] == want, reset
        # read back with no --reset: the metadata carries it
        q = tmp_path / f"{reset}.int.npz"
        assert (
            _quiet(["quantize", str(out / "model.nir"), *RND, "--samples", "2", "-o", str(q)]) == 0
        )
        assert [l.reset_delay for l in IntProgram.load(q).layers] == want, reset
        summary = json.loads((out / "finetune.json").read_text())
        assert summary["config"]["weight_split"] == 1


def test_inspect_rates_follow_reset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """r1 driven above threshold on every step (fc1 bias 5, rows of W in [0, 0.1], no recurrent
    weight: input >= 5 > 1): NIR's reset spikes on every step (rate 1), snnTorch's delayed reset
    on every second one (spike, refractory, spike, ...: rate 8/16 = 0.5 over inspect's 16
    steps)."""
    path = tmp_path / "driven.nir"
    nir.write(str(path), _graph(drive=5.0))
    rates = {}
    for reset in ("nir", "snntorch"):
        capsys.readouterr()
        assert _quiet(["inspect", str(path), *DT, "--reset", reset]) == 0
        out = capsys.readouterr().out
        assert f"reset read as '{reset}'" in out
        m = re.search(r"\(NIR node 'r1\.lif'\): ([0-9.]+) spikes", out)
        assert m is not None, out
        rates[reset] = float(m.group(1))
    assert rates == {"nir": 1.0, "snntorch": 0.5}


def test_resources_accepts_reset_and_says_it_is_ignored(
    tiny: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = build_parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    helps = {
        name: next(a.help for a in sub[name]._actions if "--reset" in a.option_strings)
        for name in ("resources", "inspect", "finetune")
    }
    assert "ignored" in helps["resources"] and "snnTorch" not in helps["resources"]
    assert "ignored" not in helps["inspect"] and "snnTorch" in helps["finetune"]
    texts = []
    for reset in ("nir", "snntorch"):
        capsys.readouterr()
        assert _quiet(["resources", str(tiny), *DT, "--reset", reset]) == 0
        texts.append(capsys.readouterr().out)
    assert texts[0] == texts[1]


def test_float_lava_check_refuses_delayed_reset_by_name() -> None:
    """No float Lava model of the refractory step (lava_conformance docstring): refused, naming
    the stage, before any Lava process is built."""
    from torch import nn

    from neurodeploy.measure.lava_conformance import run_lava_float, torch_with_latency
    from neurodeploy.nn.layers import LIF, PerStep
    from neurodeploy.nn.net import SpikingNet
    from neurodeploy.quant.stages import model_stages

    body = nn.Sequential(
        PerStep(nn.Linear(4, 6)),
        LIF(tau=2.0, mps=False, reset_delay=True),
        PerStep(nn.Linear(6, 2)),
    )
    model = SpikingNet("rd", body, (4,), 2).eval()
    name = model_stages(model)[0].name
    x = np.zeros((5, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=rf"stage {name}: snnTorch's delayed reset"):
        run_lava_float(model, x, graded=False)
    with pytest.raises(ValueError, match=rf"stage {name}: snnTorch's delayed reset"):
        torch_with_latency(model_stages(model), x, steps=6)


# --- --weight-split -------------------------------------------------------------------------------


def test_weight_split_in_resources_and_profile(tiny: Path, tmp_path: Path) -> None:
    """Every synapse written twice: resources on the split program and the reference profile count
    2 x the hand-counted synapses and fan-in per layer (module docstring)."""
    from neurodeploy.measure.resources import report_for_path

    for k in (1, 2):
        q = tmp_path / f"p{k}.int.npz"
        argv = ["quantize", str(tiny), *RND, "--samples", "2", "--weight-split", str(k)]
        assert _quiet([*argv, "-o", str(q)]) == 0
        text, fits = report_for_path(str(q), ["loihi2"])
        rows = {
            r.split()[0]: r.split()
            for r in text.splitlines()
            if r.split()[:1] in (["r1_lif"], ["l2"])
        }
        assert fits
        assert [int(rows["r1_lif"][3]), int(rows["r1_lif"][4])] == [k * R1_FAN_IN, k * R1_SYNAPSES]
        assert [int(rows["l2"][3]), int(rows["l2"][4])] == [k * L2_FAN_IN, k * L2_SYNAPSES]
        assert _quiet(["resources", str(q)]) == 0
        out = tmp_path / f"prof{k}"
        argv = ["profile", str(tiny), *RND, "--samples", "2", "--target", "reference"]
        assert _quiet([*argv, "--weight-split", str(k), "--no-progress", "-o", str(out)]) == 0
        layers = json.loads((out / "profile.json").read_text())["profiles"][0]["counts"]["layers"]
        assert [(l["name"], l["fan_in"], l["weights"]) for l in layers] == [
            ("r1_lif", k * R1_FAN_IN, k * R1_SYNAPSES),
            ("l2", k * L2_FAN_IN, k * L2_SYNAPSES),
        ]


def test_weight_split_deploys_to_lava(tiny: Path, tmp_path: Path) -> None:
    """deploy --target lava on the split program: Lava (fixed_pt) equals the reference in every
    layer, the program holds two parts per synapse (3 synapses -> 6)."""
    out = tmp_path / "dep"
    argv = ["deploy", str(tiny), *RND, "--samples", "2", "--weight-split", "2"]
    assert _quiet([*argv, "--target", "lava", "-o", str(out)]) == 0
    conf = json.loads((out / "conformance.json").read_text())["conformance"]
    assert conf["layers"] == ["r1_lif", "l2"]
    assert conf["ref_vs_lava"] == [1.0, 1.0] and conf["pred_ref_vs_lava"] == 1.0
    prog = IntProgram.load(out / "model.int.npz")
    assert prog.meta["weight_split"] == 2
    assert sum(len(prog.edges(k)) for k in range(len(prog.layers))) == 6


def test_finetune_with_weight_split(tiny: Path, labelled: Path, tmp_path: Path) -> None:
    """finetune --weight-split 2 trains through (and writes) the split program."""
    out = tmp_path / "ft"
    argv = ["finetune", str(tiny), *DT, "--data", str(labelled), "--epochs", "1"]
    assert _quiet([*argv, "--weight-split", "2", "--no-progress", "--out", str(out)]) == 0
    prog = IntProgram.load(out / "model.int.npz")
    assert prog.meta["weight_split"] == 2
    assert [len(prog.edges(k)) for k in range(len(prog.layers))] == [4, 2]
    assert json.loads((out / "finetune.json").read_text())["config"]["weight_split"] == 2
