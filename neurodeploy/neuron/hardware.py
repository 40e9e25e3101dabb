"""Hardware specifications: the fixed-point formats and chip resources of a neuromorphic target.

Every fixed-point convention is a named field here (or a named constant in
:mod:`neurodeploy.neuron.fixedpoint`), passed explicitly; nothing is hidden in a constructor.

The neuron core's conventions (``decay_bits``, ``state_bits``, ``activation_shift``) are not
re-declared: their defaults are :mod:`~neurodeploy.neuron.fixedpoint`'s constants, and a spec
that declares another value is refused, naming the field. Refused rather than honoured because
the integer core implements Lava's bit-accurate LIF, and so do every target it is checked against
(Lava's stock LIF, our SmoothedLIF process, lava-dl netx): a simulator that followed a different
shift would no longer be a reference for anything that runs. The other formats (weight, threshold
and bias widths, exponent ranges, graded-spike bits) are limits the quantiser and the program's
validation read from the spec; the integer core does not depend on them.

Variants: a spec may fix the weight exponent and the bias exponent of every layer
(``fixed_weight_exp``, ``fixed_bias_exp``). :data:`LOIHI2_NETX` ("loihi2-netx") is Loihi 2
restricted to what lava-dl netx's HDF5 format expresses: netx derives each synapse's exponent
from the stored 8-bit weights (effectively 0) and builds every neuron with bias_exp = 6
(lava/lib/dl/netx/hdf5.py, ``get_neuron_params``). :func:`netx_variant` derives it from any spec.

Sources:
- Number formats: Lava (lava-nc 0.10.0) bit-accurate models, ``lava/proc/lif/models.py``
  (u, v 24-bit; du, dv unsigned 12-bit; vth unsigned 17-bit, compared as ``v > vth << 6``;
  bias_mant signed 13-bit, bias_exp 3-bit; synaptic input shifted ``<< 6``) and
  ``lava/proc/dense/models.py`` / ``lava/utils/weightutils.py`` (8-bit weights, sign modes,
  weight_exp). See shared/spec/loihi-fixed-point.md.
- Loihi 1 resources: Davies et al., "Loihi: a neuromorphic manycore processor with on-chip
  learning", IEEE Micro 38(1), 2018: 128 neuromorphic cores, 1024 neuron compartments and
  128 KB of synaptic memory per core.
- Loihi 2 resources: Intel's Loihi 2 product brief (2021) and Open Neuromorphic's summary:
  128 neuromorphic cores per chip, up to 1M neurons and 120M synapses per chip, graded spikes of
  up to 32 bits (per core: 8192 neurons and 120M/128 synapses, the chip figures divided evenly;
  a planning figure, not a datasheet limit).
- Memory per core (resource reports): Loihi 1 has 128 KB of synaptic memory per core, neuron
  state held apart in a fixed allocation (Davies et al. 2018); Loihi 2 has 192 KB per core in a
  flexible allocation shared by synapses and neuron state (Intel's Loihi 2 technology brief, 2021,
  Loihi vs Loihi 2 table: "208 KB, fixed allocation" vs "192 KB, flexible allocation"). A dense
  synapse is counted as its 8-bit weight (128 KB = 131,072 synapses, the figure usually quoted
  per Loihi 1 core); sparse formats, which add index bits, are not modelled. Loihi 2 neuron
  state: 8 bytes per neuron (two 24-bit variables, v and u or the smoothed m, in 32-bit words) --
  a planning assumption of this project, not an Intel figure.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from neurodeploy.neuron.fixedpoint import ACT_SHIFT, DECAY_SHIFT, DECAY_UNIT, STATE_BITS, V_MAX

NETX_SUFFIX = "-netx"
NETX_WEIGHT_EXP = (
    0  # netx derives each synapse's exponent from its stored 8-bit weights: 0 for ours
)
NETX_BIAS_EXP = 6  # netx builds every neuron with bias_exp = 6 (netx/hdf5.py, get_neuron_params)
NETX_IDECAY_OFFSET = 1  # netx stores a CUBA current decay as iDecay = du + 1 (get_neuron_params)


@dataclass(frozen=True)
class HardwareSpec:
    """Fixed-point formats and resources of one neuromorphic chip (module docstring: which fields
    the integer core fixes, and why a spec that disagrees is refused)."""

    name: str
    weight_bits: int = 8  # signed mantissa incl. sign; mixed-sign weights are even in [-256, 254]
    weight_exp_min: int = -8  # Dense output is (sum w s) << weight_exp
    weight_exp_max: int = 7
    decay_bits: int = DECAY_SHIFT  # du, dv in 0..4095 (fractions of 4096); the core's, not a choice
    threshold_bits: int = 17  # vth unsigned, 0..131071, compared as v > vth << 6
    bias_mant_bits: int = 13  # signed
    bias_exp_bits: int = 3  # unsigned: bias = bias_mant << bias_exp, 0..7
    state_bits: int = STATE_BITS  # u wraps, v saturates at +-(2^23 - 1); the core's
    activation_shift: int = (
        ACT_SHIFT  # synaptic input and threshold are shifted left by this; the core's
    )
    synaptic_input_bits: int = 16  # precision of the neuron's a_in port (Lava LIF: int16)
    graded_spike_bits: int = 8  # payload bits used for analog first-layer input
    fixed_weight_exp: int | None = (
        None  # every layer's weight exponent (netx: 0); None: chosen per layer
    )
    fixed_bias_exp: int | None = (
        None  # every neuron layer's bias exponent (netx: 6); None: per layer
    )
    cores: int = 128
    neurons_per_core: int = 1024
    synapse_memory_bytes_per_core: int | None = None  # Loihi 1: 128 KB
    synapses_per_core: int | None = None  # Loihi 2 planning figure: chip synapses / cores
    synapses_per_chip: int | None = None
    neurons_per_chip: int | None = None
    # mapping resources (neurodeploy/measure/resources.py); see the module docstring for sources
    synapse_bits: int = 8  # bits one stored synapse takes in the dense format (the weight)
    neuron_state_bytes: int = (
        0  # per neuron, from the synaptic memory (0: state memory is separate)
    )
    source: str = ""

    def __post_init__(self) -> None:
        core = (
            ("decay_bits", self.decay_bits, DECAY_SHIFT),
            ("state_bits", self.state_bits, STATE_BITS),
            ("activation_shift", self.activation_shift, ACT_SHIFT),
        )
        for field, value, fixed in core:
            if value != fixed:
                raise ValueError(
                    f"hardware spec {self.name!r}: {field} = {value}, but the integer neuron core "
                    f"(neurodeploy.neuron.fixedpoint) implements {fixed} only, as Lava's bit-accurate "
                    "LIF does; a spec with another value would silently disagree with the simulator"
                )
        if self.fixed_weight_exp is not None and not (
            self.weight_exp_min <= self.fixed_weight_exp <= self.weight_exp_max
        ):
            raise ValueError(
                f"hardware spec {self.name!r}: fixed_weight_exp = {self.fixed_weight_exp} "
                f"outside [{self.weight_exp_min}, {self.weight_exp_max}]"
            )
        lo, hi = self.bias_exp_range
        if self.fixed_bias_exp is not None and not lo <= self.fixed_bias_exp <= hi:
            raise ValueError(
                f"hardware spec {self.name!r}: fixed_bias_exp = {self.fixed_bias_exp} "
                f"outside {lo}..{hi}"
            )

    @property
    def vth_max(self) -> int:
        return (1 << self.threshold_bits) - 1

    @property
    def decay_unit(self) -> int:
        """du, dv and the smoothing coefficient are fractions of this (4096)."""
        return DECAY_UNIT

    @property
    def state_max(self) -> int:
        """v saturates at +-state_max = 2^23 - 1."""
        return V_MAX

    @property
    def bias_mant_max(self) -> int:
        return (1 << (self.bias_mant_bits - 1)) - 1

    @property
    def bias_exp_range(self) -> tuple[int, int]:
        return 0, (1 << self.bias_exp_bits) - 1

    @property
    def weight_max(self) -> int:
        """Largest even mixed-sign weight: 2^(bits) - 2 = 254 for 8 bits."""
        return (1 << self.weight_bits) - 2

    @property
    def weight_min(self) -> int:
        return -(1 << self.weight_bits)


LOIHI2 = HardwareSpec(
    name="loihi2",
    graded_spike_bits=8,
    cores=128,
    neurons_per_core=8192,
    synapses_per_core=120_000_000 // 128,
    synapses_per_chip=120_000_000,
    neurons_per_chip=1_000_000,
    synapse_memory_bytes_per_core=192 * 1024,
    neuron_state_bytes=8,
    source="Intel Loihi 2 brief (2021): 128 cores, 1M neurons, 120M synapses, graded spikes up to 32 bit; "
    "number formats from Lava 0.10 bit-accurate models",
)
LOIHI1 = HardwareSpec(
    name="loihi1",
    graded_spike_bits=0,
    cores=128,
    neurons_per_core=1024,
    synapse_memory_bytes_per_core=128 * 1024,
    neurons_per_chip=128 * 1024,
    source="Davies et al., IEEE Micro 2018: 128 cores, 1024 compartments and 128 KB synaptic memory per core",
)


def netx_variant(hw: HardwareSpec) -> HardwareSpec:
    """``hw`` restricted to lava-dl netx's HDF5 formats (module docstring): weight exponent 0 and
    bias exponent 6 in every layer; named ``<name>-netx``. A netx variant is returned unchanged."""
    if hw.name.endswith(NETX_SUFFIX):
        return hw
    return dataclasses.replace(
        hw,
        name=hw.name + NETX_SUFFIX,
        fixed_weight_exp=NETX_WEIGHT_EXP,
        fixed_bias_exp=NETX_BIAS_EXP,
        source=hw.source
        + "; restricted to lava-dl 0.6 netx HDF5 (netx/hdf5.py: weight exponent derived "
        "from the 8-bit weights, bias_exp = 6)",
    )


LOIHI2_NETX = netx_variant(LOIHI2)
LOIHI1_NETX = netx_variant(
    LOIHI1
)  # netx's formats on Loihi 1 limits (stock-neuron fine-tuning for loihi1)
SPECS = {s.name: s for s in (LOIHI2, LOIHI1, LOIHI2_NETX, LOIHI1_NETX)}


def get_spec(name: str) -> HardwareSpec:
    if name not in SPECS:
        raise ValueError(f"hardware: unknown spec {name!r}; available: {sorted(SPECS)}")
    return SPECS[name]
