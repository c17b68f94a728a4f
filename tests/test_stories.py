"""Tests for pipeline.store.stories on the real node: dedup rates, stories, concurrency, restart."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import traceback
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from functools import cache
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch
from storyfixtures import normalised, story_indices

from pipeline.errors import ConfigError
from pipeline.normalise.events import EventConfig
from pipeline.normalise.fingerprint import DEFAULT_CONFIG, DedupConfig, classify, fingerprint
from pipeline.normalise.page import NormalisedArticle
from pipeline.store import story_documents, story_match, story_verdicts
from pipeline.store.articles import article_document, iso_utc, parse_iso_utc
from pipeline.store.client import IndexNames, SearchUnavailable
from pipeline.store.stories import StoryDecision, StoryWriteRejected, ingest
from pipeline.store.story_state import STATE_FIELDS, Batch

FIXTURE = Path(__file__).parent / "fixtures" / "dedup" / "articles.json"
RECORDS: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))
BY_ID = {r["id"]: r for r in RECORDS}
BASES = [r for r in RECORDS if r["kind"] == "base"]
VARIANTS = [r for r in RECORDS if r["kind"] != "base"]
COPY_KINDS = ("exact", "boilerplate", "edited")
# Each kind of record comes from its own site, so a story's sources say which kinds it holds.
SOURCES = {
    "base": "wire.example",
    "exact": "mirror.example",
    "boilerplate": "portal.example",
    "edited": "rewrite.example",
    "translation": "foreign.example",
    "related": "rival.example",
}
# Originals are fetched an hour before the copies: "first seen" is then the original.
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
Plan = list[tuple[datetime, list[str]]]  # batches: (fetched, fixture record ids)


@cache
def article(record_id: str) -> NormalisedArticle:
    """The fixture record as normalise_page would hand it over."""
    record = BY_ID[record_id]
    source = SOURCES[record["kind"]]
    url = f"https://{source}/news/{record_id}"
    return normalised(
        url,
        source,
        title=record_id,
        text=record["text"],
        language=record["language"],
        published=T0,
        from_page=False,
    )


RECORD_OF = {article(r["id"]).id: r for r in RECORDS}


# These tests are about copies: the fixture's generated texts share their cities and quoted
# people between stories, so same-event joining (tests/test_events.py) is off here.
COPIES_ONLY = EventConfig(enabled=False)


def run_plan(
    es: Elasticsearch, names: IndexNames, plan: Plan, config: DedupConfig = DEFAULT_CONFIG
) -> list[StoryDecision]:
    decisions: list[StoryDecision] = []
    for fetched, ids in plan:
        batch = [article(i) for i in ids]
        decisions += ingest(es, names, batch, fetched=fetched, config=config, events=COPIES_ONLY)
    return decisions


def chunked(ids: Sequence[str], size: int, fetched: datetime) -> Plan:
    return [(fetched, list(ids[i : i + size])) for i in range(0, len(ids), size)]


def expected(plan: Plan, config: DedupConfig = DEFAULT_CONFIG) -> dict[str, tuple[str, str | None]]:
    """What one process must store, computed without Elasticsearch: (story_id, duplicate_of).

    Articles in (published, fetched, id) order; each matches the best earlier one sharing a
    band key.
    """
    keyed = sorted(
        (
            parse_iso_utc(iso_utc(article(i).article.published)),
            parse_iso_utc(iso_utc(fetched)),
            article(i).id,
            i,
        )
        for fetched, ids in plan
        for i in ids
    )
    by_key: defaultdict[str, list[str]] = defaultdict(list)
    result: dict[str, tuple[str, str | None]] = {}
    for _, _, ident, record_id in keyed:
        print_ = article(record_id).fingerprint
        found = sorted({c for key in print_.band_keys for c in by_key[key]})
        verdict = classify(
            print_,
            [(c, article(RECORD_OF[c]["id"]).fingerprint) for c in found],
            threshold=config.threshold,
        )
        match = verdict.match_id if verdict.kind != "new" else None
        result[ident] = (result[match][0] if match else ident, match)
        for key in print_.band_keys:
            by_key[key].append(ident)
    return result


def stored(es: Elasticsearch, names: IndexNames) -> dict[str, dict[str, Any]]:
    es.indices.refresh(index=names.articles)
    response = es.search(
        index=names.articles,
        query={"match_all": {}},
        size=2000,
        source_includes=[
            "story_id",
            "duplicate_of",
            "duplicate_kind",
            "similarity",
            "source",
            "story_moved_from",
        ],
    )
    return {hit["_id"]: hit["_source"] for hit in response["hits"]["hits"]}


def story_of(documents: dict[str, dict[str, Any]], record_id: str) -> str:
    return str(documents[article(record_id).id]["story_id"])


def rate(documents: dict[str, dict[str, Any]], kind: str) -> float:
    """Share of the copies of ``kind`` stored in their original's story."""
    records = [r for r in VARIANTS if r["kind"] == kind]
    same = sum(story_of(documents, r["id"]) == story_of(documents, r["of"]) for r in records)
    return same / len(records)


def merged_families(documents: dict[str, dict[str, Any]]) -> list[set[str]]:
    """Stories holding articles of more than one family (an original and its copies)."""
    families: defaultdict[str, set[str]] = defaultdict(set)
    for ident, document in documents.items():
        record = RECORD_OF[ident]
        family = record["of"] if record["kind"] in COPY_KINDS else record["id"]
        families[document["story_id"]].add(family)
    return [members for members in families.values() if len(members) > 1]


def assert_quality(documents: dict[str, dict[str, Any]]) -> None:
    assert len(documents) == len(RECORDS)
    assert rate(documents, "exact") == 1.0
    assert rate(documents, "boilerplate") >= 0.95, rate(documents, "boilerplate")
    assert rate(documents, "edited") >= 0.80, rate(documents, "edited")
    # Translations and other outlets' tellings are families of their own.
    assert merged_families(documents) == []
    assert len({story_of(documents, b["id"]) for b in BASES}) == len(BASES)


def assert_matches(documents: dict[str, dict[str, Any]], plan: Plan) -> None:
    want = expected(plan)
    got = {i: (d["story_id"], d.get("duplicate_of")) for i, d in documents.items()}
    assert got == want


def originals_then_copies(batch: int = 75) -> Plan:
    return chunked([b["id"] for b in BASES], batch, T0) + chunked(
        [r["id"] for r in VARIANTS], batch, T1
    )


@pytest.fixture
def names(es_client: Elasticsearch, index_prefix: str) -> IndexNames:
    """The articles and stories indices under the test's prefix, as ``install`` makes them.

    Only these two: installing all six costs seconds of cluster-state updates per test.
    """
    return story_indices(es_client, index_prefix)


# --- one process ------------------------------------------------------------------------


def test_one_process_finds_the_copies_and_merges_nothing(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    plan = originals_then_copies()
    decisions = run_plan(es_client, names, plan)
    documents = stored(es_client, names)
    assert_quality(documents)
    assert_matches(documents, plan)
    # What ingest reports is what it stored.
    for decision in decisions:
        document = documents[decision.article_id]
        assert decision.story_id == document["story_id"]
        assert decision.duplicate_of == document.get("duplicate_of")
        assert decision.kind == (document.get("duplicate_kind") or "new")
        record = RECORD_OF[decision.article_id]
        if record["kind"] == "exact":
            assert decision.kind == "exact_text" and decision.similarity == 1.0
            assert decision.duplicate_of == article(record["of"]).id
        if decision.kind == "near":
            assert decision.similarity is not None and decision.similarity >= 0.45


def test_story_document_keeps_sources_articles_counts_and_times(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    base = BASES[3]["id"]
    copies = [r["id"] for r in VARIANTS if r["of"] == base and r["kind"] in COPY_KINDS]
    translation = next(r["id"] for r in VARIANTS if r["of"] == base and r["kind"] == "translation")
    run_plan(es_client, names, [(T0, [base]), (T1, copies)])
    later = T1 + timedelta(minutes=5)
    run_plan(es_client, names, [(later, [translation])])
    story = es_client.get(index=names.stories, id=article(base).id)["_source"]
    members = [base, *copies]
    assert story["story_id"] == article(base).id
    assert sorted(story["articles"]) == sorted(article(i).id for i in members)
    assert story["articles"][0] == article(base).id  # first seen first
    assert story["article_count"] == 4
    assert story["sources"] == sorted(SOURCES[BY_ID[i]["kind"]] for i in members)
    assert story["source_count"] == 4
    assert story["title"] == base and story["language"] == BY_ID[base]["language"]
    assert parse_iso_utc(story["first_seen"]) == T0
    assert parse_iso_utc(story["last_seen"]) == T1
    assert story.get("merged_into") is None
    # Every article's story has its document; one per story.
    es_client.indices.refresh(index=names.stories)
    count = es_client.count(index=names.stories)["count"]
    assert count == len({d["story_id"] for d in stored(es_client, names).values()})


def test_the_same_article_twice_is_one_document_and_one_story_entry(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    base = BASES[0]["id"]
    first = run_plan(es_client, names, [(T0, [base, base])])
    again = run_plan(es_client, names, [(T1, [base])])
    ident = article(base).id
    assert [d.kind for d in first] == ["new", "exact_url"]
    assert first[1] == StoryDecision(ident, ident, ident, "exact_url", 1.0)
    assert again[0] == StoryDecision(ident, ident, ident, "exact_url", 1.0)
    es_client.indices.refresh(index=names.articles)
    assert es_client.count(index=names.articles, query={"ids": {"values": [ident]}})["count"] == 1
    story = es_client.get(index=names.stories, id=ident)["_source"]
    assert story["articles"].count(ident) == 1
    # The stored fetch time is the first one: "first seen" does not move on a re-fetch.
    fetched = es_client.get(index=names.articles, id=ident)["_source"]["fetched"]
    assert parse_iso_utc(fetched) == T0


def test_an_earlier_article_arriving_late_takes_over_the_story(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    base = BASES[5]["id"]
    exact, boilerplate = (
        next(r["id"] for r in VARIANTS if r["of"] == base and r["kind"] == kind)
        for kind in ("exact", "boilerplate")
    )
    # The copies are stored first: the exact copy founds a story, the other joins it.
    run_plan(es_client, names, [(T1, [exact]), (T1 + timedelta(seconds=1), [boilerplate])])
    assert story_of(stored(es_client, names), boilerplate) == article(exact).id
    # Then the original turns up, fetched earlier (a backfill): it is the story's first article.
    (decision,) = run_plan(es_client, names, [(T0, [base])])
    assert decision == StoryDecision(article(base).id, article(base).id, None, "new", None)
    documents = stored(es_client, names)
    assert {story_of(documents, i) for i in (base, exact, boilerplate)} == {article(base).id}
    assert documents[article(exact).id]["duplicate_of"] == article(base).id
    # The move is finished: nothing flags it as owed.
    assert documents[article(exact).id].get("story_moved_from") is None
    old = es_client.get(index=names.stories, id=article(exact).id)["_source"]
    assert old["article_count"] == 0 and old["merged_into"] == article(base).id
    new = es_client.get(index=names.stories, id=article(base).id)["_source"]
    assert new["article_count"] == 3


def _lose_the_node(batch: object, parents: object) -> set[str]:
    raise SearchUnavailable("http://es02", "node left the cluster")


def _killed_mid_move(es_url: str, prefix: str, record_id: str) -> None:
    """A worker ingesting ``record_id`` that dies (SIGKILL) where it would move the copies."""

    def die(batch: object, parents: object) -> set[str]:
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("not reached")

    story_verdicts._copies_of = die  # only in this process
    run_plan(Elasticsearch(es_url), IndexNames(prefix), [(T0, [record_id])])


@pytest.mark.parametrize("cut", ["node lost", "worker killed"])
def test_a_move_cut_short_is_finished_by_the_next_batch(
    es_client: Elasticsearch,
    es_node: str,
    names: IndexNames,
    monkeypatch: pytest.MonkeyPatch,
    cut: str,
) -> None:
    base = BASES[6]["id"]
    exact = next(r["id"] for r in VARIANTS if r["of"] == base and r["kind"] == "exact")
    run_plan(es_client, names, [(T1, [exact])])
    # A report of the exact copy's event, in its story: the original's batch cannot find it
    # (another text, and same-event lookups are off here); only the move of its match can.
    report = article(BASES[8]["id"])
    report_fields = {
        "story_id": article(exact).id,
        "story_relation": "same_event",
        "related_to": article(exact).id,
        "event_score": 0.9,
    }
    es_client.index(
        index=names.articles,
        id=report.id,
        document={**article_document(report, fetched=T1), **report_fields},
        refresh=True,
    )

    # The original arrives late; its batch moves the exact copy, then loses its node (or its
    # worker dies) before the copy's reports follow.
    if cut == "node lost":
        monkeypatch.setattr(story_verdicts, "_copies_of", _lose_the_node)
        with pytest.raises(SearchUnavailable):
            run_plan(es_client, names, [(T0, [base])])
        monkeypatch.undo()
    else:
        worker = _FORK.Process(target=_killed_mid_move, args=(es_node, names.prefix, base))
        worker.start()
        worker.join(120)
        assert worker.exitcode == -signal.SIGKILL
    documents = stored(es_client, names)
    assert story_of(documents, exact) == article(base).id
    assert documents[article(exact).id]["story_moved_from"] == [article(exact).id]
    assert documents[report.id]["story_id"] == article(exact).id

    # The retry re-fetches the original, decided already: its batch finishes the move.
    (again,) = run_plan(es_client, names, [(T1, [base])])
    assert again.kind == "exact_url"
    documents = stored(es_client, names)
    assert documents[report.id]["story_id"] == article(base).id
    assert documents[article(exact).id].get("story_moved_from") is None
    new = es_client.get(index=names.stories, id=article(base).id)["_source"]
    assert new["article_count"] == 3
    old = es_client.get(index=names.stories, id=article(exact).id)["_source"]
    assert old["article_count"] == 0 and old["merged_into"] == article(base).id


def test_an_article_left_undecided_by_a_dead_worker_is_decided_later(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    base = BASES[7]["id"]
    copy = next(r["id"] for r in VARIANTS if r["of"] == base and r["kind"] == "boilerplate")
    # A worker stored the original and died before deciding its story.
    es_client.create(
        index=names.articles,
        id=article(base).id,
        document=article_document(article(base), fetched=T0),
        refresh=True,
    )
    (decision,) = run_plan(es_client, names, [(T1, [copy])])
    assert decision.story_id == article(base).id and decision.kind == "near"
    assert stored(es_client, names)[article(base).id]["story_id"] == article(base).id
    assert es_client.get(index=names.stories, id=article(base).id)["_source"]["article_count"] == 2
    # Decided now, so a re-fetch of the original is a re-fetch.
    (again,) = run_plan(es_client, names, [(T1, [base])])
    assert again.kind == "exact_url" and again.story_id == article(base).id
    # An article stored without a story (say by a plain bulk writer) gets its verdict when it
    # is ingested, not "exact_url".
    exact = next(r["id"] for r in VARIANTS if r["of"] == base and r["kind"] == "exact")
    es_client.create(
        index=names.articles,
        id=article(exact).id,
        document=article_document(article(exact), fetched=T1),
    )
    (late,) = run_plan(es_client, names, [(T1, [exact])])
    assert late == StoryDecision(
        article(exact).id, article(base).id, article(base).id, "exact_text", 1.0
    )


def test_the_threshold_comes_from_the_config(es_client: Elasticsearch, names: IndexNames) -> None:
    bases = [b["id"] for b in BASES[:10]]
    edited = [r["id"] for r in VARIANTS if r["of"] in bases and r["kind"] == "edited"]
    strict = DedupConfig(threshold=0.95)
    decisions = run_plan(es_client, names, [(T0, bases), (T1, edited)], config=strict)
    assert [d.kind for d in decisions[len(bases) :]] == ["new"] * len(edited)


def test_a_text_without_words_is_a_story_of_its_own(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    blank = [article(BASES[0]["id"]), article(BASES[1]["id"])]
    blank = [
        NormalisedArticle(a.id, a.source, a.article, a.language, fingerprint("— … —"))
        for a in blank
    ]
    decisions = ingest(es_client, names, blank, fetched=T0)
    assert [(d.kind, d.story_id) for d in decisions] == [("new", a.id) for a in blank]


def test_big_lookups_fall_back_to_one_search_per_article_with_the_same_result(
    es_client: Elasticsearch, names: IndexNames, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Five hits per search: the batch's candidates and its stories' articles never fit in one.
    monkeypatch.setattr(story_match, "MAX_HITS", 5)
    monkeypatch.setattr(story_documents, "MAX_HITS", 5)
    bases = [b["id"] for b in BASES[:12]]
    copies = [r["id"] for r in VARIANTS if r["of"] in bases]
    plan = [(T0, bases), (T1, copies)]
    run_plan(es_client, names, plan)
    documents = stored(es_client, names)
    assert_matches(documents, plan)
    base = article(bases[0]).id
    story = es_client.get(index=names.stories, id=base)["_source"]
    members = {i for i, d in documents.items() if d["story_id"] == base}
    assert set(story["articles"]) == members and story["article_count"] == len(members)


def test_fingerprints_made_with_other_parameters_are_refused(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    other = article(BASES[0]["id"])
    other = NormalisedArticle(
        other.id,
        other.source,
        other.article,
        other.language,
        fingerprint(other.article.text, num_perm=64, bands=16, rows=4),
    )
    with pytest.raises(ConfigError):
        ingest(es_client, names, [other], fetched=T0)
    es_client.indices.refresh(index=names.articles)
    assert es_client.count(index=names.articles)["count"] == 0


# --- several processes ------------------------------------------------------------------

# Forked, so a worker starts at once with the fixtures in memory; each opens its own client.
_FORK = multiprocessing.get_context("fork")


def _worker(es_url: str, prefix: str, plan: Plan, start: Any, out: Connection) -> None:
    try:
        es = Elasticsearch(es_url, request_timeout=60)
        es.info()
        start.wait(60)
        decisions = run_plan(es, IndexNames(prefix), plan)
        out.send(("ok", [asdict(d) for d in decisions]))
        es.close()
    except BaseException:
        out.send(("error", traceback.format_exc()))
        raise


def run_processes(es_url: str, prefix: str, plans: Sequence[Plan]) -> list[dict[str, Any]]:
    """Run each plan in a process of its own, all starting together; their decisions."""
    start = _FORK.Barrier(len(plans))
    pipes = [_FORK.Pipe(duplex=False) for _ in plans]
    workers = [
        _FORK.Process(target=_worker, args=(es_url, prefix, plan, start, sender))
        for plan, (_, sender) in zip(plans, pipes, strict=True)
    ]
    for worker in workers:
        worker.start()
    decisions: list[dict[str, Any]] = []
    for worker, (receiver, _) in zip(workers, pipes, strict=True):
        if not receiver.poll(120):
            worker.kill()
            pytest.fail("a worker did not finish within 120 s")
        status, result = receiver.recv()
        worker.join(30)
        assert status == "ok", result
        decisions += result
    return decisions


def test_two_processes_ingesting_halves_concurrently_match_one_process(
    es_client: Elasticsearch, es_node: str, names: IndexNames
) -> None:
    # Each process takes half the originals and the copies of the *other* half, in small
    # batches alternating copies and originals: most copies are written at the same moment as
    # their original, or before it, by the other process.
    halves: list[Plan] = [[], []]
    for side in (0, 1):
        mine = [b["id"] for n, b in enumerate(BASES) if n % 2 == side]
        theirs = {b["id"] for n, b in enumerate(BASES) if n % 2 != side}
        copies = [r["id"] for r in VARIANTS if r["of"] in theirs]
        copy_batches = chunked(copies, 16, T1)
        base_batches = chunked(mine, 4, T0)
        for n in range(max(len(copy_batches), len(base_batches))):
            halves[side] += copy_batches[n : n + 1] + base_batches[n : n + 1]
    reported = run_processes(es_node, names.prefix, halves)
    documents = stored(es_client, names)
    assert_quality(documents)
    assert_matches(documents, halves[0] + halves[1])
    assert len(reported) == len(RECORDS)
    # One story document per story, listing exactly its articles.
    es_client.indices.refresh(index=names.stories)
    stories = es_client.search(
        index=names.stories, query={"range": {"article_count": {"gt": 0}}}, size=1000
    )["hits"]["hits"]
    members: defaultdict[str, set[str]] = defaultdict(set)
    for ident, document in documents.items():
        members[document["story_id"]].add(ident)
    assert {h["_id"]: set(h["_source"]["articles"]) for h in stories} == members


def test_a_fresh_process_finds_copies_of_articles_stored_earlier(
    es_client: Elasticsearch, es_node: str, names: IndexNames
) -> None:
    run_plan(es_client, names, chunked([b["id"] for b in BASES], 45, T0))
    copies = [r["id"] for r in VARIANTS if r["kind"] in ("boilerplate", "edited")]
    # A process of its own, with its own client, knows nothing but what is in the index.
    reported = {
        d["article_id"]: d for d in run_processes(es_node, names.prefix, [chunked(copies, 45, T1)])
    }
    found = {
        kind: sum(
            reported[article(r["id"]).id]["story_id"] == article(r["of"]).id
            for r in VARIANTS
            if r["kind"] == kind
        )
        / len(BASES)
        for kind in ("boilerplate", "edited")
    }
    assert found["boilerplate"] >= 0.95 and found["edited"] >= 0.80, found
    assert_matches(
        stored(es_client, names),
        [(T0, [b["id"] for b in BASES]), (T1, copies)],
    )


def test_a_refusal_for_want_of_a_shard_is_retried_and_a_bad_document_is_not(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    batch = Batch(es_client, names, DEFAULT_CONFIG)
    lost = {"status": 503, "error": {"type": "unavailable_shards_exception"}}
    assert isinstance(batch.refused(names.articles, "a1", lost), SearchUnavailable)
    overloaded = {"status": 429, "error": {"type": "es_rejected_execution_exception"}}
    assert isinstance(batch.refused(names.articles, "a1", overloaded), SearchUnavailable)
    bad = {"status": 400, "error": {"type": "document_parsing_exception"}}
    refusal = batch.refused(names.articles, "a1", bad)
    assert isinstance(refusal, StoryWriteRejected) and refusal.doc_id == "a1"


def test_a_candidate_an_mget_cannot_read_fails_the_batch_rather_than_drop_out(
    es_client: Elasticsearch, names: IndexNames
) -> None:
    # A shard with no copy started answers each of its documents with an error item; a closed
    # index answers the same way, on one node and at once.
    when = datetime(2026, 3, 2, tzinfo=UTC)
    article = normalised(
        "https://harbour.example/floods",
        "harbour-wire",
        title="Floods close the harbour road",
        text="Floods closed the harbour road on Monday.",
        language="en",
        published=when,
    )
    es_client.index(
        index=names.articles,
        id=article.id,
        document=article_document(article, fetched=when),
        refresh=True,
    )
    index = names.first_index("articles")
    batch = Batch(es_client, names, DEFAULT_CONFIG)
    batch.get({"missing": index}, STATE_FIELDS)
    assert "missing" not in batch.known
    batch.get({article.id: index}, STATE_FIELDS)
    assert article.id in batch.known
    es_client.indices.close(index=index)
    with pytest.raises(SearchUnavailable, match=f"{index}/{article.id}"):
        Batch(es_client, names, DEFAULT_CONFIG).get({article.id: index}, STATE_FIELDS)
