"""Process models of :class:`SmoothedLIF`: bit-accurate (tags "fixed_pt", "bit_accurate_loihi"),
calling the same integer functions as the reference simulator, and floating point."""
from __future__ import annotations

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurodeploy.neuron.fixedpoint import ACT_SHIFT, DECAY_UNIT, mps_int_step

# absolute import: Lava loads this file as a top-level module named "models"
from neurodeploy.targets.mps_lif.process import SmoothedLIF


def _bias(mant: np.ndarray, exp: np.ndarray) -> np.ndarray:
    mant = np.asarray(mant, dtype=np.int64)
    exp = np.asarray(exp, dtype=np.int64)
    return np.where(exp >= 0, mant << np.maximum(exp, 0), mant >> np.maximum(-exp, 0))


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
        bias = torch.from_numpy(_bias(self.bias_mant, self.bias_exp))
        s, m, h = mps_int_step(a, torch.from_numpy(self.m.astype(np.int64)), int(self.dv), int(self.vth), bias,
                               int(self.coef))
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
    vth: int = LavaPyType(int, int)
    coef: int = LavaPyType(int, int)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, float)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        """The same dynamics without rounding, in synaptic-input units (fixed state / 64)."""
        a = np.asarray(self.a_in.recv(), dtype=np.float64)
        bias = np.asarray(self.bias_mant, dtype=np.float64) * 2.0 ** np.asarray(self.bias_exp, dtype=np.float64)
        beta = 1.0 - float(self.dv) / DECAY_UNIT
        alpha = float(self.coef) / DECAY_UNIT
        h = beta * self.m + a + bias / (1 << ACT_SHIFT)
        s = h > float(self.vth)
        v = np.where(s, 0.0, h)
        self.m[:] = alpha * self.m + (1 - alpha) * v
        self.v[:] = v
        self.s_out.send(s.astype(float))
