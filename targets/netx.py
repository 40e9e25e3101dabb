"""lava-dl netx HDF5 export of integer programs with stock neurons (coefficient 0): the path to
real Loihi 2 through ``lava.lib.dl.netx.hdf5.Network``.

Layout (what netx 0.6 reads, lava/lib/dl/netx/hdf5.py): groups ``layer/0 .. layer/n`` with a
``type`` dataset ('input', 'conv', 'flatten', 'dense'), ``shape`` (torch order, netx reverses
it to (W, H, C)), ``weight`` (torch layout; netx flips and transposes conv kernels itself),
``bias`` (per-neuron mantissa; netx uses bias_exp = 6) and ``neuron/{type, iDecay, vDecay,
vThMant, refDelay, gradedSpike}`` with iDecay = du + 1. A dense layer without ``neuron`` is a
non-leaky integrator (our readout). netx derives each synapse's weight exponent from the stored
8-bit weights, so programs must come from ``quantize_model(model, LOIHI2_NETX)`` (exponent 0, bias
exponent 6). Smoothed neurons are refused: fine-tune the coefficient to 0 first (the
hardware-aware fine-tuning issue), then export. netx takes sequential layers only: a graph
program (a layer reading other than its predecessor, or with further edges: fan-in, skips,
recurrence) is refused, naming the first such layer and edge (:func:`check_sequential`).
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from neurodeploy.neuron.hardware import NETX_BIAS_EXP, NETX_IDECAY_OFFSET
from neurodeploy.quant.program import INPUT, IntLayer, IntProgram
from neurodeploy.targets.base import TargetResult, check_input
from neurodeploy.targets.lava import EXTRACT_BUFFER


def _type(g: h5py.Group, name: str) -> None:
    g.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def check_sequential(program: IntProgram) -> None:
    """Refuse a graph program: netx (lava-dl 0.6) holds sequential layers only, each reading the
    one before it. The error names the first layer whose input is not the previous layer (or,
    for the first, the network input), or its first further edge (fan-in, skip, recurrent)."""
    prev = INPUT
    for layer in program.layers:
        if layer.source is not None and layer.source != prev:
            raise ValueError(
                f"layer {layer.name}: reads {layer.source}, not the previous layer {prev}; netx "
                "holds sequential layers only: run this graph program on the reference or Lava "
                "target"
            )
        if layer.extra:
            edge = layer.extra[0]
            kind = "recurrent edge" if edge.recurrent else "further edge"
            raise ValueError(
                f"layer {layer.name}: {kind} from {edge.source} ({len(layer.extra)} edge(s) beyond "
                "its own synapse); netx holds sequential layers only: run this graph program on "
                "the reference or Lava target"
            )
        prev = layer.name


def export_netx(program: IntProgram, path: str | os.PathLike[str]) -> Path:
    """Write ``program`` as a netx HDF5 file; refuse what netx cannot express, naming the layer."""
    check_sequential(program)
    program.validate()
    for layer in program.layers:
        where = f"layer {layer.name}"
        if layer.has_delays:
            raise ValueError(
                f"{where}: synaptic delays are not exported to netx (the netx target runs "
                "Lava's DelayDense without sample resets); use the lava or reference target"
            )
        if layer.neuron == "mps" and layer.coef != 0:
            raise ValueError(
                f"{where}: smoothed-reset neurons (coefficient {layer.coef}) have no netx form; "
                "fine-tune the smoothing coefficient to 0 (stock-neuron option of the fine-tuning "
                "step) and quantise again"
            )
        if layer.u_init_bias:
            raise ValueError(
                f"{where}: the current starts at -bias (u_init_bias, a CubaLIF's exact bias); "
                "netx's HDF5 has no initial current: quantise for the netx variant of the spec "
                "(loihi2-netx), which keeps the bias's steady state from step 0"
            )
        if layer.weight_exp != 0:
            raise ValueError(
                f"{where}: weight_exp {layer.weight_exp}; netx derives exponents from the weights: "
                "quantise for the netx variant of the spec (loihi2-netx)"
            )
        if layer.neuron is not None and layer.bias_exp != NETX_BIAS_EXP and np.any(layer.bias_mant):
            raise ValueError(
                f"{where}: bias_exp {layer.bias_exp}; netx uses {NETX_BIAS_EXP}: "
                "quantise for the netx variant of the spec (loihi2-netx)"
            )
    path = Path(path)
    with h5py.File(path, "w") as f:
        top = f.create_group("layer")
        i = 0
        g = top.create_group(str(i))
        _type(g, "input")
        g.create_dataset("shape", data=np.array(_torch3(program.input_shape)))
        prev_shape = tuple(program.input_shape)
        for layer in program.layers:
            if layer.kind == "dense" and len(prev_shape) > 1:
                i += 1
                g = top.create_group(str(i))
                _type(g, "flatten")
                g.create_dataset("shape", data=np.array([int(np.prod(prev_shape))]))
            i += 1
            g = top.create_group(str(i))
            syn = layer.synapse.pool_folded()  # netx has no pooling synapse: the equivalent kernel
            if layer.kind == "dense":
                _type(g, "dense")
                g.create_dataset("shape", data=np.array(layer.out_shape))
                g.create_dataset("weight", data=np.asarray(syn.weight, dtype=np.int32))
            else:
                _type(g, "conv")
                w = np.asarray(syn.weight, dtype=np.int32)
                stride, pad = tuple(syn.stride), tuple(syn.padding)
                if layer.kind == "conv1d":
                    w, stride, pad = w[:, :, None, :], (1, stride[0]), (0, pad[0])
                g.create_dataset("shape", data=np.array(_torch3(layer.out_shape)))
                g.create_dataset("weight", data=w)
                g.create_dataset("stride", data=np.array(stride))
                g.create_dataset("padding", data=np.array(pad))
                g.create_dataset("dilation", data=np.array((1, 1)))
                g.create_dataset("groups", data=int(syn.groups))
            if layer.neuron is not None:
                g.create_dataset(
                    "bias",
                    data=np.asarray(layer.bias_mant, dtype=np.int32).reshape(-1)
                    if layer.kind == "dense"
                    else _bias_whc(layer),
                )
                n = g.create_group("neuron")
                n.create_dataset("type", (1,), "S10", [b"CUBA"])
                n.create_dataset("iDecay", data=int(layer.du) + NETX_IDECAY_OFFSET)
                n.create_dataset("vDecay", data=int(layer.dv))
                n.create_dataset("vThMant", data=int(layer.vth))
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=False)
            prev_shape = tuple(layer.out_shape)
    return path


def _torch3(shape: tuple[int, ...]) -> tuple[int, ...]:
    if len(shape) == 2:  # (C, L) -> (C, 1, L)
        return (shape[0], 1, shape[1])
    return tuple(shape)


def _bias_whc(layer: IntLayer) -> np.ndarray:
    b = np.asarray(layer.bias_mant, dtype=np.int32).reshape(_torch3(layer.out_shape))
    return np.ascontiguousarray(b.transpose(2, 1, 0))


def _flat_layout(x: np.ndarray) -> np.ndarray:
    """Data (N, *torch shape) -> (neurons in torch order, N): what netx feeds a dense first layer."""
    return np.ascontiguousarray(x.reshape(x.shape[0], -1).T)


class NetxTarget:
    """Run an exported netx HDF5 network in Lava fixed_pt, a whole batch in one runtime, with
    the results of :class:`neurodeploy.targets.lava.LavaTarget` (spikes of every neuron layer but
    the readout, which netx builds as a neuron of its own; no states).

    netx's own ``reset_interval`` resets layer k at an offset of k steps and keeps the synapses'
    one-step buffers, a timeline that is neither ours nor the reference's. So the network is
    built by netx with ``reset_interval`` = P (LIFReset neurons), then every neuron's offset is
    set to each sample's first step and every synapse (Lava's Dense/Conv, as netx built them)
    runs the models of :mod:`neurodeploy.targets.lava_reset` (Lava's Dense/Conv arithmetic plus
    the buffer reset; ``exception_proc_model_map``): weights, decays, thresholds and biases stay
    as netx read them from the file, which is what this target checks. Spikes are received
    step by step through Lava's Extractor, as in :func:`neurodeploy.targets.lava.run_graph`."""

    name = "netx"
    latency = True

    def __init__(self, program: IntProgram, path: str | os.PathLike[str] | None = None) -> None:
        import tempfile

        self.program = program
        if path is None:
            self._tmp = tempfile.TemporaryDirectory()
            path = Path(self._tmp.name) / "net.h5"
        self.path = export_netx(program, path)

    def run(
        self, x_int: np.ndarray, *, steps: int | None = None, record_states: bool = False
    ) -> TargetResult:
        """Run integer input (T, B, *input_shape) for ``steps`` steps per sample (default
        T + depth), every sample from zero state, in one runtime."""
        import multiprocessing as mp
        import time

        from lava.lib.dl.netx.hdf5 import Network
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
        from lava.proc.io.extractor import Extractor
        from lava.proc.io.source import RingBuffer as Source

        from neurodeploy.targets.lava import (
            RESET_OFFSET,
            extractor_models,
            run_receiving,
            stop_runtime,
            stream_data,
            to_lava_layout,
            unstream,
        )
        from neurodeploy.targets.lava_reset.models import (
            PyResetConvModelFixed,
            PyResetDenseModelBitAcc,
        )

        if record_states:
            raise ValueError(
                "target netx: states cannot be recorded (netx builds its own neurons); "
                "use target 'lava'"
            )
        x = np.asarray(x_int)
        T, B = check_input(self.program.input_shape, x.shape)
        steps = steps if steps is not None else T + len(self.program.layers)
        sec: dict[str, float] = {}
        t0 = time.perf_counter()
        # netx feeds a dense first layer the flat input (torch order), a conv one (W, H, C)
        dense_first = self.program.layers[0].kind == "dense"
        data = stream_data(x, steps, layout=_flat_layout if dense_first else to_lava_layout)
        graded = self.program.input_kind == "graded"
        net = Network(
            net_config=str(self.path),
            input_message_bits=self.program.input_bits if graded else 0,
            reset_interval=steps,
        )
        neuron_layers = [l for l in self.program.layers if l.neuron is not None]
        for block in net.layers:
            block.neuron.proc_params.overwrite("reset_offset", RESET_OFFSET)
            block.synapse.proc_params["reset_interval"] = steps
            block.synapse.proc_params["reset_offset"] = RESET_OFFSET
        src = Source(data=data)
        src.s_out.connect(net.inp)
        lifs = [block.neuron for block in net.layers[: len(neuron_layers)]]
        sinks = [Extractor(shape=n.s_out.shape, buffer_size=EXTRACT_BUFFER) for n in lifs]
        for n, e in zip(lifs, sinks, strict=True):
            n.s_out.connect(e.in_port)
        sec["build"] = time.perf_counter() - t0
        models = {Dense: PyResetDenseModelBitAcc, Conv: PyResetConvModelFixed, **extractor_models()}
        cfg = Loihi2SimCfg(select_tag="fixed_pt", exception_proc_model_map=models)
        before = set(mp.active_children())
        t0 = time.perf_counter()
        try:
            exe = net.compile(run_cfg=cfg)
            net.create_runtime(executable=exe)
            sec["compile"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            bufs = run_receiving(net, sinks, [np.uint8] * len(sinks), B * steps)
            sec["run"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            spikes = [
                unstream(np.moveaxis(buf, 0, -1), l.out_shape, B)
                for buf, l in zip(bufs, neuron_layers, strict=True)
            ]
            sec["read"] = time.perf_counter() - t0
        finally:
            t0 = time.perf_counter()
            stop_runtime(net, before)
            sec["stop"] = time.perf_counter() - t0
        return TargetResult(
            spikes=spikes, output=None, layer_names=[l.name for l in neuron_layers], seconds=sec
        )


def run_netx_file(
    path: str | os.PathLike[str], x: np.ndarray, steps: int, *, graded: bool
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run any netx ``.net`` file with lava-dl's own ``hdf5.Network`` in Lava fixed_pt (one
    sample, no resets): the yardstick for :func:`neurodeploy.converters.netx_import.netx_to_program`.

    ``x`` (T, *input_shape) is in our (C, H, W) order (Lava holds (W, H, C)). With ``graded``
    the network has an ``input`` layer, whose input port netx leaves open: x(t) goes straight to
    the input neuron's ``a_in`` at step t + 1, which is where the imported program's one-to-one
    input synapse delivers it; otherwise x(t) goes to ``net.inp`` at step t. Returns, per netx
    block, its neuron's spikes (steps, *shape in our order) and its final voltage ``v`` (shape
    in our order; the read-out of a non-spiking integrator such as PilotNet's last layer)."""
    from lava.lib.dl.netx.hdf5 import Network
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    def ours(a: np.ndarray) -> np.ndarray:  # (*lava shape[, steps]) -> reversed lava axes
        n = a.ndim
        return np.transpose(a, tuple(range(n - 1, -1, -1)))

    x = np.asarray(x)
    net = Network(net_config=str(path))
    data = np.zeros((*x.shape[1:][::-1], steps), dtype=np.int32)
    first = 1 if graded else 0
    if first + x.shape[0] > steps:
        raise ValueError(f"run_netx_file: {x.shape[0]} input steps do not fit in {steps} steps")
    data[..., first : first + x.shape[0]] = ours(x)  # (T, C, H, W) -> (W, H, C, T)
    src = Source(data=data)
    src.s_out.connect(net.in_layer.neuron.a_in if graded else net.inp)
    sinks = []
    for block in net.layers:
        sink = Sink(shape=block.neuron.s_out.shape, buffer=steps)
        block.neuron.s_out.connect(sink.a_in)
        sinks.append(sink)
    try:
        net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
        spikes = [np.asarray(s.data.get()) for s in sinks]
        volts = [np.asarray(block.neuron.v.get()) for block in net.layers]
    finally:
        net.stop()
    # sink data (*lava shape, steps) -> (steps, *our shape)
    spikes = [np.transpose(s, (s.ndim - 1, *range(s.ndim - 2, -1, -1))) for s in spikes]
    return spikes, [ours(v) for v in volts]
