"""The same-event fixtures: events reported by several independently written articles.

Each ``tests/fixtures/events/*.yaml`` file holds ``events`` (an id, a one-line summary and two
to five articles reporting that one happening) and ``negatives`` (pairs of articles on the
same topic about different happenings, which must never share a story). A negative may name an
article of an event or one of the file's ``singles`` (articles of no event here).

``python tests/eventfixtures.py`` checks every file and prints the counts.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

DIRECTORY = Path(__file__).resolve().parent / "fixtures" / "events"
LANGUAGES = ("en", "ru", "uk", "fr", "de", "es")
# Independently written: no two reports of one event share more of their word 3-grams.
MAX_SHARED_TRIGRAMS = 0.15


@dataclass(frozen=True)
class FixtureArticle:
    """One article of the fixtures."""

    id: str
    event: str | None
    language: str
    source: str
    published: datetime
    title: str
    text: str


@dataclass(frozen=True)
class Negative:
    """Two articles on one topic about different happenings."""

    a: str
    b: str
    why: str


@dataclass(frozen=True)
class EventFixtures:
    """All files together."""

    articles: dict[str, FixtureArticle]
    events: dict[str, list[str]]
    negatives: list[Negative]

    def same_event_pairs(self) -> list[tuple[str, str]]:
        """Every pair of articles reporting one event."""
        return [p for ids in self.events.values() for p in combinations(sorted(ids), 2)]


def _article(raw: dict[str, Any], event: str | None, where: str) -> FixtureArticle:
    for key in ("id", "language", "source", "published", "title", "text"):
        if not raw.get(key):
            raise ValueError(f"{where}: article {raw.get('id')!r} has no {key}")
    published = raw["published"]
    if isinstance(published, str):
        published = datetime.fromisoformat(published.replace("Z", "+00:00"))
    if published.tzinfo is None:
        raise ValueError(f"{where}: article {raw['id']}: published needs a time zone")
    if raw["language"] not in LANGUAGES:
        raise ValueError(f"{where}: article {raw['id']}: language {raw['language']!r}")
    return FixtureArticle(
        id=str(raw["id"]),
        event=event,
        language=str(raw["language"]),
        source=str(raw["source"]),
        published=published,
        title=str(raw["title"]).strip(),
        text=str(raw["text"]).strip(),
    )


def load(directory: Path = DIRECTORY) -> EventFixtures:
    """Every fixture file, checked: unique ids, known languages, negatives that exist."""
    articles: dict[str, FixtureArticle] = {}
    events: dict[str, list[str]] = {}
    negatives: list[Negative] = []
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        found: list[FixtureArticle] = []
        for event in data.get("events", ()):
            if event["id"] in events:
                raise ValueError(f"{path.name}: event {event['id']} twice")
            members = [_article(a, event["id"], path.name) for a in event["articles"]]
            if not 2 <= len(members) <= 5:
                raise ValueError(f"{path.name}: event {event['id']} has {len(members)} articles")
            events[event["id"]] = [a.id for a in members]
            found += members
        found += [_article(a, None, path.name) for a in data.get("singles", ())]
        for article in found:
            if article.id in articles:
                raise ValueError(f"{path.name}: article id {article.id} twice")
            articles[article.id] = article
        for pair in data.get("negatives", ()):
            negatives.append(Negative(str(pair["a"]), str(pair["b"]), str(pair.get("why", ""))))
    for negative in negatives:
        for ident in (negative.a, negative.b):
            if ident not in articles:
                raise ValueError(f"negative {negative}: no article {ident}")
        first, second = articles[negative.a], articles[negative.b]
        if first.event is not None and first.event == second.event:
            raise ValueError(f"negative {negative}: both report {first.event}")
    return EventFixtures(articles, events, negatives)


def trigram_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' lower-cased word 3-grams."""

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"\w+", text.lower())
        return {tuple(words[i : i + 3]) for i in range(len(words) - 2)}

    left, right = grams(a), grams(b)
    return len(left & right) / len(left | right) if left and right else 0.0


def main() -> int:
    """Check the files and print what they hold; exit 1 on a problem."""
    fixtures = load()
    problems = []
    for a, b in fixtures.same_event_pairs():
        first, second = fixtures.articles[a], fixtures.articles[b]
        shared = trigram_jaccard(first.text, second.text)
        if shared > MAX_SHARED_TRIGRAMS:
            problems.append(f"{a} and {b} share {shared:.2f} of their word 3-grams")
    crossing = [
        e
        for e, ids in fixtures.events.items()
        if len({fixtures.articles[i].language for i in ids}) > 1
    ]
    languages = Counter(a.language for a in fixtures.articles.values())
    print(
        f"{len(fixtures.articles)} articles, {len(fixtures.events)} events "
        f"({len(crossing)} across languages), {len(fixtures.negatives)} negatives; "
        f"languages {dict(sorted(languages.items()))}"
    )
    for problem in problems:
        print("problem:", problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
