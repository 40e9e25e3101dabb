"""Overflow is a decision (issue 15, item 7): a network that saturates or wraps its 24-bit state on
the given inputs gets lower weight exponents until it does not, or is refused by name, unless
``allow_overflow`` / ``--allow-overflow``.

Hand-computed network (Loihi 2: 8-bit weights, weight_max 254, headroom 3 bits): one LIF neuron
(theta 1, tau inf: dv = 0, no smoothing) with 9 binary inputs, w0 = 0.9 and w1..w8 = 1, then a
1 -> 2 readout. w_scale = 254, so W_int = [228, 254 x 8]. The quantiser's exponent is the largest
with vth << 6 <= 2^20: vth = round(254 * 2^e) <= 16384 -> e = 6, vth = 16256. Inputs alternate
x0 alone (even steps) and x1..x8 (odd steps). In membrane units (a << 6, a = sum W_int << e):

    e = 6: step 0  v = 228 * 64 * 64           =   933,888  (< vth << 6 = 1,040,384: no spike)
           step 1  u = 8 * 254 * 64 * 64       = 8,323,072  (< 2^23: no wrap)
                   v = 933,888 + 8,323,072     = 9,256,960  > 2^23 - 1 = 8,388,607: SATURATES
    e = 5: every value halves: v = 4,628,480 at step 1: clean, same spikes.

So with T = 4 each sample saturates twice (steps 1 and 3; the spike at 1 resets v to 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neurodeploy.cli import main
from neurodeploy.converters.nir_export import export_nir
from neurodeploy.data.inputs import load_npz_inputs
from neurodeploy.measure.calibrate import (
    OverflowRefused,
    count_overflow,
    quantize_checked,
    search_exponents,
)
from neurodeploy.neuron.fixedpoint import STATE_LIMIT
from neurodeploy.neuron.hardware import LOIHI2
from neurodeploy.nn.layers import LIF, PerStep
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.qat import QATNet
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.targets.reference import ReferenceTarget

T, N = 4, 3
DEFAULT_EXP, FIXED_EXP = 6, 5
SATURATIONS_PER_SAMPLE = 2  # steps 1 and 3


def _net(n_in: int, w: torch.Tensor, theta: float, name: str) -> SpikingNet:
    lin = nn.Linear(n_in, 1, bias=False)
    out = nn.Linear(1, 2, bias=False)
    with torch.no_grad():
        lin.weight.copy_(w.reshape(1, n_in))
        out.weight.copy_(torch.tensor([[1.0], [-1.0]]))
    body = nn.Sequential(PerStep(lin), LIF(tau=float("inf"), theta=theta, mps=False), PerStep(out))
    return SpikingNet(name, body, (n_in,), 2).eval()


def saturating_net() -> SpikingNet:
    return _net(9, torch.tensor([0.9] + [1.0] * 8), 1.0, "saturating")


def alternating_x() -> np.ndarray:
    """(N, T, 9): x0 alone on even steps, x1..x8 on odd steps."""
    x = np.zeros((N, T, 9), np.float32)
    x[:, 0::2, 0] = 1
    x[:, 1::2, 1:] = 1
    return x


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "alt.npz"
    np.savez(path, x=alternating_x())
    return path


def test_the_quantisers_exponent_saturates_by_hand(data_file):
    inputs = load_npz_inputs(data_file, (9,))
    prog = quantize_model(saturating_net(), LOIHI2, **inputs.settings.as_kwargs())
    hid = prog.layers[0]
    assert (hid.weight_exp, hid.vth) == (DEFAULT_EXP, 16256)
    assert hid.synapse.weight.tolist() == [[228] + [254] * 8]
    r = ReferenceTarget(prog, device="cpu").run(prog.quantize_input(inputs.encode(inputs.x))[0])
    # 933,888 + 8,323,072 > STATE_LIMIT at steps 1 and 3, in every sample; u never wraps
    assert 933_888 + 8_323_072 > STATE_LIMIT >= 8_323_072
    assert r.counters is not None
    assert (r.counters[0].saturations, r.counters[0].wraps) == (SATURATIONS_PER_SAMPLE * N, 0)
    assert r.spikes[0][:, :, 0].tolist() == [[0] * N, [1] * N, [0] * N, [1] * N]


def test_search_lowers_the_exponent_until_clean_and_the_reference_agrees(data_file):
    inputs = load_npz_inputs(data_file, (9,))
    res = search_exponents(saturating_net(), LOIHI2, inputs)
    hid = res.program.layers[0]
    assert (hid.weight_exp, hid.vth) == (FIXED_EXP, 8128)  # 254 * 2^5
    assert hid.synapse.weight.tolist() == [[228] + [254] * 8]  # weights untouched
    (rec,) = res.layers
    assert (rec.name, rec.initial_exp, rec.weight_exp, rec.cap) == ("body.1", DEFAULT_EXP, 5, 5)
    assert (rec.before.saturations, rec.before.wraps) == (SATURATIONS_PER_SAMPLE * N, 0)
    assert (rec.after.saturations, rec.after.wraps) == (0, 0)
    assert rec.tries == [(5, 0, 0)]
    assert rec.a_scale / rec.initial_a_scale == 0.5
    assert res.clean and res.samples == N and res.T == T
    assert res.program.meta["exp_caps"] == {"body.1": 5}
    # the reference simulator, run on its own: 0 saturations, 0 wraps, the same spikes
    r = ReferenceTarget(res.program, device="cpu").run(
        res.program.quantize_input(inputs.encode(inputs.x))[0]
    )
    assert r.counters is not None
    assert (r.counters[0].saturations, r.counters[0].wraps) == (0, 0)
    assert r.spikes[0][:, :, 0].tolist() == [[0] * N, [1] * N, [0] * N, [1] * N]
    assert "body.1 weight exponent 6 -> 5" in res.format()
    # QAT's exact integer forward (the same arithmetic, run layer by layer): clean too
    with torch.no_grad():
        q = QATNet(saturating_net()).eval().run(inputs.encode(inputs.x), program=res.program)
        q0 = QATNet(saturating_net()).eval().run(inputs.encode(inputs.x))
    assert (q.counters[0].saturations, q.counters[0].wraps) == (0, 0)
    assert q0.counters[0].saturations == SATURATIONS_PER_SAMPLE * N  # the quantiser's own program


def test_clean_network_is_left_as_the_quantiser_made_it(tmp_path):
    path = tmp_path / "x0.npz"
    x = np.zeros((N, T, 9), np.float32)
    x[:, :, 0] = 1  # x0 alone: 933,888 per step, spikes every other step, never near 2^23
    np.savez(path, x=x)
    inputs = load_npz_inputs(path, (9,))
    res = search_exponents(saturating_net(), LOIHI2, inputs)
    assert res.program.layers[0].weight_exp == DEFAULT_EXP and res.layers[0].cap is None
    assert "exp_caps" not in res.program.meta
    assert "no saturation or wrap" in res.format()


def wide_net(n_in: int) -> SpikingNet:
    """All weights 1, theta 2 (vth = round(2 * 254 * 2^e) >= 1 down to e = -8). On all-ones input
    the current is u = (n_in * 254 >> -e) << 6; at the lowest exponent e = -8 and n_in = 140,000:
    (35,560,000 >> 8) << 6 = 138,906 * 64 = 8,889,984 > 2^23 - 1: u wraps at every exponent, to
    8,889,984 - 2^24 = -7,887,232; over 2 steps v = -7,887,232, then -15,774,464 < -2^23: at
    e = -8, 2 wraps and 1 saturation."""
    return _net(n_in, torch.ones(n_in), 2.0, "wide")


def test_unfixable_overflow_is_refused_by_name_and_count_unless_allowed(tmp_path):
    n_in = 140_000
    path = tmp_path / "ones.npz"
    np.savez(path, x=np.ones((1, 2, n_in), np.float32))
    inputs = load_npz_inputs(path, (n_in,))
    model = wide_net(n_in)
    prog = quantize_model(model, LOIHI2, **inputs.settings.as_kwargs())
    counts = count_overflow(prog, inputs)["body.1"]
    assert counts.total > 0
    with pytest.raises(OverflowRefused, match=r"layer body.1: 1 saturations and 2 wraps") as err:
        search_exponents(model, LOIHI2, inputs)
    msg = str(err.value)
    assert (
        "weight exponent -8" in msg and "--allow-overflow" in msg and "1 samples x 2 steps" in msg
    )
    # allowed: the quantiser's own program, its counts reported
    res = search_exponents(model, LOIHI2, inputs, allow_overflow=True)
    assert res.program.layers[0].weight_exp == prog.layers[0].weight_exp
    (rec,) = res.layers
    assert rec.cap is None and (rec.after.saturations, rec.after.wraps) == (
        counts.saturations,
        counts.wraps,
    )
    assert f"body.1 {counts.saturations} saturations, {counts.wraps} wraps" in res.format()


def test_without_inputs_overflow_is_not_checked():
    res = quantize_checked(saturating_net(), LOIHI2, None, settings={"input_kind": "binary"})
    assert not res.checked and "not checked" in res.format()
    assert res.program.layers[0].weight_exp == DEFAULT_EXP


def test_cli_quantize_verify_deploy_exit_codes(tmp_path, data_file, capsys):
    nir = tmp_path / "sat.nir"
    export_nir(saturating_net(), nir, dt=1e-4)
    out = tmp_path / "p.int.npz"
    assert main(["quantize", str(nir), "--data", str(data_file), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "weight exponent 6 -> 5" in text
    assert main(["verify", str(nir), "--data", str(data_file), "--no-lava"]) == 0
    assert "weight exponent 6 -> 5" in capsys.readouterr().out
    assert (
        main(
            [
                "deploy",
                str(nir),
                "--data",
                str(data_file),
                "--target",
                "reference",
                "--out",
                str(tmp_path / "dep"),
            ]
        )
        == 0
    )
    assert "weight exponent 6 -> 5" in capsys.readouterr().out
    # no inputs: quantised from the weights, the report says overflow was not checked
    assert main(["quantize", str(nir), "--out", str(tmp_path / "w.int.npz")]) == 0
    assert "overflow: not checked" in capsys.readouterr().out


def test_cli_refuses_unfixable_overflow_with_exit_2_and_allows_it_with_the_flag(tmp_path, capsys):
    n_in = 140_000
    nir, data = tmp_path / "wide.nir", tmp_path / "ones.npz"
    export_nir(wide_net(n_in), nir, dt=1e-4)
    np.savez(data, x=np.ones((1, 2, n_in), np.float32))
    base = [str(nir), "--data", str(data)]
    for cmd in (
        ["quantize", *base, "--out", str(tmp_path / "q.int.npz")],
        ["verify", *base, "--no-lava"],
        ["deploy", *base, "--target", "reference", "--out", str(tmp_path / "d")],
    ):
        assert main(cmd) == 2, cmd[0]
        err = capsys.readouterr().err
        assert "1 saturations and 2 wraps" in err and "--allow-overflow" in err, cmd[0]
        assert main([*cmd, "--allow-overflow"]) == 0, cmd[0]
        assert "accepted (--allow-overflow)" in capsys.readouterr().out, cmd[0]
