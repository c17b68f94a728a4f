"""Tests for the demo news site: the real server on loopback, its feeds, sitemaps and catalog."""

from __future__ import annotations

import difflib
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
import urllib.robotparser
from collections import defaultdict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import feedparser
import lxml.etree
import lxml.html
import pytest

from devtools.demosite import (
    DEFAULT_ROOT,
    CatalogEntry,
    DemoSite,
    DemoSource,
    load_catalog,
    load_sources,
)
from pipeline.errors import ConfigError

SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
NS = {"sm": SITEMAP_NS, "news": NEWS_NS}
CATALOG = load_catalog()
SOURCES = load_sources()
FEED_SOURCES = [source for source in SOURCES if source.feed is not None]


class Response:
    """Status, headers and body of one loopback request."""

    def __init__(self, status: int, headers: Message, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


def fetch(url: str, headers: Mapping[str, str] | None = None, method: str = "GET") -> Response:
    request = urllib.request.Request(url, headers=dict(headers or {}), method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return Response(answer.status, answer.headers, answer.read())
    except urllib.error.HTTPError as error:  # urllib raises for 304 and 4xx alike
        with error:
            return Response(error.code, error.headers, error.read())


def raw_get(site: DemoSite, path: str) -> tuple[int, bytes]:
    """GET a path byte for byte, without the normalisation urllib might apply."""
    host, port = site.base_url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def page_text(entry: CatalogEntry, body: bytes) -> lxml.html.HtmlElement:
    return lxml.html.document_fromstring(body.decode(entry.charset))


def body_words(document: lxml.html.HtmlElement) -> list[str]:
    (body,) = document.xpath("//*[@itemprop='articleBody']")
    return str(body.text_content()).split()


def meta(document: lxml.html.HtmlElement, prop: str) -> str:
    (value,) = document.xpath(f"//meta[@property='{prop}']/@content")
    return str(value)


@pytest.fixture(scope="module")
def site() -> Iterator[DemoSite]:
    with DemoSite() as running:
        yield running


@pytest.fixture(scope="module")
def pages(site: DemoSite) -> dict[str, lxml.html.HtmlElement]:
    """Every catalog page, fetched once and parsed."""
    parsed = {}
    for entry in CATALOG:
        answer = fetch(site.url(entry.path))
        assert answer.status == 200, entry.path
        parsed[entry.path] = page_text(entry, answer.body)
    return parsed


@pytest.mark.parametrize("source", FEED_SOURCES, ids=lambda source: source.id)
def test_every_feed_parses_and_lists_exactly_its_in_feed_pages(
    site: DemoSite, source: DemoSource
) -> None:
    assert source.feed is not None
    answer = fetch(site.url(source.feed))
    assert answer.status == 200
    expected_type = f"application/{source.feed_format}+xml; charset=utf-8"
    assert answer.headers["Content-Type"] == expected_type
    feed = feedparser.parse(answer.body)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == ("rss20" if source.feed_format == "rss" else "atom10")
    links = [entry.link for entry in feed.entries]
    wanted = {site.url(e.path) for e in CATALOG if e.source == source.id and e.in_feed}
    assert len(links) == len(set(links))
    assert set(links) == wanted
    for entry in feed.entries:
        assert entry.title and entry.published_parsed is not None
        assert fetch(entry.link).status == 200, entry.link


def test_the_source_without_a_feed_is_found_by_sitemap_and_section_page(site: DemoSite) -> None:
    (no_feed,) = [source for source in SOURCES if source.feed is None]
    assert no_feed.id == "diario-del-puerto"
    assert no_feed.section_pages == ("/diario-del-puerto/seccion/mundo/",)
    assert not any(entry.in_feed for entry in CATALOG if entry.source == no_feed.id)


@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.id)
def test_section_pages_link_exactly_the_on_section_page_articles(
    site: DemoSite, source: DemoSource
) -> None:
    linked: set[str] = set()
    for path in source.section_pages:
        answer = fetch(site.url(path))
        assert answer.status == 200
        document = lxml.html.document_fromstring(answer.body)
        linked.update(str(href) for href in document.xpath("//main//a/@href"))
    wanted = {site.url(e.path) for e in CATALOG if e.source == source.id and e.on_section_page}
    assert linked == wanted


def test_every_catalog_page_answers_in_its_language(
    site: DemoSite, pages: dict[str, lxml.html.HtmlElement]
) -> None:
    for entry in CATALOG:
        document = pages[entry.path]
        assert document.get("lang") == entry.language, entry.path
        assert meta(document, "og:title") == entry.title, entry.path
        assert meta(document, "og:url") == site.url(entry.canonical), entry.path
        (canonical,) = document.xpath("//link[@rel='canonical']/@href")
        assert canonical == site.url(entry.canonical), entry.path
        published = datetime.fromisoformat(meta(document, "article:published_time"))
        assert published == entry.published, entry.path
        (headline,) = document.xpath("//h1")
        assert headline.text_content() == entry.title, entry.path
        assert document.xpath("//meta[@name='author']/@content"), entry.path
        assert document.xpath("//meta[@name='description']/@content"), entry.path


def test_article_bodies_are_250_to_700_words(pages: dict[str, lxml.html.HtmlElement]) -> None:
    counts = {path: len(body_words(document)) for path, document in pages.items()}
    assert all(250 <= count <= 700 for count in counts.values()), counts


def test_no_placeholder_survives_and_links_stay_on_the_site(
    site: DemoSite, pages: dict[str, lxml.html.HtmlElement]
) -> None:
    for path in ["/robots.txt", "/sitemap.xml", "/index.html", *(e.path for e in CATALOG)]:
        assert b"{{BASE}}" not in fetch(site.url(path)).body, path
    for path, document in pages.items():
        for href in document.xpath("//a/@href"):
            assert str(href).startswith(site.base_url + "/"), (path, href)


def test_news_sitemaps_list_exactly_the_in_sitemap_pages(site: DemoSite) -> None:
    parser = lxml.etree.XMLParser(resolve_entities=False, no_network=True)
    index = lxml.etree.fromstring(fetch(site.url("/sitemap.xml")).body, parser)
    assert index.tag == f"{{{SITEMAP_NS}}}sitemapindex"
    sitemaps = [str(loc) for loc in index.xpath("//sm:sitemap/sm:loc/text()", namespaces=NS)]
    assert sorted(sitemaps) == sorted(site.url(source.sitemap) for source in SOURCES)
    by_url = {site.url(source.sitemap): source for source in SOURCES}
    listed: set[str] = set()
    for sitemap_url in sitemaps:
        source = by_url[sitemap_url]
        answer = fetch(sitemap_url)
        assert answer.headers["Content-Type"] == "application/xml; charset=utf-8"
        urlset = lxml.etree.fromstring(answer.body, parser)
        for url in urlset.xpath("//sm:url", namespaces=NS):
            (loc,) = url.xpath("sm:loc/text()", namespaces=NS)
            (name,) = url.xpath("news:news/news:publication/news:name/text()", namespaces=NS)
            (lang,) = url.xpath("news:news/news:publication/news:language/text()", namespaces=NS)
            (date,) = url.xpath("news:news/news:publication_date/text()", namespaces=NS)
            (title,) = url.xpath("news:news/news:title/text()", namespaces=NS)
            assert (name, lang) == (source.name, source.language)
            entry = next(e for e in CATALOG if site.url(e.path) == loc)
            assert entry.source == source.id
            assert (title, datetime.fromisoformat(date)) == (entry.title, entry.published)
            listed.add(str(loc))
    assert listed == {site.url(entry.path) for entry in CATALOG if entry.in_sitemap}


def test_robots_disallows_the_private_path_only(site: DemoSite) -> None:
    robots = urllib.robotparser.RobotFileParser()
    robots.parse(fetch(site.url("/robots.txt")).body.decode("utf-8").splitlines())
    assert any(entry.robots_disallowed for entry in CATALOG)
    for entry in CATALOG:
        allowed = robots.can_fetch("newsradar", site.url(entry.path))
        assert allowed is not entry.robots_disallowed, entry.path
        assert entry.robots_disallowed is entry.path.startswith("/northwind-times/private/")
    sitemaps = robots.site_maps() or []
    assert site.url("/sitemap.xml") in sitemaps
    assert all(fetch(url).status == 200 for url in sitemaps)


def test_conditional_get_answers_304(site: DemoSite) -> None:
    url = site.url("/northwind-times/rss.xml")
    first = fetch(url)
    etag, last_modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert first.status == 200 and etag and last_modified
    again = fetch(url, {"If-None-Match": etag})
    assert (again.status, again.body, again.headers["ETag"]) == (304, b"", etag)
    assert fetch(url, {"If-None-Match": f'"other", W/{etag}'}).status == 304
    assert fetch(url, {"If-Modified-Since": last_modified}).status == 304
    assert fetch(url, {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}).status == 200
    # If-None-Match decides alone when both are sent (RFC 9110).
    both = {"If-None-Match": '"stale"', "If-Modified-Since": last_modified}
    assert fetch(url, both).status == 200


def test_a_changed_file_gets_a_new_etag(tmp_path: Path) -> None:
    root = tmp_path / "site"
    shutil.copytree(DEFAULT_ROOT, root)
    with DemoSite(root=root) as copy:
        url = copy.url("/baltic-observer/atom.xml")
        first = fetch(url)
        feed = root / "baltic-observer" / "atom.xml"
        feed.write_bytes(feed.read_bytes().replace(b"</feed>", b"<!-- updated --></feed>"))
        os.utime(feed, (feed.stat().st_atime, feed.stat().st_mtime + 5))
        second = fetch(url, {"If-None-Match": first.headers["ETag"]})
        assert second.status == 200
        assert second.headers["ETag"] != first.headers["ETag"]
        assert second.body.endswith(b"<!-- updated --></feed>\n")


TRAVERSALS = [
    "/../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/northwind-times/..%2f..%2fsecret.txt",
    "/northwind-times/%2e%2e/%2e%2e/secret.txt",
    "/..%5csecret.txt",
    "/..%c0%afsecret.txt",
    "/link/secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_traversal_out_of_the_root_is_refused(tmp_path: Path, path: str) -> None:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_text("<p>home</p>", encoding="utf-8")
    (root / "northwind-times").mkdir()
    (tmp_path / "secret.txt").write_text("TOP-SECRET", encoding="utf-8")
    (root / "link").symlink_to(tmp_path, target_is_directory=True)
    with DemoSite(root=root) as sandbox:
        status, body = raw_get(sandbox, path)
        assert status in (400, 404)
        assert b"TOP-SECRET" not in body
        assert raw_get(sandbox, "/index.html") == (200, b"<p>home</p>")


@pytest.mark.parametrize(
    "path", ["/../../pyproject.toml", "/%2e%2e/%2e%2e/pyproject.toml", "/..%2F..%2Fpyproject.toml"]
)
def test_traversal_to_the_repository_is_refused(site: DemoSite, path: str) -> None:
    status, body = raw_get(site, path)
    assert status in (400, 404)
    assert b"[project]" not in body


def test_the_windows_1252_page_is_served_without_a_charset(site: DemoSite) -> None:
    (entry,) = [entry for entry in CATALOG if entry.charset != "utf-8"]
    assert (entry.charset, entry.language) == ("windows-1252", "fr")
    answer = fetch(site.url(entry.path))
    assert answer.headers["Content-Type"] == "text/html"
    assert b"charset" not in answer.body.lower()
    with pytest.raises(UnicodeDecodeError):
        answer.body.decode("utf-8")
    document = lxml.html.document_fromstring(answer.body.decode("cp1252"))
    assert document.xpath("string(//h1)") == entry.title
    # U+2019 is 0x92 in windows-1252 and has no Latin-1 byte at all.
    assert "\u00ee" in entry.title and "\u2019" in entry.title
    # Latin-1 would turn the same bytes into C1 control characters: sniffing matters.
    assert "\x92" in answer.body.decode("latin-1")


def test_catalog_covers_six_languages_and_every_kind(
    pages: dict[str, lxml.html.HtmlElement],
) -> None:
    assert len(CATALOG) >= 30
    assert len({entry.language for entry in CATALOG}) >= 6
    assert {entry.kind for entry in CATALOG} == {
        "original",
        "exact_copy",
        "edited_copy",
        "reworded",
        "translation",
        "report",
    }
    enlargement_languages = {e.language for e in CATALOG if e.topic == "nato-enlargement"}
    assert enlargement_languages == {"en", "ru", "uk", "fr", "de", "es"}
    assert {e.language for e in CATALOG if e.topic == "nato-other"} >= {"en", "ru", "fr", "de"}
    for entry in CATALOG:
        assert datetime(2024, 1, 1, tzinfo=UTC) <= entry.published
        assert entry.published <= datetime(2026, 11, 20, tzinfo=UTC), entry.path
        assert entry.source == entry.path.split("/")[1]


def test_every_story_with_copies_has_exactly_one_original(
    pages: dict[str, lxml.html.HtmlElement],
) -> None:
    stories: defaultdict[str, list[CatalogEntry]] = defaultdict(list)
    for entry in CATALOG:
        stories[entry.story].append(entry)
    copied = {key: group for key, group in stories.items() if len(group) > 1}
    assert len(copied) >= 3
    for key, group in copied.items():
        (original,) = [entry for entry in group if entry.kind == "original"]
        told = [entry for entry in group if entry.kind in ("original", "report")]
        for copy in group:
            if copy is original:
                continue
            assert copy.topic == original.topic, key
            if copy.kind in ("exact_copy", "edited_copy"):
                # A copy is of the story's original or of one of its other reports.
                similar = max(similarity(pages, copy, source) for source in told)
                if copy.kind == "exact_copy":
                    assert similar == 1.0, copy.path
                else:
                    assert 0.8 <= similar < 0.97, copy.path
                    assert copy.path != original.path
            elif copy.kind == "reworded":
                similar = similarity(pages, copy, original)
                assert copy.language == original.language and similar < 0.5, copy.path
            elif copy.kind == "report":  # written independently, in any language
                assert similarity(pages, copy, original) < 0.5, copy.path
            else:
                assert copy.kind == "translation" and copy.language != original.language


def similarity(
    pages: dict[str, lxml.html.HtmlElement], one: CatalogEntry, other: CatalogEntry
) -> float:
    """How alike two pages' body words are, 0 to 1."""
    return difflib.SequenceMatcher(
        a=body_words(pages[one.path]), b=body_words(pages[other.path]), autojunk=False
    ).ratio()


def test_exact_copies_differ_in_boilerplate_and_url(site: DemoSite) -> None:
    for copy in (entry for entry in CATALOG if entry.kind == "exact_copy"):
        original = next(e for e in CATALOG if e.story == copy.story and e.kind == "original")
        assert copy.path != original.path
        copy_body = fetch(site.url(copy.path)).body
        assert copy_body != fetch(site.url(original.path)).body
        if copy.source == original.source:  # the AMP page of an article on the same site
            assert copy.path.startswith(f"/{copy.source}/amp/")
            assert copy.canonical == original.path
            assert b"<html amp " in copy_body
        else:  # a syndicated copy, on another site, claiming to be canonical itself
            assert copy.canonical == copy.path


def test_one_article_links_with_utm_parameters(
    site: DemoSite, pages: dict[str, lxml.html.HtmlElement]
) -> None:
    tracked = {
        path: [str(h) for h in document.xpath("//*[@itemprop='articleBody']//a/@href")]
        for path, document in pages.items()
    }
    tracked = {path: hrefs for path, hrefs in tracked.items() if any("utm_" in h for h in hrefs)}
    assert len(tracked) == 1
    (hrefs,) = tracked.values()
    for href in hrefs:
        assert re.search(r"[?&]utm_source=", href)
        assert fetch(href).status == 200, href


def test_server_answers_like_a_static_web_server(site: DemoSite) -> None:
    assert fetch(site.url("/no/such/page.html")).status == 404
    assert fetch(site.url("/.hidden")).status == 404
    assert fetch(site.url("/robots.txt")).headers["Content-Type"] == "text/plain; charset=utf-8"
    assert fetch(site.url("/catalog.json")).headers["Content-Type"].startswith("application/json")
    home = fetch(site.url("/northwind-times/"))
    assert home.status == 200 and home.headers["Content-Type"] == "text/html; charset=utf-8"
    status, _ = raw_get(site, "/northwind-times")
    assert status == 301
    assert fetch(site.url("/northwind-times")).body == home.body  # urllib follows the 301
    head = fetch(site.url("/northwind-times/rss.xml"), method="HEAD")
    assert head.status == 200 and head.body == b""
    assert int(head.headers["Content-Length"]) > 1000
    assert fetch(site.url("/robots.txt"), method="POST").status == 501
    with_query = fetch(site.url("/robots.txt?utm_source=x"))
    assert with_query.status == 200 and b"Disallow" in with_query.body


def test_url_and_base_url(site: DemoSite) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", site.base_url)
    assert site.url("robots.txt") == site.url("/robots.txt") == site.base_url + "/robots.txt"
    assert json.loads(fetch(site.url("/catalog.json")).body)["articles"]


def test_a_missing_root_or_broken_catalog_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        DemoSite(root=tmp_path / "missing")
    (tmp_path / "catalog.json").write_text('{"articles": [{"path": 1}]}', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"catalog\.json"):
        load_catalog(tmp_path)
    naive = {**json.loads((DEFAULT_ROOT / "catalog.json").read_bytes())["articles"][0]}
    naive["published"] = "2024-03-31T08:00:00"
    (tmp_path / "catalog.json").write_text(json.dumps({"articles": [naive]}), encoding="utf-8")
    with pytest.raises(ConfigError, match="UTC offset"):
        load_catalog(tmp_path)
    (tmp_path / "catalog.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not JSON"):
        load_sources(tmp_path)


# A process whose Ctrl-C the kernel hands to a thread other than the main one.
_CTRL_C_ON_ANOTHER_THREAD = """
import signal, threading, time
from devtools.foreground import stop_on_signals, wait_for_interrupt

def strike() -> None:
    time.sleep(0.3)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

stop_on_signals()
threading.Thread(target=strike).start()
wait_for_interrupt()
print("stopped")
"""


def test_ctrl_c_handed_to_a_server_thread_still_ends_the_foreground_wait() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _CTRL_C_ON_ANOTHER_THREAD],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert (done.returncode, done.stdout.strip()) == (0, "stopped"), done.stderr


def test_command_line_serves_until_ctrl_c() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.demosite", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, first
        lines = [first]
        while not lines[-1].startswith("Press Ctrl-C") and lines[-1]:
            lines.append(process.stdout.readline())
        assert fetch(match.group(0) + "/robots.txt").status == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    listing = "".join(lines) + out
    for source in SOURCES:
        assert f"{match.group(0)}{source.sitemap}" in listing
        if source.feed:
            assert f"{match.group(0)}{source.feed}" in listing
    assert "Stopped." in out
    assert "Traceback" not in err


def test_command_line_reports_a_busy_port_in_one_line(site: DemoSite) -> None:
    port = site.base_url.rsplit(":", 1)[1]
    done = subprocess.run(
        [sys.executable, "-m", "devtools.demosite", "--port", port],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert done.stderr.startswith(f"demosite: cannot listen on 127.0.0.1:{port}")
    assert done.stderr.count("\n") == 1
