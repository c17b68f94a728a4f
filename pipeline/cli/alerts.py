"""``newsradar alerts``: mail digests, try rules on files, resend, mute, feedback, precision."""

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

__all__ = [
    "cmd_alerts_feedback",
    "cmd_alerts_mute",
    "cmd_alerts_report",
    "cmd_alerts_resend",
    "cmd_alerts_send",
    "cmd_alerts_test",
]


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
            print(f"         {hit.why}")
            print(f"         analysed: {_analysed(hit.analysed)}")
            print(f"         {hit.snippet[:200]}")
        for hit in result.below:
            print(f"  below  {hit.rule_id} ({hit.name}): min_relevance {hit.min_relevance:.2f}")
            print(f"         {hit.why}")
        if not result.hits and not result.below:
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


def cmd_alerts_mute(settings: Settings, args: argparse.Namespace) -> int:
    """No rule alerts on this story any more; its alerts are owed to nobody."""
    from pipeline.alerts.feedback import mute_story

    with connected(settings) as es:
        result = mute_story(es, settings.names, args.story, now=datetime.now(UTC))
    if args.json:
        print(json.dumps(asdict(result), ensure_ascii=False))
        return 0
    state = "muted" if result.new else "was muted already"
    print(f"story {result.story_id} {state}; {len(result.alerts)} of its alerts owed to nobody")
    return 0


def cmd_alerts_feedback(settings: Settings, args: argparse.Namespace) -> int:
    """Record the "not relevant" replies found in an mbox file."""
    from pipeline.alerts.feedback import read_feedback

    with connected(settings) as es:
        report = read_feedback(es, settings.names, Path(args.mbox), now=datetime.now(UTC))
    if args.json:
        print(json.dumps(asdict(report), ensure_ascii=False))
        return 0
    print(
        f"{report.messages} messages read, {report.codes} not-relevant codes: "
        f"{report.recorded} recorded, {report.repeated} recorded before, "
        f"{report.unknown} of no alert here"
    )
    return 0


def cmd_alerts_report(settings: Settings, args: argparse.Namespace) -> int:
    """Per rule: alerts mailed, how many readers called not relevant, and the precision."""
    from pipeline.alerts.feedback import precision

    config = load_config(settings)
    rules = [(rule.id, rule.name, rule.relevance_threshold) for rule in config.alerts]
    with connected(settings) as es:
        report = precision(es, settings.names, rules)
    if args.json:
        print(json.dumps({"rules": [asdict(row) for row in report]}, ensure_ascii=False))
        return 0
    from pipeline.cli.show import print_precision

    print_precision(report)
    return 0
