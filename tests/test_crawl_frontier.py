"""The crawl stage on the real node and the demo site: claims, indexing, outcomes, reextract."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch
from httpfaults import closed_port

from devtools.demo import DEMO_CRAWL
from devtools.demosite import DemoSite, load_catalog
from pipeline.crawl.claims import (
    Claim,
    CrawlRun,
    claim,
    crawl_frontier,
    discover_into_frontier,
    with_source_limits,
)
from pipeline.crawl.process import CrawlFailed, CrawlPolicy
from pipeline.discover.listings import Candidate
from pipeline.feeds.pull import fetch_policy, pull
from pipeline.net.urls import url_id
from pipeline.settings import Config, CrawlLimits, Settings, Source, load_settings
from pipeline.store.client import IndexNames, install
from pipeline.store.frontier import count
from pipeline.store.pages import reextract

NOW = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as running:
        yield running


@dataclass(frozen=True)
class Crawled:
    """The demo site pulled, discovered and crawled once into its own prefix."""

    config: Config
    names: IndexNames
    run: CrawlRun
    fetched: Counter[str]  # GET requests per path during the crawl


@pytest.fixture(scope="module")
def crawled(es_client: Elasticsearch, es_node: str, site: DemoSite) -> Iterator[Crawled]:
    prefix = f"test-crawl-{uuid.uuid4().hex[:8]}"
    settings = load_settings({"NEWSRADAR_ES_URL": es_node, "NEWSRADAR_INDEX_PREFIX": prefix})
    config = _config(settings, site)
    names = _fill_frontier(es_client, config)
    before = Counter(site.hits)
    run = crawl_frontier(config, es_client, now=NOW, policy=DEMO_CRAWL)
    fetched = site.hits - before
    es_client.indices.refresh(index=names.pattern)
    yield Crawled(config, names, run, fetched)
    es_client.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
    es_client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


def _config(settings: Settings, site: DemoSite) -> Config:
    local = settings.model_copy(update={"allow_private_networks": True})
    return Config(settings=local, sources=site.sources(), alerts=())


def _fill_frontier(es: Elasticsearch, config: Config) -> IndexNames:
    names = IndexNames(config.settings.index_prefix)
    install(es, names.prefix)
    policy = fetch_policy(config.settings)
    pull(config, es, now=NOW, policy=policy, force=True)
    discover_into_frontier(es, names, config.sources, policy=policy, now=NOW)
    es.indices.refresh(index=names.frontier)
    return names


def _article_paths() -> dict[str, bool]:
    """Every demo article's canonical path -> whether robots.txt lets it be fetched.

    An AMP page is the same article as its canonical page: only the canonical one is fetched.
    """
    return {a.canonical: not a.robots_disallowed for a in load_catalog()}


def test_every_reachable_demo_article_is_fetched_once_and_indexed(
    es_client: Elasticsearch, crawled: Crawled, site: DemoSite
) -> None:
    config, names, run, fetched = crawled.config, crawled.names, crawled.run, crawled.fetched

    paths = _article_paths()
    allowed = [p for p, ok in paths.items() if ok]
    disallowed = [p for p, ok in paths.items() if not ok]
    assert {p: fetched[p] for p in allowed if fetched[p] != 1} == {}
    assert all(fetched[p] == 0 for p in disallowed)
    stored = es_client.mget(
        index=names.articles, ids=[url_id(site.url(p)) for p in allowed], source=["source"]
    )
    assert all(doc["found"] for doc in stored["docs"])
    assert run.indexed + run.duplicates == len(allowed)
    assert es_client.count(index=names.pages)["count"] == len(allowed)
    assert count(es_client, names) == Counter({"done": len(allowed), "failed": len(disallowed)})

    # A second crawl finds nothing pending and fetches nothing.
    again = crawl_frontier(config, es_client, now=NOW + timedelta(minutes=5), policy=DEMO_CRAWL)
    assert again.claimed == 0
    assert es_client.count(index=names.articles)["count"] == len(allowed)


def test_outcomes_are_written_back_with_reasons(
    es_client: Elasticsearch, crawled: Crawled, site: DemoSite
) -> None:
    names = crawled.names
    failed = es_client.search(index=names.frontier, query={"term": {"state": "failed"}}, size=10)[
        "hits"
    ]["hits"]
    disallowed = [p for p, ok in _article_paths().items() if not ok]
    assert sorted(h["_source"]["url"] for h in failed) == sorted(site.url(p) for p in disallowed)
    assert {h["_source"]["outcome"] for h in failed} == {"robots"}
    runs = es_client.search(index=names.runs, query={"term": {"stage": "crawl"}}, size=50)["hits"][
        "hits"
    ]
    assert sum(h["_source"]["failed_by_reason"].get("robots", 0) for h in runs) == len(disallowed)


def test_two_concurrent_crawls_fetch_each_url_once(
    es_client: Elasticsearch, es_settings: Settings, site: DemoSite
) -> None:
    config = _config(es_settings, site)
    names = _fill_frontier(es_client, config)
    before = Counter(site.hits)
    runs = []
    errors: list[BaseException] = []

    def one(worker: str) -> None:
        try:
            runs.append(
                crawl_frontier(config, es_client, now=NOW, policy=DEMO_CRAWL, worker=worker)
            )
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(w,)) for w in ("left", "right")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    fetched = site.hits - before
    allowed = [p for p, ok in _article_paths().items() if ok]
    assert {p: fetched[p] for p in allowed if fetched[p] != 1} == {}
    assert sum(run.claimed for run in runs) == len(_article_paths())
    es_client.indices.refresh(index=names.articles)
    assert es_client.count(index=names.articles)["count"] == len(allowed)


def test_a_retried_crawl_takes_back_the_claims_its_killed_try_left(
    es_client: Elasticsearch, es_settings: Settings, site: DemoSite
) -> None:
    config = _config(es_settings, site)
    names = _fill_frontier(es_client, config)
    task = "ingest_feeds:manual__1:ingest:3"  # a task instance's run id, the same on each try
    # The first try claimed everything, then died with its worker: no outcome, no release.
    held, _ = claim(es_client, names, worker=task, now=NOW, limit=1000)
    es_client.indices.refresh(index=names.frontier)
    assert count(es_client, names) == Counter({"claimed": len(held)})

    later = NOW + timedelta(minutes=5)  # long before the lease ends
    other = crawl_frontier(config, es_client, now=later, policy=DEMO_CRAWL, run_id="another-run")
    assert other.claimed == 0
    retry = crawl_frontier(config, es_client, now=later, policy=DEMO_CRAWL, run_id=task)
    assert retry.claimed == len(held) == len(_article_paths())
    es_client.indices.refresh(index=names.frontier)
    allowed = sum(_article_paths().values())
    assert count(es_client, names) == Counter({"done": allowed, "failed": len(held) - allowed})


def test_reextract_reproduces_the_indexed_text_from_kept_pages(
    es_client: Elasticsearch, crawled: Crawled
) -> None:
    names = crawled.names
    hits = es_client.search(index=names.articles, size=100, source_includes=["text", "title"])[
        "hits"
    ]
    original = {h["_id"]: h["_source"] for h in hits["hits"]}
    # Spoil two articles' text, as a faulty extractor would have left them.
    spoiled = sorted(original)[:2]
    for doc_id in spoiled:
        es_client.update(index=names.articles, id=doc_id, doc={"text": "lost"})
    report = reextract(es_client, names)
    es_client.indices.refresh(index=names.articles)
    assert report.pages == len(original)
    assert report.updated == len(spoiled)
    assert report.unchanged == len(original) - len(spoiled)
    after = es_client.search(index=names.articles, size=100, source_includes=["text", "title"])[
        "hits"
    ]
    assert {h["_id"]: h["_source"] for h in after["hits"]} == original


def test_a_crawl_that_cannot_index_fails_and_returns_its_urls_to_pending(
    es_client: Elasticsearch, es_settings: Settings, site: DemoSite
) -> None:
    config = _config(es_settings, site)
    names = _fill_frontier(es_client, config)
    # The crawl process is pointed at a closed port: its item pipeline cannot write.
    broken = config.settings.model_copy(update={"es_url": f"http://127.0.0.1:{closed_port()}"})
    with pytest.raises(CrawlFailed, match="item pipeline errors"):
        crawl_frontier(
            Config(settings=broken, sources=config.sources, alerts=()),
            es_client,
            now=NOW,
            policy=DEMO_CRAWL,
            sources=["northwind-times"],
        )
    es_client.indices.refresh(index=names.frontier)
    states = count(es_client, names, source="northwind-times")
    assert states["done"] == 0
    assert states["pending"] > 0
    assert es_client.count(index=names.articles)["count"] == 0


def test_sources_with_their_own_limits_get_their_own_download_slots() -> None:
    polite = Source(
        id="slow-paper",
        name="Slow Paper",
        feeds=("https://news.slow.example/rss.xml",),
        crawl=CrawlLimits(concurrency=1, delay=5.0),
    )
    plain = Source(id="plain", name="Plain", feeds=("https://plain.example/rss.xml",))
    claims = [
        Claim(
            id=url_id(url),
            candidate=Candidate(url=url, link=url, source=source, via="feed"),
            attempts=1,
        )
        for url, source in (
            ("https://news.slow.example/a.html", "slow-paper"),
            ("https://plain.example/b.html", "plain"),
        )
    ]
    policy = with_source_limits(CrawlPolicy(), claims, {"slow-paper": polite, "plain": plain})
    assert policy.scrapy_settings["DOWNLOAD_SLOTS"] == {
        "news.slow.example": {"concurrency": 1, "delay": 5.0}
    }
    assert with_source_limits(CrawlPolicy(), claims[1:], {"plain": plain}) == CrawlPolicy()
