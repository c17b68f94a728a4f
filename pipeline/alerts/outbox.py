"""The outbox: alert and digest documents, and the digest state machine that moves them.

The outbox index holds *alerts* (one per rule and story, written by pipeline.alerts.match) and
*digests*. A digest is created once per recipient of a rule and digest interval (``_id =
hash(rule, recipient, end of the previous digest)``, create, so two workers cannot both make
it), then its alerts are marked as no longer owed to that recipient, then it is claimed and
sent (pipeline.alerts.send). This module owns every change of a digest's state and its write:

    pending -> sending -> transmitting -> sent | failed | unknown

A 4xx leaves it pending with a later ``next_attempt``; a 5xx fails it with the code; a
connection lost after the final "." of DATA makes it ``unknown`` and it is never re-sent on its
own (``resend`` is the operator's decision). ``transmitting`` is written, and acknowledged,
right before the DATA command: a worker that died in ``sending`` never gave DATA, so its digest
goes back to pending; one that died in ``transmitting`` leaves it ``unknown``. The delivery
policy behind the outcomes is pipeline.alerts.smtp's.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from elasticsearch import Elasticsearch

from pipeline.alerts.reads import ROUNDS, Hit, iso, mget, parse_time, scan
from pipeline.alerts.smtp import DeliveryResult, Outcome
from pipeline.errors import PermanentError
from pipeline.store.bulk import BulkAction, BulkReport, write
from pipeline.store.client import IndexNames, call

__all__ = [
    "IN_FLIGHT",
    "OUTBOX_MAX_RUNS",
    "OUTBOX_RETRY_BASE",
    "OUTBOX_RETRY_CAP",
    "SENDING_LEASE",
    "Attempted",
    "Claim",
    "ClaimLost",
    "InFlight",
    "Interrupted",
    "OutboxEvent",
    "OutboxRecord",
    "OutboxState",
    "OutboxTransitionError",
    "Resend",
    "Transmit",
    "alert_id",
    "claim",
    "create_digest",
    "digest_id",
    "last_windows",
    "mark_owed",
    "open_digests",
    "outbox_counts",
    "outbox_transition",
    "owed_alerts",
    "read_record",
    "recover_interrupted",
    "resend",
]

log = logging.getLogger(__name__)

# Outbox retry schedule across delivery runs (deliver()'s own retries are within one run).
OUTBOX_RETRY_BASE: Final = timedelta(minutes=5)
OUTBOX_RETRY_CAP: Final = timedelta(hours=6)
# After this many runs ending in failed_transient the record fails for an operator to see,
# rather than being retried for ever unnoticed (elastalert2 #753 is the opposite failure).
OUTBOX_MAX_RUNS: Final = 8
# A digest found in "sending" or "transmitting" for longer than this has lost its worker: SMTP's
# own limits (10 minutes for the reply to the final ".") are well inside it.
SENDING_LEASE: Final = timedelta(minutes=30)


# --- the digest state machine --------------------------------------------------------------------


class OutboxState(StrEnum):
    """Where a digest is: pending -> sending -> transmitting -> sent | failed | unknown.

    ``sending``: claimed, DATA not yet given (a failure here goes back to pending or failed);
    ``transmitting``: recorded right before DATA, so the server may have the message.
    """

    PENDING = "pending"
    SENDING = "sending"
    TRANSMITTING = "transmitting"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class OutboxRecord:
    """The delivery state of one outbox entry; ``runs`` counts claims since the last resend.

    ``pending_recipients`` is empty until a run reaches some recipients and not others; then it
    names those still owed the message, and the next run passes them as ``deliver``'s
    ``recipients`` instead of the whole list.
    """

    state: OutboxState = OutboxState.PENDING
    runs: int = 0
    next_attempt: datetime | None = None
    reason: str = ""
    message_id: str = ""
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)
    updated: datetime | None = None
    pending_recipients: tuple[str, ...] = ()


@dataclass(frozen=True)
class Claim:
    """A worker takes a due pending record and is about to send it."""

    at: datetime


@dataclass(frozen=True)
class Transmit:
    """The worker is about to give DATA: from now on the server may get the message."""

    at: datetime


@dataclass(frozen=True)
class Attempted:
    """``deliver`` returned ``result`` for a record in ``sending`` or ``transmitting``."""

    result: DeliveryResult
    at: datetime


@dataclass(frozen=True)
class Interrupted:
    """A record was found in ``sending`` or ``transmitting`` with no worker left to finish it."""

    at: datetime


@dataclass(frozen=True)
class Resend:
    """An operator asks for a failed or unknown record to be sent again."""

    at: datetime


OutboxEvent = Claim | Transmit | Attempted | Interrupted | Resend


class OutboxTransitionError(PermanentError):
    """An event that the record's state does not allow (e.g. claiming a sent digest)."""

    def __init__(self, state: str, event: str, problem: str) -> None:
        super().__init__(state, event, problem)
        self.state = state
        self.event = event
        self.problem = problem

    def __str__(self) -> str:
        return f"outbox record in {self.state!s}: cannot apply {self.event}: {self.problem}"


# A claimed digest: "sending" before the DATA command, "transmitting" from it on.
IN_FLIGHT: Final = (OutboxState.SENDING, OutboxState.TRANSMITTING)


def outbox_transition(record: OutboxRecord, event: OutboxEvent) -> OutboxRecord:
    """The record after ``event``; invalid transitions raise OutboxTransitionError."""
    state = record.state
    match event:
        case Claim(at=at) if state is OutboxState.PENDING:
            if record.next_attempt is not None and at < record.next_attempt:
                raise OutboxTransitionError(
                    state, "claim", f"not due before {record.next_attempt.isoformat()}"
                )
            return replace(record, state=OutboxState.SENDING, runs=record.runs + 1, updated=at)
        case Transmit(at=at) if state is OutboxState.SENDING:
            return replace(record, state=OutboxState.TRANSMITTING, updated=at)
        case Attempted(result=result, at=at) if state in IN_FLIGHT:
            return _after_attempt(record, result, at)
        case Interrupted(at=at) if state is OutboxState.SENDING:
            # DATA was never given, so no server has the message: send it again, now.
            reason = "interrupted before DATA; the message was not handed over"
            return replace(
                record, state=OutboxState.PENDING, next_attempt=None, reason=reason, updated=at
            )
        case Interrupted(at=at) if state is OutboxState.TRANSMITTING:
            reason = "interrupted while transmitting; the message may have been delivered"
            return replace(record, state=OutboxState.UNKNOWN, reason=reason, updated=at)
        case Resend(at=at) if state in (OutboxState.FAILED, OutboxState.UNKNOWN):
            return replace(
                record, state=OutboxState.PENDING, runs=0, next_attempt=None, reason="", updated=at
            )
    name = type(event).__name__.lower()
    raise OutboxTransitionError(state, name, f"{name} is not allowed from {state!s}")


def _after_attempt(record: OutboxRecord, result: DeliveryResult, at: datetime) -> OutboxRecord:
    # A run sent to pending_recipients only: the others' verdicts from earlier runs still hold.
    earlier = {
        address: reply
        for address, reply in record.refused.items()
        if record.pending_recipients and address not in record.pending_recipients
    }
    done = replace(
        record,
        message_id=result.message_id or record.message_id,
        refused=earlier | result.refused,
        next_attempt=None,
        updated=at,
    )
    if result.outcome is Outcome.SENT and not result.deferred:
        return replace(done, state=OutboxState.SENT, reason=result.detail, pending_recipients=())
    if result.outcome is Outcome.UNKNOWN:
        return replace(done, state=OutboxState.UNKNOWN, reason=result.detail)
    if result.outcome is Outcome.FAILED_PERMANENT:
        return replace(done, state=OutboxState.FAILED, reason=result.detail)
    if result.outcome is Outcome.SENT:
        # Some recipients have it; the deferred ones must still get the alert, so for them
        # alone this is a transient failure, retried like one below.
        done = replace(done, pending_recipients=result.deferred)
    if record.runs >= OUTBOX_MAX_RUNS:
        reason = f"still failing after {record.runs} runs: {result.detail}"
        return replace(done, state=OutboxState.FAILED, reason=reason)
    delay = min(OUTBOX_RETRY_CAP, OUTBOX_RETRY_BASE * 2 ** max(0, record.runs - 1))
    return replace(done, state=OutboxState.PENDING, reason=result.detail, next_attempt=at + delay)


# --- outbox documents ---------------------------------------------------------------------------


def _hash(*parts: str) -> str:
    # NUL cannot occur in rule ids, story ids or addresses, so the join is unambiguous.
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:40]


def alert_id(rule_id: str, story_id: str) -> str:
    """The outbox id of the one alert a rule may raise for a story."""
    return _hash("alert", rule_id, story_id)


def digest_id(rule_id: str, recipient: str, previous_end: datetime | None) -> str:
    """The outbox id of one digest: a second worker computing it too cannot make another.

    It follows the end of the recipient's previous digest for the rule (None for the first),
    which every worker reads alike, and each digest ends later than the one before.
    """
    after = iso(previous_end) if previous_end is not None else "first"
    return _hash("digest", rule_id, recipient.lower(), after)


def recover_interrupted(
    es: Elasticsearch, names: IndexNames, now: datetime
) -> list[tuple[Hit, OutboxRecord]]:
    """Digests left in flight past the lease, whose worker died, and where this run put them.

    ``sending`` never reached DATA, so no server has the mail: back to pending. In
    ``transmitting`` the server may have it: ``unknown``, for an operator. A digest another
    worker recovered or claimed first is not among those returned.
    """
    stale = scan(
        es,
        names.alert_outbox,
        {
            "bool": {
                "filter": [
                    {"term": {"kind": "digest"}},
                    {"terms": {"state": [state.value for state in IN_FLIGHT]}},
                    {"range": {"updated": {"lt": iso(now - SENDING_LEASE)}}},
                ]
            }
        },
    )
    recovered = []
    for hit in stale:
        record = outbox_transition(read_record(hit.source), Interrupted(at=now))
        outcome = _update(es, names, hit, record_fields(record)).outcomes.get(hit.id)
        if outcome != "updated":
            continue  # another worker recovered or claimed it first
        log.warning("digest %s: worker gone; now %s (%s)", hit.id, record.state, record.reason)
        recovered.append((hit, record))
    return recovered


def open_digests(es: Elasticsearch, names: IndexNames) -> dict[tuple[str, str], list[Hit]]:
    """Digests pending or in flight, by (rule, lower-case recipient), oldest window first."""
    query = {
        "bool": {
            "filter": [
                {"term": {"kind": "digest"}},
                {"terms": {"state": [OutboxState.PENDING.value, *(s.value for s in IN_FLIGHT)]}},
            ]
        }
    }
    grouped: dict[tuple[str, str], list[Hit]] = defaultdict(list)
    for hit in scan(es, names.alert_outbox, query, sort=("window_start",)):
        grouped[(hit.source["rule_id"], str(hit.source["recipient"]).lower())].append(hit)
    return grouped


def last_windows(es: Elasticsearch, names: IndexNames) -> dict[tuple[str, str], datetime]:
    """The end of the latest digest per (rule, recipient): the digest interval counts from it."""
    response = call(
        es,
        es.search,
        index=names.alert_outbox,
        size=0,
        query={"term": {"kind": "digest"}},
        aggs={
            "pairs": {
                "composite": {
                    "size": 10_000,
                    "sources": [
                        {"rule": {"terms": {"field": "rule_id"}}},
                        {"recipient": {"terms": {"field": "recipient"}}},
                    ],
                },
                "aggs": {"end": {"max": {"field": "window_end"}}},
            }
        },
    )
    last: dict[tuple[str, str], datetime] = {}
    for bucket in response["aggregations"]["pairs"]["buckets"]:
        value = bucket["end"].get("value")
        if value is not None:
            key = (str(bucket["key"]["rule"]), str(bucket["key"]["recipient"]).lower())
            last[key] = datetime.fromtimestamp(value / 1000, tz=UTC)
    return last


def owed_alerts(
    es: Elasticsearch, names: IndexNames, rule_id: str, recipient: str, limit: int
) -> list[Hit]:
    """Up to ``limit`` ready alerts of the rule still owed to ``recipient``, oldest first."""
    query = {
        "bool": {
            "filter": [
                {"term": {"kind": "alert"}},
                {"term": {"rule_id": rule_id}},
                {"term": {"status": "ready"}},
                {"term": {"pending_for": recipient}},
            ]
        }
    }
    return scan(es, names.alert_outbox, query, sort=("ready_at",), limit=limit)


def create_digest(
    es: Elasticsearch,
    names: IndexNames,
    rule_id: str,
    recipient: str,
    owed: Sequence[Hit],
    last: datetime | None,
    now: datetime,
) -> str | None:
    """Create the recipient's next digest of ``owed``, pending; None if another worker did."""
    start = (
        last
        if last is not None
        else min((parse_time(hit.source.get("ready_at")) or now for hit in owed), default=now)
    )
    did = digest_id(rule_id, recipient, last)
    document = {
        "kind": "digest",
        "rule_id": rule_id,
        "recipient": recipient,
        "window_start": iso(start),
        "window_end": iso(max(now, start)),
        "alert_ids": [hit.id for hit in owed],
        "marked": False,
        "state": OutboxState.PENDING.value,
        "runs": 0,
        "reason": "",
        "message_id": "",
        "refused": [],
        "pending_recipients": [],
        "updated": iso(now),
    }
    written = write(
        es,
        [BulkAction(names.alert_outbox, did, document, op="create")],
        names=names,
        stage="alerts",
    )
    return did if written.outcomes.get(did) == "created" else None


def mark_owed(es: Elasticsearch, names: IndexNames, digest: Hit) -> None:
    """The digest's alerts are no longer owed to its recipient; then the digest says so."""
    recipient = str(digest.source["recipient"])
    pending = list(digest.source["alert_ids"])
    for _ in range(ROUNDS):
        actions = []
        for hit in mget(es, names.alert_outbox, pending).values():
            owed = list(hit.source.get("pending_for") or ())
            if recipient not in owed:
                continue
            actions.append(
                BulkAction(
                    names.alert_outbox,
                    hit.id,
                    {"pending_for": [r for r in owed if r != recipient]},
                    op="update",
                    if_seq_no=hit.seq_no,
                    if_primary_term=hit.primary_term,
                )
            )
        if not actions:
            break
        written = write(es, actions, names=names, stage="alerts")
        pending = [aid for aid, outcome in written.outcomes.items() if outcome == "conflict"]
        if not pending:
            break
    _update(es, names, digest, {"marked": True}, conditional=False)


class ClaimLost(Exception):
    """The claimed digest changed under us (recovered after the lease): give no DATA."""


@dataclass(slots=True)
class InFlight:
    """A claimed digest and its stored version: each write is conditional on the one before."""

    es: Elasticsearch
    names: IndexNames
    hit: Hit
    record: OutboxRecord
    now: datetime

    def transmit(self) -> None:
        """Record ``transmitting`` before the first DATA command; raise ClaimLost if moved on.

        The write is acknowledged before DATA goes out, so a worker killed from here on leaves
        a digest that recovery makes ``unknown``; killed before, it is sent again.
        """
        if self.record.state is OutboxState.TRANSMITTING:
            return  # a later attempt of the same run: recorded already
        record = outbox_transition(self.record, Transmit(at=self.now))
        did = self.hit.id
        written = _update(self.es, self.names, self.hit, record_fields(record))
        if written.outcomes.get(did) == "updated" and did in written.versions:
            version = written.versions[did]
        else:
            # A retried write whose first try landed comes back as a conflict. It is ours if
            # the record says "transmitting" with our run and time: another worker's claim
            # would have counted one more run.
            stored = mget(self.es, self.names.alert_outbox, [did]).get(did)
            mine = record_fields(record)
            if stored is None or record_fields(read_record(stored.source)) != mine:
                raise ClaimLost(did)
            version = (stored.seq_no, stored.primary_term)
        self.hit = Hit(did, self.hit.source, *version)
        self.record = record

    def finish(self, result: DeliveryResult) -> OutboxRecord:
        """Record what ``deliver`` said: sent, failed, unknown, or pending for a later run."""
        after = outbox_transition(self.record, Attempted(result=result, at=self.now))
        fields = record_fields(after)
        if after.state is OutboxState.SENT:
            fields["sent_at"] = iso(self.now)
        did = self.hit.id
        if _update(self.es, self.names, self.hit, fields).outcomes.get(did) != "updated":
            # Left in flight: after the lease "transmitting" becomes "unknown", never a second
            # send.
            log.error("digest %s: outcome %s could not be recorded", did, after.state)
        return after


def claim(
    es: Elasticsearch, names: IndexNames, hit: Hit, claimed: OutboxRecord, now: datetime
) -> InFlight | None:
    """Write the claim ``claimed``, conditional on the version read; None if another won."""
    written = _update(es, names, hit, record_fields(claimed))
    if written.outcomes.get(hit.id) != "updated" or hit.id not in written.versions:
        return None  # another worker claimed it between our read and our write
    return InFlight(es, names, Hit(hit.id, hit.source, *written.versions[hit.id]), claimed, now)


def _update(
    es: Elasticsearch,
    names: IndexNames,
    hit: Hit,
    fields: dict[str, Any],
    *,
    conditional: bool = True,
) -> BulkReport:
    action = BulkAction(
        names.alert_outbox,
        hit.id,
        fields,
        op="update",
        if_seq_no=hit.seq_no if conditional else None,
        if_primary_term=hit.primary_term if conditional else None,
    )
    return write(es, [action], names=names, stage="alerts")


def read_record(source: Mapping[str, Any]) -> OutboxRecord:
    """The OutboxRecord of an outbox digest document."""
    return OutboxRecord(
        state=OutboxState(source.get("state", OutboxState.PENDING.value)),
        runs=int(source.get("runs") or 0),
        next_attempt=parse_time(source.get("next_attempt")),
        reason=str(source.get("reason") or ""),
        message_id=str(source.get("message_id") or ""),
        refused={
            str(item["address"]): (int(item["code"]), str(item.get("reply") or ""))
            for item in source.get("refused") or ()
        },
        updated=parse_time(source.get("updated")),
        pending_recipients=tuple(source.get("pending_recipients") or ()),
    )


def record_fields(record: OutboxRecord) -> dict[str, Any]:
    """The outbox document's fields for ``record`` (the inverse of ``read_record``)."""
    return {
        "state": record.state.value,
        "runs": record.runs,
        "next_attempt": iso(record.next_attempt) if record.next_attempt else None,
        "reason": record.reason,
        "message_id": record.message_id,
        "refused": [
            {"address": address, "code": code, "reply": reply}
            for address, (code, reply) in sorted(record.refused.items())
        ],
        "updated": iso(record.updated) if record.updated else None,
        "pending_recipients": list(record.pending_recipients),
    }


# --- operator actions and counts --------------------------------------------------------------


def resend(es: Elasticsearch, names: IndexNames, did: str, *, now: datetime) -> OutboxRecord:
    """An operator's resend of a failed or unknown digest: pending again, same Message-ID."""
    hit = mget(es, names.alert_outbox, [did]).get(did)
    if hit is None or hit.source.get("kind") != "digest":
        raise PermanentError(f"no digest {did!r} in the outbox")
    record = outbox_transition(read_record(hit.source), Resend(at=now))
    if _update(es, names, hit, record_fields(record)).outcomes.get(did) != "updated":
        raise PermanentError(f"digest {did!r} changed while it was being resent; try again")
    return record


def outbox_counts(es: Elasticsearch, names: IndexNames) -> dict[str, int]:
    """Alerts and digests by state, for ``newsradar status``.

    ``alerts_pending`` counts alerts some recipient is still owed (or waiting for
    ``min_sources``); ``alerts_sent`` counts digests delivered.
    """
    response = call(
        es,
        es.search,
        index=names.alert_outbox,
        size=0,
        aggs={
            "owed": {
                "filter": {
                    "bool": {
                        "filter": [{"term": {"kind": "alert"}}],
                        "should": [
                            {"exists": {"field": "pending_for"}},
                            {"term": {"status": "waiting"}},
                        ],
                        "minimum_should_match": 1,
                    }
                }
            },
            "alerts": {"filter": {"term": {"kind": "alert"}}},
            "digests": {
                "filter": {"term": {"kind": "digest"}},
                "aggs": {"states": {"terms": {"field": "state", "size": 10}}},
            },
        },
    )
    aggs = response["aggregations"]
    states = {b["key"]: int(b["doc_count"]) for b in aggs["digests"]["states"]["buckets"]}
    counts = {
        "alerts": int(aggs["alerts"]["doc_count"]),
        "alerts_pending": int(aggs["owed"]["doc_count"]),
        "alerts_sent": states.get(OutboxState.SENT.value, 0),
    }
    for state in OutboxState:
        counts[f"digests_{state.value}"] = states.get(state.value, 0)
    return counts
