"""Search across languages on the local node, and the ``newsradar search`` command."""

# ruff: noqa: RUF001  (Cyrillic text is the point here, not a look-alike of Latin letters)

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from httpfaults import closed_port

from pipeline.cli import main
from pipeline.store.bulk import BulkAction, write
from pipeline.store.client import LANGUAGE_FIELDS, IndexNames, install
from pipeline.store.search import SearchError, build_query, query_fields, search

ARTICLES: dict[str, dict[str, Any]] = {
    "ru-enlargement": {
        "url": "https://ria.example/politics/1",
        "source": "ria",
        "language": "ru",
        "published": "2024-05-02T09:30:00Z",
        "title": "Министры обсудили вопрос расширения НАТО",
        "text": "На встрече в Брюсселе министры обсудили вопрос расширения НАТО на восток. "
        "Решение о расширении альянса ожидается осенью.",
    },
    "en-budget": {
        "url": "https://bbc.example/world/2",
        "source": "bbc",
        "language": "en",
        "published": "2024-05-03T08:00:00Z",
        "title": "NATO budget grows by two percent",
        "text": "The NATO budget for next year grows by two percent, officials said. "
        "Members argued over the budget for hours.",
    },
    "en-enlargement": {
        "url": "https://bbc.example/world/3",
        "source": "bbc",
        "language": "en",
        "published": "2024-04-20T12:00:00Z",
        "title": "Talks on enlarging NATO enter final stage",
        "text": "Diplomats say the talks on enlarging NATO have entered their final stage. "
        "A vote on the enlargement is expected in June. <script>alert(1)</script>",
    },
    "uk-enlargement": {
        "url": "https://ukr.example/news/4",
        "source": "ukr",
        "language": "uk",
        "published": "2024-05-01T15:00:00Z",
        "title": "Розширення НАТО обговорять у Брюсселі",
        "text": "Міністри обговорять розширення НАТО на зустрічі в Брюсселі наступного тижня.",
    },
    "fr-enlargement": {
        "url": "https://lemonde.example/international/5",
        "source": "lemonde",
        "language": "fr",
        "published": "2024-05-02T18:00:00Z",
        "title": "Les ministres discutent de l'élargissement de l'OTAN",
        "text": "Les ministres ont discuté de l'élargissement de l'OTAN à Bruxelles.",
    },
    "ru-copy": {
        "url": "https://mirror.example/ru/1",
        "source": "mirror",
        "language": "ru",
        "published": "2024-05-02T10:00:00Z",
        "title": "Министры обсудили вопрос расширения НАТО",
        "text": "Министры обсудили вопрос расширения НАТО на встрече в Брюсселе.",
        "duplicate_of": "ru-enlargement",
    },
}


def _document(article: dict[str, Any]) -> dict[str, Any]:
    """The article as the normaliser stores it: its language pair filled besides title/text."""
    lang = article["language"]
    doc = dict(article, canonical_url=article["url"])
    if lang in LANGUAGE_FIELDS:
        doc[f"title_{lang}"] = article["title"]
        doc[f"text_{lang}"] = article["text"]
    return doc


@pytest.fixture(scope="module")
def names(es_client: Elasticsearch) -> Iterator[IndexNames]:
    """The articles above, indexed once for the module (the tests only read)."""
    names = IndexNames(f"test-search-{uuid.uuid4().hex[:8]}")
    install(es_client, names.prefix)
    actions = [
        BulkAction(names.articles, doc_id, _document(article), op="create")
        for doc_id, article in ARTICLES.items()
    ]
    report = write(es_client, actions, names=names, stage="index", refresh=True)
    assert report.created == len(ARTICLES)
    yield names
    es_client.options(ignore_status=404).indices.delete(index=names.pattern)
    es_client.options(ignore_status=404).indices.delete_index_template(name=f"{names.prefix}-*")


def ids(result_hits: list[Any]) -> list[str]:
    return [hit.id for hit in result_hits]


def test_a_russian_query_finds_another_inflection(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    result = search(es_client, names, "расширение НАТО")
    assert set(ids(result.hits)) == {"ru-enlargement", "ru-copy"}
    assert result.total == 2
    assert "en-budget" not in ids(result.hits)
    # The standard analyser alone does not know "расширение" and "расширения" are one word.
    plain = es_client.search(
        index=names.articles, query={"match": {"text": {"query": "расширение", "operator": "and"}}}
    )
    assert plain["hits"]["total"]["value"] == 0


def test_a_query_restricted_to_russian_uses_the_russian_fields(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    result = search(es_client, names, "расширение НАТО", language="ru")
    assert set(ids(result.hits)) == {"ru-enlargement", "ru-copy"}
    assert all(hit.language == "ru" for hit in result.hits)
    assert query_fields("ru") == ["title_ru^2", "text_ru", "title^2", "text"]
    assert query_fields("it") == ["title_it^2", "text_it", "title^2", "text"]
    assert query_fields("hy") == ["title^2", "text"]  # no Armenian in the table
    assert len(query_fields()) == 2 * len(LANGUAGE_FIELDS) + 2


def test_an_english_query_stems_and_the_budget_story_is_not_on_top(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    result = search(es_client, names, "NATO enlargement")
    assert ids(result.hits)[0] == "en-enlargement"
    assert "en-budget" not in ids(result.hits)
    nato = search(es_client, names, "NATO")
    assert set(ids(nato.hits)) == {"en-enlargement", "en-budget"}


def test_other_languages_find_their_own_forms(es_client: Elasticsearch, names: IndexNames) -> None:
    assert ids(search(es_client, names, "розширенням НАТО").hits) == ["uk-enlargement"]
    assert ids(search(es_client, names, "élargissements OTAN").hits) == ["fr-enlargement"]


def test_filters_by_source_language_and_dates(es_client: Elasticsearch, names: IndexNames) -> None:
    by_source = search(es_client, names, "расширение НАТО", source="mirror")
    assert ids(by_source.hits) == ["ru-copy"]
    assert by_source.hits[0].duplicate_of == "ru-enlargement"
    assert search(es_client, names, "NATO", language="ru").total == 0
    since = search(es_client, names, "NATO", since=date(2024, 5, 1))
    assert ids(since.hits) == ["en-budget"]
    # A bare date as the end takes in the whole of that day.
    until = search(es_client, names, "", until=date(2024, 5, 2))
    assert set(ids(until.hits)) == {
        "en-enlargement",
        "uk-enlargement",
        "ru-enlargement",
        "ru-copy",
        "fr-enlargement",
    }
    window = search(
        es_client,
        names,
        "",
        since=datetime(2024, 5, 2, 9, 0, tzinfo=UTC),
        until=datetime(2024, 5, 2, 12, 0, tzinfo=UTC),
    )
    assert set(ids(window.hits)) == {"ru-enlargement", "ru-copy"}


def test_an_empty_query_lists_the_newest_first(es_client: Elasticsearch, names: IndexNames) -> None:
    result = search(es_client, names, "  ", size=3)
    assert result.total == len(ARTICLES)
    assert ids(result.hits) == ["en-budget", "fr-enlargement", "ru-copy"]


def test_highlights_mark_the_inflected_words_and_escape_the_text(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    (hit, *_) = search(es_client, names, "расширение НАТО", source="ria").hits
    assert hit.highlights["title"] == ["Министры обсудили вопрос <em>расширения</em> <em>НАТО</em>"]
    text = " ".join(hit.highlights["text"])
    assert "<em>расширения</em> <em>НАТО</em>" in text
    assert "<em>расширении</em>" in text
    (english,) = search(es_client, names, "enlargement vote").hits
    joined = " ".join(english.highlights["text"])
    assert "<em>enlargement</em>" in joined
    assert "<script>" not in joined
    assert "&lt;script&gt;" in joined
    assert hit.score is not None and hit.score > 0


def test_the_query_syntax_and_limits(es_client: Elasticsearch, names: IndexNames) -> None:
    assert ids(search(es_client, names, "NATO -budget").hits) == ["en-enlargement"]
    assert search(es_client, names, '"budget grows"').total == 1
    # Unbalanced syntax is taken literally rather than refused.
    assert search(es_client, names, '"NATO (').total >= 1
    with pytest.raises(SearchError):
        search(es_client, names, "NATO", size=0)
    query = build_query("x", language="en", source="bbc")
    assert {"term": {"source": "bbc"}} in query["bool"]["filter"]


def test_a_missing_index_is_one_clear_error(es_client: Elasticsearch, index_prefix: str) -> None:
    with pytest.raises(SearchError, match="newsradar init"):
        search(es_client, IndexNames(index_prefix), "NATO")


# --- the command ------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, es_node: str, names: IndexNames) -> IndexNames:
    monkeypatch.setenv("NEWSRADAR_ES_URL", es_node)
    monkeypatch.setenv("NEWSRADAR_INDEX_PREFIX", names.prefix)
    return names


def test_cli_json_has_total_and_the_promised_hit_fields(
    cli_env: IndexNames, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "расширение НАТО", "--lang", "ru", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == 2
    hits = {hit["id"]: hit for hit in out["hits"]}
    assert set(hits) == {"ru-enlargement", "ru-copy"}
    promised = {"id", "url", "title", "language", "published", "source", "duplicate_of"}
    assert all(promised <= set(hit) for hit in hits.values())
    original = hits["ru-enlargement"]
    assert original["url"] == ARTICLES["ru-enlargement"]["url"]
    assert original["published"] == "2024-05-02T09:30:00Z"
    assert (original["language"], original["source"]) == ("ru", "ria")
    assert original["duplicate_of"] is None
    assert hits["ru-copy"]["duplicate_of"] == "ru-enlargement"


def test_cli_filters_by_source_and_since(
    cli_env: IndexNames, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "NATO", "--source", "bbc", "--since", "2024-05-01", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [hit["id"] for hit in out["hits"]] == ["en-budget"]


def test_cli_prints_a_table_with_highlights(
    cli_env: IndexNames, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["search", "enlargement vote"]) == 0
    out = capsys.readouterr().out
    assert "1 article match 'enlargement vote'" in out
    assert "Talks on enlarging NATO" in out
    assert "bbc" in out
    assert "2024-04-20 12:00" in out
    # Highlight markup becomes terminal styling; the article's own tags stay text.
    assert "<em>" not in out
    assert "<script>" in out


def test_cli_unreachable_elasticsearch_is_one_line_naming_the_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("NEWSRADAR_ES_URL", url)
    assert main(["search", "NATO"]) != 0
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("newsradar search: ")
    assert url in lines[0]
    assert "Connection refused" in lines[0]
    assert captured.out == ""


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["search", "NATO", "--since", "May 1st"], "--since"),
        (["search", "NATO", "--lang", "russian"], "--lang"),
    ],
)
def test_cli_bad_options_are_one_line(
    cli_env: IndexNames,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    fragment: str,
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert fragment in err[0]


def test_every_language_of_the_table_is_searched_through_its_own_analyser(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    names = IndexNames(index_prefix)
    install(es_client, index_prefix)
    polish = {
        "url": "https://pap.example/1",
        "source": "pap",
        "language": "pl",
        "published": "2024-05-02T09:30:00Z",
        "title": "Sejm o rozszerzeniu NATO",
        "text": "Posłowie poparli rozszerzenia sojuszu o kolejne państwa regionu.",
    }
    japanese = {
        "url": "https://nhk.example/2",
        "source": "nhk",
        "language": "ja",
        "published": "2024-05-02T10:30:00Z",
        "title": "スウェーデンがNATOに加わった",
        "text": "スウェーデンは長い中立の歴史を経て北大西洋条約機構に加わった。",
    }
    slovak = {
        "url": "https://sme.example/3",
        "source": "sme",
        "language": "sk",
        "published": "2024-05-02T11:30:00Z",
        "title": "Rozšírenie aliancie",
        "text": "Parlament schválil rozšírenia aliancie o dve severské krajiny.",
    }
    actions = [
        BulkAction(names.articles, key, _document(doc), op="create")
        for key, doc in {"pl": polish, "ja": japanese, "sk": slovak}.items()
    ]
    write(es_client, actions, names=names, stage="index", refresh=True)
    # Stempel: the query's rozszerzenie and the text's rozszerzeniu / rozszerzenia are one stem.
    assert ids(search(es_client, names, "rozszerzenie", language="pl").hits) == ["pl"]
    # Kuromoji: the dictionary form 加わる finds the past 加わった.
    assert ids(search(es_client, names, "加わる").hits) == ["ja"]
    # Slovak has no stemmer: folding finds the unaccented spelling, a prefix the inflection.
    assert ids(search(es_client, names, "rozsirenie").hits) == ["sk"]
    assert ids(search(es_client, names, "rozsiren*", language="sk").hits) == ["sk"]
