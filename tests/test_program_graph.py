"""The integer program as a graph (issue 16, item 3): sources and extra edges, the schedules'
depths and delays, format version 3 (and version 2 files still load), the named refusals, and
the prepared layer's summed current."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.quant.prepared import PreparedLayer, prepare
from neurodeploy.quant.program import INPUT, VERSION, IntEdge, IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.reference import ReferenceTarget
from tests.test_reference_graph import (
    BRANCH_X,
    FIXTURES,
    LOOP_X,
    dense,
    program,
    recurrent_loop,
    two_branches,
)


def test_sources_chains_and_depths():
    prog = two_branches()
    assert [prog.sources(k) for k in range(3)] == [[INPUT], [INPUT], ["A", "B", INPUT]]
    assert [prog.source_of(k) for k in range(3)] == [INPUT, INPUT, "A"]
    assert not prog.is_chain and not recurrent_loop().is_chain
    chain = IntProgram.load(FIXTURES / "program_v1_vgg_pooled.npz")
    assert chain.is_chain and chain.sources(2) == ["body.6"]
    assert chain.depths() == {INPUT: 0, "body.2": 1, "body.6": 2, "readout": 3}
    assert chain.edge_delays(2, latency=True) == [1] and chain.edge_delays(2, latency=False) == [0]
    chain.layers[1].source = "body.2"  # explicit, the same edge: still a chain
    assert chain.is_chain
    chain.layers[1].source = INPUT  # no longer
    assert not chain.is_chain


# --- format version 3 ----------------------------------------------------------------------------
def _edges_equal(a: IntEdge, b: IntEdge) -> bool:
    sa, sb = a.synapse, b.synapse
    return (
        (a.source, a.weight_exp, a.recurrent, a.w_scale, a.in_scale, a.clipped_weights)
        == (b.source, b.weight_exp, b.recurrent, b.w_scale, b.in_scale, b.clipped_weights)
        and (sa.kind, sa.in_shape, sa.out_shape, sa.stride, sa.padding, sa.groups, sa.pool)
        == (sb.kind, sb.in_shape, sb.out_shape, sb.stride, sb.padding, sb.groups, sb.pool)
        and np.array_equal(sa.weight, sb.weight)
    )


@pytest.mark.parametrize(("make", "x"), [(recurrent_loop, LOOP_X), (two_branches, BRANCH_X)])
def test_version3_round_trips_sources_and_edges(make, x, tmp_path: Path):
    prog = make()
    prog.layers[-1].extra[0].w_scale, prog.layers[-1].extra[0].clipped_weights = 3.5, 2
    back = IntProgram.load(prog.save(tmp_path / "g.npz"))
    with np.load(tmp_path / "g.npz") as z:
        assert json.loads(bytes(z["header"]).decode())["version"] == VERSION == 3
        assert "l0.extra0.weight" in z.files or "l2.extra0.weight" in z.files
    assert [l.source for l in back.layers] == [l.source for l in prog.layers]
    for k in range(len(prog.layers)):
        assert len(back.edges(k)) == len(prog.edges(k))
        assert all(map(_edges_equal, back.edges(k), prog.edges(k)))
    for latency in (False, True):
        want = ReferenceTarget(prog, device="cpu", latency=latency).run(x)
        got = ReferenceTarget(back, device="cpu", latency=latency).run(x)
        assert all(np.array_equal(a, b) for a, b in zip(want.spikes, got.spikes, strict=True))


def test_a_version2_file_still_loads_as_a_chain(tmp_path: Path):
    """Version 2 wrote no ``source`` and no ``extra`` (the header as that code wrote it)."""
    chain = IntProgram.load(FIXTURES / "program_v1_vgg_pooled.npz")
    chain.save(tmp_path / "v3.npz")
    with np.load(tmp_path / "v3.npz") as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays.pop("header")).decode())
    header["version"] = 2
    for d in header["layers"]:
        assert d.pop("source") is None and d.pop("extra") == []
    np.savez(
        tmp_path / "v2.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays
    )
    old = IntProgram.load(tmp_path / "v2.npz")
    assert old.is_chain and all(l.source is None and l.extra == [] for l in old.layers)
    x = (np.random.default_rng(0).random((5, 2, 1, 4, 4)) < 0.4).astype(np.int64)
    a = ReferenceTarget(chain, device="cpu").run(x)
    b = ReferenceTarget(old, device="cpu").run(x)
    assert np.array_equal(a.output, b.output)
    header["version"] = 4
    np.savez(
        tmp_path / "v4.npz", header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays
    )
    with pytest.raises(ValueError, match=r"v4.npz: not a neurodeploy integer program of version"):
        IntProgram.load(tmp_path / "v4.npz")


# --- the named refusals --------------------------------------------------------------------------
def _refused(prog: IntProgram, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        prog.check_shapes()
    with pytest.raises(ValueError, match=match):
        ReferenceTarget(prog, device="cpu")


def test_graphs_no_schedule_runs_are_refused_by_name():
    prog = two_branches()
    prog.layers[0].extra = [IntEdge("C", dense([[2]]), 0)]  # A <- C: a cycle through C
    _refused(prog, r"layer A: edge from C: C does not run before A; .*recurrent self-loop")
    prog = two_branches()
    prog.layers[2].extra[0].recurrent = True  # B -> C marked recurrent: not a self-loop
    _refused(prog, r"layer C: edge from B: a recurrent edge must be a self-loop \(source C\)")
    prog = two_branches()
    prog.layers[2].source = "C"  # the inline synapse from itself, feed-forward
    _refused(prog, r"layer C: edge from C \(inline\): C does not run before C")
    prog = two_branches()
    prog.layers[2].extra[0] = IntEdge("D", dense([[2], [6]]), 0)
    _refused(prog, r"layer C: edge from D: no such source \(layers: \['A', 'B', 'C'\]")
    prog = two_branches()
    prog.layers[2].extra[1] = IntEdge(INPUT, dense([[2, 0, 0], [0, 2, 0]]), 0)
    _refused(prog, r"layer C: edge from input: in_shape \(3,\) does not match .* out_shape \(2,\)")
    prog = two_branches()
    prog.layers[2].extra[0] = IntEdge("B", dense([[2]]), 0)
    _refused(prog, r"layer C: edge from B: out_shape \(1,\) does not match the layer's \(2,\)")
    prog = two_branches()
    prog.layers[1].name = "A"
    _refused(prog, r"layer A: the name is used twice")
    prog = two_branches()
    prog.layers[0].name = INPUT
    _refused(prog, r"layer input: the name is reserved for the network input")


def test_readouts_in_graphs_are_refused_by_name():
    prog = two_branches()
    prog.layers[1].neuron = None  # B, a readout before the end
    _refused(prog, r"layer B: a readout \(no neurons\) must be the last layer, found at position 1")
    readout = IntLayer("out", dense([[2, 2]]), 0, neuron=None, readout_bias=np.zeros(2, np.int64))
    prog = program([*two_branches().layers, readout], 2)
    prog.check_shapes()  # reads C (inline), fine
    readout.extra = [IntEdge("out", dense([[2, 0], [0, 2]]), 0, recurrent=True)]
    _refused(prog, r"layer out: edge from out: a readout has no spikes to feed back")


def test_every_edges_integers_are_checked_like_the_inline_synapses():
    def refused(edge: IntEdge, match: str) -> None:
        prog = two_branches()
        prog.layers[2].extra[1] = edge
        with pytest.raises(ValueError, match=match):
            prog.validate()

    two_branches().validate()
    refused(IntEdge(INPUT, dense([[3, 0], [0, -2]]), 0), r"layer C: edge from input: mixed-sign")
    refused(IntEdge(INPUT, dense([[512, 0], [0, 2]]), 0), r"layer C: edge from input: weights out")
    refused(IntEdge(INPUT, dense([[2, 0], [0, 2]]), 8), r"layer C: edge from input: weight_exp 8")

    def conv() -> Synapse:  # input (1, 2) -> (2, 2), kernel 1
        return Synapse("conv1d", np.full((2, 1, 1), 2, np.int32), (1, 2), (2, 2), (1,), (0,))

    k = IntLayer("K", conv(), 0, dv=0, vth=1, bias_mant=np.zeros((2, 2), np.int32))
    prog = program([k], 1)
    prog.input_shape = (1, 2)
    prog.validate()
    k.extra = [IntEdge(INPUT, conv(), -1)]
    with pytest.raises(ValueError, match=r"layer K: edge from input: a convolution needs weight_e"):
        prog.validate()


# --- the prepared layer's current ----------------------------------------------------------------
def test_the_current_sums_every_synapse_and_counts_every_wrap():
    """Two conv1d synapses into one (1, 1) layer: inline 254 * 511 << 7 = 16613632 >= 2^23 wraps
    to 16613632 - 2^24 = -163584, the extra edge 2 * 3 << 0 = 6 does not; the current is
    -163584 + 6 = -163578, one wrap in all. The inline edge reads graded input (float64 above 2^24), the extra
    edge spikes (float32)."""
    syn = Synapse("conv1d", np.array([[[254]]], np.int32), (1, 1), (1, 1), (1,), (0,))
    edge = IntEdge(
        "A", Synapse("conv1d", np.array([[[2]]], np.int32), (1, 1), (1, 1), (1,), (0,)), 0
    )
    layer = IntLayer("c", syn, 7, dv=0, vth=1, bias_mant=np.zeros((1, 1), np.int32), extra=[edge])
    d = PreparedLayer.build(layer, max_input=2**20, device=torch.device("cpu"))
    assert d.synapses[0].dtype == torch.float64 and d.synapses[1].dtype == torch.float32
    a, wraps = d.current([torch.full((1, 1, 1), 511.0), torch.full((1, 1, 1), 3.0)])
    assert (a.item(), wraps) == (-163578, 1)
    with pytest.raises(ValueError, match=r"layer c: 1 inputs for its 2 synapses"):
        d.current([torch.zeros((1, 1, 1))])


def test_prepare_gives_input_edges_the_payload_bound():
    """A graded program: synapses from the input get 2^bits - 1 as max |input| (wherever they
    sit), those from layers 1."""
    prog = two_branches()
    prog.input_kind, prog.input_bits = "graded", 8
    prog.layers[2].extra[1] = IntEdge(INPUT, dense([[254, 0], [0, 254]]), 0)
    prog.layers[2].synapse = dense([[254], [254]])  # from A: spikes
    prepared = prepare(prog, torch.device("cpu"))
    assert [s.bound for s in prepared[2].synapses] == [254.0, 6.0, 254.0 * 255]
    assert [s.bound for s in prepared[0].synapses] == [6.0 * 255]
