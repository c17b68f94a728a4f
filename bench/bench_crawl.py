"""Crawl benchmark: discover a generated local site by its sitemap, crawl, normalise, index it.

Serves >= 2000 generated article pages in 6 languages from a loopback HTTP server, finds them
through a sitemap with pipeline.discover.listings, and runs the Scrapy crawl stage (fetch +
normalise + dedup + index into the local Elasticsearch node, in its own process) over them, under a
throwaway index prefix removed afterwards. Prints pages/s and the outcome counts.

``--slow-pages N`` adds N pathological pages (45,000 tiny paragraphs: seconds of CPU each to
extract) and ``--extract-timeout S`` sets the per-page CPU budget: those pages end as
``extract_timeout`` while the crawl goes on.

    .venv/bin/python bench/bench_crawl.py [--pages 2000] [--concurrency 8] [--no-index]
        [--slow-pages 0] [--extract-timeout 10]
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

from bench_extract import make_page

from pipeline.crawl.process import CrawlPolicy, crawl
from pipeline.discover.listings import discover_source
from pipeline.net.fetch import FetchPolicy
from pipeline.settings import Source, load_settings
from pipeline.store.client import IndexNames, connect, install


class StaticSite(ThreadingHTTPServer):
    """A loopback site serving ``pages`` (path -> body); the benchmarks' generated web."""

    daemon_threads = True
    pages: dict[str, bytes]


class StaticHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StaticSite

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        body = self.server.pages.get(path)
        if body is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        kind = "text/html; charset=utf-8"
        if path.endswith("rss.xml"):
            kind = "application/rss+xml"
        elif path.endswith(".xml"):
            kind = "application/xml"
        elif path == "/robots.txt":
            kind = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


# Under the element cap of pipeline.normalise.extract, yet about 4 s of CPU to extract.
SLOW_PAGE = b"<html><body>" + b"<p>lorem ipsum dolor sit</p>\n" * 45_000 + b"</body></html>"


def _build_site(count: int, base: str, slow: int = 0) -> dict[str, bytes]:
    rng = random.Random(7)
    pages: dict[str, bytes] = {}
    entries: list[str] = []
    for index in range(count):
        page = make_page(rng, index)
        path = urlsplit(page.url).path
        pages[path] = page.body
        entries.append(
            f"<url><loc>{escape(base + path)}</loc>"
            f"<lastmod>{page.published.isoformat()}</lastmod></url>"
        )
    for index in range(slow):
        path = f"/slow/{index}.html"
        pages[path] = SLOW_PAGE
        entries.append(f"<url><loc>{escape(base + path)}</loc></url>")
    pages["/sitemap.xml"] = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">\n'
        + "\n".join(entries)
        + "\n</urlset>\n"
    ).encode()
    pages["/robots.txt"] = b"User-agent: *\nDisallow: /private/\n"
    return pages


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--no-index", action="store_true", help="fetch + normalise only")
    parser.add_argument("--slow-pages", type=int, default=0, help="pathological pages to add")
    parser.add_argument("--extract-timeout", type=float, default=10.0, help="CPU s per page")
    args = parser.parse_args(argv)
    index = not args.no_index
    prefix = f"bench-crawl-{int(time.time())}"

    server = StaticSite(("127.0.0.1", 0), StaticHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.pages = _build_site(args.pages, base, args.slow_pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = load_settings(
        {
            "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWSRADAR_INDEX_PREFIX": prefix,
            "NEWSRADAR_EXTRACT_TIMEOUT": str(args.extract_timeout),
        }
    )
    es = connect(settings)
    if index:
        install(es, prefix)
    source = Source(id="bench", name="Bench", sitemaps=(f"{base}/sitemap.xml",))
    try:
        started = time.monotonic()
        found = discover_source(
            source, policy=FetchPolicy(allow_private_networks=True), now=datetime.now(UTC)
        )
        discovered = time.monotonic() - started
        policy = CrawlPolicy(
            concurrency_per_domain=args.concurrency,
            download_delay=0.0,
            autothrottle_start_delay=0.01,
            log_level="WARNING",
        )
        report = crawl(
            list(found.candidates.values()), settings=settings, policy=policy, index=index
        )
        if index:
            es.indices.refresh(index=f"{prefix}-*")
            stored = es.count(index=IndexNames(prefix).articles)["count"]
    finally:
        server.shutdown()
        if index:
            es.indices.delete(index=f"{prefix}-*", expand_wildcards="all")
            es.indices.delete_index_template(name=f"{prefix}-*")
        es.close()
    outcomes = Counter(o.outcome for o in report.outcomes.values())
    fetched = len(report.outcomes)
    print("command: " + shlex.join([sys.executable, *sys.argv]))
    print(f"site: {args.pages} generated pages in 6 languages on loopback, sitemap discovery")
    if args.slow_pages:
        print(f"plus {args.slow_pages} pathological pages; budget {args.extract_timeout:g} s CPU")
    print(f"{'stage':<36}{'pages':>7}{'seconds':>10}{'pages/s':>10}")
    print(f"{'discover (sitemap)':<36}{len(found.candidates):>7}{discovered:>10.2f}{'':>10}")
    rate = fetched / report.elapsed
    stage = "crawl: fetch + normalise + index" if index else "crawl: fetch + normalise"
    print(f"{stage:<36}{fetched:>7}{report.elapsed:>10.2f}{rate:>10.1f}")
    if index:
        print(f"articles in the index afterwards: {stored}")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in outcomes.most_common()))
    peak = report.stats.get("memusage/max")
    if isinstance(peak, int):
        print(f"crawl process peak memory: {peak / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
