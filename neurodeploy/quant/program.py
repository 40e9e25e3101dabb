"""The integer program: what the quantiser produces and every target runs.

One :class:`IntLayer` per hardware stage (see :mod:`neurodeploy.quant.stages`): an integer synaptic map
(even 8-bit weights and a weight exponent) and, except for the readout, a neuron layer with
Lava's integer parameters (du, dv, vth, bias mantissa/exponent) and the 12-bit smoothing
coefficient. The scales that relate float and integer values are stored with it, so that a
float membrane v corresponds to the integer v_int = v * v_scale (no hidden constants).

Saved as a single ``.npz`` file (numpy, no pickle): arrays per layer plus a JSON header.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from neurodeploy.neuron.hardware import HardwareSpec

FORMAT = "neurodeploy.intprogram"
VERSION = 1


@dataclass
class IntLayer:
    name: str
    kind: str                         # "dense" | "conv1d" | "conv2d"
    weight: np.ndarray                # int32, even, within the spec's range
    weight_exp: int
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    stride: tuple[int, ...] = ()
    padding: tuple[int, ...] = ()
    groups: int = 1
    pool: tuple[int, ...] = ()        # the conv's kernel is made of pool-sized constant blocks (sum-pool + conv)
    neuron: str | None = "lif"        # "lif" (stock, coef 0), "mps" (smoothed reset), None (readout)
    du: int = 4095
    dv: int = 0
    vth: int = 0
    bias_mant: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))  # out_shape
    bias_exp: int = 0
    coef: int = 0                     # round(4096 * alpha)
    readout_bias: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # readout, a-units
    w_scale: float = 1.0              # w_int ~= w * w_scale
    in_scale: float = 1.0             # integer input units per float input unit
    a_scale: float = 1.0              # a_int (after the exponent) per float synaptic input: w_scale*in_scale*2^e
    clipped_weights: int = 0

    @property
    def v_scale(self) -> float:
        """Integer membrane units per float unit: a_scale << 6."""
        return self.a_scale * 64.0


@dataclass
class IntProgram:
    layers: list[IntLayer]
    hardware: str
    input_kind: str                   # "binary" | "graded"
    input_scale: float                # x_int = round(x * input_scale)
    input_bits: int
    input_shape: tuple[int, ...]
    input_signed: bool
    num_classes: int
    meta: dict[str, Any] = field(default_factory=dict)

    def validate(self, hw: "HardwareSpec | None" = None) -> None:
        """Refuse a program that a target cannot run exactly: inconsistent shapes, or values outside
        the hardware's formats. The error names the layer, the field and the limit."""
        from neurodeploy.neuron.hardware import get_spec
        hw = hw or get_spec(self.hardware)
        shape = tuple(self.input_shape)
        for layer in self.layers:
            where = f"layer {layer.name}"
            if tuple(layer.in_shape) != shape:
                raise ValueError(f"{where}: in_shape {layer.in_shape} does not match the previous output {shape}")
            w = np.asarray(layer.weight)
            if w.size and (w.min() < hw.weight_min or w.max() > hw.weight_max):
                raise ValueError(f"{where}: weights outside [{hw.weight_min}, {hw.weight_max}]")
            if w.size and w.min() < 0 < w.max() and (w % 2).any():
                raise ValueError(f"{where}: mixed-sign weights must be even (Loihi drops the lowest bit)")
            if not hw.weight_exp_min <= layer.weight_exp <= hw.weight_exp_max:
                raise ValueError(f"{where}: weight_exp {layer.weight_exp} outside [{hw.weight_exp_min}, {hw.weight_exp_max}]")
            if layer.kind != "dense" and layer.weight_exp < 0:
                raise ValueError(f"{where}: a convolution needs weight_exp >= 0 (Lava's Conv ignores the exponent)")
            if layer.kind == "dense":
                if w.ndim != 2 or w.shape[1] != int(np.prod(shape)):
                    raise ValueError(f"{where}: dense weight {w.shape} does not fit input {shape}")
            else:
                dims = 2 if layer.kind == "conv2d" else 1
                if w.ndim != 2 + dims or len(shape) != 1 + dims or w.shape[1] * layer.groups != shape[0]:
                    raise ValueError(f"{where}: {layer.kind} weight {w.shape} does not fit input {shape}")
            if layer.neuron is not None:
                for field, value, hi in (("dv", layer.dv, hw.decay_unit - 1), ("du", layer.du, hw.decay_unit - 1),
                                         ("coef", layer.coef, hw.decay_unit - 1), ("vth", layer.vth, hw.vth_max)):
                    if not 0 <= int(value) <= hi:
                        raise ValueError(f"{where}: {field} = {value} outside 0..{hi}")
                b = np.asarray(layer.bias_mant)
                if b.size and np.abs(b).max() > hw.bias_mant_max:
                    raise ValueError(f"{where}: bias mantissa beyond +-{hw.bias_mant_max}")
                lo, hi = hw.bias_exp_range
                if not lo <= layer.bias_exp <= hi:
                    raise ValueError(f"{where}: bias_exp {layer.bias_exp} outside {lo}..{hi}")
            shape = tuple(layer.out_shape)

    def quantize_input(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Float input (T, B, *input_shape) -> (integer spikes or graded payloads (int64), number of
        values clipped to the payload range)."""
        x = np.asarray(x)
        if tuple(x.shape[2:]) != tuple(self.input_shape):
            raise ValueError(f"input: expected (T, B, {', '.join(map(str, self.input_shape))}), got {x.shape}")
        if self.input_kind == "binary":
            if not np.isin(x, (0, 1)).all():
                raise ValueError("input: this program expects binary spikes (0/1); quantise with input_kind='graded'")
            return x.astype(np.int64), 0
        if self.input_signed:
            lo, hi = -(2 ** (self.input_bits - 1) - 1), 2 ** (self.input_bits - 1) - 1
        else:
            lo, hi = 0, 2 ** self.input_bits - 1
        q = np.rint(x.astype(np.float64) * self.input_scale)
        clipped = int(((q < lo) | (q > hi)).sum())
        return np.clip(q, lo, hi).astype(np.int64), clipped

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        header = {"format": FORMAT, "version": VERSION, **{k: v for k, v in asdict(self).items() if k != "layers"},
                  "layers": []}
        arrays: dict[str, np.ndarray] = {}
        for i, layer in enumerate(self.layers):
            d = {}
            for k, v in asdict(layer).items():
                if isinstance(v, np.ndarray):
                    arrays[f"l{i}.{k}"] = v
                else:
                    d[k] = list(v) if isinstance(v, tuple) else v
            header["layers"].append(d)
        header["input_shape"] = list(self.input_shape)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.npz")
        np.savez_compressed(tmp, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "IntProgram":
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"{path}: no such integer program file")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                arrays = {k: z[k] for k in z.files if k != "header"}
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable integer program (.npz): {type(e).__name__}: {e}") from e
        if header.get("format") != FORMAT or header.get("version") != VERSION:
            raise ValueError(f"{path}: not a neurodeploy integer program version {VERSION}")
        layers = []
        for i, d in enumerate(header.pop("layers")):
            for k in ("in_shape", "out_shape", "stride", "padding", "pool"):
                d[k] = tuple(d.get(k, ()))
            for k, v in arrays.items():
                if k.startswith(f"l{i}."):
                    d[k.split(".", 1)[1]] = v
            layers.append(IntLayer(**d))
        header.pop("format"), header.pop("version")
        header["input_shape"] = tuple(header["input_shape"])
        return cls(layers=layers, **header)
