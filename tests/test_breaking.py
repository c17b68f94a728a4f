"""Breaking stories: one alert when a story reaches N sources within a window, and never again.

The real node, the real matching and outbox, digests mailed to a loopback SMTP server. A story's
articles carry its id as the story stage writes it; each comes from another source, fetched
at a time of the test's choosing, so what counts is the data and never the clock.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from smtpservers import HOST, ScriptedHandler, smtpd

from pipeline.alerts.breaking import broke_at
from pipeline.alerts.match import match_new
from pipeline.alerts.outbox import alert_id
from pipeline.alerts.rules import store_rules
from pipeline.alerts.send import send_digests
from pipeline.alerts.smtp import SmtpConfig
from pipeline.settings import AlertRule, Breaking, Config, Settings, Source
from pipeline.store.client import IndexNames, install

ALICE = "alice@example.org"
T0 = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
SOURCES = [f"outlet-{n}" for n in range(1, 7)]
QUAKE = (
    "Earthquake shakes the coast",
    "A strong earthquake struck off the coast early on Saturday, shaking buildings in three "
    "towns. Rescue teams were checking bridges and the harbour wall for damage.",
)
SUMMIT = (
    "Sweden's accession to NATO is sealed",
    "Sweden became a member of NATO on Thursday, the alliance's enlargement to the north "
    "complete after two years of talks.",
)
EVERY_STORY = AlertRule(
    id="breaking",
    name="Breaking news",
    recipients=(ALICE,),
    digest="15m",
    breaking=Breaking(sources=3, within="2h"),
)
NATO_BREAKING = AlertRule(
    id="nato-breaking",
    name="NATO enlargement, breaking",
    recipients=(ALICE,),
    digest="15m",
    queries={"en": "NATO AND (enlargement OR accession OR membership)"},
    breaking=Breaking(sources=3, within="2h"),
)


def test_a_story_breaks_at_the_nth_source_within_the_window() -> None:
    minutes = {f"s{n}": T0 + timedelta(minutes=m) for n, m in enumerate((0, 50, 100, 130))}
    assert broke_at(minutes, 3, timedelta(hours=2)) == (T0, T0 + timedelta(minutes=100))
    assert broke_at(minutes, 4, timedelta(hours=2)) is None
    # Any window, not only the story's first hours; unknown arrivals do not count.
    slow = {"a": T0, "b": T0 + timedelta(hours=3), "c": T0 + timedelta(hours=4), "d": None}
    assert broke_at(slow, 2, timedelta(hours=1)) == (slow["b"], slow["c"])
    assert broke_at(slow, 3, timedelta(hours=5)) == (T0, slow["c"])
    assert broke_at({}, 2, timedelta(hours=1)) is None


@dataclass
class World:
    es: Elasticsearch
    names: IndexNames
    config: Config


def _world(es: Elasticsearch, settings: Settings, *rules: AlertRule) -> World:
    names = IndexNames(settings.index_prefix)
    install(es, settings.index_prefix)
    sources = tuple(
        Source(id=sid, name=sid.replace("-", " ").title(), homepage=f"https://{sid}.example/")
        for sid in SOURCES
    )
    config = Config(settings=settings, sources=sources, alerts=rules)
    store_rules(es, names, rules, now=T0)
    return World(es, names, config)


def _report(world: World, story: str, n: int, at: datetime, fields: tuple[str, str] = QUAKE) -> str:
    """Source ``n``'s report of ``story``, fetched at ``at``: its id, the story's for the first."""
    title, text = fields
    article = story if n == 1 else f"{story}-{n}"
    document: dict[str, Any] = {
        "url": f"https://{SOURCES[n - 1]}.example/{article}",
        "source": SOURCES[n - 1],
        "title": title,
        "text": text,
        "title_en": title,
        "text_en": text,
        "language": "en",
        "published": at.isoformat(),
        "fetched": at.isoformat(),
        "indexed": at.isoformat(),
        "story_id": story,
        "story_relation": "first" if n == 1 else "same_event",
    }
    world.es.index(index=world.names.articles, id=article, document=document)
    return article


def _alerts(world: World) -> list[dict[str, Any]]:
    world.es.indices.refresh(index=world.names.alert_outbox)
    hits = world.es.search(
        index=world.names.alert_outbox, query={"term": {"kind": "alert"}}, size=100
    )["hits"]["hits"]
    return [hit["_source"] for hit in hits]


def _smtp(port: int) -> SmtpConfig:
    return SmtpConfig(host=HOST, port=port, sender="newsradar@alerts.example.org", timeout=5.0)


def _send(world: World, handler: ScriptedHandler, now: datetime) -> int:
    with smtpd(handler) as port:
        return send_digests(world.es, world.names, world.config, _smtp(port), now=now).sent


def test_a_rule_over_every_story_alerts_once_at_the_third_source_and_never_again(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, EVERY_STORY)
    handler = ScriptedHandler()
    created = []
    for n in range(1, 6):
        at = T0 + timedelta(minutes=20 * n)
        report = match_new(world.es, world.names, [_report(world, "quake", n, at)], now=at)
        created.append(report.created)
        _send(world, handler, at)
    assert created == [0, 0, 1, 0, 0]
    (alert,) = _alerts(world)
    assert alert["story_id"] == "quake" and alert["status"] == "ready"
    assert alert["first_article"] == "quake"  # the story's first report leads it
    assert alert["breaking"]["at"] == "2025-11-01T13:00:00.000Z"  # the third source's report
    assert alert["breaking"]["first"] == "2025-11-01T12:20:00.000Z"
    # The sources so far: the later ones join the alert, which owes nobody a second mail.
    assert alert["sources"] == SOURCES[:5] and alert["pending_for"] == []
    assert len(handler.received) == 1
    message = handler.received[0].message()
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Why this matched: breaking: 3 sources in 40 min" in text
    assert "Also reported by 2 sources in en\r\n   Other reports:\r\n" in text
    assert "     Outlet 2 · en · 2025-11-01 12:40 UTC\r\n" in text
    # A retried task, a re-run and a day later: nothing new.
    every = ["quake", *(f"quake-{n}" for n in range(2, 6))]
    retried = match_new(world.es, world.names, every, now=T0)
    assert (retried.created, len(_alerts(world))) == (0, 1)
    assert _send(world, handler, T0 + timedelta(days=1)) == 0
    assert len(handler.received) == 1


def test_sources_spread_wider_than_the_window_do_not_break_a_story_until_they_bunch(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, EVERY_STORY)
    minutes = (0, 90, 180, 200)
    created = []
    for n, minute in enumerate(minutes, start=1):
        at = T0 + timedelta(minutes=minute)
        created.append(match_new(world.es, world.names, [_report(world, "slow", n, at)], now=at))
    assert [report.created for report in created] == [0, 0, 0, 1]
    (alert,) = _alerts(world)
    assert (alert["breaking"]["first"], alert["breaking"]["at"]) == (
        "2025-11-01T13:30:00.000Z",
        "2025-11-01T15:20:00.000Z",
    )


def test_two_workers_matching_the_third_and_fourth_sources_at_once_raise_one_alert(
    es_client: Elasticsearch, es_settings: Settings, es_node: str
) -> None:
    world = _world(es_client, es_settings, EVERY_STORY)
    for n in (1, 2):
        at = T0 + timedelta(minutes=n)
        match_new(world.es, world.names, [_report(world, "quake", n, at)], now=at)
    third = _report(world, "quake", 3, T0 + timedelta(minutes=3))
    fourth = _report(world, "quake", 4, T0 + timedelta(minutes=4))
    start = threading.Barrier(2)
    reports: list[Any] = []

    def worker(article: str) -> None:
        client = Elasticsearch(es_node, request_timeout=60)
        try:
            start.wait()
            reports.append(match_new(client, world.names, [article], now=T0))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(a,)) for a in (third, fourth)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(report.created for report in reports) == 1
    (alert,) = _alerts(world)
    # Whichever wrote first, the story broke at the third source, and both joined the alert.
    assert alert["breaking"]["at"] == "2025-11-01T12:03:00.000Z"
    assert {"quake-3", "quake-4"} <= set(alert["articles"])
    handler = ScriptedHandler()
    assert _send(world, handler, T0 + timedelta(minutes=5)) == 1
    assert _send(world, handler, T0 + timedelta(hours=5)) == 0


def test_a_topic_rule_waits_for_its_story_to_break_and_ignores_other_stories(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, NATO_BREAKING)
    verdicts = []
    for n in range(1, 4):
        at = T0 + timedelta(minutes=10 * n)
        # The quake breaks too, but it is not the rule's topic.
        _report(world, "quake", n, at)
        # Only the first NATO report names the topic; the others are the same story told
        # otherwise, and count as its sources.
        fields = SUMMIT if n == 1 else ("Stockholm celebrates", "Flags went up in Stockholm.")
        ids = ["quake" if n == 1 else f"quake-{n}", _report(world, "summit", n, at, fields)]
        verdicts.append(match_new(world.es, world.names, ids, now=at))
    assert [(r.created, r.waiting, r.activated) for r in verdicts] == [
        (1, 1, 0),
        (0, 1, 0),
        (0, 0, 1),
    ]
    (alert,) = _alerts(world)
    assert alert["story_id"] == "summit" and alert["status"] == "ready"
    assert alert["first_article"] == "summit"
    assert alert["relevance"]["where"] == "title"
    assert alert["breaking"]["at"] == "2025-11-01T12:30:00.000Z"
    assert world.es.get(index=world.names.alert_outbox, id=alert_id("nato-breaking", "summit"))
    handler = ScriptedHandler()
    assert _send(world, handler, T0 + timedelta(hours=1)) == 1
    text = handler.received[0].message().get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Why this matched: breaking: 3 sources in 20 min; in the title" in text


@pytest.mark.parametrize("muted_first", [True, False])
def test_a_muted_story_never_breaks(
    es_client: Elasticsearch, es_settings: Settings, muted_first: bool
) -> None:
    from pipeline.alerts.feedback import mute_story

    world = _world(es_client, es_settings, EVERY_STORY)
    if muted_first:
        mute_story(world.es, world.names, "quake", now=T0)
    for n in range(1, 4):
        at = T0 + timedelta(minutes=n)
        match_new(world.es, world.names, [_report(world, "quake", n, at)], now=at)
    if not muted_first:
        assert len(_alerts(world)) == 1
        mute_story(world.es, world.names, "quake", now=T0 + timedelta(minutes=5))
        (alert,) = _alerts(world)
        assert (alert["status"], alert["pending_for"]) == ("muted", [])
    else:
        assert _alerts(world) == []
    assert _send(world, ScriptedHandler(), T0 + timedelta(hours=1)) == 0
