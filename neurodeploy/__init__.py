"""neurodeploy: spiking networks from GPU training to Loihi-style integer execution.

The Python API behind the ``neurodeploy`` command::

    from neurodeploy.training.config import TrainConfig
    from neurodeploy.training.loop import train
    result = train(TrainConfig(task="digits", T=4, mps=True, guidance=True, epochs=5))
    print(result.test_acc, result.model.alphas())

Names are imported lazily (PEP 562), so ``import neurodeploy`` is cheap and the command line
starts fast; ``neurodeploy.X`` loads the module that holds X on first use.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "neurodeploy.checkpoint": ("CheckpointError", "load_checkpoint", "save_checkpoint"),
    "neurodeploy.data": ("TaskData", "list_tasks", "load_task"),
    "neurodeploy.nn.layers": ("LIF", "NeuronConfig", "PerStep"),
    "neurodeploy.neuron.lif": ("LIFParams", "LIFState", "LIFTrace", "lif_multistep", "lif_step", "lif_trace"),
    "neurodeploy.training.losses": ("GuidanceConfig", "SNNLoss", "ensemble_ce", "guidance_loss", "tet_loss"),
    "neurodeploy.nn.zoo": ("MODELS", "SpikingNet", "build_model"),
    "neurodeploy.measure.energy": ("CMOS45", "LOIHI", "EnergyModel", "get_energy_model"),
    "neurodeploy.measure.report": ("write_report",),
    "neurodeploy.measure.profiling": ("Profile", "profile"),
    "neurodeploy.neuron.surrogate": ("Surrogate",),
    # not the function `train`: the submodule neurodeploy.training shares its name, and once imported
    # the package attribute is the module (use `from neurodeploy.training import train`)
    "neurodeploy.training": ("TrainConfig", "TrainResult", "evaluate", "load_model"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'neurodeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
