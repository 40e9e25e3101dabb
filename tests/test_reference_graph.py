"""The reference simulator on graph programs (issue 16, item 4): hand-computed integer traces for
a 3-neuron recurrent loop and a 2-branch sum with a skip edge, in both schedules, and a chain
written as a graph runs bit for bit like the chain.

The expected values are worked out here from /work/shared/spec/loihi-fixed-point.md, never from
our code. Lava's LIF, per step (du, dv, vth integers; decays are fractions of 4096)::

    decay(x, d) = sign(x * (4096 - d)) * (|x * (4096 - d)| >> 12)     (rounds toward zero)
    u = decay(u, du + 1) + (a << 6)          (du = 4095: u = a << 6, no current memory)
    v = decay(v, dv) + u + bias
    s = v > (vth << 6);  v = 0 where s

and a layer's input current is the sum over its synapses of (W s_src) << weight_exp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from neurodeploy.quant.program import INPUT, IntEdge, IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.base import TargetResult
from neurodeploy.targets.reference import ReferenceTarget

FIXTURES = Path(__file__).parent / "fixtures"


def dense(w: list[list[int]]) -> Synapse:
    m = np.asarray(w, np.int32)
    return Synapse("dense", m, (m.shape[1],), (m.shape[0],))


def lif(name: str, syn: Synapse, *, dv: int, vth: int, **kw: object) -> IntLayer:
    n = syn.out_shape[0]
    return IntLayer(name, syn, 0, du=4095, dv=dv, vth=vth, bias_mant=np.zeros(n, np.int32), **kw)  # type: ignore[arg-type]


def program(layers: list[IntLayer], n_in: int) -> IntProgram:
    return IntProgram(
        layers=layers,
        hardware="loihi2",
        input_kind="binary",
        input_scale=1.0,
        input_bits=1,
        input_shape=(n_in,),
        input_signed=False,
        num_classes=layers[-1].out_shape[0],
    )


# --- (1) a 3-neuron recurrent loop ---------------------------------------------------------------
def recurrent_loop() -> IntProgram:
    """Layer r: 3 LIF neurons (du 4095, dv 1024: v decays to 3/4; vth 5: fires above 320), fed
    by the input through diag(4, 2, 0) and by its own spikes of the step before through the ring
    W_rec (0 -> 1 weight 6, 1 -> 2 weight 6, 2 -> 0 weight -8)."""
    w_rec = [[0, 0, -8], [6, 0, 0], [0, 6, 0]]
    edge = IntEdge("r", dense(w_rec), 0, recurrent=True)
    layer = lif("r", dense([[4, 0, 0], [0, 2, 0], [0, 0, 0]]), dv=1024, vth=5, extra=[edge])
    return program([layer], 3)


LOOP_X = np.zeros((7, 1, 3), np.int64)
LOOP_X[:, 0, 0] = 1  # input 0 spikes every step
LOOP_X[0, 0, 1] = 1  # input 1 at step 0 only

# a0(t) = 4 x0(t) - 8 s2(t-1);  a1(t) = 2 x1(t) + 6 s0(t-1);  a2(t) = 6 s1(t-1);  u = 64 a
# decay(v, 1024) = trunc(3 v / 4);  threshold 5 << 6 = 320
#  t  a             v before reset (decay + u)                        s        v after
#  0  (4, 2, 0)     (0+256, 0+128, 0)                                 (0,0,0)  (256, 128, 0)
#  1  (4, 0, 0)     (192+256=448, 96, 0)                              (1,0,0)  (0, 96, 0)
#  2  (4, 6, 0)     (0+256, 72+384=456, 0)                            (0,1,0)  (256, 0, 0)
#  3  (4, 0, 6)     (192+256=448, 0, 0+384)                           (1,0,1)  (0, 0, 0)
#  4  (-4, 6, 0)    (0-256, 0+384, 0)                                 (0,1,0)  (-256, 0, 0)
#  5  (4, 0, 6)     (-192+256=64, 0, 384)                             (0,0,1)  (64, 0, 0)
#  6  (-4, 0, 0)    (48-256=-208, 0, 0)                               (0,0,0)  (-208, 0, 0)
LOOP_S = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
LOOP_V = [[256, 128, 0], [0, 96, 0], [256, 0, 0], [0, 0, 0], [-256, 0, 0], [64, 0, 0], [-208, 0, 0]]


def test_a_recurrent_loop_follows_the_hand_computed_trace():
    r = ReferenceTarget(recurrent_loop(), device="cpu").run(LOOP_X, record_states=True)
    assert r.layer_names == ["r"] and r.spike_output
    assert r.spikes[0][:, 0].tolist() == LOOP_S
    assert r.states is not None and r.states[0][:, 0].tolist() == LOOP_V


def test_the_recurrent_loop_in_the_latency_schedule_is_shifted_by_its_depth():
    """depth(r) = 1: r runs its own time t - 1 (its self-edge still delivers s(t - 1)); T + 1
    steps."""
    prog = recurrent_loop()
    assert prog.depths() == {INPUT: 0, "r": 1}
    assert prog.edge_delays(0, latency=False) == [0, 1]  # input -> r, r -> r
    assert prog.edge_delays(0, latency=True) == [1, 1]
    r = ReferenceTarget(prog, device="cpu", latency=True).run(LOOP_X, record_states=True)
    assert r.spikes[0].shape[0] == 8
    assert r.spikes[0][:, 0].tolist() == [[0, 0, 0], *LOOP_S]
    assert r.states is not None and r.states[0][:, 0].tolist() == [[0, 0, 0], *LOOP_V]


# --- (2) a 2-branch sum with a skip edge ---------------------------------------------------------
def two_branches() -> IntProgram:
    """input -> A (1 neuron), input -> B (1 neuron), then C (2 neurons) = A + B + the input:
    C's inline synapse reads A, its extra edges read B and (a skip of another depth) the input
    with weight_exp 1. A and B: dv 0 (no leak), vth 4 (fire above 256); C: dv 2048 (halves),
    vth 5 (above 320)."""
    a = lif("A", dense([[4, 2]]), dv=0, vth=4)
    b = lif("B", dense([[0, 4]]), dv=0, vth=4, source=INPUT)
    c = lif(
        "C",
        dense([[6], [2]]),
        dv=2048,
        vth=5,
        source="A",
        extra=[IntEdge("B", dense([[2], [6]]), 0), IntEdge(INPUT, dense([[2, 0], [0, -2]]), 1)],
    )
    return program([a, b, c], 2)


BRANCH_X = np.zeros((5, 1, 2), np.int64)
BRANCH_X[:, 0, 0] = [1, 1, 0, 1, 0]
BRANCH_X[:, 0, 1] = [0, 1, 1, 0, 0]

# A: a = 4 x0 + 2 x1 = (4, 6, 2, 4, 0); v = v + 64 a (no leak), fires above 256:
#    256; 256+384=640 fires; 128; 128+256=384 fires; 0
BRANCH_A = ([0, 1, 0, 1, 0], [256, 0, 128, 0, 0])
# B: a = 4 x1 = (0, 4, 4, 0, 0): 0; 256 (not above 256); 512 fires; 0; 0
BRANCH_B = ([0, 0, 1, 0, 0], [0, 256, 0, 0, 0])
# C: a0 = 6 s_A + 2 s_B + (2 x0 << 1);  a1 = 2 s_A + 6 s_B + (-2 x1 << 1);  decay(v) = trunc(v/2)
#  t  (s_A, s_B, x0, x1)  a        v0                   v1
#  0  (0, 0, 1, 0)        (4, 0)   256                  0
#  1  (1, 0, 1, 1)        (10, -2) 128+640=768 fires    0-128=-128
#  2  (0, 1, 0, 1)        (2, 2)   0+128=128            -64+128=64
#  3  (1, 0, 1, 0)        (10, 2)  64+640=704 fires     32+128=160
#  4  (0, 0, 0, 0)        (0, 0)   0                    80
BRANCH_C = (
    [[0, 0], [1, 0], [0, 0], [1, 0], [0, 0]],
    [[256, 0], [0, -128], [128, 64], [0, 160], [0, 80]],
)


def test_a_two_branch_sum_with_a_skip_follows_the_hand_computed_trace():
    r = ReferenceTarget(two_branches(), device="cpu").run(BRANCH_X, record_states=True)
    assert r.layer_names == ["A", "B", "C"] and r.states is not None
    for k, (s, v) in enumerate((BRANCH_A, BRANCH_B)):
        assert r.spikes[k][:, 0, 0].tolist() == s, r.layer_names[k]
        assert r.states[k][:, 0, 0].tolist() == v, r.layer_names[k]
    assert r.spikes[2][:, 0].tolist() == BRANCH_C[0]
    assert r.states[2][:, 0].tolist() == BRANCH_C[1]
    assert sum(c.wraps + c.saturations for c in r.counters) == 0


def test_the_two_branch_sum_in_the_latency_schedule_shifts_each_layer_by_its_depth():
    """depth(A) = depth(B) = 1, depth(C) = 2: A -> C and B -> C arrive one step late, the skip
    input -> C two; every layer's spikes and v are the trace above shifted by its depth."""
    prog = two_branches()
    assert prog.depths() == {INPUT: 0, "A": 1, "B": 1, "C": 2}
    assert prog.edge_delays(2, latency=True) == [1, 1, 2]
    assert prog.edge_delays(2, latency=False) == [0, 0, 0]
    r = ReferenceTarget(prog, device="cpu", latency=True).run(BRANCH_X, record_states=True)
    assert r.states is not None and r.spikes[0].shape[0] == 5 + 2
    for k, (s, v) in enumerate((BRANCH_A, BRANCH_B)):  # depth 1: one step late, then idle
        assert r.spikes[k][:, 0, 0].tolist() == [0, *s, 0]
        assert r.states[k][:, 0, 0].tolist() == [0, *v, 0]
    assert r.spikes[2][:, 0].tolist() == [[0, 0], [0, 0], *BRANCH_C[0]]  # depth 2
    assert r.states[2][:, 0].tolist() == [[0, 0], [0, 0], *BRANCH_C[1]]


def test_graphs_run_batched_sample_by_sample_alike():
    rng = np.random.default_rng(0)
    x = (rng.random((6, 5, 2)) < 0.5).astype(np.int64)
    for latency in (False, True):
        target = ReferenceTarget(two_branches(), device="cpu", latency=latency)
        batch = target.run(x, record_states=True)
        for b in range(x.shape[1]):
            one = target.run(x[:, b : b + 1], record_states=True)
            assert batch.states is not None and one.states is not None
            for k in range(3):
                assert np.array_equal(batch.spikes[k][:, b : b + 1], one.spikes[k])
                assert np.array_equal(batch.states[k][:, b : b + 1], one.states[k])


# --- (3) a chain written as a graph --------------------------------------------------------------
def _results_equal(a: TargetResult, b: TargetResult) -> bool:
    assert a.states is not None and b.states is not None
    return (
        all(np.array_equal(p, q) for p, q in zip(a.spikes, b.spikes, strict=True))
        and all(np.array_equal(p, q) for p, q in zip(a.states, b.states, strict=True))
        and np.array_equal(a.output, b.output)
        and [(c.wraps, c.saturations) for c in a.counters]
        == [(c.wraps, c.saturations) for c in b.counters]
    )


@pytest.mark.parametrize("latency", [False, True])
def test_a_chain_written_as_a_graph_runs_like_the_chain(
    latency: bool, monkeypatch: pytest.MonkeyPatch
):
    """The pooled-VGG chain (conv, pooled conv, dense, readout; smoothed-reset neurons) with
    explicit sources is still a chain; run through the graph loop (the chain loop switched off)
    it gives the chain loop's spikes, states, outputs and counts bit for bit."""
    chain = IntProgram.load(FIXTURES / "program_v1_vgg_pooled.npz")
    explicit = IntProgram.load(FIXTURES / "program_v1_vgg_pooled.npz")
    for k, layer in enumerate(explicit.layers):
        layer.source = explicit.layers[k - 1].name if k else INPUT
    assert chain.is_chain and explicit.is_chain
    x = (np.random.default_rng(1).random((6, 3, 1, 4, 4)) < 0.4).astype(np.int64)
    want = ReferenceTarget(chain, device="cpu", latency=latency).run(x, record_states=True)
    monkeypatch.setattr(IntProgram, "is_chain", property(lambda self: False))
    got = ReferenceTarget(explicit, device="cpu", latency=latency).run(x, record_states=True)
    assert got.output is not None and got.output.shape[0] == 6 + (3 if latency else 0)
    assert _results_equal(want, got)
