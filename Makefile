# newsradar: the README's commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit bench es-up es-down site clean

install: $(STAMP)

# The venv is rebuilt from the pinned lock whenever the lock or the project metadata change.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --python $(PY) --require-hashes -r requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

unit: install
	$(VENV)/bin/pytest

test: lint typecheck unit

demo: install
	$(VENV)/bin/python -m pipeline.demo

site: install
	$(VENV)/bin/python -m pipeline.demosite

bench: install
	$(VENV)/bin/python bench/bench_extract.py
	$(VENV)/bin/python bench/bench_language_dedup.py
	$(VENV)/bin/python bench/bench_pull.py
	$(VENV)/bin/python bench/bench_crawl.py

es-up:
	bash docker/es-up.sh

es-down:
	bash docker/es-down.sh

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
