"""The ``newsradar`` command: builds the settings once and hands them to the stages."""

from __future__ import annotations

import argparse
import base64
import json
import smtplib
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from pipeline.alerts.smtp import SmtpConfig
from pipeline.errors import ConfigError, NewsradarError, TransientError
from pipeline.settings import Config, Settings, load_config, load_settings

if TYPE_CHECKING:
    from pipeline.jobs import IngestReport

__all__ = ["Check", "doctor", "main"]


@dataclass(frozen=True)
class Check:
    """One line of ``newsradar doctor``."""

    name: str
    ok: bool
    detail: str


def _check_config(settings: Settings) -> tuple[Check, Config | None]:
    try:
        config = load_config(settings)
    except ConfigError as exc:
        return Check("config", False, str(exc)), None
    detail = (
        f"{len(config.sources)} sources, {len(config.alerts)} alert rules in {settings.config_dir}"
    )
    return Check("config", True, detail), config


def _split_userinfo(url: str) -> tuple[str, str, str | None]:
    """(URL without user:pass@, the URL with the password redacted, Basic credentials or None)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, url, None
    # urllib would take "user:pass@host" for the host name; credentials go in a header instead.
    netloc = parts.netloc.rpartition("@")[2]
    bare = urlunsplit(parts._replace(netloc=netloc))
    user = unquote(parts.username or "")
    shown = urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
    pair = f"{user}:{unquote(parts.password or '')}"
    return bare, shown, base64.b64encode(pair.encode("utf-8")).decode("ascii")


def _check_elasticsearch(settings: Settings, timeout: float) -> Check:
    url, shown, basic = _split_userinfo(settings.es_url)
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if settings.es_api_key is not None:
        request.add_header("Authorization", f"ApiKey {settings.es_api_key.get_secret_value()}")
    elif basic is not None:
        request.add_header("Authorization", f"Basic {basic}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            product = response.headers.get("X-Elastic-Product", "")
            body = json.loads(response.read(1_000_000))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Check("elasticsearch", False, f"{shown} unreachable: {reason}")
    version = str(body.get("version", {}).get("number", "?"))
    if product != "Elasticsearch":
        return Check("elasticsearch", False, f"{shown} is not Elasticsearch")
    if not version.startswith(("8.", "9.")):
        return Check("elasticsearch", False, f"{shown} runs {version}; 8.x or 9.x needed")
    return Check("elasticsearch", True, f"{shown} Elasticsearch {version}")


def _check_smtp(settings: Settings, timeout: float) -> Check:
    where = f"{settings.smtp_host}:{settings.smtp_port}"
    try:
        config = SmtpConfig.from_settings(settings)
    except ConfigError as exc:
        return Check("smtp", False, str(exc))
    if config.unencrypted_remote:
        note = "; mail goes out unencrypted (NEWSRADAR_SMTP_STARTTLS=false)"
    else:
        note = " (STARTTLS)" if config.starttls else ""
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout) as smtp:
            code, _ = smtp.noop()
    except (OSError, smtplib.SMTPException) as exc:
        return Check("smtp", False, f"{where} unreachable: {exc}{note}")
    if code != 250:
        return Check("smtp", False, f"{where} answered NOOP with {code}{note}")
    return Check("smtp", True, f"{where} answers{note}")


def doctor(settings: Settings, *, timeout: float = 3.0) -> list[Check]:
    """Check the configuration and every service it points at."""
    config_check, _ = _check_config(settings)
    return [
        config_check,
        _check_elasticsearch(settings, timeout),
        _check_smtp(settings, timeout),
    ]


def _cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    checks = doctor(settings)
    if args.json:
        print(json.dumps({"ok": all(c.ok for c in checks), "checks": [asdict(c) for c in checks]}))
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name:<14} {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


def _cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    config = load_config(settings)
    if args.json:
        print(
            json.dumps(
                {
                    "sources": [s.model_dump(mode="json") for s in config.sources],
                    "alerts": [a.model_dump(mode="json") for a in config.alerts],
                }
            )
        )
    else:
        print(f"{len(config.sources)} sources and {len(config.alerts)} alert rules are valid")
    return 0


def _cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.cli.show import print_result
    from pipeline.store.client import IndexNames, connect
    from pipeline.store.search import parse_language, parse_when, search

    language = parse_language(args.lang) if args.lang else None
    since = parse_when(args.since, "--since") if args.since else None
    until = parse_when(args.until, "--until") if args.until else None
    es = connect(settings, timeout=15.0)
    try:
        result = search(
            es,
            IndexNames(settings.index_prefix),
            args.query,
            language=language,
            source=args.source,
            since=since,
            until=until,
            size=args.size,
        )
    finally:
        es.close()
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    else:
        print_result(result, args.query)
    return 0


def _cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.alerts.rules import store_rules
    from pipeline.store.client import IndexNames, connect, install

    config = load_config(settings)
    es = connect(settings)
    try:
        report = install(es, settings.index_prefix)
        rules = store_rules(
            es,
            IndexNames(settings.index_prefix),
            config.alerts,
            source=str(settings.config_dir / "alerts.yaml"),
        )
    finally:
        es.close()
    if args.json:
        print(json.dumps(asdict(report) | {"rules": asdict(rules)}))
        return 0
    print(
        f"{len(config.alerts)} alert rules stored ({len(rules.stored)} new or changed, "
        f"{len(rules.removed)} removed)"
    )
    for index in report.created:
        print(f"created  {index}")
    for alias in report.upgraded:
        print(f"upgraded {alias} (mapping brought up to date, data kept)")
    print(
        f"{len(report.templates)} templates written, {len(report.created)} indices created, "
        f"{len(report.upgraded)} upgraded, {len(report.unchanged)} unchanged, "
        f"in {settings.es_url} under {settings.index_prefix}-*"
    )
    return 0


def _cmd_pull(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from rich.console import Console

    from pipeline.cli.show import print_report, terminal_progress
    from pipeline.feeds.pull import fetch_policy, pull, report_json
    from pipeline.store.client import connect

    config = load_config(settings)
    policy = fetch_policy(settings)
    bar = Console(stderr=True) if sys.stderr.isatty() and not args.json else None
    es = connect(settings)
    try:
        with terminal_progress(bar) as progress:
            report = pull(
                config,
                es,
                sources=args.source,
                now=datetime.now(UTC),
                policy=policy,
                force=args.force,
                progress=progress,
            )
    finally:
        es.close()
    if args.json:
        print(json.dumps(report_json(report), ensure_ascii=False))
    else:
        print_report(report, Console())
    return 0


def _cmd_kibana_import(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.ops.kibana import run_import

    return run_import(settings, url=args.url, space=args.space, as_json=args.json)


def _cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.cli.show import print_status
    from pipeline.feeds.state import collect_status
    from pipeline.store.client import IndexNames, connect

    config = load_config(settings)
    es = connect(settings, timeout=15.0)
    try:
        status = collect_status(es, IndexNames(settings.index_prefix), config.sources)
    finally:
        es.close()
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
    else:
        print_status(status, Console())
    return 0


def _cmd_alerts_send(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pipeline.alerts.send import send_digests
    from pipeline.store.client import IndexNames, connect

    config = load_config(settings)
    smtp = SmtpConfig.from_settings(settings)
    es = connect(settings)
    try:
        report = send_digests(
            es, IndexNames(settings.index_prefix), config, smtp, now=datetime.now(UTC)
        )
    finally:
        es.close()
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


def _cmd_alerts_test(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime
    from pathlib import Path

    from pipeline.alerts.trial import article_files, try_rules
    from pipeline.store.client import IndexNames, connect

    config = load_config(settings)
    files = article_files([Path(name) for name in args.files])
    es = connect(settings, timeout=15.0)
    try:
        results = try_rules(
            es, IndexNames(settings.index_prefix), config.alerts, files, now=datetime.now(UTC)
        )
    finally:
        es.close()
    if args.json:
        print(json.dumps({"files": [asdict(r) for r in results]}, ensure_ascii=False))
        return 0
    for result in results:
        print(
            f"{result.file}: language {result.language} ({result.method}, p={result.probability})"
        )
        for hit in result.hits:
            print(f"  match  {hit.rule_id} ({hit.name}): {', '.join(hit.terms)}")
            print(f"         {hit.snippet[:200]}")
        if not result.hits:
            print("  no rule matches")
    return 0


def _cmd_alerts_resend(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from pipeline.alerts.outbox import resend
    from pipeline.store.client import IndexNames, connect

    es = connect(settings)
    try:
        record = resend(es, IndexNames(settings.index_prefix), args.digest, now=datetime.now(UTC))
    finally:
        es.close()
    print(f"digest {args.digest} is {record.state} again; the next `alerts send` mails it")
    return 0


def _cmd_crawl(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from pipeline import jobs
    from pipeline.store.client import connect

    config = load_config(settings)
    err = Console(stderr=True)
    step = jobs.crawl_and_match if args.no_discover else jobs.discover_and_crawl
    es = connect(settings)
    try:
        report = step(
            config,
            es,
            now=datetime.now(UTC),
            sources=args.source,
            policy=jobs.crawl_policy(),
            limit=args.limit,
            progress=None if args.json else err.print,
        )
    finally:
        es.close()
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


def _cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from rich.console import Console
    from rich.table import Table

    from pipeline import jobs
    from pipeline.store.client import connect

    config = load_config(settings)
    policy = jobs.crawl_policy()
    err = Console(stderr=True)
    es = connect(settings)
    try:
        cycle = jobs.run_cycle(
            config,
            es,
            now=datetime.now(UTC),
            sources=args.source,
            policy=policy,
            force_pull=args.force,
            progress=None if args.json else err.print,
        )
    finally:
        es.close()
    ingest, delivery = cycle.ingest, cycle.delivery
    rows = _run_rows(ingest)
    broken = ingest.broken_sources()
    if args.json:
        counts = ingest.counts()
        print(
            json.dumps(
                {
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
                    "sources": rows,
                    "broken_sources": broken,
                },
                ensure_ascii=False,
            )
        )
        return 0
    table = Table("source", "feeds", "pulled", "discovered", "indexed", "duplicates", "failed")
    for sid, row in rows.items():
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
    for sid, reason in sorted(broken.items()):
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
    return 0


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


def _cmd_reextract(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.store.client import IndexNames, connect
    from pipeline.store.pages import reextract

    es = connect(settings)
    try:
        report = reextract(es, IndexNames(settings.index_prefix), sources=args.source)
    finally:
        es.close()
    if args.json:
        print(json.dumps(asdict(report)))
        return 0
    failed = ", ".join(f"{k} {v}" for k, v in sorted(report.failed.items())) or "none"
    print(
        f"re-extracted {report.pages} kept pages: {report.updated} articles updated, "
        f"{report.unchanged} unchanged, failed: {failed}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsradar", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    doctor_cmd = commands.add_parser("doctor", help="check the configuration and its services")
    doctor_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    doctor_cmd.set_defaults(handler=_cmd_doctor)
    config_cmd = commands.add_parser("config", help="validate sources.yaml and alerts.yaml")
    config_cmd.add_argument("--json", action="store_true", help="print the parsed configuration")
    config_cmd.set_defaults(handler=_cmd_config)
    search_cmd = commands.add_parser("search", help="search the indexed articles")
    search_cmd.add_argument("query", help='words, "a phrase", -excluded, either | or, prefix*')
    search_cmd.add_argument("--lang", help="only articles in this language (en, ru, ...)")
    search_cmd.add_argument("--source", help="only articles from this source id")
    search_cmd.add_argument("--since", help="published on or after (2024-05-01 or ISO time)")
    search_cmd.add_argument("--until", help="published on or before (a date counts whole)")
    search_cmd.add_argument("--size", type=int, default=20, help="hits to show (default 20)")
    search_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    search_cmd.set_defaults(handler=_cmd_search)
    init_cmd = commands.add_parser("init", help="create or upgrade the indices; safe to repeat")
    init_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    init_cmd.set_defaults(handler=_cmd_init)
    pull_cmd = commands.add_parser("pull", help="poll the sources' feeds into the frontier")
    pull_cmd.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable)"
    )
    pull_cmd.add_argument("--force", action="store_true", help="poll feeds that are not due yet")
    pull_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    pull_cmd.set_defaults(handler=_cmd_pull)
    crawl_cmd = commands.add_parser(
        "crawl", help="discover from sitemaps and section pages, then fetch and index the frontier"
    )
    crawl_cmd.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable)"
    )
    crawl_cmd.add_argument("--limit", type=int, default=5000, help="URLs to claim (default 5000)")
    crawl_cmd.add_argument(
        "--no-discover", action="store_true", help="only crawl what is already in the frontier"
    )
    crawl_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    crawl_cmd.set_defaults(handler=_cmd_crawl)
    run_cmd = commands.add_parser(
        "run", help="one full cycle: pull, discover, crawl, index, match, mail the digests"
    )
    run_cmd.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable)"
    )
    run_cmd.add_argument("--force", action="store_true", help="poll feeds that are not due yet")
    run_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    run_cmd.set_defaults(handler=_cmd_run)
    reextract_cmd = commands.add_parser(
        "reextract", help="re-run extraction over the kept pages and update the articles"
    )
    reextract_cmd.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable)"
    )
    reextract_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    reextract_cmd.set_defaults(handler=_cmd_reextract)
    status_cmd = commands.add_parser("status", help="per-source health and totals")
    status_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    status_cmd.set_defaults(handler=_cmd_status)
    alerts_cmd = commands.add_parser("alerts", help="topic alerts: send digests, try rules")
    alerts = alerts_cmd.add_subparsers(dest="alerts_command", required=True)
    send_cmd = alerts.add_parser("send", help="mail the pending alert digests")
    send_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    send_cmd.set_defaults(handler=_cmd_alerts_send)
    test_cmd = alerts.add_parser("test", help="which rules match these text or HTML files")
    test_cmd.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a .txt or .html file, or a directory: its .txt and .html files, sorted",
    )
    test_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    test_cmd.set_defaults(handler=_cmd_alerts_test)
    resend_cmd = alerts.add_parser("resend", help="send a failed or unknown digest again")
    resend_cmd.add_argument("digest", metavar="DIGEST_ID")
    resend_cmd.set_defaults(handler=_cmd_alerts_resend)
    kibana = commands.add_parser("kibana", help="Kibana dashboards").add_subparsers(
        dest="kibana_command", required=True
    )
    kibana_import = kibana.add_parser("import", help="import the data views and dashboards")
    kibana_import.add_argument("--url", help="Kibana's URL (default: NEWSRADAR_KIBANA_URL)")
    kibana_import.add_argument("--space", metavar="ID", help="Kibana space (default: default)")
    kibana_import.add_argument("--json", action="store_true", help="print one JSON object")
    kibana_import.set_defaults(handler=_cmd_kibana_import)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``newsradar`` console script."""
    args = _parser().parse_args(argv)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        settings = load_settings()
        return handler(settings, args)
    except TransientError as exc:
        # Elasticsearch or another service unreachable: worth retrying, unlike a config error.
        print(f"newsradar {args.command}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except NewsradarError as exc:
        print(f"newsradar {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"newsradar {args.command}: interrupted", file=sys.stderr)
        return 130
