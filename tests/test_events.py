"""Same-event stories: the evidence of one report, two reports compared, the fixtures on the node.

The fixtures (tests/fixtures/events, read by tests.eventfixtures) are events reported by two to
five independently written articles, some in several languages, and pairs of reports of the same
topic that tell other happenings: the hard negatives.
"""

# ruff: noqa: RUF001
from __future__ import annotations

import itertools
import multiprocessing
import random
import traceback
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import eventfixtures
import pytest
from elasticsearch import Elasticsearch
from storyfixtures import normalised, story_indices

from pipeline.normalise.events import (
    DEFAULT_EVENT_CONFIG,
    EventConfig,
    compare,
    signature,
    specific_keys,
)
from pipeline.normalise.page import NormalisedArticle
from pipeline.store.client import IndexNames
from pipeline.store.stories import ingest

FIXTURES = eventfixtures.load()
T0 = datetime(2025, 1, 1, tzinfo=UTC)


@cache
def article(fixture_id: str) -> NormalisedArticle:
    """The fixture article as normalise_page would hand it over."""
    item = FIXTURES.articles[fixture_id]
    return normalised(
        f"https://{item.source}.example/news/{fixture_id}",
        item.source,
        title=item.title,
        text=item.text,
        language=item.language,
        published=item.published,
    )


FIXTURE_OF = {article(i).id: i for i in FIXTURES.articles}


# --- one report's evidence, two reports compared ------------------------------------------


def test_names_meet_across_scripts_and_inflections() -> None:
    english = signature(
        "Analyst recalls Soviet bid",
        "Igor Korotchenko, the editor, spoke in Moscow. Korotchenko said NATO never agreed.",
        "en",
    )
    russian = signature(
        "Аналитик напомнил",
        "Игорь Коротченко выступил в Москве. По словам Коротченко, НАТО не согласилось.",
        "ru",
    )
    shared = set(english.keys) & set(russian.keys)
    assert {"n:krtnk", "c:nato", "c:moscow"} <= shared, shared


def test_dates_and_numbers_are_read_in_every_language() -> None:
    texts = {
        "en": "On March 31 the ministry counted 1,200 homes and a 7.8 quake.",
        "ru": "31 марта министерство насчитало 1 200 домов и толчок силой 7,8.",
        "uk": "31 березня міністерство нарахувало 1 200 будинків і поштовх 7,8.",
        "fr": "Le 31 mars, le ministère a compté 1 200 maisons et un séisme de 7,8.",
        "de": "Am 31. März zählte das Ministerium 1.200 Häuser und ein Beben der Stärke 7,8.",
        "es": "El 31 de marzo el ministerio contó 1.200 viviendas y un sismo de 7,8.",
    }
    for language, text in texts.items():
        keys = set(signature("", text, language).keys)
        assert {"d:03-31", "#:1200", "#:7.8"} <= keys, (language, keys)
        assert "#:31" not in keys, language  # the day of a date is not a number of its own


def test_a_date_after_a_word_and_a_number_with_non_breaking_spaces_are_read() -> None:
    for language, text in {
        "ru": "Встреча прошла в Москве 14 марта, на неё пришли 23\u00a0206 человек.",
        "fr": "La réunion a eu lieu jeudi 14 mars devant 23\u202f206 personnes.",
        "en": "The meeting was held on Tuesday 14 March before 23,206 people.",
    }.items():
        keys = set(signature("", text, language).keys)
        assert {"d:03-14", "#:23206"} <= keys, (language, keys)


def test_a_shared_date_and_figure_without_each_others_lead_is_not_one_event() -> None:
    # Two quakes on one day with one figure in common, each led by its own place and people.
    one = signature(
        "Quake shakes Arequipa",
        "A magnitude 6.1 earthquake struck Arequipa on 14 March, said mayor Rosa Quispe.\n"
        "Some 536 homes were damaged in the Peruvian city.",
        "en",
    )
    other = signature(
        "Quake hits Hokkaido",
        "A magnitude 6.1 quake hit Kushiro on 14 March, officials in Sapporo reported.\n"
        "Train services were halted across the island for the day.",
        "en",
    )
    at = datetime(2026, 3, 14, 12, tzinfo=UTC)
    evidence = compare(one, "en", at, other, "en", at)
    assert {"d:03-14", "#:6.1"} <= set(evidence.shared)
    assert not evidence.joined, evidence


def test_a_sentence_opening_word_and_german_nouns_are_not_names() -> None:
    german = signature(
        "",
        "Die Feuerwehr räumte am Dienstag die Häuser in Bestwig. Laut Bürgermeister Ralf "
        "Péus wurde die Regierung informiert. In Bestwig blieb die Bahnstrecke gesperrt.",
        "de",
    )
    # Bestwig, Ralf and Péus; not Die, Feuerwehr, Dienstag, Laut, Bürgermeister, Regierung...
    assert {k for k in german.keys if k.startswith("n:")} == {"n:bstv", "n:rlf", "n:ps"}


def test_compare_is_symmetric_and_bounded_by_the_window() -> None:
    first, second = FIXTURES.events["pol-nuc-brussels"][:2]
    a, b = FIXTURES.articles[first], FIXTURES.articles[second]
    sa, sb = article(first).event, article(second).event
    assert sa is not None and sb is not None
    there = compare(sa, a.language, a.published, sb, b.language, b.published)
    back = compare(sb, b.language, b.published, sa, a.language, a.published)
    assert there == back and there.joined
    later = b.published + timedelta(hours=DEFAULT_EVENT_CONFIG.window_hours + 1)
    apart = compare(sa, a.language, a.published, sb, b.language, later)
    assert not apart.joined and "apart" in apart.reason


# --- the fixtures through the real node ---------------------------------------------------


@pytest.fixture
def names(es_client: Elasticsearch, index_prefix: str) -> IndexNames:
    """The articles and stories indices under the test's prefix."""
    return story_indices(es_client, index_prefix)


def ingest_in_order(es: Elasticsearch, names: IndexNames, ids: Sequence[str]) -> None:
    """Ingest the fixtures as a crawl meets them: by publication, in batches of ten."""
    ordered = sorted(ids, key=lambda i: (FIXTURES.articles[i].published, i))
    for start in range(0, len(ordered), 10):
        part = ordered[start : start + 10]
        fetched = max(FIXTURES.articles[i].published for i in part) + timedelta(minutes=5)
        ingest(es, names, [article(i) for i in part], fetched=fetched)


def stories(es: Elasticsearch, names: IndexNames) -> dict[str, dict[str, Any]]:
    """Fixture id -> the stored story fields of its article."""
    es.indices.refresh(index=names.articles)
    hits = es.search(
        index=names.articles,
        size=1000,
        source_includes=["story_id", "story_relation", "related_to", "event_score"],
    )["hits"]["hits"]
    return {FIXTURE_OF[h["_id"]]: h["_source"] for h in hits}


def figures(stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Shares of same-event pairs joined (within, across languages); what was wrongly joined."""
    within: list[bool] = []
    across: list[bool] = []
    for a, b in FIXTURES.same_event_pairs():
        joined = stored[a]["story_id"] == stored[b]["story_id"]
        same = FIXTURES.articles[a].language == FIXTURES.articles[b].language
        (within if same else across).append(joined)
    negatives = [
        (n.a, n.b) for n in FIXTURES.negatives if stored[n.a]["story_id"] == stored[n.b]["story_id"]
    ]
    wrong = [
        (a, b)
        for a, b in itertools.combinations(sorted(stored), 2)
        if stored[a]["story_id"] == stored[b]["story_id"]
        and (
            FIXTURES.articles[a].event is None
            or FIXTURES.articles[a].event != FIXTURES.articles[b].event
        )
    ]
    return {
        "within": sum(within) / len(within),
        "across": sum(across) / len(across),
        "pairs": (len(within), len(across)),
        "negatives_joined": negatives,
        "other_events_joined": wrong,
    }


def test_the_fixtures_meet_the_bar(es_client: Elasticsearch, names: IndexNames) -> None:
    assert len(FIXTURES.events) >= 30 and len(FIXTURES.negatives) >= 40
    crossing = [
        e
        for e, ids in FIXTURES.events.items()
        if len({FIXTURES.articles[i].language for i in ids}) > 1
    ]
    assert len(crossing) >= 8
    ingest_in_order(es_client, names, list(FIXTURES.articles))
    result = figures(stories(es_client, names))
    print(f"\nsame-event fixtures: {result}")
    assert result["negatives_joined"] == []
    assert result["other_events_joined"] == []
    assert result["within"] >= 0.85, result
    assert result["across"] >= 0.60, result


def test_a_report_names_its_relation_and_score(es_client: Elasticsearch, names: IndexNames) -> None:
    event = FIXTURES.events["biz-troll-outage"]
    ingest_in_order(es_client, names, event)
    stored = stories(es_client, names)
    first = min(event, key=lambda i: (FIXTURES.articles[i].published, i))
    assert stored[first]["story_relation"] == "first"
    joined = [i for i in event if stored[i]["story_id"] == stored[first]["story_id"]]
    assert len(joined) >= 2
    for ident in joined:
        if ident != first:
            assert stored[ident]["story_relation"] == "same_event"
            assert stored[ident]["event_score"] > 0
            assert stored[ident]["related_to"] in {article(i).id for i in event}


def test_the_thresholds_come_from_the_config(es_client: Elasticsearch, names: IndexNames) -> None:
    event = FIXTURES.events["biz-troll-outage"]
    strict = EventConfig(threshold=0.99, cross_threshold=0.99)
    ordered = sorted(event, key=lambda i: FIXTURES.articles[i].published)
    for ident in ordered:
        ingest(
            es_client,
            names,
            [article(ident)],
            fetched=FIXTURES.articles[ident].published,
            events=strict,
        )
    stored = stories(es_client, names)
    assert len({stored[i]["story_id"] for i in event}) == len(event)


def expected_stories(
    articles: Sequence[NormalisedArticle],
    order: Callable[[NormalisedArticle], Any],
    config: EventConfig = DEFAULT_EVENT_CONFIG,
) -> dict[str, str]:
    """What one process must store, computed without Elasticsearch: article id -> story id.

    In ``order`` (the stories' key: published, fetched, id), each report joins the story of the
    earlier report it compares best with (score, then the smaller id), among all of them.
    """
    ordered = sorted(articles, key=order)
    story: dict[str, str] = {}
    for n, me in enumerate(ordered):
        assert me.event is not None and me.article.published is not None
        best: tuple[float, str] | None = None
        for other in ordered[:n]:
            assert other.event is not None and other.article.published is not None
            evidence = compare(
                me.event,
                me.language.language,
                me.article.published,
                other.event,
                other.language.language,
                other.article.published,
                config,
            )
            if evidence.joined and (
                best is None or (-evidence.score, other.id) < (-best[0], best[1])
            ):
                best = (evidence.score, other.id)
        story[me.id] = story[best[1]] if best else me.id
    return story


def fetched_at(fixture_id: str) -> datetime:
    """When the concurrency test's workers fetch an article: its hour of publication."""
    return FIXTURES.articles[fixture_id].published.replace(minute=0, second=0, microsecond=0)


def test_two_processes_ingesting_halves_match_one_process(
    es_client: Elasticsearch, es_node: str, names: IndexNames
) -> None:
    # Each event's reports are dealt to both processes alternately, in small batches, so most
    # pairs are written at the same moment by two workers that cannot see each other's batch.
    ids = sorted(FIXTURES.articles, key=lambda i: (fetched_at(i), i))
    halves: list[list[tuple[datetime, list[str]]]] = [[], []]
    for n, ident in enumerate(ids):
        side = halves[n % 2]
        if side and side[-1][0] == fetched_at(ident) and len(side[-1][1]) < 4:
            side[-1][1].append(ident)
        else:
            side.append((fetched_at(ident), [ident]))
    decisions = _run_event_processes(es_node, names.prefix, halves)
    assert len(decisions) == len(ids)
    stored = stories(es_client, names)
    got = {article(i).id: stored[i]["story_id"] for i in ids}
    in_order = expected_stories(
        [article(i) for i in ids],
        lambda a: (a.article.published, fetched_at(FIXTURE_OF[a.id]), a.id),
    )
    assert got == in_order
    members: defaultdict[str, set[str]] = defaultdict(set)
    for ident, story in got.items():
        members[story].add(ident)
    es_client.indices.refresh(index=names.stories)
    documents = es_client.search(
        index=names.stories, query={"range": {"article_count": {"gt": 0}}}, size=1000
    )["hits"]["hits"]
    assert {h["_id"]: set(h["_source"]["articles"]) for h in documents} == members


def _run_event_processes(
    es_url: str, prefix: str, plans: Sequence[list[tuple[datetime, list[str]]]]
) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("fork")
    start = context.Barrier(len(plans))
    queue = context.Queue()
    workers = [
        context.Process(target=_event_worker, args=(es_url, prefix, plan, start, queue))
        for plan in plans
    ]
    for worker in workers:
        worker.start()
    results: list[dict[str, Any]] = []
    for _ in workers:
        status, payload = queue.get(timeout=180)
        assert status == "ok", payload
        results += payload
    for worker in workers:
        worker.join(30)
    return results


def _event_worker(
    es_url: str, prefix: str, plan: list[tuple[datetime, list[str]]], start: Any, queue: Any
) -> None:
    try:
        es = Elasticsearch(es_url, request_timeout=60)
        es.info()
        start.wait(60)
        decisions = []
        for fetched, ids in plan:
            made = ingest(es, IndexNames(prefix), [article(i) for i in ids], fetched=fetched)
            decisions += [asdict(d) for d in made]
        queue.put(("ok", decisions))
        es.close()
    except BaseException:
        queue.put(("error", traceback.format_exc()))
        raise


# --- a busy day: more candidates than any ranking would keep ---------------------------------

_SYLLABLES = ("ka", "lo", "mi", "ren", "tu", "vos", "bar", "din", "gel", "shu", "pra", "zen")


def _busy_day_name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(3)).capitalize()


# fmt: off
_WORDS = (
    "rain", "morning", "street", "market", "bread", "coffee", "winter", "bridge", "river",
    "garden", "evening", "neighbour", "ticket", "harbour", "letter", "kitchen", "window",
    "village", "station", "doctor", "teacher", "bakery", "corner", "lamp", "bicycle", "engine",
    "summer", "ladder", "meadow", "orchard", "painter", "farmer", "sailor", "trumpet", "violin",
    "quarry", "lantern", "blanket", "pepper", "carrot", "ribbon", "button", "pocket", "saddle",
    "wagon", "tunnel", "castle", "tower", "forest", "valley", "canyon", "desert", "island",
    "glacier", "thunder", "candle", "mirror", "pillow", "basket", "hammer", "needle", "feather",
    "shadow", "silver", "copper", "marble", "velvet", "cotton", "timber", "granite",
)
# fmt: on
_PROJECTS = (
    ("New roofs", "would get new roofs before winter", "are to have their roofs replaced"),
    ("Night buses", "would be served by a night bus line", "will get buses through the night"),
    ("A school", "would share a new primary school", "are to send pupils to a new school"),
    ("Clean water", "would join the new water main", "will drink water from a new main"),
    ("A new park", "would have a park where the old depot stood", "get a park on the depot site"),
)


def busy_day(count: int = 200, seed: int = 5) -> list[NormalisedArticle]:
    """``count`` council reports of one day that all share its date and its mayor's name.

    Events are told once or twice (the second telling in other words); every report is then a
    same-event candidate of every other one, far more than a ranked cut would keep.
    """
    rng = random.Random(seed)
    made: list[NormalisedArticle] = []
    minute = 0
    while len(made) < count:
        who, where = f"{_busy_day_name(rng)} {_busy_day_name(rng)}", _busy_day_name(rng)
        homes = rng.randrange(120, 9000)
        title, first, second = rng.choice(_PROJECTS)
        tellings = (
            f"Councillor {who} said on 2 March that {homes} homes in {where} {first}.",
            f"{homes} households in {where} {second}, councillor {who} announced on 2 March.",
        )
        for lead in tellings[: rng.choice((1, 2))]:
            # Each report's own words after its lead: copies detection must not take two
            # reports for one text.
            talk = " ".join(rng.sample(_WORDS, 24)).capitalize()
            text = f"{lead}\nMayor Ingrid Solberg backed the plan. Residents said: {talk}."
            minute += rng.randrange(1, 9)
            published = datetime(2025, 3, 2, 6, tzinfo=UTC) + timedelta(minutes=minute)
            made.append(
                normalised(
                    f"https://council{len(made) % 7}.example/news/{len(made)}",
                    f"council{len(made) % 7}",
                    title=f"{title} for {where}",
                    text=text,
                    language="en",
                    published=published,
                )
            )
    return made[:count]


def test_on_a_busy_day_the_stories_do_not_depend_on_arrival_order(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    day = busy_day()
    first = day[0].event
    assert first is not None
    sharing = [
        a
        for a in day[1:]
        if a.event and len(specific_keys(set(first.keys) & set(a.event.keys))) >= 2
    ]
    assert len(sharing) == len(day) - 1 > 2 * 50  # every other report is a candidate
    want = expected_stories(day, lambda a: (a.article.published, a.id))
    assert 1 < len(set(want.values())) < len(day)  # some reports joined, not all in one
    backwards = story_indices(es_client, f"{names.prefix}-backwards")
    fetched = datetime(2025, 3, 3, tzinfo=UTC)
    # In publication order, ten at a time; then the latest first, seven at a time: every report
    # arrives before the earlier ones it may join, which must then find it.
    forwards_order = sorted(day, key=lambda a: a.article.published or fetched)
    for start in range(0, len(day), 10):
        ingest(es_client, names, forwards_order[start : start + 10], fetched=fetched)
    backwards_order = forwards_order[::-1]
    for start in range(0, len(day), 7):
        ingest(es_client, backwards, backwards_order[start : start + 7], fetched=fetched)
    for where in (names, backwards):
        es_client.indices.refresh(index=where.articles)
        hits = es_client.search(index=where.articles, size=1000, source_includes=["story_id"])
        got = {h["_id"]: h["_source"]["story_id"] for h in hits["hits"]["hits"]}
        assert got == want, where.prefix
