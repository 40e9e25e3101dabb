"""Our smoothed-reset Lava process (SmoothedLIF) against the integer core and Lava's stock LIF."""

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("lava.magma.core.run_configs")
pytestmark = pytest.mark.lava

from lava.magma.core.run_conditions import RunSteps  # noqa: E402
from lava.magma.core.run_configs import Loihi2SimCfg  # noqa: E402
from lava.proc.io.sink import RingBuffer as Sink  # noqa: E402
from lava.proc.io.source import RingBuffer as Source  # noqa: E402
from lava.proc.lif.process import LIF  # noqa: E402
from lava.proc.monitor.process import Monitor  # noqa: E402

from neurodeploy.neuron.fixedpoint import mps_int_step  # noqa: E402
from neurodeploy.targets.lava import LavaTarget  # noqa: E402
from neurodeploy.targets.mps_lif.process import SmoothedLIF  # noqa: E402

from .test_lava_reference import STEPS, _compare, conv_program  # noqa: E402

N = 24


def _run_isolated(neuron, a: np.ndarray, state_var: str, tag: str = "fixed_pt"):
    """Feed a_in values straight from a source (no synapse, no latency); spikes and a state per step."""
    src = Source(data=a.T.astype(np.int32))
    src.s_out.connect(neuron.a_in)
    sink = Sink(shape=(N,), buffer=a.shape[0])
    neuron.s_out.connect(sink.a_in)
    mon = Monitor()
    mon.probe(getattr(neuron, state_var), a.shape[0])
    try:
        neuron.run(condition=RunSteps(num_steps=a.shape[0]), run_cfg=Loihi2SimCfg(select_tag=tag))
        spikes = sink.data.get().T.astype(np.int64)
        state = mon.get_data()[neuron.name][state_var]
    finally:
        neuron.stop()
    return spikes, state


@pytest.mark.parametrize("seed", [0, 1])
def test_smoothed_lif_process_matches_the_integer_core(seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-60, 140, size=(STEPS + 10, N))
    coef, dv, vth = (
        int(rng.integers(500, 4000)),
        int(rng.integers(0, 4096)),
        int(rng.integers(20, 120)),
    )
    bias_mant = rng.integers(-200, 200, size=N)
    proc = SmoothedLIF(shape=(N,), dv=dv, vth=vth, coef=coef, bias_mant=bias_mant, bias_exp=1)
    spikes, m_lava = _run_isolated(proc, a, "m")
    m = torch.zeros(N, dtype=torch.int64)
    bias = torch.as_tensor(bias_mant, dtype=torch.int64) << 1
    for t in range(a.shape[0]):
        s, m, _ = mps_int_step(torch.as_tensor(a[t]), m, dv=dv, vth=vth, bias=bias, coef=coef)
        assert np.array_equal(spikes[t], s.numpy().astype(np.int64)), t
        assert np.array_equal(m_lava[t].astype(np.int64), m.numpy()), t
    assert 0 < spikes.mean() < 1


def test_zero_coefficient_equals_lavas_stock_lif():
    rng = np.random.default_rng(3)
    a = rng.integers(-40, 120, size=(STEPS + 5, N))
    bias_mant = rng.integers(-100, 100, size=N)
    s1, v1 = _run_isolated(
        SmoothedLIF(shape=(N,), dv=900, vth=70, coef=0, bias_mant=bias_mant, bias_exp=2), a, "v"
    )
    s2, v2 = _run_isolated(
        LIF(shape=(N,), du=4095, dv=900, vth=70, bias_mant=bias_mant, bias_exp=2), a, "v"
    )
    assert np.array_equal(s1, s2) and np.array_equal(v1, v2) and 0 < s1.mean() < 1


def test_floating_point_model_follows_the_float_dynamics():
    rng = np.random.default_rng(4)
    a = rng.integers(-40, 120, size=(30, N))
    coef, dv, vth = 2048, 1024, 90
    s, m_lava = _run_isolated(
        SmoothedLIF(shape=(N,), dv=dv, vth=vth, coef=coef), a.astype(float), "m", "floating_pt"
    )
    m = np.zeros(N)
    for t in range(30):
        h = (1 - dv / 4096) * m + a[t]
        spk = h > vth
        m = 0.5 * m + 0.5 * np.where(spk, 0, h)
        assert np.array_equal(s[t].astype(bool), spk) and np.allclose(m_lava[t], m)


def test_conv_network_with_smoothed_neurons_bit_exact():
    prog = conv_program(5, graded=True)
    for layer, coef in zip(prog.layers, (1500, 3000, 700)):
        layer.neuron, layer.coef = "mps", coef
    _compare(prog, 5)


def _mutate_first_layer_and_build(field: str, value: Callable[[Any], Any]) -> None:
    """Set ``field`` of layer c1 of a fresh conv program to ``value(old)``, then build its
    LavaTarget: either step may refuse the value."""
    bad = conv_program(6, graded=False)
    layer = bad.layers[0]
    if field == "weight":  # the weights live on the layer's synapse, which checks its geometry
        layer.synapse = dataclasses.replace(
            layer.synapse, weight=value(layer.synapse.weight), where="layer c1"
        )
    else:
        setattr(layer, field, value(getattr(layer, field)))
    LavaTarget(bad)


def test_bad_programs_and_inputs_are_refused_before_lava_starts():
    import multiprocessing as mp

    prog = conv_program(6, graded=False)
    before = len(mp.active_children())
    with pytest.raises(ValueError, match="input"):
        LavaTarget(prog).run(np.zeros((5, 1, 3, 3, 3), dtype=np.int64))
    for field, value, match in (
        ("weight", lambda w: w[:, :1], "does not fit"),
        ("vth", lambda v: 200_000, "vth"),
        ("weight", lambda w: w + 1, "even"),
        ("coef", lambda c: 5000, "coef"),
    ):
        with pytest.raises(ValueError, match=rf"layer c1: .*{match}|layer c1: {match}"):
            _mutate_first_layer_and_build(field, value)
    assert len(mp.active_children()) <= before


def test_a_failing_run_is_stopped_without_hanging(monkeypatch):
    """An exception raised inside the run still stops the runtime (and never hangs). Lava's
    stop() then waits on a dead child: the wait is cut from 20 s to 3 s here, the rest (the
    workers killed, nothing left) is the same."""
    import multiprocessing as mp

    from lava.magma.core.process.process import AbstractProcess

    import neurodeploy.targets.lava as lava_target

    prog = conv_program(7, graded=False)
    before = len(mp.active_children())

    def boom(self, *a, **k):
        raise KeyboardInterrupt("simulated Ctrl-C during the run")

    monkeypatch.setattr(AbstractProcess, "run", boom)
    monkeypatch.setattr(lava_target, "STOP_TIMEOUT_S", 3.0)
    with pytest.raises(KeyboardInterrupt):
        LavaTarget(prog).run(np.zeros((4, 1, *prog.input_shape), dtype=np.int64))
    assert len(mp.active_children()) <= before
