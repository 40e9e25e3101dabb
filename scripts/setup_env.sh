#!/usr/bin/env bash
# Create / update the project's virtual environment in <repo>/.venv (Python 3.11).
#
#   1. find a Python 3.11 ($PYTHON, python3.11, python3, pyenv's 3.11.x), create .venv
#   2. pin pip inside the venv
#   3. install scripts/requirements-pinned.txt (exact pins; torch==2.13.0+cpu, numpy 1.26.4,
#      and the checkers `make lint` runs: ruff, mypy, import-linter)
#   4. install lava-nc==0.10.0 and lava-dl==0.6.0 with --no-deps --ignore-requires-python
#      (they declare Requires-Python <3.11, so pip refuses them as ordinary dependencies)
#      and scripts/requirements-nodeps.txt with --no-deps (neurobench, tonic, spikingjelly, norse)
#   5. python scripts/patch_lava.py  (the three source edits for Python 3.11 and this project to the installed lava)
#   6. pip install --no-deps -e .     (the project, editable)
#
# Before all of this, every run: the Debian packages the offline tasks read (SYSTEM_PKGS:
# dataset-fashion-mnist, the Fashion-MNIST IDX files under /usr/share/datasets/fashion-mnist,
# for `fashion-mnist` and `event-fashion`; espeak-ng, the speech synthesiser behind
# `spoken-digits`). Installed with apt-get when missing and we run as root on a Debian-like
# system; otherwise the script says what it skipped and the tasks (and their tests) name the
# missing package. Under CI=true a missing package is an error. NEURODEPLOY_SKIP_APT=1 skips it.
#
# Idempotent: a stamp file in .venv records a hash of the inputs (this script, the
# requirements file, patch_lava.py, pyproject.toml, the interpreter version). When nothing
# changed, a re-run only checks the stamp and exits (well under 2 s). Any change re-runs
# steps 2-6 in the existing venv. NEURODEPLOY_RECREATE_VENV=1 deletes .venv first.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

VENV_DIR="$REPO_ROOT/.venv"
VENV_PY="$VENV_DIR/bin/python"
REQ_FILE="scripts/requirements-pinned.txt"
NODEPS_FILE="scripts/requirements-nodeps.txt"
PATCH_SCRIPT="scripts/patch_lava.py"
STAMP_FILE="$VENV_DIR/.neurodeploy-setup.stamp"
PIP_VERSION="26.3"
LAVA_PKGS=("lava-nc==0.10.0" "lava-dl==0.6.0")

log() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] ERROR: %s\n' "$*" >&2; exit 1; }

for f in "$REQ_FILE" "$NODEPS_FILE" "$PATCH_SCRIPT" "pyproject.toml"; do
    [[ -f "$f" ]] || die "missing $REPO_ROOT/$f"
done

# --- system packages (every run; cheap when present) ------------------------------------------
SYSTEM_PKGS=("dataset-fashion-mnist" "espeak-ng")

missing_system_pkgs() {
    local p
    for p in "${SYSTEM_PKGS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
            || printf '%s ' "$p"
    done
}

system_packages() {
    [[ "${NEURODEPLOY_SKIP_APT:-0}" == "1" ]] && { log "system packages: skipped (NEURODEPLOY_SKIP_APT=1)"; return 0; }
    if ! command -v dpkg-query >/dev/null 2>&1; then
        log "system packages: not a Debian-like system; skipped ${SYSTEM_PKGS[*]} (the tasks fashion-mnist, event-fashion and spoken-digits need them: see README 'Offline tasks')"
        [[ "${CI:-}" == "true" ]] && die "CI=true: ${SYSTEM_PKGS[*]} are required"
        return 0
    fi
    local missing
    missing="$(missing_system_pkgs)"
    if [[ -z "$missing" ]]; then
        log "system packages: present (${SYSTEM_PKGS[*]})"
        return 0
    fi
    if [[ "$(id -u)" != "0" ]] || ! command -v apt-get >/dev/null 2>&1; then
        log "system packages: missing $missing; not root (or no apt-get), so not installed: run 'sudo apt-get install $missing' for the tasks fashion-mnist, event-fashion and spoken-digits"
        [[ "${CI:-}" == "true" ]] && die "CI=true: missing system packages $missing"
        return 0
    fi
    log "system packages: installing $missing (apt-get)"
    # shellcheck disable=SC2086
    if ! { DEBIAN_FRONTEND=noninteractive apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } >/dev/null; then
        [[ "${CI:-}" == "true" ]] && die "CI=true: apt-get install $missing failed"
        log "system packages: apt-get install $missing failed; the tasks that need them will say so"
    fi
}
system_packages

# Hash of everything that determines the environment.
inputs_hash() {
    sha256sum scripts/setup_env.sh "$REQ_FILE" "$NODEPS_FILE" "$PATCH_SCRIPT" pyproject.toml | sha256sum | cut -d' ' -f1
}

# Does this interpreter run, and is it CPython 3.11?
is_py311() {
    "$1" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' >/dev/null 2>&1
}

# --- fast path: nothing changed --------------------------------------------------------------
HASH="$(inputs_hash)"
if [[ -x "$VENV_PY" && -f "$STAMP_FILE" && "${NEURODEPLOY_RECREATE_VENV:-0}" != "1" ]] \
        && is_py311 "$VENV_PY"; then
    WANT="$HASH $("$VENV_PY" -c 'import sys; print(sys.version.split()[0])')"
    if [[ "$(cat "$STAMP_FILE")" == "$WANT" ]]; then
        log "up to date: $VENV_DIR (stamp matches; nothing to do)"
        exit 0
    fi
    log "inputs changed since the last set-up: re-running the install steps"
fi

# --- 1. Python 3.11 and the venv ---------------------------------------------------------------
find_python311() {
    local c
    local candidates=()
    [[ -n "${PYTHON:-}" ]] && candidates+=("$PYTHON")
    candidates+=(python3.11 python3 python)
    if [[ -n "${PYENV_ROOT:-}" ]]; then candidates+=("$PYENV_ROOT"/versions/3.11*/bin/python3.11); fi
    candidates+=("$HOME"/.pyenv/versions/3.11*/bin/python3.11 /usr/bin/python3.11 /usr/local/bin/python3.11)
    for c in "${candidates[@]}"; do
        if [[ "$c" == */* ]]; then [[ -x "$c" ]] || continue
        else command -v "$c" >/dev/null 2>&1 || continue
        fi
        if is_py311 "$c"; then
            # resolve pyenv shims etc. to the real interpreter
            "$c" -c 'import sys; print(sys.executable)'
            return 0
        fi
    done
    return 1
}

if [[ "${NEURODEPLOY_RECREATE_VENV:-0}" == "1" && -d "$VENV_DIR" ]]; then
    log "NEURODEPLOY_RECREATE_VENV=1: removing $VENV_DIR"
    rm -rf "$VENV_DIR"
fi
if [[ -e "$VENV_DIR" ]] && ! { [[ -x "$VENV_PY" ]] && is_py311 "$VENV_PY"; }; then
    log "$VENV_DIR exists but has no working Python 3.11: recreating it"
    rm -rf "$VENV_DIR"
fi

rm -f "$STAMP_FILE"   # an interrupted run must not leave a valid stamp behind

if [[ ! -x "$VENV_PY" ]]; then
    if ! BASE_PY="$(find_python311)"; then
        die "no Python 3.11 found (tried \$PYTHON, python3.11, python3, python, ~/.pyenv/versions/3.11*). \
lava-nc 0.10 needs exactly Python 3.11 here. Install it (e.g. 'pyenv install 3.11' or \
'apt-get install python3.11 python3.11-venv') or set PYTHON=/path/to/python3.11."
    fi
    log "creating $VENV_DIR with $BASE_PY ($("$BASE_PY" --version 2>&1))"
    "$BASE_PY" -m venv "$VENV_DIR" \
        || die "'$BASE_PY -m venv' failed (on Debian/Ubuntu: apt-get install python3.11-venv)"
else
    log "reusing $VENV_DIR ($("$VENV_PY" --version 2>&1))"
fi

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
# Every pip call carries the pins as constraints (torch==2.13.0+cpu, numpy==1.26.4): without them
# pip may pull a multi-GB CUDA torch build or numpy 2.
PIP=("$VENV_PY" -m pip)
CONSTRAINTS=(-c "$REQ_FILE")

# --- 2. pip ----------------------------------------------------------------------------------------
log "pip: installing pip==$PIP_VERSION in the venv"
"${PIP[@]}" install --quiet "${CONSTRAINTS[@]}" "pip==$PIP_VERSION"

# --- 3. pinned requirements ------------------------------------------------------------------
log "pip: installing the exact pins of $REQ_FILE (torch 2.13.0+cpu, numpy 1.26.4, ruff, mypy, ...)"
if ! "${PIP[@]}" install "${CONSTRAINTS[@]}" -r "$REQ_FILE"; then
    die "pip could not install the pins of $REQ_FILE (see above). If torch==2.13.0+cpu is the \
missing one: the CPU wheel must be visible to pip, e.g. PIP_FIND_LINKS=/opt/wheels (the folder \
holding torch-2.13.0+cpu-*.whl) or PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu. \
This script never installs the CUDA build."
fi

# --- 4. lava ----------------------------------------------------------------------------------
log "pip: installing ${LAVA_PKGS[*]} (--no-deps --ignore-requires-python: they declare Python <3.11)"
"${PIP[@]}" install --no-deps --ignore-requires-python "${CONSTRAINTS[@]}" "${LAVA_PKGS[@]}"

log "pip: installing $NODEPS_FILE with --no-deps (neurobench, tonic, spikingjelly, norse)"
"${PIP[@]}" install --no-deps "${CONSTRAINTS[@]}" -r "$NODEPS_FILE"

# --- 5. patch lava for Python 3.11 -------------------------------------------------------------
log "patching the installed lava for Python 3.11 ($PATCH_SCRIPT)"
"$VENV_PY" "$PATCH_SCRIPT"

# --- 6. the project, editable ----------------------------------------------------------------------
log "pip: installing the project editable (--no-deps --no-build-isolation -e .)"
"${PIP[@]}" install --no-deps --no-build-isolation "${CONSTRAINTS[@]}" -e .

# --- checks -------------------------------------------------------------------------------------------
log "checking the environment"
"$VENV_PY" - <<'EOF'
import importlib.util, sys
import numpy, torch
assert numpy.__version__.startswith("1."), numpy.__version__
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
import lava.magma.compiler.var_model  # fails on Python 3.11 unless patched
import lava.lib.dl.slayer             # fails without torchvision/cv2 unless patched
import numba, neurobench.metrics.workload, tonic, spikingjelly.activation_based.neuron, norse.torch
spec = importlib.util.find_spec("neurodeploy")
assert spec is not None, "neurodeploy is not installed in the venv"
# the checkers `make lint` runs, next to the interpreter (make calls them by path)
from pathlib import Path
bindir = Path(sys.executable).parent
missing = [t for t in ("ruff", "mypy", "lint-imports") if not (bindir / t).exists()]
assert not missing, f"not installed in {bindir}: {missing} (scripts/requirements-pinned.txt)"
print(f"[setup_env] ok: python {sys.version.split()[0]}, torch {torch.__version__}, "
      f"numpy {numpy.__version__}, lava importable, neurodeploy -> {spec.origin or spec.submodule_search_locations}")
EOF

printf '%s %s\n' "$HASH" "$("$VENV_PY" -c 'import sys; print(sys.version.split()[0])')" > "$STAMP_FILE"
log "done: $VENV_DIR is ready (activate with 'source .venv/bin/activate')"
