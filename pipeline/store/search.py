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
    "build_query",
    "parse_language",
    "parse_when",
    "query_fields",
    "search",
]

# Up to three words every word must match; beyond that three in four, so a stopword kept by
# the standard analyser or one word in an unexpected form does not sink a long query.
MINIMUM_SHOULD_MATCH: Final = "3<75%"
HIGHLIGHT_TAGS: Final = ("<em>", "</em>")
_SOURCE_FIELDS: Final = ("url", "title", "language", "published", "source", "duplicate_of")
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
    if not 0 < size <= 10_000:
        raise SearchError(f"size must be between 1 and 10000, not {size}")
    body_query = build_query(query, language=language, source=source, since=since, until=until)
    # Newest first among equal scores; an empty query scores everything alike.
    sort: list[Any] = ["_score", {"published": {"order": "desc", "missing": "_last"}}]
    highlighted = [f for lang in LANGUAGE_FIELDS for f in (f"title_{lang}", f"text_{lang}")]
    try:
        response = es.search(
            index=names.articles,
            query=body_query,
            size=size,
            sort=sort,
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
    except ConnectionTimeout as exc:
        raise SearchUnavailable(node_url(es), "timed out") from exc
    except TransportError as exc:
        raise SearchUnavailable(node_url(es), _describe(exc)) from exc
    except ApiError as exc:
        if exc.status_code >= 500 or exc.status_code == 429:
            raise SearchUnavailable(node_url(es), str(exc)) from exc
        if exc.status_code == 404:
            raise SearchError(
                f"no index {names.articles} at {node_url(es)}: run `newsradar init` first"
            ) from exc
        raise SearchError(f"Elasticsearch refused the search: {exc}") from exc
    hits = [_hit(raw) for raw in response["hits"]["hits"]]
    return SearchResult(total=int(response["hits"]["total"]["value"]), hits=hits)


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
