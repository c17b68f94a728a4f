"""Discovery over the demo site: each listed article found once; broken listings recorded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from httpfaults import FaultHandler, FaultServer, Route

from devtools.demosite import DemoSite, load_catalog
from pipeline.discover.listings import discover_source
from pipeline.net.fetch import FetchPolicy
from pipeline.net.urls import canonicalize_url
from pipeline.settings import Source

POLICY = FetchPolicy(allow_private_networks=True, deadline=10.0)
NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as demo:
        yield demo


def _demo_source(site: DemoSite, source_id: str) -> Source:
    return next(s for s in site.sources() if s.id == source_id)


def test_every_listed_demo_article_is_found_once_per_source(site: DemoSite) -> None:
    catalog = load_catalog()
    for source in site.sources():
        found = discover_source(source, policy=POLICY, now=NOW)
        expected = {
            canonicalize_url(site.url(e.path))
            for e in catalog
            if e.source == source.id and (e.in_feed or e.in_sitemap or e.on_section_page)
        }
        assert set(found.candidates) == expected, source.id
        assert found.problems == [], source.id


def test_feed_titles_and_dates_travel_with_the_candidate(site: DemoSite) -> None:
    catalog = {canonicalize_url(site.url(e.path)): e for e in load_catalog()}
    found = discover_source(_demo_source(site, "northwind-times"), policy=POLICY, now=NOW)
    from_feed = {u: c for u, c in found.candidates.items() if c.via == "feed"}
    assert len(from_feed) == len(
        [e for e in catalog.values() if e.source == "northwind-times" and e.in_feed]
    )
    for url, candidate in from_feed.items():
        assert candidate.title == catalog[url].title
        assert candidate.published_raw


def test_a_broken_listing_is_a_problem_and_the_others_still_count(site: DemoSite) -> None:
    def html_not_feed(handler: FaultHandler) -> None:
        handler.reply(200, b"<html><body>Oops</body></html>", content_type="text/html")

    with FaultServer() as server:
        server.routes["/feed.xml"] = html_not_feed
        demo = _demo_source(site, "tageblatt-nord")
        source = demo.model_copy(
            update={
                "feeds": (server.url("/feed.xml"), server.url("/gone.xml"), *demo.feeds),
                "sitemaps": (),
            }
        )
        found = discover_source(source, policy=POLICY, now=NOW)
    reasons = {(p.url.rsplit("/", 1)[-1], p.reason) for p in found.problems}
    assert reasons == {("feed.xml", "html_not_feed"), ("gone.xml", "http_4xx")}
    assert len(found.candidates) == len(
        [e for e in load_catalog() if e.source == "tageblatt-nord" and e.in_feed]
    )


def _sitemap_index(*locs: str) -> bytes:
    entries = "".join(f"<sitemap><loc>{loc}</loc></sitemap>" for loc in locs)
    return (
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}'
        "</sitemapindex>"
    ).encode()


def _urlset(*locs: str) -> bytes:
    entries = "".join(f"<url><loc>{loc}</loc></url>" for loc in locs)
    return (
        f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{entries}</urlset>'
    ).encode()


def _xml(body: bytes) -> Route:
    def route(handler: FaultHandler) -> None:
        handler.reply(200, body, content_type="text/xml")

    return route


def _sitemap_source(server: FaultServer) -> Source:
    return Source(id="loops", name="Loops", sitemaps=(server.url("/sitemap.xml"),))


def _paths(server: FaultServer) -> list[str]:
    return [seen.path for seen in server.seen]


def test_a_sitemap_index_listing_itself_is_fetched_once() -> None:
    with FaultServer() as server:
        index = _sitemap_index(*[server.url("/sitemap.xml")] * 20, server.url("/news.xml"))
        server.routes["/sitemap.xml"] = _xml(index)
        server.routes["/news.xml"] = _xml(_urlset(server.url("/2026/05/a-news-story.html")))
        found = discover_source(_sitemap_source(server), policy=POLICY, now=NOW)
    # Without a visited set: 1 + 20 + 400 fetches of the index (three levels deep).
    assert sorted(_paths(server)) == ["/news.xml", "/sitemap.xml"]
    assert [(p.reason, p.health) for p in found.problems] == [("sitemap_loop", "warning")]
    assert found.skipped["sitemap_loop"] == 20
    assert len(found.candidates) == 1


def test_sitemap_fetches_per_source_are_capped() -> None:
    with FaultServer() as server:
        index = _sitemap_index(*(server.url(f"/part-{n}.xml") for n in range(80)))
        server.routes["/sitemap.xml"] = _xml(index)
        for n in range(80):
            server.routes[f"/part-{n}.xml"] = _xml(_urlset(server.url(f"/2026/05/story-{n}.html")))
        found = discover_source(_sitemap_source(server), policy=POLICY, now=NOW)
    assert len(server.seen) == 50  # the index and 49 of its parts
    assert [(p.reason, p.health) for p in found.problems] == [("sitemap_budget", "warning")]
    assert found.skipped["sitemap_budget"] == 31
    assert len(found.candidates) == 49
