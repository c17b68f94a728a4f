"""Tests for the scale test's generated news site: its plan, its pages and feeds, its waves."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import feedparser
import pytest

from devtools.scalesite import (
    OUTLETS,
    Event,
    ScalePage,
    ScaleSite,
    article_text,
    plan_site,
)
from pipeline.settings import load_config, load_settings

REPO = Path(__file__).resolve().parent.parent
_WORD = re.compile(r"\w+")
Plan = tuple[list[ScalePage], list[Event]]


def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}


def _jaccard(a: str, b: str) -> float:
    left, right = _shingles(a), _shingles(b)
    return len(left & right) / len(left | right)


@pytest.fixture(scope="module")
def plan() -> Plan:
    return plan_site(2000, seed=7)


@pytest.fixture(scope="module")
def site() -> Iterator[ScaleSite]:
    with ScaleSite(pages=300, seed=7) as running:
        yield running


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, b"", dict(exc.headers)


def test_the_plan_is_the_seeds(plan: Plan) -> None:
    pages, _ = plan
    assert plan_site(2000, seed=7)[0] == pages
    assert plan_site(2000, seed=8)[0] != pages
    assert len(pages) == 2000
    assert len({p.path for p in pages}) == 2000


def test_no_two_pages_share_a_second(plan: Plan) -> None:
    pages, _ = plan
    # Each page keeps the day of its path and the wave of its time.
    assert len({p.published for p in pages}) == len(pages)
    assert all(f"/{p.published:%Y/%m/%d}/" in p.path for p in pages)
    # The default seed's plan drew nine pairs of pages in one second before they were moved.
    assert len({p.published for p in plan_site(2000)[0]}) == 2000


def test_sources_languages_kinds_and_topics(plan: Plan) -> None:
    pages, _ = plan
    assert len({p.source for p in pages}) == len(OUTLETS) >= 8
    assert {"en", "ru", "uk", "fr", "de"} <= {p.language for p in pages}
    kinds = Counter(p.kind for p in pages)
    assert kinds["original"] > 800
    assert kinds["exact_copy"] > 100 and kinds["edited_copy"] > 100 and kinds["report"] > 200
    followed = Counter(p.topic for p in pages if p.kind == "original")
    for topic in ("nato", "sanctions", "elections"):
        assert 15 <= followed[topic] <= 45, followed  # fits a digest of 50 stories per wave
    assert sum(1 for o in OUTLETS if o.sitemap) >= 2


def test_each_outlet_has_two_waves(plan: Plan) -> None:
    pages, _ = plan
    by_source: dict[str, Counter[int]] = defaultdict(Counter)
    for page in pages:
        by_source[page.source][page.wave] += 1
    for source, waves in by_source.items():
        share = waves[1] / (waves[1] + waves[2])
        assert 0.35 < share < 0.75, (source, waves)


def test_copies_and_reports(plan: Plan) -> None:
    pages, events = plan
    by_path = {p.path: p for p in pages}
    texts = {p.path: "\n".join(article_text(p, events)[1]) for p in pages}
    copies = [p for p in pages if p.of is not None and p.of in by_path]
    for copy in copies:
        original = by_path[copy.of]  # type: ignore[index]
        assert copy.language == original.language and copy.source != original.source
        assert copy.published > original.published
        if copy.kind == "exact_copy":
            assert texts[copy.path] == texts[original.path]
        else:
            assert texts[copy.path] != texts[original.path]
            assert _jaccard(texts[copy.path], texts[original.path]) > 0.5
    reports = [p for p in pages if p.kind == "report"]
    assert {p.language for p in reports} == {"en", "ru", "uk", "fr", "de"}
    originals = {p.event: p for p in pages if p.kind == "original"}
    for report in reports[:200]:
        event = events[report.event]
        name = event.people[0][0 if report.language in {"en", "fr", "de"} else 1]
        assert name in texts[report.path]  # the facts are shared ...
        if report.language == originals[report.event].language:
            # ... and the words are not
            assert _jaccard(texts[report.path], texts[originals[report.event].path]) < 0.45


def test_independent_originals_are_not_near_copies(plan: Plan) -> None:
    pages, events = plan
    groups: dict[tuple[str, str], list[set[tuple[str, ...]]]] = defaultdict(list)
    for page in pages:
        if page.kind == "original" and len(groups[(page.language, page.topic)]) < 40:
            groups[(page.language, page.topic)].append(
                _shingles("\n".join(article_text(page, events)[1]))
            )
    for group in groups.values():
        for i, left in enumerate(group):
            for right in group[i + 1 :]:
                assert len(left & right) / len(left | right) < 0.45


def test_pages_are_served_with_their_chrome(site: ScaleSite) -> None:
    page = site.pages[0]
    status, body, headers = _get(site.url(page.path))
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert len(body) > 6000  # several KB of navigation, lists and footer around the article
    html = body.decode()
    assert f'<link rel="canonical" href="{site.url(page.path)}">' in html
    assert article_text(page, site.events)[1][0] in html.replace("&#x27;", "'")
    assert _get(site.url("/robots.txt"))[0] == 200
    assert _get(site.url("/no-such-page.html"))[0] == 404


def test_feeds_list_the_first_wave_then_all(site: ScaleSite) -> None:
    outlet = OUTLETS[1]  # an Atom feed
    status, body, headers = _get(site.url(outlet.feed_path))
    assert status == 200
    first = {e.link for e in feedparser.parse(body).entries}
    own = [p for p in site.pages if p.source == outlet.id]
    assert first == {site.url(p.path) for p in own if p.wave == 1}
    etag = headers["ETag"]
    assert _get(site.url(outlet.feed_path), {"If-None-Match": etag})[0] == 304
    site.publish_all()
    status, body, _ = _get(site.url(outlet.feed_path), {"If-None-Match": etag})
    assert status == 200
    assert {e.link for e in feedparser.parse(body).entries} == {site.url(p.path) for p in own}
    rss = OUTLETS[0]
    entries = feedparser.parse(_get(site.url(rss.feed_path))[1]).entries
    assert len(entries) == sum(1 for p in site.pages if p.source == rss.id)


def test_written_config_loads(site: ScaleSite, tmp_path: Path) -> None:
    folder = site.write_config(tmp_path, REPO / "config" / "alerts.yaml", digest="1s")
    config = load_config(load_settings({"NEWSRADAR_CONFIG_DIR": str(folder)}))
    assert [s.id for s in config.sources] == [o.id for o in OUTLETS]
    assert all(s.country and s.language for s in config.sources)
    rules = {rule.id: rule for rule in config.alerts}
    assert {"nato-enlargement", "energy-sanctions", "election-results"} <= set(rules)
    assert {rule.digest for rule in rules.values()} == {"1s"}
