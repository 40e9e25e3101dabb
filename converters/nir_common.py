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

DEFAULT_DT = 1e-4
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
    import math

    if not (isinstance(dt, (int, float)) and math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be a finite number > 0 (seconds per timestep), got {dt!r}")
    return float(dt)
