"""Sending digests: each recipient of each rule gets the alerts owed to them, one mail a time.

``send_digests`` gives each recipient of each rule at most one digest per digest interval: one
e-mail per recipient (addresses are not disclosed to each other, and each has its own delivery
state), with the alerts owed to that recipient. Every state a digest goes through, and every
write of it, is pipeline.alerts.outbox's; this module decides what to send, builds the digest
(pipeline.alerts.digest renders it) and hands it to pipeline.alerts.smtp.deliver.

A digest item is one story: the alert's first matched article with the passage that made it
relevant (or, for an alert from before relevance was scored, a highlighted snippet), why it
matched and a "not relevant" link, then the story's other reports, read for all the digest's
stories in one search.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

from elasticsearch import Elasticsearch

from pipeline.alerts.digest import (
    MAX_LISTED_REPORTS,
    Digest,
    DigestItem,
    StoryReport,
    render_digest,
)
from pipeline.alerts.highlight import Highlighted, highlighted
from pipeline.alerts.outbox import (
    IN_FLIGHT,
    Claim,
    ClaimLost,
    OutboxRecord,
    OutboxState,
    OutboxTransitionError,
    claim,
    create_digest,
    last_windows,
    mark_owed,
    open_digests,
    outbox_transition,
    owed_alerts,
    read_record,
    recover_interrupted,
)
from pipeline.alerts.reads import Hit, mget, parse_time
from pipeline.alerts.relevance import Relevance
from pipeline.alerts.smtp import DeliveryResult, Outcome, SmtpConfig, deliver, serialise
from pipeline.errors import PermanentError
from pipeline.normalise.dates import as_utc
from pipeline.settings import AlertRule, Config
from pipeline.store.client import IndexNames, call

__all__ = ["MAX_ITEMS", "DigestResult", "SendReport", "send_digests"]

log = logging.getLogger(__name__)

# Stories per digest; the rest wait for the next one.
MAX_ITEMS: Final = 50
# Per story, to count its other sources and name its languages. A digest's stories together
# stay well below Elasticsearch's search.max_buckets (65 536) at MAX_ITEMS.
_MAX_SOURCES: Final = 1000
_MAX_LANGUAGES: Final = 100
_REPORT_FIELDS: Final = [
    "title",
    "url",
    "source",
    "language",
    "published",
    "fetched",
    "duplicate_of",
]


@dataclass(frozen=True, slots=True)
class DigestResult:
    """One digest this run touched, and where it ended up."""

    digest_id: str
    rule_id: str
    recipient: str
    state: str
    items: int
    message_id: str = ""
    reason: str = ""
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)


@dataclass(slots=True)
class SendReport:
    """What ``send_digests`` did: digests by end state, and what it left for later.

    ``retrying``: back to pending after a temporary failure; ``held``: recipients with alerts
    owed whose digest interval has not passed; ``busy``: digests another worker is sending;
    ``interrupted``: digests whose worker died, found past the lease: from ``sending`` back to
    pending (and sent in this run when due), from ``transmitting`` now ``unknown``.
    """

    sent: int = 0
    failed: int = 0
    unknown: int = 0
    retrying: int = 0
    held: int = 0
    busy: int = 0
    interrupted: int = 0
    digests: list[DigestResult] = field(default_factory=list)


def send_digests(
    es: Elasticsearch,
    names: IndexNames,
    config: Config,
    smtp: SmtpConfig,
    *,
    now: datetime,
    attempts: int = 1,
    max_items: int = MAX_ITEMS,
) -> SendReport:
    """Mail each recipient the alerts owed to them, at most one digest per rule interval.

    ``attempts`` is ``deliver``'s tries within this run; by default a temporary failure waits
    for a later run (the outbox's backoff) rather than holding this one up.
    """
    now = as_utc(now)
    report = SendReport()
    call(es, es.indices.refresh, index=names.alert_outbox)
    for hit, record in recover_interrupted(es, names, now):
        report.interrupted += 1
        if record.state is OutboxState.UNKNOWN:
            report.unknown += 1
            report.digests.append(_result(hit.id, hit.source, record, len(hit.source["alert_ids"])))
    waiting = open_digests(es, names)
    last_end = last_windows(es, names)
    source_names = {source.id: source.name for source in config.sources}
    feedback = config.settings.feedback_address or smtp.sender
    for rule in config.alerts:
        for recipient in rule.recipients:
            key = (rule.id, recipient.lower())
            if key in waiting:
                for hit in waiting[key]:
                    _send_one(
                        es, names, hit.id, rule, smtp, now, attempts, source_names, feedback, report
                    )
                continue
            owed = owed_alerts(es, names, rule.id, recipient, max_items)
            if not owed:
                continue
            last = last_end.get(key)
            if last is not None and now < last + timedelta(seconds=rule.digest_seconds):
                report.held += 1
                continue
            did = create_digest(es, names, rule.id, recipient, owed, last, now)
            if did is None:
                report.busy += 1  # another worker made this digest first
                continue
            _send_one(es, names, did, rule, smtp, now, attempts, source_names, feedback, report)
    return report


def _send_one(
    es: Elasticsearch,
    names: IndexNames,
    did: str,
    rule: AlertRule,
    smtp: SmtpConfig,
    now: datetime,
    attempts: int,
    source_names: Mapping[str, str],
    feedback: str,
    report: SendReport,
) -> None:
    """Claim one pending digest, send it, and record the outcome.

    ``feedback`` is the address the items' "not relevant" links write to.
    """
    hit = mget(es, names.alert_outbox, [did]).get(did)
    if hit is None:
        return
    if not hit.source.get("marked"):
        mark_owed(es, names, hit)
        hit = mget(es, names.alert_outbox, [did])[did]
    record = read_record(hit.source)
    if record.state in IN_FLIGHT:
        report.busy += 1
        return
    try:
        claimed = outbox_transition(record, Claim(at=now))
    except OutboxTransitionError:
        return  # not due yet: a later run retries it
    # Everything that reads Elasticsearch, and everything that can fail to make the message,
    # happens before the claim: a node failing here leaves the digest pending, and a message
    # that cannot be built or written is recorded as failed with the reason, never left claimed.
    recipient = str(hit.source["recipient"])
    message = None
    items = 0
    try:
        digest = _build_digest(es, names, hit, rule, now, source_names, feedback)
        items = len(digest.items)
        message = render_digest(digest, sender=smtp.sender, recipient=recipient)
        serialise(message)  # the very bytes deliver will send, with their headers checked
    except PermanentError as exc:  # DigestError, UnsendableMessage: nothing to send as it is
        refusal = DeliveryResult(Outcome.FAILED_PERMANENT, 0, detail=str(exc))
        message = None
    flight = claim(es, names, hit, claimed, now)
    if flight is None:
        report.busy += 1  # another worker claimed it between our read and our write
        return
    if message is None:
        result = refusal
    else:
        try:
            result = deliver(
                message,
                config=smtp,
                recipients=list(claimed.pending_recipients) or None,
                attempts=attempts,
                before_data=flight.transmit,
            )
        except ClaimLost:
            report.busy += 1  # recovered and claimed by another worker; we gave no DATA
            return
    after = flight.finish(result)
    match after.state:
        case OutboxState.SENT:
            report.sent += 1
        case OutboxState.FAILED:
            report.failed += 1
        case OutboxState.UNKNOWN:
            report.unknown += 1
        case _:
            report.retrying += 1
    report.digests.append(_result(did, hit.source, after, items))


def _result(did: str, source: Mapping[str, Any], record: OutboxRecord, items: int) -> DigestResult:
    """What ``send_digests`` reports of one digest it touched."""
    return DigestResult(
        digest_id=did,
        rule_id=str(source["rule_id"]),
        recipient=str(source["recipient"]),
        state=record.state.value,
        items=items,
        message_id=record.message_id,
        reason=record.reason,
        refused=dict(record.refused),
    )


def _build_digest(
    es: Elasticsearch,
    names: IndexNames,
    digest: Hit,
    rule: AlertRule,
    now: datetime,
    source_names: Mapping[str, str],
    feedback: str,
) -> Digest:
    """The digest's stories: each led by its first matched article, with the story's reports.

    One item per story: the story is the lead article's as stored now (it follows a story
    that merged into an earlier one), so two alerts whose stories became one give one item,
    the earlier alert's. The other reports are read when the digest is built, so a report that
    joined the story after the alert is listed too; a story already mailed is never mailed
    again for it (the alert owes it to nobody any more), and no other story lists it.
    """
    alerts = mget(es, names.alert_outbox, list(digest.source["alert_ids"]))
    ordered = [alerts[aid] for aid in digest.source["alert_ids"] if aid in alerts]
    firsts = [str(hit.source["first_article"]) for hit in ordered]
    articles = highlighted(es, names.articles, rule, firsts)
    leads: list[tuple[Hit, Highlighted, str]] = []
    for hit in ordered:
        article = articles.get(str(hit.source["first_article"]))
        if article is None:
            log.warning("alert %s: article %s is gone", hit.id, hit.source["first_article"])
            continue
        story = str(article.source.get("story_id") or hit.source.get("story_id") or article.id)
        if any(story == seen for _, _, seen in leads):
            log.info("alert %s: its story %s is an item of this digest already", hit.id, story)
            continue
        leads.append((hit, article, story))
    stories = _read_stories(es, names, [story for _, _, story in leads])
    items = [
        _item(hit, article, story, stories.get(story), now, source_names)
        for hit, article, story in leads
    ]
    return Digest(
        rule_id=rule.id,
        rule_name=rule.name,
        recipients=(str(digest.source["recipient"]),),
        items=tuple(items),
        window_start=parse_time(digest.source["window_start"]) or now,
        window_end=parse_time(digest.source["window_end"]) or now,
        feedback_address=feedback,
    )


@dataclass(frozen=True, slots=True)
class _Story:
    """One story as its articles tell it: counted in full, with the first reports read.

    ``hits`` are the independent reports and then the copies, each group earliest first, at
    most MAX_LISTED_REPORTS + 1 of each (one more, as one may be the lead itself).
    """

    articles: int
    sources: frozenset[str]
    languages: frozenset[str]
    hits: tuple[Mapping[str, Any], ...]


def _read_stories(
    es: Elasticsearch, names: IndexNames, story_ids: Sequence[str]
) -> dict[str, _Story]:
    """The digest's stories from the articles index: one search for all of them."""
    if not story_ids:
        return {}
    first = {
        "top_hits": {
            "size": MAX_LISTED_REPORTS + 1,
            # The URL breaks ties, so which reports make the list does not vary between runs.
            "sort": [{"fetched": {"order": "asc", "missing": "_last"}}, {"url": "asc"}],
            "_source": {"includes": _REPORT_FIELDS},
        }
    }
    copy = {"exists": {"field": "duplicate_of"}}
    response = call(
        es,
        es.search,
        index=names.articles,
        size=0,
        query={"terms": {"story_id": list(story_ids)}},
        aggs={
            "stories": {
                "terms": {"field": "story_id", "size": len(story_ids)},
                "aggs": {
                    "sources": {"terms": {"field": "source", "size": _MAX_SOURCES}},
                    "languages": {"terms": {"field": "language", "size": _MAX_LANGUAGES}},
                    "reports": {
                        "filter": {"bool": {"must_not": [copy]}},
                        "aggs": {"first": first},
                    },
                    "copies": {"filter": copy, "aggs": {"first": first}},
                },
            }
        },
    )
    stories: dict[str, _Story] = {}
    for bucket in response["aggregations"]["stories"]["buckets"]:
        hits = [
            *bucket["reports"]["first"]["hits"]["hits"],
            *bucket["copies"]["first"]["hits"]["hits"],
        ]
        stories[str(bucket["key"])] = _Story(
            articles=int(bucket["doc_count"]),
            sources=frozenset(str(b["key"]) for b in bucket["sources"]["buckets"]),
            languages=frozenset(str(b["key"]) for b in bucket["languages"]["buckets"]),
            hits=tuple(hits),
        )
    return stories


def _item(
    alert: Hit,
    article: Highlighted,
    story_id: str,
    story: _Story | None,
    now: datetime,
    source_names: Mapping[str, str],
) -> DigestItem:
    """One digest item: the lead article with its snippet, then the story's other reports."""
    own = str(article.source.get("source") or "")
    language = str(article.source.get("language") or "")
    reports: list[StoryReport] = []
    unlisted = 0
    if story is None:
        # No article carries the story id yet (the lead was never placed): the alert's
        # sources are all that is known of it.
        sources = set(alert.source.get("sources") or ())
        languages = {language}
    else:
        sources, languages = set(story.sources), set(story.languages) | {language}
        others = [hit for hit in story.hits if hit["_id"] != article.id]
        reports = [_report(hit, source_names) for hit in others[:MAX_LISTED_REPORTS]]
        in_story = article.source.get("story_id") == story_id
        unlisted = max(0, story.articles - int(in_story) - len(reports))
    snippet, terms, why = _why(alert, article)
    return DigestItem(
        article_id=article.id,
        title=str(article.source.get("title") or ""),
        url=str(article.source.get("url") or ""),
        source=source_names.get(own, own),
        language=language,
        published=parse_time(article.source.get("published"))
        or parse_time(article.source.get("fetched"))
        or now,
        snippet=snippet,
        matched_terms=terms,
        also_reported_by=tuple(source_names.get(s, s) for s in sorted(sources - {own, ""})),
        languages=tuple(sorted(languages - {""})),
        reports=tuple(reports),
        unlisted_reports=unlisted,
        alert_id=alert.id,
        story_id=story_id,
        why=why,
    )


def _why(alert: Hit, article: Highlighted) -> tuple[str, tuple[str, ...], str]:
    """The item's snippet, the terms to mark in it, and the line saying why it is here.

    The passage stored with the alert's relevance is the snippet when there is one; a
    breaking story says how fast it spread.
    """
    snippet, terms, why = article.snippet, article.terms, ""
    stored = alert.source.get("relevance")
    if stored:
        relevance = Relevance.from_json(stored)
        why = relevance.explain()
        if relevance.passage:
            snippet = relevance.passage
            terms = tuple(term for term, _ in relevance.terms) or terms
    breaking = alert.source.get("breaking")
    if breaking:
        first, at = parse_time(breaking.get("first")), parse_time(breaking.get("at"))
        spread = f" in {_duration(at - first)}" if first is not None and at is not None else ""
        count = int(breaking.get("sources") or 0)
        why = f"breaking: {count} sources{spread}" + (f"; {why}" if why else "")
    return snippet, terms, why


def _duration(span: timedelta) -> str:
    """``1 h 05 min``, ``40 min``, ``2 d 3 h``: how long a story took to break."""
    minutes = int(span.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def _report(hit: Mapping[str, Any], source_names: Mapping[str, str]) -> StoryReport:
    """One of a story's other articles, as the digest lists it."""
    doc = hit["_source"]
    source = str(doc.get("source") or "")
    return StoryReport(
        article_id=str(hit["_id"]),
        title=str(doc.get("title") or ""),
        url=str(doc.get("url") or ""),
        source=source_names.get(source, source),
        language=str(doc.get("language") or ""),
        published=parse_time(doc.get("published")) or parse_time(doc.get("fetched")),
        copy=bool(doc.get("duplicate_of")),
    )
