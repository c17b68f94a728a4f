"""Item pipeline: normalised articles are deduplicated into stories and indexed, in batches.

Elasticsearch round trips are batched (one dedup lookup and one bulk per batch, not per page)
and run in a worker thread, so the reactor keeps downloading while a batch is written. Each
page's item waits for its batch; its outcome is then ``indexed`` (a new story) or
``duplicate`` (a copy of an earlier article, or a URL indexed before). When a batch cannot
be written, every page in it fails its item, which fails the crawl: the frontier keeps those
URLs for the next run.

The crawl's stats get what indexing cost (RequestMeter): CPU and clock seconds of keeping
the pages and of the stories step, and the Elasticsearch requests each made, per API.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

from pipeline.crawl.process import CrawlOutcome
from pipeline.normalise.events import DEFAULT_EVENT_CONFIG, EventConfig
from pipeline.settings import Settings
from pipeline.store.client import IndexNames, connect
from pipeline.store.pages import KeptPage, keep
from pipeline.store.stories import StoryDecision, event_config, ingest
from spiders.items import NormalisedPage

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)

_KEPT_HEADERS = ("content-type", "content-language")
_ROLLOVER_SUFFIX = re.compile(r"-\d+$")


class RequestMeter:
    """CPU and clock seconds per step, and the Elasticsearch requests made in each, per API.

    ``watch`` wraps a client's transport, which every API call (and every ``es.options``
    copy of the client) goes through. The totals are stats keys: ``newsradar/cpu/<step>``
    and ``newsradar/wall/<step>`` (seconds), and ``newsradar/es/<step>/<api>/requests``,
    ``.../wall`` and ``.../cpu`` with ``<api>`` like ``articles:_search`` (the index without
    the prefix, then the endpoint). Four clock reads per step and per request: microseconds
    against the milliseconds a round trip takes. One thread at a time may use it.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.step = "other"
        self.totals: defaultdict[str, float] = defaultdict(float)

    def watch(self, es: Elasticsearch) -> None:
        """Count every request ``es`` makes from now on under the current step."""
        transport = es.transport
        send = transport.perform_request

        def timed(method: str, target: str, **options: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return send(method, target, **options)
            finally:
                key = f"newsradar/es/{self.step}/{self.api(target)}"
                self.totals[f"{key}/requests"] += 1
                self.totals[f"{key}/wall"] += time.perf_counter() - wall
                self.totals[f"{key}/cpu"] += time.thread_time() - cpu

        # On the instance: the client and its option copies share this one transport.
        transport.perform_request = timed  # type: ignore[method-assign]

    def api(self, target: str) -> str:
        """The request's API: ``articles:_search`` for ``/<prefix>-articles-000001/_search``."""
        parts = target.split("?", 1)[0].strip("/").split("/")
        endpoint = next((part for part in parts if part.startswith("_")), "_root")
        if not parts[0] or parts[0].startswith("_"):
            return endpoint
        indices = (
            _ROLLOVER_SUFFIX.sub("", i.removeprefix(f"{self.prefix}-")) for i in parts[0].split(",")
        )
        return f"{','.join(indices)}:{endpoint}"

    @contextmanager
    def measure(self, step: str) -> Iterator[None]:
        """Add the block's CPU (this thread's) and clock seconds, and its requests, to ``step``."""
        self.step = step
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.totals[f"newsradar/wall/{step}"] += time.perf_counter() - wall
            self.totals[f"newsradar/cpu/{step}"] += time.thread_time() - cpu
            self.step = "other"


class IndexPipeline:
    """Turns NormalisedPage items into final CrawlOutcomes by indexing their articles."""

    def __init__(
        self,
        es: Elasticsearch,
        names: IndexNames,
        *,
        run_id: str | None,
        countries: dict[str, str | None],
        batch_size: int = 100,
        linger: float = 0.5,
        events: EventConfig = DEFAULT_EVENT_CONFIG,
        stats: StatsCollector | None = None,
    ) -> None:
        self.es = es
        self.events = events
        self.stats = stats
        self.meter = RequestMeter(names.prefix)
        self.meter.watch(es)
        self.names = names
        self.run_id = run_id
        self.countries = countries
        self.batch_size = batch_size
        self.linger = linger  # seconds a partial batch waits for company
        self._pending: list[tuple[NormalisedPage, asyncio.Future[CrawlOutcome]]] = []
        self.max_batch = max(batch_size, 500)
        self._timer: asyncio.TimerHandle | None = None
        self._writer: asyncio.Future[None] | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Scrapy's constructor: the pipeline with a client and the crawl's settings."""
        # The caller's settings, read from the job file by spiders.run.
        settings: Settings = crawler.settings["NEWSRADAR_SETTINGS"]
        return cls(
            connect(settings),
            settings.names,
            run_id=crawler.settings.get("NEWSRADAR_RUN_ID"),
            countries=dict(crawler.settings.getdict("NEWSRADAR_COUNTRIES")),
            batch_size=crawler.settings.getint("NEWSRADAR_INDEX_BATCH", 100),
            events=event_config(settings),
            stats=crawler.stats,
        )

    async def process_item(self, item: Any) -> Any:
        """The item's final outcome once its batch is written; other items pass through."""
        if not isinstance(item, NormalisedPage):
            return item
        future: asyncio.Future[CrawlOutcome] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._writer is not None and not self._writer.done():
            pass  # the running writer takes it with its next batch
        elif len(self._pending) >= self.batch_size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.linger, self._flush)
        return await future

    async def close_spider(self) -> None:
        """Write what is still waiting, then close the client."""
        self._flush()
        while self._writer is not None and not self._writer.done():
            await asyncio.wait({self._writer})
            self._flush()
        self.es.close()
        if self.stats is not None:
            for key, value in self.meter.totals.items():
                self.stats.set_value(key, value)

    def _flush(self) -> None:
        """Start the writer unless it runs already (it drains everything pending)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._pending and (self._writer is None or self._writer.done()):
            self._writer = asyncio.ensure_future(self._drain())

    async def _drain(self) -> None:
        # One batch at a time, each taking all that arrived while the last was written: a
        # write costs a few round trips whatever its size, so batches grow under load.
        while self._pending:
            batch = self._pending[: self.max_batch]
            self._pending = self._pending[self.max_batch :]
            try:
                outcomes = await asyncio.to_thread(self._index, [item for item, _ in batch])
            except Exception as exc:  # every page of the batch fails: none is indexed for sure
                logger.error("Indexing a batch of %d articles failed: %r", len(batch), exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)

    def _index(self, items: list[NormalisedPage]) -> list[CrawlOutcome]:
        """Runs in a worker thread: keep the pages, then dedup and index the articles."""
        now = datetime.now(UTC)
        started = time.monotonic()
        with self.meter.measure("keep"):
            keep(self.es, self.names, (_kept(item) for item in items), run_id=self.run_id)
        kept = time.monotonic()
        by_country: dict[str | None, list[int]] = defaultdict(list)
        for position, item in enumerate(items):
            by_country[self.countries.get(item.source)].append(position)
        decisions: dict[int, StoryDecision] = {}
        with self.meter.measure("stories"):
            for country, positions in by_country.items():
                made = ingest(
                    self.es,
                    self.names,
                    [items[p].article for p in positions],
                    fetched=now,
                    events=self.events,
                    country=country,
                    run_id=self.run_id,
                )
                decisions.update(zip(positions, made, strict=True))
        self.meter.totals["newsradar/index/batches"] += 1
        logger.info(
            "Indexed %d articles: pages kept in %.2f s, stories and articles in %.2f s",
            len(items),
            kept - started,
            time.monotonic() - kept,
        )
        return [_final(item.outcome, decisions[p]) for p, item in enumerate(items)]


def _kept(item: NormalisedPage) -> KeptPage:
    result = item.page.result
    candidate = item.page.candidate
    return KeptPage(
        article_id=item.article.id,
        url=candidate.link,
        final_url=result.url,
        source=candidate.source,
        status=result.status,
        headers={k: v for k in _KEPT_HEADERS if (v := result.headers.get(k)) is not None},
        body=result.body,
        fetched=item.page.fetched_at,
        language_hint=item.page.language_hint,
        feed_title=candidate.title,
        feed_published=candidate.published_raw,
    )


def _final(outcome: CrawlOutcome, decision: StoryDecision) -> CrawlOutcome:
    if decision.kind == "new":
        return replace(outcome, outcome="indexed", story_id=decision.story_id)
    if decision.kind == "same_event":  # a report of its own, in another report's story
        return replace(outcome, outcome="indexed", story_id=decision.story_id, detail="same_event")
    return replace(
        outcome,
        outcome="duplicate",
        story_id=decision.story_id,
        duplicate_of=decision.duplicate_of,
        detail=decision.kind,
    )
