"""Feed-pull benchmark: 200 local feeds x 50 entries, pulled twice, 10% of them broken.

The first pull parses every feed; the second sends the stored validators, gets 304s (or the same
body for feeds without validators) and must add no entries. Broken feeds (5xx, malformed XML,
HTML instead of a feed) must end unhealthy without stopping the pull.

    .venv/bin/python bench/bench_pull.py [--feeds 200] [--entries 50] [--workers 8]

With ``--es`` the pulls go through the pull stage (pipeline.feeds.pull) into the frontier on
the local Elasticsearch node, under a throwaway index prefix that is deleted afterwards; the
frontier is counted in Elasticsearch after each pull and the feed states are read back from it.

    .venv/bin/python bench/bench_pull.py --es [--es-url http://127.0.0.1:9200]
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from pipeline.feeds import state as feedstate
from pipeline.feeds.parse import FeedEntry, FeedState
from pipeline.feeds.poll import FeedPoll, poll_feed
from pipeline.feeds.pull import PullReport, pull
from pipeline.net.fetch import FetchPolicy
from pipeline.settings import Config, Source, load_settings
from pipeline.store.client import IndexNames, connect, install

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


class _Feeds(ThreadingHTTPServer):
    daemon_threads = True
    bodies: dict[str, tuple[int, str, bytes, bool]]  # path -> status, type, body, validators

    def handle_error(self, request: object, client_address: object) -> None:
        """Quiet: the client hanging up early on a refused feed is expected here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Feeds

    def do_GET(self) -> None:
        entry = self.server.bodies.get(urlsplit(self.path).path)
        if entry is None:
            self._send(404, "text/plain", b"")
            return
        status, kind, body, validators = entry
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if validators and self.headers.get("If-None-Match") == etag:
            self._send(304, kind, b"", {"ETag": etag})
            return
        self._send(status, kind, body, {"ETag": etag} if validators else {})

    def _send(
        self, status: int, kind: str, body: bytes, extra: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


def _rss(feed: int, entries: int) -> bytes:
    items = []
    for n in range(entries):
        published = format_datetime(NOW - timedelta(minutes=17 * n + feed))
        items.append(
            f"<item><title>Feed {feed} story {n}: harbour talks resume</title>"
            f"<link>https://feed{feed}.example/news/{n}/harbour-talks-resume.html?utm_source=rss</link>"
            f"<guid>feed{feed}-{n}</guid><pubDate>{published}</pubDate>"
            f"<description>&lt;p&gt;Talks went on, day {n}.&lt;/p&gt;</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>https://feed{feed}.example/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode()


def _site(feeds: int, entries: int) -> dict[str, tuple[int, str, bytes, bool]]:
    bodies: dict[str, tuple[int, str, bytes, bool]] = {}
    for feed in range(feeds):
        path = f"/feed-{feed}.xml"
        if feed % 10 == 3:  # 10% broken, three ways
            kind = feed // 10 % 3
            if kind == 0:
                bodies[path] = (503, "text/plain", b"maintenance", False)
            elif kind == 1:
                bodies[path] = (200, "application/rss+xml", _rss(feed, entries)[:-300], True)
            else:
                bodies[path] = (200, "text/html", b"<html><body>Gone</body></html>", True)
            continue
        # A fifth of the healthy feeds send no validators: the body hash must spot them.
        bodies[path] = (200, "application/rss+xml", _rss(feed, entries), feed % 5 != 0)
    return bodies


def _pull(
    urls: list[str], states: dict[str, FeedState], seen: set[str], workers: int
) -> tuple[list[FeedPoll], float]:
    lock = threading.Lock()
    policy = FetchPolicy(allow_private_networks=True, deadline=10.0)

    def is_new(entry: FeedEntry) -> bool:
        with lock:  # stands in for the frontier's create-if-absent
            fresh = entry.url not in seen
            seen.add(entry.url)
        return fresh

    def one(url: str) -> FeedPoll:
        return poll_feed(url, states.get(url, FeedState()), policy=policy, now=NOW, is_new=is_new)

    started = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        polls = list(pool.map(one, urls))
    elapsed = time.monotonic() - started
    for poll in polls:
        states[poll.url] = poll.state
    return polls, elapsed


def _pull_into_es(urls: list[str], es_url: str, workers: int) -> None:
    """Both pulls through ingest_feeds.pull into a throwaway frontier; print what ES holds."""
    prefix = f"bench-{uuid.uuid4().hex[:10]}"
    settings = load_settings({"NEWSRADAR_ES_URL": es_url, "NEWSRADAR_INDEX_PREFIX": prefix})
    # Ten feeds per source, as a large site with section feeds would have.
    sources = tuple(
        Source(id=f"bench-{n // 10:03d}", name=f"Bench {n // 10}", feeds=tuple(urls[n : n + 10]))
        for n in range(0, len(urls), 10)
    )
    config = Config(settings, sources, ())
    names = IndexNames(prefix)
    policy = FetchPolicy(allow_private_networks=True, deadline=10.0)
    es = connect(settings)
    try:
        install(es, prefix)
        rows: list[tuple[str, PullReport, int]] = []
        for name, force in (("first", False), ("second", True)):
            report = pull(config, es, now=NOW, policy=policy, workers=workers, force=force)
            rows.append((name, report, int(es.count(index=names.frontier)["count"])))
        stored = feedstate.load(es, names, sources)
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*", expand_wildcards="all")
        es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")
        es.close()
    print(f"through ingest_feeds.pull into the frontier on {es_url} (prefix {prefix}, deleted)")
    header = f"{'pull':<8}{'seconds':>9}{'feeds/s':>9}{'entries':>9}{'entries/s':>11}{'new':>7}"
    print(header + f"{'seen':>7}{'frontier':>10}{'not-mod':>9}{'errors':>8}")
    previous = 0
    for name, report, frontier in rows:
        entries = sum(f.entries for s in report.sources.values() for f in s.feeds)
        print(
            f"{name:<8}{report.elapsed:>9.2f}{report.polled / report.elapsed:>9.0f}{entries:>9}"
            f"{entries / report.elapsed:>11.0f}{report.new:>7}{report.seen:>7}{frontier:>10}"
            f"{report.not_modified:>9}"
            f"{report.errors:>8}"
        )
        if name == "second":
            print(
                f"frontier entries added by the second pull (counted in ES): {frontier - previous}"
            )
        previous = frontier
    unhealthy = [f for f in stored.values() if not f.healthy]
    reasons = Counter(f.state.reason for f in unhealthy)
    print(
        f"unhealthy feed states in ES: {len(unhealthy)} of {len(stored)} ("
        + ", ".join(f"{k} {v}" for k, v in reasons.most_common())
        + ")"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--entries", type=int, default=50)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--es", action="store_true", help="pull into the frontier on a node")
    parser.add_argument("--es-url", default="http://127.0.0.1:9200")
    args = parser.parse_args(argv)
    server = _Feeds(("127.0.0.1", 0), _Handler)
    server.bodies = _site(args.feeds, args.entries)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = [f"{base}/feed-{n}.xml" for n in range(args.feeds)]
    states: dict[str, FeedState] = {}
    seen: set[str] = set()
    if args.es:
        print("command: " + shlex.join([sys.executable, *sys.argv]))
        print(f"{args.feeds} feeds x {args.entries} entries on loopback, {args.workers} workers")
        try:
            _pull_into_es(urls, args.es_url, args.workers)
        finally:
            server.shutdown()
        return 0
    try:
        first, first_s = _pull(urls, states, seen, args.workers)
        second, second_s = _pull(urls, states, seen, args.workers)
    finally:
        server.shutdown()
    print("command: " + shlex.join([sys.executable, *sys.argv]))
    print(f"{args.feeds} feeds x {args.entries} entries on loopback, {args.workers} workers")
    header = f"{'pull':<8}{'seconds':>9}{'entries':>9}{'entries/s':>11}{'new':>7}{'parsed':>8}"
    print(header + f"{'unchanged':>11}{'unhealthy':>11}")
    for name, polls, seconds in (("first", first, first_s), ("second", second, second_s)):
        entries = sum(len(p.feed.entries) for p in polls if p.feed is not None)
        new = sum(len(p.new_entries) for p in polls)
        parsed = sum(p.feed is not None for p in polls)
        unchanged = sum(p.state.last_outcome == "not_modified" for p in polls)
        unhealthy = sum(p.state.health != "ok" for p in polls)
        print(
            f"{name:<8}{seconds:>9.2f}{entries:>9}{entries / seconds:>11.0f}{new:>7}{parsed:>8}"
            f"{unchanged:>11}{unhealthy:>11}"
        )
    reasons = Counter(p.state.reason for p in second if p.state.health != "ok")
    print("unhealthy after two pulls: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
