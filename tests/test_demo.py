"""The demo run over the bundled site: every listed URL has one outcome, copies are found."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.demo import DemoReport, run_demo
from pipeline.demosite import CatalogEntry, DemoSite, load_catalog
from pipeline.settings import load_settings
from pipeline.urls import canonicalize_url

REPO = Path(__file__).resolve().parents[1]
SETTINGS = load_settings({"NEWSRADAR_ALLOW_PRIVATE_NETWORKS": "1"})


@pytest.fixture(scope="module")
def run() -> tuple[DemoReport, dict[str, CatalogEntry]]:
    with DemoSite() as site:
        report = run_demo(site.sources(), settings=SETTINGS, now=datetime(2026, 11, 27, tzinfo=UTC))
        catalog = {canonicalize_url(site.url(e.path)): e for e in load_catalog()}
    return report, catalog


def test_every_listed_url_has_exactly_one_outcome(
    run: tuple[DemoReport, dict[str, CatalogEntry]],
) -> None:
    report, catalog = run
    urls = [o.url for o in report.outcomes]
    assert len(urls) == len(set(urls)) == report.listed
    listed = {u for u, e in catalog.items() if e.in_feed or e.in_sitemap or e.on_section_page}
    assert set(urls) == listed


def test_robots_disallowed_pages_are_not_fetched(
    run: tuple[DemoReport, dict[str, CatalogEntry]],
) -> None:
    report, catalog = run
    blocked = {u for u, e in catalog.items() if e.robots_disallowed}
    assert blocked
    assert {o.url for o in report.by("robots")} == blocked


def test_languages_match_the_catalog(run: tuple[DemoReport, dict[str, CatalogEntry]]) -> None:
    report, catalog = run
    fetched = [o for o in report.outcomes if o.language is not None]
    fetchable = [
        e
        for e in catalog.values()
        if (e.in_feed or e.in_sitemap or e.on_section_page) and not e.robots_disallowed
    ]
    assert len(fetched) == len(fetchable)
    wrong = [(o.url, o.language) for o in fetched if o.language != catalog[o.url].language]
    assert wrong == []
    assert len(Counter(o.language for o in fetched)) >= 6


def test_copies_are_found_and_distinct_stories_are_not_merged(
    run: tuple[DemoReport, dict[str, CatalogEntry]],
) -> None:
    report, catalog = run
    copies = {u for u, e in catalog.items() if e.kind in ("exact_copy", "edited_copy")}
    found = {o.url: o for o in report.by("duplicate")}
    # The AMP page is catalogued as a copy but is listed nowhere, so it is never fetched.
    listed_copies = {u for u in copies if u in {o.url for o in report.outcomes}}
    assert listed_copies and set(found) == listed_copies
    for url, outcome in found.items():
        assert outcome.duplicate_of is not None
        assert catalog[outcome.duplicate_of].story == catalog[url].story
        expected = "exact" if catalog[url].kind == "exact_copy" else "near"
        assert outcome.duplicate_kind == expected


def test_make_demo_entry_point_prints_a_summary() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.demo", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    outcomes = Counter(o["outcome"] for o in data["outcomes"])
    assert outcomes["new"] >= 30
    assert outcomes["duplicate"] >= 2
    assert sum(outcomes.values()) == data["listed"]
