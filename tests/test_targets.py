"""The targets' protocol and plumbing, without running a Lava network: the registry, the result
type, the batch layout of a streamed run, the reset phase, and the Conv arithmetic of the Lava
target against Lava's own function."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from neurodeploy.targets import TARGETS, TargetResult, make_target, target_names
from neurodeploy.targets.lava import from_lava_layout, stream_data, to_lava_layout, unstream


def test_one_registry_names_every_target_and_its_capabilities():
    assert tuple(TARGETS) == ("reference", "lava", "netx")
    assert target_names() == ("reference", "lava", "netx")
    assert target_names(readout=True, states=True) == (
        "reference",
        "lava",
    )  # netx: hidden layers only
    with pytest.raises(ValueError, match="unknown 'truenorth'; available: reference, lava, netx"):
        make_target("truenorth", None)  # type: ignore[arg-type]


def test_profiling_and_the_cli_take_their_names_from_the_registry(capsys):
    from neurodeploy.cli import build_parser
    from neurodeploy.measure.profiling import PROFILE_TARGETS

    assert PROFILE_TARGETS == ("torch", "reference", "lava")
    for command, names in (
        ("profile", "integer target: reference, lava"),
        ("deploy", "reference, lava, netx"),
    ):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        assert names in " ".join(capsys.readouterr().out.split()), command


def test_result_shapes_and_predictions_by_hand():
    # 3 steps, 2 samples, 2 classes: sample 0 sums to (1, 5) -> class 1; sample 1 to (4, -2) -> 0
    out = np.array([[[0, 2], [1, 0]], [[1, 1], [2, -1]], [[0, 2], [1, -1]]], dtype=np.int64)
    r = TargetResult(spikes=[np.zeros((3, 2, 4), np.uint8)], output=out, layer_names=["l1"])
    assert r.steps == 3 and r.batch == 2
    assert r.predictions().tolist() == [1, 0]
    with pytest.raises(ValueError, match="no readout"):
        TargetResult(
            spikes=[np.zeros((3, 2, 4), np.uint8)], output=None, layer_names=["l1"]
        ).predictions()


def test_streamed_layout_by_hand():
    """Two samples of T = 2 steps, 3 neurons, streamed with 3 steps per sample: sample b's step t
    is column 3 b + t, and the last step of each sample is zero (the pipeline drains)."""
    x = np.array(
        [
            [[1, 0, 2], [3, 4, 5]],  # t = 0: sample 0, sample 1
            [[6, 7, 8], [9, 1, 2]],
        ]
    )  # t = 1
    data = stream_data(x, 3)
    assert data.shape == (3, 6) and data.dtype == np.int32
    assert data.T.tolist() == [[1, 0, 2], [6, 7, 8], [0, 0, 0], [3, 4, 5], [9, 1, 2], [0, 0, 0]]
    back = unstream(data, (3,), batch=2)  # (steps, B, neurons)
    assert back.shape == (3, 2, 3) and np.array_equal(back[:2], x) and not back[2].any()
    cut = stream_data(x, 1)  # steps < T: cut to the first step
    assert cut.T.tolist() == [[1, 0, 2], [3, 4, 5]]


def test_conv_layout_round_trip():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 9, size=(4, 2, 3, 2, 5))  # (T, B, C, H, W)
    lay = to_lava_layout(np.zeros((1, 3, 2, 5)))
    assert lay.shape == (5, 2, 3, 1)  # Lava's (W, H, C, steps)
    data = stream_data(x, 6)
    assert data.shape == (5, 2, 3, 12)
    assert np.array_equal(unstream(data, (3, 2, 5), batch=2)[:4], x)
    assert np.array_equal(from_lava_layout(to_lava_layout(x[:, 0]), (3, 2, 5)), x[:, 0])


def test_reset_phase_by_hand():
    if importlib.util.find_spec("lava") is None:
        pytest.skip("lava-nc is not installed")
    from neurodeploy.targets.lava_reset.process import reset_due

    # interval 4, offset 1: Lava counts time_step from 1, so steps 1, 5, 9 start a sample
    assert [t for t in range(1, 13) if reset_due(t, {"reset_interval": 4, "reset_offset": 1})] == [
        1,
        5,
        9,
    ]
    assert [t for t in range(1, 5) if reset_due(t, {"reset_interval": 1, "reset_offset": 1})] == [
        1,
        2,
        3,
        4,
    ]
    assert not any(reset_due(t, {}) for t in range(1, 9))  # no interval: never
    assert not any(reset_due(t, {"reset_interval": 0}) for t in range(1, 9))


@pytest.mark.lava
def test_conv_arithmetic_is_lavas_own():
    """The Lava target's fixed_pt Conv computes lava.proc.conv.utils.conv's integers exactly, over
    random geometries (strides, padding, dilation, groups, kernel sizes, graded and binary input,
    folded exponents), including the benchmark network's pooled convolution."""
    pytest.importorskip("lava.proc.conv.utils")
    from lava.proc.conv import utils

    from neurodeploy.targets.lava_reset.exact_conv import conv_exact

    rng = np.random.default_rng(0)
    for trial in range(150):
        g = int(rng.choice([1, 2, 4]))
        cin, cout = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4))
        kw, kh, sw, sh = (int(v) for v in rng.integers(1, 5, 4))
        pw, ph = (int(v) for v in rng.integers(0, 3, 2))
        dw, dh = (int(v) for v in rng.integers(1, 3, 2))
        W, H = int(rng.integers(dw * (kw - 1) + 1, 14)), int(rng.integers(dh * (kh - 1) + 1, 14))
        if trial % 2:
            x = rng.integers(0, 256, (W, H, cin)).astype(np.int32)
        else:
            x = rng.random((W, H, cin)) < 0.3
        w = (rng.integers(-128, 128, (cout, kw, kh, cin // g)) << int(rng.integers(0, 8))).astype(
            np.int32
        )
        want = utils.conv(x, w, (kw, kh), (sw, sh), (pw, ph), (dw, dh), g)
        got = conv_exact(
            x,
            w,
            kernel_size=(kw, kh),
            stride=(sw, sh),
            padding=(pw, ph),
            dilation=(dw, dh),
            groups=g,
        )
        where = (trial, g, kw, kh, sw, sh, pw, ph, dw, dh)
        assert got.dtype == want.dtype and np.array_equal(got, want), where
    x = rng.random((34, 34, 16)) < 0.06  # the benchmark's pooled conv, folded
    w = rng.integers(-128, 128, (32, 6, 6, 16)).astype(np.int32) << 3
    got = conv_exact(
        x, w, kernel_size=(6, 6), stride=(2, 2), padding=(2, 2), dilation=(1, 1), groups=1
    )
    assert np.array_equal(got, utils.conv(x, w, (6, 6), (2, 2), (2, 2), (1, 1), 1))
