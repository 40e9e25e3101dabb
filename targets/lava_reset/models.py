"""Process models of :class:`ResetDense` and :class:`ResetConv`: Lava's own Dense and Conv
models (bit-accurate "fixed_pt" and "floating_pt"), with the buffer cleared where
:func:`reset_due` says so. Lava's models are subclassed, not copied: the reset is ours, and the
fixed_pt Conv computes Lava's integer convolution with :func:`conv_exact` (one matrix product
instead of Lava's C_in x C_out scipy loop, equal bit for bit, tested against
``lava.proc.conv.utils.conv``), or with Lava's own function where the process asks for it
(``ResetConv(conv="lava")``)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv import utils as conv_utils
from lava.proc.conv.models import AbstractPyConvModel
from lava.proc.dense.models import (
    AbstractPyDelayDenseModel,
    AbstractPyDenseModelBitAcc,
    AbstractPyDenseModelFloat,
    PyDelayDenseModelBitAcc,
    PyDelayDenseModelFloat,
)

# absolute import: Lava loads this file as a top-level module named "models"
from neurodeploy.targets.lava_reset.exact_conv import CONV_EXACT, CONV_LAVA, conv_exact
from neurodeploy.targets.lava_reset.process import (
    ResetConv,
    ResetDelayDense,
    ResetDense,
    reset_due,
)


@implements(proc=ResetDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyResetDenseModelBitAcc(AbstractPyDenseModelBitAcc):
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)  # as Lava's parent declares

    def run_spk(self) -> None:
        if reset_due(self.time_step, self.proc_params):
            self.a_buff = np.zeros_like(self.a_buff)
        super().run_spk()


@implements(proc=ResetDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyResetDenseModelFloat(AbstractPyDenseModelFloat):
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)  # as Lava's parent declares

    def run_spk(self) -> None:
        if reset_due(self.time_step, self.proc_params):
            self.a_buff = np.zeros_like(self.a_buff)
        super().run_spk()


@implements(proc=ResetDelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("bit_accurate_loihi", "fixed_pt")
class PyResetDelayDenseModelBitAcc(AbstractPyDelayDenseModel):
    """Lava's PyDelayDenseModelBitAcc (same port and var types; its ``run_spk`` is called, not
    copied: Lava's decorators forbid subclassing a model that implements another process) with
    the reset: the whole delay buffer cleared."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=16)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    delays: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=6)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def __init__(self, proc_params: dict[str, object]) -> None:
        super().__init__(proc_params)
        self.weights_set = False  # as PyDelayDenseModelBitAcc.__init__

    def run_spk(self) -> None:
        if reset_due(self.time_step, self.proc_params):
            self.a_buff = np.zeros_like(self.a_buff)
        PyDelayDenseModelBitAcc.run_spk(self)


@implements(proc=ResetDelayDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyResetDelayDenseModelFloat(AbstractPyDelayDenseModel):
    """Lava's PyDelayDenseModelFloat with the reset (the whole delay buffer cleared)."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, bool, precision=1)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    delays: np.ndarray = LavaPyType(np.ndarray, int)
    num_message_bits: np.ndarray = LavaPyType(np.ndarray, int, precision=5)

    def run_spk(self) -> None:
        if reset_due(self.time_step, self.proc_params):
            self.a_buff = np.zeros_like(self.a_buff)
        PyDelayDenseModelFloat.run_spk(self)


@implements(proc=ResetConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyResetConvModelFixed(AbstractPyConvModel):
    """Lava's PyConvModelFixed (same port and var types, same 24-bit clamp) with the reset."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    a_buf: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    weight: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)

    def clamp_precision(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(conv_utils.signed_clamp(x, bits=24))

    def run_spk(self) -> None:
        """Lava's ``AbstractPyConvModel.run_spk`` with the reset; the convolution is computed by
        :func:`conv_exact` (Lava's integers, bit for bit; module docstring of ``exact_conv``)
        or, with ``conv="lava"`` in the process's ``proc_params``, by Lava's own
        ``lava.proc.conv.utils.conv`` (:class:`ResetConv`)."""
        if reset_due(self.time_step, self.proc_params):
            self.a_buf = np.zeros_like(self.a_buf)
        self.a_out.send(self.a_buf)
        s_in = (
            self.s_in.recv() if self.num_message_bits.item() > 0 else self.s_in.recv().astype(bool)
        )
        if self.proc_params.get("conv", CONV_EXACT) == CONV_LAVA:  # Lava's PyConvModelFixed
            a_out = conv_utils.conv(
                s_in,
                self.weight,
                self.kernel_size,
                self.stride,
                self.padding,
                self.dilation,
                self.groups[0],
            )
        else:
            a_out = conv_exact(
                s_in,
                self.weight,
                kernel_size=self.kernel_size,
                stride=self.stride,
                padding=self.padding,
                dilation=self.dilation,
                groups=self.groups[0],
            )
        self.a_buf = self.clamp_precision(a_out)


@implements(proc=ResetConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyResetConvModelFloat(AbstractPyConvModel):
    """Lava's PyConvModelFloat with the reset."""

    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float, precision=24)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    a_buf: np.ndarray = LavaPyType(np.ndarray, float)
    weight: np.ndarray = LavaPyType(np.ndarray, float)

    def run_spk(self) -> None:
        if reset_due(self.time_step, self.proc_params):
            self.a_buf = np.zeros_like(self.a_buf)
        super().run_spk()
