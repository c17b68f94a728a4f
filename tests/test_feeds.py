"""Tests for pipeline.feeds.parse: saved feeds, discovery, and poll scheduling over real HTTP."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import feedparser
import pytest
import time_machine
from httpfaults import FaultHandler, FaultServer

from pipeline.feeds.parse import (
    FeedState,
    Health,
    ParsedFeed,
    PollBounds,
    PollOutcome,
    discover_feeds,
    is_unchanged,
    next_poll,
    parse_feed,
)
from pipeline.net.fetch import FetchFailed, FetchPolicy, FetchUnavailable, fetch

FIXTURES = Path(__file__).parent / "fixtures" / "feeds"
FEED_URL = "https://feeds.example.com/path/feed.xml"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LOOPBACK = FetchPolicy(allow_private_networks=True, connect_timeout=2, read_timeout=5, deadline=10)


def _parse(name: str, content_type: str | None = "application/rss+xml") -> ParsedFeed:
    body = (FIXTURES / name).read_bytes()
    return parse_feed(body, feed_url=FEED_URL, content_type=content_type, now=NOW)


def _everything(feed: ParsedFeed) -> str:
    """Every string the parse produced, for "this must appear nowhere" checks."""
    return repr(feed)


# --------------------------------------------------------------------------- RSS 2.0


def test_rss20_entries_are_resolved_canonical_and_stripped() -> None:
    feed = _parse("rss20.xml")
    assert (feed.health, feed.reason) == ("ok", None)
    assert (feed.version, feed.title, feed.language) == ("rss20", "Example News", "en-gb")
    assert feed.site_url == "https://news.example.com/"
    first = feed.entries[0]
    assert first.url == "https://news.example.com/world/nato-talks?id=7"  # utm_ dropped
    assert first.link == "https://news.example.com/world/nato-talks?utm_source=rss&id=7"
    assert first.guid == "story-7"
    assert first.title == "NATO & the enlargement talks"
    assert first.summary == "Ministers met in Brussels. Talks go on & on."
    assert first.author == "Jane Doe"
    assert first.image == "https://feeds.example.com/images/nato.jpg"  # relative, resolved
    assert first.published == datetime(2024, 1, 2, 9, 0, tzinfo=UTC)
    assert first.published_raw == "Tue, 02 Jan 2024 10:00:00 +0100"


def test_rss20_skips_are_counted_with_a_reason() -> None:
    feed = _parse("rss20.xml")
    assert [e.title for e in feed.entries] == [
        "NATO & the enlargement talks",
        "Odd date format",
        "From the future",
        "Before the web",
        "Permalink only",
    ]
    # no <link>; javascript: and file: links; the same story again under a tracked URL
    assert dict(feed.skipped) == {"no_link": 1, "bad_scheme": 2, "duplicate": 1}
    assert "/etc/passwd" not in " ".join(e.url for e in feed.entries)


def test_relative_rss_link_resolves_against_the_feed_url() -> None:
    entry = _parse("rss20.xml").entries[1]
    assert entry.link == "https://feeds.example.com/local/odd-date"
    assert entry.image == "https://cdn.example.com/thumb.png"  # media:thumbnail


def test_permalink_guid_stands_in_for_a_missing_link() -> None:
    entry = _parse("rss20.xml").entries[4]
    assert entry.url == entry.guid == "https://news.example.com/permalink"


def test_slash_date_keeps_the_raw_string_and_is_not_misread() -> None:
    entry = _parse("rss20.xml").entries[1]
    assert entry.published_raw == "2016/6/29 15:07:41"
    assert entry.published == datetime(2016, 6, 29, 15, 7, 41, tzinfo=UTC)
    # the reason we never use *_parsed: feedparser misreads the same item, filling the parts it
    # cannot read from today's date; the clock is frozen on two days to show both misreadings
    for today, misread in (("2026-11-15", (2016, 11, 1)), ("2026-12-01", (2016, 12, 1))):
        with time_machine.travel(datetime.fromisoformat(f"{today}T12:00:00+00:00"), tick=False):
            raw = feedparser.parse(io.BytesIO((FIXTURES / "rss20.xml").read_bytes()))
        assert tuple(raw.entries[1].published_parsed[:3]) == misread


def test_implausible_dates_are_rejected_and_recorded() -> None:
    feed = _parse("rss20.xml")
    future, ancient = feed.entries[2], feed.entries[3]
    assert (future.published, future.date_rejected) == (None, "future")
    assert future.published_raw == "Sat, 01 Jan 2050 00:00:00 GMT"
    assert (ancient.published, ancient.date_rejected) == (None, "before_1990")
    assert feed.dates_rejected == 2
    assert future.image == "https://cdn.example.com/future.webp"  # image enclosure


# --------------------------------------------------------------------------- other formats


def test_atom_xml_base_and_html_fields() -> None:
    feed = _parse("atom10.xml", "application/atom+xml")
    assert (feed.health, feed.version, feed.title) == ("ok", "atom10", "Example Blog")
    bold, archived = feed.entries
    assert bold.url == "https://blog.example.org/en/posts/bold-claims"  # feed-level xml:base
    assert bold.title == "Bold claims"
    assert bold.summary == "First second part"  # blocks separated, &nbsp; decoded
    assert bold.author == "Ann Author"
    assert bold.published == datetime(2024, 3, 1, 7, 30, tzinfo=UTC)  # published, not updated
    assert archived.url == "https://blog.example.org/archive/2023/old-post"  # entry xml:base
    assert archived.published_raw == "2023-12-31T23:59:59Z"  # falls back to <updated>
    assert archived.image == "https://blog.example.org/archive/pic.png"


def test_rss10_rdf() -> None:
    feed = _parse("rss10.rdf", None)
    assert (feed.health, feed.version) == ("ok", "rss10")
    assert [e.url for e in feed.entries] == [
        "https://rdf.example.net/a",
        "https://rdf.example.net/b",
    ]
    assert feed.entries[0].published == datetime(2024, 2, 3, 3, 5, 6, tzinfo=UTC)  # dc:date
    assert feed.entries[0].author == "R. Writer"


def test_rss091() -> None:
    feed = _parse("rss091.xml", "text/xml")
    assert feed.version.startswith("rss09")
    assert [e.url for e in feed.entries] == ["http://old.example.com/story"]


def test_html_entities_are_decoded_with_a_warning() -> None:
    feed = _parse("entities.xml")
    assert (feed.health, feed.reason) == ("warning", "undefined_entity")
    assert feed.title == "Café news"
    assert feed.entries[0].title == "Café & crème €5 — …"


# --------------------------------------------------------------------------- broken feeds


def test_malformed_feed_is_an_error_but_keeps_what_parsed() -> None:
    feed = _parse("malformed.xml")
    assert (feed.health, feed.reason) == ("error", "malformed")
    assert "line 7" in feed.detail
    assert [e.url for e in feed.entries] == [f"https://broken.example.com/{n}" for n in (1, 2, 3)]


def test_truncated_feed_is_an_error_but_keeps_what_parsed() -> None:
    feed = _parse("truncated.xml")
    assert (feed.health, feed.reason) == ("error", "truncated")
    assert [e.title for e in feed.entries] == ["One", "Two"]
    assert dict(feed.skipped) == {"no_link": 1}  # the item cut off mid-title


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/rss+xml"])
def test_html_instead_of_xml_is_an_error(content_type: str) -> None:
    feed = _parse("not_a_feed.html", content_type)
    assert (feed.health, feed.reason) == ("error", "html_not_feed")
    assert feed.entries == ()
    assert (feed.title, feed.site_url) == ("", None)


def test_xml_that_is_not_a_feed_is_an_error() -> None:
    body = b'<?xml version="1.0"?><urlset><url><loc>https://x.example/</loc></url></urlset>'
    feed = parse_feed(body, feed_url=FEED_URL, content_type="application/xml", now=NOW)
    assert (feed.health, feed.reason) == ("error", "not_a_feed")


@pytest.mark.parametrize("body", [b"", b"  \r\n\t"])
def test_empty_body_is_a_warning(body: bytes) -> None:
    feed = parse_feed(body, feed_url=FEED_URL, content_type="application/rss+xml", now=NOW)
    assert (feed.health, feed.reason, feed.entries) == ("warning", "empty_body", ())


def test_zero_entries_is_a_warning() -> None:
    feed = _parse("zero_entries.xml")
    assert (feed.health, feed.reason, feed.title) == ("warning", "zero_entries", "Quiet")


def test_feed_whose_every_entry_is_skipped_is_a_warning() -> None:
    body = (
        b'<rss version="2.0"><channel><title>x</title>'
        b"<item><title>a</title><link>mailto:a@example.com</link></item>"
        b"<item><title>b</title></item></channel></rss>"
    )
    feed = parse_feed(body, feed_url=FEED_URL, content_type=None, now=NOW)
    assert (feed.health, feed.reason) == ("warning", "all_entries_skipped")
    assert dict(feed.skipped) == {"bad_scheme": 1, "no_link": 1}


# --------------------------------------------------------------------------- hostile XML


def test_billion_laughs_expands_nothing() -> None:
    started = time.monotonic()
    feed = _parse("billion_laughs.xml")
    assert time.monotonic() - started < 2.0
    assert "lollol" not in _everything(feed)
    assert len(_everything(feed)) < 5000
    assert [e.url for e in feed.entries] == ["https://lol.example.com/1"]


def test_xxe_reads_no_local_file(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-7f3a9c-do-not-leak")
    template = (FIXTURES / "xxe.xml.in").read_text()
    body = template.replace("CANARY_PATH", str(canary)).encode()
    feed = parse_feed(body, feed_url=FEED_URL, content_type="application/rss+xml", now=NOW)
    assert "CANARY-7f3a9c" not in _everything(feed)
    assert [e.url for e in feed.entries] == ["https://xxe.example.com/1"]


def test_a_body_that_names_a_file_is_not_opened(tmp_path: Path) -> None:
    # feedparser.parse(bytes) would open this path; we must treat the body as a document.
    canary = tmp_path / "feed.xml"
    canary.write_text('<rss version="2.0"><channel><title>LEAKED-FROM-DISK</title></channel></rss>')
    feed = parse_feed(
        str(canary).encode(), feed_url=FEED_URL, content_type="application/rss+xml", now=NOW
    )
    assert "LEAKED-FROM-DISK" not in _everything(feed)
    assert feed.health == "error"


# --------------------------------------------------------------------------- encodings

TITLE = "Bürgermeister: „Wir müssen handeln“ \u2013 Kosten 5 €, naïve Pläne"


@pytest.mark.parametrize(
    ("name", "content_type", "encoding"),
    [
        # declared windows-1252 in the document, but the server claims UTF-8
        ("cp1252_declared.xml", "application/rss+xml; charset=utf-8", "cp1252"),
        # declared windows-1252, the server claims ISO-8859-2: both decode, sniffing decides
        ("cp1252_declared.xml", "text/xml; charset=iso-8859-2", "cp1252"),
        # no declaration, the server claims UTF-8: sniffed
        ("cp1252_undeclared.xml", "application/rss+xml; charset=utf-8", "cp1252"),
        ("cp1252_undeclared.xml", None, "cp1252"),
        # ISO-8859-1 labels mean windows-1252 (WHATWG), so curly quotes and € survive
        ("cp1252_undeclared.xml", "text/xml; charset=iso-8859-1", "cp1252"),
        # UTF-8 with a BOM, the server claims windows-1252: the BOM wins
        ("utf8_bom.xml", "text/xml; charset=windows-1252", "utf-8"),
        # UTF-8 served as ISO-8859-1 would be mojibake ("BÃ¼rgermeister")
        ("utf8_undeclared.xml", "text/xml; charset=iso-8859-1", "utf-8"),
        ("utf16_bom.xml", "text/xml", "utf-16-le"),
    ],
)
def test_charsets_decode_correctly(name: str, content_type: str | None, encoding: str) -> None:
    feed = _parse(name, content_type)
    assert feed.health == "ok"
    assert feed.encoding == encoding
    assert feed.entries[0].title == TITLE
    assert "Straßenbahn hält. Grüße aus Köln." in feed.entries[0].summary


@pytest.mark.parametrize(
    ("name", "content_type", "garbled"),
    [
        ("cp1252_declared.xml", "text/xml; charset=iso-8859-2", "naďve"),
    ],
)
def test_feedparser_alone_garbles_what_we_decode(
    name: str, content_type: str, garbled: str
) -> None:
    # Why we decode before feedparser: it trusts a wrong header (RFC 3023) without complaint.
    body = (FIXTURES / name).read_bytes()
    raw = feedparser.parse(io.BytesIO(body), response_headers={"content-type": content_type})
    assert garbled in raw.entries[0].title
    assert _parse(name, content_type).entries[0].title == TITLE


# --------------------------------------------------------------------------- discovery


def test_discover_feeds_honours_base_and_filters() -> None:
    html = (FIXTURES / "not_a_feed.html").read_bytes()
    assert discover_feeds(html, "https://www.example.com/news/page.html") == [
        "https://www.example.com/feeds/all.rss",
        "https://www.example.com/sub/atom.xml",
        "https://other.example.net/partner.rss",
    ]


def test_discover_feeds_resolves_against_the_page_without_base() -> None:
    html = (
        b"<html><head><link type='application/atom+xml' rel='alternate' href='feed.atom'>"
        b"</head></html>"
    )
    assert discover_feeds(html, "http://site.example/section/") == [
        "http://site.example/section/feed.atom"
    ]
    assert discover_feeds(b"<html><body>nothing</body></html>", "http://site.example/") == []


# --------------------------------------------------------------------------- next_poll

BOUNDS = PollBounds(
    min_interval=timedelta(minutes=5),
    max_interval=timedelta(hours=8),
    initial=timedelta(hours=1),
    speedup=0.5,
    slowdown=1.5,
    error_after=3,
)
HOUR = timedelta(hours=1)


def _ok(
    entries: int = 10,
    new: int = 0,
    digest: str = "h1",
    health: Health = "ok",
    reason: str | None = None,
) -> PollOutcome:
    return PollOutcome(
        status=200,
        body_hash=digest,
        entry_count=entries,
        new_items=new,
        health=health,
        reason=reason,
    )


def _down(
    reason: str = "http_5xx",
    status: int | None = 503,
    permanent: bool = False,
    retry_after: float | None = None,
) -> PollOutcome:
    return PollOutcome(status=status, failure=reason, permanent=permanent, retry_after=retry_after)


NOT_MODIFIED = PollOutcome(status=304, not_modified=True)
FAILING = FeedState(interval=HOUR, consecutive_failures=4, health="error", reason="timeout")
HAD_ENTRIES = FeedState(interval=HOUR, last_entry_count=12)
MAX, MIN = BOUNDS.max_interval, BOUNDS.min_interval


# Columns: state, outcome -> interval, delay until the next poll (None: the interval),
# health, reason, consecutive failures, last outcome.
@pytest.mark.parametrize(
    ("state", "outcome", "interval", "delay", "health", "reason", "failures", "last_outcome"),
    [
        pytest.param(
            FeedState(), _ok(new=4), HOUR / 2, None, "ok", None, 0, "ok", id="new-items-faster"
        ),
        pytest.param(
            FeedState(interval=HOUR), _ok(), HOUR * 1.5, None, "ok", None, 0, "ok",
            id="no-new-slower",
        ),
        pytest.param(
            FeedState(interval=timedelta(minutes=6)), _ok(new=9), MIN, None, "ok", None, 0, "ok",
            id="never-below-min",
        ),
        pytest.param(
            FeedState(interval=timedelta(hours=7)), _ok(), MAX, None, "ok", None, 0, "ok",
            id="never-above-max",
        ),
        pytest.param(
            FeedState(interval=HOUR, etag='"e"', body_hash="h1"), NOT_MODIFIED,
            HOUR * 1.5, None, "ok", None, 0, "not_modified",
            id="304-slower",
        ),
        pytest.param(
            FeedState(interval=HOUR, body_hash="h1"), _ok(digest="h1"),
            HOUR * 1.5, None, "ok", None, 0, "not_modified",
            id="same-hash-is-not-modified",
        ),
        pytest.param(
            FeedState(interval=HOUR), _down(), HOUR, HOUR * 2, "warning", "http_5xx", 1, "http_5xx",
            id="first-failure-backs-off",
        ),
        pytest.param(
            FeedState(interval=HOUR, consecutive_failures=1), _down("timeout", status=None),
            HOUR, HOUR * 4, "warning", "timeout", 2, "timeout",
            id="second-failure-doubles",
        ),
        pytest.param(
            FeedState(interval=HOUR, consecutive_failures=2), _down(),
            HOUR, MAX, "error", "http_5xx", 3, "http_5xx",
            id="third-failure-is-error-and-capped",
        ),
        pytest.param(
            FeedState(interval=HOUR), _down("http_4xx", status=404, permanent=True),
            HOUR, HOUR * 2, "error", "http_4xx", 1, "http_4xx",
            id="permanent-is-error-at-once",
        ),
        pytest.param(
            FeedState(interval=HOUR), _down("http_429", status=429, retry_after=5 * 3600),
            HOUR, HOUR * 5, "warning", "http_429", 1, "http_429",
            id="retry-after-honoured",
        ),
        pytest.param(
            FeedState(interval=HOUR), _down("http_429", status=429, retry_after=3 * 86400),
            HOUR, MAX, "warning", "http_429", 1, "http_429",
            id="retry-after-within-bounds",
        ),
        pytest.param(
            FeedState(interval=HOUR), _down("http_429", status=429, retry_after=10),
            HOUR, HOUR * 2, "warning", "http_429", 1, "http_429",
            id="short-retry-after-keeps-backoff",
        ),
        pytest.param(
            FAILING, _ok(new=1, digest="h2"), HOUR / 2, None, "ok", None, 0, "ok",
            id="recovery-clears-streak",
        ),
        pytest.param(
            FAILING, NOT_MODIFIED, HOUR * 1.5, None, "ok", None, 0, "not_modified",
            id="recovery-by-304",
        ),
        pytest.param(
            HAD_ENTRIES, _ok(entries=0, digest="h3", health="warning", reason="zero_entries"),
            HOUR * 1.5, None, "warning", "entries_dropped_to_zero", 0, "ok",
            id="entries-dropped-to-zero",
        ),
        pytest.param(
            HAD_ENTRIES, _ok(entries=0, digest="h4", health="error", reason="html_not_feed"),
            HOUR * 1.5, None, "error", "html_not_feed", 0, "ok",
            id="specific-parse-verdict-kept",
        ),
        pytest.param(
            FeedState(interval=HOUR),
            _ok(entries=0, digest="h5", health="warning", reason="zero_entries"),
            HOUR * 1.5, None, "warning", "zero_entries", 0, "ok",
            id="never-had-entries",
        ),
    ],
)  # fmt: skip
def test_next_poll_table(
    state: FeedState,
    outcome: PollOutcome,
    interval: timedelta,
    delay: timedelta | None,
    health: str,
    reason: str | None,
    failures: int,
    last_outcome: str,
) -> None:
    new = next_poll(state, outcome, NOW, BOUNDS)
    assert new.interval == interval
    assert new.next_poll == NOW + (delay if delay is not None else interval)
    assert (new.health, new.reason) == (health, reason)
    assert new.consecutive_failures == failures
    assert new.last_outcome == last_outcome
    assert new.last_status == outcome.status
    if outcome.failure is None:
        assert new.last_success == NOW
    else:
        assert new.last_success == state.last_success


def test_next_poll_records_validators_and_counts() -> None:
    outcome = replace(_ok(entries=7, new=3, digest="abc"), etag='"v2"', last_modified="Mon, 1 Jan")
    state = next_poll(FeedState(items_seen=10, etag='"v1"'), outcome, NOW, BOUNDS)
    assert (state.etag, state.last_modified, state.body_hash) == ('"v2"', "Mon, 1 Jan", "abc")
    assert (state.items_seen, state.last_entry_count) == (13, 7)
    # a 304 without validators of its own keeps the stored ones
    after = next_poll(state, PollOutcome(status=304, not_modified=True), NOW, BOUNDS)
    assert (after.etag, after.body_hash, after.items_seen) == ('"v2"', "abc", 13)


@pytest.mark.parametrize("failures", [34, 40, 10_000])
def test_next_poll_long_failure_streak_stays_at_max(failures: int) -> None:
    # interval * 2**failures used to overflow timedelta here, failing every later poll.
    state = FeedState(interval=MAX, consecutive_failures=failures, health="error")
    after = next_poll(state, _down(), NOW, BOUNDS)
    assert after.next_poll == NOW + MAX
    assert after.consecutive_failures == failures + 1


def test_next_poll_failure_keeps_validators() -> None:
    state = FeedState(etag='"v1"', body_hash="abc", last_entry_count=5, interval=HOUR)
    after = next_poll(state, _down(), NOW, BOUNDS)
    assert (after.etag, after.body_hash, after.last_entry_count) == ('"v1"', "abc", 5)


# --------------------------------------------------------------------------- polling over HTTP


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer("127.0.0.1") as srv:
        yield srv


def _poll(url: str, state: FeedState, new_items: int = 0) -> FeedState:
    """One poll as the feed task will run it: fetch, skip unchanged bodies, parse, schedule."""
    try:
        result = fetch(url, policy=LOOPBACK, etag=state.etag, last_modified=state.last_modified)
    except (FetchFailed, FetchUnavailable) as err:
        return next_poll(state, PollOutcome.from_error(err), NOW, BOUNDS)
    if is_unchanged(state, result):
        return next_poll(state, PollOutcome.from_result(result), NOW, BOUNDS)
    feed = parse_feed(result.body, feed_url=result.url, content_type=result.content_type, now=NOW)
    return next_poll(state, PollOutcome.from_result(result, feed, new_items=new_items), NOW, BOUNDS)


def test_poll_with_validators_gets_304(server: FaultServer) -> None:
    body = (FIXTURES / "rss20.xml").read_bytes()

    def route(handler: FaultHandler) -> None:
        if handler.headers.get("If-None-Match") == '"r1"':
            handler.reply(304, b"", {"ETag": '"r1"'})
        else:
            handler.reply(200, body, {"ETag": '"r1"'}, content_type="application/rss+xml")

    server.routes["/feed.xml"] = route
    first = _poll(server.url("/feed.xml"), FeedState(), new_items=5)
    assert (first.etag, first.last_entry_count, first.items_seen) == ('"r1"', 5, 5)
    second = _poll(server.url("/feed.xml"), first)
    assert second.last_status == 304
    assert second.last_outcome == "not_modified"
    assert second.interval is not None and first.interval is not None
    assert second.interval > first.interval


def test_poll_same_body_without_validators_is_not_modified(server: FaultServer) -> None:
    body = (FIXTURES / "atom10.xml").read_bytes()
    server.routes["/atom"] = lambda h: h.reply(200, body, content_type="application/atom+xml")
    first = _poll(server.url("/atom"), FeedState(), new_items=2)
    assert first.etag is None and first.body_hash is not None
    second = _poll(server.url("/atom"), first)
    assert second.last_status == 200
    assert second.last_outcome == "not_modified"
    assert second.items_seen == 2


def test_poll_of_a_feed_that_empties_warns(server: FaultServer) -> None:
    bodies = [(FIXTURES / "rss20.xml").read_bytes(), b""]
    server.routes["/feed"] = lambda h: h.reply(200, bodies.pop(0), content_type="text/xml")
    first = _poll(server.url("/feed"), FeedState(), new_items=5)
    assert first.health == "ok"
    second = _poll(server.url("/feed"), first)
    assert (second.health, second.reason) == ("warning", "empty_body")
    assert second.last_entry_count == 0


@pytest.mark.parametrize("form", ["seconds", "date"])
def test_poll_honours_retry_after(server: FaultServer, form: str) -> None:
    wait = 3 * 3600
    value = (
        str(wait)
        if form == "seconds"
        else format_datetime(datetime.now(UTC) + timedelta(seconds=wait), usegmt=True)
    )
    server.routes["/busy"] = lambda h: h.reply(503, b"", {"Retry-After": value})
    state = _poll(server.url("/busy"), FeedState(interval=HOUR))
    assert (state.health, state.reason, state.last_status) == ("warning", "http_5xx", 503)
    assert state.next_poll is not None
    assert timedelta(hours=2, minutes=59) <= state.next_poll - NOW <= timedelta(hours=3)
