"""Foreign NIR graphs end to end through the CLI (issue 15, "Tests" and "Done when").

Each graph is written in the test by its producer's own exporter (snnTorch ``export_to_nir``,
SpikingJelly's ``nir_exchange.export_to_nir``), or is the NIR paper's sinabs N-MNIST CNN, and then
runs ``quantize``, ``verify --random-input 0.1 --T 8``, ``deploy --target lava``, ``profile`` and
``resources`` with no task recorded. Asserted: every command exits 0; the reference simulator and
Lava agree spike for spike (``ref~lava`` = 1 in every layer and for the predictions); every layer
spikes on the random input (so agreement is not trivially 1); the float import vs integer spike
agreement is printed and at least the floor measured on 2026-11-29. The two data paths (``--data
FILE.npz`` and ``--dataset NAME --data-root DIR``) run once each through ``verify`` and ``profile``
on small files written here."""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.cli import main

nir = pytest.importorskip("nir")

SINABS_CNN = Path(__file__).parents[2] / "shared" / "fixtures" / "nir-paper" / "cnn_sinabs.nir"
RANDOM = ["--random-input", "0.1", "--T", "8", "--samples", "8"]
#: gain on the exported weights so that every layer spikes on rate-0.1 input at default init
WEIGHT_GAIN = 4.0


def _leaky(n: int, **kw: object) -> nn.Module:
    """snnTorch Leaky with per-neuron beta and threshold (NIR types the parameters by them)."""
    import snntorch as snn

    beta, thr = torch.full((n,), 0.5), torch.full((n,), 0.5)
    return snn.Leaky(beta=beta, threshold=thr, init_hidden=True, reset_mechanism="zero", **kw)


def _gain(net: nn.Module, gain: float = WEIGHT_GAIN) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                m.weight.mul_(gain)


def write_snntorch_mlp(path: Path, n_in: tuple[int, ...] = (1, 8, 8), n_out: int = 10) -> None:
    """snnTorch: Flatten -> Linear -> Leaky -> Linear -> Leaky(output): a spiking last layer."""
    pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    flat = int(np.prod(n_in))
    s = nn.Sequential(
        nn.Flatten(),
        nn.Linear(flat, 32),
        _leaky(32),
        nn.Linear(32, n_out),
        _leaky(n_out, output=True),
    )
    _gain(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(str(path), export_to_nir(s, torch.zeros(1, *n_in), ignore_dims=[0]))


def write_spikingjelly_conv(path: Path) -> None:
    """SpikingJelly: Conv -> LIF(decay_input=False: NIR r = tau, our input-gain Scale) ->
    AvgPool -> Conv -> LIF -> Flatten -> Linear -> LIF."""
    pytest.importorskip("spikingjelly")
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=0.5)

    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1),
        lif(),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 6, 3, padding=1),
        lif(),
        nn.Flatten(),
        nn.Linear(6 * 4 * 4, 3),
        lif(),
    )
    _gain(net)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_to_nir(net, torch.zeros(1, 2, 8, 8), save_path=str(path))


def write_snntorch_synaptic(path: Path) -> None:
    """snnTorch: Linear -> Synaptic (NIR CubaLIF) -> Linear -> Leaky(output)."""
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)
    syn = snn.Synaptic(
        alpha=torch.full((16,), 0.5),
        beta=torch.full((16,), 0.5),
        threshold=torch.full((16,), 0.5),
        init_hidden=True,
        reset_mechanism="zero",
    )
    s = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 16), syn, nn.Linear(16, 4), _leaky(4, output=True)
    )
    _gain(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(str(path), export_to_nir(s, torch.zeros(1, 1, 8, 8), ignore_dims=[0]))


def write_snntorch_conv(path: Path) -> None:
    """snnTorch: Conv -> Leaky -> AvgPool -> Conv -> Leaky -> Flatten -> Linear -> Leaky(output),
    the conv neurons with per-neuron (C, H, W) parameters as snnTorch exports them."""
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    def leaky(shape: tuple[int, ...], **kw: object) -> nn.Module:
        beta, thr = torch.full(shape, 0.5), torch.full(shape, 0.5)
        return snn.Leaky(beta=beta, threshold=thr, init_hidden=True, reset_mechanism="zero", **kw)

    torch.manual_seed(0)
    s = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        leaky((4, 8, 8)),
        nn.AvgPool2d(2),
        nn.Conv2d(4, 8, 3, padding=1),
        leaky((8, 4, 4)),
        nn.Flatten(),
        nn.Linear(128, 10),
        leaky((10,), output=True),
    )
    _gain(s)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nir.write(str(path), export_to_nir(s, torch.zeros(1, 1, 8, 8), ignore_dims=[0]))


def copy_sinabs_cnn(path: Path) -> None:
    if not SINABS_CNN.is_file():
        pytest.skip(f"{SINABS_CNN} not present (the shared fixtures are not in a user's clone)")
    path.write_bytes(SINABS_CNN.read_bytes())


# name -> (writer, extra CLI options, float-vs-integer spike agreement floor, min over layers).
# Measured 2026-11-29 with RANDOM (min over layers): snntorch-mlp 0.9938, spikingjelly-conv 0.9792,
# cnn_sinabs 0.9454, snntorch-cubalif 0.9805; 2026-11-30: snntorch-conv 0.9797, snntorch-cubalif
# 1.0 with the CubaLIF current starting at -bias (IntLayer.u_init_bias; 0.9805 without).
GRAPHS: dict[str, tuple[Callable[[Path], None], list[str], float]] = {
    "snntorch-mlp": (write_snntorch_mlp, [], 0.99),
    "spikingjelly-conv": (write_spikingjelly_conv, [], 0.97),
    "cnn_sinabs": (copy_sinabs_cnn, ["--dt", "1"], 0.94),
    "snntorch-cubalif": (write_snntorch_synaptic, [], 0.995),
    "snntorch-conv": (write_snntorch_conv, [], 0.97),
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
        if not parts or not re.fullmatch(r"[A-Za-z_][\w.]*", parts[0]) or parts[0] == "accuracy":
            break
        nums = [float(v) for v in re.findall(r"(?<![\w/])[-+]?\d+\.\d+|(?<=/)\d+\.\d+", line)]
        rows[parts[0]] = nums
    return rows


@pytest.mark.lava
@pytest.mark.parametrize("name", list(GRAPHS))
def test_foreign_graph_through_every_command(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("lava.magma.core.run_configs")
    write, extra, floor = GRAPHS[name]
    f = tmp_path / f"{name}.nir"
    write(f)
    q = _cli(["quantize", str(f), *RANDOM, *extra, "-o", str(tmp_path / "q.int.npz")], capsys)
    rates = _table(q, "layer ")  # w err, vth err, spike agree, rate float, rate integer, ...
    assert rates and all(r[4] > 0 for r in rates.values()), f"{name}: a silent layer\n{q}"
    v = _cli(["verify", str(f), *RANDOM, *extra], capsys)
    rows = _table(v, "layer ")  # float~ref, ref~lava, float~lava
    layers = {k: r for k, r in rows.items() if k != "prediction"}
    assert layers and all(r[1] == 1.0 for r in layers.values()), f"{name}: ref != Lava\n{v}"
    assert rows["prediction"][1] == 1.0, v
    agree = min(r[0] for r in layers.values())
    per_layer = [r[0] for r in layers.values()]
    with capsys.disabled():
        print(f"\n{name}: float (our import) vs integer spike agreement per layer {per_layer}")
    assert agree >= floor, v
    d = _cli(
        ["deploy", str(f), "--target", "lava", *RANDOM, *extra, "-o", str(tmp_path / "d")], capsys
    )
    assert "Lava fixed_pt" in d and "100 % same predictions" in d, d
    p = _cli(["profile", str(f), *RANDOM, *extra, "-o", str(tmp_path / "p")], capsys)
    assert "accuracy n/a" in p and (tmp_path / "p" / "profile.md").is_file(), p
    r = _cli(["resources", str(f), *extra], capsys)
    assert "total" in r, r


def test_norse_exporter_writes_a_graph(tmp_path: Path) -> None:
    """norse 1.1.0's ``to_nir`` builds a graph whose Conv2d has ``input_shape=None``, which
    ``nir.write`` cannot store (h5py: "One of data, shape or dtype must be specified"): recorded
    so that the README's note stays true; passes once a norse graph can be written and read."""
    norse = pytest.importorskip("norse.torch")
    from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters

    p = LIFBoxParameters(tau_mem_inv=torch.tensor(500.0), v_th=torch.tensor(0.3))
    net = norse.SequentialState(nn.Conv2d(2, 4, 3, padding=1), LIFBoxCell(p))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = norse.to_nir(net, torch.zeros(1, 2, 8, 8))
    try:
        nir.write(str(tmp_path / "norse.nir"), graph)
    except TypeError as e:
        pytest.xfail(f"nir.write fails on norse.to_nir's graph (Conv2d input_shape None): {e}")
    assert isinstance(nir.read(str(tmp_path / "norse.nir")), nir.NIRGraph)


# --- the two data paths, once each through verify and profile ---------------------------------
def test_data_npz_through_verify_and_profile(tmp_path: Path, capsys) -> None:
    f = tmp_path / "mlp.nir"
    write_snntorch_mlp(f)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(6, 8, 1, 8, 8, generator=g) < 0.2).numpy().astype(np.uint8)
    y = np.arange(6, dtype=np.int64) % 10
    data = tmp_path / "mine.npz"
    np.savez(data, x=x, y=y)
    v = _cli(["verify", str(f), "--data", str(data), "--no-lava"], capsys)
    assert "6 samples" in v and "mine.npz (6 samples, 8 frames, labels y)" in v, v
    p = _cli(["profile", str(f), "--data", str(data), "-o", str(tmp_path / "p")], capsys)
    assert re.search(r"accuracy [0-9.]+", p) and "accuracy n/a" not in p, p


def test_dataset_on_disk_through_verify_and_profile(tmp_path: Path, capsys) -> None:
    """SHD (.h5, 700 channels, 20 classes) as ``train`` reads it, two test samples."""
    h5py = pytest.importorskip("h5py")
    base = tmp_path / "SHD"
    base.mkdir()
    samples = [([0.0, 0.05, 0.5, 0.9], [0, 699, 7, 7]), ([0.2, 0.3], [3, 4])]
    for split, labels in (("train", [4, 19]), ("test", [4, 19])):
        with h5py.File(base / f"shd_{split}.h5", "w") as h:
            vf, vu = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)
            times = h.create_dataset("spikes/times", (len(samples),), dtype=vf)
            units = h.create_dataset("spikes/units", (len(samples),), dtype=vu)
            for i, (t, u) in enumerate(samples):
                times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
            h.create_dataset("labels", data=np.asarray(labels, np.uint16))
    f = tmp_path / "shd.nir"
    write_snntorch_mlp(f, n_in=(700,), n_out=20)
    src = ["--dataset", "shd", "--data-root", str(tmp_path), "--T", "4"]
    v = _cli(["verify", str(f), *src, "--no-lava"], capsys)
    assert "data set shd" in v and "2 of 2 samples" in v, v
    p = _cli(["profile", str(f), *src, "-o", str(tmp_path / "p")], capsys)
    assert re.search(r"accuracy [0-9.]+", p) and "accuracy n/a" not in p, p


def test_dataset_needs_its_root(tmp_path: Path, capsys) -> None:
    f = tmp_path / "mlp.nir"
    write_snntorch_mlp(f)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rc = main(["verify", str(f), "--dataset", "shd", "--no-lava"])
    assert rc == 2
    assert "--dataset NAME and --data-root DIR go together" in capsys.readouterr().err
