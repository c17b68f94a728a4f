"""Benchmark same-event story assignment against 10,000 and 100,000 stored articles.

Run from the repository root, the local node up (``make es-up``)::

    .venv/bin/python bench/bench_events.py                       # 10,000 and 100,000 stored
    .venv/bin/python bench/bench_events.py --sizes 1000,10000    # a quick run

It checks that assigning an article to a story does not cost more as the index grows: an
article's event candidates are one weighted-terms search on its names, numbers and dates in the
window around its publication time, at most ``max_candidates`` (pipeline.store.story_events).
Each size has a throwaway index prefix of its own, deleted afterwards (also on failure):

1. Fill: ``--per-day`` articles a day (1,700: 100,000 span 59 days, the 72 h before an article
   hold ~5,000), written with the bulk helper, not through ``ingest``: reports of generated
   events (bench/corpus.py: two people, a place, a date, figures; people and places as frequent
   as Zipf's law has them), 1 to 8 per event, in five languages, with the story fields and
   story documents ``ingest`` would give them (``compare`` decides ``same_event``).
2. Ingest ``--batches`` batches of ``--batch`` new articles (after ``--warmup`` untimed ones)
   published in the last 72 h: ~30% new reports of stored events, ~10% near copies of stored
   articles, the rest reports of new events (1 to 4 each). Fingerprints and signatures are
   made first, as normalisation makes them; ``ingest`` alone is timed. The sizes take turns,
   batch by batch, so that the load of a shared machine falls on each alike.

Columns: stored articles, days they span, how many lie in a new article's window; ingest ms per
article (mean; fastest-slowest batch); ``EventMatcher.lookup`` ms per article (its msearch
calls and reading the hits; wrapped in this script only), its share, the node's own ``took``
for it; the copy candidates' lookup (``Matcher.lookup``) ms per article; event candidates per
search, share cut at ``max_candidates``; what the new articles became: same-event joins,
copies, joins to another event's article (wrong: the generator's three topics and sentence
pools make unrelated reports alike), and of those with another report of their event, how
many share its story.
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
    return int(rng.choices(*zip(*table, strict=True))[0])


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


def ingest_batch(es: Elasticsearch, size: Size, k: int, config: EventConfig, warmup: int) -> None:
    """Normalise and ingest the ``k``-th batch of new articles of ``size``; time it."""
    corpus = size.corpus
    started = time.perf_counter()
    articles = [normalised(r, corpus.facts[r.event]) for r in corpus.batches[k]]
    size.normalising += time.perf_counter() - started
    size.keys += sum(len(specific_keys(a.event.keys)) for a in articles if a.event is not None)
    # Fetched after everything stored, a minute apart, as successive crawl runs.
    fetched = corpus.end + timedelta(hours=1, minutes=k)
    batch = Timed(len(articles))
    with metered(batch):
        started = time.perf_counter()
        ingest(es, size.names, articles, fetched=fetched, events=config, run_id="bench")
        batch.seconds = time.perf_counter() - started
    if k >= warmup:
        size.timed.append(batch)


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


@dataclass(slots=True)
class Size:
    """One index size under a prefix of its own: its corpus, its fill and its timed batches."""

    stored: int
    corpus: Corpus
    names: IndexNames
    window: float  # stored articles within the window around a new article, on average
    fill_seconds: float = 0.0
    timed: list[Timed] = field(default_factory=list)
    normalising: float = 0.0  # seconds making fingerprints and signatures, not timed
    keys: int = 0  # names, numbers and dates of the new articles
    quality: Quality | None = None


def _in_window(corpus: Corpus, window: timedelta) -> float:
    published = sorted(r.published for reports in corpus.stored for r in reports)
    new = [r.published for batch in corpus.batches for r in batch]
    return statistics.fmean(
        bisect.bisect_right(published, p + window) - bisect.bisect_left(published, p - window)
        for p in new
    )


def run(settings: Settings, args: argparse.Namespace, sizes: Sequence[int]) -> list[Size]:
    """Fill a throwaway prefix per size, time the new batches of all in turns, delete them."""
    config = event_config(settings)
    window = timedelta(hours=config.window_hours)
    batches = args.warmup + args.batches
    es = connect(settings, timeout=300)
    runs: list[Size] = []
    try:
        for stored in sizes:
            corpus = plan(stored, args.per_day, batches, args.batch, window, args.seed)
            names = IndexNames(f"bench-events-{uuid.uuid4().hex[:8]}")
            runs.append(size := Size(stored, corpus, names, _in_window(corpus, window)))
            install(es, names.prefix)
            started = time.perf_counter()
            fill(es, names, corpus, config, args.processes)
            size.fill_seconds = time.perf_counter() - started
            print(f"  {stored:,} stored in {size.fill_seconds:,.0f} s", file=sys.stderr)
        # Sizes take turns, so that a change in the machine's load falls on each alike.
        for k in range(batches):
            for size in runs:
                ingest_batch(es, size, k, config, args.warmup)
        for size in runs:
            es.indices.refresh(index=size.names.articles)
            size.quality = quality(es, size.names, size.corpus)
    finally:
        for size in runs:
            quiet = es.options(ignore_status=404)
            quiet.indices.delete(index=size.names.pattern)
            quiet.indices.delete_index_template(name=f"{size.names.prefix}-*")
        es.close()
    return runs


def _total(size: Size, measure: str) -> float:
    return float(sum(getattr(t, measure) for t in size.timed))


def _row(size: Size) -> dict[str, str]:
    q = size.quality
    assert q is not None
    articles, seconds = _total(size, "articles") / 1000, _total(size, "seconds")
    per_batch = [t.seconds / t.articles * 1000 for t in size.timed]
    searches = max(_total(size, "searches"), 1)
    return {
        "stored": f"{size.stored:,}",
        "days": f"{(size.corpus.end - START).total_seconds() / 86400:.1f}",
        "window": f"{size.window:,.0f}",
        "ms/art": f"{seconds / articles:.1f}",
        "batches": f"{min(per_batch):.1f}-{max(per_batch):.1f}",
        "lookup": f"{_total(size, 'lookup_seconds') / articles:.1f}",
        "share": f"{_total(size, 'lookup_seconds') / seconds:.0%}",
        "node ms": f"{_total(size, 'took_ms') / articles / 1000:.1f}",
        "copy lookup": f"{_total(size, 'copy_seconds') / articles:.1f}",
        "cand": f"{_total(size, 'candidates') / searches:.1f}",
        "capped": f"{_total(size, 'capped') / searches:.0%}",
        "joins": str(q.same_event),
        "copies": str(q.copies),
        "wrong": str(q.wrong),
        "with event": f"{q.together}/{q.told}",
    }


def report(settings: Settings, args: argparse.Namespace, sizes: Sequence[Size]) -> None:
    """Print the command, the set-up, one row per size and how the largest compares."""
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
        f" (+{args.warmup} warm-up) per size, the sizes in turns"
    )
    for size in sizes:
        new = sum(len(batch) for batch in size.corpus.batches)
        print(
            f"{size.stored:,} stored: filled in {size.fill_seconds:,.0f} s"
            f" ({size.stored / size.fill_seconds:,.0f} articles/s); new articles: "
            f"{size.keys / new:.1f} names, numbers and dates each, fingerprint and"
            f" signature {size.normalising / new * 1000:.1f} ms each (not in the timings)"
        )
    rows = [_row(size) for size in sizes]
    widths = {title: max(len(title), *(len(row[title]) for row in rows)) for title in rows[0]}
    print("  ".join(f"{title:>{width}}" for title, width in widths.items()))
    for row in rows:
        print("  ".join(f"{row[title]:>{width}}" for title, width in widths.items()))
    if len(sizes) > 1:
        first, last = sizes[0], sizes[-1]
        measures = {
            "ingest": "seconds",
            "event lookup": "lookup_seconds",
            "its node time": "took_ms",
            "copy lookup": "copy_seconds",
        }
        ratios = (f"{k} x{_total(last, m) / _total(first, m):.2f}" for k, m in measures.items())
        print(f"{last.stored:,} stored against {first.stored:,}, per article:", ", ".join(ratios))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the sizes, print the table."""
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
    settings = load_settings()
    sizes = run(settings, args, [int(s) for s in args.sizes.split(",") if s.strip()])
    report(settings, args, sizes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
