"""lava-dl netx HDF5 (``.net``) import: a netx network becomes an :class:`IntProgram` holding
exactly the integers netx's ``lava.lib.dl.netx.hdf5.Network`` gives its Lava processes.

Layers (netx 0.6, ``Network._create``): ``input``, ``conv``, ``flatten``, ``dense`` and
``dense_rec``, each with a CUBA / LOIHI neuron. Everything else (``pool``, ``convT``,
``unpool``, ``average``, ``concat``, which netx itself does not build; ``dense_comp``; sigma-delta
and resonate-and-fire neurons; a layer without a neuron; synaptic delays anywhere but on a
``dense`` layer) is refused by layer index and name, with the reason.

Mapping, per layer type:

- ``dense``: netx runs ``optimize_weight_bits(W)`` (W the stored 8-bit weights), giving
  ``W' = W << s`` and ``weight_exp = -s`` with ``s = floor(log2(scale)) + signed`` and
  ``scale = min(127 / max W, -128 / min W)`` (mixed sign); Lava's Dense then drops the truncated
  low bits (``truncate_weights``), which for mixed-sign W' is exact. The synaptic input is
  ``a = (W' s_in) * 2**weight_exp`` (Lava shifts right: floor).
- ``delay`` on a ``dense`` layer (netx ``create_dense``: Lava's ``DelayDense`` with
  ``max_delay=62``): a scalar (every synapse), one per output neuron (axonal; checked first, as
  netx does, when in == out), one per input, or the full (out, in) matrix, truncated toward zero
  (netx's ``astype(int)``): ``IntLayer.delay``, synapse (i, j) delivering W'[i, j] s_j(t)
  delay[i, j] steps after a plain Dense would. netx clips delays above 62 to 62 with a warning;
  they are refused here (:data:`MAX_SYNAPTIC_DELAY`), since clipping moves spikes in time and
  the network would no longer be the one trained. On ``dense_rec`` netx builds both DelayDense
  synapses without the weight exponent and gives the recurrent one the input's (out, in) delay
  matrix, so it builds no working network: refused, as on the other layer types.
- ``dense_rec``: the same on ``[W | W_rec]`` (netx optimises the two jointly: one exponent), the
  recurrent part an :class:`IntEdge` from the layer to itself reading s(t - 1).
- ``conv``: netx hands the stored kernel to Lava's Conv unchanged (no exponent: Lava's Conv
  model ignores ``weight_exp``), after flipping both spatial axes and reordering to Lava's
  (out, W, H, in); Lava's ``conv`` flips them back for torch, so the map is torch's
  cross-correlation with the stored (out, in, kH, kW) kernel on (C, H, W) input. netx stores
  shapes as (C, H, W) and stride / padding / dilation as (H, W) (it reverses them for Lava's
  (x, y) order). Lava's Conv wraps its output to 24 signed bits; the checks in
  ``quant/program.py`` bound the sums of the imported kernels.
- ``flatten``: netx connects ``out.transpose([2, 1, 0]).flatten()``, i.e. (C, H, W) in C order:
  the next dense synapse reads the previous layer's output flattened the same way.
- ``input``: netx builds a LIF layer whose input port is left open: "the input must be handled
  through the neuron's bias"; lava-dl's PilotNet tutorial instead writes graded values straight
  into the neuron's ``a_in``. Imported as a first layer with a one-to-one synapse (a depthwise
  1 x 1 convolution of weight 1, or a dense identity for a 1-D input) fed graded integers: the
  program's input is that ``a_in`` (``input_kind = "graded"``, :data:`NETX_INPUT_BITS` signed
  bits). The synapse adds Lava's one-step synaptic delay, so this layer (and every layer after
  it) spikes one step later than in netx, spike for spike the same. The stored input
  ``weight`` / ``bias`` (``transform``, default 64 / 0) is the user's pixel transform
  ``x = weight * p + bias``; it is kept in ``meta["netx_input_transform"]``.
- neuron (``get_neuron_params``): Lava ``LIF`` with ``du = iDecay - 1``, ``dv = vDecay``,
  ``vth = vThMant`` (mantissa; Lava shifts it by 6), ``bias_mant = int(bias)`` (netx truncates
  toward zero; 0 when absent; per channel for a conv) and ``bias_exp = 6``. ``messageBits`` /
  ``gradedSpike`` widen the next synapse's message in netx, but Lava's LIF sends unit spikes, so
  they change nothing in Lava: accepted, noted in ``meta["netx_notes"]``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from neurodeploy.converters.nir_file import global_heap_damage
from neurodeploy.neuron.hardware import NETX_BIAS_EXP, NETX_IDECAY_OFFSET
from neurodeploy.quant.program import MAX_SYNAPTIC_DELAY, IntEdge, IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse

#: Loihi mixed-sign synapse: 8 weight bits, the positive side one less (127 / -128 before shift)
MIXED_POS_MAX = 127
MIXED_NEG_MIN = -128
#: one-sign synapses (netx's EXCITATORY / INHIBITORY modes): 255 / -256 before the shift
ONE_SIGN_MAX = 255
WEIGHT_BITS = 8
#: neuron types netx builds as Lava LIF
CUBA_TYPES = ("CUBA", "LOIHI")
#: layer types this importer reads
SUPPORTED_LAYERS = ("input", "conv", "flatten", "dense", "dense_rec")
#: graded payload bits of the input layer's a_in (lava-dl's PilotNet tutorial sends 16-bit
#: graded messages into the input layer's neurons)
NETX_INPUT_BITS = 16
#: netx's input transform when the file stores none (``Network.create_input``)
NETX_DEFAULT_INPUT_WEIGHT = 64
NETX_DEFAULT_INPUT_BIAS = 0
#: why each refused layer type is refused
REFUSED = {
    "pool": "netx itself does not build pool layers (NotImplementedError in lava-dl 0.6)",
    "convT": "netx itself does not build transposed convolutions",
    "unpool": "netx itself does not build unpool layers",
    "average": "netx itself does not build average layers",
    "concat": "netx itself does not build concat layers",
    "dense_comp": "complex-valued dense layers (resonate-and-fire) have no integer LIF reading",
}


def netx_pixels(p: np.ndarray, transform: dict[str, int]) -> np.ndarray:
    """Pixels p in [0, 1] -> the graded input integers of a netx ``input`` layer, as lava-dl's
    PilotNet tutorial makes them (``dataset.py``): ``x = trunc(2 w p - w + b)`` with the file's
    input transform ``w`` = weight, ``b`` = bias (``meta["netx_input_transform"]``)."""
    w, b = int(transform["weight"]), int(transform["bias"])
    return np.trunc(2 * w * np.asarray(p, dtype=np.float64) - w + b).astype(np.int32)


def _text(value: object) -> str:
    v = value[()] if isinstance(value, h5py.Dataset) else value
    if isinstance(v, np.ndarray):
        v = v.ravel()[0]
    return v.decode("ascii") if isinstance(v, bytes) else str(v)


def _pair(g: h5py.Group, key: str, default: int, where: str) -> tuple[int, int]:
    """A (H, W) pair as netx stores it (a scalar means both axes)."""
    if key not in g:
        return (default, default)
    v = np.asarray(g[key][()]).ravel()
    if v.size == 1:
        return (int(v[0]), int(v[0]))
    if v.size != 2:
        raise ValueError(f"{where}: '{key}' has {v.size} entries; expected 1 or 2 (H, W)")
    return (int(v[0]), int(v[1]))


def _ints(values: np.ndarray, where: str, what: str, notes: list[str]) -> np.ndarray:
    """netx reads weights and biases with ``astype(int)`` (truncation toward zero); do the
    same, and say how many values that changed (never silently)."""
    v = np.asarray(values, dtype=np.float64)
    if not np.isfinite(v).all():
        raise ValueError(f"{where}: {what} has NaN or infinite entries")
    t = np.trunc(v)
    changed = int((t != v).sum())
    if changed:
        msg = (
            f"{where}: {changed} {what} value(s) are not integers; truncated toward zero "
            "as netx reads them"
        )
        warnings.warn(msg, stacklevel=3)
        notes.append(msg)
    return t.astype(np.int64)


def netx_weight(weight: np.ndarray, where: str) -> tuple[np.ndarray, int]:
    """Stored 8-bit weights W -> (W', weight_exp) as netx's ``optimize_weight_bits`` and Lava's
    ``truncate_weights`` leave them. Mixed sign: ``W' = W << s``, ``weight_exp = -s`` with
    ``s = floor(log2(min(127 / max W, -128 / min W))) + 1``, so ``W' * 2**weight_exp == W``.
    One sign: ``s = floor(log2(255 / max |W|))`` (no sign bit)."""
    w = np.asarray(weight)
    if not np.array_equal(w, np.round(w)):
        raise ValueError(f"{where}: weights are not integers")
    w = w.astype(np.int64)
    hi, lo = int(w.max()), int(w.min())
    if hi == 0 and lo == 0:
        return w.astype(np.int32), 0
    if hi > 2 * MIXED_POS_MAX or lo < 2 * MIXED_NEG_MIN:
        raise ValueError(
            f"{where}: weights [{lo}, {hi}] beyond netx's range [-256, 254] (netx would clip "
            "them with a printed warning; refused here rather than clipped)"
        )
    signed = lo < 0 < hi
    if signed:
        scale = min(MIXED_POS_MAX / hi, MIXED_NEG_MIN / lo)
    elif hi > 0:
        scale = ONE_SIGN_MAX / hi
    else:
        scale = -2 * MIXED_NEG_MIN / -lo
    s = int(math.floor(math.log2(scale))) + int(signed)
    # netx's precision search, then Lava's truncation drops 8 - num_bits + signed low bits
    n = WEIGHT_BITS
    while n > 0 and np.abs(w / 2**n - np.round(w / 2**n)).sum() != 0:
        n -= 1
    n -= int(signed)
    num_bits = WEIGHT_BITS - s - n
    trunc = WEIGHT_BITS - num_bits + int(signed)
    shifted = np.left_shift(w, s) if s >= 0 else np.right_shift(w, -s)
    if signed:  # Lava: arithmetic shifts (floor), after clipping to 8 bits (a no-op here)
        shifted = (shifted >> trunc) << trunc
    else:  # an inhibitory matrix is negated, truncated and negated back: toward zero
        shifted = np.sign(shifted) * ((np.abs(shifted) >> trunc) << trunc)
    return shifted.astype(np.int32), -s


def _neuron(g: h5py.Group, where: str, notes: list[str]) -> dict[str, Any]:
    """The LIF integers netx builds from a layer's ``neuron`` group."""
    if "neuron" not in g:
        raise ValueError(
            f"{where}: a layer without a neuron (netx's default integrator: iDecay 0, vDecay "
            "4096, vThMant 2**17) has no LIF reading within Loihi's ranges; not imported"
        )
    n = g["neuron"]
    ntype = _text(n["type"])
    if ntype not in CUBA_TYPES:
        raise ValueError(
            f"{where}: neuron type {ntype!r} is not imported (supported: "
            f"{', '.join(CUBA_TYPES)}; sigma-delta and resonate-and-fire neurons have no "
            "integer LIF reading)"
        )
    for key in ("iDecay", "vDecay", "vThMant"):
        if key not in n:
            raise ValueError(f"{where}: neuron field '{key}' missing")
    bits = int(np.asarray(n["messageBits"][()]).ravel()[0]) if "messageBits" in n else 0
    graded = bool(np.asarray(n["gradedSpike"][()]).ravel()[0]) if "gradedSpike" in n else False
    if bits or graded:
        notes.append(
            f"{where}: messageBits {bits} / gradedSpike {graded}: Lava's LIF sends unit "
            "spikes, so netx runs this layer with binary spikes; imported the same way"
        )
    return dict(
        neuron="lif",
        du=int(n["iDecay"][()]) - NETX_IDECAY_OFFSET,
        dv=int(n["vDecay"][()]),
        vth=int(n["vThMant"][()]),
        bias_exp=NETX_BIAS_EXP,
    )


def _bias(g: h5py.Group, out_shape: tuple[int, ...], where: str, notes: list[str]) -> np.ndarray:
    """Per-neuron bias mantissas: absent 0, per channel (C,) broadcast over a conv's (C, H, W),
    or one per neuron."""
    if "bias" not in g:
        return np.zeros(out_shape, np.int32)
    b = _ints(np.asarray(g["bias"][()]).ravel(), where, "bias", notes)
    n = math.prod(out_shape)
    if b.size == n:
        return b.reshape(out_shape).astype(np.int32)
    if b.size == out_shape[0]:
        return np.broadcast_to(b.reshape((-1,) + (1,) * (len(out_shape) - 1)), out_shape).astype(
            np.int32
        )
    if b.size == 1:
        return np.full(out_shape, int(b[0]), np.int32)
    raise ValueError(f"{where}: bias of {b.size} values for {n} neurons of shape {out_shape}")


def _delay(g: h5py.Group, w_shape: tuple[int, int], where: str, notes: list[str]) -> np.ndarray:
    """A dense layer's ``delay`` as the full (out, in) integer matrix netx's ``create_dense``
    builds from it: a scalar broadcast; a vector per output (size out, checked first) or per
    input (size in); an (out, in) matrix as it is; truncated toward zero. Refused, naming the
    layer: another shape, delays below 0 (Lava's DelayDense refuses them) or above
    :data:`MAX_SYNAPTIC_DELAY` (netx would clip them)."""
    n_out, n_in = w_shape
    raw = np.asarray(g["delay"][()])
    d = _ints(raw, where, "delay", notes)
    if d.ndim == 0:
        d = np.full(w_shape, int(d), np.int64)
    elif d.ndim == 1 and d.size == n_out:  # axonal: one per output neuron
        d = np.repeat(d.reshape(-1, 1), n_in, axis=1)
    elif d.ndim == 1 and d.size == n_in:  # one per input
        d = np.repeat(d.reshape(1, -1), n_out, axis=0)
    elif d.shape != w_shape:
        raise ValueError(
            f"{where}: delay of shape {raw.shape} fits neither a scalar, {n_out} outputs, "
            f"{n_in} inputs nor the weight's {w_shape}"
        )
    if d.min() < 0:
        raise ValueError(f"{where}: delay {d.min()} < 0 (Lava's DelayDense takes 0 and up)")
    if d.max() > MAX_SYNAPTIC_DELAY:
        raise ValueError(
            f"{where}: delay {d.max()} > {MAX_SYNAPTIC_DELAY}, the largest netx builds (netx "
            "would clip it to that with a warning, moving spikes in time; refused here)"
        )
    return d.astype(np.int32)


def _identity(shape: tuple[int, ...], where: str) -> Synapse:
    """The one-to-one synapse that carries graded input into the netx input layer."""
    if len(shape) == 3:
        c = shape[0]
        w = np.ones((c, 1, 1, 1), np.int32)
        return Synapse("conv2d", w, shape, shape, (1, 1), (0, 0), groups=c, where=where)
    if len(shape) == 1:
        return Synapse("dense", np.eye(shape[0], dtype=np.int32), shape, shape, where=where)
    raise ValueError(f"{where}: input shape {shape}; expected (C, H, W) or (N,)")


def netx_to_program(path: str | os.PathLike[str], *, input_message_bits: int = 0) -> IntProgram:
    """Read a netx ``.net`` file (module docstring) into an integer program; refuse, by layer
    index and name, what it cannot hold. ``input_message_bits`` is netx's ``Network`` argument of
    that name: > 0 feeds a network without an ``input`` layer graded integers of that many
    (signed) bits, as netx's first synapse then reads them."""
    path = Path(path)
    layers: list[IntLayer] = []
    notes: list[str] = []
    meta: dict[str, Any] = {"source": str(path), "format": "netx"}
    damage = global_heap_damage(path) if path.is_file() else None
    if damage is not None:  # libhdf5 would loop forever reading its strings (nir_file.py)
        raise ValueError(f"{path}: damaged HDF5 file: {damage}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from e
    with f:
        if "layer" not in f:
            raise ValueError(f"{path}: no 'layer' group; not a netx network")
        group = f["layer"]
        keys = sorted(group.keys(), key=lambda k: int(k) if str(k).isdigit() else -1)
        if "simulation" in f and "tSample" in f["simulation"]:
            meta["T"] = int(np.asarray(f["simulation/tSample"][()]).ravel()[0])
        shape: tuple[int, ...] | None = None  # the previous layer's output (C, H, W) or (N,)
        in_shape: tuple[int, ...] | None = None
        graded_input = input_message_bits > 0
        for key in keys:
            g = group[key]
            where = f"{path.name}: layer {key}"
            if "type" not in g:
                raise ValueError(f"{where}: no 'type'")
            kind = _text(g["type"])
            if kind in REFUSED:
                raise ValueError(f"{where}: layer type {kind!r} is not imported: {REFUSED[kind]}")
            if kind not in SUPPORTED_LAYERS:
                raise ValueError(
                    f"{where}: layer type {kind!r} is unknown (supported: "
                    f"{', '.join(SUPPORTED_LAYERS)})"
                )
            if "delay" in g and kind != "dense":
                raise ValueError(
                    f"{where}: synaptic delays ('delay', Lava's DelayDense) on a {kind!r} layer "
                    "are not imported: "
                    + (
                        "netx builds its two DelayDense synapses without the weight exponent "
                        "and gives the recurrent one the input's delay matrix"
                        if kind == "dense_rec"
                        else "netx builds delays on dense layers only"
                    )
                )
            if kind == "flatten":
                if shape is None:
                    raise ValueError(f"{where}: flatten before any layer")
                continue  # the next dense reads (C, H, W) flattened in C order, as netx does
            out_shape = tuple(int(v) for v in np.asarray(g["shape"][()]).ravel())
            name = f"layer{key}"
            if kind == "input":
                if layers:
                    raise ValueError(f"{where}: an input layer after layer {layers[-1].name}")
                if math.prod(out_shape) == 0:
                    raise ValueError(f"{where}: empty input shape {out_shape}")
                if len(out_shape) == 3 and out_shape[0] == 1 and out_shape[1] == 1:
                    out_shape = (out_shape[2],)
                if "neuron" not in g:  # netx: a shape-only input layer sets the input shape
                    shape = in_shape = out_shape
                    continue
                syn = _identity(out_shape, where)
                neuron = _neuron(g, where, notes)
                weight = g["weight"][()] if "weight" in g else NETX_DEFAULT_INPUT_WEIGHT
                bias = g["bias"][()] if "bias" in g else NETX_DEFAULT_INPUT_BIAS
                meta["netx_input_transform"] = {
                    "weight": int(np.asarray(weight).ravel()[0]),
                    "bias": int(np.asarray(bias).ravel()[0]),
                }
                meta["netx_input_layer"] = name
                layers.append(
                    IntLayer(
                        name=name,
                        synapse=syn,
                        weight_exp=0,
                        bias_mant=np.zeros(out_shape, np.int32),  # netx: Input's neuron, no bias
                        **neuron,
                    )
                )
                in_shape = shape = out_shape
                graded_input = True
                continue
            neuron = _neuron(g, where, notes)
            extra: list[IntEdge] = []
            delay = np.zeros(0, np.int32)
            if kind == "conv":
                if shape is None:
                    raise ValueError(
                        f"{where}: a conv layer needs the input shape (an input layer before "
                        "it), as netx does"
                    )
                if len(shape) != 3:
                    raise ValueError(f"{where}: conv reads {shape}; expected (C, H, W)")
                w = _ints(np.asarray(g["weight"][()]), where, "weight", notes)
                if w.ndim == 5:
                    if w.shape[4] != 1:
                        raise ValueError(f"{where}: 3-D kernel {w.shape} (time axis) not imported")
                    w = w[..., 0]
                if w.ndim != 4:
                    raise ValueError(f"{where}: conv weight {w.shape}; expected (out, in, kH, kW)")
                if _pair(g, "dilation", 1, where) != (1, 1):
                    raise ValueError(f"{where}: dilation {_pair(g, 'dilation', 1, where)} != 1")
                groups = int(np.asarray(g["groups"][()]).ravel()[0]) if "groups" in g else 1
                syn = Synapse(
                    "conv2d",
                    w.astype(np.int32),
                    shape,
                    out_shape,
                    _pair(g, "stride", 1, where),
                    _pair(g, "padding", 0, where),
                    groups=groups,
                    where=where,
                )
                w_exp = 0
            else:  # dense, dense_rec
                n_out = math.prod(out_shape)
                w = _ints(np.asarray(g["weight"][()]), where, "weight", notes).reshape(n_out, -1)
                if shape is None:
                    shape = in_shape = (w.shape[1],)
                if w.shape[1] != math.prod(shape):
                    raise ValueError(
                        f"{where}: dense weight reads {w.shape[1]} inputs, the previous layer "
                        f"gives {math.prod(shape)} {shape}"
                    )
                if kind == "dense_rec":
                    if "weight_rec" not in g:
                        raise ValueError(f"{where}: dense_rec without 'weight_rec'")
                    w_rec = _ints(np.asarray(g["weight_rec"][()]), where, "weight_rec", notes)
                    w_rec = w_rec.reshape(n_out, -1)
                    if w_rec.shape[1] != n_out:
                        raise ValueError(f"{where}: weight_rec {w_rec.shape} is not {n_out}^2")
                    both, w_exp = netx_weight(np.hstack([w, w_rec]), where)
                    w_eff, w_rec_eff = both[:, : w.shape[1]], both[:, w.shape[1] :]
                    extra.append(
                        IntEdge(
                            source=name,
                            synapse=Synapse(
                                "dense", w_rec_eff, (n_out,), (n_out,), where=where + " (rec)"
                            ),
                            weight_exp=w_exp,
                            recurrent=True,
                        )
                    )
                else:
                    w_eff, w_exp = netx_weight(w, where)
                    if "delay" in g:
                        delay = _delay(g, (n_out, w.shape[1]), where, notes)
                out_shape = (n_out,)
                syn = Synapse("dense", w_eff, shape, out_shape, where=where)
            layers.append(
                IntLayer(
                    name=name,
                    synapse=syn,
                    weight_exp=w_exp,
                    bias_mant=_bias(g, out_shape, where, notes),
                    extra=extra,
                    delay=delay,
                    **neuron,
                )
            )
            shape = out_shape
    if not layers or in_shape is None:
        raise ValueError(f"{path}: no layers")
    if notes:
        meta["netx_notes"] = notes
    program = IntProgram(
        layers=layers,
        hardware="loihi2",
        input_kind="graded" if graded_input else "binary",
        input_scale=1.0,
        input_bits=((input_message_bits or NETX_INPUT_BITS) if graded_input else 1),
        input_shape=in_shape,
        input_signed=graded_input,
        num_classes=int(math.prod(layers[-1].synapse.out_shape)),
        meta=meta,
    )
    program.validate()
    return program
