"""``ResetDense`` and ``ResetConv``: Lava's Dense and Conv with the synaptic buffer cleared at
sample boundaries, so that a batch of samples streams through one runtime.

Lava's Dense and Conv deliver at step t what they computed from the spikes received at step
t - 1 (one step of latency, held in their buffer ``a_buff`` / ``a_buf``). When samples are
streamed back to back, every P = ``reset_interval`` steps, the buffer holds the previous
sample's last spikes at the first step of the next sample. These processes send zeros instead
at every step with

    time_step % reset_interval == reset_offset % reset_interval     (time_step counts from 1)

and are Lava's Dense/Conv at every other step. Together with neurons that zero their state at
the same step (Lava's ``LIFReset``, our ``SmoothedLIF`` with ``reset_interval``), each sample of
P steps then runs exactly as it would alone in a fresh runtime. Lava's ``LIFReset`` counts its
phase the same way.
"""

from __future__ import annotations

from typing import Any

from lava.proc.conv.process import Conv
from lava.proc.dense.process import DelayDense, Dense

from neurodeploy.targets.lava_reset.exact_conv import CONV_EXACT, check_conv


def reset_due(time_step: int, proc_params: Any) -> bool:
    """True at the steps where a process with ``reset_interval``/``reset_offset`` in its
    ``proc_params`` resets (never when the interval is 0 or absent)."""
    interval = int(proc_params.get("reset_interval", 0) or 0)
    return (
        interval > 0 and time_step % interval == int(proc_params.get("reset_offset", 0)) % interval
    )


def _check(reset_interval: int, reset_offset: int) -> None:
    if reset_interval < 0:
        raise ValueError(f"reset_interval = {reset_interval} < 0 (0 means never)")
    if reset_offset < 0:
        raise ValueError(f"reset_offset = {reset_offset} < 0")


class ResetDense(Dense):
    """Lava's Dense; its buffer is sent as zeros every ``reset_interval`` steps."""

    def __init__(self, *, reset_interval: int = 0, reset_offset: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # first: Lava's __del__ needs a built process
        _check(reset_interval, reset_offset)
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset)


class ResetDelayDense(DelayDense):
    """Lava's DelayDense (per-synapse delays); at a reset its whole buffer (every pending delay
    column, not only the one sent) is cleared and zeros are sent, so that no delayed current of
    one sample reaches the next."""

    def __init__(self, *, reset_interval: int = 0, reset_offset: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # first: Lava's __del__ needs a built process
        _check(reset_interval, reset_offset)
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset)


class ResetConv(Conv):
    """Lava's Conv; its buffer is sent as zeros every ``reset_interval`` steps.

    ``conv`` selects how the fixed_pt model computes the convolution (the floating_pt model
    always runs Lava's own): ``"exact"`` (default) with
    :func:`~neurodeploy.targets.lava_reset.exact_conv.conv_exact`, one matrix product per group,
    equal to Lava's integers bit for bit and about 50x faster (Lava's per-channel scipy loop
    dominated a step); ``"lava"`` with ``lava.proc.conv.utils.conv`` itself, exactly as Lava's
    ``PyConvModelFixed`` does, to check the whole graph against Lava's own arithmetic."""

    def __init__(
        self,
        *,
        reset_interval: int = 0,
        reset_offset: int = 0,
        conv: str = CONV_EXACT,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)  # first: Lava's __del__ needs a built process
        _check(reset_interval, reset_offset)
        check_conv(conv, owner="ResetConv")
        self.proc_params["reset_interval"] = int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset)
        self.proc_params["conv"] = conv
