"""The Airflow DAGs: they parse fast without services or configuration, and run end to end.

Each runs under ``airflow dags test`` against the real node, the demo site and a loopback SMTP
server; a second run adds nothing and mails nothing; a broken source fails only its own mapped
task.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from elasticsearch import Elasticsearch
from httpfaults import closed_port
from smtpservers import ScriptedHandler, smtpd

from devtools.demo import DagResult, demo_environment, migrate_airflow, run_dags
from devtools.demosite import DemoSite, load_catalog
from pipeline.alerts.rules import store_rules
from pipeline.net.urls import url_id
from pipeline.settings import Source, load_config, load_settings
from pipeline.store.client import IndexNames, install

REPO = Path(__file__).resolve().parents[1]
DAGS = REPO / "dags"
SOURCES = ("northwind-times", "vestnik-vostoka", "diario-del-puerto")
ALL_DAGS = ("ingest_feeds", "crawl_sites", "deliver_alerts", "maintenance")

# Run in a fresh interpreter: Airflow first (its import is not the DAG files' cost), then the
# bag, timed; then what the DAG files left in sys.modules and how the DAGs are set up.
_PARSE = r"""
import json, sys, time
from pathlib import Path

from airflow.dag_processing.dagbag import BundleDagBag

folder = Path(sys.argv[1])
started = time.monotonic()
bag = BundleDagBag(dag_folder=str(folder), bundle_path=folder, bundle_name="dags-folder")
seconds = time.monotonic() - started
heavy = ("elasticsearch", "scrapy", "trafilatura", "pydantic_settings", "datasketch")
dags = {}
for dag_id, dag in bag.dags.items():
    timetable = dag.timetable
    condition = getattr(timetable, "asset_condition", None)
    dags[dag_id] = {
        "timetable": type(timetable).__name__,
        "assets": [condition.name] if hasattr(condition, "name") else [],
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "start_date": dag.start_date.isoformat(),
        "tasks": {
            t.task_id: {
                "retries": t.retries,
                "backoff": t.retry_exponential_backoff,
                "policy": type(t.retry_policy).__name__ if t.retry_policy else None,
                "outlets": [a.name for a in t.outlets],
                "teardown": t.is_teardown,
            }
            for t in dag.tasks
        },
    }
print(json.dumps({
    "errors": bag.import_errors,
    "seconds": seconds,
    "dags": dags,
    "modules": sorted(m for m in sys.modules
                      if m.split(".")[0] in heavy or m.startswith("pipeline.")),
}))
"""


@dataclass(frozen=True)
class Stack:
    """One prefix, config dir and Airflow environment pointing at the site and SMTP server."""

    env: dict[str, str]
    names: IndexNames
    home: Path
    handler: ScriptedHandler
    site: DemoSite


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated Airflow SQLite database for the session (``airflow db migrate``, ~20 s)."""
    home = tmp_path_factory.mktemp("airflow")
    env = _env(home, "http://127.0.0.1:9200", "unused", home, 25)
    migrate_airflow(env, home)
    return home


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as running:
        yield running


@pytest.fixture(scope="module")
def smtp() -> Iterator[tuple[ScriptedHandler, int]]:
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        yield handler, port


def _env(home: Path, es_url: str, prefix: str, config_dir: Path, smtp_port: int) -> dict[str, str]:
    env = demo_environment(
        es_url=es_url,
        prefix=prefix,
        config_dir=config_dir,
        smtp_port=smtp_port,
        airflow_home=home,
    )
    env["NEWSRADAR_SOURCES_PER_TASK"] = "1"  # one mapped task per source
    return env


def _stack(
    tmp: Path,
    es: Elasticsearch,
    es_url: str,
    home: Path,
    site: DemoSite,
    smtp: tuple[ScriptedHandler, int],
    sources: list[Source],
) -> Stack:
    """A config dir with ``sources`` and the demo's rules, installed under a fresh prefix."""
    prefix = f"test-dags-{uuid.uuid4().hex[:8]}"
    config_dir = tmp / prefix
    config_dir.mkdir(parents=True)
    documents = [s.model_dump(mode="json", exclude_none=True) for s in sources]
    (config_dir / "sources.yaml").write_text(yaml.safe_dump({"sources": documents}))
    demo = REPO / "config" / "demo" / "alerts.yaml"
    (config_dir / "alerts.yaml").write_text(demo.read_text(encoding="utf-8"), encoding="utf-8")
    settings = load_settings({"NEWSRADAR_CONFIG_DIR": str(config_dir)})
    names = IndexNames(prefix)
    install(es, prefix)
    store_rules(es, names, load_config(settings).alerts, source="test")
    env = _env(home, es_url, prefix, config_dir, smtp[1])
    return Stack(env, names, home, smtp[0], site)


def _drop(es: Elasticsearch, names: IndexNames) -> None:
    es.options(ignore_status=404).indices.delete(index=names.pattern, expand_wildcards="all")
    es.options(ignore_status=404).indices.delete_index_template(name=names.pattern)


def _dags_test(stack: Stack, *dag_ids: str) -> list[DagResult]:
    log = stack.home / "logs" / f"{stack.names.prefix}-{uuid.uuid4().hex[:6]}.log"
    return run_dags(dag_ids, stack.env, log)


def _task_states(home: Path, dag_id: str) -> dict[tuple[str, str], tuple[str, int]]:
    """(task id, rendered map index or "") -> (state, try number) in the DAG's latest run."""
    with sqlite3.connect(home / "airflow.db") as db:
        (run_id,) = db.execute(
            "SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1", (dag_id,)
        ).fetchone()
        rows = db.execute(
            "SELECT task_id, rendered_map_index, state, try_number FROM task_instance"
            " WHERE dag_id = ? AND run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    return {(task, index or ""): (state, tries) for task, index, state, tries in rows}


def _article_ids(es: Elasticsearch, names: IndexNames) -> list[str]:
    es.indices.refresh(index=names.articles)
    return [h["_id"] for h in es.search(index=names.articles, size=1000)["hits"]["hits"]]


def _expected_ids(site: DemoSite, sources: tuple[str, ...]) -> set[str]:
    return {
        url_id(site.url(e.canonical))
        for e in load_catalog()
        if e.source in sources
        and not e.robots_disallowed
        and (e.in_feed or e.in_sitemap or e.on_section_page)
    }


def _nato_digests(handler: ScriptedHandler) -> list[str]:
    found = []
    for received in handler.received:
        message = received.message()
        if "NATO enlargement" in str(message["Subject"]):
            body = message.get_body(("plain",))
            found.append(body.get_content() if body is not None else "")
    return found


@pytest.fixture(scope="module")
def first_run(
    tmp_path_factory: pytest.TempPathFactory,
    es_client: Elasticsearch,
    es_node: str,
    airflow_home: Path,
    site: DemoSite,
    smtp: tuple[ScriptedHandler, int],
) -> Iterator[tuple[Stack, list[DagResult]]]:
    """Every DAG run once, in the order make demo runs them, then maintenance."""
    sources = [s for s in site.sources() if s.id in SOURCES]
    stack = _stack(
        tmp_path_factory.mktemp("config"), es_client, es_node, airflow_home, site, smtp, sources
    )
    results = _dags_test(stack, *ALL_DAGS)
    yield stack, results
    _drop(es_client, stack.names)


def test_dag_files_parse_fast_without_services_or_configuration(
    airflow_home: Path, tmp_path: Path
) -> None:
    env = _env(airflow_home, f"http://127.0.0.1:{closed_port()}", "x", tmp_path / "nothing", 25)
    done = subprocess.run(
        [sys.executable, "-c", _PARSE, str(DAGS)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {}
    assert sorted(parsed["dags"]) == sorted(ALL_DAGS)
    # No config read, no client built, nothing heavy imported: only pipeline.errors, for the
    # retry policy's exception classes.
    assert parsed["modules"] == ["pipeline.errors"]
    assert parsed["seconds"] < 2.0, f"the DAG files took {parsed['seconds']:.2f} s to parse"
    dags = parsed["dags"]
    for dag in dags.values():
        assert dag["catchup"] is False
        assert dag["max_active_runs"] == 1
        assert dag["start_date"] == "2025-01-01T00:00:00+00:00"
        for task in dag["tasks"].values():
            assert task["retries"] >= 3 and task["backoff"] > 1
            assert task["policy"] == "ExceptionRetryPolicy"
    outbox = "newsradar_alert_outbox"
    assert dags["deliver_alerts"]["timetable"] == "AssetOrTimeSchedule"
    assert dags["deliver_alerts"]["assets"] == [outbox]
    for producer in ("ingest_feeds", "crawl_sites"):
        announce = dags[producer]["tasks"]["announce_alerts"]
        assert announce["outlets"] == [outbox] and announce["teardown"] is True


def test_every_dag_runs_end_to_end(
    first_run: tuple[Stack, list[DagResult]], es_client: Elasticsearch
) -> None:
    stack, results = first_run
    assert [(r.dag_id, r.ok) for r in results] == [(d, True) for d in ALL_DAGS], results[0].log
    assert sorted(_article_ids(es_client, stack.names)) == sorted(
        _expected_ids(stack.site, SOURCES)
    )
    ingest = _task_states(stack.home, "ingest_feeds")
    assert {index for task, index in ingest if task == "ingest"} == set(SOURCES)
    assert {state for state, _ in ingest.values()} == {"success"}
    crawl = _task_states(stack.home, "crawl_sites")
    assert {state for state, _ in crawl.values()} <= {"success", "skipped"}


def test_one_digest_per_rule_and_it_tells_the_1954_story(
    first_run: tuple[Stack, list[DagResult]],
) -> None:
    stack, _ = first_run
    [digest] = _nato_digests(stack.handler)
    assert "1954" in digest
    subjects = [str(r.message()["Subject"]) for r in stack.handler.received]
    assert len(subjects) == len(set(subjects))


def test_ingest_run_again_adds_no_document_and_mails_nothing(
    first_run: tuple[Stack, list[DagResult]], es_client: Elasticsearch
) -> None:
    stack, _ = first_run
    before = sorted(_article_ids(es_client, stack.names))
    mails = len(stack.handler.received)
    # Every feed due again, as if the scheduler had started the same run a second time.
    feeds = es_client.search(index=stack.names.feeds, size=100)["hits"]["hits"]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    for hit in feeds:
        es_client.update(index=stack.names.feeds, id=hit["_id"], doc={"next_poll": past})
    es_client.indices.refresh(index=stack.names.feeds)

    results = _dags_test(stack, "ingest_feeds", "deliver_alerts")
    assert all(r.ok for r in results), results[0].log
    assert sorted(_article_ids(es_client, stack.names)) == before
    assert len(stack.handler.received) == mails
    # Nothing new: the alert-outbox asset is not updated, so nothing triggers a delivery.
    assert _task_states(stack.home, "ingest_feeds")[("announce_alerts", "")][0] == "skipped"


def test_a_broken_source_fails_only_its_own_mapped_task(
    tmp_path: Path,
    es_client: Elasticsearch,
    es_node: str,
    airflow_home: Path,
    site: DemoSite,
    smtp: tuple[ScriptedHandler, int],
) -> None:
    port = closed_port()
    broken = Source(id="broken-feed", name="Broken", feeds=(f"http://127.0.0.1:{port}/rss.xml",))
    good = [s for s in site.sources() if s.id == "northwind-times"]
    stack = _stack(tmp_path, es_client, es_node, airflow_home, site, smtp, [*good, broken])
    try:
        [result] = _dags_test(stack, "ingest_feeds")
        assert not result.ok  # the run is failed: a source is broken
        states = _task_states(stack.home, "ingest_feeds")
        # Failed at once, without retries: a permanent error.
        assert states[("ingest", "broken-feed")] == ("failed", 1)
        assert states[("ingest", "northwind-times")][0] == "success"
        assert states[("announce_alerts", "")][0] == "success"  # northwind's alerts announced
        assert sorted(_article_ids(es_client, stack.names)) == sorted(
            _expected_ids(site, ("northwind-times",))
        )
        log = Path(result.log).read_text(encoding="utf-8", errors="replace")
        assert f"source broken-feed: http://127.0.0.1:{port}/rss.xml" in log
    finally:
        _drop(es_client, stack.names)
