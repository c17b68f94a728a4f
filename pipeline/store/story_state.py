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
from pipeline.normalise.fingerprint import DedupConfig, Fingerprint
from pipeline.store.articles import parse_iso_utc
from pipeline.store.client import IndexNames

__all__ = [
    "EPOCH",
    "MAX_ATTEMPTS",
    "MAX_HITS",
    "SOURCE_FIELDS",
    "STATE_FIELDS",
    "UNREAD_KEYS",
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

StoredKind = Literal["new", "exact_text", "near"]

# Hits one search returns: a batch's candidates, or the articles of the stories it touched.
# Past that, one search per article (or story) instead.
MAX_HITS: Final = 10_000
# Conflicts come from other workers touching the same documents at the same moment; each
# retry re-reads, so a handful always suffices unless something rewrites documents in a loop.
MAX_ATTEMPTS: Final = 20
SOURCE_FIELDS: Final = [
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
# The band keys of a candidate read without them (``pipeline.store.story_match``), until they
# are needed for a lookup of its own.
UNREAD_KEYS: Final = ("(not read)",)
STATE_FIELDS: Final = ["fetched", "story_id", "duplicate_of", "duplicate_kind", "similarity"]
_KIND_RANK: Final[Mapping[str, int]] = {"new": 0, "near": 1, "exact_text": 2}
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
    """The story fields of one article document."""

    story_id: str
    duplicate_of: str | None
    kind: StoredKind
    similarity: float | None

    def fields(self) -> dict[str, Any]:
        """The verdict as article document fields, for a partial update."""
        # Explicit nulls: a partial update must clear what an earlier verdict wrote.
        return {
            "story_id": self.story_id,
            "duplicate_of": self.duplicate_of,
            "duplicate_kind": None if self.kind == "new" else self.kind,
            "similarity": self.similarity,
        }


def better(a: Verdict, b: Verdict | None) -> bool:
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
class Stored:
    """One article document as last read or written: where it is, its version and verdict."""

    id: str
    index: str  # the concrete index: after a rollover the alias cannot address old documents
    seq_no: int
    primary_term: int
    key: tuple[datetime, str]
    fingerprint: Fingerprint | None  # None when read without its MinHash
    verdict: Verdict | None  # None: no story decided yet

    def newer_than(self, other: Stored) -> bool:
        """Whether this read is of a later version of the document than ``other``."""
        return (self.primary_term, self.seq_no) > (other.primary_term, other.seq_no)


def verdict_of(source: Mapping[str, Any]) -> Verdict | None:
    """The verdict an article document holds, or None when it has no story yet."""
    story = source.get("story_id")
    if not story:
        return None
    kind = source.get("duplicate_kind")
    similarity = source.get("similarity")
    return Verdict(
        story_id=str(story),
        duplicate_of=source.get("duplicate_of"),
        kind=kind if kind in ("exact_text", "near") else "new",
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
        key=(parse_iso_utc(fetched) if fetched else EPOCH, hit["_id"]),
        fingerprint=print_,
        verdict=verdict_of(source),
    )


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

    def __init__(self, es: Elasticsearch, names: IndexNames, config: DedupConfig) -> None:
        self.es = es
        self.names = names
        self.config = config
        self.known: dict[str, Stored] = {}
        self.stories: set[str] = set()  # story ids whose membership this batch changed
        self.counts: Counter[str] = Counter()  # what it took, for the debug log
        self.moved: set[str] = set()  # articles whose story changed after they had one

    def learn(self, stored: Stored) -> Stored:
        """Keep the newest version seen of each document, and the fullest fingerprint read."""
        old = self.known.get(stored.id)
        if old is not None:
            newest = stored if stored.newer_than(old) else old
            print_ = max(old.fingerprint, stored.fingerprint, key=fullness)
            stored = replace(newest, fingerprint=print_)
        self.known[stored.id] = stored
        return stored

    def reread(self, ids: Iterable[str]) -> None:
        """Realtime get of the documents (by concrete index): sees writes not yet refreshed."""
        wanted = sorted({i for i in ids if i in self.known})
        for part in chunks(wanted, 1000):
            docs = [{"_index": self.known[i].index, "_id": i} for i in part]
            response = self.es.mget(docs=docs, source=STATE_FIELDS)
            for doc in response["docs"]:
                if doc.get("found"):
                    self.learn(stored_of(doc))

    def find(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are stored, in any index behind the alias (a search: refreshed only)."""
        found: set[str] = set()
        for part in chunks(ids, 1000):
            response = self.es.search(
                index=self.names.articles,
                query={"ids": {"values": list(part)}},
                size=len(part),
                seq_no_primary_term=True,
                source_includes=SOURCE_FIELDS,
            )
            found |= {self.learn(stored_of(hit)).id for hit in response["hits"]["hits"]}
        return found
