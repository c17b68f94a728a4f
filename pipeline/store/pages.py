"""Kept pages: each fetched article's raw bytes, compressed, so it can be re-extracted later.

Extraction improves (a newer trafilatura, a fixed charset rule); the web does not hold still.
Keeping the bytes as fetched lets ``reextract`` rebuild every article's text and metadata
without fetching anything again. Pages live in their own index, ``_id`` = the article id.
"""

from __future__ import annotations

import base64
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from elasticsearch import Elasticsearch, helpers

from pipeline.errors import PermanentError
from pipeline.net.fetch import FetchResult
from pipeline.normalise.page import NormalisedArticle, normalise_page
from pipeline.store.articles import article_document, parse_iso_utc
from pipeline.store.bulk import BulkAction, BulkReport, write
from pipeline.store.client import IndexNames

__all__ = [
    "KeptPage",
    "ReextractReport",
    "keep",
    "kept_pages",
    "reextract",
]

# Fields of the article that come from extraction; story and dedup fields are left alone.
_EXTRACTED: Final = frozenset(
    {
        "url",
        "canonical_url",
        "title",
        "text",
        "summary",
        "authors",
        "site_name",
        "lead_image",
        "published",
        "published_raw",
        "published_source",
        "updated",
        "language",
        "language_probability",
        "language_method",
        "word_count",
    }
)
_LANGUAGE_FIELD_PREFIXES: Final = ("title_", "text_")


@dataclass(frozen=True, slots=True)
class KeptPage:
    """One fetched article page as it came off the wire, with what normalisation was told."""

    article_id: str
    url: str  # as requested
    final_url: str
    source: str
    status: int
    headers: dict[str, str]  # only those extraction reads: content-type, content-language
    body: bytes
    fetched: datetime
    language_hint: str | None = None
    feed_title: str | None = None
    feed_published: str | None = None

    def document(self, *, run_id: str | None = None) -> dict[str, Any]:
        """The pages-index document (mappings/pages.json); the body zlib-compressed."""
        doc: dict[str, Any] = {
            "url": self.url,
            "final_url": self.final_url,
            "source": self.source,
            "status": self.status,
            "fetched": self.fetched.isoformat(),
            "body_bytes": len(self.body),
            # Level 1: on real pages a fifth bigger than level 6 at less than half the CPU
            # (2.7 against 6.5 ms a 340 KB page), and every crawled page pays it.
            "body": base64.b64encode(zlib.compress(self.body, 1)).decode("ascii"),
        }
        optional = {
            "content_type": self.headers.get("content-type"),
            "content_language": self.headers.get("content-language"),
            "language_hint": self.language_hint,
            "feed_title": self.feed_title,
            "feed_published": self.feed_published,
            "run_id": run_id,
        }
        doc.update({key: value for key, value in optional.items() if value is not None})
        return doc

    @classmethod
    def from_document(cls, article_id: str, doc: dict[str, Any]) -> KeptPage:
        """Rebuild a page from its stored document."""
        headers = {
            name: str(doc[key])
            for name, key in (
                ("content-type", "content_type"),
                ("content-language", "content_language"),
            )
            if doc.get(key)
        }
        return cls(
            article_id=article_id,
            url=str(doc["url"]),
            final_url=str(doc["final_url"]),
            source=str(doc["source"]),
            status=int(doc["status"]),
            headers=headers,
            body=zlib.decompress(base64.b64decode(doc["body"])),
            fetched=parse_iso_utc(str(doc["fetched"])),
            language_hint=doc.get("language_hint"),
            feed_title=doc.get("feed_title"),
            feed_published=doc.get("feed_published"),
        )

    def fetch_result(self) -> FetchResult:
        """The page as the fetcher would have returned it, for ``normalise_page``."""
        return FetchResult(
            url=self.final_url,
            requested_url=self.url,
            status=self.status,
            headers=dict(self.headers),
            body=self.body,
            not_modified=False,
            redirect_chain=(),
            elapsed=0.0,
        )


def keep(
    es: Elasticsearch, names: IndexNames, pages: Iterable[KeptPage], *, run_id: str | None = None
) -> BulkReport:
    """Store pages (overwriting an earlier fetch of the same article)."""
    actions = (
        BulkAction(names.pages, page.article_id, page.document(run_id=run_id)) for page in pages
    )
    return write(es, actions, names=names, stage="crawl", run_id=run_id)


def kept_pages(
    es: Elasticsearch, names: IndexNames, *, sources: Sequence[str] | None = None
) -> Iterator[KeptPage]:
    """Every kept page, optionally of some sources only, streamed with a scroll."""
    query: dict[str, Any] = {"terms": {"source": list(sources)}} if sources else {"match_all": {}}
    for hit in helpers.scan(es, index=names.pages, query={"query": query}, size=200):
        yield KeptPage.from_document(hit["_id"], hit["_source"])


@dataclass
class ReextractReport:
    """What ``reextract`` did: pages read, articles changed or unchanged, failures by reason."""

    pages: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: Counter[str] = field(default_factory=Counter)


def reextract(
    es: Elasticsearch,
    names: IndexNames,
    *,
    sources: Sequence[str] | None = None,
    batch: int = 200,
) -> ReextractReport:
    """Re-run extraction over kept pages and update the articles whose extraction changed.

    Only extracted fields are rewritten; story and duplicate fields stay as dedup set them,
    since the fingerprint of a changed text is recomputed but stories are not re-clustered.
    """
    report = ReextractReport()
    pending: list[tuple[KeptPage, NormalisedArticle]] = []
    for page in kept_pages(es, names, sources=sources):
        report.pages += 1
        try:
            article = normalise_page(
                page.fetch_result(),
                source=page.source,
                fetched_at=page.fetched,
                language_hint=page.language_hint,
                feed_title=page.feed_title,
                feed_published=page.feed_published,
            )
        except PermanentError as exc:
            report.failed[getattr(exc, "reason", type(exc).__name__)] += 1
            continue
        pending.append((page, article))
        if len(pending) >= batch:
            _update(es, names, pending, report)
            pending = []
    if pending:
        _update(es, names, pending, report)
    return report


def _update(
    es: Elasticsearch,
    names: IndexNames,
    pairs: Sequence[tuple[KeptPage, NormalisedArticle]],
    report: ReextractReport,
) -> None:
    stored = es.mget(index=names.articles, ids=[page.article_id for page, _ in pairs])
    current = {doc["_id"]: doc.get("_source") for doc in stored["docs"] if doc.get("found")}
    actions: list[BulkAction] = []
    for page, article in pairs:
        fresh = _extracted_fields(article_document(article, fetched=page.fetched))
        old = current.get(page.article_id)
        if old is None:  # the article was deleted since: nothing to bring up to date
            report.failed["article_missing"] += 1
            continue
        if _extracted_fields(old) == fresh:
            report.unchanged += 1
            continue
        # Fields the new extraction no longer has (a language pair, a lost date) are cleared.
        cleared = {key: None for key in _extracted_fields(old) if key not in fresh}
        actions.append(
            BulkAction(names.articles, page.article_id, {**cleared, **fresh}, op="update")
        )
    if actions:
        written = write(es, actions, names=names, stage="reextract")
        for outcome in written.outcomes.values():
            if outcome == "dead_lettered":
                report.failed["dead_lettered"] += 1
            else:
                report.updated += 1


def _extracted_fields(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value
        for key, value in doc.items()
        if value is not None and (key in _EXTRACTED or key.startswith(_LANGUAGE_FIELD_PREFIXES))
    }
