"""Relevance: the score's tiers and measures on marked text, and on the real node's analysers."""

# Cyrillic test strings are meant to be Cyrillic, not look-alike Latin letters.
# ruff: noqa: RUF001

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from pipeline.alerts.query import And, Or, Phrase, Term, parse_query
from pipeline.alerts.relevance import (
    LEAD_MAX_WORDS,
    Relevance,
    Spans,
    parts_of,
    score_articles,
    score_spans,
)
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.settings import DEFAULT_MIN_RELEVANCE, AlertRule
from pipeline.store.client import load_template

REPO = Path(__file__).resolve().parent.parent
QUIET = REPO / "tests" / "fixtures" / "relevance" / "nato-enlargement" / "quiet"
NOW = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
FILLER = "The committee met again on Tuesday to go through the figures line by line. "


def _at(text: str, *words: str) -> tuple[tuple[int, int], ...]:
    """The (start, end) of every occurrence of each word in ``text``: a highlighter's marks."""
    spans = []
    for word in words:
        start = text.find(word)
        while start >= 0:
            spans.append((start, start + len(word)))
            start = text.find(word, start + 1)
    return tuple(sorted(spans))


def _score(title: str, text: str, *parts: tuple[str, ...], distinct: int = 2) -> Relevance:
    spans = [Spans(title=_at(title, *words), text=_at(text, *words)) for words in parts]
    return score_spans(title, text, [spans], [distinct])


# --- the query's parts ----------------------------------------------------------------------


def test_a_top_level_and_has_one_part_per_operand_and_not_is_no_part() -> None:
    node = parse_query('(NATO OR OTAN) AND (enlargement OR "join NATO"~3) AND NOT football')
    ((first, second),) = parts_of(node)
    assert first == Or((Term("NATO"), Term("OTAN")))
    assert second == Or((Term("enlargement"), Phrase("join NATO", 3)))


def test_synonyms_at_the_top_are_one_part_and_each_and_an_alternative() -> None:
    node = parse_query("NATO OR OTAN OR (Sweden AND accession)")
    assert parts_of(node) == (
        (Or((Term("NATO"), Term("OTAN"))),),
        (Term("Sweden"), Term("accession")),
    )
    assert parts_of(parse_query("NATO")) == ((Term("NATO"),),)
    assert parts_of(parse_query("a b")) == ((Term("a"), Term("b")),)
    assert isinstance(parse_query("a b"), And)


# --- the tiers --------------------------------------------------------------------------------


def test_every_part_in_the_title_scores_at_least_the_title_tier() -> None:
    text = FILLER * 30
    relevance = _score("Sweden joins NATO after enlargement vote", text, ("NATO",), ("enlarg",))
    assert relevance.where == "title"
    assert 0.8 <= relevance.score <= 1.0


def test_parts_split_between_title_and_lead_score_the_lead_tier() -> None:
    text = "Parliament approved the enlargement on Monday. " + FILLER * 30
    relevance = _score("NATO welcomes its newest member", text, ("NATO",), ("enlargement",))
    assert relevance.where == "lead"
    assert 0.5 <= relevance.score < 0.8


def test_a_part_named_once_at_the_end_is_a_passing_mention() -> None:
    # The defence-budget report whose last sentence says new members were not on the agenda.
    text = "NATO leaders agreed to spend more. " + FILLER * 20 + "No new members were discussed."
    relevance = _score("NATO allies lift spending", text, ("NATO",), ("new members",))
    assert relevance.where == "body"
    assert relevance.score < DEFAULT_MIN_RELEVANCE
    # Named again further down, in a text that keeps coming back to it, it counts.
    about = text + " New members, the diplomats said, would have to wait; new members pay more."
    assert _score("NATO allies lift spending", about, ("NATO",), ("new members",)).score > (
        relevance.score
    )


def test_a_body_that_keeps_coming_back_to_the_topic_passes_the_default() -> None:
    paragraph = "NATO enlargement was debated again, and NATO enlargement divides the parties."
    text = "\n".join(["The debate in the chamber ran late into the night.", *[paragraph] * 4])
    relevance = _score("A long night in parliament", FILLER * 3 + text, ("NATO",), ("enlarg",))
    assert relevance.where == "body"
    assert relevance.score >= DEFAULT_MIN_RELEVANCE


def test_the_lead_is_the_first_paragraph_and_at_most_its_first_eighty_words() -> None:
    words = [f"w{n}" for n in range(LEAD_MAX_WORDS + 20)]
    inside = " ".join([*words[:40], "enlargement", *words[40:]])
    beyond = " ".join([*words[: LEAD_MAX_WORDS + 5], "enlargement", *words[LEAD_MAX_WORDS + 5 :]])
    assert _score("NATO news", inside, ("NATO",), ("enlargement",)).where == "lead"
    assert _score("NATO news", beyond, ("NATO",), ("enlargement",)).where == "body"
    second = "A dateline line\nThe first real paragraph says twenty words or more before anything "
    second += "else happens in this text at all, and then\nenlargement in paragraph three."
    assert _score("NATO news", second, ("NATO",), ("enlargement",)).where == "body"


def test_density_counts_the_rarest_part_and_distinct_terms_add_to_it() -> None:
    text = ("NATO " * 10 + FILLER) * 2 + "enlargement"
    relevance = _score("Title", text, ("NATO",), ("enlargement",))
    words = len(text.split()) + 1
    assert relevance.density == round(1000 / words, 1)
    richer = score_spans(
        "Title",
        text,
        [[Spans(text=_at(text, "NATO")), Spans(text=_at(text, "enlargement"))]],
        [5],
    )
    assert richer.score > relevance.score


def test_the_passage_is_the_paragraph_that_carried_the_score() -> None:
    text = "\n".join(
        [
            "Ministers met in Brussels on Thursday for their regular talks on the budget.",
            "The NATO summit heard about ammunition.",
            "NATO enlargement came up twice: enlargement to the north is done.",
        ]
    )
    relevance = _score("Talks in Brussels", text, ("NATO",), ("enlargement",))
    assert relevance.passage == "NATO enlargement came up twice: enlargement to the north is done."
    assert dict(relevance.terms) == {"NATO": 2, "enlargement": 2}
    long = "Intro words here. " * 10 + "NATO enlargement " + "and more words after that " * 30
    cut = _score("Title", long, ("NATO",), ("enlargement",)).passage
    assert cut.startswith("… ") and cut.endswith(" …") and "NATO enlargement" in cut
    assert len(cut) < 320


def test_relevance_round_trips_through_the_outbox_and_explains_itself() -> None:
    relevance = _score("NATO enlargement", "NATO enlargement again.", ("NATO",), ("enlargement",))
    assert Relevance.from_json(json.loads(json.dumps(relevance.to_json()))) == relevance
    assert relevance.explain().startswith("in the title; NATO (2), enlargement (2) in 5 words")


# --- thresholds in the rules --------------------------------------------------------------------


def _rule(**options: Any) -> AlertRule:
    base: dict[str, Any] = {
        "id": "r",
        "name": "R",
        "recipients": ["a@example.org"],
        "queries": {"en": "NATO"},
    }
    return AlertRule.model_validate(base | options)


def test_focus_is_min_relevance_by_tier_and_a_default_applies() -> None:
    assert _rule().relevance_threshold == DEFAULT_MIN_RELEVANCE
    assert _rule(focus="title").relevance_threshold == 0.8
    assert _rule(focus="lead").relevance_threshold == 0.5
    assert _rule(focus="body").relevance_threshold == 0.0
    assert _rule(min_relevance=0.4).relevance_threshold == 0.4


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"focus": "lead", "min_relevance": 0.3}, "min_relevance or focus, not both"),
        ({"focus": "headline"}, "'title', 'lead' or 'body'"),
        ({"min_relevance": 1.5}, "less than or equal to 1"),
        ({"queries": {}}, "needs at least one query, unless it is breaking"),
        ({"breaking": {"sources": 1, "within": "2h"}}, "greater than or equal to 2"),
        ({"breaking": {"sources": 5, "within": "soon"}}, "not a duration"),
        ({"breaking": {"sources": 5, "within": "2h"}, "min_sources": 2}, "replaces min_sources"),
    ],
)
def test_bad_relevance_and_breaking_options_are_refused(
    tmp_path: Path, options: dict[str, Any], problem: str
) -> None:
    from pipeline.settings import load_config, load_settings

    rule = {
        "id": "r",
        "name": "R",
        "recipients": ["a@example.org"],
        "queries": {"en": "NATO"},
    } | options
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - id: s\n    name: S\n    homepage: https://s.example/\n", encoding="utf-8"
    )
    (tmp_path / "alerts.yaml").write_text(json.dumps({"alerts": [rule]}), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(tmp_path)}))
    assert problem in info.value.problem


def test_a_breaking_rule_needs_no_queries() -> None:
    rule = _rule(queries={}, breaking={"sources": 5, "within": "2h"})
    assert rule.breaking is not None and rule.breaking.within_seconds == 7200


# --- on the real node -------------------------------------------------------------------------


@pytest.fixture
def articles_index(es_client: Elasticsearch, index_prefix: str) -> str:
    template = load_template("articles", index_prefix)["template"]
    index = f"{index_prefix}-relevance"
    es_client.indices.create(
        index=index, settings=template["settings"], mappings=template["mappings"]
    )
    return index


def _put(es: Elasticsearch, index: str, docs: dict[str, tuple[str, str, str]]) -> None:
    for doc_id, (lang, title, text) in docs.items():
        document = {"language": lang, f"title_{lang}": title, f"text_{lang}": text}
        es.index(index=index, id=doc_id, document=document)
    es.indices.refresh(index=index)


def test_inflected_forms_prefixes_and_phrases_are_hits_through_the_analysers(
    es_client: Elasticsearch, articles_index: str
) -> None:
    _put(
        es_client,
        articles_index,
        {
            # Only inflected forms of the query's words, in the title and the text.
            "ru": (
                "ru",
                "Споры о расширении альянса",
                "Вопрос расширения НАТО обсуждали весь день.\nО вступлении в НАТО говорили мало.",
            ),
            "en": ("en", "Allies meet", "Finland joined NATO. Its accession was swift."),
        },
    )
    queries = {
        "ru": {"ru": "НАТО AND (расширение OR вступлени*)"},
        "en": {"en": 'NATO AND (accession OR "join NATO"~3)'},
    }
    scores = score_articles(
        es_client,
        articles_index,
        {"ru": {"ru": "ru"}, "en": {"en": "en"}},
        queries,
    )
    russian = scores["ru"]["ru"]
    assert dict(russian.terms) == {"НАТО": 2, "расширении": 1, "расширения": 1, "вступлении": 1}
    assert russian.where == "lead" and russian.distinct == 3
    assert russian.passage == "Вопрос расширения НАТО обсуждали весь день."
    english = scores["en"]["en"]
    assert dict(english.terms) == {"NATO": 1, "joined NATO": 1, "accession": 1}
    assert english.where == "lead"


def test_an_article_in_another_language_is_left_unscored(
    es_client: Elasticsearch, articles_index: str
) -> None:
    _put(es_client, articles_index, {"de": ("de", "NATO", "NATO-Erweiterung")})
    wanted = {"r": {"de": "de"}}
    assert score_articles(es_client, articles_index, wanted, {"r": {"en": "NATO"}}) == {}


def test_alerts_test_shows_the_score_and_what_falls_below(
    es_node: str, index_prefix: str, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", index_prefix)
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(REPO / "config"))
    budget = QUIET / "en-negated-defence-budget.txt"
    assert main(["alerts", "test", str(budget)]) == 0
    out = capsys.readouterr().out
    assert "  below  nato-enlargement (NATO enlargement): min_relevance 0.25\n" in out
    assert "further down" in out and "new members (1)" in out
    assert main(["alerts", "test", str(budget), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)["files"]
    assert result["hits"] == []
    (below,) = result["below"]
    assert below["where"] == "body" and below["relevance"] < below["min_relevance"]
