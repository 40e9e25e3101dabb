"""The layer-major integer simulator (issue 21): the compiled neuron loops
(:mod:`neurodeploy.neuron.kernels.int_scan`) against a hand-computed trace and against the integer
core's step functions (:mod:`neurodeploy.neuron.fixedpoint`, which the Lava tests pin to Lava),
at the 24-bit edges; and the reference simulator with the numba back end against its torch back
end (the core, step by step) on chains, graphs, latency, delays, recorded states and counters.

Lava, per step (from /work/shared/spec/loihi-fixed-point.md):
    decay(x, d) = sign(x (4096 - d)) (|x (4096 - d)| >> 12)
    u = decay(u, du + 1) + (a << 6);  wrap: u > 2^23 -> u - 2^24, u <= -2^23 -> u + 2^24
    v = decay(v, dv) + u + bias, saturated to +-(2^23 - 1);  s = v > vth << 6;  v = 0 where s
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("numba")

from neurodeploy.neuron.fixedpoint import (
    STATE_LIMIT,
    Counters,
    lif_int_step,
    mps_int_step,
    shift_exp,
)
from neurodeploy.neuron.kernels.int_scan import chunks, lif_scan, mps_scan
from neurodeploy.quant.program import IntProgram
from neurodeploy.targets.base import TargetResult
from neurodeploy.targets.reference import ReferenceTarget

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_LAVA_DL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lava-dl"


def _lif(y, bias, *, exp=0, conv_wrap=False, du=4095, dv=0, vth=0, refractory=False, u0=None):
    T, N = y.shape
    spikes = np.zeros((T, N), np.uint8)
    rec_u = np.zeros((T, N), np.int64)
    rec_v = np.zeros((T, N), np.int32)
    u = np.zeros(N) if u0 is None else np.asarray(u0, np.float64).copy()
    sat, wraps = lif_scan(
        y, exp=exp, conv_wrap=conv_wrap, bias=np.asarray(bias, np.int64), du=du, dv=dv, vth=vth,
        u=u, v=np.zeros(N), refractory=refractory, spikes=spikes, rec_u=rec_u, rec_v=rec_v,
    )  # fmt: skip
    return spikes, rec_u, rec_v, sat, wraps


def test_a_hand_computed_lif_trace():
    """One neuron, du 4095 (u = a << 6), dv 2048 (v halves, toward zero), vth 150 (fires above
    9600), bias -1: a = 100 gives u 6400, v 6399; then a = 0: v = 3199 - 1 = 3198 (3199.5
    truncated); a = 100: 1599 + 6400 - 1 = 7998; a = 100 again: 3999 + 6399 = 10398 > 9600,
    a spike, v = 0."""
    y = np.array([[100.0], [0.0], [100.0], [100.0]], np.float32)
    s, u, v, sat, wraps = _lif(y, [-1], dv=2048, vth=150)
    assert s[:, 0].tolist() == [0, 0, 0, 1]
    assert v[:, 0].tolist() == [6399, 3198, 7998, 0]
    assert u[:, 0].tolist() == [6400, 0, 6400, 6400]
    assert (sat, wraps) == (0, 0)


def test_negative_values_round_toward_zero_and_exponents_floor():
    """v = -6401 after step 0 (a = -100, bias -1); dv 2048: -3200.5 -> -3200 (toward zero).
    A weight exponent of -1 floors: y = -3 -> a = -2 (not -1), y = 3 -> a = 1."""
    _, _, v, _, _ = _lif(np.array([[-100.0], [0.0]], np.float32), [-1], dv=2048, vth=10)
    assert v[:, 0].tolist() == [-6401, -3201]  # -3200 - 1 (bias)
    _, u, _, _, _ = _lif(np.array([[-3.0, 3.0]], np.float32), [0, 0], exp=-1, vth=1 << 16)
    assert u[0].tolist() == [-2 * 64, 1 * 64]


def test_the_24_bit_edges():
    """A convolution output wraps at 2^23 (2^23 - 1 stays, 2^23 -> -2^23, -2^23 stays,
    -2^23 - 1 -> 2^23 - 1); a dense one does not. u wraps above 2^23 (exactly 2^23 stays);
    v saturates at +-(2^23 - 1); each event is counted."""
    L = STATE_LIMIT
    y = np.array([[L - 1, L, -L, -L - 1]], np.float64)
    _, u, _, _, wraps = _lif(y, [0] * 4, conv_wrap=True, du=4095, vth=1 << 16)
    # a << 6 then wraps once more in u: the core's u, computed here by hand
    a = [L - 1, -L, -L, L - 1]
    want_u = [x * 64 for x in a]
    want_u = [w - 2 * L if w > L else (w + 2 * L if w <= -L else w) for w in want_u]
    assert u[0].tolist() == want_u
    assert wraps == 2 + sum(1 for x in a if x * 64 > L or x * 64 <= -L)
    _, u, _, _, wraps = _lif(np.array([[L // 64]], np.float64), [0], du=4095, vth=1 << 16)
    assert u[0].tolist() == [L] and wraps == 0  # exactly 2^23: not above it, no wrap
    _, _, v, sat, _ = _lif(np.array([[L // 128]], np.float64), [L // 2 + 5], du=4095, vth=1 << 17)
    assert v[0].tolist() == [L - 1] and sat == 1  # L/2 + L/2 + 5 saturates to 2^23 - 1


def test_a_refractory_step_and_a_current_that_starts_at_minus_bias():
    """reset_delay: after a spike, v is held at 0 for one step (no spike then). u_init_bias:
    u(-1) = -bias, so a CubaLIF current (du 2047: keeps half) starts at -bias/2."""
    y = np.array([[200.0], [200.0], [200.0]], np.float32)
    s, _, v, _, _ = _lif(y, [0], dv=4095, vth=150, refractory=True)
    assert s[:, 0].tolist() == [1, 0, 1] and v[:, 0].tolist() == [0, 0, 0]
    _, u, v, _, _ = _lif(np.zeros((1, 1), np.float32), [640], du=2047, dv=4095, vth=100, u0=[-640])
    assert u[0].tolist() == [-320] and v[0].tolist() == [320]  # decay(0) - 320 + 640


def _core_input(y_t, exp, conv_wrap, counters):
    """One step's synaptic input as PreparedSynapse computes it: y << exp, a conv's wrapped."""
    a = shift_exp(torch.as_tensor(y_t.astype(np.float64)), exp)
    if conv_wrap:
        counters.add(wrap=(a >= STATE_LIMIT) | (a < -STATE_LIMIT))
        a = torch.remainder(a + STATE_LIMIT, 2 * STATE_LIMIT) - STATE_LIMIT
    return a


def _core_lif(y, bias, *, exp, conv_wrap, du, dv, vth, refractory, u_init):
    T, N = y.shape
    b = torch.as_tensor(np.tile(bias, N // len(bias)).astype(np.float64))
    u = -b.clone() if u_init else torch.zeros(N, dtype=torch.float64)
    v = torch.zeros(N, dtype=torch.float64)
    c, out, prev = Counters(), [], None
    for t in range(T):
        a = _core_input(y[t], exp, conv_wrap, c)
        s, u, v = lif_int_step(
            a, u, v, du=du, dv=dv, vth=vth, bias=b, counters=c,
            refractory=prev if refractory and t > 0 else None,
        )  # fmt: skip
        prev = s
        out.append((s.numpy().astype(np.uint8), u.numpy(), v.numpy()))
    return [np.array(z) for z in zip(*out)] + [c.saturations, c.wraps]


def _core_mps(y, bias, *, exp, conv_wrap, dv, vth, coef):
    T, N = y.shape
    b = torch.as_tensor(np.tile(bias, N // len(bias)).astype(np.float64))
    m, c, out = torch.zeros(N, dtype=torch.float64), Counters(), []
    for t in range(T):
        a = _core_input(y[t], exp, conv_wrap, c)
        s, m, _ = mps_int_step(a, m, dv=dv, vth=vth, bias=b, coef=coef, counters=c)
        out.append((s.numpy().astype(np.uint8), m.numpy()))
    return [np.array(z) for z in zip(*out)] + [c.saturations, c.wraps]


@pytest.mark.parametrize("seed", range(12))
def test_the_loops_equal_the_core_step_functions(seed: int):
    """Random layers (F neurons per sample, including F above the loop's chunk of 2048), inputs
    from small to far beyond 24 bits, float32 and float64 sums, every option: spikes, u, v (m),
    saturation and wrap counts equal the core's."""
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, 7))
    F = int(rng.choice([1, 7, 64, 3000]))
    B = int(rng.integers(1, 5))
    dtype = np.float32 if seed % 2 else np.float64
    scale = float(2 ** rng.integers(4, 24 if dtype == np.float32 else 30))
    y = np.clip(np.rint(rng.normal(0, scale, (T, B * F))), -(2**23), 2**23).astype(dtype)
    bias = rng.integers(-(2**21), 2**21, F)
    exp = int(rng.integers(-3, 4))
    conv_wrap = bool(seed % 3 == 0)
    du = int(rng.choice([4095, 0, 1000]))
    dv = int(rng.choice([0, 300, 4095]))
    vth = int(rng.integers(0, 2**17))
    refractory, u_init = bool(seed % 4 == 1), bool(seed % 5 == 2)
    want = _core_lif(
        y, bias, exp=exp, conv_wrap=conv_wrap, du=du, dv=dv, vth=vth, refractory=refractory,
        u_init=u_init,
    )  # fmt: skip
    u0 = -np.tile(bias, B) if u_init else None
    got = _lif(
        y, bias, exp=exp, conv_wrap=conv_wrap, du=du, dv=dv, vth=vth, refractory=refractory, u0=u0
    )
    for w, g in zip(want, got):
        assert np.array_equal(np.asarray(w), np.asarray(g))
    coef = int(rng.choice([0, 1, 2048, 4095]))
    want = _core_mps(y, bias, exp=exp, conv_wrap=conv_wrap, dv=dv, vth=vth, coef=coef)
    spikes, rec = np.zeros((T, B * F), np.uint8), np.zeros((T, B * F), np.int32)
    sat, wraps = mps_scan(
        y, exp=exp, conv_wrap=conv_wrap, bias=bias, dv=dv, vth=vth, coef=coef,
        m=np.zeros(B * F), spikes=spikes, rec_v=rec,
    )  # fmt: skip
    for w, g in zip(want, [spikes, rec, sat, wraps]):
        assert np.array_equal(np.asarray(w), np.asarray(g))


def test_chunks_cover_every_neuron_once_with_its_own_bias():
    for n, f in [(10, 3), (4096 * 3, 4096), (2048 * 5 + 7 * 5, 2048 + 7), (6, 6), (1, 1)]:
        rows, length = chunks(n, f)
        covered = np.concatenate([np.arange(lo, hi) for lo, hi, _ in rows])
        assert np.array_equal(covered, np.arange(n))
        for lo, hi, f0 in rows:  # bias_t[f0 + n - lo] is bias[n mod f]
            idx = (f0 + np.arange(hi - lo)) % f
            assert np.array_equal(idx, np.arange(lo, hi) % f)
            assert f0 + hi - lo <= length


# --- the reference simulator: numba back end == torch back end (the core, step by step) -------
def _same(a: TargetResult, b: TargetResult) -> None:
    assert len(a.spikes) == len(b.spikes)
    for p, q in zip(a.spikes, b.spikes):
        assert np.array_equal(p, q)
    assert (a.output is None) == (b.output is None)
    if a.output is not None:
        assert np.array_equal(a.output, b.output)
    assert a.states is not None and b.states is not None
    for p, q in zip(a.states, b.states):
        assert np.array_equal(p, q)
    assert [(c.saturations, c.wraps) for c in a.counters or []] == [
        (c.saturations, c.wraps) for c in b.counters or []
    ]


def _run_both(prog: IntProgram, x: np.ndarray, latency: bool) -> None:
    got = ReferenceTarget(prog, device="cpu", latency=latency, kernel="numba")
    want = ReferenceTarget(prog, device="cpu", latency=latency, kernel="torch")
    _same(got.run(x, record_states=True), want.run(x, record_states=True))


@pytest.mark.parametrize("latency", [False, True])
def test_a_pooled_vgg_program_runs_alike_on_both_back_ends(latency: bool):
    """Convolutions with pooling, smoothed-reset neurons, a readout."""
    prog = IntProgram.load(FIXTURES / "program_v1_vgg_pooled.npz")
    x = (np.random.default_rng(1).random((6, 5, 1, 4, 4)) < 0.4).astype(np.int64)
    _run_both(prog, x, latency)


@pytest.mark.parametrize("latency", [False, True])
def test_graphs_with_recurrence_skips_and_saturation_run_alike(latency: bool):
    """A recurrent loop and a two-branch sum with a skip edge (tests/test_reference_graph.py's
    hand-traced programs), with the weights scaled up so that states saturate and wrap."""
    from tests.test_reference_graph import recurrent_loop, two_branches

    rng = np.random.default_rng(2)
    for build in (recurrent_loop, two_branches):
        prog = build()
        n_in = prog.input_shape[0]
        x = (rng.random((7, 4, n_in)) < 0.6).astype(np.int64)
        _run_both(prog, x, latency)
        for layer in prog.layers:  # drive hard: weights x 2^15, no leak
            layer.weight_exp = 15
            layer.dv = 0
        hot = ReferenceTarget(prog, device="cpu", kernel="numba").run(x)
        assert sum(c.saturations + c.wraps for c in hot.counters or []) > 0
        _run_both(prog, x, latency)


def test_netx_delays_run_alike(tmp_path: Path):
    """A lava-dl netx file with per-synapse delays (delay lines, per step) and plain layers."""
    pytest.importorskip("h5py")
    from neurodeploy.converters.netx_import import netx_to_program
    from tests.test_netx_delays import write_delay_net

    path = tmp_path / "delays.net"
    write_delay_net(path, rng=np.random.default_rng(3))
    prog = netx_to_program(path)
    x = (np.random.default_rng(3).random((8, 3, *prog.input_shape)) < 0.5).astype(np.int64)
    _run_both(prog, x, latency=False)


@pytest.mark.parametrize("name", ["mnist_network", "tiny"])
def test_lava_dl_fixtures_run_alike(name: str):
    """Files written by lava-dl itself (../shared/fixtures/lava-dl): dense CUBA layers, and a
    graded input layer with convolutions whose outputs can wrap."""
    pytest.importorskip("h5py")
    from neurodeploy.converters.netx_import import netx_to_program

    path = SHARED_LAVA_DL / f"{name}.net"
    if not path.exists():
        pytest.skip(f"{path} not present")
    prog = netx_to_program(path)
    rng = np.random.default_rng(4)
    if prog.input_kind == "graded":
        x = rng.integers(-200, 200, (6, 2, *prog.input_shape))
    else:
        x = (rng.random((6, 2, *prog.input_shape)) < 0.3).astype(np.int64)
    _run_both(prog, x, latency=False)


def test_an_unknown_kernel_or_numba_on_the_wrong_device_is_named():
    prog = IntProgram.load(FIXTURES / "program_v1_vgg_pooled.npz")
    with pytest.raises(ValueError, match="kernel must be one of"):
        ReferenceTarget(prog, device="cpu", kernel="fortran")
    with pytest.raises(ValueError, match=r"layer .*numba kernel cannot run it: meta"):
        ReferenceTarget(prog, device="meta", kernel="numba")
