"""Fused multi-step neuron kernels: the LIF of :mod:`neurodeploy.lif` as one compiled loop over
all timesteps with a hand-written backward (:mod:`.fused`, loops in :mod:`.cpu`).

``lif_multistep_fused(x, alpha, params)`` has the contract of
:func:`neurodeploy.lif.lif_multistep`; ``unavailable_reason(x)`` says when it cannot run
(non-CPU tensors, half precision, numba missing). :class:`neurodeploy.layers.LIF` uses it by
default (``kernel="auto"``) and falls back to the reference path with a one-line warning.
"""
from neurodeploy.kernels.fused import (
    FUSED_DTYPES,
    numba_available,
    lif_multistep_fused,
    unavailable_reason,
)

KERNELS = ("auto", "fused", "reference")

__all__ = ["FUSED_DTYPES", "KERNELS", "lif_multistep_fused", "numba_available",
           "unavailable_reason"]
