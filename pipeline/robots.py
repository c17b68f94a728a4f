"""robots.txt: fetched once per site per run, read as RFC 9309 says (5xx means stay away)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from pipeline.fetch import FetchFailed, FetchPolicy, FetchUnavailable, fetch

__all__ = ["RobotsCache", "RobotsVerdict"]

Verdict = Literal["allowed", "disallowed", "deferred"]


@dataclass(frozen=True)
class RobotsVerdict:
    """Whether a URL may be fetched now; ``deferred`` means try the site again later."""

    verdict: Verdict
    reason: str = ""


@dataclass
class _SiteRules:
    parser: RobotFileParser | None  # None: no usable robots.txt, everything allowed
    deferred_reason: str = ""


@dataclass
class RobotsCache:
    """robots.txt per scheme+host, fetched lazily with the crawler's own fetch policy."""

    policy: FetchPolicy
    agent: str = "newsradar"
    _sites: dict[str, _SiteRules] = field(default_factory=dict)

    def check(self, url: str) -> RobotsVerdict:
        """The verdict for ``url`` under its site's robots.txt."""
        parts = urlsplit(url)
        site = f"{parts.scheme}://{parts.netloc}"
        rules = self._sites.get(site)
        if rules is None:
            rules = self._sites[site] = self._load(site)
        if rules.deferred_reason:
            return RobotsVerdict("deferred", rules.deferred_reason)
        if rules.parser is None or rules.parser.can_fetch(self.agent, url):
            return RobotsVerdict("allowed")
        return RobotsVerdict("disallowed", "robots")

    def sitemaps(self, site_url: str) -> list[str]:
        """The Sitemap: lines of a site's robots.txt (after it has been checked once)."""
        parts = urlsplit(site_url)
        rules = self._sites.get(f"{parts.scheme}://{parts.netloc}")
        if rules is None or rules.parser is None:
            return []
        return list(rules.parser.site_maps() or [])

    def _load(self, site: str) -> _SiteRules:
        try:
            result = fetch(f"{site}/robots.txt", policy=self.policy)
        except FetchUnavailable as exc:
            # RFC 9309 2.3.1.3/4: an unreachable or 5xx robots.txt means "disallow all" for now.
            return _SiteRules(None, f"robots_{exc.reason}")
        except FetchFailed as exc:
            if exc.reason == "http_4xx":
                # RFC 9309 2.3.1.3: 4xx means there are no rules; the crawler may go anywhere.
                return _SiteRules(None)
            return _SiteRules(None, f"robots_{exc.reason}")
        parser = RobotFileParser()
        parser.parse(result.body.decode("utf-8", "replace").splitlines())
        return _SiteRules(parser)
