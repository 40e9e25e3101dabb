"""The demo end to end on a short run: every stage it chains (train, NIR, quantise, reference,
Lava, profile) must still fit together, which no other test calls in one piece."""

from __future__ import annotations

import json

import pytest

from neurodeploy.demo import run_demo

pytestmark = pytest.mark.lava


def test_demo_chain_runs_and_reports_every_stage(tmp_path, capsys):
    pytest.importorskip("lava.magma.core.run_configs")
    results = run_demo(tmp_path, epochs=1, compare=False, progress=False, lava_samples=2)
    out = capsys.readouterr().out
    assert [label for label, _ in results] == ["MPS + guidance"]
    assert 0.5 < results[0][1].test_acc <= 1.0  # one epoch of the 10-class task is far above chance
    for stage in (
        "float torch",
        "reference simulator, loihi2 integers",
        "Lava fixed_pt (2 samples)",
    ):
        assert stage in out
    summary = json.loads((tmp_path / "deploy" / "conformance.json").read_text())
    conformance = summary["conformance"]
    assert conformance["n_samples"] == 2
    # Lava runs the integer program bit-exactly: every spike and prediction as the reference
    assert conformance["ref_vs_lava"] == [1.0] * len(conformance["layers"])
    assert conformance["pred_ref_vs_lava"] == 1.0
    assert (tmp_path / "profile" / "profile.md").is_file()
