"""Discovery without feeds: sitemaps, sitemap indexes, news sitemaps and section pages."""

from __future__ import annotations

import gzip
import io
import re
import zlib
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from lxml import etree, html

from pipeline.errors import UrlFailure
from pipeline.net.urls import absolute_http
from pipeline.normalise.dates import parse_date

__all__ = [
    "Sitemap",
    "SitemapEntry",
    "SitemapError",
    "article_links",
    "parse_sitemap",
    "sitemaps_from_robots",
]

_SM_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
_NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
# Sitemaps are capped at 50 MB uncompressed by the protocol; anything larger is not a sitemap.
_MAX_SITEMAP_BYTES = 50 * 1024 * 1024
# Path shapes that mark an article rather than a section, tag or utility page.
_ARTICLE_PATH = re.compile(r"(/\d{4}/\d{1,2}/|\d{5,}|[a-z0-9]+(?:-[a-z0-9]+){3,}|\.html?$)", re.I)
_NOT_ARTICLE = re.compile(
    r"/(tag|tags|author|authors|category|categories|search|login|about|contact|privacy|"
    r"subscribe|newsletter|rss|feed|page/\d+)(/|$)",
    re.I,
)


class SitemapError(UrlFailure):
    """A sitemap that cannot be used: ``empty``, ``malformed``, ``not_sitemap``, ``oversize``."""


@dataclass(frozen=True)
class SitemapEntry:
    """One page listed by a sitemap, with the news fields when it is a news sitemap."""

    url: str
    lastmod: datetime | None = None
    news_title: str | None = None
    news_published: datetime | None = None
    news_published_raw: str | None = None
    news_language: str | None = None


@dataclass(frozen=True)
class Sitemap:
    """A parsed sitemap: either child sitemaps (an index) or page entries."""

    url: str
    children: tuple[str, ...]
    entries: tuple[SitemapEntry, ...]
    skipped: int


def _parser() -> etree.XMLParser:
    # No entity expansion, no DTD loading, no network: a billion-laughs or XXE sitemap expands
    # nothing. huge_tree stays off so libxml2's own depth and size limits apply.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        recover=False,
    )


def _inflate(body: bytes, url: str) -> bytes:
    if body[:2] != b"\x1f\x8b":
        return body
    try:
        # Read at most the protocol cap + 1 so a gzip bomb is refused without inflating it all.
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as stream:
            data = stream.read(_MAX_SITEMAP_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise SitemapError(url, "bad_gzip", str(exc)) from None
    if len(data) > _MAX_SITEMAP_BYTES:
        raise SitemapError(url, "oversize", f"more than {_MAX_SITEMAP_BYTES} bytes uncompressed")
    return data


def _text(node: etree._Element, path: str) -> str | None:
    found = node.find(path)
    if found is None or found.text is None:
        return None
    return found.text.strip() or None


def parse_sitemap(body: bytes, *, url: str, now: datetime) -> Sitemap:
    """Parse a sitemap, sitemap index or news sitemap (gzip or plain) without expanding entities."""
    data = _inflate(body, url)
    if len(data) > _MAX_SITEMAP_BYTES:
        raise SitemapError(url, "oversize", f"more than {_MAX_SITEMAP_BYTES} bytes")
    if not data.strip():
        raise SitemapError(url, "empty")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise SitemapError(url, "malformed", str(exc)) from None
    tag = etree.QName(root).localname
    children: list[str] = []
    entries: list[SitemapEntry] = []
    skipped = 0
    if tag == "sitemapindex":
        for node in root.iter(f"{{{_SM_NS}}}sitemap", "sitemap"):
            loc = _text(node, f"{{{_SM_NS}}}loc") or _text(node, "loc")
            target = absolute_http(loc, url) if loc else None
            if target is None:
                skipped += 1
            else:
                children.append(target)
    elif tag == "urlset":
        for node in root.iter(f"{{{_SM_NS}}}url", "url"):
            entry = _entry(node, url, now)
            if entry is None:
                skipped += 1
            else:
                entries.append(entry)
    else:
        raise SitemapError(url, "not_sitemap", f"root element <{tag}>")
    return Sitemap(url=url, children=tuple(children), entries=tuple(entries), skipped=skipped)


def _entry(node: etree._Element, base: str, now: datetime) -> SitemapEntry | None:
    loc = _text(node, f"{{{_SM_NS}}}loc") or _text(node, "loc")
    target = absolute_http(loc, base) if loc else None
    if target is None:
        return None
    lastmod = parse_date(_text(node, f"{{{_SM_NS}}}lastmod"), now=now)
    news = node.find(f"{{{_NEWS_NS}}}news")
    if news is None:
        return SitemapEntry(url=target, lastmod=lastmod.value if lastmod else None)
    raw_published = _text(news, f"{{{_NEWS_NS}}}publication_date")
    published = parse_date(raw_published, now=now)
    return SitemapEntry(
        url=target,
        lastmod=lastmod.value if lastmod else None,
        news_title=_text(news, f"{{{_NEWS_NS}}}title"),
        news_published=published.value if published else None,
        news_published_raw=raw_published,
        news_language=_text(news, f"{{{_NEWS_NS}}}publication/{{{_NEWS_NS}}}language"),
    )


def sitemaps_from_robots(robots_txt: str, *, robots_url: str) -> list[str]:
    """The ``Sitemap:`` URLs a robots.txt lists, resolved and limited to http(s)."""
    found: list[str] = []
    for line in robots_txt.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() == "sitemap" and value.strip():
            target = absolute_http(value.strip(), robots_url)
            if target is not None and target not in found:
                found.append(target)
    return found


def article_links(body: bytes, *, page_url: str) -> list[str]:
    """Links on a section page that look like articles on the same host, in page order."""
    try:
        doc = html.fromstring(body, base_url=page_url)
    except (etree.ParserError, ValueError):
        return []
    host = urlsplit(page_url).hostname
    seen: list[str] = []
    for anchor in doc.iter("a"):
        href = anchor.get("href")
        if not href:
            continue
        target = absolute_http(href, page_url)
        if target is None:
            continue
        parts = urlsplit(target)
        if parts.hostname != host or parts.path.rstrip("/") == urlsplit(page_url).path.rstrip("/"):
            continue
        if _NOT_ARTICLE.search(parts.path) or not _ARTICLE_PATH.search(parts.path):
            continue
        # Short anchor texts are navigation ("More", "Next"); headlines are longer.
        if len(" ".join(anchor.text_content().split())) < 15:
            continue
        clean = target.split("#", 1)[0]
        if clean not in seen:
            seen.append(clean)
    return seen
