"""Conventions shared by the NIR exporter and importer (one place, named constants).

Discretisation (snntorch's, the de facto convention; shared/spec/nir.md): NIR's LIF ODE
``tau * dv/dt = (v_leak - v) + r * I`` stepped with Euler at ``dt`` gives
``v[t] = (1 - dt/tau) v[t-1] + (dt/tau) r I[t]``. Our LIF (neurodeploy/neuron/lif.py) has
``beta = 1 - 1/tau_steps`` and unit input gain, so

    nir.LIF.tau = dt * tau_steps = dt / (1 - beta),   nir.LIF.r = tau / dt (gain 1),
    v_leak = 0, v_threshold = theta, v_reset = 0 (hard reset to zero).

``dt`` is spelled the same in both directions and recorded in the graph metadata. Membrane
potential smoothing has no NIR primitive: the LIF node carries it in
``metadata["neurodeploy"] = {"mps_alpha": alpha, "mps_mode": "reset"|"charge", "reset": ..., "beta": ...}``.
A tool that ignores the metadata computes a vanilla LIF (alpha = 0, hard reset).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from neurodeploy.neuron.fixedpoint import DECAY_UNIT

DEFAULT_DT = 1e-4  # seconds per timestep assumed when neither the graph nor the caller says
DT_METADATA_KEY = "dt"  # graph.metadata["dt"]: seconds per timestep (written by our exporter)
# The dt each producer's exporter uses (none of them records it in the graph, checked with
# snntorch 1.0, spikingjelly 2.0 and norse 1.1): NIR stores tau in seconds, so a graph read
# with another dt gets other time constants and input gains.
PRODUCER_DT: dict[str, float] = {"snnTorch": 1e-4, "SpikingJelly": 1e-4, "norse": 1e-3, "spyx": 1.0}
PRODUCER_NOTES = (
    "snnTorch and SpikingJelly export with dt=1e-4, norse with dt=1e-3 (norse 1.1 writes "
    "tau = dt/tau_inv, dt times the time constant, so its graphs read right with dt=1e-6, "
    "the square of its dt), spyx and sinabs with dt=1 (IF gain r*dt = 1)"
)
# On the chip a voltage/current decay is the 12-bit dv = round(DECAY_UNIT / tau_steps): it
# rounds to 0 (no leak at all) beyond this many timesteps.
TAU_STEPS_DECAY_LIMIT = 2 * DECAY_UNIT  # 8192
# An IF node's input gain r*dt outside [1/IF_GAIN_SANE, IF_GAIN_SANE] almost surely means a dt
# of another producer (sinabs' IF has r = 1, made for dt = 1; at dt = 1e-4 the net is silent).
IF_GAIN_SANE = 100.0
DtSource = Literal["metadata", "argument", "default"]
METADATA_KEY = "neurodeploy"
PRODUCER = "neurodeploy"
GRAPH_FORMAT_VERSION = 1


class NIRConversionError(ValueError):
    """A graph or model cannot be converted; the message names the node (or layer) and field."""

    def __init__(self, node: str, field: str | None, message: str) -> None:
        self.node, self.field = node, field
        where = f"node {node!r}" + (f", field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


def check_dt(dt: float) -> float:
    """``dt`` as a float, or ValueError unless it is finite and > 0 (seconds per timestep)."""
    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0 (seconds per timestep), got {dt!r}")
    return float(dt)


class NIRDtWarning(UserWarning):
    """The dt a NIR graph is read with is assumed, or gives a time constant or gain that the
    chip cannot keep (the message names the node, the tau or r, the dt and the dt that fit)."""


@dataclass(frozen=True)
class DtChoice:
    """The seconds per timestep a graph is read with and where it came from: the graph's
    ``metadata["dt"]``, the caller's argument (``--dt``) or :data:`DEFAULT_DT`."""

    dt: float
    source: DtSource

    def describe(self) -> str:
        where = {
            "metadata": "recorded in the graph's metadata",
            "argument": "given (--dt)",
            "default": "default: the graph records no dt",
        }[self.source]
        return f"dt = {self.dt:g} s per timestep ({where})"


def resolve_dt(metadata: Any, dt: float | None = None, *, warn: bool = True) -> DtChoice:
    """The dt to read a graph with: ``dt`` if given, else ``metadata["dt"]``, else
    :data:`DEFAULT_DT` with one :class:`NIRDtWarning` (``warn``) naming the assumption and the
    producers' dt values. A recorded dt that is not a finite number > 0 is a ValueError."""
    if dt is not None:
        return DtChoice(check_dt(dt), "argument")
    meta = metadata if isinstance(metadata, dict) else {}
    if meta.get(DT_METADATA_KEY) is not None:
        raw = meta[DT_METADATA_KEY]
        try:
            value = float(raw.item() if hasattr(raw, "item") else raw)
            return DtChoice(check_dt(value), "metadata")
        except (TypeError, ValueError) as e:
            raise ValueError(f"graph metadata {DT_METADATA_KEY!r} = {raw!r}: {e}") from e
    if warn:
        warnings.warn(
            f"the NIR graph records no dt: assuming dt={DEFAULT_DT:g} s per timestep; "
            f"{PRODUCER_NOTES}. Pass the producer's dt (dt=... / --dt) if it differs.",
            NIRDtWarning,
            stacklevel=3,
        )
    return DtChoice(DEFAULT_DT, "default")


def dt_advice(tau: float) -> str:
    """Which dt make sense for a time constant ``tau`` (seconds): dt < tau (beta = 1 - dt/tau
    > 0) and dt > tau / :data:`TAU_STEPS_DECAY_LIMIT` (a decay the chip can represent)."""
    lo, hi = tau / TAU_STEPS_DECAY_LIMIT, tau
    return (
        f"dt values that make sense for tau={tau:g} s lie in ({lo:.3g}, {hi:.3g}) "
        f"(1 < tau/dt <= {TAU_STEPS_DECAY_LIMIT}), e.g. dt={tau / 10:.3g} for tau/dt = 10; "
        + PRODUCER_NOTES
    )


def check_tau_steps(
    node: str, field: str, tau: float, dt: float, *, allow_one: bool = False
) -> float:
    """``tau/dt`` (timesteps) of node ``node``'s time constant ``field`` (``tau`` seconds).

    tau/dt <= 1 (< 1 with ``allow_one``, where tau = dt means no memory) gives beta = 1 - dt/tau
    <= 0: :class:`NIRConversionError` naming the node, tau, dt and the dt that fit. Beyond
    :data:`TAU_STEPS_DECAY_LIMIT` the chip's 12-bit decay round(4096 / (tau/dt)) is 0 (no
    leak): a :class:`NIRDtWarning` with the same facts.
    """
    steps = tau / dt
    if steps < 1 or (steps <= 1 and not allow_one):
        raise NIRConversionError(
            node,
            field,
            f"{field} = {tau:g} s with dt = {dt:g} s is tau/dt = {steps:g} timesteps: "
            f"beta = 1 - dt/tau = {1 - 1 / steps:g} <= 0, not a leaky integrator. "
            + dt_advice(tau),
        )
    if steps > TAU_STEPS_DECAY_LIMIT:
        warnings.warn(
            f"node {node!r}, field {field!r}: {field} = {tau:g} s with dt = {dt:g} s is "
            f"tau/dt = {steps:g} timesteps > {TAU_STEPS_DECAY_LIMIT}: the chip's 12-bit decay "
            f"round({DECAY_UNIT}/(tau/dt)) rounds to 0, the leak disappears. " + dt_advice(tau),
            NIRDtWarning,
            stacklevel=2,
        )
    return steps


def check_if_gain(node: str, r: float, dt: float) -> None:
    """Warn (:class:`NIRDtWarning`) when an IF node's input gain r*dt is off by more than
    :data:`IF_GAIN_SANE` either way: its inputs would be scaled to silence or to saturation;
    dt = 1/r gives gain 1."""
    gain = r * dt
    if gain > 0 and 1 / IF_GAIN_SANE <= gain <= IF_GAIN_SANE:
        return
    warnings.warn(
        f"node {node!r}, field 'r': IF input gain r*dt = {r:g} * {dt:g} = {gain:g}: inputs "
        f"are scaled by {gain:g} (a network read like this is likely silent or saturated); "
        f"dt = 1/r = {1 / r if r else math.inf:g} gives gain 1. " + PRODUCER_NOTES,
        NIRDtWarning,
        stacklevel=2,
    )
