"""Verdict resolution: each article's candidates looked up, and its best earlier match chosen.

An article's match is the best of the earlier articles sharing a band key or its content hash
that are exact or pass the Jaccard threshold, as ``pipeline.normalise.fingerprint.classify``
ranks them. A batch also proposes itself as the match of later articles among its candidates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pipeline.normalise.fingerprint import Fingerprint, classify
from pipeline.store.story_events import EventMatcher
from pipeline.store.story_state import (
    MAX_HITS,
    SOURCE_FIELDS,
    WHOLE,
    Batch,
    Stored,
    StoredKind,
    Verdict,
    better,
    chunks,
    fullness,
    stored_of,
)

__all__ = ["MAX_CANDIDATES", "Matcher"]

# Candidates read per article when looked up one by one, earliest fetched first: an article's
# match is earlier than it, so a story with more copies than this still finds its first ones.
MAX_CANDIDATES: Final = 500
# Candidates are read without their band keys, a third of the bytes of a hit: a candidate was
# found through a band key or its content hash, so its text is not empty, which is all
# classify asks of them (story_state.UNREAD_KEYS stands in for the keys).
_CANDIDATE_FIELDS: Final = [f for f in SOURCE_FIELDS if f != "band_keys"]


class Matcher:
    """The verdicts of one batch: candidates found per article, and their MinHash vectors."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.candidates: dict[str, list[str]] = {}
        self.events = EventMatcher(batch)
        self.vectors: dict[str, npt.NDArray[np.uint32]] = {}  # MinHash values, for numpy

    def lookup(self, ids: Sequence[str]) -> None:
        """Each article's candidates: stored articles sharing a band key or its content hash.

        One search for the batch, each article's clause named by its id, so every hit says
        whose candidate it is (``matched_queries``); one search per article (msearch, the
        earliest MAX_CANDIDATES each) only when together they match more than one search
        returns. Either way an article's candidates depend on its own keys alone.
        """
        self.read(ids)
        for part in chunks(ids, 250):
            if not self._lookup_together(part):
                self._lookup_each(part)

    def read(self, ids: Sequence[str]) -> None:
        """Read the whole documents of articles met as candidates, before deciding them."""
        known = self.batch.known
        unread = {i: known[i].index for i in ids if fullness(known[i].fingerprint) < 2}
        self.batch.get(unread, SOURCE_FIELDS)

    def _candidate_query(self, ident: str) -> dict[str, Any]:
        print_ = self.batch.known[ident].fingerprint
        assert print_ is not None and print_.band_keys
        return {
            "bool": {
                "should": [
                    {"terms": {"band_keys": list(print_.band_keys)}},
                    {"term": {"content_hash": print_.content_hash}},
                ],
                "minimum_should_match": 1,
                "_name": ident,
            }
        }

    def _comparable(self, hit: Mapping[str, Any]) -> Stored | None:
        stored = self.batch.learn(stored_of(hit))
        print_ = stored.fingerprint
        # Fingerprints made with other parameters cannot be compared.
        if print_ is None or print_.num_perm != self.batch.config.num_perm:
            return None
        return stored

    def _lookup_together(self, ids: Sequence[str]) -> bool:
        response = self.batch.es.search(
            index=self.batch.names.articles,
            allow_partial_search_results=False,
            query={"bool": {"should": [self._candidate_query(i) for i in ids]}},
            size=MAX_HITS,
            sort=[{"published": "asc"}, {"fetched": "asc"}],
            seq_no_primary_term=True,
            source_includes=_CANDIDATE_FIELDS,
            track_total_hits=MAX_HITS + 1,
        )
        hits = response["hits"]["hits"]
        if response["hits"]["total"]["value"] > len(hits):
            return False
        found: dict[str, list[str]] = {i: [] for i in ids}
        for hit in hits:
            stored = self._comparable(hit)
            if stored is None:
                continue
            for name in hit.get("matched_queries", ()):
                if name != stored.id and name in found:
                    found[name].append(stored.id)
        self.candidates.update(found)
        return True

    def _lookup_each(self, ids: Sequence[str]) -> None:
        searches: list[Mapping[str, Any]] = []
        for ident in ids:
            searches += [
                WHOLE,
                {
                    "query": self._candidate_query(ident),
                    "post_filter": {"bool": {"must_not": [{"ids": {"values": [ident]}}]}},
                    "size": MAX_CANDIDATES,
                    "sort": [{"published": "asc"}, {"fetched": "asc"}],
                    "seq_no_primary_term": True,
                    "_source": _CANDIDATE_FIELDS,
                    "track_total_hits": False,
                },
            ]
        response = self.batch.es.msearch(index=self.batch.names.articles, searches=searches)
        for ident, result in zip(ids, response["responses"], strict=True):
            if "error" in result:
                raise self.batch.refused(self.batch.names.articles, ident, result)
            found: list[str] = []
            for hit in result["hits"]["hits"]:
                stored = self._comparable(hit)
                if stored is not None:
                    found.append(stored.id)
            self.candidates[ident] = found

    def resolve(self, todo: set[str]) -> dict[str, Verdict]:
        """Verdicts for ``todo``, and for every undecided earlier article one of them matches."""
        while True:
            missing = [i for i in todo if i not in self.candidates]
            self.read(missing)
            self.lookup([i for i in missing if self._has_keys(i)])
            for ident in missing:
                self.candidates.setdefault(ident, [])
            self.events.lookup(missing)
            verdicts: dict[str, Verdict] = {}
            undecided: set[str] = set()
            for ident in sorted(todo, key=lambda i: self.batch.known[i].key):
                me = self.batch.known[ident]
                assert me.fingerprint is not None
                earlier = [c for c in self.candidates[ident] if self.batch.known[c].key < me.key]
                verdict = classify(
                    me.fingerprint,
                    self._matches(me, earlier),
                    threshold=self.batch.config.threshold,
                )
                kind: StoredKind
                if verdict.match_id is None or verdict.kind == "new":
                    # No copy: the report joins the story of the earlier report of its event.
                    event = self.events.best_earlier(ident)
                    if event is None:
                        verdicts[ident] = Verdict(ident, None, "new", None)
                        continue
                    match, score, kind = event[0], event[1], "same_event"
                else:
                    match, score = verdict.match_id, verdict.score
                    kind = "exact_text" if verdict.kind == "exact" else "near"
                story: str | None
                if match in verdicts:
                    story = verdicts[match].story_id
                else:
                    stored_verdict = self.batch.known[match].verdict
                    story = stored_verdict.story_id if stored_verdict is not None else None
                if story is None:
                    undecided.add(match)  # decided in the next round, then this one again
                    story = match
                verdicts[ident] = Verdict(story, match, kind, score)
            if not undecided:
                return verdicts
            todo |= undecided

    def _matches(self, me: Stored, others: Sequence[str]) -> list[tuple[str, Fingerprint]]:
        """The candidates classify can pick: the same text, or estimated Jaccard >= threshold.

        classify over these gives its verdict over all of ``others``; they are found with
        one vectorised comparison instead of one Python loop per candidate.
        """
        assert me.fingerprint is not None
        if not others:
            return []
        same = np.count_nonzero(
            np.stack([self._vector(o) for o in others]) == self._vector(me.id), axis=1
        )
        found: list[tuple[str, Fingerprint]] = []
        for other, count in zip(others, same.tolist(), strict=True):
            print_ = self.batch.known[other].fingerprint
            assert print_ is not None
            if (
                count / print_.num_perm >= self.batch.config.threshold
                or print_.content_hash == me.fingerprint.content_hash
            ):
                found.append((other, print_))
        return found

    def _vector(self, ident: str) -> npt.NDArray[np.uint32]:
        vector = self.vectors.get(ident)
        if vector is None:
            print_ = self.batch.known[ident].fingerprint
            assert print_ is not None
            vector = self.vectors[ident] = np.array(print_.hashvalues, dtype=np.uint32)
        return vector

    def _has_keys(self, ident: str) -> bool:
        # Unread keys count as keys: lookup reads them first.
        print_ = self.batch.known[ident].fingerprint
        return print_ is not None and bool(print_.band_keys)

    def later_matches(self, verdicts: Mapping[str, Verdict]) -> dict[str, Verdict]:
        """Proposals for later articles that matched ours but may not have seen them."""
        proposals: dict[str, Verdict] = {}
        for ident, mine in verdicts.items():
            me = self.batch.known[ident]
            assert me.fingerprint is not None
            for other_id in self.candidates[ident]:
                other = self.batch.known[other_id]
                if other_id in verdicts or other.key < me.key or other.fingerprint is None:
                    continue
                verdict = classify(
                    other.fingerprint,
                    self._matches(other, [ident]),
                    threshold=self.batch.config.threshold,
                )
                if verdict.kind == "new":
                    continue
                kind: StoredKind = "exact_text" if verdict.kind == "exact" else "near"
                proposal = Verdict(mine.story_id, ident, kind, verdict.score)
                if better(proposal, proposals.get(other_id)):
                    proposals[other_id] = proposal
        self.events.later_proposals(verdicts, proposals)
        return proposals
