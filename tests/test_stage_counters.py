"""The always-on cost counters: per-step CPU of a page, of the index batches and of a run.

bench/bench_real.py builds its per-stage table from them; they must name every step, add up
and reach the caller through the crawl report and the ingest report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from elasticsearch import Elasticsearch

from devtools.demo import DEMO_CRAWL
from devtools.demosite import DemoSite
from pipeline import jobs
from pipeline.net.fetch import FetchResult
from pipeline.normalise.page import normalise_page
from pipeline.settings import Config, load_settings
from pipeline.store.client import install
from spiders.pipelines.index import RequestMeter

PARAGRAPH = "The harbour authority said on Tuesday that the new terminal will open in spring. "
PAGE = (
    "<html lang='en'><head><title>Harbour terminal opens</title></head><body><article>"
    f"<h1>Harbour terminal opens</h1><p>{PARAGRAPH * 6}</p><p>{PARAGRAPH * 4}</p>"
    "</article></body></html>"
).encode()
WORKER_STEPS = ("extract", "language", "fingerprint", "event")


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as running:
        yield running


def test_a_normalised_page_carries_its_cpu_per_step_and_compares_without_it() -> None:
    url = "http://127.0.0.1/harbour.html"
    result = FetchResult(url, url, 200, {"content-type": "text/html"}, PAGE, False, (), 0.0)
    article = normalise_page(result, source="s", fetched_at=datetime(2026, 11, 27, tzinfo=UTC))
    assert [step for step, _ in article.cpu] == list(WORKER_STEPS)
    assert all(seconds >= 0 for _, seconds in article.cpu)
    assert dict(article.cpu)["extract"] > 0  # parsing a page is never free
    assert replace(article, cpu=()) == article  # a measurement, not part of the article


@pytest.mark.parametrize(
    ("target", "api"),
    [
        ("/p-articles-000001/_search?timeout=30s", "articles:_search"),
        ("/_bulk?refresh=true", "_bulk"),
        ("/p-frontier,p-feeds/_refresh", "frontier,feeds:_refresh"),
        ("/p-stories/_doc/abc?if_seq_no=3", "stories:_doc"),
        ("/", "_root"),
    ],
)
def test_requests_are_named_by_index_and_endpoint(target: str, api: str) -> None:
    assert RequestMeter("p").api(target) == api


def test_a_run_reports_its_steps_and_the_crawl_its_stages_and_round_trips(
    es_client: Elasticsearch, es_node: str, index_prefix: str, site: DemoSite
) -> None:
    settings = load_settings(
        {
            "NEWSRADAR_ES_URL": es_node,
            "NEWSRADAR_INDEX_PREFIX": index_prefix,
            "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
        }
    )
    install(es_client, index_prefix)
    config = Config(settings=settings, sources=site.sources()[:2], alerts=())
    report = jobs.ingest(config, es_client, now=datetime.now(UTC), policy=DEMO_CRAWL)

    times = report.times
    assert (
        set(times.cpu)
        == set(times.wall)
        == {
            "pull",
            "discover",
            "match_earlier",
            "crawl",
            "match",
        }
    )
    assert all(seconds >= 0 for seconds in [*times.cpu.values(), *times.wall.values()])
    assert report.crawl is not None and report.crawl.report is not None
    # The crawl step holds the crawl process; this thread only waits for it meanwhile.
    assert times.wall["crawl"] >= report.crawl.report.elapsed > times.cpu["crawl"]

    stats = report.crawl.report.stats
    normalised = report.crawl.indexed + report.crawl.duplicates
    assert normalised > 0
    assert all(stats[f"newsradar/cpu/{step}"] >= 0 for step in WORKER_STEPS)
    assert stats["newsradar/cpu/extract"] > 0
    assert stats["newsradar/cpu/crawl_start"] > 0  # the crawl process's imports, at least
    for step in ("keep", "stories"):
        assert stats[f"newsradar/wall/{step}"] >= stats[f"newsradar/cpu/{step}"] > 0
    batches = stats["newsradar/index/batches"]
    assert batches >= 1
    # One bulk of kept pages per batch; the stories step reads and writes articles.
    assert stats["newsradar/es/keep/_bulk/requests"] == batches
    assert stats["newsradar/es/stories/_bulk/requests"] >= batches
    stories_wall = sum(
        value
        for key, value in stats.items()
        if key.startswith("newsradar/es/stories/") and key.endswith("/wall")
    )
    assert 0 < stories_wall <= stats["newsradar/wall/stories"]
