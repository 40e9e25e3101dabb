"""The dt contract of the NIR importer: NIR time constants are in seconds, so a graph is read
with the dt recorded in its metadata (our exporter writes one), the caller's ``dt``/``--dt``, or
1e-4 with a warning naming the assumption; a tau/dt that cannot be a leaky neuron is an error
naming node, tau and dt. Graphs are written in the test by snnTorch's, norse's and our exporter.
Expected time constants are hand-computed from each producer's documented discretisation."""

import warnings
from pathlib import Path

import nir
import pytest
import torch
from torch import nn

from neurodeploy import cli
from neurodeploy.converters.nir_common import DEFAULT_DT, NIRConversionError, NIRDtWarning
from neurodeploy.converters.nir_export import export_nir
from neurodeploy.converters.nir_import import graph_dt, nir_to_model, read_nir
from neurodeploy.nn.layers import LI, LIF, NeuronConfig
from neurodeploy.nn.zoo import build_model

SINABS_CNN = Path(__file__).resolve().parents[2] / "shared/fixtures/nir-paper/cnn_sinabs.nir"


def _neurons(model: nn.Module, kind: type) -> list[nn.Module]:
    return [m for m in model.modules() if type(m) is kind]


def _dt_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, NIRDtWarning)]


def _snntorch_graph(tmp_path: Path, beta: float = 0.9) -> Path:
    """snnTorch's exporter: Linear -> Leaky -> Linear -> Leaky; it writes tau = 1e-4/(1-beta)."""
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    def leaky(n: int) -> nn.Module:
        return snn.Leaky(
            beta=torch.full((n,), beta),
            threshold=torch.ones(n),
            init_hidden=True,
            reset_mechanism="zero",
        )

    net = nn.Sequential(nn.Linear(6, 8), leaky(8), nn.Linear(8, 3), leaky(3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.zeros(1, 6), ignore_dims=[0])
    path = tmp_path / "snntorch.nir"
    nir.write(str(path), graph)
    return path


def _norse_graph(tmp_path: Path) -> Path:
    """norse's exporter (dt = 1e-3): a LIFCell becomes a CubaLIF with tau = dt / tau_inv.
    Parameters per neuron (norse's scalar defaults cannot be written to HDF5 with gzip)."""
    norse = pytest.importorskip("norse.torch")
    from norse.torch.utils.export_nir import to_nir

    p = norse.LIFParameters(
        tau_syn_inv=torch.full((4,), 200.0),
        tau_mem_inv=torch.full((4,), 100.0),
        v_leak=torch.zeros(4),
        v_th=torch.ones(4),
        v_reset=torch.zeros(4),
    )
    net = norse.SequentialState(nn.Linear(6, 4), norse.LIFCell(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = to_nir(net, torch.zeros(6))
    path = tmp_path / "norse.nir"
    nir.write(str(path), graph)
    return path


def test_our_export_records_dt_and_is_read_without_warning(tmp_path):
    torch.manual_seed(0)
    model = build_model("mlp", (1, 4, 4), 3, NeuronConfig(mps=False, tau=5.0)).eval()
    path = tmp_path / "ours.nir"
    export_nir(model, path, dt=1e-3)
    graph = read_nir(path)
    assert graph_dt(graph).source == "metadata" and graph_dt(graph).dt == pytest.approx(1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NIRDtWarning)
        back = nir_to_model(path)
    assert [m.params.tau for m in _neurons(back, LIF)] == pytest.approx([5.0, 5.0])
    # an explicit dt overrides the recorded one: tau = 5e-3 s at 2.5e-4 s per step = 20 steps
    over = nir_to_model(path, dt=2.5e-4)
    assert graph_dt(graph, 2.5e-4).source == "argument"
    assert [m.params.tau for m in _neurons(over, LIF)] == pytest.approx([20.0, 20.0])


def test_snntorch_graph_without_dt_warns_once_naming_the_assumption(tmp_path):
    path = _snntorch_graph(tmp_path, beta=0.9)
    assert graph_dt(read_nir(path)).source == "default"
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = nir_to_model(path)
    texts = _dt_warnings(record)
    assert len(texts) == 1, texts
    assert f"assuming dt={DEFAULT_DT:g}" in texts[0]
    for producer in ("snnTorch and SpikingJelly export with dt=1e-4", "norse with dt=0.001"):
        assert producer.replace("0.001", "1e-3") in texts[0]
    assert "spyx" in texts[0]
    # snnTorch's tau = 1e-4 / (1 - 0.9) = 1e-3 s -> 10 steps, beta 0.9 (float32 storage)
    taus = [m.params.tau for m in _neurons(model, LIF)]
    assert taus == pytest.approx([10.0, 10.0], rel=1e-5)


def test_snntorch_graph_with_a_nonsense_dt_is_an_error_naming_node_tau_and_dt(tmp_path):
    path = _snntorch_graph(tmp_path, beta=0.9)  # tau = 1e-3 s
    with pytest.raises(NIRConversionError) as e:
        nir_to_model(path, dt=1e-3)  # tau/dt = 1: beta = 0
    msg = str(e.value)
    assert e.value.node == "1" and e.value.field == "tau"
    assert "tau = 0.001 s" in msg and "dt = 0.001 s" in msg and "tau/dt = 1 " in msg
    assert "dt values that make sense for tau=0.001 s lie in (1.22e-07, 0.001)" in msg
    assert "snnTorch and SpikingJelly export with dt=1e-4" in msg


def test_a_decay_that_rounds_to_nothing_warns_naming_node(tmp_path):
    path = _snntorch_graph(tmp_path, beta=0.9)  # tau = 1e-3 s
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nir_to_model(path, dt=1e-8)  # tau/dt = 1e5 > 8192: round(4096 / 1e5) = 0
    texts = _dt_warnings(record)
    assert len(texts) == 2  # both LIF nodes, none for the given dt
    assert texts[0].startswith("node '1', field 'tau'") and "tau/dt = 100000" in texts[0]
    assert "rounds to 0, the leak disappears" in texts[0]


def test_norse_graph_needs_its_dt_squared(tmp_path):
    """norse 1.1 writes tau = dt / tau_inv = 1e-3 / 200 = 5e-6 s (tau_syn): at 1e-4 that is
    0.05 steps, an error naming the node; read with 1e-6 = (1e-3)^2 the steps are norse's own,
    1 / (dt * tau_inv): tau_syn 1/(1e-3 * 200) = 5, tau_mem 1/(1e-3 * 100) = 10."""
    path = _norse_graph(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRDtWarning)
        with pytest.raises(NIRConversionError) as e:
            nir_to_model(path)
    assert e.value.node == "1" and e.value.field == "tau_syn"
    assert "tau_syn = 5e-06 s with dt = 0.0001 s is tau/dt = 0.05 timesteps" in str(e.value)
    assert "dt=1e-6" in str(e.value)
    model = nir_to_model(path, dt=1e-6)
    assert [m.tau for m in _neurons(model, LI)] == pytest.approx([5.0], rel=1e-5)
    assert [m.params.tau for m in _neurons(model, LIF)] == pytest.approx([10.0], rel=1e-5)


@pytest.mark.skipif(not SINABS_CNN.exists(), reason="shared fixtures not present")
def test_sinabs_if_gain_at_the_default_dt_warns_and_dt_one_does_not():
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        nir_to_model(SINABS_CNN)
    texts = _dt_warnings(record)
    assert any(t.startswith("node '1', field 'r': IF input gain r*dt = 1 * 0.0001") for t in texts)
    assert any("dt = 1/r = 1 gives gain 1" in t for t in texts)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NIRDtWarning)
        nir_to_model(SINABS_CNN, dt=1.0)


def test_cli_inspect_prints_the_dt_and_its_source(tmp_path, capsys):
    path = _snntorch_graph(tmp_path)
    assert cli.main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "dt = 0.0001 s per timestep (default: the graph records no dt)" in out
    assert "tau/dt 10" in out
    assert cli.main(["inspect", str(path), "--dt", "2e-4"]) == 0
    out = capsys.readouterr().out
    assert "dt = 0.0002 s per timestep (given (--dt))" in out and "tau/dt 5" in out
    torch.manual_seed(0)
    ours = tmp_path / "ours.nir"
    export_nir(build_model("mlp", (1, 4, 4), 3, NeuronConfig(mps=False, tau=5.0)), ours, dt=1e-3)
    assert cli.main(["inspect", str(ours)]) == 0
    assert "dt = 0.001 s per timestep (recorded in the graph's metadata)" in capsys.readouterr().out


def test_cli_dt_reaches_the_importer_and_a_nonsense_dt_names_the_node(tmp_path, capsys):
    path = _snntorch_graph(tmp_path)
    assert cli.main(["resources", str(path), "--dt", "1e-4"]) == 0
    capsys.readouterr()
    assert cli.main(["resources", str(path), "--dt", "1e-3"]) == 2
    err = capsys.readouterr().err
    assert "node '1', field 'tau'" in err and "dt = 0.001 s" in err
    for command in ("quantize", "deploy", "verify", "profile", "resources", "inspect"):
        assert (
            "--dt"
            in cli.build_parser()._subparsers._group_actions[0].choices[command].format_help()
        )
