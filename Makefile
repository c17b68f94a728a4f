# newsradar: the README's commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit bench es-up es-down site clean up down

install: $(STAMP)

# The venv is rebuilt from the pinned lock whenever the lock or the project metadata change.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on CI) every process
# would otherwise compile Airflow, Scrapy and trafilatura again on import.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.9
	$(UV) pip install --quiet --python $(PY) --require-hashes --compile-bytecode -r requirements.lock
	$(UV) pip install --quiet --python $(PY) --no-deps -e .
	touch $@

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

# The tests start the local node themselves when it is down; starting it here first keeps its
# start-up (and a Maven resolution on a fresh machine) out of the first test's time.
unit: install compose-tool browser es-up
	$(VENV)/bin/pytest

# tests/test_compose.py validates docker/compose.yml with Debian's docker-compose, whose `config`
# needs no Docker engine; --no-install-recommends keeps the engine (docker.io) off the machine.
.PHONY: compose-tool
compose-tool:
	@command -v docker-compose >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null)

# tests/test_alerts.py renders a digest in headless Chromium (Debian's package); a missing
# browser fails that test, so it is installed here rather than skipped there.
.PHONY: browser
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

test: lint typecheck browser unit

# The main job over the demo site through Airflow, offline; see devtools/demo.py.
demo: install
	$(VENV)/bin/python -m devtools.demo

# Elasticsearch, a mail sink, `newsradar init` and Airflow (API server, scheduler, DAG processor,
# triggerer) with our DAGs, on loopback; see docker/up.sh.
up: install
	bash docker/up.sh

down:
	bash docker/down.sh

site: install
	$(VENV)/bin/python -m devtools.demosite

bench: install es-up
	$(VENV)/bin/python bench/bench_extract.py
	$(VENV)/bin/python bench/bench_language_dedup.py
	$(VENV)/bin/python bench/bench_stories.py
	$(VENV)/bin/python bench/bench_pull.py --es
	$(VENV)/bin/python bench/bench_crawl.py
	$(VENV)/bin/python bench/bench_index.py
	$(VENV)/bin/python bench/bench_alerts.py

es-up:
	bash docker/es-up.sh

es-down:
	bash docker/es-down.sh

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
