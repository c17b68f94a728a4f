"""The main job's steps on the real node, the demo site and a loopback SMTP server.

Retries and crashes leave no duplicates and no second email, a broken source is named,
maintenance reports.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from httpfaults import closed_port
from smtpservers import ScriptedHandler, smtpd

from devtools.demo import DEMO_CRAWL
from devtools.demosite import DemoSite, load_catalog
from pipeline import jobs
from pipeline.alerts.rules import store_rules
from pipeline.crawl.process import CrawlFailed
from pipeline.errors import ConfigError
from pipeline.net.urls import url_id
from pipeline.settings import Config, Source, load_config, load_settings
from pipeline.store.client import IndexNames, install
from pipeline.store.frontier import count

REPO = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
# Two feeds (one carries a near copy, one a robots-disallowed page) and a sitemap-only source;
# the 1954 story is told by the first two.
SOURCES = ("northwind-times", "vestnik-vostoka", "diario-del-puerto")


class KillAfter:
    """An item pipeline after indexing that SIGKILLs the crawl process mid-crawl.

    It kills at the item following the first one listed in KILL_AFTER_URLS: that one's outcome
    is written, the rest are not.
    """

    def __init__(self, urls: set[str]) -> None:
        self.urls = urls
        self.armed = False

    @classmethod
    def from_crawler(cls, crawler: Any) -> KillAfter:
        return cls(set(crawler.settings.getlist("KILL_AFTER_URLS")))

    async def process_item(self, item: Any) -> Any:
        if self.armed:
            await asyncio.sleep(0.5)  # the page before gets its outcome written meanwhile
            os.kill(os.getpid(), signal.SIGKILL)
        self.armed = getattr(item, "url", None) in self.urls
        return item


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as running:
        yield running


@pytest.fixture
def mail() -> Iterator[tuple[ScriptedHandler, int]]:
    handler = ScriptedHandler()
    with smtpd(handler) as port:
        yield handler, port


@pytest.fixture
def prepared(
    es_client: Elasticsearch,
    es_node: str,
    index_prefix: str,
    site: DemoSite,
    mail: tuple[ScriptedHandler, int],
) -> Config:
    """The three sources and the demo's rules, installed under this test's prefix."""
    settings = load_settings(
        {
            "NEWSRADAR_ES_URL": es_node,
            "NEWSRADAR_INDEX_PREFIX": index_prefix,
            "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWSRADAR_SMTP_PORT": str(mail[1]),
        }
    )
    rules = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / "config" / "demo")}))
    sources = tuple(s for s in site.sources() if s.id in SOURCES)
    config = Config(settings=settings, sources=sources, alerts=rules.alerts)
    names = IndexNames(index_prefix)
    install(es_client, index_prefix)
    store_rules(es_client, names, config.alerts, source="test")
    return config


def _expected_ids(site: DemoSite) -> set[str]:
    """Every fetchable article of SOURCES, by the id its canonical URL gives it."""
    return {
        url_id(site.url(entry.canonical))
        for entry in load_catalog()
        if entry.source in SOURCES
        and not entry.robots_disallowed
        and (entry.in_feed or entry.in_sitemap or entry.on_section_page)
    }


def _article_ids(es: Elasticsearch, config: Config) -> list[str]:
    names = IndexNames(config.settings.index_prefix)
    es.indices.refresh(index=names.articles)
    hits = es.search(index=names.articles, size=1000, source=False)["hits"]["hits"]
    return [hit["_id"] for hit in hits]


def _reopen_frontier(es: Elasticsearch, names: IndexNames) -> None:
    """Every frontier record back to pending (the local node has no update-by-query)."""
    hits = es.search(index=names.frontier, size=1000, source=False)["hits"]["hits"]
    operations: list[dict[str, Any]] = []
    for hit in hits:
        operations.append({"update": {"_index": names.frontier, "_id": hit["_id"]}})
        operations.append({"doc": {"state": "pending", "claimed_by": None, "claimed_until": None}})
    es.bulk(operations=operations, refresh=True)


def _alerted(es: Elasticsearch, names: IndexNames) -> set[str]:
    """The ids of every article in an alert of the outbox."""
    es.indices.refresh(index=names.alert_outbox)
    alerts = es.search(
        index=names.alert_outbox,
        query={"term": {"kind": "alert"}},
        size=500,
        source_includes=["articles"],
    )["hits"]["hits"]
    return {article for hit in alerts for article in hit["_source"]["articles"]}


def _nato_digests(handler: ScriptedHandler) -> list[str]:
    bodies = []
    for received in handler.received:
        message = received.message()
        if "NATO enlargement" in str(message["Subject"]):
            body = message.get_body(("plain",))
            bodies.append(body.get_content() if body is not None else "")
    return bodies


def test_crawl_policy_comes_from_the_environment() -> None:
    assert jobs.crawl_policy(load_settings({})) == jobs.crawl_policy(
        load_settings({"NEWSRADAR_CRAWL_DELAY": "1"})
    )
    fast = jobs.crawl_policy(
        load_settings({"NEWSRADAR_CRAWL_DELAY": "0", "NEWSRADAR_CRAWL_CONCURRENCY": "4"})
    )
    assert (fast.download_delay, fast.concurrency_per_domain) == (0.0, 4)
    assert fast.autothrottle_start_delay == pytest.approx(0.05)
    assert fast.scrapy_settings == {"AUTOTHROTTLE_ENABLED": False}
    assert jobs.crawl_policy(load_settings({"NEWSRADAR_CRAWL_DELAY": "0.5"})).scrapy_settings == {}
    with pytest.raises(ConfigError, match="NEWSRADAR_CRAWL_DELAY"):
        jobs.crawl_policy(load_settings({"NEWSRADAR_CRAWL_DELAY": "soon"}))
    with pytest.raises(ConfigError, match="NEWSRADAR_CRAWL_CONCURRENCY"):
        jobs.crawl_policy(load_settings({"NEWSRADAR_CRAWL_CONCURRENCY": "0"}))


def test_a_cycle_run_again_indexes_nothing_twice_and_mails_once(
    es_client: Elasticsearch,
    prepared: Config,
    site: DemoSite,
    mail: tuple[ScriptedHandler, int],
) -> None:
    handler = mail[0]
    first = jobs.run_cycle(
        prepared, es_client, now=datetime.now(UTC), policy=DEMO_CRAWL, force_pull=True
    )
    ids = _article_ids(es_client, prepared)
    assert sorted(ids) == sorted(_expected_ids(site))
    assert first.ingest.alerts > 0
    assert first.delivery.sent == len(handler.received) >= 1
    [digest] = _nato_digests(handler)
    assert "1954" in digest

    # A retried attempt of the same work: every URL is claimed and crawled again, every feed
    # polled again, every rule run again over what the crawl reports.
    _reopen_frontier(es_client, IndexNames(prepared.settings.index_prefix))
    again = jobs.run_cycle(
        prepared, es_client, now=datetime.now(UTC), policy=DEMO_CRAWL, force_pull=True
    )
    assert again.ingest.crawl is not None and again.ingest.crawl.claimed >= len(ids)
    assert again.ingest.crawl.indexed == 0  # every page is known: "duplicate" of itself
    assert again.ingest.alerts == 0
    assert sorted(_article_ids(es_client, prepared)) == sorted(ids)
    assert again.delivery.sent == 0
    assert len(_nato_digests(handler)) == 1


def test_a_crawl_killed_midway_is_finished_by_the_retry_without_duplicates_or_lost_alerts(
    es_client: Elasticsearch,
    prepared: Config,
    site: DemoSite,
    mail: tuple[ScriptedHandler, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))  # the crawl process imports KillAfter
    nato = {
        url_id(site.url(e.canonical)): site.url(e.canonical)
        for e in load_catalog()
        if e.source in SOURCES and e.topic == "nato-enlargement" and not e.robots_disallowed
    }
    dying = replace(
        DEMO_CRAWL,
        scrapy_settings={
            "ITEM_PIPELINES": {"test_jobs.KillAfter": 900},
            "KILL_AFTER_URLS": sorted(nato.values()),
            # One page per batch, so the page before the kill has its outcome written.
            "NEWSRADAR_INDEX_BATCH": 1,
        },
    )
    with pytest.raises(CrawlFailed):
        jobs.ingest(prepared, es_client, now=datetime.now(UTC), policy=dying, force_pull=True)
    names = IndexNames(prepared.settings.index_prefix)
    assert count(es_client, names)["pending"] > 0  # claims without an outcome went back
    done = es_client.search(
        index=names.frontier,
        query={"term": {"state": "done"}},
        size=100,
        source_includes=["article_id"],
    )["hits"]["hits"]
    finished = {hit["_source"]["article_id"] for hit in done}
    assert finished & set(nato), "a NATO article was indexed and recorded before the kill"
    # It is done, so no retry will crawl it again: it was matched when the crawl failed.
    assert finished & set(nato) <= _alerted(es_client, names)

    retry = jobs.crawl_and_match(prepared, es_client, now=datetime.now(UTC), policy=DEMO_CRAWL)
    assert retry.crawl is not None and retry.crawl.claimed > 0
    ids = _article_ids(es_client, prepared)
    assert len(ids) == len(set(ids))
    assert set(ids) == _expected_ids(site)
    assert count(es_client, names)["pending"] == 0

    assert set(nato) <= _alerted(es_client, names)  # every NATO-enlargement article
    delivery = jobs.deliver(prepared, es_client, now=datetime.now(UTC))
    assert delivery.sent >= 1
    [digest] = _nato_digests(mail[0])
    assert "1954" in digest


def test_a_source_that_cannot_be_read_is_named_and_the_others_are_indexed(
    es_client: Elasticsearch, prepared: Config, site: DemoSite
) -> None:
    port = closed_port()
    broken = Source(id="broken-feed", name="Broken", feeds=(f"http://127.0.0.1:{port}/rss.xml",))
    config = replace(prepared, sources=(*prepared.sources, broken))
    report = jobs.ingest(
        config, es_client, now=datetime.now(UTC), policy=DEMO_CRAWL, with_discovery=False
    )
    assert set(report.broken_sources()) == {"broken-feed"}
    with pytest.raises(jobs.SourceFailed, match=re.escape(f"127.0.0.1:{port}/rss.xml")):
        report.raise_for_broken_sources()
    assert report.counts()["indexed"] > 0

    health = jobs.source_health(config, es_client)
    assert set(health["unhealthy"]) == {"broken-feed"}
    assert "diario-del-puerto" in health["never_pulled"]  # it has no feed: discovery's
    assert health["articles"] == report.counts()["indexed"] + report.counts()["duplicates"]


def test_maintenance_reports_dead_letters_and_leaves_a_young_index_alone(
    es_client: Elasticsearch, prepared: Config
) -> None:
    names = IndexNames(prepared.settings.index_prefix)
    es_client.index(
        index=names.dead_letters,
        id=uuid.uuid4().hex,
        document={
            "target": names.articles,
            "doc_id": "x",
            "stage": "crawl",
            "status": 400,
            "error_type": "mapper_parsing_exception",
            "error_reason": "a field that does not fit",
            "recorded": datetime.now(UTC).isoformat(),
        },
        refresh=True,
    )
    summary = jobs.dead_letter_summary(prepared, es_client, now=datetime.now(UTC))
    assert (summary["total"], summary["recent"]) == (1, 1)
    assert summary["by_stage"] == {"crawl": 1}
    assert summary["by_error"] == {"mapper_parsing_exception": 1}
    assert jobs.rollover_articles(prepared, es_client) is False
