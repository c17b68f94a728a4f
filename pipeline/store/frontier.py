"""The frontier: URLs waiting to be fetched, one Elasticsearch document per canonical URL."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

from elasticsearch import Elasticsearch

from pipeline.net.fetch import AddressRule
from pipeline.net.urls import url_id
from pipeline.store.bulk import BulkAction, write
from pipeline.store.client import IndexNames, call

__all__ = [
    "EnqueueReport",
    "FrontierRecord",
    "PendingUrl",
    "Via",
    "count",
    "enqueue",
    "link_refusal",
    "pending",
    "queued",
]

Via = Literal["feed", "sitemap", "start_page"]

# A feed's <description> is often the whole article; the frontier keeps a teaser, the crawl
# fetches the page itself.
_MAX_SUMMARY: Final = 2000
_MAX_TITLE: Final = 1000
# Lucene refuses keyword terms over 32766 bytes, which would dead-letter the whole record;
# no article URL is anywhere near this long.
_MAX_URL: Final = 4096
_LOCAL_NAMES: Final = ("localhost", "localhost.localdomain")

_T = TypeVar("_T")


@dataclass(frozen=True)
class FrontierRecord:
    """One URL to fetch, with what its listing said about it; ``id`` hashes the canonical URL."""

    url: str  # the link as listed (absolute)
    canonical_url: str
    source: str
    via: Via
    discovered: datetime
    feed_url: str | None = None
    title: str = ""
    summary: str = ""
    published: datetime | None = None  # implausible dates were already rejected upstream
    published_raw: str | None = None  # the listing's own text, whatever became of it
    guid: str | None = None

    @property
    def id(self) -> str:
        """The frontier (and article) document id: sha256 of the canonical URL."""
        return url_id(self.canonical_url)

    def document(self) -> dict[str, Any]:
        """The frontier document (mappings/frontier.json), state ``pending``."""
        doc: dict[str, Any] = {
            "url": self.url,
            "canonical_url": self.canonical_url,
            "source": self.source,
            "via": self.via,
            "discovered": self.discovered.isoformat(),
            "state": "pending",
            "attempts": 0,
        }
        optional: dict[str, Any] = {
            "feed_url": self.feed_url,
            "feed_title": self.title[:_MAX_TITLE] or None,
            "feed_summary": self.summary[:_MAX_SUMMARY] or None,
            "published": self.published.isoformat() if self.published else None,
            "published_raw": self.published_raw,
            "guid": self.guid,
        }
        doc.update({key: value for key, value in optional.items() if value is not None})
        return doc


def link_refusal(url: str, rule: AddressRule) -> str | None:
    """Why a listed link must not enter the frontier, or None if it may.

    Feeds already drop non-http(s) links. Here a link whose host is an IP literal (or
    localhost) that the SSRF rule refuses is kept out, so a feed cannot queue requests to the
    machine's own network; host names are checked again, resolved, when the crawl fetches.
    """
    if len(url) > _MAX_URL:
        return "url_too_long"
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host in _LOCAL_NAMES or host.endswith(".localhost"):
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None  # a name: resolved and checked at fetch time
    return None if rule.allows(host) else "blocked_address"


@dataclass
class EnqueueReport:
    """What ``enqueue`` did: records created, already present, and refused by Elasticsearch."""

    new_ids: set[str] = field(default_factory=set)
    seen: int = 0  # already in the frontier (or twice in this call)
    dead_lettered: int = 0
    errors: dict[str, str] = field(default_factory=dict)  # id -> why it was dead-lettered

    @property
    def new(self) -> int:
        """Records created."""
        return len(self.new_ids)


def enqueue(
    es: Elasticsearch, names: IndexNames, records: Iterable[FrontierRecord], *, run_id: str | None
) -> EnqueueReport:
    """Add records to the frontier with create-if-absent: a URL seen before is not queued again.

    Raises SearchUnavailable (transient) when Elasticsearch cannot be reached; everything
    written before that stays written, and a rerun is harmless.
    """
    report = EnqueueReport()
    actions: dict[str, BulkAction] = {}
    for record in records:
        if record.id in actions:
            report.seen += 1  # the same URL listed twice in one batch
            continue
        actions[record.id] = BulkAction(names.frontier, record.id, record.document(), op="create")
    if not actions:
        return report
    written = write(es, actions.values(), names=names, stage="pull", run_id=run_id)
    for doc_id, outcome in written.outcomes.items():
        if outcome == "created":
            report.new_ids.add(doc_id)
        elif outcome == "dead_lettered":
            report.dead_lettered += 1
            report.errors[doc_id] = written.errors.get(doc_id, "")
        else:  # already_stored: a 409 under create
            report.seen += 1
    return report


@dataclass(frozen=True)
class PendingUrl:
    """A frontier URL waiting for the crawl."""

    id: str
    url: str
    canonical_url: str
    source: str
    via: str
    discovered: str
    feed_title: str | None = None
    published: str | None = None


def queued(
    es: Elasticsearch,
    names: IndexNames,
    *,
    limit: int,
    sources: Sequence[str] | None = None,
    expired_before: datetime | None = None,
    held_by: str | None = None,
    versions: bool = False,
    fields: Sequence[str] | None = None,
) -> list[dict[str, Any]]:
    """Frontier hits waiting for the crawl, oldest discovery first: pending records of ``sources``.

    With ``expired_before``, also the claims whose lease ended before it (their crawl died);
    with ``held_by``, also the claims that holder still has (a retry of a crawl that died).
    ``versions`` reads each hit's ``_seq_no``/``_primary_term``, for a conditional claim.
    """
    either: list[dict[str, Any]] = [{"term": {"state": "pending"}}]
    if expired_before is not None:
        expired = [
            {"term": {"state": "claimed"}},
            {"range": {"claimed_until": {"lt": expired_before.isoformat()}}},
        ]
        either.append({"bool": {"filter": expired}})
    if held_by is not None:
        held = [{"term": {"state": "claimed"}}, {"term": {"claimed_by": held_by}}]
        either.append({"bool": {"filter": held}})
    filters: list[dict[str, Any]] = [{"bool": {"should": either, "minimum_should_match": 1}}]
    if sources:
        filters.append({"terms": {"source": list(sources)}})
    response = call(
        es,
        lambda: es.search(
            index=names.frontier,
            query={"bool": {"filter": filters}},
            sort=[{"discovered": "asc"}, {"canonical_url": "asc"}],
            size=limit,
            seq_no_primary_term=versions,
            source_includes=list(fields) if fields is not None else None,
        ),
    )
    hits: list[dict[str, Any]] = response["hits"]["hits"]
    return hits


def pending(
    es: Elasticsearch, names: IndexNames, *, source: str | None = None, limit: int = 100
) -> list[PendingUrl]:
    """Up to ``limit`` pending URLs, oldest discovery first; no claiming (the crawl does that)."""
    hits = queued(
        es,
        names,
        limit=limit,
        sources=[source] if source is not None else None,
        fields=[
            "url",
            "canonical_url",
            "source",
            "via",
            "discovered",
            "feed_title",
            "published",
        ],
    )
    return [
        PendingUrl(
            id=hit["_id"],
            url=hit["_source"]["url"],
            canonical_url=hit["_source"]["canonical_url"],
            source=hit["_source"]["source"],
            via=hit["_source"]["via"],
            discovered=hit["_source"]["discovered"],
            feed_title=hit["_source"].get("feed_title"),
            published=hit["_source"].get("published"),
        )
        for hit in hits
    ]


def count(es: Elasticsearch, names: IndexNames, *, source: str | None = None) -> Counter[str]:
    """Frontier records by state (``pending``, ...), for one source or all."""
    query: dict[str, Any] = {"term": {"source": source}} if source else {"match_all": {}}
    response = call(
        es,
        lambda: es.search(
            index=names.frontier,
            query=query,
            size=0,
            aggs={"states": {"terms": {"field": "state", "size": 20}}},
        ),
    )
    buckets = response["aggregations"]["states"]["buckets"]
    return Counter({str(b["key"]): int(b["doc_count"]) for b in buckets})
