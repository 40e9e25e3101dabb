"""Lava's floating_pt models (float LIF, our SmoothedLIF float model) against float torch."""
import pytest

pytest.importorskip("lava.magma.core.run_configs")
pytestmark = pytest.mark.lava

from neurodeploy.data import load_task  # noqa: E402
from neurodeploy.measure.lava_conformance import run_lava_float  # noqa: E402
from neurodeploy.training.config import TrainConfig
from neurodeploy.training.loop import train  # noqa: E402

TOLERANCE = 0.99  # stated: >= 99 % of spikes agree in every layer (float32 vs float64 rounding at threshold)


@pytest.mark.parametrize("mps", [False, True])
def test_floating_pt_network_agrees_with_float_torch(mps):
    res = train(TrainConfig(task="digits", model="mlp", T=4, epochs=1, mps=mps, arch={"hidden": [24]}), progress=False)
    task = load_task("digits", T=4)
    for i in range(3):
        x = task.encode(task.x_test[i:i + 1], 4)[:, 0].numpy()
        lava, ref = run_lava_float(res.model.eval(), x, graded=True)
        assert len(lava) == len(ref) == 1
        for a, b in zip(lava, ref):
            assert (a == b).mean() >= TOLERANCE and 0 < b.mean() < 1
