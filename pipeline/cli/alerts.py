"""``newsradar alerts``: mail the due digests, try rules on files, resend a digest."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.cli.session import connected
from pipeline.settings import Settings, load_config

if TYPE_CHECKING:
    from pipeline.alerts.trial import Analysed

__all__ = ["cmd_alerts_resend", "cmd_alerts_send", "cmd_alerts_test"]


def cmd_alerts_send(settings: Settings, args: argparse.Namespace) -> int:
    """Mail the digests that are due, as the deliver_alerts DAG does."""
    from pipeline import jobs

    config = load_config(settings)
    with connected(settings) as es:
        report = jobs.deliver(config, es, now=datetime.now(UTC))
    if args.json:
        print(json.dumps(asdict(report), ensure_ascii=False))
        return 0
    for digest in report.digests:
        what = f"{digest.rule_id} -> {digest.recipient} ({digest.items} stories)"
        print(f"{digest.state:<8} {what}" + (f": {digest.reason}" if digest.reason else ""))
    print(
        f"{report.sent} digests sent, {report.failed} failed, {report.unknown} unknown, "
        f"{report.retrying} to retry, {report.held} held by their digest interval"
    )
    return 0


def cmd_alerts_test(settings: Settings, args: argparse.Namespace) -> int:
    """Which rules match these text or HTML files."""
    from pipeline.alerts.trial import article_files, try_rules

    config = load_config(settings)
    files = article_files([Path(name) for name in args.files])
    with connected(settings, timeout=15.0) as es:
        results = try_rules(es, settings.names, config.alerts, files, now=datetime.now(UTC))
    if args.json:
        print(json.dumps({"files": [asdict(r) for r in results]}, ensure_ascii=False))
        return 0
    for result in results:
        print(
            f"{result.file}: language {result.language} ({result.method}, p={result.probability})"
        )
        for hit in result.hits:
            print(f"  match  {hit.rule_id} ({hit.name}): {', '.join(hit.terms)}")
            print(f"         analysed: {_analysed(hit.analysed)}")
            print(f"         {hit.snippet[:200]}")
        if not result.hits:
            print("  no rule matches")
        for query in result.queries:
            print(f"  {query.rule_id} searches ({query.analyser}): {_analysed(query.terms)}")
    return 0


def _analysed(items: Sequence[Analysed]) -> str:
    """``enlargements → enlarg · join NATO → join nato``: each as written and as analysed."""
    return " · ".join(f"{item.text} → {' '.join(item.terms) or '(nothing)'}" for item in items)


def cmd_alerts_resend(settings: Settings, args: argparse.Namespace) -> int:
    """Put a failed or unknown digest back in line for the next ``alerts send``."""
    from pipeline.alerts.outbox import resend

    with connected(settings) as es:
        record = resend(es, settings.names, args.digest, now=datetime.now(UTC))
    print(f"digest {args.digest} is {record.state} again; the next `alerts send` mails it")
    return 0
