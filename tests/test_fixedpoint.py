"""Integer dynamics against hand-computed traces (numbers worked out in the comments)."""

import torch

from neurodeploy.neuron.fixedpoint import (
    Counters,
    decay,
    lif_int_step,
    mps_int_step,
    sat24,
    shift_exp,
    wrap24,
)

I = torch.int64


def t(*v):
    return torch.tensor(v, dtype=I)


def test_decay_rounds_toward_zero():
    # 1000 * 3096 = 3096000, >> 12 = 755.85.. -> 755 ; negative: -755 (not -756, which floor gives)
    assert decay(t(1000, -1000, 1, -1, 4095), 1000).tolist() == [755, -755, 0, 0, 3095]
    # du = 0 with Lava's +1 on the current: 4095/4096 of u, toward zero
    assert decay(t(1000, -1000, 1, -1), 0 + 1).tolist() == [999, -999, 0, 0]


def test_wrap_and_saturate():
    # 2^23 itself is not wrapped; 2^23 + 64 -> 2^23 + 64 - 2^24 = -8388544; -2^23 -> +2^23
    out, mask = wrap24(t(8388608, 8388672, -8388608, -8388672))
    assert out.tolist() == [8388608, -8388544, 8388608, 8388544] and mask.tolist() == [
        False,
        True,
        True,
        True,
    ]
    out, mask = sat24(t(8388608, -8388608, 5))
    assert out.tolist() == [8388607, -8388607, 5] and mask.tolist() == [True, True, False]
    assert shift_exp(t(-5, 5), -1).tolist() == [-3, 2] and shift_exp(t(3), 2).tolist() == [12]


def test_lif_trace_by_hand():
    """du = 4095 (no current memory), dv = 1024 (v keeps 3/4), vth = 10 (compared with 640),
    bias 0, input 4 every step: u = 256 each step.
    v: 256 | 192 + 256 = 448 | 336 + 256 = 592 | 444 + 256 = 700 > 640 spike -> 0 | 256"""
    u, v = t(0), t(0)
    seq = []
    for _ in range(5):
        s, u, v = lif_int_step(t(4), u, v, du=4095, dv=1024, vth=10, bias=0)
        seq.append((bool(s), int(v)))
    assert seq == [(False, 256), (False, 448), (False, 592), (True, 0), (False, 256)]


def test_negative_voltage_decays_toward_zero():
    # v = -1000, dv = 1000, no input: -755, then -755*3096 = -2337480 >> 12 -> -570 (floor would give -571)
    u, v = t(0), t(-1000)
    _, u, v = lif_int_step(t(0), u, v, du=4095, dv=1000, vth=100, bias=0)
    assert int(v) == -755
    _, u, v = lif_int_step(t(0), u, v, du=4095, dv=1000, vth=100, bias=0)
    assert int(v) == -570


def test_saturation_and_wrap_are_counted():
    c = Counters()
    # huge bias saturates v; the current wraps when a_in << 6 passes 2^23 (a_in = 2^17 + 1)
    s, u, v = lif_int_step(
        t(2**17 + 1), t(0), t(8_000_000), du=4095, dv=0, vth=131071, bias=t(1_000_000), counters=c
    )
    assert int(u) == (2**17 + 1) * 64 - 2**24 and c.wraps == 1
    assert c.saturations == 0  # 8e6 - 8388544 + 1e6 = 611456 is in range
    s, u, v = lif_int_step(
        t(0), t(0), t(8_000_000), du=4095, dv=0, vth=131071, bias=t(1_000_000), counters=c
    )
    assert c.saturations == 1 and bool(s) and int(v) == 0  # 2^23 - 1 > 131071 << 6: fires, resets


def test_mps_with_zero_coefficient_is_the_lif():
    g = torch.Generator().manual_seed(0)
    a = torch.randint(-40, 60, (30, 50), generator=g, dtype=I)
    bias = torch.randint(-20, 20, (50,), generator=g, dtype=I)
    u, v, m = torch.zeros(50, dtype=I), torch.zeros(50, dtype=I), torch.zeros(50, dtype=I)
    for step in a:
        s1, u, v = lif_int_step(step, u, v, du=4095, dv=700, vth=40, bias=bias)
        s2, m, _ = mps_int_step(step, m, dv=700, vth=40, bias=bias, coef=0)
        assert torch.equal(s1, s2) and torch.equal(v, m)


def test_mps_trace_by_hand():
    """coef 2048 (alpha = .5), dv = 0, vth = 10 (640), input 8 (512 per step):
    h = 512 -> U 512, m = (2048*0 + 2048*512)/4096 = 256
    h = 256 + 512 = 768 > 640 spike -> U 0, m = (2048*256 + 0)/4096 = 128
    h = 128 + 512 = 640, not > 640 -> U 640, m = (2048*128 + 2048*640)/4096 = 384"""
    m, seq = t(0), []
    for _ in range(3):
        s, m, h = mps_int_step(t(8), m, dv=0, vth=10, bias=0, coef=2048)
        seq.append((bool(s), int(h), int(m)))
    assert seq == [(False, 512, 256), (True, 768, 128), (False, 640, 384)]
    # negative states round toward zero: m = -3, coef 2048, U = -1 -> (-6144 - 2048)/4096 = -2
    s, m2, h = mps_int_step(
        t(0), t(-3), dv=4095, vth=10, bias=0, coef=2048
    )  # h = decay(-3, 4095) = 0
    assert int(h) == 0 and int(m2) == -1  # (2048*-3 + 0)/4096 = -1.5 -> -1


def test_float64_path_equals_int64_path():
    """The reference simulator holds integer states in float64; the functions must agree exactly."""
    g = torch.Generator().manual_seed(1)
    for du, dv, coef in ((4095, 700, 0), (100, 4000, 0), (0, 1, 3000), (4095, 0, 2048)):
        a = torch.randint(
            -200_000, 200_000, (40, 64), generator=g, dtype=I
        )  # wraps and saturations happen
        bias = torch.randint(-500_000, 500_000, (64,), generator=g, dtype=I)
        ci, cf = Counters(), Counters()
        ui = vi = mi = torch.zeros(64, dtype=I)
        uf = vf = mf = torch.zeros(64, dtype=torch.float64)
        for step in a:
            si, ui, vi = lif_int_step(
                step, ui, vi, du=du, dv=dv, vth=50_000, bias=bias, counters=ci
            )
            sf, uf, vf = lif_int_step(
                step.double(), uf, vf, du=du, dv=dv, vth=50_000, bias=bias.double(), counters=cf
            )
            assert torch.equal(si, sf) and torch.equal(ui, uf.long()) and torch.equal(vi, vf.long())
            s2i, mi, hi = mps_int_step(step, mi, dv=dv, vth=50_000, bias=bias, coef=coef)
            s2f, mf, hf = mps_int_step(
                step.double(), mf, dv=dv, vth=50_000, bias=bias.double(), coef=coef
            )
            assert (
                torch.equal(s2i, s2f) and torch.equal(mi, mf.long()) and torch.equal(hi, hf.long())
            )
        assert ci.wraps == cf.wraps > 0 and ci.saturations == cf.saturations > 0


def test_state_bounds_are_sound():
    from neurodeploy.neuron.fixedpoint import state_bounds

    # |a| <= 1000 -> |u| <= 64000; dv = 2048 -> |v| <= (64000 + 100) * 2 : far from 2^23
    assert state_bounds(1000, 100, 4095, 2048) == (False, False)
    assert state_bounds(200_000, 0, 4095, 2048) == (True, True)  # a << 6 passes 2^23
    assert state_bounds(1000, 100, 4095, 0) == (False, True)  # no leak: v unbounded
    # skipping the checks where the bound allows it changes nothing
    g = torch.Generator().manual_seed(2)
    u = v = torch.zeros(32, dtype=I)
    u2 = v2 = torch.zeros(32, dtype=I)
    for _ in range(100):
        a = torch.randint(-1000, 1000, (32,), generator=g, dtype=I)
        s, u, v = lif_int_step(a, u, v, du=4095, dv=2048, vth=300, bias=100)
        s2, u2, v2 = lif_int_step(
            a, u2, v2, du=4095, dv=2048, vth=300, bias=100, may_wrap=False, may_saturate=False
        )
        assert torch.equal(s, s2) and torch.equal(v, v2)
