"""Story documents: one per story, rebuilt from its articles, never patched.

Read the document (and its ``_seq_no``), refresh, query its articles, and write with
create-if-absent or ``if_seq_no``, retrying conflicts: the last successful write read the
articles after every earlier write, so it is complete. A story whose articles all moved to an
earlier one stays, empty, with ``merged_into``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipeline.store.articles import iso_utc, parse_iso_utc
from pipeline.store.story_state import (
    EPOCH,
    MAX_ATTEMPTS,
    MAX_HITS,
    WHOLE,
    Batch,
    chunks,
)

__all__ = ["MAX_STORY_ARTICLES", "write_stories"]

log = logging.getLogger(__name__)

# Article ids listed in a story document (counts and sources are exact beyond it).
MAX_STORY_ARTICLES: Final = 1000
_MEMBER_FIELDS: Final = ["story_id", "fetched", "source", "title", "language", "duplicate_of"]


def write_stories(batch: Batch) -> None:
    """Rebuild the story documents this batch touched from their articles."""
    pending = sorted(batch.stories)
    for _ in range(MAX_ATTEMPTS):
        if not pending:
            return
        pending = _write_story_documents(batch, pending)
    log.warning("gave up on %d story documents after %d conflicts", len(pending), MAX_ATTEMPTS)


def _write_story_documents(batch: Batch, story_ids: Sequence[str]) -> list[str]:
    alias = batch.names.stories
    conflicts: list[str] = []
    for part in chunks(story_ids, 250):
        # Read the versions before the articles: a write based on them then fails if anyone
        # wrote after this read, and that writer's query saw everything written before it.
        current = {doc["_id"]: doc for doc in batch.mget(index=alias, ids=list(part))}
        batch.refresh()
        members = _members_together(batch, part) or _members_each(batch, part)
        # For merged_into: where the first article of each story left empty now belongs.
        batch.find([i for i in part if i in current and not members[i].count])
        operations: list[Mapping[str, Any]] = []
        written: list[str] = []
        for story_id in part:
            old = current.get(story_id)
            document = _story_document(batch, story_id, members[story_id], old)
            if document is None:
                continue
            if old is None:
                operations.append({"create": {"_index": alias, "_id": story_id}})
            else:
                operations.append(
                    {
                        "index": {
                            "_index": old["_index"],
                            "_id": story_id,
                            "if_seq_no": old["_seq_no"],
                            "if_primary_term": old["_primary_term"],
                        }
                    }
                )
            operations.append(document)
            written.append(story_id)
        if not operations:
            continue
        response = batch.es.bulk(operations=operations)
        for story_id, item in zip(written, response["items"], strict=True):
            result = next(iter(item.values()))
            if result["status"] == 409:
                conflicts.append(story_id)
            elif result["status"] >= 300:
                raise batch.refused(alias, story_id, result)
    return conflicts


def _members_together(batch: Batch, story_ids: Sequence[str]) -> dict[str, _Members] | None:
    """The stories' articles from one search, or None when there are too many for one."""
    response = batch.es.search(
        index=batch.names.articles,
        allow_partial_search_results=False,
        query={"terms": {"story_id": list(story_ids)}},
        size=MAX_HITS,
        sort=[{"fetched": "asc"}],
        source_includes=_MEMBER_FIELDS,
        track_total_hits=MAX_HITS + 1,
    )
    hits = response["hits"]["hits"]
    if response["hits"]["total"]["value"] > len(hits):
        return None
    grouped: dict[str, list[Mapping[str, Any]]] = {i: [] for i in story_ids}
    for hit in hits:
        grouped[hit["_source"]["story_id"]].append(hit)
    members: dict[str, _Members] = {}
    for story_id, group in grouped.items():
        times = [h["_source"]["fetched"] for h in group if "fetched" in h["_source"]]
        members[story_id] = _Members(
            hits=group,
            count=len(group),
            sources=sorted({h["_source"]["source"] for h in group if "source" in h["_source"]}),
            first_seen=min(times, key=parse_iso_utc) if times else None,
            last_seen=max(times, key=parse_iso_utc) if times else None,
            languages=sorted(
                {h["_source"]["language"] for h in group if h["_source"].get("language")}
            ),
            reports=sum(1 for h in group if not h["_source"].get("duplicate_of")),
        )
    return members


def _members_each(batch: Batch, story_ids: Sequence[str]) -> dict[str, _Members]:
    """One search per story, counting with aggregations past MAX_STORY_ARTICLES."""
    searches: list[Mapping[str, Any]] = []
    for story_id in story_ids:
        searches += [
            WHOLE,
            {
                "query": {"term": {"story_id": story_id}},
                "size": MAX_STORY_ARTICLES,
                "sort": [{"fetched": "asc"}],
                "_source": _MEMBER_FIELDS,
                "track_total_hits": True,
                "aggs": {
                    "sources": {"terms": {"field": "source", "size": 10_000}},
                    "languages": {"terms": {"field": "language", "size": 200}},
                    "reports": {"missing": {"field": "duplicate_of"}},
                    "first": {"min": {"field": "fetched"}},
                    "last": {"max": {"field": "fetched"}},
                },
            },
        ]
    results = batch.es.msearch(index=batch.names.articles, searches=searches)["responses"]
    members: dict[str, _Members] = {}
    for story_id, result in zip(story_ids, results, strict=True):
        if "error" in result:
            raise batch.refused(batch.names.articles, story_id, result)
        aggs = result["aggregations"]
        members[story_id] = _Members(
            hits=result["hits"]["hits"],
            count=int(result["hits"]["total"]["value"]),
            sources=sorted(bucket["key"] for bucket in aggs["sources"]["buckets"]),
            first_seen=aggs["first"].get("value_as_string"),
            last_seen=aggs["last"].get("value_as_string"),
            languages=sorted(bucket["key"] for bucket in aggs["languages"]["buckets"]),
            reports=int(aggs["reports"]["doc_count"]),
        )
    return members


def _story_document(
    batch: Batch, story_id: str, members: _Members, old: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    previous: Mapping[str, Any] = old["_source"] if old is not None else {}
    if not members.count:
        if old is None:
            return None  # never written, now empty: nothing to record
        root = batch.known.get(story_id)
        merged = root.verdict.story_id if root is not None and root.verdict else None
        return {
            **previous,
            "story_id": story_id,
            "sources": [],
            "articles": [],
            "article_count": 0,
            "source_count": 0,
            "languages": [],
            "language_count": 0,
            "report_count": 0,
            "merged_into": merged if merged != story_id else None,
        }
    hits = members.hits
    first = next((h for h in hits if h["_id"] == story_id), hits[0])
    ordered = sorted(hits, key=lambda h: (_time_of(h), h["_id"]))
    return {
        "story_id": story_id,
        "title": first["_source"].get("title", previous.get("title")),
        "language": first["_source"].get("language", previous.get("language")),
        "first_seen": _normalised_time(members.first_seen),
        "last_seen": _normalised_time(members.last_seen),
        "sources": members.sources,
        "articles": [h["_id"] for h in ordered[:MAX_STORY_ARTICLES]],
        "article_count": members.count,
        "source_count": len(members.sources),
        "languages": members.languages,
        "language_count": len(members.languages),
        # Independently written reports: the articles that copy no other.
        "report_count": members.reports,
        "lead": first["_id"],
        "merged_into": None,
    }


@dataclass(frozen=True, slots=True)
class _Members:
    """What a story document says about its articles, read from the articles index."""

    hits: list[Mapping[str, Any]]  # earliest first; at most MAX_STORY_ARTICLES when counted
    count: int
    sources: list[str]
    first_seen: str | None
    last_seen: str | None
    languages: list[str]
    reports: int


def _time_of(hit: Mapping[str, Any]) -> datetime:
    fetched = hit["_source"].get("fetched")
    return parse_iso_utc(fetched) if fetched else EPOCH


def _normalised_time(value: str | None) -> str | None:
    return iso_utc(parse_iso_utc(value)) if value else None
