"""``make demo``: serve the bundled news site, discover and crawl it, find the copies, report."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from rich.console import Console
from rich.table import Table

from pipeline.crawl import CrawlPolicy, crawl
from pipeline.dates import parse_date
from pipeline.dedup import DEFAULT_CONFIG, DedupConfig, Fingerprint, classify
from pipeline.demosite import DemoSite
from pipeline.discover import Candidate, discover_source
from pipeline.errors import NewsradarError
from pipeline.fetch import FetchPolicy, user_agent
from pipeline.settings import Settings, Source, load_config, load_settings

__all__ = ["DemoReport", "UrlOutcome", "main", "run_demo"]

DEMO_PORT = 8765  # config/demo/sources.yaml points here
# The demo site is on loopback and ours: no need for the politeness delays the web gets.
DEMO_CRAWL = CrawlPolicy(
    concurrency_per_domain=4, download_delay=0.0, autothrottle_start_delay=0.05, log_level="WARNING"
)


@dataclass(frozen=True)
class UrlOutcome:
    """What became of one listed URL: exactly one outcome per URL."""

    url: str
    source: str
    outcome: str  # new, duplicate, robots, robots_deferred, no_text, http_4xx, ...
    language: str | None = None
    title: str | None = None
    duplicate_of: str | None = None
    duplicate_kind: str | None = None  # exact or near
    score: float | None = None


@dataclass
class DemoReport:
    """The demo run: every URL's outcome and each source's listing problems."""

    outcomes: list[UrlOutcome] = field(default_factory=list)
    problems: dict[str, list[str]] = field(default_factory=dict)
    listed: int = 0

    def by(self, outcome: str) -> list[UrlOutcome]:
        """The URLs that ended in ``outcome``."""
        return [o for o in self.outcomes if o.outcome == outcome]


class _RunDedup:
    """Candidate lookup by shared LSH band key among the articles of this run."""

    def __init__(self, config: DedupConfig) -> None:
        self._config = config
        self._by_band: defaultdict[str, list[str]] = defaultdict(list)
        self._by_hash: dict[str, str] = {}
        self._prints: dict[str, Fingerprint] = {}

    def check_and_add(self, article_id: str, print_: Fingerprint) -> tuple[str | None, str, float]:
        """(id of the earlier article it copies or None, kind, score); then remember it."""
        candidates: dict[str, Fingerprint] = {}
        if print_.content_hash in self._by_hash:
            earlier = self._by_hash[print_.content_hash]
            candidates[earlier] = self._prints[earlier]
        for key in print_.band_keys:
            for earlier in self._by_band.get(key, ()):
                candidates[earlier] = self._prints[earlier]
        verdict = classify(print_, candidates.items(), threshold=self._config.threshold)
        self._prints[article_id] = print_
        self._by_hash.setdefault(print_.content_hash, article_id)
        for key in print_.band_keys:
            self._by_band[key].append(article_id)
        if verdict.kind == "new":
            return None, "new", 0.0
        return verdict.match_id, verdict.kind, verdict.score


def run_demo(
    sources: Iterable[Source],
    *,
    settings: Settings,
    now: datetime,
    policy: CrawlPolicy = DEMO_CRAWL,
    dedup: DedupConfig = DEFAULT_CONFIG,
) -> DemoReport:
    """Discover every source, crawl each listed URL once, then find the copies among them."""
    report = DemoReport()
    candidates: dict[str, Candidate] = {}
    languages: dict[str, str | None] = {}
    fetch_policy = FetchPolicy(
        user_agent=user_agent(settings.contact_url),
        allow_private_networks=settings.allow_private_networks,
        deadline=20.0,
    )
    for source in sources:
        languages[source.id] = source.language
        found = discover_source(source, policy=fetch_policy, now=now)
        report.problems[source.id] = [f"{p.url}: {p.reason}" for p in found.problems]
        for url, candidate in found.candidates.items():
            # A URL listed by two sources belongs to the first; the second saw a copy of it.
            candidates.setdefault(url, candidate)
    report.listed = len(candidates)
    crawled = crawl(
        list(candidates.values()), settings=settings, languages=languages, policy=policy
    )
    seen = _RunDedup(dedup)
    url_of: dict[str, str] = {}
    # Oldest first, so the first-seen article of a cluster is the one published first.
    for candidate in sorted(candidates.values(), key=lambda c: _published(c, now)):
        outcome = crawled.outcomes[candidate.url]
        print_ = outcome.fingerprint()
        if outcome.outcome != "normalised" or print_ is None or outcome.article_id is None:
            report.outcomes.append(UrlOutcome(candidate.url, candidate.source, outcome.outcome))
            continue
        url_of[outcome.article_id] = outcome.canonical_url or candidate.url
        earlier, kind, score = seen.check_and_add(outcome.article_id, print_)
        report.outcomes.append(
            UrlOutcome(
                url=outcome.canonical_url or candidate.url,
                source=candidate.source,
                outcome="new" if earlier is None else "duplicate",
                language=outcome.language,
                title=outcome.title,
                duplicate_of=url_of.get(earlier) if earlier else None,
                duplicate_kind=None if earlier is None else kind,
                score=None if earlier is None else round(score, 3),
            )
        )
    return report


def _published(candidate: Candidate, now: datetime) -> datetime:
    parsed = parse_date(candidate.published_raw, now=now)
    return parsed.value if parsed is not None and parsed.value is not None else now


def _print_report(report: DemoReport, base_url: str, console: Console) -> None:
    console.print(f"[bold]newsradar demo[/bold] — demo news site at {base_url}")
    table = Table("source", "listed", "new", "duplicates", "other outcomes", "listing problems")
    per_source: defaultdict[str, Counter[str]] = defaultdict(Counter)
    for outcome in report.outcomes:
        per_source[outcome.source][outcome.outcome] += 1
    for source, problems in report.problems.items():
        counts = per_source[source]
        others = ", ".join(
            f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("new", "duplicate")
        )
        table.add_row(
            source,
            str(sum(counts.values())),
            str(counts["new"]),
            str(counts["duplicate"]),
            others or "-",
            "; ".join(problems) or "-",
        )
    console.print(table)
    languages = Counter(o.language for o in report.outcomes if o.language)
    console.print(
        "Articles by language: " + ", ".join(f"{k} {v}" for k, v in languages.most_common())
    )
    for copy in report.by("duplicate"):
        original = (copy.duplicate_of or "").removeprefix(base_url)
        console.print(
            f"  {copy.duplicate_kind} copy (Jaccard {copy.score:.2f}): "
            f"{copy.url.removeprefix(base_url)}\n      of {original}",
            overflow="fold",
        )
    dups = len(report.by("duplicate"))
    stories = len(report.by("new"))
    other = len(report.outcomes) - dups - stories
    console.print(
        f"[bold]Summary:[/bold] {report.listed} URLs listed, {len(report.outcomes)} outcomes; "
        f"{stories} distinct articles, {dups} duplicates, {other} not fetched or not articles."
    )
    console.print(
        "Not run: indexing, search and alerts. They need the local Elasticsearch node "
        "(make es-up), which cannot be resolved from Maven Central yet."
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the demo site on loopback and run discovery and normalisation over it."""
    parser = argparse.ArgumentParser(prog="python -m pipeline.demo", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    # A wide console when piped, so tables and URLs are not cut at 80 columns.
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 130)
    try:
        settings = load_settings(
            {"NEWSRADAR_CONFIG_DIR": "config/demo", "NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1"}
        )
        config = load_config(settings)
        with DemoSite(port=DEMO_PORT) as site:
            base_url = site.base_url
            with console.status("discovering and crawling the demo site"):
                report = run_demo(config.sources, settings=settings, now=datetime.now(UTC))
    except NewsradarError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(
            json.dumps({"listed": report.listed, "outcomes": [asdict(o) for o in report.outcomes]})
        )
    else:
        _print_report(report, base_url, console)
    return 0


if __name__ == "__main__":
    sys.exit(main())
