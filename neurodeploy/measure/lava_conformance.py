"""The float model in Lava: a model's stages as a Lava graph under ``Loihi2SimCfg(select_tag=
"floating_pt")`` (float weights, Lava's float LIF, our SmoothedLIF float model), and the same float
network in torch with Lava's one-step synaptic latency, so the two can be compared step for step.

Lava's float models: Dense a = W s (weight_exp unused); LIF u = u(1-du) + a, v = v(1-dv) + u +
bias_mant, spike v > vth, v <- 0; with du = 1, dv = 1/tau, vth = theta, bias_mant = b this is our
LIF (neurodeploy/neuron/lif.py) with hard reset. Smoothed layers use SmoothedLIF's float model
(dv and coef as 12-bit fractions, so alpha is rounded to 1/4096).
"""
from __future__ import annotations

import math
import multiprocessing as mp

import numpy as np
import torch

from neurodeploy.neuron.fixedpoint import DECAY_UNIT
from neurodeploy.neuron.lif import LIFParams, initial_state, lif_step
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.stages import Stage, model_stages
from neurodeploy.targets.lava import (_lava_shape, dense_weight_to_lava, from_lava_layout, stop_runtime,
                                      source_data, to_lava_layout, torch_kernel_to_lava)



def _coef(st: Stage) -> int:
    return int(round(DECAY_UNIT * st.neuron.alpha_value()))


def torch_with_latency(stages: list[Stage], x: np.ndarray, steps: int) -> list[np.ndarray]:
    """Float torch run of the stages for one sample (T, *shape) with one step of latency per synapse;
    spikes per neuron layer (steps, *shape)."""
    cur_in = [torch.zeros((1, *st.in_shape), dtype=torch.float64) for st in stages]
    states = [None] * len(stages)
    out = [[] for st in stages if st.neuron is not None]
    for t in range(steps):
        src = torch.as_tensor(x[t][None], dtype=torch.float64) if t < len(x) else torch.zeros((1, *stages[0].in_shape),
                                                                                               dtype=torch.float64)
        k_n = 0
        for k, st in enumerate(stages):
            inp, cur_in[k] = cur_in[k], src
            a = st.apply(inp)
            if st.neuron is None:
                break
            p = st.neuron.params
            alpha = _coef(st) / DECAY_UNIT
            dv = 0 if math.isinf(p.tau) else round(DECAY_UNIT / p.tau)   # as the quantiser rounds it
            params = LIFParams(tau=math.inf if dv == 0 else DECAY_UNIT / dv, theta=p.theta, reset="hard")
            states[k] = states[k] if states[k] is not None else initial_state(a)
            s, states[k], _ = lif_step(a, states[k], alpha if alpha > 0 else None, params)
            out[k_n].append(s[0].numpy().astype(np.uint8))
            src = s
            k_n += 1
    return [np.stack(o) for o in out]


def run_lava_float(model: SpikingNet, x: np.ndarray, graded: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(Lava floating_pt spikes, torch spikes with the same latency) per neuron layer, one sample."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.conv.process import Conv
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    from neurodeploy.targets.mps_lif.process import SmoothedLIF

    stages = model_stages(model)
    steps = x.shape[0] + len(stages)
    src = Source(data=source_data(x, steps, dtype=np.float64))
    prev_port, prev_shape = src.s_out, _lava_shape(tuple(model.input_shape))
    sinks, layers = [], []
    for k, st in enumerate(stages):
        bits = 8 if (k == 0 and graded) else 0
        if st.kind == "dense":
            syn = Dense(weights=dense_weight_to_lava(st.weight, st.in_shape), num_message_bits=bits)
            port = prev_port.flatten() if len(prev_shape) > 1 else prev_port
        else:
            syn = Conv(weight=torch_kernel_to_lava(st.weight), input_shape=prev_shape,
                       stride=tuple(st.stride)[::-1] if st.kind == "conv2d" else (st.stride[0], 1),
                       padding=tuple(st.padding)[::-1] if st.kind == "conv2d" else (st.padding[0], 0),
                       groups=st.groups, num_message_bits=bits)
            port = prev_port
        port.connect(syn.s_in)
        if st.neuron is None:
            break
        shape = _lava_shape(st.out_shape)
        bias = np.broadcast_to(st.bias.reshape(-1, *([1] * (len(st.out_shape) - 1))), st.out_shape) \
            if st.kind != "dense" else st.bias
        bias = bias if len(st.out_shape) == 1 else to_lava_layout(np.asarray(bias)[None])[..., 0]
        p = st.neuron.params
        dv_int = int(round(DECAY_UNIT / p.tau))
        if _coef(st) > 0:
            neuron = SmoothedLIF(shape=shape, dv=dv_int, vth=int(p.theta), coef=_coef(st),
                                 bias_mant=np.asarray(bias, dtype=float) * 64, bias_exp=0)
        else:
            neuron = LIF(shape=shape, du=1.0, dv=dv_int / DECAY_UNIT, vth=p.theta, bias_mant=np.asarray(bias, float))
        syn.a_out.connect(neuron.a_in)
        sink = Sink(shape=shape, buffer=steps)
        neuron.s_out.connect(sink.a_in)
        sinks.append(sink)
        layers.append(st)
        prev_port, prev_shape = neuron.s_out, shape
    before = set(mp.active_children())
    try:
        src.run(condition=RunSteps(num_steps=steps), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        lava = [from_lava_layout(s.data.get(), st.out_shape).astype(np.uint8) for s, st in zip(sinks, layers)]
    finally:
        stop_runtime(src, before)
    return lava, torch_with_latency(stages, x, steps)
