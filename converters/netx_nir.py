"""A lava-dl netx network (``.net``) as a NIR graph: the float reading of its integer CUBA
dynamics (``neurodeploy export net.net -o model.nir``).

The graph is built from the imported integer program (:func:`~neurodeploy.converters.netx_import.
netx_to_program`), a chain ``Input -> [Flatten] -> Affine | Conv2d | Scale -> CubaLIF -> ... ->
Output``. Units: netx programs run with ``a_scale = 1``, so one float unit is one integer
synaptic-input unit (``a = (W' s) * 2**weight_exp = W s``, ``W`` the stored 8-bit weights) and the
membrane is read as ``V = v / 64`` (:func:`~neurodeploy.neuron.fixedpoint.from_membrane`).

Integer core (:func:`~neurodeploy.neuron.fixedpoint.lif_int_step`, Lava's LIF), per step::

    u <- decay(u, du + 1) + (a << 6);   v <- decay(v, dv) + u + (bias_mant << bias_exp)
    s  = v > (vth << 6);                v <- 0 where s

Float reading, per step (Euler at ``dt``; the conventions of our NIR importer
:mod:`~neurodeploy.converters.nir_import` and of the quantiser's "CubaLIF" mapping)::

    I <- (1 - (du + 1) / 4096) I + W s + b_I,   V <- (1 - dv / 4096) V + I,   s = V > vth

written as NIR ``CubaLIF`` with

    tau_syn = dt * 4096 / (du + 1)      (du_to_tau_syn; du = 4095: tau_syn = dt, no current memory)
    tau_mem = dt * 4096 / dv            (dv_to_tau), and for dv = 0 (no leak, e.g. PilotNet's
              readout): tau_mem = dt * NO_LEAK_TAU_STEPS (2**24 steps), never inf or NaN: the
              float leak 2**-24 per step is float32's resolution just below 1, and the chip's
              decay round(4096 / 2**24) is 0 again, so the graph re-quantises to dv = 0
    w_in    = tau_syn / dt,  r = tau_mem / dt   (unit gains into the current and the membrane,
              as snnTorch's import requires), v_threshold = vth, v_leak = v_reset = 0
    b_I     = (bias_mant << bias_exp) / 64 * (du + 1) / 4096   (the Affine / Conv2d bias, which
              enters the current; its steady state is the integer bias added to v)

The reading is exact up to the integer decays' rounding toward zero when ``du = 4095`` (the
bias enters v directly every step in both); with a decaying current the bias ramps up in the
float current over ~tau_syn steps while netx adds it to v from step 0 (netx's HDF5 has no initial
current). A first layer fed graded input through a one-to-one synapse (netx's ``input`` layer:
a 1x1 depthwise convolution, stride 1, or a diagonal dense map) is written without a synapse:
a ``Scale`` by its weight (nothing where the weight is 1), so the Input feeds its neurons
directly.

The graph's metadata records ``dt``, ``T`` (the file's ``simulation/tSample`` when present),
the source file and ``format: netx``.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Any

import nir
import numpy as np

from neurodeploy.converters.nir_common import DEFAULT_DT, check_dt
from neurodeploy.neuron.fixedpoint import ACT_SHIFT, du_to_tau_syn, dv_to_tau
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.program import IntLayer, IntProgram

#: dv = 0 (no leak) as a finite NIR time constant, in timesteps: 2**24 (module docstring)
NO_LEAK_TAU_STEPS = float(2**24)
PRODUCER = "neurodeploy (netx import)"


def _full(shape: tuple[int, ...], v: float) -> np.ndarray:
    return np.full(shape, v, dtype=np.float32)


def _bias_into_current(layer: IntLayer) -> np.ndarray:
    """b_I = (bias_mant << bias_exp) / 64 * (du + 1) / 4096, float64, shape out_shape."""
    out = tuple(layer.synapse.out_shape)
    mant = np.asarray(layer.bias_mant, dtype=np.float64).reshape(-1)
    if mant.size == 0:
        return np.zeros(out)
    b_v = np.broadcast_to(mant, (math.prod(out),)).reshape(out) * 2.0**layer.bias_exp
    return np.asarray(b_v / (1 << ACT_SHIFT) / du_to_tau_syn(layer.du), dtype=np.float64)


def _one_to_one(layer: IntLayer) -> bool:
    """A 1x1 depthwise convolution (stride 1, no padding or pool) or a diagonal dense map: each
    neuron reads one input."""
    s = layer.synapse
    if s.kind == "dense":
        w = np.asarray(s.weight)
        return w.shape[0] == w.shape[1] and np.array_equal(w, np.diag(np.diag(w)))
    if s.kind != "conv2d" or s.pool or any(s.padding) or any(x != 1 for x in s.stride):
        return False
    w = np.asarray(s.weight)
    return (
        w.shape[1:] == (1, 1, 1)
        and s.groups == s.in_shape[0] == s.out_shape[0]
        and tuple(s.in_shape) == tuple(s.out_shape)
    )


def cuba_node(layer: IntLayer, dt: float) -> nir.CubaLIF:
    """The NIR CubaLIF reading of ``layer``'s integer CUBA neuron (module docstring)."""
    shape = tuple(layer.synapse.out_shape)
    syn_steps = du_to_tau_syn(layer.du)
    mem_steps = NO_LEAK_TAU_STEPS if layer.dv == 0 else dv_to_tau(layer.dv)
    return nir.CubaLIF(
        tau_syn=_full(shape, dt * syn_steps),
        tau_mem=_full(shape, dt * mem_steps),
        r=_full(shape, mem_steps),
        v_leak=_full(shape, 0.0),
        v_threshold=_full(shape, float(layer.vth)),
        v_reset=_full(shape, 0.0),
        w_in=_full(shape, syn_steps),
        metadata={"du": int(layer.du), "dv": int(layer.dv), "vth": int(layer.vth)},
    )


def _synapse_nodes(
    layer: IntLayer, k: int, prev_shape: tuple[int, ...], graded_input: bool
) -> list[tuple[str, nir.NIRNode]]:
    """The synapse of ``layer`` (program index ``k``) reading ``prev_shape``: NIR nodes."""
    s = layer.synapse
    where = f"layer {layer.name}"
    w = np.asarray(s.weight, dtype=np.float64) * 2.0**layer.weight_exp
    bias = _bias_into_current(layer)
    name = layer.name
    if k == 0 and graded_input and _one_to_one(layer) and not bias.any():
        diag = np.diag(w) if s.kind == "dense" else w.reshape(-1, 1, 1)
        gain = np.broadcast_to(diag, tuple(s.out_shape)).astype(np.float32)
        return [] if np.all(gain == 1) else [(f"{name}_scale", nir.Scale(scale=gain.copy()))]
    if s.kind == "dense":
        nodes: list[tuple[str, nir.NIRNode]] = []
        if len(prev_shape) > 1:
            nodes.append(
                (
                    f"{name}_flatten",
                    nir.Flatten(
                        input_type={"input": np.array(prev_shape)}, start_dim=0, end_dim=-1
                    ),
                )
            )
        affine = nir.Affine(weight=w.astype(np.float32), bias=bias.reshape(-1).astype(np.float32))
        return [*nodes, (f"{name}_affine", affine)]
    if s.kind == "conv2d":
        nodes = []
        if s.pool:
            k2 = np.array(s.pool)
            pool = nir.SumPool2d(kernel_size=k2, stride=k2, padding=np.array((0, 0)))
            nodes.append((f"{name}_pool", pool))
        conv = nir.Conv2d(
            input_shape=np.array(s.in_shape[1:]) // (np.array(s.pool) if s.pool else 1),
            weight=w.astype(np.float32),
            stride=np.array(s.stride),
            padding=np.array(s.padding),
            dilation=np.array((1, 1)),
            groups=int(s.groups),
            bias=bias.reshape(bias.shape[0], -1)[:, 0].astype(np.float32),
        )
        if bias.size and not np.all(bias == bias.reshape(bias.shape[0], -1)[:, :1, None]):
            raise ValueError(f"{where}: a per-neuron (not per-channel) bias has no Conv2d form")
        return [*nodes, (f"{name}_conv", conv)]
    raise ValueError(f"{where}: synapse kind {s.kind!r} has no NIR export here (dense, conv2d)")


def program_to_nir(
    program: IntProgram, *, dt: float = DEFAULT_DT, T: int | None = None
) -> nir.NIRGraph:
    """The NIR graph of a netx integer program (module docstring). Refuses, naming the layer,
    what has no CubaLIF reading: graphs, readouts, smoothed neurons, a_scale != 1."""
    dt = check_dt(dt)
    if not program.is_chain:
        raise ValueError("program: a graph (fan-in, recurrent edges) has no netx NIR export")
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type=np.array(program.input_shape))}
    edges: list[tuple[str, str]] = []
    prev, prev_shape = "input", tuple(program.input_shape)
    graded = program.input_kind == "graded"
    for layer in program.layers:
        if layer.has_delays:  # NIR 1.0 has no synaptic-delay node
            raise ValueError(
                f"layer {layer.name}: synaptic delays (up to {int(layer.delay.max())} steps) have "
                "no NIR form (NIR 1.0 has no delay node); run the .net with verify/deploy/profile"
            )
    for k, layer in enumerate(program.layers):
        where = f"layer {layer.name}"
        if layer.neuron != "lif" or layer.coef != 0 or layer.reset_delay:
            raise ValueError(f"{where}: only stock CUBA neurons have a NIR CubaLIF reading")
        if layer.a_scale != 1.0:
            raise ValueError(f"{where}: a_scale {layer.a_scale:g}; netx programs have 1")
        for name, node in [
            *_synapse_nodes(layer, k, prev_shape, graded),
            (layer.name, cuba_node(layer, dt)),
        ]:
            nodes[name] = node
            edges.append((prev, name))
            prev = name
        prev_shape = tuple(layer.synapse.out_shape)
    nodes["output"] = nir.Output(output_type=np.array(prev_shape))
    edges.append((prev, "output"))
    meta: dict[str, Any] = {
        "producer": PRODUCER,
        "format": "netx",
        "dt": dt,
        "input_shape": list(program.input_shape),
        "num_classes": program.num_classes,
        "input_kind": program.input_kind,
        "semantics": "float reading of netx's integer CUBA dynamics (neurodeploy netx_nir)",
    }
    if T is not None:
        meta["T"] = int(T)
    if "source" in program.meta:
        meta["source"] = str(program.meta["source"])
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def netx_to_nir(path: str | os.PathLike[str], *, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """Read a netx ``.net`` file and return its NIR graph (module docstring); T from the file's
    ``simulation/tSample`` when present."""
    from neurodeploy.converters.model_files import load_netx

    program, T = load_netx(path)
    return program_to_nir(program, dt=dt, T=T)


def export_netx_nir(
    path: str | os.PathLike[str], out: str | os.PathLike[str], *, dt: float = DEFAULT_DT
) -> nir.NIRGraph:
    """``neurodeploy export net.net -o model.nir``: write :func:`netx_to_nir` atomically."""
    from neurodeploy.converters.nir_export import write_graph

    graph = netx_to_nir(path, dt=dt)
    write_graph(graph, Path(out))
    return graph


def netx_float_model(program: IntProgram, *, dt: float = DEFAULT_DT) -> SpikingNet:
    """The float model of a netx program: :func:`program_to_nir` read by our NIR importer
    (:func:`~neurodeploy.converters.nir_import.nir_to_model`), what ``verify`` / ``deploy``
    compare the integer program with. The importer's warning that a time constant beyond the
    chip's 12-bit decay loses its leak is silenced: dv = 0 (no leak) is what such a node means
    here (NO_LEAK_TAU_STEPS)."""
    from neurodeploy.converters.nir_common import NIRDtWarning
    from neurodeploy.converters.nir_import import nir_to_model

    graph = program_to_nir(program, dt=dt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NIRDtWarning)
        return nir_to_model(graph, dt=dt)
