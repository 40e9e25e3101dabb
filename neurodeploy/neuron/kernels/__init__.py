"""Fused multi-step neuron kernels: the LIF of :mod:`neurodeploy.neuron.lif` as one compiled loop over
all timesteps with a hand-written backward (:mod:`.fused`; CPU loops in :mod:`.cpu` (numba),
GPU kernels in :mod:`.triton_lif` (Triton, verified in its interpreter only)).

``lif_multistep_fused(x, alpha, params)`` has the contract of
:func:`neurodeploy.neuron.lif.lif_multistep`; ``select_backend(device_type, dtype)`` picks numba (CPU)
or Triton (CUDA), and ``unavailable_reason(x)`` says when neither can run (other devices, half
precision, numba or triton missing). :class:`neurodeploy.nn.layers.LIF` uses it by
default (``kernel="auto"``) and falls back to the reference path with a one-line warning.

The integer neurons have their own compiled loops in :mod:`.int_scan` (Lava's LIF and the
smoothed-reset neuron over all T steps of a layer), which the reference simulator and QAT run
through :mod:`neurodeploy.quant.scan`.
"""

from neurodeploy.neuron.kernels.fused import (
    FUSED_DTYPES,
    lif_multistep_fused,
    numba_available,
    select_backend,
    unavailable_reason,
)

KERNELS = ("auto", "fused", "reference")

__all__ = [
    "FUSED_DTYPES",
    "KERNELS",
    "lif_multistep_fused",
    "numba_available",
    "select_backend",
    "unavailable_reason",
]
