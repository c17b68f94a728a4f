"""Feed polling state in Elasticsearch, and the per-source health that ``status`` shows."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Final, Literal, TypeVar

from elasticsearch import Elasticsearch

from pipeline.errors import PermanentError
from pipeline.feeds.parse import FeedState
from pipeline.settings import Source
from pipeline.store.bulk import BulkAction, write
from pipeline.store.client import IndexNames, call, node_url

__all__ = [
    "BENIGN_WARNINGS",
    "Kind",
    "NotInstalled",
    "SourceHealth",
    "StoredFeed",
    "collect_status",
    "feed_id",
    "is_healthy",
    "load",
    "refresh",
    "require_installed",
    "save",
    "source_health",
]

Kind = Literal["feed", "homepage"]

# Warnings that describe a quirk, not a fault: the entries were read correctly.
BENIGN_WARNINGS: Final = frozenset({"undefined_entity"})
_MAX_DETAIL: Final = 2000
_PAGE: Final = 1000

_T = TypeVar("_T")


class NotInstalled(PermanentError):
    """The indices are missing: ``newsradar init`` has not been run for this prefix."""

    def __init__(self, url: str, missing: Sequence[str]) -> None:
        super().__init__(url, tuple(missing))
        self.url = url
        self.missing = tuple(missing)

    def __str__(self) -> str:
        return (
            f"{', '.join(self.missing)} not found in Elasticsearch at {self.url}: "
            "run `newsradar init` first"
        )


def feed_id(url: str) -> str:
    """The feed-state document id: sha256 of the feed URL exactly as configured."""
    return hashlib.sha256(url.strip().encode("utf-8")).hexdigest()


def is_healthy(state: FeedState) -> bool:
    """True unless the last verdict is an error or a warning that means a fault."""
    if state.health == "ok":
        return True
    return state.health == "warning" and state.reason in BENIGN_WARNINGS


@dataclass(frozen=True)
class StoredFeed:
    """One feed's (or one homepage's) state as stored, with the version it was read at."""

    url: str
    source: str
    state: FeedState = field(default_factory=FeedState)
    kind: Kind = "feed"
    discovered_from: str | None = None  # the homepage that advertised this feed
    last_attempt: datetime | None = None
    detail: str = ""
    seq_no: int | None = None
    primary_term: int | None = None

    @property
    def id(self) -> str:
        return feed_id(self.url)

    @property
    def healthy(self) -> bool:
        return is_healthy(self.state)

    def is_due(self, now: datetime) -> bool:
        """True when the feed was never polled or its next poll time has come."""
        return self.state.next_poll is None or self.state.next_poll <= now

    def document(self) -> dict[str, Any]:
        """The feeds-index document (mappings/feeds.json)."""
        state = self.state
        return {
            "url": self.url,
            "source": self.source,
            "kind": self.kind,
            "discovered_from": self.discovered_from,
            "etag": state.etag,
            "last_modified": state.last_modified,
            "body_hash": state.body_hash,
            "last_status": str(state.last_status) if state.last_status is not None else None,
            "last_outcome": state.last_outcome,
            "last_attempt": _iso(self.last_attempt),
            "last_success": _iso(state.last_success),
            "consecutive_failures": state.consecutive_failures,
            "next_poll": _iso(state.next_poll),
            "interval_seconds": int(state.interval.total_seconds()) if state.interval else None,
            "items_seen": state.items_seen,
            "last_entry_count": state.last_entry_count,
            "health": state.health,
            "healthy": self.healthy,
            "reason": state.reason,
            "detail": self.detail[:_MAX_DETAIL] or None,
        }

    @classmethod
    def from_hit(cls, hit: dict[str, Any]) -> StoredFeed:
        """Read a search hit (with ``_seq_no`` and ``_primary_term``) back."""
        doc = hit["_source"]
        status = doc.get("last_status")
        interval = doc.get("interval_seconds")
        state = FeedState(
            etag=doc.get("etag"),
            last_modified=doc.get("last_modified"),
            body_hash=doc.get("body_hash"),
            last_status=int(status) if status not in (None, "") else None,
            last_outcome=doc.get("last_outcome"),
            last_success=_date(doc.get("last_success")),
            consecutive_failures=int(doc.get("consecutive_failures") or 0),
            next_poll=_date(doc.get("next_poll")),
            interval=timedelta(seconds=int(interval)) if interval else None,
            items_seen=int(doc.get("items_seen") or 0),
            last_entry_count=int(doc.get("last_entry_count") or 0),
            health=doc.get("health") or ("ok" if doc.get("healthy", True) else "error"),
            reason=doc.get("reason"),
        )
        return cls(
            url=doc["url"],
            source=doc.get("source") or "",
            state=state,
            kind=doc.get("kind") or "feed",
            discovered_from=doc.get("discovered_from"),
            last_attempt=_date(doc.get("last_attempt")),
            detail=doc.get("detail") or "",
            seq_no=hit.get("_seq_no"),
            primary_term=hit.get("_primary_term"),
        )

    def public(self) -> dict[str, Any]:
        """The feed as ``status --json`` shows it."""
        return {
            "url": self.url,
            "kind": self.kind,
            "healthy": self.healthy,
            "reason": self.state.reason,
            "detail": self.detail or None,
            "last_attempt": _iso(self.last_attempt),
            "last_success": _iso(self.state.last_success),
            "consecutive_failures": self.state.consecutive_failures,
            "next_poll": _iso(self.state.next_poll),
        }


def require_installed(es: Elasticsearch, names: IndexNames, *indices: str) -> None:
    """Raise NotInstalled unless every alias in ``indices`` exists."""
    wanted = indices or (names.frontier, names.feeds, names.runs)
    found = call(
        es, lambda: es.indices.get_alias(name=f"{names.prefix}-*", ignore_unavailable=True)
    )
    aliases = {alias for entry in found.body.values() for alias in entry.get("aliases", {})}
    missing = [alias for alias in wanted if alias not in aliases]
    if missing:
        raise NotInstalled(node_url(es), missing)


def load(es: Elasticsearch, names: IndexNames, sources: Iterable[Source]) -> dict[str, StoredFeed]:
    """Every stored state of these sources' feeds and homepages, by URL, in one paged search.

    Also finds a configured feed whose state was stored under another source id (a source
    renamed in sources.yaml keeps its feed's validators and history).
    """
    selected = list(sources)
    ids = [
        feed_id(url) for s in selected for url in (*s.feeds, *([s.homepage] if s.homepage else []))
    ]
    query = {
        "bool": {
            "should": [
                {"ids": {"values": ids}},
                {"terms": {"source": [s.id for s in selected]}},
            ],
            "minimum_should_match": 1,
        }
    }
    stored: dict[str, StoredFeed] = {}
    after: list[Any] | None = None
    while True:
        page = call(
            es,
            partial(
                es.search,
                index=names.feeds,
                query=query,
                sort=[{"url": "asc"}],
                size=_PAGE,
                seq_no_primary_term=True,
                search_after=after,
            ),
        )
        hits = page["hits"]["hits"]
        for hit in hits:
            feed = StoredFeed.from_hit(hit)
            stored[feed.url] = feed
        if len(hits) < _PAGE:
            return stored
        after = hits[-1]["sort"]


def save(es: Elasticsearch, names: IndexNames, feed: StoredFeed, *, run_id: str | None) -> str:
    """Store ``feed`` if nobody changed it since it was read; returns the write's outcome.

    ``conflict`` (or ``already_stored`` for a first save) means another pull saved this feed
    meanwhile; its state is as good as ours, so ours is dropped rather than forced over it.
    """
    if feed.seq_no is None or feed.primary_term is None:
        action = BulkAction(names.feeds, feed.id, feed.document(), op="create")
    else:
        action = BulkAction(
            names.feeds,
            feed.id,
            feed.document(),
            op="index",
            if_seq_no=feed.seq_no,
            if_primary_term=feed.primary_term,
        )
    report = write(es, [action], names=names, stage="pull", run_id=run_id)
    return report.outcomes.get(feed.id, "dead_lettered")


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class SourceHealth:
    """One source's line in ``status``."""

    id: str
    status: Literal["ok", "unhealthy", "never"]
    last_pull: datetime | None
    articles: int
    pending: int
    feeds: tuple[StoredFeed, ...]

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "last_pull": _iso(self.last_pull),
            "status": self.status,
            "articles": self.articles,
            "pending": self.pending,
            "feeds": [feed.public() for feed in self.feeds],
        }


def source_health(
    source: Source, feeds: Iterable[StoredFeed], *, articles: int = 0, pending: int = 0
) -> SourceHealth:
    """``never`` until a feed was attempted; ``unhealthy`` while any feed is; else ``ok``."""
    mine = tuple(sorted(feeds, key=lambda f: (f.kind != "feed", f.url)))
    attempts = [f.last_attempt for f in mine if f.last_attempt is not None]
    if not attempts:
        status: Literal["ok", "unhealthy", "never"] = "never"
    elif all(f.healthy for f in mine):
        status = "ok"
    else:
        status = "unhealthy"
    return SourceHealth(
        source.id, status, max(attempts) if attempts else None, articles, pending, mine
    )


def collect_status(
    es: Elasticsearch, names: IndexNames, sources: Sequence[Source]
) -> dict[str, Any]:
    """Totals and per-source health for ``newsradar status --json`` (INTERFACE.md's keys)."""
    require_installed(es, names, names.articles, names.feeds, names.frontier, names.dead_letters)
    ids = [s.id for s in sources]
    articles = call(
        es,
        lambda: es.search(
            index=names.articles,
            size=0,
            track_total_hits=True,
            aggs={
                "duplicates": {"filter": {"exists": {"field": "duplicate_of"}}},
                "by_language": {"terms": {"field": "language", "size": 200}},
                "by_source": {"terms": {"field": "source", "size": max(len(ids), 1) + 10}},
            },
        ),
    )
    frontier = call(
        es,
        lambda: es.search(
            index=names.frontier,
            size=0,
            query={"term": {"state": "pending"}},
            track_total_hits=True,
            aggs={"by_source": {"terms": {"field": "source", "size": max(len(ids), 1) + 10}}},
        ),
    )
    dead = call(es, lambda: es.count(index=names.dead_letters))
    from pipeline.alerts.match import matching_health  # loaded only for status
    from pipeline.alerts.outbox import outbox_counts

    aggs = articles["aggregations"]
    per_source = _buckets(aggs["by_source"])
    pending = _buckets(frontier["aggregations"]["by_source"])
    stored = load(es, names, sources)
    by_source: dict[str, list[StoredFeed]] = {}
    for feed in stored.values():
        by_source.setdefault(feed.source, []).append(feed)
    health = [
        source_health(
            s,
            by_source.get(s.id, []),
            articles=per_source.get(s.id, 0),
            pending=pending.get(s.id, 0),
        )
        for s in sources
    ]
    return {
        "articles": int(articles["hits"]["total"]["value"]),
        "duplicates": int(aggs["duplicates"]["doc_count"]),
        "by_language": _buckets(aggs["by_language"]),
        **outbox_counts(es, names),
        **matching_health(es, names),
        "dead_letters": int(dead["count"]),
        "frontier_pending": int(frontier["hits"]["total"]["value"]),
        "sources": [h.public() for h in health],
    }


def _buckets(agg: dict[str, Any]) -> dict[str, int]:
    return {str(b["key"]): int(b["doc_count"]) for b in agg["buckets"]}


# --------------------------------------------------------------------------- helpers


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def refresh(es: Elasticsearch, *indices: str) -> None:
    """Make recent writes searchable now instead of within the refresh interval."""
    call(es, lambda: es.indices.refresh(index=list(indices)))
