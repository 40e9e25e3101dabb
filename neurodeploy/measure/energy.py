"""Energy models: named, swappable estimates of the energy of counted activity.

Every estimate carries the name of the model that made it; reports never print an energy
without it. Constants and their sources live here, in one place (../shared/spec/energy.md).

Models shipped:

``cmos45`` -- 45 nm CMOS, Horowitz (ISSCC 2014), as most SNN papers use it::

    E_SNN = ACs * E_AC + MACs * E_MAC          E_AC = 0.9 pJ (32-bit float add)
    E_ANN = ANN_MACs * E_MAC                   E_MAC = 4.6 pJ (3.7 pJ multiply + 0.9 pJ add)

  ACs / MACs are the effective synaptic operations (:mod:`neurodeploy.quant.counts`); MACs appear
  where a layer's input is not binary (direct-encoded pixels into the first layer). ANN_MACs
  are the dense operations of one pass of the same architecture (no timesteps).

``loihi`` -- Loihi 1, Davies et al., IEEE Micro 38(1) 2018, Table 2 (pre-silicon figures
consistent with early silicon)::

    E_dyn = SynOps * 23.6 pJ + active updates * 81 pJ + inactive updates * 52 pJ + spikes * 1.7 pJ
    t_step (one core, serial) = SynOps * 3.5 ns + active * 8.4 ns + inactive * 5.3 ns
    E_static = P_static * t,   P_static = 0.1 W per chip (from a 32-chip board figure)

  The equivalent ANN under this model is the same layers run once with graded messages (as
  Loihi 2 can): every connection one synaptic op, every neuron one active update and one
  message: E_ANN = ANN_MACs * 23.6 pJ + neurons * (81 + 1.7) pJ.

  A neuron update is *active* when the neuron spiked in that step. Spikes are charged the
  within-tile cost; tile hops (3.0 / 4.0 pJ east-west / north-south) depend on placement and
  are left out. The time is a serial upper bound (everything on one core); the static energy
  reported is P_static times that time, and is kept apart from the dynamic energy. No
  per-operation figures for Loihi 2 are public: Loihi 2 programs are estimated with this Loihi 1
  model and the report says so.

Graphs: a layer's energy sums its synapses' operations (every edge into it,
:class:`~neurodeploy.quant.counts.EdgeCounts`); the relay stages that Lava adds for latency
alignment (``Counts.relays``) get rows of their own in ``per_layer_pj`` (named
``<source>.relay<j>``), are included in the total, and their sum is named in the notes.

User models: any object with a ``name`` and ``estimate(counts) -> EnergyEstimate`` (the
:class:`EnergyModel` protocol), or a JSON/TOML file read by :func:`load_energy_model`::

    {"kind": "ops", "name": "my-28nm", "e_ac_pj": 0.3, "e_mac_pj": 1.5, "source": "..."}
    {"kind": "neuromorphic", "name": "my-chip", "e_synop_pj": 10, "e_update_active_pj": 20, ...}
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from neurodeploy.quant.counts import Counts

PJ = 1e-12  # joules per picojoule


@dataclass
class EnergyEstimate:
    """Energy per sample (pJ) by layer and by component, under the model called ``model``."""

    model: str
    per_layer_pj: dict[str, float]
    components_pj: dict[str, float]
    total_pj: float
    ann_total_pj: float | None = None  # the equivalent ANN under the same model, where defined
    static_pj: float | None = None  # static energy, reported apart from total_pj (dynamic)
    time_s: float | None = None  # the time the static energy assumes
    notes: list[str] = field(default_factory=list)
    source: str = ""

    @property
    def snn_over_ann(self) -> float | None:
        if self.ann_total_pj is None or self.ann_total_pj == 0:
            return None
        return self.total_pj / self.ann_total_pj

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["snn_over_ann"] = self.snn_over_ann
        return d


@runtime_checkable
class EnergyModel(Protocol):
    @property
    def name(self) -> str:
        """The model's name (a report's column and ``ENERGY_MODELS``' key); read-only, so a
        frozen dataclass field satisfies it."""

    def estimate(self, counts: Counts) -> EnergyEstimate:
        """Energy per sample of ``counts``."""


def _check_constants(obj: Any) -> None:
    for f in fields(obj):
        v = getattr(obj, f.name)
        if (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and (not math.isfinite(v) or v < 0)
        ):
            raise ValueError(
                f"energy model {getattr(obj, 'name', '?')!r}: field {f.name} must be a finite "
                f"number >= 0, got {v!r}"
            )


@dataclass(frozen=True)
class OpEnergyModel:
    """Energy per arithmetic operation (a process-node model): E = ACs*e_ac + MACs*e_mac."""

    name: str = "cmos45"
    e_ac_pj: float = 0.9
    e_mac_pj: float = 4.6
    source: str = "Horowitz, ISSCC 2014, 45 nm CMOS (32-bit float: add 0.9 pJ, multiply 3.7 pJ)"

    def __post_init__(self) -> None:
        _check_constants(self)

    def estimate(self, counts: Counts) -> EnergyEstimate:
        per_layer, ac, mac = {}, 0.0, 0.0
        for l in counts.all_layers:
            p = l.per_sample()
            per_layer[l.name] = p["acs"] * self.e_ac_pj + p["macs"] * self.e_mac_pj
            ac += p["acs"] * self.e_ac_pj
            mac += p["macs"] * self.e_mac_pj
        ann = counts.totals()["ann_macs"] * self.e_mac_pj
        return EnergyEstimate(
            self.name,
            per_layer,
            {"AC": ac, "MAC": mac},
            ac + mac,
            ann_total_pj=ann,
            source=self.source,
            notes=[
                "ANN: the same layers, one pass, every connection a MAC",
                *_relay_note(counts, per_layer),
            ],
        )


@dataclass(frozen=True)
class NeuromorphicEnergyModel:
    """Energy per event on an asynchronous neuromorphic core (Loihi-style); dynamic and static apart."""

    name: str = "loihi"
    e_synop_pj: float = 23.6
    e_update_active_pj: float = 81.0
    e_update_inactive_pj: float = 52.0
    e_spike_pj: float = 1.7
    t_synop_ns: float = 3.5
    t_update_active_ns: float = 8.4
    t_update_inactive_ns: float = 5.3
    static_power_w: float = 0.1
    source: str = (
        "Davies et al., Loihi, IEEE Micro 38(1) 2018, Table 2; static power ~0.1 W/chip "
        "from a 32-chip board figure"
    )

    def __post_init__(self) -> None:
        _check_constants(self)

    def estimate(self, counts: Counts) -> EnergyEstimate:
        per_layer: dict[str, float] = {}
        comp = {"synops": 0.0, "active_updates": 0.0, "inactive_updates": 0.0, "spikes": 0.0}
        t_ns = 0.0
        for l in counts.all_layers:
            p = l.per_sample()
            parts = {
                "synops": p["synops"] * self.e_synop_pj,
                "active_updates": p["active_updates"] * self.e_update_active_pj,
                "inactive_updates": p["inactive_updates"] * self.e_update_inactive_pj,
                "spikes": p["spikes"] * self.e_spike_pj,
            }
            for k, v in parts.items():
                comp[k] += v
            per_layer[l.name] = sum(parts.values())
            t_ns += (
                p["synops"] * self.t_synop_ns
                + p["active_updates"] * self.t_update_active_ns
                + p["inactive_updates"] * self.t_update_inactive_ns
            )
        t = t_ns * 1e-9
        tot = counts.totals()
        ann = tot["ann_macs"] * self.e_synop_pj + tot["neurons"] * (
            self.e_update_active_pj + self.e_spike_pj
        )
        notes = [
            "dynamic energy in total; static energy = static power x serial one-core time (an upper bound)",
            "ANN: the same layers once, graded messages: every connection a synaptic op, every neuron "
            "an active update and a message",
            "tile-hop costs (3.0/4.0 pJ) depend on placement and are not included",
        ]
        notes += _relay_note(counts, per_layer)
        if counts.hardware is not None and counts.hardware != "loihi1":
            notes.append(
                f"{counts.hardware} program estimated with Loihi 1 constants (no public per-op figures)"
            )
        return EnergyEstimate(
            self.name,
            per_layer,
            comp,
            sum(comp.values()),
            ann_total_pj=ann,
            static_pj=self.static_power_w * t / PJ,
            time_s=t,
            notes=notes,
            source=self.source,
        )


def _relay_note(counts: Counts, per_layer: dict[str, float]) -> list[str]:
    """The note naming what Lava's relay stages cost (none without relays)."""
    if not counts.relays:
        return []
    cost = sum(per_layer[r.name] for r in counts.relays)
    names = ", ".join(r.name for r in counts.relays)
    return [
        f"includes {cost:.6g} pJ/sample for {len(counts.relays)} relay stage(s) that Lava adds "
        f"to align skip edges in time ({names})"
    ]


CMOS45 = OpEnergyModel()
LOIHI = NeuromorphicEnergyModel()
ENERGY_MODELS: dict[str, EnergyModel] = {"cmos45": CMOS45, "loihi": LOIHI}
DEFAULT_ENERGY_MODELS = ("cmos45", "loihi")
_KINDS = {"ops": OpEnergyModel, "neuromorphic": NeuromorphicEnergyModel}


def load_energy_model(path: str | os.PathLike[str]) -> EnergyModel:
    """A user model from a JSON or TOML file: ``kind`` ("ops" or "neuromorphic"), ``name`` and
    any of that kind's constants (the rest keep their defaults)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ValueError(f"energy model file {p}: cannot read it ({e.strerror or e})") from None
    try:
        d = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(
            f"energy model file {p}: not valid {'TOML' if p.suffix == '.toml' else 'JSON'} ({e})"
        ) from None
    if not isinstance(d, dict):
        raise ValueError(f"energy model file {p}: expected a table/object at the top level")
    kind = d.pop("kind", None)
    if kind not in _KINDS:
        raise ValueError(
            f"energy model file {p}: field 'kind' must be one of {sorted(_KINDS)}, got {kind!r}"
        )
    if "name" not in d:
        raise ValueError(
            f"energy model file {p}: field 'name' is required (every estimate names its model)"
        )
    cls = _KINDS[kind]
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(
            f"energy model file {p}: unknown field(s) {unknown} for kind {kind!r}; known: {sorted(known)}"
        )
    return cls(**d)


def get_energy_model(spec: str | EnergyModel) -> EnergyModel:
    """A model by name (``cmos45``, ``loihi``), from a .json/.toml file path, or a model object."""
    if not isinstance(spec, str):
        if not isinstance(spec, EnergyModel):
            raise ValueError(f"energy model: {spec!r} has no name / estimate(counts)")
        return spec
    if spec in ENERGY_MODELS:
        return ENERGY_MODELS[spec]
    if spec.endswith((".json", ".toml")):
        return load_energy_model(spec)
    raise ValueError(
        f"energy model: unknown name {spec!r}; available: {sorted(ENERGY_MODELS)} "
        "or a .json/.toml file describing one"
    )
