"""Stories: exact and near duplicates across workers and restarts, with all state in Elasticsearch.

Every article document ends up with ``story_id`` (the id of its story's first article) and,
when it is a copy, ``duplicate_of`` (the earlier article it matched best), ``duplicate_kind``
(``exact_text`` or ``near``) and ``similarity``. An article whose canonical URL is stored
already is the same document (its ``_id`` hashes that URL): it is reported as ``exact_url``
and nothing changes. The stories index holds one document per story, rebuilt from its articles.

What the answer is. Articles are ordered by the key (fetched, id): first seen is the smallest
(articles of one call share ``fetched``, so among them the id decides). An article's match is
the best of the *earlier* articles sharing a band key or its content hash that are exact or
pass the Jaccard threshold, as ``pipeline.normalise.fingerprint.classify`` ranks them; its story
is its match's story, or its own id when nothing earlier matches. This depends only on the stored
articles and their fetch times, never on which worker saw what first, so two workers (or one
after a restart) arrive at the same stories as one process would.

How workers agree without locks or scripts:

1. Write first, then look. A batch is created (``op_type=create``), the index refreshed, and
   only then its candidates are looked up: one search, with per article a terms query on its
   band keys or its content hash, named after the article. Of two copies written
   concurrently, the one whose write finished last refreshes after the other's write, so at
   least one of the two sees the other.
2. Whoever sees a pair settles it. A worker proposes a verdict for its own articles and, for
   later-ordered articles it finds among its candidates, proposes itself as their match. An
   earlier article it finds undecided (its worker is still busy, or died) it resolves itself.
3. Proposals only ever improve. The match fields of a document are a "best so far" register,
   written with ``if_seq_no``/``if_primary_term``; on a conflict the worker re-reads it and
   writes only if its proposal ranks higher. Whatever the interleaving, the register ends at
   the best earlier match, because every such match was proposed by at least one worker (1).
4. Stories follow matches. A copy's ``story_id`` is copied from its match, so after writing,
   the worker re-reads the matches (realtime get) and corrects copies whose match's story has
   changed; when it changes the story of an article that had one, it refreshes and moves the
   article's copies (a terms query on ``duplicate_of``) too. Write-then-read again: either the
   copy's writer sees the new story or the mover finds the copy.
5. Story documents are rebuilt, not patched: read the document (and its ``_seq_no``), refresh,
   query its articles, and write with create-if-absent or ``if_seq_no``, retrying conflicts.
   The last successful write read the articles after every earlier write, so it is complete.
   A story whose articles all moved to an earlier one stays, empty, with ``merged_into``.

An article written but never decided (its worker died before step 3) is decided by the next
worker that meets it: a re-ingest of the same URL, or a later copy whose best match it is.
The decisions ``ingest`` returns are the stored state when it returns; a worker settling a
pair later (2) may still move an article into an earlier story.
"""

from __future__ import annotations

import base64
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal

import numpy as np
import numpy.typing as npt
from elasticsearch import Elasticsearch

from pipeline.errors import ConfigError, PermanentError
from pipeline.normalise.fingerprint import DEFAULT_CONFIG, DedupConfig, Fingerprint, classify
from pipeline.store.articles import article_document, iso_utc, parse_iso_utc
from pipeline.store.client import IndexNames, call

if TYPE_CHECKING:
    # Only a type here: importing pipeline.normalise.page pulls in the extractor (trafilatura).
    from pipeline.normalise.page import NormalisedArticle

__all__ = [
    "MAX_BATCH",
    "MAX_CANDIDATES",
    "Kind",
    "StoryDecision",
    "StoryWriteRejected",
    "ingest",
]

log = logging.getLogger(__name__)

Kind = Literal["new", "exact_url", "exact_text", "near"]
_StoredKind = Literal["new", "exact_text", "near"]

# Articles handled per round of requests; a longer input is taken in slices of this size, each
# slice seeing the ones before it.
MAX_BATCH: Final = 500
# Hits one search returns: a batch's candidates, or the articles of the stories it touched.
# Past that, one search per article (or story) instead.
_MAX_HITS: Final = 10_000
# Candidates read per article when looked up one by one, earliest fetched first: an article's
# match is earlier than it, so a story with more copies than this still finds its first ones.
MAX_CANDIDATES: Final = 500
# Article ids listed in a story document (counts and sources are exact beyond it).
MAX_STORY_ARTICLES: Final = 1000
# Copies looked up per moved article when a story changes; more would need paging.
_MAX_CHILDREN: Final = 10_000
# Conflicts come from other workers touching the same documents at the same moment; each
# retry re-reads, so a handful always suffices unless something rewrites documents in a loop.
_MAX_ATTEMPTS: Final = 20
_SOURCE_FIELDS: Final = [
    "fetched",
    "content_hash",
    "minhash",
    "num_perm",
    "band_keys",
    "story_id",
    "duplicate_of",
    "duplicate_kind",
    "similarity",
]
# Candidates are read without their band keys, a third of the bytes of a hit: a candidate was
# found through a band key or its content hash, so its text is not empty, which is all
# classify asks of them. It stands in for the keys until they are needed for a lookup.
_CANDIDATE_FIELDS: Final = [f for f in _SOURCE_FIELDS if f != "band_keys"]
_UNREAD_KEYS: Final = ("(not read)",)
_STATE_FIELDS: Final = ["fetched", "story_id", "duplicate_of", "duplicate_kind", "similarity"]
_MEMBER_FIELDS: Final = ["story_id", "fetched", "source", "title", "language"]
_KIND_RANK: Final[Mapping[str, int]] = {"new": 0, "near": 1, "exact_text": 2}
_EPOCH: Final = datetime.min.replace(tzinfo=UTC)


class StoryWriteRejected(PermanentError):
    """Elasticsearch refused a write or a lookup, for a reason other than a conflict or load."""

    def __init__(self, index: str, doc_id: str, error: Any) -> None:
        super().__init__(index, doc_id, error)
        self.index = index
        self.doc_id = doc_id
        self.error = error

    def __str__(self) -> str:
        return f"{self.index}/{self.doc_id}: {self.error}"


@dataclass(frozen=True, slots=True)
class StoryDecision:
    """Where one ingested article went: its story, and what it copies when it is a copy.

    ``exact_url``: the URL was stored already (or repeated in the batch); ``duplicate_of`` is
    the article itself and ``story_id`` the stored one. ``similarity`` is None for ``new``.
    """

    article_id: str
    story_id: str
    duplicate_of: str | None
    kind: Kind
    similarity: float | None


@dataclass(frozen=True, slots=True)
class _Verdict:
    """The story fields of one article document."""

    story_id: str
    duplicate_of: str | None
    kind: _StoredKind
    similarity: float | None

    def fields(self) -> dict[str, Any]:
        # Explicit nulls: a partial update must clear what an earlier verdict wrote.
        return {
            "story_id": self.story_id,
            "duplicate_of": self.duplicate_of,
            "duplicate_kind": None if self.kind == "new" else self.kind,
            "similarity": self.similarity,
        }


def _better(a: _Verdict, b: _Verdict | None) -> bool:
    """Whether match ``a`` outranks ``b`` by classify's order: exact, then score, then id."""
    if b is None:
        return True
    if _KIND_RANK[a.kind] != _KIND_RANK[b.kind]:
        return _KIND_RANK[a.kind] > _KIND_RANK[b.kind]
    if a.kind == "new" or a.duplicate_of is None or b.duplicate_of is None:
        return False
    if a.kind == "near" and a.similarity != b.similarity:
        return (a.similarity or 0.0) > (b.similarity or 0.0)
    return a.duplicate_of < b.duplicate_of


@dataclass(frozen=True, slots=True)
class _Stored:
    """One article document as last read or written: where it is, its version and verdict."""

    id: str
    index: str  # the concrete index: after a rollover the alias cannot address old documents
    seq_no: int
    primary_term: int
    key: tuple[datetime, str]
    fingerprint: Fingerprint | None  # None when read without its MinHash
    verdict: _Verdict | None  # None: no story decided yet

    def newer_than(self, other: _Stored) -> bool:
        return (self.primary_term, self.seq_no) > (other.primary_term, other.seq_no)


def _verdict_of(source: Mapping[str, Any]) -> _Verdict | None:
    story = source.get("story_id")
    if not story:
        return None
    kind = source.get("duplicate_kind")
    similarity = source.get("similarity")
    return _Verdict(
        story_id=str(story),
        duplicate_of=source.get("duplicate_of"),
        kind=kind if kind in ("exact_text", "near") else "new",
        similarity=float(similarity) if similarity is not None else None,
    )


def _stored_of(hit: Mapping[str, Any]) -> _Stored:
    source: Mapping[str, Any] = hit.get("_source") or {}
    fetched = source.get("fetched")
    print_: Fingerprint | None = None
    if "minhash" in source:
        # Fingerprint.from_document, with the values converted in one call: a batch reads
        # thousands of candidates, and the per-value conversion was most of its Python time.
        values = np.frombuffer(base64.b64decode(source["minhash"]), dtype="<u4")
        print_ = Fingerprint(
            content_hash=str(source["content_hash"]),
            hashvalues=tuple(values.tolist()),
            band_keys=tuple(str(k) for k in source.get("band_keys", _UNREAD_KEYS)),
            num_perm=int(source["num_perm"]),
        )
    return _Stored(
        id=hit["_id"],
        index=hit["_index"],
        seq_no=int(hit["_seq_no"]),
        primary_term=int(hit["_primary_term"]),
        key=(parse_iso_utc(fetched) if fetched else _EPOCH, hit["_id"]),
        fingerprint=print_,
        verdict=_verdict_of(source),
    )


def _fullness(print_: Fingerprint | None) -> int:
    """0: no fingerprint read, 1: read without its band keys, 2: complete."""
    if print_ is None:
        return 0
    return 1 if print_.band_keys == _UNREAD_KEYS else 2


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Batch:
    """One slice of ``ingest``: the articles, everything read about others, what was written."""

    def __init__(self, es: Elasticsearch, names: IndexNames, config: DedupConfig) -> None:
        self.es = es
        self.names = names
        self.config = config
        self.known: dict[str, _Stored] = {}
        self.candidates: dict[str, list[str]] = {}
        self.stories: set[str] = set()  # story ids whose membership this batch changed
        self.counts: Counter[str] = Counter()  # what it took, for the debug log
        self.moved: set[str] = set()  # articles whose story changed after they had one
        self.vectors: dict[str, npt.NDArray[np.uint32]] = {}  # MinHash values, for numpy

    # --- reading ------------------------------------------------------------------------

    def learn(self, stored: _Stored) -> _Stored:
        """Keep the newest version seen of each document, and the fullest fingerprint read."""
        old = self.known.get(stored.id)
        if old is not None:
            newest = stored if stored.newer_than(old) else old
            print_ = max(old.fingerprint, stored.fingerprint, key=_fullness)
            stored = replace(newest, fingerprint=print_)
        self.known[stored.id] = stored
        return stored

    def reread(self, ids: Iterable[str]) -> None:
        """Realtime get of the documents (by concrete index): sees writes not yet refreshed."""
        wanted = sorted({i for i in ids if i in self.known})
        for part in _chunks(wanted, 1000):
            docs = [{"_index": self.known[i].index, "_id": i} for i in part]
            response = self.es.mget(docs=docs, source=_STATE_FIELDS)
            for doc in response["docs"]:
                if doc.get("found"):
                    self.learn(_stored_of(doc))

    def find(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are stored, in any index behind the alias (a search: refreshed only)."""
        found: set[str] = set()
        for part in _chunks(ids, 1000):
            response = self.es.search(
                index=self.names.articles,
                query={"ids": {"values": list(part)}},
                size=len(part),
                seq_no_primary_term=True,
                source_includes=_SOURCE_FIELDS,
            )
            found |= {self.learn(_stored_of(hit)).id for hit in response["hits"]["hits"]}
        return found

    def lookup(self, ids: Sequence[str]) -> None:
        """Each article's candidates: stored articles sharing a band key or its content hash.

        One search for the batch, each article's clause named by its id, so every hit says
        whose candidate it is (``matched_queries``); one search per article (msearch, the
        earliest MAX_CANDIDATES each) only when together they match more than one search
        returns. Either way an article's candidates depend on its own keys alone.
        """
        unread = [i for i in ids if _fullness(self.known[i].fingerprint) < 2]
        for part in _chunks(unread, 1000):  # undecided articles met as candidates
            docs = [{"_index": self.known[i].index, "_id": i} for i in part]
            for doc in self.es.mget(docs=docs, source=_SOURCE_FIELDS)["docs"]:
                if doc.get("found"):
                    self.learn(_stored_of(doc))
        for part in _chunks(ids, 250):
            if not self._lookup_together(part):
                self._lookup_each(part)

    def _candidate_query(self, ident: str) -> dict[str, Any]:
        print_ = self.known[ident].fingerprint
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

    def _comparable(self, hit: Mapping[str, Any]) -> _Stored | None:
        stored = self.learn(_stored_of(hit))
        print_ = stored.fingerprint
        # Fingerprints made with other parameters cannot be compared.
        if print_ is None or print_.num_perm != self.config.num_perm:
            return None
        return stored

    def _lookup_together(self, ids: Sequence[str]) -> bool:
        response = self.es.search(
            index=self.names.articles,
            query={"bool": {"should": [self._candidate_query(i) for i in ids]}},
            size=_MAX_HITS,
            sort=[{"fetched": "asc"}],
            seq_no_primary_term=True,
            source_includes=_CANDIDATE_FIELDS,
            track_total_hits=_MAX_HITS + 1,
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
                {},
                {
                    "query": self._candidate_query(ident),
                    "post_filter": {"bool": {"must_not": [{"ids": {"values": [ident]}}]}},
                    "size": MAX_CANDIDATES,
                    "sort": [{"fetched": "asc"}],
                    "seq_no_primary_term": True,
                    "_source": _CANDIDATE_FIELDS,
                    "track_total_hits": False,
                },
            ]
        response = self.es.msearch(index=self.names.articles, searches=searches)
        for ident, result in zip(ids, response["responses"], strict=True):
            if "error" in result:
                raise StoryWriteRejected(self.names.articles, ident, result["error"])
            found: list[str] = []
            for hit in result["hits"]["hits"]:
                stored = self._comparable(hit)
                if stored is not None:
                    found.append(stored.id)
            self.candidates[ident] = found

    # --- deciding -----------------------------------------------------------------------

    def resolve(self, todo: set[str]) -> dict[str, _Verdict]:
        """Verdicts for ``todo``, and for every undecided earlier article one of them matches."""
        while True:
            missing = [i for i in todo if i not in self.candidates]
            self.lookup([i for i in missing if self._has_keys(i)])
            for ident in missing:
                self.candidates.setdefault(ident, [])
            verdicts: dict[str, _Verdict] = {}
            undecided: set[str] = set()
            for ident in sorted(todo, key=lambda i: self.known[i].key):
                me = self.known[ident]
                assert me.fingerprint is not None
                earlier = [c for c in self.candidates[ident] if self.known[c].key < me.key]
                verdict = classify(
                    me.fingerprint, self._matches(me, earlier), threshold=self.config.threshold
                )
                if verdict.match_id is None or verdict.kind == "new":
                    verdicts[ident] = _Verdict(ident, None, "new", None)
                    continue
                match = verdict.match_id
                story: str | None
                if match in verdicts:
                    story = verdicts[match].story_id
                else:
                    stored_verdict = self.known[match].verdict
                    story = stored_verdict.story_id if stored_verdict is not None else None
                if story is None:
                    undecided.add(match)  # decided in the next round, then this one again
                    story = match
                kind: _StoredKind = "exact_text" if verdict.kind == "exact" else "near"
                verdicts[ident] = _Verdict(story, match, kind, verdict.score)
            if not undecided:
                return verdicts
            todo |= undecided

    def _matches(self, me: _Stored, others: Sequence[str]) -> list[tuple[str, Fingerprint]]:
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
            print_ = self.known[other].fingerprint
            assert print_ is not None
            if (
                count / print_.num_perm >= self.config.threshold
                or print_.content_hash == me.fingerprint.content_hash
            ):
                found.append((other, print_))
        return found

    def _vector(self, ident: str) -> npt.NDArray[np.uint32]:
        vector = self.vectors.get(ident)
        if vector is None:
            print_ = self.known[ident].fingerprint
            assert print_ is not None
            vector = self.vectors[ident] = np.array(print_.hashvalues, dtype=np.uint32)
        return vector

    def _has_keys(self, ident: str) -> bool:
        # Unread keys count as keys: lookup reads them first.
        print_ = self.known[ident].fingerprint
        return print_ is not None and bool(print_.band_keys)

    def later_matches(self, verdicts: Mapping[str, _Verdict]) -> dict[str, _Verdict]:
        """Proposals for later articles that matched ours but may not have seen them."""
        proposals: dict[str, _Verdict] = {}
        for ident, mine in verdicts.items():
            me = self.known[ident]
            assert me.fingerprint is not None
            for other_id in self.candidates[ident]:
                other = self.known[other_id]
                if other_id in verdicts or other.key < me.key or other.fingerprint is None:
                    continue
                verdict = classify(
                    other.fingerprint,
                    self._matches(other, [ident]),
                    threshold=self.config.threshold,
                )
                if verdict.kind == "new":
                    continue
                kind: _StoredKind = "exact_text" if verdict.kind == "exact" else "near"
                proposal = _Verdict(mine.story_id, ident, kind, verdict.score)
                if _better(proposal, proposals.get(other_id)):
                    proposals[other_id] = proposal
        return proposals

    # --- writing articles ---------------------------------------------------------------

    def propose(self, proposals: Mapping[str, _Verdict]) -> None:
        """Write each proposal that outranks the stored verdict, re-reading on conflicts."""
        pending = {i: p for i, p in proposals.items() if _better(p, self.known[i].verdict)}
        self._write_verdicts(pending, lambda i, p: _better(p, self.known[i].verdict))

    def _write_verdicts(
        self, pending: dict[str, _Verdict], still_wanted: Callable[[str, _Verdict], bool]
    ) -> None:
        for _ in range(_MAX_ATTEMPTS):
            if not pending:
                return
            operations: list[Mapping[str, Any]] = []
            for ident, verdict in pending.items():
                stored = self.known[ident]
                operations += [
                    {
                        "update": {
                            "_index": stored.index,
                            "_id": ident,
                            "if_seq_no": stored.seq_no,
                            "if_primary_term": stored.primary_term,
                        }
                    },
                    {"doc": verdict.fields()},
                ]
            response = self.es.bulk(operations=operations)
            conflicts: list[str] = []
            for (ident, verdict), item in zip(pending.items(), response["items"], strict=True):
                result = item["update"]
                if result["status"] == 409:
                    conflicts.append(ident)
                    self.counts["conflicts"] += 1
                    continue
                if result["status"] >= 300:
                    raise StoryWriteRejected(result["_index"], ident, result.get("error"))
                old = self.known[ident]
                self.known[ident] = replace(
                    old,
                    seq_no=int(result["_seq_no"]),
                    primary_term=int(result["_primary_term"]),
                    verdict=verdict,
                )
                self._changed(ident, old.verdict, verdict)
            self.reread(conflicts)
            pending = {i: pending[i] for i in conflicts if still_wanted(i, pending[i])}
        log.warning("gave up on %d story writes after %d conflicts", len(pending), _MAX_ATTEMPTS)

    def _changed(self, ident: str, old: _Verdict | None, new: _Verdict) -> None:
        self.stories.add(new.story_id)
        if old is not None:
            self.stories.add(old.story_id)
            if old.story_id != new.story_id:
                self.moved.add(ident)
                self.counts["moved"] += 1

    def settle(self, check: set[str]) -> None:
        """Make every copy's story its match's story, following moves to their copies."""
        for _ in range(_MAX_ATTEMPTS * 2):
            if self.moved:
                # The copies of a moved article: found after the move, so none is missed
                # by both this query and its own writer's re-check.
                self.es.indices.refresh(index=self.names.articles)
                check |= self._copies_of(sorted(self.moved))
                self.moved = set()
            if not check:
                return
            # One realtime read of the copies and their matches as known; a second only for
            # matches that changed meanwhile.
            parents = self._matches_of(check)
            self.reread(check | parents)
            self.reread(self._matches_of(check) - parents)
            fixes: dict[str, _Verdict] = {}
            for ident in check:
                verdict = self.known[ident].verdict
                if verdict is None or verdict.duplicate_of is None:
                    continue
                parent = self.known.get(verdict.duplicate_of)
                if parent is None or parent.verdict is None:
                    continue
                if parent.verdict.story_id != verdict.story_id:
                    fixes[ident] = replace(verdict, story_id=parent.verdict.story_id)
            if not fixes and not self.moved:
                return
            # A fix whose document changed meanwhile is dropped here and checked again below.
            self.counts["story fixes"] += len(fixes)
            self._write_verdicts(fixes, lambda i, p: False)
            check = set(fixes)
        log.warning("stories did not settle for %d articles", len(check))

    def _matches_of(self, ids: Iterable[str]) -> set[str]:
        return {
            v.duplicate_of
            for i in ids
            if (v := self.known[i].verdict) is not None and v.duplicate_of is not None
        }

    def _copies_of(self, parents: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for part in _chunks(parents, 1000):
            response = self.es.search(
                index=self.names.articles,
                query={"terms": {"duplicate_of": list(part)}},
                size=_MAX_CHILDREN,
                seq_no_primary_term=True,
                source_includes=_STATE_FIELDS,
            )
            for hit in response["hits"]["hits"]:
                found.add(self.learn(_stored_of(hit)).id)
        return found

    # --- writing stories ----------------------------------------------------------------

    def write_stories(self) -> None:
        """Rebuild the story documents this batch touched from their articles."""
        pending = sorted(self.stories)
        for _ in range(_MAX_ATTEMPTS):
            if not pending:
                return
            pending = self._write_story_documents(pending)
        log.warning("gave up on %d story documents after %d conflicts", len(pending), _MAX_ATTEMPTS)

    def _write_story_documents(self, story_ids: Sequence[str]) -> list[str]:
        alias = self.names.stories
        conflicts: list[str] = []
        for part in _chunks(story_ids, 250):
            # Read the versions before the articles: a write based on them then fails if anyone
            # wrote after this read, and that writer's query saw everything written before it.
            current = {
                doc["_id"]: doc
                for doc in self.es.mget(index=alias, ids=list(part))["docs"]
                if doc.get("found")
            }
            self.es.indices.refresh(index=self.names.articles)
            members = self._members_together(part) or self._members_each(part)
            # For merged_into: where the first article of each story left empty now belongs.
            self.find([i for i in part if i in current and not members[i].count])
            operations: list[Mapping[str, Any]] = []
            written: list[str] = []
            for story_id in part:
                old = current.get(story_id)
                document = self._story_document(story_id, members[story_id], old)
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
            response = self.es.bulk(operations=operations)
            for story_id, item in zip(written, response["items"], strict=True):
                result = next(iter(item.values()))
                if result["status"] == 409:
                    conflicts.append(story_id)
                elif result["status"] >= 300:
                    raise StoryWriteRejected(alias, story_id, result.get("error"))
        return conflicts

    def _members_together(self, story_ids: Sequence[str]) -> dict[str, _Members] | None:
        """The stories' articles from one search, or None when there are too many for one."""
        response = self.es.search(
            index=self.names.articles,
            query={"terms": {"story_id": list(story_ids)}},
            size=_MAX_HITS,
            sort=[{"fetched": "asc"}],
            source_includes=_MEMBER_FIELDS,
            track_total_hits=_MAX_HITS + 1,
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
            )
        return members

    def _members_each(self, story_ids: Sequence[str]) -> dict[str, _Members]:
        """One search per story, counting with aggregations past MAX_STORY_ARTICLES."""
        searches: list[Mapping[str, Any]] = []
        for story_id in story_ids:
            searches += [
                {},
                {
                    "query": {"term": {"story_id": story_id}},
                    "size": MAX_STORY_ARTICLES,
                    "sort": [{"fetched": "asc"}],
                    "_source": _MEMBER_FIELDS,
                    "track_total_hits": True,
                    "aggs": {
                        "sources": {"terms": {"field": "source", "size": 10_000}},
                        "first": {"min": {"field": "fetched"}},
                        "last": {"max": {"field": "fetched"}},
                    },
                },
            ]
        results = self.es.msearch(index=self.names.articles, searches=searches)["responses"]
        members: dict[str, _Members] = {}
        for story_id, result in zip(story_ids, results, strict=True):
            if "error" in result:
                raise StoryWriteRejected(self.names.articles, story_id, result["error"])
            aggs = result["aggregations"]
            members[story_id] = _Members(
                hits=result["hits"]["hits"],
                count=int(result["hits"]["total"]["value"]),
                sources=sorted(bucket["key"] for bucket in aggs["sources"]["buckets"]),
                first_seen=aggs["first"].get("value_as_string"),
                last_seen=aggs["last"].get("value_as_string"),
            )
        return members

    def _story_document(
        self, story_id: str, members: _Members, old: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        previous: Mapping[str, Any] = old["_source"] if old is not None else {}
        if not members.count:
            if old is None:
                return None  # never written, now empty: nothing to record
            root = self.known.get(story_id)
            merged = root.verdict.story_id if root is not None and root.verdict else None
            return {
                **previous,
                "story_id": story_id,
                "sources": [],
                "articles": [],
                "article_count": 0,
                "source_count": 0,
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


def _time_of(hit: Mapping[str, Any]) -> datetime:
    fetched = hit["_source"].get("fetched")
    return parse_iso_utc(fetched) if fetched else _EPOCH


def _normalised_time(value: str | None) -> str | None:
    return iso_utc(parse_iso_utc(value)) if value else None


def ingest(
    es: Elasticsearch,
    names: IndexNames,
    articles: Sequence[NormalisedArticle],
    *,
    fetched: datetime,
    config: DedupConfig = DEFAULT_CONFIG,
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
        for part in _chunks(articles, MAX_BATCH):
            decisions += _ingest_batch(es, names, part, fetched, config, run_id, country)
        return decisions

    return call(es, all_batches)


def _ingest_batch(
    es: Elasticsearch,
    names: IndexNames,
    articles: Sequence[NormalisedArticle],
    fetched: datetime,
    config: DedupConfig,
    run_id: str | None,
    country: str | None,
) -> list[StoryDecision]:
    batch = _Batch(es, names, config)
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
    if todo:
        es.indices.refresh(index=names.articles)
        verdicts = batch.resolve(set(todo))
        later = batch.later_matches(verdicts)
        batch.counts["undecided earlier articles"] += len(verdicts) - len(todo)
        batch.counts["later articles improved"] += sum(
            _better(p, batch.known[i].verdict) for i, p in later.items()
        )
        proposals = {**later, **verdicts}
        batch.propose(proposals)
        batch.settle(set(proposals))
    batch.write_stories()
    log.debug("ingested %d articles: %s", len(articles), dict(batch.counts))
    decisions: list[StoryDecision] = []
    reported: set[str] = set()
    for article in articles:
        stored = batch.known.get(article.id)
        verdict = stored.verdict if stored is not None else None
        if verdict is None:  # only when writes kept conflicting: the next worker decides it
            verdict = _Verdict(article.id, None, "new", None)
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
                )
            )
        reported.add(article.id)
    return decisions


def _create(
    batch: _Batch,
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
            raise StoryWriteRejected(result["_index"], article.id, result.get("error"))
        batch.learn(
            _Stored(
                id=article.id,
                index=result["_index"],
                seq_no=int(result["_seq_no"]),
                primary_term=int(result["_primary_term"]),
                key=(key_time, article.id),
                fingerprint=article.fingerprint,
                verdict=None,
            )
        )
        created.add(article.id)
    if raced:
        for doc in batch.es.mget(docs=raced, source=_SOURCE_FIELDS)["docs"]:
            if doc.get("found"):
                batch.learn(_stored_of(doc))
    return created
