"""Run import-linter or mypy over the package as it is installed, not as the repository lays it out.

``neurodeploy.converters`` and ``neurodeploy.targets`` live in the top-level folders
``converters/`` and ``targets/`` (pyproject's ``package-dir`` mapping; the editable install maps
them with an import hook). import-linter (through grimp) and mypy find a package by its folder and
walk it, so from the repository they see ``neurodeploy/`` without those two sub-packages: a
layering contract over them would pass vacuously, and mypy could not resolve
``import neurodeploy.targets``. This script stages the installed layout in a temporary folder, as
symbolic links::

    <tmp>/neurodeploy/{__init__.py, cli.py, neuron, nn, ...}  -> <repo>/neurodeploy/*
    <tmp>/neurodeploy/converters                               -> <repo>/converters
    <tmp>/neurodeploy/targets                                  -> <repo>/targets

and runs the tool there, with pyproject.toml as its configuration. Nothing is imported and
nothing is written to the repository except mypy's cache (``.mypy_cache``). File paths in the
tool's output are mapped back to the repository (``neurodeploy/targets/lava.py`` ->
``targets/lava.py``).

Usage::

    python scripts/staged.py lint-imports [lint-imports options]   # the [tool.importlinter] contracts
    python scripts/staged.py mypy [mypy options]                   # [tool.mypy]: the whole package

The exit status is the tool's (0: clean).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "neurodeploy"
# sub-packages installed from a top-level folder of the repository (pyproject's package-dir)
MAPPED_SUBPACKAGES: dict[str, str] = {"converters": "converters", "targets": "targets"}
SKIP = frozenset({"__pycache__"})
TOOLS = ("lint-imports", "mypy")


def stage_package(dest: Path, repo: Path = REPO) -> Path:
    """Link the installed layout of ``neurodeploy`` under ``dest``; returns ``dest/neurodeploy``."""
    pkg = dest / PACKAGE
    pkg.mkdir(parents=True)
    for entry in sorted((repo / PACKAGE).iterdir()):
        if entry.name in SKIP or entry.name in MAPPED_SUBPACKAGES:
            continue
        (pkg / entry.name).symlink_to(entry, target_is_directory=entry.is_dir())
    for name, folder in MAPPED_SUBPACKAGES.items():
        src = repo / folder
        if not (src / "__init__.py").is_file():
            raise FileNotFoundError(
                f"{src}/__init__.py: mapped sub-package {PACKAGE}.{name} missing"
            )
        (pkg / name).symlink_to(src, target_is_directory=True)
    return pkg


def repo_path(staged: str) -> str:
    """``neurodeploy/targets/lava.py`` -> ``targets/lava.py`` (a staged path, repository-relative)."""
    for name, folder in MAPPED_SUBPACKAGES.items():
        prefix = f"{PACKAGE}/{name}/"
        if staged.startswith(prefix):
            return folder + "/" + staged[len(prefix) :]
    return staged


_PATH_AT_LINE_START = re.compile(rf"^({PACKAGE}/[^\s:]+\.pyi?)(?=:)", re.MULTILINE)


def executable(name: str) -> str:
    """``name`` next to the running interpreter (the venv's), else the one on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(
            f"{name} not found next to {sys.executable} or on PATH "
            "(scripts/setup_env.sh installs the pinned version)"
        )
    return found


def command(tool: str, args: list[str]) -> list[str]:
    """The command line that runs ``tool`` from the staged folder with the repository's config."""
    config = str(REPO / "pyproject.toml")
    if tool == "lint-imports":
        # lint-imports puts its working directory (the staged folder) first on sys.path
        return [executable("lint-imports"), "--config", config, "--no-cache", *args]
    if tool == "mypy":
        cache = str(REPO / ".mypy_cache")
        return [executable("mypy"), "--config-file", config, "--cache-dir", cache, *args]
    raise ValueError(f"tool: unknown {tool!r}; available: {TOOLS}")


def run(
    tool: str, args: Sequence[str] = (), *, stage: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``tool`` with ``args`` from ``stage`` (a folder holding a staged ``neurodeploy``, as
    :func:`stage_package` makes it), or from a fresh temporary staging; output captured, with
    staged paths mapped back to the repository."""
    if stage is None:
        with tempfile.TemporaryDirectory(prefix=f"{PACKAGE}-staged-") as tmp:
            stage_package(Path(tmp))
            return run(tool, args, stage=Path(tmp))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MYPYPATH")}
    proc = subprocess.run(
        command(tool, list(args)), cwd=stage, env=env, check=False, capture_output=True, text=True
    )

    def fix(text: str) -> str:
        return _PATH_AT_LINE_START.sub(lambda m: repo_path(m.group(1)), text)

    return subprocess.CompletedProcess(
        proc.args, proc.returncode, fix(proc.stdout), fix(proc.stderr)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in TOOLS:
        print(f"usage: python scripts/staged.py {{{'|'.join(TOOLS)}}} [options]", file=sys.stderr)
        return 2
    proc = run(args[0], args[1:])
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main())
