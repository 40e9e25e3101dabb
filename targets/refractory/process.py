"""``RefractoryLIF``: Lava's stock LIF (current u, voltage v, hard reset) with a refractory period
of one step, for layers quantised from snnTorch's delayed zero reset (``IntLayer.reset_delay``;
the float option ``LIF(reset_delay=True)``, :mod:`neurodeploy.neuron.lif`).

Dynamics (:func:`neurodeploy.neuron.fixedpoint.lif_int_step` with ``refractory``), per step,
integers, r = the previous step's spikes (var ``refr``, 0 or 1):

    u <- wrap24(decay(u, du + 1) + (a_in << 6))           the current keeps integrating
    v <- 0 where r, else sat24(decay(v, dv) + u + (bias_mant << bias_exp))
    s  = v > (vth << 6)   (never where r);   v <- 0 where s;   refr <- s

With no spike ever followed by a refractory step this is Lava's LIF bit for bit.

``refractory=False``: no refractory step (refr stays 0): Lava's LIF bit for bit. ``u_init_bias``
(``IntLayer.u_init_bias``, a CubaLIF's bias carried exactly: quantize.py, "CubaLIF"): the
current starts at u = -(bias_mant << bias_exp) instead of 0, at t = 0 (the var's initial value,
as Lava's LIF takes ``u=``) and at every sample boundary (where LIFReset would zero it). Loihi 1
compartments and Loihi 2 microcode both have refractory periods; this model is the CPU
reference of that behaviour. ``reset_interval``/``reset_offset`` zero u, v and refr at sample
boundaries as Lava's LIFReset does (neurodeploy.targets.lava_reset).
"""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var

from neurodeploy.neuron.fixedpoint import DECAY_MAX, bias_value
from neurodeploy.neuron.hardware import LOIHI2


class RefractoryLIF(AbstractProcess):
    """LIF neurons with one refractory step after each spike (unless ``refractory=False``), the
    current starting at 0 or at -bias (``u_init_bias``; module docstring): ports ``a_in``, ``s_out``; vars
    ``u``, ``v``, ``refr`` (per neuron), ``du``, ``dv``, ``vth`` (shared, integers),
    ``bias_mant``, ``bias_exp`` (per neuron). Only a fixed_pt (bit-accurate) model exists."""

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        du: int = 0,
        dv: int = 0,
        vth: int = 10,
        bias_mant: int | np.ndarray = 0,
        bias_exp: int | np.ndarray = 0,
        reset_interval: int = 0,
        reset_offset: int = 0,
        refractory: bool = True,
        u_init_bias: bool = False,
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        super().__init__(
            shape=shape,
            du=du,
            dv=dv,
            vth=vth,
            bias_mant=bias_mant,
            bias_exp=bias_exp,
            name=name,
            log_config=log_config,
        )
        # checked after AbstractProcess.__init__ (a refused process stays a complete object
        # when Lava's __del__ stops it); the model itself must not raise
        for field, value in (("du", du), ("dv", dv)):
            if float(value) != int(value) or not 0 <= int(value) <= DECAY_MAX:
                raise ValueError(
                    f"RefractoryLIF {name or ''}: {field} = {value} is not an integer "
                    f"in 0..{DECAY_MAX}"
                )
        if float(vth) != int(vth) or not 0 <= int(vth) <= LOIHI2.vth_max:
            raise ValueError(
                f"RefractoryLIF {name or ''}: vth = {vth} is not an integer in "
                f"0..{LOIHI2.vth_max}"
            )
        if reset_interval < 0 or reset_offset < 0:
            raise ValueError(
                f"RefractoryLIF {name or ''}: reset_interval {reset_interval} and "
                f"reset_offset {reset_offset} must be >= 0 (interval 0: never)"
            )
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        # u(-1): 0, or -bias (u_init_bias); the model restores it at every sample boundary
        u0 = -bias_value(np.broadcast_to(bias_mant, shape), np.broadcast_to(bias_exp, shape))
        self.u = Var(shape=shape, init=u0 if u_init_bias else 0)
        self.v = Var(shape=shape, init=0)
        self.refr = Var(shape=shape, init=0)
        self.du = Var(shape=(1,), init=du)
        self.dv = Var(shape=(1,), init=dv)
        self.vth = Var(shape=(1,), init=vth)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset)
        self.proc_params["refractory"] = bool(refractory)
        self.proc_params["u_init_bias"] = bool(u_init_bias)
