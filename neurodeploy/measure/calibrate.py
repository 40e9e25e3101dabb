"""Overflow is a decision: search weight exponents that keep the 24-bit state clean on the given
inputs, or refuse by name.

A neuron layer's state (current u, voltage v) is a signed 24-bit integer on Loihi: beyond
``V_MAX = 2^23 - 1`` the voltage saturates and the current (and a convolution's output)
wraps (:mod:`neurodeploy.neuron.fixedpoint`, counted per layer by the reference simulator). The
quantiser picks each layer's weight exponent e for resolution (the largest at which the
threshold fits with headroom, :func:`neurodeploy.quant.quantize.quantize_stage`); every integer
of a layer scales with its ``a_scale = w_scale * x_scale * 2^e``::

    a_int = (sum W_int x) << e,   vth = round(theta * a_scale),   bias = round(b * a_scale * 64)

so lowering e by one halves the layer's input, threshold, bias and therefore its state, and
leaves the spikes unchanged up to rounding. :func:`search_exponents` runs the program on the
reference simulator over the calibration inputs and, while a neuron layer saturates or wraps,
lowers the exponent cap of the *first* such layer (upstream changes alter downstream spikes) by
one, re-quantises and re-runs, until no layer overflows or the offending layer's range is
exhausted (below ``hw.weight_exp_min``, or its threshold rounds to 0). A cap below the exponent a
convolution (Lava's Conv ignores weight_exp) or a fixed-exponent spec (netx) can express is spent
on weight levels instead (w_scale halved), which scales the state the same way.

Unfixable overflow raises :class:`OverflowRefused` naming the layer, its saturation and wrap
counts and the exponent reached, unless ``allow_overflow=True`` (CLI ``--allow-overflow``): then no
search runs, the quantiser's own program is kept and its counts are reported as before.

Every command that quantises a float model goes through :func:`quantize_checked`: ``quantize``,
``verify``, ``deploy``, ``profile`` (integer targets; the counts land in the profile's meta) and
``finetune`` (its final program, checked on the training split; the QAT program is not searched
during training, where the exponents follow the weights every step and the saturations and wraps
are counted per epoch in the history).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from neurodeploy.data import TaskData
from neurodeploy.data.inputs import Inputs, as_inputs
from neurodeploy.neuron.hardware import HardwareSpec
from neurodeploy.nn.graph import is_chain
from neurodeploy.nn.net import SpikingNet
from neurodeploy.quant.graph_stages import graph_stages
from neurodeploy.quant.program import IntLayer, IntProgram
from neurodeploy.quant.quantize import QuantizationError, quantize_model, quantize_stages
from neurodeploy.quant.split import WeightSplit
from neurodeploy.quant.stages import model_stages
from neurodeploy.targets.reference import ReferenceTarget

#: calibration samples the search runs per try (the first ones of the inputs)
CALIBRATION_SAMPLES = 256
#: the CLI option that accepts overflow
ALLOW_FLAG = "--allow-overflow"
#: why overflow was not checked: no inputs
NO_INPUTS = (
    "no inputs; pass --data FILE.npz, --random-input RATE or --task NAME to check the 24-bit "
    "state for saturation and wrap"
)
#: why overflow was not checked: the caller asked for no check (allow_overflow=None)
NOT_ASKED = "allow_overflow=None: quantised without the check"


class OverflowRefused(QuantizationError):
    """A layer saturates or wraps its 24-bit state on the calibration inputs at every exponent
    the search may use; the message names the layer, the counts and the way out."""


@dataclass(frozen=True)
class OverflowCount:
    """Overflow events of one neuron layer over the calibration run (batch, neurons, steps)."""

    saturations: int
    wraps: int

    @property
    def total(self) -> int:
        return self.saturations + self.wraps


@dataclass
class LayerSearch:
    """What the search did to one neuron layer: the weight exponent the quantiser chose with no
    cap (``initial_exp``) and at the end (``weight_exp``, the program's field), the cap it
    imposed (``None``: none), ``a_scale`` before and after (integer units per float unit: their
    ratio is the factor the state was scaled by) and the overflow counts before and after;
    ``tries``: (cap, saturations, wraps) of each program the search ran for this layer."""

    name: str
    initial_exp: int
    weight_exp: int
    cap: int | None
    initial_a_scale: float
    a_scale: float
    before: OverflowCount
    after: OverflowCount
    tries: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.cap is not None


@dataclass
class OverflowSearch:
    """The program and the per-layer record of :func:`search_exponents`."""

    program: IntProgram
    layers: list[LayerSearch]
    samples: int
    T: int
    source: str
    allowed: bool = False  # overflow accepted (no search)
    checked: bool = True  # False: overflow not checked (``unchecked``: why)
    unchecked: str = ""

    @property
    def clean(self) -> bool:
        return all(l.after.total == 0 for l in self.layers)

    def format(self) -> str:
        if not self.checked:
            return f"overflow: not checked ({self.unchecked or NO_INPUTS})"
        head = f"overflow check on {self.samples} samples x {self.T} steps of {self.source}"
        if self.allowed:
            bad = [l for l in self.layers if l.after.total]
            if not bad:
                return f"{head}: no saturation or wrap"
            return f"{head}: accepted ({ALLOW_FLAG}): " + ", ".join(
                f"{l.name} {l.after.saturations} saturations, {l.after.wraps} wraps" for l in bad
            )
        moved = [l for l in self.layers if l.changed]
        if not moved:
            return f"{head}: no saturation or wrap at the quantiser's exponents"
        parts = [
            f"{l.name} weight exponent {l.initial_exp} -> {l.weight_exp} (cap {l.cap}, state x"
            f"{l.a_scale / l.initial_a_scale:g}): {l.before.saturations} saturations, "
            f"{l.before.wraps} wraps -> {l.after.saturations}, {l.after.wraps}"
            for l in moved
        ]
        return f"{head}: exponents lowered to avoid overflow: " + "; ".join(parts)


def count_overflow(
    program: IntProgram,
    inputs: TaskData | Inputs,
    *,
    T: int | None = None,
    n: int | None = CALIBRATION_SAMPLES,
    batch_size: int = 256,
) -> dict[str, OverflowCount]:
    """Saturations and wraps per neuron layer (by name) of ``program`` on the reference simulator
    over the first ``n`` samples of ``inputs`` (all with ``None``), T steps each."""
    src = as_inputs(inputs).head(n)
    sim = ReferenceTarget(program, device="cpu")
    sats: dict[str, int] = {}
    wraps: dict[str, int] = {}
    for i in range(0, len(src), batch_size):
        x = src.encode(src.x[i : i + batch_size], T)
        xi, _ = program.quantize_input(x.numpy())
        r = sim.run(xi)
        assert r.counters is not None, "the reference simulator counts saturations and wraps"
        for name, c in zip(r.layer_names or [], r.counters):
            sats[name] = sats.get(name, 0) + c.saturations
            wraps[name] = wraps.get(name, 0) + c.wraps
    return {k: OverflowCount(sats[k], wraps[k]) for k in sats}


def _layer(program: IntProgram, name: str) -> IntLayer:
    return next(l for l in program.layers if l.name == name)


def _same_scale(a: IntLayer, b: IntLayer) -> bool:
    return (a.weight_exp, a.vth, a.a_scale) == (b.weight_exp, b.vth, b.a_scale) and np.array_equal(
        a.synapse.weight, b.synapse.weight
    )


def search_exponents(
    model: SpikingNet,
    hw: HardwareSpec,
    inputs: TaskData | Inputs,
    *,
    T: int | None = None,
    n: int | None = CALIBRATION_SAMPLES,
    percentile: float | None = None,
    allow_overflow: bool = False,
    weight_split: WeightSplit = 1,
) -> OverflowSearch:
    """The integer program of ``model`` for ``hw`` whose neuron layers neither saturate nor wrap
    their 24-bit state on the first ``n`` samples of ``inputs`` (T steps), found by lowering the
    weight exponent of the first offending layer one step at a time (module docstring), with
    the record of what was done per layer. Raises :class:`OverflowRefused` (layer, counts) when
    a layer cannot be made clean, unless ``allow_overflow``: then the quantiser's program is kept
    and its counts recorded."""
    src = as_inputs(inputs)
    settings = src.settings.as_kwargs()
    header = quantize_model(
        model, hw, percentile=percentile, weight_split=weight_split, **settings
    )  # its meta carries the weight split (neurodeploy.quant.split) into every build
    stages = model_stages(model) if is_chain(model) else graph_stages(model)
    steps = T or src.T
    used = min(len(src), n) if n is not None else len(src)

    def build(caps: dict[str, int]) -> IntProgram:
        return quantize_stages(stages, header, hw, percentile, exp_caps=caps)

    def run(p: IntProgram) -> dict[str, OverflowCount]:
        return count_overflow(p, src, T=steps, n=n)

    caps: dict[str, int] = {}
    prog = header
    counts = first = run(prog)
    tries: dict[str, list[tuple[int, int, int]]] = {}
    refused: str | None = None
    while not allow_overflow:
        bad = next((l for l in prog.layers if l.neuron and counts[l.name].total), None)
        if bad is None:
            break
        cur = caps.get(bad.name, bad.weight_exp)
        cap, new = cur - 1, None
        while cap >= hw.weight_exp_min:  # the next cap that changes the layer's integers
            try:
                cand = build({**caps, bad.name: cap})
            except QuantizationError:  # e.g. the threshold rounds to 0: nothing lower exists
                break
            if not _same_scale(_layer(cand, bad.name), bad):
                new = cand
                break
            cap -= 1
        if new is None:
            c = counts[bad.name]
            refused = (
                f"layer {bad.name}: {c.saturations} saturations and {c.wraps} wraps of the 24-bit "
                f"state on {used} samples x {steps} steps of {src.description}, at weight "
                f"exponent {bad.weight_exp} (cap {caps.get(bad.name, 'none')}); no lower exponent "
                f"in [{hw.weight_exp_min}, {hw.weight_exp_max}] of {hw.name} avoids it (or the "
                f"threshold rounds to 0); pass {ALLOW_FLAG} (allow_overflow=True) to accept it"
            )
            break
        caps[bad.name] = cap
        prog = new
        counts = run(prog)
        c = counts[bad.name]
        tries.setdefault(bad.name, []).append((cap, c.saturations, c.wraps))
    if refused is not None:
        raise OverflowRefused(refused)
    layers = [
        LayerSearch(
            l.name,
            initial_exp=_layer(header, l.name).weight_exp,
            weight_exp=l.weight_exp,
            cap=caps.get(l.name),
            initial_a_scale=_layer(header, l.name).a_scale,
            a_scale=l.a_scale,
            before=first[l.name],
            after=counts[l.name],
            tries=tries.get(l.name, []),
        )
        for l in prog.layers
        if l.neuron is not None
    ]
    if caps:
        prog.meta["exp_caps"] = dict(caps)
    return OverflowSearch(
        prog, layers, used, steps, src.description, allowed=allow_overflow, checked=True
    )


def quantize_checked(
    model: SpikingNet,
    hw: HardwareSpec,
    inputs: TaskData | Inputs | None,
    *,
    T: int | None = None,
    percentile: float | None = None,
    allow_overflow: bool | None = False,
    settings: dict[str, Any] | None = None,
    weight_split: WeightSplit = 1,
) -> OverflowSearch:
    """The one way the commands (quantize, verify, deploy, profile, finetune) quantise a float
    model: :func:`search_exponents` on ``inputs`` (``allow_overflow=False``: search or refuse;
    ``True``: keep the quantiser's program, report its counts). Not checked, with a record that
    says why: no ``inputs`` (:func:`~neurodeploy.quant.quantize.quantize_model` with
    ``settings``, the weights-only input keywords) or ``allow_overflow=None`` (the inputs' own
    input settings, no simulator run: what API callers got before the check existed)."""
    if inputs is None or allow_overflow is None:
        kw = (settings or {}) if inputs is None else as_inputs(inputs).settings.as_kwargs()
        prog = quantize_model(model, hw, percentile=percentile, weight_split=weight_split, **kw)
        why = NO_INPUTS if inputs is None else NOT_ASKED
        return OverflowSearch(
            prog, [], 0, T or 0, "", allowed=bool(allow_overflow), checked=False, unchecked=why
        )
    return search_exponents(
        model,
        hw,
        inputs,
        T=T,
        percentile=percentile,
        allow_overflow=allow_overflow,
        weight_split=weight_split,
    )


__all__ = [
    "ALLOW_FLAG",
    "CALIBRATION_SAMPLES",
    "NOT_ASKED",
    "NO_INPUTS",
    "LayerSearch",
    "OverflowCount",
    "OverflowRefused",
    "OverflowSearch",
    "count_overflow",
    "quantize_checked",
    "search_exponents",
]
