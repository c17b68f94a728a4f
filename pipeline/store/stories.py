"""Stories: copies and independently written reports of one event, across workers and restarts.

A story is one happening as the press told it: the copies of a report (exact and near
duplicates) and the other reports of the same event, in any language. Every article document
ends up with ``story_id`` (the id of its story's first article) and ``story_relation``: ``first``,
``copy`` (with ``duplicate_of``, the earlier article it copies best, ``duplicate_kind``,
``exact_text`` or ``near``, and ``similarity``) or ``same_event`` (with ``related_to``, the
earlier report it compares best with, and ``event_score``; ``pipeline.normalise.events``). An
article whose canonical URL is stored already is the same document (its ``_id`` hashes that
URL): it is reported as ``exact_url`` and nothing changes. The stories index holds one document
per story, rebuilt from its articles.

What the answer is. Articles are ordered by the key (published, fetched, id): the first of a
story is the earliest published (articles of one call share ``fetched``; the id decides last).
An article's match is the best of the *earlier* articles sharing a band key or its content hash
that are exact or pass the Jaccard threshold, as ``pipeline.normalise.fingerprint.classify``
ranks them; without one, the earlier report of the same event it compares best with
(``pipeline.store.story_events``). Its story is its match's story, or its own id when nothing
earlier matches. This depends only on the stored articles and their times, never on which
worker saw what first, so two workers (or one after a restart) arrive at the same stories as
one process would.

How workers agree without locks or scripts:

1. Write first, then look. A batch is created (``op_type=create``), the index refreshed, and
   only then its candidates are looked up: one search, with per article a terms query on its
   band keys or its content hash, named after the article, and one weighted-terms search per
   article on its event keys (symmetric: a shared-keys condition). Of two copies written
   concurrently, the one whose write finished last refreshes after the other's write, so at
   least one of the two sees the other.
2. Whoever sees a pair settles it. A worker proposes a verdict for its own articles and, for
   later-ordered articles it finds among its candidates, proposes itself as their match. An
   earlier article it finds undecided (its worker is still busy, or died) it resolves itself.
3. Proposals only ever improve. The match fields of a document are a "best so far" register,
   written with ``if_seq_no``/``if_primary_term``; on a conflict the worker re-reads it and
   writes only if its proposal ranks higher. Whatever the interleaving, the register ends at
   the best earlier match, because every such match was proposed by at least one worker (1).
4. Stories follow matches. A copy's (or report's) ``story_id`` is copied from its match, so
   after writing, the worker re-reads the matches (realtime get) and corrects copies whose
   match's story has changed; when it changes the story of an article that had one, it
   refreshes and moves the article's copies and reports (a terms query on ``duplicate_of`` and
   ``related_to``) too. Write-then-read again: either the copy's writer sees the new story or
   the mover finds the copy. The move's write flags the article (``story_moved_from``) until
   its copies have followed, so a move cut short by a killed worker or a lost node is finished
   by the next batch of any worker.
5. Story documents are rebuilt, not patched: read the document (and its ``_seq_no``), refresh,
   query its articles, and write with create-if-absent or ``if_seq_no``, retrying conflicts.
   The last successful write read the articles after every earlier write, so it is complete.
   A story whose articles all moved to an earlier one stays, empty, with ``merged_into``.

An article written but never decided (its worker died before step 3) is decided by the next
worker that meets it: a re-ingest of the same URL, or a later copy whose best match it is.
The decisions ``ingest`` returns are the stored state when it returns; a worker settling a
pair later (2) may still move an article into an earlier story.

The steps live in sibling modules: ``story_state`` (what a batch has read and written),
``story_match`` (candidates and verdicts, 1 and 2), ``story_verdicts`` (their writes, 3 and 4)
and ``story_documents`` (5); this module creates the documents and runs the steps in order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from pipeline.errors import ConfigError
from pipeline.normalise.events import DEFAULT_EVENT_CONFIG, EventConfig
from pipeline.normalise.fingerprint import DEFAULT_CONFIG, DedupConfig
from pipeline.settings import Settings
from pipeline.store.articles import article_document, event_of, iso_utc, parse_iso_utc
from pipeline.store.client import IndexNames, call
from pipeline.store.story_documents import write_stories
from pipeline.store.story_match import Matcher
from pipeline.store.story_state import (
    SOURCE_FIELDS,
    Batch,
    Stored,
    StoryWriteRejected,
    Verdict,
    better,
    chunks,
    stored_of,
)
from pipeline.store.story_verdicts import propose, settle

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    # Only a type here: importing pipeline.normalise.page pulls in the extractor (trafilatura).
    from pipeline.normalise.page import NormalisedArticle

__all__ = [
    "MAX_BATCH",
    "Kind",
    "StoryDecision",
    "StoryWriteRejected",
    "event_config",
    "ingest",
]

log = logging.getLogger(__name__)

Kind = Literal["new", "exact_url", "exact_text", "near", "same_event"]

# Articles handled per round of requests; a longer input is taken in slices of this size, each
# slice seeing the ones before it.
MAX_BATCH: Final = 500


@dataclass(frozen=True, slots=True)
class StoryDecision:
    """Where one ingested article went: its story, and what it copies when it is a copy.

    ``exact_url``: the URL was stored already (or repeated in the batch); ``duplicate_of`` is
    the article itself and ``story_id`` the stored one. ``same_event``: a report of its own,
    joined to the story of ``related_to`` with the event score as ``similarity``.
    ``similarity`` is None for ``new``.
    """

    article_id: str
    story_id: str
    duplicate_of: str | None
    kind: Kind
    similarity: float | None
    related_to: str | None = None


def event_config(settings: Settings) -> EventConfig:
    """The same-event thresholds the settings give (``NEWSRADAR_STORY_*``)."""
    return EventConfig(
        enabled=settings.story_same_event,
        window_hours=settings.story_window_hours,
        threshold=settings.story_threshold,
        cross_threshold=settings.story_cross_threshold,
        min_shared=settings.story_min_shared,
    )


def ingest(
    es: Elasticsearch,
    names: IndexNames,
    articles: Sequence[NormalisedArticle],
    *,
    fetched: datetime,
    config: DedupConfig = DEFAULT_CONFIG,
    events: EventConfig = DEFAULT_EVENT_CONFIG,
    run_id: str | None = None,
    country: str | None = None,
) -> list[StoryDecision]:
    """Store ``articles`` (fetched at ``fetched``) and assign each to a story; one per input.

    Safe to run in any number of processes at once and to repeat: see the module docstring.
    Raises SearchUnavailable when Elasticsearch cannot be reached or fails (retry later),
    StoryWriteRejected when it refuses a document.
    """
    for article in articles:
        print_ = article.fingerprint
        if print_.num_perm != config.num_perm or len(print_.band_keys) not in (0, config.bands):
            raise ConfigError(
                "dedup",
                "num_perm/bands",
                f"article {article.id} was fingerprinted with other parameters than {config}",
            )

    def all_batches() -> list[StoryDecision]:
        decisions: list[StoryDecision] = []
        for part in chunks(articles, MAX_BATCH):
            batch = Batch(es, names, config, events)
            decisions += _ingest_batch(batch, part, fetched, run_id, country)
        return decisions

    return call(es, all_batches)


def _ingest_batch(
    batch: Batch,
    articles: Sequence[NormalisedArticle],
    fetched: datetime,
    run_id: str | None,
    country: str | None,
) -> list[StoryDecision]:
    first: dict[str, NormalisedArticle] = {}
    for article in articles:
        first.setdefault(article.id, article)
    # Older indices behind the alias count too; the create below catches the most recent.
    seen = batch.find(list(first))
    created = _create(
        batch, [a for i, a in first.items() if i not in seen], fetched, run_id, country
    )
    seen |= {i for i in first if i not in created}
    # Stored and decided: a re-fetch, reported as exact_url. Stored but undecided (by a worker
    # that died, one busy with it right now, or a plain bulk writer): decided here and reported
    # like an article created here.
    decided = {i for i in seen if i in batch.known and batch.known[i].verdict is not None}
    todo = {i for i in set(created) | seen if i in batch.known} - decided
    # Settled even with nothing to decide: a re-fetch after a failed batch finishes its moves.
    settle(batch, _decide(batch, todo) if todo else set())
    write_stories(batch)
    log.debug("ingested %d articles: %s", len(articles), dict(batch.counts))
    return _decisions(batch, articles, decided)


def _decide(batch: Batch, todo: set[str]) -> set[str]:
    """Resolve the undecided articles and propose them to later ones; the articles to settle."""
    batch.refresh()
    matcher = Matcher(batch)
    verdicts = matcher.resolve(set(todo))
    later = matcher.later_matches(verdicts)
    batch.counts["undecided earlier articles"] += len(verdicts) - len(todo)
    batch.counts["later articles improved"] += sum(
        better(p, batch.known[i].verdict) for i, p in later.items()
    )
    proposals = {**later, **verdicts}
    propose(batch, proposals)
    return set(proposals)


def _decisions(
    batch: Batch, articles: Sequence[NormalisedArticle], decided: set[str]
) -> list[StoryDecision]:
    """One decision per input article, as stored now; repeats and re-fetches are exact_url."""
    decisions: list[StoryDecision] = []
    reported: set[str] = set()
    for article in articles:
        stored = batch.known.get(article.id)
        verdict = stored.verdict if stored is not None else None
        if verdict is None:  # only when writes kept conflicting: the next worker decides it
            verdict = Verdict(article.id, None, "new", None)
        if article.id in decided or article.id in reported:
            decisions.append(
                StoryDecision(article.id, verdict.story_id, article.id, "exact_url", 1.0)
            )
        else:
            decisions.append(
                StoryDecision(
                    article.id,
                    verdict.story_id,
                    verdict.duplicate_of,
                    verdict.kind,
                    verdict.similarity,
                    related_to=verdict.match if verdict.kind == "same_event" else None,
                )
            )
        reported.add(article.id)
    return decisions


def _create(
    batch: Batch,
    articles: Sequence[NormalisedArticle],
    fetched: datetime,
    run_id: str | None,
    country: str | None,
) -> set[str]:
    """Create the documents; return the ids created here (a conflict: another worker's)."""
    if not articles:
        return set()
    operations: list[Mapping[str, Any]] = []
    for article in articles:
        operations += [
            {"create": {"_index": batch.names.articles, "_id": article.id}},
            article_document(article, fetched=fetched, country=country, run_id=run_id),
        ]
    response = batch.es.bulk(operations=operations)
    created: set[str] = set()
    raced: list[Mapping[str, Any]] = []
    key_time = parse_iso_utc(iso_utc(fetched))
    for article, item in zip(articles, response["items"], strict=True):
        result = item["create"]
        if result["status"] == 409:
            raced.append({"_index": result["_index"], "_id": article.id})
            continue
        if result["status"] >= 300:
            raise batch.refused(result["_index"], article.id, result)
        batch.learn(
            Stored(
                id=article.id,
                index=result["_index"],
                seq_no=int(result["_seq_no"]),
                primary_term=int(result["_primary_term"]),
                key=(parse_iso_utc(iso_utc(article.article.published)), key_time, article.id),
                fingerprint=article.fingerprint,
                verdict=None,
                event=event_of(article),
                language=article.language.language,
                published=parse_iso_utc(iso_utc(article.article.published)),
            )
        )
        created.add(article.id)
    if raced:
        for doc in batch.mget(docs=raced, source=SOURCE_FIELDS):
            batch.learn(stored_of(doc))
    return created
