"""Sitemap discovery: indexes, news sitemaps, robots.txt, section pages and hostile XML."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.discover.sitemaps import (
    SitemapError,
    article_links,
    parse_sitemap,
    sitemaps_from_robots,
)

NOW = datetime(2026, 11, 27, tzinfo=UTC)
BASE = "https://news.example.org"

NEWS_SITEMAP = b"""<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
        xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
  <url>
    <loc>https://news.example.org/world/2026/03/finland-joins-alliance.html</loc>
    <lastmod>2026-03-04T10:00:00+00:00</lastmod>
    <news:news>
      <news:publication><news:name>Example</news:name><news:language>es</news:language></news:publication>
      <news:publication_date>2026-03-04T09:30:00+01:00</news:publication_date>
      <news:title>Finlandia completa su adhesi\xc3\xb3n</news:title>
    </news:news>
  </url>
  <url><loc>/relative/page-from-the-sitemap.html</loc></url>
  <url><loc>javascript:alert(1)</loc></url>
  <url><loc>https://news.example.org/future</loc><lastmod>2031-01-01</lastmod></url>
</urlset>
"""

INDEX = b"""<?xml version="1.0" encoding="UTF-8"?>
<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <sitemap><loc>https://news.example.org/sitemap-news.xml</loc></sitemap>
  <sitemap><loc>ftp://news.example.org/old.xml</loc></sitemap>
  <sitemap><loc>https://news.example.org/sitemap-2026.xml.gz</loc></sitemap>
</sitemapindex>
"""


def test_news_sitemap_fields_and_bad_entries() -> None:
    sitemap = parse_sitemap(NEWS_SITEMAP, url=f"{BASE}/sitemap-news.xml", now=NOW)
    assert sitemap.children == ()
    assert sitemap.skipped == 1  # the javascript: URL
    first, relative, future = sitemap.entries
    assert first.news_title == "Finlandia completa su adhesión"
    assert first.news_language == "es"
    assert first.news_published == datetime(2026, 3, 4, 8, 30, tzinfo=UTC)
    assert first.news_published_raw == "2026-03-04T09:30:00+01:00"
    assert relative.url == f"{BASE}/relative/page-from-the-sitemap.html"
    # A lastmod years ahead is implausible and is not trusted.
    assert future.lastmod is None


def test_sitemap_index_lists_http_children_only() -> None:
    sitemap = parse_sitemap(INDEX, url=f"{BASE}/sitemap.xml", now=NOW)
    assert sitemap.children == (f"{BASE}/sitemap-news.xml", f"{BASE}/sitemap-2026.xml.gz")
    assert sitemap.skipped == 1
    assert sitemap.entries == ()


def test_gzipped_sitemap() -> None:
    sitemap = parse_sitemap(gzip.compress(NEWS_SITEMAP), url=f"{BASE}/s.xml.gz", now=NOW)
    assert len(sitemap.entries) == 3


def test_gzip_bomb_is_refused_as_oversize() -> None:
    bomb = gzip.compress(b"<" + b" " * (60 * 1024 * 1024))
    assert len(bomb) < 200_000
    with pytest.raises(SitemapError) as info:
        parse_sitemap(bomb, url=f"{BASE}/bomb.xml.gz", now=NOW)
    assert info.value.reason == "oversize"


def test_billion_laughs_expands_nothing() -> None:
    lol = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://news.example.org/a-page-about-&lol9;</loc></url>
</urlset>"""
    try:
        sitemap = parse_sitemap(lol, url=f"{BASE}/lol.xml", now=NOW)
    except SitemapError as exc:
        assert exc.reason == "malformed"
    else:
        assert all("lollol" not in e.url for e in sitemap.entries)
        assert all(len(e.url) < 200 for e in sitemap.entries)


def test_external_entity_is_not_resolved(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-SECRET-7731", encoding="utf-8")
    xxe = f"""<?xml version="1.0"?>
<!DOCTYPE urlset [<!ENTITY secret SYSTEM "file://{canary}">]>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
  <url><loc>https://news.example.org/&secret;</loc></url>
</urlset>""".encode()
    try:
        sitemap = parse_sitemap(xxe, url=f"{BASE}/xxe.xml", now=NOW)
    except SitemapError as exc:
        assert "CANARY" not in str(exc)
    else:
        assert all("CANARY" not in e.url for e in sitemap.entries)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "empty"),
        (b"<urlset><url><loc>https://a.org/x</loc>", "malformed"),
        (b"<html><body>Not found</body></html>", "not_sitemap"),
    ],
)
def test_unusable_sitemaps_have_reasons(body: bytes, reason: str) -> None:
    with pytest.raises(SitemapError) as info:
        parse_sitemap(body, url=f"{BASE}/bad.xml", now=NOW)
    assert info.value.reason == reason
    assert info.value.url == f"{BASE}/bad.xml"


def test_sitemaps_from_robots() -> None:
    robots = (
        "User-agent: *\nDisallow: /private/\n"
        "Sitemap: https://news.example.org/sitemap.xml\n"
        "sitemap: /sitemap-news.xml\n"
        "Sitemap: file:///etc/passwd\n"
    )
    assert sitemaps_from_robots(robots, robots_url=f"{BASE}/robots.txt") == [
        f"{BASE}/sitemap.xml",
        f"{BASE}/sitemap-news.xml",
    ]


def test_article_links_from_a_section_page() -> None:
    page = b"""<html><body>
<nav><a href="/">Home</a> <a href="/world/">World</a> <a href="/tag/nato/">NATO</a></nav>
<main>
 <h2><a href="/world/2026/05/alliance-opens-talks-with-new-members.html">Alliance opens talks with
   two new members</a></h2>
 <h2><a href="https://news.example.org/world/harbour-festival-draws-record-crowds#top">Harbour
   festival draws record crowds</a></h2>
 <h2><a href="/world/2026/05/alliance-opens-talks-with-new-members.html">Alliance opens talks with
   two new members (again)</a></h2>
 <a href="https://elsewhere.example.com/world/2026/05/some-other-site-story.html">A story on
   another site entirely</a>
 <a href="/author/jane-doe-smith-jones/">Articles by Jane Doe Smith Jones</a>
 <a href="/world/page/2">More stories</a>
</main></body></html>"""
    links = article_links(page, page_url=f"{BASE}/world/")
    assert links == [
        f"{BASE}/world/2026/05/alliance-opens-talks-with-new-members.html",
        f"{BASE}/world/harbour-festival-draws-record-crowds",
    ]


# urljoin and urlsplit raise ValueError on a broken IPv6 literal; one such link is skipped.
BAD_LINK = "http://[bad/a"


def test_a_malformed_loc_is_skipped_not_raised() -> None:
    index = (
        b'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        b"<sitemap><loc>http://[bad/a</loc></sitemap>"
        b"<sitemap><loc>https://news.example.org/sitemap-news.xml</loc></sitemap>"
        b"</sitemapindex>"
    )
    sitemap = parse_sitemap(index, url=f"{BASE}/sitemap.xml", now=NOW)
    assert (sitemap.children, sitemap.skipped) == ((f"{BASE}/sitemap-news.xml",), 1)
    urlset = NEWS_SITEMAP.replace(b"javascript:alert(1)", BAD_LINK.encode())
    assert parse_sitemap(urlset, url=f"{BASE}/sitemap-news.xml", now=NOW).skipped == 1


def test_a_malformed_sitemap_line_in_robots_is_skipped() -> None:
    robots = f"Sitemap: {BAD_LINK}\nSitemap: /sitemap.xml\n"
    assert sitemaps_from_robots(robots, robots_url=f"{BASE}/robots.txt") == [f"{BASE}/sitemap.xml"]


def test_a_malformed_link_on_a_section_page_is_skipped() -> None:
    page = (
        f'<html><body><a href="{BAD_LINK}/2026/05/broken-link-to-a-story.html">A broken link'
        ' to a story</a><a href="/world/2026/05/alliance-opens-talks.html">Alliance opens'
        " talks with members</a></body></html>"
    ).encode()
    assert article_links(page, page_url=f"{BASE}/world/") == [
        f"{BASE}/world/2026/05/alliance-opens-talks.html"
    ]
