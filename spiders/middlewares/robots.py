"""robots.txt per RFC 9309: rules on 2xx, allow all on 4xx, stay away on 5xx or no answer."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy import Request
from scrapy.http.request import NO_CALLBACK
from scrapy.utils.httpobj import urlparse_cached
from scrapy.utils.misc import build_from_crawler, load_object

from pipeline.net.fetch import status_reason
from spiders.exceptions import Ignored
from spiders.failures import failure_reason

if TYPE_CHECKING:
    from typing import Self

    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.robotstxt import RobotParser

logger = logging.getLogger(__name__)

# Marks the robots.txt request itself, which must not wait for its own verdict.
ROBOTS_META = "newsradar_robots"


@dataclass(frozen=True)
class _SiteRules:
    parser: RobotParser | None  # None: no rules, everything allowed
    deferred: str = ""  # why the whole site is off limits for now, e.g. robots_http_5xx


class RobotsTxtMiddleware:
    """Replaces Scrapy's RobotsTxtMiddleware, which reads a 5xx robots.txt as allow-all.

    RFC 9309 2.3.1.3-4: 4xx means there are no rules; a 5xx or an unreachable robots.txt
    means "disallow everything" for now. Such a site's URLs end as ``robots_deferred`` and
    only robots.txt is requested. A disallowed URL ends as ``robots``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.agent: str = crawler.settings.get("ROBOTSTXT_USER_AGENT") or "newsradar"
        self._parser_class: type[RobotParser] = load_object(crawler.settings["ROBOTSTXT_PARSER"])
        # An asyncio future, not a Deferred: every request waiting on the same site must get
        # the rules, and a Deferred turned into futures hands its result to the first only.
        self._sites: dict[str, asyncio.Future[_SiteRules]] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Scrapy's constructor."""
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        """Raise Ignored(robots / robots_deferred), or let the request through."""
        if request.meta.get(ROBOTS_META):
            return
        rules = await self._rules(request)
        if rules.deferred:
            self.crawler.stats.inc_value("robotstxt/deferred")
            raise Ignored("robots_deferred", rules.deferred)
        if rules.parser is not None and not rules.parser.allowed(request.url, self.agent):
            self.crawler.stats.inc_value("robotstxt/forbidden")
            raise Ignored("robots", "disallowed by robots.txt")

    async def _rules(self, request: Request) -> _SiteRules:
        parts = urlparse_cached(request)
        site = f"{parts.scheme}://{parts.netloc}".lower()  # RFC 9309: per scheme, host and port
        rules = self._sites.get(site)
        if rules is None:
            rules = self._sites[site] = asyncio.get_running_loop().create_future()
            try:
                rules.set_result(await self._fetch(site))
            except BaseException:
                rules.cancel()  # the waiters must not hang on a fetch that was cancelled
                raise
        return await rules

    async def _fetch(self, site: str) -> _SiteRules:
        request = Request(
            f"{site}/robots.txt",
            callback=NO_CALLBACK,
            meta={ROBOTS_META: True},
            dont_filter=True,
        )
        self.crawler.stats.inc_value("robotstxt/request_count")
        try:
            response = await self.crawler.engine.download_async(request)
        except Exception as exc:  # every failure defers the site; none may crash the crawl
            reason, detail = failure_reason(exc)
            logger.info("robots.txt of %s unavailable: %s (%s)", site, reason, detail)
            return _SiteRules(None, f"robots_{reason}")
        return self._read(site, response)

    def _read(self, site: str, response: Response) -> _SiteRules:
        status = response.status
        self.crawler.stats.inc_value(f"robotstxt/response_status_count/{status}")
        if 200 <= status < 300:
            return _SiteRules(build_from_crawler(self._parser_class, self.crawler, response.body))
        if 400 <= status < 500 and status != 429:
            return _SiteRules(None)  # RFC 9309 2.3.1.3: no rules, the crawler may go anywhere
        logger.info("robots.txt of %s answered %s: deferring the site", site, status)
        return _SiteRules(None, f"robots_{status_reason(status)}")
