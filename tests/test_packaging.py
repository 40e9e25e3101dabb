"""Packaging: converters/ and targets/ are top-level folders in the repository but install
as neurodeploy.converters / neurodeploy.targets, both editable (the project's .venv) and from
a wheel, and no generic top-level name (targets, converters, tests) is installed.

Import checks run in subprocesses with a cwd outside the repository and without PYTHONPATH:
`python -m pytest` puts the cwd (the repository root) on sys.path, where `targets` and
`converters` would be found as plain folders and prove nothing about the install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = r"""
import importlib.util, json, sys
out = {"generic": {n: importlib.util.find_spec(n) is not None for n in ("targets", "converters")}}
import neurodeploy, neurodeploy.converters, neurodeploy.targets
out["neurodeploy"] = neurodeploy.__file__
out["converters"] = neurodeploy.converters.__file__
out["targets"] = neurodeploy.targets.__file__
print(json.dumps(out))
"""


def _clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(extra)
    return env


def _run(args, cwd, env=None, timeout=120):
    return subprocess.run(
        [str(a) for a in args],
        cwd=str(cwd),
        env=env or _clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _probe(cwd, env=None):
    proc = _run([sys.executable, "-c", PROBE], cwd, env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _under(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder.resolve())


# ---------------------------------------------------------------------------------------------
# (a) the project's venv: editable install
# ---------------------------------------------------------------------------------------------
def test_editable_install_maps_repo_folders(tmp_path):
    info = _probe(tmp_path)
    assert Path(info["converters"]).resolve() == (REPO / "converters" / "__init__.py").resolve()
    assert Path(info["targets"]).resolve() == (REPO / "targets" / "__init__.py").resolve()
    assert Path(info["neurodeploy"]).resolve() == (REPO / "neurodeploy" / "__init__.py").resolve()
    assert info["generic"] == {
        "targets": False,
        "converters": False,
    }, "a generic top-level 'targets'/'converters' is importable outside the repository"


def _help_ok(proc):
    assert (
        proc.returncode == 0
    ), f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "usage" in (proc.stdout + proc.stderr).lower()


def test_python_m_neurodeploy_help(tmp_path):
    _help_ok(_run([sys.executable, "-m", "neurodeploy", "--help"], tmp_path))


def test_console_script_help(tmp_path):
    script = Path(sys.executable).parent / "neurodeploy"
    if not script.exists():
        found = shutil.which("neurodeploy")
        assert found, f"console script 'neurodeploy' not found next to {sys.executable} or on PATH"
        script = Path(found)
    _help_ok(_run([script, "--help"], tmp_path))


# ---------------------------------------------------------------------------------------------
# (b) a normal (non-editable) install from a wheel
# ---------------------------------------------------------------------------------------------
_COPY_IGNORE = shutil.ignore_patterns(
    ".venv",
    ".git",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".pytest_cache",
    ".hypothesis",
    "runs",
    "*.pt",
    "*.pt.tmp*",
)


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    # build from a copy: pip builds in-tree and would leave build/ and *.egg-info in the repo
    shutil.copytree(REPO, src, ignore=_COPY_IGNORE, symlinks=True)
    out = tmp / "dist"
    proc = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", out, src],
        tmp,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    wheels = list(out.glob("neurodeploy-*.whl"))
    assert len(wheels) == 1, (wheels, proc.stdout[-2000:])
    return wheels[0]


def test_wheel_contents(built_wheel):
    with zipfile.ZipFile(built_wheel) as zf:
        names = zf.namelist()
    assert "neurodeploy/converters/__init__.py" in names
    assert "neurodeploy/targets/__init__.py" in names
    assert "neurodeploy/__init__.py" in names
    for bad in ("targets/", "converters/", "tests/"):
        assert not any(n.startswith(bad) for n in names), f"wheel has a top-level {bad}"
    top = {n.split("/", 1)[0] for n in names}
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"neurodeploy"}, f"unexpected top-level entries: {sorted(top)}"
    with zipfile.ZipFile(built_wheel) as zf:
        ep = zf.read(f"{dist_info.pop()}/entry_points.txt").decode()
    assert "neurodeploy = neurodeploy.cli:main" in ep

    # every Python module of the repository's package folders is in the wheel (the editable
    # install finds new subpackages by path; the wheel only has those pyproject lists)
    mapping = {
        "neurodeploy": "neurodeploy",
        "converters": "neurodeploy/converters",
        "targets": "neurodeploy/targets",
    }
    missing = []
    for folder, dest in mapping.items():
        for py in sorted((REPO / folder).rglob("*.py")):
            rel = py.relative_to(REPO / folder)
            if "__pycache__" in rel.parts:
                continue
            if f"{dest}/{rel.as_posix()}" not in names:
                missing.append(f"{folder}/{rel.as_posix()}")
    assert not missing, (
        f"modules missing from the wheel (add their packages to pyproject's "
        f"[tool.setuptools] packages): {missing}"
    )


def test_wheel_install_imports_from_target(built_wheel, tmp_path):
    target = tmp_path / "site"
    proc = _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-compile",
            "--target",
            target,
            built_wheel,
        ],
        tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert not (target / "targets").exists() and not (target / "converters").exists()
    assert not (target / "tests").exists()

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    info = _probe(elsewhere, _clean_env(PYTHONPATH=str(target)))
    for key in ("neurodeploy", "converters", "targets"):
        assert _under(info[key], target), (key, info[key], str(target))
    assert (
        Path(info["converters"]).resolve()
        == (target / "neurodeploy" / "converters" / "__init__.py").resolve()
    )
    assert (
        Path(info["targets"]).resolve()
        == (target / "neurodeploy" / "targets" / "__init__.py").resolve()
    )
    assert info["generic"] == {"targets": False, "converters": False}


# ---------------------------------------------------------------------------------------------
# (c) the public API: neurodeploy/__init__ (lazy, PEP 562)
# ---------------------------------------------------------------------------------------------
# the deployment names the README teaches, by stage, besides the training ones
API_NAMES = {
    "TrainConfig",
    "TrainResult",
    "train",
    "evaluate",
    "load_model",
    "load_task",
    "build_model",
    "LIF",
    "SpikingNet",
    "quantize_model",
    "QuantizationError",
    "IntProgram",
    "IntLayer",
    "HardwareSpec",
    "LOIHI2",
    "LOIHI1",
    "get_spec",
    "export_nir",
    "nir_to_model",
    "read_nir",
    "make_target",
    "ReferenceTarget",
    "LavaTarget",
    "TargetResult",
    "QATNet",
    "FinetuneConfig",
    "profile",
    "write_report",
}

API_PROBE = r"""
import importlib, json, sys
before = set(sys.modules)
import neurodeploy
loaded = sorted(set(sys.modules) - before)
names = [n for n in neurodeploy.__all__ if n != "__version__"]
errors = {}
for n in names:
    try:
        obj = getattr(neurodeploy, n)
        home = importlib.import_module(neurodeploy._WHERE[n])
        if getattr(home, n) is not obj:
            errors[n] = "not the object of " + home.__name__
    except Exception as e:  # noqa: BLE001 - each failure is reported by name
        errors[n] = repr(e)
try:
    neurodeploy.no_such_name
    unknown = None
except AttributeError as e:
    unknown = str(e)
train_home = neurodeploy.train.__module__
print(json.dumps({"loaded": loaded, "dir": dir(neurodeploy), "all": neurodeploy.__all__,
                  "errors": errors, "unknown": unknown, "train": train_home}))
"""


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    proc = _run([sys.executable, "-c", API_PROBE], tmp_path_factory.mktemp("api"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_neurodeploy_is_cheap(api):
    heavy = ("torch", "numpy", "lava", "nir", "scipy", "sklearn", "matplotlib", "h5py", "numba")
    eager = [m for m in api["loaded"] if m.split(".")[0] in heavy or m.startswith("neurodeploy.")]
    assert eager == [], f"`import neurodeploy` imported {eager} eagerly"


def test_public_api_exports_the_deployment_names(api):
    assert api["errors"] == {}, api["errors"]
    assert set(api["all"]) >= API_NAMES, sorted(API_NAMES - set(api["all"]))
    assert api["dir"] == sorted(api["all"]) and "__version__" in api["all"]
    assert api["train"] == "neurodeploy.training.loop"  # the function, not a module
    assert api["unknown"] == "module 'neurodeploy' has no attribute 'no_such_name'"


def test_no_export_is_shadowed_by_a_submodule():
    """Importing neurodeploy.X sets the package attribute X to the module, which would hide an
    exported name X from then on (the reason ``finetune`` is not exported at the top)."""
    import neurodeploy

    subs = {
        p.stem if p.suffix == ".py" else p.name
        for p in (REPO / "neurodeploy").iterdir()
        if p.suffix == ".py" or (p / "__init__.py").exists()
    }
    subs |= {"converters", "targets"}
    assert set(neurodeploy.__all__) & subs == set()
    # each name exported from one module only (a second entry would silently win)
    assert len(neurodeploy._WHERE) == sum(len(v) for v in neurodeploy._EXPORTS.values())
