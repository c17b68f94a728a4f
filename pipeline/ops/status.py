"""``newsradar status``: per-source health and totals gathered from several stages.

Feed states (pipeline.feeds), article, frontier and dead-letter counts (pipeline.store) and
the alert outbox and matching (pipeline.alerts), read together for the status command and
the maintenance DAG's health check.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from elasticsearch import Elasticsearch

from pipeline.alerts.match import matching_health
from pipeline.alerts.outbox import outbox_counts
from pipeline.feeds.state import StoredFeed, load, require_installed
from pipeline.settings import Source
from pipeline.store.client import call
from pipeline.store.names import IndexNames

__all__ = ["SourceHealth", "collect_status", "source_health"]


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
        """The source's line as JSON-ready fields."""
        return {
            "id": self.id,
            "last_pull": self.last_pull.isoformat() if self.last_pull else None,
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
