"""Item 6 of issue 15, the silent-network half: a network that the chosen dt makes silent (no
spike on seeded Bernoulli input) is reported per layer, with the dt that would make it spike and
the producers that use it; ``inspect`` prints it, the deployment commands warn (never refuse).

The NIR paper's sinabs CNN (IF neurons, r = 1: input gain r*dt) read at the default dt = 1e-4
scales every input by 1e-4 and never spikes; at dt = 1 (sinabs/spyx) every layer spikes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

from neurodeploy.cli import main
from neurodeploy.converters.nir_export import export_nir
from neurodeploy.converters.nir_import import nir_to_model
from neurodeploy.converters.nir_inspect import (
    SILENCE_RATE,
    SILENCE_SAMPLES,
    SILENCE_SEED,
    SILENCE_T,
    layer_activity,
    silence_check,
)
from neurodeploy.data.inputs import random_inputs
from neurodeploy.nn.layers import LIF, PerStep
from neurodeploy.nn.net import SpikingNet

SINABS_CNN = Path(__file__).parents[2] / "shared" / "fixtures" / "nir-paper" / "cnn_sinabs.nir"
#: the sinabs CNN's spiking NIR nodes, in chain order
SINABS_NODES = ["1", "3", "6", "10", "12"]
RANDOM = ["--random-input", "0.1", "--T", "8", "--samples", "4"]

needs_fixture = pytest.mark.skipif(not SINABS_CNN.exists(), reason="NIR paper fixture missing")


def _read(path: Path, dt: float | None) -> SpikingNet:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dt/IF-gain warnings are tested in test_nir_dt
        return nir_to_model(path, dt=dt)


@needs_fixture
def test_sinabs_cnn_at_the_default_dt_is_silent_and_dt_1_is_named():
    rep = silence_check(_read(SINABS_CNN, None), SINABS_CNN)
    assert [l.node for l in rep.layers] == SINABS_NODES
    assert all(l.rate == 0 for l in rep.layers) and len(rep.silent) == len(SINABS_NODES)
    assert rep.dt is not None and rep.dt.dt == 1e-4 and rep.dt.source == "default"
    assert rep.spiking_dts() == [1.0]  # norse's 1e-3 is still silent (gain 1e-3)
    assert rep.others[1e-3] == rep.silent
    text = rep.warning()
    assert text.startswith("silent network: ")
    for node in SINABS_NODES:
        assert f"NIR node {node!r}" in text
    assert "--dt 1 " in text and "dt=1 (spyx/sinabs)" in text
    assert "at dt = 0.0001 s per timestep (default: the graph records no dt)" in text


@needs_fixture
def test_sinabs_cnn_at_dt_1_spikes_in_every_layer():
    rep = silence_check(_read(SINABS_CNN, 1.0), SINABS_CNN, dt=1.0)
    assert rep.silent == [] and rep.warning() == "" and rep.others == {}
    assert all(l.rate > 0 for l in rep.layers)


@needs_fixture
def test_cli_quantize_warns_at_the_default_dt_and_not_at_dt_1(tmp_path, capsys):
    out = tmp_path / "q.int.npz"
    assert main(["quantize", str(SINABS_CNN), *RANDOM, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "neurodeploy quantize: warning: silent network" in err and "--dt 1 " in err
    assert main(["quantize", str(SINABS_CNN), *RANDOM, "--dt", "1", "--out", str(out)]) == 0
    assert "silent" not in capsys.readouterr().err


@needs_fixture
def test_cli_inspect_prints_the_rates_and_the_silence(capsys):
    assert main(["inspect", str(SINABS_CNN)]) == 0
    out = capsys.readouterr().out
    assert "spike rates of the float import" in out and "silent network" in out
    assert main(["inspect", str(SINABS_CNN), "--dt", "1"]) == 0
    out = capsys.readouterr().out
    assert "spike rates of the float import" in out and "silent" not in out


def _two_layer(w2: float) -> SpikingNet:
    """4 inputs -> 1 IF neuron (weights 1, theta 0.5) -> 1 IF neuron (weight w2, theta 0.5)."""
    l1, l2 = nn.Linear(4, 1, bias=False), nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        l1.weight.fill_(1.0)
        l2.weight.fill_(w2)
    body = nn.Sequential(
        PerStep(l1),
        LIF(tau=float("inf"), theta=0.5, mps=False),
        PerStep(l2),
        LIF(tau=float("inf"), theta=0.5, mps=False),
    )
    return SpikingNet("two", body, (4,), 1).eval()


def test_rates_by_hand():
    """Layer 1: v = sum of the step's inputs (0 after a spike or no input) > 0.5 exactly when an
    input spikes that step, so its rate is the fraction of (sample, step) with any input on;
    layer 2 (weight 1) repeats layer 1's spikes in the same step: the same rate."""
    x = random_inputs(SILENCE_RATE, (4,), T=SILENCE_T, n=SILENCE_SAMPLES, seed=SILENCE_SEED).x
    expected = float((x.sum(-1) > 0).float().mean())
    acts = layer_activity(_two_layer(1.0))
    assert [a.rate for a in acts] == pytest.approx([expected, expected], abs=1e-7)
    assert 0 < expected < 1


def test_a_deep_layer_quiet_by_design_is_reported_not_refused(tmp_path, capsys):
    """Layer 2 has weight 0: silent at every dt. The report names it alone, says no producer dt
    helps, and the command runs."""
    path = tmp_path / "quiet.nir"
    export_nir(_two_layer(0.0), path, dt=1e-4)
    rep = silence_check(_read(path, None), path)
    assert rep.dt is not None and rep.dt.source == "metadata"
    assert len(rep.silent) == 1 and rep.silent[0].startswith("body.3")
    assert rep.layers[0].rate > 0 and rep.spiking_dts() == []
    assert "silent layers: body.3" in rep.warning() and "quiet by design" in rep.warning()
    out = tmp_path / "q.int.npz"
    assert main(["quantize", str(path), *RANDOM, "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "warning: silent layers: body.3" in err and out.exists()


def test_a_checkpoint_like_model_gets_rates_without_dt_advice():
    rep = silence_check(_two_layer(0.0))
    assert rep.dt is None and len(rep.silent) == 1
    assert "not a NIR graph" in rep.warning()
