"""``SmoothedLIF``: a Lava process for the smoothed-reset neuron (membrane potential smoothing).

Dynamics (neurodeploy/neuron/fixedpoint.py, shared/spec/loihi-fixed-point.md), per step, integers:

    h  = sat24(decay(m, dv) + (a_in << 6) + (bias_mant << bias_exp))
    s  = h > (vth << 6)
    v  = 0 where s else h                    (the post-reset potential)
    m <- rtz((coef * m + (4096 - coef) * v) / 4096)

With coef = 0 this is Lava's stock LIF with du = 4095 (m = v). Parameters keep one meaning in
both models: ``dv`` and ``coef`` are 12-bit integers (fractions of 4096), ``vth`` the 17-bit
threshold, ``bias_mant``/``bias_exp`` Loihi's bias. The floating_pt model computes the same
without rounding, in units of the synaptic input (the fixed model's state divided by 64).
"""
from __future__ import annotations

import typing as ty

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var


class SmoothedLIF(AbstractProcess):
    """Smoothed-reset LIF neurons: ports ``a_in`` (synaptic input), ``s_out`` (spikes);
    vars ``m`` (smoothed state), ``v`` (post-reset potential), ``dv``, ``vth``, ``coef``
    (shared by the population), ``bias_mant``, ``bias_exp`` (per neuron)."""

    def __init__(self, *, shape: ty.Tuple[int, ...], dv: int = 0, vth: int = 10, coef: int = 0,
                 bias_mant: ty.Union[int, np.ndarray] = 0, bias_exp: ty.Union[int, np.ndarray] = 0,
                 name: ty.Optional[str] = None, log_config: ty.Optional[LogConfig] = None) -> None:
        for field, value, hi in (("dv", dv, 4095), ("coef", coef, 4095), ("vth", vth, 2 ** 17 - 1)):
            if not (0 <= int(value) <= hi):
                raise ValueError(f"SmoothedLIF {name or ''}: {field} = {value} outside 0..{hi}")
        super().__init__(shape=shape, dv=dv, vth=vth, coef=coef, bias_mant=bias_mant, bias_exp=bias_exp,
                         name=name, log_config=log_config)
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.m = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.dv = Var(shape=(1,), init=dv)
        self.vth = Var(shape=(1,), init=vth)
        self.coef = Var(shape=(1,), init=coef)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
