"""Benchmark language detection and dedup fingerprints on generated articles, 1 and N processes.

Run from the repository root: ``.venv/bin/python bench/bench_language_dedup.py [--n 2000]``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

from corpus import GeneratedArticle, generate_articles

from pipeline.normalise.fingerprint import (
    DEFAULT_CONFIG,
    SHINGLE_WORDS,
    Fingerprint,
    classify,
    fingerprint,
    normalise_text,
)
from pipeline.normalise.language import detect_language

Pair = tuple[str, str]  # (title, text)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the result table: the best and the median of the repeated runs."""

    stage: str
    processes: int
    docs: int
    walls: tuple[float, ...]
    quality: str

    def rates(self) -> tuple[float, float]:
        """(best, median) documents per second."""
        ordered = sorted(self.walls)
        return self.docs / ordered[0], self.docs / ordered[len(ordered) // 2]


def _languages(pairs: Sequence[Pair]) -> list[str]:
    return [detect_language(title, text).language for title, text in pairs]


def _fingerprints(pairs: Sequence[Pair]) -> list[Fingerprint]:
    return [fingerprint(text) for _, text in pairs]


def _warm_up() -> None:
    # Load langdetect's profiles and the MinHash permutations before the clock starts.
    detect_language("", "A warm-up sentence that is long enough to run the detector fully.")
    fingerprint("a warm up text")


def _timed(
    work: Callable[[Sequence[Pair]], list[T]], pairs: Sequence[Pair], repeat: int
) -> tuple[list[T], tuple[float, ...]]:
    walls: list[float] = []
    out: list[T] = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = work(pairs)
        walls.append(time.perf_counter() - start)
    return out, tuple(walls)


def _pooled(
    pool: ProcessPoolExecutor,
    work: Callable[[Sequence[Pair]], list[T]],
    pairs: Sequence[Pair],
    workers: int,
    repeat: int,
) -> tuple[list[T], tuple[float, ...]]:
    size = -(-len(pairs) // (workers * 4))  # a few chunks per worker evens out the load
    chunks = [pairs[i : i + size] for i in range(0, len(pairs), size)]
    walls: list[float] = []
    out: list[T] = []
    for _ in range(repeat):
        start = time.perf_counter()
        out = [item for part in pool.map(work, chunks) for item in part]
        walls.append(time.perf_counter() - start)
    return out, tuple(walls)


def _language_quality(articles: Sequence[GeneratedArticle], found: Sequence[str]) -> str:
    right = sum(a.language == f for a, f in zip(articles, found, strict=True))
    undetermined = sum(f == "und" for f in found)
    wrong = len(found) - right - undetermined
    return f"accuracy {right / len(found):.1%} (und {undetermined}, wrong {wrong})"


def _true_jaccard(a: str, b: str) -> float:
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = normalise_text(text).split()
        return {tuple(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}

    left, right = shingles(a), shingles(b)
    return len(left & right) / len(left | right)


def _dedup_quality(articles: Sequence[GeneratedArticle], prints: Sequence[Fingerprint]) -> str:
    """Near-duplicates found among earlier articles through shared band keys, as in the index."""
    by_key: defaultdict[str, list[int]] = defaultdict(list)
    by_id = {a.id: a for a in articles}
    found = 0
    merged: list[float] = []  # true Jaccard of originals matched to another original
    for index, (article, print_) in enumerate(zip(articles, prints, strict=True)):
        candidates = {j for key in print_.band_keys for j in by_key[key]}
        verdict = classify(
            print_,
            [(articles[j].id, prints[j]) for j in sorted(candidates)],
            threshold=DEFAULT_CONFIG.threshold,
        )
        if article.duplicate_of is not None:
            found += verdict.kind != "new" and verdict.match_id == article.duplicate_of
        elif verdict.match_id is not None:
            merged.append(_true_jaccard(article.text, by_id[verdict.match_id].text))
        for key in print_.band_keys:
            by_key[key].append(index)
    duplicates = sum(a.duplicate_of is not None for a in articles)
    quality = f"planted near-dups found {found}/{duplicates}"
    if merged:
        # The generator's sentence pools are small, so unplanted articles can repeat most of
        # another's sentences; say how alike those pairs really are.
        quality += (
            f"; {len(merged)} other articles matched one with true Jaccard"
            f" {min(merged):.2f}-{max(merged):.2f} (sentence reuse in the generator)"
        )
    return quality


def run(n: int, seed: int, workers: int, repeat: int) -> list[Row]:
    """Generate the corpus and time both stages in one process and in ``workers`` processes.

    The first language run starts with langdetect's profiles loaded but an empty per-word
    n-gram cache; later repeats run warm, as a long-lived worker does.
    """
    articles = generate_articles(n, seed)
    pairs = [(a.title, a.text) for a in articles]
    _warm_up()
    rows: list[Row] = []
    languages, walls = _timed(_languages, pairs, repeat)
    rows.append(Row("language", 1, n, walls, _language_quality(articles, languages)))
    prints, walls = _timed(_fingerprints, pairs, repeat)
    rows.append(Row("dedup fingerprint", 1, n, walls, _dedup_quality(articles, prints)))
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers, initializer=_warm_up) as pool:
            list(pool.map(_languages, [pairs[:1]] * workers))  # start every worker first
            languages, walls = _pooled(pool, _languages, pairs, workers, repeat)
            quality = _language_quality(articles, languages)
            rows.append(Row("language", workers, n, walls, quality))
            pooled, walls = _pooled(pool, _fingerprints, pairs, workers, repeat)
            same = "identical to 1 process" if pooled == prints else "DIFFERENT from 1 process"
            rows.append(Row("dedup fingerprint", workers, n, walls, same))
    return rows


def _table(rows: Sequence[Row]) -> str:
    head = f"{'stage':<18} {'procs':>5} {'docs':>6} {'best s':>7} {'best/s':>7} {'median/s':>8}"
    lines = [head + "  quality", "-" * (len(head) + 40)]
    for row in rows:
        best, median = row.rates()
        lines.append(
            f"{row.stage:<18} {row.processes:>5} {row.docs:>6} {min(row.walls):>7.2f} "
            f"{best:>7.0f} {median:>8.0f}  {row.quality}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run the benchmark, print the command line and the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="articles to generate (>= 1000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage (best, median)")
    args = parser.parse_args(argv)
    rows = run(args.n, args.seed, args.workers, args.repeat)
    print("command:", shlex.join([sys.executable, *sys.argv]))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} CPUs, load average {load} (other work shares the CPUs)")
    print("docs/s from wall time; best of the repeats (noise only adds time) and their median")
    print(_table(rows))


if __name__ == "__main__":
    main()
