"""Tests for pipeline.store.articles: the article document, checked against the real mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from elasticsearch import Elasticsearch

from pipeline.net.urls import url_id
from pipeline.normalise.extract import ExtractedArticle
from pipeline.normalise.fingerprint import Fingerprint, fingerprint
from pipeline.normalise.language import LanguageResult
from pipeline.normalise.page import NormalisedArticle
from pipeline.store.articles import (
    STORY_FIELDS,
    article_document,
    iso_utc,
    parse_iso_utc,
    word_count,
)
from pipeline.store.client import LANGUAGE_FIELDS, IndexNames, install

PARIS = timezone(timedelta(hours=2))


def _article(language: str, *, updated: datetime | None = None) -> NormalisedArticle:
    url = "https://news.example/2024/05/01/rates"
    text = "La banque centrale maintient ses taux.\n\nL'inflation ralentit à 3,5 %."
    extracted = ExtractedArticle(
        url=url + "?utm_source=feed",
        canonical_url=url,
        title="La banque centrale maintient ses taux",
        text=text,
        description="Les taux restent inchangés.",
        authors=("Anna Keller", "Marek Novak"),
        published=datetime(2024, 5, 1, 10, 30, tzinfo=PARIS),
        published_raw="2024-05-01T10:30:00+02:00",
        published_source="page",
        updated=updated,
        site_name="News Example",
        lead_image=None,
        language_hint="fr",
        encoding="utf-8",
        mojibake_repaired=False,
    )
    return NormalisedArticle(
        id=url_id(url),
        source="news.example",
        article=extracted,
        language=LanguageResult(language, 0.97, "detected"),
        fingerprint=fingerprint(text),
    )


FETCHED = datetime(2024, 5, 1, 9, 0, 0, 123456, tzinfo=UTC)


def test_document_has_the_language_pair_and_utc_dates() -> None:
    document = article_document(_article("fr"), fetched=FETCHED, country="FR", run_id="r1")
    assert document["title"] == document["title_fr"] == "La banque centrale maintient ses taux"
    assert document["text"] == document["text_fr"]
    for other in LANGUAGE_FIELDS:
        if other != "fr":
            assert f"title_{other}" not in document and f"text_{other}" not in document
    assert document["published"] == "2024-05-01T08:30:00.000Z"  # 10:30 in Paris is 08:30 UTC
    assert document["fetched"] == "2024-05-01T09:00:00.123Z"
    assert document["published_raw"] == "2024-05-01T10:30:00+02:00"
    assert document["language"] == "fr" and document["language_method"] == "detected"
    assert document["country"] == "FR" and document["run_id"] == "r1"
    assert document["source"] == "news.example"
    assert document["canonical_url"] == "https://news.example/2024/05/01/rates"
    assert document["url"].endswith("?utm_source=feed")
    assert document["authors"] == ["Anna Keller", "Marek Novak"]
    assert document["word_count"] == 12


def test_document_carries_the_fingerprint_and_no_story_fields() -> None:
    article = _article("fr")
    document = article_document(article, fetched=FETCHED)
    assert Fingerprint.from_document(document) == article.fingerprint
    assert len(document["band_keys"]) == 42
    assert not set(STORY_FIELDS) & set(document)


def test_unknown_language_fills_only_the_standard_fields_and_leaves_out_absent_values() -> None:
    document = article_document(_article("und"), fetched=FETCHED)
    assert not [key for key in document if key.startswith(("title_", "text_"))]
    for absent in ("country", "run_id", "updated", "lead_image"):
        assert absent not in document
    assert None not in document.values()


def test_iso_utc_round_trip_keeps_milliseconds() -> None:
    naive = datetime(2024, 1, 2, 3, 4, 5, 678999)
    assert iso_utc(naive) == "2024-01-02T03:04:05.678Z"
    assert parse_iso_utc(iso_utc(naive)) == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    assert parse_iso_utc("2024-01-02T05:04:05+02:00") == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_word_count_counts_ideographs_one_by_one() -> None:
    assert word_count("Central bank, 3.5% — unchanged!") == 5
    assert word_count("中央银行 rates") == 5


def test_the_strict_mapping_accepts_the_document(
    es_client: Elasticsearch, index_prefix: str
) -> None:
    install(es_client, index_prefix)
    names = IndexNames(index_prefix)
    article = _article("fr", updated=datetime(2024, 5, 1, 12, 0, tzinfo=UTC))
    document = article_document(article, fetched=FETCHED, country="FR", run_id="r1")
    es_client.create(index=names.articles, id=article.id, document=document, refresh=True)
    # The French analyser strips the elision in "L'inflation"; the standard one does not.
    for field, hits in (("text_fr", 1), ("text", 0)):
        found = es_client.search(index=names.articles, query={"match": {field: "inflation"}})
        assert found["hits"]["total"]["value"] == hits, field
    found = es_client.search(
        index=names.articles, query={"range": {"published": {"lt": "2024-05-01T09:00:00Z"}}}
    )
    assert [hit["_id"] for hit in found["hits"]["hits"]] == [article.id]
