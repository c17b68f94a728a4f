"""The stored rules run over one batch of articles: which articles each rule matches.

Rules go to Elasticsearch a hundred at a time, each as a named clause of one search filtered to
the batch's ids, so a hit's ``matched_queries`` says which rules it matched: a thousand rules
cost ten searches per batch, not a thousand. A search Elasticsearch refuses (4xx) is run again
one rule at a time, so that a bad rule is found and named while every other rule still matches;
a 5xx is the cluster's trouble, not a rule's, and raises SearchUnavailable so that the batch is
matched again later.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Final

from elasticsearch import Elasticsearch

from pipeline.alerts.rules import RuleError, StoredRule
from pipeline.store.client import IndexNames, SearchUnavailable, call, node_url

__all__ = ["RULES_PER_SEARCH", "run_rules"]

log = logging.getLogger(__name__)

# Rules per search: well under Elasticsearch's clause limit for rules of a few dozen terms.
RULES_PER_SEARCH: Final = 100
# Ids per search: Elasticsearch returns at most index.max_result_window (10 000) hits.
_IDS_PER_SEARCH: Final = 5000


def run_rules(
    es: Elasticsearch, names: IndexNames, rules: Sequence[StoredRule], ids: Sequence[str]
) -> tuple[dict[str, set[str]], dict[str, str]]:
    """Rule id -> the batch's article ids it matches; and the rules Elasticsearch refused."""
    groups = [
        (list(rules[r : r + RULES_PER_SEARCH]), list(ids[i : i + _IDS_PER_SEARCH]))
        for r in range(0, len(rules), RULES_PER_SEARCH)
        for i in range(0, len(ids), _IDS_PER_SEARCH)
    ]
    matched: dict[str, set[str]] = defaultdict(set)
    refused: dict[str, str] = {}
    answers = _msearch(es, names, [_together(group, chunk) for group, chunk in groups])
    alone: list[tuple[StoredRule, list[str]]] = []
    for (group, chunk), answer in zip(groups, answers, strict=True):
        if "error" in answer:
            _raise_if_unavailable(es, answer, ", ".join(rule.id for rule in group))
            alone += [(rule, chunk) for rule in group]
            continue
        for hit in answer["hits"]["hits"]:
            for rule_id in hit.get("matched_queries", ()):
                matched[rule_id].add(hit["_id"])
    if alone:
        answers = _msearch(es, names, [_single(rule, chunk) for rule, chunk in alone])
        for (rule, _), answer in zip(alone, answers, strict=True):
            if "error" in answer:
                _raise_if_unavailable(es, answer, rule.id)
                refused[rule.id] = f"Elasticsearch refused its query: {_reason(answer['error'])}"
                log.error("%s", RuleError(rule.id, refused[rule.id]))
                continue
            matched[rule.id].update(hit["_id"] for hit in answer["hits"]["hits"])
    return matched, refused


def _together(rules: Sequence[StoredRule], ids: Sequence[str]) -> dict[str, Any]:
    """One search for many rules: each a clause named after its rule."""
    return {
        "query": {
            "bool": {
                "should": [{"bool": {"must": [rule.query], "_name": rule.id}} for rule in rules],
                "minimum_should_match": 1,
                "filter": [{"ids": {"values": list(ids)}}],
            }
        },
        "size": len(ids),
        "_source": False,
        "track_total_hits": False,
    }


def _single(rule: StoredRule, ids: Sequence[str]) -> dict[str, Any]:
    return {
        "query": {"bool": {"must": [rule.query], "filter": [{"ids": {"values": list(ids)}}]}},
        "size": len(ids),
        "_source": False,
        "track_total_hits": False,
    }


def _msearch(
    es: Elasticsearch, names: IndexNames, bodies: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    if not bodies:
        return []
    searches: list[Mapping[str, Any]] = []
    for body in bodies:
        searches += [{"index": names.articles}, body]
    return list(call(es, es.msearch, searches=searches)["responses"])


def _raise_if_unavailable(es: Elasticsearch, answer: Mapping[str, Any], rules: str) -> None:
    if int(answer.get("status", 400)) >= 500:
        raise SearchUnavailable(node_url(es), f"rule {rules}: {_reason(answer['error'])}")


def _reason(error: object) -> str:
    """The most telling reason in an Elasticsearch error body (the root cause's, when given)."""
    if not isinstance(error, dict):
        return str(error)
    causes = error.get("root_cause") or []
    cause = causes[0] if causes and isinstance(causes[0], dict) else error
    return str(cause.get("reason") or error.get("reason") or error.get("type") or error)
