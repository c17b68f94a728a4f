"""The shipped rules on articles written for them, through the real node and the real matching.

``tests/fixtures/relevance/<rule>/alert/`` holds articles whose subject is the rule's topic;
``quiet/`` holds articles that only name it: in passing, negated, in a list or in a quote (the
file name says which, after the language). Every quiet article matches the rule's query, so it
is relevance that keeps it out of the digest. Each file is the ``newsradar alerts test`` format:
the title on the first line, then the text, one paragraph a line.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import Elasticsearch
from test_languages import article, fixture

from devtools.demosite import load_catalog
from pipeline.alerts.batch_rules import run_rules
from pipeline.alerts.match import match_new
from pipeline.alerts.outbox import alert_id
from pipeline.alerts.relevance import score_articles
from pipeline.alerts.rules import load_rules, store_rules
from pipeline.alerts.trial import read_article_file, try_rules
from pipeline.normalise.language import detect_language
from pipeline.settings import load_config, load_settings
from pipeline.store.client import IndexNames, install, load_template

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "relevance"
DEMO = REPO / "demo" / "site"
T0 = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
# A country per language, among those the election rule's filter allows.
COUNTRIES = {"en": "GB", "de": "DE", "fr": "FR", "es": "ES", "uk": "UA", "ru": "RU"}
CATEGORIES = ("passing", "negated", "list", "quote")
SHIPPED = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / "config")}))


def _files(rule_id: str, kind: str) -> list[Path]:
    return sorted((FIXTURES / rule_id / kind).glob("*.txt"))


def _story(path: Path) -> str:
    return f"{path.parent.parent.name}-{path.parent.name}-{path.stem}"


def _document(path: Path, at: datetime) -> dict[str, object]:
    title, text, _ = read_article_file(path, now=T0)
    lang = path.name[:2]
    return {
        "url": f"https://fixtures.example/{_story(path)}",
        "source": f"fixture-{lang}",
        "country": COUNTRIES[lang],
        "title": title,
        "text": text,
        f"title_{lang}": title,
        f"text_{lang}": text,
        "language": lang,
        "published": at.isoformat(),
        "fetched": at.isoformat(),
        "indexed": at.isoformat(),
        "story_id": _story(path),
        "story_relation": "first",
    }


@pytest.mark.parametrize("rule", [rule.id for rule in SHIPPED.alerts])
def test_every_shipped_rule_has_ten_of_each_in_its_languages(rule: str) -> None:
    queries = next(r for r in SHIPPED.alerts if r.id == rule).queries
    alert, quiet = _files(rule, "alert"), _files(rule, "quiet")
    assert len(alert) >= 10 and len(quiet) >= 10
    languages = {path.name[:2] for path in [*alert, *quiet]}
    assert languages <= set(queries) and len(languages) >= 4
    # Each way of naming a topic without being about it is there.
    assert {path.stem.split("-")[1] for path in quiet} == set(CATEGORIES)


@pytest.mark.parametrize("rule", [rule.id for rule in SHIPPED.alerts])
def test_a_shipped_rule_alerts_on_its_topic_and_not_on_passing_mentions(
    es_client: Elasticsearch, index_prefix: str, rule: str
) -> None:
    names = IndexNames(index_prefix)
    install(es_client, index_prefix)
    store_rules(es_client, names, SHIPPED.alerts, now=T0)
    alert, quiet = _files(rule, "alert"), _files(rule, "quiet")
    ids = []
    for n, path in enumerate([*alert, *quiet]):
        story = _story(path)
        document = _document(path, T0 + timedelta(minutes=n))
        es_client.index(index=names.articles, id=story, document=document)
        ids.append(story)
    es_client.indices.refresh(index=names.articles)

    # Every quiet article matches the query: relevance, not the query, leaves it out.
    stored = [r for r in load_rules(es_client, names) if r.id == rule]
    matched, refused = run_rules(es_client, names, stored, ids)
    assert refused == {}
    assert matched[rule] == set(ids)

    report = match_new(es_client, names, ids, now=T0 + timedelta(hours=1))
    assert report.irrelevant >= len(quiet)
    es_client.indices.refresh(index=names.alert_outbox)
    alerted = {
        hit["_source"]["story_id"]: hit["_source"]
        for hit in es_client.search(
            index=names.alert_outbox,
            query={"bool": {"filter": [{"term": {"kind": "alert"}}, {"term": {"rule_id": rule}}]}},
            size=200,
        )["hits"]["hits"]
    }
    missed = sorted(path.name for path in alert if _story(path) not in alerted)
    raised = sorted(path.name for path in quiet if _story(path) in alerted)
    assert (missed, raised) == ([], [])
    threshold = next(r for r in SHIPPED.alerts if r.id == rule).relevance_threshold
    for path in alert:
        # The alert carries the score and the passage that carried it, under its one id.
        relevance = alerted[_story(path)]["relevance"]
        assert relevance["score"] >= threshold
        assert relevance["passage"] and relevance["terms"]
        stored_alert = es_client.get(index=names.alert_outbox, id=alert_id(rule, _story(path)))
        assert stored_alert["_source"]["first_article"] == _story(path)


def test_the_shipped_nato_rule_on_the_demo_site_alerts_on_every_enlargement_article(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    # The demo catalog says which articles are about NATO enlargement and which are other
    # NATO news (a budget summit, exercises, a speech): relevance keeps the first, all of them.
    rule = next(r for r in SHIPPED.alerts if r.id == "nato-enlargement")
    entries = [e for e in load_catalog() if e.topic in ("nato-enlargement", "nato-other")]
    paths = [DEMO / e.path.lstrip("/") for e in entries]
    results = try_rules(es_client, IndexNames(index_prefix), [rule], paths, now=T0)
    alerts = {Path(r.file): bool(r.hits) for r in results}
    for entry, path in zip(entries, paths, strict=True):
        assert alerts[path] == (entry.topic == "nato-enlargement"), entry.path


def test_the_shipped_nato_rule_finds_enlargement_relevant_in_every_language_it_covers(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    # The language fixtures' enlargement paragraph, alone and as the lead of an article whose
    # second paragraph is other NATO news: about the topic in every script, Japanese and
    # Chinese (no spaces between words) among them.
    rule = next(r for r in SHIPPED.alerts if r.id == "nato-enlargement")
    template = load_template("articles", index_prefix)["template"]
    index = f"{index_prefix}-languages"
    es_client.indices.create(
        index=index, settings=template["settings"], mappings=template["mappings"]
    )
    languages: dict[str, str] = {}
    for code in rule.languages:
        data = fixture(code)
        for kind, text in (("match", data["nato"]["match"]), ("article", article(code))):
            lang = detect_language("", text, hint=data.get("hint")).language
            document = {"language": lang, f"title_{lang}": "", f"text_{lang}": text}
            es_client.index(index=index, id=f"{code}-{kind}", document=document)
            languages[f"{code}-{kind}"] = lang
    es_client.indices.refresh(index=index)
    scores = score_articles(es_client, index, {rule.id: languages}, {rule.id: rule.queries})
    found = scores[rule.id]
    assert sorted(found) == sorted(languages)
    below = {doc: r.explain() for doc, r in found.items() if r.score < rule.relevance_threshold}
    assert below == {}
    assert {r.where for r in found.values()} == {"lead"}
    assert 30 <= found["ja-article"].words <= 300 and 30 <= found["zh-article"].words <= 300
