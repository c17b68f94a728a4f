"""From a fetched page to a normalised article: extract, canonical URL, language, fingerprint."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pipeline.dedup import DEFAULT_CONFIG, DedupConfig, Fingerprint, fingerprint
from pipeline.extract import ExtractedArticle, extract_article
from pipeline.fetch import FetchResult
from pipeline.language import LanguageResult, detect_language
from pipeline.urls import url_id

__all__ = ["NormalisedArticle", "normalise_page"]


@dataclass(frozen=True)
class NormalisedArticle:
    """Everything the indexer and dedup need about one page; ``id`` hashes the canonical URL."""

    id: str
    source: str
    article: ExtractedArticle
    language: LanguageResult
    fingerprint: Fingerprint


def normalise_page(
    result: FetchResult,
    *,
    source: str,
    fetched_at: datetime,
    language_hint: str | None = None,
    feed_title: str | None = None,
    feed_published: str | None = None,
    dedup: DedupConfig = DEFAULT_CONFIG,
) -> NormalisedArticle:
    """Normalise one fetched page, or raise a PermanentError saying why it yields no article.

    That is ExtractionError with the reason, or UnsupportedURL when the page's URL is unusable.
    """
    article = extract_article(
        result.body,
        result.url,
        content_type=result.content_type,
        content_language=result.headers.get("content-language"),
        feed_title=feed_title,
        feed_published=feed_published,
        fetched_at=fetched_at,
    )
    # The page's own declaration beats the source's configured language as a fallback.
    language = detect_language(
        article.title, article.text, hint=article.language_hint or language_hint
    )
    return NormalisedArticle(
        id=url_id(article.canonical_url),
        source=source,
        article=article,
        language=language,
        fingerprint=fingerprint(
            article.text, num_perm=dedup.num_perm, bands=dedup.bands, rows=dedup.rows
        ),
    )
