"""Terminal output of the ``newsradar`` commands: rich tables and the pull's progress bar."""

from __future__ import annotations

import html
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress
from rich.table import Table
from rich.text import Text

if TYPE_CHECKING:
    from pipeline.alerts.feedback import RulePrecision
    from pipeline.feeds.pull import FeedResult, Progress, PullReport
    from pipeline.normalise.events import Evidence
    from pipeline.store.search import SearchResult, StoryResult
    from pipeline.store.story_explain import ArticleSummary, Explanation

__all__ = [
    "print_explanation",
    "print_precision",
    "print_report",
    "print_result",
    "print_status",
    "print_stories",
    "terminal_progress",
]


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


def print_precision(report: list[RulePrecision], console: Console | None = None) -> None:
    """``newsradar alerts report``: per rule, alerts mailed and readers' verdicts on them."""
    console = console or _plain_console()
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("rule", "mailed", "not relevant", "precision", "muted", "min_relevance"):
        table.add_column(column, justify="left" if column == "rule" else "right")
    for row in report:
        table.add_row(
            row.rule_id,
            str(row.mailed),
            str(row.not_relevant),
            f"{row.precision:.0%}" if row.precision is not None else "-",
            str(row.muted),
            f"{row.min_relevance:.2f}",
        )
    console.print(table)
    for row in report:
        if row.highest_not_relevant is not None:
            console.print(
                f"{row.rule_id}: the alerts called not relevant scored up to "
                f"{row.highest_not_relevant:.2f}; a min_relevance above that leaves them out",
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


def print_stories(result: StoryResult, query: str, console: Console | None = None) -> None:
    """One row per story of the matching articles: title, first seen, reports, sources, id."""
    console = console or _plain_console()
    noun = "story" if result.total == 1 else "stories"
    articles = "article" if result.articles == 1 else "articles"
    shown = len(result.stories)
    console.print(
        f"{result.total} {noun} among {result.articles} {articles} matching {query!r}"
        + (f" (showing {shown})" if result.total > shown else ""),
        markup=False,
    )
    if not result.stories:
        return
    table = Table("score", "first seen", show_lines=True)
    table.add_column("story", overflow="fold")
    for story in result.stories:
        cell = Text(story.title or "(no title)", style="bold")
        cell.append(
            f"\n{_count(story.report_count, 'report')} · {_count(len(story.sources), 'source')}"
            f" · {', '.join(story.languages) or '?'}"
        )
        if story.sources:
            cell.append(f" ({', '.join(story.sources)})", style="dim")
        cell.append(
            f"\nmatching: {story.matched} of {_count(story.article_count, 'article')}", style="dim"
        )
        cell.append(f"\nstory {story.story_id}", style="dim")
        table.add_row(
            f"{story.score:.2f}" if story.score is not None else "",
            _when(story.first_seen),
            cell,
        )
    console.print(table)


def print_explanation(explanation: Explanation, console: Console | None = None) -> None:
    """``newsradar stories explain``: the article, its story, the evidence, the near misses."""
    console = console or _plain_console()
    e = explanation

    def line(text: str, style: str = "") -> None:
        console.print(Text(text, style=style), soft_wrap=True)

    line(f"article {e.article.id}", "bold")
    _describe_article(e.article, line)
    if e.story is not None:
        story = e.story
        line(
            f"story {story.story_id}: {_count(story.article_count, 'article')}, "
            f"{_count(story.report_count, 'report')}, {_count(len(story.sources), 'source')}, "
            f"{', '.join(story.languages) or '?'}",
            "bold",
        )
    line(f"relation: {e.relation}: {e.summary}")
    if e.through is not None:
        line(f"joined through {e.through.id}", "bold")
        _describe_article(e.through, line)
        if e.duplicate_kind is not None:
            similarity = f"{e.similarity:.3f}" if e.similarity is not None else "?"
            line(f"  copy: {e.duplicate_kind}, similarity {similarity}")
    if e.evidence is not None:
        line("evidence", "bold")
        _describe_evidence(e.evidence, e.threshold, line)
    elif e.through is not None:
        line("evidence: none to compare (a signature or publication time is missing)")
    config = e.config
    if not config.enabled:
        line("same-event joining is off (NEWSRADAR_STORY_SAME_EVENT): stories are copies", "dim")
    else:
        line(
            f"thresholds: {config.threshold:g} within a language, {config.cross_threshold:g} "
            f"across, at least {config.min_shared} names, numbers or dates shared, "
            f"within {config.window_hours:g} h",
            "dim",
        )
    if not e.candidates:
        line("no other candidates" if not e.compared else "other candidates not shown")
        return
    line(f"other candidates ({len(e.candidates)} of {e.compared}, best first)", "bold")
    table = Table("score", "threshold", show_lines=True)
    # Ids fold rather than shorten: they are what the next ``stories explain`` takes.
    table.add_column("article", overflow="fold", ratio=3)
    table.add_column("why not", ratio=2)
    for candidate in e.candidates:
        article = Text(candidate.article.title or "(no title)", style="bold")
        article.append(f"\n{_where(candidate.article)}")
        article.append(f"\n{candidate.article.id}", style="dim")
        if candidate.same_story:
            article.append("\nin the same story", style="dim")
        evidence = candidate.evidence
        table.add_row(
            f"{evidence.score:.3f}" if evidence is not None else "",
            f"{candidate.threshold:g}" if candidate.threshold is not None else "",
            article,
            Text(candidate.reason),
        )
    console.print(table)


def _describe_article(article: ArticleSummary, line: Callable[[str], None]) -> None:
    line(f"  {article.title or '(no title)'}")
    line(f"  {_where(article)}")
    if article.url:
        line(f"  {article.url}")


def _describe_evidence(
    evidence: Evidence, threshold: float | None, line: Callable[[str], None]
) -> None:
    scope = "within one language" if evidence.same_language else "across languages"
    limit = f"{threshold:g}" if threshold is not None else "?"
    verdict = "joins" if evidence.joined else "does not join"
    line(f"  score {evidence.score:.3f}, threshold {limit} {scope}: {verdict} ({evidence.reason})")
    line(
        f"  parts: keys {evidence.keys:.3f} · terms {evidence.terms:.3f} · "
        f"title {evidence.title:.3f} · lead coverage {evidence.coverage:.3f} · "
        f"{evidence.telling} telling dates or numbers · {evidence.hours_apart:g} h apart"
    )
    line(f"  shared keys ({len(evidence.shared)}): {', '.join(evidence.shared) or 'none'}")


def _where(article: ArticleSummary) -> str:
    """Source, language and publication time, as one line."""
    parts = [article.source or "?", article.language or "?"]
    if article.published:
        parts.append(f"published {_when(article.published)}")
    return " · ".join(parts)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _when(value: str | None) -> str:
    return (value or "")[:16].replace("T", " ")


def _plain_console() -> Console:
    # Piped output keeps a fixed width rather than rich's 80 columns.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


def _marked(fragment: str) -> Text:
    """A highlight fragment (HTML-escaped, <em> marks) as terminal text."""
    text = Text()
    for index, part in enumerate(re.split(r"</?em>", fragment)):
        text.append(html.unescape(part), style="bold yellow" if index % 2 else "")
    return text
