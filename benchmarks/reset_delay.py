"""snnTorch's delayed reset on the NIR paper's Braille SRNN (issue 16 follow-through): the graph
read with ``reset="snntorch"`` (RSynaptic/Synaptic as trained, reset_delay=True) and with NIR's
reset, each quantised for Loihi 2 (overflow search on the inputs) and run on the reference
simulator and in Lava: per-layer spike agreement float vs integer and integer vs Lava, on the
same Bernoulli spike trains as ``benchmarks/graphs.py`` (rate 0.1, T = 64, 16 samples, seed 0).
Writes benchmarks/results/reset_delay.md. Run: ``.venv/bin/python benchmarks/reset_delay.py``."""

from __future__ import annotations

import warnings
from pathlib import Path

import nir

from neurodeploy.converters.nir_import import nir_to_model
from neurodeploy.data.inputs import random_inputs
from neurodeploy.measure.calibrate import quantize_checked
from neurodeploy.measure.verify import verify
from neurodeploy.neuron.hardware import LOIHI2

ROOT = Path(__file__).resolve().parent
BRAILLE = ROOT.parent.parent / "shared" / "fixtures" / "nir-paper" / "braille_noDelay_bias_zero.nir"
BRAILLE_DT = 1e-4  # snnTorch's export dt (the file records none)
RATE, T, SAMPLES, SEED = 0.1, 64, 16, 0


def measure(reset: str) -> list[tuple[str, float, float]]:
    """(layer, float vs integer, integer vs Lava) for the Braille graph read with ``reset``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nir_to_model(nir.read(str(BRAILLE)), dt=BRAILLE_DT, reset=reset)
        inputs = random_inputs(RATE, tuple(model.input_shape), T=T, n=SAMPLES, seed=SEED)
        prog = quantize_checked(model, LOIHI2, inputs, T=T).program
        c = verify(model, prog, task=inputs, T=T, n=SAMPLES, lava=True)
    assert c.ref_vs_lava is not None
    return list(zip(c.layers, c.float_vs_ref, c.ref_vs_lava, strict=True))


def main() -> None:
    lines = [
        "# Braille SRNN with snnTorch's delayed reset",
        "",
        f"Random Bernoulli spikes, rate {RATE}, T={T}, {SAMPLES} samples, seed {SEED}; "
        "fraction of (step, sample, neuron) entries equal. `--reset snntorch` reads the graph as "
        "snnTorch trained it (float import == snnTorch's RSynaptic/Synaptic spike for spike, "
        "tests/test_reset_delay.py).",
        "",
        "| reading | layer | float vs int | int vs Lava |",
        "|---|---|---|---|",
    ]
    for reset in ("snntorch", "nir"):
        for layer, fi, il in measure(reset):
            lines.append(f"| {reset} | {layer} | {fi:.4f} | {il:.4f} |")
    out = ROOT / "results" / "reset_delay.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
