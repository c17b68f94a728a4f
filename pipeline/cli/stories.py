"""``newsradar stories``: why an article is in its story."""

from __future__ import annotations

import argparse
import json

from pipeline.cli.session import connected
from pipeline.errors import ConfigError
from pipeline.settings import Settings

__all__ = ["add_stories_commands", "cmd_stories_explain"]


def cmd_stories_explain(settings: Settings, args: argparse.Namespace) -> int:
    """Print why the article is in its story, with the evidence and the near misses."""
    from pipeline.cli.show import print_explanation
    from pipeline.store.stories import event_config
    from pipeline.store.story_explain import explain

    if args.candidates < 0:
        raise ConfigError("command line", "--candidates", f"{args.candidates} is negative")
    with connected(settings, timeout=15.0) as es:
        explanation = explain(
            es,
            settings.names,
            args.article,
            events=event_config(settings),
            limit=args.candidates,
        )
    if args.json:
        print(json.dumps(explanation.to_json(), ensure_ascii=False))
    else:
        print_explanation(explanation)
    return 0


def add_stories_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``stories`` command group."""
    stories_cmd = commands.add_parser("stories", help="stories: why an article is in its story")
    stories = stories_cmd.add_subparsers(dest="stories_command", required=True)
    explain_cmd = stories.add_parser(
        "explain", help="why an article is in its story, and which reports did not join"
    )
    explain_cmd.add_argument("article", metavar="ARTICLE_ID")
    explain_cmd.add_argument(
        "--candidates",
        type=int,
        default=5,
        metavar="N",
        help="other candidate reports to show, best first (default 5)",
    )
    explain_cmd.add_argument("--json", action="store_true", help="print one JSON object")
    explain_cmd.set_defaults(handler=cmd_stories_explain)
