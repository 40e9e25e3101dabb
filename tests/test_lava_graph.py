"""Graph programs (fan-in, skips of other depths, recurrent self-loops, several edges into the
readout) on Lava's bit-accurate models, one runtime per batch, against the integer program's
latency schedule (the graph contract of neurodeploy.quant.program) simulated here in numpy:

    depth(input) = 0, depth(L) = 1 + max over L's feed-forward sources of depth(source);
    a(t) of L = sum over L's edges of (W s_src(t - 1 - extra)) << weight_exp,
        extra = depth(L) - depth(src) - 1, or (recurrent self-loop) of (W s_L(t - 1)) << e;
    the neuron step of Lava's fixed-point LIF (du, dv, vth << 6, bias_mant << bias_exp) or the
    smoothed-reset neuron; the readout out(t) = a(t) + readout_bias.
"""

import numpy as np
import pytest
import torch

pytest.importorskip("lava.magma.core.run_configs")
pytestmark = pytest.mark.lava

from neurodeploy.neuron.fixedpoint import lif_int_step, mps_int_step  # noqa: E402
from neurodeploy.quant.program import (  # noqa: E402
    INPUT,
    READOUT_LI,
    IntEdge,
    IntLayer,
    IntProgram,
)
from neurodeploy.quant.synapse import Synapse  # noqa: E402
from neurodeploy.targets.lava import (  # noqa: E402
    RELAY_DU,
    RELAY_DV,
    RELAY_VTH,
    RELAY_WEIGHT,
    LavaSynapse,
    LavaTarget,
    graph_depths,
)
from neurodeploy.targets.reference import ReferenceTarget  # noqa: E402

T = 12
LI_VTH = 2**17 - 1  # an LI readout's threshold: never reached here


def _even(rng, shape, lo=-60, hi=60):
    return (2 * rng.integers(lo // 2, hi // 2 + 1, size=shape)).astype(np.int32)


def _lif(rng, shape, *, vth, dv, neuron="lif", coef=0, bias_scale=200):
    return dict(
        neuron=neuron,
        du=4095,
        dv=dv,
        vth=vth,
        coef=coef,
        bias_exp=1,
        bias_mant=rng.integers(-bias_scale, bias_scale, size=shape).astype(np.int32),
    )


def _dense(rng, n_in, n_out, in_shape=None):
    return Synapse("dense", _even(rng, (n_out, n_in)), in_shape or (n_in,), (n_out,))


def _conv(rng, c_in, c_out, hw):
    return Synapse(
        "conv2d", _even(rng, (c_out, c_in, 3, 3)), (c_in, *hw), (c_out, *hw), (1, 1), (1, 1)
    )


def dense_graph(seed: int, graded: bool = False) -> IntProgram:
    """input(6) -> a: LIF(3) with a recurrent self-loop -> b: MPS(8) <- a, input (1 step later)
    -> c: LIF(6) <- b, a (skip, 1 relay) -> readout(4) <- c, a (2 relays), b (1 relay).
    ``graded``: 8-bit input payloads (both input edges carry them)."""
    rng = np.random.default_rng(seed)
    e_in = -4 if graded else 1
    return IntProgram(
        [
            IntLayer(
                "a",
                _dense(rng, 6, 3),
                e_in,
                **_lif(rng, (3,), vth=30, dv=600),
                extra=[IntEdge("a", _dense(rng, 3, 3), 1, recurrent=True)],
            ),
            IntLayer(
                "b",
                _dense(rng, 3, 8),
                1,
                **_lif(rng, (8,), vth=20, dv=1024, neuron="mps", coef=1500),
                extra=[IntEdge(INPUT, _dense(rng, 6, 8), e_in)],
            ),
            IntLayer(
                "c",
                _dense(rng, 8, 6),
                1,
                **_lif(rng, (6,), vth=25, dv=900),
                extra=[IntEdge("a", _dense(rng, 3, 6), 1)],
            ),
            IntLayer(
                "out",
                _dense(rng, 6, 4),
                0,
                neuron=None,
                readout_bias=rng.integers(-50, 50, size=4),
                extra=[IntEdge("a", _dense(rng, 3, 4), 1), IntEdge("b", _dense(rng, 8, 4), 0)],
            ),
        ],
        "loihi2",
        "graded" if graded else "binary",
        1.0,
        8 if graded else 1,
        (6,),
        input_signed=False,
        num_classes=4,
    )


def conv_graph(seed: int) -> IntProgram:
    """input(2,5,5) -> a: conv LIF(3,5,5) -> b: conv LIF(3,5,5) with a recurrent conv self-loop
    -> c: conv LIF(2,5,5) <- b, a (conv skip, 1 relay), input (conv, 2 steps later) -> LI
    readout(3) <- a (its own synapse reads a, not c: dense from a conv layer, 2 relays), c."""
    rng = np.random.default_rng(seed)
    hw = (5, 5)
    return IntProgram(
        [
            IntLayer("a", _conv(rng, 2, 3, hw), 1, **_lif(rng, (3, *hw), vth=20, dv=1024)),
            IntLayer(
                "b",
                _conv(rng, 3, 3, hw),
                1,
                **_lif(rng, (3, *hw), vth=30, dv=1024),
                extra=[IntEdge("b", _conv(rng, 3, 3, hw), 0, recurrent=True)],
            ),
            IntLayer(
                "c",
                _conv(rng, 3, 2, hw),
                1,
                **_lif(rng, (2, *hw), vth=30, dv=800),
                extra=[
                    IntEdge("a", _conv(rng, 3, 2, hw), 0),
                    IntEdge(INPUT, _conv(rng, 2, 2, hw), 1),
                ],
            ),
            IntLayer(
                "out",
                _dense(rng, 75, 3, (3, *hw)),
                0,
                neuron=None,
                readout_kind=READOUT_LI,
                dv=300,
                vth=LI_VTH,
                bias_mant=rng.integers(-50, 50, size=3).astype(np.int32),
                source="a",
                extra=[IntEdge("c", _dense(rng, 50, 3, (2, *hw)), 0)],
            ),
        ],
        "loihi2",
        "binary",
        1.0,
        1,
        (2, *hw),
        input_signed=False,
        num_classes=3,
    )


# ---------------------------------------------------------------------------------------------
# the contract's latency schedule, in numpy (neuron steps: the fixed-point core)
# ---------------------------------------------------------------------------------------------
def _sum(edge, s: np.ndarray) -> np.ndarray:
    """(W s) << weight_exp for a batch s (B, *in_shape), exact int64."""
    syn, B = edge.synapse, s.shape[0]
    w = np.asarray(syn.weight, np.int64)
    if syn.kind == "dense":
        a = s.reshape(B, -1).astype(np.int64) @ w.T
    else:
        a = torch.nn.functional.conv2d(
            torch.from_numpy(s.astype(np.float64)),
            torch.from_numpy(w.astype(np.float64)),
            stride=syn.stride,
            padding=syn.padding,
        ).numpy()
        a = np.rint(a).astype(np.int64)
    e = edge.weight_exp
    a = a << e if e >= 0 else a >> -e
    return a.reshape(B, *syn.out_shape)


def contract_latency(prog: IntProgram, x: np.ndarray, steps: int):
    """Spikes per neuron layer (steps, B, *shape) and the readout (steps, B, classes)."""
    B = x.shape[1]
    hist = {INPUT: np.zeros((steps, B, *prog.input_shape), np.int64)}
    hist[INPUT][: min(T, steps)] = x[:steps]
    depth = {INPUT: 0}
    edges = {}
    prev = INPUT
    for layer in prog.layers:
        src = layer.source or prev
        edges[layer.name] = [(src, layer, False)] + [
            (e.source, e, e.recurrent) for e in layer.extra
        ]
        depth[layer.name] = 1 + max(depth[s] for s, _, r in edges[layer.name] if not r)
        prev = layer.name
    state = {}
    out = np.zeros((steps, B, prog.num_classes), np.int64)
    li_v = torch.zeros((B, prog.num_classes), dtype=torch.int64)
    for layer in prog.layers:
        if layer.neuron is not None:
            hist[layer.name] = np.zeros((steps, B, *layer.out_shape), np.int64)
            z = torch.zeros((B, *layer.out_shape), dtype=torch.int64)
            state[layer.name] = (z, z)
    for t in range(steps):
        for layer in prog.layers:
            a = np.zeros((B, *layer.out_shape), np.int64)
            for src, edge, rec in edges[layer.name]:
                when = t - 1 if rec else t - 1 - (depth[layer.name] - depth[src] - 1)
                if when >= 0:
                    a += _sum(edge, hist[layer.name if rec else src][when])
            if layer.neuron is None and not layer.li_readout:
                out[t] = a + np.asarray(layer.readout_bias).reshape(a.shape[1:])
                continue
            bias = torch.from_numpy(
                np.asarray(layer.bias_mant, np.int64) << layer.bias_exp
            ).reshape(layer.out_shape)
            if layer.li_readout:  # a LIF that never fires, its v read every step
                s, _, li_v = lif_int_step(
                    torch.from_numpy(a), li_v, li_v, du=4095, dv=layer.dv, vth=layer.vth, bias=bias
                )
                assert not s.any()
                out[t] = li_v.numpy()
                continue
            u, v = state[layer.name]
            at = torch.from_numpy(a)
            if layer.neuron == "mps":
                s, v, _ = mps_int_step(
                    at, v, dv=layer.dv, vth=layer.vth, bias=bias, coef=layer.coef
                )
            else:
                s, u, v = lif_int_step(at, u, v, du=layer.du, dv=layer.dv, vth=layer.vth, bias=bias)
            state[layer.name] = (u, v)
            hist[layer.name][t] = s.numpy()
    spikes = [hist[layer.name] for layer in prog.layers if layer.neuron is not None]
    return spikes, out, max(depth.values())


def _compare(prog: IntProgram, seed: int, batch: int = 2) -> None:
    """Lava == the contract's latency schedule (numpy, above) == ReferenceTarget(latency=True),
    every layer and the readout, every step of T + max depth."""
    rng = np.random.default_rng(seed)
    shape = (T, batch, *prog.input_shape)
    if prog.input_kind == "graded":
        x = rng.integers(0, 2**prog.input_bits, size=shape) * (rng.random(shape) < 0.5)
    else:
        x = (rng.random(shape) < 0.4).astype(np.int64)
    steps = T + _max_depth(prog)
    want, out, _ = contract_latency(prog, x, steps)
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x)
    res = LavaTarget(prog).run(x)
    assert res.layer_names == ref.layer_names == [l.name for l in prog.layers if l.neuron]
    for name, got, r, w in zip(res.layer_names, res.spikes, ref.spikes, want, strict=True):
        assert got.shape == w.shape and w.shape[:2] == (steps, batch), name
        assert 0 < w.sum() < w.size, f"layer {name}: no activity to compare"
        np.testing.assert_array_equal(r, w, err_msg=f"layer {name}: reference vs contract")
        np.testing.assert_array_equal(got, w, err_msg=f"layer {name}: Lava vs contract")
    assert np.abs(out).max() > 0
    np.testing.assert_array_equal(ref.output, out, err_msg="readout: reference vs contract")
    np.testing.assert_array_equal(res.output, out, err_msg="readout: Lava vs contract")


def _max_depth(prog: IntProgram) -> int:
    from neurodeploy.targets.lava import program_graph_extra, program_graph_layers

    return max(graph_depths(program_graph_layers(prog), program_graph_extra(prog)).values())


@pytest.mark.parametrize("graded", [False, True])
def test_dense_graph_recurrent_mps_fan_in_skips_and_readout_edges_equal_the_contract(graded):
    prog = dense_graph(0, graded)
    assert graph_depths_of(prog) == prog.depths() == {INPUT: 0, "a": 1, "b": 2, "c": 3, "out": 4}
    _compare(prog, seed=1)


def test_conv_graph_with_conv_skips_and_a_delayed_input_edge_equals_the_contract():
    prog = conv_graph(3)
    assert graph_depths_of(prog) == prog.depths() == {INPUT: 0, "a": 1, "b": 2, "c": 3, "out": 4}
    _compare(prog, seed=4)


def graph_depths_of(prog: IntProgram) -> dict[str, int]:
    from neurodeploy.targets.lava import program_graph_extra, program_graph_layers

    return graph_depths(program_graph_layers(prog), program_graph_extra(prog))


def test_relay_constants_pass_a_spike_on_one_step_later_by_the_fixed_point_spec():
    """Lava's fixed-point LIF (ds_offset 1): u = u (4096 - du - 1) >> 12 + (a << 6); v = v
    (4096 - dv) >> 12 + u + bias; spike iff v > vth << 6; reset v = 0. Worked by hand: a spike
    gives a = 2, u = 128, v = 0 + 128 > 0: a spike, v = 0; no spike: u = 128 * 0 >> 12 + 0 = 0,
    v = 0 >> 12 + 0 = 0: none."""
    assert (RELAY_DU, RELAY_DV, RELAY_VTH, RELAY_WEIGHT) == (4095, 4095, 0, 2)
    u = v = torch.zeros(1, dtype=torch.int64)
    seen = []
    for s_prev in (1, 1, 0, 1, 0, 0):
        s, u, v = lif_int_step(
            torch.tensor([RELAY_WEIGHT * s_prev]),
            u,
            v,
            du=RELAY_DU,
            dv=RELAY_DV,
            vth=RELAY_VTH,
            bias=0,
        )
        seen.append(int(s[0]))
        assert int(v[0]) == 0
    assert seen == [1, 1, 0, 1, 0, 0]


def _syn(name, n_in, n_out, **kw):
    w = np.zeros((n_out, n_in), np.int32)
    return LavaSynapse(name, Synapse("dense", w, (n_in,), (n_out,)), **kw)


def test_graphs_lava_cannot_run_are_refused_by_name():
    from neurodeploy.targets.lava import LavaNeuron

    n = LavaNeuron(smoothed=False, dv=0, vth=1, bias_mant=np.zeros(2, np.int32))
    a, b = _syn("a", 2, 2), _syn("b", 2, 2)
    with pytest.raises(ValueError, match="layer a: recurrent edge from b.*self-loop"):
        graph_depths([(a, n), (b, n)], {"a": [_syn("a<-b", 2, 2, source="b", recurrent=True)]})
    with pytest.raises(ValueError, match="layer a: edge from 'b'.*topological"):
        graph_depths([(a, n), (b, n)], {"a": [_syn("a<-b", 2, 2, source="b")]})
    with pytest.raises(ValueError, match="extra edges into z: no such layer"):
        graph_depths([(a, n)], {"z": [_syn("z<-a", 2, 2, source="a")]})
    with pytest.raises(ValueError, match="layer out: a readout has no spikes"):
        graph_depths(
            [(a, n), (_syn("out", 2, 2), None)],
            {"out": [_syn("o", 2, 2, source="out", recurrent=True)]},
        )
    assert graph_depths([(a, n), (b, n)]) == {INPUT: 0, "a": 1, "b": 2}  # a chain


def test_netx_refuses_a_graph_program_naming_the_first_non_sequential_edge(tmp_path):
    from neurodeploy.targets.netx import export_netx

    with pytest.raises(ValueError, match=r"layer a: .*recurrent.*netx"):
        export_netx(dense_graph(0), tmp_path / "g.net")


def test_relays_only_where_a_skip_needs_them_and_none_in_a_chain():
    """dense_graph: a feeds c (1 step later) and the readout (2): relay stages a.relay1 and
    a.relay2, shared; b feeds the readout 1 step later: b.relay1; the input feeds b 1 step
    later: a second source. A chain (the same layers without their extra edges) has none."""
    from neurodeploy.targets.lava import (
        FLOATING_PT,
        build_graph,
        program_graph_extra,
        program_graph_layers,
        run_graph,
    )

    prog = dense_graph(0)
    data = np.zeros((6, 2 * 8), np.int32)
    graph = build_graph(
        (6,), program_graph_layers(prog), data, samples=2, steps=8, extra=program_graph_extra(prog)
    )
    relays = sorted(p.name for p in graph.relays if "relay" in str(p.name))
    assert relays == ["a.relay1", "a.relay2", "b.relay1"]
    assert len(graph.relays) == 6  # a synapse and a LIF per stage
    with pytest.raises(ValueError, match=r"a\.relay1: relay neurons .*'floating_pt'"):
        run_graph(graph, tag=FLOATING_PT)  # refused before Lava compiles anything
    chain = build_graph((6,), program_graph_layers(prog), data, samples=2, steps=8)
    assert chain.relays == [] and len(chain.neurons) == 3
