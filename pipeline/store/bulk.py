"""Index stage: bulk writes that account for every document, dead letters, run statistics."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.helpers import streaming_bulk

from pipeline.errors import PermanentError
from pipeline.store.client import IndexNames, SearchUnavailable, call, node_url

__all__ = [
    "MAX_CHUNK_BYTES",
    "BulkAction",
    "BulkRejected",
    "BulkReport",
    "IndexingInterrupted",
    "Outcome",
    "RunStats",
    "record_run",
    "write",
]

log = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "already_stored", "conflict", "dead_lettered"]

# Elasticsearch's advice for a bulk request is a few MB to ~10 MB; larger ones only add heap
# pressure on the coordinating node without raising throughput.
MAX_CHUNK_BYTES: Final = 10 * 1024 * 1024
# Per-item and whole-request statuses worth waiting for: 429 is back-pressure (a full write
# queue or a tripped circuit breaker), 502-504 a node or proxy in trouble.
_RETRY_STATUSES: Final = (429, 502, 503, 504)
# When one id appears twice in a call (a resend in the same batch, say), the outcome kept for
# it is the one a caller must not miss; every item still counts in the totals.
_PRECEDENCE: Final[dict[str, int]] = {
    "dead_lettered": 4,
    "conflict": 3,
    "created": 2,
    "updated": 1,
    "already_stored": 0,
}


@dataclass(frozen=True, slots=True)
class BulkAction:
    """One document to write: ``create`` stores it once, ``index`` overwrites, ``update`` merges.

    ``if_seq_no``/``if_primary_term`` make the write conditional on the version last read, the
    safe way to change a document without scripts.
    """

    index: str
    id: str
    document: dict[str, Any]
    op: Literal["index", "create", "update"] = "index"
    if_seq_no: int | None = None
    if_primary_term: int | None = None


@dataclass(slots=True)
class BulkReport:
    """Every item's outcome by id, with the error of each dead letter and each write's version.

    Outcomes: ``created``; ``updated`` (overwritten or merged); ``already_stored`` (409 under
    ``create``: the document was there, or an update that changed nothing); ``conflict`` (409:
    someone changed it since ``if_seq_no`` was read); ``dead_lettered`` (refused for good; the
    document and the error are stored in the dead-letter index).
    """

    outcomes: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # id -> (seq_no, primary_term) of the stored version, for a later conditional update.
    versions: dict[str, tuple[int, int]] = field(default_factory=dict)
    tally: Counter[str] = field(default_factory=Counter)

    def add(self, doc_id: str, outcome: Outcome, *, error: str | None = None) -> None:
        """Record one item; counts include every item, ``outcomes`` keeps one per id."""
        self.tally[outcome] += 1
        previous = self.outcomes.get(doc_id)
        if previous is None or _PRECEDENCE[outcome] >= _PRECEDENCE[previous]:
            self.outcomes[doc_id] = outcome
        if error is not None:
            self.errors[doc_id] = error

    @property
    def created(self) -> int:
        """Items written as new documents."""
        return self.tally["created"]

    @property
    def updated(self) -> int:
        """Items that overwrote or merged into a document."""
        return self.tally["updated"]

    @property
    def already_stored(self) -> int:
        """Items whose document was already there as written."""
        return self.tally["already_stored"]

    @property
    def conflicts(self) -> int:
        """Items refused because the document changed since it was read."""
        return self.tally["conflict"]

    @property
    def dead_lettered(self) -> int:
        """Items refused for good and stored in the dead-letter index."""
        return self.tally["dead_lettered"]

    @property
    def total(self) -> int:
        """Items accounted for (acknowledged by Elasticsearch or dead-lettered)."""
        return sum(self.tally.values())


class IndexingInterrupted(SearchUnavailable):
    """Elasticsearch went away mid-write; ``report`` holds only the acknowledged items.

    Everything not in the report is in an unknown state: write it again (create semantics and
    deterministic ids make the resend harmless).
    """

    def __init__(self, url: str, detail: str, report: BulkReport) -> None:
        super().__init__(url, detail)
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url, self.detail, self.report))


class BulkRejected(PermanentError):
    """Elasticsearch refused a whole bulk request or a dead letter (auth, size, a bad body)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail

    def __str__(self) -> str:
        return f"Elasticsearch refused the bulk request ({self.status}): {self.detail}"


@dataclass(frozen=True, slots=True)
class _DeadLetter:
    action: BulkAction
    status: int
    error_type: str
    error_reason: str


def write(
    es: Elasticsearch,
    actions: Iterable[BulkAction],
    *,
    names: IndexNames,
    stage: str,
    run_id: str | None = None,
    chunk_docs: int = 500,
    chunk_bytes: int = MAX_CHUNK_BYTES,
    max_retries: int = 5,
    initial_backoff: float = 0.5,
    max_backoff: float = 30.0,
    refresh: bool = False,
) -> BulkReport:
    """Write ``actions`` in bulk and account for every one of them.

    429s are retried with capped exponential backoff, then dead-lettered; other refusals
    (mapping errors, a missing document under update) are dead-lettered at once, with the
    document and the error, in ``names.dead_letters``. A connection failure or a 5xx that
    outlasts the retries raises ``IndexingInterrupted`` (a ``SearchUnavailable``) carrying
    only what was acknowledged. With ``refresh`` the written indices are refreshed at the end.
    """
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise ValueError(f"chunk_bytes is capped at {MAX_CHUNK_BYTES} bytes")
    # The transport would re-send a 429 or 503 at once, without waiting; leave those to the
    # helper, which backs off. It still re-sends a whole bulk after a dropped connection
    # (elasticsearch #19286): harmless for create (already_stored) and index (same document);
    # a conditional update whose ack was lost comes back as a conflict, to be re-read.
    ledger = _Ledger(es, es.options(retry_on_status=()), names, stage, run_id, chunk_docs)
    try:
        results = streaming_bulk(
            ledger.client,
            ledger.send(actions),
            chunk_size=chunk_docs,
            max_chunk_bytes=chunk_bytes,
            raise_on_error=False,
            # A whole-request failure must not be turned into per-item failures: a 401 would
            # dead-letter every document. It raises, and is translated below.
            raise_on_exception=True,
            max_retries=max_retries,
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            retry_on_status=_RETRY_STATUSES,
            yield_ok=True,
        )
        for ok, info in results:
            ledger.answer(ok, info)
        ledger.flush()
    except TransportError as exc:
        # Connection refused or reset, a timeout: the chunk in flight is unacknowledged.
        raise IndexingInterrupted(node_url(es), str(exc), ledger.report) from exc
    except ApiError as exc:
        if exc.status_code in _RETRY_STATUSES or exc.status_code >= 500:
            raise IndexingInterrupted(node_url(es), str(exc), ledger.report) from exc
        raise BulkRejected(exc.status_code, str(exc)) from exc
    report, targets = ledger.report, ledger.targets
    if refresh and targets:
        indices = sorted(targets | ({names.dead_letters} if report.dead_lettered else set()))
        call(es, lambda: es.indices.refresh(index=indices))
    return report


@dataclass
class _Ledger:
    """One ``write``: the documents sent and not yet answered for, the report, dead letters."""

    es: Elasticsearch
    client: Elasticsearch  # es without the transport's own retries
    names: IndexNames
    stage: str
    run_id: str | None
    chunk_docs: int
    report: BulkReport = field(default_factory=BulkReport)
    # Documents sent and not yet answered for, so a refused one can be dead-lettered whole:
    # with raise_on_error=False the helper does not hand the document back.
    in_flight: dict[str, deque[BulkAction]] = field(default_factory=dict)
    pending_dead: list[_DeadLetter] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)

    def send(self, actions: Iterable[BulkAction]) -> Iterator[dict[str, Any]]:
        """The helper's items for ``actions``, each noted as in flight."""
        for action in actions:
            self.in_flight.setdefault(action.id, deque()).append(action)
            self.targets.add(action.index)
            yield _bulk_item(action)

    def answer(self, ok: bool, info: Mapping[str, Any]) -> None:
        """Account for one answer; a 5xx that outlasted the retries raises IndexingInterrupted."""
        op_type, item = next(iter(info.items()))
        doc_id = str(item.get("_id"))
        action = _take(self.in_flight, doc_id)
        status = int(item.get("status", 500))
        if ok:
            result = item.get("result")
            self.report.add(doc_id, _success_outcome(result))
            if "_seq_no" in item and "_primary_term" in item:
                self.report.versions[doc_id] = (int(item["_seq_no"]), int(item["_primary_term"]))
            return
        error = item.get("error")
        error_type, reason = _error_parts(error)
        if status == 409:
            conditional = action is not None and action.if_seq_no is not None
            outcome: Outcome = (
                "already_stored" if op_type == "create" and not conditional else "conflict"
            )
            self.report.add(doc_id, outcome)
            return
        if status >= 500:
            self.flush()
            raise IndexingInterrupted(
                node_url(self.es), f"{status} {error_type} for {doc_id}: {reason}", self.report
            )
        if action is None:
            # Cannot happen unless Elasticsearch answers for an id it was never sent.
            raise BulkRejected(status, f"an answer for unknown id {doc_id!r}: {reason}")
        log.debug("dead letter %s %s: %s %s", action.index, doc_id, status, reason)
        self.pending_dead.append(_DeadLetter(action, status, error_type, reason))
        if len(self.pending_dead) >= self.chunk_docs:
            self.flush()

    def flush(self) -> None:
        """Write the dead letters collected so far."""
        _flush_dead_letters(
            self.client, self.names, self.stage, self.run_id, self.pending_dead, self.report
        )


def _bulk_item(action: BulkAction) -> dict[str, Any]:
    item: dict[str, Any] = {"_op_type": action.op, "_index": action.index, "_id": action.id}
    if action.if_seq_no is not None:
        item["if_seq_no"] = action.if_seq_no
    if action.if_primary_term is not None:
        item["if_primary_term"] = action.if_primary_term
    item["_source"] = {"doc": action.document} if action.op == "update" else action.document
    return item


def _take(in_flight: dict[str, deque[BulkAction]], doc_id: str) -> BulkAction | None:
    queue = in_flight.get(doc_id)
    if not queue:
        return None
    action = queue.popleft()
    if not queue:
        del in_flight[doc_id]
    return action


def _success_outcome(result: object) -> Outcome:
    if result == "created":
        return "created"
    # "noop": an update whose fields already held these values.
    if result == "noop":
        return "already_stored"
    return "updated"


def _error_parts(error: object) -> tuple[str, str]:
    if isinstance(error, dict):
        reason = str(error.get("reason", ""))
        caused = error.get("caused_by")
        if isinstance(caused, dict) and caused.get("reason"):
            reason = f"{reason}: {caused['reason']}"
        return str(error.get("type", "unknown")), reason
    return "unknown", str(error)


def _flush_dead_letters(
    es: Elasticsearch,
    names: IndexNames,
    stage: str,
    run_id: str | None,
    pending: list[_DeadLetter],
    report: BulkReport,
) -> None:
    """Store the pending dead letters; an item counts as dead-lettered only once it is stored."""
    if not pending:
        return
    recorded = datetime.now(UTC).isoformat()
    letters = list(pending)
    pending.clear()

    def items() -> Iterator[dict[str, Any]]:
        for letter in letters:
            yield {
                "_op_type": "index",
                "_index": names.dead_letters,
                "_id": _dead_letter_id(letter.action, stage, run_id),
                "_source": {
                    "target": letter.action.index,
                    "doc_id": letter.action.id,
                    "stage": stage,
                    "status": letter.status,
                    "error_type": letter.error_type,
                    "error_reason": letter.error_reason,
                    "document": letter.action.document,
                    "recorded": recorded,
                    "run_id": run_id,
                },
            }

    # Losing a dead letter would lose the document: any failure here raises.
    for (ok, info), letter in zip(
        streaming_bulk(
            es,
            items(),
            raise_on_error=False,
            raise_on_exception=True,
            max_retries=5,
            initial_backoff=0.5,
            max_backoff=30.0,
            retry_on_status=_RETRY_STATUSES,
        ),
        letters,
        strict=True,
    ):
        if not ok:
            item = next(iter(info.values()))
            status = int(item.get("status", 500))
            error_type, reason = _error_parts(item.get("error"))
            detail = f"dead letter for {letter.action.id} not stored: {error_type}: {reason}"
            if status in _RETRY_STATUSES or status >= 500:
                raise IndexingInterrupted(node_url(es), detail, report)
            raise BulkRejected(status, detail)
        error = f"{letter.status} {letter.error_type}: {letter.error_reason}"
        report.add(letter.action.id, "dead_lettered", error=error)


def _dead_letter_id(action: BulkAction, stage: str, run_id: str | None) -> str:
    # A retried task writes the same letter again instead of adding a second one.
    return _digest(action.index, action.id, stage, run_id or "")


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:40]


# --- run statistics ---------------------------------------------------------------------


@dataclass(slots=True)
class RunStats:
    """What one stage did for one source in one run, counted by outcome."""

    run_id: str
    stage: str
    source: str
    started: datetime
    finished: datetime | None = None
    fetched: int = 0
    new: int = 0
    duplicate: int = 0
    failed: int = 0
    failed_by_reason: Counter[str] = field(default_factory=Counter)
    indexed: int = 0
    dead_lettered: int = 0

    def fail(self, reason: str, count: int = 1) -> None:
        """Count ``count`` failures with ``reason`` (``http_404``, ``no_text``, ...)."""
        self.failed += count
        self.failed_by_reason[reason] += count

    def add_report(self, report: BulkReport) -> None:
        """Count a bulk write: new documents are indexed, dead letters counted apart."""
        self.indexed += report.created + report.updated
        self.dead_lettered += report.dead_lettered

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish, once finished."""
        if self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()

    @property
    def doc_id(self) -> str:
        """The runs-index id: one document per run, stage and source."""
        return _digest(self.run_id, self.stage, self.source)

    def document(self) -> dict[str, Any]:
        """The runs-index document (mappings/runs.json)."""
        return {
            "run_id": self.run_id,
            "stage": self.stage,
            "source": self.source,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat() if self.finished else None,
            "duration_seconds": self.duration,
            "fetched": self.fetched,
            "new": self.new,
            "duplicate": self.duplicate,
            "failed": self.failed,
            "indexed": self.indexed,
            "dead_lettered": self.dead_lettered,
            "failed_by_reason": dict(self.failed_by_reason),
        }


def record_run(
    es: Elasticsearch, names: IndexNames, stats: RunStats, *, refresh: bool = False
) -> str:
    """Store ``stats`` under a deterministic id, so a retried run overwrites its own record."""
    doc_id = stats.doc_id
    call(
        es,
        lambda: es.index(index=names.runs, id=doc_id, document=stats.document(), refresh=refresh),
    )
    return doc_id
