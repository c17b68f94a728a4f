"""The Scrapy crawl stage against loopback servers: every requested URL gets one outcome."""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import logging
import pickle
import random
import re
import ssl
import threading
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import brotli  # type: ignore[import-untyped]
import pytest
from backports import zstd
from elasticsearch import Elasticsearch
from httpfaults import FaultHandler, FaultServer, Route, closed_port, gzip_bomb, stall
from scrapy import Request
from scrapy.http import Response
from scrapy.utils.test import get_crawler

from devtools.demosite import CatalogEntry, DemoSite, load_catalog
from pipeline.crawl.claims import crawl_frontier
from pipeline.crawl.process import (
    CrawlFailed,
    CrawlIncomplete,
    CrawlOutcome,
    CrawlPolicy,
    CrawlReport,
    crawl,
)
from pipeline.discover.listings import Candidate, discover_source
from pipeline.errors import PermanentError, UrlFailure
from pipeline.net.fetch import AddressRule, FetchPolicy, FetchResult, user_agent
from pipeline.net.urls import UnsupportedURL, canonicalize_url, url_id
from pipeline.settings import Config, Settings, Source
from pipeline.store.client import IndexNames, install
from pipeline.store.frontier import FrontierRecord, enqueue
from spiders.exceptions import Ignored
from spiders.items import FetchedPage
from spiders.middlewares.httpcompression import HttpCompressionMiddleware
from spiders.pipelines.normalise import NormalisePipeline, _reason

TESTS = Path(__file__).resolve().parent
TLS = TESTS / "fixtures" / "feeds" / "tls"
NOW = datetime(2026, 11, 27, tzinfo=UTC)
LISTING_POLICY = FetchPolicy(allow_private_networks=True, deadline=10.0)
# Loopback servers answer in microseconds: no politeness delay, short timeouts and backoffs.
FAST = CrawlPolicy(
    concurrency_per_domain=8,
    download_delay=0.0,
    autothrottle_start_delay=0.0,
    download_timeout=1.0,
    retry_backoff=0.05,
    retry_after_max=2.0,
)
LOOPBACK_ONLY = Settings(allow_private_networks=False)

_PARAGRAPH = (
    "The harbour authority said on Tuesday that the new container terminal will open in "
    "spring, after two years of construction and a long dispute over dredging the northern "
    "channel. "
)
ARTICLE = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
    "<title>Terminal opens in spring</title></head><body><article>"
    "<h1>Terminal opens in spring</h1>"
    + "".join(
        f"<p>{_PARAGRAPH * 2}Paragraph {i} adds that traffic will grow.</p>" for i in range(6)
    )
    + "</article></body></html>"
).encode()


DEEP_JSON_LD = (
    b'<head><script type="application/ld+json">' + b"[" * 3000 + b"]" * 3000 + b"</script>"
)


# --------------------------------------------------------------------------- components
# Loaded by the crawl process from this module (PYTHONPATH=tests), through
# CrawlPolicy.scrapy_settings: faults of our own making in real Scrapy components.


class ExplodingPipeline:
    """An item pipeline with a bug."""

    def process_item(self, item: Any) -> Any:
        raise RuntimeError("the index is on fire")


class SwallowingStartMiddleware:
    """A spider middleware that silently drops a start request, as UrlLengthMiddleware does."""

    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        async for item in start:
            if isinstance(item, Request) and "/vanish" in item.url:
                continue
            yield item


# --------------------------------------------------------------------------- helpers


def _candidate(link: str, source: str = "faults") -> Candidate:
    return Candidate(url=link, link=link, source=source, via="feed")


def _requested_once_each(report: CrawlReport) -> None:
    """The reconciliation every crawl must pass: requested == outcomes, one each."""
    assert set(report.outcomes) == set(report.requested)
    assert len(report.requested) == len(set(report.requested))
    assert sum(sum(c.values()) for c in report.counts().values()) == len(report.requested)


def _article(handler: FaultHandler) -> None:
    handler.reply(200, ARTICLE, content_type="text/html; charset=utf-8")


def _redirect_to(location: str, status: int = 302) -> Route:
    def route(handler: FaultHandler) -> None:
        handler.redirect(location, status)

    return route


def _answers(*statuses: int, headers: dict[str, str] | None = None) -> Route:
    """A route answering the given statuses in turn, then 200 with the article."""
    left = list(statuses)
    lock = threading.Lock()

    def route(handler: FaultHandler) -> None:
        with lock:
            status = left.pop(0) if left else 200
        if status == 200:
            _article(handler)
        else:
            handler.reply(status, b"busy", headers)

    return route


def _self_signed() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(TLS / "localhost.crt", TLS / "localhost.key")
    return context


def _paths(server: FaultServer) -> Counter[str]:
    return Counter(seen.path for seen in server.seen)


# --------------------------------------------------------------------------- the demo site


class _RequestLog(logging.Handler):
    """Collects the request lines the demo site logs at debug level."""

    LINE = re.compile(r'"GET (\S+) HTTP/1\.[01]"')

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.paths: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        match = self.LINE.search(record.getMessage())
        if match:
            self.paths[match.group(1)] += 1


@dataclass(frozen=True)
class DemoCrawl:
    report: CrawlReport
    catalog: dict[str, CatalogEntry]  # canonical URL -> truth
    listed: dict[str, CatalogEntry]
    fetched: Counter[str]  # path -> GETs during the crawl


@pytest.fixture(scope="module")
def demo() -> Iterator[DemoCrawl]:
    with DemoSite() as site:
        candidates: list[Candidate] = []
        languages: dict[str, str | None] = {}
        for source in site.sources():
            found = discover_source(source, policy=LISTING_POLICY, now=NOW)
            assert found.problems == [], source.id
            candidates.extend(found.candidates.values())
            languages[source.id] = source.language
        catalog = {canonicalize_url(site.url(e.path)): e for e in load_catalog()}
        requests = _RequestLog()
        site_log = logging.getLogger("devtools.demosite")
        level = site_log.level
        site_log.addHandler(requests)
        site_log.setLevel(logging.DEBUG)
        try:
            report = crawl(
                candidates,
                settings=Settings(allow_private_networks=True),
                languages=languages,
                policy=FAST,
                timeout=120,
            )
        finally:
            site_log.removeHandler(requests)
            site_log.setLevel(level)
    listed = {
        url: e for url, e in catalog.items() if e.in_feed or e.in_sitemap or e.on_section_page
    }
    print(f"\ndemo crawl: {len(report.requested)} URLs in {report.elapsed:.1f} s wall time")
    yield DemoCrawl(report, catalog, listed, requests.paths)


def test_every_listed_demo_article_is_fetched_once_and_normalised(demo: DemoCrawl) -> None:
    report = demo.report
    _requested_once_each(report)
    assert report.ok
    assert set(report.requested) == set(demo.listed)
    disallowed = {url for url, e in demo.listed.items() if e.robots_disallowed}
    assert disallowed
    assert {o.url for o in report.by("robots")} == disallowed
    assert {o.url for o in report.by("normalised")} == set(demo.listed) - disallowed
    # Fetched exactly once each: no retries, no dupes; the disallowed page never.
    expected = Counter({e.path: 1 for url, e in demo.listed.items() if url not in disallowed})
    expected["/robots.txt"] = 1
    assert demo.fetched == expected


def test_demo_outcomes_carry_the_normalised_article(demo: DemoCrawl) -> None:
    for outcome in demo.report.by("normalised"):
        truth = demo.catalog[outcome.url]
        assert outcome.status == 200
        assert outcome.language == truth.language, outcome.url
        assert outcome.canonical_url is not None
        assert outcome.canonical_url.endswith(truth.canonical)
        assert outcome.article_id == url_id(outcome.canonical_url)
        assert outcome.title
        assert outcome.content_hash and outcome.band_keys
    counts = demo.report.counts()
    assert set(counts) == {e.source for e in demo.listed.values()}
    assert counts["northwind-times"]["robots"] == 1


# --------------------------------------------------------------------------- faults


@dataclass(frozen=True)
class FaultCrawl:
    report: CrawlReport
    main: FaultServer  # 127.0.0.1, allowed by the CIDR allow-list
    private: FaultServer  # 127.0.0.2, refused
    closed_site: FaultServer  # robots.txt answers 503
    secure: FaultServer  # https with a certificate no CA vouches for
    link: dict[str, str]  # route name -> requested URL
    retry_times: list[float]  # when /slow-down was requested


@pytest.fixture(scope="module")
def faults() -> Iterator[FaultCrawl]:
    with (
        FaultServer() as main,
        FaultServer("127.0.0.2") as private,
        FaultServer() as closed_site,
        FaultServer(tls=_self_signed()) as secure,
    ):
        retry_times: list[float] = []
        bomb_body = gzip_bomb(50 * 1024 * 1024)
        slow_down = _answers(429, headers={"Retry-After": "1"})

        def timed_slow_down(handler: FaultHandler) -> None:
            retry_times.append(time.monotonic())
            slow_down(handler)

        def bomb(handler: FaultHandler) -> None:
            handler.reply(200, bomb_body, {"Content-Encoding": "gzip"}, content_type="text/html")

        def declared_huge(handler: FaultHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "text/html")
            handler.send_header("Content-Length", str(50 * 1024 * 1024))
            handler.end_headers()
            handler.wfile.write(b"<html>")
            handler.close_connection = True

        main.routes.update(
            {
                "/article.html": _article,
                "/alias.html": _redirect_to("/article.html", 301),
                "/loop": _redirect_to("/loop"),
                "/ping": _redirect_to("/pong"),
                "/pong": _redirect_to("/ping"),
                **{f"/hop{i}": _redirect_to(f"/hop{i + 1}") for i in range(1, 9)},
                "/bomb": bomb,
                "/huge": declared_huge,
                "/to-private": _redirect_to(private.url("/secret-hop")),
                "/to-file": _redirect_to("file:///etc/passwd"),
                "/flaky": _answers(503),
                "/down": _answers(503, 503, 503, 503),
                "/gone": _answers(404, 404),
                "/slow-down": timed_slow_down,
                "/go-away": _answers(429, headers={"Retry-After": "3600"}),
                "/binary": lambda h: h.reply(200, bytes(range(256)) * 8, content_type="image/png"),
                "/empty": lambda h: h.reply(
                    200, b"<html><body></body></html>", content_type="text/html"
                ),
                "/stall": stall,
                # Pages that once failed the whole crawl: a charset naming a bytes-to-bytes
                # codec, JSON-LD nested past the stack, a Location that is no URL.
                "/hex-charset": lambda h: h.reply(
                    200,
                    ARTICLE.replace(b"charset='utf-8'", b"charset='hex'"),
                    content_type="text/html",
                ),
                "/deep-json-ld": lambda h: h.reply(
                    200, ARTICLE.replace(b"<head>", DEEP_JSON_LD), content_type="text/html"
                ),
                "/bad-location": _redirect_to("http://[x/a"),
            }
        )
        secure.routes["/article.html"] = _article
        private.routes.update({"/secret": _article, "/secret-hop": _article})
        closed_site.routes.update(
            {
                "/robots.txt": lambda h: h.reply(503, b"maintenance"),
                "/news/a.html": _article,
                "/private/b.html": _article,
            }
        )
        link = {name: main.url(name) for name in main.routes if name.count("/") == 1}
        # Their own host name, so their own download slot: the 1 s Retry-After slows
        # that slot down, not the rest of the crawl.
        link["/slow-down"] = main.url("/slow-down", host="localhost")
        link["/go-away"] = main.url("/go-away", host="localhost")
        link.update(
            {
                "direct-private": private.url("/secret"),
                "file": "file:///etc/passwd",
                "dns": "http://news.invalid/article.html",
                "unreachable": f"http://127.0.0.1:{closed_port()}/article.html",
                "deferred-a": closed_site.url("/news/a.html"),
                "deferred-b": closed_site.url("/private/b.html"),
                "self-signed": secure.url("/article.html"),
                "no-scheme": "news.example.org/world/article.html",
                "too-long": main.url("/" + "a" * 2100),
            }
        )
        for name in ("/pong", *(f"/hop{i}" for i in range(2, 10))):
            link.pop(name, None)
        report = crawl(
            # /gone twice: a repeated candidate is requested once.
            [_candidate(url) for url in (*link.values(), link["/gone"])],
            settings=LOOPBACK_ONLY,
            policy=replace(FAST, allowed_networks=("127.0.0.1/32",)),
            timeout=120,
        )
        yield FaultCrawl(report, main, private, closed_site, secure, link, retry_times)


def _outcome(faults: FaultCrawl, name: str) -> CrawlOutcome:
    return faults.report.outcomes[faults.link[name]]


def test_the_fault_crawl_reconciles(faults: FaultCrawl) -> None:
    _requested_once_each(faults.report)
    assert faults.report.ok, faults.report.errors


def test_repeated_and_unusable_candidates(faults: FaultCrawl) -> None:
    assert faults.report.repeated_input == 1
    assert _paths(faults.main)["/gone"] == 1
    for name in ("no-scheme", "too-long"):
        assert _outcome(faults, name).outcome == "bad_url", name


def test_requests_announce_the_user_agent(faults: FaultCrawl) -> None:
    agents = {seen.headers.get("user-agent") for seen in faults.main.seen}
    assert agents == {user_agent(LOOPBACK_ONLY.contact_url)}


def test_a_robots_txt_answering_503_defers_the_site(faults: FaultCrawl) -> None:
    for name in ("deferred-a", "deferred-b"):
        outcome = _outcome(faults, name)
        assert (outcome.outcome, outcome.detail) == ("robots_deferred", "robots_http_5xx")
    # robots.txt only (with its retries); neither page.
    assert set(_paths(faults.closed_site)) == {"/robots.txt"}


def test_an_unreachable_robots_txt_defers_the_site_too(faults: FaultCrawl) -> None:
    outcome = _outcome(faults, "unreachable")
    assert (outcome.outcome, outcome.detail) == ("robots_deferred", "robots_connect")


def test_certificates_are_verified(faults: FaultCrawl) -> None:
    # Its robots.txt is the first request: the failed handshake defers the whole site.
    outcome = _outcome(faults, "self-signed")
    assert (outcome.outcome, outcome.detail) == ("robots_deferred", "robots_tls")
    assert faults.secure.seen == []


def test_redirect_loops_and_long_chains_are_outcomes_not_silence(faults: FaultCrawl) -> None:
    assert _outcome(faults, "/loop").outcome == "redirect_loop"
    assert _outcome(faults, "/ping").outcome == "redirect_loop"
    assert _outcome(faults, "/hop1").outcome == "too_many_redirects"
    paths = _paths(faults.main)
    assert paths["/loop"] == 1
    assert paths["/ping"] == paths["/pong"] == 1
    assert paths["/hop6"] == 1 and paths["/hop7"] == 0  # five redirects followed, no more


def test_a_redirect_to_a_url_already_requested_is_recorded_once(faults: FaultCrawl) -> None:
    pair = {_outcome(faults, "/alias.html").outcome, _outcome(faults, "/article.html").outcome}
    assert pair == {"normalised", "duplicate_url"}
    assert _paths(faults.main)["/article.html"] == 1


def test_a_gzip_bomb_and_a_declared_huge_body_are_oversize(faults: FaultCrawl) -> None:
    bomb = _outcome(faults, "/bomb")
    assert bomb.outcome == "oversize"
    assert "decompressed" in bomb.detail
    assert _outcome(faults, "/huge").outcome == "oversize"
    assert _paths(faults.main)["/bomb"] == 1  # not retried


def test_ssrf_guard_blocks_private_hops_and_other_schemes(faults: FaultCrawl) -> None:
    hop = _outcome(faults, "/to-private")
    assert hop.outcome == "blocked_address"
    assert hop.final_url == faults.private.url("/secret-hop")
    assert _outcome(faults, "direct-private").outcome == "blocked_address"
    assert faults.private.seen == []  # not even its robots.txt
    assert _outcome(faults, "file").outcome == "blocked_scheme"
    assert _outcome(faults, "/to-file").outcome == "blocked_scheme"
    assert _outcome(faults, "dns").outcome == "dns"


def test_transient_statuses_are_retried_and_4xx_is_not(faults: FaultCrawl) -> None:
    paths = _paths(faults.main)
    assert _outcome(faults, "/flaky").outcome == "normalised"
    assert paths["/flaky"] == 2
    down = _outcome(faults, "/down")
    assert (down.outcome, down.status, paths["/down"]) == ("http_5xx", 503, 3)
    gone = _outcome(faults, "/gone")
    assert (gone.outcome, gone.status, paths["/gone"]) == ("http_4xx", 404, 1)
    stalled = _outcome(faults, "/stall")
    assert (stalled.outcome, paths["/stall"]) == ("timeout", 3)


def test_retry_after_is_honoured_up_to_the_cap(faults: FaultCrawl) -> None:
    assert _outcome(faults, "/slow-down").outcome == "normalised"
    first, second = faults.retry_times
    assert second - first >= 0.95  # Retry-After: 1
    too_long = _outcome(faults, "/go-away")
    assert (too_long.outcome, too_long.retry_after) == ("http_429", 3600.0)
    assert _paths(faults.main)["/go-away"] == 1


def test_pages_without_an_article_are_named(faults: FaultCrawl) -> None:
    assert _outcome(faults, "/binary").outcome == "not_html"
    assert _outcome(faults, "/empty").outcome == "no_text"


def test_one_odd_page_does_not_fail_the_crawl(faults: FaultCrawl) -> None:
    assert _outcome(faults, "/hex-charset").outcome == "normalised"
    assert _outcome(faults, "/deep-json-ld").outcome == "normalised"
    bad = _outcome(faults, "/bad-location")
    assert (bad.outcome, bad.status) == ("bad_redirect", None)
    assert "http://[x/a" in bad.detail


# --------------------------------------------------------------------------- components alone


def _fetched_page(url: str = "http://127.0.0.1/article.html", body: bytes = ARTICLE) -> FetchedPage:
    result = FetchResult(
        url=url,
        requested_url=url,
        status=200,
        headers={"content-type": "text/html; charset=utf-8"},
        body=body,
        not_modified=False,
        redirect_chain=(),
        elapsed=0.0,
    )
    return FetchedPage(candidate=_candidate(url), result=result, fetched_at=NOW)


@pytest.fixture(scope="module")
def normalising() -> Iterator[NormalisePipeline]:
    """The item pipeline with its worker pool started, as a crawl opens it."""
    pipeline = NormalisePipeline(workers=1, budget=5.0)
    pipeline.open_spider()
    yield pipeline
    pipeline.close_spider()


@pytest.mark.parametrize(
    ("url", "body", "outcome", "detail"),
    [
        (
            "http://127.0.0.1/empty.html",
            b"<html><body></body></html>",
            "no_text",
            "the extractor found no main text",
        ),
        (
            "ftp://127.0.0.1/article.html",
            ARTICLE,
            "bad_url",
            "scheme 'ftp' is not http or https",
        ),
    ],
)
def test_a_permanent_error_is_the_pages_outcome(
    normalising: NormalisePipeline, url: str, body: bytes, outcome: str, detail: str
) -> None:
    page = _fetched_page(url, body)
    result = asyncio.run(normalising.process_item(page))
    assert isinstance(result, CrawlOutcome)
    assert (result.url, result.outcome, result.detail, result.status) == (
        page.url,
        outcome,
        detail,
        200,
    )


@pytest.mark.parametrize(
    ("error", "outcome", "detail"),
    [
        (UrlFailure("u", "extract_timeout", "over budget"), "extract_timeout", "over budget"),
        (UnsupportedURL("https://www.google.com/amp/", "no host"), "bad_url", "no host"),
        (PermanentError("odd"), "extract_failed", "PermanentError: odd"),
    ],
)
def test_each_permanent_error_names_its_outcome(
    error: PermanentError, outcome: str, detail: str
) -> None:
    assert _reason(error) == (outcome, detail)


def test_a_bug_in_normalising_still_fails_loudly(normalising: NormalisePipeline) -> None:
    # No body at all: normalise_page fails in its worker on something that is not a page.
    page = _fetched_page(body=None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        asyncio.run(normalising.process_item(page))


def test_a_page_is_never_normalised_before_the_pool_is_open() -> None:
    with pytest.raises(RuntimeError, match="before open_spider"):
        asyncio.run(NormalisePipeline().process_item(_fetched_page()))


def _compression() -> HttpCompressionMiddleware:
    return HttpCompressionMiddleware.from_crawler(get_crawler(settings_dict={}))


def _compressed(body: bytes, encoding: str) -> tuple[Request, Response]:
    url = "http://127.0.0.1/article.html"
    headers = {"Content-Encoding": encoding, "Content-Type": "text/html"}
    return Request(url), Response(url, body=body, headers=headers)


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", b"not gzip at all"),
        ("gzip", b"\x1f\x8b\x08" + bytes(20)),
        ("gzip", gzip.compress(ARTICLE)[:10]),
        ("deflate", b"not deflate either"),
        ("br", b"\xff\xff not brotli"),
        ("zstd", b"not zstd"),
    ],
)
def test_a_body_that_does_not_decode_as_declared_is_decode(encoding: str, body: bytes) -> None:
    with pytest.raises(Ignored) as ignored:
        _compression().process_response(*_compressed(body, encoding))
    assert ignored.value.reason == "decode"


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("gzip", gzip.compress(ARTICLE)),
        ("deflate", zlib.compress(ARTICLE)),
        ("br", brotli.compress(ARTICLE)),
        ("zstd", zstd.compress(ARTICLE)),
    ],
)
def test_a_body_that_decodes_is_passed_on(encoding: str, body: bytes) -> None:
    response = _compression().process_response(*_compressed(body, encoding))
    assert isinstance(response, Response) and response.body == ARTICLE


def test_a_bug_while_decoding_is_not_called_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> bytes:
        raise AttributeError("a bug, not a bad body")

    monkeypatch.setattr(HttpCompressionMiddleware, "_decode", staticmethod(broken))
    with pytest.raises(AttributeError):
        _compression().process_response(*_compressed(gzip.compress(ARTICLE), "gzip"))


# --------------------------------------------------------------------------- failing runs


@pytest.fixture
def importable_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the crawl process import this module's components."""
    monkeypatch.setenv("PYTHONPATH", str(TESTS))


@pytest.mark.usefixtures("importable_tests")
def test_an_item_pipeline_that_raises_fails_the_crawl() -> None:
    pipelines = {"test_crawl.ExplodingPipeline": 10}
    policy = replace(FAST, scrapy_settings={"ITEM_PIPELINES": pipelines})
    with FaultServer() as server:
        server.routes["/article.html"] = _article
        url = server.url("/article.html")
        with pytest.raises(CrawlFailed) as failed:
            crawl([_candidate(url)], settings=Settings(allow_private_networks=True), policy=policy)
    report = failed.value.report
    assert not report.ok
    _requested_once_each(report)
    assert report.outcomes[url].outcome == "error"
    assert "the index is on fire" in report.outcomes[url].detail
    assert "item pipeline errors: 1" in report.errors
    assert pickle.loads(pickle.dumps(failed.value)).report == report


@pytest.mark.usefixtures("importable_tests")
def test_a_url_that_a_component_loses_is_reported_missing() -> None:
    middlewares = {"test_crawl.SwallowingStartMiddleware": 10}
    policy = replace(
        FAST,
        allowed_networks=("127.0.0.2/32",),
        scrapy_settings={"SPIDER_MIDDLEWARES": middlewares},
    )
    with FaultServer("127.0.0.2") as server:
        server.routes["/article.html"] = _article
        kept, lost = server.url("/article.html"), server.url("/vanish")
        # Also here, as this crawl lets in 127.0.0.2 only: a host *name* that resolves to a
        # refused address is refused by the resolver the downloads use.
        by_name = server.url("/article.html", host="localhost")
        with pytest.raises(CrawlIncomplete) as incomplete:
            crawl(
                [_candidate(kept), _candidate(lost), _candidate(by_name)],
                settings=LOOPBACK_ONLY,
                policy=policy,
            )
    report = incomplete.value.report
    assert report.missing == (lost,)
    assert report.outcomes[kept].outcome == "normalised"
    refused = report.outcomes[by_name]
    assert refused.outcome == "blocked_address"
    assert refused.detail.startswith("localhost resolves to 127.0.0.1")
    assert report.counts()["faults"] == Counter(
        {"normalised": 1, "blocked_address": 1, "missing": 1}
    )


def test_the_address_rule() -> None:
    rule = AddressRule(allowed_networks=(ipaddress.ip_network("127.0.0.1/32"),))
    assert rule.allows("127.0.0.1")
    assert rule.allows("93.184.216.34")
    for refused in ("127.0.0.2", "10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1"):
        assert not rule.allows(refused), refused
    assert AddressRule(allow_private_networks=True).allows("10.1.2.3")


def test_an_empty_crawl_starts_nothing() -> None:
    report = crawl([], settings=LOOPBACK_ONLY)
    assert report.ok
    assert report.requested == () and report.elapsed == 0.0


def test_a_crawl_that_overruns_its_timeout_is_stopped_and_fails() -> None:
    # Stopped while it is still starting up: a crawl cut short before it could say anything.
    # (Stopped later, Scrapy shuts down gracefully and the summary and outcomes are kept.)
    with FaultServer() as server:
        server.routes["/stall"] = stall
        url = server.url("/stall")
        started = time.monotonic()
        with pytest.raises(CrawlFailed) as failed:
            crawl(
                [_candidate(url)],
                settings=Settings(allow_private_networks=True),
                policy=replace(FAST, download_timeout=30.0),
                timeout=2,
            )
    assert time.monotonic() - started < 2 + 16  # SIGTERM, then SIGKILL after the grace period
    report = failed.value.report
    assert any("did not finish within 2 s" in error for error in report.errors)
    assert report.missing == (url,)


# --------------------------------------------------------------------------- CPU budget

# Under the element cap (pipeline.normalise.extract.MAX_ELEMENTS), yet seconds of CPU to extract:
# the budget, not the cap, stops it.
SLOW_PAGE = b"<html><body>" + b"<p>lorem ipsum dolor sit</p>\n" * 45_000 + b"</body></html>"
# The page that once held a crawl for minutes (8.7 MB): the element cap refuses it at once.
HUGE_PAGE = b"<html><body>" + b"<p>lorem ipsum dolor sit</p>\n" * 300_000 + b"</body></html>"
OVER_BUDGET = (
    "over the 1 s CPU budget; the worker was stopped",
    # On a machine so busy that 1 s of CPU takes longer than the wall-clock backstop.
    "no result within 8 s of wall-clock time",
)


def _story(number: int) -> bytes:
    """A distinct article: the same words in an order of its own, so dedup keeps each."""
    words = (_PARAGRAPH * 6).split()
    random.Random(number).shuffle(words)
    text = " ".join(words)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Harbour report {number}</title></head><body><article>"
        f"<h1>Harbour report {number}</h1><p>{text}</p><p>{text[::-1]}</p>"
        f"</article></body></html>"
    ).encode()


def _html(body: bytes) -> Route:
    def route(handler: FaultHandler) -> None:
        handler.reply(200, body, content_type="text/html; charset=utf-8")

    return route


def test_a_page_over_the_cpu_budget_is_its_outcome_and_the_crawl_goes_on(
    es_client: Elasticsearch, es_settings: Settings
) -> None:
    names = IndexNames(es_settings.index_prefix)
    install(es_client, names.prefix)
    settings = es_settings.model_copy(
        update={"allow_private_networks": True, "extract_timeout": 1.0}
    )
    with FaultServer() as server:
        server.routes.update({f"/story-{i}.html": _html(_story(i)) for i in range(4)})
        server.routes.update({"/slow.html": _html(SLOW_PAGE), "/huge.html": _html(HUGE_PAGE)})
        urls = {path: canonicalize_url(server.url(path)) for path in server.routes}
        records = [
            FrontierRecord(url=url, canonical_url=url, source="budget", via="feed", discovered=NOW)
            for url in urls.values()
        ]
        assert enqueue(es_client, names, records, run_id=None).new == 6
        es_client.indices.refresh(index=names.frontier)
        source = Source(id="budget", name="Budget", homepage=server.url("/"), language="en")
        config = Config(settings=settings, sources=(source,), alerts=())
        # No policy timeout: the budget comes from the settings, as NEWSRADAR_EXTRACT_TIMEOUT.
        run = crawl_frontier(config, es_client, now=NOW, policy=FAST)

    report = run.report
    assert report is not None and report.ok, report and report.errors
    slow = report.outcomes[urls["/slow.html"]]
    assert (slow.outcome, slow.status) == ("extract_timeout", 200)
    assert slow.detail in OVER_BUDGET
    huge = report.outcomes[urls["/huge.html"]]
    assert (huge.outcome, huge.detail) == ("oversize", "300002 HTML elements > 50000")
    assert run.outcomes == {"budget": Counter(indexed=4, extract_timeout=1, oversize=1)}

    # Each outcome is on its URL's frontier record; the stories are indexed.
    es_client.indices.refresh(index=names.pattern)
    stored = es_client.mget(index=names.frontier, ids=[url_id(u) for u in urls.values()])
    record = {doc["_source"]["url"]: doc["_source"] for doc in stored["docs"]}
    assert (record[urls["/slow.html"]]["state"], record[urls["/slow.html"]]["outcome"]) == (
        "failed",
        "extract_timeout",
    )
    assert record[urls["/slow.html"]]["outcome_detail"] in OVER_BUDGET
    assert record[urls["/huge.html"]]["outcome"] == "oversize"
    stories = [urls[f"/story-{i}.html"] for i in range(4)]
    assert {record[url]["state"] for url in stories} == {"done"}
    articles = es_client.mget(index=names.articles, ids=[url_id(url) for url in stories])
    assert all(doc["found"] for doc in articles["docs"])
    assert es_client.count(index=names.articles)["count"] == 4
