"""RSS and Atom feeds: parse fetched bytes with a health verdict, discover feeds, plan polls."""

from __future__ import annotations

import hashlib
import io
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import feedparser
import w3lib.encoding
import w3lib.html

from pipeline.net import charsets
from pipeline.net.fetch import FetchFailed, FetchResult, FetchUnavailable
from pipeline.net.urls import UnsupportedURL, canonicalize_url
from pipeline.normalise.dates import parse_date

__all__ = [
    "FeedEntry",
    "FeedState",
    "Health",
    "ParsedFeed",
    "PollBounds",
    "PollOutcome",
    "body_hash",
    "discover_feeds",
    "is_unchanged",
    "next_poll",
    "parse_feed",
]

Health = Literal["ok", "warning", "error"]

_SCHEMES = frozenset({"http", "https"})
_FEED_TYPES = frozenset({"application/rss+xml", "application/atom+xml"})
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*?\?>")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?\bencoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_HTML_START = re.compile(r"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])", re.I | re.S)
_BLOCK_TAGS = re.compile(
    r"</?(?:p|div|br|hr|li|ul|ol|dl|dt|dd|h[1-6]|tr|td|th|table|blockquote|pre|section|"
    r"article|header|footer|figure|figcaption|aside|nav)\b[^>]*>",
    re.I,
)
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")
# The SAX messages that mean the document ended early rather than being wrong in the middle.
_TRUNCATION = ("no element found", "unclosed token")


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class FeedEntry:
    """One usable feed item; ``url`` is canonical, ``link`` the absolute link as published."""

    url: str
    link: str
    guid: str | None
    title: str
    summary: str  # plain text, HTML stripped
    published: datetime | None  # aware UTC; None if absent or rejected
    published_raw: str | None  # the feed's own text, kept whatever became of it
    date_rejected: str | None  # "future", "before_1990", "unparseable" or None
    image: str | None
    author: str | None


@dataclass(frozen=True)
class ParsedFeed:
    """Entries that parsed, skips counted by reason, and the feed's health verdict."""

    entries: tuple[FeedEntry, ...]
    health: Health
    reason: str | None  # why health is not ok: empty_body, html_not_feed, truncated, ...
    detail: str = ""  # the parser's own message, for the source-health record
    skipped: Mapping[str, int] = field(default_factory=dict)  # no_link, bad_scheme, ...
    dates_rejected: int = 0
    version: str = ""  # feedparser's name for the format: rss20, rss10, atom10, rss091u, ...
    encoding: str = ""  # the encoding the body was decoded with
    title: str = ""
    site_url: str | None = None
    language: str | None = None


def parse_feed(
    body: bytes, *, feed_url: str, content_type: str | None, now: datetime
) -> ParsedFeed:
    """Parse feed bytes (never a URL or a path); ``now`` bounds plausible publication dates."""
    if not body.strip():
        return ParsedFeed(entries=(), health="warning", reason="empty_body")
    text, encoding = _decode(body, content_type)
    document = _XML_DECLARATION.sub('<?xml version="1.0" encoding="utf-8"?>', text, count=1)
    # A BytesIO, never bytes or str: feedparser.parse() opens a str or bytes value that names
    # an existing file, so a body reading "/etc/passwd" would be read from disk.
    parsed = feedparser.parse(
        io.BytesIO(document.encode("utf-8")),
        response_headers={
            "content-type": "application/xml; charset=utf-8",
            "content-location": feed_url,
        },
        resolve_relative_uris=True,
        sanitize_html=True,
    )
    entries, skipped, rejected = _entries(parsed.get("entries", []), feed_url, now)
    health, reason, detail = _verdict(parsed, text, content_type, entries, skipped)
    # Whatever the loose parser gleaned from a page that is not a feed describes no feed.
    meta = parsed.get("feed", {}) if parsed.get("version") else {}
    site = meta.get("link")
    return ParsedFeed(
        entries=entries,
        health=health,
        reason=reason,
        detail=detail,
        skipped=dict(skipped),
        dates_rejected=rejected,
        version=str(parsed.get("version") or ""),
        encoding=encoding,
        title=_plain(meta.get("title_detail"), meta.get("title")),
        site_url=_absolute(site, feed_url) if site else None,
        language=meta.get("language") or None,
    )


def _decode(body: bytes, content_type: str | None) -> tuple[str, str]:
    """Decode a feed by pipeline.net.charsets' rule; the XML declaration is its in-document label.

    feedparser follows RFC 3023 (the HTTP header beats the XML declaration) and falls back
    silently; servers routinely send a default charset that the bytes do not match, so we
    decide here and hand feedparser UTF-8.
    """
    match = _XML_ENCODING.match(body)
    decoded = charsets.decode(
        body,
        header_charset=w3lib.encoding.http_content_type_encoding(content_type),
        declared_charset=match.group(1).decode("ascii") if match else None,
    )
    return decoded.text, decoded.encoding


def _entries(
    raw_entries: list[Any], feed_url: str, now: datetime
) -> tuple[tuple[FeedEntry, ...], Counter[str], int]:
    entries: list[FeedEntry] = []
    skipped: Counter[str] = Counter()
    seen: set[str] = set()
    rejected = 0
    for raw in raw_entries:
        link = (raw.get("link") or "").strip()
        if not link:
            skipped["no_link"] += 1
            continue
        absolute = _absolute(link, feed_url)
        if absolute is None:
            skipped["bad_url"] += 1
            continue
        if urlsplit(absolute).scheme.lower() not in _SCHEMES:
            skipped["bad_scheme"] += 1  # javascript:, file:, data:, mailto: ...
            continue
        try:
            url = canonicalize_url(absolute)
        except UnsupportedURL:
            skipped["bad_url"] += 1
            continue
        if url in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(url)
        # The raw string, never *_parsed: feedparser reads "2016/6/29 15:07:41" as 2016-11-01.
        raw_date = raw.get("published") or raw.get("updated") or raw.get("created")
        date = parse_date(raw_date, now=now) if raw_date else None
        if date is not None and date.rejected is not None:
            rejected += 1
        guid = (raw.get("id") or "").strip()
        author = (raw.get("author") or raw.get("author_detail", {}).get("name") or "").strip()
        entries.append(
            FeedEntry(
                url=url,
                link=absolute,
                guid=guid or None,
                title=_plain(raw.get("title_detail"), raw.get("title")),
                summary=_plain(raw.get("summary_detail"), raw.get("summary")),
                published=date.value if date else None,
                published_raw=raw_date or None,
                date_rejected=date.rejected if date else None,
                image=_image(raw, feed_url),
                author=author or None,
            )
        )
    return tuple(entries), skipped, rejected


def _absolute(link: str, base: str) -> str | None:
    try:
        return urljoin(base, link.strip())
    except ValueError:  # an unbalanced IPv6 bracket and the like
        return None


def _plain(detail: Mapping[str, Any] | None, value: str | None) -> str:
    """Text of a feed field: HTML fields lose their tags and entities; all lose extra spaces."""
    if not value:
        return ""
    if detail is not None and "html" in str(detail.get("type", "")):
        return _html_to_text(value)
    return " ".join(value.split())


def _html_to_text(html: str) -> str:
    text = w3lib.html.remove_tags_with_content(html, which_ones=("script", "style"))
    text = _BLOCK_TAGS.sub(" ", text)  # so that <p>a</p><p>b</p> reads "a b", not "ab"
    text = w3lib.html.replace_entities(w3lib.html.remove_tags(text))
    return " ".join(text.split())


def _image(raw: Mapping[str, Any], feed_url: str) -> str | None:
    """The entry's picture: Media RSS content or thumbnail, else an image enclosure."""
    candidates: list[str] = []
    for media in raw.get("media_content") or []:
        url, medium, kind = media.get("url"), media.get("medium", ""), media.get("type", "")
        if not url:
            continue
        # Untyped media content counts only when its file name says it is a picture.
        untyped_image = not medium and not kind and _has_image_suffix(url)
        if medium == "image" or kind.startswith("image/") or untyped_image:
            candidates.append(url)
    candidates.extend(t["url"] for t in raw.get("media_thumbnail") or [] if t.get("url"))
    candidates.extend(
        e["href"]
        for e in raw.get("enclosures") or []
        if e.get("href") and str(e.get("type", "")).startswith("image/")
    )
    for candidate in candidates:
        absolute = _absolute(candidate, feed_url)
        if absolute and urlsplit(absolute).scheme.lower() in _SCHEMES:
            return absolute
    return None


def _has_image_suffix(url: str) -> bool:
    return urlsplit(url).path.lower().endswith(_IMAGE_SUFFIXES)


def _verdict(
    parsed: Mapping[str, Any],
    text: str,
    content_type: str | None,
    entries: tuple[FeedEntry, ...],
    skipped: Counter[str],
) -> tuple[Health, str | None, str]:
    error = parsed.get("bozo_exception") if parsed.get("bozo") else None
    detail = _message(error) if error is not None else ""
    if not parsed.get("version"):
        served_html = (content_type or "").split(";")[0].strip().lower() == "text/html"
        looks_html = bool(_HTML_START.match(text[:4096]))
        reason = "html_not_feed" if looks_html or served_html else "not_a_feed"
        return "error", reason, detail
    if error is not None:
        if "undefined entity" in detail:
            # HTML entities such as &nbsp; are not XML; the loose parser reads them correctly.
            verdict: tuple[Health, str | None, str] = ("warning", "undefined_entity", detail)
        elif any(marker in detail for marker in _TRUNCATION):
            return "error", "truncated", detail
        else:
            return "error", "malformed", detail
    else:
        verdict = ("ok", None, "")
    if not entries:
        return "warning", "all_entries_skipped" if skipped else "zero_entries", detail
    return verdict


def _message(error: object) -> str:
    get_message = getattr(error, "getMessage", None)  # SAXParseException keeps it here
    message = get_message() if callable(get_message) else str(error)
    line = getattr(error, "getLineNumber", None)
    return f"{message} (line {line()})" if callable(line) else str(message)


# --------------------------------------------------------------------------- discovery


class _LinkFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.base: str | None = None
        self.feeds: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name.lower(): (value or "") for name, value in attrs}
        if tag == "base" and self.base is None and values.get("href"):
            self.base = values["href"].strip()
        elif tag == "link":
            rels = values.get("rel", "").lower().split()
            kind = values.get("type", "").split(";")[0].strip().lower()
            href = values.get("href", "").strip()
            if "alternate" in rels and kind in _FEED_TYPES and href:
                self.feeds.append(href)


def discover_feeds(html: bytes, page_url: str) -> list[str]:
    """Absolute http(s) URLs of the RSS and Atom feeds a page advertises, in page order."""
    _, text = w3lib.encoding.html_to_unicode(None, html)
    finder = _LinkFinder()
    finder.feed(text)
    finder.close()
    base = _absolute(finder.base, page_url) if finder.base else page_url
    found: list[str] = []
    for href in finder.feeds:
        url = _absolute(href, base or page_url)
        if url and urlsplit(url).scheme.lower() in _SCHEMES and url not in found:
            found.append(url)
    return found


# --------------------------------------------------------------------------- polling


def body_hash(body: bytes) -> str:
    """The fingerprint that recognises an unchanged body when a server sends no validators."""
    return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class FeedState:
    """What we remember about one feed between polls (stored in the search engine later)."""

    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    last_status: int | None = None  # the last HTTP status; None when no response came
    last_outcome: str | None = None  # "ok", "not_modified" or a fetch error's reason
    last_success: datetime | None = None
    consecutive_failures: int = 0
    next_poll: datetime | None = None
    interval: timedelta | None = None  # the current polling interval, before any backoff
    items_seen: int = 0  # new items found over the feed's life
    last_entry_count: int = 0
    health: Health = "ok"
    reason: str | None = None


@dataclass(frozen=True)
class PollOutcome:
    """What one poll produced; build it with ``from_result`` or ``from_error``."""

    status: int | None
    failure: str | None = None  # the fetch error's reason; None when the poll succeeded
    permanent: bool = False
    retry_after: float | None = None
    etag: str | None = None
    last_modified: str | None = None
    body_hash: str | None = None
    not_modified: bool = False
    entry_count: int = 0
    new_items: int = 0  # entries not seen before (the frontier knows)
    health: Health = "ok"
    reason: str | None = None

    @classmethod
    def from_result(
        cls, result: FetchResult, feed: ParsedFeed | None = None, *, new_items: int = 0
    ) -> PollOutcome:
        """A poll that got a response; ``feed`` is None when the body was not parsed."""
        return cls(
            status=result.status,
            etag=result.headers.get("etag"),
            last_modified=result.headers.get("last-modified"),
            body_hash=None if result.not_modified else body_hash(result.body),
            not_modified=result.not_modified,
            entry_count=len(feed.entries) if feed else 0,
            new_items=new_items,
            health=feed.health if feed else "ok",
            reason=feed.reason if feed else None,
        )

    @classmethod
    def from_error(cls, error: FetchFailed | FetchUnavailable) -> PollOutcome:
        """A poll that failed."""
        return cls(
            status=error.status,
            failure=error.reason,
            permanent=isinstance(error, FetchFailed),
            retry_after=getattr(error, "retry_after", None),
        )


def is_unchanged(state: FeedState, poll: FetchResult | PollOutcome) -> bool:
    """True for a 304, or for a 200 whose body is byte-identical to the last one."""
    if poll.not_modified:
        return True
    digest = poll.body_hash if isinstance(poll, PollOutcome) else body_hash(poll.body)
    return state.body_hash is not None and state.body_hash == digest


@dataclass(frozen=True)
class PollBounds:
    """How fast and how slow a feed may be polled."""

    min_interval: timedelta = timedelta(minutes=5)
    max_interval: timedelta = timedelta(days=1)
    initial: timedelta = timedelta(hours=1)
    speedup: float = 0.5  # interval factor after a poll that brought new items
    slowdown: float = 1.5  # interval factor after a poll that brought none
    error_after: int = 3  # consecutive transient failures before health turns "error"

    def clamp(self, interval: timedelta) -> timedelta:
        """``interval`` limited to [min_interval, max_interval]."""
        return max(self.min_interval, min(self.max_interval, interval))


_MAX_BACKOFF_EXPONENT = 20  # 2**20 x max_interval still fits in a timedelta


def next_poll(
    state: FeedState, outcome: PollOutcome, now: datetime, bounds: PollBounds | None = None
) -> FeedState:
    """The feed's state after a poll: validators, health, and when to poll next."""
    bounds = bounds or PollBounds()
    interval = bounds.clamp(state.interval or bounds.initial)
    if outcome.failure is not None:
        failures = state.consecutive_failures + 1
        # Cap the exponent: interval * 2**failures overflows timedelta after ~35 failures,
        # and 2**20 x min_interval is far past any max_interval, so the cap changes nothing else.
        delay = bounds.clamp(interval * 2 ** min(failures, _MAX_BACKOFF_EXPONENT))
        if outcome.retry_after is not None:
            delay = bounds.clamp(max(delay, timedelta(seconds=outcome.retry_after)))
        escalate = outcome.permanent or failures >= bounds.error_after
        return replace(
            state,
            last_status=outcome.status,
            last_outcome=outcome.failure,
            consecutive_failures=failures,
            next_poll=now + delay,
            interval=interval,
            health="error" if escalate else "warning",
            reason=outcome.failure,
        )
    unchanged = is_unchanged(state, outcome)
    state = replace(
        state,
        etag=outcome.etag or state.etag,
        last_modified=outcome.last_modified or state.last_modified,
        last_status=outcome.status,
        last_success=now,
    )
    if unchanged:
        interval = bounds.clamp(interval * bounds.slowdown)
        # The content is the one we judged last time; only a failure streak's verdict ends.
        recovered = state.consecutive_failures > 0
        return replace(
            state,
            consecutive_failures=0,
            last_outcome="not_modified",
            next_poll=now + interval,
            interval=interval,
            health="ok" if recovered else state.health,
            reason=None if recovered else state.reason,
        )
    factor = bounds.speedup if outcome.new_items > 0 else bounds.slowdown
    interval = bounds.clamp(interval * factor)
    health, reason = outcome.health, outcome.reason
    if outcome.entry_count == 0 and state.last_entry_count > 0 and reason in (None, "zero_entries"):
        # A well-formed but empty feed looks like "no news"; after real entries it is a fault.
        health, reason = "warning", "entries_dropped_to_zero"
    return replace(
        state,
        consecutive_failures=0,
        body_hash=outcome.body_hash,
        last_outcome="ok",
        next_poll=now + interval,
        interval=interval,
        items_seen=state.items_seen + outcome.new_items,
        last_entry_count=outcome.entry_count,
        health=health,
        reason=reason,
    )
