"""Readers' feedback: muted stories, "not relevant" replies read back, and each rule's precision.

Everything is recorded in the outbox, with create-once ids, so repeating a command adds nothing:

* ``mute_story`` (``newsradar alerts mute STORY_ID``): a ``mute`` document (``_id = hash(story)``)
  that matching reads before it raises an alert, and the story's alerts marked ``muted``, owed
  to nobody any more;
* ``read_feedback`` (``newsradar alerts feedback MBOX``): each reply whose subject carries a
  digest item's code (pipeline.alerts.digest.not_relevant_link) becomes a ``feedback`` document,
  ``_id = hash(alert, sender)``, so one reader's verdict on one alert counts once;
* ``precision`` (``newsradar alerts report``): per rule, the alerts mailed and how many of them a
  reader called not relevant.
"""

from __future__ import annotations

import email.policy
import hashlib
import mailbox
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.alerts.digest import feedback_codes
from pipeline.alerts.reads import ROUNDS, iso, mget, scan
from pipeline.errors import ConfigError, PermanentError
from pipeline.store.bulk import BulkAction, write
from pipeline.store.client import IndexNames, call

__all__ = [
    "FeedbackReport",
    "MuteResult",
    "RulePrecision",
    "feedback_id",
    "mute_id",
    "mute_story",
    "muted_stories",
    "precision",
    "read_feedback",
]

NOT_RELEVANT = "not_relevant"


def _hash(*parts: str) -> str:
    # NUL cannot occur in ids or addresses, so the join is unambiguous.
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:40]


def mute_id(story_id: str) -> str:
    """The outbox id of a story's mute."""
    return _hash("mute", story_id)


def feedback_id(alert_id: str, reader: str) -> str:
    """The outbox id of one reader's verdict on one alert."""
    return _hash("feedback", alert_id, reader.lower())


# --- muting -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MuteResult:
    """What ``mute_story`` did: whether the mute is new, and the alerts it silenced."""

    story_id: str
    new: bool
    alerts: tuple[str, ...]


def mute_story(
    es: Elasticsearch, names: IndexNames, story_id: str, *, now: datetime, by: str = "cli"
) -> MuteResult:
    """No rule alerts on ``story_id`` any more; its alerts are owed to nobody."""
    if not story_id.strip():
        raise PermanentError("a story id is needed")
    mid = mute_id(story_id)
    document = {"kind": "mute", "story_id": story_id, "by": by, "at": iso(now), "updated": iso(now)}
    written = write(
        es,
        [BulkAction(names.alert_outbox, mid, document, op="create")],
        names=names,
        stage="alerts",
    )
    call(es, es.indices.refresh, index=names.alert_outbox)
    query = {"bool": {"filter": [{"term": {"kind": "alert"}}, {"term": {"story_id": story_id}}]}}
    silenced = [hit.id for hit in scan(es, names.alert_outbox, query)]
    pending = list(silenced)
    for _ in range(ROUNDS):
        actions = [
            BulkAction(
                names.alert_outbox,
                hit.id,
                {"status": "muted", "pending_for": [], "updated": iso(now)},
                op="update",
                if_seq_no=hit.seq_no,
                if_primary_term=hit.primary_term,
            )
            for hit in mget(es, names.alert_outbox, pending).values()
            if hit.source.get("status") != "muted"
        ]
        if not actions:
            break
        outcomes = write(es, actions, names=names, stage="alerts").outcomes
        pending = [aid for aid, outcome in outcomes.items() if outcome == "conflict"]
        if not pending:
            break
    return MuteResult(story_id, written.outcomes.get(mid) == "created", tuple(sorted(silenced)))


def muted_stories(es: Elasticsearch, names: IndexNames, stories: Iterable[str]) -> set[str]:
    """The muted ones among ``stories``."""
    wanted = sorted(set(stories))
    muted: set[str] = set()
    for start in range(0, len(wanted), 1000):
        query = {
            "bool": {
                "filter": [
                    {"term": {"kind": "mute"}},
                    {"terms": {"story_id": wanted[start : start + 1000]}},
                ]
            }
        }
        muted.update(str(hit.source["story_id"]) for hit in scan(es, names.alert_outbox, query))
    return muted


# --- "not relevant" replies ----------------------------------------------------------------------


@dataclass(slots=True)
class FeedbackReport:
    """What ``read_feedback`` found: messages read, codes in them, and what became of each.

    ``recorded``: new verdicts; ``repeated``: a reader's verdict on an alert recorded before;
    ``unknown``: codes of no alert in this outbox (another install's, or mistyped).
    """

    messages: int = 0
    codes: int = 0
    recorded: int = 0
    repeated: int = 0
    unknown: int = 0
    alerts: list[str] = field(default_factory=list)


def read_feedback(
    es: Elasticsearch, names: IndexNames, path: Path, *, now: datetime
) -> FeedbackReport:
    """Record the "not relevant" replies of an mbox file in the outbox."""
    if not path.is_file():
        raise ConfigError(str(path), "", "no such mbox file")
    report = FeedbackReport()
    verdicts: dict[str, tuple[str, dict[str, Any]]] = {}
    box = mailbox.mbox(path, create=False)
    try:
        for key in box.iterkeys():
            report.messages += 1
            message = email.message_from_bytes(box.get_bytes(key), policy=email.policy.default)
            if not isinstance(message, EmailMessage):  # the default policy always makes one
                continue
            codes = feedback_codes(str(message.get("Subject") or ""))
            reader = parseaddr(str(message.get("From") or ""))[1].lower() or "unknown"
            for alert in codes:
                report.codes += 1
                verdicts.setdefault(
                    feedback_id(alert, reader), (alert, _verdict(message, reader, now))
                )
    finally:
        box.close()
    alerts = mget(es, names.alert_outbox, sorted({alert for alert, _ in verdicts.values()}))
    actions = []
    for fid, (alert, document) in sorted(verdicts.items()):
        hit = alerts.get(alert)
        if hit is None or hit.source.get("kind") != "alert":
            report.unknown += 1
            continue
        document.update(
            alert_id=alert,
            rule_id=hit.source["rule_id"],
            story_id=hit.source.get("story_id"),
            relevance=hit.source.get("relevance"),
        )
        actions.append(BulkAction(names.alert_outbox, fid, document, op="create"))
    written = write(es, actions, names=names, stage="alerts", refresh=True)
    for action in actions:
        if written.outcomes.get(action.id) == "created":
            report.recorded += 1
            report.alerts.append(str(action.document["alert_id"]))
        else:
            report.repeated += 1
    return report


def _verdict(message: EmailMessage, reader: str, now: datetime) -> dict[str, Any]:
    try:
        sent = parsedate_to_datetime(str(message.get("Date") or ""))
    except (TypeError, ValueError):
        sent = None
    if sent is not None and sent.tzinfo is None:
        sent = None  # a date without its zone cannot be placed
    return {
        "kind": "feedback",
        "verdict": NOT_RELEVANT,
        "by": reader,
        "message_id": str(message.get("Message-ID") or "")[:512],
        "at": iso(sent or now),
        "updated": iso(now),
    }


# --- precision ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RulePrecision:
    """One rule's alerts as readers judged them.

    ``mailed``: alerts in digests sent; ``not_relevant``: of those, the ones a reader called not
    relevant; ``precision``: the share of the mailed ones nobody did (None before any was
    mailed); ``highest_not_relevant``: the best relevance among those, the least min_relevance
    that would have left them all out is just above it.
    """

    rule_id: str
    name: str
    min_relevance: float
    mailed: int
    not_relevant: int
    muted: int
    precision: float | None
    highest_not_relevant: float | None


def precision(
    es: Elasticsearch, names: IndexNames, rules: Sequence[tuple[str, str, float]]
) -> list[RulePrecision]:
    """Per rule (id, name, min_relevance), the alerts mailed and readers' verdicts on them."""
    call(es, es.indices.refresh, index=names.alert_outbox)
    mailed: dict[str, set[str]] = defaultdict(set)
    sent = {"bool": {"filter": [{"term": {"kind": "digest"}}, {"term": {"state": "sent"}}]}}
    for hit in scan(es, names.alert_outbox, sent, limit=1_000_000):
        mailed[str(hit.source["rule_id"])].update(hit.source.get("alert_ids") or ())
    judged: dict[str, dict[str, float | None]] = defaultdict(dict)
    verdicts = {
        "bool": {"filter": [{"term": {"kind": "feedback"}}, {"term": {"verdict": NOT_RELEVANT}}]}
    }
    for hit in scan(es, names.alert_outbox, verdicts, limit=1_000_000):
        score = (hit.source.get("relevance") or {}).get("score")
        judged[str(hit.source["rule_id"])][str(hit.source["alert_id"])] = score
    muted_alerts = {
        "bool": {"filter": [{"term": {"kind": "alert"}}, {"term": {"status": "muted"}}]}
    }
    muted: dict[str, int] = defaultdict(int)
    for hit in scan(es, names.alert_outbox, muted_alerts, limit=1_000_000):
        muted[str(hit.source["rule_id"])] += 1
    report = []
    for rule_id, name, threshold in rules:
        out = mailed.get(rule_id, set())
        bad = {aid: score for aid, score in judged.get(rule_id, {}).items() if aid in out}
        scores = [score for score in bad.values() if score is not None]
        report.append(
            RulePrecision(
                rule_id=rule_id,
                name=name,
                min_relevance=threshold,
                mailed=len(out),
                not_relevant=len(bad),
                muted=muted.get(rule_id, 0),
                precision=round((len(out) - len(bad)) / len(out), 3) if out else None,
                highest_not_relevant=max(scores) if scores else None,
            )
        )
    return report
