"""The crawl stage: claim pending frontier URLs, fetch and index them, record every outcome.

Two crawls may run at once (overlapping Airflow runs, several workers): a URL is fetched by
the crawl that claims it. A claim is a conditional update of the frontier record (its
``_seq_no``/``_primary_term`` as read), so of two crawls reading the same pending record only
one can claim it. A claim is a lease: a crawl that dies leaves its claims to expire, and the
next crawl takes them over. A crawl's claims are held under its worker name, by default its run
id, which a retry of the same Airflow task instance reuses: the retry of a crawl killed with its
worker takes its own claims back at once instead of waiting out the lease.

Every claimed URL ends with an outcome written back to its record: ``indexed`` and
``duplicate`` are done; transient failures (timeouts, 5xx, a deferred robots.txt, ...) go
back to ``pending`` until ``max_attempts``; anything else is ``failed`` with its reason.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

from elasticsearch import Elasticsearch

from pipeline.crawl.process import CrawlError, CrawlOutcome, CrawlPolicy, CrawlReport, crawl
from pipeline.discover.listings import Candidate, discover_source
from pipeline.net.fetch import FetchPolicy
from pipeline.settings import Config, Source
from pipeline.store.bulk import BulkAction, RunStats, record_run, write
from pipeline.store.client import IndexNames
from pipeline.store.frontier import FrontierRecord, enqueue, queued

__all__ = [
    "CLAIM_LIMIT",
    "CRAWLED",
    "RETRIED",
    "Claim",
    "CrawlRun",
    "claim",
    "crawl_frontier",
    "discover_into_frontier",
    "record_outcomes",
    "with_source_limits",
]

# Outcomes after which the URL is done with.
CRAWLED: Final = frozenset({"indexed", "duplicate"})
# Outcomes worth another try later: the page may well be there next time.
RETRIED: Final = frozenset(
    {"timeout", "dns", "connect", "protocol", "http_5xx", "http_429", "robots_deferred", "error"}
)
MAX_ATTEMPTS: Final = 5
LEASE: Final = timedelta(hours=1)
CLAIM_LIMIT: Final = 5000  # URLs one crawl claims at most


@dataclass(frozen=True, slots=True)
class Claim:
    """A frontier record this crawl holds, as a crawl candidate."""

    id: str
    candidate: Candidate
    attempts: int


@dataclass
class CrawlRun:
    """What one crawl run did: claims, outcomes by source, and the crawl's own report."""

    run_id: str
    worker: str
    claimed: int = 0
    lost: int = 0  # claims another crawl won
    outcomes: dict[str, Counter[str]] = field(default_factory=dict)  # source -> outcome counts
    report: CrawlReport | None = None

    @property
    def indexed(self) -> int:
        """Articles indexed, over every source."""
        return sum(c["indexed"] for c in self.outcomes.values())

    @property
    def duplicates(self) -> int:
        """Pages found to be duplicates, over every source."""
        return sum(c["duplicate"] for c in self.outcomes.values())


def claim(
    es: Elasticsearch,
    names: IndexNames,
    *,
    worker: str,
    now: datetime,
    sources: Sequence[str] | None = None,
    limit: int = 1000,
    lease: timedelta = LEASE,
) -> tuple[list[Claim], int]:
    """Claim up to ``limit`` pending (or abandoned) URLs; the claims won and how many were lost.

    Abandoned: the lease ran out, or ``worker`` itself holds the claim (an earlier try of it died).
    """
    hits = queued(
        es,
        names,
        limit=limit,
        sources=sources,
        expired_before=now,
        held_by=worker,
        versions=True,
    )
    until = (now + lease).isoformat()
    actions = [
        BulkAction(
            names.frontier,
            hit["_id"],
            {
                "state": "claimed",
                "claimed_by": worker,
                "claimed_until": until,
                "attempts": int(hit["_source"].get("attempts", 0)) + 1,
                "updated": now.isoformat(),
            },
            op="update",
            if_seq_no=hit["_seq_no"],
            if_primary_term=hit["_primary_term"],
        )
        for hit in hits
    ]
    written = write(es, actions, names=names, stage="crawl") if actions else None
    claims: list[Claim] = []
    lost = 0
    for hit in hits:
        outcome = written.outcomes.get(hit["_id"]) if written else None
        if outcome != "updated":
            lost += 1
            continue
        doc = hit["_source"]
        claims.append(
            Claim(
                id=hit["_id"],
                candidate=Candidate(
                    url=doc["canonical_url"],
                    link=doc["url"],
                    source=doc["source"],
                    via=doc["via"],
                    title=doc.get("feed_title"),
                    published_raw=doc.get("published_raw"),
                ),
                attempts=int(doc.get("attempts", 0)) + 1,
            )
        )
    return claims, lost


def record_outcomes(
    es: Elasticsearch,
    names: IndexNames,
    claims: Sequence[Claim],
    outcomes: Mapping[str, CrawlOutcome],
    *,
    now: datetime,
    max_attempts: int = MAX_ATTEMPTS,
) -> None:
    """Write each claimed URL's outcome back to its frontier record and release the claim.

    A claim without an outcome (the crawl failed before reaching it) goes back to pending.
    """
    actions: list[BulkAction] = []
    for held in claims:
        outcome = outcomes.get(held.candidate.url)
        name = outcome.outcome if outcome else "not_attempted"
        if name in CRAWLED:
            state = "done"
        elif (name in RETRIED or outcome is None) and held.attempts < max_attempts:
            state = "pending"
        else:
            state = "failed"
        document: dict[str, Any] = {
            "state": state,
            "outcome": name,
            "outcome_detail": (outcome.detail if outcome else "")[:1000] or None,
            "claimed_by": None,
            "claimed_until": None,
            "updated": now.isoformat(),
        }
        if outcome is not None and outcome.article_id:
            document["article_id"] = outcome.article_id
        actions.append(BulkAction(names.frontier, held.id, document, op="update"))
    if actions:
        write(es, actions, names=names, stage="crawl", refresh=True)


def discover_into_frontier(
    es: Elasticsearch,
    names: IndexNames,
    sources: Sequence[Source],
    *,
    policy: FetchPolicy,
    now: datetime,
    run_id: str | None = None,
) -> dict[str, Counter[str]]:
    """Walk each source's sitemaps and section pages; new article URLs enter the frontier.

    Feeds are the pull stage's; here only sources' sitemaps and start pages are read. Per
    source: ``new`` and ``seen`` URLs, and ``problem:<reason>`` for listings that failed.
    """
    counts: dict[str, Counter[str]] = {}
    for source in sources:
        tally: Counter[str] = Counter()
        counts[source.id] = tally
        if not (source.sitemaps or source.start_urls):
            continue
        listing = _listing_only(source)
        found = discover_source(listing, policy=policy, now=now)
        for problem in found.problems:
            tally[f"problem:{problem.reason}"] += 1
        records = [
            FrontierRecord(
                url=candidate.link,
                canonical_url=candidate.url,
                source=source.id,
                via="start_page" if candidate.via == "section" else "sitemap",
                discovered=now,
                title=candidate.title or "",
                published_raw=candidate.published_raw,
            )
            for candidate in found.candidates.values()
            if candidate.via != "feed"
        ]
        report = enqueue(es, names, records, run_id=run_id)
        tally["new"] += report.new
        tally["seen"] += report.seen
    return counts


def _listing_only(source: Source) -> Source:
    """The source without its feeds: discovery here reads sitemaps and start pages only."""
    return source.model_copy(update={"feeds": ()})


def with_source_limits(
    policy: CrawlPolicy, claims: Sequence[Claim], sources: Mapping[str, Source]
) -> CrawlPolicy:
    """The policy plus Scrapy download slots for the hosts of sources with their own limits."""
    slots: dict[str, dict[str, Any]] = {}
    for held in claims:
        limits = sources[held.candidate.source].crawl if held.candidate.source in sources else None
        if limits is None:
            continue
        slot: dict[str, Any] = {}
        if limits.concurrency is not None:
            slot["concurrency"] = limits.concurrency
        if limits.delay is not None:
            slot["delay"] = limits.delay
        host = urlsplit(held.candidate.link).hostname
        if slot and host:
            slots[host] = slot
    if not slots:
        return policy
    extra = dict(policy.scrapy_settings)
    extra["DOWNLOAD_SLOTS"] = {**dict(extra.get("DOWNLOAD_SLOTS") or {}), **slots}
    return replace(policy, scrapy_settings=extra)


def crawl_frontier(
    config: Config,
    es: Elasticsearch,
    *,
    now: datetime,
    sources: Sequence[str] | None = None,
    policy: CrawlPolicy | None = None,
    limit: int = CLAIM_LIMIT,
    run_id: str | None = None,
    worker: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> CrawlRun:
    """Claim pending URLs of ``sources`` (default all), crawl and index them, record outcomes.

    ``worker`` names the holder of the claims (default ``run_id``): two crawls running at once
    must not share it.

    Raises CrawlError (transient) when the crawl itself failed; the outcomes it did record
    are written back first, and the other claims return to pending.
    """
    names = config.settings.names
    run_id = run_id or uuid.uuid4().hex
    # Claims held under the run id: a retry of the task (same run id) takes them back.
    run = CrawlRun(run_id=run_id, worker=worker or run_id)
    started = now
    claims, run.lost = claim(es, names, worker=run.worker, now=now, sources=sources, limit=limit)
    run.claimed = len(claims)
    if progress is not None:
        progress(f"claimed {len(claims)} URLs ({run.lost} taken by another crawl)")
    known = {source.id: source for source in config.sources}
    policy = with_source_limits(policy or CrawlPolicy(), claims, known)
    failure: CrawlError | None = None
    try:
        report = crawl(
            [held.candidate for held in claims],
            settings=config.settings,
            languages={sid: s.language for sid, s in known.items()},
            countries={sid: s.country for sid, s in known.items()},
            policy=policy,
            index=True,
            run_id=run.run_id,
        )
    except CrawlError as exc:
        failure = exc
        report = exc.report
    run.report = report
    record_outcomes(es, names, claims, report.outcomes, now=now)
    by_source: dict[str, list[Claim]] = {}
    for held in claims:
        by_source.setdefault(held.candidate.source, []).append(held)
    finished = started + timedelta(seconds=report.elapsed)
    for source_id, held_claims in by_source.items():
        tally: Counter[str] = Counter(
            report.outcomes[h.candidate.url].outcome
            if h.candidate.url in report.outcomes
            else "not_attempted"
            for h in held_claims
        )
        run.outcomes[source_id] = tally
        stats = RunStats(run_id=run.run_id, stage="crawl", source=source_id, started=started)
        stats.fetched = sum(n for name, n in tally.items() if name != "not_attempted")
        stats.new = tally["indexed"]
        stats.indexed = tally["indexed"] + tally["duplicate"]
        stats.duplicate = tally["duplicate"]
        for name, n in tally.items():
            if name not in CRAWLED:
                stats.fail(name, n)
        stats.finished = finished
        record_run(es, names, stats)
    if failure is not None:
        raise failure
    return run
