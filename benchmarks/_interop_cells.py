"""The cells of the interoperability matrix (issue 18, item 3): producers x consumers x
architectures, spike agreement per neuron layer against the producer's own forward.

A producer (:data:`PRODUCERS`) builds a small seeded model in its own library, runs it on the
shared input and writes its NIR graph with its own exporter (``nir.write``, then read back from the
file: a real round trip). A consumer (:data:`CONSUMERS`) loads that file and runs the same input.
For every neuron layer k (in execution order), agreement is

    a_k = #{(t, b, i) : s_consumer[k][t, b, i] == s_producer[k][t, b, i]} / (T B N_k)

(a fraction of equal spike entries; 1.0 = spike for spike). A cell that cannot run (an exporter
that cannot write, a consumer that refuses a node) holds the shortened exception text instead.
Every cell below 1.0 carries a reason from :data:`REASONS`; one without a known reason reads
"unexplained" (the test fails on that).

Input: Bernoulli spikes, P(1) = :data:`RATE` per input and step, :data:`T` steps, :data:`BATCH`
samples, one seed. Used by ``benchmarks/interop.py`` (all cells) and ``tests/test_interop.py``
(the cells without Lava).
"""

from __future__ import annotations

import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nir
import numpy as np
import torch
from torch import nn

T, BATCH, RATE, SEED = 16, 4, 0.2, 18
ARCHS = ("mlp", "conv", "recurrent")
#: neurodeploy's NIR default dt (snnTorch's convention); norse writes tau = dt x its constant
ND_DT, NORSE_DT = 1e-4, 1e-6
FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "lava-dl"
NETX_FILES = {"mlp": FIXTURES / "mnist_network.net", "conv": FIXTURES / "tiny.net"}
#: the exception text kept in a cell
MAX_ERROR = 110


@dataclass
class Case:
    """What a producer hands the consumers: the NIR file (None: no NIR), the integer program
    (netx only), the input (T, B, *shape) and the producer's own spikes per neuron layer."""

    arch: str
    x: torch.Tensor
    reference: list[torch.Tensor]
    nir_path: Path | None = None
    dt: float = ND_DT
    program: object | None = None  # IntProgram for netx
    graph: nir.NIRGraph | None = None  # in memory, when nir.write cannot store it
    latency_reference: bool = False  # netx's spikes are in Lava's latency schedule
    # how our consumers read the graph's reset, as the README tells users to: snnTorch graphs
    # with ``--reset snntorch`` (its delayed zero reset), every other producer with NIR's
    reset: str = "nir"
    note: str = ""
    nir_error: str = ""


@dataclass
class Cell:
    producer: str
    arch: str
    consumer: str
    agreement: list[float] | None = None
    error: str = ""
    reason: str = ""

    @property
    def minimum(self) -> float | None:
        return min(self.agreement) if self.agreement else None

    def text(self) -> str:
        if self.agreement is None:
            return self.error
        return ", ".join(f"{a:.4f}" for a in self.agreement)


def short(e: BaseException) -> str:
    """``Type: message`` on one line, at most :data:`MAX_ERROR` characters."""
    msg = " ".join(f"{type(e).__name__}: {e}".split())
    return msg if len(msg) <= MAX_ERROR else msg[: MAX_ERROR - 3] + "..."


def binary_input(shape: tuple[int, ...], *, steps: int = T, batch: int = BATCH) -> torch.Tensor:
    g = torch.Generator().manual_seed(SEED)
    return (torch.rand(steps, batch, *shape, generator=g) < RATE).float()


def _gain(net: nn.Module, gain: float) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                m.weight.mul_(gain)


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class _Recorder:
    """Forward hooks on ``mods``: the spikes of each call, layers ordered by their first call
    (execution order, which is the graph's topological order)."""

    def __init__(self, mods: list[nn.Module], pick: Callable[[object], torch.Tensor]) -> None:
        self.calls: dict[int, list[torch.Tensor]] = {}
        self.first: list[int] = []

        def hook(m: nn.Module, _i: object, out: object) -> None:
            if id(m) not in self.calls:
                self.calls[id(m)] = []
                self.first.append(id(m))
            self.calls[id(m)].append(pick(out).detach().clone())

        self.handles = [m.register_forward_hook(hook) for m in mods]

    def layers(self, per_step: bool) -> list[torch.Tensor]:
        for h in self.handles:
            h.remove()
        out = [self.calls[i] for i in self.first]
        return [torch.stack(v) if per_step else v[0] for v in out]


def _first(o: object) -> torch.Tensor:
    return o[0] if isinstance(o, tuple) else o  # type: ignore[return-value]


def _write(graph: nir.NIRGraph, tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.nir"
    nir.write(str(path), graph)
    return path


# --- producers ----------------------------------------------------------------------------------
def produce_neurodeploy(arch: str, tmp: Path) -> Case:
    """Our zoo models (no smoothing, tau 4, no BatchNorm), exported with our exporter."""
    from neurodeploy.converters.nir_export import export_nir
    from neurodeploy.measure.analysis import run_recording_spikes
    from neurodeploy.nn.layers import NeuronConfig
    from neurodeploy.nn.zoo import build_model

    torch.manual_seed(SEED)
    cfg = NeuronConfig(mps=False, tau=4.0)
    if arch == "mlp":
        shape, m = (16,), build_model("mlp", (16,), 4, cfg, hidden=(16, 8), batchnorm=False)
        gain = 3.0
    elif arch == "conv":
        shape = (2, 8, 8)
        m = build_model("vgg", shape, 4, cfg, channels=(4, "P", 8, "P"))
        gain = 3.0
        with torch.no_grad():
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_var.uniform_(0.3, 1.0)
                    mod.weight.uniform_(1.0, 2.0)
    else:
        shape, m = (16,), build_model("srnn", (16,), 4, cfg, hidden=(16, 8), batchnorm=False)
        gain = 3.0
    _gain(m, gain)
    m.eval()
    x = binary_input(shape)
    with torch.no_grad():
        if arch == "recurrent":
            from neurodeploy.nn.archs import RecurrentLIF

            r = _Recorder([k for k in m.modules() if isinstance(k, RecurrentLIF)], lambda o: o)
            m(x)
            rec = r.layers(per_step=False)
        else:
            _, rec = run_recording_spikes(m, x)
    path = tmp / f"neurodeploy-{arch}.nir"
    export_nir(m, path)
    return Case(arch, x, [r.float() for r in rec], nir_path=path)


def _snn_run(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    import snntorch as snn

    neurons = [m for m in net.modules() if isinstance(m, snn.SpikingNeuron)]
    for m in neurons:
        m.reset_mem()
    rec = _Recorder(neurons, _first)
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
    return [r.float() for r in rec.layers(per_step=True)]


def produce_snntorch(arch: str, tmp: Path) -> Case:
    """snnTorch 1.0: Leaky (hard reset, per-neuron beta/threshold), conv with AvgPool, and
    Linear-RLeaky-Linear-RLeaky with its default ``reset_delay`` (its usual training setup)."""
    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    def leaky(shape: tuple[int, ...], **kw: object) -> nn.Module:
        return snn.Leaky(
            beta=torch.full(shape, 0.5),
            threshold=torch.full(shape, 0.5),
            init_hidden=True,
            reset_mechanism="zero",
            **kw,
        )

    torch.manual_seed(SEED)
    if arch == "mlp":
        shape: tuple[int, ...] = (16,)
        net: nn.Module = nn.Sequential(
            nn.Linear(16, 16), leaky((16,)), nn.Linear(16, 8), leaky((8,), output=True)
        )
        _gain(net, 3.0)
    elif arch == "conv":
        shape = (1, 8, 8)
        net = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            leaky((4, 8, 8)),
            nn.AvgPool2d(2),
            nn.Conv2d(4, 8, 3, padding=1),
            leaky((8, 4, 4)),
            nn.Flatten(),
            nn.Linear(128, 10),
            leaky((10,), output=True),
        )
        _gain(net, 4.0)
    else:
        shape = (12,)

        class Rec(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.fc1, self.fc2 = nn.Linear(12, 16), nn.Linear(16, 5)
                self.r1 = snn.RLeaky(beta=0.75, linear_features=16, reset_mechanism="zero")
                self.r2 = snn.RLeaky(beta=0.75, linear_features=5, reset_mechanism="zero")

            def forward(self, x: torch.Tensor) -> torch.Tensor:
                spk, _ = self.r1(self.fc1(x))
                return self.r2(self.fc2(spk))[0]  # type: ignore[no-any-return]

        net = Rec()
        with torch.no_grad():
            net.fc1.weight.uniform_(-0.2, 0.8)
            net.fc2.weight.uniform_(-0.2, 0.6)
            net.r1.recurrent.weight.uniform_(-0.3, 0.3)
            net.r2.recurrent.weight.uniform_(-0.3, 0.3)
    x = binary_input(shape)
    if arch == "recurrent":
        ref = _snn_run_recurrent(net, x)
    else:
        ref = _snn_run(net, x)
    with _quiet():
        graph = export_to_nir(net, torch.zeros(1, *shape), ignore_dims=[0])
    return Case(arch, x, ref, nir_path=_write(graph, tmp, f"snntorch-{arch}"), reset="snntorch")


def _snn_run_recurrent(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The two RLeaky layers step by step from zero state (spk, mem carried by hand)."""
    s1, s2 = [], []
    with torch.no_grad():
        st1 = net.r1.init_rleaky()  # type: ignore[union-attr,operator]
        st2 = net.r2.init_rleaky()  # type: ignore[union-attr,operator]
        for t in range(x.shape[0]):
            # RLeaky.forward(input, spk, mem) -> (spk, mem): both are the next step's state
            st1 = list(net.r1(net.fc1(x[t]), *st1))  # type: ignore[operator]
            a = st1[0]
            st2 = list(net.r2(net.fc2(a), *st2))  # type: ignore[operator]
            b = st2[0]
            s1.append(a)
            s2.append(b)
    return [torch.stack(s1).float(), torch.stack(s2).float()]


def produce_spikingjelly(arch: str, tmp: Path) -> Case:
    """SpikingJelly 2.0: LIFNode(tau 2, decay_input=False, v_th 0.5), exported by its own
    ``nir_exchange.export_to_nir``."""
    from spikingjelly.activation_based import functional, layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir

    def lif() -> nn.Module:
        return neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=0.5)

    torch.manual_seed(SEED)
    if arch == "mlp":
        shape: tuple[int, ...] = (16,)
        net: nn.Module = nn.Sequential(nn.Linear(16, 16), lif(), nn.Linear(16, 8), lif())
        _gain(net, 3.0)
    elif arch == "conv":
        shape = (2, 8, 8)
        net = nn.Sequential(
            nn.Conv2d(2, 4, 3, padding=1),
            lif(),
            nn.AvgPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1),
            lif(),
            nn.Flatten(),
            nn.Linear(6 * 4 * 4, 3),
            lif(),
        )
        _gain(net, 4.0)
    else:
        shape = (12,)
        net = nn.Sequential(
            nn.Linear(12, 16),
            layer.LinearRecurrentContainer(lif(), in_features=16, out_features=16),
            nn.Linear(16, 5),
            lif(),
        )
        _gain(net, 3.0)
    x = binary_input(shape)
    functional.set_step_mode(net, "s")
    functional.reset_net(net)
    rec = _Recorder([m for m in net.modules() if isinstance(m, neuron.BaseNode)], lambda o: o)
    with torch.no_grad():
        for t in range(x.shape[0]):
            net(x[t])
    ref = [r.float() for r in rec.layers(per_step=True)]
    functional.reset_net(net)
    path = tmp / f"spikingjelly-{arch}.nir"
    with _quiet():
        export_to_nir(net, torch.zeros(1, *shape), save_path=str(path))
    return Case(arch, x, ref, nir_path=path)


def produce_norse(arch: str, tmp: Path) -> Case:
    """norse 1.1: LIFBoxCell (NIR LIF) layers in a SequentialState, ``norse.torch.to_nir``;
    read with dt = 1e-6 (norse writes tau = dt x its time constant)."""
    import norse.torch as norse
    from norse.torch.module.lif_box import LIFBoxCell, LIFBoxParameters

    def cell() -> nn.Module:
        return LIFBoxCell(LIFBoxParameters(tau_mem_inv=torch.tensor(200.0), v_th=torch.tensor(0.5)))

    torch.manual_seed(SEED)
    if arch == "mlp":
        shape: tuple[int, ...] = (16,)
        net = norse.SequentialState(nn.Linear(16, 16), cell(), nn.Linear(16, 8), cell())
        _gain(net, 8.0)
    elif arch == "conv":
        shape = (2, 8, 8)
        net = norse.SequentialState(
            nn.Conv2d(2, 4, 3, padding=1), cell(), nn.Flatten(), nn.Linear(256, 8), cell()
        )
        _gain(net, 8.0)
    else:
        from norse.torch.module.lif import LIFParameters, LIFRecurrentCell

        shape = (12,)
        p = LIFParameters(v_th=torch.tensor(0.5))
        net = norse.SequentialState(nn.Linear(12, 16), LIFRecurrentCell(16, 16, p))
        _gain(net, 8.0)
    x = binary_input(shape)
    cells = [m for m in net.modules() if type(m).__name__ in ("LIFBoxCell", "LIFRecurrentCell")]
    rec = _Recorder(cells, _first)
    with torch.no_grad():
        state = None
        for t in range(x.shape[0]):
            _, state = net(x[t], state)
    ref = [r.float() for r in rec.layers(per_step=True)]
    with _quiet():
        graph = norse.to_nir(net, torch.zeros(1, *shape))
    case = Case(arch, x, ref, dt=NORSE_DT)
    try:
        case.nir_path = _write(graph, tmp, f"norse-{arch}")
    except Exception as e:  # noqa: BLE001 - recorded; the consumers get the graph in memory
        case.graph = graph
        case.note = f"nir.write fails ({short(e)}): consumers read the in-memory graph"
    return case


#: graded input payload for a netx ``input`` layer: a binary spike x 64, netx's default pixel
#: transform weight (``x = 64 p + 0``)
NETX_GRADED_ONE = 64


def produce_netx(arch: str, tmp: Path) -> Case:
    """lava-dl netx ``.net`` fixtures (mnist_network.net; tiny.net for conv), run by netx's own
    Network in Lava fixed_pt, one sample (netx streams one), T + depth + 1 steps (Lava's
    latency schedule); our import gives the program, ``converters.netx_nir.netx_to_nir`` the NIR
    graph."""
    from neurodeploy.converters.netx_import import netx_to_program

    if arch not in NETX_FILES:
        raise NotImplementedError(
            "none of the three netx fixtures is recurrent; dense_rec itself imports bit-exact "
            "with netx in Lava (tests/test_netx_import.py, a net written in netx's layout)"
        )
    path = NETX_FILES[arch]
    if not path.is_file():
        raise FileNotFoundError(f"{path} not present")
    prog = netx_to_program(path)
    shape = tuple(int(s) for s in prog.input_shape)
    graded = prog.input_kind == "graded"
    x = binary_input(shape, batch=1) * (NETX_GRADED_ONE if graded else 1)
    steps = T + len(prog.layers) + 1
    from neurodeploy.targets.netx import run_netx_file

    theirs, _ = run_netx_file(path, x[:, 0].numpy().astype(np.int32), steps, graded=graded)
    ref = [torch.as_tensor(r[:, None], dtype=torch.float32) for r in theirs]
    note = path.name + (f" (graded input: a spike = {NETX_GRADED_ONE} on a_in)" if graded else "")
    case = Case(arch, x, ref, program=prog, latency_reference=True, note=note)
    try:
        from neurodeploy.converters import netx_nir

        graph = netx_nir.netx_to_nir(path)
        case.nir_path = _write(graph, tmp, f"netx-{arch}")
    except ImportError:
        case.nir_error = "pending: netx -> NIR export (converters.netx_nir not there yet)"
    except Exception as e:  # noqa: BLE001 - recorded in the cell
        case.nir_error = short(e)
    return case


PRODUCERS: dict[str, Callable[[str, Path], Case]] = {
    "neurodeploy": produce_neurodeploy,
    "snntorch": produce_snntorch,
    "spikingjelly": produce_spikingjelly,
    "norse": produce_norse,
    "netx": produce_netx,
}


# --- consumers: each returns spikes per neuron layer (T, B, ...), float ---------------------------
def _float_model(case: Case) -> nn.Module:
    from neurodeploy.converters.nir_import import nir_to_model

    with _quiet():
        return nir_to_model(_graph(case), dt=case.dt, reset=case.reset).eval()


def consume_float(case: Case) -> list[torch.Tensor]:
    """Our import (``nir_to_model``), float: a chain's LIF layers in order, a graph's neuron
    nodes in the integer program's order."""
    from neurodeploy.measure.analysis import run_recording_spikes
    from neurodeploy.measure.profiling import float_layer_spikes
    from neurodeploy.nn.graph import is_chain
    from neurodeploy.quant.quantize import quantize_model

    model = _float_model(case)
    if is_chain(model):
        with torch.no_grad():
            _, rec = run_recording_spikes(model, case.x)  # type: ignore[arg-type]
        return [r.float() for r in rec]
    with _quiet():
        prog = quantize_model(model, input_kind="binary")  # type: ignore[arg-type]
    with torch.no_grad():
        _, rec = float_layer_spikes(model, case.x, prog)  # type: ignore[arg-type]
    return [r.float() for r in rec]


def _program(case: Case) -> object:
    from neurodeploy.quant.quantize import quantize_model

    if case.program is not None:
        return case.program
    with _quiet():
        return quantize_model(_float_model(case), input_kind="binary")  # type: ignore[arg-type]


def _x_int(case: Case, prog: object) -> np.ndarray:
    x = case.x.numpy().astype(np.int32)
    shape = tuple(prog.input_shape)  # type: ignore[attr-defined]
    return x.reshape(x.shape[0], x.shape[1], *shape)


def _unshift(prog: object, spikes: list[np.ndarray], steps: int) -> list[torch.Tensor]:
    """Lava/latency schedule -> step t: layer L's spikes from step depth(L) on."""
    depth = prog.depths()  # type: ignore[attr-defined]
    names = [lay.name for lay in prog.layers if lay.neuron is not None]  # type: ignore[attr-defined]
    return [
        torch.as_tensor(np.asarray(s[depth[n] : depth[n] + steps]), dtype=torch.float32)
        for n, s in zip(names, spikes, strict=True)
    ]


def consume_reference(case: Case) -> list[torch.Tensor]:
    from neurodeploy.targets.reference import ReferenceTarget

    prog = _program(case)
    if case.latency_reference:
        r = ReferenceTarget(prog, device="cpu", latency=True).run(  # type: ignore[arg-type]
            _x_int(case, prog), steps=case.reference[0].shape[0]
        )
        return [torch.as_tensor(np.asarray(s), dtype=torch.float32) for s in r.spikes]
    r = ReferenceTarget(prog, device="cpu").run(_x_int(case, prog))  # type: ignore[arg-type]
    return [torch.as_tensor(np.asarray(s), dtype=torch.float32) for s in r.spikes]


def consume_lava(case: Case) -> list[torch.Tensor]:
    """Our program as a Lava process graph (fixed_pt); checked equal, every layer and step, to
    our reference in the latency schedule (else the cell fails), then unshifted by each
    layer's depth (netx: kept in the latency schedule, as netx runs)."""
    from neurodeploy.targets.lava import LavaTarget
    from neurodeploy.targets.reference import ReferenceTarget

    prog = _program(case)
    x_int = _x_int(case, prog)
    steps = case.reference[0].shape[0] if case.latency_reference else None
    r = LavaTarget(prog).run(x_int, steps=steps)  # type: ignore[arg-type]
    ref = ReferenceTarget(prog, device="cpu", latency=True).run(x_int, steps=r.steps)  # type: ignore[arg-type]
    for k, (a, b) in enumerate(zip(r.spikes, ref.spikes, strict=True)):
        if not np.array_equal(np.asarray(a), np.asarray(b)):
            raise AssertionError(f"layer {k}: Lava != our reference (latency schedule)")
    if case.latency_reference:
        return [torch.as_tensor(np.asarray(s), dtype=torch.float32) for s in r.spikes]
    return _unshift(prog, r.spikes, case.x.shape[0])


def _graph(case: Case) -> nir.NIRGraph:
    if case.nir_path is None:
        assert case.graph is not None
        return case.graph
    return nir.read(str(case.nir_path))


def consume_snntorch(case: Case) -> list[torch.Tensor]:
    """snnTorch's ``import_from_nir``, one sample at a time (its imported Flatten also flattens
    the batch axis), state carried by its GraphExecutor."""
    import snntorch as snn
    from snntorch.import_nir import import_from_nir

    with _quiet():
        net = import_from_nir(_graph(case))
    neurons = [m for m in net.modules() if isinstance(m, snn.SpikingNeuron)]
    per_sample = []
    for b in range(case.x.shape[1]):
        for m in neurons:  # its Leaky keeps v in the module, not in the executor's state
            m.reset_mem()
        rec = _Recorder(neurons, _first)
        state = None
        with torch.no_grad(), _quiet():
            for t in range(case.x.shape[0]):
                _, state = net(case.x[t, b : b + 1], state)
        per_sample.append([r.reshape(r.shape[0], 1, -1) for r in rec.layers(per_step=True)])
    return [torch.cat([s[k] for s in per_sample], 1).float() for k in range(len(per_sample[0]))]


def consume_spikingjelly(case: Case) -> list[torch.Tensor]:
    """SpikingJelly's ``import_from_nir`` (multi-step mode, the whole sequence at once)."""
    from spikingjelly.activation_based import functional, neuron
    from spikingjelly.activation_based.nir_exchange import import_from_nir

    with _quiet():
        net = import_from_nir(_graph(case), step_mode="m")
    functional.reset_net(net)
    wrappers = [m for m in net.modules() if isinstance(getattr(m, "module", None), neuron.BaseNode)]
    rec = _Recorder(wrappers, _first)
    with torch.no_grad(), _quiet():
        net(case.x)
    return [r.float() for r in rec.layers(per_step=False)]


def consume_nirtorch(case: Case) -> list[torch.Tensor]:
    """nirtorch 2.6 ``nir_to_torch`` with neurodeploy's node map (nirtorch brings no neuron
    models of its own), step by step."""
    import nirtorch

    from neurodeploy.converters.nirtorch_bridge import LIFStep, NeuronStep, nirtorch_node_map

    with _quiet():
        exe = nirtorch.nir_to_torch(_graph(case), nirtorch_node_map(case.dt))
    mods = [m for m in exe.modules() if isinstance(m, LIFStep | NeuronStep)]
    rec = _Recorder(mods, _first)
    state = None
    with torch.no_grad():
        for t in range(case.x.shape[0]):
            _, state = exe(case.x[t], state)
    return [r.float() for r in rec.layers(per_step=True)]


#: name -> (runner, needs Lava, needs a NIR file)
CONSUMERS: dict[str, tuple[Callable[[Case], list[torch.Tensor]], bool, bool]] = {
    "nd-float": (consume_float, False, True),
    "nd-int": (consume_reference, False, False),
    "lava": (consume_lava, True, False),
    "snntorch": (consume_snntorch, False, True),
    "spikingjelly": (consume_spikingjelly, False, True),
    "nirtorch": (consume_nirtorch, False, True),
}


def agreement(ref: list[torch.Tensor], got: list[torch.Tensor]) -> list[float]:
    """Per layer, the fraction of equal spike entries (neurons flattened per (t, b))."""
    if not ref or not got:
        raise ValueError(f"no neuron layers recorded (consumer {len(got)}, producer {len(ref)})")
    if len(ref) != len(got):
        raise ValueError(f"{len(got)} neuron layers, the producer has {len(ref)}")
    out = []
    for k, (a, b) in enumerate(zip(ref, got, strict=True)):
        steps, batch = a.shape[0], a.shape[1]
        a2, b2 = a.reshape(steps, batch, -1), b.reshape(b.shape[0], b.shape[1], -1)
        if a2.shape != b2.shape:
            raise ValueError(f"layer {k}: shape {tuple(b2.shape)}, producer {tuple(a2.shape)}")
        out.append(float((a2 == b2).float().mean()))
    return out


# --- reasons -------------------------------------------------------------------------------------
QUANT = "quantisation: 8-bit weights, 12-bit decays and thresholds (float vs integer)"
LATENCY = (
    "Lava's pipeline: a layer at depth d receives its input d steps late and integrates its bias"
    " alone meanwhile (Lava == our reference in that schedule, checked bit for bit)"
)
NETX_FLOAT = (
    "netx's integer CUBA neuron (12-bit decays, weight exponents, floor shifts) vs its NIR"
    " CubaLIF in float; and netx's layer at depth d integrates its bias alone for d steps"
)
#: (producer, arch, consumer) -> why the cell is below 1.0 ("*" matches any)
REASONS: dict[tuple[str, str, str], str] = {
    ("*", "*", "nd-int"): QUANT,
    ("*", "*", "lava"): QUANT + "; " + LATENCY,
    ("netx", "*", "nd-float"): NETX_FLOAT,
    ("netx", "*", "snntorch"): NETX_FLOAT,
    ("netx", "*", "spikingjelly"): NETX_FLOAT,
    ("netx", "*", "nirtorch"): NETX_FLOAT,
    ("snntorch", "recurrent", "*"): (
        "snnTorch's delayed reset (RLeaky reset_delay=True zeroes v the step after a spike; NIR"
        " and this consumer reset in the spiking step; our consumers read it with --reset"
        " snntorch)"
    ),
    ("snntorch", "recurrent", "nd-int"): QUANT,
    ("snntorch", "recurrent", "lava"): QUANT + "; " + LATENCY,
    ("snntorch", "recurrent", "nirtorch"): (
        "snnTorch's delayed reset (as above), and nirtorch feeds a cycle zeros at t = 0 where"
        " snnTorch feeds the recurrent Linear's bias"
    ),
    ("norse", "*", "snntorch"): (
        "dt convention: norse writes tau = dt x tau_mem = 5e-6; snnTorch's importer fixes dt ="
        " 1e-4: beta = 1 - dt/tau = -19 and its hack_w_scale divides the threshold by 20"
    ),
}


def reason(producer: str, arch: str, consumer: str) -> str:
    for key in (
        (producer, arch, consumer),
        (producer, arch, "*"),
        (producer, "*", consumer),
        ("*", "*", consumer),
    ):
        if key in REASONS:
            return REASONS[key]
    return "unexplained"


def run_producer(producer: str, arch: str, tmp: Path) -> Case | str:
    try:
        return PRODUCERS[producer](arch, tmp)
    except Exception as e:  # noqa: BLE001 - an exporter that cannot write is a cell, not a crash
        return "producer: " + short(e)


def run_cell(producer: str, case: Case | str, consumer: str) -> Cell:
    arch = case.arch if isinstance(case, Case) else ""
    cell = Cell(producer, arch, consumer)
    if isinstance(case, str):
        cell.error = case
        return cell
    runner, _lava, needs_nir = CONSUMERS[consumer]
    if needs_nir and case.nir_path is None and case.graph is None:
        cell.error = case.nir_error or "no NIR graph"
        return cell
    want = case.reference
    if case.latency_reference and consumer not in ("nd-int", "lava"):
        # a float consumer runs every layer at step t: netx's layer at depth d from step d on
        want = _unshift(case.program, [r.numpy() for r in want], case.x.shape[0])
    try:
        with _quiet():
            got = runner(case)
        cell.agreement = agreement(want, got)
    except Exception as e:  # noqa: BLE001 - a consumer that refuses a node is a cell
        cell.error = short(e)
        if "unexplained" in cell.error:  # pragma: no cover
            traceback.print_exc()
    if cell.agreement is not None and min(cell.agreement) < 1.0:
        cell.reason = reason(producer, arch, consumer)
    return cell


def matrix(
    producers: list[str] | None = None,
    archs: tuple[str, ...] = ARCHS,
    consumers: list[str] | None = None,
    *,
    lava: bool = True,
    notes: list[str] | None = None,
) -> list[Cell]:
    """All cells (``lava=False`` leaves the Lava consumer and the netx producer out: both need
    a Lava runtime)."""
    producers = producers or [p for p in PRODUCERS if lava or p != "netx"]
    consumers = consumers or [c for c, (_, needs, _) in CONSUMERS.items() if lava or not needs]
    cells = []
    with tempfile.TemporaryDirectory() as d:
        for p in producers:
            for a in archs:
                case = run_producer(p, a, Path(d))
                if isinstance(case, str):
                    cells += [Cell(p, a, c, error=case) for c in consumers]
                    continue
                if case.note and notes is not None:
                    notes.append(f"{p} {a}: {case.note}")
                for c in consumers:
                    cells.append(run_cell(p, case, c))
    return cells


def rate(spikes: list[torch.Tensor]) -> list[float]:
    return [float(s.mean()) for s in spikes]
