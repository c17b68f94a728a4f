"""The frontier in Elasticsearch: create-if-absent records, counts, pending URLs, refused links.

The tests share one install; each writes under a site and source name of its own (``ns``).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from elasticsearch import Elasticsearch
from httpfaults import closed_port

from pipeline.feeds.parse import FeedEntry
from pipeline.feeds.pull import frontier_record
from pipeline.net.fetch import AddressRule
from pipeline.store.client import IndexNames, SearchUnavailable, install
from pipeline.store.frontier import FrontierRecord, count, enqueue, link_refusal, pending

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
STRICT = AddressRule()
OPEN = AddressRule(allow_private_networks=True)


def _record(ns: str, n: int, source: str = "", *, minutes: int = 0) -> FrontierRecord:
    url = f"https://{ns}.example/{n}.html"
    return FrontierRecord(
        url=url + "?utm_source=rss",
        canonical_url=url,
        source=source or ns,
        via="feed",
        discovered=NOW + timedelta(minutes=minutes),
        feed_url=f"https://{ns}.example/rss",
        title=f"Story {n}",
    )


@pytest.fixture(scope="module")
def names(es_client: Elasticsearch) -> Iterator[IndexNames]:
    """One prefix installed for the whole module, removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    install(es_client, prefix)
    yield IndexNames(prefix)
    es_client.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    es_client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


@pytest.fixture
def ns() -> str:
    """This test's own site and source name."""
    return f"t{uuid.uuid4().hex[:10]}"


def test_a_record_is_created_once_and_then_counted_as_seen(
    es_client: Elasticsearch, names: IndexNames, ns: str
) -> None:
    first = enqueue(es_client, names, [_record(ns, 1), _record(ns, 2), _record(ns, 3)], run_id="r1")
    again = enqueue(es_client, names, [_record(ns, 2), _record(ns, 3), _record(ns, 4)], run_id="r2")
    assert (first.new, first.seen, first.dead_lettered) == (3, 0, 0)
    assert (again.new, again.seen) == (1, 2)
    assert again.new_ids == {_record(ns, 4).id}
    es_client.indices.refresh(index=names.frontier)
    assert count(es_client, names, source=ns) == {"pending": 4}
    # The first sighting is kept: a later listing does not rewrite the record.
    stored = es_client.get(index=names.frontier, id=_record(ns, 2).id)
    assert stored["_version"] == 1
    assert stored["_source"]["discovered"] == NOW.isoformat()


def test_the_same_url_twice_in_one_batch_is_one_record(
    es_client: Elasticsearch, names: IndexNames, ns: str
) -> None:
    records = [_record(ns, 1), _record(ns, 1, f"{ns}-other")]
    report = enqueue(es_client, names, records, run_id=None)
    assert (report.new, report.seen) == (1, 1)


def test_a_record_from_a_feed_entry_keeps_what_the_feed_said(
    es_client: Elasticsearch, names: IndexNames, ns: str
) -> None:
    entry = FeedEntry(
        url=f"https://{ns}.example/a",
        link=f"https://{ns}.example/a?utm_medium=feed",
        guid="g-1",
        title="A title",
        summary="x" * 10_000,
        published=None,
        published_raw="2050-01-01",
        date_rejected="future",
        image=None,
        author=None,
    )
    record = frontier_record(entry, source=ns, feed_url=f"https://{ns}.example/rss", discovered=NOW)
    enqueue(es_client, names, [record], run_id="r1")
    doc = es_client.get(index=names.frontier, id=record.id)["_source"]
    assert doc == {
        "url": f"https://{ns}.example/a?utm_medium=feed",
        "canonical_url": f"https://{ns}.example/a",
        "source": ns,
        "via": "feed",
        "discovered": NOW.isoformat(),
        "state": "pending",
        "attempts": 0,
        "feed_url": f"https://{ns}.example/rss",
        "feed_title": "A title",
        "feed_summary": "x" * 2000,  # a teaser; the crawl fetches the page
        "published_raw": "2050-01-01",  # the rejected date is kept only as written
        "guid": "g-1",
    }


def test_a_record_elasticsearch_refuses_is_dead_lettered_not_lost(
    es_client: Elasticsearch, names: IndexNames, ns: str
) -> None:
    # Lucene refuses a keyword term over 32766 bytes: the whole document is rejected.
    huge = replace(_record(ns, 9), guid="g" * 40_000)
    report = enqueue(es_client, names, [huge, _record(ns, 1)], run_id="r1")
    assert (report.new, report.dead_lettered) == (1, 1)
    assert huge.id in report.errors
    es_client.indices.refresh(index=names.dead_letters)
    letters = es_client.search(index=names.dead_letters, query={"term": {"doc_id": huge.id}})
    assert letters["hits"]["total"]["value"] == 1


def test_pending_lists_the_oldest_first_and_filters_by_source(
    es_client: Elasticsearch, names: IndexNames, ns: str
) -> None:
    records = [
        _record(ns, 1, minutes=5),
        _record(ns, 2, minutes=1),
        _record(ns, 3, minutes=3),
        _record(ns, 4, f"{ns}-other", minutes=0),
    ]
    enqueue(es_client, names, records, run_id="r1")
    es_client.indices.refresh(index=names.frontier)
    assert [p.canonical_url for p in pending(es_client, names, source=ns, limit=10)] == [
        f"https://{ns}.example/2.html",
        f"https://{ns}.example/3.html",
        f"https://{ns}.example/1.html",
    ]
    [first] = pending(es_client, names, source=ns, limit=1)
    assert (first.source, first.url, first.feed_title) == (
        ns,
        f"https://{ns}.example/2.html?utm_source=rss",
        "Story 2",
    )
    assert count(es_client, names, source=f"{ns}-other") == {"pending": 1}


def test_enqueue_raises_search_unavailable_when_the_node_is_down(
    names: IndexNames, ns: str
) -> None:
    down = Elasticsearch(f"http://127.0.0.1:{closed_port()}", max_retries=0)
    with pytest.raises(SearchUnavailable):
        enqueue(down, names, [_record(ns, 1)], run_id="r1")
    with pytest.raises(SearchUnavailable):
        pending(down, names, limit=1)


@pytest.mark.parametrize(
    ("url", "strict", "open_"),
    [
        ("https://news.example/a", None, None),  # names are checked, resolved, at fetch time
        ("http://93.184.215.14/a", None, None),
        ("http://10.0.0.1/a", "blocked_address", None),
        ("http://127.0.0.1:8080/a", "blocked_address", None),
        ("http://169.254.169.254/latest/meta-data/", "blocked_address", None),
        ("http://[::1]/a", "blocked_address", None),
        ("http://[::ffff:10.0.0.1]/a", "blocked_address", None),
        ("http://localhost/a", "blocked_address", None),
        ("http://api.localhost/a", "blocked_address", None),
        ("https://news.example/" + "a" * 5000, "url_too_long", "url_too_long"),
    ],
)
def test_link_refusal(url: str, strict: str | None, open_: str | None) -> None:
    assert link_refusal(url, STRICT) == strict
    assert link_refusal(url, OPEN) == open_


def test_allowed_networks_let_one_range_through() -> None:
    rule = AddressRule.parse(False, ["10.1.0.0/16"], where="test")
    assert link_refusal("http://10.1.2.3/a", rule) is None
    assert link_refusal("http://10.2.0.1/a", rule) == "blocked_address"
