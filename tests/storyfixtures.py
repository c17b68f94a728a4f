"""What the story tests share: articles as normalisation hands them over, and their indices."""

from __future__ import annotations

from datetime import datetime

from elasticsearch import Elasticsearch

from pipeline.net.urls import url_id
from pipeline.normalise.events import signature
from pipeline.normalise.extract import ExtractedArticle
from pipeline.normalise.fingerprint import fingerprint
from pipeline.normalise.language import LanguageResult
from pipeline.normalise.page import NormalisedArticle
from pipeline.store.client import IndexNames, load_template


def normalised(
    url: str,
    source: str,
    *,
    title: str,
    text: str,
    language: str,
    published: datetime,
    from_page: bool = True,
) -> NormalisedArticle:
    """An article as normalise_page would hand it over; published by the page or at fetch time."""
    extracted = ExtractedArticle(
        url=url,
        canonical_url=url,
        title=title,
        text=text,
        description=None,
        authors=(),
        published=published,
        published_raw=published.isoformat() if from_page else None,
        published_source="page" if from_page else "fetched",
        updated=None,
        site_name=source,
        lead_image=None,
        language_hint=language if from_page else None,
        encoding="utf-8",
        mojibake_repaired=False,
    )
    return NormalisedArticle(
        id=url_id(url),
        source=source,
        article=extracted,
        language=LanguageResult(language, 0.99, "detected"),
        fingerprint=fingerprint(text),
        event=signature(title, text, language),
    )


def story_indices(es: Elasticsearch, prefix: str) -> IndexNames:
    """The articles and stories indices under ``prefix``, as ``install`` makes them.

    Only these two: installing every index costs seconds of cluster-state updates per test.
    """
    names = IndexNames(prefix)
    for name in ("articles", "stories"):
        template = load_template(name, prefix)["template"]
        es.indices.create(
            index=names.first_index(name),
            aliases={names.alias(name): {"is_write_index": True}},
            settings=template["settings"],
            mappings=template["mappings"],
        )
    return names
