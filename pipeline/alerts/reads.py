"""Reading the alerts indices: paged scans and real-time gets that keep each document's version.

The rules and outbox indices are written with conditional updates (``_seq_no`` and
``_primary_term``), so every read here hands those back with the document. Dates are stored as
ISO 8601 with milliseconds, what an Elasticsearch date keeps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from elasticsearch import Elasticsearch

from pipeline.normalise.dates import as_utc
from pipeline.store.client import call

__all__ = ["ROUNDS", "Hit", "iso", "mget", "parse_time", "scan"]

# Conditional updates that lose a race are re-read and redone this many times.
ROUNDS: Final = 5


def iso(moment: datetime) -> str:
    """``moment`` as the alerts indices store it: UTC, ISO 8601, milliseconds, ``Z``."""
    # Milliseconds: what an Elasticsearch date keeps, so a value read back compares equal.
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: object) -> datetime | None:
    """A stored date read back in UTC; None when absent or not a date."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Hit:
    """One stored document with the version a conditional update must name."""

    id: str
    source: dict[str, Any]
    seq_no: int
    primary_term: int


def scan(
    es: Elasticsearch,
    index: str,
    query: dict[str, Any],
    *,
    sort: Sequence[str] = ("_doc",),
    limit: int = 10_000,
) -> list[Hit]:
    """Up to ``limit`` hits of ``query``, with their versions, paging with search_after."""
    hits: list[Hit] = []
    after: list[Any] | None = None
    # _doc breaks ties: the outbox and rules indices have one shard, so it is unique there.
    sort_spec = [*sort, "_doc"] if "_doc" not in sort else list(sort)
    while len(hits) < limit:
        size = min(1000, limit - len(hits))
        kwargs: dict[str, Any] = {}
        if after is not None:
            kwargs["search_after"] = after
        response = call(
            es,
            es.search,
            index=index,
            query=query,
            sort=sort_spec,
            size=size,
            seq_no_primary_term=True,
            track_total_hits=False,
            **kwargs,
        )
        page = response["hits"]["hits"]
        for hit in page:
            hits.append(
                Hit(hit["_id"], hit["_source"], int(hit["_seq_no"]), int(hit["_primary_term"]))
            )
        if len(page) < size:
            break
        after = page[-1]["sort"]
    return hits


def mget(es: Elasticsearch, index: str, ids: Sequence[str]) -> dict[str, Hit]:
    """The documents that exist among ``ids``, read in real time (no refresh needed)."""
    found: dict[str, Hit] = {}
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        response = call(es, es.mget, index=index, ids=chunk)
        for doc in response["docs"]:
            if doc.get("found"):
                found[doc["_id"]] = Hit(
                    doc["_id"], doc["_source"], int(doc["_seq_no"]), int(doc["_primary_term"])
                )
    return found
