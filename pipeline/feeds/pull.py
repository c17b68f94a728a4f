"""The pull stage: poll every due feed of the selected sources into the frontier."""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeVar

from elasticsearch import Elasticsearch

from pipeline.errors import TransientError
from pipeline.feeds import state as feedstate
from pipeline.feeds.parse import (
    FeedEntry,
    FeedState,
    PollBounds,
    PollOutcome,
    discover_feeds,
    next_poll,
)
from pipeline.feeds.poll import FeedPoll, poll_feed
from pipeline.feeds.state import StoredFeed
from pipeline.net.fetch import FetchFailed, FetchPolicy, FetchUnavailable, fetch, user_agent
from pipeline.settings import Config, Settings, Source
from pipeline.store import frontier
from pipeline.store.bulk import BulkRejected, RunStats, record_run
from pipeline.store.client import IndexNames
from pipeline.store.frontier import FrontierRecord

__all__ = [
    "FeedResult",
    "Progress",
    "PullReport",
    "SourcePull",
    "fetch_policy",
    "frontier_record",
    "pull",
    "report_json",
    "summary",
]

log = logging.getLogger(__name__)

STAGE: Final = "pull"
# Skip reasons from parse_feed that are not failures: the same story twice in one feed.
_NOT_FAILURES: Final = frozenset({"duplicate"})

Outcome = Literal["fetched", "not_modified", "failed", "not_due", "skipped"]
Progress = Callable[["FeedResult", int, int], None]
"""Called after each feed with its result, the number done and the number to do."""

_In = TypeVar("_In")
_Out = TypeVar("_Out")


def frontier_record(
    entry: FeedEntry, *, source: str, feed_url: str, discovered: datetime
) -> FrontierRecord:
    """The frontier record for one parsed feed entry."""
    return FrontierRecord(
        url=entry.link,
        canonical_url=entry.url,
        source=source,
        via="feed",
        discovered=discovered,
        feed_url=feed_url,
        title=entry.title,
        summary=entry.summary,
        published=entry.published,
        published_raw=entry.published_raw,
        guid=entry.guid,
    )


def fetch_policy(settings: Settings) -> FetchPolicy:
    """The fetch policy for feed polls: our user agent, and private networks only if allowed."""
    return FetchPolicy(
        user_agent=user_agent(settings.contact_url),
        allow_private_networks=settings.allow_private_networks,
    )


@dataclass
class FeedResult:
    """What one pull did with one feed (or one homepage searched for feeds)."""

    url: str
    source: str
    outcome: Outcome
    kind: feedstate.Kind = "feed"
    entries: int = 0  # entries in the feed as parsed this time (0 when unchanged)
    new: int = 0  # frontier records created
    seen: int = 0  # entries already in the frontier
    dead_lettered: int = 0
    skipped: Counter[str] = field(default_factory=Counter)  # entries not queued, by reason
    healthy: bool = True
    reason: str | None = None
    detail: str = ""
    next_poll: datetime | None = None
    state_saved: bool = True


@dataclass
class SourcePull:
    """One source's feeds in one pull; the table row of ``newsradar pull``."""

    source: str
    started: datetime
    finished: datetime | None = None
    feeds: list[FeedResult] = field(default_factory=list)

    @property
    def polled(self) -> list[FeedResult]:
        """The feeds polled this time (neither not due nor skipped)."""
        return [f for f in self.feeds if f.outcome not in ("not_due", "skipped")]

    @property
    def new(self) -> int:
        """Frontier records created, over the source's feeds."""
        return sum(f.new for f in self.feeds)

    @property
    def seen(self) -> int:
        """Entries already in the frontier, over the source's feeds."""
        return sum(f.seen for f in self.feeds)

    @property
    def not_modified(self) -> int:
        """Healthy feeds the server said had not changed."""
        return sum(f.outcome == "not_modified" and f.healthy for f in self.feeds)

    @property
    def errors(self) -> int:
        """Feeds polled this time that are unhealthy after it (failed, or a bad feed)."""
        return sum(not f.healthy for f in self.polled)

    @property
    def not_due(self) -> int:
        """Feeds left alone because their next poll has not come."""
        return sum(f.outcome == "not_due" for f in self.feeds)

    @property
    def dead_lettered(self) -> int:
        """Entries refused for good, over the source's feeds."""
        return sum(f.dead_lettered for f in self.feeds)

    @property
    def skipped(self) -> Counter[str]:
        """Entries not queued, by reason, over the source's feeds."""
        total: Counter[str] = Counter()
        for feed in self.feeds:
            total.update(feed.skipped)
        return total

    def stats(self, run_id: str) -> RunStats:
        """The runs-index record: entries read, new, duplicate; failures by reason.

        ``failed`` counts feeds that ended unhealthy (under their reason) and entries that
        could not be queued (no_link, bad_scheme, blocked_address, ...).
        """
        stats = RunStats(run_id, STAGE, self.source, self.started, self.finished)
        for feed in self.feeds:
            stats.fetched += feed.entries
            stats.new += feed.new
            stats.indexed += feed.new
            stats.duplicate += feed.seen + feed.skipped.get("duplicate", 0)
            stats.dead_lettered += feed.dead_lettered
            if feed.outcome not in ("not_due", "skipped") and not feed.healthy:
                stats.fail(feed.reason or "unhealthy")
            for reason, count in feed.skipped.items():
                if reason not in _NOT_FAILURES:
                    stats.fail(reason, count)
        return stats


@dataclass
class PullReport:
    """Every selected source's feeds in one pull."""

    run_id: str
    sources: dict[str, SourcePull]
    elapsed: float = 0.0

    @property
    def new(self) -> int:
        """Frontier records created, over every source."""
        return sum(s.new for s in self.sources.values())

    @property
    def seen(self) -> int:
        """Entries already in the frontier, over every source."""
        return sum(s.seen for s in self.sources.values())

    @property
    def not_modified(self) -> int:
        """Healthy feeds that had not changed, over every source."""
        return sum(s.not_modified for s in self.sources.values())

    @property
    def errors(self) -> int:
        """Feeds unhealthy after this poll, over every source."""
        return sum(s.errors for s in self.sources.values())

    @property
    def polled(self) -> int:
        """Feeds polled this time, over every source."""
        return sum(len(s.polled) for s in self.sources.values())


def pull(
    config: Config,
    es: Elasticsearch,
    *,
    sources: Sequence[str] | None = None,
    now: datetime,
    policy: FetchPolicy,
    workers: int = 8,
    progress: Progress | None = None,
    force: bool = False,
    bounds: PollBounds | None = None,
    run_id: str | None = None,
) -> PullReport:
    """Poll each due feed of the selected sources (all with ``force``) into the frontier.

    Unchanged feeds (304, or the same bytes) cost one request and add nothing. A source that
    lists no feeds but has a homepage gets its feeds from the homepage's <link rel=alternate>.
    A broken feed is recorded on its state (unhealthy, with its reason, retried on backoff)
    and never stops the others; Elasticsearch being unreachable raises SearchUnavailable.
    """
    names = config.settings.names
    selected = [config.source(s) for s in sources] if sources else list(config.sources)
    run_id = run_id or f"pull-{now.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    bounds = bounds or PollBounds()
    started = time.monotonic()
    feedstate.require_installed(es, names)
    stored = feedstate.load(es, names, selected)
    wall = datetime.now(UTC)
    report = PullReport(run_id, {s.id: SourcePull(s.id, wall) for s in selected})

    def run(feed: StoredFeed) -> FeedResult:
        return _poll(es, names, feed, now=now, policy=policy, bounds=bounds, run_id=run_id)

    def homepage(source: Source) -> tuple[FeedResult, list[StoredFeed]]:
        return _homepage(
            es,
            names,
            source,
            stored,
            now=now,
            policy=policy,
            bounds=bounds,
            run_id=run_id,
            force=force,
        )

    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="pull") as pool:
        # Homepages first: the feeds they advertise join this same pull.
        by_homepage = [s for s in selected if not s.feeds and s.homepage]
        for result, found in _run_all(pool, homepage, by_homepage):
            report.sources[result.source].feeds.append(result)
            for feed in found:
                stored.setdefault(feed.url, feed)
        jobs, skipped = _plan(selected, stored, now=now, force=force)
        for result in skipped:
            report.sources[result.source].feeds.append(result)
        total = len(jobs)
        done = 0

        def finished(result: FeedResult) -> None:
            nonlocal done
            done += 1
            source = report.sources[result.source]
            source.feeds.append(result)
            source.finished = datetime.now(UTC)
            if progress is not None:
                progress(result, done, total)

        for _ in _run_all(pool, run, jobs, on_result=finished):
            pass
    finished_at = datetime.now(UTC)
    for source in report.sources.values():
        source.finished = source.finished or finished_at
        record_run(es, names, source.stats(run_id))
    # So that `newsradar status` right after a pull sees it (the refresh interval is 1s).
    feedstate.refresh(es, names.frontier, names.feeds, names.runs)
    report.elapsed = time.monotonic() - started
    return report


def _plan(
    sources: Sequence[Source], stored: dict[str, StoredFeed], *, now: datetime, force: bool
) -> tuple[list[StoredFeed], list[FeedResult]]:
    """The feeds to poll now, and the rest (not due, or listed by an earlier source)."""
    jobs: list[StoredFeed] = []
    rest: list[FeedResult] = []
    owner: dict[str, str] = {}
    for source in sources:
        urls: list[str] = list(source.feeds)
        if not urls and source.homepage:
            urls = [
                f.url
                for f in stored.values()
                if f.kind == "feed" and f.discovered_from == source.homepage
            ]
        for url in urls:
            if url in owner:
                # One state per feed URL: the first source listing it polls it.
                log.warning(
                    "%s is listed by %s and %s; polled for %s",
                    url,
                    owner[url],
                    source.id,
                    owner[url],
                )
                rest.append(FeedResult(url, source.id, "skipped", reason=f"listed_by:{owner[url]}"))
                continue
            owner[url] = source.id
            feed = stored.get(url)
            if feed is None:
                feed = StoredFeed(url=url, source=source.id)
            elif feed.source != source.id:
                feed = replace(feed, source=source.id)
            if force or feed.is_due(now):
                jobs.append(feed)
            else:
                rest.append(
                    FeedResult(
                        url,
                        source.id,
                        "not_due",
                        healthy=feed.healthy,
                        reason=feed.state.reason,
                        next_poll=feed.state.next_poll,
                    )
                )
    return jobs, rest


def _run_all(
    pool: ThreadPoolExecutor,
    task: Callable[[_In], _Out],
    items: Sequence[_In],
    *,
    on_result: Callable[[_Out], None] | None = None,
) -> list[_Out]:
    """Run ``task`` over ``items``; the first transient error cancels the rest and is raised."""
    futures: list[Future[_Out]] = [pool.submit(task, item) for item in items]
    results: list[_Out] = []
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            error = future.exception()
            if error is not None:
                for other in pending:
                    other.cancel()
                raise error
            result = future.result()
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def _poll(
    es: Elasticsearch,
    names: IndexNames,
    feed: StoredFeed,
    *,
    now: datetime,
    policy: FetchPolicy,
    bounds: PollBounds,
    run_id: str,
) -> FeedResult:
    """Poll one feed, queue its new entries, store its state."""
    try:
        polled = poll_feed(feed.url, feed.state, policy=policy, now=now, bounds=bounds)
        result = FeedResult(feed.url, feed.source, "fetched")
        state = polled.state
        if polled.error is not None:
            result.outcome = "failed"
            result.detail = _error_detail(polled.error)
        elif polled.feed is None:
            result.outcome = "not_modified"
            # The body is the one judged last time: so is its verdict and its explanation.
            result.detail = "" if feedstate.is_healthy(state) else feed.detail
        else:
            parsed = polled.feed
            result.entries = len(parsed.entries)
            result.skipped.update(parsed.skipped)
            result.detail = parsed.detail
            records = []
            for entry in polled.new_entries:
                refusal = frontier.link_refusal(entry.link, policy.address_rule)
                if refusal is not None:
                    result.skipped[refusal] += 1
                    continue
                records.append(
                    frontier_record(entry, source=feed.source, feed_url=feed.url, discovered=now)
                )
            queued = frontier.enqueue(es, names, records, run_id=run_id)
            result.new, result.seen = queued.new, queued.seen
            result.dead_lettered = queued.dead_lettered
            state = _recount(feed.state, polled, queued.new, now, bounds)
    except (TransientError, BulkRejected):
        raise  # Elasticsearch is down or refuses us: no other feed will fare better
    except Exception as exc:
        # A bug or an input nobody foresaw in one feed must not stop the others; the feed is
        # recorded as failing, with backoff, and the traceback goes to the log.
        log.exception("pull of %s (%s) failed", feed.url, feed.source)
        outcome = PollOutcome(status=None, failure="internal_error", permanent=True)
        state = next_poll(feed.state, outcome, now, bounds)
        result = FeedResult(feed.url, feed.source, "failed", detail=f"{type(exc).__name__}: {exc}")
    updated = replace(feed, state=state, last_attempt=now, detail=result.detail)
    result.healthy, result.reason = updated.healthy, state.reason
    result.next_poll = state.next_poll
    result.state_saved = _save(es, names, updated, run_id)
    return result


def _recount(
    previous: FeedState, polled: FeedPoll, new_items: int, now: datetime, bounds: PollBounds
) -> FeedState:
    """The poll's state, with "new" counted by the frontier instead of every entry.

    poll_feed asks a predicate per entry; the frontier answers a whole batch at once, after
    the poll. The poll is replayed with the frontier's count so that items_seen and the
    adaptive interval see the truth.
    """
    assert polled.feed is not None  # only called for a parsed feed
    state = polled.state
    outcome = PollOutcome(
        status=state.last_status,
        etag=state.etag,
        last_modified=state.last_modified,
        body_hash=state.body_hash,
        entry_count=len(polled.feed.entries),
        new_items=new_items,
        health=polled.feed.health,
        reason=polled.feed.reason,
    )
    return next_poll(previous, outcome, now, bounds)


def _error_detail(error: FetchFailed | FetchUnavailable) -> str:
    """The error's own words, without the URL and reason the feed state already holds."""
    parts = [str(error.status)] if error.status is not None else []
    if error.detail:
        parts.append(error.detail)
    wait = getattr(error, "retry_after", None)
    if wait is not None:
        parts.append(f"Retry-After {wait:.0f}s")
    return "; ".join(parts)


def _save(es: Elasticsearch, names: IndexNames, feed: StoredFeed, run_id: str) -> bool:
    outcome = feedstate.save(es, names, feed, run_id=run_id)
    if outcome in ("created", "updated"):
        return True
    # Another pull saved this feed since we read it; its state stands (see feedstate.save).
    log.warning("state of %s not saved: %s", feed.url, outcome)
    return False


def _homepage(
    es: Elasticsearch,
    names: IndexNames,
    source: Source,
    stored: dict[str, StoredFeed],
    *,
    now: datetime,
    policy: FetchPolicy,
    bounds: PollBounds,
    run_id: str,
    force: bool,
) -> tuple[FeedResult, list[StoredFeed]]:
    """Look for feeds on a source's homepage when it is due; returns the feeds not known yet.

    The homepage has a state of its own (kind ``homepage``): once feeds are found it is read
    again daily for new ones; a homepage without any (or that fails) is unhealthy and retried
    on backoff. Feeds found once keep being polled even if the homepage stops listing them.
    """
    assert source.homepage is not None
    url = source.homepage
    page = stored.get(url) or StoredFeed(url=url, source=source.id, kind="homepage")
    state = page.state
    if not (force or page.is_due(now)):
        skipped = FeedResult(url, source.id, "not_due", kind="homepage", healthy=page.healthy)
        skipped.reason, skipped.next_poll = state.reason, state.next_poll
        return skipped, []
    result = FeedResult(url, source.id, "fetched", kind="homepage")
    known = [f.url for f in stored.values() if f.kind == "feed" and f.discovered_from == url]
    found: list[str] = []
    try:
        fetched = fetch(url, policy=policy, etag=state.etag, last_modified=state.last_modified)
    except (FetchFailed, FetchUnavailable) as exc:
        result.outcome, result.detail = "failed", _error_detail(exc)
        state = next_poll(state, PollOutcome.from_error(exc), now, bounds)
    else:
        if fetched.not_modified:
            result.outcome = "not_modified"
        else:
            found = discover_feeds(fetched.body, fetched.url)
        result.entries = len(found)
        validators = replace(
            state,
            etag=fetched.headers.get("etag") or state.etag,
            last_modified=fetched.headers.get("last-modified") or state.last_modified,
            last_status=fetched.status,
        )
        if found or (fetched.not_modified and known):
            state = replace(
                validators,
                last_outcome="not_modified" if fetched.not_modified else "ok",
                last_success=now,
                consecutive_failures=0,
                next_poll=now + bounds.max_interval,
                interval=bounds.max_interval,
                last_entry_count=len(found or known),
                health="ok",
                reason=None,
            )
        else:
            # A homepage that advertises no feed is a configuration fault: it shows, and it is
            # read again on backoff in case the site adds its link.
            missing = PollOutcome(status=fetched.status, failure="no_feed_found", permanent=True)
            state = next_poll(validators, missing, now, bounds)
            result.detail = "the homepage has no <link rel=alternate> to an RSS or Atom feed"
    updated = replace(page, state=state, last_attempt=now, detail=result.detail)
    result.healthy, result.reason = updated.healthy, state.reason
    result.next_poll = state.next_poll
    result.state_saved = _save(es, names, updated, run_id)
    new = [
        StoredFeed(url=feed_url, source=source.id, discovered_from=url)
        for feed_url in found
        if feed_url not in stored
    ]
    return result, new


# --------------------------------------------------------------------------- presentation


def report_json(report: PullReport) -> dict[str, Any]:
    """``newsradar pull --json``: totals, then per source its counts and each feed's result."""
    return {
        "run_id": report.run_id,
        "seconds": round(report.elapsed, 3),
        "feeds_polled": report.polled,
        "new": report.new,
        "seen": report.seen,
        "not_modified": report.not_modified,
        "errors": report.errors,
        "sources": [
            {
                "id": source.source,
                "new": source.new,
                "seen": source.seen,
                "not_modified": source.not_modified,
                "errors": source.errors,
                "not_due": source.not_due,
                "skipped": dict(source.skipped),
                "dead_lettered": source.dead_lettered,
                "feeds": [
                    {
                        "url": feed.url,
                        "kind": feed.kind,
                        "outcome": feed.outcome,
                        "entries": feed.entries,
                        "new": feed.new,
                        "seen": feed.seen,
                        "skipped": dict(feed.skipped),
                        "healthy": feed.healthy,
                        "reason": feed.reason,
                        "detail": feed.detail or None,
                        "next_poll": feed.next_poll.isoformat() if feed.next_poll else None,
                    }
                    for feed in source.feeds
                ],
            }
            for source in report.sources.values()
        ],
    }


def summary(report: PullReport) -> str:
    """The one-line summary printed after the table."""
    not_due = sum(s.not_due for s in report.sources.values())
    return (
        f"pulled {report.polled} feeds ({not_due} not due yet) of {len(report.sources)} sources in "
        f"{report.elapsed:.1f}s: {report.new} new, {report.seen} already queued, "
        f"{report.not_modified} not modified, {report.errors} with errors (run {report.run_id})"
    )
