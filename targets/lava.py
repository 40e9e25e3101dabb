"""The Lava target: an integer program as a Lava process graph, run under
``Loihi2SimCfg(select_tag="fixed_pt")`` with Lava's bit-accurate models, a whole batch in one
runtime. The graph builder (:func:`build_graph`) also serves the float model under
``floating_pt`` (:mod:`neurodeploy.measure.lava_conformance`).

Mapping (verified against Lava 0.10 in tests/test_lava_reference.py):
- input: ``lava.proc.io.source.RingBuffer`` holding the batch back to back, (neurons..., B * P);
  graded input uses ``num_message_bits = input_bits`` on the first synapse;
- dense stage: ``Dense(weights, weight_exp)``; conv stage: ``Conv`` with the kernel transposed to
  Lava's (C_out, W, H, C_in) layout and flipped (Lava convolves, torch correlates), stride and
  padding in (W, H) order, and weights ``w << weight_exp`` because Lava's Conv ignores
  weight_exp (the quantiser keeps conv exponents >= 0); conv1d runs as a conv2d with H = 1;
- neuron: stock ``LIFReset(du, dv, vth, bias_mant, bias_exp)`` (Lava's LIF plus a periodic state
  reset) where the smoothing coefficient is 0, our
  :class:`~neurodeploy.targets.mps_lif.process.SmoothedLIF` process elsewhere (its fixed_pt
  model calls the same integer functions as the reference simulator); a ``reset_delay`` layer
  (snnTorch's delayed reset) runs our
  :class:`~neurodeploy.targets.refractory.process.RefractoryLIF` (the LIF plus one refractory
  step, fixed_pt only), and so does a ``u_init_bias`` layer (a CubaLIF whose current starts at
  -bias, at t = 0 and at each sample boundary, where LIFReset would zero it; with
  ``refractory=False`` it is Lava's LIF bit for bit otherwise);
- readout: the last Dense's output; the readout bias is added on reading; an LI readout
  (``readout_kind`` "li"): the Dense feeds a ``LIFReset`` whose threshold it cannot reach (the
  quantiser's bound) and whose ``v`` a ``VarWire`` reads every step as the output;
- recording: every neuron layer's spikes and the readout through ``lava.proc.io.extractor.
  Extractor`` channels, received step by step while the runtime runs; states (optional) through
  ``VarWire`` taps on the state variables, received the same way.

Graph programs (:mod:`neurodeploy.quant.program`: ``IntLayer.source``, ``IntLayer.extra``):
- fan-in: every synapse into a layer is its own Dense/Conv process, all connected to the one
  ``a_in`` (or the readout's Extractor); Lava's ``PyInPortVectorDense.recv`` adds the data of
  every connection point-wise (lava-nc 0.10, magma/core/model/py/ports.py), so the neuron sees
  the sum of the currents, as the reference does;
- a recurrent self-loop: a Dense/Conv from the layer's ``s_out`` back to its own ``a_in``; Lava's
  one-step synapse latency delivers s(t - 1), zero at the sample's first step (the reset);
- latency alignment: depth(input) = 0, depth(L) = 1 + max over L's feed-forward sources
  (:func:`graph_depths`); a feed-forward synapse src -> L reads src ``depth(L) - depth(src) - 1``
  steps later than Lava's own one step. From a layer: through that many relay stages, each an
  identity synapse (weight 2) into stock LIF neurons with du = dv = 4095, vth = 0, which pass a
  binary spike on exactly one step later (proof in :func:`_relay`; shared by every edge of the
  source that needs them; a 1x1 depthwise Conv for conv-shaped layers, so that they cost
  O(neurons)). From the input (binary or graded): a second source holding the same data that
  many steps later. Lava 0.10's ``DelayDense`` was not used: it has no conv form, and it would
  need a reset of its own; a relay is stock Lava throughout. A chain needs no relays and builds
  the same processes as before graphs.

Batches (one runtime): every Dense/Conv delays by one step, so one sample lasts P = T + depth
steps (depth = the number of synaptic layers of a chain, the largest depth of a graph) and
equals ``ReferenceTarget(program, latency=True)`` step for step. Sample b occupies global
steps [b P, (b + 1) P). At its first step every neuron layer (relays too) zeroes its state
(Lava's ``LIFReset``, ``SmoothedLIF(reset_interval=P)``) and every synapse sends zeros instead
of its one-step buffer, which still holds sample b - 1's last spikes
(:mod:`neurodeploy.targets.lava_reset`): all layers reset at the same step, because with Lava's
latency layer k integrates its bias alone for its first k + 1 steps, as the reference does. (A
reset staggered by layer depth, as lava-dl netx's ``reset_interval`` does, gives a different
timeline.) Each sample then runs exactly as alone in a fresh runtime; build, compile and stop
are paid once per batch. The runtime is always stopped (try/finally), also on errors and
KeyboardInterrupt, and a run leaves nothing behind (tests/test_lava_soak.py): its worker
processes are started ignoring SIGINT (:func:`sigint_to_caller_only`: a terminal's Ctrl-C
interrupts the caller, which stops them in order), its extractors' receiving threads are
joined (:func:`close_extractor`), VarWires' shared-memory managers stopped
(:func:`close_var_wire`), and its processes dropped from Lava's global registries with the
logging handlers Lava added (:class:`LavaLedger`, :func:`forget_processes`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from neurodeploy.quant.program import INPUT, IntEdge, IntLayer, IntProgram
from neurodeploy.quant.synapse import Synapse
from neurodeploy.targets.base import TargetResult, check_input
from neurodeploy.targets.lava_reset.exact_conv import CONV_EXACT, check_conv

LAVA_INSTALL = (
    "Lava is not installed in this environment. Run `bash scripts/setup_env.sh` (it "
    "installs lava-nc 0.10.0 and lava-dl 0.6.0 with --no-deps --ignore-requires-python "
    "and patches them for Python 3.11)."
)
FIXED_PT = "fixed_pt"
FLOATING_PT = "floating_pt"
STOP_TIMEOUT_S = 20.0
# a sample's first step is the step with time_step % P == RESET_OFFSET (Lava counts time_step from 1)
RESET_OFFSET = 1
EXTRACT_BUFFER = 64  # steps an extractor's channel holds before the network waits for the host


def _require_lava() -> None:
    try:
        import lava.magma.core.run_configs  # noqa: F401
    except ImportError as e:
        raise ImportError(LAVA_INSTALL) from e


# ---------------------------------------------------------------------------------------------
# layouts: torch (T, C, H, W) / (T, C, L) / (T, n) <-> Lava (W, H, C, T) / (L, 1, C, T) / (n, T)
# ---------------------------------------------------------------------------------------------
def lava_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Torch layout (C, H, W) / (C, L) / (n,) -> Lava's (W, H, C) / (L, 1, C) / (n,)."""
    if len(shape) == 3:
        c, h, w = shape
        return (w, h, c)
    if len(shape) == 2:
        c, length = shape
        return (length, 1, c)
    return tuple(shape)


def to_lava_layout(x: np.ndarray) -> np.ndarray:
    """Data (N, *torch shape), N steps -> Lava's (*lava shape, N)."""
    n = x.shape[0]
    if x.ndim == 4:  # (N, C, H, W) -> (W, H, C, N)
        return np.ascontiguousarray(x.transpose(3, 2, 1, 0))
    if x.ndim == 3:  # (N, C, L) -> (L, 1, C, N)
        return np.ascontiguousarray(x.transpose(2, 1, 0)[:, None, :, :])
    return np.ascontiguousarray(x.reshape(n, -1).T)


def from_lava_layout(a: np.ndarray, torch_shape: tuple[int, ...]) -> np.ndarray:
    """Lava's (*lava shape, N) -> (N, *torch shape)."""
    if len(torch_shape) == 3:
        return np.ascontiguousarray(a.transpose(3, 2, 1, 0))
    if len(torch_shape) == 2:
        return np.ascontiguousarray(a[:, 0].transpose(2, 1, 0))
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1]).T)


def stream_data(
    x: np.ndarray,
    steps: int,
    *,
    layout: Callable[[np.ndarray], np.ndarray] = to_lava_layout,
    dtype: type = np.int32,
) -> np.ndarray:
    """A batch (T, B, *shape) as one source RingBuffer's data (*lava shape, B * steps): sample b
    at columns [b * steps, b * steps + T), zeros after its T steps (the pipeline drains while
    the source sends nothing); T > steps is cut to ``steps``."""
    x = np.asarray(x)
    T, B = x.shape[:2]
    padded: np.ndarray = np.zeros((B, steps, *x.shape[2:]), dtype=dtype)
    n = min(T, steps)
    padded[:, :n] = np.moveaxis(x[:n], 0, 1)
    return layout(padded.reshape(B * steps, *x.shape[2:]))


def unstream(a: np.ndarray, torch_shape: tuple[int, ...], batch: int) -> np.ndarray:
    """Recorded data (*lava shape, B * steps) -> (steps, B, *torch shape)."""
    flat = from_lava_layout(a, torch_shape)  # (B * steps, *torch shape)
    return np.ascontiguousarray(np.swapaxes(flat.reshape(batch, -1, *flat.shape[1:]), 0, 1))


def torch_kernel_to_lava(w: np.ndarray) -> np.ndarray:
    """Torch kernel [C_out, C_in/g, kH, kW] (or [.., k] for 1D, as H = 1) -> Lava
    (C_out, kW, kH, C_in/g), spatially flipped (Lava convolves, torch correlates)."""
    w = np.asarray(w)
    if w.ndim == 3:
        w = w[:, :, None, :]
    return np.ascontiguousarray(w.transpose(0, 3, 2, 1)[:, ::-1, ::-1, :])


def dense_weight_to_lava(w: np.ndarray, in_shape: tuple[int, ...]) -> np.ndarray:
    """Torch Linear weight over a flattened (C, H, W) input -> columns in Lava's (W, H, C) order."""
    w = np.asarray(w)
    if len(in_shape) == 3:
        c, h, ww = in_shape
        return np.ascontiguousarray(
            w.reshape(w.shape[0], c, h, ww).transpose(0, 3, 2, 1).reshape(w.shape[0], -1)
        )
    if len(in_shape) == 2:
        c, length = in_shape
        return np.ascontiguousarray(
            w.reshape(w.shape[0], c, length).transpose(0, 2, 1).reshape(w.shape[0], -1)
        )
    return w


def stop_runtime(
    proc: Any, started_before: set[Any] | None = None, timeout: float | None = None
) -> bool:
    """``proc.stop()``, but never hang and never leak: after an exception inside a run Lava's
    stop() can wait forever on a dead child, and a runtime that was created but never started
    leaves its system processes behind. Worker processes started since ``started_before`` that
    are still alive after stop (and a short grace period) are killed, with a warning. Returns
    whether stop() returned (or there was no runtime): False leaves the runtime half stopped.
    ``timeout``: seconds to wait for stop() (default :data:`STOP_TIMEOUT_S`, read at call time)."""
    timeout = STOP_TIMEOUT_S if timeout is None else timeout
    stopped = True
    if getattr(proc, "runtime", None) is not None:
        t = threading.Thread(target=proc.stop, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            stopped = False
            warnings.warn(
                f"Lava's stop() did not return within {timeout:g} s", RuntimeWarning, stacklevel=2
            )
    if started_before is None:
        return stopped

    def alive_(c: Any) -> bool:
        try:
            return bool(c.is_alive())
        except ValueError:  # closed by Lava already
            return False

    leftover = [c for c in mp.active_children() if c not in started_before]
    deadline = time.monotonic() + 2.0
    while any(alive_(c) for c in leftover) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [c for c in leftover if alive_(c)]
    for child in alive:
        with contextlib.suppress(ValueError):
            child.kill()
    deadline = time.monotonic() + 5.0
    while any(alive_(c) for c in alive) and time.monotonic() < deadline:  # is_alive() reaps them
        time.sleep(0.05)
    if alive:
        warnings.warn(
            f"killed {len(alive)} Lava worker processes left after stop()",
            RuntimeWarning,
            stacklevel=2,
        )
    return stopped


_FORKING_WORKERS = False  # True while sigint_to_caller_only() is active (forked children see it)


def _ignore_sigint_in_worker() -> None:
    """At-fork hook (in the child): a Lava worker forked by :func:`sigint_to_caller_only`
    ignores SIGINT (kept across a spawn's exec, where Python then installs no handler)."""
    if _FORKING_WORKERS:
        with contextlib.suppress(ValueError):  # not the main thread: leave it
            signal.signal(signal.SIGINT, signal.SIG_IGN)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_ignore_sigint_in_worker)


@contextlib.contextmanager
def sigint_to_caller_only() -> Iterator[None]:
    """Start Lava's worker processes ignoring SIGINT, so that a terminal's Ctrl-C (sent to
    the whole process group) interrupts only the calling process: its ``KeyboardInterrupt``
    then stops the runtime in order (:func:`run_graph`'s ``finally``). Without it every worker
    dies of its own ``KeyboardInterrupt``, Lava's ``stop()`` waits on them until
    :data:`STOP_TIMEOUT_S` and the shared-memory manager is killed with its segments and its
    socket folder left behind. Only children forked while the context is active ignore it
    (an at-fork hook); the caller's own handler is untouched, so its Ctrl-C is never lost.
    (Blocking SIGINT in the caller while forking would not do: a process-directed signal then
    goes to another of its threads and Python may raise it inside an at-fork hook, where it is
    printed and dropped.)"""
    global _FORKING_WORKERS
    _FORKING_WORKERS = True
    try:
        yield
    finally:
        _FORKING_WORKERS = False


def close_extractor(tap: Any, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop an ``Extractor``'s host side: the thread its channel's receiving port runs (Lava
    starts one per external pipe and never joins it: each run would leave one thread per
    extractor blocked for good, with the channel's buffers). Safe to call twice, and on an
    extractor that never ran."""
    port = getattr(getattr(tap, "out_port", None), "external_pipe_csp_recv_port", None)
    if port is None:
        return
    with contextlib.suppress(Exception):
        port.join()  # sets its done flag and wakes the thread
    thread = getattr(port, "thread", None)
    if thread is not None and thread is not threading.current_thread():
        thread.join(timeout)


# Lava keeps, for the life of the interpreter, every process ever built (``ProcessServer``'s
# list, and ``VarServer``'s list of every Var, which holds its process: with them each runtime's
# channels and their shared-memory mappings, about 0.4 MiB a run) and adds a logging handler to
# the root logger per process and to the compiler's logger per compile (each message then
# printed once per handler): both are undone per graph.
LAVA_LOGGERS = ("", "lava.magma.compiler.compiler")  # the loggers Lava 0.10 adds handlers to


@dataclass
class LavaLedger:
    """What Lava registers globally from now on (:meth:`open`): the processes it builds and the
    logging handlers it adds."""

    processes_before: set[int]
    handlers_before: set[int]

    @classmethod
    def open(cls) -> LavaLedger:
        from lava.magma.core.process.process import ProcessServer

        return cls(
            {id(q) for q in ProcessServer().processes},
            {id(h) for name in LAVA_LOGGERS for h in logging.getLogger(name).handlers},
        )

    def new_processes(self) -> list[Any]:
        from lava.magma.core.process.process import ProcessServer

        return [q for q in ProcessServer().processes if id(q) not in self.processes_before]

    def drop_handlers(self) -> None:
        """Remove the handlers Lava added since :meth:`open`."""
        for name in LAVA_LOGGERS:
            logger = logging.getLogger(name)
            for h in list(logger.handlers):
                if id(h) not in self.handlers_before:
                    logger.removeHandler(h)


def forget_processes(processes: Sequence[Any]) -> None:
    """Drop stopped processes from Lava's ``ProcessServer`` and from their runtime, so that the
    garbage collector frees them (and their runtime's channels) once the caller lets go; a
    process's ``__del__`` then has no runtime to stop. Only for a runtime whose ``stop()``
    returned: one still running would block ``__del__`` forever (:func:`run_graph` keeps those
    registered)."""
    from lava.magma.core.process.process import ProcessServer
    from lava.magma.core.process.variable import VarServer

    gone = {id(q) for q in processes}
    server = ProcessServer()
    server.processes = [q for q in server.processes if id(q) not in gone]
    var_server = VarServer()  # each Var holds its process
    var_server.vars = [v for v in var_server.vars if id(getattr(v, "process", None)) not in gone]
    for q in processes:
        q.runtime = None


# ---------------------------------------------------------------------------------------------
# the one graph builder: source -> (synapse -> neurons)* -> readout, fixed_pt or floating_pt
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LavaSynapse:
    """One synaptic layer as the builder takes it: ``synapse`` without pooling (Lava's Conv does
    not pool: :meth:`Synapse.pool_folded`), torch layouts (the builder converts), a conv's
    exponent already folded into its weights (Lava's Conv ignores ``weight_exp``);
    ``weight_exp`` is Dense's exponent (a = (W s) << weight_exp); ``num_message_bits`` is 0 for
    binary spikes, the payload bits of graded input."""

    name: str
    synapse: Synapse
    weight_exp: int = 0
    num_message_bits: int = 0
    # graphs: the layer it reads (None: the previous layer, or the input for the first: a chain;
    # INPUT: the network input) and whether it reads the previous step's spikes of its own layer
    source: str | None = None
    recurrent: bool = False
    # per-synapse delays of a dense synapse (IntLayer.delay, torch layout like ``synapse.weight``):
    # built as Lava's DelayDense (our ResetDelayDense); None: a plain Dense
    delay: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.synapse.pool:
            raise ValueError(
                f"layer {self.name}: Lava's Conv cannot pool; pass synapse.pool_folded()"
            )
        if self.synapse.kind != "dense" and self.weight_exp != 0:
            raise ValueError(
                f"layer {self.name}: Lava's Conv ignores weight_exp ({self.weight_exp}); "
                "fold it into the weights"
            )


@dataclass(frozen=True)
class LavaNeuron:
    """One neuron layer's parameters as Lava's processes take them: ``smoothed`` selects our
    SmoothedLIF (``dv``, ``vth``, ``coef``), else Lava's LIF (``du``, ``dv``, ``vth``);
    ``bias_mant`` per neuron in the torch layout of the layer's output."""

    smoothed: bool
    dv: float
    vth: float
    bias_mant: np.ndarray
    bias_exp: float = 0
    du: float = 0
    coef: float = 0
    readout: bool = False  # the last layer: a non-spiking LI readout, its ``v`` read every step
    refractory: bool = False  # reset_delay: our RefractoryLIF (one refractory step), fixed_pt only
    # IntLayer.u_init_bias: the current starts at -(bias_mant << bias_exp), at t = 0 and at every
    # sample boundary (Lava's LIFReset would zero it there): our RefractoryLIF, fixed_pt only
    u_init_bias: bool = False


@dataclass
class LavaGraph:
    """A built (not yet compiled) graph: its source, and per neuron layer its process, spike
    extractor and state tap (if recorded); the readout's extractor."""

    source: Any
    neurons: list[Any]
    spike_taps: list[Any]
    state_taps: list[Any] | None
    readout_tap: Any | None
    shapes: list[tuple[int, ...]]  # torch out_shape per neuron layer
    readout_shape: tuple[int, ...] | None
    samples: int
    steps: int  # per sample
    seconds: dict[str, float] = field(default_factory=dict)
    relays: list[Any] = field(default_factory=list)  # delay stages of graph edges (build_graph)
    processes: list[Any] = field(default_factory=list)  # every Lava process it built


def _synapse_process(
    layer: LavaSynapse, prev_lava_shape: tuple[int, ...], interval: int, *, conv: str = CONV_EXACT
) -> Any:
    """The layer's ResetDense or ResetConv (``conv``: the fixed_pt Conv's arithmetic,
    :class:`LavaTarget`)."""
    from neurodeploy.targets.lava_reset.process import ResetConv, ResetDense

    reset = {"reset_interval": interval, "reset_offset": RESET_OFFSET}
    syn = layer.synapse
    if syn.kind == "dense" and layer.delay is not None:  # Lava's DelayDense: delay[i, j] steps more
        from neurodeploy.targets.lava_reset.process import ResetDelayDense

        delay = dense_weight_to_lava(np.asarray(layer.delay), syn.in_shape).astype(int)
        return ResetDelayDense(
            weights=dense_weight_to_lava(syn.weight, syn.in_shape),
            delays=delay,
            max_delay=int(delay.max()),
            weight_exp=int(layer.weight_exp),
            num_message_bits=layer.num_message_bits,
            **reset,
        )
    if syn.kind == "dense":
        return ResetDense(
            weights=dense_weight_to_lava(syn.weight, syn.in_shape),
            weight_exp=int(layer.weight_exp),
            num_message_bits=layer.num_message_bits,
            **reset,
        )
    if syn.kind == "conv2d":
        stride, pad = tuple(syn.stride)[::-1], tuple(syn.padding)[::-1]
    else:
        stride, pad = (int(syn.stride[0]), 1), (int(syn.padding[0]), 0)
    return ResetConv(
        weight=torch_kernel_to_lava(syn.weight),
        input_shape=prev_lava_shape,
        stride=stride,
        padding=pad,
        groups=int(syn.groups),
        num_message_bits=layer.num_message_bits,
        conv=conv,
        **reset,
    )


def _neuron_process(n: LavaNeuron, name: str, out_shape: tuple[int, ...], interval: int) -> Any:
    from lava.proc.lif.process import LIFReset

    bias = np.asarray(n.bias_mant).reshape(out_shape)
    bias = bias if len(out_shape) == 1 else to_lava_layout(bias[None])[..., 0]
    shape = lava_shape(out_shape)
    if n.smoothed:
        from neurodeploy.targets.mps_lif.process import SmoothedLIF

        return SmoothedLIF(  # dv, coef: 12-bit fractions in both models; vth float in floating_pt
            shape=shape,
            dv=int(n.dv),
            vth=n.vth,
            coef=int(n.coef),
            bias_mant=bias,
            bias_exp=int(n.bias_exp),
            reset_interval=interval,
            reset_offset=RESET_OFFSET,
            name=name,
        )
    if n.refractory or n.u_init_bias:
        from neurodeploy.targets.refractory.process import RefractoryLIF

        return RefractoryLIF(  # integers: the bit-accurate model only (IntLayer.reset_delay)
            shape=shape,
            refractory=n.refractory,
            u_init_bias=n.u_init_bias,
            du=int(n.du),
            dv=int(n.dv),
            vth=int(n.vth),
            bias_mant=bias,
            bias_exp=int(n.bias_exp),
            reset_interval=interval,
            reset_offset=RESET_OFFSET,
            name=name,
        )
    return LIFReset(
        shape=shape,
        du=n.du,
        dv=n.dv,
        vth=n.vth,
        bias_mant=bias,
        bias_exp=n.bias_exp,
        reset_interval=interval,
        reset_offset=RESET_OFFSET,
        name=name,
    )


# graph delays: relay neurons (stock LIF) that pass a binary spike on one step later
RELAY_DU = 4095  # du + 1 = 4096: u = this step's input << 6, nothing kept
RELAY_DV = 4095  # v decays by (4096 - 4095) / 4096: a v below 4096 decays to 0
RELAY_VTH = 0  # fires when v > 0 << 6
RELAY_WEIGHT = 2  # identity synapse weight (even: Loihi drops a mixed-sign weight's lowest bit)


def graph_depths(
    layers: Sequence[tuple[LavaSynapse, LavaNeuron | None]],
    extra: Mapping[str, Sequence[LavaSynapse]] | None = None,
) -> dict[str, int]:
    """Every layer's depth (the readout's too) and ``INPUT``'s (0): depth(L) = 1 + max over L's
    feed-forward sources of depth(source); a recurrent edge does not count. A feed-forward
    edge src -> L then needs ``depth(L) - depth(src) - 1`` steps of delay beyond Lava's own
    one step per synapse, so that every layer sees what the latency schedule of the reference
    simulator delivers (:class:`LavaTarget`).

    Refused, naming the layer and the edge: a source that is not the input or an earlier layer
    with neurons (program order must be topological), a recurrent edge that is not a self-loop
    (longer cycles), a recurrent edge into a readout, a layer without a feed-forward input,
    extra edges into a layer that does not exist, a layer named like the input."""
    extra = extra or {}
    names = [syn.name for syn, _ in layers]
    unknown = sorted(set(extra) - set(names))
    if unknown:
        raise ValueError(f"extra edges into {', '.join(unknown)}: no such layer")
    depth: dict[str, int] = {INPUT: 0}
    spiking: set[str] = {INPUT}
    prev = INPUT
    for syn, neuron in layers:
        name = syn.name
        if name == INPUT or name in depth:
            raise ValueError(f"layer {name}: a layer name must be unique and not {INPUT!r}")
        readout = neuron is None or neuron.readout
        ff = []
        for edge in (syn, *extra.get(name, ())):
            src = prev if edge.source is None else edge.source
            if edge.recurrent:
                if src != name:
                    raise ValueError(
                        f"layer {name}: recurrent edge from {src}; only a self-loop (the "
                        "layer's own spikes of the previous step) may be recurrent, longer "
                        "cycles are refused"
                    )
                if readout:
                    raise ValueError(f"layer {name}: a readout has no spikes to feed back")
                continue
            if src not in spiking:
                raise ValueError(
                    f"layer {name}: edge from {src!r}, which is neither {INPUT!r} nor an earlier "
                    "layer with neurons (program order must be topological over feed-forward "
                    "edges)"
                )
            ff.append(depth[src])
        if not ff:
            raise ValueError(f"layer {name}: no feed-forward input")
        depth[name] = 1 + max(ff)
        if not readout:
            spiking.add(name)
        prev = name
    return depth


def _shift_samples(data: np.ndarray, delay: int, steps: int) -> np.ndarray:
    """Source data (*shape, samples * steps) with every sample's columns moved ``delay`` steps
    later inside its own ``steps`` (zeros first; its last ``delay`` columns, the drain's zeros
    when steps >= T + delay, drop out): the input as a synapse ``delay`` steps slower sees it."""
    blocks = data.reshape(*data.shape[:-1], -1, steps)
    out = np.zeros_like(blocks)
    out[..., delay:] = blocks[..., : steps - delay]
    return out.reshape(data.shape)


def _relay(port: Any, shape: tuple[int, ...], interval: int, name: str) -> tuple[Any, list[Any]]:
    """One relay stage: an identity synapse of weight :data:`RELAY_WEIGHT` (a Dense for a flat
    layer, a depthwise 1x1 Conv for a (W, H, C) one) into stock LIF neurons with du = dv = 4095,
    vth = 0, no bias. Its spikes are the input's, one step later. From Lava's fixed-point LIF
    (``AbstractPyLifModelFixed``): u(t) = u(t-1) (4096 - du - 1) >> 12 + (a_in << 6) = a_in << 6
    = 128 s(t-1) (the synapse's one-step latency); v(t) = v(t-1) (4096 - dv) >> 12 + u(t) =
    u(t), since v(t-1) is 0 (no input) or was reset to 0 (a spike), and 0 >> 12 = 0; a spike
    iff v(t) > vth << 6 = 0 iff s(t-1) = 1, and v is reset to 0. So relay(t) = s(t-1) exactly,
    for any state the sample reset left. Binary spikes only (a graded input is delayed in its
    source instead). Returns the relay's spike port and its processes."""
    from lava.proc.lif.process import LIFReset

    from neurodeploy.targets.lava_reset.process import ResetConv, ResetDense

    reset = {"reset_interval": interval, "reset_offset": RESET_OFFSET}
    if len(shape) == 1:
        syn = ResetDense(
            weights=RELAY_WEIGHT * np.eye(shape[0], dtype=np.int32), weight_exp=0, **reset
        )
    else:
        c = shape[-1]
        syn = ResetConv(
            weight=np.full((c, 1, 1, 1), RELAY_WEIGHT, dtype=np.int32),
            input_shape=shape,
            stride=(1, 1),
            padding=(0, 0),
            groups=c,
            reset_interval=interval,
            reset_offset=RESET_OFFSET,
        )
    lif = LIFReset(
        shape=shape,
        du=RELAY_DU,
        dv=RELAY_DV,
        vth=RELAY_VTH,
        bias_mant=np.zeros(shape, dtype=np.int32),
        bias_exp=0,
        name=name,
        **reset,
    )
    port.connect(syn.s_in)
    syn.a_out.connect(lif.a_in)
    return lif.s_out, [syn, lif]


def build_graph(
    input_shape: tuple[int, ...],
    layers: Sequence[tuple[LavaSynapse, LavaNeuron | None]],
    data: np.ndarray,
    *,
    samples: int,
    steps: int,
    record_states: bool = False,
    conv: str = CONV_EXACT,
    extra: Mapping[str, Sequence[LavaSynapse]] | None = None,
) -> LavaGraph:
    """Source -> (synapses -> neurons)* [-> readout]: ``layers`` in program order, a neuron of
    None (or an LI readout) marking the readout (last). Each layer's synapse reads its
    ``source`` (None: the previous layer; a chain), ``extra`` adds further synapses into named
    layers (fan-in: Lava's InPort adds the a_out of every connection point-wise,
    ``PyInPortVectorDense.recv``); a recurrent synapse runs from a layer's ``s_out`` back to its
    own ``a_in`` (Lava's one-step synapse latency: it delivers s(t-1)). A feed-forward synapse
    src -> L whose source is shallower than L's deepest (:func:`graph_depths`) reads src through
    ``depth(L) - depth(src) - 1`` relay stages (:func:`_relay`; shared by every edge of src
    that needs them), or, from the input, a second source holding the data that many steps
    later; so every layer runs the reference simulator's latency schedule. A chain builds the
    same processes as ever (no relays).

    ``data`` is the source's (*lava input shape, samples * steps) (:func:`stream_data`); every
    process resets every ``steps`` steps, at each sample's first step. Extractors record every
    neuron layer's spikes and the readout; with ``record_states`` a VarWire taps each neuron
    layer's state (LIF ``v``, SmoothedLIF ``m``). ``conv`` selects the fixed_pt Conv's
    arithmetic (:class:`LavaTarget`). Relays are fixed_pt neurons: a graph that needs them is
    built for ``fixed_pt`` only."""
    ledger = LavaLedger.open()
    try:
        graph = _build_graph(
            input_shape,
            layers,
            data,
            samples=samples,
            steps=steps,
            record_states=record_states,
            conv=conv,
            extra=extra,
        )
    except BaseException:
        built = ledger.new_processes()
        for q in built:  # VarWires start a shared-memory manager when connected
            if hasattr(q, "connect_var"):
                close_var_wire(q)
        forget_processes(built)
        raise
    finally:
        ledger.drop_handlers()
    graph.processes = ledger.new_processes()
    return graph


def _build_graph(
    input_shape: tuple[int, ...],
    layers: Sequence[tuple[LavaSynapse, LavaNeuron | None]],
    data: np.ndarray,
    *,
    samples: int,
    steps: int,
    record_states: bool = False,
    conv: str = CONV_EXACT,
    extra: Mapping[str, Sequence[LavaSynapse]] | None = None,
) -> LavaGraph:
    """:func:`build_graph`'s processes (the caller forgets them on an error)."""
    from lava.proc.io.extractor import Extractor, VarWire
    from lava.proc.io.source import RingBuffer as Source

    t0 = time.perf_counter()
    total = samples * steps
    if data.shape[-1] != total:
        raise ValueError(f"source data: {data.shape[-1]} steps, expected {samples} x {steps}")
    extra = extra or {}
    depth = graph_depths(layers, extra)
    src = Source(data=data)
    graph = LavaGraph(
        source=src,
        neurons=[],
        spike_taps=[],
        state_taps=[] if record_states else None,
        readout_tap=None,
        shapes=[],
        readout_shape=None,
        samples=samples,
        steps=steps,
    )
    # name -> (spike port, Lava shape), and the same delayed by d steps at (name, d)
    ports: dict[tuple[str, int], tuple[Any, tuple[int, ...]]] = {
        (INPUT, 0): (src.s_out, lava_shape(tuple(input_shape)))
    }

    def delayed(name: str, d: int) -> tuple[Any, tuple[int, ...]]:
        if (name, d) not in ports:
            if name == INPUT:  # graded or binary: the host sends it d steps later
                ports[(name, d)] = (
                    Source(data=_shift_samples(data, d, steps)).s_out,
                    ports[(INPUT, 0)][1],
                )
            else:
                port, shape = delayed(name, d - 1)
                out, procs = _relay(port, shape, steps, f"{name}.relay{d}")
                graph.relays.extend(procs)
                ports[(name, d)] = (out, shape)
        return ports[(name, d)]

    prev = INPUT
    for k, (layer, neuron) in enumerate(layers):
        name, syn = layer.name, layer.synapse
        readout = neuron is None or neuron.readout
        if readout and k != len(layers) - 1:
            raise ValueError(f"layer {name}: only the last layer may be a readout")
        edges = [layer, *extra.get(name, ())]
        procs: list[tuple[LavaSynapse, Any]] = []
        for edge in edges:
            if edge.recurrent:
                procs.append((edge, None))
                continue
            source = prev if edge.source is None else edge.source
            port, shape = delayed(source, depth[name] - depth[source] - 1)
            proc = _synapse_process(edge, shape, steps, conv=conv)
            dense = edge.synapse.kind == "dense" and len(shape) > 1
            (port.flatten() if dense else port).connect(proc.s_in)
            procs.append((edge, proc))
        if neuron is None or neuron.readout:
            graph.readout_shape = tuple(syn.out_shape)
            if neuron is None:
                graph.readout_tap = Extractor(
                    shape=lava_shape(tuple(syn.out_shape)), buffer_size=EXTRACT_BUFFER
                )
                for _, proc in procs:
                    proc.a_out.connect(graph.readout_tap.in_port)
                break
            # an LI readout: a LIF that cannot fire (its spikes go nowhere), v tapped every step
            li = _neuron_process(neuron, name, tuple(syn.out_shape), steps)
            for _, proc in procs:
                proc.a_out.connect(li.a_in)
            graph.readout_tap = VarWire(buffer_size=EXTRACT_BUFFER)
            graph.readout_tap.connect_var(li.v)
            break
        lif = _neuron_process(neuron, name, tuple(syn.out_shape), steps)
        own_shape = lava_shape(tuple(syn.out_shape))
        for edge, ff in procs:
            proc = ff
            if proc is None:  # recurrent: s_out -> synapse -> a_in, delivered one step later
                proc = _synapse_process(edge, own_shape, steps, conv=conv)
                dense = edge.synapse.kind == "dense" and len(own_shape) > 1
                (lif.s_out.flatten() if dense else lif.s_out).connect(proc.s_in)
            proc.a_out.connect(lif.a_in)
        sink = Extractor(shape=lif.s_out.shape, buffer_size=EXTRACT_BUFFER)
        lif.s_out.connect(sink.in_port)
        graph.neurons.append(lif)
        graph.spike_taps.append(sink)
        graph.shapes.append(tuple(syn.out_shape))
        if graph.state_taps is not None:
            tap = VarWire(buffer_size=EXTRACT_BUFFER)
            tap.connect_var(lif.m if neuron.smoothed else lif.v)
            graph.state_taps.append(tap)
        ports[(name, 0)] = (lif.s_out, own_shape)
        prev = name
    graph.seconds["build"] = time.perf_counter() - t0
    return graph


def extractor_models() -> dict[type, type]:
    """Lava's Extractor model carries no tag: name it for every run config."""
    from lava.proc.io.extractor import (
        Extractor,
        PyLoihiExtractorModel,
        PyLoihiVarWireModel,
        VarWire,
    )

    return {Extractor: PyLoihiExtractorModel, VarWire: PyLoihiVarWireModel}


@dataclass
class GraphRecord:
    """What a graph recorded, per sample: spikes per neuron layer (steps, B, *shape) uint8,
    the readout (steps, B, classes) without bias (None without a readout), states per neuron
    layer (steps, B, *shape) or None, wall seconds per phase."""

    spikes: list[np.ndarray]
    output: np.ndarray | None
    states: list[np.ndarray] | None
    seconds: dict[str, float]


def run_receiving(
    proc: Any, extractors: Sequence[Any], dtypes: Sequence[type], steps: int
) -> list[np.ndarray]:
    """Run ``proc``'s compiled runtime for ``steps`` steps without blocking and receive every
    extractor's data each step, all in step order (so no channel fills while the host waits on
    another): per extractor (steps, *shape) in its dtype."""
    from lava.magma.core.run_conditions import RunSteps

    bufs: list[np.ndarray] = [
        np.empty((steps, *(e.shape if hasattr(e, "connect_var") else e.in_port.shape)), dtype=d)
        for e, d in zip(extractors, dtypes, strict=True)
    ]
    proc.run(condition=RunSteps(num_steps=steps, blocking=False))
    for t in range(steps):
        for e, buf in zip(extractors, bufs, strict=True):
            buf[t] = e.receive()
    proc.wait()
    return bufs


def run_graph(graph: LavaGraph, *, tag: str = FIXED_PT) -> GraphRecord:
    """Compile ``graph`` for ``Loihi2SimCfg(select_tag=tag)`` and run all samples in one runtime,
    receiving every step's spikes, readout and (if tapped) states as they come (each channel
    holds :data:`EXTRACT_BUFFER` steps; Lava's ``Var.get`` on a sink or monitor would send its
    whole record one value per message); stop (always)."""
    from lava.magma.core.run_configs import Loihi2SimCfg

    integer = tag == FIXED_PT
    sec = dict(graph.seconds)
    B, src, total = graph.samples, graph.source, graph.samples * graph.steps
    extractors = [
        *graph.spike_taps,
        *([graph.readout_tap] if graph.readout_tap is not None else []),
    ]
    before = set(mp.active_children())
    t0 = time.perf_counter()
    stopped = False
    try:  # refusals too: the graph's VarWires are closed and its processes forgotten below
        if graph.relays and not integer:
            raise ValueError(
                f"{graph.relays[1].name}: relay neurons (a skip edge's delay, build_graph) are "
                f"fixed_pt LIF parameters; this graph cannot run under {tag!r}"
            )
        if integer:  # refuse before Lava starts: a process model that raises hangs the runtime
            for neuron in graph.neurons:
                if hasattr(neuron, "check_fixed_pt"):
                    neuron.check_fixed_pt()
        cfg = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=extractor_models())
        ledger = LavaLedger.open()
        try:
            exe = src.compile(run_cfg=cfg)
        finally:
            ledger.drop_handlers()
        with sigint_to_caller_only():  # the workers fork here
            src.create_runtime(executable=exe)
        sec["compile"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        # spikes (0/1) straight into uint8, the readout into int64 (exact: float64 integers)
        readout_dtype = np.int64 if integer else np.float64
        kinds = [np.uint8] * len(graph.spike_taps) + [readout_dtype] * (
            len(extractors) - len(graph.spike_taps)
        )
        taps = graph.state_taps or []
        state_dtype = np.int64 if integer else np.float64
        bufs = run_receiving(src, [*extractors, *taps], [*kinds, *[state_dtype] * len(taps)], total)
        sec["run"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        spikes = [
            unstream(np.moveaxis(buf, 0, -1), shape, B)
            for buf, shape in zip(bufs, graph.shapes, strict=False)
        ]
        out = None
        if graph.readout_tap is not None:  # (B * steps, classes)
            readout = bufs[len(extractors) - 1]
            out = np.ascontiguousarray(np.swapaxes(readout.reshape(B, graph.steps, -1), 0, 1))
        states = None
        if graph.state_taps is not None:
            states = [
                unstream(np.moveaxis(buf, 0, -1), shape, B)
                for buf, shape in zip(bufs[len(extractors) :], graph.shapes, strict=True)
            ]
        sec["read"] = time.perf_counter() - t0
    finally:
        t0 = time.perf_counter()
        stopped = stop_runtime(src, before)
        for tap in [*graph.spike_taps, *(graph.state_taps or []), graph.readout_tap]:
            if hasattr(tap, "connect_var"):  # VarWires (an LI readout's too)
                close_var_wire(tap)
            elif tap is not None:
                close_extractor(tap)
        if stopped:  # a runtime whose stop() hung stays registered: its __del__ would hang
            forget_processes(graph.processes)
        sec["stop"] = time.perf_counter() - t0
    return GraphRecord(spikes, out, states, sec)


def close_var_wire(tap: Any) -> None:
    """Stop a ``VarWire``'s host side: its channel's receiving thread and the shared-memory
    manager process it starts when connected (Lava leaves both to ``__del__``, which may never
    run while a caller holds the graph). Safe to call twice."""
    port = getattr(tap, "_pm_to_p_dst_port", None)
    infra = getattr(tap, "_multi_processing", None)
    if port is not None:
        with contextlib.suppress(Exception):
            port.join()
    if infra is not None and infra.smm is not None:
        with contextlib.suppress(Exception):
            infra.stop()


# ---------------------------------------------------------------------------------------------
# the integer program on Lava fixed_pt
# ---------------------------------------------------------------------------------------------
def program_graph_layers(program: IntProgram) -> list[tuple[LavaSynapse, LavaNeuron | None]]:
    """The integer program's layers as the builder takes them (fixed_pt integers): each layer's
    own synapse, reading its ``source`` (:func:`program_graph_extra` gives the further edges)."""
    layers: list[tuple[LavaSynapse, LavaNeuron | None]] = []
    for k, layer in enumerate(program.layers):
        source = layer.source
        reads_input = source == INPUT or (source is None and k == 0)
        layers.append(
            (
                _int_synapse(
                    layer.name,
                    layer,
                    _input_bits(program, reads_input),
                    source=source,
                ),
                _int_neuron(layer) if layer.neuron is not None or layer.li_readout else None,
            )
        )
    return layers


def program_graph_extra(program: IntProgram) -> dict[str, list[LavaSynapse]]:
    """A graph program's further synapses (``IntLayer.extra``) per layer name, as the builder
    takes them (``build_graph(extra=...)``); empty for a chain."""
    return {
        layer.name: [
            _int_synapse(
                f"{layer.name}<-{edge.source}{' (recurrent)' if edge.recurrent else ''}",
                edge,
                _input_bits(program, edge.source == INPUT and not edge.recurrent),
                source=edge.source,
                recurrent=edge.recurrent,
            )
            for edge in layer.extra
        ]
        for layer in program.layers
        if layer.extra
    }


def _input_bits(program: IntProgram, reads_input: bool) -> int:
    """Message bits of a synapse: the graded input's payload bits, 0 for binary spikes."""
    return program.input_bits if reads_input and program.input_kind == "graded" else 0


def _int_synapse(
    name: str,
    layer: IntLayer | IntEdge,
    bits: int,
    *,
    source: str | None = None,
    recurrent: bool = False,
) -> LavaSynapse:
    syn = layer.synapse.pool_folded()  # Lava's Conv does not pool: the equivalent kernel
    if syn.kind == "dense":
        return LavaSynapse(
            name,
            replace(syn, weight=np.asarray(syn.weight).astype(np.int32)),
            weight_exp=int(layer.weight_exp),
            num_message_bits=bits,
            source=source,
            recurrent=recurrent,
            delay=(
                np.asarray(layer.delay)
                if isinstance(layer, IntLayer) and layer.has_delays
                else None
            ),
        )
    if layer.weight_exp < 0:
        raise ValueError(
            f"layer {name}: conv weight_exp {layer.weight_exp} < 0 cannot run on "
            "Lava's Conv (it ignores weight_exp)"
        )
    w = (np.asarray(syn.weight, dtype=np.int64) << layer.weight_exp).astype(np.int32)
    return LavaSynapse(
        name, replace(syn, weight=w), num_message_bits=bits, source=source, recurrent=recurrent
    )


def _int_neuron(layer: IntLayer) -> LavaNeuron:
    return LavaNeuron(
        smoothed=layer.neuron == "mps" and layer.coef != 0,
        du=int(layer.du),
        dv=int(layer.dv),
        vth=int(layer.vth),
        coef=int(layer.coef),
        bias_mant=np.asarray(layer.bias_mant, dtype=np.int32),
        bias_exp=int(layer.bias_exp),
        readout=layer.li_readout,
        refractory=layer.reset_delay,
        u_init_bias=layer.u_init_bias,
    )


class LavaTarget:
    """Build the Lava graph of an integer program and run a whole batch in one runtime
    (module docstring); results equal ``ReferenceTarget(program, latency=True)`` bit for bit.

    ``conv`` selects how the fixed_pt Conv layers compute their convolution:

    - ``"exact"`` (default): :func:`~neurodeploy.targets.lava_reset.exact_conv.conv_exact`, one
      matrix product per group, Lava's integers bit for bit (tested against
      ``lava.proc.conv.utils.conv`` on random geometries). It is the default for speed: Lava's
      per-channel scipy loop (C_in x C_out ``convolve2d`` calls) dominated a step, about 50x
      slower on the benchmark network's pooled convolution.
    - ``"lava"``: ``lava.proc.conv.utils.conv`` itself, exactly as Lava's ``PyConvModelFixed``
      calls it, so that the whole graph runs with Lava's own convolution arithmetic end to end.
    """

    name = "lava"
    latency = True

    def __init__(self, program: IntProgram, *, conv: str = CONV_EXACT) -> None:
        _require_lava()
        check_conv(conv, owner="LavaTarget")  # refuse before Lava starts anything
        program.validate()
        self.program = program
        self.conv = conv
        self.layers = program_graph_layers(program)
        self.extra = program_graph_extra(program)
        self.depth = max(graph_depths(self.layers, self.extra).values())  # refuses before Lava

    def run(
        self, x_int: np.ndarray, *, steps: int | None = None, record_states: bool = False
    ) -> TargetResult:
        """Run integer input (T, B, *input_shape) for ``steps`` steps per sample (default
        T + depth), every sample from zero state, all in one Lava runtime."""
        x = np.asarray(x_int)
        T, B = check_input(self.program.input_shape, x.shape)
        steps = steps if steps is not None else T + self.depth
        if steps < 1 or B < 1:
            raise ValueError(f"input: need steps >= 1 and a batch >= 1, got steps {steps}, B {B}")
        graph = build_graph(
            tuple(self.program.input_shape),
            self.layers,
            stream_data(x, steps),
            samples=B,
            steps=steps,
            record_states=record_states,
            conv=self.conv,
            extra=self.extra,
        )
        rec = run_graph(graph, tag=FIXED_PT)
        out = rec.output
        last = self.program.layers[-1]
        if out is not None and np.asarray(last.readout_bias).size:  # added every step, as on
            out = out + np.asarray(last.readout_bias, dtype=np.int64).reshape(
                last.out_shape
            )  # the reference
        return TargetResult(
            spikes=rec.spikes,
            output=out,
            states=rec.states,
            layer_names=[l.name for l in self.program.layers if l.neuron],
            seconds=rec.seconds,
            spike_output=self.program.layers[-1].neuron is not None,
        )
