"""The ``newsradar`` command: builds the settings once and hands them to the stages."""

# The argument parser, main and the small commands live here; the command groups have their
# own modules (doctor, ingest, alerts); every terminal table is in show.

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict

from pipeline.cli.alerts import (
    cmd_alerts_feedback,
    cmd_alerts_mute,
    cmd_alerts_report,
    cmd_alerts_resend,
    cmd_alerts_send,
    cmd_alerts_test,
)
from pipeline.cli.doctor import cmd_doctor
from pipeline.cli.ingest import cmd_crawl, cmd_pull, cmd_reextract, cmd_run
from pipeline.cli.session import connected
from pipeline.cli.stories import add_stories_commands
from pipeline.errors import NewsradarError, TransientError
from pipeline.languages import LANGUAGES, language
from pipeline.settings import Settings, load_config, load_settings

__all__ = ["main"]


def _cmd_config(settings: Settings, args: argparse.Namespace) -> int:
    config = load_config(settings)
    if args.json:
        print(
            json.dumps(
                {
                    "sources": [s.model_dump(mode="json") for s in config.sources],
                    "alerts": [
                        a.model_dump(mode="json")
                        | {"languages": list(a.languages), "unstemmed": _unstemmed(a.languages)}
                        for a in config.alerts
                    ],
                },
                ensure_ascii=False,
            )
        )
        return 0
    print(f"{len(config.sources)} sources and {len(config.alerts)} alert rules are valid")
    for rule in config.alerts:
        covered = f"{len(rule.languages)} of {len(LANGUAGES)} languages"
        line = f"  {rule.id}: {covered}: {' '.join(rule.languages)}"
        if unstemmed := _unstemmed(rule.languages):
            line += f" (not stemmed, prefixes reach inflections: {' '.join(unstemmed)})"
        print(line)
    return 0


def _unstemmed(codes: Sequence[str]) -> list[str]:
    """The languages among ``codes`` that fall back to the folding analyser."""
    return [code for code in codes if (entry := language(code)) is None or not entry.stemmed]


def _cmd_search(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.cli.show import print_result, print_stories
    from pipeline.store.search import (
        StoryResult,
        parse_language,
        parse_when,
        search,
        search_stories,
    )

    language = parse_language(args.lang) if args.lang else None
    since = parse_when(args.since, "--since") if args.since else None
    until = parse_when(args.until, "--until") if args.until else None
    find = search_stories if args.stories else search
    with connected(settings, timeout=15.0) as es:
        result = find(
            es,
            settings.names,
            args.query,
            language=language,
            source=args.source,
            since=since,
            until=until,
            size=args.size,
        )
    if args.json:
        print(json.dumps(result.to_json(), ensure_ascii=False))
    elif isinstance(result, StoryResult):
        print_stories(result, args.query)
    else:
        print_result(result, args.query)
    return 0


def _source_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--source", action="append", metavar="ID", help="only this source (repeatable)"
    )


def _cmd_init(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.alerts.rules import store_rules
    from pipeline.store.client import install

    config = load_config(settings)
    with connected(settings) as es:
        report = install(es, settings.index_prefix)
        rules = store_rules(
            es, settings.names, config.alerts, source=str(settings.config_dir / "alerts.yaml")
        )
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


def _cmd_kibana_import(settings: Settings, args: argparse.Namespace) -> int:
    from pipeline.ops.kibana import run_import

    return run_import(settings, url=args.url, space=args.space, as_json=args.json)


def _cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from rich.console import Console

    from pipeline.cli.show import print_status
    from pipeline.ops.status import collect_status

    config = load_config(settings)
    with connected(settings, timeout=15.0) as es:
        status = collect_status(es, settings.names, config.sources)
    if args.json:
        print(json.dumps(status, ensure_ascii=False))
    else:
        print_status(status, Console())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsradar", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    doctor_cmd = commands.add_parser("doctor", help="check the configuration and its services")
    doctor_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    doctor_cmd.set_defaults(handler=cmd_doctor)
    config_cmd = commands.add_parser("config", help="validate sources.yaml and alerts.yaml")
    config_cmd.add_argument("--json", action="store_true", help="print the parsed configuration")
    config_cmd.set_defaults(handler=_cmd_config)
    search_cmd = commands.add_parser("search", help="search the indexed articles")
    search_cmd.add_argument("query", help='words, "a phrase", -excluded, either | or, prefix*')
    search_cmd.add_argument("--lang", help="only articles in this language (en, ru, ...)")
    search_cmd.add_argument("--source", help="only articles from this source id")
    search_cmd.add_argument("--since", help="published on or after (2024-05-01 or ISO time)")
    search_cmd.add_argument("--until", help="published on or before (a date counts whole)")
    search_cmd.add_argument(
        "--size", type=int, default=20, help="hits (or stories) to show (default 20)"
    )
    search_cmd.add_argument(
        "--stories",
        action="store_true",
        help="one line per story of the matching articles, best-scoring first",
    )
    search_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    search_cmd.set_defaults(handler=_cmd_search)
    init_cmd = commands.add_parser("init", help="create or upgrade the indices; safe to repeat")
    init_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    init_cmd.set_defaults(handler=_cmd_init)
    pull_cmd = commands.add_parser("pull", help="poll the sources' feeds into the frontier")
    _source_option(pull_cmd)
    pull_cmd.add_argument("--force", action="store_true", help="poll feeds that are not due yet")
    pull_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    pull_cmd.set_defaults(handler=cmd_pull)
    crawl_cmd = commands.add_parser(
        "crawl", help="discover from sitemaps and section pages, then fetch and index the frontier"
    )
    _source_option(crawl_cmd)
    crawl_cmd.add_argument("--limit", type=int, default=5000, help="URLs to claim (default 5000)")
    crawl_cmd.add_argument(
        "--no-discover", action="store_true", help="only crawl what is already in the frontier"
    )
    crawl_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    crawl_cmd.set_defaults(handler=cmd_crawl)
    run_cmd = commands.add_parser(
        "run", help="one full cycle: pull, discover, crawl, index, match, mail the digests"
    )
    _source_option(run_cmd)
    run_cmd.add_argument("--force", action="store_true", help="poll feeds that are not due yet")
    run_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    run_cmd.set_defaults(handler=cmd_run)
    reextract_cmd = commands.add_parser(
        "reextract", help="re-run extraction over the kept pages and update the articles"
    )
    _source_option(reextract_cmd)
    reextract_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    reextract_cmd.set_defaults(handler=cmd_reextract)
    status_cmd = commands.add_parser("status", help="per-source health and totals")
    status_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    status_cmd.set_defaults(handler=_cmd_status)
    _add_alerts_and_kibana(commands)
    add_stories_commands(commands)
    return parser


def _add_alerts_and_kibana(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``alerts`` and ``kibana`` command groups."""
    alerts_cmd = commands.add_parser("alerts", help="topic alerts: send digests, try rules")
    alerts = alerts_cmd.add_subparsers(dest="alerts_command", required=True)
    send_cmd = alerts.add_parser("send", help="mail the pending alert digests")
    send_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    send_cmd.set_defaults(handler=cmd_alerts_send)
    test_cmd = alerts.add_parser("test", help="which rules match these text or HTML files")
    test_cmd.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="a .txt or .html file, or a directory: its .txt and .html files, sorted",
    )
    test_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    test_cmd.set_defaults(handler=cmd_alerts_test)
    resend_cmd = alerts.add_parser("resend", help="send a failed or unknown digest again")
    resend_cmd.add_argument("digest", metavar="DIGEST_ID")
    resend_cmd.set_defaults(handler=cmd_alerts_resend)
    mute_cmd = alerts.add_parser("mute", help="no rule alerts on this story any more")
    mute_cmd.add_argument("story", metavar="STORY_ID")
    mute_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    mute_cmd.set_defaults(handler=cmd_alerts_mute)
    feedback_cmd = alerts.add_parser(
        "feedback", help='record the "not relevant" replies of an mbox file'
    )
    feedback_cmd.add_argument("mbox", metavar="MBOX")
    feedback_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    feedback_cmd.set_defaults(handler=cmd_alerts_feedback)
    report_cmd = alerts.add_parser("report", help="per rule: alerts mailed and their precision")
    report_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    report_cmd.set_defaults(handler=cmd_alerts_report)
    kibana = commands.add_parser("kibana", help="Kibana dashboards").add_subparsers(
        dest="kibana_command", required=True
    )
    kibana_import = kibana.add_parser("import", help="import the data views and dashboards")
    kibana_import.add_argument("--url", help="Kibana's URL (default: NEWSRADAR_KIBANA_URL)")
    kibana_import.add_argument("--space", metavar="ID", help="Kibana space (default: default)")
    kibana_import.add_argument("--json", action="store_true", help="print one JSON object")
    kibana_import.set_defaults(handler=_cmd_kibana_import)


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
