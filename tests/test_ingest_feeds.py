"""The pull stage against the local node and loopback servers: polite, incremental, never silent.

The tests share one install (creating the indices is the slow part). They stay apart because
each uses source ids of its own, and every feed path and article URL derives from them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from httpfaults import FaultHandler, FaultServer, closed_port, stall

from devtools.demosite import DemoSite
from pipeline.errors import ConfigError
from pipeline.feeds import state as feedstate
from pipeline.feeds.parse import PollBounds
from pipeline.feeds.pull import PullReport, pull
from pipeline.feeds.state import StoredFeed
from pipeline.net.fetch import FetchPolicy
from pipeline.ops.status import collect_status
from pipeline.settings import Config, Settings, Source, load_settings
from pipeline.store.client import IndexNames, SearchUnavailable, install

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=2)  # every feed is due again
LOOPBACK = FetchPolicy(allow_private_networks=True, connect_timeout=2, read_timeout=5, deadline=10)
RSS_TYPE = "application/rss+xml"


def _rss(site: str, *items: str) -> bytes:
    body = "".join(
        f"<item><title>Story {n}</title><link>https://{site}.example/{n}.html</link>"
        f"<guid>{site}-{n}</guid><pubDate>Fri, 31 May 2024 09:00:00 GMT</pubDate></item>"
        for n in items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://t.example/</link>{body}</channel></rss>"
    ).encode()


def _serve(
    body: bytes, content_type: str = RSS_TYPE, etag: str | None = None
) -> Callable[[FaultHandler], None]:
    def route(handler: FaultHandler) -> None:
        if etag is not None and handler.headers.get("If-None-Match") == etag:
            handler.reply(304, b"", {"ETag": etag})
            return
        handler.reply(200, body, {"ETag": etag} if etag else {}, content_type=content_type)

    return route


def _source(ident: str, *feeds: str, homepage: str | None = None) -> Source:
    return Source(id=ident, name=ident.title(), feeds=feeds, homepage=homepage)


def _feed(
    server: FaultServer,
    ident: str,
    body: bytes,
    content_type: str = RSS_TYPE,
    etag: str | None = None,
) -> Source:
    """A source ``ident`` whose one feed, /<ident>.xml, serves ``body``."""
    server.routes[f"/{ident}.xml"] = _serve(body, content_type, etag)
    return _source(ident, server.url(f"/{ident}.xml"))


@pytest.fixture(scope="module")
def installed(es_node: str, es_client: Elasticsearch) -> Iterator[Settings]:
    """Settings for one prefix installed for the whole module, removed afterwards."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    install(es_client, prefix)
    yield load_settings({"NEWSRADAR_ES_URL": es_node, "NEWSRADAR_INDEX_PREFIX": prefix})
    es_client.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
    es_client.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as running:
        yield running


class Puller:
    """Runs pull for a test's sources and reads back what Elasticsearch holds."""

    def __init__(self, es: Elasticsearch, settings: Settings, names: IndexNames) -> None:
        self.es, self.settings, self.names = es, settings, names

    def __call__(
        self, *sources: Source, now: datetime = NOW, policy: FetchPolicy = LOOPBACK, **kw: Any
    ) -> PullReport:
        return pull(Config(self.settings, sources, ()), self.es, now=now, policy=policy, **kw)

    def frontier(self, *sources: Source) -> list[dict[str, Any]]:
        """The frontier records of these sources."""
        query = {"terms": {"source": [s.id for s in sources]}}
        hits = self.es.search(index=self.names.frontier, query=query, size=1000)["hits"]["hits"]
        return [hit["_source"] for hit in hits]

    def count(self, *sources: Source) -> int:
        query = {"terms": {"source": [s.id for s in sources]}}
        return int(self.es.count(index=self.names.frontier, query=query)["count"])

    def state(self, source: Source, url: str) -> StoredFeed:
        return feedstate.load(self.es, self.names, [source])[url]


@pytest.fixture
def puller(es_client: Elasticsearch, installed: Settings) -> Puller:
    return Puller(es_client, installed, IndexNames(installed.index_prefix))


# --------------------------------------------------------------------------- incremental


def test_second_pull_of_the_demo_feeds_gets_304s_and_adds_nothing(puller: Puller) -> None:
    with DemoSite() as site:
        sources = site.sources()
        first = puller(*sources)
        queued = puller.count(*sources)
        second = puller(*sources, now=LATER)
    with_feeds = [s for s in sources if s.feeds]
    assert first.new == queued > 0
    assert first.errors == 0 and second.errors == 0
    assert (second.new, second.not_modified) == (0, len(with_feeds))
    assert puller.count(*sources) == queued
    for source in with_feeds:
        stored = puller.state(source, source.feeds[0])
        assert stored.state.etag and stored.state.last_status == 304
        assert stored.state.items_seen == first.sources[source.id].new


def test_unchanged_feed_without_validators_adds_nothing(
    puller: Puller, server: FaultServer
) -> None:
    source = _feed(server, "plain", _rss("plain", "a", "b"))
    first = puller(source)
    second = puller(source, now=LATER)
    assert [r.headers.get("if-none-match") for r in server.seen] == [None, None]
    assert (first.new, second.new, second.not_modified) == (2, 0, 1)
    assert puller.count(source) == 2
    # A changed body is parsed again; the frontier tells which entries are new.
    _feed(server, "plain", _rss("plain", "a", "b", "c"))
    third = puller(source, now=LATER + timedelta(days=2))
    assert (third.new, third.seen) == (1, 2)
    assert puller.count(source) == 3
    assert puller.state(source, source.feeds[0]).state.items_seen == 3


def test_a_feed_is_polled_only_when_due_unless_forced(puller: Puller, server: FaultServer) -> None:
    source = _feed(server, "due", _rss("due", "a"), etag='"v1"')
    puller(source)
    early = puller(source, now=NOW + timedelta(minutes=1))
    assert early.sources["due"].not_due == 1 and len(server.seen) == 1
    forced = puller(source, now=NOW + timedelta(minutes=1), force=True)
    assert forced.not_modified == 1 and len(server.seen) == 2
    assert server.seen[1].headers.get("if-none-match") == '"v1"'


# --------------------------------------------------------------------------- faults


def test_retry_after_is_honoured_by_next_poll(puller: Puller, server: FaultServer) -> None:
    source = _source("busy", server.url("/busy.xml"))
    server.routes["/busy.xml"] = lambda h: h.reply(503, b"busy", {"Retry-After": "7200"})
    report = puller(source)
    stored = puller.state(source, source.feeds[0])
    assert stored.state.next_poll is not None
    assert stored.state.next_poll >= NOW + timedelta(seconds=7200)
    assert (stored.healthy, stored.state.reason) == (False, "http_5xx")
    assert report.sources["busy"].errors == 1
    # Before the server's time is up the feed is left alone.
    puller(source, now=NOW + timedelta(seconds=7000))
    assert len(server.seen) == 1


def test_a_server_that_never_answers_times_out_and_is_recorded(
    puller: Puller, server: FaultServer
) -> None:
    hanging = _source("hanging", server.url("/hanging.xml"))
    server.routes["/hanging.xml"] = stall
    fine = _feed(server, "fine", _rss("fine", "a", "b"))
    policy = FetchPolicy(allow_private_networks=True, connect_timeout=1, read_timeout=1, deadline=2)
    report = puller(hanging, fine, policy=policy)
    stored = puller.state(hanging, hanging.feeds[0])
    assert (stored.healthy, stored.state.reason, stored.state.consecutive_failures) == (
        False,
        "timeout",
        1,
    )
    assert stored.last_attempt == NOW and stored.detail
    assert report.sources["fine"].new == 2


BROKEN = {
    "malformed": ("malformed.xml", RSS_TYPE, "malformed"),
    "truncated": ("truncated.xml", RSS_TYPE, "truncated"),
    "html": ("not_a_feed.html", "text/html; charset=utf-8", "html_not_feed"),
    "empty": ("", RSS_TYPE, "empty_body"),
}


def test_broken_feeds_are_source_errors_while_the_others_are_ingested(
    puller: Puller, server: FaultServer
) -> None:
    sources = [_feed(server, "good", (FIXTURES / "atom10.xml").read_bytes())]
    for ident, (name, kind, _) in BROKEN.items():
        body = (FIXTURES / name).read_bytes() if name else b""
        sources.append(_feed(server, ident, body, kind))
    report = puller(*sources)
    assert report.sources["good"].new > 0 and report.sources["good"].errors == 0
    status = collect_status(puller.es, puller.names, sources)
    shown = {s["id"]: s for s in status["sources"]}
    assert shown["good"]["status"] == "ok"
    for ident, (_, _, reason) in BROKEN.items():
        assert report.sources[ident].errors == 1
        assert shown[ident]["status"] == "unhealthy"
        assert [(f["healthy"], f["reason"]) for f in shown[ident]["feeds"]] == [(False, reason)]
    # What parsed before the break is kept.
    malformed = next(s for s in sources if s.id == "malformed")
    assert "https://broken.example.com/1" in {d["url"] for d in puller.frontier(malformed)}


def test_a_feed_that_drops_to_zero_entries_is_unhealthy(
    puller: Puller, server: FaultServer
) -> None:
    source = _feed(server, "dropped", _rss("dropped", "a", "b"))
    puller(source)
    _feed(server, "dropped", (FIXTURES / "zero_entries.xml").read_bytes())
    report = puller(source, now=LATER)
    stored = puller.state(source, source.feeds[0])
    assert (stored.healthy, stored.state.reason) == (False, "entries_dropped_to_zero")
    assert report.sources["dropped"].errors == 1
    # It stays on the schedule: retried, never dropped.
    assert stored.state.next_poll is not None and stored.state.next_poll > LATER


def test_a_failing_feed_keeps_being_retried_with_backoff(
    puller: Puller, server: FaultServer
) -> None:
    source = _source("down", server.url("/down.xml"))
    server.routes["/down.xml"] = lambda h: h.reply(500, b"oops")
    bounds = PollBounds(min_interval=timedelta(minutes=5), initial=timedelta(minutes=10))
    delays = []
    now = NOW
    for _ in range(4):
        puller(source, now=now, bounds=bounds)
        stored = puller.state(source, source.feeds[0])
        assert stored.state.next_poll is not None
        delays.append(stored.state.next_poll - now)
        now = stored.state.next_poll
    assert delays == sorted(delays) and delays[-1] > delays[0]
    assert (stored.state.consecutive_failures, stored.state.health) == (4, "error")
    assert len(server.seen) == 4


# --------------------------------------------------------------------------- hostile input


def test_billion_laughs_and_xxe_expand_nothing_into_the_frontier(
    puller: Puller, server: FaultServer, tmp_path: Path
) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-7f3a9c-do-not-leak")
    xxe = (FIXTURES / "xxe.xml.in").read_text().replace("CANARY_PATH", str(canary))
    sources = (
        _feed(server, "lol", (FIXTURES / "billion_laughs.xml").read_bytes()),
        _feed(server, "xxe", xxe.encode()),
    )
    puller(*sources)
    records = puller.frontier(*sources)
    assert sorted(r["url"] for r in records) == [
        "https://lol.example.com/1",
        "https://xxe.example.com/1",
    ]
    stored = repr(records)
    assert "lollol" not in stored and "CANARY-7f3a9c" not in stored
    assert len(stored) < 5000


PRIVATE_LINKS = (
    "http://10.1.2.3/a",
    "http://127.0.0.2/b",
    "http://[::1]/c",
    "http://192.168.1.1/d",
)


def _links_feed(*links: str) -> bytes:
    items = "".join(
        f"<item><title>{n}</title><link>{url}</link></item>" for n, url in enumerate(links)
    )
    return f'<rss version="2.0"><channel><title>L</title>{items}</channel></rss>'.encode()


def test_file_and_private_links_are_refused_unless_private_networks_are_allowed(
    puller: Puller, server: FaultServer
) -> None:
    links = ("file:///etc/passwd", *PRIVATE_LINKS, "https://public.example/ok")
    strict_source = _feed(server, "links", _links_feed(*links))
    allowed_source = _feed(server, "links-allowed", _links_feed(*links))
    # Only the feed server itself may be reached: the address rule production applies.
    strict = FetchPolicy(allowed_networks=("127.0.0.1/32",), deadline=10)
    report = puller(strict_source, policy=strict)
    assert [r["url"] for r in puller.frontier(strict_source)] == ["https://public.example/ok"]
    assert report.sources["links"].skipped == {"bad_scheme": 1, "blocked_address": 4}
    allowed = puller(allowed_source, policy=LOOPBACK)
    assert allowed.sources["links-allowed"].skipped == {"bad_scheme": 1}
    assert (allowed.new, allowed.seen) == (4, 1)  # the public link was queued already
    assert {r["url"] for r in puller.frontier(allowed_source)} == set(PRIVATE_LINKS)


def test_cp1252_feed_with_a_wrong_charset_decodes_correctly_in_the_frontier(
    puller: Puller, server: FaultServer
) -> None:
    body = (FIXTURES / "cp1252_declared.xml").read_bytes()
    source = _feed(server, "stadt", body, "application/rss+xml; charset=utf-8")
    puller(source)
    [record] = puller.frontier(source)
    assert record["feed_title"] == (
        "Bürgermeister: „Wir müssen handeln“ \u2013 Kosten 5 €, naïve Pläne"
    )
    assert "Straßenbahn hält. Grüße aus Köln." in record["feed_summary"]


def test_dates_feedparser_misreads_or_implausible_ones_never_reach_the_index(
    puller: Puller, server: FaultServer
) -> None:
    source = _feed(server, "dates", (FIXTURES / "rss20.xml").read_bytes())
    report = puller(source)
    by_title = {r["feed_title"]: r for r in puller.frontier(source)}
    odd = by_title["Odd date format"]
    assert odd["published_raw"] == "2016/6/29 15:07:41"
    assert odd.get("published") in (None, "2016-06-29T15:07:41+00:00")  # never 2016-11-01
    for title in ("From the future", "Before the web"):
        assert "published" not in by_title[title]
        assert by_title[title]["published_raw"]
    first = by_title["NATO & the enlargement talks"]
    assert first["published"] == "2024-01-02T09:00:00+00:00"
    assert (first["state"], first["attempts"], first["via"]) == ("pending", 0, "feed")
    assert first["canonical_url"] == "https://news.example.com/world/nato-talks?id=7"
    assert first["guid"] == "story-7"
    # Entries without a usable link are counted with their reason, not dropped silently.
    assert report.sources["dates"].skipped == {"no_link": 1, "bad_scheme": 2, "duplicate": 1}


# --------------------------------------------------------------------------- the rest


def test_feeds_are_discovered_from_a_homepage(puller: Puller, server: FaultServer) -> None:
    page = b'<html><head><link rel="alternate" type="application/rss+xml" href="/rss"></head>'
    server.routes["/home"] = _serve(page, "text/html")
    server.routes["/rss"] = _serve(_rss("found", "a", "b"))
    server.routes["/bare"] = _serve(b"<html><head><title>none</title></head></html>", "text/html")
    found = _source("found", homepage=server.url("/home"))
    bare = _source("bare", homepage=server.url("/bare"))
    report = puller(found, bare)
    assert report.sources["found"].new == 2
    assert {r["feed_url"] for r in puller.frontier(found)} == {server.url("/rss")}
    feed = puller.state(found, server.url("/rss"))
    assert (feed.discovered_from, feed.source, feed.healthy) == (server.url("/home"), "found", True)
    homepage = puller.state(bare, server.url("/bare"))
    assert (homepage.kind, homepage.healthy, homepage.state.reason) == (
        "homepage",
        False,
        "no_feed_found",
    )
    # The next pull polls the feed found last time without reading the homepage again.
    again = puller(found, now=NOW + timedelta(hours=12))
    assert again.sources["found"].not_modified == 1
    assert [r.path for r in server.seen].count("/home") == 1


def test_run_statistics_are_recorded_per_source(puller: Puller, server: FaultServer) -> None:
    body = _links_feed("https://stats.example/1", "https://stats.example/2", "mailto:x@y.z")
    body = body.replace(b"</channel>", b"<item><title>no link</title></item></channel>")
    gone = _source("gone", server.url("/gone.xml"))
    server.routes["/gone.xml"] = lambda h: h.reply(404, b"gone")
    report = puller(_feed(server, "stats", body), gone)
    hits = puller.es.search(
        index=puller.names.runs, query={"term": {"run_id": report.run_id}}, size=10
    )["hits"]["hits"]
    runs = {hit["_source"]["source"]: hit["_source"] for hit in hits}
    assert set(runs) == {"stats", "gone"}
    stats = runs["stats"]
    assert (stats["stage"], stats["fetched"], stats["new"], stats["indexed"]) == ("pull", 2, 2, 2)
    assert stats["failed_by_reason"] == {"no_link": 1, "bad_scheme": 1}
    assert runs["gone"]["failed_by_reason"] == {"http_4xx": 1}


def test_an_unknown_source_id_is_a_config_error(es_client: Elasticsearch) -> None:
    config = Config(load_settings({}), (_source("known", "https://k.example/rss"),), ())
    with pytest.raises(ConfigError, match="no such source"):
        pull(config, es_client, sources=["unknown"], now=NOW, policy=LOOPBACK)


def test_elasticsearch_unreachable_raises_search_unavailable(server: FaultServer) -> None:
    down = Elasticsearch(f"http://127.0.0.1:{closed_port()}", max_retries=0)
    source = _feed(server, "any", _rss("any", "a"))
    with pytest.raises(SearchUnavailable):
        pull(Config(load_settings({}), (source,), ()), down, now=NOW, policy=LOOPBACK)
