# The two front-door commands: `make demo` (set up + main job) and `make test` (set up + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl
export WANDB_MODE ?= offline
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test lint docs

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -U pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: setup
	$(PY) scripts/demo.py --overwrite

test: setup
	$(PY) -m pytest -q -n 2 tests

lint: setup
	$(VENV)/bin/ruff check worldmodel policies envs scripts tests

docs: setup
	$(PY) scripts/render_tasks.py --out docs/tasks.png
