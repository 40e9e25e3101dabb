"""NIR -> integer program: a NIR graph (or ``.nir`` file) through our importer
(:func:`neurodeploy.converters.nir_import.nir_to_model`, metadata honoured) and the quantiser
(:func:`neurodeploy.quant.quantize.quantize_model`).

Lives in ``converters/`` (above the quantiser) so that the quantiser never imports a converter.
"""

from __future__ import annotations

import os
from typing import Any

import nir

from neurodeploy.converters.nir_import import nir_to_model
from neurodeploy.neuron.hardware import LOIHI2, HardwareSpec
from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.quantize import quantize_model


def quantize_nir(
    graph: nir.NIRGraph | str | os.PathLike[str], hw: HardwareSpec = LOIHI2, **kw: Any
) -> IntProgram:
    """NIR graph (or .nir file) -> integer program for ``hw``; ``kw`` as
    :func:`~neurodeploy.quant.quantize.quantize_model`'s (input_kind, input_range, input_signed,
    percentile)."""
    return quantize_model(nir_to_model(graph), hw, **kw)


__all__ = ["quantize_nir"]
