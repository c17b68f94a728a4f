"""Benchmark same-event story assignment against 10,000 and 100,000 stored articles.

Run from the repository root, the local node up (``make es-up``)::

    .venv/bin/python bench/bench_events.py                       # 10,000 then 100,000 stored
    .venv/bin/python bench/bench_events.py --sizes 1000,10000    # a quick run

It checks that assigning an article to a story does not cost more as the index grows: an
article's event candidates are one weighted-terms search on its names, numbers and dates in the
window around its publication time, at most ``max_candidates`` (pipeline.store.story_events).
Per size, under a throwaway index prefix of its own (deleted afterwards, also on failure):

1. Fill: ``--per-day`` articles a day (1,700: 100,000 span 59 days, the 72 h before an article
   hold ~5,000), written with the bulk helper, not through ``ingest``: reports of generated
   events (bench/corpus.py: two people, a place, a date, figures; people and places as frequent
   as Zipf's law has them), 1 to 8 per event, in five languages, with the story fields and
   story documents ``ingest`` would give them (``compare`` decides ``same_event``).
2. Ingest ``--batches`` batches of ``--batch`` new articles (after ``--warmup`` untimed ones)
   published in the last 72 h of the span: ~30% new reports of stored events, ~10% near
   copies of stored articles, the rest reports of new events (1 to 4 each). Fingerprints and
   signatures are made first, as normalisation makes them; ``ingest`` alone is timed.

Columns: stored articles, days they span, how many lie in a new article's window; ingest ms per
article (mean; fastest-slowest batch); ``EventMatcher.lookup`` ms per article (its msearch
calls and reading the hits; wrapped in this script only), its share, the node's own ``took``
for it; the copy candidates' lookup (``Matcher.lookup``) ms per article; event candidates per
search, share of searches cut at ``max_candidates``; what all new articles became: same-event
joins, copies, joins to another event's article (wrong: the generator's three topics and
sentence pools make unrelated reports alike), and of those with another report of their
event, how many share its story.
"""

from __future__ import annotations

import argparse
import bisect
import multiprocessing
import os
import random
import shlex
import statistics
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Final, cast

from corpus import LANGUAGES, EventFacts, EventPools, edit_words, render_report
from elasticsearch import Elasticsearch
from elasticsearch.helpers import streaming_bulk

from pipeline.net.urls import url_id
from pipeline.normalise.events import EventConfig, compare, signature, specific_keys
from pipeline.normalise.extract import ExtractedArticle
from pipeline.normalise.fingerprint import fingerprint
from pipeline.normalise.language import LanguageResult
from pipeline.normalise.page import NormalisedArticle
from pipeline.settings import Settings, load_settings
from pipeline.store.articles import article_document, iso_utc
from pipeline.store.client import IndexNames, connect, install
from pipeline.store.stories import event_config, ingest
from pipeline.store.story_events import EventMatcher
from pipeline.store.story_match import Matcher

START: Final = datetime(2024, 1, 1, tzinfo=UTC)
SOURCES_PER_LANGUAGE: Final = 8
# Reports per event, stored: most events are told once, some by many outlets.
STORED_REPORTS: Final = ((1, 0.55), (2, 0.2), (3, 0.1), (4, 0.06), (5, 0.04), (6, 0.03), (8, 0.02))
NEW_REPORTS: Final = ((1, 0.4), (2, 0.3), (3, 0.2), (4, 0.1))
SHARE_STORED_EVENTS: Final = 0.3  # new articles that report a stored event
SHARE_COPIES: Final = 0.1  # new articles that copy a stored one
# Forked workers inherit the imported pipeline; they only render and fingerprint.
_FORK = multiprocessing.get_context("fork")


@dataclass(frozen=True, slots=True)
class Report:
    """One article to generate: the event it tells, where and when; or the report it copies."""

    event: int
    language: str
    source: str
    published: datetime
    fetched: datetime
    seed: int
    copy_of: Report | None = None

    @property
    def url(self) -> str:
        """A copy has its original's path on a mirror site."""
        original = self.copy_of or self
        return f"https://{self.source}.example/event/{original.event}-{original.seed}"


def _weighted(rng: random.Random, table: Sequence[tuple[int, float]]) -> int:
    values, weights = zip(*table, strict=True)
    return int(rng.choices(values, weights)[0])


def _reports(
    rng: random.Random, event: int, when: datetime, count: int, end: datetime
) -> list[Report]:
    """``count`` reports of an event at ``when``: the first within the hour, others later."""
    reports: list[Report] = []
    for k in range(count):
        delay = rng.uniform(0, 3600) if k == 0 else rng.expovariate(1 / (4 * 3600))
        # Whole seconds: the index keeps milliseconds, and the stored order must be this one.
        published = when + timedelta(seconds=round(delay))
        if published >= end:
            continue
        language = rng.choice(LANGUAGES)
        source = f"{language}-news{rng.randrange(SOURCES_PER_LANGUAGE)}"
        fetched = published + timedelta(seconds=rng.randrange(120, 5400))
        reports.append(Report(event, language, source, published, fetched, rng.getrandbits(48)))
    return reports


@dataclass(slots=True)
class Corpus:
    """The events (stored ones first), the stored reports per event, the new ones in batches."""

    pools: EventPools
    end: datetime  # of the stored span; new articles are published before it
    facts: list[EventFacts] = field(default_factory=list)
    stored: list[list[Report]] = field(default_factory=list)
    batches: list[list[Report]] = field(default_factory=list)

    def events_of(self, reports: Iterable[Report]) -> dict[str, int]:
        """The event of each report, by article id."""
        return {url_id(r.url): r.event for r in reports}


def plan(n: int, per_day: float, batches: int, size: int, window: timedelta, seed: int) -> Corpus:
    """``n`` stored reports over n / per_day days, then ``batches`` batches of ``size`` new."""
    rng = random.Random(seed)
    corpus = Corpus(EventPools(seed), START + timedelta(days=n / per_day))
    span = (corpus.end - START).total_seconds()
    total = 0
    while total < n:
        when = START + timedelta(seconds=round(rng.uniform(0, span)))
        event = len(corpus.facts)
        corpus.facts.append(corpus.pools.draw(rng, when.date()))
        reports = _reports(rng, event, when, _weighted(rng, STORED_REPORTS), corpus.end)
        corpus.stored.append(reports[: n - total])
        total += len(corpus.stored[-1])
    _plan_new(corpus, batches, size, window, rng)
    return corpus


def _plan_new(
    corpus: Corpus, batches: int, size: int, window: timedelta, rng: random.Random
) -> None:
    """New reports of recent stored events, copies of recent articles, reports of new events."""
    since = corpus.end - window
    recent = [e for e, told in enumerate(corpus.stored) if told and told[0].published >= since]
    recent_reports = [r for e in recent for r in corpus.stored[e]]
    articles: list[Report] = []
    while len(articles) < batches * size:
        draw = rng.random()
        if draw < SHARE_STORED_EVENTS and recent:
            event = rng.choice(recent)
            first = corpus.stored[event][0].published
            articles += _reports(rng, event, first, 2, corpus.end)[1:]
        elif draw < SHARE_STORED_EVENTS + SHARE_COPIES and recent_reports:
            original = rng.choice(recent_reports)
            published = original.published + timedelta(seconds=rng.randrange(600, 6 * 3600))
            seed = rng.getrandbits(48)
            copy = replace(original, source=f"mirror{seed % 5}", seed=seed, copy_of=original)
            if published < corpus.end:
                articles.append(replace(copy, published=published))
        else:
            when = corpus.end - timedelta(seconds=round(rng.uniform(0, window.total_seconds())))
            event = len(corpus.facts)
            corpus.facts.append(corpus.pools.draw(rng, when.date()))
            articles += _reports(rng, event, when, _weighted(rng, NEW_REPORTS), corpus.end)
    articles = articles[: batches * size]
    # Reports of one event arrive in any order and in different batches, as crawls find them.
    rng.shuffle(articles)
    corpus.batches = [articles[i : i + size] for i in range(0, len(articles), size)]


def normalised(report: Report, facts: EventFacts) -> NormalisedArticle:
    """The report as normalisation hands it over: with its fingerprint and event signature."""
    original = report.copy_of or report
    title, text = render_report(facts, original.language, random.Random(original.seed))
    if report.copy_of is not None:
        text = edit_words(text, 0.05, random.Random(report.seed))
    url = report.url
    extracted = ExtractedArticle(
        url=url,
        canonical_url=url,
        title=title,
        text=text,
        description=None,
        authors=(),
        published=report.published,
        published_raw=None,
        published_source="page",
        updated=None,
        site_name=report.source,
        lead_image=None,
        language_hint=report.language,
        encoding="utf-8",
        mojibake_repaired=False,
    )
    return NormalisedArticle(
        id=url_id(url),
        source=report.source,
        article=extracted,
        language=LanguageResult(report.language, 0.99, "detected"),
        fingerprint=fingerprint(text),
        event=signature(title, text, report.language),
    )


Written = tuple[Report, NormalisedArticle]


def _stored_documents(
    events: Sequence[tuple[EventFacts, list[Report]]], config: EventConfig
) -> list[tuple[str, str, dict[str, Any]]]:
    """("article" or "story", id, document) of stored events, with the story fields set."""
    documents: list[tuple[str, str, dict[str, Any]]] = []
    for facts, reports in events:
        written = [(r, normalised(r, facts)) for r in reports]
        fields = _story_fields(written, config)
        for report, article in written:
            document = article_document(article, fetched=report.fetched, run_id="bench-fill")
            # Matched long ago: the alert matcher has nothing left to do with them.
            document["match_pending"] = False
            documents.append(("article", article.id, {**document, **fields[article.id]}))
        documents += [("story", i, d) for i, d in _story_documents(written, fields).items()]
    return documents


def _story_fields(written: Sequence[Written], config: EventConfig) -> dict[str, dict[str, Any]]:
    """What ``ingest`` would have stored: each report joins the earlier one it compares best."""
    ordered = sorted(written, key=lambda w: (w[0].published, w[0].fetched, w[1].id))
    fields: dict[str, dict[str, Any]] = {}
    for k, me in enumerate(ordered):
        joined = [(score, o[1].id) for o in ordered[:k] if (score := _joins(me, o, config))]
        ident = me[1].id
        if not joined:
            fields[ident] = {"story_id": ident, "story_relation": "first"}
            continue
        score, match = min(joined, key=lambda j: (-j[0], j[1]))  # as stories.better ranks
        story = fields[match]["story_id"]
        fields[ident] = {
            "story_id": story,
            "story_relation": "same_event",
            "related_to": match,
            "event_score": score,
        }
    return fields


def _joins(a: Written, b: Written, config: EventConfig) -> float | None:
    """The score ``compare`` gives two reports when it joins them."""
    (ra, na), (rb, nb) = a, b
    assert na.event is not None and nb.event is not None
    e = compare(na.event, ra.language, ra.published, nb.event, rb.language, rb.published, config)
    return e.score if e.joined else None


def _story_documents(
    written: Sequence[Written], fields: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The story documents of ``written``, as pipeline.store.story_documents builds them."""
    stories: dict[str, list[Written]] = {}
    for report, article in sorted(written, key=lambda w: (w[0].fetched, w[1].id)):
        stories.setdefault(fields[article.id]["story_id"], []).append((report, article))
    documents: dict[str, dict[str, Any]] = {}
    for story_id, members in stories.items():
        lead = next(a for _, a in members if a.id == story_id)
        sources = sorted({r.source for r, _ in members})
        languages = sorted({r.language for r, _ in members})
        documents[story_id] = {
            "story_id": story_id,
            "title": lead.article.title,
            "language": lead.language.language,
            "lead": story_id,
            "first_seen": iso_utc(members[0][0].fetched),
            "last_seen": iso_utc(members[-1][0].fetched),
            "sources": sources,
            "source_count": len(sources),
            "languages": languages,
            "language_count": len(languages),
            "article_count": len(members),
            "report_count": len(members),  # no copies among them
            "articles": [a.id for _, a in members],
            "merged_into": None,
        }
    return documents


@contextmanager
def _refresh_off(es: Elasticsearch, index: str) -> Iterator[None]:
    """No refresh during a bulk load (as for any bulk load); the index's setting restored."""
    stored = es.indices.get_settings(index=index, name="index.refresh_interval", flat_settings=True)
    saved = {i: v["settings"].get("index.refresh_interval") for i, v in stored.items()}
    es.indices.put_settings(index=index, settings={"index.refresh_interval": "-1"})
    try:
        yield
    finally:
        for name, value in saved.items():
            es.indices.put_settings(index=name, settings={"index.refresh_interval": value})
        es.indices.refresh(index=index)


def fill(
    es: Elasticsearch, names: IndexNames, corpus: Corpus, config: EventConfig, processes: int
) -> None:
    """Write the stored events' articles and stories with the bulk helper."""
    events = list(zip(corpus.facts, corpus.stored, strict=False))
    parts = [events[i : i + 50] for i in range(0, len(events), 50)]

    def actions(results: Iterable[list[tuple[str, str, dict[str, Any]]]]) -> Iterator[Any]:
        for documents in results:
            for kind, ident, document in documents:
                index = names.articles if kind == "article" else names.stories
                yield {"_op_type": "create", "_index": index, "_id": ident, "_source": document}

    filled = f"{names.articles},{names.stories}"
    with _refresh_off(es, filled), _FORK.Pool(processes) as pool:
        results = pool.imap(partial(_stored_documents, config=config), parts)
        # Rendering and fingerprinting run in the workers while the node indexes.
        for _ in streaming_bulk(es, actions(results), chunk_size=500, max_chunk_bytes=20 << 20):
            pass


@dataclass(slots=True)
class Timed:
    """One batch: its articles, the seconds ``ingest`` took, and what its event lookups cost."""

    articles: int
    seconds: float = 0.0
    lookup_seconds: float = 0.0  # in EventMatcher.lookup
    copy_seconds: float = 0.0  # in Matcher.lookup: the copy (band key) candidates
    took_ms: float = 0.0  # the node's own time for its searches
    searches: int = 0
    candidates: int = 0
    capped: int = 0  # searches cut at max_candidates


class _TookRecorder:
    """Stands in for the client during a lookup: adds up the ``took`` of each msearch."""

    def __init__(self, es: Elasticsearch, meter: Timed) -> None:
        self._es = es
        self._meter = meter

    def msearch(self, **kwargs: Any) -> Any:
        response = self._es.msearch(**kwargs)
        self._meter.took_ms += response["took"]
        self._meter.searches += len(response["responses"])
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._es, name)


@contextmanager
def metered(meter: Timed) -> Iterator[None]:
    """Time each ``EventMatcher.lookup`` and ``Matcher.lookup`` into ``meter`` in the block."""
    events, copies = EventMatcher.lookup, Matcher.lookup

    def event_lookup(matcher: EventMatcher, ids: Sequence[str]) -> None:
        before = set(matcher.candidates)
        es = matcher.batch.es
        matcher.batch.es = cast(Elasticsearch, _TookRecorder(es, meter))
        started = time.perf_counter()
        try:
            events(matcher, ids)
        finally:
            meter.lookup_seconds += time.perf_counter() - started
            matcher.batch.es = es
        found = [len(c) for i, c in matcher.candidates.items() if i not in before]
        meter.candidates += sum(found)
        meter.capped += sum(n >= matcher.batch.events.max_candidates for n in found)

    def copy_lookup(matcher: Matcher, ids: Sequence[str]) -> None:
        started = time.perf_counter()
        copies(matcher, ids)
        meter.copy_seconds += time.perf_counter() - started

    EventMatcher.lookup = event_lookup  # type: ignore[method-assign,assignment]
    Matcher.lookup = copy_lookup  # type: ignore[method-assign,assignment]
    try:
        yield
    finally:
        EventMatcher.lookup = events  # type: ignore[method-assign]
        Matcher.lookup = copies  # type: ignore[method-assign]


def ingest_batches(
    es: Elasticsearch, names: IndexNames, corpus: Corpus, config: EventConfig, warmup: int
) -> tuple[list[Timed], float, float]:
    """Ingest the batches one by one: the timed ones, ms to normalise an article, its keys."""
    timed: list[Timed] = []
    normalising = keys = 0.0
    for k, reports in enumerate(corpus.batches):
        started = time.perf_counter()
        articles = [normalised(r, corpus.facts[r.event]) for r in reports]
        normalising += time.perf_counter() - started
        keys += sum(len(specific_keys(a.event.keys)) for a in articles if a.event is not None)
        # Fetched after everything stored, a minute apart, as successive crawl runs.
        fetched = corpus.end + timedelta(hours=1, minutes=k)
        batch = Timed(len(articles))
        with metered(batch):
            started = time.perf_counter()
            ingest(es, names, articles, fetched=fetched, events=config, run_id="bench")
            batch.seconds = time.perf_counter() - started
        if k >= warmup:
            timed.append(batch)
    count = sum(len(b) for b in corpus.batches)
    return timed, normalising / count * 1000, keys / count


@dataclass(frozen=True, slots=True)
class Quality:
    """What the new articles became, against the events they were generated from."""

    same_event: int  # joined an earlier report of an event
    copies: int
    wrong: int  # joined (or copied) an article of another event
    told: int  # have another article of their event, stored or new
    together: int  # ... and their story holds one


def quality(es: Elasticsearch, names: IndexNames, corpus: Corpus) -> Quality:
    """Read the new articles' story fields, and those of the other articles of their events."""
    new = corpus.events_of(r for batch in corpus.batches for r in batch)
    events = {e for e in new.values() if e < len(corpus.stored)}
    event_of = {**corpus.events_of(r for e in events for r in corpus.stored[e]), **new}
    fields: dict[str, dict[str, Any]] = {}
    ids, wanted = list(event_of), ["story_id", "story_relation", "related_to", "duplicate_of"]
    for start in range(0, len(ids), 1000):
        part = ids[start : start + 1000]
        for doc in es.mget(index=names.articles, ids=part, source=wanted)["docs"]:
            fields[doc["_id"]] = doc.get("_source", {})
    members: dict[int, set[str]] = {}
    for ident, event in event_of.items():
        members.setdefault(event, set()).add(ident)
    told = together = wrong = 0
    for ident, event in new.items():
        mine = fields[ident]
        match = mine.get("related_to") or mine.get("duplicate_of")
        # A match outside the events read here is an article of another event.
        wrong += bool(match) and event_of.get(str(match)) != event
        others = members[event] - {ident}
        told += bool(others)
        together += any(fields[o].get("story_id") == mine.get("story_id") for o in others)
    relations = [fields[i].get("story_relation") for i in new]
    return Quality(relations.count("same_event"), relations.count("copy"), wrong, told, together)


@dataclass(frozen=True, slots=True)
class SizeResult:
    """One size: the stored index, the fill, the timed batches and what they became."""

    stored: int
    days: float
    window: float  # stored articles within the window around a new article, on average
    fill_seconds: float
    keys: float  # names, numbers and dates per new article, on average
    normalise_ms: float  # per new article: fingerprint and signature, not in the timings
    timed: list[Timed]
    quality: Quality


def run(settings: Settings, args: argparse.Namespace, size: int) -> SizeResult:
    """Fill a throwaway prefix with ``size`` articles, time the new batches, delete it."""
    config = event_config(settings)
    window = timedelta(hours=config.window_hours)
    batches = args.warmup + args.batches
    corpus = plan(size, args.per_day, batches, args.batch, window, args.seed)
    names = IndexNames(f"bench-events-{uuid.uuid4().hex[:8]}")
    es = connect(settings, timeout=300)
    try:
        install(es, names.prefix)
        started = time.perf_counter()
        fill(es, names, corpus, config, args.processes)
        fill_seconds = time.perf_counter() - started
        print(f"  {size:,} stored in {fill_seconds:,.0f} s; ingesting", file=sys.stderr)
        timed, normalise_ms, keys = ingest_batches(es, names, corpus, config, args.warmup)
        es.indices.refresh(index=names.articles)
        result_quality = quality(es, names, corpus)
    finally:
        es.options(ignore_status=404).indices.delete(index=names.pattern)
        es.options(ignore_status=404).indices.delete_index_template(name=f"{names.prefix}-*")
        es.close()
    published = sorted(r.published for reports in corpus.stored for r in reports)
    new = [r.published for batch in corpus.batches for r in batch]
    in_window = [
        bisect.bisect_right(published, p + window) - bisect.bisect_left(published, p - window)
        for p in new
    ]
    return SizeResult(
        stored=size,
        days=(corpus.end - START).total_seconds() / 86400,
        window=statistics.fmean(in_window),
        fill_seconds=fill_seconds,
        keys=keys,
        normalise_ms=normalise_ms,
        timed=timed,
        quality=result_quality,
    )


def _row(result: SizeResult) -> dict[str, str]:
    timed, q = result.timed, result.quality
    articles = sum(t.articles for t in timed)
    seconds = sum(t.seconds for t in timed)
    per_batch = [t.seconds / t.articles * 1000 for t in timed]
    lookup = sum(t.lookup_seconds for t in timed)
    searches = max(sum(t.searches for t in timed), 1)
    return {
        "stored": f"{result.stored:,}",
        "days": f"{result.days:.1f}",
        "window": f"{result.window:,.0f}",
        "ms/art": f"{seconds / articles * 1000:.1f}",
        "batches": f"{min(per_batch):.1f}-{max(per_batch):.1f}",
        "lookup": f"{lookup / articles * 1000:.1f}",
        "share": f"{lookup / seconds:.0%}",
        "node ms": f"{sum(t.took_ms for t in timed) / articles:.1f}",
        "copy lookup": f"{sum(t.copy_seconds for t in timed) / articles * 1000:.1f}",
        "cand": f"{sum(t.candidates for t in timed) / searches:.1f}",
        "capped": f"{sum(t.capped for t in timed) / searches:.0%}",
        "joins": str(q.same_event),
        "copies": str(q.copies),
        "wrong": str(q.wrong),
        "with event": f"{q.together}/{q.told}",
    }


def report(settings: Settings, args: argparse.Namespace, results: Sequence[SizeResult]) -> None:
    """Print the command, the set-up and one row per size."""
    config = event_config(settings)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"node: {settings.es_url}; machine: {os.cpu_count()} CPUs, load average {load}"
        " (the node and the CPUs are shared with other work)"
    )
    print(
        f"window ±{config.window_hours:g} h, min_shared {config.min_shared}, max_candidates"
        f" {config.max_candidates}; {args.per_day:,.0f} stored articles a day in"
        f" {len(LANGUAGES)} languages; {args.batches} timed batches of {args.batch} new"
        f" (+{args.warmup} warm-up)"
    )
    for r in results:
        print(
            f"{r.stored:,} stored: filled in {r.fill_seconds:,.0f} s"
            f" ({r.stored / r.fill_seconds:,.0f} articles/s), {r.keys:.1f} names, numbers and"
            f" dates per article; new articles' fingerprint and signature {r.normalise_ms:.1f}"
            " ms each (not in the timings)"
        )
    rows = [_row(result) for result in results]
    widths = {title: max(len(title), *(len(row[title]) for row in rows)) for title in rows[0]}
    print("  ".join(f"{title:>{width}}" for title, width in widths.items()))
    for row in rows:
        print("  ".join(f"{row[title]:>{width}}" for title, width in widths.items()))
    if len(results) > 1:
        first, last = results[0], results[-1]
        lookup = [sum(t.lookup_seconds for t in r.timed) for r in (first, last)]
        whole = [sum(t.seconds for t in r.timed) for r in (first, last)]
        print(
            f"per article, {last.stored:,} stored against {first.stored:,}:"
            f" event lookup x{lookup[1] / lookup[0]:.2f}, whole ingest x{whole[1] / whole[0]:.2f}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run each size, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,100000", help="stored articles, comma-separated")
    parser.add_argument("--per-day", type=float, default=1700.0, help="stored articles a day")
    parser.add_argument("--batches", type=int, default=10, help="timed ingest batches")
    parser.add_argument("--batch", type=int, default=100, help="new articles per batch")
    parser.add_argument("--warmup", type=int, default=1, help="untimed batches first")
    # One CPU is left to the node: on two CPUs, two generating processes fill more slowly.
    parser.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    settings = load_settings()
    results = [run(settings, args, size) for size in sizes]
    report(settings, args, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
