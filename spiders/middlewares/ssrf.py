"""The SSRF guard: only http(s), and only hosts whose address the rule allows, on every hop."""

from __future__ import annotations

import ipaddress
import logging
from typing import TYPE_CHECKING, NoReturn, cast

from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.error import DNSLookupError

from spiders.exceptions import Ignored
from spiders.resolver import BlockedAddress, address_rule

if TYPE_CHECKING:
    from typing import Self

    from scrapy import Request
    from scrapy.crawler import Crawler
    from twisted.internet.base import ReactorBase

logger = logging.getLogger(__name__)

_SCHEMES = frozenset({"http", "https"})


class SsrfGuardMiddleware:
    """Refuses a request before it is sent if its scheme or its host's address is not allowed.

    Redirects come back through the downloader as new requests, so every hop is checked.
    The host is resolved through the reactor's resolver, the one the download itself uses
    (and, with spiders.resolver.GuardedResolver installed, one that re-checks each answer).
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.rule = address_rule(crawler.settings)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Self:
        """Scrapy's constructor."""
        return cls(crawler)

    async def process_request(self, request: Request) -> None:
        """Raise Ignored(blocked_scheme / blocked_address / bad_url / dns), or let it through."""
        parts = urlparse_cached(request)
        scheme = parts.scheme.lower()
        if scheme not in _SCHEMES:
            self._refuse(request, "blocked_scheme", scheme or "(none)")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            self._refuse(request, "bad_url", "no host")
        address = await self._address(request, host)
        if not self.rule.allows(address):
            self._refuse(request, "blocked_address", f"{host} is {address}")

    async def _address(self, request: Request, host: str) -> str:
        try:
            ipaddress.ip_address(host)
            return host  # a literal address: nothing to resolve
        except ValueError:
            pass
        from twisted.internet import reactor

        try:
            return await maybe_deferred_to_future(cast("ReactorBase", reactor).resolve(host))
        except BlockedAddress as exc:  # the resolver refused it (spiders.resolver)
            self._refuse(request, "blocked_address", str(exc))
        except DNSLookupError as exc:
            self._refuse(request, "dns", str(exc))

    def _refuse(self, request: Request, reason: str, detail: str) -> NoReturn:
        self.crawler.stats.inc_value(f"ssrf/{reason}")
        logger.debug("Refused %s: %s (%s)", request.url, reason, detail)
        raise Ignored(reason, detail)
