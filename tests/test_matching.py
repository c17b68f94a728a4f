"""Durable matching: the stored ``match_pending`` mark, refused rules, and status showing both."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from test_alerts import ORIGINAL, REWORDED, STORY, T0, World, _demo_article, _index, _world

from pipeline.alerts.match import match_pending, matching_health
from pipeline.alerts.outbox import alert_id
from pipeline.alerts.rules import StoredRule, load_rules
from pipeline.cli import main
from pipeline.ops.status import collect_status
from pipeline.settings import Settings
from pipeline.store.client import SearchUnavailable


@pytest.fixture
def world(es_client: Elasticsearch, es_settings: Settings) -> World:
    return _world(es_client, es_settings)


def _pending(world: World, doc_id: str, path: str = ORIGINAL, **changes: Any) -> None:
    document = _demo_article(path, story=STORY, indexed=T0, match_pending=True, **changes)
    _index(world, {doc_id: document})


def _marks(world: World) -> dict[str, Any]:
    world.es.indices.refresh(index=world.names.articles)
    hits = world.es.search(index=world.names.articles, size=100, source_includes=["match_pending"])
    return {hit["_id"]: hit["_source"].get("match_pending") for hit in hits["hits"]["hits"]}


def _alerts(world: World) -> list[str]:
    world.es.indices.refresh(index=world.names.alert_outbox)
    hits = world.es.search(index=world.names.alert_outbox, query={"term": {"kind": "alert"}})
    return sorted(hit["_id"] for hit in hits["hits"]["hits"])


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_article_left_unmatched_by_a_failed_run_is_matched_by_the_next(world: World) -> None:
    _pending(world, "original")
    unreachable = Elasticsearch(f"http://127.0.0.1:{_closed_port()}", request_timeout=2)
    with pytest.raises(SearchUnavailable):
        match_pending(unreachable, world.names, now=T0)
    assert _marks(world) == {"original": True}
    assert _alerts(world) == []

    report = match_pending(world.es, world.names, now=T0)
    assert (report.articles, report.created) == (1, 1)
    assert _alerts(world) == [alert_id("nato-enlargement", STORY)]
    assert _marks(world) == {"original": False}
    # Matched once: a later cycle has nothing left to do.
    assert match_pending(world.es, world.names, now=T0).articles == 0


def test_a_failure_after_the_outbox_write_keeps_the_mark_and_adds_nothing_twice(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.store.bulk import write as real_write

    _pending(world, "original")

    def dies_clearing_marks(es: Elasticsearch, actions: Any, **kwargs: Any) -> Any:
        actions = list(actions)
        if any(a.document.get("match_pending") is False for a in actions):
            raise SearchUnavailable("http://127.0.0.1:9200", "node gone while clearing marks")
        return real_write(es, actions, **kwargs)

    # A node failing on cue exactly between two writes cannot be had from the real thing; the
    # real process kill at this boundary is in test_crashpoints.
    monkeypatch.setattr("pipeline.alerts.match.write", dies_clearing_marks)
    with pytest.raises(SearchUnavailable):
        match_pending(world.es, world.names, now=T0)
    monkeypatch.undo()
    assert _marks(world) == {"original": True}
    assert len(_alerts(world)) == 1

    again = match_pending(world.es, world.names, now=T0 + timedelta(minutes=1))
    assert (again.articles, again.created, again.already_alerted) == (1, 0, 1)
    assert len(_alerts(world)) == 1
    assert _marks(world) == {"original": False}


def test_sources_restrict_what_a_task_matches(world: World) -> None:
    _pending(world, "original")
    _pending(world, "reworded", REWORDED)
    world.es.indices.refresh(index=world.names.articles)
    source_of = {
        hit["_id"]: hit["_source"]["source"]
        for hit in world.es.search(index=world.names.articles, source_includes=["source"])["hits"][
            "hits"
        ]
    }
    report = match_pending(world.es, world.names, now=T0, sources=[source_of["reworded"]])
    assert report.articles == 1
    assert _marks(world) == {"original": True, "reworded": False}


def _store_broken_rule(world: World) -> None:
    """A rule whose stored query the node refuses at search time (a regexp over its limit)."""
    broken = {
        "rule_id": "broken",
        "name": "Broken",
        "recipients": ["alice@example.org"],
        "digest_seconds": 60,
        "min_sources": 1,
        "languages": ["en"],
        "queries": {"en": "x"},
        "filters": {},
        "query": {"regexp": {"text_en": {"value": "a" * 2000}}},
        "fingerprint": "broken",
        "stored": T0.isoformat(),
    }
    world.es.index(index=world.names.alert_rules, id="broken", document=broken, refresh=True)


def test_a_refused_rule_is_recorded_and_the_other_rules_still_match(world: World) -> None:
    _store_broken_rule(world)
    _pending(world, "original")
    report = match_pending(world.es, world.names, now=T0)
    assert report.created == 1
    assert list(report.refused) == ["broken"]
    assert _alerts(world) == [alert_id("nato-enlargement", STORY)]
    # The article has been through every rule that can run: it is not matched again and again.
    assert _marks(world) == {"original": False}
    health = matching_health(world.es, world.names)
    assert health["unmatched"] == 0
    [error] = health["rule_errors"]
    assert error["rule"] == "broken"
    assert "refused" in error["error"]
    assert error["at"].startswith(T0.date().isoformat())

    # Fixed in place, the rule runs again and its error is cleared.
    stored = world.es.get(index=world.names.alert_rules, id="broken")["_source"]
    stored["query"] = {"match": {"text_en": "NATO"}}
    world.es.index(index=world.names.alert_rules, id="broken", document=stored, refresh=True)
    _pending(world, "reworded", REWORDED)
    assert match_pending(world.es, world.names, now=T0).refused == {}
    world.es.indices.refresh(index=world.names.alert_rules)
    assert matching_health(world.es, world.names)["rule_errors"] == []
    assert [r.last_error for r in load_rules(world.es, world.names)] == [None, None]
    assert all(isinstance(r, StoredRule) for r in load_rules(world.es, world.names))


def test_hundreds_of_rules_run_a_hundred_to_a_search_and_a_refused_one_is_found(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 250 more rules: every tenth one matches the article ("NATO"), the others a word it lacks.
    rules = []
    for n in range(250):
        rule = world.es.get(index=world.names.alert_rules, id="nato-enlargement")["_source"]
        rule.update(rule_id=f"r{n:03d}", name=f"Rule {n}", fingerprint=f"r{n}")
        word = "NATO" if n % 10 == 0 else f"absentword{n}"
        rule["query"] = {"match": {"text_en": word}}
        rules.append({"index": {"_index": world.names.alert_rules, "_id": f"r{n:03d}"}})
        rules.append(rule)
    world.es.bulk(operations=rules, refresh=True)
    _store_broken_rule(world)
    searches: list[int] = []
    real = world.es.msearch

    def counted(**kwargs: Any) -> Any:
        searches.append(len(kwargs["searches"]) // 2)
        return real(**kwargs)

    monkeypatch.setattr(world.es, "msearch", counted)
    _pending(world, "original")
    report = match_pending(world.es, world.names, now=T0)
    assert sorted(report.matched) == sorted(
        ["nato-enlargement", *(f"r{n:03d}" for n in range(0, 250, 10))]
    )
    assert list(report.refused) == ["broken"]
    # 252 rules: three searches; the one holding the refused rule again, one rule a search.
    assert searches == [3, 100]
    world.es.indices.refresh(index=world.names.alert_outbox)
    count = world.es.count(index=world.names.alert_outbox, query={"term": {"kind": "alert"}})
    assert count["count"] == 26


def test_status_shows_unmatched_articles_and_refused_rules(
    world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _store_broken_rule(world)
    _pending(world, "original")
    world.es.indices.refresh(index=world.names.articles)
    status = collect_status(world.es, world.names, world.config.sources)
    assert (status["unmatched"], status["rule_errors"]) == (1, [])

    match_pending(world.es, world.names, now=T0)
    world.es.indices.refresh(index=world.names.alert_rules)
    status = collect_status(world.es, world.names, world.config.sources)
    assert status["unmatched"] == 0
    assert [e["rule"] for e in status["rule_errors"]] == ["broken"]

    env = {
        "NEWSRADAR_ES_URL": str(world.config.settings.es_url),
        "NEWSRADAR_INDEX_PREFIX": world.config.settings.index_prefix,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["status", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [e["rule"] for e in printed["rule_errors"]] == ["broken"]
