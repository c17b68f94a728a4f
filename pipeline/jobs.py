"""The main job's steps, each one call: pull, discover, crawl + match, deliver, and a full cycle.

``newsradar run``, the Airflow DAGs and ``make demo`` all go through these functions, so the
scheduled pipeline and the one a user runs by hand are the same code. Each step reads its
watermarks from Elasticsearch (feed states, frontier claims, the alert outbox), never from a
schedule's data interval, so a retried or overlapping run picks up exactly what is left.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import Elasticsearch

from pipeline.alerts.match import MatchReport, match_pending
from pipeline.alerts.send import SendReport, send_digests
from pipeline.alerts.smtp import SmtpConfig
from pipeline.crawl.claims import (
    CLAIM_LIMIT,
    CRAWLED,
    CrawlRun,
    crawl_frontier,
    discover_into_frontier,
)
from pipeline.crawl.process import CrawlError, CrawlPolicy, CrawlReport
from pipeline.errors import PermanentError
from pipeline.feeds.pull import PullReport, fetch_policy, pull
from pipeline.feeds.state import refresh
from pipeline.ops.status import collect_status
from pipeline.settings import Config, Settings, Source, load_config, load_settings
from pipeline.store.client import call, connect, rollover

__all__ = [
    "CycleReport",
    "DeliveryFailed",
    "IngestReport",
    "SourceFailed",
    "StepTimes",
    "connected",
    "crawl_and_match",
    "crawl_policy",
    "dead_letter_summary",
    "deliver",
    "discover",
    "discover_and_crawl",
    "ingest",
    "raise_for_failed_digests",
    "rollover_articles",
    "run_cycle",
    "source_health",
]

Progress = Callable[[str], None]


@dataclass
class StepTimes:
    """Seconds each step took, by the clock and of the calling thread's CPU.

    Steps of an ingest: ``pull``, ``discover``, ``match_earlier`` (what earlier runs left
    unmatched), ``crawl`` (claim, the crawl process, outcomes written back) and ``match``. The
    crawl process's own CPU is in its report's stats, not here.
    """

    wall: dict[str, float] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def measure(self, step: str) -> Iterator[None]:
        """Add the block's seconds to ``step``: four clock reads, nothing a run would notice."""
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            self.wall[step] = self.wall.get(step, 0.0) + time.perf_counter() - wall
            self.cpu[step] = self.cpu.get(step, 0.0) + time.thread_time() - cpu

    def add(self, other: StepTimes) -> None:
        """Add another run's (or step's) seconds to these."""
        for mine, theirs in ((self.wall, other.wall), (self.cpu, other.cpu)):
            for step, seconds in theirs.items():
                mine[step] = mine.get(step, 0.0) + seconds


@dataclass
class IngestReport:
    """One ingest: feeds pulled, listings discovered, URLs crawled and indexed, rules matched."""

    run_id: str
    pull: PullReport | None = None
    discovered: dict[str, Counter[str]] = field(default_factory=dict)
    crawl: CrawlRun | None = None
    matches: MatchReport | None = None
    times: StepTimes = field(default_factory=StepTimes)

    @property
    def indexed_ids(self) -> list[str]:
        """Ids of the articles this run indexed (new stories and copies alike)."""
        if self.crawl is None or self.crawl.report is None:
            return []
        return _indexed_ids(self.crawl.report)

    @property
    def alerts(self) -> int:
        """Alerts this run created or released (``min_sources`` reached): digests are owed."""
        if self.matches is None:
            return 0
        return self.matches.created + self.matches.activated

    def counts(self) -> dict[str, int]:
        """The run in numbers, small enough for an Airflow XCom or a JSON line."""
        crawl = self.crawl
        return {
            "feeds_polled": self.pull.polled if self.pull else 0,
            "feed_errors": self.pull.errors if self.pull else 0,
            "pulled": self.pull.new if self.pull else 0,
            "discovered": sum(c["new"] for c in self.discovered.values()),
            "crawled": crawl.claimed if crawl else 0,
            "indexed": crawl.indexed if crawl else 0,
            "duplicates": crawl.duplicates if crawl else 0,
            "not_indexed": crawl.claimed - crawl.indexed - crawl.duplicates if crawl else 0,
            "matches": self.matches.matches if self.matches else 0,
            "alerts": self.alerts,
        }

    def broken_sources(self) -> dict[str, str]:
        """Sources none of whose feeds or listings could be read this time, with the reasons.

        A source with one good feed out of two is degraded, not broken: its feed states say
        which one fails. Sources whose feeds were not due are not judged.
        """
        broken: dict[str, str] = {}
        if self.pull is not None:
            for source_id, pulled in self.pull.sources.items():
                polled = pulled.polled
                if polled and all(f.outcome == "failed" for f in polled):
                    broken[source_id] = "; ".join(
                        f"{f.url}: {f.reason or 'failed'}" + (f" ({f.detail})" if f.detail else "")
                        for f in polled
                    )
        for source_id, tally in self.discovered.items():
            problems = {k.removeprefix("problem:"): n for k, n in tally.items() if ":" in k}
            if problems and not (tally["new"] or tally["seen"]):
                reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(problems.items()))
                broken.setdefault(source_id, f"every sitemap and section page failed: {reasons}")
        return broken

    def raise_for_broken_sources(self) -> None:
        """Raise SourceFailed if a source could not be read at all (its work is already saved)."""
        broken = self.broken_sources()
        if broken:
            raise SourceFailed(broken)


class SourceFailed(PermanentError):
    """No feed or listing of a source could be read.

    Each feed state records why and when to try again, so a scheduler retry now would only find
    the feed not due.
    """

    def __init__(self, reasons: Mapping[str, str]) -> None:
        super().__init__(dict(reasons))
        self.reasons = dict(reasons)

    def __str__(self) -> str:
        return "; ".join(f"source {sid}: {why}" for sid, why in sorted(self.reasons.items()))


class DeliveryFailed(PermanentError):
    """Digests ended ``failed`` or ``unknown``: they wait for a person (``alerts resend``)."""

    def __init__(self, digests: Mapping[str, str]) -> None:
        super().__init__(dict(digests))
        self.digests = dict(digests)

    def __str__(self) -> str:
        return "; ".join(f"digest {did}: {why}" for did, why in sorted(self.digests.items()))


@dataclass
class CycleReport:
    """``newsradar run``: an ingest followed by a delivery."""

    ingest: IngestReport
    delivery: SendReport


def discover(
    config: Config,
    es: Elasticsearch,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    run_id: str | None = None,
) -> dict[str, Counter[str]]:
    """Sitemaps, news sitemaps and section pages of the selected sources into the frontier."""
    selected = _selected(config, sources)
    names = config.settings.names
    found = discover_into_frontier(
        es, names, selected, policy=fetch_policy(config.settings), now=now, run_id=run_id
    )
    # The crawl claims by search, which sees only refreshed records: without this it would
    # leave what was just discovered for the next run.
    refresh(es, names.frontier)
    return found


def crawl_and_match(
    config: Config,
    es: Elasticsearch,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    policy: CrawlPolicy | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    limit: int = CLAIM_LIMIT,
) -> IngestReport:
    """Match leftovers to rules, crawl the sources' pending frontier URLs, match the new articles.

    The leftovers are what earlier runs left unmatched.
    Matching goes by the articles' stored ``match_pending`` mark, not by this run's ids: an
    article indexed by a run that died before matching is matched by the next one. When the
    crawl fails (CrawlError, transient) the articles it did index are matched before the error
    goes up.
    """
    report = IngestReport(run_id=run_id or uuid.uuid4().hex)
    names = config.settings.names
    selected = [s.id for s in _selected(config, sources)] if sources else None
    times = report.times
    with times.measure("match_earlier"):
        earlier = match_pending(es, names, now=now, sources=selected, run_id=report.run_id)
    try:
        with times.measure("crawl"):
            report.crawl = crawl_frontier(
                config,
                es,
                now=now,
                sources=[s.id for s in _selected(config, sources)],
                policy=policy,
                run_id=report.run_id,
                progress=progress,
                limit=limit,
            )
    except CrawlError:
        match_pending(es, names, now=now, sources=selected, run_id=report.run_id)
        raise
    with times.measure("match"):
        report.matches = match_pending(es, names, now=now, sources=selected, run_id=report.run_id)
    report.matches.add(earlier)
    return report


def ingest(
    config: Config,
    es: Elasticsearch,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    policy: CrawlPolicy | None = None,
    with_discovery: bool = True,
    force_pull: bool = False,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Pull the due feeds, discover listings, crawl what is pending and match the new articles."""
    run_id = run_id or uuid.uuid4().hex
    times = StepTimes()
    with times.measure("pull"):
        pulled = pull(
            config,
            es,
            sources=sources,
            now=now,
            policy=fetch_policy(config.settings),
            force=force_pull,
            run_id=run_id,
        )
    if progress is not None:
        progress(f"pull: {pulled.new} new URLs from {pulled.polled} feeds")
    discovered: dict[str, Counter[str]] = {}
    if with_discovery:
        with times.measure("discover"):
            discovered = discover(config, es, now=now, sources=sources, run_id=run_id)
        if progress is not None:
            new = sum(c["new"] for c in discovered.values())
            progress(f"discovery: {new} new URLs from sitemaps and section pages")
    report = crawl_and_match(
        config, es, now=now, sources=sources, policy=policy, run_id=run_id, progress=progress
    )
    report.pull = pulled
    report.discovered = discovered
    report.times.add(times)
    return report


def deliver(config: Config, es: Elasticsearch, *, now: datetime) -> SendReport:
    """Mail the digests that are due (at most one per recipient and rule interval)."""
    return send_digests(
        es,
        config.settings.names,
        config,
        SmtpConfig.from_settings(config.settings),
        now=now,
    )


def run_cycle(
    config: Config,
    es: Elasticsearch,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    policy: CrawlPolicy | None = None,
    force_pull: bool = False,
    progress: Progress | None = None,
) -> CycleReport:
    """One full cycle: ingest (pull, discover, crawl, match), then deliver the digests."""
    ingested = ingest(
        config,
        es,
        now=now,
        sources=sources,
        policy=policy,
        force_pull=force_pull,
        progress=progress,
    )
    return CycleReport(ingest=ingested, delivery=deliver(config, es, now=now))


def discover_and_crawl(
    config: Config,
    es: Elasticsearch,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    policy: CrawlPolicy | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
    limit: int = CLAIM_LIMIT,
) -> IngestReport:
    """Sitemaps, news sitemaps and section pages into the frontier, then crawl and match."""
    run_id = run_id or uuid.uuid4().hex
    times = StepTimes()
    with times.measure("discover"):
        discovered = discover(config, es, now=now, sources=sources, run_id=run_id)
    report = crawl_and_match(
        config,
        es,
        now=now,
        sources=sources,
        policy=policy,
        run_id=run_id,
        progress=progress,
        limit=limit,
    )
    report.discovered = discovered
    report.times.add(times)
    return report


def raise_for_failed_digests(report: SendReport) -> None:
    """Raise DeliveryFailed when a digest of this delivery ended ``failed`` or ``unknown``."""
    bad = {
        d.digest_id: f"{d.state} to {d.recipient}: {d.reason or 'no reason given'}"
        for d in report.digests
        if d.state in ("failed", "unknown")
    }
    if bad:
        raise DeliveryFailed(bad)


# --- entry points: scheduled tasks, ``newsradar run`` and the demo --------------------------


@contextmanager
def connected(environ: Mapping[str, str] | None = None) -> Iterator[tuple[Config, Elasticsearch]]:
    """Settings, the configuration they point at, and a client: how a scheduled task starts.

    The settings come from ``NEWSRADAR_*`` (the process environment by default); the client is
    closed afterwards.
    """
    settings = load_settings(environ)
    config = load_config(settings)
    es = connect(settings)
    try:
        yield config, es
    finally:
        es.close()


def crawl_policy(settings: Settings) -> CrawlPolicy:
    """The crawl's politeness from ``NEWSRADAR_CRAWL_DELAY`` and ``NEWSRADAR_CRAWL_CONCURRENCY``.

    The delay is the seconds between two requests to one host (default 1, AutoThrottle's
    floor); the concurrency is requests in flight per host (default 2). ``make demo`` sets
    the delay to 0 for its loopback site; the web gets the defaults. A delay of 0 also turns
    AutoThrottle off: it would otherwise wait about one response time between requests.
    """
    defaults = CrawlPolicy()
    delay, concurrency = settings.crawl_delay, settings.crawl_concurrency
    if delay == defaults.download_delay and concurrency == defaults.concurrency_per_domain:
        return defaults
    # AutoThrottle starts from this delay and never goes below download_delay.
    start = min(defaults.autothrottle_start_delay, max(delay, 0.05))
    return CrawlPolicy(
        concurrency_per_domain=concurrency,
        download_delay=delay,
        autothrottle_start_delay=start,
        scrapy_settings={"AUTOTHROTTLE_ENABLED": False} if delay == 0 else {},
    )


# --- maintenance ------------------------------------------------------------------------------


def source_health(config: Config, es: Elasticsearch) -> dict[str, Any]:
    """Which sources are unhealthy or never pulled, with each failing feed's reason."""
    status = collect_status(es, config.settings.names, config.sources)
    unhealthy = {
        source["id"]: [
            f"{feed['url']}: {feed.get('reason') or 'unhealthy'}"
            for feed in source["feeds"]
            if not feed.get("healthy", True)
        ]
        for source in status["sources"]
        if source["status"] == "unhealthy"
    }
    return {
        "sources": len(status["sources"]),
        "unhealthy": unhealthy,
        "never_pulled": [s["id"] for s in status["sources"] if s["status"] == "never"],
        "articles": status["articles"],
        "frontier_pending": status["frontier_pending"],
    }


def rollover_articles(
    config: Config, es: Elasticsearch, *, max_age: str = "30d", max_primary_size: str = "50gb"
) -> bool:
    """Roll the articles alias over once its write index is old or big enough (no-ILM nodes)."""
    return rollover(
        es,
        config.settings.names,
        max_age=max_age,
        max_primary_size=max_primary_size,
    )


def dead_letter_summary(
    config: Config, es: Elasticsearch, *, now: datetime, window: timedelta = timedelta(days=1)
) -> dict[str, Any]:
    """Dead letters in all and of the last ``window``, by stage and error type."""
    names = config.settings.names
    since = (now - window).isoformat()
    response = call(
        es,
        lambda: es.search(
            index=names.dead_letters,
            size=0,
            track_total_hits=True,
            aggs={
                "recent": {
                    "filter": {"range": {"recorded": {"gte": since}}},
                    "aggs": {
                        "stages": {"terms": {"field": "stage", "size": 20}},
                        "errors": {"terms": {"field": "error_type", "size": 20}},
                    },
                }
            },
        ),
    )
    recent = response["aggregations"]["recent"]
    return {
        "total": int(response["hits"]["total"]["value"]),
        "since": since,
        "recent": int(recent["doc_count"]),
        "by_stage": {b["key"]: int(b["doc_count"]) for b in recent["stages"]["buckets"]},
        "by_error": {b["key"]: int(b["doc_count"]) for b in recent["errors"]["buckets"]},
    }


def _indexed_ids(report: CrawlReport) -> list[str]:
    return [
        outcome.article_id
        for outcome in report.outcomes.values()
        if outcome.outcome in CRAWLED and outcome.article_id
    ]


def _selected(config: Config, sources: Sequence[str] | None) -> tuple[Source, ...]:
    if not sources:
        return config.sources
    return tuple(config.source(source_id) for source_id in sources)
