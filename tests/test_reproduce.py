"""`neurodeploy reproduce --quick` end to end on one task."""

import json
import re

from PIL import Image

from neurodeploy.cli import main
from neurodeploy.measure.reproduce import ARMS, FULL, QUICK, VARIANTS


def test_quick_reproduce_writes_a_well_formed_report(tmp_path, capsys):
    out = tmp_path / "rep"
    assert (
        main(["reproduce", "--quick", "--tasks", "digits", "--out", str(out), "--no-progress"]) == 0
    )
    md = (out / "reproduction.md").read_text()
    for heading in (
        "## Ablation",
        "## Variants",
        "## Reduced-timestep inference",
        "## Initial-state consistency",
        "## Gradient flow",
        "## Learned alpha",
    ):
        assert heading in md
    assert "| task | arm | T=2 | T=4 | delta vs vanilla at T=4 |" in md
    for arm in ARMS:
        assert re.search(
            rf"\| digits \| {re.escape(arm)} \| \d+\.\d\d \+- \d+\.\d\d \| \d+\.\d\d \+- \d+\.\d\d \|",
            md,
        )
    data = json.loads((out / "reproduction.json").read_text())
    runs = data["runs"]
    assert len(runs) == len(QUICK.seeds) * len(ARMS) * len(QUICK.Ts) + len(VARIANTS) * len(
        QUICK.variant_seeds
    )
    for r in runs:
        assert 0 <= r["test_acc"] <= 1 and 0 <= r["train_acc"] <= 1
        assert all(0 <= a <= 1 for a in r.get("acc_by_t", []))
        assert all(0 <= a <= 1 for a in r["alphas"].values())
        if r["arm"] in ("vanilla", "+guidance"):
            assert not any(r["alphas"].values())
    with_stats = [r for r in runs if "initial_state" in r]
    assert {r["arm"] for r in with_stats} == set(ARMS)
    for png in ("reduced_timesteps.png", "initial_state_digits.png", "gradient_flow_digits.png"):
        path = out / "figures" / png
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            assert (
                im.size[0] > 200
                and im.size[1] > 100
                and sum(1 for c in im.convert("L").histogram() if c) > 10
            )
        assert f"figures/{png}" in md
    # the report can be rendered again from the JSON alone, identically but for nothing
    (out / "reproduction.md").unlink()
    assert main(["reproduce", "--report-from", str(out / "reproduction.json")]) == 0
    assert (out / "reproduction.md").read_text().split("\n", 3)[3] == md.split("\n", 3)[3]
    # retraining the seed-0 runs reproduces their accuracies exactly (else the command fails)
    assert (
        main(["reproduce", "--refresh-analysis", str(out / "reproduction.json"), "--no-progress"])
        == 0
    )


def test_full_plan_covers_what_the_issue_asks():
    assert len(FULL.seeds) >= 3 and len(FULL.variant_seeds) >= 3 and FULL.Ts == (2, 4)
    assert set(FULL.tasks) == {"digits", "event-digits", "seq1d", "shapes3d"}
    names = " ".join(VARIANTS)
    for needle in (
        "reading=charge",
        "earlier-teaches-later",
        "direction=both",
        "p_drop=0.5",
        "alpha_init=0.2",
        "alpha_init=0.8",
    ):
        assert needle in names


def test_bad_arguments(tmp_path, capsys):
    assert main(["reproduce", "--quick", "--tasks", "cifar10", "--out", str(tmp_path)]) == 2
    assert "tasks" in capsys.readouterr().err
    assert main(["reproduce", "--quick", "--workers", "0", "--out", str(tmp_path)]) == 2
    assert "workers" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["reproduce", "--report-from", str(tmp_path / "broken.json")]) == 2
    assert "broken.json" in capsys.readouterr().err
