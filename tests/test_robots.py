"""robots.txt verdicts: rules obeyed, 4xx allows all, 5xx and unreachable defer the site."""

from __future__ import annotations

from httpfaults import FaultHandler, FaultServer, Route, closed_port

from pipeline.fetch import FetchPolicy
from pipeline.robots import RobotsCache

POLICY = FetchPolicy(allow_private_networks=True, deadline=5.0, read_timeout=2.0)


def _robots(status: int, body: bytes = b"") -> Route:
    def route(handler: FaultHandler) -> None:
        handler.reply(status, body)

    return route


def test_rules_are_obeyed_and_fetched_once() -> None:
    with FaultServer() as server:
        server.routes["/robots.txt"] = _robots(
            200, b"User-agent: *\nDisallow: /private/\nSitemap: /sitemap.xml\n"
        )
        cache = RobotsCache(POLICY)
        assert cache.check(server.url("/news/a.html")).verdict == "allowed"
        verdict = cache.check(server.url("/private/secret.html"))
        assert (verdict.verdict, verdict.reason) == ("disallowed", "robots")
        assert cache.sitemaps(server.url("/")) == ["/sitemap.xml"]
        assert [r.path for r in server.seen] == ["/robots.txt"]


def test_missing_robots_allows_everything() -> None:
    with FaultServer() as server:  # no route: every path answers 404
        cache = RobotsCache(POLICY)
        assert cache.check(server.url("/private/x.html")).verdict == "allowed"


def test_robots_503_defers_the_whole_site() -> None:
    with FaultServer() as server:
        server.routes["/robots.txt"] = _robots(503, b"busy")
        cache = RobotsCache(POLICY)
        verdict = cache.check(server.url("/news/a.html"))
        assert verdict.verdict == "deferred"
        assert verdict.reason == "robots_http_5xx"


def test_unreachable_site_is_deferred_not_allowed() -> None:
    cache = RobotsCache(POLICY)
    verdict = cache.check(f"http://127.0.0.1:{closed_port()}/news/a.html")
    assert verdict.verdict == "deferred"
    assert verdict.reason == "robots_connect"
