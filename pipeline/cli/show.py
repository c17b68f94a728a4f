"""Terminal output of the ``newsradar`` commands: rich tables and the pull's progress bar."""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from pipeline.feeds.pull import FeedResult, Progress, PullReport
    from pipeline.store.search import SearchResult

__all__ = ["print_report", "print_result", "print_status", "terminal_progress"]


def print_report(report: PullReport, console: Console) -> None:
    """The per-source table, each unhealthy feed with its reason, and the summary line."""
    from pipeline.feeds.pull import summary

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("source", "new", "seen", "not-modified", "errors", "not-due"):
        table.add_column(column, justify="left" if column == "source" else "right")
    for source in report.sources.values():
        table.add_row(
            source.source,
            str(source.new),
            str(source.seen),
            str(source.not_modified),
            str(source.errors),
            str(source.not_due),
        )
    if not console.is_terminal:
        # Piped output gets the table's natural width, not rich's default of 80 columns.
        console = Console(file=console.file, width=200)
    console.print(table)
    for source in report.sources.values():
        for feed in source.polled:
            if not feed.healthy:
                detail = f" ({feed.detail})" if feed.detail else ""
                console.print(
                    f"{source.source}: {feed.url}: {feed.reason}{detail}",
                    markup=False,
                    soft_wrap=True,
                    highlight=False,
                )
    console.print(summary(report), markup=False, highlight=False, soft_wrap=True)


@contextmanager
def terminal_progress(console: Console | None) -> Iterator[Progress | None]:
    """A progress bar on ``console`` (None: no bar), as a ``progress`` callback for pull."""
    if console is None:
        yield None
        return
    bar = RichProgress(
        TextColumn("pulling feeds"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task("pull", total=None)

    def advance(result: FeedResult, done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    with bar:
        yield advance


def print_status(status: dict[str, Any], console: Console) -> None:
    """``newsradar status`` for people: a table of sources, unhealthy feeds, the totals."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("source", "status", "last pull", "articles", "pending", "feeds"):
        table.add_column(column, justify="right" if column in ("articles", "pending") else "left")
    for source in status["sources"]:
        feeds = source["feeds"]
        bad = sum(not feed["healthy"] for feed in feeds)
        table.add_row(
            source["id"],
            source["status"],
            (source["last_pull"] or "never")[:16].replace("T", " "),
            str(source["articles"]),
            str(source["pending"]),
            f"{len(feeds)}" + (f" ({bad} unhealthy)" if bad else ""),
        )
    if not console.is_terminal:
        # Piped output gets the table's natural width, not rich's default of 80 columns.
        console = Console(file=console.file, width=200)
    console.print(table)
    for source in status["sources"]:
        for feed in source["feeds"]:
            if not feed["healthy"]:
                detail = f" ({feed['detail']})" if feed["detail"] else ""
                console.print(
                    f"{source['id']}: {feed['url']}: {feed['reason']}{detail}; "
                    f"{feed['consecutive_failures']} failures in a row, next try "
                    f"{(feed['next_poll'] or '?')[:16].replace('T', ' ')}",
                    markup=False,
                    soft_wrap=True,
                    highlight=False,
                )
    languages = ", ".join(f"{k} {v}" for k, v in status["by_language"].items()) or "none"
    console.print(
        f"{status['articles']} articles ({status['duplicates']} duplicates; {languages}), "
        f"{status['frontier_pending']} URLs pending, {status['dead_letters']} dead letters, "
        f"alerts {status['alerts_sent']} sent / {status['alerts_pending']} pending, "
        f"{status.get('unmatched', 0)} articles waiting to be matched",
        markup=False,
        soft_wrap=True,
        highlight=False,
    )
    for refused in status.get("rule_errors", ()):
        console.print(
            f"alert rule {refused['rule']}: {refused['error']} "
            f"(last at {(refused['at'] or '?')[:16].replace('T', ' ')})",
            markup=False,
            soft_wrap=True,
            highlight=False,
        )


def print_result(result: SearchResult, query: str, console: Console | None = None) -> None:
    """A readable table of the hits, with the matched words highlighted."""
    # Piped output keeps a fixed width rather than rich's 80 columns.
    console = console or Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    shown = f"{len(result.hits)} of {result.total}" if result.total > len(result.hits) else ""
    noun = "article" if result.total == 1 else "articles"
    console.print(
        f"{result.total} {noun} match {query!r}" + (f" (showing {shown})" if shown else "")
    )
    if not result.hits:
        return
    table = Table("score", "published", "lang", "source", "article", show_lines=True)
    for hit in result.hits:
        article = Text()
        title = hit.highlights.get("title")
        article.append_text(_marked(title[0]) if title else Text(hit.title or "(no title)"))
        article.stylize("bold")
        if hit.duplicate_of:
            article.append(f"  [copy of {hit.duplicate_of}]", style="dim")
        for fragment in hit.highlights.get("text", []):
            article.append("\n… ")
            article.append_text(_marked(fragment))
        if hit.url:
            article.append(f"\n{hit.url}", style="dim")
        table.add_row(
            f"{hit.score:.2f}" if hit.score is not None else "",
            (hit.published or "")[:16].replace("T", " "),
            hit.language or "",
            hit.source or "",
            article,
        )
    console.print(table)


def _marked(fragment: str) -> Text:
    """A highlight fragment (HTML-escaped, <em> marks) as terminal text."""
    text = Text()
    for index, part in enumerate(re.split(r"</?em>", fragment)):
        text.append(html.unescape(part), style="bold yellow" if index % 2 else "")
    return text
