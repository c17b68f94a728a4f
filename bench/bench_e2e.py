"""End-to-end benchmark: feeds to indexed, deduplicated, matched articles and a mailed digest.

Serves a generated news site on loopback (bench/corpus.py: >= 2000 articles in 5 languages,
about 15% near copies syndicated to a second outlet; 10 outlets, one RSS feed each) from a child
process, then runs one cycle of the main job in this process, as ``newsradar run`` and the
DAGs do (pipeline.jobs: pull, crawl in a Scrapy child process, dedup and index, match one
multilingual rule, mail the digest to a loopback sink) against the local Elasticsearch node.
Prints the stages' rates, the peak memory of this process and of the crawl process, and the
alert latency. Then runs news-please (PyPI) over the same pages as a reference: its own fetch
and extraction (``NewsPlease.from_urls``), which neither dedups, indexes nor matches.

    .venv/bin/python bench/bench_e2e.py [--articles 2000] [--concurrency 16] [--no-reference]

news-please comes from bench/reference.py: this interpreter's when installed (the ``bench``
extra), else a virtualenv of its own under .local/bench-newsplease, created on first use.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from bench_crawl import StaticHandler, StaticSite
from corpus import LANGUAGES, GeneratedArticle, generate_articles
from elasticsearch import Elasticsearch
from reference import NEWSPLEASE, run_reference

from devtools.mailsink import MailSink
from pipeline import jobs
from pipeline.alerts.rules import store_rules
from pipeline.crawl.process import CrawlPolicy
from pipeline.settings import AlertRule, Config, Source, load_settings
from pipeline.store.client import IndexNames, install

NOW = datetime.now(UTC).replace(microsecond=0)
# The corpus' "alliance" topic, in each of its languages.
RULE = AlertRule(
    id="alliance-enlargement",
    name="Alliance enlargement",
    recipients=("analyst@newsradar.test",),
    digest="1m",
    queries={
        "en": "alliance AND (enlargement OR membership OR ratification)",
        "de": "Erweiterung* OR Bündnisbeitritt OR Beitritt*",
        "fr": "élargissement OR adhésion",
        "es": "ampliación OR adhesión",
        "ru": "расширени* OR вступлени*",
    },
)
SECTIONS = ("world", "politics", "economy", "science", "culture", "sport")


@dataclass(frozen=True)
class Page:
    """One article page of the generated site."""

    path: str
    source: str
    article: GeneratedArticle
    published: datetime


def plan_site(count: int, seed: int) -> tuple[list[Page], list[str]]:
    """The pages (originals at outlet ``<lang>-a`` or ``-b``, copies at the other) and outlets."""
    pages: list[Page] = []
    home: dict[str, str] = {}
    rng = random.Random(seed)
    for index, article in enumerate(generate_articles(count, seed=seed)):
        published = NOW - timedelta(minutes=5 * (count - index) + rng.randrange(5))
        if article.duplicate_of is None:
            source = f"news-{article.language}-{'ab'[index % 2]}"
        else:  # syndicated: the copy appears at the original's sister outlet
            origin = home[article.duplicate_of]
            source = origin[:-1] + ("b" if origin.endswith("a") else "a")
        home[article.id] = source
        path = f"/{source}/{rng.choice(SECTIONS)}/{published:%Y/%m/%d}/{article.id}.html"
        pages.append(Page(path, source, article, published))
    outlets = sorted({f"news-{lang}-{x}" for lang in LANGUAGES for x in "ab"})
    return pages, outlets


def _html(page: Page, rng: random.Random) -> bytes:
    """An article page with the chrome real sites have: menus, scripts, related links."""
    article = page.article
    paragraphs = "\n".join(f"<p>{escape(p)}</p>" for p in article.text.split("\n") if p.strip())
    menu = "".join(f'<li><a href="/{page.source}/{s}/">{s.title()}</a></li>' for s in SECTIONS)
    related = "".join(
        f'<li><a href="/{page.source}/world/story-{rng.randrange(10**6)}.html">'
        f"Related story {rng.randrange(10**4)}</a></li>"
        for _ in range(10)
    )
    script = "var cfg = {" + ",".join(f'"k{i}": {rng.random():.5f}' for i in range(150)) + "};"
    css = " ".join(f".c{i} {{ margin: {i % 7}px; }}" for i in range(80))
    title = escape(article.title)
    return f"""<!DOCTYPE html>
<html lang="{article.language}"><head><meta charset="utf-8">
<title>{title} | {page.source}</title>
<link rel="canonical" href="{page.path}">
<meta property="og:title" content="{title}">
<meta property="article:published_time" content="{page.published.isoformat()}">
<style>{css}</style><script>{script}</script></head>
<body><div class="cookie-banner">We use cookies. <button>Accept</button></div>
<header><a href="/{page.source}/">{page.source}</a><nav><ul>{menu}</ul></nav></header>
<main><article><h1>{title}</h1>
<div class="byline">{page.published:%d.%m.%Y %H:%M}</div>
{paragraphs}
</article><aside><h2>Related</h2><ul>{related}</ul></aside></main>
<footer><ul>{menu}</ul><p>Imprint | Privacy | Contact</p></footer></body></html>
""".encode()


def _feed(source: str, pages: list[Page], base: str) -> bytes:
    items = "\n".join(
        f"<item><title>{escape(p.article.title)}</title><link>{base}{p.path}</link>"
        f'<guid isPermaLink="true">{base}{p.path}</guid>'
        f"<pubDate>{format_datetime(p.published)}</pubDate></item>"
        for p in sorted(pages, key=lambda p: p.published, reverse=True)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>'
        f"<title>{source}</title><link>{base}/{source}/</link><description>{source}</description>"
        f"\n{items}\n</channel></rss>\n"
    ).encode()


def _serve(count: int, seed: int, ready: Connection) -> None:
    """The site's process: build every page and feed, tell the port, serve until killed."""
    server = StaticSite(("127.0.0.1", 0), StaticHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pages, outlets = plan_site(count, seed)
    rng = random.Random(seed)
    files = {page.path: _html(page, rng) for page in pages}
    for source in outlets:
        files[f"/{source}/rss.xml"] = _feed(source, [p for p in pages if p.source == source], base)
    files["/robots.txt"] = b"User-agent: *\nDisallow: /private/\n"
    server.pages = files
    ready.send(server.server_address[1])
    server.serve_forever()


@dataclass
class Run:
    """What the cycle did and how long each stage took."""

    pull: float
    crawl: float
    match: float
    deliver: float
    report: jobs.IngestReport
    sent: int
    delivered_at: datetime


def run_pipeline(config: Config, es: Elasticsearch, policy: CrawlPolicy) -> Run:
    """One cycle as jobs.run_cycle runs it (ingest, then deliver), timing its stages."""
    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        marks.setdefault(message.split(":")[0].split(" ")[0], time.monotonic())

    started = time.monotonic()
    report = jobs.ingest(config, es, now=NOW, policy=policy, force_pull=True, progress=progress)
    ingested = time.monotonic()
    delivery = jobs.deliver(config, es, now=datetime.now(UTC))
    delivered = time.monotonic()
    pull = marks.get("pull", started) - started
    crawl = report.crawl.report.elapsed if report.crawl and report.crawl.report else 0.0
    crawl_start = marks.get("claimed", marks.get("discovery", started))
    return Run(
        pull=pull,
        crawl=crawl,
        match=max(0.0, ingested - crawl_start - crawl),
        deliver=delivered - ingested,
        report=report,
        sent=delivery.sent,
        delivered_at=datetime.now(UTC),
    )


def _peak_mib(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # kilobytes on Linux


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16, help="requests at once to the site")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-reference", action="store_true", help="skip news-please")
    parser.add_argument("--reference-chunk", type=int, default=200)
    parser.add_argument(
        "--scrapy", action="append", default=[], metavar="NAME=VALUE", help="extra Scrapy setting"
    )
    args = parser.parse_args(argv)

    pages, outlets = plan_site(args.articles, args.seed)
    # Fork before this process grows: the site's memory is the site's, not the pipeline's.
    receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    site = multiprocessing.get_context("fork").Process(
        target=_serve, args=(args.articles, args.seed, send), daemon=True
    )
    site.start()
    base = f"http://127.0.0.1:{receive.recv()}"
    prefix = f"bench-e2e-{uuid.uuid4().hex[:8]}"
    es: Elasticsearch | None = None
    try:
        with MailSink(Path(tempfile.mkdtemp()) / "bench.mbox", port=0) as sink:
            settings = load_settings(
                {
                    "NEWSRADAR_INDEX_PREFIX": prefix,
                    "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1",
                    "NEWSRADAR_SMTP_PORT": str(sink.port),
                }
            )
            sources = tuple(
                Source(id=o, name=o, feeds=(f"{base}/{o}/rss.xml",), language=o.split("-")[1])
                for o in outlets
            )
            config = Config(settings=settings, sources=sources, alerts=(RULE,))
            es = Elasticsearch(settings.es_url, request_timeout=120)
            install(es, prefix)
            store_rules(es, IndexNames(prefix), config.alerts, source="bench")
            # As `NEWSRADAR_CRAWL_DELAY=0 NEWSRADAR_CRAWL_CONCURRENCY=16 newsradar run` does.
            policy = jobs.crawl_policy(
                load_settings(
                    {
                        "NEWSRADAR_CRAWL_DELAY": "0",
                        "NEWSRADAR_CRAWL_CONCURRENCY": str(args.concurrency),
                    }
                )
            )
            policy = replace(
                policy,
                log_level="WARNING",
                scrapy_settings={**policy.scrapy_settings, **dict(map(_setting, args.scrapy))},
            )
            self_before = _peak_mib(resource.RUSAGE_SELF)
            run = run_pipeline(config, es, policy)
            self_peak = _peak_mib(resource.RUSAGE_SELF)
            crawl_peak = _peak_mib(resource.RUSAGE_CHILDREN)  # the crawl process, reaped
            messages = sink.messages()
            latencies = _alert_latencies(es, IndexNames(prefix), messages, run.delivered_at)
            _print(args, pages, outlets, run, (self_before, self_peak, crawl_peak), latencies)
            ours = _articles(run) / (run.pull + run.crawl + run.match)
    finally:
        if es is not None:
            es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
            es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")
            es.close()
    try:
        if not args.no_reference:
            urls = [base + page.path for page in pages]
            reference, origin = run_reference(urls, args.reference_chunk)
            theirs = reference["pages"] / reference["seconds"]
            print(
                f"\nreference: news-please {NEWSPLEASE.split('==')[1]} ({origin}), fetch + extract"
            )
            print(f"{'':<44}{'pages':>7}{'seconds':>10}{'pages/s':>10}")
            print(
                f"{'news-please from_urls (fetch + extract)':<44}{reference['pages']:>7}"
                f"{reference['seconds']:>10.1f}{theirs:>10.1f}"
            )
            print(
                f"  extracted {reference['extracted']} with text, {reference['titled']} with "
                f"a title; languages {reference['languages']}"
            )
            print(
                f"ratio: newsradar end to end / news-please fetch + extract = {ours / theirs:.2f}"
            )
    finally:
        site.kill()
        site.join()
    return 0


def _setting(item: str) -> tuple[str, Any]:
    name, _, value = item.partition("=")
    return name, json.loads(value) if value[:1] in "0123456789[{tf-" else value


def _articles(run: Run) -> int:
    return run.report.counts()["indexed"] + run.report.counts()["duplicates"]


def _alert_latencies(
    es: Elasticsearch, names: IndexNames, messages: list[Any], delivered: datetime
) -> list[float]:
    """Seconds from each alerted article's fetch to the digest reaching the mail sink."""
    if not messages:
        return []
    sent = min(
        (parsedate_to_datetime(str(m["Date"])) for m in messages if m["Date"]), default=delivered
    )
    es.indices.refresh(index=names.pattern)
    alerts = es.search(
        index=names.alert_outbox,
        query={"term": {"kind": "alert"}},
        size=5000,
        source_includes=["articles"],
    )["hits"]["hits"]
    ids = sorted({a for hit in alerts for a in hit["_source"]["articles"]})
    if not ids:
        return []
    docs = es.mget(index=names.articles, ids=ids, source_includes=["fetched"])["docs"]
    fetched = [datetime.fromisoformat(d["_source"]["fetched"]) for d in docs if d.get("found")]
    # The Date header has whole seconds: delivery is taken as the end of that second at most.
    arrival = max(sent, delivered)
    return [max(0.0, (arrival - f).total_seconds()) for f in fetched]


def _print(
    args: argparse.Namespace,
    pages: list[Page],
    outlets: list[str],
    run: Run,
    memory: tuple[float, float, float],
    latencies: list[float],
) -> None:
    counts = run.report.counts()
    languages = Counter(p.article.language for p in pages)
    copies = sum(p.article.duplicate_of is not None for p in pages)
    articles = _articles(run)
    ingest = run.pull + run.crawl + run.match
    print("command: " + shlex.join([sys.executable, *sys.argv]))
    print(
        f"site: {len(pages)} article pages in {len(languages)} languages "
        f"({', '.join(f'{k} {v}' for k, v in sorted(languages.items()))}), {copies} near copies "
        f"({copies / len(pages):.0%}) syndicated to a sister outlet; {len(outlets)} outlets with "
        f"one RSS feed each; loopback, crawl concurrency {args.concurrency}"
    )
    print(f"{'stage':<44}{'items':>7}{'seconds':>10}{'items/s':>10}")
    rows = [
        (f"pull ({counts['feeds_polled']} feeds) into the frontier", counts["pulled"], run.pull),
        ("crawl: fetch, normalise, dedup, index", counts["crawled"], run.crawl),
        ("record outcomes, match 1 rule (5 languages)", articles, run.match),
        ("end to end: pull to indexed + matched", articles, ingest),
    ]
    for name, items, seconds in rows:
        print(f"{name:<44}{items:>7}{seconds:>10.1f}{items / max(seconds, 1e-9):>10.1f}")
    print(f"{'deliver the digest':<44}{run.sent:>7}{run.deliver:>10.1f}")
    print(
        f"outcome: {counts['indexed']} indexed as new stories, {counts['duplicates']} as copies, "
        f"{counts['not_indexed']} not indexed; {counts['matches']} rule matches, "
        f"{counts['alerts']} alerts; {run.sent} digest(s) mailed"
    )
    before, self_peak, crawl_peak = memory
    print(
        f"peak memory (RSS): pipeline process {self_peak:.0f} MiB (before the run {before:.0f}), "
        f"crawl process {crawl_peak:.0f} MiB"
    )
    if latencies:
        print(
            f"alert latency, article fetched to digest mailed: min {min(latencies):.1f} s, "
            f"median {statistics.median(latencies):.1f} s, max {max(latencies):.1f} s "
            f"({len(latencies)} alerted articles); feed entry to digest mailed: "
            f"{ingest + run.deliver:.1f} s"
        )


if __name__ == "__main__":
    sys.exit(main())
