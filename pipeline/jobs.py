"""The main job's steps, each one call: pull, discover, crawl + match, deliver, and a full cycle.

``newsradar run``, the Airflow DAGs and ``make demo`` all go through these functions, so the
scheduled pipeline and the one a user runs by hand are the same code. Each step reads its
watermarks from Elasticsearch (feed states, frontier claims, the alert outbox), never from a
schedule's data interval, so a retried or overlapping run picks up exactly what is left.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from elasticsearch import Elasticsearch

from pipeline.alerts import MatchReport, SendReport, match_new, send_digests
from pipeline.crawl import CrawlPolicy
from pipeline.crawl_frontier import CRAWLED, CrawlRun, crawl_frontier, discover_into_frontier
from pipeline.elastic import IndexNames
from pipeline.ingest_feeds import PullReport, fetch_policy, pull
from pipeline.mailer import SmtpConfig
from pipeline.settings import Config, Source

__all__ = [
    "CycleReport",
    "IngestReport",
    "crawl_and_match",
    "deliver",
    "discover",
    "ingest",
    "run_cycle",
]

Progress = Callable[[str], None]


@dataclass
class IngestReport:
    """One ingest: feeds pulled, listings discovered, URLs crawled and indexed, rules matched."""

    run_id: str
    pull: PullReport | None = None
    discovered: dict[str, Counter[str]] = field(default_factory=dict)
    crawl: CrawlRun | None = None
    matches: MatchReport | None = None

    @property
    def indexed_ids(self) -> list[str]:
        """Ids of the articles this run indexed (new stories and copies alike)."""
        if self.crawl is None or self.crawl.report is None:
            return []
        return [
            outcome.article_id
            for outcome in self.crawl.report.outcomes.values()
            if outcome.outcome in CRAWLED and outcome.article_id
        ]


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
    return discover_into_frontier(
        es,
        IndexNames(config.settings.index_prefix),
        selected,
        policy=fetch_policy(config.settings),
        now=now,
        run_id=run_id,
    )


def crawl_and_match(
    config: Config,
    es: Elasticsearch,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    policy: CrawlPolicy | None = None,
    run_id: str | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Crawl the pending frontier URLs of the sources, then match the new articles to rules."""
    report = IngestReport(run_id=run_id or uuid.uuid4().hex)
    report.crawl = crawl_frontier(
        config,
        es,
        now=now,
        sources=[s.id for s in _selected(config, sources)],
        policy=policy,
        run_id=report.run_id,
        progress=progress,
    )
    report.matches = match_new(
        es,
        IndexNames(config.settings.index_prefix),
        report.indexed_ids,
        now=now,
        run_id=report.run_id,
    )
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
        discovered = discover(config, es, now=now, sources=sources, run_id=run_id)
        if progress is not None:
            new = sum(c["new"] for c in discovered.values())
            progress(f"discovery: {new} new URLs from sitemaps and section pages")
    report = crawl_and_match(
        config, es, now=now, sources=sources, policy=policy, run_id=run_id, progress=progress
    )
    report.pull = pulled
    report.discovered = discovered
    return report


def deliver(config: Config, es: Elasticsearch, *, now: datetime) -> SendReport:
    """Mail the digests that are due (at most one per recipient and rule interval)."""
    return send_digests(
        es,
        IndexNames(config.settings.index_prefix),
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


def _selected(config: Config, sources: Sequence[str] | None) -> tuple[Source, ...]:
    if not sources:
        return config.sources
    return tuple(config.source(source_id) for source_id in sources)
