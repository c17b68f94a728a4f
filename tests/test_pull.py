"""Polling one feed: validators sent, unchanged feeds not re-parsed, failures returned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from httpfaults import FaultHandler, FaultServer

from devtools.demosite import DemoSite
from pipeline.feeds.parse import FeedEntry, FeedState
from pipeline.feeds.poll import poll_feed
from pipeline.net.fetch import FetchPolicy

POLICY = FetchPolicy(allow_private_networks=True, deadline=10.0)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)

RSS = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>T</title><link>https://t.example/</link>
{items}
</channel></rss>"""


def _item(n: int) -> str:
    return (
        f"<item><title>Story {n}</title><link>https://t.example/story-{n}.html</link>"
        f"<pubDate>Tue, 24 Nov 2026 0{n % 10}:00:00 GMT</pubDate></item>"
    )


def test_second_poll_sends_validators_and_gets_a_304() -> None:
    with DemoSite() as site:
        url = site.url("/northwind-times/rss.xml")
        first = poll_feed(url, FeedState(), policy=POLICY, now=NOW)
        assert first.error is None and first.feed is not None
        assert len(first.new_entries) == len(first.feed.entries) > 0
        assert first.state.etag
        second = poll_feed(url, first.state, policy=POLICY, now=NOW + timedelta(hours=1))
    assert second.feed is None
    assert second.new_entries == ()
    assert second.state.last_outcome == "not_modified"
    assert second.state.last_status == 304
    assert first.state.next_poll is not None and second.state.next_poll is not None
    assert second.state.next_poll > first.state.next_poll


def test_same_body_without_validators_is_not_parsed_again() -> None:
    body = RSS.format(items=_item(1) + _item(2)).encode()

    def feed(handler: FaultHandler) -> None:
        handler.reply(200, body, content_type="application/rss+xml")

    with FaultServer() as server:
        server.routes["/feed.xml"] = feed
        first = poll_feed(server.url("/feed.xml"), FeedState(), policy=POLICY, now=NOW)
        second = poll_feed(server.url("/feed.xml"), first.state, policy=POLICY, now=NOW)
        assert [r.headers.get("if-none-match") for r in server.seen] == [None, None]
    assert len(first.new_entries) == 2
    assert second.feed is None and second.new_entries == ()
    assert second.state.last_outcome == "not_modified"


def test_only_entries_the_frontier_has_not_seen_are_new() -> None:
    bodies = [
        RSS.format(items=_item(1) + _item(2)),
        RSS.format(items=_item(1) + _item(2) + _item(3)),
    ]

    def feed(handler: FaultHandler) -> None:
        handler.reply(200, bodies.pop(0).encode(), content_type="application/rss+xml")

    seen: set[str] = set()

    def is_new(entry: FeedEntry) -> bool:
        fresh = entry.url not in seen
        seen.add(entry.url)
        return fresh

    with FaultServer() as server:
        server.routes["/feed.xml"] = feed
        first = poll_feed(
            server.url("/feed.xml"), FeedState(), policy=POLICY, now=NOW, is_new=is_new
        )
        second = poll_feed(
            server.url("/feed.xml"), first.state, policy=POLICY, now=NOW, is_new=is_new
        )
    assert [e.title for e in first.new_entries] == ["Story 1", "Story 2"]
    assert [e.title for e in second.new_entries] == ["Story 3"]
    assert second.state.items_seen == 3


def test_a_failing_feed_is_returned_with_backoff_not_raised() -> None:
    def broken(handler: FaultHandler) -> None:
        handler.reply(503, b"down", {"Retry-After": "120"})

    with FaultServer() as server:
        server.routes["/feed.xml"] = broken
        polled = poll_feed(server.url("/feed.xml"), FeedState(), policy=POLICY, now=NOW)
    assert polled.error is not None and polled.error.reason == "http_5xx"
    assert polled.feed is None
    assert polled.state.consecutive_failures == 1
    assert polled.state.next_poll is not None
    assert polled.state.next_poll >= NOW + timedelta(seconds=120)
