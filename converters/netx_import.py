"""lava-dl netx HDF5 (``.net``) import: a netx network becomes an :class:`IntProgram` holding
exactly the integers netx's ``lava.lib.dl.netx.hdf5.Network`` gives its Lava processes.

First slice: sequential ``dense`` layers with CUBA/LOIHI neurons and binary spikes (what
``mnist_network.net`` holds). Every other layer type (``input``, ``conv``, ``flatten``,
``pool``, ``dense_rec``, ``dense_comp``, ...), sigma-delta / resonate-and-fire neurons, graded
spikes and delays are refused by name.

Mapping (netx 0.6, ``Network.create_dense`` / ``get_neuron_params``):

- weights: netx runs ``optimize_weight_bits(W)`` (W the stored 8-bit weights), giving
  ``W' = W << s`` and ``weight_exp = -s`` with ``s = floor(log2(scale)) + signed`` and
  ``scale = min(127 / max W, -128 / min W)`` (mixed sign); Lava's Dense then drops the
  truncated low bits (``truncate_weights``), which for mixed-sign W' is exact. The synaptic
  input is ``a = (W' s_in) * 2**weight_exp``.
- neuron: Lava ``LIF`` with ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant`` (mantissa;
  Lava shifts it by 6), ``bias_mant = bias`` (0 when absent) and ``bias_exp = 6``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from neurodeploy.neuron.hardware import NETX_BIAS_EXP, NETX_IDECAY_OFFSET
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse

#: Loihi mixed-sign synapse: 8 weight bits, the positive side one less (127 / -128 before shift)
MIXED_POS_MAX = 127
MIXED_NEG_MIN = -128
WEIGHT_BITS = 8
#: neuron types netx builds as Lava LIF
CUBA_TYPES = ("CUBA", "LOIHI")
#: layer types this slice imports
SUPPORTED_LAYERS = ("dense",)


def _text(value: object) -> str:
    v = value[()] if isinstance(value, h5py.Dataset) else value
    if isinstance(v, np.ndarray):
        v = v.ravel()[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def netx_weight(weight: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Stored 8-bit mixed-sign weights W -> (W', weight_exp) as netx's ``optimize_weight_bits``
    and Lava's ``truncate_weights`` leave them: ``W' = W << s``, ``weight_exp = -s`` with
    ``s = floor(log2(min(127 / max W, -128 / min W))) + 1``, so ``W' * 2**weight_exp == W``."""
    w = np.asarray(weight)
    if not np.array_equal(w, np.round(w)):
        raise ValueError(f"{where}: weights are not integers")
    w = w.astype(np.int64)
    hi, lo = int(w.max()), int(w.min())
    if not (lo < 0 < hi):
        raise ValueError(
            f"{where}: weights of one sign (min {lo}, max {hi}); netx's excitatory / inhibitory "
            "synapse modes are not imported yet"
        )
    if hi > 2 * MIXED_POS_MAX or lo < 2 * MIXED_NEG_MIN:
        raise ValueError(f"{where}: weights [{lo}, {hi}] beyond netx's clip to [-256, 254]")
    scale = min(MIXED_POS_MAX / hi, MIXED_NEG_MIN / lo)
    s = int(math.floor(math.log2(scale))) + 1
    # find n as netx does, then Lava's truncation drops 8 - num_bits + 1 low bits
    n = WEIGHT_BITS
    while n > 0 and np.abs(w / 2**n - np.round(w / 2**n)).sum() != 0:
        n -= 1
    n -= 1
    num_bits = WEIGHT_BITS - s - n
    trunc = WEIGHT_BITS - num_bits + 1
    shifted = np.left_shift(w, s) if s >= 0 else np.right_shift(w, -s)
    w_eff = (shifted >> trunc) << trunc
    return w_eff.astype(np.int32), -s


def netx_to_program(path: str | os.PathLike[str]) -> IntProgram:
    """Read a netx ``.net`` file (module docstring) into an integer program; refuse, by layer
    index and name, what this slice cannot hold."""
    path = Path(path)
    layers: list[IntLayer] = []
    with h5py.File(path, "r") as f:
        if "layer" not in f:
            raise ValueError(f"{path}: no 'layer' group; not a netx network")
        group = f["layer"]
        in_shape: tuple[int, ...] | None = None
        for key in sorted(group.keys(), key=int):
            g = group[key]
            where = f"{path.name}: layer {key}"
            kind = _text(g["type"])
            if kind not in SUPPORTED_LAYERS:
                raise ValueError(
                    f"{where}: layer type {kind!r} is not imported yet (supported: "
                    f"{', '.join(SUPPORTED_LAYERS)})"
                )
            for unsupported in ("delay", "weight_rec", "weight/imag"):
                if unsupported in g:
                    raise ValueError(f"{where}: '{unsupported}' is not imported yet")
            out_n = int(np.prod(g["shape"][()]))
            weight = np.asarray(g["weight"][()])
            weight = weight.reshape(out_n, -1)
            n_in = weight.shape[1]
            if in_shape is None:
                in_shape = (n_in,)
            w_eff, w_exp = netx_weight(weight, where)
            if "neuron" not in g:
                raise ValueError(f"{where}: dense layer without neuron (netx integrator) not yet")
            n = g["neuron"]
            ntype = _text(n["type"])
            if ntype not in CUBA_TYPES:
                raise ValueError(f"{where}: neuron type {ntype!r} is not imported yet")
            if "gradedSpike" in n and bool(n["gradedSpike"][()]):
                raise ValueError(f"{where}: graded spikes are not imported yet")
            bias = np.asarray(g["bias"][()]) if "bias" in g else np.zeros(out_n)
            name = f"layer{key}"
            layers.append(
                IntLayer(
                    name=name,
                    synapse=Synapse("dense", w_eff, (n_in,), (out_n,), where=where),
                    weight_exp=w_exp,
                    neuron="lif",
                    du=int(n["iDecay"][()]) - NETX_IDECAY_OFFSET,
                    dv=int(n["vDecay"][()]),
                    vth=int(n["vThMant"][()]),
                    bias_mant=np.round(bias).astype(np.int32).reshape(out_n),
                    bias_exp=NETX_BIAS_EXP,
                )
            )
    if not layers or in_shape is None:
        raise ValueError(f"{path}: no layers")
    program = IntProgram(
        layers=layers,
        hardware="loihi2",
        input_kind="binary",
        input_scale=1.0,
        input_bits=1,
        input_shape=in_shape,
        input_signed=False,
        num_classes=int(math.prod(layers[-1].synapse.out_shape)),
        meta={"source": str(path), "format": "netx"},
    )
    program.validate()
    return program
