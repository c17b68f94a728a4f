"""``newsradar search --stories`` and ``newsradar stories explain`` on the local node.

One event (a flood in Bestwig) is reported in English and in Russian and copied by a third
source; a storm nearby the same day shares a name and a number with the English reports, and
stays a story of its own.
"""

# ruff: noqa: RUF001  (Cyrillic text is the point here, not a look-alike of Latin letters)

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from storyfixtures import normalised

from pipeline.cli import main
from pipeline.normalise.page import NormalisedArticle
from pipeline.settings import Settings, load_settings
from pipeline.store.client import IndexNames, install
from pipeline.store.stories import event_config, ingest
from pipeline.store.story_explain import ArticleNotFound, explain

T0 = datetime(2025, 3, 14, 8, 0, tzinfo=UTC)
# The thresholds the command reads: ingestion below uses the same.
SETTINGS: Settings = load_settings({})


@dataclass(frozen=True)
class Report:
    source: str
    language: str
    hours: float  # published this long after T0
    title: str
    text: str


ENGLISH_TEXT = (
    "Floodwater forced 1,200 residents of Bestwig from their homes on 14 March after the river "
    "Ruhr burst its banks overnight.\n"
    "Mayor Ralf Péus said 37 streets were under water and that the Red Cross had opened three "
    "shelters in the town hall and two schools. Péus asked residents of the lower town to stay "
    "away until the water falls. Firefighters from Meschede pumped out cellars all night."
)
REPORTS = {
    "en": Report(
        "ruhr-herald",
        "en",
        0,
        "Flood forces 1,200 residents from Bestwig homes",
        ENGLISH_TEXT,
    ),
    "ru": Report(
        "vesti-europe",
        "ru",
        3,
        "Наводнение в Бествиге: из домов эвакуированы 1200 жителей",
        "14 марта паводок вынудил 1200 жителей Бествига (Bestwig) покинуть свои дома после "
        "того, как река Рур вышла из берегов.\n"
        "Бургомистр Ральф Пеус сообщил, что под водой оказались 37 улиц, а Красный Крест "
        "открыл три пункта временного размещения. Пеус попросил жителей нижней части города "
        "не возвращаться, пока вода не спадёт.",
    ),
    "copy": Report(
        "valley-wire",
        "en",
        4,
        "Flood forces 1,200 residents from Bestwig homes",
        ENGLISH_TEXT + " The water is expected to fall by the weekend.",
    ),
    "storm": Report(
        "north-post",
        "en",
        5,
        "Storm closes 37 schools around Meschede",
        "A winter storm closed 37 schools around Meschede on Thursday, and the district council "
        "sent buses home early.\n"
        "Council leader Anna Vogt said snow ploughs would work through the night and that the "
        "schools should reopen on Monday.",
    ),
}


def article(key: str) -> NormalisedArticle:
    """The report as normalise_page would hand it over."""
    report = REPORTS[key]
    return normalised(
        f"https://{report.source}.example/news/{key}",
        report.source,
        title=report.title,
        text=report.text,
        language=report.language,
        published=T0 + timedelta(hours=report.hours),
    )


IDS = {key: article(key).id for key in REPORTS}


@pytest.fixture
def names(
    monkeypatch: pytest.MonkeyPatch,
    es_node: str,
    es_client: Elasticsearch,
    index_prefix: str,
    tmp_path: Path,
) -> IndexNames:
    """The four reports ingested in order of publication, the CLI pointed at their prefix."""
    for name in list(os.environ):
        if name.startswith("NEWSRADAR_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", index_prefix)
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(tmp_path))
    install(es_client, index_prefix)
    names = IndexNames(index_prefix)
    for key, report in REPORTS.items():
        fetched = T0 + timedelta(hours=report.hours, minutes=5)
        ingest(es_client, names, [article(key)], fetched=fetched, events=event_config(SETTINGS))
    es_client.indices.refresh(index=names.pattern)
    return names


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    code, out, err = _run(capsys, *args, "--json")
    assert (code, err) == (0, ""), err
    result: dict[str, Any] = json.loads(out)
    return result


def test_the_reports_are_one_story_and_the_storm_another(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    hits = es_client.search(index=names.articles, size=10)["hits"]["hits"]
    stored = {h["_id"]: h["_source"] for h in hits}
    relations = {key: stored[IDS[key]]["story_relation"] for key in REPORTS}
    assert relations == {"en": "first", "ru": "same_event", "copy": "copy", "storm": "first"}
    assert {stored[IDS[k]]["story_id"] for k in ("en", "ru", "copy")} == {IDS["en"]}


def test_search_stories_shows_one_line_per_story_with_its_languages(
    names: IndexNames, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _json(capsys, "search", "Bestwig", "--stories")
    assert (result["total"], result["articles"]) == (1, 3)
    [story] = result["stories"]
    assert story["story_id"] == IDS["en"] and story["lead"] == IDS["en"]
    assert story["title"] == REPORTS["en"].title
    assert story["languages"] == ["en", "ru"] and story["language_count"] == 2
    assert story["sources"] == ["ruhr-herald", "valley-wire", "vesti-europe"]
    assert (story["report_count"], story["article_count"], story["matched"]) == (2, 3, 3)
    assert story["first_seen"] == "2025-03-14T08:05:00.000Z"
    assert story["best"] in {IDS["en"], IDS["ru"], IDS["copy"]}

    code, out, err = _run(capsys, "search", "Bestwig", "--stories")
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "1 story among 3 articles matching 'Bestwig'"
    summaries = [line for line in out.splitlines() if "reports ·" in line]
    assert len(summaries) == 1
    assert "2 reports · 3 sources · en, ru" in summaries[0]
    assert REPORTS["en"].title in out
    assert "2025-03-14 08:05" in out
    assert IDS["en"] in out


def test_search_stories_ranks_stories_and_keeps_the_other_options(
    names: IndexNames, capsys: pytest.CaptureFixture[str]
) -> None:
    both = _json(capsys, "search", "37", "--stories")
    assert both["total"] == 2
    assert {s["story_id"] for s in both["stories"]} == {IDS["en"], IDS["storm"]}
    scores = [s["score"] for s in both["stories"]]
    assert scores == sorted(scores, reverse=True)
    # The filters choose articles; a story still shows whole.
    russian = _json(capsys, "search", "Бествиг", "--stories", "--lang", "ru")
    [story] = russian["stories"]
    assert (story["matched"], story["languages"]) == (1, ["en", "ru"])
    by_source = _json(capsys, "search", "", "--stories", "--source", "north-post")
    assert [s["story_id"] for s in by_source["stories"]] == [IDS["storm"]]
    later = _json(capsys, "search", "", "--stories", "--since", "2025-03-14T12:30:00+00:00")
    assert [s["story_id"] for s in later["stories"]] == [IDS["storm"]]
    one = _json(capsys, "search", "", "--stories", "--size", "1")
    assert (one["total"], len(one["stories"])) == (2, 1)
    # Without --stories, one line per article as before.
    articles = _json(capsys, "search", "Bestwig")
    assert articles["total"] == 3 and len(articles["hits"]) == 3


def test_explain_a_same_event_report_shows_the_relation_score_and_shared_keys(
    names: IndexNames, capsys: pytest.CaptureFixture[str]
) -> None:
    result = _json(capsys, "stories", "explain", IDS["ru"])
    assert result["relation"] == "same_event"
    assert result["article"]["source"] == "vesti-europe"
    through = result["through"]
    assert through["id"] == IDS["en"]
    assert (through["title"], through["source"], through["language"]) == (
        REPORTS["en"].title,
        "ruhr-herald",
        "en",
    )
    evidence = result["evidence"]
    assert evidence["joined"] is True and evidence["same_language"] is False
    assert result["threshold"] == SETTINGS.story_cross_threshold
    assert evidence["score"] >= result["threshold"]
    assert result["similarity"] == pytest.approx(evidence["score"])
    assert {"n:bstv", "n:ps", "#:1200", "#:37", "d:03-14"} <= set(evidence["shared"])
    assert evidence["hours_apart"] == 3.0
    assert {"keys", "terms", "title", "coverage", "telling", "reason"} <= set(evidence)
    assert result["story"]["languages"] == ["en", "ru"]
    # The copy was published later: it is in the story, through the English report.
    [copy] = result["candidates"]
    assert copy["article"]["id"] == IDS["copy"] and copy["same_story"] is True
    assert "it comes later" in copy["reason"]

    code, out, err = _run(capsys, "stories", "explain", IDS["ru"])
    assert (code, err) == (0, "")
    assert "relation: same_event" in out
    assert f"joined through {IDS['en']}" in out
    assert REPORTS["en"].title in out and "ruhr-herald · en" in out
    threshold = f"{SETTINGS.story_cross_threshold:g}"
    assert f"score {evidence['score']:.3f}, threshold {threshold} across languages: joins" in out
    assert "n:bstv" in out and "d:03-14" in out and "#:1200" in out
    assert f"lead coverage {evidence['coverage']:.3f}" in out and "3 h apart" in out


def test_explain_a_copy_and_a_story_of_its_own(
    names: IndexNames, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = _json(capsys, "stories", "explain", IDS["copy"])
    assert copy["relation"] == "copy" and copy["duplicate_kind"] in ("near", "exact_text")
    assert copy["through"]["id"] == IDS["en"]
    assert copy["evidence"]["same_language"] is True
    assert copy["threshold"] == SETTINGS.story_threshold
    assert "copy of" in copy["summary"]

    # The storm shares Meschede and 37 with both English reports: found, weighed, refused.
    storm = _json(capsys, "stories", "explain", IDS["storm"], "--candidates", "1")
    assert storm["relation"] == "first" and storm["through"] is None
    assert storm["evidence"] is None
    assert storm["summary"].startswith("a story of its own")
    assert len(storm["candidates"]) == 1 and storm["compared"] == 2
    [nearest] = storm["candidates"]
    assert nearest["evidence"]["joined"] is False and nearest["same_story"] is False
    assert {"n:msd", "#:37"} <= set(nearest["evidence"]["shared"])
    assert nearest["reason"].startswith("score ") and " below " in nearest["reason"]
    code, out, _ = _run(capsys, "stories", "explain", IDS["storm"])
    assert code == 0 and "other candidates (2 of 2, best first)" in out
    assert nearest["reason"] in " ".join(out.split())

    first = _json(capsys, "stories", "explain", IDS["en"])
    assert first["relation"] == "first"
    assert first["summary"].startswith("the first of its story: 2 later articles joined")
    reasons = {c["article"]["id"]: c["reason"] for c in first["candidates"]}
    assert reasons[IDS["ru"]] == "a later article that joined through it"
    assert reasons[IDS["copy"]] == "a later article that copies it"
    assert " below " in reasons[IDS["storm"]]


def test_explain_takes_the_thresholds_from_the_settings(
    names: IndexNames, es_client: Elasticsearch, index_prefix: str
) -> None:
    settings = load_settings(
        {"NEWSRADAR_INDEX_PREFIX": index_prefix, "NEWSRADAR_STORY_WINDOW_HOURS": "2"}
    )
    result = explain(es_client, names, IDS["ru"], events=event_config(settings))
    # The stored verdict stays; the evidence is weighed under the settings given now.
    assert result.relation == "same_event" and result.config.window_hours == 2
    assert result.evidence is not None and not result.evidence.joined
    assert result.evidence.reason == "3 h apart, more than 2 h"
    # Copies only: the storm finds no candidates and says why.
    copies_only = load_settings(
        {"NEWSRADAR_INDEX_PREFIX": index_prefix, "NEWSRADAR_STORY_SAME_EVENT": "false"}
    )
    storm = explain(es_client, names, IDS["storm"], events=event_config(copies_only))
    assert (storm.relation, storm.candidates, storm.compared) == ("first", [], 0)
    assert (
        storm.summary
        == "a story of its own: same-event joining is off, so only a copy would join it"
    )


def test_an_unknown_article_is_one_clear_line(
    names: IndexNames, es_client: Elasticsearch, capsys: pytest.CaptureFixture[str]
) -> None:
    unknown = "0" * 64
    with pytest.raises(ArticleNotFound, match=unknown):
        explain(es_client, names, unknown)
    code, out, err = _run(capsys, "stories", "explain", unknown)
    assert (code, out) == (2, "")
    assert err.splitlines() == [f"newsradar stories: no article '{unknown}' in {names.articles}"]


def test_without_indices_both_commands_say_to_run_init(
    monkeypatch: pytest.MonkeyPatch,
    es_node: str,
    index_prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", index_prefix)
    for argv in (["search", "x", "--stories"], ["stories", "explain", "abc"]):
        code, out, err = _run(capsys, *argv)
        assert (code, out) == (2, "")
        [line] = err.splitlines()
        assert line.startswith(f"newsradar {argv[0]}: no index ") and "newsradar init" in line
