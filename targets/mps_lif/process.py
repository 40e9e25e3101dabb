"""``SmoothedLIF``: a Lava process for the smoothed-reset neuron (membrane potential smoothing).

Dynamics (neurodeploy/neuron/fixedpoint.py, shared/spec/loihi-fixed-point.md), per step, integers:

    h  = sat24(decay(m, dv) + (a_in << 6) + (bias_mant << bias_exp))
    s  = h > (vth << 6)
    v  = 0 where s else h                    (the post-reset potential)
    m <- rtz((coef * m + (4096 - coef) * v) / 4096)

With coef = 0 this is Lava's stock LIF with du = 4095 (m = v). ``dv`` and ``coef`` keep one
meaning in both models: 12-bit integers (fractions of 4096); ``bias_mant``/``bias_exp`` are
Loihi's bias. The floating_pt model computes the float core's step
(:func:`neurodeploy.neuron.lif.lif_step`) without rounding, in units of the synaptic input (the
fixed model's state divided by 64), and there ``vth`` is the float threshold theta in those
units (as Lava's own float LIF takes it), not an integer. A fixed_pt run needs an integer
``vth``: :meth:`SmoothedLIF.check_fixed_pt` refuses another, for callers that know the run's tag
(the process cannot know it, and its model must not raise), instead of truncating it.
``vth`` > 0: the float core's threshold is positive, and the quantiser never produces vth = 0.
"""

from __future__ import annotations

import math

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess, LogConfig
from lava.magma.core.process.variable import Var

from neurodeploy.neuron.fixedpoint import DECAY_MAX
from neurodeploy.neuron.hardware import LOIHI2


class SmoothedLIF(AbstractProcess):
    """Smoothed-reset LIF neurons: ports ``a_in`` (synaptic input), ``s_out`` (spikes);
    vars ``m`` (smoothed state), ``v`` (post-reset potential), ``dv``, ``vth``, ``coef``
    (shared by the population), ``bias_mant``, ``bias_exp`` (per neuron). With
    ``reset_interval`` P > 0, m and v are zeroed at the start of every step with
    ``time_step % P == reset_offset % P`` (as Lava's LIFReset), so that samples can be streamed
    back to back (neurodeploy.targets.lava_reset)."""

    def __init__(
        self,
        *,
        shape: tuple[int, ...],
        dv: int = 0,
        vth: float = 10,
        coef: int = 0,
        bias_mant: int | np.ndarray = 0,
        bias_exp: int | np.ndarray = 0,
        reset_interval: int = 0,
        reset_offset: int = 0,
        name: str | None = None,
        log_config: LogConfig | None = None,
    ) -> None:
        super().__init__(
            shape=shape,
            dv=dv,
            vth=vth,
            coef=coef,
            bias_mant=bias_mant,
            bias_exp=bias_exp,
            name=name,
            log_config=log_config,
        )
        # checked after AbstractProcess.__init__, so that a refused process is still a complete
        # object when Lava's __del__ stops it
        for field, value in (("dv", dv), ("coef", coef)):
            if float(value) != int(value) or not 0 <= int(value) <= DECAY_MAX:
                raise ValueError(
                    f"SmoothedLIF {name or ''}: {field} = {value} is not an integer "
                    f"in 0..{DECAY_MAX}"
                )
        if not (math.isfinite(float(vth)) and 0 < float(vth) <= LOIHI2.vth_max):
            raise ValueError(
                f"SmoothedLIF {name or ''}: vth = {vth} outside (0, {LOIHI2.vth_max}] "
                "(an integer for fixed_pt, the float threshold for floating_pt)"
            )
        self.a_in = InPort(shape=shape)
        self.s_out = OutPort(shape=shape)
        self.m = Var(shape=shape, init=0)
        self.v = Var(shape=shape, init=0)
        self.dv = Var(shape=(1,), init=dv)
        self.vth = Var(shape=(1,), init=vth)
        self.coef = Var(shape=(1,), init=coef)
        self.bias_mant = Var(shape=shape, init=bias_mant)
        self.bias_exp = Var(shape=shape, init=bias_exp)
        if reset_interval < 0 or reset_offset < 0:
            raise ValueError(
                f"SmoothedLIF {name or ''}: reset_interval {reset_interval} and "
                f"reset_offset {reset_offset} must be >= 0 (interval 0: never)"
            )
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset)

    def check_fixed_pt(self) -> None:
        """Refuse parameters the fixed_pt model cannot take exactly: a non-integer ``vth`` (a
        float theta belongs to floating_pt; the fixed model would truncate it). Call before a
        fixed_pt run; the model itself cannot raise (module docstring of the models)."""
        vth = float(np.asarray(self.vth.init).reshape(-1)[0])
        if vth != int(vth):
            raise ValueError(
                f"SmoothedLIF {self.name}: vth = {vth} is not an integer; the fixed_pt "
                "model needs the 17-bit integer threshold (a float theta is for "
                "select_tag='floating_pt')"
            )
