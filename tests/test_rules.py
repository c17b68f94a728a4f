"""Rule queries: parsing and its errors, compiling, and matching on the real language analysers."""

# Cyrillic test strings are meant to be Cyrillic, not look-alike Latin letters.
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from devtools.demosite import load_catalog
from pipeline.alerts.query import (
    MAX_DEPTH,
    MAX_QUERY_CHARS,
    MAX_TERMS,
    And,
    Not,
    Or,
    Phrase,
    QuerySyntaxError,
    Term,
    compile_language,
    compile_rule,
    parse_query,
)
from pipeline.alerts.rules import check_terms
from pipeline.alerts.trial import try_rules
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.settings import AlertRule, load_config, load_settings
from pipeline.store.client import IndexNames, load_template

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "demo" / "site"
NOW = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)


# --- parsing ----------------------------------------------------------------------------------


def test_words_are_anded_and_or_binds_loosest() -> None:
    assert parse_query("a b OR c") == Or((And((Term("a"), Term("b"))), Term("c")))
    assert parse_query("a AND (b OR c)") == And((Term("a"), Or((Term("b"), Term("c")))))


def test_phrases_proximity_prefixes_and_not() -> None:
    node = parse_query('"join NATO"~3 расшир* NOT учени*')
    assert node == And(
        (Phrase("join NATO", 3), Term("расшир", prefix=True), Not(Term("учени", prefix=True)))
    )


def test_lower_case_operators_are_words() -> None:
    assert parse_query("salt and pepper") == And((Term("salt"), Term("and"), Term("pepper")))


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        ('"NATO enlargement', "unbalanced quote"),
        ("(NATO OR OTAN", "unbalanced parenthesis: this ( is never closed"),
        ("NATO OR OTAN)", "unbalanced parenthesis: this ) has no matching ("),
        ("NATO AND", "AND has nothing after it"),
        ("NATO OR", "OR has nothing after it"),
        ("OR NATO", "OR has nothing before it"),
        ("NATO AND OR OTAN", "AND has nothing after it"),
        ("NATO NOT", "NOT has nothing after it"),
        ("", "empty query"),
        ("   ", "empty query"),
        ("()", "empty parentheses"),
        ('""', "empty phrase"),
        ("*largement", "leading wildcard"),
        ("enl*ment", "only a trailing *"),
        ("e*", "too short"),
        ("enlargemen?", "'?' wildcards are not supported"),
        ('"join NATO*"', "wildcards cannot be used inside a quoted phrase"),
        ('"join NATO"~', "~ must be followed by a number"),
        ('"join NATO"~500', "proximity ~500 is over"),
        ("title:NATO", "field names"),
        ("NATO^2", "boosts"),
        ("NATO && OTAN", "write AND instead of &&"),
        ("NATO -exercise", "write NOT instead of a leading '-'"),
        ("NOT exercise", "NOT needs a positive term"),
        ("NATO OR NOT exercise", "'OR NOT' matches almost everything"),
    ],
)
def test_each_kind_of_bad_query_is_refused(query: str, problem: str) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert problem in str(info.value)


def test_errors_give_the_column() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query('NATO AND "join')
    assert info.value.column == 10


# --- limits -----------------------------------------------------------------------------------


def _nested(depth: int) -> str:
    """The costliest nesting: each level holds an OR around an AND, two bool queries."""
    query = "core"
    for level in range(depth):
        query = f"(left{level} {query} OR right{level})"
    return query


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        # Used to hit Python's recursion limit (about 250 levels / 1000 NOTs).
        (
            "(" * 300 + "NATO" + ")" * 300,
            f"nested too deep: 11 levels of ( and NOT; the limit is {MAX_DEPTH}",
        ),
        (_nested(MAX_DEPTH + 1), f"the limit is {MAX_DEPTH}"),
        ("NATO AND " + "NOT " * 400 + "exercise", "nested too deep: 11 levels of ( and NOT"),
        (
            "NATO AND " + "NOT " * 1000 + "exercise",
            f"too long: 4017 characters; the limit is {MAX_QUERY_CHARS}",
        ),
        (
            " OR ".join(f"w{n}" for n in range(MAX_TERMS + 50)),
            f"too many words and phrases: 150; the limit is {MAX_TERMS}",
        ),
        ('"a b" ' * (MAX_TERMS + 1), "too many words and phrases: 101"),
        ("NATO " + "x" * MAX_QUERY_CHARS, "too long: 2005 characters"),
    ],
    ids=["parentheses", "or-and-levels", "nots", "thousand-nots", "terms", "phrases", "length"],
)
def test_queries_over_a_limit_are_refused_before_the_parser_recurses(
    query: str, problem: str
) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    assert problem in str(info.value)


def test_limit_errors_point_at_the_first_term_or_level_over_it() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("(" * 12 + "NATO" + ")" * 12)
    assert info.value.column == MAX_DEPTH + 1
    words = " ".join(f"w{n:03}" for n in range(MAX_TERMS + 1))
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(words)
    assert info.value.column == words.index(f"w{MAX_TERMS:03}") + 1


def test_a_query_at_every_limit_runs_on_the_real_node(
    es_client: Elasticsearch, articles_index: str
) -> None:
    _index(
        es_client,
        articles_index,
        {
            "deep": (
                "en",
                "Core",
                "left0 left1 left2 left3 left4 left5 left6 left7 left8 left9 core",
            )
        },
    )
    deep = parse_query(_nested(MAX_DEPTH))
    many = " OR ".join([f"word{n}" for n in range(MAX_TERMS - 1)] + ["core"])
    long = many + " " * (MAX_QUERY_CHARS - len(many))
    assert len(long) == MAX_QUERY_CHARS
    for node in (deep, parse_query(long)):
        rule_query = {"bool": {"should": [compile_language(node, "en")], "minimum_should_match": 1}}
        # Wrapped as matching wraps a stored rule: restricted to a batch's ids.
        restricted = {"bool": {"must": [rule_query], "filter": [{"ids": {"values": ["deep"]}}]}}
        assert _matching(es_client, articles_index, restricted) == {"deep"}


# --- validation in alerts.yaml ------------------------------------------------------------------

SOURCES = """\
sources:
  - id: example-world
    name: Example World News
    feeds: [https://example.org/rss.xml]
"""


def _alerts(queries: str, extra: str = "") -> str:
    return (
        "alerts:\n"
        "  - id: nato-enlargement\n"
        "    name: NATO enlargement\n"
        "    recipients: [analyst@example.org]\n"
        f"{extra}"
        "    queries:\n"
        f"{queries}"
    )


@pytest.mark.parametrize(
    ("alerts", "entry", "problem"),
    [
        (
            _alerts("      en: NATO\n      ru: '\"расширение НАТО'\n"),
            "alerts[0] (id=nato-enlargement).queries",
            "the ru query: unbalanced quote",
        ),
        (
            _alerts("      de: '(NATO OR Beitritt'\n"),
            "alerts[0] (id=nato-enlargement).queries",
            "the de query: unbalanced parenthesis",
        ),
        (
            _alerts("      fr: 'OTAN AND'\n"),
            "alerts[0] (id=nato-enlargement).queries",
            "the fr query: AND has nothing after it",
        ),
        (
            _alerts("      uk: '*ширення'\n"),
            "alerts[0] (id=nato-enlargement).queries",
            "the uk query: leading wildcard",
        ),
        (
            _alerts("      en: NATO\n      ru: '" + "(" * 300 + "НАТО" + ")" * 300 + "'\n"),
            "alerts[0] (id=nato-enlargement).queries",
            f"the ru query: nested too deep: 11 levels of ( and NOT; the limit is {MAX_DEPTH} "
            "(column 11)",
        ),
        (
            _alerts("      hy: NATO\n"),
            "alerts[0] (id=nato-enlargement).queries",
            "unknown language 'hy'",
        ),
        (
            _alerts("      en: NATO\n", "    filters:\n      languages: [de]\n"),
            "alerts[0] (id=nato-enlargement)",
            "filters.languages has 'de', which has no query",
        ),
        (
            _alerts("      en: NATO\n", "    filters:\n      sources: [nowhere-news]\n"),
            "alerts[0] (id=nato-enlargement).filters.sources[0]",
            "no such source 'nowhere-news'",
        ),
        (
            _alerts("      en: NATO\n", "    min_sources: 0\n"),
            "alerts[0] (id=nato-enlargement).min_sources",
            "greater than or equal to 1",
        ),
    ],
)
def test_bad_rules_name_the_file_the_rule_and_the_language(
    tmp_path: Path, alerts: str, entry: str, problem: str
) -> None:
    (tmp_path / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    (tmp_path / "alerts.yaml").write_text(alerts, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(tmp_path)}))
    assert info.value.source.endswith("alerts.yaml")
    assert info.value.entry == entry
    assert problem in info.value.problem


# --- compiling --------------------------------------------------------------------------------


def test_compiled_language_query_uses_that_languages_fields() -> None:
    query = compile_language(parse_query('NATO "join NATO"~3 enl* NOT exercise'), "en")
    fields = ["title_en^2", "text_en"]
    assert query == {
        "bool": {
            "must": [
                {"multi_match": {"query": "NATO", "type": "phrase", "fields": fields}},
                {
                    "multi_match": {
                        "query": "join NATO",
                        "type": "phrase",
                        "fields": fields,
                        "slop": 3,
                    }
                },
                {
                    "multi_match": {
                        "query": "enl",
                        "type": "bool_prefix",
                        "fields": fields,
                        "operator": "and",
                    }
                },
            ],
            "must_not": [
                {"multi_match": {"query": "exercise", "type": "phrase", "fields": fields}}
            ],
        }
    }


def test_compiled_rule_ors_languages_and_applies_filters() -> None:
    rule = AlertRule.model_validate(
        {
            "id": "r",
            "name": "R",
            "recipients": ["a@example.org"],
            "queries": {"en": "NATO", "de": "NATO", "fr": "OTAN"},
            "filters": {"sources": ["s1"], "countries": ["DE"], "languages": ["en", "de"]},
        }
    )
    query = compile_rule(rule)["bool"]
    assert query["minimum_should_match"] == 1
    assert [c["multi_match"]["fields"][1] for c in query["should"]] == ["text_en", "text_de"]
    assert {"terms": {"source": ["s1"]}} in query["filter"]
    assert {"terms": {"country": ["DE"]}} in query["filter"]
    assert {"terms": {"language": ["en", "de"]}} in query["filter"]
    unfiltered = compile_rule(rule, with_filters=False)["bool"]["filter"]
    assert unfiltered == [{"terms": {"language": ["en", "de"]}}]


# --- on the real analysers ----------------------------------------------------------------------


@pytest.fixture
def articles_index(es_client: Elasticsearch, index_prefix: str) -> Iterator[str]:
    """A throw-away index shaped by mappings/articles.json."""
    template = load_template("articles", index_prefix)["template"]
    index = f"{index_prefix}-articles-000001"
    es_client.indices.create(
        index=index, settings=template["settings"], mappings=template["mappings"]
    )
    yield index


def _index(es: Elasticsearch, index: str, docs: dict[str, tuple[str, str, str]]) -> None:
    for doc_id, (lang, title, text) in docs.items():
        document: dict[str, Any] = {
            "title": title,
            "text": text,
            "language": lang,
            f"title_{lang}": title,
            f"text_{lang}": text,
        }
        es.index(index=index, id=doc_id, document=document)
    es.indices.refresh(index=index)


def _matching(es: Elasticsearch, index: str, query: dict[str, Any]) -> set[str]:
    return {hit["_id"] for hit in es.search(index=index, query=query, size=100)["hits"]["hits"]}


# Query word in its dictionary form, the article carries an inflected one.
INFLECTED = {
    "en": ("enlargement", "Talks on the enlargements of the alliance went on."),
    "ru": ("расширение", "Вопрос расширения альянса обсуждали долго."),
    "uk": ("розширення", "Про розширенню альянсу говорили довго."),
    "fr": ("élargissement", "Les élargissements successifs de l'alliance."),
    "de": ("Erweiterung", "Über die Erweiterungen des Bündnisses wurde gestritten."),
    "es": ("ampliación", "Las ampliaciones sucesivas de la alianza."),
}


@pytest.mark.parametrize("lang", sorted(INFLECTED))
def test_each_language_matches_an_inflected_form(
    es_client: Elasticsearch, articles_index: str, lang: str
) -> None:
    word, text = INFLECTED[lang]
    other = "fr" if lang != "fr" else "de"
    _index(
        es_client,
        articles_index,
        {"inflected": (lang, "", text), "other-language": (other, "", INFLECTED[other][1])},
    )
    assert _matching(es_client, articles_index, compile_language(parse_query(word), lang)) == {
        "inflected"
    }


def test_prefix_phrase_proximity_and_not_on_russian(
    es_client: Elasticsearch, articles_index: str
) -> None:
    _index(
        es_client,
        articles_index,
        {
            "accession": ("ru", "", "Финляндия решила вступить в НАТО весной."),
            "exercise": ("ru", "", "НАТО проводит учения у границ, расширения не обсуждали."),
            "far": ("ru", "", "Вступить, по словам министра, страна когда-нибудь сможет в НАТО."),
        },
    )

    def ids(query: str) -> set[str]:
        return _matching(es_client, articles_index, compile_language(parse_query(query), "ru"))

    assert ids("расшир*") == {"exercise"}
    assert ids('"вступить в НАТО"') == {"accession"}
    assert ids('"вступить в НАТО"~8') == {"accession", "far"}
    assert ids("НАТО NOT учения") == {"accession", "far"}


def test_stop_words_are_refused_before_they_silently_match_nothing(
    es_client: Elasticsearch,
) -> None:
    rule = AlertRule.model_validate(
        {
            "id": "stop",
            "name": "Stop",
            "recipients": ["a@example.org"],
            "queries": {"en": "NATO and enlargement"},
        }
    )
    with pytest.raises(ConfigError) as info:
        check_terms(es_client, [rule])
    assert info.value.entry == "alerts (id=stop).queries.en"
    assert "'and' is a stop word for the english analyser" in info.value.problem


def _rule(query: str, lang: str = "en") -> AlertRule:
    return AlertRule.model_validate(
        {"id": "stop", "name": "Stop", "recipients": ["a@example.org"], "queries": {lang: query}}
    )


@pytest.mark.parametrize(
    ("query", "lang", "problem"),
    [
        # Phrases used to skip the check: each of these matched nothing, silently.
        ('NATO "the"', "en", "'the' is a stop word for the english analyser"),
        ('NATO AND "of the"', "en", "every word of the phrase 'of the' is a stop word"),
        ('НАТО AND ("и в"~2 OR расширение)', "ru", "every word of the phrase 'и в'"),
        ('OTAN "de la"', "fr", "every word of the phrase 'de la' is a stop word for the french"),
    ],
)
def test_phrases_made_only_of_stop_words_are_refused(
    es_client: Elasticsearch, query: str, lang: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        check_terms(es_client, [_rule(query, lang)])
    assert info.value.entry == f"alerts (id=stop).queries.{lang}"
    assert problem in info.value.problem


def test_a_phrase_with_a_stop_word_among_real_words_is_kept_and_matches(
    es_client: Elasticsearch, articles_index: str
) -> None:
    rule = _rule('"join the NATO"')
    check_terms(es_client, [rule])  # accepted
    _index(
        es_client,
        articles_index,
        {
            "joins": ("en", "", "Sweden wants to join the NATO alliance."),
            "apart": ("en", "", "Join us: the NATO summit opens today."),
        },
    )
    assert _matching(es_client, articles_index, compile_rule(rule)) == {"joins"}


# --- the shipped nato-enlargement rule on the demo site -----------------------------------------


def _demo_paths(*, story: str | None = None, topic: str | None = None) -> list[Path]:
    return [
        DEMO / entry.path.lstrip("/")
        for entry in load_catalog()
        if (story is None or entry.story == story) and (topic is None or entry.topic == topic)
    ]


@pytest.mark.parametrize("folder", ["config", "config/demo"])
def test_shipped_rule_matches_the_1954_story_in_every_language_and_not_distractors(
    es_client: Elasticsearch, index_prefix: str, folder: str
) -> None:
    config = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / folder)}))
    rule = next(r for r in config.alerts if r.id == "nato-enlargement")
    assert {"en", "ru", "uk", "fr", "de", "es"} <= set(rule.queries)
    story = _demo_paths(story="ussr-1954-nato-request")
    # The original, the reworded copy from a second source, and the ru/uk translations.
    assert len(story) == 4
    distractors = _demo_paths(topic="nato-other")  # a budget summit, exercises, a speech
    assert len(distractors) >= 4
    results = try_rules(es_client, IndexNames(index_prefix), [rule], story + distractors, now=NOW)
    verdicts = {Path(r.file): bool(r.hits) for r in results}
    assert all(verdicts[path] for path in story), verdicts
    assert not any(verdicts[path] for path in distractors), verdicts
    languages = {r.language for r in results if Path(r.file) in story}
    assert languages == {"en", "ru", "uk"}


# --- what stemming did, as `alerts test` shows it ----------------------------------------------


def test_alerts_test_shows_the_matched_and_the_searched_words_as_analysed(
    es_client: Elasticsearch,
    es_node: str,
    index_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    polish = tmp_path / "rozszerzenie.txt"
    polish.write_text(
        "Finlandia w NATO\n\nSejm poparł przystąpienie Finlandii do NATO i rozszerzenia "
        "sojuszu o kolejne państwa; Szwecja złożyła wniosek o członkostwo tego samego dnia, "
        "a rząd zapowiada szybką ratyfikację.\n",
        encoding="utf-8",
    )
    config = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / "config")}))
    rule = next(r for r in config.alerts if r.id == "nato-enlargement")
    (result,) = try_rules(es_client, IndexNames(index_prefix), [rule], [polish], now=NOW)
    assert result.language == "pl"
    (hit,) = result.hits
    analysed = {item.text: item.terms for item in hit.analysed}
    assert analysed["rozszerzenia"] == ("rozszerzyć",)
    assert analysed["NATO"] == ("na",)  # Stempel's reading, plain to see
    (query,) = result.queries
    assert (query.rule_id, query.analyser) == ("nato-enlargement", "polish")
    searched = {item.text: item.terms for item in query.terms}
    assert searched["rozszerzenie"] == ("rozszerzyć",)  # the rule's form meets the text's
    assert searched["wejście do NATO"] == ("wejść", "na")  # "do" is a stop word

    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", index_prefix)
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(REPO / "config"))
    english = tmp_path / "drills.txt"
    english.write_text("Drills\n\nNATO warships began their annual exercise.\n", encoding="utf-8")
    assert main(["alerts", "test", str(polish), str(english)]) == 0
    out = capsys.readouterr().out
    assert "analysed: NATO → na · przystąpienie → przystąpienie · rozszerzenia → rozszerzyć" in out
    assert "  nato-enlargement searches (polish): NATO → na · rozszerzenie → rozszerzyć" in out
    assert "expans* → expan*" in out  # the English prefix is stemmed before it is a prefix
