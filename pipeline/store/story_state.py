"""What one batch of story ingestion knows: article documents as read or written, and verdicts.

A verdict is the story fields of one article document; ``better`` ranks two verdicts as
``pipeline.normalise.fingerprint.classify`` ranks matches. See ``pipeline.store.stories`` for
how workers agree on them.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
from elasticsearch import Elasticsearch

from pipeline.errors import PermanentError
from pipeline.normalise.events import DEFAULT_EVENT_CONFIG, EventConfig, EventSignature
from pipeline.normalise.fingerprint import DedupConfig, Fingerprint
from pipeline.store.articles import parse_iso_utc
from pipeline.store.client import IndexNames, SearchUnavailable, node_url

__all__ = [
    "EPOCH",
    "MAX_ATTEMPTS",
    "MAX_HITS",
    "SIGNATURE_FIELDS",
    "SOURCE_FIELDS",
    "STATE_FIELDS",
    "UNREAD_KEYS",
    "WHOLE",
    "Batch",
    "Stored",
    "StoredKind",
    "StoryWriteRejected",
    "Verdict",
    "better",
    "chunks",
    "fullness",
    "stored_of",
    "verdict_of",
]

StoredKind = Literal["new", "exact_text", "near", "same_event"]

# Hits one search returns: a batch's candidates, or the articles of the stories it touched.
# Past that, one search per article (or story) instead.
MAX_HITS: Final = 10_000
# Conflicts come from other workers touching the same documents at the same moment; each
# retry re-reads, so a handful always suffices unless something rewrites documents in a loop.
MAX_ATTEMPTS: Final = 20
# The band keys of a candidate read without them (``pipeline.store.story_match``), until they
# are needed for a lookup of its own.
UNREAD_KEYS: Final = ("(not read)",)
STATE_FIELDS: Final = [
    "published",
    "fetched",
    "story_id",
    "duplicate_of",
    "duplicate_kind",
    "similarity",
    "related_to",
    "event_score",
    "story_relation",
    "story_moved_from",
]
# An article's same-event signature and what comparing it needs besides its state.
SIGNATURE_FIELDS: Final = [
    "language",
    "event_keys",
    "event_key_counts",
    "event_terms",
    "event_term_counts",
    "event_title",
    "event_lead",
]
SOURCE_FIELDS: Final = [
    *STATE_FIELDS,
    "content_hash",
    "minhash",
    "num_perm",
    "band_keys",
    *SIGNATURE_FIELDS,
]
# The msearch header of a story lookup: a search that lost a shard with its node fails (and the
# batch is retried) rather than answering without that shard's articles, which would be
# decided as if they did not exist.
WHOLE: Final[Mapping[str, Any]] = {"allow_partial_search_results": False}
# A copy outranks a report of the same event: its story is its original's whatever else.
_KIND_RANK: Final[Mapping[str, int]] = {"new": 0, "same_event": 1, "near": 2, "exact_text": 3}
EPOCH: Final = datetime.min.replace(tzinfo=UTC)


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
class Verdict:
    """The story fields of one article document.

    ``match`` is the earlier article it follows into its story: the one it copies
    (``exact_text``, ``near``; stored as ``duplicate_of``) or a report of the same event
    (``same_event``; stored as ``related_to``). ``similarity`` is the copy's estimated Jaccard
    or the event score.
    """

    story_id: str
    match: str | None
    kind: StoredKind
    similarity: float | None

    @property
    def duplicate_of(self) -> str | None:
        """The article this one copies, if it is a copy."""
        return self.match if self.kind in ("exact_text", "near") else None

    def fields(self) -> dict[str, Any]:
        """The verdict as article document fields, for a partial update."""
        copy = self.kind in ("exact_text", "near")
        event = self.kind == "same_event"
        # Explicit nulls: a partial update must clear what an earlier verdict wrote.
        return {
            "story_id": self.story_id,
            "story_relation": "copy" if copy else self.kind if event else "first",
            "duplicate_of": self.match if copy else None,
            "duplicate_kind": self.kind if copy else None,
            "similarity": self.similarity if copy else None,
            "related_to": self.match if event else None,
            "event_score": self.similarity if event else None,
        }


def better(a: Verdict, b: Verdict | None) -> bool:
    """Whether match ``a`` outranks ``b`` by classify's order: exact, then score, then id."""
    if b is None:
        return True
    if _KIND_RANK[a.kind] != _KIND_RANK[b.kind]:
        return _KIND_RANK[a.kind] > _KIND_RANK[b.kind]
    if a.kind == "new" or a.match is None or b.match is None:
        return False
    if a.kind in ("near", "same_event") and a.similarity != b.similarity:
        return (a.similarity or 0.0) > (b.similarity or 0.0)
    return a.match < b.match


@dataclass(frozen=True, slots=True)
class Stored:
    """One article document as last read or written: where it is, its version and verdict."""

    id: str
    index: str  # the concrete index: after a rollover the alias cannot address old documents
    seq_no: int
    primary_term: int
    key: tuple[datetime, datetime, str]  # (published, fetched, id): earliest is first
    fingerprint: Fingerprint | None  # None when read without its MinHash
    verdict: Verdict | None  # None: no story decided yet
    event: EventSignature | None = None  # None when read without it
    language: str = ""
    published: datetime = EPOCH
    # Stories the article left whose copies and reports may not have followed it yet: set with
    # the move, cleared once they have (``pipeline.store.story_verdicts``).
    moved_from: tuple[str, ...] = ()

    def newer_than(self, other: Stored) -> bool:
        """Whether this read is of a later version of the document than ``other``."""
        return (self.primary_term, self.seq_no) > (other.primary_term, other.seq_no)


def verdict_of(source: Mapping[str, Any]) -> Verdict | None:
    """The verdict an article document holds, or None when it has no story yet."""
    story = source.get("story_id")
    if not story:
        return None
    kind: StoredKind
    if source.get("duplicate_kind") == "exact_text":
        kind, match, similarity = "exact_text", source.get("duplicate_of"), source.get("similarity")
    elif source.get("duplicate_kind") == "near":
        kind, match, similarity = "near", source.get("duplicate_of"), source.get("similarity")
    elif source.get("story_relation") == "same_event":
        kind, match, similarity = "same_event", source.get("related_to"), source.get("event_score")
    else:
        kind, match, similarity = "new", None, None
    return Verdict(
        story_id=str(story),
        match=match,
        kind=kind,
        similarity=float(similarity) if similarity is not None else None,
    )


def stored_of(hit: Mapping[str, Any]) -> Stored:
    """An article document from a search hit or a get, read with its version."""
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
            band_keys=tuple(str(k) for k in source.get("band_keys", UNREAD_KEYS)),
            num_perm=int(source["num_perm"]),
        )
    return Stored(
        id=hit["_id"],
        index=hit["_index"],
        seq_no=int(hit["_seq_no"]),
        primary_term=int(hit["_primary_term"]),
        key=(
            parse_iso_utc(source["published"]) if source.get("published") else EPOCH,
            parse_iso_utc(fetched) if fetched else EPOCH,
            hit["_id"],
        ),
        fingerprint=print_,
        verdict=verdict_of(source),
        event=EventSignature.from_document(source),
        language=str(source.get("language") or ""),
        published=parse_iso_utc(source["published"]) if source.get("published") else EPOCH,
        moved_from=_strings(source.get("story_moved_from")),
    )


def _strings(value: Any) -> tuple[str, ...]:
    """A keyword field as stored: absent, one value or a list."""
    if value is None:
        return ()
    return tuple(str(v) for v in value) if isinstance(value, list) else (str(value),)


def fullness(print_: Fingerprint | None) -> int:
    """0: no fingerprint read, 1: read without its band keys, 2: complete."""
    if print_ is None:
        return 0
    return 1 if print_.band_keys == UNREAD_KEYS else 2


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size``, one request each."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


class Batch:
    """One slice of ``ingest``: the articles' documents and every other one read, what changed."""

    def __init__(
        self,
        es: Elasticsearch,
        names: IndexNames,
        config: DedupConfig,
        events: EventConfig = DEFAULT_EVENT_CONFIG,
    ) -> None:
        self.es = es
        self.names = names
        self.config = config
        self.events = events
        self.known: dict[str, Stored] = {}
        self.stories: set[str] = set()  # story ids whose membership this batch changed
        self.counts: Counter[str] = Counter()  # what it took, for the debug log
        self.moved: set[str] = set()  # articles whose story changed after they had one
        # Articles whose moved_from this batch answers for, at the version that set or showed it.
        self.flagged: dict[str, tuple[int, int]] = {}

    def learn(self, stored: Stored) -> Stored:
        """Keep the newest version seen of each document, and the fullest fingerprint read."""
        old = self.known.get(stored.id)
        if old is not None:
            newest = stored if stored.newer_than(old) else old
            print_ = max(old.fingerprint, stored.fingerprint, key=fullness)
            reads = [s for s in (newest, old, stored) if s.event is not None]
            # A state-only read has no signature, language or time: keep those read before.
            full = reads[0] if reads else newest
            stored = replace(
                newest,
                fingerprint=print_,
                event=full.event,
                language=full.language or newest.language,
                published=full.published,
            )
        self.known[stored.id] = stored
        return stored

    def refresh(self) -> None:
        """Refresh the articles; a shard copy that failed to refresh fails the batch.

        The lookups that follow rely on seeing every write made before the refresh.
        """
        shards = self.es.indices.refresh(index=self.names.articles).body.get("_shards", {})
        if shards.get("failed"):
            raise SearchUnavailable(
                node_url(self.es), f"refresh of {self.names.articles} failed on some shards"
            )

    def refused(self, index: str, ident: str, result: Mapping[str, Any]) -> Exception:
        """What one refused item (of a bulk or msearch) means, to raise.

        A 5xx or 429 is the cluster's trouble (a node lost, a primary not yet promoted): the
        batch is retried later. Anything else is this document's.
        """
        status = int(result.get("status") or 0)
        if status >= 500 or status == 429:
            return SearchUnavailable(node_url(self.es), f"{index}/{ident}: {result.get('error')}")
        return StoryWriteRejected(index, ident, result.get("error"))

    def reread(self, ids: Iterable[str]) -> None:
        """Realtime get of the documents (by concrete index): sees writes not yet refreshed."""
        wanted = sorted({i for i in ids if i in self.known})
        self.get({i: self.known[i].index for i in wanted}, STATE_FIELDS)

    def get(self, where: Mapping[str, str], fields: Sequence[str]) -> None:
        """Read ``fields`` of the documents (id -> concrete index) by mget, and learn them."""
        ids = list(where)
        for part in chunks(ids, 1000):
            docs = [{"_index": where[i], "_id": i} for i in part]
            for doc in self.mget(docs=docs, source=list(fields)):
                self.learn(stored_of(doc))

    def mget(self, **request: Any) -> list[dict[str, Any]]:
        """The documents an mget found; one it could not read fails the batch.

        An item answered with an error (its shard has no copy started, a node just lost) is
        not a missing document: taken for one, a story's candidate would silently drop out.
        """
        found: list[dict[str, Any]] = []
        for doc in self.es.mget(**request)["docs"]:
            if "error" in doc:
                raise SearchUnavailable(
                    node_url(self.es), f"{doc.get('_index')}/{doc.get('_id')}: {doc['error']}"
                )
            if doc.get("found"):
                found.append(doc)
        return found

    def find(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are stored, in any index behind the alias (a search: refreshed only)."""
        found: set[str] = set()
        for part in chunks(ids, 1000):
            response = self.es.search(
                index=self.names.articles,
                allow_partial_search_results=False,
                query={"ids": {"values": list(part)}},
                size=len(part),
                seq_no_primary_term=True,
                source_includes=SOURCE_FIELDS,
            )
            found |= {self.learn(stored_of(hit)).id for hit in response["hits"]["hits"]}
        return found
