"""Why an article is in its story: its stored verdict, the evidence for it, the near misses.

The candidates are found the way ingestion finds them (``pipeline.store.story_events``): the
stored articles sharing enough names, numbers and dates within the window, compared with
``pipeline.normalise.events.compare`` under the thresholds the settings give. Nothing is
written; the answer describes the stored state and the evidence as it reads now.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final

from elasticsearch import ApiError

from pipeline.errors import PermanentError
from pipeline.normalise.events import DEFAULT_EVENT_CONFIG, EventConfig, Evidence
from pipeline.normalise.fingerprint import DEFAULT_CONFIG
from pipeline.store.client import IndexNames, call, node_url
from pipeline.store.search import SearchError
from pipeline.store.story_events import EventMatcher
from pipeline.store.story_state import Batch, Stored

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

__all__ = [
    "ArticleNotFound",
    "ArticleSummary",
    "Candidate",
    "Explanation",
    "StorySummary",
    "explain",
]

# What the explanation shows of an article besides its story fields.
_SHOWN_FIELDS: Final = ["title", "source", "language", "published", "fetched", "url", "story_id"]
_STORY_FIELDS: Final = ["title", "article_count", "report_count", "sources", "languages"]
# How each stored relation reads in a sentence.
_RELATION: Final[Mapping[str, str]] = {
    "new": "first",
    "exact_text": "copy",
    "near": "copy",
    "same_event": "same_event",
}


class ArticleNotFound(PermanentError):
    """No article with this id is stored under the prefix."""

    def __init__(self, article_id: str, index: str) -> None:
        super().__init__(article_id, index)
        self.article_id = article_id
        self.index = index

    def __str__(self) -> str:
        return f"no article {self.article_id!r} in {self.index}"


@dataclass(frozen=True, slots=True)
class ArticleSummary:
    """An article as the explanation names it."""

    id: str
    title: str | None
    source: str | None
    language: str | None
    published: str | None
    fetched: str | None
    url: str | None
    story_id: str | None


@dataclass(frozen=True, slots=True)
class StorySummary:
    """The story document of the article's story, in brief."""

    story_id: str
    title: str | None
    article_count: int
    report_count: int
    sources: list[str]
    languages: list[str]


@dataclass(frozen=True, slots=True)
class Candidate:
    """Another report of a possibly same event, and why it is not the one joined through.

    ``evidence`` is None when either side has no signature or publication time;
    ``threshold`` is the one that applies to the pair (within one language or across two).
    """

    article: ArticleSummary
    relation: str | None  # its own story relation; None while undecided
    same_story: bool
    evidence: Evidence | None
    threshold: float | None
    reason: str


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why ``article`` is in its story.

    ``relation``: ``first`` (a story of its own, or the first of one), ``copy``,
    ``same_event``, or ``undecided`` (its worker has not settled it yet). ``through`` is the
    earlier article it joined through (``duplicate_of`` or ``related_to``), with
    ``evidence`` comparing the two; ``similarity`` is the copy's Jaccard estimate or the stored
    event score. ``candidates`` are the best-scoring other reports found (of ``compared``).
    """

    article: ArticleSummary
    relation: str
    summary: str
    story: StorySummary | None
    through: ArticleSummary | None
    duplicate_kind: str | None
    similarity: float | None
    evidence: Evidence | None
    threshold: float | None
    config: EventConfig
    candidates: list[Candidate]
    compared: int

    def to_json(self) -> dict[str, Any]:
        """What ``newsradar stories explain --json`` prints."""
        return asdict(self)


def explain(
    es: Elasticsearch,
    names: IndexNames,
    article_id: str,
    *,
    events: EventConfig = DEFAULT_EVENT_CONFIG,
    limit: int = 5,
) -> Explanation:
    """Explain the story of ``article_id``; at most ``limit`` other candidates.

    Raises ArticleNotFound for an unknown id, SearchError when the indices are missing,
    SearchUnavailable when Elasticsearch cannot be reached or fails.
    """
    try:
        return call(es, _explain, es, names, article_id, events, limit)
    except ApiError as exc:
        if exc.status_code == 404:
            raise SearchError(
                f"no index {names.articles} at {node_url(es)}: run `newsradar init` first"
            ) from exc
        raise SearchError(f"Elasticsearch refused the lookup: {exc}") from exc


def _explain(
    es: Elasticsearch, names: IndexNames, article_id: str, events: EventConfig, limit: int
) -> Explanation:
    # A batch reads documents with the fields, versions and signatures ingestion reads.
    batch = Batch(es, names, DEFAULT_CONFIG, events)
    if article_id not in batch.find([article_id]):
        raise ArticleNotFound(article_id, names.articles)
    me = batch.known[article_id]
    matcher = EventMatcher(batch)
    matcher.lookup([article_id])
    found = matcher.candidates[article_id]
    verdict = me.verdict
    through_id = verdict.match if verdict is not None else None
    if through_id is not None and through_id not in batch.known:
        batch.find([through_id])
    through = batch.known.get(through_id) if through_id is not None else None
    evidence = matcher.evidence(me, through) if through is not None else None
    chosen = (through.id, evidence.score) if through is not None and evidence else None
    others = [(c, matcher.evidence(me, batch.known[c])) for c in found if c != through_id]
    # Best score first; pairs that could not be compared last.
    others.sort(key=lambda pair: (-(pair[1].score if pair[1] else -1.0), pair[0]))
    best = others[:limit]
    shown = _summaries(batch, [article_id, *([through_id] if through_id else [])])
    shown |= _summaries(batch, [ident for ident, _ in best])
    candidates = [
        _candidate(me, batch.known[ident], found_evidence, chosen, shown, events)
        for ident, found_evidence in best
    ]
    story = _story(batch, verdict.story_id) if verdict is not None else None
    relation = _RELATION[verdict.kind] if verdict is not None else "undecided"
    copy = verdict is not None and verdict.kind in ("exact_text", "near")
    return Explanation(
        article=shown.get(article_id) or _blank(article_id),
        relation=relation,
        summary=_summary(me, relation, story, through_id, evidence, events, len(found)),
        story=story,
        through=(shown.get(through_id) or _blank(through_id)) if through_id else None,
        duplicate_kind=verdict.kind if verdict is not None and copy else None,
        similarity=verdict.similarity if verdict is not None else None,
        evidence=evidence,
        threshold=_threshold(evidence, events),
        config=events,
        candidates=candidates,
        compared=len(others),
    )


def _candidate(
    me: Stored,
    other: Stored,
    evidence: Evidence | None,
    chosen: tuple[str, float] | None,
    shown: Mapping[str, ArticleSummary],
    events: EventConfig,
) -> Candidate:
    mine, theirs = me.verdict, other.verdict
    return Candidate(
        article=shown.get(other.id) or _blank(other.id),
        relation=_RELATION[theirs.kind] if theirs is not None else None,
        same_story=mine is not None and theirs is not None and mine.story_id == theirs.story_id,
        evidence=evidence,
        threshold=_threshold(evidence, events),
        reason=_reason(me, other, evidence, chosen),
    )


def _blank(article_id: str) -> ArticleSummary:
    """An article named by a verdict but not stored (any more)."""
    return ArticleSummary(article_id, None, None, None, None, None, None, None)


def _reason(
    me: Stored, other: Stored, evidence: Evidence | None, chosen: tuple[str, float] | None
) -> str:
    """Why ``other`` is not what ``me`` joined through, in one clause."""
    theirs = other.verdict
    if theirs is not None and theirs.match == me.id:
        how = "copies it" if theirs.kind in ("exact_text", "near") else "joined through it"
        return f"a later article that {how}"
    if evidence is None:
        return "no event evidence to compare (a signature or publication time is missing)"
    if not evidence.joined:
        return evidence.reason
    if not other.key < me.key:
        return f"{evidence.reason}, but it comes later: a report joins an earlier one"
    if me.verdict is not None and me.verdict.kind in ("exact_text", "near"):
        return f"{evidence.reason}, but a copy follows its original into its story"
    if chosen is not None:
        if evidence.score == chosen[1]:
            return f"{evidence.reason}, the same score as {chosen[0]}, whose id sorts first"
        return f"{evidence.reason}, below {chosen[1]:.3f} of {chosen[0]}"
    return f"{evidence.reason}: it would join now; the stored verdict was reached before it"


def _threshold(evidence: Evidence | None, events: EventConfig) -> float | None:
    if evidence is None:
        return None
    return events.threshold if evidence.same_language else events.cross_threshold


def _summary(
    me: Stored,
    relation: str,
    story: StorySummary | None,
    through_id: str | None,
    evidence: Evidence | None,
    events: EventConfig,
    found: int,
) -> str:
    """One sentence: why the article is where it is."""
    verdict = me.verdict
    if verdict is None:
        return "no story decided yet: the next ingestion that meets it decides"
    if relation == "copy":
        kind = "an exact" if verdict.kind == "exact_text" else "a near"
        return f"{kind} copy of {through_id}: a copy joins the story of its original"
    if relation == "same_event":
        languages = "in one language" if evidence and evidence.same_language else "across languages"
        score = f"score {verdict.similarity:.3f}" if verdict.similarity is not None else "a score"
        return f"a report of the same event as {through_id} ({score}, {languages})"
    later = (story.article_count - 1) if story is not None else 0
    joined = f"{later} later article joined" if later == 1 else f"{later} later articles joined"
    head = f"the first of its story: {joined}" if later > 0 else ""
    if not events.enabled:
        why = "same-event joining is off, so only a copy would join it"
    elif not found:
        why = (
            f"no other article within {events.window_hours:g} h shares "
            f"{events.min_shared} names, numbers or dates with it"
        )
    else:
        why = (
            f"none of the {found} articles sharing its names, numbers or dates is an earlier match"
        )
    return f"{head}; {why}" if head else f"a story of its own: {why}"


def _summaries(batch: Batch, ids: Sequence[str]) -> dict[str, ArticleSummary]:
    """Title, source and the rest of ``ids``, read in one search (the alias may front several)."""
    if not ids:
        return {}
    response = batch.es.search(
        index=batch.names.articles,
        query={"ids": {"values": list(dict.fromkeys(ids))}},
        size=len(ids),
        source_includes=_SHOWN_FIELDS,
    )
    shown: dict[str, ArticleSummary] = {}
    for hit in response["hits"]["hits"]:
        doc: Mapping[str, Any] = hit.get("_source") or {}
        shown[str(hit["_id"])] = ArticleSummary(
            id=str(hit["_id"]), **{name: doc.get(name) for name in _SHOWN_FIELDS}
        )
    return shown


def _story(batch: Batch, story_id: str) -> StorySummary | None:
    response = batch.es.search(
        index=batch.names.stories,
        query={"ids": {"values": [story_id]}},
        size=1,
        source_includes=_STORY_FIELDS,
    )
    hits = response["hits"]["hits"]
    if not hits:
        return None  # written right after the articles: not yet, or its writer gave up
    doc: Mapping[str, Any] = hits[0].get("_source") or {}
    return StorySummary(
        story_id=story_id,
        title=doc.get("title"),
        article_count=int(doc.get("article_count") or 0),
        report_count=int(doc.get("report_count") or 0),
        sources=list(doc.get("sources") or []),
        languages=list(doc.get("languages") or []),
    )
