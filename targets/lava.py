"""The Lava target (first part): an integer program as a Lava process graph, run under
``Loihi2SimCfg(select_tag="fixed_pt")`` with Lava's bit-accurate models.

Mapping (verified against Lava 0.10 in tests/test_lava_reference.py):
- input: ``lava.proc.io.source.RingBuffer`` holding one sample, (neurons..., T); graded input
  uses ``num_message_bits=8`` on the first synapse;
- dense stage: ``Dense(weights, weight_exp)``; conv stage: ``Conv`` with the kernel transposed to
  Lava's (C_out, W, H, C_in) layout and flipped (Lava convolves, torch correlates), stride and
  padding in (W, H) order, and weights ``w << weight_exp`` because Lava's Conv ignores
  weight_exp (the quantiser keeps conv exponents >= 0); conv1d runs as a conv2d with H = 1;
- neuron: stock ``LIF(du, dv, vth, bias_mant, bias_exp)`` where the smoothing coefficient is 0,
  our :class:`~neurodeploy.targets.mps_lif.process.SmoothedLIF` process elsewhere (its fixed_pt
  model calls the same integer functions as the reference simulator);
- readout: the last Dense's output into a sink RingBuffer.
Every Dense/Conv delays by one step, so a run lasts T + (number of stages) steps and equals
``ReferenceTarget(program, latency=True)`` step for step. The runtime is always stopped
(try/finally), also on errors and KeyboardInterrupt.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neurodeploy.quant.program import IntLayer, IntProgram

LAVA_INSTALL = ("Lava is not installed in this environment. Run `bash scripts/setup_env.sh` (it installs lava-nc "
                "0.10.0 and lava-dl 0.6.0 with --no-deps --ignore-requires-python and patches them for Python 3.11).")


def _require_lava() -> None:
    try:
        import lava.magma.core.run_configs  # noqa: F401
    except ImportError as e:
        raise ImportError(LAVA_INSTALL) from e


def _lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Torch layout (C, H, W) / (C, L) / (n,) -> Lava's (W, H, C) / (L, 1, C) / (n,)."""
    if len(shape) == 3:
        c, h, w = shape
        return (w, h, c)
    if len(shape) == 2:
        c, length = shape
        return (length, 1, c)
    return tuple(shape)


def to_lava_layout(x: np.ndarray) -> np.ndarray:
    """One sample's data (T, *torch shape) -> Lava's (*lava shape, T)."""
    T = x.shape[0]
    if x.ndim == 4:      # (T, C, H, W) -> (W, H, C, T)
        return np.ascontiguousarray(x.transpose(3, 2, 1, 0))
    if x.ndim == 3:      # (T, C, L) -> (L, 1, C, T)
        return np.ascontiguousarray(x.transpose(2, 1, 0)[:, None, :, :])
    return np.ascontiguousarray(x.reshape(T, -1).T)


def source_data(x: np.ndarray, steps: int, layout=to_lava_layout, dtype=np.int32) -> np.ndarray:
    """One sample (T, ...) in a source RingBuffer's layout (neurons..., steps), zero after step T
    (the pipeline drains while the source sends nothing)."""
    lay = layout(np.asarray(x))
    data = np.zeros((*lay.shape[:-1], steps), dtype=dtype)
    data[..., : lay.shape[-1]] = lay
    return data


def from_lava_layout(a: np.ndarray, torch_shape: tuple[int, ...]) -> np.ndarray:
    """Lava's (*lava shape, T) -> (T, *torch shape)."""
    if len(torch_shape) == 3:
        return np.ascontiguousarray(a.transpose(3, 2, 1, 0))
    if len(torch_shape) == 2:
        return np.ascontiguousarray(a[:, 0].transpose(2, 1, 0))
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1]).T)


def torch_kernel_to_lava(w: np.ndarray) -> np.ndarray:
    """Torch kernel [C_out, C_in/g, kH, kW] (or [.., k] for 1D, as H = 1) -> Lava (C_out, kW, kH, C_in/g),
    spatially flipped (Lava convolves, torch correlates)."""
    w = np.asarray(w)
    if w.ndim == 3:
        w = w[:, :, None, :]
    return np.ascontiguousarray(w.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])


def conv_weight_to_lava(w: np.ndarray, weight_exp: int) -> np.ndarray:
    """Integer kernel for Lava's fixed-point Conv, with the (non-negative) exponent folded in."""
    if weight_exp < 0:
        raise ValueError(f"conv weight_exp {weight_exp} < 0 cannot run on Lava's Conv (it ignores weight_exp)")
    return torch_kernel_to_lava(np.asarray(w, dtype=np.int64) << weight_exp).astype(np.int32)


def dense_weight_to_lava(w: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Torch Linear weight over a flattened (C, H, W) input -> columns in Lava's (W, H, C) order."""
    w = np.asarray(w)
    if len(in_shape) == 3:
        c, h, ww = in_shape
        return np.ascontiguousarray(w.reshape(w.shape[0], c, h, ww).transpose(0, 3, 2, 1).reshape(w.shape[0], -1))
    if len(in_shape) == 2:
        c, length = in_shape
        return np.ascontiguousarray(w.reshape(w.shape[0], c, length).transpose(0, 2, 1).reshape(w.shape[0], -1))
    return w


STOP_TIMEOUT_S = 20.0


def stop_runtime(proc, started_before: set | None = None, timeout: float = STOP_TIMEOUT_S) -> None:
    """``proc.stop()``, but never hang and never leak: after an exception inside a run Lava's
    stop() can wait forever on a dead child, and a runtime that was created but never started
    leaves its system processes behind. Worker processes started since ``started_before`` that
    are still alive after stop (and a short grace period) are killed, with a warning."""
    import multiprocessing as mp
    import threading
    import warnings

    if getattr(proc, "runtime", None) is not None:
        t = threading.Thread(target=proc.stop, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            warnings.warn(f"Lava's stop() did not return within {timeout:g} s", RuntimeWarning, stacklevel=2)
    if started_before is None:
        return
    import time

    def alive_(c) -> bool:
        try:
            return c.is_alive()
        except ValueError:  # closed by Lava already
            return False

    leftover = [c for c in mp.active_children() if c not in started_before]
    deadline = time.monotonic() + 2.0
    while any(alive_(c) for c in leftover) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [c for c in leftover if alive_(c)]
    for child in alive:
        try:
            child.kill()
        except ValueError:
            pass
    deadline = time.monotonic() + 5.0
    while any(alive_(c) for c in alive) and time.monotonic() < deadline:  # is_alive() reaps them
        time.sleep(0.05)
    if alive:
        warnings.warn(f"killed {len(alive)} Lava worker processes left after stop()", RuntimeWarning, stacklevel=2)


@dataclass
class LavaRun:
    spikes: list[np.ndarray]          # per neuron layer, (steps, *torch shape), uint8
    output: np.ndarray | None         # readout Dense output per step (steps, classes), without bias
    v: list[np.ndarray] | None        # per neuron layer (steps, *torch shape), post-reset, x64 domain
    seconds: dict[str, float] | None = None   # "build", "compile", "run", "read", "stop"


class LavaTarget:
    """Build the Lava graph of an integer program and run one sample at a time."""

    name = "lava"

    def __init__(self, program: IntProgram) -> None:
        _require_lava()
        program.validate()  # refuse before Lava starts anything
        self.program = program

    def _synapse(self, layer: IntLayer, graded: bool, prev_lava_shape: tuple[int, ...]):
        from lava.proc.conv.process import Conv
        from lava.proc.dense.process import Dense
        bits = self.program.input_bits if graded else 0
        if layer.kind == "dense":
            w = dense_weight_to_lava(layer.weight, layer.in_shape).astype(np.int32)
            return Dense(weights=w, weight_exp=int(layer.weight_exp), num_message_bits=bits)
        stride = tuple(layer.stride)[::-1] if layer.kind == "conv2d" else (int(layer.stride[0]), 1)
        pad = tuple(layer.padding)[::-1] if layer.kind == "conv2d" else (int(layer.padding[0]), 0)
        return Conv(weight=conv_weight_to_lava(layer.weight, layer.weight_exp), input_shape=prev_lava_shape,
                    stride=stride, padding=pad, groups=int(layer.groups), num_message_bits=bits)

    def run(self, x_int: np.ndarray, record_v: bool = False, steps: int | None = None) -> LavaRun:
        """Run one sample (T, *input_shape) of integer input for T + depth steps (or ``steps``)."""
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg
        from lava.proc.io.sink import RingBuffer as Sink
        from lava.proc.io.source import RingBuffer as Source
        from lava.proc.lif.process import LIF
        from lava.proc.monitor.process import Monitor

        x_int = np.asarray(x_int)
        if tuple(x_int.shape[1:]) != tuple(self.program.input_shape):
            raise ValueError(f"input: expected (T, {', '.join(map(str, self.program.input_shape))}), got {x_int.shape}")
        T = x_int.shape[0]
        depth = len(self.program.layers)
        steps = steps or T + depth
        src = Source(data=source_data(x_int, steps))
        prev_port, prev_shape = src.s_out, _lava_shape(self.program.input_shape)
        lifs, sinks, mons, readout_sink = [], [], [], None
        for k, layer in enumerate(self.program.layers):
            syn = self._synapse(layer, k == 0 and self.program.input_kind == "graded", prev_shape)
            port = prev_port.flatten() if layer.kind == "dense" and len(prev_shape) > 1 else prev_port
            port.connect(syn.s_in)
            if layer.neuron is None:
                readout_sink = Sink(shape=syn.a_out.shape, buffer=steps)
                syn.a_out.connect(readout_sink.a_in)
                break
            shape = _lava_shape(layer.out_shape)
            bias = np.asarray(layer.bias_mant, dtype=np.int32).reshape(layer.out_shape)
            bias = bias if len(layer.out_shape) == 1 else to_lava_layout(bias[None])[..., 0]
            if layer.neuron == "mps" and layer.coef != 0:
                from neurodeploy.targets.mps_lif.process import SmoothedLIF
                lif = SmoothedLIF(shape=shape, dv=int(layer.dv), vth=int(layer.vth), coef=int(layer.coef),
                                  bias_mant=bias, bias_exp=int(layer.bias_exp), name=f"{layer.name}")
            else:
                lif = LIF(shape=shape, du=int(layer.du), dv=int(layer.dv), vth=int(layer.vth), bias_mant=bias,
                          bias_exp=int(layer.bias_exp))
            syn.a_out.connect(lif.a_in)
            sink = Sink(shape=shape, buffer=steps)
            lif.s_out.connect(sink.a_in)
            lifs.append((lif, layer))
            sinks.append(sink)
            if record_v:
                m = Monitor()
                m.probe(lif.m if hasattr(lif, "coef") else lif.v, steps)
                mons.append(m)
            prev_port, prev_shape = lif.s_out, shape
        import multiprocessing as mp
        import time
        sec: dict[str, float] = {}
        before = set(mp.active_children())
        t0 = time.perf_counter()
        try:
            exe = src.compile(run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            src.create_runtime(executable=exe)
            sec["compile"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            src.run(condition=RunSteps(num_steps=steps))
            sec["run"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            spikes = [from_lava_layout(s.data.get().astype(np.int64), l.out_shape).astype(np.uint8)
                      for s, (_, l) in zip(sinks, lifs)]
            out = readout_sink.data.get().astype(np.int64).T if readout_sink is not None else None
            v = None
            if record_v:
                v = []
                for m, (lif, l) in zip(mons, lifs):
                    var = "m" if hasattr(lif, "coef") else "v"  # the state the reference records
                    arr = m.get_data()[lif.name][var].astype(np.int64)  # (steps, *lava shape)
                    v.append(from_lava_layout(np.moveaxis(arr, 0, -1), l.out_shape))
            sec["read"] = time.perf_counter() - t0
        finally:
            t0 = time.perf_counter()
            stop_runtime(src, before)
            sec["stop"] = time.perf_counter() - t0
        return LavaRun(spikes, out, v, sec)
