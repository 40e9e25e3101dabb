"""neurodeploy: spiking neural networks from GPU training to Loihi-style integer execution.

The Python API behind the ``neurodeploy`` command, stage by stage::

    from neurodeploy import (TrainConfig, train, export_nir, nir_to_model, quantize_model,
                             LOIHI2, make_target)
    result = train(TrainConfig(task="digits", T=4, mps=True, guidance=True, epochs=5))
    export_nir(result.model, "model.nir")                  # NIR graph
    program = quantize_model(nir_to_model("model.nir"), LOIHI2)  # IntProgram for Loihi 2
    out = make_target("reference", program).run(x_int)     # x_int: (T, B, ...) integer input

Names are imported lazily (PEP 562), so ``import neurodeploy`` is cheap (no torch, no Lava) and
the command line starts fast; ``neurodeploy.X`` loads the module that holds X on first use.
:data:`_EXPORTS` says where each name lives, by stage (the sub-package names follow the flow).

Not exported here: the function ``finetune``, because the module :mod:`neurodeploy.finetune`
has the same name and, once imported, is what the package attribute holds; use
``from neurodeploy.finetune import finetune``.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: module -> the public names it holds, in the order of the flow
_EXPORTS: dict[str, tuple[str, ...]] = {
    # data and training
    "neurodeploy.data": ("TaskData", "list_tasks", "load_task"),
    "neurodeploy.training.config": ("TrainConfig", "TrainResult"),
    "neurodeploy.training.loop": ("evaluate", "train"),
    "neurodeploy.training.checkpoint": (
        "CheckpointError",
        "load_checkpoint",
        "load_model",
        "save_checkpoint",
    ),
    "neurodeploy.training.losses": (
        "GuidanceConfig",
        "SNNLoss",
        "ensemble_ce",
        "guidance_loss",
        "tet_loss",
    ),
    # the neuron (float core) and the models built from it
    "neurodeploy.neuron.lif": (
        "LIFParams",
        "LIFState",
        "LIFTrace",
        "lif_multistep",
        "lif_step",
        "lif_trace",
    ),
    "neurodeploy.neuron.surrogate": ("Surrogate",),
    "neurodeploy.nn.layers": ("LIF", "NeuronConfig", "PerStep"),
    "neurodeploy.nn.net": ("SpikingNet",),
    "neurodeploy.nn.zoo": ("MODELS", "build_model"),
    # hardware, quantisation, the integer program, quantisation-aware fine-tuning
    "neurodeploy.neuron.hardware": ("LOIHI1", "LOIHI2", "HardwareSpec", "get_spec"),
    "neurodeploy.quant.quantize": ("QuantizationError", "quantize_model"),
    "neurodeploy.quant.program": ("IntLayer", "IntProgram"),
    "neurodeploy.quant.qat": ("QATNet",),
    "neurodeploy.finetune": ("FinetuneConfig", "FinetuneResult"),
    # NIR export / import
    "neurodeploy.converters.nir_export": ("export_nir", "model_to_nir"),
    "neurodeploy.converters.nir_import": ("nir_to_model", "read_nir"),
    "neurodeploy.converters.nir_to_program": ("quantize_nir",),
    # targets
    "neurodeploy.targets": ("TARGETS", "Target", "TargetResult", "make_target"),
    "neurodeploy.targets.reference": ("ReferenceTarget",),
    "neurodeploy.targets.lava": ("LavaTarget",),
    # profiling
    "neurodeploy.measure.profiling": ("Profile", "profile"),
    "neurodeploy.measure.energy": ("CMOS45", "LOIHI", "EnergyModel", "get_energy_model"),
    "neurodeploy.measure.report": ("write_report",),
}
_WHERE: dict[str, str] = {name: mod for mod, names in _EXPORTS.items() for name in names}
__all__ = [*sorted(_WHERE), "__version__"]  # noqa: PLE0604 - built from _EXPORTS, checked by tests


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value  # later look-ups skip __getattr__
        return value
    raise AttributeError(f"module 'neurodeploy' has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)
