"""netx ``.net`` import (converters/netx_import.py): the imported program on our reference
simulator equals lava-dl's own ``netx.hdf5.Network`` built from the same file and run in Lava
fixed_pt, spike for spike in every layer.

The fixtures are lava-dl's (mnist_network.net: dense; tiny.net: input + conv); a small network
written here in netx's own layout covers flatten, dense after conv, dense_rec, one-sign weights
and messageBits. PilotNet (input + 5 conv + flatten + 4 dense) takes ~100 s in Lava's Python
conv: benchmarks/netx_fixtures.py runs it (results/netx_fixtures.md), the test checks its
geometry only."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from neurodeploy.converters.netx_import import NETX_INPUT_BITS, netx_to_program, netx_weight
from neurodeploy.targets.netx import run_netx_file
from neurodeploy.targets.reference import ReferenceTarget

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lava-dl"
MNIST = FIXTURES / "mnist_network.net"
TINY = FIXTURES / "tiny.net"
PILOTNET = FIXTURES / "pilotnet_snn_network.net"
STEPS = 24  # input steps; >= 16 as the issue asks
RATE = 0.2  # input spike probability per neuron and step

pytestmark = pytest.mark.skipif(not MNIST.exists(), reason="lava-dl fixtures not present")


def assert_equal_to_netx(
    path: Path, x: np.ndarray, min_spiking: int | None = None, *, record_v: bool = True
) -> None:
    """Every layer of our reference (Lava-latency mode) equals netx's, step for step, and (with
    ``record_v``) every layer's final membrane voltage."""
    prog = netx_to_program(path)
    graded = prog.input_kind == "graded"
    steps = x.shape[0] + len(prog.layers) + 1
    ours = ReferenceTarget(prog, device="cpu", latency=True).run(
        x[:, None], steps=steps, record_states=record_v
    )
    theirs, volts = run_netx_file(path, x, steps, graded=graded)
    assert len(theirs) == len(ours.spikes) == len(prog.layers)
    silent = 0
    for layer, mine, b in zip(prog.layers, ours.spikes, theirs, strict=True):
        silent += int(b.sum() == 0)
        np.testing.assert_array_equal(
            np.asarray(mine)[:, 0].reshape(b.shape), b, err_msg=f"{layer.name}"
        )
    if record_v:  # the final membrane of every layer, too
        assert ours.states is not None
        for layer, v, mine_v in zip(prog.layers, volts, ours.states, strict=True):
            np.testing.assert_array_equal(mine_v[-1, 0].reshape(v.shape), v, err_msg=layer.name)
    spiking = len(prog.layers) - silent
    assert spiking >= (min_spiking or len(prog.layers)), "silent layers: comparison vacuous"


# --- weights and fields -------------------------------------------------------------------


def test_netx_weight_matches_hand_values() -> None:
    # max 60, min -30: scale = min(127/60, 128/30) = 2.1167 -> s = 1 + 1 = 2, W' = 4 W, exp -2
    w = np.array([[60, -30], [2, 0]])
    w_eff, exp = netx_weight(w, "t")
    assert exp == -2
    np.testing.assert_array_equal(w_eff, 4 * w)
    # one sign: scale = 255 / 60 -> s = 2 (no sign bit), W' = 4 W
    w_eff, exp = netx_weight(np.array([[60, 30], [2, 0]]), "t")
    assert exp == -2
    np.testing.assert_array_equal(w_eff, 4 * np.array([[60, 30], [2, 0]]))


def test_mnist_program_fields() -> None:
    prog = netx_to_program(MNIST)
    with h5py.File(MNIST) as f:
        for k, layer in enumerate(prog.layers):
            g = f[f"layer/{k}"]
            w = g["weight"][()]
            np.testing.assert_array_equal(layer.synapse.weight * 2.0**layer.weight_exp, w)
            assert layer.du == int(g["neuron/iDecay"][()]) - 1  # netx: du = iDecay - 1
            assert layer.dv == int(g["neuron/vDecay"][()])
            assert layer.vth == int(g["neuron/vThMant"][()])
    assert prog.input_shape == (784,)
    assert prog.input_kind == "binary"
    assert [math.prod(l.out_shape) for l in prog.layers] == [128, 64, 10]


@pytest.mark.skipif(not PILOTNET.exists(), reason="pilotnet fixture missing")
def test_pilotnet_geometry_as_netx_builds_it() -> None:
    prog = netx_to_program(PILOTNET)
    assert prog.input_kind == "graded" and prog.input_signed
    assert prog.input_bits == NETX_INPUT_BITS
    assert prog.input_shape == (3, 66, 200)  # netx stores (C, H, W); Lava runs (200, 66, 3)
    assert prog.meta["T"] == 16
    assert prog.meta["netx_input_transform"] == {"weight": 40, "bias": 36}
    # the file's shapes, with the flatten (layer 6) folded into the dense that follows
    with h5py.File(PILOTNET) as f:
        want = [
            tuple(int(v) for v in f[f"layer/{k}/shape"][()])
            for k in sorted(f["layer"], key=int)
            if f[f"layer/{k}/type"][()][0] != b"flatten"
        ]
    got = [l.out_shape if len(l.out_shape) == 3 else (l.out_shape[0], 1, 1) for l in prog.layers]
    assert got == want
    conv4 = prog.layers[4]  # stride [2 1], padding [1 0] in (H, W): 48x7x24 -> 64x4x22
    assert conv4.synapse.stride == (2, 1) and conv4.synapse.padding == (1, 0)
    dense = prog.layers[6]
    assert dense.synapse.in_shape == (64, 2, 20)  # reads conv5's (C, H, W), flattened in C order
    assert dense.weight_exp == -5  # optimize_weight_bits on [-6, 6]: scale 21.2 -> s = 4 + 1
    assert prog.layers[-1].vth == 131071 and prog.layers[-1].dv == 0  # the read-out integrator


# --- bit-exactness with netx in Lava ------------------------------------------------------


@pytest.mark.lava
def test_mnist_reference_equals_netx_in_lava() -> None:
    pytest.importorskip("lava.lib.dl.netx")
    rng = np.random.default_rng(18)
    x = (rng.random((STEPS, 784)) < RATE).astype(np.int32)
    assert_equal_to_netx(MNIST, x)


@pytest.mark.lava
@pytest.mark.skipif(not TINY.exists(), reason="tiny.net missing")
def test_tiny_conv_reference_equals_netx_in_lava() -> None:
    """input layer fed graded a_in + two strided convs with per-channel biases."""
    pytest.importorskip("lava.lib.dl.netx")
    rng = np.random.default_rng(3)
    x = rng.integers(-10, 80, size=(20, 3, 16, 16)).astype(np.int32)
    assert_equal_to_netx(TINY, x)


def _layer(f: h5py.File, k: int, kind: str, shape: tuple[int, ...], **fields: object) -> None:
    g = f.create_group(f"layer/{k}")
    g["type"] = np.array([kind.encode()])
    g["shape"] = np.array(shape)
    neuron = fields.pop("neuron", None)
    for key, value in fields.items():
        g[key] = value
    if neuron is not None:
        n = g.create_group("neuron")
        spec = dict(neuron)  # type: ignore[call-overload]
        n["type"] = str(spec.pop("type", "CUBA")).encode()
        n["refDelay"] = 1
        for key, value in spec.items():
            n[key] = value


def write_small_net(path: Path, *, rng: np.random.Generator, message_bits: bool = False) -> None:
    """input (2, 8, 8) -> conv 3x3 s2 p1 -> flatten -> dense (one-sign weights) -> dense_rec,
    in netx's layout (shapes (C, H, W), stride/padding (H, W)). ``message_bits`` gives the dense
    neuron ``messageBits`` 8, which lava-dl 0.6's netx cannot build (its NetDict hands the field
    over as a wrapper object, not an int: Lava's builder fails and the run hangs)."""
    cuba = dict(iDecay=1024, vDecay=512, vThMant=20)
    with h5py.File(path, "w") as f:
        _layer(f, 0, "input", (2, 8, 8), weight=16.0, bias=0.0, neuron=dict(cuba, iDecay=4096))
        w = rng.integers(-8, 9, size=(6, 2, 3, 3, 1)) * 2
        _layer(
            f, 1, "conv", (6, 4, 4), weight=w.astype(np.float32), stride=np.array([2, 2]),
            padding=np.array([1, 1]), dilation=np.array([1, 1]), groups=1,
            bias=rng.integers(-4, 8, size=6).astype(np.float32), neuron=cuba,
        )  # fmt: skip
        _layer(f, 2, "flatten", (1, 1, 96))
        _layer(
            f, 3, "dense", (12, 1, 1), weight=rng.integers(0, 40, size=(12, 96)).astype(float),
            bias=rng.integers(-30, 0, size=12).astype(float),
            neuron=dict(cuba, messageBits=8) if message_bits else cuba,
        )  # fmt: skip
        _layer(
            f, 4, "dense_rec", (5, 1, 1), weight=rng.integers(-60, 61, size=(5, 12)).astype(float),
            weight_rec=rng.integers(-30, 31, size=(5, 5)).astype(float), neuron=cuba,
        )  # fmt: skip


@pytest.mark.lava
def test_small_net_with_flatten_dense_rec_equals_netx_in_lava(tmp_path: Path) -> None:
    pytest.importorskip("lava.lib.dl.netx")
    rng = np.random.default_rng(7)
    path = tmp_path / "small.net"
    write_small_net(path, rng=rng)
    prog = netx_to_program(path)
    assert prog.layers[2].synapse.in_shape == (6, 4, 4)
    assert prog.layers[3].extra and prog.layers[3].extra[0].recurrent
    x = rng.integers(0, 60, size=(20, 2, 8, 8)).astype(np.int32)
    assert_equal_to_netx(path, x)


def test_message_bits_accepted_and_noted(tmp_path: Path) -> None:
    """Lava's LIF sends unit spikes whatever messageBits says: imported as binary, noted."""
    path = tmp_path / "mb.net"
    write_small_net(path, rng=np.random.default_rng(7), message_bits=True)
    prog = netx_to_program(path)
    assert any("layer 3: messageBits 8" in n for n in prog.meta["netx_notes"])


# --- refusals ------------------------------------------------------------------------------


CUBA = {"iDecay": 4096, "vDecay": 1024, "vThMant": 10}


@pytest.mark.parametrize(
    ("kind", "fields", "match"),
    [
        ("pool", {"neuron": CUBA}, r"layer 1: layer type 'pool' is not imported: netx itself"),
        ("conv", {"delay": np.ones(4), "neuron": CUBA}, r"layer 1: synaptic delays"),
        ("dense", {"neuron": {**CUBA, "type": "SDNN"}}, r"layer 1: neuron type 'SDNN'"),
        ("dense", {}, r"layer 1: a layer without a neuron"),
        ("dense", {"weight": np.full((4, 4), np.nan), "neuron": CUBA}, r"layer 1: weight has NaN"),
        ("wavelet", {"neuron": CUBA}, r"layer 1: layer type 'wavelet' is unknown"),
    ],
)
def test_unsupported_layers_refused_by_name(
    tmp_path: Path, kind: str, fields: dict[str, object], match: str
) -> None:
    path = tmp_path / "bad.net"
    with h5py.File(path, "w") as f:
        _layer(f, 0, "dense", (4, 1, 1), weight=np.eye(4) * 2 - 1, neuron=CUBA)
        _layer(f, 1, kind, (4, 1, 1), **{"weight": np.eye(4) * 2 - 1, **fields})
    with pytest.raises(ValueError, match=match):
        netx_to_program(path)


def test_not_a_netx_file_named(tmp_path: Path) -> None:
    path = tmp_path / "x.net"
    path.write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"x.net: not a readable HDF5 file"):
        netx_to_program(path)
    with h5py.File(tmp_path / "y.net", "w") as f:
        f["foo"] = 1
    with pytest.raises(ValueError, match=r"y.net: no 'layer' group"):
        netx_to_program(tmp_path / "y.net")
