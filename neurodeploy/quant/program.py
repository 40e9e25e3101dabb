"""The integer program: what the quantiser produces and every target runs.

One :class:`IntLayer` per hardware stage (see :mod:`neurodeploy.quant.stages`): an integer synapse
(:class:`~neurodeploy.quant.synapse.Synapse` with even 8-bit weights; a pooled convolution keeps its
small kernel and pool factor) with a weight exponent, and, except for the readout, a neuron layer
with Lava's integer parameters (du, dv, vth, bias mantissa/exponent) and the 12-bit smoothing
coefficient. The scales that relate float and integer values are stored with it, so that a
float membrane v corresponds to the integer v_int = v * v_scale (no hidden constants).

Saved as a single ``.npz`` file (numpy, no pickle): arrays per layer plus a JSON header.
Format version 2 stores a pooled convolution as its synapse is held (small kernel, the conv's
own stride and padding, ``pool``); version 1 stored the pool-folded kernel (k-fold repeated
blocks, stride k*s, padding k*p) and is converted when loaded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurodeploy.neuron.fixedpoint import membrane_scale
from neurodeploy.quant.synapse import HoldsSynapse, Synapse

if TYPE_CHECKING:
    from neurodeploy.neuron.hardware import HardwareSpec

FORMAT = "neurodeploy.intprogram"
READOUT_SYNAPTIC = "synaptic"  # readout = the synaptic input a plus readout_bias, per step
READOUT_LI = "li"  # readout = the membrane v of a non-spiking LI compartment, per step
VERSION = 2
READABLE_VERSIONS = (1, 2)
GEOMETRY = (
    "kind",
    "in_shape",
    "out_shape",
    "stride",
    "padding",
    "groups",
    "pool",
)  # Synapse fields in the header


@dataclass
class IntLayer(HoldsSynapse):
    name: str
    synapse: Synapse  # int32 weights, even, within the spec's range
    weight_exp: int
    neuron: str | None = "lif"  # "lif" (stock, coef 0), "mps" (smoothed reset), None (readout)
    du: int = 4095  # current decay: 4095 no current (LIF); CubaLIF: tau_syn_to_du(tau_syn)
    dv: int = 0
    vth: int = 0
    bias_mant: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # out_shape
    bias_exp: int = 0
    coef: int = 0  # round(4096 * alpha)
    readout_bias: np.ndarray = field(
        default_factory=lambda: np.zeros(0, np.int64)
    )  # readout, a-units
    # readout only: READOUT_SYNAPTIC (out = a + readout_bias) or READOUT_LI (a non-spiking leaky
    # compartment, du = 4095, dv, vth, bias_mant << bias_exp; out = its v, membrane units)
    readout_kind: str = "synaptic"
    w_scale: float = 1.0  # w_int ~= w * w_scale
    in_scale: float = 1.0  # integer input units per float input unit
    a_scale: float = (
        1.0  # a_int (after the exponent) per float synaptic input: w_scale*in_scale*2^e
    )
    clipped_weights: int = 0

    @property
    def li_readout(self) -> bool:
        """A readout read as a non-spiking LI compartment's membrane (out in membrane units)."""
        return self.neuron is None and self.readout_kind == READOUT_LI

    @property
    def v_scale(self) -> float:
        """Integer membrane units per float unit: a_scale << 6 (fixedpoint.membrane_scale)."""
        return membrane_scale(self.a_scale)


@dataclass
class IntProgram:
    layers: list[IntLayer]
    hardware: str
    input_kind: str  # "binary" | "graded"
    input_scale: float  # x_int = round(x * input_scale)
    input_bits: int  # bits of one input value: 1 (binary spikes) or the graded payload's
    input_shape: tuple[int, ...]
    input_signed: bool
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)

    def check_shapes(self) -> None:
        """Refuse a layer whose synapse output cannot be the state of its neuron layer: a dense
        synapse yields prod(out_shape) values in one flat axis, so a neuron layer behind it must be
        flat too (a multi-axis neuron layer behind a dense map is a conv-shaped group that no
        convolution describes). The error names the layer and both shapes."""
        for layer in self.layers:
            if layer.neuron is not None and layer.kind == "dense" and len(layer.out_shape) != 1:
                raise ValueError(
                    f"layer {layer.name}: its synapse maps to a dense matrix with "
                    f"{math.prod(layer.out_shape)} flat outputs, but its neuron layer has shape "
                    f"{tuple(layer.out_shape)}; only a [pool] conv [Scale] chain stays "
                    "convolutional (sources: neurodeploy.quant.stages)"
                )

    def validate(self, hw: HardwareSpec | None = None) -> None:
        """Refuse a program that a target cannot run exactly: inconsistent shapes, or values outside
        the hardware's formats. The error names the layer, the field and the limit."""
        from neurodeploy.neuron.hardware import get_spec

        hw = hw or get_spec(self.hardware)
        self.check_shapes()
        shape = tuple(self.input_shape)
        for layer in self.layers:
            where = f"layer {layer.name}"
            if tuple(layer.in_shape) != shape:
                raise ValueError(
                    f"{where}: in_shape {layer.in_shape} does not match the previous output {shape}"
                )
            w = np.asarray(layer.synapse.weight)  # the synapse checked its own geometry when built
            if w.size and (w.min() < hw.weight_min or w.max() > hw.weight_max):
                raise ValueError(f"{where}: weights outside [{hw.weight_min}, {hw.weight_max}]")
            if w.size and w.min() < 0 < w.max() and (w % 2).any():
                raise ValueError(
                    f"{where}: mixed-sign weights must be even (Loihi drops the lowest bit)"
                )
            if not hw.weight_exp_min <= layer.weight_exp <= hw.weight_exp_max:
                raise ValueError(
                    f"{where}: weight_exp {layer.weight_exp} outside "
                    f"[{hw.weight_exp_min}, {hw.weight_exp_max}]"
                )
            if layer.kind != "dense" and layer.weight_exp < 0:
                raise ValueError(
                    f"{where}: a convolution needs weight_exp >= 0 (Lava's Conv ignores the exponent)"
                )
            if hw.fixed_weight_exp is not None and layer.weight_exp != hw.fixed_weight_exp:
                raise ValueError(
                    f"{where}: weight_exp {layer.weight_exp}, but {hw.name} fixes "
                    f"{hw.fixed_weight_exp} in every layer"
                )
            if layer.neuron is None and layer.readout_kind not in (READOUT_SYNAPTIC, READOUT_LI):
                raise ValueError(f"{where}: readout_kind {layer.readout_kind!r} unknown")
            if layer.neuron is not None or layer.readout_kind == READOUT_LI:
                for name, value, hi in (
                    ("dv", layer.dv, hw.decay_unit - 1),
                    ("du", layer.du, hw.decay_unit - 1),
                    ("coef", layer.coef, hw.decay_unit - 1),
                    ("vth", layer.vth, hw.vth_max),
                ):
                    if not 0 <= int(value) <= hi:
                        raise ValueError(f"{where}: {name} = {value} outside 0..{hi}")
                b = np.asarray(layer.bias_mant)
                if b.size and np.abs(b).max() > hw.bias_mant_max:
                    raise ValueError(f"{where}: bias mantissa beyond +-{hw.bias_mant_max}")
                lo, hi = hw.bias_exp_range
                if not lo <= layer.bias_exp <= hi:
                    raise ValueError(f"{where}: bias_exp {layer.bias_exp} outside {lo}..{hi}")
                if (
                    hw.fixed_bias_exp is not None
                    and layer.bias_exp != hw.fixed_bias_exp
                    and b.any()
                ):
                    raise ValueError(
                        f"{where}: bias_exp {layer.bias_exp}, but {hw.name} fixes "
                        f"{hw.fixed_bias_exp} in every layer"
                    )
            shape = tuple(layer.out_shape)

    def quantize_input(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Float input (T, B, *input_shape) -> (integer spikes or graded payloads (int64), number of
        values clipped to the payload range)."""
        x = np.asarray(x)
        if tuple(x.shape[2:]) != tuple(self.input_shape):
            raise ValueError(
                f"input: expected (T, B, {', '.join(map(str, self.input_shape))}), got {x.shape}"
            )
        if self.input_kind == "binary":
            if not np.isin(x, (0, 1)).all():
                raise ValueError(
                    "input: this program expects binary spikes (0/1); quantise with input_kind='graded'"
                )
            return x.astype(np.int64), 0
        if self.input_signed:
            lo, hi = -(2 ** (self.input_bits - 1) - 1), 2 ** (self.input_bits - 1) - 1
        else:
            lo, hi = 0, 2**self.input_bits - 1
        q = np.rint(x.astype(np.float64) * self.input_scale)
        clipped = int(((q < lo) | (q > hi)).sum())
        return np.clip(q, lo, hi).astype(np.int64), clipped

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the program as one ``.npz`` (format version :data:`VERSION`; module docstring)."""
        path = Path(path)
        header: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name != "layers"},
            "layers": [],
        }
        header["input_shape"] = list(self.input_shape)
        arrays: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            syn = layer.synapse
            d: dict[str, Any] = {k: getattr(syn, k) for k in GEOMETRY}
            d.update({k: list(v) for k, v in d.items() if isinstance(v, tuple)})
            arrays[f"l{i}.weight"] = syn.weight
            for f in fields(layer):
                if f.name == "synapse":
                    continue
                v = getattr(layer, f.name)
                if isinstance(v, np.ndarray):
                    arrays[f"l{i}.{f.name}"] = v
                else:
                    d[f.name] = v
            header["layers"].append(d)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
        np.savez_compressed(
            tmp, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IntProgram:
        """Read a program written by :meth:`save` (format versions :data:`READABLE_VERSIONS`)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such integer program file")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                arrays = {k: z[k] for k in z.files if k != "header"}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(
                f"{path}: not a readable integer program (.npz): {type(e).__name__}: {e}"
            ) from e
        version = header.get("version")
        if header.get("format") != FORMAT or version not in READABLE_VERSIONS:
            raise ValueError(
                f"{path}: not a neurodeploy integer program of version {READABLE_VERSIONS} "
                f"(format {header.get('format')!r}, version {version!r})"
            )
        layers = []
        for i, d in enumerate(header.pop("layers")):
            where = f"{path}: layer {d.get('name')}"
            for k, v in arrays.items():
                if k.startswith(f"l{i}."):
                    d[k.split(".", 1)[1]] = v
            geometry = {k: d.pop(k) for k in GEOMETRY if k in d}
            for k in ("in_shape", "out_shape", "stride", "padding", "pool"):
                geometry[k] = tuple(geometry.get(k, ()))
            weight = d.pop("weight", None)
            if weight is None:
                raise ValueError(f"{where}: no weight array (l{i}.weight)")
            if version == 1 and geometry["pool"]:
                weight, geometry = _unfold_version1(weight, geometry, where)
            layers.append(IntLayer(synapse=Synapse(weight=weight, **geometry, where=where), **d))
        header.pop("format"), header.pop("version")
        header["input_shape"] = tuple(header["input_shape"])
        return cls(layers=layers, **header)


def _unfold_version1(
    weight: np.ndarray, geometry: dict[str, Any], where: str
) -> tuple[np.ndarray, dict[str, Any]]:
    """A version-1 pooled convolution (pool-folded kernel of constant k-blocks, stride k*s,
    padding k*p) as the small kernel and the conv's own stride and padding."""
    k = geometry["pool"]
    spatial = weight.shape[2:]
    if (
        len(spatial) != len(k)
        or any(n % kk for n, kk in zip(spatial, k))
        or any(v % kk for v, kk in zip(geometry["stride"] + geometry["padding"], k + k))
    ):
        raise ValueError(
            f"{where}: version-1 pooled kernel {weight.shape} with stride {geometry['stride']} and "
            f"padding {geometry['padding']} is not a pool-{k} folded convolution"
        )
    every_k: tuple[Any, ...] = (Ellipsis, *[slice(None, None, kk) for kk in k])
    small = weight[every_k]
    big = small
    for axis, kk in enumerate(k):
        big = np.repeat(big, kk, axis=2 + axis)
    if not np.array_equal(big, weight):
        raise ValueError(f"{where}: version-1 pooled kernel is not made of constant {k} blocks")
    return small.copy(), {
        **geometry,
        "stride": tuple(v // kk for v, kk in zip(geometry["stride"], k)),
        "padding": tuple(v // kk for v, kk in zip(geometry["padding"], k)),
    }
