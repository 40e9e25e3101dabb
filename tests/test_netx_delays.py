"""Synaptic delays from lava-dl netx files (issue 18): a netx ``dense`` layer with a ``delay``
dataset is Lava's ``DelayDense``; imported as ``IntLayer.delay`` and run bit-exactly by our
reference simulator (equal to netx's own Network in Lava fixed_pt, spike for spike in every
layer) and by our Lava target (ResetDelayDense).

Timing, from lava/proc/dense/models.py ``PyDelayDenseModelBitAcc`` (run and checked below):
at step t the model sends buffer column 0, computes one sum per delay value v from s(t),
shifts each by weight_exp on its own, rolls the buffer and adds sum_v at column v, which is
sent at t + 1 + v: a delay of 0 is plain Dense's one-step latency, a delay v is v steps more."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from neurodeploy.converters.netx_import import netx_to_program
from neurodeploy.quant.program import MAX_SYNAPTIC_DELAY, IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.reference import ReferenceTarget
from tests.test_netx_import import _layer, assert_equal_to_netx

CUBA = dict(iDecay=1024, vDecay=512, vThMant=20)
N_IN, N1, N2, N3 = 10, 12, 8, 6


def write_delay_net(path: Path, *, rng: np.random.Generator) -> None:
    """dense 10 -> 12 with a full (out, in) delay matrix, 12 -> 8 with per-output (axonal)
    delays, 8 -> 6 with one scalar delay; binary input on netx's ``inp``."""
    with h5py.File(path, "w") as f:
        _layer(
            f, 0, "dense", (N1, 1, 1), weight=rng.integers(-20, 61, size=(N1, N_IN)).astype(float),
            delay=rng.integers(0, 5, size=(N1, N_IN)).astype(float), neuron=CUBA,
        )  # fmt: skip
        _layer(
            f, 1, "dense", (N2, 1, 1), weight=rng.integers(-20, 61, size=(N2, N1)).astype(float),
            delay=rng.integers(0, 4, size=N2).astype(float), neuron=CUBA,
        )  # fmt: skip
        _layer(
            f, 2, "dense", (N3, 1, 1), weight=rng.integers(-20, 61, size=(N3, N2)).astype(float),
            delay=np.float64(2.0), neuron=CUBA,
        )  # fmt: skip


def test_delays_imported_as_netx_builds_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    path = tmp_path / "delays.net"
    write_delay_net(path, rng=rng)
    prog = netx_to_program(path)
    with h5py.File(path) as f:
        full = f["layer/0/delay"][()]
        axonal = f["layer/1/delay"][()]
    np.testing.assert_array_equal(prog.layers[0].delay, full)
    np.testing.assert_array_equal(prog.layers[1].delay, np.repeat(axonal[:, None], N1, axis=1))
    np.testing.assert_array_equal(prog.layers[2].delay, np.full((N3, N2), 2))
    # round trip through the program file; a layer without delays writes no delay key
    prog.layers[2].delay = np.zeros(0, np.int32)
    saved = prog.save(tmp_path / "p.npz")
    with np.load(saved) as z:
        assert "l0.delay" in z.files and "l2.delay" not in z.files
    back = IntProgram.load(saved)
    np.testing.assert_array_equal(back.layers[0].delay, prog.layers[0].delay)
    assert not back.layers[2].has_delays


def test_per_input_delays_and_truncation_noted(tmp_path: Path) -> None:
    path = tmp_path / "in.net"
    with h5py.File(path, "w") as f:
        _layer(f, 0, "dense", (3, 1, 1), weight=np.ones((3, 4)) * 2, delay=np.array([0, 1.5, 2, 3]),
               neuron=CUBA)  # fmt: skip
    with pytest.warns(UserWarning, match="truncated toward zero"):
        prog = netx_to_program(path)
    np.testing.assert_array_equal(prog.layers[0].delay, np.repeat([[0, 1, 2, 3]], 3, axis=0))


def _two_input_readout(delay: np.ndarray, weight_exp: int) -> IntProgram:
    w = np.array([[6, 10], [-6, 2]], np.int32)
    layer = IntLayer(
        name="out",
        synapse=Synapse("dense", w, (2,), (2,)),
        weight_exp=weight_exp,
        neuron=None,
        readout_bias=np.zeros(2, np.int64),
        delay=delay.astype(np.int32),
    )
    return IntProgram([layer], "loihi2", "binary", 1.0, 1, (2,), False, 2)


def test_hand_computed_trace_of_delayed_synapses() -> None:
    """W = [[6, 10], [-6, 2]], weight_exp -2, delays [[0, 3], [2, 2]]; each delay value's sum is
    shifted on its own (DelayDense): a0(t) = floor(6 s0(t) / 4) + floor(10 s1(t-3) / 4)
    = s0(t) + 2 s1(t-3); a1(t) = floor((-6 s0(t-2) + 2 s1(t-2)) / 4)."""
    prog = _two_input_readout(np.array([[0, 3], [2, 2]]), -2)
    prog.validate()
    x = np.zeros((6, 1, 2), np.int64)
    x[0, 0] = [1, 1]
    x[1, 0, 1] = 1
    x[3, 0, 0] = 1
    out = ReferenceTarget(prog, device="cpu").run(x, steps=8).output
    assert out is not None
    # t:        0   1  2  3  4  5  6  7
    a0 = [1, 0, 0, 3, 2, 0, 0, 0]  # s0(0), s0(3); s1(0) at 3, s1(1) at 4
    a1 = [0, 0, -1, 0, 0, -2, 0, 0]  # both at t=2: floor(-4/4); s1 alone floor(2/4) = 0; s0 -2
    np.testing.assert_array_equal(out[:, 0, 0], a0)
    np.testing.assert_array_equal(out[:, 0, 1], a1)
    # Lava's schedule: everything one step later (DelayDense, like Dense, delivers at t + 1 + v)
    late = ReferenceTarget(prog, device="cpu", latency=True).run(x, steps=9).output
    assert late is not None
    np.testing.assert_array_equal(late[1:, 0], out[:, 0])
    np.testing.assert_array_equal(late[0, 0], [0, 0])


def test_delays_validated_by_name() -> None:
    with pytest.raises(ValueError, match=r"layer out: delay: values in \[0, 63\] outside 0..62"):
        _two_input_readout(np.array([[0, 63], [2, 2]]), -2).validate()
    with pytest.raises(ValueError, match=r"layer out: delay: shape \(2,\)"):
        _two_input_readout(np.array([1, 2]), -2).validate()
    conv = IntLayer(
        name="c",
        synapse=Synapse("conv1d", np.full((1, 1, 1), 2, np.int32), (1, 3), (1, 3), (1,), (0,)),
        weight_exp=0,
        bias_mant=np.zeros((1, 3), np.int32),
        delay=np.ones((1, 1, 1), np.int32),
    )
    prog = IntProgram([conv], "loihi2", "binary", 1.0, 1, (1, 3), False, 3)
    with pytest.raises(ValueError, match=r"layer c: delay: per-synapse delays on a conv1d"):
        prog.validate()
    assert MAX_SYNAPTIC_DELAY == 62


@pytest.mark.parametrize(
    ("kind", "fields", "match"),
    [
        ("dense", {"delay": np.full((4, 4), 63.0)}, r"layer 0: delay 63 > 62"),
        ("dense", {"delay": np.array([-1.0, 0, 0, 0])}, r"layer 0: delay -1 < 0"),
        ("dense", {"delay": np.ones(3)}, r"layer 0: delay of shape \(3,\) fits neither"),
        (
            "dense_rec",
            {"delay": np.ones((4, 4)), "weight_rec": np.eye(4) * 2},
            r"layer 0: synaptic delays .* on a 'dense_rec' layer are not imported",
        ),
    ],
)
def test_bad_delays_refused_by_name(
    tmp_path: Path, kind: str, fields: dict[str, object], match: str
) -> None:
    """63 is refused, not clipped as netx does: clipping would move spikes in time."""
    path = tmp_path / "bad.net"
    with h5py.File(path, "w") as f:
        _layer(f, 0, kind, (4, 1, 1), weight=np.eye(4) * 2 - 1, neuron=CUBA, **fields)
    with pytest.raises(ValueError, match=match):
        netx_to_program(path)


@pytest.mark.lava
def test_delay_net_reference_equals_netx_in_lava(tmp_path: Path) -> None:
    """full, per-output and scalar delays: every layer spike for spike."""
    pytest.importorskip("lava.lib.dl.netx")
    rng = np.random.default_rng(5)
    path = tmp_path / "delays.net"
    write_delay_net(path, rng=rng)
    x = np.zeros((20, N_IN), np.int32)
    x[:14] = rng.random((14, N_IN)) < 0.3  # then 6 quiet steps: the delayed spikes drain
    assert_equal_to_netx(path, x)


@pytest.mark.lava
def test_lava_target_with_delays_equals_reference(tmp_path: Path) -> None:
    """Our own Lava target (ResetDelayDense) on the imported program, two samples in one
    runtime: the second starts with an empty delay buffer, as the reference does (the input
    runs to the sample's last step, so delayed currents are still pending at the boundary)."""
    pytest.importorskip("lava")
    from neurodeploy.targets.lava import LavaTarget

    rng = np.random.default_rng(5)
    path = tmp_path / "delays.net"
    write_delay_net(path, rng=rng)
    prog = netx_to_program(path)
    x = (rng.random((12, 2, N_IN)) < 0.3).astype(np.int64)
    steps = 12 + 1
    ours = ReferenceTarget(prog, device="cpu", latency=True).run(x, steps=steps)
    lava = LavaTarget(prog).run(x, steps=steps)
    assert sum(int(np.asarray(s).sum()) for s in ours.spikes) > 0
    for layer, a, b in zip(prog.layers, ours.spikes, lava.spikes, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=layer.name)


def test_delays_refused_where_no_form_exists(tmp_path: Path) -> None:
    """NIR has no delay node and the netx target cannot reset DelayDense per sample: both refuse,
    naming the layer; the reference's default run length covers the delays."""
    from neurodeploy.converters.netx_nir import program_to_nir
    from neurodeploy.targets.netx import export_netx

    path = tmp_path / "d.net"
    write_delay_net(path, rng=np.random.default_rng(1))
    prog = netx_to_program(path)
    delayed = next(l for l in prog.layers if l.has_delays)
    with pytest.raises(ValueError, match=rf"layer {delayed.name}: synaptic delays .* no NIR form"):
        program_to_nir(prog)
    with pytest.raises(ValueError, match=rf"layer {delayed.name}: synaptic delays are not exp"):
        export_netx(prog, tmp_path / "x.net")
    assert prog.max_delay_path == sum(int(l.delay.max()) for l in prog.layers if l.has_delays) > 0
    x = np.zeros((3, 1, *prog.input_shape), np.int64)
    out = ReferenceTarget(prog, device="cpu", latency=True).run(x)
    assert out.spikes[0].shape[0] == 3 + len(prog.layers) + prog.max_delay_path
