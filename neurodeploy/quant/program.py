"""The integer program: what the quantiser produces and every target runs.

One :class:`IntLayer` per hardware stage (see :mod:`neurodeploy.quant.stages`): an integer synapse
(:class:`~neurodeploy.quant.synapse.Synapse` with even 8-bit weights; a pooled convolution keeps its
small kernel and pool factor) with a weight exponent, and, except for the readout, a neuron layer
with Lava's integer parameters (du, dv, vth, bias mantissa/exponent) and the 12-bit smoothing
coefficient. The scales that relate float and integer values are stored with it, so that a
float membrane v corresponds to the integer v_int = v * v_scale (no hidden constants).

A program is a graph (:data:`INPUT` and the layers are its nodes): a layer's inline synapse
reads its ``source`` (None: the previous layer in program order, or the input for the first layer;
a program of such layers only is a chain) and its ``extra`` edges (:class:`IntEdge`) read further
sources. The layer's input current is the sum over all its synapses, in its a-units::

    a(t) = sum over synapses e of  (W_e s_e(t - delay_e)) << weight_exp_e

with a convolution's term wrapped to 24 bits (signed) first, as Lava's Conv wraps its output.
Program order is topological over feed-forward edges; a recurrent edge is a self-loop only. The
delays (:meth:`IntProgram.edge_delays`) depend on the schedule:

- ``latency=False`` (float-aligned): a feed-forward edge delivers s_src(t) (delay 0), a recurrent
  self-edge s(t - 1) (delay 1), zero before step 0.
- ``latency=True`` (Lava-aligned): with depth(INPUT) = 0 and depth(L) = 1 + max over L's
  feed-forward sources of depth(src) (:meth:`IntProgram.depths`), a feed-forward edge src -> L
  delivers s_src(t - (depth(L) - depth(src))); a recurrent self-edge still s(t - 1). Every layer
  then runs its own time tau = t - depth(L), its spikes those of ``latency=False`` shifted by
  depth(L); T + max depth steps drain the pipeline. For a chain depth(layer k) = k + 1.

Saved as a single ``.npz`` file (numpy, no pickle): arrays per layer plus a JSON header.
Format version 3 (optional keys ``reset_delay`` and ``u_init_bias``, False when absent) adds each
layer's ``source`` and ``extra`` edges (their weights as
``l{i}.extra{j}.weight``, their geometry, exponent, flag and scales in the header; versions 1 and
2 load as chains). Version 2 stores a pooled convolution as its synapse is held (small kernel, the conv's
own stride and padding, ``pool``); version 1 stored the pool-folded kernel (k-fold repeated
blocks, stride k*s, padding k*p) and is converted when loaded.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
import zlib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from neurodeploy.checks import describe_nonfinite
from neurodeploy.files import atomic_write
from neurodeploy.neuron.fixedpoint import DU_NO_CURRENT_MEMORY, membrane_scale
from neurodeploy.quant.synapse import HoldsSynapse, Synapse

if TYPE_CHECKING:
    from neurodeploy.neuron.hardware import HardwareSpec

FORMAT = "neurodeploy.intprogram"
READOUT_SYNAPTIC = "synaptic"  # readout = the synaptic input a plus readout_bias, per step
READOUT_LI = "li"  # readout = the membrane v of a non-spiking LI compartment, per step
VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
EDGE_FIELDS = ("source", "weight_exp", "recurrent", "w_scale", "in_scale", "clipped_weights")
GEOMETRY = (
    "kind",
    "in_shape",
    "out_shape",
    "stride",
    "padding",
    "groups",
    "pool",
)  # Synapse fields in the header


#: the source name of the network input (an :class:`IntEdge` or :attr:`IntLayer.source` reading it)
INPUT = "input"

#: the largest per-synapse delay (steps beyond the synapse's own timing) a dense synapse may hold:
#: lava-dl netx builds every delayed dense layer as Lava's ``DelayDense`` with ``max_delay=62``
#: (its buffer holds delays 0..62; netx ``hdf5.py`` clips larger delays to 62), below the 63 that
#: Loihi 2's 6-bit synaptic delay field and Lava's bit-accurate DelayDense model accept
MAX_SYNAPTIC_DELAY = 62


@dataclass
class IntEdge(HoldsSynapse):
    """One more synapse into a layer of a graph program (fan-in, residual, recurrent edges).

    The layer's input current is the sum over its synapses of ``sum << weight_exp``, each in the
    layer's a-units (``a_scale``): the quantiser chooses every edge's exponent so that
    ``w_scale * in_scale * 2^weight_exp`` equals the layer's ``a_scale``.

    ``source``: a layer with neurons, named, or :data:`INPUT`. ``recurrent``: the edge reads its
    source's spikes of the previous step, s_src(t - 1) (zero at t = 0); only a layer's own spikes
    (a self-loop: source == the layer's name) may be recurrent. Feed-forward edges read s_src(t).
    """

    source: str
    synapse: Synapse  # int32 weights, even, within the spec's range
    weight_exp: int
    recurrent: bool = False
    w_scale: float = 1.0
    in_scale: float = 1.0
    clipped_weights: int = 0


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
    # graphs: where ``synapse`` reads from (None: the previous layer in program order, or the
    # input for the first layer: a chain) and the further synapses into this layer (IntEdge)
    source: str | None = None
    extra: list[IntEdge] = field(default_factory=list)
    # snnTorch's delayed zero reset (neuron "lif" only): the step after a spike is refractory,
    # v held at 0, u integrating (fixedpoint.lif_int_step's ``refractory``). Format v3 key
    # ``reset_delay``; files without it load with False.
    reset_delay: bool = False
    # a CubaLIF's bias carried exactly (quantize.py, "CubaLIF"): the current u starts at
    # u(-1) = -(bias_mant << bias_exp) (membrane units) instead of 0, at t = 0 and at every
    # sample boundary, so that u_b(t) + bias = bias (1 - r^(t+1)), r = 1 - (du + 1) / 4096: v
    # receives the float current's ramp b tau_syn (1 - beta_syn^(t+1)), not its steady state from
    # step 0 (neuron "lif" with du < 4095 only). Format v3 key ``u_init_bias``; files without it
    # load with False (the bias's steady state from step 0, as before).
    u_init_bias: bool = False
    # per-synapse integer delays of a dense inline synapse (Lava's DelayDense), shape
    # (prod(out_shape), prod(in_shape)) like its weight, 0..MAX_SYNAPTIC_DELAY; empty: none.
    # Synapse (i, j) delivers W[i, j] s_j(t) delay[i, j] steps after the synapse's own timing;
    # each step's sum of the synapses of one delay value is shifted by weight_exp on its own,
    # as DelayDense does. Format v3 array ``l{i}.delay``; files without it load with none.
    delay: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))

    @property
    def has_delays(self) -> bool:
        """True when the inline synapse carries per-synapse delays (:attr:`delay`)."""
        return np.asarray(self.delay).size > 0

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

    # --- the graph (module docstring) ------------------------------------------------------------
    def source_of(self, k: int) -> str:
        """The source of layer ``k``'s inline synapse: its ``source``, else the previous layer's
        name (:data:`INPUT` for the first layer)."""
        layer = self.layers[k]
        if layer.source is not None:
            return layer.source
        return self.layers[k - 1].name if k > 0 else INPUT

    def edges(self, k: int) -> list[IntEdge]:
        """Every synapse into layer ``k`` as an :class:`IntEdge`: the inline one first (its source
        resolved, feed-forward), then ``extra`` in order."""
        layer = self.layers[k]
        inline = IntEdge(
            source=self.source_of(k),
            synapse=layer.synapse,
            weight_exp=layer.weight_exp,
            w_scale=layer.w_scale,
            in_scale=layer.in_scale,
            clipped_weights=layer.clipped_weights,
        )
        return [inline, *layer.extra]

    def sources(self, k: int) -> list[str]:
        """The source names of layer ``k``'s synapses (:meth:`edges` order)."""
        return [e.source for e in self.edges(k)]

    @property
    def is_chain(self) -> bool:
        """True when every layer reads only the layer before it (the input, for the first)."""
        return all(
            not layer.extra and (layer.source is None or layer.source == self._chain_source(k))
            for k, layer in enumerate(self.layers)
        )

    def _chain_source(self, k: int) -> str:
        return self.layers[k - 1].name if k > 0 else INPUT

    def depths(self) -> dict[str, int]:
        """The latency schedule's depths: depth(INPUT) = 0, depth(L) = 1 + max over L's
        feed-forward sources of depth(src) (recurrent self-edges do not count)."""
        self.check_graph()
        depth = {INPUT: 0}
        for k, layer in enumerate(self.layers):
            depth[layer.name] = 1 + max(depth[e.source] for e in self.edges(k) if not e.recurrent)
        return depth

    @property
    def max_delay_path(self) -> int:
        """The most steps per-synapse delays (:attr:`IntLayer.delay`) add along any path: the sum
        of every delayed layer's largest delay (an upper bound; 0 without delays)."""
        return sum(int(np.asarray(l.delay).max()) for l in self.layers if l.has_delays)

    def edge_delays(self, k: int, *, latency: bool) -> list[int]:
        """Per synapse of layer ``k`` (:meth:`edges` order), the steps between a source's spikes
        and their arrival: layer ``k`` at step t receives s_src(t - delay) (zero before step 0).
        Recurrent: 1; feed-forward: 0, or depth(layer) - depth(src) with ``latency``."""
        depth = self.depths() if latency else {}
        name = self.layers[k].name
        return [
            1 if e.recurrent else (depth[name] - depth[e.source] if latency else 0)
            for e in self.edges(k)
        ]

    def output_name(self) -> str:
        """The output layer: the readout (neuron None, the last layer) or else the last layer."""
        return self.layers[-1].name

    def check_graph(self) -> None:
        """Refuse a graph that no schedule runs: duplicate or reserved layer names, a readout
        that is not the last layer, an edge from an unknown source, from a later layer (a cycle
        other than a recurrent self-loop) or from a readout, a recurrent edge that is not a
        self-loop, and an edge whose shapes do not fit (in_shape == the source's out_shape, the
        input's for :data:`INPUT`; out_shape == the layer's). The error names the layer, the
        edge's source and the shapes."""
        seen: dict[str, tuple[int, ...]] = {}
        readouts: set[str] = set()
        for k, layer in enumerate(self.layers):
            name = layer.name
            if name == INPUT or name in seen:
                raise ValueError(
                    f"layer {name}: the name is "
                    + ("reserved for the network input" if name == INPUT else "used twice")
                )
            if layer.neuron is None and k != len(self.layers) - 1:
                raise ValueError(
                    f"layer {name}: a readout (no neurons) must be the last layer, found at "
                    f"position {k} of {len(self.layers)}"
                )
            for j, e in enumerate(self.edges(k)):
                where = f"layer {name}: edge from {e.source}" + (" (inline)" if j == 0 else "")
                if e.recurrent:
                    if e.source != name:
                        raise ValueError(
                            f"{where}: a recurrent edge must be a self-loop (source {name}); "
                            "longer cycles are not supported"
                        )
                    if layer.neuron is None:
                        raise ValueError(f"{where}: a readout has no spikes to feed back")
                    src_shape = tuple(layer.out_shape)
                elif e.source == INPUT:
                    src_shape = tuple(self.input_shape)
                elif e.source in readouts:
                    raise ValueError(f"{where}: a readout has no spikes to send")
                elif e.source in seen:
                    src_shape = seen[e.source]
                elif e.source == name or any(e.source == l.name for l in self.layers[k + 1 :]):
                    raise ValueError(
                        f"{where}: {e.source} does not run before {name}; a feed-forward edge "
                        "must read an earlier layer (cycles other than a recurrent self-loop "
                        "are not supported)"
                    )
                else:
                    raise ValueError(
                        f"{where}: no such source (layers: {[l.name for l in self.layers]}, "
                        f"or {INPUT!r})"
                    )
                if tuple(e.synapse.in_shape) != src_shape:
                    raise ValueError(
                        f"{where}: in_shape {tuple(e.synapse.in_shape)} does not match the "
                        f"source's out_shape {src_shape}"
                    )
                if tuple(e.synapse.out_shape) != tuple(layer.out_shape):
                    raise ValueError(
                        f"{where}: out_shape {tuple(e.synapse.out_shape)} does not match the "
                        f"layer's {tuple(layer.out_shape)} (every synapse into a layer sums "
                        "into its neurons)"
                    )
            seen[name] = tuple(layer.out_shape)
            if layer.neuron is None:
                readouts.add(name)

    def check_shapes(self) -> None:
        """Refuse a program whose shapes do not fit: the graph's edges (:meth:`check_graph`), and a
        layer whose synapse output cannot be the state of its neuron layer: a dense
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
        self.check_graph()
        for layer in self.layers:
            _check_delays(layer)

    def validate(self, hw: HardwareSpec | None = None) -> None:
        """Refuse a program that a target cannot run exactly: inconsistent shapes or graph
        (:meth:`check_shapes`), or values outside the hardware's formats, in every synapse
        (inline and ``extra``) and neuron layer. The error names the layer, the edge, the field
        and the limit."""
        from neurodeploy.neuron.hardware import get_spec

        hw = hw or get_spec(self.hardware)
        self.check_shapes()
        for k, layer in enumerate(self.layers):
            where = f"layer {layer.name}"
            for j, e in enumerate(self.edges(k)):
                _check_synapse_ints(where if j == 0 else f"{where}: edge from {e.source}", e, hw)
            if layer.reset_delay and layer.neuron != "lif":
                raise ValueError(
                    f"{where}: reset_delay (one refractory step) needs neuron 'lif', got "
                    f"{layer.neuron!r}"
                )
            if layer.u_init_bias and (layer.neuron != "lif" or layer.du >= DU_NO_CURRENT_MEMORY):
                raise ValueError(
                    f"{where}: u_init_bias (the current starts at -bias) needs neuron 'lif' with "
                    f"a current (du < {DU_NO_CURRENT_MEMORY}), got neuron {layer.neuron!r}, "
                    f"du {layer.du}"
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

    def quantize_input(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Float input (T, B, *input_shape) -> (integer spikes or graded payloads (int64), number of
        values clipped to the payload range)."""
        x = np.asarray(x)
        if tuple(x.shape[2:]) != tuple(self.input_shape):
            raise ValueError(
                f"input: expected (T, B, {', '.join(map(str, self.input_shape))}), got {x.shape}"
            )
        bad = describe_nonfinite(x)  # NaN would cast to INT64_MIN, inf clip silently
        if bad is not None:
            raise ValueError(f"input: {bad}; the integer program takes finite values only")
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
            d = _geometry(layer.synapse)
            arrays[f"l{i}.weight"] = layer.synapse.weight
            for f in fields(layer):
                if f.name in ("synapse", "extra"):
                    continue
                v = getattr(layer, f.name)
                if f.name == "delay" and not layer.has_delays:
                    continue  # optional key: absent means no delays
                if isinstance(v, np.ndarray):
                    arrays[f"l{i}.{f.name}"] = v
                else:
                    d[f.name] = v
            d["extra"] = []
            for j, e in enumerate(layer.extra):
                arrays[f"l{i}.extra{j}.weight"] = e.synapse.weight
                d["extra"].append(
                    {**_geometry(e.synapse), **{k: getattr(e, k) for k in EDGE_FIELDS}}
                )
            header["layers"].append(d)
        head = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        # whole or not at all: a temporary in the same folder, renamed over path (issue 17)
        return atomic_write(path, lambda f: np.savez_compressed(f, header=head, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> IntProgram:
        """Read a program written by :meth:`save` (format versions :data:`READABLE_VERSIONS`).

        Anything else is a :class:`ProgramFileError` naming the file (and the layer and field
        where there is one): a file that is not a readable ``.npz`` (truncated, corrupt zip or
        compressed data, a failed CRC), a header that is not JSON, a missing key or a value of
        the wrong type (:data:`HEADER_TYPES`, :data:`LAYER_TYPES`), a weight array that is not
        integer, or a graph whose shapes do not fit (:meth:`check_shapes`). Hardware ranges are
        checked by :meth:`validate`, which every target runs."""
        path = Path(path)
        if not path.is_file():
            raise ProgramFileError(f"{path}: no such integer program file")
        try:
            with np.load(path, allow_pickle=False) as z:
                header = json.loads(bytes(z["header"]).decode())
                arrays = {k: z[k] for k in z.files if k != "header"}
        except (
            OSError,
            EOFError,
            ValueError,
            KeyError,
            zipfile.BadZipFile,
            zlib.error,
            NotImplementedError,
        ) as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ProgramFileError(
                f"{path}: not a readable integer program (.npz): {type(e).__name__}: {e}"
            ) from e
        if not isinstance(header, dict):
            raise ProgramFileError(f"{path}: the header is {type(header).__name__}, not an object")
        version = header.get("version")
        if header.get("format") != FORMAT or version not in READABLE_VERSIONS:
            raise ProgramFileError(
                f"{path}: not a neurodeploy integer program of version {READABLE_VERSIONS} "
                f"(format {header.get('format')!r}, version {version!r})"
            )
        _check_entry(f"{path}", header, HEADER_TYPES, required=HEADER_REQUIRED)
        if not header["layers"]:
            raise ProgramFileError(f"{path}: 'layers': empty, a program has at least one layer")
        for i, d in enumerate(header["layers"]):
            name = d.get("name") if isinstance(d, dict) else None
            where = f"{path}: layer {i}" + (f" ({name})" if name is not None else "")
            if not isinstance(d, dict):
                raise ProgramFileError(f"{where}: not an object ({type(d).__name__})")
            _check_entry(where, d, LAYER_TYPES, required=("name",))
            for j, entry in enumerate(d.get("extra", [])):
                if not isinstance(entry, dict):
                    raise ProgramFileError(f"{where}: edge {j}: not an object")
                _check_entry(f"{where}: edge {j}", entry, EDGE_TYPES, required=("source",))
        for key, a in arrays.items():
            if a.dtype.kind not in "iu":
                raise ProgramFileError(
                    f"{path}: array {key!r} has dtype {a.dtype}, expected integers"
                )
        try:
            prog = cls._from_header(path, header, arrays, version)
        except ProgramFileError:
            raise
        except (ValueError, TypeError) as e:  # Synapse and IntLayer refusals name the layer
            raise ProgramFileError(f"{path}: {e}") from e
        try:
            prog.check_shapes()
        except ValueError as e:
            raise ProgramFileError(f"{path}: {e}") from e
        return prog

    @classmethod
    def _from_header(
        cls, path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray], version: int
    ) -> IntProgram:
        """The program of a type-checked header and its arrays (:meth:`load`)."""
        layers = []
        for i, d in enumerate(header.pop("layers")):
            where = f"{path}: layer {d.get('name')}"
            own = {k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith(f"l{i}.")}
            extra = []
            for j, entry in enumerate(d.pop("extra", [])):
                key = f"extra{j}.weight"
                if key not in own:
                    raise ProgramFileError(
                        f"{where}: no weight array (l{i}.{key}) for its edge {j}"
                    )
                e_where = f"{where}: edge from {entry.get('source')}"
                geometry = _pop_geometry(entry)
                syn = Synapse(weight=own.pop(key), **geometry, where=e_where)
                extra.append(IntEdge(synapse=syn, **entry))
            unknown = sorted(k for k in own if not k.startswith("extra") and k not in LAYER_ARRAYS)
            if unknown:
                raise ProgramFileError(
                    f"{where}: unknown array(s) {[f'l{i}.{k}' for k in unknown]}"
                )
            d.update({k: v for k, v in own.items() if not k.startswith("extra")})
            geometry = _pop_geometry(d)
            weight = d.pop("weight", None)
            if weight is None:
                raise ProgramFileError(f"{where}: no weight array (l{i}.weight)")
            if version == 1 and geometry["pool"]:
                weight, geometry = _unfold_version1(weight, geometry, where)
            syn = Synapse(weight=weight, **geometry, where=where)
            layers.append(IntLayer(synapse=syn, **d, extra=extra))
        header.pop("format"), header.pop("version")
        header["input_shape"] = tuple(header["input_shape"])
        return cls(layers=layers, **header)


class ProgramFileError(ValueError):
    """An integer program file is unreadable or malformed; the message names the file (and the
    layer and field)."""


# the JSON header's value types (:meth:`IntProgram.load`): a tuple of admitted types, or a kind
_INT, _NUM, _STR, _BOOL = "int", "number", "str", "bool"
_SHAPE, _INTS = "shape", "ints"  # a list of ints >= 1; a list of ints >= 0
MAX_DIM = 2**31 - 1  # one axis of a shape (int32, as the synapse stores its weights)
HEADER_TYPES: dict[str, Any] = {
    "format": _STR,
    "version": _INT,
    "hardware": _STR,
    "input_kind": _STR,
    "input_scale": _NUM,
    "input_bits": _INT,
    "input_shape": _SHAPE,
    "input_signed": _BOOL,
    "num_classes": _INT,
    "meta": (dict,),
    "layers": (list,),
}
HEADER_REQUIRED = tuple(k for k in HEADER_TYPES if k != "meta")
_SYNAPSE_TYPES: dict[str, Any] = {
    "kind": _STR,
    "in_shape": _SHAPE,
    "out_shape": _SHAPE,
    "stride": _INTS,
    "padding": _INTS,
    "groups": _INT,
    "pool": _INTS,
    "weight_exp": _INT,
    "w_scale": _NUM,
    "in_scale": _NUM,
    "clipped_weights": _INT,
}
EDGE_TYPES: dict[str, Any] = {**_SYNAPSE_TYPES, "source": _STR, "recurrent": _BOOL}
LAYER_TYPES: dict[str, Any] = {
    **_SYNAPSE_TYPES,
    "name": _STR,
    "neuron": (str, type(None)),
    "du": _INT,
    "dv": _INT,
    "vth": _INT,
    "bias_exp": _INT,
    "coef": _INT,
    "readout_kind": _STR,
    "a_scale": _NUM,
    "source": (str, type(None)),
    "extra": (list,),
    "reset_delay": _BOOL,
    "u_init_bias": _BOOL,
}
# l{i}.<name> arrays besides the edges'
LAYER_ARRAYS = ("weight", "bias_mant", "readout_bias", "delay")


def _type_ok(v: Any, kind: Any) -> bool:
    if isinstance(kind, tuple):
        return isinstance(v, kind)
    if kind == _BOOL:
        return isinstance(v, bool)
    if kind == _STR:
        return isinstance(v, str)
    if isinstance(v, bool):
        return False
    if kind == _INT:
        return isinstance(v, int) and abs(v) <= 2**63 - 1
    if kind == _NUM:
        return isinstance(v, (int, float)) and math.isfinite(v)
    low = 1 if kind == _SHAPE else 0
    return isinstance(v, list) and all(
        isinstance(n, int) and not isinstance(n, bool) and low <= n <= MAX_DIM for n in v
    )


_KIND_WORDS = {
    _INT: "an integer",
    _NUM: "a finite number",
    _STR: "a string",
    _BOOL: "true or false",
    _SHAPE: "a list of integers >= 1",
    _INTS: "a list of integers >= 0",
}


def _check_entry(
    where: str, d: dict[str, Any], types: dict[str, Any], *, required: tuple[str, ...]
) -> None:
    """Refuse a missing required key, an unknown key, or a value of the wrong type, naming
    ``where`` and the key."""
    missing = [k for k in required if k not in d]
    if missing:
        raise ProgramFileError(f"{where}: missing key(s) {missing}")
    unknown = sorted(set(d) - set(types))
    if unknown:
        raise ProgramFileError(f"{where}: unknown key(s) {unknown}")
    for k, v in d.items():
        kind = types[k]
        if not _type_ok(v, kind):
            want = (
                " or ".join("null" if t is type(None) else t.__name__ for t in kind)
                if isinstance(kind, tuple)
                else _KIND_WORDS[kind]
            )
            raise ProgramFileError(f"{where}: {k!r} must be {want}, got {v!r:.60}")


def _geometry(syn: Synapse) -> dict[str, Any]:
    """A synapse's geometry for the JSON header (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k in GEOMETRY for v in [getattr(syn, k)]}


def _pop_geometry(d: dict[str, Any]) -> dict[str, Any]:
    """Take a synapse's geometry out of a header entry (lists back to tuples)."""
    geometry = {k: d.pop(k) for k in GEOMETRY if k in d}
    for k in ("in_shape", "out_shape", "stride", "padding", "pool"):
        geometry[k] = tuple(geometry.get(k, ()))
    return geometry


def _check_delays(layer: IntLayer) -> None:
    """Refuse per-synapse delays that no target runs: on a synapse that is not dense (Lava's
    DelayDense is the only delayed synapse), of another shape than the weight, not integer, or
    outside 0..:data:`MAX_SYNAPTIC_DELAY`. The error names the layer and the field."""
    if not layer.has_delays:
        return
    where = f"layer {layer.name}: delay"
    d = np.asarray(layer.delay)
    if layer.kind != "dense":
        raise ValueError(
            f"{where}: per-synapse delays on a {layer.kind} synapse; only dense synapses hold "
            "delays (Lava's DelayDense)"
        )
    if d.shape != np.shape(layer.synapse.weight):
        raise ValueError(
            f"{where}: shape {d.shape}, expected the weight's {layer.synapse.weight.shape}"
        )
    if d.dtype.kind not in "iu":
        raise ValueError(f"{where}: dtype {d.dtype}, expected integers")
    if d.min() < 0 or d.max() > MAX_SYNAPTIC_DELAY:
        raise ValueError(
            f"{where}: values in [{d.min()}, {d.max()}] outside 0..{MAX_SYNAPTIC_DELAY} "
            "(MAX_SYNAPTIC_DELAY)"
        )


def _check_synapse_ints(where: str, edge: IntEdge, hw: HardwareSpec) -> None:
    """Refuse a synapse whose integers the hardware cannot hold: weights outside the range,
    odd mixed-sign weights, an exponent outside the range (or not the fixed one), a convolution
    with a negative exponent. ``where`` names the layer (and edge) in the error."""
    w = np.asarray(edge.synapse.weight)  # the synapse checked its own geometry when built
    if w.size and (w.min() < hw.weight_min or w.max() > hw.weight_max):
        raise ValueError(f"{where}: weights outside [{hw.weight_min}, {hw.weight_max}]")
    if w.size and w.min() < 0 < w.max() and (w % 2).any():
        raise ValueError(f"{where}: mixed-sign weights must be even (Loihi drops the lowest bit)")
    if not hw.weight_exp_min <= edge.weight_exp <= hw.weight_exp_max:
        raise ValueError(
            f"{where}: weight_exp {edge.weight_exp} outside "
            f"[{hw.weight_exp_min}, {hw.weight_exp_max}]"
        )
    if edge.synapse.kind != "dense" and edge.weight_exp < 0:
        raise ValueError(
            f"{where}: a convolution needs weight_exp >= 0 (Lava's Conv ignores the exponent)"
        )
    if hw.fixed_weight_exp is not None and edge.weight_exp != hw.fixed_weight_exp:
        raise ValueError(
            f"{where}: weight_exp {edge.weight_exp}, but {hw.name} fixes "
            f"{hw.fixed_weight_exp} in every layer"
        )


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
