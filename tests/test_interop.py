"""The interoperability matrix's cheap cells (issue 18, item 3; no Lava, no netx): producers'
own exporters -> NIR file -> consumers, spike agreement per neuron layer against the producer's
own forward (``benchmarks/_interop_cells.py``). Bounds measured 2026-11-30 with torch 2.13, nir
1.0.8, nirtorch 2.6, snntorch 1.0.0, spikingjelly 2.0.0, norse 1.1.0
(``benchmarks/results/interop.md``): a peer's version change that breaks or changes a cell fails
here, not in a user's hands."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

pytest.importorskip("snntorch")
pytest.importorskip("spikingjelly")
pytest.importorskip("norse")
pytest.importorskip("nirtorch")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from _interop_cells import Cell, matrix

EXACT = 1.0
#: (producer, arch, consumer) -> lowest per-layer agreement measured (a bound a little below it),
#: or 1.0 where the cell is spike for spike; measured values in the comments.
BOUNDS: dict[tuple[str, str, str], float] = {
    ("neurodeploy", "mlp", "nd-float"): EXACT,
    ("neurodeploy", "mlp", "nd-int"): 0.99,  # 1.0
    ("neurodeploy", "mlp", "snntorch"): EXACT,  # README: our vanilla LIF, spike for spike
    ("neurodeploy", "mlp", "spikingjelly"): EXACT,
    ("neurodeploy", "mlp", "nirtorch"): EXACT,
    ("neurodeploy", "conv", "nd-float"): EXACT,
    ("neurodeploy", "conv", "nd-int"): 0.97,  # 0.9781
    ("neurodeploy", "conv", "snntorch"): EXACT,
    ("neurodeploy", "conv", "spikingjelly"): EXACT,
    ("neurodeploy", "conv", "nirtorch"): EXACT,
    ("neurodeploy", "recurrent", "nd-float"): EXACT,
    ("neurodeploy", "recurrent", "nd-int"): 0.98,  # 0.9863
    ("neurodeploy", "recurrent", "nirtorch"): EXACT,
    ("snntorch", "mlp", "nd-float"): EXACT,
    ("snntorch", "mlp", "nd-int"): 0.99,  # 0.9980
    ("snntorch", "mlp", "snntorch"): EXACT,
    ("snntorch", "mlp", "spikingjelly"): EXACT,
    ("snntorch", "mlp", "nirtorch"): EXACT,
    ("snntorch", "conv", "nd-float"): EXACT,
    ("snntorch", "conv", "nd-int"): 0.93,  # 0.9391
    ("snntorch", "conv", "spikingjelly"): EXACT,
    ("snntorch", "conv", "nirtorch"): EXACT,
    # read with --reset snntorch (snnTorch's delayed reset), as the README tells users to
    ("snntorch", "recurrent", "nd-float"): EXACT,
    ("snntorch", "recurrent", "nd-int"): 0.92,  # 0.9312: quantisation
    ("snntorch", "recurrent", "nirtorch"): 0.60,  # 0.6281: delayed reset, zeros at t = 0
    ("spikingjelly", "mlp", "nd-float"): EXACT,
    ("spikingjelly", "mlp", "nd-int"): 0.99,  # 0.9980
    ("spikingjelly", "mlp", "snntorch"): EXACT,
    ("spikingjelly", "mlp", "spikingjelly"): EXACT,
    ("spikingjelly", "mlp", "nirtorch"): EXACT,
    ("spikingjelly", "conv", "nd-float"): EXACT,
    ("spikingjelly", "conv", "nd-int"): 0.97,  # 0.9740
    ("spikingjelly", "conv", "spikingjelly"): EXACT,
    ("spikingjelly", "conv", "nirtorch"): EXACT,
    ("norse", "mlp", "nd-float"): EXACT,
    ("norse", "mlp", "nd-int"): 0.98,  # 0.9902
    ("norse", "mlp", "snntorch"): 0.55,  # 0.6074: snnTorch's importer fixes dt = 1e-4
}
#: cells that cannot run today (the consumer or exporter refuses): the exception text they show
REFUSED: dict[tuple[str, str, str], str] = {
    ("neurodeploy", "recurrent", "snntorch"): "AttributeError",
    ("neurodeploy", "recurrent", "spikingjelly"): "step_mode='s'",
    ("snntorch", "conv", "snntorch"): "TypeError",
    ("snntorch", "recurrent", "snntorch"): "AttributeError",
    ("spikingjelly", "recurrent", "nd-float"): "producer: TraceError",
    ("norse", "conv", "nd-float"): "not a NIR node",
    ("norse", "recurrent", "nd-float"): "not a NIR node",
}


@pytest.fixture(scope="module")
def cells() -> dict[tuple[str, str, str], Cell]:
    return {(c.producer, c.arch, c.consumer): c for c in matrix(lava=False)}


@pytest.mark.parametrize("key", list(BOUNDS), ids=["-".join(k) for k in BOUNDS])
def test_cell_agreement(cells: dict[tuple[str, str, str], Cell], key: tuple[str, str, str]) -> None:
    c = cells[key]
    assert c.agreement is not None, f"{key}: the cell no longer runs: {c.error}"
    low = min(c.agreement)
    if BOUNDS[key] == EXACT:
        assert low == 1.0, f"{key}: no longer spike for spike: {c.text()}"
    else:
        assert low >= BOUNDS[key], f"{key}: {c.text()} below the measured bound {BOUNDS[key]}"
        if low < 1.0:
            assert c.reason and c.reason != "unexplained", f"{key}: no reason for {c.text()}"


@pytest.mark.parametrize("key", list(REFUSED), ids=["-".join(k) for k in REFUSED])
def test_refused_cells_still_refused(
    cells: dict[tuple[str, str, str], Cell], key: tuple[str, str, str]
) -> None:
    """A cell that starts to run after a peer's upgrade shows up here: measure it and move it
    to BOUNDS."""
    c = cells[key]
    assert c.agreement is None and REFUSED[key] in c.error, f"{key}: {c.text()}"


def test_every_cell_below_one_has_a_known_reason(
    cells: dict[tuple[str, str, str], Cell],
) -> None:
    bad = [k for k, c in cells.items() if c.agreement and min(c.agreement) < 1 and not c.reason]
    assert not bad
    assert all(c.reason != "unexplained" for c in cells.values()), [
        (k, c.text()) for k, c in cells.items() if c.reason == "unexplained"
    ]
