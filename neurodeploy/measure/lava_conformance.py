"""The float model in Lava: a model's stages as a Lava graph under ``Loihi2SimCfg(select_tag=
"floating_pt")`` (float weights, Lava's float LIF, our SmoothedLIF float model), and the same float
network in torch with Lava's one-step synaptic latency, so the two can be compared step for step.

Lava's float models: Dense a = W s (weight_exp unused); LIF u = u(1-du) + a, v = v(1-dv) + u +
bias_mant, spike v > vth, v <- 0; with du = 1, dv = 1/tau, vth = theta, bias_mant = b this is our
LIF (neurodeploy/neuron/lif.py) with hard reset. Smoothed layers use SmoothedLIF's float model,
which calls the float core's step: dv and coef are 12-bit fractions (fixedpoint.tau_to_dv,
alpha_to_coef: tau and alpha are rounded to what the integer program can hold), vth the float
threshold theta, the bias in membrane units (b * 64, fixedpoint.bias_to_membrane with a_scale = 1).
The torch side uses the same rounded tau and alpha.

A CubaLIF stage (``syn_tau``: NIR CubaLIF, snnTorch ``Synaptic``) runs on Lava's float LIF with its
current decay, the float twin of the integer mapping (neurodeploy/quant/quantize.py, CubaLIF)::

    u <- u (1 - du) + W s;   v <- v (1 - dv) + u + b tau_syn';   spike v > theta, v <- 0

    du = 1 / tau_syn',  tau_syn' = 4096 / (du_int + 1),  du_int = round(4096 / tau_syn) - 1
    dv = 1 / tau',      tau' = 4096 / dv_int,            dv_int = round(4096 / tau)

(fixedpoint.tau_syn_to_du, du_to_tau_syn). The torch side computes the same current, in the same
order (one step of latency per synapse, as every stage), and hands u + b tau_syn' to the float
core's LIF step. The bias: Lava adds it to v, not to u, so the float bias b (which enters the
current in the model) becomes its steady state b tau_syn', as the quantiser maps it; with b = 0
and time constants the 12-bit decays hold exactly the torch side is the imported model's own
float CubaLIF (tests/test_lava_conformance_cuba.py). A CubaLIF with membrane smoothing has no
Lava model (SmoothedLIF has no current) and is refused by name.

A LIF with snnTorch's delayed reset (``reset_delay``: one refractory step after a spike, v held
at 0, :mod:`neurodeploy.neuron.lif`) is refused by name as well: Lava has no float model of it
(its stock LIF resets at the spiking step and integrates the next input, which is the reading
``reset="nir"``), and ours, targets/refractory RefractoryLIF, is bit-accurate only. A float twin
written here would compare our float core with a copy of itself, not with Lava; the delayed
reset is checked where Lava computes it, in fixed point (``verify``: reference == Lava
RefractoryLIF spike for spike), and against snnTorch itself (tests/test_reset_delay*.py).
"""

from __future__ import annotations

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import (
    alpha_to_coef,
    bias_to_membrane,
    coef_to_alpha,
    du_to_tau_syn,
    dv_to_tau,
    tau_syn_to_du,
    tau_to_dv,
)
from neurodeploy.neuron.lif import LIFParams, LIFState, initial_state, lif_step
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.stages import Stage, model_stages
from neurodeploy.targets.lava import (
    FLOATING_PT,
    LavaNeuron,
    LavaSynapse,
    build_graph,
    run_graph,
    stream_data,
)


def check_float_lava(stages: list[Stage]) -> None:
    """Refuse, naming the stage, a neuron the float Lava check has no model for: snnTorch's
    delayed reset (``reset_delay``; module docstring)."""
    for st in stages:
        if st.neuron is not None and st.neuron.params.reset_delay:
            raise ValueError(
                f"stage {st.name}: snnTorch's delayed reset (reset_delay, one refractory step) "
                "has no float Lava model (Lava's float LIF resets at the spiking step; "
                "RefractoryLIF is bit-accurate only): check it in fixed point with verify, or "
                "read the graph with --reset nir"
            )


def _coef(st: Stage) -> int:
    if st.neuron is None:
        raise ValueError(f"stage {st.name}: the readout has no neuron")
    coef = alpha_to_coef(st.neuron.alpha_value())
    if st.syn_tau is not None and coef > 0:  # as the quantiser: the smoothed neuron has no current
        raise ValueError(
            f"stage {st.name}: a synaptic current (CubaLIF, tau_syn {st.syn_tau}) with membrane "
            "smoothing has no Lava model (SmoothedLIF has no current)"
        )
    return coef


def current_du(st: Stage) -> float:
    """The float current decay Lava's LIF takes for the stage: du = 1 / tau_syn' with tau_syn' =
    4096 / (du_int + 1) the synaptic time constant as quantised (:func:`tau_syn_to_du`,
    :func:`du_to_tau_syn`); 1.0 (no current memory: u = this step's input) without a current."""
    if st.syn_tau is None:
        return 1.0
    try:
        du_int = tau_syn_to_du(st.syn_tau)
    except ValueError as err:
        raise ValueError(f"stage {st.name}: {err}") from err
    return 1.0 / du_to_tau_syn(du_int)


def _bias_full(st: Stage) -> torch.Tensor:
    """The stage's float bias per neuron (out_shape, float64): a conv's per-channel bias
    broadcast over its positions."""
    b = np.asarray(st.bias, dtype=np.float64).reshape(-1, *([1] * (len(st.out_shape) - 1)))
    return torch.as_tensor(np.broadcast_to(b, st.out_shape).copy())


def torch_with_latency(stages: list[Stage], x: np.ndarray, steps: int) -> list[np.ndarray]:
    """Float torch run of the stages for one sample (T, *shape) with one step of latency per synapse;
    spikes per neuron layer (steps, *shape)."""
    check_float_lava(stages)
    cur_in = [torch.zeros((1, *st.in_shape), dtype=torch.float64) for st in stages]
    states: list[LIFState | None] = [None] * len(stages)
    currents: list[torch.Tensor | float] = [0.0] * len(stages)  # CubaLIF stages: u per stage
    out: list[list[np.ndarray]] = [[] for st in stages if st.neuron is not None]
    for t in range(steps):
        src = (
            torch.as_tensor(x[t][None], dtype=torch.float64)
            if t < len(x)
            else torch.zeros((1, *stages[0].in_shape), dtype=torch.float64)
        )
        for k, st in enumerate(stages):
            inp, cur_in[k] = cur_in[k], src
            if st.neuron is None:
                break
            if st.syn_tau is None:
                a = st.apply(inp)  # x = W s + b: the current is this step's input
            else:  # Lava's order: u = u (1 - du) + W s;  i = u + b tau_syn' (bias into v)
                du = current_du(st)
                currents[k] = currents[k] * (1 - du) + st.synapse.apply(inp)
                a = currents[k] + _bias_full(st) * (1.0 / du)
            p = st.neuron.params
            alpha = coef_to_alpha(_coef(st))
            params = LIFParams(
                tau=dv_to_tau(tau_to_dv(p.tau)), theta=p.theta, reset="hard"
            )  # as quantised
            prev = states[k]
            state = prev if prev is not None else initial_state(a)
            s, states[k], _ = lif_step(a, state, alpha if alpha > 0 else None, params)
            out[k].append(s[0].numpy().astype(np.uint8))  # stages before the readout all spike
            src = s
    return [np.stack(o) for o in out]


def float_graph_layers(
    stages: list[Stage], graded: bool
) -> list[tuple[LavaSynapse, LavaNeuron | None]]:
    """The float stages as :func:`neurodeploy.targets.lava.build_graph` takes them (floating_pt):
    float weights (pooling folded into the kernel, Lava's Conv does not pool), graded input as
    8-bit messages into the first synapse."""
    check_float_lava(stages)
    layers: list[tuple[LavaSynapse, LavaNeuron | None]] = []
    for k, st in enumerate(stages):
        syn = LavaSynapse(
            st.name, st.synapse.pool_folded(), num_message_bits=8 if (k == 0 and graded) else 0
        )
        if st.neuron is None:
            layers.append((syn, None))
            break
        bias = _bias_full(st).numpy()
        p = st.neuron.params
        dv_int = tau_to_dv(p.tau)
        if _coef(st) > 0:  # vth: the float threshold (floating_pt), never truncated to an integer
            neuron = LavaNeuron(
                smoothed=True,
                dv=dv_int,
                vth=float(p.theta),
                coef=_coef(st),
                bias_mant=bias_to_membrane(bias, a_scale=1.0),
                bias_exp=0,
            )
        else:  # Lava's float LIF: v(1 - dv), with dv = 1/tau of the rounded tau, as the torch side;
            du = current_du(st)  # a CubaLIF's current: u(1 - du), its bias as b tau_syn' into v
            neuron = LavaNeuron(
                smoothed=False,
                du=du,
                dv=1.0 / dv_to_tau(dv_int),
                vth=float(p.theta),
                bias_mant=bias if du == 1.0 else bias * (1.0 / du),
            )
        layers.append((syn, neuron))
    return layers


def run_lava_float(
    model: SpikingNet, x: np.ndarray, graded: bool
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(Lava floating_pt spikes, torch spikes with the same latency) per neuron layer, one sample
    (T, *input_shape), T + depth steps; the graph is the integer target's (one builder)."""
    stages = model_stages(model)
    steps = x.shape[0] + len(stages)
    data = stream_data(np.asarray(x)[:, None], steps, dtype=np.float64)
    graph = build_graph(
        tuple(model.input_shape), float_graph_layers(stages, graded), data, samples=1, steps=steps
    )
    rec = run_graph(graph, tag=FLOATING_PT)
    return [s[:, 0] for s in rec.spikes], torch_with_latency(stages, x, steps)
