"""End-to-end benchmark on real article pages, with where every CPU second goes.

Serves the real-page corpus (``--corpus``, default ../shared/corpus/readability-pages beside
the repository) on loopback from a child process, multiplied into a site of ``--pages`` URLs
(bench/real_site.py: the 50 originals and their syndicated copies, lightly edited, at ten
outlets with one RSS feed each). Runs one cycle of the main job in this process as
``NEWSRADAR_CRAWL_DELAY=0 NEWSRADAR_CRAWL_CONCURRENCY=8 newsradar run`` would (pipeline.jobs:
pull, crawl in a Scrapy child process, extraction workers, stories, index, match one rule in
four languages, mail the digest to a loopback sink) against the local Elasticsearch node,
under a throwaway index prefix. Then scores the extraction on the corpus (token F1 against
each page's reference text) and runs news-please over the same URLs for the ratio.

    .venv/bin/python bench/bench_real.py [--pages 2000] [--concurrency 8] [--corpus DIR]
        [--no-reference] [--profile DIR]

Where the CPU figures come from:
- this process: ``time.process_time()`` less the sampler thread's own CPU; its steps from
  ``jobs.IngestReport.times`` (each step's CPU of the calling thread);
- the crawl process: this process's ``getrusage(RUSAGE_CHILDREN)``, exact once it is reaped;
  its steps from the crawl's stats (the item pipelines' counters: the workers' per-step CPU
  of normalise_page, the index thread's CPU per step and its Elasticsearch requests);
- the fork server and the extraction workers (children of the fork server, which the crawl
  process never reaps): /proc/<pid>/stat, sampled every 0.5 s (bench/proc_meter.py);
- the Elasticsearch node: /proc/<pid>/stat of its java process (the pid file of
  docker/es-up.sh); a node shared with other work is split by its own timers (indexing,
  search, get, refresh, merges, flush on this run's indices against all of them); the
  machine: /proc/stat, so the load of other processes is shown too.
Peak memory: VmHWM per process, and the largest sampled sum of RSS and of PSS.

``--profile DIR`` also runs py-spy (``.local/py-spy/bin/py-spy`` or on PATH; install it with
``pip install --target .local/py-spy py-spy``) over the run, every process of it, and prints
the costliest functions per article; the raw stacks stay in DIR/profile.txt.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shlex
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench_crawl import StaticHandler, StaticSite
from bench_extract import CORPUS, CorpusMissing, print_scores, score_corpus
from elasticsearch import Elasticsearch
from proc_meter import TreeSampler, busy_seconds, cpu_seconds, memory_kib, node_pid
from real_profile import Profiler
from real_site import OUTLETS, Original, SitePage, build_site, load_originals, plan_site
from reference import NEWSPLEASE, run_reference

from devtools.mailsink import MailSink
from pipeline import jobs
from pipeline.alerts.rules import store_rules
from pipeline.crawl.process import CrawlPolicy
from pipeline.settings import AlertRule, Config, Source, load_settings
from pipeline.store.client import IndexNames, install
from spiders.pipelines.index import RequestMeter

REPO = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC).replace(microsecond=0)
# A topic several corpus pages share, in four of the analysed languages.
RULE = AlertRule(
    id="privacy-surveillance",
    name="Privacy and surveillance",
    recipients=("analyst@newsradar.test",),
    digest="1m",
    queries={
        "en": "surveillance OR privacy OR tracking",
        "fr": "renseignement OR surveillance",
        "de": "Passwörter OR Passwortmanager OR Datenschutz",
        "es": "Twitter OR privacidad",
    },
)
WORKER_STEPS = ("extract", "language", "fingerprint", "event")


def _serve(originals: list[Original], pages: list[SitePage], seed: int, ready: Connection) -> None:
    """The site's process: render every page and feed, tell the port, serve until killed."""
    server = StaticSite(("127.0.0.1", 0), StaticHandler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.pages = build_site(originals, pages, seed, base)
    ready.send(server.server_address[1])
    server.serve_forever()


@dataclass
class Snapshot:
    """CPU seconds at one moment: this process, its reaped children, node, site, machine."""

    own: float
    children: float
    node: float
    site: float
    machine: float
    node_work: float  # seconds the node's threads spent on any index (its own timers)

    @classmethod
    def take(cls, node: int | None, site: int, es: Elasticsearch) -> Snapshot:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        # The node's totals keep the work on indices deleted since: they only grow.
        stats = es.nodes.stats(node_id="_local", metric="indices", index_metric=_METRICS)
        [totals] = stats["nodes"].values()
        return cls(
            own=time.process_time(),
            children=usage.ru_utime + usage.ru_stime,
            node=(cpu_seconds(node) or 0.0) if node else 0.0,
            site=cpu_seconds(site) or 0.0,
            machine=busy_seconds(),
            node_work=sum(work(totals["indices"]).values()),
        )


# The node's timers per kind of work, as index and node statistics name them.
_METRICS = ["indexing", "search", "get", "refresh", "merge", "flush"]


def work(stats: dict[str, Any]) -> dict[str, float]:
    """Seconds per kind of work from an indices-stats section (threads' time, waits included)."""
    return {
        "indexing": stats["indexing"]["index_time_in_millis"] / 1000,
        "search": (
            stats["search"]["query_time_in_millis"] + stats["search"]["fetch_time_in_millis"]
        )
        / 1000,
        "get": stats["get"]["time_in_millis"] / 1000,
        "refresh": stats["refresh"]["total_time_in_millis"] / 1000,
        "merges": stats["merges"]["total_time_in_millis"] / 1000,
        "flush": stats["flush"]["total_time_in_millis"] / 1000,
    }


@dataclass
class Measured:
    """One measured cycle: the reports, the clocks and every counter read around it."""

    report: jobs.IngestReport
    sent: int
    ingest_wall: float
    deliver_wall: float
    deliver_cpu: float
    marks: dict[str, float]
    before: Snapshot
    after: Snapshot
    sampler: TreeSampler
    requests: dict[str, float]  # RequestMeter totals of this process
    node: int | None
    ours: dict[str, float] = field(default_factory=dict)  # work(), on this run's indices
    profile: dict[str, Any] = field(default_factory=dict)

    @property
    def stats(self) -> dict[str, Any]:
        """The crawl's stats, with the item pipelines' counters."""
        crawl = self.report.crawl
        return dict(crawl.report.stats) if crawl and crawl.report else {}

    @property
    def articles(self) -> int:
        """Pages that became article documents: new stories, other reports and copies."""
        counts = self.report.counts()
        return counts["indexed"] + counts["duplicates"]


def measure_cycle(
    config: Config,
    es: Elasticsearch,
    policy: CrawlPolicy,
    site: int,
    profile: Path | None,
) -> Measured:
    """Run ingest and delivery once, with every counter read before and after."""
    meter = RequestMeter(config.settings.names.prefix)
    meter.watch(es)
    meter.step = "bench"
    node = node_pid(REPO / ".local" / "es" / "run" / "es.pid")
    profiler = Profiler.start(profile) if profile else None
    exclude = {site} | ({profiler.pid} if profiler else set())
    sampler = TreeSampler(exclude=exclude, node=node)
    marks: dict[str, float] = {}

    def progress(message: str) -> None:
        marks.setdefault(message.split(":")[0].split(" ")[0], time.thread_time())

    plain = Elasticsearch(config.settings.es_url, request_timeout=60)  # not metered
    before = Snapshot.take(node, site, plain)
    sampler.start()
    started = time.perf_counter()
    report = jobs.ingest(config, es, now=NOW, policy=policy, force_pull=True, progress=progress)
    ingested = time.perf_counter()
    cpu = time.thread_time()
    delivery = jobs.deliver(config, es, now=datetime.now(UTC))
    deliver_cpu = time.thread_time() - cpu
    delivered = time.perf_counter()
    sampler.stop()
    after = Snapshot.take(node, site, plain)
    ours = plain.indices.stats(index=config.settings.names.pattern, metric=_METRICS)
    plain.close()
    measured = Measured(
        report=report,
        sent=delivery.sent,
        ingest_wall=ingested - started,
        deliver_wall=delivered - ingested,
        deliver_cpu=deliver_cpu,
        marks=marks,
        before=before,
        after=after,
        sampler=sampler,
        requests=dict(meter.totals),
        node=node,
        ours=work(ours["_all"]["total"]),
    )
    if profiler is not None:
        roles = {seen.pid: seen.role for seen in sampler.seen.values()} | {site: "site"}
        measured.profile = profiler.stop(roles)
    return measured


def stage_rows(run: Measured) -> list[tuple[str, str, float]]:
    """(stage, process, CPU seconds) for every stage; together they are all of newsradar's CPU."""
    stats, times = run.stats, run.report.times.cpu
    crawl = run.after.children - run.before.children
    start = float(stats.get("newsradar/cpu/crawl_start", 0.0))
    keep = float(stats.get("newsradar/cpu/keep", 0.0))
    stories = float(stats.get("newsradar/cpu/stories", 0.0))
    roles = run.sampler.by_role()
    workers = roles.get("worker", (0, 0.0, 0))[1]
    steps = {step: float(stats.get(f"newsradar/cpu/{step}", 0.0)) for step in WORKER_STEPS}
    own = run.after.own - run.before.own - run.sampler.own_cpu
    claim = run.marks.get("claimed", 0.0) - run.marks.get("discovery", 0.0)
    claim -= times.get("match_earlier", 0.0)
    accounted = sum(times.values()) + run.deliver_cpu
    rows = [
        (
            "fetch: Scrapy downloads, responses, hand-off, outcomes",
            "crawl",
            crawl - start - keep - stories,
        ),
        ("crawl process start-up (imports, Scrapy, spider open)", "crawl", start),
        ("extract: decode, parse, trafilatura, dates, metadata", "workers", steps["extract"]),
        ("language (langdetect on a sample)", "workers", steps["language"]),
        ("fingerprint (content hash, MinHash, band keys)", "workers", steps["fingerprint"]),
        ("event signature (names, vocabulary, numbers, dates)", "workers", steps["event"]),
        (
            "workers outside normalise_page (pickling, pebble)",
            "workers",
            workers - sum(steps.values()),
        ),
        (
            "fork server (model preload, forking workers)",
            "fork server",
            roles.get("fork server", (0, 0.0, 0))[1],
        ),
        ("kept pages: compress, bulk to the pages index", "crawl", keep),
        ("stories + articles: lookups, verdicts, bulk, story docs", "crawl", stories),
        ("feed pull into the frontier (10 feeds)", "bench", times.get("pull", 0.0)),
        ("frontier: claim the URLs", "bench", claim),
        (
            "frontier: outcomes back, run stats, crawl report read",
            "bench",
            times.get("crawl", 0.0) - claim,
        ),
        (
            "match 1 rule, before and after the crawl",
            "bench",
            times.get("match_earlier", 0.0) + times.get("match", 0.0),
        ),
        ("digest delivery (SMTP to the loopback sink)", "bench", run.deliver_cpu),
        (
            "this process, other (discovery, progress, mail sink)",
            "bench",
            own - accounted + times.get("discover", 0.0),
        ),
    ]
    for role, (count, seconds, _) in sorted(roles.items()):
        if role not in ("bench", "crawl", "fork server", "worker"):
            rows.append((f"{count} other process(es): {role}", "other", seconds))
    return rows


def process_cpu(run: Measured) -> dict[str, float]:
    """CPU seconds per process role over the run, as the stage table counts them."""
    cpu = {role: seconds for role, (_, seconds, _) in run.sampler.by_role().items()}
    cpu["bench"] = run.after.own - run.before.own - run.sampler.own_cpu
    cpu["crawl"] = run.after.children - run.before.children
    return cpu


def print_run(args: argparse.Namespace, pages: list[SitePage], run: Measured) -> None:
    """Throughput, the CPU table, the round trips, memory, and what the crawl made of the site."""
    counts = run.report.counts()
    articles = max(run.articles, 1)
    ms = 1000 / articles
    print("command: " + shlex.join([sys.executable, *sys.argv]))
    edits = Counter(p.edit for p in pages)
    print(
        f"site: {len(pages)} real article pages on loopback ({edits['original']} originals "
        f"from {args.corpus.name}; copies: "
        + ", ".join(f"{k} {v}" for k, v in sorted(edits.items()) if k != "original")
        + f"); {len(OUTLETS)} outlets, one RSS feed each; crawl delay 0, concurrency "
        f"{args.concurrency}, {os.cpu_count()} CPUs"
    )
    crawl = run.report.crawl
    elapsed = crawl.report.elapsed if crawl and crawl.report else 0.0
    print(
        f"end to end: {run.articles} articles in {run.ingest_wall:.1f} s, "
        f"{run.articles / run.ingest_wall:.1f} articles/s (pull to indexed and matched; crawl "
        f"process {elapsed:.1f} s); with the digest mailed "
        f"{run.ingest_wall + run.deliver_wall:.1f} s"
    )
    print(
        f"outcome: {counts['indexed']} indexed as reports, {counts['duplicates']} as copies, "
        f"{counts['not_indexed']} not indexed; {counts['matches']} rule matches, "
        f"{counts['alerts']} alerts; {run.sent} digest(s) mailed"
    )
    rows = stage_rows(run)
    total = sum(seconds for _, _, seconds in rows)
    print(f"\nCPU per article in newsradar's processes ({run.articles} articles)")
    print(f"{'stage':<58}{'process':<13}{'CPU s':>8}{'ms/art':>9}{'share':>7}")
    for name, where, seconds in rows:
        print(f"{name:<58}{where:<13}{seconds:>8.2f}{seconds * ms:>9.2f}{seconds / total:>7.0%}")
    print(f"{'total':<58}{'':<13}{total:>8.2f}{total * ms:>9.2f}")
    node = run.after.node - run.before.node
    site = run.after.site - run.before.site
    busy = run.after.machine - run.before.machine
    window = run.ingest_wall + run.deliver_wall
    print(
        f"Elasticsearch node: {node:.1f} s CPU ({node * ms:.1f} ms/article, "
        f"{node / window:.0%} of a core over the run)"
        if run.node
        else "Elasticsearch node: not found on this machine (no pid file, no single java)"
    )
    ours, everyone = sum(run.ours.values()), run.after.node_work - run.before.node_work
    share = ours / everyone if everyone > 0 else 1.0
    print(
        f"  this run's indices had {share:.0%} of the time the node's threads spent on indices "
        f"meanwhile (its own timers: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in run.ours.items())
        + f"), so about {node * share:.1f} s, {node * share * ms:.1f} ms/article, of its CPU "
        "was this run's"
    )
    other = busy - total - node - site - run.sampler.own_cpu
    print(
        f"the site process {site:.1f} s; the sampler {run.sampler.own_cpu:.2f} s; other "
        f"processes on the machine {max(other, 0.0):.1f} s of {busy:.1f} s busy over "
        f"{window:.1f} s ({busy / window / (os.cpu_count() or 1):.0%} of the machine)"
    )
    print_requests(run, ms)
    print_memory(run)
    print_stories(run, pages)


def print_requests(run: Measured, ms: float) -> None:
    """Elasticsearch requests by where they were made and API: count, clock, client CPU."""
    totals: dict[tuple[str, str], list[float]] = {}
    merged = {**{k: float(v) for k, v in run.stats.items() if k.startswith("newsradar/es/")}}
    merged.update(run.requests)
    for key, value in merged.items():
        if not key.startswith("newsradar/es/"):
            continue
        step, api, what = key.removeprefix("newsradar/es/").rsplit("/", 2)
        slot = totals.setdefault((step, api), [0.0, 0.0, 0.0])
        slot[("requests", "wall", "cpu").index(what)] += value
    batches = int(run.stats.get("newsradar/index/batches", 0))
    print(f"\nElasticsearch requests ({batches} index batches in the crawl)")
    print(f"{'step':<8}{'API':<28}{'requests':>9}{'wall s':>9}{'client ms/art':>14}")
    for (step, api), (count, wall, cpu) in sorted(totals.items(), key=lambda i: -i[1][1]):
        print(f"{step:<8}{api:<28}{count:>9.0f}{wall:>9.2f}{cpu * ms:>14.2f}")
    walls = {k: float(v) for k, v in run.stats.items() if k.startswith("newsradar/wall/")}
    print(
        "index thread by the clock: "
        + ", ".join(f"{k.rsplit('/', 1)[1]} {v:.1f} s" for k, v in walls.items())
    )


def print_memory(run: Measured) -> None:
    """Peak resident memory per process, together, and the node's."""
    roles = run.sampler.by_role()
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    crawl = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    parts = [f"this process {own:.0f} MiB", f"crawl process {crawl:.0f} MiB"]
    for role in ("fork server", "worker"):
        if role in roles:
            count, _, peak = roles[role]
            parts.append(
                f"{role} {peak / 1024:.0f} MiB" + (f" (largest of {count})" if count > 1 else "")
            )
    print("\npeak memory (RSS): " + ", ".join(parts))
    print(
        f"newsradar's processes together: {run.sampler.peak_rss_kib / 1024:.0f} MiB RSS at most "
        f"(sampled every 0.5 s; pages shared after a fork count once per process), "
        f"{run.sampler.peak_pss_kib / 1024:.0f} MiB PSS (every 2 s; shared pages split)"
    )
    if run.node:
        rss, peak = memory_kib(run.node)
        print(
            f"Elasticsearch node: {run.sampler.node_peak_rss_kib / 1024:.0f} MiB RSS at most "
            f"during the run (now {rss / 1024:.0f} MiB; {peak / 1024:.0f} MiB since it started)"
        )


def print_stories(run: Measured, pages: list[SitePage]) -> None:
    """What each kind of copy became: the check that dedup and stories did not change."""
    crawl = run.report.crawl
    if crawl is None or crawl.report is None:
        return
    by_path = {page.path: page for page in pages}
    table: dict[str, Counter[str]] = {}
    for outcome in crawl.report.outcomes.values():
        page = by_path.get(urlsplit(outcome.url).path)
        edit = page.edit if page else "?"
        verdict = (
            outcome.outcome
            if outcome.outcome not in ("indexed", "duplicate")
            else (f"{outcome.outcome}:{outcome.detail or 'new'}")
        )
        table.setdefault(edit, Counter())[verdict] += 1
    print("\nwhat the pages became, by how the site made them")
    for edit, verdicts in sorted(table.items()):
        print(f"  {edit:<10} " + ", ".join(f"{k} {v}" for k, v in verdicts.most_common()))
    stories = {o.story_id for o in crawl.report.outcomes.values() if o.story_id}
    originals = sum(p.edit == "original" for p in pages)
    print(f"  stories: {len(stories)} (the site has {originals} originals)")


def print_reference(urls: list[str], pages: int, run: Measured, chunk: int) -> None:
    """news-please over the same URLs: its rate and CPU, and ours against it."""
    reference, origin = run_reference(urls, chunk)
    theirs = reference["pages"] / reference["seconds"]
    ours = run.articles / run.ingest_wall
    print(
        f"\nreference: news-please {NEWSPLEASE.split('==')[1]} ({origin}), fetch + extract only, "
        f"on {len(urls)} of the {pages} pages, evenly spread"
    )
    print(
        f"news-please from_urls: {reference['pages']} pages in {reference['seconds']:.1f} s, "
        f"{theirs:.1f} pages/s, {reference['cpu'] * 1000 / reference['pages']:.1f} ms CPU a page; "
        f"extracted {reference['extracted']} with text"
    )
    ours_cpu = sum(s for _, _, s in stage_rows(run)) * 1000 / max(run.articles, 1)
    print(
        f"ratio: newsradar end to end / news-please = {ours / theirs:.2f} in articles/s, "
        f"{ours_cpu / (reference['cpu'] * 1000 / reference['pages']):.2f} in CPU per page"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="the real pages' folder")
    parser.add_argument("--pages", type=int, default=2000, help="URLs on the site")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at once to the site")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-reference", action="store_true", help="skip news-please")
    parser.add_argument("--reference-chunk", type=int, default=200)
    parser.add_argument(
        "--reference-pages",
        type=int,
        default=500,
        help="news-please on every n-th page, this many (0: all; it takes about 0.5 s a page)",
    )
    parser.add_argument("--profile", type=Path, help="profile the run with py-spy into DIR")
    args = parser.parse_args(argv)
    try:
        originals = load_originals(args.corpus)
    except CorpusMissing as exc:
        print(f"bench_real: {exc}", file=sys.stderr)
        return 2
    pages = plan_site(originals, max(args.pages, len(originals)), args.seed, NOW)
    # Fork before this process grows: the site's memory is the site's, not the pipeline's.
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    site = context.Process(target=_serve, args=(originals, pages, args.seed, send), daemon=True)
    site.start()
    base = f"http://127.0.0.1:{receive.recv()}"
    prefix = f"bench-real-{uuid.uuid4().hex[:8]}"
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
                Source(id=f"bench-{o}", name=f"The {o.title()}", feeds=(f"{base}/{o}/rss.xml",))
                for o in OUTLETS
            )
            config = Config(settings=settings, sources=sources, alerts=(RULE,))
            es = Elasticsearch(settings.es_url, request_timeout=120)
            install(es, prefix)
            store_rules(es, IndexNames(prefix), config.alerts, source="bench")
            environment = {
                "NEWSRADAR_CRAWL_DELAY": "0",
                "NEWSRADAR_CRAWL_CONCURRENCY": str(args.concurrency),
            }
            policy = replace(jobs.crawl_policy(load_settings(environment)), log_level="WARNING")
            assert site.pid is not None
            run = measure_cycle(config, es, policy, site.pid, args.profile)
            print_run(args, pages, run)
            if run.profile:
                Profiler.print_summary(run.profile, process_cpu(run), run.articles)
    finally:
        if es is not None:
            es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
            es.options(ignore_status=404).indices.delete_index_template(name=f"{prefix}-*")
            es.close()
    try:
        print()
        print_scores(args.corpus, score_corpus(args.corpus))
        if not args.no_reference:
            every = max(1, len(pages) // args.reference_pages) if args.reference_pages else 1
            urls = [base + page.path for page in pages[::every]]
            print_reference(urls, len(pages), run, args.reference_chunk)
    finally:
        site.kill()
        site.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
