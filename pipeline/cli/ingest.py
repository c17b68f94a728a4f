"""``newsradar pull``, ``crawl``, ``run`` and ``reextract``: the ingest steps by hand."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pipeline.cli.session import connected
from pipeline.settings import Settings, load_config

if TYPE_CHECKING:
    from pipeline.alerts.send import SendReport
    from pipeline.jobs import IngestReport

__all__ = ["cmd_crawl", "cmd_pull", "cmd_reextract", "cmd_run"]


def cmd_pull(settings: Settings, args: argparse.Namespace) -> int:
    """Poll the sources' feeds into the frontier."""
    from rich.console import Console

    from pipeline.cli.show import print_report, terminal_progress
    from pipeline.feeds.pull import fetch_policy, pull, report_json

    config = load_config(settings)
    policy = fetch_policy(settings)
    bar = Console(stderr=True) if sys.stderr.isatty() and not args.json else None
    with connected(settings) as es, terminal_progress(bar) as progress:
        report = pull(
            config,
            es,
            sources=args.source,
            now=datetime.now(UTC),
            policy=policy,
            force=args.force,
            progress=progress,
        )
    if args.json:
        print(json.dumps(report_json(report), ensure_ascii=False))
    else:
        print_report(report, Console())
    return 0


def cmd_crawl(settings: Settings, args: argparse.Namespace) -> int:
    """Discover from sitemaps and section pages, then fetch and index the frontier."""
    from rich.console import Console
    from rich.table import Table

    from pipeline import jobs

    config = load_config(settings)
    err = Console(stderr=True)
    step = jobs.crawl_and_match if args.no_discover else jobs.discover_and_crawl
    with connected(settings) as es:
        report = step(
            config,
            es,
            now=datetime.now(UTC),
            sources=args.source,
            policy=jobs.crawl_policy(settings),
            limit=args.limit,
            progress=None if args.json else err.print,
        )
    run = report.crawl
    assert run is not None  # crawl_and_match always crawls
    if report.discovered and not args.json:
        new = sum(c["new"] for c in report.discovered.values())
        err.print(f"discovery: {new} new URLs from sitemaps and section pages")
    if args.json:
        by_source = {sid: dict(counts) for sid, counts in run.outcomes.items()}
        print(
            json.dumps(
                {
                    "run_id": run.run_id,
                    "claimed": run.claimed,
                    "indexed": run.indexed,
                    "duplicates": run.duplicates,
                    "sources": by_source,
                }
            )
        )
        return 0
    table = Table("source", "indexed", "duplicate", "failed", "reasons")
    for sid, counts in sorted(run.outcomes.items()):
        failed = {k: v for k, v in counts.items() if k not in ("indexed", "duplicate")}
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(failed.items()))
        table.add_row(
            sid,
            str(counts["indexed"]),
            str(counts["duplicate"]),
            str(sum(failed.values())),
            reasons,
        )
    Console().print(table)
    print(
        f"crawled {run.claimed} URLs: {run.indexed} indexed, {run.duplicates} duplicates, "
        f"{run.claimed - run.indexed - run.duplicates} not indexed"
    )
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """One full cycle: pull, discover, crawl, index, match, mail the digests."""
    from rich.console import Console

    from pipeline import jobs

    config = load_config(settings)
    policy = jobs.crawl_policy(settings)
    err = Console(stderr=True)
    with connected(settings) as es:
        cycle = jobs.run_cycle(
            config,
            es,
            now=datetime.now(UTC),
            sources=args.source,
            policy=policy,
            force_pull=args.force,
            progress=None if args.json else err.print,
        )
    if args.json:
        print(json.dumps(_run_json(cycle.ingest, cycle.delivery), ensure_ascii=False))
    else:
        _print_run(cycle.ingest, cycle.delivery)
    return 0


def _run_json(ingest: IngestReport, delivery: SendReport) -> dict[str, Any]:
    """``newsradar run --json``: the cycle's counts by step, per source, and broken sources."""
    counts = ingest.counts()
    return {
        "run_id": ingest.run_id,
        "pull": {
            "feeds": counts["feeds_polled"],
            "errors": counts["feed_errors"],
            "new": counts["pulled"],
        },
        "discovery": {"new": counts["discovered"]},
        "crawl": {
            "crawled": counts["crawled"],
            "indexed": counts["indexed"],
            "duplicates": counts["duplicates"],
            "not_indexed": counts["not_indexed"],
        },
        "match": {"matches": counts["matches"], "alerts": counts["alerts"]},
        "delivery": {
            "sent": delivery.sent,
            "failed": delivery.failed,
            "unknown": delivery.unknown,
            "retrying": delivery.retrying,
            "held": delivery.held,
        },
        "sources": _run_rows(ingest),
        "broken_sources": ingest.broken_sources(),
    }


def _print_run(ingest: IngestReport, delivery: SendReport) -> None:
    """``newsradar run``: a table per source, the broken sources, then one line of totals."""
    from rich.console import Console
    from rich.table import Table

    table = Table("source", "feeds", "pulled", "discovered", "indexed", "duplicates", "failed")
    for sid, row in _run_rows(ingest).items():
        table.add_row(
            sid,
            f"{row['feeds']}" + (f" ({row['feed_errors']} failing)" if row["feed_errors"] else ""),
            str(row["pulled"]),
            str(row["discovered"]),
            str(row["indexed"]),
            str(row["duplicates"]),
            ", ".join(f"{k} {v}" for k, v in sorted(row["failed"].items())) or "-",
        )
    # Wide when piped, so source ids are not cut at 80 columns.
    Console(width=None if sys.stdout.isatty() else 130).print(table)
    for sid, reason in sorted(ingest.broken_sources().items()):
        print(f"source {sid} could not be read: {reason}")
    counts = ingest.counts()
    print(
        f"pulled {counts['pulled']} new URLs from {counts['feeds_polled']} feeds, discovered "
        f"{counts['discovered']}; crawled {counts['crawled']}: {counts['indexed']} indexed, "
        f"{counts['duplicates']} duplicates, {counts['not_indexed']} not indexed; "
        f"{counts['matches']} rule matches, {counts['alerts']} new alerts; digests: "
        f"{delivery.sent} sent, {delivery.failed} failed, {delivery.unknown} unknown, "
        f"{delivery.retrying} to retry, {delivery.held} held"
    )


def _run_rows(ingest: IngestReport) -> dict[str, dict[str, Any]]:
    """Per source: feeds polled, URLs pulled and discovered, crawl outcomes."""
    sources: set[str] = set(ingest.discovered)
    if ingest.pull is not None:
        sources.update(ingest.pull.sources)
    if ingest.crawl is not None:
        sources.update(ingest.crawl.outcomes)
    rows: dict[str, dict[str, Any]] = {}
    for sid in sorted(sources):
        pulled = ingest.pull.sources.get(sid) if ingest.pull is not None else None
        outcomes: Mapping[str, int] = (
            ingest.crawl.outcomes.get(sid, {}) if ingest.crawl is not None else {}
        )
        rows[sid] = {
            "feeds": len(pulled.polled) if pulled else 0,
            "feed_errors": pulled.errors if pulled else 0,
            "pulled": pulled.new if pulled else 0,
            "discovered": ingest.discovered[sid]["new"] if sid in ingest.discovered else 0,
            "indexed": outcomes.get("indexed", 0),
            "duplicates": outcomes.get("duplicate", 0),
            "failed": {k: v for k, v in outcomes.items() if k not in ("indexed", "duplicate")},
        }
    return rows


def cmd_reextract(settings: Settings, args: argparse.Namespace) -> int:
    """Re-run extraction over the kept pages and update the articles."""
    from pipeline.store.pages import reextract

    with connected(settings) as es:
        report = reextract(es, settings.names, sources=args.source)
    if args.json:
        print(json.dumps(asdict(report)))
        return 0
    failed = ", ".join(f"{k} {v}" for k, v in sorted(report.failed.items())) or "none"
    print(
        f"re-extracted {report.pages} kept pages: {report.updated} articles updated, "
        f"{report.unchanged} unchanged, failed: {failed}"
    )
    return 0
