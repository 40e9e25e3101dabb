"""lava-dl netx HDF5 export of integer programs with stock neurons (coefficient 0): the path to
real Loihi 2 through ``lava.lib.dl.netx.hdf5.Network``.

Layout (what netx 0.6 reads, lava/lib/dl/netx/hdf5.py): groups ``layer/0 .. layer/n`` with a
``type`` dataset ('input', 'conv', 'flatten', 'dense'), ``shape`` (torch order, netx reverses
it to (W, H, C)), ``weight`` (torch layout; netx flips and transposes conv kernels itself),
``bias`` (per-neuron mantissa; netx uses bias_exp = 6) and ``neuron/{type, iDecay, vDecay,
vThMant, refDelay, gradedSpike}`` with iDecay = du + 1. A dense layer without ``neuron`` is a
non-leaky integrator (our readout). netx derives each synapse's weight exponent from the stored
8-bit weights, so programs must come from ``quantize_model(..., netx=True)`` (exponent 0, bias
exponent 6). Smoothed neurons are refused: fine-tune the coefficient to 0 first (the
hardware-aware fine-tuning issue), then export.
"""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np

from neurodeploy.quant.program import IntProgram
from neurodeploy.quant.quantize import NETX_BIAS_EXP


def _type(g: h5py.Group, name: str) -> None:
    g.create_dataset("type", (1,), "S10", [name.encode("ascii")])


def export_netx(program: IntProgram, path: str | os.PathLike[str]) -> Path:
    """Write ``program`` as a netx HDF5 file; refuse what netx cannot express, naming the layer."""
    program.validate()
    for layer in program.layers:
        where = f"layer {layer.name}"
        if layer.neuron == "mps" and layer.coef != 0:
            raise ValueError(f"{where}: smoothed-reset neurons (coefficient {layer.coef}) have no netx form; "
                             "fine-tune the smoothing coefficient to 0 (stock-neuron option of the fine-tuning "
                             "step) and quantise again")
        if layer.weight_exp != 0:
            raise ValueError(f"{where}: weight_exp {layer.weight_exp}; netx derives exponents from the weights: "
                             "quantise with netx=True")
        if layer.neuron is not None and layer.bias_exp != NETX_BIAS_EXP and np.any(layer.bias_mant):
            raise ValueError(f"{where}: bias_exp {layer.bias_exp}; netx uses {NETX_BIAS_EXP}: quantise with netx=True")
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
            if layer.kind == "dense":
                _type(g, "dense")
                g.create_dataset("shape", data=np.array(layer.out_shape))
                g.create_dataset("weight", data=np.asarray(layer.weight, dtype=np.int32))
            else:
                _type(g, "conv")
                w = np.asarray(layer.weight, dtype=np.int32)
                stride, pad = tuple(layer.stride), tuple(layer.padding)
                if layer.kind == "conv1d":
                    w, stride, pad = w[:, :, None, :], (1, stride[0]), (0, pad[0])
                g.create_dataset("shape", data=np.array(_torch3(layer.out_shape)))
                g.create_dataset("weight", data=w)
                g.create_dataset("stride", data=np.array(stride))
                g.create_dataset("padding", data=np.array(pad))
                g.create_dataset("dilation", data=np.array((1, 1)))
                g.create_dataset("groups", data=int(layer.groups))
            if layer.neuron is not None:
                g.create_dataset("bias", data=np.asarray(layer.bias_mant, dtype=np.int32).reshape(-1)
                                 if layer.kind == "dense" else _bias_whc(layer))
                n = g.create_group("neuron")
                n.create_dataset("type", (1,), "S10", [b"CUBA"])
                n.create_dataset("iDecay", data=int(layer.du) + 1)
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


def _bias_whc(layer) -> np.ndarray:
    b = np.asarray(layer.bias_mant, dtype=np.int32).reshape(_torch3(layer.out_shape))
    return np.ascontiguousarray(b.transpose(2, 1, 0))


class NetxTarget:
    """Run an exported netx HDF5 network in Lava fixed_pt, one sample at a time; same result type
    as :class:`neurodeploy.targets.lava.LavaTarget` (spikes of every neuron layer but the readout)."""

    name = "netx"

    def __init__(self, program: IntProgram, path: str | os.PathLike[str] | None = None) -> None:
        import tempfile
        self.program = program
        if path is None:
            self._tmp = tempfile.TemporaryDirectory()
            path = Path(self._tmp.name) / "net.h5"
        self.path = export_netx(program, path)

    def run(self, x_int: np.ndarray):
        import multiprocessing as mp

        from lava.lib.dl.netx.hdf5 import Network
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source

        from neurodeploy.targets.lava import LavaRun, from_lava_layout, source_data, stop_runtime, to_lava_layout

        x = np.asarray(x_int)
        steps = x.shape[0] + len(self.program.layers)
        # netx feeds a dense first layer the flat input (torch order), a conv one (W, H, C)
        lay = (lambda a: a.reshape(a.shape[0], -1).T) if self.program.layers[0].kind == "dense" else to_lava_layout
        data = source_data(x, steps, lay)
        graded = self.program.input_kind == "graded"
        net = Network(net_config=str(self.path), input_message_bits=self.program.input_bits if graded else 0)
        src = Source(data=data)
        src.s_out.connect(net.inp)
        neuron_layers = [l for l in self.program.layers if l.neuron is not None]
        lifs = [block.neuron for block in net.layers[: len(neuron_layers)]]
        sinks = [Sink(shape=n.s_out.shape, buffer=steps) for n in lifs]
        for n, s in zip(lifs, sinks):
            n.s_out.connect(s.a_in)
        before = set(mp.active_children())
        try:
            net.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            spikes = [from_lava_layout(s.data.get().astype(np.int64), l.out_shape).astype(np.uint8)
                      for s, l in zip(sinks, neuron_layers)]
        finally:
            stop_runtime(net, before)
        return LavaRun(spikes, None, None)
