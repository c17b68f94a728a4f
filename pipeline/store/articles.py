"""The article document: a NormalisedArticle as the articles mapping stores it."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from pipeline.normalise.dates import as_utc
from pipeline.normalise.events import EventSignature, signature
from pipeline.store.client import LANGUAGE_FIELDS

if TYPE_CHECKING:
    # Only a type here: importing pipeline.normalise.page pulls in the extractor (trafilatura).
    from pipeline.normalise.page import NormalisedArticle

__all__ = [
    "STORY_FIELDS",
    "article_document",
    "event_of",
    "iso_utc",
    "parse_iso_utc",
    "word_count",
]

# Filled by dedup (pipeline.store.stories), never by article_document: a document written without
# them is an article whose story is not decided yet.
STORY_FIELDS: Final = (
    "story_id",
    "story_relation",
    "duplicate_of",
    "duplicate_kind",
    "similarity",
    "related_to",
    "event_score",
)

# Ideographs and kana are words of their own: Chinese and Japanese have no spaces to count.
_CJK: Final = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD_RE: Final = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")


def iso_utc(value: datetime) -> str:
    """ISO 8601 in UTC to the millisecond, e.g. ``2024-05-01T12:00:00.000Z``.

    Milliseconds because that is what an Elasticsearch date keeps: a value read back from
    ``_source`` then orders exactly like the indexed one. A naive value is taken to be UTC.
    """
    return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(value: str) -> datetime:
    """The aware UTC datetime of an ISO 8601 string as written by ``iso_utc`` (or similar)."""
    return as_utc(datetime.fromisoformat(value))


def word_count(text: str) -> int:
    """Words in ``text``; each ideograph or kana counts as one."""
    return len(_WORD_RE.findall(text))


def event_of(n: NormalisedArticle) -> EventSignature:
    """The article's same-event evidence: as normalisation found it, or found now."""
    if n.event is not None:
        return n.event
    return signature(n.article.title, n.article.text, n.language.language)


def article_document(
    n: NormalisedArticle,
    *,
    fetched: datetime,
    country: str | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """The articles-index document for ``n`` (its ``_id`` is ``n.id``), without story fields.

    title/text are always filled; title_xx/text_xx only when the language is one of
    LANGUAGE_FIELDS. Absent values are left out rather than written as null, so a partial
    update never has to tell "unknown" from "cleared".
    """
    article = n.article
    language = n.language.language
    document: dict[str, Any] = {
        "url": article.url,
        "canonical_url": article.canonical_url,
        "source": n.source,
        "country": country,
        "site_name": article.site_name,
        "title": article.title,
        "text": article.text,
        "summary": article.description,
        "authors": list(article.authors),
        "lead_image": article.lead_image,
        "published": iso_utc(article.published),
        "published_raw": article.published_raw,
        "published_source": article.published_source,
        "updated": iso_utc(article.updated) if article.updated is not None else None,
        "fetched": iso_utc(fetched),
        "indexed": iso_utc(datetime.now(UTC)),
        "language": language,
        "language_probability": n.language.probability,
        "language_method": n.language.method,
        "word_count": word_count(article.text),
        "run_id": run_id,
        # Cleared by pipeline.alerts.match.match_pending once every rule has run on the article: a
        # stored mark, so a worker dying before or during matching loses no alert.
        "match_pending": True,
        **n.fingerprint.to_document(),
        **event_of(n).document(),
    }
    if language in LANGUAGE_FIELDS:
        document[f"title_{language}"] = article.title
        document[f"text_{language}"] = article.text
    return {key: value for key, value in document.items() if value is not None}
