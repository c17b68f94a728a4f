"""Same-event candidates: earlier and later reports that may tell an article's event.

A report of an event joins the story of the earlier report it compares best with
(``pipeline.normalise.events.compare``), when it copies nothing. Its candidates are found with
one weighted-terms query per article on the names, numbers and dates it stores
(``event_keys``): at least ``min_shared`` of them in common, published within the window, the
rarest shared keys first. The query is what ``compare`` requires before it weighs anything,
and it is symmetric, so of two reports written at once at least one finds the other, as with
copies (``pipeline.store.stories``). Window and candidate count bound the cost whatever the
size of the index; the count is a bound, not a cut (``EventConfig.max_candidates``): every
pair that can join is found whichever of the two arrived first, so the stories are the same
however the articles were split among workers and batches.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Final

from pipeline.normalise.events import Evidence, compare, specific_keys
from pipeline.store.articles import iso_utc
from pipeline.store.story_state import (
    EPOCH,
    SIGNATURE_FIELDS,
    STATE_FIELDS,
    WHOLE,
    Batch,
    Stored,
    Verdict,
    better,
    chunks,
)

__all__ = ["EVENT_FIELDS", "EventMatcher"]

# What comparing a candidate needs: its state, time, language and signature, not its MinHash.
EVENT_FIELDS: Final = [*STATE_FIELDS, *SIGNATURE_FIELDS]


class EventMatcher:
    """The same-event candidates of one batch's articles, and the verdicts they give."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.candidates: dict[str, list[str]] = {}

    def lookup(self, ids: Sequence[str]) -> None:
        """Each article's candidates: one weighted-terms search per article, in one msearch.

        The searches return ids and versions only; each candidate not yet read in this version
        is read once (mget), however many of the batch's articles find it: the reports of one
        busy day find the same few hundred candidates, and their signatures are most of a hit.
        """
        config = self.batch.events
        wanted = [i for i in ids if i not in self.candidates]
        for ident in wanted:
            self.candidates[ident] = []
        if not config.enabled:
            return
        searchable = [i for i in wanted if len(self._keys(i)) >= config.min_shared]
        for part in chunks(searchable, 100):
            searches: list[Mapping[str, Any]] = []
            for ident in part:
                searches += [WHOLE, self._query(ident)]
            response = self.batch.es.msearch(index=self.batch.names.articles, searches=searches)
            unread: dict[str, str] = {}  # id -> its concrete index
            found: dict[str, list[str]] = {}
            for ident, result in zip(part, response["responses"], strict=True):
                if "error" in result:
                    raise self.batch.refused(self.batch.names.articles, ident, result)
                hits = [h for h in result["hits"]["hits"] if h["_id"] != ident]
                found[ident] = [h["_id"] for h in hits]
                unread.update((h["_id"], h["_index"]) for h in hits if not self._read(h))
            self.batch.get(unread, EVENT_FIELDS)
            for ident, candidates in found.items():
                # A candidate deleted between the search and the read is no candidate.
                self.candidates[ident] = [c for c in candidates if c in self.batch.known]

    def _read(self, hit: Mapping[str, Any]) -> bool:
        """Whether the batch holds the hit's document, signature included, in its version."""
        known = self.batch.known.get(hit["_id"])
        return (
            known is not None
            and known.event is not None
            and (known.primary_term, known.seq_no) >= (hit["_primary_term"], hit["_seq_no"])
        )

    def _keys(self, ident: str) -> list[str]:
        event = self.batch.known[ident].event
        return specific_keys(event.keys) if event is not None else []

    def _query(self, ident: str) -> dict[str, Any]:
        me = self.batch.known[ident]
        window = timedelta(hours=self.batch.events.window_hours)
        return {
            "query": {
                "bool": {
                    "should": [{"term": {"event_keys": key}} for key in self._keys(ident)],
                    "minimum_should_match": self.batch.events.min_shared,
                    "filter": [
                        {
                            "range": {
                                "published": {
                                    "gte": iso_utc(me.published - window),
                                    "lte": iso_utc(me.published + window),
                                }
                            }
                        }
                    ],
                    "must_not": [{"ids": {"values": [ident]}}],
                }
            },
            "size": self.batch.events.max_candidates,
            "seq_no_primary_term": True,
            "_source": False,
            "track_total_hits": False,
        }

    def evidence(self, a: Stored, b: Stored) -> Evidence | None:
        """How two stored reports compare, or None when either lacks a signature or a time."""
        if a.event is None or b.event is None or EPOCH in (a.published, b.published):
            return None
        return compare(
            a.event,
            a.language,
            a.published,
            b.event,
            b.language,
            b.published,
            self.batch.events,
        )

    def best_earlier(self, ident: str) -> tuple[str, float] | None:
        """The earlier report ``ident`` compares best with, and the score; None if none joins."""
        me = self.batch.known[ident]
        best: tuple[str, float] | None = None
        for other_id in self.candidates.get(ident, ()):
            other = self.batch.known[other_id]
            if not other.key < me.key:
                continue
            evidence = self.evidence(me, other)
            if evidence is None or not evidence.joined:
                continue
            # Ranked as stories.better ranks verdicts: score, then the smaller id.
            if best is None or (-evidence.score, other_id) < (-best[1], best[0]):
                best = (other_id, evidence.score)
        return best

    def later_proposals(
        self, verdicts: Mapping[str, Verdict], proposals: dict[str, Verdict]
    ) -> None:
        """Propose each of ``verdicts`` as the event match of later reports that join it."""
        for ident, mine in verdicts.items():
            me = self.batch.known[ident]
            for other_id in self.candidates.get(ident, ()):
                other = self.batch.known[other_id]
                if other_id in verdicts or other.key < me.key:
                    continue
                evidence = self.evidence(other, me)
                if evidence is None or not evidence.joined:
                    continue
                proposal = Verdict(mine.story_id, ident, "same_event", evidence.score)
                if better(proposal, proposals.get(other_id)):
                    proposals[other_id] = proposal
