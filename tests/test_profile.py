"""Profiles end to end: reference == Lava counts, the report (JSON, Markdown, PNG), energy models,
the CLI and its errors."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest

from neurodeploy.cli import main
from neurodeploy.data import load_task
from neurodeploy.measure.energy import (
    CMOS45,
    LOIHI,
    EnergyEstimate,
    NeuromorphicEnergyModel,
    OpEnergyModel,
    get_energy_model,
    load_energy_model,
)
from neurodeploy.measure.profiling import profile
from neurodeploy.measure.qreport import quantize_for_task
from neurodeploy.measure.report import write_report
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    res = train(
        TrainConfig(task="digits", model="mlp", T=3, epochs=1, arch={"hidden": [24]}),
        out_dir=out / "mps",
        progress=False,
    )
    van = train(
        TrainConfig(
            task="digits",
            model="mlp",
            T=3,
            epochs=1,
            mps=False,
            guidance=False,
            arch={"hidden": [24]},
        ),
        out_dir=out / "van",
        progress=False,
    )
    return out, res.model, van.model


def test_reference_and_lava_counts_are_identical(digits_run) -> None:
    _, model, _ = digits_run
    task = load_task("digits", T=3)
    prog = quantize_for_task(model, task, LOIHI2)
    ref = profile(prog, task, 3, "reference", samples=3, latency=True, progress=False)
    lava = profile(prog, task, 3, "lava", samples=3, progress=False)
    assert ref.counts.T == lava.counts.T == 3 + len(prog.layers)  # Lava: one step per synapse
    assert ref.counts.totals()["spikes"] > 0
    for a, b in zip(ref.counts.layers, lava.counts.layers):
        assert a.name == b.name
        assert np.array_equal(a.synops, b.synops), a.name
        assert np.array_equal(a.spikes, b.spikes), a.name
        assert a.input_spiking == b.input_spiking
    assert ref.accuracy == lava.accuracy
    for name in ref.membranes:
        for t, (u, v) in enumerate(zip(ref.membranes[name], lava.membranes[name])):
            assert np.array_equal(u, v), f"{name} t={t}"
    assert ref.counts.layers[0].input_spiking is False  # graded pixels into the first layer: MACs
    assert ref.counts.totals()["macs"] > 0


def test_float_and_integer_profiles_agree_closely(digits_run) -> None:
    """The integer program's spikes track the float model's (PTQ within a few percent)."""
    _, model, _ = digits_run
    task = load_task("digits", T=3)
    pf = profile(model, task, 3, "torch", samples=200, progress=False)
    pi = profile(model, task, 3, "reference", samples=200, progress=False)
    f, i = pf.counts.totals(), pi.counts.totals()
    # start states in threshold units: the integer ones (v / (vth << 6)) track the float ones (v / theta)
    for name in pf.membranes:
        for t in (1, 2):
            mf, mi = pf.membranes[name][t], pi.membranes[name][t]
            assert mf.std() > 0.05
            assert abs(mf.mean() - mi.mean()) < 0.02 and mi.std() == pytest.approx(
                mf.std(), rel=0.05
            )
    assert i["spikes"] == pytest.approx(f["spikes"], rel=0.05)
    assert i["synops"] == pytest.approx(f["synops"], rel=0.05)
    assert i["ann_macs"] == f["ann_macs"]


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


def _md_totals(md: str) -> tuple[list[str], dict[str, list[str]]]:
    block = md.split("## Totals", 1)[1].split("\n## ", 1)[0]
    rows = [l for l in block.splitlines() if l.startswith("|")]
    header = [c.strip() for c in rows[0].strip("|").split("|")]
    table = {}
    for r in rows[2:]:
        cells = [c.strip() for c in r.strip("|").split("|")]
        table[cells[0]] = cells[1:]
    return header, table


def test_report_files_and_totals(digits_run, tmp_path) -> None:
    _, mps, van = digits_run
    task = load_task("digits", T=3)
    profiles = [
        profile(mps, task, 3, "torch", samples=64, label="MPS", progress=False),
        profile(van, task, 3, "torch", samples=64, label="vanilla", progress=False),
    ]
    paths = write_report(profiles, tmp_path / "rep")
    assert set(paths.plots) == {"raster", "firing rate", "membrane potentials", "energy per layer"}
    for p in paths.plots.values():
        w, h = _png_size(p)
        assert w > 200 and h > 150 and p.stat().st_size > 5000
    doc = json.loads(paths.json.read_text())
    md = paths.markdown.read_text()
    header, table = _md_totals(md)
    assert header[1:3] == ["MPS", "vanilla"]
    # Markdown totals == JSON totals (at the 6 significant digits printed), named rows -> JSON keys
    keys = {
        "spikes / sample": "spikes",
        "ACs / sample": "acs",
        "MACs / sample": "macs",
        "synaptic ops / sample": "synops",
        "activation sparsity": "activation_sparsity",
        "equivalent ANN MACs / sample": "ann_macs",
        "parameters": "parameters",
        "neuron updates / sample": "neuron_updates",
    }
    for k, prof in enumerate(doc["profiles"]):
        t = prof["counts"]["totals"]
        for row, key in keys.items():
            assert float(table[row][k]) == pytest.approx(t[key], rel=1e-5), (row, prof["label"])
        assert float(table["accuracy"][k]) == pytest.approx(prof["accuracy"], rel=1e-5)
        for e in prof["energy"]:
            assert float(table[f"energy [{e['model']}] pJ / sample"][k]) == pytest.approx(
                e["total_pj"], rel=1e-5
            )
        # per-layer sums in the JSON add up to the totals
        assert sum(l["spikes"] for l in prof["counts"]["layers"]) == pytest.approx(t["spikes"])
        assert sum(l["acs"] + l["macs"] for l in prof["counts"]["layers"]) == pytest.approx(
            t["synops"]
        )
    # every energy number is labelled with its model
    assert all(re.search(r"\[(cmos45|loihi)\]", r) for r in table if "energy" in r)
    # ratio column: vanilla / MPS
    sp = doc["profiles"]
    ratio = sp[1]["counts"]["totals"]["spikes"] / sp[0]["counts"]["totals"]["spikes"]
    assert float(table["spikes / sample"][2]) == pytest.approx(ratio, rel=1e-5)


def test_energy_models_by_hand_and_user_files(tmp_path) -> None:
    assert get_energy_model("cmos45") is CMOS45 and get_energy_model("loihi") is LOIHI
    (tmp_path / "m.json").write_text(
        json.dumps({"kind": "ops", "name": "my-28nm", "e_ac_pj": 0.3, "e_mac_pj": 1.2})
    )
    m = get_energy_model(str(tmp_path / "m.json"))
    assert isinstance(m, OpEnergyModel) and (m.name, m.e_ac_pj, m.e_mac_pj) == ("my-28nm", 0.3, 1.2)
    (tmp_path / "n.toml").write_text('kind = "neuromorphic"\nname = "chip"\ne_synop_pj = 10.0\n')
    n = load_energy_model(tmp_path / "n.toml")
    assert isinstance(n, NeuromorphicEnergyModel) and n.e_synop_pj == 10.0 and n.e_spike_pj == 1.7

    class Flat:
        name = "flat"

        def estimate(self, counts):
            return EnergyEstimate("flat", {}, {}, 1.0)

    assert get_energy_model(Flat()).name == "flat"
    with pytest.raises(ValueError, match="unknown name 'cmos22'.*cmos45"):
        get_energy_model("cmos22")
    (tmp_path / "bad.json").write_text('{"kind": "ops", "name": "x", "e_ac": 1}')
    with pytest.raises(ValueError, match=r"bad.json: unknown field\(s\) \['e_ac'\]"):
        get_energy_model(str(tmp_path / "bad.json"))
    (tmp_path / "neg.json").write_text('{"kind": "ops", "name": "x", "e_ac_pj": -1}')
    with pytest.raises(ValueError, match="field e_ac_pj must be a finite number >= 0"):
        get_energy_model(str(tmp_path / "neg.json"))
    (tmp_path / "noname.json").write_text('{"kind": "ops"}')
    with pytest.raises(ValueError, match="field 'name' is required"):
        get_energy_model(str(tmp_path / "noname.json"))
    (tmp_path / "broken.json").write_text('{"kind": ')
    with pytest.raises(ValueError, match="broken.json: not valid JSON"):
        get_energy_model(str(tmp_path / "broken.json"))


def test_cli_profile_end_to_end_and_errors(digits_run, tmp_path, capsys) -> None:
    out, _, _ = digits_run
    ckpt, van = str(out / "mps" / "checkpoint.pt"), str(out / "van" / "checkpoint.pt")
    nir_path = str(tmp_path / "m.nir")
    assert main(["export", ckpt, "-o", nir_path]) == 0
    assert (
        main(
            [
                "profile",
                nir_path,
                "--compare",
                van,
                "--samples",
                "32",
                "--out",
                str(tmp_path / "r"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert (tmp_path / "r" / "profile.md").exists() and (tmp_path / "r" / "membrane.png").exists()
    doc = json.loads((tmp_path / "r" / "profile.json").read_text())
    assert [p["target"] for p in doc["profiles"]] == ["torch", "torch"]
    assert [e["model"] for e in doc["profiles"][0]["energy"]] == ["cmos45", "loihi"]
    # float vs integer of one model, module view is refused for integer targets
    assert (
        main(
            [
                "profile",
                ckpt,
                "--compare-target",
                "reference",
                "--samples",
                "16",
                "--energy-model",
                "cmos45",
                "--out",
                str(tmp_path / "r2"),
                "--no-progress",
            ]
        )
        == 0
    )
    doc = json.loads((tmp_path / "r2" / "profile.json").read_text())
    assert [p["target"] for p in doc["profiles"]] == ["torch", "reference"]
    capsys.readouterr()
    # errors: unknown energy model, not a model file, task shape mismatch, integer target + module view
    assert main(["profile", ckpt, "--energy-model", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown name 'nope'" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("hello")
    assert main(["profile", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "x")]) == 2
    assert "not a model file" in capsys.readouterr().err
    (tmp_path / "fake.nir").write_text("not hdf5")
    assert main(["profile", str(tmp_path / "fake.nir"), "--out", str(tmp_path / "x")]) == 2
    assert "fake.nir" in capsys.readouterr().err
    assert main(["profile", ckpt, "--task", "seq1d", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert (
        "task 'seq1d' gives input of shape (1, 40) per timestep, but the model expects (1, 8, 8)"
        in err
    )
    assert (
        main(
            [
                "profile",
                ckpt,
                "--target",
                "reference",
                "--view",
                "module",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "'hardware' view only" in capsys.readouterr().err
    assert main(["profile", ckpt, "--target", "gpu", "--out", str(tmp_path / "x")]) == 2
    assert "unknown 'gpu'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # nothing half-written on error


def test_nan_weights_are_refused() -> None:
    from neurodeploy.quant.synapse import Synapse

    w = np.ones((2, 3))
    w[1, 2] = np.nan
    with pytest.raises(ValueError, match="layer fc: weight has NaN"):
        Synapse("dense", w, (3,), (2,), where="layer fc")
    with pytest.raises(ValueError, match="dense weight .* does not map"):
        Synapse("dense", np.ones((2, 3)), (4,), (2,), where="layer fc")


def test_integer_program_file_keeps_the_architectures_ann_macs(digits_run, tmp_path) -> None:
    """A program saved by the quantiser carries the torch graph's ANN MACs, so profiling the .npz
    gives the same SNN/ANN ratio as profiling the model on the same target."""
    _, model, _ = digits_run
    task = load_task("digits", T=3)
    prog = quantize_for_task(model, task, LOIHI2)
    prog.save(tmp_path / "p.npz")
    from neurodeploy.quant.program import IntProgram

    loaded = IntProgram.load(tmp_path / "p.npz")
    a = profile(model, task, 3, "reference", samples=16, progress=False)
    b = profile(loaded, task, 3, "reference", samples=16, progress=False)
    assert b.counts.ann_macs == a.counts.ann_macs == a.counts.totals()["ann_macs"] > 0
    assert b.energy_by_model()["cmos45"].snn_over_ann == pytest.approx(
        a.energy_by_model()["cmos45"].snn_over_ann
    )
    loaded.meta.pop("ann_macs")
    c = profile(loaded, task, 3, "reference", samples=16, progress=False)
    assert c.counts.ann_macs is None  # falls back to the folded layers, and the report says so
    md = write_report([c], tmp_path / "rep", plots=False).markdown.read_text()
    assert "counted on its folded hardware layers" in md
