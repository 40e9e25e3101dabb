"""Energy against a measured Loihi 2 chip (issue 18, item 4; benchmarks/pilotnet_energy.py).

- The PilotNet input neuron's rate under a constant current ``x << 6`` (the plausibility argument
  of the benchmark) equals hand-computed values and Lava's own LIF process (fixed_pt).
- The imported PilotNet SNN (``pilotnet_snn_network.net``) at the benchmark's plausible input
  activity: neuron updates per inference equal the layer sizes from the file times 16 steps,
  the ``loihi`` estimate equals Davies et al.'s per-event formula on the counts, and it lies
  within 2x of Intel's measured 1.094 mJ dynamic per inference (the README's claim; the
  benchmark finds 1.01x with 16 frames, 0.89x to 1.06x over its sweep).
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType

import h5py
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "benchmarks" / "pilotnet_energy.py"
PILOTNET = REPO.parent / "shared" / "fixtures" / "lava-dl" / "pilotnet_snn_network.net"
INTEL_DYNAMIC_MJ = 1.094  # 0.447 W / 408.9 inferences/s (fixtures README)
FRAMES = 2  # frames profiled (a few seconds)

pytestmark = pytest.mark.skipif(not PILOTNET.exists(), reason="lava-dl fixtures not present")


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("pilotnet_energy_bench", BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module by name
    spec.loader.exec_module(mod)
    return mod


# x -> spikes in 16 steps, by hand: v(t) = v - (v * 1024 >> 12) + 64 x, spike when v > 1600.
# x = 6: v -> 256 * 6 = 1536 at most, never fires. x = 8: v = 512, 896, 1184, 1400, 1562,
# 1684 > 1600 at step 6, then again at 12: 2 spikes. x = 20: 1280, 2240: every 2nd step, 8.
# x = 26: 1664 > 1600 at once: every step, 16 (the mid-grey pixel, x = 36, fires every step).
HAND = {6: 0, 8: 2, 20: 8, 26: 16, 36: 16, -4: 0}


def test_input_neuron_rate_by_hand(bench: ModuleType) -> None:
    layer = bench.input_layer(PILOTNET)
    assert (layer.weight, layer.bias, layer.dv, layer.vth) == (40, 36, 1024, 25)
    for x, n in HAND.items():
        assert layer.rate(x) == n / 16, x
    # the tutorial's transform trunc(2 w p - w + b): p = 0.5 -> 36, p = 0 -> -4, p = 1 -> 76
    np.testing.assert_array_equal(layer.x(np.array([0.5, 0.0, 1.0])), [36, -4, 76])


def test_input_neuron_rate_matches_lava_lif(bench: ModuleType) -> None:
    """Lava's LIF (fixed_pt) with the input layer's parameters, a_in = x every step (what the
    tutorial's persistent current gives; du = 4095: u = a_in << 6)."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    xs = np.array(sorted(HAND), dtype=np.int32)
    steps = 16
    src = Source(data=np.repeat(xs[:, None], steps + 1, axis=1))
    lif = LIF(shape=xs.shape, du=4095, dv=1024, vth=25, bias_mant=0, bias_exp=6)
    sink = Sink(shape=xs.shape, buffer=steps + 1)
    src.s_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    try:
        lif.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = np.asarray(sink.data.get())[:, :steps]
    finally:
        lif.stop()
    layer = bench.input_layer(PILOTNET)
    for x, s in zip(xs, spikes.sum(1)):
        assert s == HAND[int(x)] == round(layer.rate(int(x)) * 16), x


def test_pilotnet_loihi_estimate_within_2x_of_intel(bench: ModuleType) -> None:
    program = bench.load_program()
    pt = bench.measure(program, bench.input_layer(PILOTNET), *bench.PLAUSIBLE, FRAMES)
    with h5py.File(PILOTNET, "r") as f:
        neurons = sum(
            math.prod(int(v) for v in f[f"layer/{k}/shape"][()])
            for k in f["layer"]
            if "neuron" in f[f"layer/{k}"]
        )
    assert neurons == 3 * 66 * 200 + 24 * 32 * 99 + 36 * 15 * 49 + 48 * 7 * 24 + 64 * 4 * 22 + (
        64 * 2 * 20 + 100 + 50 + 10 + 1
    )
    assert pt.neuron_updates == neurons * 16
    # Davies et al. 2018: 23.6 pJ per synaptic op, 81 / 52 pJ per active / inactive update,
    # 1.7 pJ per spike (active updates = spikes)
    hand_pj = (
        pt.synops * 23.6 + pt.spikes * 81 + (pt.neuron_updates - pt.spikes) * 52 + pt.spikes * 1.7
    )
    assert pt.energy_mj["loihi"] == pytest.approx(hand_pj * 1e-9, rel=1e-9)
    assert pt.input_rate > 0.6  # plausible activity: most input neurons fire every step
    assert 0.5 < pt.energy_mj["loihi"] / INTEL_DYNAMIC_MJ < 2.0
