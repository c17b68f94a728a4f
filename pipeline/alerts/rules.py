"""Stored topic rules: checked against the real analysers, written to the rules index, read back.

``newsradar init`` stores every rule of alerts.yaml compiled once (``store_rules``), so every
worker matches with the same queries; matching reads them with ``load_rules`` and records on
each rule's document whether Elasticsearch refused its query (``record_rule_health``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.alerts.query import compile_rule, parse_query, rule_fingerprint, terms
from pipeline.alerts.reads import iso, scan
from pipeline.errors import ConfigError, PermanentError
from pipeline.languages import analyse_request, language
from pipeline.settings import DEFAULT_MIN_RELEVANCE, AlertRule
from pipeline.store.bulk import BulkAction, write
from pipeline.store.client import IndexNames, call

__all__ = [
    "RuleError",
    "StoreReport",
    "StoredRule",
    "analyse",
    "check_terms",
    "load_rules",
    "record_rule_health",
    "store_rules",
]


class RuleError(PermanentError):
    """A stored rule that Elasticsearch refuses to run; ``rule_id`` names it."""

    def __init__(self, rule_id: str, detail: str) -> None:
        super().__init__(rule_id, detail)
        self.rule_id = rule_id
        self.detail = detail

    def __str__(self) -> str:
        return f"alert rule {self.rule_id}: {self.detail}"


@dataclass(frozen=True, slots=True)
class StoredRule:
    """A rule as the rules index holds it: what matching needs, compiled once at init.

    ``query`` is None for a breaking-story rule over every topic (no queries);
    ``breaking_sources`` is 0 unless the rule alerts on breaking stories.
    """

    id: str
    name: str
    recipients: tuple[str, ...]
    digest_seconds: int
    min_sources: int
    query: dict[str, Any] | None
    fingerprint: str
    last_error: str | None = None
    queries: Mapping[str, str] = field(default_factory=dict)
    min_relevance: float = DEFAULT_MIN_RELEVANCE
    breaking_sources: int = 0
    breaking_seconds: int = 0


@dataclass(slots=True)
class StoreReport:
    """What ``store_rules`` wrote: rule ids stored (new or changed), unchanged, removed."""

    stored: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _rule_document(rule: AlertRule, now: datetime) -> dict[str, Any]:
    query = compile_rule(rule) if rule.queries else None
    breaking = rule.breaking
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
        "fingerprint": rule_fingerprint(query or {}),
        "min_relevance": rule.relevance_threshold,
        "breaking": (
            {"sources": breaking.sources, "within_seconds": breaking.within_seconds}
            if breaking is not None
            else None
        ),
        "stored": iso(now),
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
    # Analysed in the rules index: an API key limited to the prefix's indices (production's)
    # may analyse there, not cluster-wide.
    call(es, check_terms, client=es, rules=rules, source=source, index=names.alert_rules)
    existing = {hit.id: hit.source for hit in scan(es, names.alert_rules, {"match_all": {}})}
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
    for hit in scan(es, names.alert_rules, {"match_all": {}}):
        doc = hit.source
        breaking = doc.get("breaking") or {}
        rules.append(
            StoredRule(
                id=str(doc["rule_id"]),
                name=str(doc["name"]),
                recipients=tuple(doc.get("recipients", ())),
                digest_seconds=int(doc["digest_seconds"]),
                min_sources=int(doc.get("min_sources", 1)),
                query=dict(doc["query"]) if doc.get("query") else None,
                fingerprint=str(doc.get("fingerprint", "")),
                last_error=doc.get("last_error") or None,
                queries=dict(doc.get("queries") or {}),
                min_relevance=float(doc.get("min_relevance", DEFAULT_MIN_RELEVANCE)),
                breaking_sources=int(breaking.get("sources") or 0),
                breaking_seconds=int(breaking.get("within_seconds") or 0),
            )
        )
    return sorted(rules, key=lambda rule: rule.id)


def record_rule_health(
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
            changes: dict[str, Any] = {"last_error": refused[rule.id], "last_error_at": iso(now)}
        elif rule.last_error:
            changes = {"last_error": None}
        else:
            continue
        actions.append(BulkAction(names.alert_rules, rule.id, changes, op="update"))
    if actions:
        # Refreshed so that ``status`` shows the refusal at once; the rules index is tiny.
        write(es, actions, names=names, stage="alerts", refresh=True)


def analyse(
    client: Elasticsearch, lang: str, text: str, *, index: str | None = None
) -> tuple[str, ...]:
    """The terms ``lang``'s analyser makes of ``text``, in order (stop words dropped).

    Without ``index`` the request is cluster-wide, which needs the cluster privilege manage;
    with it, the index's own privileges suffice (the analysers named are the node's anyway).
    """
    response = client.indices.analyze(index=index, text=text, **analyse_request(lang))
    return tuple(str(token["token"]) for token in response["tokens"])


def check_terms(
    client: Elasticsearch,
    rules: Sequence[AlertRule],
    *,
    source: str = "alerts.yaml",
    index: str | None = None,
) -> None:
    """Refuse words and phrases that the language's analyser drops entirely: they match nothing.

    ``the`` or ``и`` in a query is almost always a lower-case operator; as a word it would
    make the whole AND group unmatchable, silently. A phrase is refused when all its words
    are stop words (``"the"``, ``"of the"``); one stop word among others (``"join the NATO"``)
    is fine, since the analyser keeps its position.
    """
    for rule in rules:
        for lang, text in rule.queries.items():
            entry = language(lang)
            analyser = entry.analyser if entry is not None else lang
            for item in sorted({t.text for t in terms(parse_query(text))}):
                if analyse(client, lang, item, index=index):
                    continue
                if " " in item:
                    problem = f"every word of the phrase {item!r} is a stop word for the"
                else:
                    problem = f"{item!r} is a stop word for the"
                raise ConfigError(
                    source,
                    f"alerts (id={rule.id}).queries.{lang}",
                    f"{problem} {analyser} analyser and matches nothing "
                    "(operators are AND, OR, NOT in capitals)",
                )
