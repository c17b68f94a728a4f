"""Find a source's article URLs through its feeds, sitemaps and section pages."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from pipeline.discover.sitemaps import SitemapError, article_links, parse_sitemap
from pipeline.feeds.parse import parse_feed
from pipeline.net.fetch import FetchFailed, FetchPolicy, FetchResult, FetchUnavailable, fetch
from pipeline.net.urls import UnsupportedURL, canonicalize_url
from pipeline.settings import Source

__all__ = ["Candidate", "Discovery", "SourceProblem", "discover_source"]

Via = Literal["feed", "sitemap", "section"]
# Sitemap indexes may nest; deeper than this is a loop or a trap, not a news site.
_MAX_SITEMAP_DEPTH = 3
# Sitemap fetches per source. Depth alone does not bound them: an index of 20 indexes of
# 20 is 421 fetches. A news site's recent articles sit in a handful of sitemaps.
_MAX_SITEMAPS = 50


@dataclass(frozen=True)
class Candidate:
    """An article URL found for a source, with what the listing already said about it."""

    url: str  # canonical
    link: str  # as listed
    source: str
    via: Via
    title: str | None = None
    published_raw: str | None = None


@dataclass(frozen=True)
class SourceProblem:
    """Something wrong with one listing (feed, sitemap, section page) of a source."""

    url: str
    health: Literal["warning", "error"]
    reason: str
    detail: str = ""


@dataclass
class Discovery:
    """What one source's listings yielded: candidates, first listing wins per canonical URL."""

    source: str
    candidates: dict[str, Candidate] = field(default_factory=dict)
    problems: list[SourceProblem] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    sitemaps_seen: set[str] = field(default_factory=set)  # the sitemap URLs requested

    def add(self, candidate: Candidate) -> None:
        """Keep the first sighting of a canonical URL; count later ones as seen."""
        if candidate.url in self.candidates:
            self.skipped["seen"] += 1
        else:
            self.candidates[candidate.url] = candidate

    def skip_sitemap(self, url: str, reason: str, detail: str) -> None:
        """Count a sitemap not fetched; the first one per reason is also a warning."""
        self.skipped[reason] += 1
        if self.skipped[reason] == 1:  # one warning says it; thousands would bury the rest
            self.problems.append(SourceProblem(url, "warning", reason, detail))


def discover_source(source: Source, *, policy: FetchPolicy, now: datetime) -> Discovery:
    """Walk every listing of ``source``; a broken listing becomes a problem, not an exception."""
    found = Discovery(source=source.id)
    for feed_url in source.feeds:
        _from_feed(found, feed_url, policy, now)
    for sitemap_url in source.sitemaps:
        _from_sitemap(found, sitemap_url, policy, now, depth=0)
    for page_url in source.start_urls:
        _from_section(found, page_url, policy)
    return found


def _get(found: Discovery, url: str, policy: FetchPolicy) -> FetchResult | None:
    """Fetch a listing; a failure is recorded as the source's problem."""
    try:
        return fetch(url, policy=policy)
    except (FetchFailed, FetchUnavailable) as exc:
        found.problems.append(SourceProblem(url, "error", exc.reason, str(exc)))
        return None


def _from_feed(found: Discovery, url: str, policy: FetchPolicy, now: datetime) -> None:
    result = _get(found, url, policy)
    if result is None:
        return
    feed = parse_feed(result.body, feed_url=result.url, content_type=result.content_type, now=now)
    if feed.health != "ok":
        found.problems.append(SourceProblem(url, feed.health, feed.reason or "", feed.detail))
    found.skipped.update(feed.skipped)
    for entry in feed.entries:
        found.add(
            Candidate(
                url=entry.url,
                link=entry.link,
                source=found.source,
                via="feed",
                title=entry.title or None,
                published_raw=entry.published_raw if entry.published else None,
            )
        )


def _from_sitemap(
    found: Discovery, url: str, policy: FetchPolicy, now: datetime, *, depth: int
) -> None:
    if url in found.sitemaps_seen:
        found.skip_sitemap(url, "sitemap_loop", "listed again, by itself or another index")
        return
    if len(found.sitemaps_seen) >= _MAX_SITEMAPS:
        found.skip_sitemap(url, "sitemap_budget", f"{_MAX_SITEMAPS} sitemaps fetched already")
        return
    found.sitemaps_seen.add(url)
    result = _get(found, url, policy)
    if result is None:
        return
    try:
        sitemap = parse_sitemap(result.body, url=result.url, now=now)
    except SitemapError as exc:
        found.problems.append(SourceProblem(url, "error", exc.reason, exc.detail))
        return
    if sitemap.skipped:
        found.skipped["sitemap_bad_url"] += sitemap.skipped
    for child in sitemap.children:
        if depth + 1 >= _MAX_SITEMAP_DEPTH:
            found.problems.append(SourceProblem(child, "warning", "sitemap_too_deep"))
            continue
        _from_sitemap(found, child, policy, now, depth=depth + 1)
    for entry in sitemap.entries:
        try:
            canonical = canonicalize_url(entry.url)
        except UnsupportedURL:
            found.skipped["bad_url"] += 1
            continue
        found.add(
            Candidate(
                url=canonical,
                link=entry.url,
                source=found.source,
                via="sitemap",
                title=entry.news_title,
                published_raw=entry.news_published_raw if entry.news_published else None,
            )
        )


def _from_section(found: Discovery, url: str, policy: FetchPolicy) -> None:
    result = _get(found, url, policy)
    if result is None:
        return
    for link in article_links(result.body, page_url=result.url):
        try:
            canonical = canonicalize_url(link)
        except UnsupportedURL:
            found.skipped["bad_url"] += 1
            continue
        found.add(Candidate(url=canonical, link=link, source=found.source, via="section"))
