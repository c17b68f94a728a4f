# newsradar: the README's commands.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo test lint typecheck unit bench es-up es-down site clean up down \
  cluster cluster-down cluster-test scale-test

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
	$(VENV)/bin/mypy tests/cluster/*.py

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

# The suite a year ahead: Debian's libfaketime moves the wall clock of the test process and of
# everything it starts (crawl child, airflow dags test) by FUTURE_OFFSET, relative so that time
# still runs; no test may depend on today's date. Only the wall clock moves: with a faked
# monotonic clock, libfaketime 0.9.10 makes Python's lock timeouts wait the whole offset, and
# tests/faketime/monotonic_sleep.c mends its monotonic sleeps, which fail without one. The node
# starts first, on the real clock (es-up.sh also drops libfaketime when started under it).
FUTURE_OFFSET ?= +365d
FUTURE_SHIM := .local/faketime/monotonic_sleep.so

.PHONY: future-clock test-future
future-clock:
	@command -v faketime >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends faketime >/dev/null)
	@command -v cc >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null)

$(FUTURE_SHIM): tests/faketime/monotonic_sleep.c
	@mkdir -p $(@D)
	cc -shared -fPIC -O2 -Wall -Wextra -Werror -o $@ $< -ldl

# Within `make test` the year-ahead run leaves out the whole-stack service tests (crash points,
# `make up`, `make demo`, a node killed and restarted): they take a third of the suite's time, and
# the dated logic they drive runs a year ahead in the job, DAG and alert tests. It also leaves out
# the digest rendered in headless Chromium, which takes minutes under libfaketime and whose HTML
# the digest tests check. `FUTURE_TESTS=` runs every test.
FUTURE_TESTS ?= --ignore=tests/test_crashpoints.py --ignore=tests/test_up.py \
  --ignore=tests/test_demo.py \
  --deselect=tests/test_index.py::test_a_node_killed_mid_run_loses_and_duplicates_nothing \
  --deselect=tests/test_alerts.py::test_html_digest_renders_in_headless_chromium

# libfaketime reads an offset it half understands as something else ("+365x" is 365 seconds),
# which would be a second run on today's date: the offset must move `date` by a day at least.
test-future: install compose-tool browser future-clock es-up $(FUTURE_SHIM)
	@fake=$$(faketime -f "$(FUTURE_OFFSET)" date +%s 2>/dev/null) && [ -n "$$fake" ] \
	  && moved=$$((fake - $$(date +%s))) && [ "$${moved#-}" -ge 86400 ] \
	  || { echo "test-future: FUTURE_OFFSET '$(FUTURE_OFFSET)' does not move the clock by a day" >&2; exit 2; }
	LD_PRELOAD=$(abspath $(FUTURE_SHIM)) faketime -m --exclude-monotonic -f "$(FUTURE_OFFSET)" \
	  $(VENV)/bin/pytest -p no:cacheprovider $(FUTURE_TESTS)

# The two runs share only the node (each test has its own index prefix, folders and ports), so
# they run side by side: 15 minutes of tests rather than 21 on two CPUs. Whatever needs apt-get
# comes first, one at a time, for dpkg's lock; each run's output is shown whole when it ends.
test: lint typecheck install compose-tool browser future-clock es-up $(FUTURE_SHIM)
	@echo "test: the suite and the suite a year ahead, side by side; each one's output when it ends"
	@$(MAKE) --no-print-directory -j2 --output-sync=target unit test-future

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
	$(VENV)/bin/python bench/bench_real.py
	$(VENV)/bin/python bench/bench_extract.py
	$(VENV)/bin/python bench/bench_language_dedup.py
	$(VENV)/bin/python bench/bench_stories.py
	$(VENV)/bin/python bench/bench_events.py
	$(VENV)/bin/python bench/bench_pull.py --es
	$(VENV)/bin/python bench/bench_crawl.py
	$(VENV)/bin/python bench/bench_index.py
	$(VENV)/bin/python bench/bench_alerts.py
	$(VENV)/bin/python bench/bench_matching.py

es-up:
	bash docker/es-up.sh

# The production shape on loopback: three Elasticsearch nodes with security on, PostgreSQL,
# Redis, Airflow with the CeleryExecutor and two workers, the mail sink; see docker/cluster/.
# Both halves use one index prefix: the pipeline's API key is made for it.
cluster: export NEWSRADAR_INDEX_PREFIX := $(or $(NEWSRADAR_INDEX_PREFIX),cluster)
cluster: install
	bash docker/cluster/es-cluster.sh up
	bash docker/cluster/stack.sh up

cluster-down:
	bash docker/cluster/stack.sh down
	bash docker/cluster/es-cluster.sh down

# The cluster tests under the scheduler: the demo site as the sources, ingest_feeds every
# minute and the only DAG that announces alerts (crawl_sites unscheduled, deliver_alerts started
# by the outbox asset alone), so the ingest's own asset event starts the run that mails the
# digest; a fresh index prefix, so that a kept cluster ingests anew. The cluster is stopped
# afterwards, whatever the outcome.
CLUSTER_TEST_ENV := NEWSRADAR_CONFIG_DIR=config/demo NEWSRADAR_INGEST_SCHEDULE='* * * * *' \
  NEWSRADAR_CRAWL_SCHEDULE=none NEWSRADAR_DELIVER_SCHEDULE=none \
  NEWSRADAR_ALLOW_PRIVATE_NETWORKS=1 NEWSRADAR_CRAWL_DELAY=0

cluster-test: install
	@status=0; \
	{ $(CLUSTER_TEST_ENV) NEWSRADAR_INDEX_PREFIX=cluster-test-$$(date +%s) $(MAKE) cluster \
	  && $(VENV)/bin/pytest -m cluster tests/cluster --ignore=tests/cluster/test_scale.py; } \
	  || status=$$?; \
	$(MAKE) cluster-down || status=$$((status ? status : 1)); \
	exit $$status

# The scale test (tests/cluster/test_scale.py): the generated site of NEWSRADAR_SCALE_PAGES
# pages (2,000 by default) through both workers with a node and a worker killed, against a
# clean single-process run. Apart from cluster-test: it restarts the Airflow half with its own
# sources and schedules, and takes far longer.
scale-test: install
	@status=0; \
	{ NEWSRADAR_INDEX_PREFIX=cluster-scale-$$(date +%s) $(MAKE) cluster \
	  && $(VENV)/bin/pytest -m cluster tests/cluster/test_scale.py; } || status=$$?; \
	$(MAKE) cluster-down || status=$$((status ? status : 1)); \
	exit $$status

es-down:
	bash docker/es-down.sh

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache
