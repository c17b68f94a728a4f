"""Tests for pipeline.normalise.fingerprint: rates on saved fixtures, determinism, edge cases."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from pipeline.errors import ConfigError
from pipeline.normalise.fingerprint import (
    DEFAULT_CONFIG,
    SHINGLE_WORDS,
    DedupConfig,
    DedupVerdict,
    Fingerprint,
    FingerprintMismatch,
    classify,
    content_hash,
    estimated_jaccard,
    fingerprint,
    normalise_text,
)

FIXTURE = Path(__file__).parent / "fixtures" / "dedup" / "articles.json"
RECORDS: list[dict[str, Any]] = json.loads(FIXTURE.read_text(encoding="utf-8"))
BASES = [r for r in RECORDS if r["kind"] == "base"]
VARIANT_KINDS = ("exact", "boilerplate", "edited", "translation", "related")


class _BandIndex:
    """Stored fingerprints looked up by shared band key: what the terms query will do."""

    def __init__(self) -> None:
        self.prints: dict[str, Fingerprint] = {}
        self.by_key: defaultdict[str, set[str]] = defaultdict(set)

    def add(self, ident: str, print_: Fingerprint) -> None:
        self.prints[ident] = print_
        for key in print_.band_keys:
            self.by_key[key].add(ident)

    def candidates(self, print_: Fingerprint, exclude: str = "") -> list[tuple[str, Fingerprint]]:
        found: set[str] = set()
        for key in print_.band_keys:
            found |= self.by_key.get(key, set())
        found.discard(exclude)
        return [(ident, self.prints[ident]) for ident in sorted(found)]


@pytest.fixture(scope="module")
def prints() -> dict[str, Fingerprint]:
    return {r["id"]: fingerprint(r["text"]) for r in RECORDS}


@pytest.fixture(scope="module")
def verdicts(prints: dict[str, Fingerprint]) -> dict[str, DedupVerdict]:
    """Each variant against all base articles; each base against all *other* bases."""
    index = _BandIndex()
    for base in BASES:
        index.add(base["id"], prints[base["id"]])
    return {
        r["id"]: classify(
            prints[r["id"]],
            index.candidates(prints[r["id"]], exclude=r["id"]),
            threshold=DEFAULT_CONFIG.threshold,
        )
        for r in RECORDS
    }


def _of_kind(kind: str) -> list[dict[str, Any]]:
    return [r for r in RECORDS if r["kind"] == kind]


def test_fixture_shape() -> None:
    assert len(BASES) >= 40
    topics: defaultdict[str, int] = defaultdict(int)
    for base in BASES:
        topics[base["topic"]] += 1
    assert len(topics) >= 3 and min(topics.values()) >= 10  # many distinct same-topic articles
    for kind in VARIANT_KINDS:
        assert sorted(r["of"] for r in _of_kind(kind)) == sorted(b["id"] for b in BASES)
    for record in _of_kind("translation"):
        base = next(b for b in BASES if b["id"] == record["of"])
        assert record["language"] != base["language"]


def _rate(records: list[dict[str, Any]], verdicts: dict[str, DedupVerdict], kind: str) -> float:
    """Share of ``records`` whose verdict is ``kind`` with their own original as the match."""
    hits = sum(
        1
        for r in records
        if (verdicts[r["id"]].kind, verdicts[r["id"]].match_id) == (kind, r["of"])
    )
    return hits / len(records)


def test_all_exact_copies_are_exact(verdicts: dict[str, DedupVerdict]) -> None:
    assert _rate(_of_kind("exact"), verdicts, "exact") == 1.0


def test_boilerplate_changed_copies_are_near(verdicts: dict[str, DedupVerdict]) -> None:
    rate = _rate(_of_kind("boilerplate"), verdicts, "near")
    assert rate >= 0.95, rate


def test_ten_percent_edited_copies_are_near(verdicts: dict[str, DedupVerdict]) -> None:
    rate = _rate(_of_kind("edited"), verdicts, "near")
    assert rate >= 0.80, rate


@pytest.mark.parametrize("kind", ["translation", "related"])
def test_translations_and_other_tellings_are_never_merged(
    verdicts: dict[str, DedupVerdict], kind: str
) -> None:
    merged = [
        (r["id"], verdicts[r["id"]]) for r in _of_kind(kind) if verdicts[r["id"]].kind != "new"
    ]
    assert merged == []


def test_distinct_same_topic_articles_are_never_merged(verdicts: dict[str, DedupVerdict]) -> None:
    merged = [(b["id"], verdicts[b["id"]]) for b in BASES if verdicts[b["id"]].kind != "new"]
    assert merged == []


def test_near_matches_point_at_the_right_article(verdicts: dict[str, DedupVerdict]) -> None:
    wrong = [
        (r["id"], verdicts[r["id"]].match_id)
        for r in RECORDS
        if r["kind"] != "base" and verdicts[r["id"]].kind != "new"
        if verdicts[r["id"]].match_id != r["of"]
    ]
    assert wrong == []


def _true_jaccard(a: str, b: str) -> float:
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = normalise_text(text).split()
        k = SHINGLE_WORDS
        return {tuple(words[i : i + k]) for i in range(len(words) - k + 1)}

    left, right = shingles(a), shingles(b)
    return len(left & right) / len(left | right)


def test_estimate_tracks_the_true_jaccard(prints: dict[str, Fingerprint]) -> None:
    texts = {r["id"]: r["text"] for r in RECORDS}
    errors = [
        abs(
            estimated_jaccard(prints[r["id"]], prints[r["of"]])
            - _true_jaccard(r["text"], texts[r["of"]])
        )
        for r in RECORDS
        if r["kind"] in ("boilerplate", "edited", "related")
    ]
    # Standard error of a 128-value estimate is at most 0.044.
    assert sum(errors) / len(errors) < 0.05
    assert max(errors) < 0.15


def test_verdict_does_not_depend_on_candidate_order(prints: dict[str, Fingerprint]) -> None:
    rng = random.Random(7)
    stored = [(b["id"], prints[b["id"]]) for b in BASES]
    for record in _of_kind("edited")[:10] + _of_kind("exact")[:5]:
        forwards = classify(prints[record["id"]], stored)
        shuffled = stored[:]
        rng.shuffle(shuffled)
        assert classify(prints[record["id"]], shuffled) == forwards


def test_fingerprints_are_identical_in_another_process() -> None:
    texts = [b["text"] for b in BASES[:12]]
    here = [fingerprint(t).to_document() for t in texts]
    script = (
        "import json, sys\n"
        "from pipeline.normalise.fingerprint import fingerprint\n"
        "texts = json.load(sys.stdin)\n"
        "print(json.dumps([fingerprint(t).to_document() for t in reversed(texts)][::-1]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "4242"},
        timeout=120,
    )
    assert json.loads(done.stdout) == here


def test_normalise_text() -> None:
    assert (
        # Fullwidth "Hello" (U+FF28...), as in East Asian sources.
        normalise_text("  \uff28\uff45\uff4c\uff4c\uff4f,\tWORLD!!  Straße — “quoted”\n")
        == "hello world strasse quoted"
    )
    assert normalise_text("ﬁnance ½") == "finance 1 2"  # NFKC ligature and fraction


def test_content_hash_ignores_form_only() -> None:
    a = "The Central Bank kept rates unchanged.\n\nPrices rose by 3.5%."
    b = "the central bank  kept rates unchanged\nprices rose by 3 5"
    assert content_hash(a) == content_hash(b)
    assert content_hash(a) != content_hash(a.replace("3.5", "3.6"))
    assert len(content_hash(a)) == 64


def test_band_keys_are_short_strings_per_band() -> None:
    print_ = fingerprint(BASES[0]["text"])
    assert len(print_.band_keys) == DEFAULT_CONFIG.bands
    assert len(print_.hashvalues) == DEFAULT_CONFIG.num_perm
    for band, key in enumerate(print_.band_keys):
        prefix, digest = key.split(":")
        assert prefix == f"b{band:02d}" and len(digest) == 8
        int(digest, 16)


def test_document_round_trip() -> None:
    print_ = fingerprint(BASES[1]["text"])
    document = json.loads(json.dumps(print_.to_document()))
    assert Fingerprint.from_document(document) == print_


def test_empty_and_tiny_texts() -> None:
    empty = fingerprint("  ... \n")
    assert empty.band_keys == ()
    assert estimated_jaccard(empty, fingerprint("")) == 0.0
    assert classify(empty, [("x", fingerprint(""))]).kind == "new"
    tiny = fingerprint("Breaking news")  # fewer words than a shingle: one shingle
    assert classify(tiny, [("y", fingerprint("BREAKING NEWS!"))]) == DedupVerdict("exact", "y", 1.0)


def test_other_parameters_change_the_band_keys() -> None:
    text = BASES[2]["text"]
    custom = fingerprint(text, num_perm=64, bands=16, rows=4)
    assert len(custom.band_keys) == 16 and custom.num_perm == 64
    with pytest.raises(FingerprintMismatch):
        estimated_jaccard(custom, fingerprint(text))


def _configs() -> Iterable[dict[str, Any]]:
    yield {"threshold": 0.0}
    yield {"threshold": 1.5}
    yield {"bands": 50, "rows": 3}
    yield {"num_perm": 0}


@pytest.mark.parametrize("fields", list(_configs()))
def test_bad_config_fails_fast(fields: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        DedupConfig(**fields)


def test_bad_banding_in_fingerprint_fails_fast() -> None:
    with pytest.raises(ConfigError):
        fingerprint("some text here", num_perm=32, bands=20, rows=2)
