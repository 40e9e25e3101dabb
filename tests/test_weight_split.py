"""Weight precision beyond 8 bits: a synapse as K 8-bit parts at exponents 7 apart
(neurodeploy.quant.split), summed exactly by the reference, Lava and QAT."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodeploy.neuron.hardware import LOIHI2, LOIHI2_NETX
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.qat import QATNet, programs_equal
from neurodeploy.quant.quantize import quantize_model
from neurodeploy.quant.split import part_exponents, split_weights
from neurodeploy.targets.reference import ReferenceTarget
from tests.test_qat import active_net, inputs, qkw
from tests.test_qat_graph import spikes_in, two_branch_recurrent

BRAILLE = Path(__file__).parents[2] / "shared/fixtures/nir-paper/braille_noDelay_bias_zero.nir"


def test_hand_computed_split_of_three_weights() -> None:
    """w = (1, 0.37, -0.0123) at w_scale 254, e_0 = 6 (dense floor -8): T = w 254 =
    (254, 93.98, -3.1242). Part 0 = even round: (254, 94, -4); residual (0, -0.02, 0.8758),
    x 2^7 = (0, -2.56, 112.1024) -> part 1 (0, -2, 112) at e = -1; residual (0, -0.56, 0.1024),
    x 2^7 = (0, -71.68, 13.1072) -> part 2 (0, -72, 14) at e = -8."""
    exps = part_exponents(6, 3, LOIHI2.weight_exp_min)
    assert exps == [6, -1, -8]
    parts, clipped = split_weights(np.array([1.0, 0.37, -0.0123]), 254.0, exps, LOIHI2)
    assert clipped == 0
    assert [p.tolist() for p in parts] == [[254, 94, -4], [0, -2, 112], [0, -72, 14]]
    # in units of 2^6: 94 - 2/128 - 72/16384 = 93.98 - 0.00439..., |error| <= 2^-14 units
    recon = sum(p * 2.0 ** (e - 6) for p, e in zip(parts, exps))
    assert np.abs(recon - np.array([254, 93.98, -3.1242])).max() <= 2.0**-14


def test_exponent_floor_bounds_the_part_count() -> None:
    """The range [-8, 7] (dense) and e >= 0 (Lava's Conv ignores weight_exp) bound K."""
    assert part_exponents(7, 5, -8) == [7, 0, -7, -8]  # at most 4 exponents, the last one bit
    assert part_exponents(0, 3, -8) == [0, -7, -8]
    assert part_exponents(3, 3, 0) == [3, 0]  # a convolution at e_0 = 3: two parts
    assert part_exponents(0, 3, 0) == [0]  # ... at e_0 = 0: none beyond the first


@pytest.mark.parametrize("parts", [1, 2, 3])
def test_weight_error_bound_per_part_count(parts: int) -> None:
    """|W - sum_k W_k / w_scale_k| <= 2^(e_{K-1} - e_0) / w_scale on a quantised model, measured
    on every synapse (every part even, within 8 bits); the bound shrinks 2^7 per part."""
    m = active_net("mlp", mps=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a layer at a low exponent may hold fewer parts
        prog = quantize_model(m, **qkw("mlp"), weight_split=parts)
    from neurodeploy.quant.stages import model_stages

    stages = model_stages(m)
    assert prog.meta.get("weight_split", 1) == parts
    for k, (layer, st) in enumerate(zip(prog.layers, stages)):
        edges = prog.edges(k)
        assert len({e.source for e in edges}) == 1
        n = len(edges)
        exps = [e.weight_exp for e in edges]
        assert exps == part_exponents(layer.weight_exp, parts, LOIHI2.weight_exp_min), layer.name
        for e in edges:
            w = e.synapse.weight
            assert (w % 2 == 0).all() and w.max() <= LOIHI2.weight_max
            assert w.min() >= LOIHI2.weight_min
            # every part in the layer's a-units: w_scale_k x 2^e_k = a_scale
            assert e.w_scale * e.in_scale * 2.0**e.weight_exp == pytest.approx(layer.a_scale)
        recon = sum(e.synapse.weight / e.w_scale for e in edges)
        err = float(np.abs(recon - st.synapse.weight).max())
        bound = 2.0 ** (exps[-1] - exps[0]) / layer.w_scale
        print(f"K={parts} {layer.name}: {n} parts at {exps}, max error {err:.3g} <= {bound:.3g}")
        assert err <= bound * (1 + 1e-9), layer.name
        if exps == [exps[0] - 7 * j for j in range(n)]:  # no part at the floor
            assert bound == 2.0 ** (-7 * (n - 1)) / layer.w_scale


def _run(prog: IntProgram, x: torch.Tensor):
    return ReferenceTarget(prog, device="cpu").run(prog.quantize_input(x.numpy())[0])


def test_split_of_one_changes_nothing_bit_for_bit() -> None:
    for model in (active_net("vgg", mps=True), two_branch_recurrent(False)):
        kw = qkw("vgg") if model.name != "two_branch_rec" else {}
        plain = quantize_model(model, **kw)
        for split in (1, {layer.name: 1 for layer in plain.layers}):
            one = quantize_model(model, **kw, weight_split=split)
            assert programs_equal(one, plain) and one.meta == plain.meta
            assert [len(l.extra) for l in one.layers] == [len(l.extra) for l in plain.layers]


def test_per_layer_split_and_refusals() -> None:
    model = two_branch_recurrent(False)
    prog = quantize_model(model, weight_split={"r": 2})
    plain = quantize_model(model)
    r = next(l for l in prog.layers if l.name == "r")
    r0 = next(l for l in plain.layers if l.name == "r")
    assert len(prog.edges([l.name for l in prog.layers].index("r"))) == 2 * (1 + len(r0.extra))
    for a, b in zip(prog.layers, plain.layers):
        if a.name != "r":
            assert len(a.extra) == len(b.extra)
    assert sum(e.recurrent for e in r.extra) == 2  # the self-edge and its part
    with pytest.raises(ValueError, match="unknown layers"):
        quantize_model(model, weight_split={"nope": 2})
    with pytest.raises(ValueError, match=">= 1"):
        quantize_model(model, weight_split=0)
    with pytest.raises(ValueError, match="fixes the weight exponent"):
        quantize_model(active_net("mlp", mps=False), LOIHI2_NETX, weight_split=2)


def test_split_program_saves_and_loads(tmp_path: Path) -> None:
    prog = quantize_model(two_branch_recurrent(True), weight_split=2)
    path = tmp_path / "p.npz"
    prog.save(path)
    back = IntProgram.load(path)
    assert programs_equal(back, prog) and back.meta["weight_split"] == 2


@pytest.mark.parametrize("case", ["chain_mlp", "chain_vgg", "graph"])
def test_qat_equals_reference_with_split_synapses(case: str) -> None:
    """QAT sums a split synapse's parts as the reference does: a chain (QAT's chain path) and a
    graph with a split recurrent self-edge, eval and train mode, with and without gradients."""
    if case == "graph":
        model, kw, x = two_branch_recurrent(False), {}, spikes_in((6,))
    else:
        name = case.split("_")[1]
        model, kw, x = active_net(name, mps=True), qkw(name), inputs(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prog = quantize_model(model, **kw, weight_split=2)
        assert any(l.extra for l in prog.layers), "the split must add parts to compare"
        ref = _run(prog, x)
        assert all(s.any() for s in ref.spikes)
        q = QATNet(model, **kw, weight_split=2)
        for train_mode in (False, True):
            q.train(train_mode)
            for grad in (False, True):
                with torch.set_grad_enabled(grad):
                    run = q.run(x)
                assert programs_equal(run.program, prog)
                for nm, a, b in zip(ref.layer_names, ref.spikes, run.spikes):
                    assert np.array_equal(a, b.detach().numpy().astype(np.uint8)), (nm, grad)
                assert np.array_equal(ref.output, run.output_int.numpy().astype(np.int64))
                assert [c.wraps for c in run.counters] == [c.wraps for c in ref.counters]
                assert [c.saturations for c in run.counters] == [
                    c.saturations for c in ref.counters
                ]


def test_reference_equals_lava_on_a_split_program() -> None:
    pytest.importorskip("lava.magma.core.run_configs")
    from neurodeploy.targets.lava import LavaTarget

    prog = quantize_model(two_branch_recurrent(True), weight_split=2)
    assert all(len(l.extra) >= 1 for l in prog.layers)
    x = prog.quantize_input(spikes_in((6,), T=6, B=2).numpy())[0]
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x)
    lava = LavaTarget(prog).run(x)
    assert lava.layer_names == ref.layer_names
    for name, a, b in zip(ref.layer_names, ref.spikes, lava.spikes, strict=True):
        assert a.any(), name
        np.testing.assert_array_equal(a, b, err_msg=f"layer {name}: reference vs Lava")
    np.testing.assert_array_equal(ref.output, lava.output)


def _braille_agreement(parts: int, T: int = 256) -> tuple[list[str], list[float], IntProgram]:
    from neurodeploy.converters.model_files import load_model_file
    from neurodeploy.data.inputs import random_inputs
    from neurodeploy.measure.calibrate import quantize_checked
    from neurodeploy.measure.profiling import float_layer_spikes

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model_file(str(BRAILLE), dt=1e-4)[0].eval()
    inp = random_inputs(0.1, tuple(model.input_shape), T=T, n=16, seed=0)
    prog = quantize_checked(model, LOIHI2, inp, T=T, weight_split=parts).program
    x = inp.encode(inp.x, T)
    _, fs = float_layer_spikes(model, x, prog)
    ref = _run(prog, x)
    agree = [float((f.numpy().astype(np.uint8) == s).mean()) for f, s in zip(fs, ref.spikes)]
    return ref.layer_names, agree, prog


@pytest.mark.skipif(not BRAILLE.exists(), reason="NIR paper fixture not present")
def test_braille_agreement_with_split_weights() -> None:
    """The NIR paper's Braille SRNN (dt 1e-4, Bernoulli rate 0.1, T 256, 16 samples): float vs
    integer spike agreement per layer, K = 1 and 2 (measured with the CubaLIF currents starting
    at -bias, IntLayer.u_init_bias: lif1 0.9940 -> 0.9990, lif2 0.717 -> 0.950; before it
    0.9935 -> 0.9969 and 0.694 -> 0.839); the synapse count and memory double (resources)."""
    from neurodeploy.measure.resources import resource_report

    names, one, p1 = _braille_agreement(1)
    _, two, p2 = _braille_agreement(2)
    print("braille K=1", dict(zip(names, one)), "K=2", dict(zip(names, two)))
    assert two[0] >= 0.998 and two[1] >= 0.94  # the floors measured (see docstring)
    assert all(b >= a for a, b in zip(one, two))
    r1, r2 = resource_report(p1, LOIHI2), resource_report(p2, LOIHI2)
    print("synapses", r1.synapses, "->", r2.synapses, "memory", r1.memory_bytes, r2.memory_bytes)
    assert r2.synapses == 2 * r1.synapses
    assert r2.memory_bytes - r1.memory_bytes == r1.synapses * LOIHI2.synapse_bits // 8


@pytest.mark.skipif(not BRAILLE.exists(), reason="NIR paper fixture not present")
def test_cli_weight_split_on_quantize_and_verify(tmp_path: Path) -> None:
    from neurodeploy.cli import main

    rnd = ["--random-input", "0.1", "--T", "16", "--dt", "1e-4", "--samples", "4"]
    out = tmp_path / "q.int.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["quantize", str(BRAILLE), *rnd, "--weight-split", "2", "-o", str(out)]) == 0
        prog = IntProgram.load(out)
        assert prog.meta["weight_split"] == 2
        assert [len(l.extra) for l in prog.layers] == [3, 1]  # lif1: fc1 + its recurrent edge
        assert main(["verify", str(BRAILLE), *rnd, "--weight-split", "2", "--no-lava"]) == 0
