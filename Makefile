# neurodeploy: set-up, demo and tests in the project's own venv (.venv, Python 3.11).
#
#   make venv                 create / update .venv (scripts/setup_env.sh; a no-op when up to date)
#   make demo                 venv, then .venv/bin/neurodeploy demo
#   make test                 venv, then pytest with pyproject.toml's options
#   make test PYTEST_ARGS="tests/test_lava_smoke.py -x"    extra pytest arguments
#   make clean                remove build outputs and caches (keeps .venv)
#   make distclean            clean, and remove .venv
#
# demo/test default OMP_NUM_THREADS and MKL_NUM_THREADS to 2 unless already set.
# pytest runs as `python -P -m pytest`: -P keeps the repository root (the cwd) off sys.path, so
# tests import the installed package, never the top-level targets/ or converters/ folders.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
PYTHON      := $(VENV)/bin/python
PYTEST_ARGS ?=
THREAD_ENV  := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-2}

.PHONY: help venv demo test clean distclean

help:
	@awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' $(firstword $(MAKEFILE_LIST))

venv:
	bash scripts/setup_env.sh

demo: venv
	$(THREAD_ENV) $(VENV)/bin/neurodeploy demo

test: venv
	$(THREAD_ENV) $(PYTHON) -P -m pytest $(PYTEST_ARGS)

clean:
	rm -rf build dist .pytest_cache .hypothesis
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o \
	    \( -name '*.egg-info' -o -name '__pycache__' \) -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
