"""The language table, and every language of it end to end on the real node.

tests/fixtures/languages/ holds one file per language (its README says what is in them):
article-length text that detection must get right, a rule word whose inflected form the text
carries, and for the languages of the shipped nato-enlargement rule a paragraph it must match
and one on NATO without enlargement that it must not.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from elasticsearch import Elasticsearch

from devtools import languages as writer
from pipeline.alerts.query import compile_language, compile_rule, parse_query
from pipeline.alerts.rules import check_terms
from pipeline.cli import main
from pipeline.errors import ConfigError
from pipeline.languages import (
    FOLDED,
    LANGUAGE_CODES,
    LANGUAGES,
    analyse_request,
    language,
    language_fields,
)
from pipeline.normalise.language import UNDETERMINED, detect_language
from pipeline.settings import AlertRule, load_config, load_settings
from pipeline.store.client import INDICES, MAPPINGS_DIR, IndexNames, install, load_template

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "languages"
PLUGIN_SOURCE = REPO / "docker/es/plugin/src/org/newsradar/localnode/LocalNodePlugin.java"
# Elasticsearch's language analysers (analysis-common) and those its analysis plugins add.
ELASTICSEARCH_ANALYSERS = frozenset(
    {
        "arabic",
        "armenian",
        "basque",
        "bengali",
        "brazilian",
        "bulgarian",
        "catalan",
        "cjk",
        "czech",
        "danish",
        "dutch",
        "english",
        "estonian",
        "finnish",
        "french",
        "galician",
        "german",
        "greek",
        "hindi",
        "hungarian",
        "indonesian",
        "irish",
        "italian",
        "latvian",
        "lithuanian",
        "norwegian",
        "persian",
        "portuguese",
        "romanian",
        "russian",
        "serbian",
        "sorani",
        "spanish",
        "swedish",
        "thai",
        "turkish",
    }
)
PLUGIN_ANALYSERS = {
    "polish": "analysis-stempel",
    "kuromoji": "analysis-kuromoji",
    "smartcn": "analysis-smartcn",
    "nori": "analysis-nori",
    "ukrainian": "analysis-ukrainian",
}
# Written without spaces between words: a rule word may stand inside a longer run of text.
UNSPACED = {"ja", "zh", "th"}


@cache
def fixture(code: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((FIXTURES / f"{code}.yaml").read_text(encoding="utf-8"))
    return data


def article(code: str) -> str:
    """The language's article-length text: its article, or its two NATO paragraphs."""
    data = fixture(code)
    if "article" in data:
        return str(data["article"])
    return f"{data['nato']['match']}\n\n{data['nato']['other']}"


def shipped_rule(folder: str = "config") -> AlertRule:
    config = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(REPO / folder)}))
    return next(rule for rule in config.alerts if rule.id == "nato-enlargement")


# --- the table ----------------------------------------------------------------------------------


def test_the_table_has_the_detectors_languages_and_georgian() -> None:
    profiles = resources.files("langdetect") / "profiles"
    detector = {p.name.split("-")[0] for p in profiles.iterdir()}  # zh-cn, zh-tw: zh
    assert len(detector) == 54
    assert {entry.code for entry in LANGUAGES if entry.detected} == detector
    assert [entry.code for entry in LANGUAGES if not entry.detected] == ["ka"]
    assert list(LANGUAGE_CODES) == sorted(LANGUAGE_CODES)
    assert sum(entry.stemmed for entry in LANGUAGES) == 34


def test_analysers_are_named_as_elasticsearch_names_them() -> None:
    for entry in LANGUAGES:
        if not entry.stemmed:
            assert entry.plugin is None, entry.code
        elif entry.plugin is None:
            assert entry.analyser in ELASTICSEARCH_ANALYSERS, entry.code
        else:
            assert PLUGIN_ANALYSERS[entry.analyser] == entry.plugin, entry.code


def test_the_local_nodes_plugin_registers_exactly_the_tables_analysers() -> None:
    source = PLUGIN_SOURCE.read_text(encoding="utf-8")
    registered = set(re.findall(r'Map\.entry\("(\w+)"', source))
    assert registered == {entry.analyser for entry in LANGUAGES if entry.stemmed}


def test_the_mapping_and_the_readme_are_written_from_the_table(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert writer.main(["--check"]) == 0, capsys.readouterr().err
    template = json.loads((MAPPINGS_DIR / "articles.json").read_text(encoding="utf-8"))
    properties = template["template"]["mappings"]["properties"]
    languages = {k: v for k, v in properties.items() if re.fullmatch(r"(title|text)_[a-z]{2}", k)}
    assert languages == language_fields()
    folded = template["template"]["settings"]["analysis"]["analyzer"][FOLDED]
    assert folded == {
        "type": "custom",
        "tokenizer": "standard",
        "filter": ["lowercase", "asciifolding"],
    }
    # The mapping says why each language has its own pair of fields.
    assert "Each language has its own pair because" in template["_meta"]["description"]


def test_the_writer_puts_each_language_pair_after_its_standard_field() -> None:
    current = json.loads((MAPPINGS_DIR / "articles.json").read_text(encoding="utf-8"))
    shuffled = writer.articles_template(current)
    names = list(shuffled["template"]["mappings"]["properties"])
    assert names[names.index("title") + 1] == "title_af"
    assert names[names.index("text") + 1] == "text_af"
    assert writer.articles_template(shuffled) == shuffled


def test_every_language_has_a_fixture() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.yaml")) == list(LANGUAGE_CODES)


# --- detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", LANGUAGE_CODES)
def test_article_length_text_is_detected_in_every_language(code: str) -> None:
    text = article(code)
    hint = fixture(code).get("hint")
    result = detect_language("", text, hint=hint)
    assert result.language == code
    entry = language(code)
    assert entry is not None
    if entry.detected:
        assert result.method == "detected"
        assert result.probability >= 0.99
    else:
        # Not a language of the detector's profiles: its source says what it is, or nothing does.
        assert result.method == "hint"
        assert detect_language("", text).language == UNDETERMINED


# --- on the node ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(es_client: Elasticsearch) -> Iterator[str]:
    """Every fixture text in one index shaped by mappings/articles.json, as articles are stored.

    The detected language (or the source's hint) picks the pair of fields a text fills.
    """
    index = f"test-languages-{uuid.uuid4().hex[:8]}-articles-000001"
    template = load_template("articles", "unused")["template"]
    es_client.indices.create(
        index=index, settings=template["settings"], mappings=template["mappings"]
    )
    texts: dict[str, tuple[str, str | None]] = {}
    for code in LANGUAGE_CODES:
        data = fixture(code)
        texts[f"{code}-article"] = (article(code), data.get("hint"))
        for kind in ("match", "other"):
            if "nato" in data:
                texts[f"{code}-{kind}"] = (data["nato"][kind], data.get("hint"))
    for doc_id, (text, hint) in texts.items():
        lang = detect_language("", text, hint=hint).language
        document = {"title": "", "text": text, "language": lang}
        document |= {f"title_{lang}": "", f"text_{lang}": text}
        es_client.index(index=index, id=doc_id, document=document)
    es_client.indices.refresh(index=index)
    yield index
    es_client.options(ignore_status=404).indices.delete(index=index)


def _matching(es: Elasticsearch, index: str, query: dict[str, Any]) -> set[str]:
    hits = es.search(index=index, query=query, size=500, source=False)["hits"]["hits"]
    return {hit["_id"] for hit in hits}


@pytest.mark.parametrize("code", LANGUAGE_CODES)
def test_each_field_analyses_as_the_table_says(
    es_client: Elasticsearch, corpus: str, code: str
) -> None:
    text = article(code)[:400]
    by_field = es_client.indices.analyze(index=corpus, field=f"text_{code}", text=text)["tokens"]
    by_table = es_client.indices.analyze(text=text, **analyse_request(code))["tokens"]
    assert [t["token"] for t in by_field] == [t["token"] for t in by_table]
    assert len(by_field) >= 10


@pytest.mark.parametrize("code", LANGUAGE_CODES)
def test_each_language_finds_an_inflected_form_through_the_rule_syntax(
    es_client: Elasticsearch, corpus: str, code: str
) -> None:
    query, form = fixture(code)["inflection"]["query"], fixture(code)["inflection"]["form"]
    text = article(code)
    written = query.strip('"').rstrip("*")
    assert form in text and form != written
    if code not in UNSPACED:
        # The rule's own form is nowhere in the text as a word: only analysis can find it.
        words = {w.casefold() for w in re.findall(r"[\w\u0900-\u0dff\u200c\u200d']+", text)}
        assert written.casefold() not in words
    found = _matching(es_client, corpus, compile_language(parse_query(query), code))
    # Only this language's texts carry its fields.
    assert f"{code}-article" in found
    assert {doc_id.split("-")[0] for doc_id in found} == {code}


def test_the_articles_template_stays_under_the_nodes_field_limits(
    es_client: Elasticsearch, corpus: str
) -> None:
    settings = es_client.indices.get_settings(
        index=corpus, include_defaults=True, flat_settings=True
    )[corpus]
    merged = {**settings["defaults"], **settings["settings"]}
    mapping = es_client.indices.get_mapping(index=corpus)[corpus]["mappings"]

    def count(properties: dict[str, Any], depth: int = 1) -> tuple[int, int]:
        fields, deepest = 0, depth
        for spec in properties.values():
            fields += 1 + len(spec.get("fields", {}))
            if "properties" in spec:
                inner, inner_depth = count(spec["properties"], depth + 1)
                fields, deepest = fields + inner, max(deepest, inner_depth)
        return fields, deepest

    fields, depth = count(mapping["properties"])
    assert fields == len(load_template("articles", "x")["template"]["mappings"]["properties"]) + 1
    # A quarter of the limit at most: room for many more languages and fields.
    limit = int(merged["index.mapping.total_fields.limit"])
    assert fields * 4 < limit, (fields, limit)
    assert depth < int(merged["index.mapping.depth.limit"])
    pairs = [name for name in mapping["properties"] if re.fullmatch(r"(title|text)_[a-z]{2}", name)]
    assert len(pairs) == 2 * len(LANGUAGES)


# --- the shipped nato-enlargement rule ------------------------------------------------------------


def test_the_shipped_rule_covers_at_least_twenty_languages_in_both_configurations() -> None:
    rule = shipped_rule()
    assert len(rule.languages) >= 20
    assert shipped_rule("config/demo").queries == rule.queries
    assert {code for code in LANGUAGE_CODES if "nato" in fixture(code)} == set(rule.queries)


def test_the_shipped_rules_words_are_no_stop_words(es_client: Elasticsearch) -> None:
    check_terms(es_client, [shipped_rule()])


@pytest.mark.parametrize("code", shipped_rule().languages)
def test_the_shipped_rule_matches_enlargement_and_not_other_nato_news(
    es_client: Elasticsearch, corpus: str, code: str
) -> None:
    query = compile_language(parse_query(shipped_rule().queries[code]), code)
    # The language's article is its two paragraphs together.
    assert _matching(es_client, corpus, query) == {f"{code}-match", f"{code}-article"}


def test_the_whole_rule_finds_enlargement_in_every_language_and_nothing_else(
    es_client: Elasticsearch, corpus: str
) -> None:
    rule = shipped_rule()
    found = _matching(es_client, corpus, compile_rule(rule))
    assert found == {f"{code}-{kind}" for code in rule.languages for kind in ("match", "article")}


# --- upgrading an index made before the table ---------------------------------------------------


def test_init_adds_the_new_languages_to_an_articles_index_made_before(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    names = IndexNames(index_prefix)
    body = load_template("articles", index_prefix)["template"]
    six = {"en", "ru", "uk", "fr", "de", "es"}
    before = {
        name: spec
        for name, spec in body["mappings"]["properties"].items()
        if not re.fullmatch(r"(title|text)_[a-z]{2}", name) or name[-2:] in six
    }
    settings = {k: v for k, v in body["settings"].items() if k != "analysis"}
    es_client.indices.create(
        index=names.first_index("articles"),
        settings=settings,
        mappings={**body["mappings"], "properties": before},
        aliases={names.articles: {"is_write_index": True}},
    )
    es_client.index(index=names.articles, id="old", document={"text": "kept"}, refresh=True)

    report = install(es_client, index_prefix)

    assert names.articles in report.upgraded
    assert len(report.unchanged) == 0 and len(report.created) == len(INDICES) - 1
    mapping = es_client.indices.get_mapping(index=names.articles)
    properties = next(iter(mapping.body.values()))["mappings"]["properties"]
    assert properties["text_sk"] == {"type": "text", "analyzer": FOLDED}
    assert properties["text_pl"] == {"type": "text", "analyzer": "polish"}
    slovak = {"language": "sk", "text_sk": fixture("sk")["nato"]["match"]}
    es_client.index(index=names.articles, id="sk", document=slovak, refresh=True)
    query = compile_language(parse_query("rozšíren*"), "sk")
    assert _matching(es_client, names.articles, query) == {"sk"}
    assert es_client.count(index=names.articles)["count"] == 2
    again = install(es_client, index_prefix)
    assert names.articles in again.unchanged


# --- the commands ---------------------------------------------------------------------------------


def test_config_says_which_languages_each_rule_covers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEWSRADAR_CONFIG_DIR", str(REPO / "config"))
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    nato = next(line for line in lines if line.strip().startswith("nato-enlargement:"))
    rule = shipped_rule()
    assert (
        f"{len(rule.languages)} of {len(LANGUAGES)} languages: {' '.join(rule.languages)}" in nato
    )
    assert nato.endswith("(not stemmed, prefixes reach inflections: ka mk sk sl sq)")
    assert main(["config", "--json"]) == 0
    alerts = {a["id"]: a for a in json.loads(capsys.readouterr().out)["alerts"]}
    assert alerts["nato-enlargement"]["languages"] == list(rule.languages)
    assert alerts["nato-enlargement"]["unstemmed"] == ["ka", "mk", "sk", "sl", "sq"]
    assert alerts["energy-sanctions"]["unstemmed"] == []


def test_an_unquoted_no_is_refused_with_a_hint(tmp_path: Path) -> None:
    (tmp_path / "sources.yaml").write_text(
        "sources:\n  - id: s\n    name: S\n    feeds: [https://example.org/rss]\n",
        encoding="utf-8",
    )
    (tmp_path / "alerts.yaml").write_text(
        "alerts:\n  - id: r\n    name: R\n    recipients: [a@example.org]\n"
        "    queries:\n      no: NATO\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match='write Norwegian as "no"'):
        load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(tmp_path)}))
