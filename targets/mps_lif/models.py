"""Process models of :class:`SmoothedLIF`: bit-accurate (tags "fixed_pt", "bit_accurate_loihi"),
calling the same integer step as the reference simulator
(:func:`neurodeploy.neuron.fixedpoint.mps_int_step`), and floating point ("floating_pt"), calling
the float core's step (:func:`neurodeploy.neuron.lif.lif_step`, hard reset, "reset" reading).

Floating point, per step, in synaptic-input units (the fixed model's state / 64)::

    beta = 1 - dv / 4096,  alpha = coef / 4096           (fixedpoint.dv_to_tau, coef_to_alpha)
    I    = a_in + (bias_mant * 2^bias_exp) / 64           (fixedpoint.from_membrane, a_scale = 1)
    H    = beta * m + I;  s = H > vth;  U = 0 where s else H;  m <- alpha * m + (1 - alpha) * U

with ``vth`` the float threshold (theta, > 0), not an integer.

Neither model raises: an exception inside a Lava process model hangs the runtime of a graph of
several processes (lava-nc 0.10, checked), so every parameter is checked by the process's
constructor and :meth:`SmoothedLIF.check_fixed_pt`, before Lava starts."""

from __future__ import annotations

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurodeploy.neuron.fixedpoint import (
    bias_value,
    coef_to_alpha,
    dv_to_tau,
    from_membrane,
    mps_int_step,
)
from neurodeploy.neuron.lif import LIFParams, LIFState, lif_step

# absolute import: Lava loads this file as a top-level module named "models"
from neurodeploy.targets.lava_reset.process import reset_due
from neurodeploy.targets.mps_lif.process import SmoothedLIF


@implements(proc=SmoothedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PySmoothedLIFModelFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    m: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    dv: int = LavaPyType(int, np.uint16, precision=12)
    vth: int = LavaPyType(int, np.int32, precision=17)
    coef: int = LavaPyType(int, np.uint16, precision=12)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=3)

    def run_spk(self) -> None:
        a = torch.from_numpy(np.asarray(self.a_in.recv(), dtype=np.int64))
        if reset_due(self.time_step, self.proc_params):  # sample boundary: start from 0
            self.m[:] = 0
            self.v[:] = 0
        bias = torch.from_numpy(bias_value(self.bias_mant, self.bias_exp))
        # vth is an integer here (SmoothedLIF.check_fixed_pt); nothing in a process model may raise:
        # an exception inside one hangs the runtime of a multi-process graph (lava-nc 0.10)
        m_prev = torch.from_numpy(self.m.astype(np.int64))
        s, m, h = mps_int_step(
            a, m_prev, dv=int(self.dv), vth=int(self.vth), bias=bias, coef=int(self.coef)
        )
        self.m[:] = m.numpy()
        self.v[:] = h.masked_fill(s, 0).numpy()
        self.s_out.send(s.numpy().astype(np.int32))


@implements(proc=SmoothedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PySmoothedLIFModelFloat(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    m: np.ndarray = LavaPyType(np.ndarray, float)
    v: np.ndarray = LavaPyType(np.ndarray, float)
    dv: int = LavaPyType(int, int)
    vth: float = LavaPyType(float, float)
    coef: int = LavaPyType(int, int)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        """One step of the float core (module docstring), in synaptic-input units."""
        a = np.asarray(self.a_in.recv(), dtype=np.float64)
        if reset_due(self.time_step, self.proc_params):  # sample boundary: start from 0
            self.m[:] = 0
            self.v[:] = 0
        bias = np.asarray(self.bias_mant, dtype=np.float64) * 2.0 ** np.asarray(
            self.bias_exp, np.float64
        )
        i_t = torch.from_numpy(a + from_membrane(bias, a_scale=1.0))
        alpha = coef_to_alpha(int(self.coef))
        params = LIFParams(tau=dv_to_tau(int(self.dv)), theta=float(self.vth), reset="hard")
        m = torch.from_numpy(np.asarray(self.m, dtype=np.float64))
        s, state, _ = lif_step(i_t, LIFState(m, m), alpha if alpha > 0 else None, params)
        self.m[:] = state.m.numpy()
        self.v[:] = state.u.numpy()
        self.s_out.send(s.numpy().astype(float))
