"""The bit-accurate process model of :class:`RefractoryLIF` (tags "fixed_pt",
"bit_accurate_loihi"): the reference simulator's integer step
(:func:`neurodeploy.neuron.fixedpoint.lif_int_step` with ``refractory``), so both agree bit for
bit by construction. It never raises (an exception inside a Lava process model hangs the
runtime of a multi-process graph, lava-nc 0.10): the process's constructor checks everything."""

from __future__ import annotations

import numpy as np
import torch
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from neurodeploy.neuron.fixedpoint import bias_value, lif_int_step

# absolute imports: Lava loads this file as a top-level module named "models"
from neurodeploy.targets.lava_reset.process import reset_due
from neurodeploy.targets.refractory.process import RefractoryLIF


@implements(proc=RefractoryLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyRefractoryLIFModelFixed(PyLoihiProcessModel):
    a_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    u: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    v: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    refr: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=1)
    du: int = LavaPyType(int, np.uint16, precision=12)
    dv: int = LavaPyType(int, np.uint16, precision=12)
    vth: int = LavaPyType(int, np.int32, precision=17)
    bias_mant: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=13)
    bias_exp: np.ndarray = LavaPyType(np.ndarray, np.int16, precision=3)

    def run_spk(self) -> None:
        a = torch.from_numpy(np.asarray(self.a_in.recv(), dtype=np.int64))
        bias_np = bias_value(self.bias_mant, self.bias_exp)
        if reset_due(self.time_step, self.proc_params):  # sample boundary: start again
            self.u[:] = -bias_np if self.proc_params["u_init_bias"] else 0
            self.v[:] = 0
            self.refr[:] = 0
        bias = torch.from_numpy(bias_np)
        s, u, v = lif_int_step(
            a,
            torch.from_numpy(self.u.astype(np.int64)),
            torch.from_numpy(self.v.astype(np.int64)),
            du=int(self.du),
            dv=int(self.dv),
            vth=int(self.vth),
            bias=bias,
            refractory=torch.from_numpy(self.refr != 0),
        )
        self.u[:] = u.numpy()
        self.v[:] = v.numpy()
        self.refr[:] = s.numpy() if self.proc_params["refractory"] else 0
        self.s_out.send(s.numpy().astype(np.int32))
