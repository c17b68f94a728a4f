"""Alerts: match topic rules on newly indexed articles, keep the outbox, mail digests.

How matching works. The local node has no percolator, so "percolating" a batch is done the
other way round: after a batch is indexed, every stored rule's compiled query runs restricted
to the batch's article ids (one ``msearch``: rules x ids filter). For our purpose this is the
same thing: each article is tested against every rule exactly when it is indexed, whatever its
published date, and an article that arrives late or is re-indexed is still tested once more
without raising a second alert (below). Rules are stored in Elasticsearch by ``store_rules``
(``newsradar init``), so every worker matches with the same compiled queries.

Once per story. A match goes to the outbox as an *alert* with ``_id = hash(rule id, story
id)``, written with ``op_type=create``: a syndicated or reworded copy of a story already
alerted, a retried task or a re-run finds the alert there and only adds its article and source
to it (a conditional update on ``_seq_no``/``_primary_term``; no scripts). An alert whose
story has fewer distinct sources than the rule's ``min_sources`` waits until copies bring it
there.

Digests. ``send_digests`` gives each recipient of each rule at most one digest per digest
interval: one e-mail per recipient (addresses are not disclosed to each other, and each has
its own delivery state), with the alerts owed to that recipient. A *digest* document is
created first (``_id = hash(rule, recipient, window start)``, create, so two workers cannot
both make it), then the alerts are marked as no longer owed, then it is claimed and sent. Its
states follow ``pipeline.alerts.smtp.outbox_transition``: pending -> sending -> transmitting ->
sent | failed | unknown. A 4xx leaves it pending with a later ``next_attempt``; a 5xx fails it
with the code; a connection lost after the final "." of DATA makes it ``unknown`` and it is
never re-sent on its own (``resend`` is the operator's decision). ``transmitting`` is written,
and acknowledged, right before the DATA command: a worker that died in ``sending`` never gave
DATA, so its digest goes back to pending; one that died in ``transmitting`` leaves it
``unknown``.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from pipeline.alerts.digest import Digest, DigestItem, render_digest
from pipeline.alerts.query import (
    check_terms,
    compile_language,
    compile_rule,
    parse_query,
    rule_fingerprint,
)
from pipeline.alerts.smtp import (
    Attempted,
    Claim,
    DeliveryResult,
    Interrupted,
    OutboxRecord,
    OutboxState,
    OutboxTransitionError,
    Outcome,
    Resend,
    SmtpConfig,
    Transmit,
    deliver,
    outbox_transition,
    serialise,
)
from pipeline.errors import ConfigError, PermanentError
from pipeline.normalise.dates import as_utc
from pipeline.settings import AlertRule, Config
from pipeline.store.bulk import BulkAction, write
from pipeline.store.client import IndexNames, SearchUnavailable, call, load_template, node_url

__all__ = [
    "SENDING_LEASE",
    "DigestResult",
    "MatchReport",
    "RuleError",
    "RuleHit",
    "SendReport",
    "StoreReport",
    "StoredRule",
    "TrialResult",
    "alert_id",
    "digest_id",
    "load_rules",
    "match_new",
    "match_pending",
    "matching_health",
    "outbox_counts",
    "read_article_file",
    "resend",
    "send_digests",
    "store_rules",
    "try_rules",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# A digest found in "sending" or "transmitting" for longer than this has lost its worker: SMTP's
# own limits (10 minutes for the reply to the final ".") are well inside it.
SENDING_LEASE: Final = timedelta(minutes=30)
# Stories per digest; the rest wait for the next one.
MAX_ITEMS: Final = 50
# Ids per search: Elasticsearch returns at most index.max_result_window (10 000) hits.
_IDS_PER_SEARCH: Final = 5000
# Conditional updates that lose a race are re-read and redone this many times.
_ROUNDS: Final = 5
# Highlight marks from Unicode's private use area: they cannot occur in article text, so what
# lies between them is exactly what the rule matched.
_MARK_OPEN: Final = "\ue000"
_MARK_CLOSE: Final = "\ue001"
_SNIPPET_CHARS: Final = 220


class RuleError(PermanentError):
    """A stored rule that Elasticsearch refuses to run; ``rule_id`` names it."""

    def __init__(self, rule_id: str, detail: str) -> None:
        super().__init__(rule_id, detail)
        self.rule_id = rule_id
        self.detail = detail

    def __str__(self) -> str:
        return f"alert rule {self.rule_id}: {self.detail}"


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
    after = _iso(previous_end) if previous_end is not None else "first"
    return _hash("digest", rule_id, recipient.lower(), after)


def _iso(moment: datetime) -> str:
    # Milliseconds: what an Elasticsearch date keeps, so a value read back compares equal.
    return as_utc(moment).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value))
    except ValueError:
        return None


# --- stored rules -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule as the rules index holds it: what matching needs, compiled once at init."""

    id: str
    name: str
    recipients: tuple[str, ...]
    digest_seconds: int
    min_sources: int
    query: dict[str, Any]
    fingerprint: str
    last_error: str | None = None


@dataclass(slots=True)
class StoreReport:
    """What ``store_rules`` wrote: rule ids stored (new or changed), unchanged, removed."""

    stored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _rule_document(rule: AlertRule, now: datetime) -> dict[str, Any]:
    query = compile_rule(rule)
    return {
        "rule_id": rule.id,
        "name": rule.name,
        "recipients": list(rule.recipients),
        "digest_seconds": rule.digest_seconds,
        "min_sources": rule.min_sources,
        "languages": sorted(rule.queries),
        "queries": dict(rule.queries),
        "filters": rule.filters.model_dump(mode="json") if rule.filters else {},
        "query": query,
        "fingerprint": rule_fingerprint(query),
        "stored": _iso(now),
    }


def store_rules(
    es: Elasticsearch,
    names: IndexNames,
    rules: Sequence[AlertRule],
    *,
    now: datetime | None = None,
    source: str = "alerts.yaml",
) -> StoreReport:
    """Write the configured rules to the rules index and drop the ones no longer configured.

    Called by ``newsradar init``; safe to repeat. Words that the language's analyser drops
    (stop words) are refused first, as a ConfigError naming the rule and the language.
    """
    stamp = now if now is not None else datetime.now(UTC)
    call(es, check_terms, client=es, rules=rules, source=source)
    existing = {hit.id: hit.source for hit in _scan(es, names.alert_rules, {"match_all": {}})}
    report = StoreReport()
    actions = []
    for rule in rules:
        document = _rule_document(rule, stamp)
        old = existing.get(rule.id)
        if old is not None and _same_rule(old, document):
            report.unchanged.append(rule.id)
            continue
        actions.append(BulkAction(names.alert_rules, rule.id, document, op="index"))
        report.stored.append(rule.id)
    if actions:
        write(es, actions, names=names, stage="alerts-init")
    configured = {rule.id for rule in rules}
    for rule_id in sorted(set(existing) - configured):
        # A rule taken out of alerts.yaml stops matching; its alerts stay in the outbox.
        call(es, es.options(ignore_status=404).delete, index=names.alert_rules, id=rule_id)
        report.removed.append(rule_id)
    call(es, es.indices.refresh, index=names.alert_rules)
    return report


def _same_rule(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(old.get(key) == value for key, value in new.items() if key != "stored")


def load_rules(es: Elasticsearch, names: IndexNames) -> list[StoredRule]:
    """Every rule in the rules index, as ``newsradar init`` stored it."""
    rules = []
    for hit in _scan(es, names.alert_rules, {"match_all": {}}):
        doc = hit.source
        rules.append(
            StoredRule(
                id=str(doc["rule_id"]),
                name=str(doc["name"]),
                recipients=tuple(doc.get("recipients", ())),
                digest_seconds=int(doc["digest_seconds"]),
                min_sources=int(doc.get("min_sources", 1)),
                query=dict(doc["query"]),
                fingerprint=str(doc.get("fingerprint", "")),
                last_error=doc.get("last_error") or None,
            )
        )
    return sorted(rules, key=lambda rule: rule.id)


# --- small search helpers -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Hit:
    id: str
    source: dict[str, Any]
    seq_no: int
    primary_term: int


def _scan(
    es: Elasticsearch,
    index: str,
    query: dict[str, Any],
    *,
    sort: Sequence[str] = ("_doc",),
    limit: int = 10_000,
) -> list[_Hit]:
    """Up to ``limit`` hits of ``query``, with their versions, paging with search_after."""
    hits: list[_Hit] = []
    after: list[Any] | None = None
    # _doc breaks ties: the outbox and rules indices have one shard, so it is unique there.
    sort_spec = [*sort, "_doc"] if "_doc" not in sort else list(sort)
    while len(hits) < limit:
        size = min(1000, limit - len(hits))
        kwargs: dict[str, Any] = {}
        if after is not None:
            kwargs["search_after"] = after
        response = call(
            es,
            es.search,
            index=index,
            query=query,
            sort=sort_spec,
            size=size,
            seq_no_primary_term=True,
            track_total_hits=False,
            **kwargs,
        )
        page = response["hits"]["hits"]
        for hit in page:
            hits.append(
                _Hit(hit["_id"], hit["_source"], int(hit["_seq_no"]), int(hit["_primary_term"]))
            )
        if len(page) < size:
            break
        after = page[-1]["sort"]
    return hits


def _mget(es: Elasticsearch, index: str, ids: Sequence[str]) -> dict[str, _Hit]:
    """The documents that exist among ``ids``, read in real time (no refresh needed)."""
    found: dict[str, _Hit] = {}
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        response = call(es, es.mget, index=index, ids=chunk)
        for doc in response["docs"]:
            if doc.get("found"):
                found[doc["_id"]] = _Hit(
                    doc["_id"], doc["_source"], int(doc["_seq_no"]), int(doc["_primary_term"])
                )
    return found


# --- matching ---------------------------------------------------------------------------------


@dataclass(slots=True)
class MatchReport:
    """What ``match_new`` did with one batch.

    ``created``: new alerts; ``waiting``: of those and of the alerts a copy touched, how many
    are still held back by ``min_sources``; ``activated``: waiting alerts that reached it;
    ``already_alerted``: matches for a story whose alert existed (a copy or a re-run);
    ``updated``: alerts that gained an article or a source; ``missing``: ids not in the index.
    """

    articles: int = 0
    rules: int = 0
    missing: int = 0
    matches: int = 0
    matched: dict[str, list[str]] = field(default_factory=dict)
    created: int = 0
    waiting: int = 0
    activated: int = 0
    already_alerted: int = 0
    updated: int = 0
    dead_lettered: int = 0
    refused: dict[str, str] = field(default_factory=dict)

    def add(self, other: MatchReport) -> None:
        """Fold the report of a later batch into this one."""
        for name in (
            "articles", "missing", "matches", "created", "waiting", "activated",
            "already_alerted", "updated", "dead_lettered",
        ):  # fmt: skip
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rules = max(self.rules, other.rules)
        for rule_id, ids in other.matched.items():
            self.matched[rule_id] = sorted({*self.matched.get(rule_id, ()), *ids})
        self.refused.update(other.refused)


@dataclass(frozen=True, slots=True)
class _Article:
    id: str
    story: str
    has_story: bool
    source: str
    order: tuple[str, str]


def match_new(
    es: Elasticsearch,
    names: IndexNames,
    article_ids: Iterable[str],
    *,
    now: datetime,
    run_id: str | None = None,
) -> MatchReport:
    """Run the stored rules over a newly indexed batch and put what matched in the outbox."""
    ids = list(dict.fromkeys(article_ids))
    report = MatchReport(articles=len(ids))
    if not ids:
        return report
    rules = load_rules(es, names)
    report.rules = len(rules)
    if not rules:
        return report
    # The rules run as searches, which only see refreshed documents.
    call(es, es.indices.refresh, index=names.articles)
    batch = _batch_articles(es, names, ids)
    report.missing = len(ids) - len(batch)
    if not batch:
        return report
    matched, report.refused = _run_rules(es, names, rules, sorted(batch))
    _record_rule_health(es, names, rules, report.refused, now=now)
    for rule_id, article_set in matched.items():
        if not article_set:
            continue
        report.matched[rule_id] = sorted(article_set)
        report.matches += len(article_set)

    stories: dict[str, list[_Article]] = defaultdict(list)
    for article in batch.values():
        stories[article.story].append(article)
    # Every (rule, story) of the batch: a new match creates the alert; an existing alert also
    # takes this batch's copies, whether or not a copy's wording matches the rule.
    pairs = {alert_id(rule.id, story): (rule, story) for rule in rules for story in stories}
    existing = _mget(es, names.alert_outbox, sorted(pairs))
    relevant = {pairs[aid][1] for aid in existing} | {
        batch[article].story for found in matched.values() for article in found
    }
    # Only stories with a match or an alert can change the outbox: count only their sources.
    sources = _story_sources(es, names, {story: stories[story] for story in relevant})
    pending = {aid for aid, (_, story) in pairs.items() if story in relevant}
    # What became of each alert, decided afresh in each round and counted once at the end.
    verdicts: dict[str, str] = {}
    current = {aid: existing[aid] for aid in pending if aid in existing}
    for _ in range(_ROUNDS):
        actions: list[BulkAction] = []
        for aid in sorted(pending):
            rule, story = pairs[aid]
            hits = sorted(
                (a for a in stories[story] if a.id in matched.get(rule.id, ())),
                key=lambda a: (a.order, a.id),
            )
            action, verdict = _alert_action(
                names,
                aid,
                rule,
                story,
                stories[story],
                hits,
                sources[story],
                current.get(aid),
                now=now,
                run_id=run_id,
            )
            verdicts[aid] = verdict
            if action is not None:
                actions.append(action)
        if not actions:
            break
        # No refresh: this loop reads with real-time mget, and send_digests refreshes first.
        written = write(es, actions, names=names, stage="alerts", run_id=run_id)
        retry = set()
        for aid, outcome in written.outcomes.items():
            if outcome == "created":
                report.created += 1
            elif outcome == "updated":
                report.updated += 1
            elif outcome in ("already_stored", "conflict"):
                # Another worker wrote it since we read it: read again and merge again.
                retry.add(aid)
            elif outcome == "dead_lettered":
                report.dead_lettered += 1
                log.error("alert %s dead-lettered: %s", aid, written.errors.get(aid))
        pending = retry
        if not pending:
            break
        current = _mget(es, names.alert_outbox, sorted(pending))
    else:
        log.warning("%d alert(s) still contended after %d rounds", len(pending), _ROUNDS)
    for verdict in verdicts.values():
        if verdict == "waiting":
            report.waiting += 1
        elif verdict.startswith("activated"):
            report.activated += 1
        if verdict in ("already_alerted", "activated_by_match"):
            report.already_alerted += 1
    log.info(
        "alerts: %d article(s), %d match(es), %d new alert(s), %d already alerted",
        report.articles,
        report.matches,
        report.created,
        report.already_alerted,
    )
    return report


def match_pending(
    es: Elasticsearch,
    names: IndexNames,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    run_id: str | None = None,
    batch_size: int = 1000,
) -> MatchReport:
    """Match every article still marked ``match_pending``, whatever run indexed it.

    Articles are written with ``match_pending: true`` and keep it until every stored rule has
    run on them and the outbox holds what they matched; only then is the mark cleared. A worker
    that dies (or a node that fails) anywhere in between leaves the mark, so the next cycle
    matches the article again, and the outbox's deterministic ids make the second pass add
    nothing twice. With ``sources`` only those sources' articles are taken (a per-source task).
    """
    total = MatchReport()
    done: set[str] = set()
    while True:
        call(es, es.indices.refresh, index=names.articles)
        query: dict[str, Any] = {"bool": {"filter": [{"term": {"match_pending": True}}]}}
        if sources:
            query["bool"]["filter"].append({"terms": {"source": list(sources)}})
        response = call(
            es,
            es.search,
            index=names.articles,
            query=query,
            sort=["indexed", "_doc"],
            size=batch_size,
            source=False,
            track_total_hits=False,
        )
        # A mark that could not be cleared (dead-lettered) is not taken again in this call.
        hits = [hit for hit in response["hits"]["hits"] if hit["_id"] not in done]
        if not hits:
            return total
        ids = [hit["_id"] for hit in hits]
        total.add(match_new(es, names, ids, now=now, run_id=run_id))
        cleared = [
            BulkAction(hit["_index"], hit["_id"], {"match_pending": False, "matched": _iso(now)},
                       op="update")
            for hit in hits
        ]  # fmt: skip
        write(es, cleared, names=names, stage="alerts", run_id=run_id)
        done.update(ids)


def matching_health(es: Elasticsearch, names: IndexNames) -> dict[str, Any]:
    """Articles still waiting to be matched, and the rules Elasticsearch refused last time."""
    pending = call(es, es.count, index=names.articles, query={"term": {"match_pending": True}})
    refused = _scan(es, names.alert_rules, {"exists": {"field": "last_error"}})
    return {
        "unmatched": int(pending["count"]),
        "rule_errors": [
            {
                "rule": hit.id,
                "error": hit.source.get("last_error"),
                "at": hit.source.get("last_error_at"),
            }
            for hit in sorted(refused, key=lambda hit: hit.id)
        ],
    }


def _alert_action(
    names: IndexNames,
    aid: str,
    rule: StoredRule,
    story: str,
    story_articles: list[_Article],
    hits: list[_Article],
    story_sources: set[str],
    existing: _Hit | None,
    *,
    now: datetime,
    run_id: str | None,
) -> tuple[BulkAction | None, str]:
    """The create or conditional update this batch implies for one (rule, story), if any.

    The verdict says what it means: ``new``, ``waiting`` (held by min_sources), ``activated``
    (min_sources reached), ``already_alerted`` (a match on a story alerted before), ``copy``
    (an article of an alerted story that the rule did not match itself), or ``none``.
    """
    batch_ids = {a.id for a in story_articles}
    if existing is None:
        if not hits:
            return None, "none"
        source_count = len(story_sources)
        ready = source_count >= rule.min_sources
        document: dict[str, Any] = {
            "kind": "alert",
            "rule_id": rule.id,
            "story_id": story,
            "status": "ready" if ready else "waiting",
            "first_article": hits[0].id,
            "articles": sorted(batch_ids),
            "sources": sorted(story_sources),
            "source_count": source_count,
            "min_sources": rule.min_sources,
            "pending_for": list(rule.recipients) if ready else [],
            "matched_at": _iso(now),
            "ready_at": _iso(now) if ready else None,
            "updated": _iso(now),
            "run_id": run_id,
        }
        action = BulkAction(names.alert_outbox, aid, document, op="create")
        return action, "new" if ready else "waiting"
    doc = existing.source
    verdict = "already_alerted" if hits else "copy"
    articles = sorted(set(doc.get("articles", ())) | batch_ids)
    merged_sources = sorted(set(doc.get("sources", ())) | story_sources)
    changes: dict[str, Any] = {}
    if articles != sorted(doc.get("articles", ())):
        changes["articles"] = articles
    if merged_sources != sorted(doc.get("sources", ())):
        changes["sources"] = merged_sources
        changes["source_count"] = len(merged_sources)
    min_sources = int(doc.get("min_sources", rule.min_sources))
    if doc.get("status") == "waiting":
        if len(merged_sources) >= min_sources:
            changes.update(status="ready", pending_for=list(rule.recipients), ready_at=_iso(now))
            verdict = "activated_by_match" if hits else "activated"
        else:
            verdict = "waiting"
    if not changes:
        return None, verdict
    changes["updated"] = _iso(now)
    action = BulkAction(
        names.alert_outbox,
        aid,
        changes,
        op="update",
        if_seq_no=existing.seq_no,
        if_primary_term=existing.primary_term,
    )
    return action, verdict


def _batch_articles(
    es: Elasticsearch, names: IndexNames, ids: Sequence[str]
) -> dict[str, _Article]:
    found: dict[str, _Article] = {}
    for start in range(0, len(ids), 1000):
        chunk = list(ids[start : start + 1000])
        response = call(
            es,
            es.mget,
            index=names.articles,
            ids=chunk,
            source_includes=["story_id", "source", "indexed", "published"],
        )
        for doc in response["docs"]:
            if not doc.get("found"):
                continue
            source = doc["_source"]
            story = source.get("story_id")
            # An article that dedup has not placed yet is a story of its own.
            found[doc["_id"]] = _Article(
                id=doc["_id"],
                story=str(story or doc["_id"]),
                has_story=bool(story),
                source=str(source.get("source") or ""),
                order=(str(source.get("indexed") or ""), str(source.get("published") or "")),
            )
    return found


def _run_rules(
    es: Elasticsearch, names: IndexNames, rules: Sequence[StoredRule], ids: Sequence[str]
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """rule id -> the batch's article ids it matches: one msearch of rules x ids filter.

    Also returns the rules Elasticsearch refused (4xx), with the reason: one bad rule must not
    keep every other rule from matching. A 5xx is the cluster's trouble, not the rule's, and
    raises SearchUnavailable so the batch is matched again later.
    """
    searches: list[dict[str, Any]] = []
    owners: list[str] = []
    for start in range(0, len(ids), _IDS_PER_SEARCH):
        chunk = list(ids[start : start + _IDS_PER_SEARCH])
        for rule in rules:
            searches.append({"index": names.articles})
            searches.append(
                {
                    "query": {
                        "bool": {"must": [rule.query], "filter": [{"ids": {"values": chunk}}]}
                    },
                    "size": len(chunk),
                    "_source": False,
                    "track_total_hits": False,
                }
            )
            owners.append(rule.id)
    response = call(es, es.msearch, searches=searches)
    matched: dict[str, set[str]] = defaultdict(set)
    refused: dict[str, str] = {}
    for rule_id, answer in zip(owners, response["responses"], strict=True):
        if "error" in answer:
            error = answer["error"]
            reason = _error_reason(error)
            if int(answer.get("status", 400)) >= 500:
                raise SearchUnavailable(node_url(es), f"rule {rule_id}: {reason}")
            refused[rule_id] = f"Elasticsearch refused its query: {reason}"
            log.error("%s", RuleError(rule_id, refused[rule_id]))
            continue
        matched[rule_id].update(hit["_id"] for hit in answer["hits"]["hits"])
    return matched, refused


def _error_reason(error: object) -> str:
    """The most telling reason in an Elasticsearch error body (the root cause's, when given)."""
    if not isinstance(error, dict):
        return str(error)
    causes = error.get("root_cause") or []
    cause = causes[0] if causes and isinstance(causes[0], dict) else error
    return str(cause.get("reason") or error.get("reason") or error.get("type") or error)


def _record_rule_health(
    es: Elasticsearch,
    names: IndexNames,
    rules: Sequence[StoredRule],
    refused: Mapping[str, str],
    *,
    now: datetime,
) -> None:
    """Record each refusal on its rule's document, and clear it once the rule runs again.

    ``newsradar status`` and the source-health dashboard read it from there. Rules that ran
    and had no error cost nothing here.
    """
    actions: list[BulkAction] = []
    for rule in rules:
        if rule.id in refused:
            changes: dict[str, Any] = {"last_error": refused[rule.id], "last_error_at": _iso(now)}
        elif rule.last_error:
            changes = {"last_error": None}
        else:
            continue
        actions.append(BulkAction(names.alert_rules, rule.id, changes, op="update"))
    if actions:
        # Refreshed so that ``status`` shows the refusal at once; the rules index is tiny.
        write(es, actions, names=names, stage="alerts", refresh=True)


def _story_sources(
    es: Elasticsearch, names: IndexNames, stories: Mapping[str, list[_Article]]
) -> dict[str, set[str]]:
    """Distinct sources of each story over the whole articles index, not only this batch."""
    result = {
        story: {a.source for a in articles if a.source} for story, articles in stories.items()
    }
    placed = sorted(story for story, articles in stories.items() if articles[0].has_story)
    for start in range(0, len(placed), 1000):
        chunk = placed[start : start + 1000]
        response = call(
            es,
            es.search,
            index=names.articles,
            size=0,
            query={"terms": {"story_id": chunk}},
            aggs={
                "stories": {
                    "terms": {"field": "story_id", "size": len(chunk)},
                    "aggs": {"sources": {"terms": {"field": "source", "size": 500}}},
                }
            },
        )
        for bucket in response["aggregations"]["stories"]["buckets"]:
            result[bucket["key"]].update(b["key"] for b in bucket["sources"]["buckets"])
    return result


# --- digests ----------------------------------------------------------------------------------

# A claimed digest: "sending" before the DATA command, "transmitting" from it on.
_IN_FLIGHT: Final = (OutboxState.SENDING, OutboxState.TRANSMITTING)


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
    _recover_interrupted(es, names, now, report)
    open_digests = _open_digests(es, names)
    last_end = _last_windows(es, names)
    source_names = {source.id: source.name for source in config.sources}
    for rule in config.alerts:
        for recipient in rule.recipients:
            key = (rule.id, recipient.lower())
            if key in open_digests:
                for hit in open_digests[key]:
                    _send_one(es, names, hit.id, rule, smtp, now, attempts, source_names, report)
                continue
            owed = _owed_alerts(es, names, rule.id, recipient, max_items)
            if not owed:
                continue
            last = last_end.get(key)
            if last is not None and now < last + timedelta(seconds=rule.digest_seconds):
                report.held += 1
                continue
            start = (
                last
                if last is not None
                else min(
                    (_parse_time(hit.source.get("ready_at")) or now for hit in owed), default=now
                )
            )
            did = digest_id(rule.id, recipient, last)
            document = {
                "kind": "digest",
                "rule_id": rule.id,
                "recipient": recipient,
                "window_start": _iso(start),
                "window_end": _iso(max(now, start)),
                "alert_ids": [hit.id for hit in owed],
                "marked": False,
                "state": OutboxState.PENDING.value,
                "runs": 0,
                "reason": "",
                "message_id": "",
                "refused": [],
                "pending_recipients": [],
                "updated": _iso(now),
            }
            written = write(
                es,
                [BulkAction(names.alert_outbox, did, document, op="create")],
                names=names,
                stage="alerts",
            )
            if written.outcomes.get(did) != "created":
                report.busy += 1  # another worker made this digest first
                continue
            _send_one(es, names, did, rule, smtp, now, attempts, source_names, report)
    return report


def _recover_interrupted(
    es: Elasticsearch, names: IndexNames, now: datetime, report: SendReport
) -> None:
    """Digests left in flight past the lease: their worker died.

    ``sending`` never reached DATA, so no server has the mail: back to pending. In
    ``transmitting`` the server may have it: ``unknown``, for an operator.
    """
    stale = _scan(
        es,
        names.alert_outbox,
        {
            "bool": {
                "filter": [
                    {"term": {"kind": "digest"}},
                    {"terms": {"state": [state.value for state in _IN_FLIGHT]}},
                    {"range": {"updated": {"lt": _iso(now - SENDING_LEASE)}}},
                ]
            }
        },
    )
    for hit in stale:
        record = outbox_transition(_record(hit.source), Interrupted(at=now))
        outcome = _update(es, names, hit, _record_fields(record)).outcomes.get(hit.id)
        if outcome != "updated":
            continue  # another worker recovered or claimed it first
        report.interrupted += 1
        log.warning("digest %s: worker gone; now %s (%s)", hit.id, record.state, record.reason)
        if record.state is OutboxState.UNKNOWN:
            report.unknown += 1
            report.digests.append(_result(hit.id, hit.source, record, len(hit.source["alert_ids"])))


def _open_digests(es: Elasticsearch, names: IndexNames) -> dict[tuple[str, str], list[_Hit]]:
    query = {
        "bool": {
            "filter": [
                {"term": {"kind": "digest"}},
                {"terms": {"state": [OutboxState.PENDING.value, *(s.value for s in _IN_FLIGHT)]}},
            ]
        }
    }
    grouped: dict[tuple[str, str], list[_Hit]] = defaultdict(list)
    for hit in _scan(es, names.alert_outbox, query, sort=("window_start",)):
        grouped[(hit.source["rule_id"], str(hit.source["recipient"]).lower())].append(hit)
    return grouped


def _last_windows(es: Elasticsearch, names: IndexNames) -> dict[tuple[str, str], datetime]:
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


def _owed_alerts(
    es: Elasticsearch, names: IndexNames, rule_id: str, recipient: str, limit: int
) -> list[_Hit]:
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
    return _scan(es, names.alert_outbox, query, sort=("ready_at",), limit=limit)


def _mark(es: Elasticsearch, names: IndexNames, digest: _Hit) -> None:
    """The digest's alerts are no longer owed to its recipient; then the digest says so."""
    recipient = str(digest.source["recipient"])
    pending = list(digest.source["alert_ids"])
    for _ in range(_ROUNDS):
        actions = []
        for hit in _mget(es, names.alert_outbox, pending).values():
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


def _send_one(
    es: Elasticsearch,
    names: IndexNames,
    did: str,
    rule: AlertRule,
    smtp: SmtpConfig,
    now: datetime,
    attempts: int,
    source_names: Mapping[str, str],
    report: SendReport,
) -> None:
    """Claim one pending digest, send it, and record the outcome."""
    hit = _mget(es, names.alert_outbox, [did]).get(did)
    if hit is None:
        return
    if not hit.source.get("marked"):
        _mark(es, names, hit)
        hit = _mget(es, names.alert_outbox, [did])[did]
    record = _record(hit.source)
    if record.state in _IN_FLIGHT:
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
        digest = _build_digest(es, names, hit, rule, now, source_names)
        items = len(digest.items)
        message = render_digest(digest, sender=smtp.sender, recipient=recipient)
        serialise(message)  # the very bytes deliver will send, with their headers checked
    except PermanentError as exc:  # DigestError, UnsendableMessage: nothing to send as it is
        refusal = DeliveryResult(Outcome.FAILED_PERMANENT, 0, detail=str(exc))
        message = None
    written = _update(es, names, hit, _record_fields(claimed))
    if written.outcomes.get(did) != "updated" or did not in written.versions:
        report.busy += 1  # another worker claimed it between our read and our write
        return
    flight = _InFlight(es, names, _Hit(did, hit.source, *written.versions[did]), claimed, now)
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
        except _ClaimLost:
            report.busy += 1  # recovered and claimed by another worker; we gave no DATA
            return
    after = outbox_transition(flight.record, Attempted(result=result, at=now))
    fields = _record_fields(after)
    if after.state is OutboxState.SENT:
        fields["sent_at"] = _iso(now)
    if _update(es, names, flight.hit, fields).outcomes.get(did) != "updated":
        # Left in flight: after the lease "transmitting" becomes "unknown", never a second send.
        log.error("digest %s: outcome %s could not be recorded", did, after.state)
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


class _ClaimLost(Exception):
    """The claimed digest changed under us (recovered after the lease): give no DATA."""


@dataclass(slots=True)
class _InFlight:
    """A claimed digest and its stored version: each write is conditional on the one before."""

    es: Elasticsearch
    names: IndexNames
    hit: _Hit
    record: OutboxRecord
    now: datetime

    def transmit(self) -> None:
        """Record ``transmitting`` before the first DATA command; raise _ClaimLost if moved on.

        The write is acknowledged before DATA goes out, so a worker killed from here on leaves
        a digest that recovery makes ``unknown``; killed before, it is sent again.
        """
        if self.record.state is OutboxState.TRANSMITTING:
            return  # a later attempt of the same run: recorded already
        record = outbox_transition(self.record, Transmit(at=self.now))
        did = self.hit.id
        written = _update(self.es, self.names, self.hit, _record_fields(record))
        if written.outcomes.get(did) == "updated" and did in written.versions:
            version = written.versions[did]
        else:
            # A retried write whose first try landed comes back as a conflict. It is ours if
            # the record says "transmitting" with our run and time: another worker's claim
            # would have counted one more run.
            stored = _mget(self.es, self.names.alert_outbox, [did]).get(did)
            mine = _record_fields(record)
            if stored is None or _record_fields(_record(stored.source)) != mine:
                raise _ClaimLost(did)
            version = (stored.seq_no, stored.primary_term)
        self.hit = _Hit(did, self.hit.source, *version)
        self.record = record


def _result(did: str, source: Mapping[str, Any], record: OutboxRecord, items: int) -> DigestResult:
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


def _update(
    es: Elasticsearch,
    names: IndexNames,
    hit: _Hit,
    fields: dict[str, Any],
    *,
    conditional: bool = True,
) -> Any:
    action = BulkAction(
        names.alert_outbox,
        hit.id,
        fields,
        op="update",
        if_seq_no=hit.seq_no if conditional else None,
        if_primary_term=hit.primary_term if conditional else None,
    )
    return write(es, [action], names=names, stage="alerts")


def _record(source: Mapping[str, Any]) -> OutboxRecord:
    """The mailer's OutboxRecord from an outbox digest document."""
    return OutboxRecord(
        state=OutboxState(source.get("state", OutboxState.PENDING.value)),
        runs=int(source.get("runs") or 0),
        next_attempt=_parse_time(source.get("next_attempt")),
        reason=str(source.get("reason") or ""),
        message_id=str(source.get("message_id") or ""),
        refused={
            str(item["address"]): (int(item["code"]), str(item.get("reply") or ""))
            for item in source.get("refused") or ()
        },
        updated=_parse_time(source.get("updated")),
        pending_recipients=tuple(source.get("pending_recipients") or ()),
    )


def _record_fields(record: OutboxRecord) -> dict[str, Any]:
    return {
        "state": record.state.value,
        "runs": record.runs,
        "next_attempt": _iso(record.next_attempt) if record.next_attempt else None,
        "reason": record.reason,
        "message_id": record.message_id,
        "refused": [
            {"address": address, "code": code, "reply": reply}
            for address, (code, reply) in sorted(record.refused.items())
        ],
        "updated": _iso(record.updated) if record.updated else None,
        "pending_recipients": list(record.pending_recipients),
    }


def _build_digest(
    es: Elasticsearch,
    names: IndexNames,
    digest: _Hit,
    rule: AlertRule,
    now: datetime,
    source_names: Mapping[str, str],
) -> Digest:
    """The digest's stories, each from its first matched article with highlighted terms."""
    alerts = _mget(es, names.alert_outbox, list(digest.source["alert_ids"]))
    ordered = [alerts[aid] for aid in digest.source["alert_ids"] if aid in alerts]
    firsts = [str(hit.source["first_article"]) for hit in ordered]
    articles = _highlighted(es, names.articles, rule, firsts)
    items = []
    for hit in ordered:
        article = articles.get(str(hit.source["first_article"]))
        if article is None:
            log.warning("alert %s: article %s is gone", hit.id, hit.source["first_article"])
            continue
        own = str(article.source.get("source") or "")
        others = sorted(set(hit.source.get("sources") or ()) - {own})
        items.append(
            DigestItem(
                article_id=article.id,
                title=str(article.source.get("title") or ""),
                url=str(article.source.get("url") or ""),
                source=source_names.get(own, own),
                language=str(article.source.get("language") or ""),
                published=_parse_time(article.source.get("published"))
                or _parse_time(article.source.get("fetched"))
                or now,
                snippet=article.snippet,
                matched_terms=article.terms,
                also_reported_by=tuple(source_names.get(s, s) for s in others),
            )
        )
    return Digest(
        rule_id=rule.id,
        rule_name=rule.name,
        recipients=(str(digest.source["recipient"]),),
        items=tuple(items),
        window_start=_parse_time(digest.source["window_start"]) or now,
        window_end=_parse_time(digest.source["window_end"]) or now,
    )


@dataclass(frozen=True, slots=True)
class _Highlighted:
    id: str
    source: dict[str, Any]
    snippet: str
    terms: tuple[str, ...]


_ARTICLE_FIELDS: Final = ["title", "url", "source", "language", "published", "fetched", "text"]


def _highlighted(
    es: Elasticsearch, index: str, rule: AlertRule, ids: Sequence[str]
) -> dict[str, _Highlighted]:
    """The articles ``ids`` (all of them), with what the rule matches in each highlighted.

    One search per language in one msearch, each highlighting only that language's fields
    with only that language's query: the whole rule against every language field costs
    several times more and finds nothing more.
    """
    if not ids:
        return {}
    documents = _mget(es, index, list(ids))
    by_language: dict[str, list[str]] = defaultdict(list)
    for doc_id, hit in documents.items():
        lang = str(hit.source.get("language") or "")
        if lang in rule.queries:
            by_language[lang].append(doc_id)
    searches: list[dict[str, Any]] = []
    for lang, group in sorted(by_language.items()):
        searches.append({"index": index})
        searches.append(
            {
                "query": {"ids": {"values": group}},
                "size": len(group),
                "_source": False,
                "highlight": {
                    "pre_tags": [_MARK_OPEN],
                    "post_tags": [_MARK_CLOSE],
                    "highlight_query": compile_language(parse_query(rule.queries[lang]), lang),
                    "fields": {
                        f"title_{lang}": {"number_of_fragments": 0},
                        # Five fragments to list what matched; the snippet shows two.
                        f"text_{lang}": {
                            "fragment_size": _SNIPPET_CHARS,
                            "number_of_fragments": 5,
                        },
                    },
                },
            }
        )
    marks: dict[str, dict[str, list[str]]] = {}
    if searches:
        response = call(es, es.msearch, searches=searches)
        for answer in response["responses"]:
            if "error" in answer:
                raise RuleError(rule.id, f"highlighting failed: {answer['error']}")
            for hit in answer["hits"]["hits"]:
                marks[hit["_id"]] = hit.get("highlight", {})
    found = {}
    for doc_id, hit in documents.items():
        fields = marks.get(doc_id, {})
        title_parts = [
            f for name, frags in fields.items() if name.startswith("title_") for f in frags
        ]
        text_parts = [
            f for name, frags in fields.items() if name.startswith("text_") for f in frags
        ]
        if text_parts:
            snippet = " … ".join(_unmark(fragment).strip() for fragment in text_parts[:2])
        else:
            snippet = _lead(str(hit.source.get("text") or ""))
        source = {key: hit.source.get(key) for key in _ARTICLE_FIELDS}
        terms = _marked_terms([*title_parts, *text_parts])
        found[doc_id] = _Highlighted(doc_id, source, snippet, terms)
    return found


def _marked_terms(fragments: Iterable[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for fragment in fragments:
        for piece in fragment.split(_MARK_OPEN)[1:]:
            term = " ".join(piece.partition(_MARK_CLOSE)[0].split())
            if term:
                seen.setdefault(term.casefold(), term)
    return tuple(seen.values())


def _unmark(fragment: str) -> str:
    return fragment.replace(_MARK_OPEN, "").replace(_MARK_CLOSE, "")


def _lead(text: str) -> str:
    text = " ".join(text.split())
    if len(text) <= _SNIPPET_CHARS:
        return text
    return text[:_SNIPPET_CHARS].rsplit(" ", 1)[0] + " …"


# --- operator actions and counts --------------------------------------------------------------


def resend(es: Elasticsearch, names: IndexNames, did: str, *, now: datetime) -> OutboxRecord:
    """An operator's resend of a failed or unknown digest: pending again, same Message-ID."""
    hit = _mget(es, names.alert_outbox, [did]).get(did)
    if hit is None or hit.source.get("kind") != "digest":
        raise PermanentError(f"no digest {did!r} in the outbox")
    record = outbox_transition(_record(hit.source), Resend(at=now))
    if _update(es, names, hit, _record_fields(record)).outcomes.get(did) != "updated":
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


# --- trying rules on files (newsradar alerts test) ----------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleHit:
    """A rule that matched a file, with the words it matched and a highlighted snippet."""

    rule_id: str
    name: str
    terms: tuple[str, ...]
    snippet: str


@dataclass(frozen=True, slots=True)
class TrialResult:
    """One file run through the rules: its language and the rules that match it."""

    file: str
    title: str
    language: str
    probability: float
    method: str
    hits: tuple[RuleHit, ...]


# What `newsradar alerts test DIR` tries in a directory.
ARTICLE_SUFFIXES: Final = (".txt", ".html", ".htm")


def article_files(paths: Sequence[Path]) -> list[Path]:
    """The files to try: each file as given; for a directory, its .txt and .html files, sorted.

    A ConfigError names a path that does not exist, is neither a file nor a directory (a
    device or a pipe would never end), or is a directory without such files.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            try:
                found = sorted(
                    entry
                    for entry in path.iterdir()
                    if entry.suffix.lower() in ARTICLE_SUFFIXES
                    and not entry.name.startswith(".")
                    and entry.is_file()
                )
            except OSError as exc:
                raise ConfigError(str(path), "", f"cannot be read: {exc.strerror}") from None
            if not found:
                raise ConfigError(str(path), "", "a directory without .txt or .html files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        elif path.exists():
            raise ConfigError(str(path), "", "neither a file nor a directory")
        else:
            raise ConfigError(str(path), "", "no such file or directory")
    return files


def read_article_file(path: Path, *, now: datetime) -> tuple[str, str, str | None]:
    """(title, text, language hint) of an HTML page (extracted) or a text file (first line)."""
    # Imported here: trafilatura takes seconds to import, and only this command needs it.
    from pipeline.normalise.extract import extract_article

    try:
        body = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot be read: {exc.strerror}") from None
    head = body.lstrip()[:512].lower()
    if path.suffix.lower() in (".html", ".htm") or head.startswith((b"<!doctype html", b"<html")):
        article = extract_article(
            body, f"https://alerts-test.invalid/{path.name}", fetched_at=now, min_chars=1
        )
        return article.title, article.text, article.language_hint
    text = body.decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines()]
    first = next((i for i, line in enumerate(lines) if line), 0)
    title = lines[first] if lines else ""
    return title, "\n".join(lines[first + 1 :]).strip(), None


def try_rules(
    es: Elasticsearch,
    names: IndexNames,
    rules: Sequence[AlertRule],
    files: Sequence[Path],
    *,
    now: datetime,
) -> list[TrialResult]:
    """Which rules match each file, on the real analysers: a throw-away index, removed after.

    The index is built from mappings/articles.json, so a file is analysed exactly as an
    indexed article would be. Source and country filters are not applied: a file has neither.
    """
    from pipeline.normalise.language import detect_language  # slow to import; only needed here

    call(es, check_terms, client=es, rules=rules)
    template = load_template("articles", names.prefix)["template"]
    index = f"{names.prefix}-alerts-test-{uuid.uuid4().hex[:12]}"
    queries = {rule.id: compile_rule(rule, with_filters=False) for rule in rules}
    results = []
    call(
        es,
        es.indices.create,
        index=index,
        settings=template["settings"],
        mappings=template["mappings"],
    )
    try:
        for number, path in enumerate(files):
            title, text, hint = read_article_file(path, now=now)
            language = detect_language(title, text, hint=hint)
            lang = language.language
            document: dict[str, Any] = {"title": title, "text": text, "language": lang}
            if f"text_{lang}" in template["mappings"]["properties"]:
                document[f"title_{lang}"] = title
                document[f"text_{lang}"] = text
            doc_id = f"file-{number}"
            call(es, es.index, index=index, id=doc_id, document=document, refresh=True)
            hits = []
            for rule in rules:
                if _matches(es, index, queries[rule.id], doc_id):
                    hit = _highlighted(es, index, rule, [doc_id])[doc_id]
                    hits.append(RuleHit(rule.id, rule.name, hit.terms, hit.snippet))
            results.append(
                TrialResult(
                    file=str(path),
                    title=title,
                    language=lang,
                    probability=round(language.probability, 3),
                    method=language.method,
                    hits=tuple(hits),
                )
            )
    finally:
        try:
            es.options(ignore_status=404).indices.delete(index=index)
        except (TransportError, ApiError) as exc:
            log.warning("could not remove the test index %s: %s", index, exc)
    return results


def _matches(es: Elasticsearch, index: str, query: dict[str, Any], doc_id: str) -> bool:
    restricted = {"bool": {"must": [query], "filter": [{"ids": {"values": [doc_id]}}]}}
    return int(call(es, es.count, index=index, query=restricted)["count"]) > 0
