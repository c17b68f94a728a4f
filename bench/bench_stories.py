"""Benchmark story assignment (pipeline.store.stories.ingest) on the local node, 1 and N processes.

Run from the repository root: ``.venv/bin/python bench/bench_stories.py [--n 2000]``.
Generated articles in five languages (bench/corpus.py, ~15% planted near-duplicates) are
fingerprinted first; the timed part is ``ingest``: storing each article, the candidate
lookup, the verdicts and the story documents, every Elasticsearch round trip included.
Each run uses its own throwaway index prefix, deleted afterwards. Batches get increasing fetch
times, so a planted copy is always "seen" after its original; with N processes the batches are
dealt round-robin and must give exactly the stories of the 1-process run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shlex
import sys
import time
import traceback
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

from corpus import GeneratedArticle, generate_articles
from elasticsearch import Elasticsearch

from pipeline.net.urls import url_id
from pipeline.normalise.extract import ExtractedArticle
from pipeline.normalise.fingerprint import fingerprint
from pipeline.normalise.language import LanguageResult
from pipeline.normalise.page import NormalisedArticle
from pipeline.settings import Settings, load_settings
from pipeline.store.client import IndexNames, connect, install
from pipeline.store.stories import ingest

SOURCES = {"en": "bbc-world", "de": "dw-de", "fr": "lemonde", "es": "elpais", "ru": "ria"}
START = datetime(2024, 1, 1, tzinfo=UTC)
Batch = tuple[datetime, list[NormalisedArticle]]
# Forked workers inherit the corpus and its fingerprints; each opens its own client.
_FORK = multiprocessing.get_context("fork")


def normalised(article: GeneratedArticle, n: int) -> NormalisedArticle:
    """The generated article as the normaliser hands it over (a copy on a site of its own)."""
    source = SOURCES[article.language] if article.duplicate_of is None else f"mirror{n % 7}"
    url = f"https://{source}.example/{article.topic}/{article.id}"
    extracted = ExtractedArticle(
        url=url,
        canonical_url=url,
        title=article.title,
        text=article.text,
        description=None,
        authors=(),
        published=START,
        published_raw=None,
        published_source="fetched",
        updated=None,
        site_name=source,
        lead_image=None,
        language_hint=article.language,
        encoding="utf-8",
        mojibake_repaired=False,
    )
    return NormalisedArticle(
        id=url_id(url),
        source=source,
        article=extracted,
        language=LanguageResult(article.language, 0.99, "detected"),
        fingerprint=fingerprint(article.text),
    )


@dataclass(frozen=True, slots=True)
class Result:
    """One timed run: wall seconds, requests per batch and the stored (story, match) per id."""

    processes: int
    docs: int
    seconds: float
    stories: dict[str, tuple[str, str | None]]


def _ingest_all(es: Elasticsearch, names: IndexNames, batches: Sequence[Batch]) -> None:
    for fetched, articles in batches:
        ingest(es, names, articles, fetched=fetched, run_id="bench")


def _worker(
    settings: Settings, prefix: str, batches: Sequence[Batch], start: Any, out: Connection
) -> None:
    try:
        es = connect(settings, timeout=120)
        es.info()
        start.wait()
        _ingest_all(es, IndexNames(prefix), batches)
        es.close()
        out.send(None)
    except BaseException:
        out.send(traceback.format_exc())
        raise


def run(settings: Settings, batches: Sequence[Batch], processes: int) -> Result:
    """Ingest ``batches`` under a throwaway prefix, in ``processes`` concurrent processes."""
    names = IndexNames(f"bench-{uuid.uuid4().hex[:8]}")
    es = connect(settings, timeout=120)
    try:
        install(es, names.prefix)
        if processes == 1:
            started = time.perf_counter()
            _ingest_all(es, names, batches)
            seconds = time.perf_counter() - started
        else:
            start = _FORK.Barrier(processes + 1)
            pipes = [_FORK.Pipe(duplex=False) for _ in range(processes)]
            workers = [
                _FORK.Process(
                    target=_worker,
                    args=(settings, names.prefix, batches[k::processes], start, sender),
                )
                for k, (_, sender) in enumerate(pipes)
            ]
            for worker in workers:
                worker.start()
            start.wait()
            started = time.perf_counter()
            errors = [receiver.recv() for receiver, _ in pipes]
            seconds = time.perf_counter() - started
            for worker in workers:
                worker.join()
            if any(errors):
                raise RuntimeError("a worker failed:\n" + "\n".join(e for e in errors if e))
        es.indices.refresh(index=names.articles)
        stories = _stored(es, names)
    finally:
        es.options(ignore_status=404).indices.delete(index=names.pattern)
        es.options(ignore_status=404).indices.delete_index_template(name=f"{names.prefix}-*")
        es.close()
    docs = sum(len(articles) for _, articles in batches)
    return Result(processes, docs, seconds, stories)


def _stored(es: Elasticsearch, names: IndexNames) -> dict[str, tuple[str, str | None]]:
    stories: dict[str, tuple[str, str | None]] = {}
    response = es.search(
        index=names.articles,
        query={"match_all": {}},
        size=1000,
        source_includes=["story_id", "duplicate_of"],
        sort=["_doc"],
        scroll="1m",
    )
    scroll_id = response["_scroll_id"]
    try:
        while hits := response["hits"]["hits"]:
            for hit in hits:
                stories[hit["_id"]] = (
                    hit["_source"]["story_id"],
                    hit["_source"].get("duplicate_of"),
                )
            response = es.scroll(scroll_id=scroll_id, scroll="1m")
    finally:
        es.clear_scroll(scroll_id=scroll_id)
    return stories


def _quality(generated: Sequence[GeneratedArticle], ids: Sequence[str], result: Result) -> str:
    by_generated = dict(zip((a.id for a in generated), ids, strict=True))
    story = {ident: value[0] for ident, value in result.stories.items()}
    planted = [a for a in generated if a.duplicate_of is not None]
    found = sum(
        story[by_generated[a.id]] == story[by_generated[a.duplicate_of or ""]] for a in planted
    )
    originals = [by_generated[a.id] for a in generated if a.duplicate_of is None]
    shared = len(originals) - len({story[i] for i in originals})
    return (
        f"planted copies in their original's story {found}/{len(planted)}; "
        f"{len(set(story.values()))} stories; {shared} originals joined another original "
        "(sentence reuse in the generator)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run 1 process then N, print the command line and the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="articles to generate (>= 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=200, help="articles per ingest call")
    parser.add_argument("--workers", type=int, default=2, help="processes for the second run")
    args = parser.parse_args(argv)
    settings = load_settings()
    generated = generate_articles(args.n, args.seed)
    started = time.perf_counter()
    articles = [normalised(a, n) for n, a in enumerate(generated)]
    fingerprint_seconds = time.perf_counter() - started
    batches: list[Batch] = [
        (START + timedelta(seconds=k), articles[i : i + args.batch])
        for k, i in enumerate(range(0, len(articles), args.batch))
    ]
    ids = [a.id for a in articles]
    results = [run(settings, batches, 1)]
    if args.workers > 1:
        results.append(run(settings, batches, args.workers))
    print("command:", shlex.join([sys.executable, *sys.argv]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"node: {settings.es_url}; machine: {os.cpu_count()} CPUs, load average {load}"
        " (the node and the CPUs are shared with other work)"
    )
    languages = len({a.language for a in generated})
    print(
        f"{args.n} articles in {languages} languages, {len(batches)} batches of {args.batch};"
        f" fingerprints (not in the timings below) {args.n / fingerprint_seconds:,.0f} docs/s"
    )
    head = f"{'procs':>5} {'docs':>6} {'wall s':>7} {'docs/s':>7} {'ms/batch':>8}"
    print(head + "  quality")
    print("-" * (len(head) + 60))
    for result in results:
        quality = _quality(generated, ids, result)
        if result.processes > 1:
            same = result.stories == results[0].stories
            quality += "; stories IDENTICAL to 1 process" if same else "; stories DIFFER"
        per_batch = result.seconds / len(batches) * result.processes * 1000
        print(
            f"{result.processes:>5} {result.docs:>6} {result.seconds:>7.2f}"
            f" {result.docs / result.seconds:>7.0f} {per_batch:>8.0f}  {quality}"
        )
    return 0 if all(r.stories == results[0].stories for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
