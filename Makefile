# neurodeploy: set-up, demo and tests in the project's own venv (.venv, Python 3.11).
#
#   make venv                 create / update .venv (scripts/setup_env.sh; a no-op when up to date)
#   make demo                 venv, then .venv/bin/neurodeploy demo
#   make test                 venv, then `make lint`, then pytest with pyproject.toml's options
#   make test PYTEST_ARGS="tests/test_lava_smoke.py -x"    extra pytest arguments
#   make lint                 ruff check, ruff format --check, lint-imports (layering), mypy;
#                             runs all four and names the ones that failed
#   make fix                  ruff check --fix, then ruff format: rewrites files (safe fixes only)
#   make pytest               pytest alone (no lint), same options as `make test`
#   make clean                remove build outputs and caches (keeps .venv)
#   make distclean            clean, and remove .venv
#
# demo/test default OMP_NUM_THREADS and MKL_NUM_THREADS to 2 unless already set.
# pytest runs as `python -P -m pytest`: -P keeps the repository root (the cwd) off sys.path, so
# tests import the installed package, never the top-level targets/ or converters/ folders.
# lint-imports and mypy run through scripts/staged.py, which stages the installed layout
# (converters/ and targets/ as neurodeploy.converters / .targets) so that both tools see them.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV        := .venv
PYTHON      := $(VENV)/bin/python
PYTEST_ARGS ?=
THREAD_ENV  := OMP_NUM_THREADS=$${OMP_NUM_THREADS:-2} MKL_NUM_THREADS=$${MKL_NUM_THREADS:-2}

.PHONY: help venv demo test pytest lint fix clean distclean

help:
	@awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' $(firstword $(MAKEFILE_LIST))

venv:
	bash scripts/setup_env.sh

demo: venv
	$(THREAD_ENV) $(VENV)/bin/neurodeploy demo

test: venv lint
	$(THREAD_ENV) $(PYTHON) -P -m pytest $(PYTEST_ARGS)

pytest: venv
	$(THREAD_ENV) $(PYTHON) -P -m pytest $(PYTEST_ARGS)

# every check runs, so one report lists all that fail
lint: venv
	@failed=""; \
	echo "--- ruff check"; $(VENV)/bin/ruff check --output-format concise . || failed="$$failed ruff-check"; \
	echo "--- ruff format --check"; $(VENV)/bin/ruff format --check . || failed="$$failed ruff-format"; \
	echo "--- lint-imports"; $(PYTHON) scripts/staged.py lint-imports || failed="$$failed lint-imports"; \
	echo "--- mypy"; $(PYTHON) scripts/staged.py mypy || failed="$$failed mypy"; \
	if [[ -n "$$failed" ]]; then echo "make lint: FAILED:$$failed" >&2; exit 1; fi; \
	echo "make lint: ok (ruff check, ruff format --check, lint-imports, mypy)"

fix: venv
	$(VENV)/bin/ruff check --fix --exit-zero --silent .
	$(VENV)/bin/ruff format .
	@echo "--- left to fix by hand (ruff check --statistics):"; $(VENV)/bin/ruff check --statistics . || true

clean:
	rm -rf build dist .pytest_cache .hypothesis .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o -path ./.git -prune -o \
	    \( -name '*.egg-info' -o -name '__pycache__' \) -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
