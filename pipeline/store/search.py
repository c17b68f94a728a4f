"""Search stage: one query over the standard and the language-analysed article fields."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from elastic_transport import ConnectionTimeout, TransportError
from elasticsearch import ApiError, Elasticsearch

from pipeline.errors import ConfigError, PermanentError
from pipeline.store.client import LANGUAGE_FIELDS, IndexNames, SearchUnavailable, node_url

__all__ = [
    "SearchError",
    "SearchHit",
    "SearchResult",
    "StoryHit",
    "StoryResult",
    "build_query",
    "parse_language",
    "parse_when",
    "query_fields",
    "search",
    "search_stories",
]

# Up to three words every word must match; beyond that three in four, so a stopword kept by
# the standard analyser or one word in an unexpected form does not sink a long query.
MINIMUM_SHOULD_MATCH: Final = "3<75%"
HIGHLIGHT_TAGS: Final = ("<em>", "</em>")
_SOURCE_FIELDS: Final = ("url", "title", "language", "published", "source", "duplicate_of")
# What a story line shows, read from its story document.
_STORY_FIELDS: Final = (
    "title",
    "language",
    "lead",
    "first_seen",
    "last_seen",
    "sources",
    "source_count",
    "languages",
    "language_count",
    "article_count",
    "report_count",
)
# Up to this many distinct stories the cardinality count is exact (Elasticsearch's maximum).
_STORY_COUNT_PRECISION: Final = 40_000
# Newest first among equal scores; an empty query scores everything alike.
_RANKING: Final[list[Any]] = ["_score", {"published": {"order": "desc", "missing": "_last"}}]
_ERRNO: Final = re.compile(r"\[Errno -?\d+\] [^)'\"]+")


class SearchError(PermanentError):
    """The search cannot run as asked (no index yet, a query Elasticsearch refuses)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __str__(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One matching article; ``highlights`` maps ``title``/``text`` to fragments with <em>."""

    id: str
    url: str | None
    title: str | None
    language: str | None
    published: str | None
    source: str | None
    duplicate_of: str | None
    score: float | None
    highlights: dict[str, list[str]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The fields ``newsradar search --json`` promises for each hit."""
        return {
            "id": self.id,
            "url": self.url,
            "title": self.title,
            "language": self.language,
            "published": self.published,
            "source": self.source,
            "duplicate_of": self.duplicate_of,
            "score": self.score,
            "highlights": self.highlights,
        }


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The total number of matches and the best ``size`` of them."""

    total: int
    hits: list[SearchHit]

    def to_json(self) -> dict[str, Any]:
        """What ``newsradar search --json`` prints: the total and each hit."""
        return {"total": self.total, "hits": [hit.to_json() for hit in self.hits]}


@dataclass(frozen=True, slots=True)
class StoryHit:
    """One story among the matching articles: its story document and its best-scoring match.

    ``matched`` counts the story's articles that match the query; ``best`` is the one that
    scored highest, whose score ranks the story. Without a story document yet (it is written
    right after its articles), the fields come from ``best`` alone.
    """

    story_id: str
    title: str | None
    lead: str | None
    first_seen: str | None
    last_seen: str | None
    report_count: int
    article_count: int
    sources: list[str]
    languages: list[str]
    score: float | None
    matched: int
    best: str

    def to_json(self) -> dict[str, Any]:
        """The fields ``newsradar search --stories --json`` prints for each story."""
        return {
            "story_id": self.story_id,
            "title": self.title,
            "lead": self.lead,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "report_count": self.report_count,
            "article_count": self.article_count,
            "source_count": len(self.sources),
            "sources": self.sources,
            "language_count": len(self.languages),
            "languages": self.languages,
            "score": self.score,
            "matched": self.matched,
            "best": self.best,
        }


@dataclass(frozen=True, slots=True)
class StoryResult:
    """The stories the matching articles belong to, best first, and how many there are."""

    total: int  # stories among the matching articles
    articles: int  # matching articles
    stories: list[StoryHit]

    def to_json(self) -> dict[str, Any]:
        """What ``newsradar search --stories --json`` prints."""
        return {
            "total": self.total,
            "articles": self.articles,
            "stories": [story.to_json() for story in self.stories],
        }


def query_fields(language: str | None = None) -> list[str]:
    """Fields searched: the language's own pair (all of them without one), then the standard.

    The language fields stem ("расширения" finds "расширение"); the standard fields catch
    articles whose language was not detected or has no analyser of its own.
    """
    if language is None:
        languages: Sequence[str] = LANGUAGE_FIELDS
    elif language in LANGUAGE_FIELDS:
        languages = (language,)
    else:
        languages = ()
    fields = [f for lang in languages for f in (f"title_{lang}^2", f"text_{lang}")]
    return [*fields, "title^2", "text"]


def build_query(
    query: str,
    *,
    language: str | None = None,
    source: str | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
) -> dict[str, Any]:
    """The bool query ``search`` sends: scored text match, unscored filters."""
    filters: list[dict[str, Any]] = []
    if language is not None:
        filters.append({"term": {"language": language}})
    if source is not None:
        filters.append({"term": {"source": source}})
    published: dict[str, str] = {}
    if since is not None:
        published["gte"] = since.isoformat()
    if until is not None:
        # A bare date means the whole of that day: round up to its last millisecond.
        published["lte"] = (
            until.isoformat() if isinstance(until, datetime) else f"{until.isoformat()}||/d"
        )
    if published:
        filters.append({"range": {"published": published}})
    must: dict[str, Any]
    if query.strip():
        must = {
            "simple_query_string": {
                "query": query,
                "fields": query_fields(language),
                "default_operator": "or",
                "minimum_should_match": MINIMUM_SHOULD_MATCH,
            }
        }
    else:
        must = {"match_all": {}}
    return {"bool": {"must": [must], "filter": filters}}


def search(
    es: Elasticsearch,
    names: IndexNames,
    query: str,
    *,
    language: str | None = None,
    source: str | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    size: int = 20,
) -> SearchResult:
    """Articles matching ``query``, best first, with highlighted fragments.

    The query takes the simple_query_string syntax: ``"a phrase"``, ``-excluded``,
    ``either | or``, ``prefix*``. An empty query lists the newest articles.
    """
    _check_size(size)
    body_query = build_query(query, language=language, source=source, since=since, until=until)
    highlighted = [f for lang in LANGUAGE_FIELDS for f in (f"title_{lang}", f"text_{lang}")]
    response = _run(
        es,
        names.articles,
        query=body_query,
        size=size,
        sort=_RANKING,
        track_scores=True,
        track_total_hits=True,
        source_includes=list(_SOURCE_FIELDS),
        highlight={
            "pre_tags": [HIGHLIGHT_TAGS[0]],
            "post_tags": [HIGHLIGHT_TAGS[1]],
            # Fragments are article text: escape it, so only our <em> tags are markup.
            "encoder": "html",
            "fragment_size": 160,
            "number_of_fragments": 3,
            "no_match_size": 0,
            "fields": {name: {} for name in ["title", "text", *highlighted]},
        },
    )
    hits = [_hit(raw) for raw in response["hits"]["hits"]]
    return SearchResult(total=int(response["hits"]["total"]["value"]), hits=hits)


def search_stories(
    es: Elasticsearch,
    names: IndexNames,
    query: str,
    *,
    language: str | None = None,
    source: str | None = None,
    since: date | datetime | None = None,
    until: date | datetime | None = None,
    size: int = 20,
) -> StoryResult:
    """The stories of the articles matching ``query``, ranked by their best-scoring article.

    The query and filters are ``search``'s and select articles; each story then shows whole,
    as its story document has it (all its sources and languages, not only the matching ones).
    Articles without a story yet (their worker is still deciding) are left out.
    """
    _check_size(size)
    body_query = build_query(query, language=language, source=source, since=since, until=until)
    body_query["bool"]["filter"].append({"exists": {"field": "story_id"}})
    # One hit per story (the best by the ranking of ``search``), each with its match count.
    response = _run(
        es,
        names.articles,
        query=body_query,
        size=size,
        sort=_RANKING,
        track_scores=True,
        track_total_hits=True,
        source_includes=[*_SOURCE_FIELDS, "story_id"],
        collapse={
            "field": "story_id",
            "inner_hits": {"name": "matched", "size": 0},
        },
        aggregations={
            "stories": {
                "cardinality": {
                    "field": "story_id",
                    "precision_threshold": _STORY_COUNT_PRECISION,
                }
            }
        },
    )
    raw_hits = response["hits"]["hits"]
    documents = _story_documents(es, names, [str(h["_source"]["story_id"]) for h in raw_hits])
    stories = [_story(raw, documents.get(str(raw["_source"]["story_id"]))) for raw in raw_hits]
    return StoryResult(
        total=int(response["aggregations"]["stories"]["value"]),
        articles=int(response["hits"]["total"]["value"]),
        stories=stories,
    )


def _check_size(size: int) -> None:
    if not 0 < size <= 10_000:
        raise SearchError(f"size must be between 1 and 10000, not {size}")


def _run(es: Elasticsearch, index: str, **body: Any) -> Any:
    """One search on ``index``; failures become SearchUnavailable (retry) or SearchError."""
    try:
        return es.search(index=index, **body)
    except ConnectionTimeout as exc:
        raise SearchUnavailable(node_url(es), "timed out") from exc
    except TransportError as exc:
        raise SearchUnavailable(node_url(es), _describe(exc)) from exc
    except ApiError as exc:
        if exc.status_code >= 500 or exc.status_code == 429:
            raise SearchUnavailable(node_url(es), str(exc)) from exc
        if exc.status_code == 404:
            raise SearchError(
                f"no index {index} at {node_url(es)}: run `newsradar init` first"
            ) from exc
        raise SearchError(f"Elasticsearch refused the search: {exc}") from exc


def _story_documents(
    es: Elasticsearch, names: IndexNames, story_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The story documents of ``story_ids`` that exist, by id."""
    if not story_ids:
        return {}
    # A search, not an mget: the alias may front several indices.
    response = _run(
        es,
        names.stories,
        query={"ids": {"values": list(story_ids)}},
        size=len(story_ids),
        source_includes=list(_STORY_FIELDS),
    )
    return {str(hit["_id"]): hit.get("_source") or {} for hit in response["hits"]["hits"]}


def _story(raw: dict[str, Any], document: dict[str, Any] | None) -> StoryHit:
    best = _hit(raw)
    matched = int(raw["inner_hits"]["matched"]["hits"]["total"]["value"])
    story_id = str(raw["_source"]["story_id"])
    if document is None:
        return StoryHit(
            story_id=story_id,
            title=best.title,
            lead=story_id,
            first_seen=None,
            last_seen=None,
            report_count=1 if best.duplicate_of is None else 0,
            article_count=matched,
            sources=[best.source] if best.source else [],
            languages=[best.language] if best.language else [],
            score=best.score,
            matched=matched,
            best=best.id,
        )
    return StoryHit(
        story_id=story_id,
        title=document.get("title"),
        lead=document.get("lead"),
        first_seen=document.get("first_seen"),
        last_seen=document.get("last_seen"),
        report_count=int(document.get("report_count") or 0),
        article_count=int(document.get("article_count") or 0),
        sources=list(document.get("sources") or []),
        languages=list(document.get("languages") or []),
        score=best.score,
        matched=matched,
        best=best.id,
    )


def _hit(raw: dict[str, Any]) -> SearchHit:
    doc: dict[str, Any] = raw.get("_source") or {}
    return SearchHit(
        id=str(raw["_id"]),
        url=doc.get("url"),
        title=doc.get("title"),
        language=doc.get("language"),
        published=doc.get("published"),
        source=doc.get("source"),
        duplicate_of=doc.get("duplicate_of"),
        score=raw.get("_score"),
        highlights=_merge_highlights(raw.get("highlight") or {}),
    )


def _merge_highlights(highlight: dict[str, list[str]]) -> dict[str, list[str]]:
    """One list per base field: the variant (``text`` or ``text_ru``) that marks most words.

    The language field usually wins, since its analyser also marks inflected forms.
    """
    best: dict[str, list[str]] = {}
    for name, fragments in highlight.items():
        base = name.split("_", 1)[0]
        current = best.get(base)
        if current is None or _marks(fragments) > _marks(current):
            best[base] = list(fragments)
    return {base: best[base] for base in ("title", "text") if base in best}


def _marks(fragments: list[str]) -> int:
    return sum(fragment.count(HIGHLIGHT_TAGS[0]) for fragment in fragments)


# --- the command line ---------------------------------------------------------------------


def parse_when(value: str, option: str) -> date | datetime:
    """``2024-05-01`` (a whole day) or an ISO date-time; a ConfigError names the option."""
    try:
        if "T" in value or " " in value.strip():
            return datetime.fromisoformat(value.strip())
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ConfigError(
            "command line", option, f"{value!r} is not a date like 2024-05-01 or 2024-05-01T12:00Z"
        ) from None


def parse_language(value: str) -> str:
    """A two-letter language code, lower-cased."""
    code = value.strip().lower()
    if not re.fullmatch(r"[a-z]{2}", code):
        raise ConfigError("command line", "--lang", f"{value!r} is not a two-letter language code")
    return code


def _describe(exc: TransportError) -> str:
    """The root cause of a connection failure, e.g. ``[Errno 111] Connection refused``."""
    match = _ERRNO.search(str(exc))
    return match.group(0).strip() if match else str(exc.message)
