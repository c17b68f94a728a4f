"""Matching: run the stored rules on newly indexed articles and put what matched in the outbox.

The local node has no percolator, so "percolating" a batch is done the other way round: after
a batch is indexed, every stored rule's compiled query runs restricted to the batch's article
ids (one ``msearch``: rules x ids filter). For our purpose this is the same thing: each article
is tested against every rule exactly when it is indexed, whatever its published date, and an
article that arrives late or is re-indexed is still tested once more without raising a second
alert (below). Rules are stored in Elasticsearch by pipeline.alerts.rules.store_rules
(``newsradar init``), so every worker matches with the same compiled queries.

Once per story. A match goes to the outbox as an *alert* with ``_id = hash(rule id, story
id)`` (pipeline.alerts.outbox.alert_id), written with ``op_type=create``: a syndicated or
reworded copy of a story already alerted, a retried task or a re-run finds the alert there and
only adds its article and source to it (a conditional update on ``_seq_no``/``_primary_term``;
no scripts). An alert whose story has fewer distinct sources than the rule's ``min_sources``
waits until copies bring it there. The alert keeps the reports its rule matched and follows
them when the story stage moves them to another story (pipeline.alerts.moves).

Relevance. A match counts only when the article is about the topic as much as the rule asks
(``min_relevance``, pipeline.alerts.relevance); the score and its passage go on the alert.

Breaking stories. A rule with ``breaking`` alerts when a story reaches that many sources within
its window (pipeline.alerts.breaking): a story it matched waits until then, like one held by
``min_sources``; a rule without queries watches every story of every batch and writes an alert
only once the story has broken. A muted story (pipeline.alerts.feedback) gets no new alert.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.alerts.batch import BatchArticle, read_batch, story_arrivals
from pipeline.alerts.batch_rules import run_rules
from pipeline.alerts.breaking import broke_at
from pipeline.alerts.feedback import muted_stories
from pipeline.alerts.moves import Moved, matched_of, moved_alerts
from pipeline.alerts.outbox import alert_id
from pipeline.alerts.reads import ROUNDS, Hit, iso, mget, scan
from pipeline.alerts.relevance import Relevance, score_articles
from pipeline.alerts.rules import StoredRule, load_rules, record_rule_health
from pipeline.store.bulk import BulkAction, BulkReport, write
from pipeline.store.client import IndexNames, call

__all__ = ["MatchReport", "match_new", "match_pending", "matching_health"]

log = logging.getLogger(__name__)

_Arrivals = dict[str, datetime | None]
_Changes = dict[str, Any]


@dataclass(slots=True)
class MatchReport:
    """What ``match_new`` did with one batch.

    ``created``: new alerts; ``waiting``: of those and of the alerts a copy touched, how many
    are still held back by ``min_sources``; ``activated``: waiting alerts that reached it;
    ``already_alerted``: matches for a story whose alert existed (a copy or a re-run);
    ``updated``: alerts that gained an article or a source; ``missing``: ids not in the index;
    ``irrelevant``: query matches left out for falling below the rule's min_relevance;
    ``muted``: matches on muted stories.
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
    irrelevant: int = 0
    muted: int = 0
    refused: dict[str, str] = field(default_factory=dict)

    def add(self, other: MatchReport) -> None:
        """Fold the report of a later batch into this one."""
        # Every count adds up, except the rules: each batch ran the same rules.
        for name in (f.name for f in fields(self) if f.type == "int" and f.name != "rules"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.rules = max(self.rules, other.rules)
        for rule_id, ids in other.matched.items():
            self.matched[rule_id] = sorted({*self.matched.get(rule_id, ()), *ids})
        self.refused.update(other.refused)


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
    batch = read_batch(es, names, ids)
    report.missing = len(ids) - len(batch)
    if not batch:
        return report
    queried = [rule for rule in rules if rule.query is not None]
    matched, report.refused = run_rules(es, names, queried, sorted(batch))
    record_rule_health(es, names, queried, report.refused, now=now)
    scores = _keep_relevant(es, names, queried, batch, matched, report)
    for rule_id, article_set in matched.items():
        if not article_set:
            continue
        report.matched[rule_id] = sorted(article_set)
        report.matches += len(article_set)

    verdicts = _write_alerts(
        es, names, rules, batch, matched, scores, report, now=now, run_id=run_id
    )
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


def _keep_relevant(
    es: Elasticsearch,
    names: IndexNames,
    rules: Sequence[StoredRule],
    batch: Mapping[str, BatchArticle],
    matched: dict[str, set[str]],
    report: MatchReport,
) -> dict[str, dict[str, Relevance]]:
    """Score every match and leave out those below their rule's min_relevance (in place).

    A match that cannot be scored (a rule stored without its queries) is kept: relevance only
    ever takes a match away.
    """
    by_id = {rule.id: rule for rule in rules}
    wanted = {
        rule_id: {article: batch[article].language for article in found}
        for rule_id, found in matched.items()
        if found and by_id[rule_id].queries
    }
    queries = {rule_id: by_id[rule_id].queries for rule_id in wanted}
    scores = score_articles(es, names.articles, wanted, queries) if wanted else {}
    for rule_id, found in matched.items():
        threshold = by_id[rule_id].min_relevance
        rated = scores.get(rule_id, {})
        below = {a for a, relevance in rated.items() if a in found and relevance.score < threshold}
        for article in sorted(below):
            relevance = scores[rule_id][article]
            log.info("%s: %s left out, %s", rule_id, article, relevance.explain())
        found -= below
        report.irrelevant += len(below)
    return scores


def _write_alerts(
    es: Elasticsearch,
    names: IndexNames,
    rules: Sequence[StoredRule],
    batch: Mapping[str, BatchArticle],
    matched: Mapping[str, set[str]],
    scores: Mapping[str, Mapping[str, Relevance]],
    report: MatchReport,
    *,
    now: datetime,
    run_id: str | None,
) -> dict[str, str]:
    """Create or update the alert of every (rule, story) the batch touches; redo lost races.

    Returns what became of each alert (``_alert_action``'s verdict), decided afresh in each
    round so that it is counted once; the writes are counted in ``report``.
    """
    stories: dict[str, list[BatchArticle]] = defaultdict(list)
    for article in batch.values():
        stories[article.story].append(article)
    # The outbox is read by searches below (moved_alerts, _alerts_of), which see refreshed
    # documents only; a create racing them fails with a conflict and is read again
    # (_count_writes), so none is missed.
    call(es, es.indices.refresh, index=names.alert_outbox)
    queried = {rule.id for rule in rules if rule.query is not None}
    moves = moved_alerts(es, names, queried, sorted(stories))
    # A matched report moved into a story counts as matched there (and the story an alert
    # keeps, as matched by its first article): their alerts take them in like this batch's.
    matched = {rule_id: set(found) for rule_id, found in matched.items()}
    for moved in moves:
        for article in moved.reports():
            if article.id not in {a.id for a in stories[article.story]}:
                stories[article.story].append(article)
            matched.setdefault(moved.rule_id, set()).add(article.id)
    pairs, existing, arrivals, repoint = _pairs(
        es, names, rules, batch, stories, matched, moves, report
    )
    pending = set(pairs)
    verdicts: dict[str, str] = {}
    current = {aid: existing[aid] for aid in pending if aid in existing}
    for _ in range(ROUNDS):
        actions: list[BulkAction] = []
        for aid in sorted(pending):
            rule, story = pairs[aid]
            # A rule without queries stands for every article of the story.
            found = matched.get(rule.id, set()) if rule.query is not None else batch
            hits = sorted(
                (a for a in stories[story] if a.id in found), key=lambda a: (a.order, a.id)
            )
            relevance = scores.get(rule.id, {}).get(hits[0].id) if hits else None
            action, verdicts[aid] = _alert_action(
                names,
                aid,
                rule,
                stories[story],
                hits,
                arrivals[story],
                relevance,
                current.get(aid),
                repoint.get(aid, {}),
                now=now,
                run_id=run_id,
            )
            if action is not None:
                actions.append(action)
        if not actions:
            break
        # No refresh: this loop reads with real-time mget, and send_digests refreshes first.
        written = write(es, actions, names=names, stage="alerts", run_id=run_id)
        pending = _count_writes(written, report)
        if not pending:
            break
        current = mget(es, names.alert_outbox, sorted(pending))
    else:
        log.warning("%d alert(s) still contended after %d rounds", len(pending), ROUNDS)
    return verdicts


def _pairs(
    es: Elasticsearch,
    names: IndexNames,
    rules: Sequence[StoredRule],
    batch: Mapping[str, BatchArticle],
    stories: Mapping[str, list[BatchArticle]],
    matched: Mapping[str, set[str]],
    moves: Sequence[Moved],
    report: MatchReport,
) -> tuple[
    dict[str, tuple[StoredRule, str]], dict[str, Hit], dict[str, _Arrivals], dict[str, _Changes]
]:
    """The (rule, story) pairs the batch can change, by id; their alerts, sources and moves.

    The moves say where a moved alert's story and first article change (pipeline.alerts.moves).
    A new match creates the alert; an existing alert also takes this batch's copies and
    reports, whether or not the rule matched them; a rule without queries has a pair for each
    story that has broken. Only those are looked up: the alerts of the batch's stories, the
    matched pairs, and (only with such a rule) the arrivals of every story of the batch.
    """
    by_id = {rule.id: rule for rule in rules}
    existing = _alerts_of(es, names, sorted(stories), by_id)
    pairs = {
        aid: (by_id[str(hit.source["rule_id"])], str(hit.source["story_id"]))
        for aid, hit in existing.items()
    }
    everywhere = [rule for rule in rules if rule.query is None and rule.breaking_sources]
    # Only a new alert asks whether its story is muted (an existing one was muted in place).
    asking = everywhere or any(found for found in matched.values())
    muted = muted_stories(es, names, stories) if asking else set()
    story_of = {article.id: article.story for found in stories.values() for article in found}
    for rule_id, found in matched.items():
        for ident in sorted(found):
            story = story_of[ident]
            aid = alert_id(rule_id, story)
            if story in muted and aid not in pairs:
                report.muted += 1
                continue
            pairs.setdefault(aid, (by_id[rule_id], story))
    arrivals = story_arrivals(es, names, stories) if everywhere else {}
    for rule in everywhere:
        for story in sorted(set(stories) - muted):
            if _readiness(rule, arrivals[story])[0]:
                pairs.setdefault(alert_id(rule.id, story), (rule, story))
    repoint = _follow(pairs, existing, moves, by_id)
    # Only stories with a match or an alert can change the outbox: count only their sources.
    relevant = {story for _, story in pairs.values() if story in stories}
    if not everywhere:
        arrivals = story_arrivals(es, names, {story: stories[story] for story in relevant})
    kept = {aid: pair for aid, pair in pairs.items() if pair[1] in relevant}
    return kept, existing, arrivals, repoint


def _follow(
    pairs: dict[str, tuple[StoredRule, str]],
    existing: dict[str, Hit],
    moves: Sequence[Moved],
    rules: Mapping[str, StoredRule],
) -> dict[str, _Changes]:
    """Let each moved alert stand for the story it keeps (in place); return its changes.

    A story that has an alert of its own id keeps that one: the moved alert is left as it
    is, and the digest shows both as one item (pipeline.alerts.send).
    """
    repoint: dict[str, _Changes] = {}
    taken: set[str] = set()
    for moved in moves:
        rule = rules[moved.rule_id]
        own = alert_id(rule.id, moved.keeps)
        if own != moved.alert.id and (own in existing or own in taken):
            continue
        taken.add(own)
        pairs.pop(own, None)
        pairs[moved.alert.id] = (rule, moved.keeps)
        existing[moved.alert.id] = moved.alert
        changes = {"story_id": moved.keeps, "first_article": moved.first.id}
        repoint[moved.alert.id] = {
            key: value for key, value in changes.items() if moved.alert.source.get(key) != value
        }
    return repoint


def _alerts_of(
    es: Elasticsearch, names: IndexNames, stories: Sequence[str], rules: Mapping[str, StoredRule]
) -> dict[str, Hit]:
    """The stored rules' alerts of these stories, by alert id: one search, however many rules.

    The caller refreshes the outbox first.
    """
    if not stories:
        return {}
    found: dict[str, Hit] = {}
    for start in range(0, len(stories), 1000):
        query = {
            "bool": {
                "filter": [
                    {"term": {"kind": "alert"}},
                    {"terms": {"story_id": list(stories[start : start + 1000])}},
                ]
            }
        }
        for hit in scan(es, names.alert_outbox, query, limit=1_000_000):
            if str(hit.source.get("rule_id")) in rules:
                found[hit.id] = hit
    return found


def _count_writes(written: BulkReport, report: MatchReport) -> set[str]:
    """Count one round's alert writes; return the alerts another worker wrote meanwhile."""
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
    return retry


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
        mark = {"match_pending": False, "matched": iso(now)}
        cleared = [BulkAction(hit["_index"], hit["_id"], dict(mark), op="update") for hit in hits]
        write(es, cleared, names=names, stage="alerts", run_id=run_id)
        done.update(ids)


def matching_health(es: Elasticsearch, names: IndexNames) -> dict[str, Any]:
    """Articles still waiting to be matched, and the rules Elasticsearch refused last time."""
    pending = call(es, es.count, index=names.articles, query={"term": {"match_pending": True}})
    refused = scan(es, names.alert_rules, {"exists": {"field": "last_error"}})
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


def _readiness(rule: StoredRule, arrivals: _Arrivals) -> tuple[bool, dict[str, Any] | None]:
    """Whether the story may be mailed: enough sources, or broken; and how it broke."""
    if not rule.breaking_sources:
        return len(arrivals) >= rule.min_sources, None
    window = broke_at(arrivals, rule.breaking_sources, timedelta(seconds=rule.breaking_seconds))
    if window is None:
        return False, None
    return True, {
        "sources": rule.breaking_sources,
        "within_seconds": rule.breaking_seconds,
        "first": iso(window[0]),
        "at": iso(window[1]),
    }


def _new_alert(
    rule: StoredRule,
    hits: list[BatchArticle],
    batch_ids: set[str],
    sources: set[str],
    ready: bool,
    *,
    now: datetime,
) -> dict[str, Any]:
    """A new alert's document: ready, or waiting for its sources or for the story to break."""
    story = hits[0].story
    # A rule without queries has matched no article of its own: the story's first leads it.
    lead = hits[0].id if rule.query is not None or not hits[0].has_story else story
    return {
        "kind": "alert",
        "rule_id": rule.id,
        "story_id": story,
        "status": "ready" if ready else "waiting",
        "first_article": lead,
        "matched": sorted(a.id for a in hits) if rule.query is not None else [],
        "articles": sorted(batch_ids),
        "sources": sorted(sources),
        "source_count": len(sources),
        "min_sources": rule.min_sources,
        "pending_for": list(rule.recipients) if ready else [],
        "matched_at": iso(now),
        "ready_at": iso(now) if ready else None,
        "updated": iso(now),
    }


def _alert_action(
    names: IndexNames,
    aid: str,
    rule: StoredRule,
    story_articles: list[BatchArticle],
    hits: list[BatchArticle],
    arrivals: _Arrivals,
    relevance: Relevance | None,
    existing: Hit | None,
    repoint: _Changes,
    *,
    now: datetime,
    run_id: str | None,
) -> tuple[BulkAction | None, str]:
    """The create or conditional update this batch implies for one (rule, story), if any.

    The verdict says what it means: ``new``, ``waiting`` (held by min_sources or until the
    story breaks), ``activated`` (it got there), ``already_alerted`` (a match on a story
    alerted before), ``copy`` (an article of an alerted story that the rule did not match
    itself), or ``none``.
    """
    batch_ids = {a.id for a in story_articles}
    story_sources = {source for source in arrivals if source}
    if existing is None:
        if not hits:
            return None, "none"
        ready, breaking = _readiness(rule, arrivals)
        document = _new_alert(rule, hits, batch_ids, story_sources, ready, now=now)
        document.update(
            relevance=relevance.to_json() if relevance is not None else None,
            breaking=breaking,
            run_id=run_id,
        )
        action = BulkAction(names.alert_outbox, aid, document, op="create")
        return action, "new" if ready else "waiting"
    doc = existing.source
    verdict = "already_alerted" if hits else "copy"
    articles = sorted(set(doc.get("articles", ())) | batch_ids)
    merged_sources = sorted(set(doc.get("sources", ())) | story_sources)
    changes: dict[str, Any] = dict(repoint)
    if rule.query is not None and hits:
        # An alert written before the list stands for its first article (matched_of).
        matched = sorted({*matched_of(doc), *(a.id for a in hits)})
        if matched != sorted(doc.get("matched", ())):
            changes["matched"] = matched
    if articles != sorted(doc.get("articles", ())):
        changes["articles"] = articles
    if merged_sources != sorted(doc.get("sources", ())):
        changes["sources"] = merged_sources
        changes["source_count"] = len(merged_sources)
    if doc.get("status") == "waiting":
        if rule.breaking_sources:
            ready, breaking = _readiness(rule, arrivals)
        else:
            ready, breaking = len(merged_sources) >= int(doc.get("min_sources", 1)), None
        if ready:
            changes.update(status="ready", pending_for=list(rule.recipients), ready_at=iso(now))
            if breaking is not None:
                changes["breaking"] = breaking
            verdict = "activated_by_match" if hits else "activated"
        else:
            verdict = "waiting"
    if not changes:
        return None, verdict
    changes["updated"] = iso(now)
    action = BulkAction(
        names.alert_outbox,
        aid,
        changes,
        op="update",
        if_seq_no=existing.seq_no,
        if_primary_term=existing.primary_term,
    )
    return action, verdict
