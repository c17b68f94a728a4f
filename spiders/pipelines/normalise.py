"""Item pipeline: a fetched page becomes a normalised article's outcome, or the reason it is not."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any, Self

from pipeline.crawl import CrawlOutcome
from pipeline.dedup import DEFAULT_CONFIG, fingerprint
from pipeline.errors import PermanentError, UrlFailure
from pipeline.language import detect_language
from pipeline.normalise import normalise_page
from pipeline.urls import UnsupportedURL
from spiders.items import FetchedPage, NormalisedPage

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

_WARM_UP = "The harbour authority said on Tuesday that the new terminal will open in spring."


class NormalisePipeline:
    """Calls pipeline.normalise.normalise_page on each FetchedPage; other items pass through.

    No dedup verdict here: that needs the index. The outcome carries what dedup will need,
    the content hash and the MinHash band keys.

    A PermanentError is the page's outcome; any other exception is a bug, and it fails the
    item (outcome ``error``) and so the crawl.
    """

    def __init__(self, *, index: bool = False, workers: int = 0) -> None:
        self.index = index
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        # With indexing on, the article travels on to IndexPipeline; else its outcome is final.
        return cls(
            index=crawler.settings.getbool("NEWSRADAR_INDEX"),
            workers=crawler.settings.getint("NORMALISE_WORKERS", 0),
        )

    def open_spider(self) -> None:
        """Load the language model and the MinHash permutations before the first download.

        With ``workers`` > 0, pages are normalised in that many worker processes: extraction
        is CPU-bound and would otherwise hold the reactor thread (and the GIL) for every page.
        """
        # They load on first use (~3 s together); done mid-crawl, that would stall the
        # reactor while responses and retry timers wait.
        if self.workers <= 0:
            _warm_up()
            return
        # Spawned, not forked: the crawl process already runs threads.
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_warm_up,
        )
        for ready in [self._pool.submit(_ready) for _ in range(self.workers)]:
            ready.result()

    def close_spider(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    async def process_item(self, item: Any) -> Any:
        """A CrawlOutcome for a FetchedPage; anything else unchanged."""
        if not isinstance(item, FetchedPage):
            return item
        result = item.result
        candidate = item.candidate
        options: dict[str, Any] = {
            "source": candidate.source,
            "fetched_at": item.fetched_at,
            "language_hint": item.language_hint,
            "feed_title": candidate.title,
            "feed_published": candidate.published_raw,
        }
        try:
            if self._pool is None:
                article = normalise_page(result, **options)
            else:
                job = self._pool.submit(normalise_page, result, **options)
                article = await asyncio.wrap_future(job)
        except PermanentError as exc:
            # One unusable page is that page's outcome, never the whole crawl's failure.
            reason, detail = _reason(exc)
            logger.debug("%s: %s (%s)", candidate.url, reason, detail)
            return CrawlOutcome(
                url=candidate.url,
                source=candidate.source,
                outcome=reason,
                status=result.status,
                final_url=result.url,
                detail=detail,
            )
        outcome = CrawlOutcome(
            url=candidate.url,
            source=candidate.source,
            outcome="normalised",
            status=result.status,
            final_url=result.url,
            article_id=article.id,
            canonical_url=article.article.canonical_url,
            title=article.article.title,
            language=article.language.language,
            content_hash=article.fingerprint.content_hash,
            band_keys=article.fingerprint.band_keys,
            minhash=str(article.fingerprint.to_document()["minhash"]),
            num_perm=article.fingerprint.num_perm,
        )
        if self.index:
            return NormalisedPage(page=item, article=article, outcome=outcome)
        return outcome


def _warm_up() -> None:
    detect_language("", _WARM_UP)
    fingerprint(
        _WARM_UP,
        num_perm=DEFAULT_CONFIG.num_perm,
        bands=DEFAULT_CONFIG.bands,
        rows=DEFAULT_CONFIG.rows,
    )


def _ready() -> bool:
    return True


def _reason(exc: PermanentError) -> tuple[str, str]:
    """The outcome and detail for a page that normalise_page refused."""
    if isinstance(exc, UrlFailure):  # ExtractionError among them: the reason is named
        return exc.reason, exc.detail
    if isinstance(exc, UnsupportedURL):  # the final URL, after redirects, is unusable
        return "bad_url", exc.problem
    return "extract_failed", f"{type(exc).__name__}: {exc}"[:500]
