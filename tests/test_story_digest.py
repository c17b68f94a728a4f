"""Digests grouped by story: the real node, the outbox, and digests mailed to loopback SMTP.

One event, the Soviet note of March 1954 asking to join NATO, told independently in English,
Russian and Ukrainian and joined into one story (the story fields are written on the article
documents as pipeline.store.stories writes them): whatever the rule matches of it, the digest
has one item for it, led by the first matched report, with the others listed under it.
"""

# Cyrillic test strings are meant to be Cyrillic, not look-alike Latin letters.
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from smtpservers import HOST, ScriptedHandler, smtpd

from pipeline.alerts.match import match_new, match_pending
from pipeline.alerts.outbox import alert_id
from pipeline.alerts.rules import store_rules
from pipeline.alerts.send import send_digests
from pipeline.alerts.smtp import SmtpConfig
from pipeline.net.urls import url_id
from pipeline.normalise.extract import ExtractedArticle
from pipeline.normalise.fingerprint import fingerprint
from pipeline.normalise.language import LanguageResult
from pipeline.normalise.page import NormalisedArticle
from pipeline.settings import AlertRule, Config, Settings, Source
from pipeline.store.client import IndexNames, install
from pipeline.store.stories import ingest

SENDER = "newsradar@alerts.example.org"
ALICE = "alice@example.org"
T0 = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
STORY = "en-1954"

EN_QUERY = "Molotov AND NATO"
RU_QUERY = "Молотов AND НАТО"

SOURCES = {
    "harbour-gazette": "The Harbour Gazette",
    "moscow-herald": "Moscow Herald",
    "kyiv-courier": "Kyiv Courier",
    "paris-soir": "Paris Soir",
    "museum-news": "Museum News",
}

# The same event in each language's own words: a date, a name and a number they share.
REPORTS: dict[str, dict[str, str]] = {
    "en-1954": {
        "source": "harbour-gazette",
        "language": "en",
        "title": "The spring of 1954, when Moscow offered to join NATO",
        "text": (
            "On 31 March 1954 the Soviet foreign minister Vyacheslav Molotov handed the Western "
            "powers a note proposing that the Soviet Union should become a member of NATO. The "
            "alliance, the note argued, would then stop being aimed at Moscow. In May 1954 "
            "London, Paris and Washington declined, saying that Soviet membership could not be "
            "reconciled with the purpose of the North Atlantic Treaty."
        ),
    },
    "ru-1954": {
        "source": "moscow-herald",
        "language": "ru",
        "title": "Март 1954 года: Москва предложила вступить в НАТО",
        "text": (
            "31 марта 1954 года министр иностранных дел СССР Вячеслав Молотов направил "
            "западным державам ноту, в которой предлагал рассмотреть участие Советского Союза "
            "в НАТО. По мнению Москвы, тогда альянс перестал бы быть направленным против неё. "
            "В мае 1954 года Лондон, Париж и Вашингтон ответили отказом."
        ),
    },
    "uk-1954": {
        "source": "kyiv-courier",
        "language": "uk",
        "title": "Як СРСР у 1954 році просився до НАТО",
        "text": (
            "31 березня 1954 року міністр закордонних справ СРСР Вʼячеслав Молотов надіслав "
            "західним державам ноту з пропозицією щодо участі Радянського Союзу в НАТО. У "
            "травні 1954 року Лондон, Париж і Вашингтон цю пропозицію відхилили."
        ),
    },
}
MUSEUM = {
    "source": "museum-news",
    "language": "en",
    "title": "A museum shows the paper trail of Cold War diplomacy",
    "text": (
        "A new exhibition on post-war diplomacy opened on Saturday. Among its documents are "
        "telegrams from the archive of Vyacheslav Molotov and the first NATO communiqués."
    ),
}


@dataclass
class World:
    """One test's install: its index names, its configuration and its client."""

    es: Elasticsearch
    names: IndexNames
    config: Config


def _rule(**queries: str) -> AlertRule:
    return AlertRule(
        id="soviet-note",
        name="The Soviet note of 1954",
        recipients=(ALICE,),
        digest="15m",
        queries=queries,
    )


def _world(es: Elasticsearch, settings: Settings, rule: AlertRule) -> World:
    names = IndexNames(settings.index_prefix)
    install(es, settings.index_prefix)
    sources = tuple(
        Source(id=sid, name=name, homepage=f"https://{sid}.example/")
        for sid, name in SOURCES.items()
    )
    config = Config(settings=settings, sources=sources, alerts=(rule,))
    store_rules(es, names, config.alerts, now=T0)
    return World(es, names, config)


def _document(
    article_id: str,
    fields: dict[str, str],
    *,
    story: str,
    fetched: datetime,
    **changes: Any,
) -> dict[str, Any]:
    """An article document with its story fields, as the articles mapping stores it."""
    lang = fields["language"]
    document: dict[str, Any] = {
        "url": f"https://{fields['source']}.example/news/{article_id}",
        "canonical_url": f"https://{fields['source']}.example/news/{article_id}",
        "source": fields["source"],
        "title": fields["title"],
        "text": fields["text"],
        f"title_{lang}": fields["title"],
        f"text_{lang}": fields["text"],
        "language": lang,
        "published": (fetched - timedelta(minutes=30)).isoformat(),
        "fetched": fetched.isoformat(),
        "indexed": fetched.isoformat(),
        "story_id": story,
        "story_relation": "first" if article_id == story else "same_event",
    }
    if article_id != story:
        document.update(related_to=story, event_score=0.82)
    document.update(changes)
    return document


def _index(world: World, docs: dict[str, dict[str, Any]]) -> list[str]:
    for doc_id, document in docs.items():
        world.es.index(index=world.names.articles, id=doc_id, document=document)
    return list(docs)


def _report(world: World, article_id: str, at: datetime, story: str = STORY) -> list[str]:
    """Index one of the 1954 reports, joined to ``story``."""
    return _index(
        world, {article_id: _document(article_id, REPORTS[article_id], story=story, fetched=at)}
    )


def _smtp(port: int) -> SmtpConfig:
    return SmtpConfig(host=HOST, port=port, sender=SENDER, timeout=5.0, local_hostname="test")


def _bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    return str(text.get_content()), str(html.get_content())


def _numbered(text: str) -> list[str]:
    """The digest's items: its numbered lines (what devtools.demo reads as story titles)."""
    return [line for line in text.splitlines() if line[:1].isdigit()]


def _url(article_id: str) -> str:
    return f"https://{REPORTS[article_id]['source']}.example/news/{article_id}"


def _outbox(world: World, kind: str) -> list[dict[str, Any]]:
    world.es.indices.refresh(index=world.names.alert_outbox)
    hits = world.es.search(
        index=world.names.alert_outbox, query={"term": {"kind": kind}}, size=100
    )["hits"]["hits"]
    return [hit["_source"] for hit in hits]


def _three_reports(world: World) -> list[str]:
    return [
        *_report(world, "en-1954", T0),
        *_report(world, "ru-1954", T0 + timedelta(minutes=10)),
        *_report(world, "uk-1954", T0 + timedelta(minutes=20)),
    ]


def _send(world: World, handler: ScriptedHandler, now: datetime) -> Any:
    with smtpd(handler) as port:
        return send_digests(world.es, world.names, world.config, _smtp(port), now=now)


# --- one item per story -------------------------------------------------------------------------


def test_a_rule_matching_only_the_english_report_lists_the_ru_and_uk_reports_under_it(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY))
    now = T0 + timedelta(minutes=20)
    matched = match_new(world.es, world.names, _three_reports(world), now=now)
    assert matched.matched == {"soviet-note": ["en-1954"]}
    assert matched.created == 1
    handler = ScriptedHandler()
    report = _send(world, handler, now)
    assert (report.sent, report.failed, [d.items for d in report.digests]) == (1, 0, [1])
    (received,) = handler.received
    message = received.message()
    assert message["Subject"] == (
        "[newsradar] The Soviet note of 1954: 1 new story — "
        "The spring of 1954, when Moscow offered to join NATO"
    )
    text, html = _bodies(message)
    assert _numbered(text) == ["1. The spring of 1954, when Moscow offered to join NATO"]
    assert (
        "   Also reported by 2 sources in en, ru, uk\r\n"
        "   Other reports:\r\n"
        "   - Март 1954 года: Москва предложила вступить в НАТО\r\n"
        "     Moscow Herald · ru · 2025-11-01 11:40 UTC\r\n"
        f"     {_url('ru-1954')}\r\n"
        "   - Як СРСР у 1954 році просився до НАТО\r\n"
        "     Kyiv Courier · uk · 2025-11-01 11:50 UTC\r\n"
        f"     {_url('uk-1954')}\r\n"
        "\r\n-- \r\n"
    ) in text
    assert "*Molotov*" in text  # the lead keeps its highlighted snippet
    assert f'<li lang="ru"><a href="{_url("ru-1954")}">Март 1954 года' in html
    assert f'<li lang="uk"><a href="{_url("uk-1954")}">Як СРСР у 1954 році' in html
    assert html.count("<h2>") == 1
    assert len(_outbox(world, "alert")) == 1


def test_a_rule_matching_the_en_and_ru_reports_still_gives_one_item(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY, ru=RU_QUERY))
    now = T0 + timedelta(minutes=20)
    matched = match_new(world.es, world.names, _three_reports(world), now=now)
    assert matched.matched == {"soviet-note": ["en-1954", "ru-1954"]}
    assert matched.created == 1
    handler = ScriptedHandler()
    assert _send(world, handler, now).sent == 1
    text, html = _bodies(handler.received[0].message())
    # The first matched report leads; the other matched one is listed, not a second item.
    assert _numbered(text) == ["1. The spring of 1954, when Moscow offered to join NATO"]
    assert "1 new story" in text
    assert text.count("   - ") == 2
    assert "   - Март 1954 года: Москва предложила вступить в НАТО\r\n" in text
    assert "   - Як СРСР у 1954 році просився до НАТО\r\n" in text
    assert html.count("<h2>") == 1


def test_a_report_matched_in_a_later_batch_before_the_digest_is_listed_not_mailed_apart(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY, ru=RU_QUERY))
    first = match_new(world.es, world.names, _report(world, "en-1954", T0), now=T0)
    assert first.created == 1
    later = T0 + timedelta(minutes=5)
    second = match_new(world.es, world.names, _report(world, "ru-1954", later), now=later)
    assert (second.created, second.already_alerted) == (0, 1)
    handler = ScriptedHandler()
    assert _send(world, handler, later).sent == 1
    text, _ = _bodies(handler.received[0].message())
    assert _numbered(text) == ["1. The spring of 1954, when Moscow offered to join NATO"]
    assert "   Also reported by 1 source in en, ru\r\n" in text
    assert f"     {_url('ru-1954')}\r\n" in text


def test_a_report_joining_a_story_already_mailed_is_neither_mailed_nor_listed_elsewhere(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY, ru=RU_QUERY))
    handler = ScriptedHandler()
    en_ru = [*_report(world, "en-1954", T0), *_report(world, "ru-1954", T0)]
    match_new(world.es, world.names, en_ru, now=T0)
    assert _send(world, handler, T0).sent == 1
    # The Ukrainian report joins the mailed story an hour later: the alert takes it in...
    later = T0 + timedelta(hours=1)
    joined = match_new(world.es, world.names, _report(world, "uk-1954", later), now=later)
    assert (joined.created, joined.updated) == (0, 1)
    assert len(_outbox(world, "alert")) == 1
    alert = world.es.get(index=world.names.alert_outbox, id=alert_id("soviet-note", STORY))
    alert = alert["_source"]
    assert sorted(alert["articles"]) == ["en-1954", "ru-1954", "uk-1954"]
    assert alert["pending_for"] == []
    # ...but owes it to nobody: no second mail, now or a day later.
    assert _send(world, handler, later).sent == 0
    assert _send(world, handler, later + timedelta(days=1)).sent == 0
    # The next digest reports only its own story.
    museum_at = later + timedelta(minutes=30)
    museum = _document("museum", MUSEUM, story="museum", fetched=museum_at)
    match_new(world.es, world.names, _index(world, {"museum": museum}), now=museum_at)
    assert _send(world, handler, museum_at).sent == 1
    assert len(handler.received) == 2
    first, _ = _bodies(handler.received[0].message())
    second, html = _bodies(handler.received[1].message())
    assert "Як СРСР" not in first  # it joined after the first mail went out
    assert _numbered(second) == ["1. A museum shows the paper trail of Cold War diplomacy"]
    for mailed in ("en-1954", "ru-1954", "uk-1954"):
        assert _url(mailed) not in second and _url(mailed) not in html
    assert "Other reports" not in second and "Also reported by" not in second


def test_an_earlier_report_arriving_late_and_leading_the_story_raises_no_second_alert(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY, ru=RU_QUERY))
    handler = ScriptedHandler()
    # The Russian report is crawled first and mailed as a story of its own...
    ru = _index(
        world, {"ru-1954": _document("ru-1954", REPORTS["ru-1954"], story="ru-1954", fetched=T0)}
    )
    match_new(world.es, world.names, ru, now=T0)
    assert _send(world, handler, T0).sent == 1
    # ...then the English one, published earlier, arrives: it leads the story now, and the
    # Russian report moves into it (as pipeline.store.stories settles a late earlier article).
    later = T0 + timedelta(hours=2)
    english = _document("en-1954", REPORTS["en-1954"], story=STORY, fetched=later)
    english["published"] = (T0 - timedelta(hours=3)).isoformat()
    moved = _document("ru-1954", REPORTS["ru-1954"], story=STORY, fetched=T0, related_to="en-1954")
    _index(world, {"en-1954": english, "ru-1954": moved})
    again = match_new(world.es, world.names, ["en-1954"], now=later)
    # The alert raised for the Russian report stands for the story: it takes the English one
    # in, and no second alert, and no second mail, follows.
    assert (again.created, again.updated) == (0, 1)
    [alert] = _outbox(world, "alert")
    assert sorted(alert["articles"]) == ["en-1954", "ru-1954"]
    assert alert["pending_for"] == []
    assert _send(world, handler, later + timedelta(days=1)).sent == 0
    assert len(handler.received) == 1


def _moved(world: World, article_id: str, story: str, at: datetime) -> None:
    """The story stage moves a report to ``story``, led by an earlier report arriving now."""
    lead = _document(story, REPORTS[story], story=story, fetched=at)
    lead["published"] = (T0 - timedelta(hours=3)).isoformat()
    report = _document(article_id, REPORTS[article_id], story=story, fetched=T0, related_to=story)
    _index(world, {story: lead, article_id: report})


def _stories_alerted(world: World) -> dict[str, str]:
    """Each alert's story as the digest shows it (its first article's), and that first article."""
    found = {}
    for alert in _outbox(world, "alert"):
        first = world.es.get(index=world.names.articles, id=alert["first_article"])["_source"]
        assert first["story_id"] == alert["story_id"], alert
        found[alert["story_id"]] = alert["first_article"]
    return found


def test_a_matched_report_moving_out_of_a_story_that_still_matches_gets_an_alert_of_its_own(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY, ru=RU_QUERY))
    # The Russian report is first taken for a report of the museum story: both match, and the
    # story gets one alert, led by the Russian report (published first).
    museum = _document("museum", MUSEUM, story="museum", fetched=T0)
    ru = _document("ru-1954", REPORTS["ru-1954"], story="museum", fetched=T0, related_to="museum")
    ru["published"] = (T0 - timedelta(hours=1)).isoformat()
    first = match_new(
        world.es, world.names, _index(world, {"museum": museum, "ru-1954": ru}), now=T0
    )
    assert first.created == 1
    assert _stories_alerted(world) == {"museum": "ru-1954"}
    # The English report arrives and the Russian one moves to its story: two stories matched,
    # two alerts, as if the reports had arrived the other way round. The museum's alert is now
    # led by the museum report, since the digest shows an alert as its first article's story;
    # the new one by the Russian report, matched first.
    later = T0 + timedelta(hours=2)
    _moved(world, "ru-1954", STORY, later)
    again = match_new(world.es, world.names, [STORY], now=later)
    assert (again.created, again.updated) == (1, 1)
    assert _stories_alerted(world) == {"museum": "museum", STORY: "ru-1954"}
    english = world.es.get(index=world.names.alert_outbox, id=alert_id("soviet-note", STORY))
    assert sorted(english["_source"]["matched"]) == ["en-1954", "ru-1954"]


def test_an_alert_whose_only_match_moved_away_follows_it_and_raises_no_second_alert(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    # Only Russian is watched: the museum report does not match.
    world = _world(es_client, es_settings, _rule(ru=RU_QUERY))
    handler = ScriptedHandler()
    museum = _document("museum", MUSEUM, story="museum", fetched=T0)
    ru = _document("ru-1954", REPORTS["ru-1954"], story="museum", fetched=T0, related_to="museum")
    match_new(world.es, world.names, _index(world, {"museum": museum, "ru-1954": ru}), now=T0)
    assert _send(world, handler, T0).sent == 1
    # The Russian report moves to the English story: the alert goes with it, and the museum
    # story, which no rule matched, is left without one. Nothing is mailed again.
    later = T0 + timedelta(hours=2)
    _moved(world, "ru-1954", STORY, later)
    again = match_new(world.es, world.names, [STORY], now=later)
    assert (again.created, again.updated) == (0, 1)
    assert _stories_alerted(world) == {STORY: "ru-1954"}
    assert _send(world, handler, later + timedelta(days=1)).sent == 0
    assert len(handler.received) == 1


def test_a_matched_report_moving_into_a_story_nothing_else_matched_brings_an_alert_there(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    # Only English is watched: the museum and the English 1954 report match, the Russian not.
    world = _world(es_client, es_settings, _rule(en=EN_QUERY))
    museum = _document("museum", MUSEUM, story="museum", fetched=T0)
    en = _document("en-1954", REPORTS["en-1954"], story="museum", fetched=T0, related_to="museum")
    en["published"] = (T0 - timedelta(hours=1)).isoformat()
    assert (
        match_new(
            world.es, world.names, _index(world, {"museum": museum, "en-1954": en}), now=T0
        ).created
        == 1
    )
    # An earlier Russian report arrives and leads the English one's story now. It does not
    # match, but the English report it took along did: that story is alerted, once.
    later = T0 + timedelta(hours=2)
    lead = _document("ru-1954", REPORTS["ru-1954"], story="ru-1954", fetched=later)
    lead["published"] = (T0 - timedelta(hours=3)).isoformat()
    moved = _document(
        "en-1954", REPORTS["en-1954"], story="ru-1954", fetched=T0, related_to="ru-1954"
    )
    _index(world, {"ru-1954": lead, "en-1954": moved})
    again = match_new(world.es, world.names, ["ru-1954"], now=later)
    assert (again.matches, again.created) == (0, 1)
    assert _stories_alerted(world) == {"museum": "museum", "ru-1954": "en-1954"}
    assert match_new(world.es, world.names, ["ru-1954"], now=later).created == 0


def test_two_alerts_whose_stories_became_one_give_one_item(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY, ru=RU_QUERY))
    assert match_new(world.es, world.names, _report(world, "en-1954", T0), now=T0).created == 1
    later = T0 + timedelta(minutes=1)
    ru = _report(world, "ru-1954", later, story="ru-1954")
    assert match_new(world.es, world.names, ru, now=later).created == 1
    # The Russian report's story joins the earlier English one before the digest is built.
    world.es.update(
        index=world.names.articles,
        id="ru-1954",
        doc={"story_id": STORY, "story_relation": "same_event", "related_to": STORY},
        refresh=True,
    )
    handler = ScriptedHandler()
    report = _send(world, handler, later)
    assert (report.sent, [d.items for d in report.digests]) == (1, [1])
    text, _ = _bodies(handler.received[0].message())
    assert _numbered(text) == ["1. The spring of 1954, when Moscow offered to join NATO"]
    assert "   - Март 1954 года: Москва предложила вступить в НАТО\r\n" in text
    # Both alerts went out with that one item: neither is owed any more.
    assert [a["pending_for"] for a in _outbox(world, "alert")] == [[], []]
    assert _send(world, handler, T0 + timedelta(days=1)).sent == 0


def _normalised(article_id: str) -> NormalisedArticle:
    """One of the 1954 reports as normalise_page hands it to the story stage."""
    fields = REPORTS[article_id]
    url = _url(article_id)
    extracted = ExtractedArticle(
        url=url,
        canonical_url=url,
        title=fields["title"],
        text=fields["text"],
        description=None,
        authors=(),
        published=T0 - timedelta(hours=1),
        published_raw=None,
        published_source="fetched",
        updated=None,
        site_name=SOURCES[fields["source"]],
        lead_image=None,
        language_hint=None,
        encoding="utf-8",
        mojibake_repaired=False,
    )
    return NormalisedArticle(
        id=url_id(url),
        source=fields["source"],
        article=extracted,
        language=LanguageResult(fields["language"], 0.99, "detected"),
        fingerprint=fingerprint(fields["text"]),
    )


def test_reports_the_story_stage_joins_as_one_event_are_one_item(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY))
    for n, article_id in enumerate(REPORTS):
        at = T0 + timedelta(minutes=10 * n)
        ingest(world.es, world.names, [_normalised(article_id)], fetched=at)
    now = T0 + timedelta(minutes=20)
    lead = url_id(_url("en-1954"))
    world.es.indices.refresh(index=world.names.stories)
    (story,) = world.es.search(index=world.names.stories, query={"term": {"story_id": lead}})[
        "hits"
    ]["hits"]
    assert story["_source"]["languages"] == ["en", "ru", "uk"]
    matched = match_pending(world.es, world.names, now=now)
    assert (matched.matches, matched.created) == (1, 1)
    handler = ScriptedHandler()
    assert _send(world, handler, now).sent == 1
    text, _ = _bodies(handler.received[0].message())
    assert _numbered(text) == ["1. The spring of 1954, when Moscow offered to join NATO"]
    assert "   Also reported by 2 sources in en, ru, uk\r\n" in text
    assert f"     {_url('ru-1954')}\r\n" in text
    assert f"     {_url('uk-1954')}\r\n" in text


# --- which reports, in which order ----------------------------------------------------------------


def test_copies_follow_the_independent_reports_and_the_list_is_capped(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY))
    docs = {"en-1954": _document("en-1954", REPORTS["en-1954"], story=STORY, fetched=T0)}
    # Twelve copies of the lead, each from a mirror of its own, all fetched before the reports.
    for n in range(1, 13):
        copy = dict(REPORTS["en-1954"], source=f"mirror-{n:02d}")
        docs[f"copy-{n:02d}"] = _document(
            f"copy-{n:02d}",
            copy,
            story=STORY,
            fetched=T0 + timedelta(minutes=n),
            story_relation="copy",
            duplicate_of="en-1954",
            duplicate_kind="near",
            similarity=0.93,
        )
    for n, article_id in enumerate(("ru-1954", "uk-1954"), start=1):
        docs[article_id] = _document(
            article_id, REPORTS[article_id], story=STORY, fetched=T0 + timedelta(hours=n)
        )
    paris = dict(REPORTS["en-1954"], source="paris-soir", language="fr", title="Moscou et l'OTAN")
    docs["fr-1954"] = _document("fr-1954", paris, story=STORY, fetched=T0 + timedelta(hours=3))
    now = T0 + timedelta(hours=3)
    match_new(world.es, world.names, _index(world, docs), now=now)
    handler = ScriptedHandler()
    assert _send(world, handler, now).sent == 1
    text, html = _bodies(handler.received[0].message())
    listed = [line[5:] for line in text.splitlines() if line.startswith("   - ")]
    assert len(listed) == 10
    # The three independent reports first, earliest first; then the copies, earliest first.
    assert listed[:3] == [
        "Март 1954 года: Москва предложила вступить в НАТО",
        "Як СРСР у 1954 році просився до НАТО",
        "Moscou et l'OTAN",
    ]
    assert text.count("     mirror-") == 7
    for n in range(1, 8):
        assert f"     mirror-{n:02d} · en · " in text
    assert "mirror-08" not in text
    assert "     mirror-01 · en · 2025-11-01 11:31 UTC · copy\r\n" in text
    # Fifteen other articles: ten listed, five more (some never read) counted.
    assert "   and 5 more reports\r\n" in text
    assert "<p><small>and 5 more reports</small></p>" in html
    assert "   Also reported by 15 sources in en, fr, ru, uk\r\n" in text


def test_one_search_reads_the_reports_of_every_story_in_the_digest(
    es_client: Elasticsearch, es_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = _world(es_client, es_settings, _rule(en=EN_QUERY, ru=RU_QUERY))
    museum = _document("museum", MUSEUM, story="museum", fetched=T0)
    # Three stories: the 1954 note (en, with ru and uk), the museum, and a lone ru report.
    ids = [
        *_report(world, "en-1954", T0),
        *_report(world, "uk-1954", T0),
        *_index(world, {"museum": museum}),
        *_report(world, "ru-1954", T0, story="ru-1954"),
    ]
    assert match_new(world.es, world.names, ids, now=T0).created == 3
    searches: list[dict[str, Any]] = []
    search: Callable[..., Any] = world.es.search

    def counted(**kwargs: Any) -> Any:
        if kwargs.get("index") == world.names.articles:
            searches.append(kwargs)
        return search(**kwargs)

    monkeypatch.setattr(world.es, "search", counted)
    handler = ScriptedHandler()
    assert _send(world, handler, T0).sent == 1
    monkeypatch.undo()
    assert len(searches) == 1
    text, _ = _bodies(handler.received[0].message())
    assert len(_numbered(text)) == 3
    # Each story lists its own reports only.
    items = text.split("\r\n\r\n")[1:4]
    by_title = {item.splitlines()[0].split(". ", 1)[1]: item for item in items}
    note = by_title["The spring of 1954, when Moscow offered to join NATO"]
    assert _url("uk-1954") in note and _url("ru-1954") not in note
    lone = by_title["Март 1954 года: Москва предложила вступить в НАТО"]
    assert "Other reports" not in lone
    assert "Other reports" not in by_title["A museum shows the paper trail of Cold War diplomacy"]
