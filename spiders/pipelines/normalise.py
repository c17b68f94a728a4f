"""Item pipeline: a fetched page becomes a normalised article's outcome, or the reason it is not."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Self

from pipeline.crawl.process import CrawlOutcome
from pipeline.errors import PermanentError, UrlFailure
from pipeline.net.urls import UnsupportedURL
from pipeline.normalise.page import DEFAULT_EXTRACT_TIMEOUT, ExtractionPool
from spiders.items import FetchedPage, NormalisedPage

if TYPE_CHECKING:
    from concurrent.futures import Future

    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)


class NormalisePipeline:
    """Calls pipeline.normalise.page.normalise_page on each FetchedPage; other items pass through.

    Pages are normalised in ``workers`` processes (pipeline.normalise.page.ExtractionPool), never on
    the reactor thread: extraction is CPU-bound, and one pathological page would otherwise
    stall the whole crawl. Each page gets ``budget`` seconds of CPU; a page over it is the
    outcome ``extract_timeout``, its worker is replaced, and the crawl goes on.

    No dedup verdict here: that needs the index. The outcome carries what dedup will need,
    the content hash and the MinHash band keys.

    A PermanentError is the page's outcome; any other exception is a bug, and it fails the
    item (outcome ``error``) and so the crawl.

    With ``stats``, the crawl's stats add up the workers' CPU seconds per step
    (``newsradar/cpu/extract``, ``language``, ``fingerprint``, ``event``) and record this
    process's own CPU seconds when the spider opens (``newsradar/cpu/crawl_start``: its
    start-up, imports included).
    """

    def __init__(
        self,
        *,
        index: bool = False,
        workers: int = 1,
        budget: float = DEFAULT_EXTRACT_TIMEOUT,
        stats: StatsCollector | None = None,
    ) -> None:
        self.index = index
        self.workers = workers
        self.budget = budget
        self.stats = stats
        self.cpu: defaultdict[str, float] = defaultdict(float)  # the workers' seconds, by step
        self._pool: ExtractionPool | None = None
        self._started: Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Scrapy's constructor: the pipeline configured from the crawl's settings."""
        # With indexing on, the article travels on to IndexPipeline; else its outcome is final.
        return cls(
            index=crawler.settings.getbool("NEWSRADAR_INDEX"),
            workers=crawler.settings.getint("NORMALISE_WORKERS", 1),
            budget=crawler.settings.getfloat("EXTRACT_TIMEOUT", DEFAULT_EXTRACT_TIMEOUT),
            stats=crawler.stats,
        )

    def open_spider(self) -> None:
        """Start the workers; the first downloads go out while they load the models."""
        if self.stats is not None:
            self.stats.set_value("newsradar/cpu/crawl_start", time.process_time())
        self._pool = ExtractionPool(self.workers, self.budget)
        self._started = self._pool.start()

    def close_spider(self) -> None:
        """Stop the workers."""
        if self.stats is not None:
            for key, seconds in self.cpu.items():
                self.stats.set_value(key, seconds)
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    async def process_item(self, item: Any) -> Any:
        """A CrawlOutcome for a FetchedPage; anything else unchanged."""
        if not isinstance(item, FetchedPage):
            return item
        if self._pool is None or self._started is None:
            raise RuntimeError("NormalisePipeline.process_item before open_spider")
        result = item.result
        candidate = item.candidate
        try:
            # Not on the reactor thread: submitting before the workers are up would block.
            await asyncio.wrap_future(self._started)
            article = await asyncio.wrap_future(
                self._pool.submit(
                    result,
                    source=candidate.source,
                    fetched_at=item.fetched_at,
                    language_hint=item.language_hint,
                    feed_title=candidate.title,
                    feed_published=candidate.published_raw,
                )
            )
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
        for step, seconds in article.cpu:
            self.cpu[f"newsradar/cpu/{step}"] += seconds
        if self.index:
            return NormalisedPage(page=item, article=article, outcome=outcome)
        return outcome


def _reason(exc: PermanentError) -> tuple[str, str]:
    """The outcome and detail for a page that normalise_page refused."""
    if isinstance(exc, UrlFailure):  # ExtractionError among them: the reason is named
        return exc.reason, exc.detail
    if isinstance(exc, UnsupportedURL):  # the final URL, after redirects, is unusable
        return "bad_url", exc.problem
    return "extract_failed", f"{type(exc).__name__}: {exc}"[:500]
