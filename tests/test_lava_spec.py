"""Independent checks of the Lava fixed_pt SmoothedLIF process (deliverable 6 of issue 14).

SmoothedLIF's fixed_pt model calls the same integer step as the reference simulator, so
"bit-exact with Lava" only checks the plumbing for it. Here it is held against

(a) ``spec_step``: the smoothed neuron written in this file from shared/spec/loihi-fixed-point.md
    (numpy int64; nothing from neurodeploy's integer code is imported), over random inputs and
    several dv / vth / coef / bias, including values that saturate;
(b) traces computed by hand (the numbers are in the comments);
(c) with coef = 0, Lava's own stock LIF (du = 4095), spike for spike and v for v.

Every network is a RingBuffer source -> Dense (identity weights, graded payloads) -> neurons, run
in Loihi2SimCfg(select_tag="fixed_pt"); Dense delivers at step t what it received at step t - 1,
so the neuron's input at step 1 is 0 and at step k > 1 the source's value of step k - 1.
"""

import numpy as np
import pytest

pytest.importorskip("lava.magma.core.run_configs")
pytestmark = pytest.mark.lava

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.dense.process import Dense  # noqa: E402
from lava.proc.io.sink import RingBuffer as Sink  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402
from lava.proc.lif.process import LIF  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402

from neurodeploy.targets.mps_lif.process import SmoothedLIF  # noqa: E402

# --- the smoothed neuron from the spec (shared/spec/loihi-fixed-point.md), nothing imported ------
# LIF section: decays round toward zero, decay(x, d) = sign(x (4096 - d)) * (|x (4096 - d)| >> 12);
# the synaptic input enters as a_in << 6; v saturates at +-(2^23 - 1); spike if v > vth << 6
# (strict); bias = bias_mant << bias_exp. MPS section, with a the 12-bit coefficient:
#   h = decay(s, dv) + (a_in << 6) + bias;  spike if h > vth << 6;  U = 0 if spike else h;
#   s <- round_toward_zero((a * s + (4096 - a) * U) / 4096), saturated to 24 bits.
# h plays the LIF's v (with a = 0 the spec says this *is* Lava's LIF with du = 4095, whose v is
# saturated before the threshold and the reset), so h is saturated to +-(2^23 - 1) first; s is
# then a convex mix of two in-range values and its saturation never triggers (kept, as written).
SAT = 2**23 - 1


def _rtz_shift12(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * (np.abs(x) >> 12)


def spec_step(a_in, s, *, dv, vth, bias, a):
    """One step of the spec's smoothed neuron: (spikes bool, new s, post-reset potential U, h unsaturated)."""
    h_raw = _rtz_shift12(s * (4096 - dv)) + (a_in << 6) + bias
    h = np.clip(h_raw, -SAT, SAT)
    spike = h > (vth << 6)
    u = np.where(spike, 0, h)
    s_new = np.clip(_rtz_shift12(a * s + (4096 - a) * u), -SAT, SAT)
    return spike, s_new, u, h_raw


def spec_run(x, *, dv, vth, bias, a):
    """The spec neuron behind a Dense with identity weights: input 0 at step 1, x[k - 1] at step k."""
    steps, n = x.shape
    s = np.zeros(n, np.int64)
    a_in = np.vstack([np.zeros((1, n), np.int64), x[:-1].astype(np.int64)])
    out = {"spikes": [], "s": [], "u": [], "h": []}
    for t in range(steps):
        spike, s, u, h = spec_step(a_in[t], s, dv=dv, vth=vth, bias=bias, a=a)
        for k, v in (("spikes", spike.astype(np.int64)), ("s", s), ("u", u), ("h", h)):
            out[k].append(v)
    return {k: np.stack(v) for k, v in out.items()}


# --- Lava ------------------------------------------------------------------------------------------


def run_lava(x: np.ndarray, neurons: list, state_vars: list[str]) -> list[tuple[np.ndarray, dict]]:
    """One fixed_pt runtime: source (x: steps, n) -> one Dense (identity, graded 16-bit payloads)
    per neuron population. Per population: spikes (steps, n) and the monitored vars (steps, n)."""
    steps, n = x.shape
    src = Source(data=x.T.astype(np.int32))
    sinks, monitors = [], []
    for neuron in neurons:
        syn = Dense(weights=np.eye(n, dtype=np.int32), num_message_bits=16)
        src.s_out.connect(syn.s_in)
        syn.a_out.connect(neuron.a_in)
        sink = Sink(shape=(n,), buffer=steps)
        neuron.s_out.connect(sink.a_in)
        mons = {}
        for var in state_vars:
            mon = Monitor()
            mon.probe(getattr(neuron, var), steps)
            mons[var] = mon
        sinks.append(sink)
        monitors.append(mons)
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        out = []
        for neuron, sink, mons in zip(neurons, sinks, monitors):
            states = {v: m.get_data()[neuron.name][v].astype(np.int64) for v, m in mons.items()}
            out.append((sink.data.get().T.astype(np.int64), states))
    finally:
        src.stop()
    return out


N = 20
STEPS = 40
# (dv, vth, coef, bias_exp): no leak with the largest biases; no leak with the largest threshold
# (the potential saturates upwards before it fires); a full leak with the largest coefficient;
# tau = 3.7 with alpha = 0.3; tau = 2 with alpha = 0.8; a tiny coefficient with the smallest threshold
CONFIGS = [
    (0, 100, 2048, 7),
    (0, 131071, 3000, 7),
    (4095, 20000, 4095, 2),
    (1107, 50, 1229, 0),
    (2048, 10, 3277, 3),
    (300, 1, 1, 5),
]


def _inputs(rng: np.random.Generator) -> np.ndarray:
    """Random source values (STEPS, N) within int16 at per-neuron scales 3 .. 30000, with the last
    neuron driven at +30000 and the one before at -30000 every step (a << 6 = +-1920000)."""
    amp = np.array([3, 30, 300, 3000, 30000])[np.arange(N) % 5]
    x = (rng.integers(-100, 101, size=(STEPS, N)) * amp // 100).astype(np.int64)
    x[:, -1] = 30000
    x[:, -2] = -30000
    return x


def test_smoothed_lif_in_lava_follows_the_spec():
    rng = np.random.default_rng(14)
    x = _inputs(rng)
    biases = [rng.integers(-4095, 4096, size=N) for _ in CONFIGS]
    neurons = [
        SmoothedLIF(shape=(N,), dv=dv, vth=vth, coef=coef, bias_mant=b, bias_exp=be)
        for (dv, vth, coef, be), b in zip(CONFIGS, biases)
    ]
    results = run_lava(x, neurons, ["m", "v"])
    saturated_low = saturated_high = 0
    for (dv, vth, coef, be), b, (spikes, states) in zip(CONFIGS, biases, results):
        ref = spec_run(x, dv=dv, vth=vth, bias=b.astype(np.int64) << be, a=coef)
        where = f"dv={dv} vth={vth} coef={coef}"
        assert np.array_equal(spikes, ref["spikes"]), where
        assert np.array_equal(states["m"], ref["s"]), where
        assert np.array_equal(states["v"], ref["u"]), where
        saturated_low += int((ref["h"] < -SAT).sum())
        saturated_high += int((ref["h"] > SAT).sum())
        assert 0 < spikes.mean() < 1, where
    assert saturated_low > 0 and saturated_high > 0  # the saturating paths were exercised


def test_hand_computed_traces():
    """Three single-neuron traces.

    A: dv = 1024 (keep 3/4), vth = 10 (compare with 640), coef = 2048 (mix halves), bias 3 << 2 = 12,
    source 5, 5, 5, 5, -20, 0 (input 0 at step 1, then the source one step late, << 6: 320 or -1280).
        step  h = rtz(3/4 m) + a + 12        spike  U      m = rtz((m + U) / 2)
        1     0 + 0 + 12 = 12                 no     12     6
        2     rtz(4.5) = 4 + 320 + 12 = 336   no     336    171
        3     rtz(128.25) = 128 + 332 = 460   no     460    rtz(315.5) = 315
        4     rtz(236.25) = 236 + 332 = 568   no     568    rtz(441.5) = 441
        5     rtz(330.75) = 330 + 332 = 662   yes    0      rtz(220.5) = 220
        6     165 - 1280 + 12 = -1103         no     -1103  rtz(-441.5) = -441
        7     rtz(-330.75) = -330 + 0 + 12    no     -318   rtz(-379.5) = -379

    B: dv = 0 (no leak), vth = 100, coef = 2048, bias 0, source -30000 every step (a << 6 =
    -1920000 from step 2): m_k = -960000 (k - 1) and h_k = -960000 k until |h| passes 2^23 - 1:
        step 8: h = m_7 - 1920000 = -5760000 - 1920000 = -7680000 (in range), m_8 = -6720000
        step 9: h = -6720000 - 1920000 = -8640000 -> saturated -8388607;
                m = rtz((-6720000 - 8388607) / 2) = rtz(-7554303.5) = -7554303
                (without the saturation of h it would be -7680000)
        step 10: h = -7554303 - 1920000 -> -8388607; m = rtz((-7554303 - 8388607) / 2) = -7971455

    C: the strict threshold. dv = 0, coef = 0, vth = 10 (640), bias 0, source 10, 0, 1, 0:
        step 2: h = 640, not > 640: no spike, m = 640;  step 3: h = 640 again, no spike;
        step 4: h = 640 + 64 = 704 > 640: spike, m = 0;  step 5: h = 0
    """
    xa = np.array([5, 5, 5, 5, -20, 0, 0])[:, None]
    xb = np.full((10, 1), -30000)
    a = SmoothedLIF(shape=(1,), dv=1024, vth=10, coef=2048, bias_mant=3, bias_exp=2)
    [(spikes, states)] = run_lava(xa, [a], ["m", "v"])
    assert spikes[:, 0].tolist() == [0, 0, 0, 0, 1, 0, 0]
    assert states["m"][:, 0].tolist() == [6, 171, 315, 441, 220, -441, -379]
    assert states["v"][:, 0].tolist() == [12, 336, 460, 568, 0, -1103, -318]
    b = SmoothedLIF(shape=(1,), dv=0, vth=100, coef=2048)
    [(spikes, states)] = run_lava(xb, [b], ["m", "v"])
    m = [0] + [-960000 * (k - 1) for k in range(2, 9)] + [-7554303, -7971455]
    assert not spikes.any() and states["m"][:, 0].tolist() == m
    assert states["v"][:, 0].tolist()[-2:] == [-8388607, -8388607]
    c = SmoothedLIF(shape=(1,), dv=0, vth=10, coef=0)
    [(spikes, states)] = run_lava(np.array([10, 0, 1, 0, 0])[:, None], [c], ["m"])
    assert spikes[:, 0].tolist() == [0, 0, 0, 1, 0] and states["m"][:, 0].tolist() == [
        0,
        640,
        640,
        0,
        0,
    ]


STOCK_CONFIGS = [(900, 70, 2), (0, 1, 7), (4095, 20000, 7), (0, 131071, 7), (2048, 5000, 0)]


def test_zero_coefficient_is_lavas_stock_lif():
    """coef = 0: SmoothedLIF equals lava.proc.lif.process.LIF with du = 4095, spike for spike and
    v for v, over (dv, vth, bias_exp) with no leak, a full leak, the smallest and the largest
    threshold, and potentials that saturate."""
    rng = np.random.default_rng(7)
    x = _inputs(rng)
    biases = [rng.integers(-4095, 4096, size=N) for _ in STOCK_CONFIGS]
    pairs = [
        (
            SmoothedLIF(shape=(N,), dv=dv, vth=vth, coef=0, bias_mant=b, bias_exp=be),
            LIF(shape=(N,), du=4095, dv=dv, vth=vth, bias_mant=b, bias_exp=be),
        )
        for (dv, vth, be), b in zip(STOCK_CONFIGS, biases)
    ]
    results = run_lava(x, [p for pair in pairs for p in pair], ["v"])
    saturated = 0
    for k, cfg in enumerate(STOCK_CONFIGS):
        (s1, st1), (s2, st2) = results[2 * k], results[2 * k + 1]
        assert np.array_equal(s1, s2) and np.array_equal(st1["v"], st2["v"]), cfg
        assert 0 < s1.mean() < 1, cfg
        saturated += int((st2["v"] == -SAT).sum())
    assert saturated > 0  # Lava's own LIF saturated somewhere, and ours with it


def test_parameters_are_checked_before_lava_starts():
    """A float theta is the floating_pt model's threshold; a fixed_pt run must not truncate it.
    Checked outside the process models (an exception inside one hangs a multi-process graph)."""
    for bad in (0, -1, 2**17, float("nan")):
        with pytest.raises(ValueError, match="vth"):
            SmoothedLIF(shape=(2,), vth=bad)
    with pytest.raises(ValueError, match="dv = 0.5 is not an integer"):
        SmoothedLIF(shape=(2,), dv=0.5)
    with pytest.raises(ValueError, match="coef = 4096 is not an integer in 0..4095"):
        SmoothedLIF(shape=(2,), coef=4096)
    with pytest.raises(ValueError, match="vth = 0.5 is not an integer"):
        SmoothedLIF(shape=(2,), vth=0.5).check_fixed_pt()
    SmoothedLIF(shape=(2,), vth=7).check_fixed_pt()
