"""The import-layering contracts (pyproject ``[tool.importlinter]``, run by ``make lint`` through
``scripts/staged.py``) see the package as installed and catch what they are meant to catch.

``make lint`` checks the contracts on the tree; these tests check the checker: that the staged
graph holds ``neurodeploy.converters`` and ``neurodeploy.targets`` (installed from top-level
folders, which grimp would not find from the repository: every contract over them would pass
vacuously), that an upward import and a module outside every layer are refused, and that file
paths come back as repository paths.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest.importorskip("importlinter")
pytest.importorskip("grimp")

REPO = Path(__file__).resolve().parents[1]


def _staged_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "neurodeploy_staged", REPO / "scripts" / "staged.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


staged = _staged_script()


def _modules_in(folder: Path, package: str) -> set[str]:
    """Dotted names of the Python modules under ``folder`` installed as ``package``."""
    out = set()
    for py in folder.rglob("*.py"):
        rel = py.relative_to(folder).with_suffix("")
        if "__pycache__" in rel.parts:
            continue
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out.add(".".join((package, *parts)))
    return out


def test_staged_graph_holds_every_module_of_the_installed_layout(tmp_path: Path) -> None:
    staged.stage_package(tmp_path)
    # a fresh interpreter with the staged folder first on sys.path (as lint-imports runs):
    # in this process neurodeploy is already imported from the editable install
    probe = (
        "import json, sys; sys.path.insert(0, '.'); import grimp; "
        "print(json.dumps(sorted(grimp.build_graph('neurodeploy', cache_dir=None).modules)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    graph = set(json.loads(proc.stdout))
    want = (
        _modules_in(REPO / "neurodeploy", "neurodeploy")
        | _modules_in(REPO / "converters", "neurodeploy.converters")
        | _modules_in(REPO / "targets", "neurodeploy.targets")
    )
    assert "neurodeploy.targets.reference" in want and "neurodeploy.converters.nir_export" in want
    assert want - graph == set(), f"modules missing from the staged import graph: {want - graph}"


def test_layers_contract_refuses_an_upward_import_and_an_unlisted_module(tmp_path: Path) -> None:
    pkg = staged.stage_package(tmp_path)
    # a real copy of the neuron core (not a link into the repository) with one upward import
    # into a mapped sub-package, plus a top-level module that no layer lists
    (pkg / "neuron").unlink()
    shutil.copytree(
        REPO / "neurodeploy" / "neuron",
        pkg / "neuron",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (pkg / "neuron" / "_upward.py").write_text("from neurodeploy.targets import reference\n")
    (pkg / "_stray.py").write_text('"""In no layer."""\n')
    proc = staged.run("lint-imports", ["--contract", "layers"], stage=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "neurodeploy.neuron is not allowed to import neurodeploy.targets" in proc.stdout
    assert "neurodeploy.neuron._upward -> neurodeploy.targets.reference (l.1)" in proc.stdout
    assert "not listed as layers" in proc.stdout and "- neurodeploy._stray" in proc.stdout


def test_targets_contract_refuses_the_float_model(tmp_path: Path) -> None:
    pkg = staged.stage_package(tmp_path)
    (pkg / "targets").unlink()
    shutil.copytree(REPO / "targets", pkg / "targets", ignore=shutil.ignore_patterns("__pycache__"))
    (pkg / "targets" / "_float.py").write_text("import neurodeploy.nn.net\n")
    proc = staged.run("lint-imports", ["--contract", "targets-run-programs"], stage=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "neurodeploy.targets._float -> neurodeploy.nn.net (l.1)" in proc.stdout


def test_tool_output_names_repository_paths() -> None:
    assert staged.repo_path("neurodeploy/targets/lava.py") == "targets/lava.py"
    assert staged.repo_path("neurodeploy/converters/nir_import.py") == "converters/nir_import.py"
    assert staged.repo_path("neurodeploy/quant/program.py") == "neurodeploy/quant/program.py"
    text = "neurodeploy/targets/lava.py:12: error: x\nnote: neurodeploy/targets/a.py\n"
    assert staged._PATH_AT_LINE_START.sub(lambda m: staged.repo_path(m.group(1)), text) == (
        "targets/lava.py:12: error: x\nnote: neurodeploy/targets/a.py\n"
    )


def test_every_stage_package_is_a_layer() -> None:
    """The layers contract lists exactly the sub-packages and top-level modules there are
    (exhaustive = true refuses extra ones; this refuses stale names)."""
    import tomllib

    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c for c in cfg["contracts"] if c["id"] == "layers"]
    assert layers["containers"] == ["neurodeploy"] and layers["exhaustive"] is True
    listed = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    present = {
        p.stem if p.suffix == ".py" else p.name
        for p in (REPO / "neurodeploy").iterdir()
        if (p.suffix == ".py" and p.name != "__init__.py")
        or (p.is_dir() and (p / "__init__.py").exists())
    }
    present |= set(staged.MAPPED_SUBPACKAGES)
    assert listed == present
