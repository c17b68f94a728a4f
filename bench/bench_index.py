"""Benchmark bulk indexing of generated multilingual articles into the local node.

Run from the repository root: ``.venv/bin/python bench/bench_index.py [--n 12000]``. The articles
go under a throwaway index prefix that is deleted afterwards; refresh is switched off during the
bulk (refresh_interval -1) and restored, and the restore is checked.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shlex
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from corpus import generate_articles, random_plan, render
from elasticsearch import Elasticsearch

from pipeline.settings import load_settings
from pipeline.store.bulk import BulkAction, BulkReport, write
from pipeline.store.client import IndexNames, connect, install

MB = 1024 * 1024
SOURCES = {"en": "bbc-world", "de": "dw-de", "fr": "lemonde", "es": "elpais", "ru": "ria"}


@dataclass(frozen=True, slots=True)
class Heap:
    """JVM heap of the node(s), summed: used and max in bytes."""

    used: int
    max: int

    def __str__(self) -> str:
        return f"{self.used / MB:,.0f} / {self.max / MB:,.0f} MB ({self.used / self.max:.0%})"


def build_documents(n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` (id, article document) pairs of 2-4 KB of text each, as the normaliser stores them.

    The corpus gives ~1 KB news briefs; each is extended with further paragraphs on the same
    topic in the same language up to a random size between 2 and 4 KB.
    """
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    documents: list[tuple[str, dict[str, Any]]] = []
    for article in generate_articles(n, seed):
        target = rng.randrange(2048, 4096)
        text = article.text
        while len(text.encode("utf-8")) < target:
            _, more = render(random_plan(rng, article.topic), article.language)
            text = f"{text}\n\n{more}"
        lang = article.language
        url = f"https://{SOURCES[lang]}.example/{article.topic}/{article.id}"
        published = start + timedelta(minutes=rng.randrange(0, 60 * 24 * 300))
        doc_id = hashlib.sha256(url.encode()).hexdigest()[:40]
        documents.append(
            (
                doc_id,
                {
                    "url": url,
                    "canonical_url": url,
                    "source": SOURCES[lang],
                    "title": article.title,
                    f"title_{lang}": article.title,
                    "text": text,
                    f"text_{lang}": text,
                    "language": lang,
                    "language_probability": 0.99,
                    "published": published.isoformat(),
                    "fetched": (published + timedelta(minutes=5)).isoformat(),
                    "word_count": len(text.split()),
                    "content_hash": hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    "duplicate_of": article.duplicate_of,
                    "run_id": "bench",
                },
            )
        )
    return documents


def heap(es: Elasticsearch) -> Heap:
    nodes = es.nodes.stats(metric="jvm")["nodes"].values()
    used = sum(int(node["jvm"]["mem"]["heap_used_in_bytes"]) for node in nodes)
    top = sum(int(node["jvm"]["mem"]["heap_max_in_bytes"]) for node in nodes)
    return Heap(used, top)


def refresh_interval(es: Elasticsearch, index: str) -> str:
    """The index's refresh_interval, counting one inherited from the template or the default."""
    body = es.indices.get_settings(
        index=index, name="index.refresh_interval", include_defaults=True
    )
    (settings,) = body.values()
    for scope in ("settings", "defaults"):
        value = settings.get(scope, {}).get("index", {}).get("refresh_interval")
        if value is not None:
            return str(value)
    raise RuntimeError(f"no refresh_interval on {index}")


@dataclass(frozen=True, slots=True)
class Result:
    docs: int
    megabytes: float
    seconds: float
    report: BulkReport
    heap_before: Heap
    heap_after: Heap
    refresh_during: str
    refresh_after: str
    refresh_expected: str
    stored: int


def run(es: Elasticsearch, n: int, seed: int, chunk_docs: int) -> Result:
    """Index ``n`` generated articles under a throwaway prefix, timing the bulk alone."""
    documents = build_documents(n, seed)
    megabytes = sum(len(json.dumps(doc, ensure_ascii=False).encode()) for _, doc in documents) / MB
    names = IndexNames(f"bench-{uuid.uuid4().hex[:8]}")
    try:
        install(es, names.prefix)
        write_index = names.first_index("articles")
        expected = refresh_interval(es, write_index)
        heap_before = heap(es)
        # No refresh while bulk loading: segments are not opened for search every second.
        es.indices.put_settings(index=write_index, settings={"index": {"refresh_interval": "-1"}})
        try:
            during = refresh_interval(es, write_index)
            actions = (
                BulkAction(names.articles, doc_id, doc, op="create") for doc_id, doc in documents
            )
            started = time.perf_counter()
            report = write(es, actions, names=names, stage="bench", chunk_docs=chunk_docs)
            seconds = time.perf_counter() - started
        finally:
            es.indices.put_settings(
                index=write_index, settings={"index": {"refresh_interval": expected}}
            )
        after = refresh_interval(es, write_index)
        heap_after = heap(es)
        es.indices.refresh(index=names.articles)
        stored = int(es.count(index=names.articles)["count"])
    finally:
        es.options(ignore_status=404).indices.delete(index=names.pattern)
        es.options(ignore_status=404).indices.delete_index_template(name=f"{names.prefix}-*")
    return Result(
        n, megabytes, seconds, report, heap_before, heap_after, during, after, expected, stored
    )


def _table(result: Result, chunk_docs: int) -> str:
    rows = [
        ("articles", f"{result.docs:,} (2-4 KB of text each, 5 languages)"),
        ("source JSON", f"{result.megabytes:,.1f} MB"),
        ("bulk chunks", f"{chunk_docs} docs / <= 10 MB"),
        ("wall time", f"{result.seconds:.2f} s"),
        ("docs/s", f"{result.docs / result.seconds:,.0f}"),
        ("MB/s", f"{result.megabytes / result.seconds:,.2f}"),
        (
            "outcomes",
            f"created {result.report.created}, already stored {result.report.already_stored},"
            f" dead-lettered {result.report.dead_lettered}; {result.stored:,} in the index",
        ),
        ("heap before", str(result.heap_before)),
        ("heap after", str(result.heap_after)),
        (
            "refresh_interval",
            f"{result.refresh_during} during the bulk, {result.refresh_after} after"
            f" (template value {result.refresh_expected})",
        ),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{'measure':<{width}}  value", "-" * (width + 60)]
    lines += [f"{name:<{width}}  {value}" for name, value in rows]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print the command line and the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=12_000, help="articles to index (>= 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-docs", type=int, default=500)
    args = parser.parse_args(argv)
    settings = load_settings()
    es = connect(settings, timeout=120)
    try:
        result = run(es, args.n, args.seed, args.chunk_docs)
    finally:
        es.close()
    print("command:", shlex.join([sys.executable, *sys.argv]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"node: {settings.es_url}; machine: {os.cpu_count()} CPUs, load average {load}"
        " (the node and the CPUs are shared with other work)"
    )
    print(_table(result, args.chunk_docs))
    problems = []
    if result.refresh_after != result.refresh_expected:
        problems.append(f"refresh_interval not restored ({result.refresh_after})")
    if result.stored != result.docs or result.report.created != result.docs:
        problems.append(f"{result.stored} stored, {result.report.created} created of {result.docs}")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
