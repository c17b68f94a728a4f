"""Retries for transient failures only (5xx, 429, network errors), with backoff and Retry-After."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.retry import get_retry_request
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import sleep
from scrapy.utils.misc import load_object
from scrapy.utils.response import response_status_message

from pipeline.net.fetch import parse_retry_after

if TYPE_CHECKING:
    from typing import Self

    from scrapy import Request
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)


class RetryMiddleware:
    """Replaces Scrapy's RetryMiddleware, which retries at once and ignores Retry-After.

    A retry waits ``Retry-After`` when the server sent one, else RETRY_BACKOFF seconds,
    doubling per attempt; the host's download slot is slowed down as much, so the other
    requests to that host back off too. A Retry-After longer than RETRY_AFTER_MAX ends the
    request now: its outcome carries the wait, for whoever schedules the URL again.
    Only RETRY_HTTP_CODES and RETRY_EXCEPTIONS are retried; a 4xx other than 429 never is.
    """

    def __init__(self, crawler: Crawler) -> None:
        settings = crawler.settings
        if not settings.getbool("RETRY_ENABLED"):
            raise NotConfigured
        self.crawler = crawler
        self.max_retry_times = settings.getint("RETRY_TIMES")
        self.retry_http_codes = frozenset(
            int(code) for code in settings.getlist("RETRY_HTTP_CODES")
        )
        self.exceptions: tuple[type[BaseException], ...] = tuple(
            load_object(name) for name in settings.getlist("RETRY_EXCEPTIONS")
        )
        self.backoff = settings.getfloat("RETRY_BACKOFF")
        self.retry_after_max = settings.getfloat("RETRY_AFTER_MAX")
        self.give_up_log_level = settings["RETRY_GIVE_UP_LOG_LEVEL"]

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Scrapy's constructor."""
        return cls(crawler)

    async def process_response(self, request: Request, response: Response) -> Request | Response:
        """Retry a transient status after the wait it asks for; otherwise pass it on."""
        if request.meta.get("dont_retry") or response.status not in self.retry_http_codes:
            return response
        header = response.headers.get("Retry-After")
        wait = parse_retry_after(
            header.decode("latin-1") if header else None, now=datetime.now(UTC)
        )
        if wait is not None and wait > self.retry_after_max:
            self.crawler.stats.inc_value("retry/retry_after_too_long")
            logger.info("Not retrying %s: Retry-After %.0f s is too long", request, wait)
            return response
        retry = self._retry(request, response_status_message(response.status))
        if retry is None:
            return response
        await self._wait(retry, wait)
        return retry

    async def process_exception(self, request: Request, exception: Exception) -> Request | None:
        """Retry a transient network error after a backoff; otherwise let it propagate."""
        if request.meta.get("dont_retry") or not isinstance(exception, self.exceptions):
            return None
        retry = self._retry(request, exception)
        if retry is not None:
            await self._wait(retry, None)
        return retry

    def _retry(self, request: Request, reason: str | Exception) -> Request | None:
        assert self.crawler.spider is not None
        return get_retry_request(
            request,
            spider=self.crawler.spider,
            reason=reason,
            max_retry_times=request.meta.get("max_retry_times", self.max_retry_times),
            give_up_log_level=self.give_up_log_level,
        )

    async def _wait(self, retry: Request, retry_after: float | None) -> None:
        attempt = int(retry.meta.get("retry_times", 1))
        delay = retry_after if retry_after is not None else self.backoff * 2 ** (attempt - 1)
        if delay <= 0:
            return
        slot = self.crawler.engine.downloader.slots.get(retry.meta.get("download_slot", ""))
        if slot is not None and slot.delay < delay:
            # AutoThrottle brings the delay back down as the host answers again.
            slot.delay = delay
        await sleep(delay)
