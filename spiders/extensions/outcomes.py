"""The outcome ledger: each requested URL's one outcome, written as a JSON line as it happens."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from scrapy import Request, signals
from scrapy.exceptions import NotConfigured
from twisted.python.failure import Failure

from pipeline.crawl.process import CrawlOutcome
from spiders.items import CANDIDATE_META, FetchedPage, NormalisedPage

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class OutcomeLedger:
    """Records outcomes from every place a URL can end, to OUTCOMES_FILE (JSON lines).

    - an item that came through the item pipelines: the CrawlOutcome itself;
    - an item an item pipeline raised on: ``error`` (and the crawl fails);
    - an item an item pipeline dropped: ``dropped``;
    - a request the scheduler's dupe filter dropped: ``duplicate_url``, which Scrapy would
      only count (scrapy #1225).

    A second outcome for a URL is logged as an error: it means a component answered twice.
    Each line is flushed at once, so a crawl that is killed still leaves what it finished.
    """

    def __init__(self, crawler: Crawler, path: Path) -> None:
        self.crawler = crawler
        self.path = path
        self._out: IO[str] | None = None
        self._recorded: dict[str, str] = {}
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.item_error, signal=signals.item_error)
        crawler.signals.connect(self.item_dropped, signal=signals.item_dropped)
        crawler.signals.connect(self.request_dropped, signal=signals.request_dropped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Scrapy's constructor: the ledger on OUTCOMES_FILE, or NotConfigured without one."""
        path = crawler.settings.get("OUTCOMES_FILE")
        if not path:
            raise NotConfigured("OUTCOMES_FILE is not set")
        return cls(crawler, Path(path))

    def spider_opened(self) -> None:
        """Open OUTCOMES_FILE (signal handler)."""
        self._out = self.path.open("w", encoding="utf-8")

    def spider_closed(self) -> None:
        """Close OUTCOMES_FILE (signal handler)."""
        if self._out is not None:
            self._out.close()
            self._out = None

    def record(self, outcome: CrawlOutcome) -> None:
        """Write one URL's outcome; refuse a second one for the same URL."""
        first = self._recorded.get(outcome.url)
        if first is not None:
            self.crawler.stats.inc_value("newsradar/outcome_conflicts")
            logger.error(
                "Second outcome %s for %s (already %s)", outcome.outcome, outcome.url, first
            )
            return
        assert self._out is not None, "the ledger records only while the spider is open"
        self._recorded[outcome.url] = outcome.outcome
        self._out.write(outcome.to_json() + "\n")
        self._out.flush()
        self.crawler.stats.inc_value(f"newsradar/outcome/{outcome.outcome}")
        logger.debug("%s: %s", outcome.url, outcome.outcome)

    def item_scraped(self, item: Any) -> None:
        """Record an item that came through the item pipelines (signal handler)."""
        if isinstance(item, CrawlOutcome):
            self.record(item)
            return
        # Nothing turned it into an outcome: a pipeline is missing from ITEM_PIPELINES.
        logger.error("An item reached the end of the item pipelines unrecorded: %r", item)
        url, source = _origin(item)
        if url is not None:
            self.record(CrawlOutcome(url, source, "error", detail=f"unrecorded item {item!r}"))

    def item_error(self, item: Any, failure: Failure) -> None:
        """Record an item an item pipeline raised on as ``error`` (signal handler)."""
        self.crawler.stats.inc_value("newsradar/item_errors")
        url, source = _origin(item)
        if url is None:
            return
        was = f" (was {item.outcome})" if isinstance(item, CrawlOutcome) else ""
        detail = f"item pipeline failed{was}: {failure.value!r}"
        self.record(CrawlOutcome(url, source, "error", detail=detail[:500]))

    def item_dropped(self, item: Any, exception: BaseException) -> None:
        """Record an item an item pipeline dropped as ``dropped`` (signal handler)."""
        url, source = _origin(item)
        if url is not None:
            self.record(CrawlOutcome(url, source, "dropped", detail=str(exception)[:500]))

    def request_dropped(self, request: Request) -> None:
        """Record a candidate the dupe filter dropped as ``duplicate_url`` (signal handler)."""
        candidate = request.meta.get(CANDIDATE_META)
        if candidate is None:
            return
        self.record(
            CrawlOutcome(
                candidate.url,
                candidate.source,
                "duplicate_url",
                final_url=request.url,
                detail="the dupe filter dropped it: same request as one made earlier",
            )
        )


def _origin(item: Any) -> tuple[str | None, str]:
    if isinstance(item, CrawlOutcome | FetchedPage | NormalisedPage):
        return item.url, item.source
    return None, ""
