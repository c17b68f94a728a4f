"""Scrapy's caching DNS resolver with the SSRF address rule applied to every answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scrapy.resolver import CachingThreadedResolver
from twisted.internet.defer import Deferred

from pipeline.net.fetch import AddressRule

if TYPE_CHECKING:
    from typing import Self

    from scrapy.settings import BaseSettings
    from twisted.internet.base import ReactorBase

__all__ = ["BlockedAddress", "GuardedResolver", "address_rule"]


class BlockedAddress(Exception):
    """A host name resolved to an address the SSRF rule refuses."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(host, address)
        self.host = host
        self.address = address

    def __str__(self) -> str:
        return f"{self.host} resolves to {self.address}, which is not a public address"


def address_rule(settings: BaseSettings) -> AddressRule:
    """pipeline.net.fetch's rule from SSRF_ALLOW_PRIVATE_NETWORKS and SSRF_ALLOWED_NETWORKS."""
    return AddressRule.parse(
        settings.getbool("SSRF_ALLOW_PRIVATE_NETWORKS"),
        settings.getlist("SSRF_ALLOWED_NETWORKS"),
        where="SSRF_ALLOWED_NETWORKS",
    )


class GuardedResolver(CachingThreadedResolver):
    """Refuses to hand out a refused address, so a connection never reaches one.

    The SSRF middleware checks each request's host before it is downloaded; the download
    handler then resolves the host again. Both go through this resolver, so an answer that
    changed in between (DNS rebinding, or a cache eviction) is checked too.
    """

    def __init__(
        self, reactor: ReactorBase, cache_size: int, timeout: float, rule: AddressRule
    ) -> None:
        super().__init__(reactor, cache_size, timeout)
        self.rule = rule

    @classmethod
    def from_crawler(cls, crawler: Any, reactor: ReactorBase) -> Self:
        """Scrapy's constructor: the resolver configured from the DNS and SSRF settings."""
        # Scrapy passes its CrawlerProcess here, which has the settings a Crawler has.
        settings = crawler.settings
        size = settings.getint("DNSCACHE_SIZE") if settings.getbool("DNSCACHE_ENABLED") else 0
        rule = address_rule(settings)
        return cls(reactor, size, settings.getfloat("DNS_TIMEOUT"), rule)

    def getHostByName(self, name: str, timeout: Sequence[int] = ()) -> Deferred[str]:
        """Resolve ``name`` as Twisted does, then refuse an address the rule does not allow."""
        answer = super().getHostByName(name, timeout)
        answer.addCallback(self._check, name)
        return answer

    def _check(self, address: str, name: str) -> str:
        if not self.rule.allows(address):
            raise BlockedAddress(name, address)
        return address
