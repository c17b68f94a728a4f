"""The batch as matching reads it: each article's story, source and times; each story's sources.

``read_batch`` takes the batch's articles from the articles index; ``story_arrivals`` says, for
each of their stories, which sources carry it and when each first did, over the whole index
(not only this batch): what ``min_sources`` and breaking-story rules count.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from elasticsearch import Elasticsearch

from pipeline.alerts.reads import parse_time
from pipeline.store.client import IndexNames, call

__all__ = ["BatchArticle", "read_batch", "story_arrivals"]

# Stories per aggregation: their source buckets stay far below search.max_buckets (65 536).
_STORIES_PER_SEARCH: Final = 200
_MAX_SOURCES: Final = 500


@dataclass(frozen=True, slots=True)
class BatchArticle:
    """One article of the batch: its story (its own id until placed) and what matching needs."""

    id: str
    story: str
    has_story: bool
    source: str
    language: str
    fetched: datetime | None
    order: tuple[str, str]


def read_batch(es: Elasticsearch, names: IndexNames, ids: Sequence[str]) -> dict[str, BatchArticle]:
    """The batch's articles that are in the index, by id (real-time reads)."""
    found: dict[str, BatchArticle] = {}
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        response = call(
            es,
            es.mget,
            index=names.articles,
            ids=chunk,
            source_includes=["story_id", "source", "language", "fetched", "indexed", "published"],
        )
        for doc in response["docs"]:
            if not doc.get("found"):
                continue
            source = doc["_source"]
            story = source.get("story_id")
            # An article that the story stage has not placed yet is a story of its own.
            found[doc["_id"]] = BatchArticle(
                id=doc["_id"],
                story=str(story or doc["_id"]),
                has_story=bool(story),
                source=str(source.get("source") or ""),
                language=str(source.get("language") or ""),
                fetched=parse_time(source.get("fetched")) or parse_time(source.get("indexed")),
                order=(str(source.get("indexed") or ""), str(source.get("published") or "")),
            )
    return found


def story_arrivals(
    es: Elasticsearch, names: IndexNames, stories: Mapping[str, Sequence[BatchArticle]]
) -> dict[str, dict[str, datetime | None]]:
    """Story -> each of its sources -> when that source's first article of it was fetched.

    Over the whole articles index for placed stories; an unplaced one has only its batch
    articles. A source whose articles carry no time maps to None.
    """
    result: dict[str, dict[str, datetime | None]] = {}
    for story, articles in stories.items():
        arrivals: dict[str, datetime | None] = {}
        for article in articles:
            if article.source:
                arrivals[article.source] = _earliest(arrivals.get(article.source), article.fetched)
        result[story] = arrivals
    placed = sorted(story for story, articles in stories.items() if articles[0].has_story)
    for start in range(0, len(placed), _STORIES_PER_SEARCH):
        chunk = placed[start : start + _STORIES_PER_SEARCH]
        response = call(
            es,
            es.search,
            index=names.articles,
            size=0,
            query={"terms": {"story_id": chunk}},
            aggs={
                "stories": {
                    "terms": {"field": "story_id", "size": len(chunk)},
                    "aggs": {
                        "sources": {
                            "terms": {"field": "source", "size": _MAX_SOURCES},
                            "aggs": {"first": {"min": {"field": "fetched"}}},
                        }
                    },
                }
            },
        )
        for bucket in response["aggregations"]["stories"]["buckets"]:
            arrivals = result[bucket["key"]]
            for source in bucket["sources"]["buckets"]:
                first = source["first"].get("value_as_string")
                arrivals[source["key"]] = _earliest(arrivals.get(source["key"]), parse_time(first))
    return result


def _earliest(known: datetime | None, other: datetime | None) -> datetime | None:
    if known is None or other is None:
        return known or other
    return min(known, other)
