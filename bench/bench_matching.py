"""Matching cost against the number of stored rules: 10, 100 and 1,000 rules, per article.

For each rule count, a throw-away install on the local node gets the shipped rules plus
generated ones (each a realistic query: two to four words of a vocabulary with AND, OR and a
phrase, in two or three of en, ru, de, fr), 1,000 articles (bench_alerts' mix: on-topic stories
with copies in five languages, and unrelated local news), and then ``match_new`` over the
articles in batches of 100, as the crawl hands them over. Prints the milliseconds per article,
the searches Elasticsearch ran (rules go a hundred to a search) and the alerts written.

    .venv/bin/python bench/bench_matching.py [--rules 10,100,1000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

from bench_alerts import NOW, _articles
from elasticsearch import Elasticsearch, helpers

from pipeline.alerts.match import match_new
from pipeline.alerts.rules import store_rules
from pipeline.settings import AlertRule, load_config, load_settings
from pipeline.store.client import IndexNames, install

BATCH = 100
WORDS = {
    "en": "budget election ceasefire summit tariff pipeline drought vaccine strike merger".split(),
    "ru": "бюджет выборы перемирие саммит пошлины трубопровод засуха вакцина забастовка".split(),
    "de": "Haushalt Wahl Waffenruhe Gipfel Zoll Pipeline Dürre Impfstoff Streik Fusion".split(),
    "fr": "budget élection cessez-le-feu sommet tarif sécheresse vaccin grève fusion".split(),
}


def generated_rules(count: int, rng: random.Random) -> list[AlertRule]:
    """``count`` rules of two to four words each, in two or three languages."""
    rules = []
    for number in range(count):
        queries = {}
        for language in rng.sample(sorted(WORDS), rng.randint(2, 3)):
            a, b, c, d = rng.sample(WORDS[language], 4)
            queries[language] = f'{a} AND ({b} OR "{c} {d}")'
        rules.append(
            AlertRule(
                id=f"generated-{number:04d}",
                name=f"Generated rule {number}",
                recipients=("desk@newsradar.test",),
                queries=queries,
            )
        )
    return rules


def measure(es: Elasticsearch, count: int) -> dict[str, Any]:
    """Match 1,000 articles against ``count`` stored rules; the cost per article."""
    settings = load_settings({"NEWSRADAR_INDEX_PREFIX": f"bench-match-{uuid.uuid4().hex[:8]}"})
    names = IndexNames(settings.index_prefix)
    shipped = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": "config"})).alerts
    rules = [*shipped, *generated_rules(max(0, count - len(shipped)), random.Random(count))]
    searches: list[int] = []
    real = es.msearch

    def counted(**kwargs: Any) -> Any:
        searches.append(len(kwargs["searches"]) // 2)
        return real(**kwargs)

    try:
        install(es, settings.index_prefix)
        store_rules(es, names, rules[:count], now=NOW)
        docs = _articles(random.Random(7))
        helpers.bulk(
            es,
            ({"_index": names.articles, "_id": i, "_source": d} for i, d in docs.items()),
            chunk_size=500,
            refresh=True,
        )
        es.msearch = counted  # type: ignore[method-assign]
        ids = list(docs)
        created = 0
        started = time.perf_counter()
        for start in range(0, len(ids), BATCH):
            report = match_new(es, names, ids[start : start + BATCH], now=NOW)
            created += report.created
        elapsed = time.perf_counter() - started
        return {
            "rules": count,
            "ms_per_article": 1000 * elapsed / len(ids),
            "searches_per_batch": sum(searches) / (len(ids) / BATCH),
            "alerts": created,
        }
    finally:
        es.msearch = real  # type: ignore[method-assign]
        es.options(ignore_status=404).indices.delete(
            index=f"{settings.index_prefix}-*", expand_wildcards="all"
        )
        es.options(ignore_status=404).indices.delete_index_template(
            name=f"{settings.index_prefix}-*"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", default="10,100,1000", help="rule counts, comma-separated")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.rules.split(",")]
    es = Elasticsearch(load_settings({}).es_url, request_timeout=120)
    print(f"match_new over {len(_articles(random.Random(7)))} articles in batches of {BATCH}")
    print(f"{'rules':>6} {'ms/article':>11} {'searches/batch':>15} {'alerts':>7}")
    first: dict[str, Any] | None = None
    for count in counts:
        row = measure(es, count)
        first = first or row
        print(
            f"{row['rules']:>6} {row['ms_per_article']:>11.2f} "
            f"{row['searches_per_batch']:>15.1f} {row['alerts']:>7}"
        )
    if first is not None and len(counts) > 1:
        last = row
        growth = last["ms_per_article"] / first["ms_per_article"]
        print(f"{last['rules'] / first['rules']:.0f}x the rules cost {growth:.1f}x per article")
    es.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
