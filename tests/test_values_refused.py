"""NaN, inf and nonsense values are refused by name at the API entry points (issue 17, third
bullet): integer-program inputs, weights on export, NIR inspection, run configurations and
recipes, the counts/T/rates of the API functions, and the labels of a profile comparison."""

from __future__ import annotations

import math

import nir
import numpy as np
import pytest
import torch

from neurodeploy.converters.nir_export import export_nir, model_to_nir
from neurodeploy.converters.nir_inspect import format_summary, summarize
from neurodeploy.data.inputs import (
    load_npz_inputs,
    random_inputs,
    resolve_inputs,
)
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.zoo import build_model
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.recipe import load_recipe

NAN, INF = float("nan"), float("inf")
SHAPE = (1, 4, 4)


def _mlp(seed: int = 0):
    torch.manual_seed(seed)
    return build_model("mlp", SHAPE, 3).eval()


@pytest.fixture(scope="module")
def graded_program():
    return quantize_model(_mlp(), LOIHI2, input_kind="graded", input_range=1.0)


# --- integer program inputs -------------------------------------------------------------------


@pytest.mark.parametrize("bad", [NAN, INF, -INF])
def test_quantize_input_refuses_nonfinite(graded_program, bad):
    x = np.full((2, 1, *SHAPE), 0.5)
    x[1, 0, 0, 2, 3] = bad
    with pytest.raises(ValueError, match=r"input: .*1 (NaN|inf).* index \(1, 0, 0, 2, 3\)"):
        graded_program.quantize_input(x)


def test_quantize_input_finite_unchanged(graded_program):
    x = np.full((2, 1, *SHAPE), 0.5)
    q, clipped = graded_program.quantize_input(x)
    # hand-computed: round(0.5 * input_scale), nothing clipped
    assert clipped == 0 and (q == round(0.5 * graded_program.input_scale)).all()


def test_quantize_input_binary_nan_named():
    prog = quantize_model(_mlp(), LOIHI2, input_kind="binary")
    x = np.zeros((2, 1, *SHAPE))
    x[0, 0, 0, 0, 0] = NAN
    with pytest.raises(ValueError, match=r"input: .*1 NaN"):
        prog.quantize_input(x)


# --- export and inspect -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", [NAN, INF])
def test_export_refuses_nonfinite_weights_by_name(tmp_path, bad):
    m = _mlp()
    name, p = next((n, p) for n, p in m.named_parameters() if n.endswith("weight"))
    with torch.no_grad():
        p.view(-1)[3] = bad
        p.view(-1)[5] = bad
    out = tmp_path / "m.nir"
    counts = "2 NaN and 0 inf" if math.isnan(bad) else "0 NaN and 2 inf"
    with pytest.raises(ValueError, match=rf"export: parameter {name!r} has {counts} value"):
        export_nir(m, out)
    assert not out.exists()


def test_export_refuses_nonfinite_buffer(tmp_path):
    m = _mlp()
    bn = next(mod for mod in m.modules() if isinstance(mod, torch.nn.BatchNorm1d))
    with torch.no_grad():
        bn.running_var[0] = NAN
    with pytest.raises(ValueError, match=r"export: buffer '.*running_var' has 1 NaN and 0 inf"):
        model_to_nir(m)


def _graph_with(weight: np.ndarray) -> nir.NIRGraph:
    n_out, n_in = weight.shape
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "fc": nir.Linear(weight=weight),
        "lif": nir.LIF(
            tau=np.full(n_out, 0.01),
            r=np.ones(n_out),
            v_leak=np.zeros(n_out),
            v_threshold=np.ones(n_out),
        ),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    return nir.NIRGraph(nodes=nodes, edges=[("input", "fc"), ("fc", "lif"), ("lif", "output")])


def test_inspect_counts_nonfinite_per_node():
    w = np.array([[0.5, NAN, -0.25], [INF, NAN, 1.0]])
    rows = {r.name: r for r in summarize(_graph_with(w))}
    assert rows["fc"].nonfinite == {"weight": (2, 1)}  # (NaN, inf) counted by hand
    assert rows["fc"].params["weight"][:2] == (-0.25, 1.0)  # range of the finite values
    assert rows["lif"].nonfinite == {}
    text = format_summary(_graph_with(w))
    assert "weight 2 NaN, 1 inf of 6" in text
    assert "non-finite values: fc.weight (2 NaN, 1 inf)" in text


def test_inspect_says_none_when_finite():
    text = format_summary(_graph_with(np.ones((2, 3))))
    assert "non-finite values: none" in text


# --- profile --compare labels -----------------------------------------------------------------


def test_compare_labels_distinct_by_folder():
    runs = [("a/checkpoint.pt", "torch"), ("b/checkpoint.pt", "torch")]
    from neurodeploy.measure.report import distinct_labels

    assert distinct_labels(runs) == ["a/checkpoint (torch)", "b/checkpoint (torch)"]
    runs = [("x/a/ck.pt", "reference"), ("y/a/ck.pt", "reference")]
    assert distinct_labels(runs) == ["x/a/ck (reference)", "y/a/ck (reference)"]
    # different targets or names: the short label stays
    assert distinct_labels([("m.pt", "torch"), ("m.pt", "reference")]) == [
        "m (torch)",
        "m (reference)",
    ]
    assert distinct_labels([("a/m.pt", "torch"), ("b/n.pt", "torch")]) == ["m (torch)", "n (torch)"]
    # the same file on the same target twice: numbered; an absolute path keeps one root slash
    assert distinct_labels([("a/m.pt", "torch")] * 2) == ["a/m (torch) #1", "a/m (torch) #2"]
    assert distinct_labels([("/x/m.pt", "torch"), ("x/m.pt", "torch")]) == [
        "/x/m (torch)",
        "x/m (torch)",
    ]


def test_write_report_refuses_equal_labels(tmp_path):
    from neurodeploy.measure.report import write_report

    class P:  # only the label is read before the refusal
        label = "checkpoint (torch)"

    with pytest.raises(ValueError, match="labels must be distinct.*'checkpoint \\(torch\\)'"):
        write_report([P(), P()], tmp_path, plots=False)  # type: ignore[list-item]
    assert not any(tmp_path.iterdir())


# --- TrainConfig and recipes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight_decay", NAN),
        ("weight_decay", -1.0),
        ("weight_decay", INF),
        ("seed", -1),
        ("seed", 1.5),
        ("data_seed", NAN),
        ("T", 0),
        ("batch_size", 0),
    ],
)
def test_train_config_refuses_by_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} "):
        TrainConfig(task="digits", **{field: value})


def test_train_config_refuses_unknown_arch_key():
    with pytest.raises(ValueError, match=r"arch: unknown key\(s\) \['bogus'\].*allowed.*hidden"):
        TrainConfig(task="digits", model="mlp", arch={"bogus": 1})
    TrainConfig(task="digits", model="mlp", arch={"hidden": 16})  # a real option passes


def test_recipe_refuses_unknown_arch_key(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text('task = "digits"\nmodel = "mlp"\n[arch]\nhiden = 32\n')
    with pytest.raises(ValueError, match=rf"recipe {p}: arch: unknown key\(s\) \['hiden'\]"):
        load_recipe(p)


def test_recipe_refuses_unknown_data_key(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(f'task = "shd"\ndata_root = "{tmp_path}"\n[data]\nsizee = 3\n')
    with pytest.raises(ValueError, match=r"data: unknown key\(s\) \['sizee'\]; allowed"):
        load_recipe(p)


# --- the API functions that take T, samples, rates --------------------------------------------


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"T": 0}, "T"),
        ({"T": -3}, "T"),
        ({"samples": 0}, "samples"),
        ({"samples": -5}, "samples"),
        ({"seed": -1}, "seed"),
    ],
)
def test_resolve_inputs_refuses(kw, field):
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        resolve_inputs(SHAPE, random_rate=0.5, **kw)


@pytest.mark.parametrize("rate", [NAN, INF, -0.1, 1.5])
def test_random_rate_refused(rate):
    with pytest.raises(ValueError, match="rate"):
        random_inputs(rate, SHAPE, T=2, n=2)


def test_npz_T_zero_refused(tmp_path):
    p = tmp_path / "x.npz"
    np.savez(p, x=np.zeros((3, *SHAPE), np.float32))
    with pytest.raises(ValueError, match=r"\bT\b.*>= 1"):
        load_npz_inputs(p, SHAPE, T=0)


@pytest.mark.parametrize(("kw", "field"), [({"T": 0}, "T"), ({"samples": 0}, "samples")])
def test_profile_refuses(kw, field):
    from neurodeploy.measure.profiling import profile

    args = {"T": 2, "samples": 2, **kw}
    x = random_inputs(0.5, SHAPE, T=2, n=2)
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        profile(_mlp(), x, progress=False, **args)


@pytest.mark.parametrize(("kw", "field"), [({"T": 0}, "T"), ({"n": 0}, "n")])
def test_verify_refuses(graded_program, kw, field):
    from neurodeploy.measure.verify import verify

    args = {"T": 2, "n": 2, **kw}
    x = random_inputs(0.5, SHAPE, T=2, n=2)
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        verify(_mlp(), graded_program, x, lava=False, **args)


@pytest.mark.parametrize(("kw", "field"), [({"T": 0}, "T"), ({"lava_samples": 0}, "lava_samples")])
def test_deploy_refuses_before_writing(tmp_path, kw, field):
    from neurodeploy.deploy import deploy

    args = {"T": 2, **kw}
    out = tmp_path / "d"
    with pytest.raises(ValueError, match=rf"\b{field}\b"):
        deploy(_mlp(), random_inputs(0.5, SHAPE, T=2, n=2), out_dir=out, target="reference", **args)
    assert not out.exists()


def test_dt_nan_refused_on_export(tmp_path):
    with pytest.raises(ValueError, match="dt must be a finite number > 0"):
        export_nir(_mlp(), tmp_path / "m.nir", dt=math.nan)


def test_cli_profile_compare_labels_by_folder(tmp_path):
    import json

    from neurodeploy.cli import main

    for folder, seed in (("a", 0), ("b", 1)):
        (tmp_path / folder).mkdir()
        export_nir(_mlp(seed), tmp_path / folder / "m.nir")
    a, b, r = (str(tmp_path / p) for p in ("a/m.nir", "b/m.nir", "r"))
    argv = ["profile", a, "--compare", b, "--random-input", "0.3", "--samples", "2"]
    assert main([*argv, "--energy-model", "cmos45", "--out", r, "--no-progress"]) == 0
    doc = json.loads((tmp_path / "r" / "profile.json").read_text())
    assert [p["label"] for p in doc["profiles"]] == ["a/m (torch)", "b/m (torch)"]
