"""Same-event evidence: what an article says about its happening, and how two articles compare.

Two reports of one event are written in other words, often in other languages, so their copies
detection (MinHash) sees nothing in common. What they share is what survives rewording and
translation: the names of the people and places (transliterated and reduced to a consonant
skeleton, so Коротченко, Korotchenko and Korotchenkos meet), organisations and places under one
id from a shipped vocabulary (НАТО, NATO, OTAN), numbers and calendar dates. Within one language
their vocabulary and titles overlap too. A topic (NATO, an earthquake in Turkey) shares the
organisation and the country, but not the day, the numbers and the other names of one event.

``signature`` reads the evidence of one article (pure, a few milliseconds); ``compare`` weighs
two signatures into a score and a verdict, and is symmetric, so whichever of two workers meets a
pair reaches the same verdict (see ``pipeline.store.stories``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pipeline.normalise.event_text import (
    CONCEPT,
    DATE,
    NAME,
    NUMBER,
    YEAR,
    keys_of,
    lead_end,
    prose,
    stems,
    stoplist,
    words_of,
)

__all__ = [
    "DEFAULT_EVENT_CONFIG",
    "EventConfig",
    "EventSignature",
    "Evidence",
    "compare",
    "signature",
    "specific_keys",
]

# How much a shared key of each kind says about the event rather than the topic. Concepts
# (NATO, Germany) and years are what a whole topic shares; a date or a number is the event's.
_WEIGHTS: Final[Mapping[str, float]] = {NAME: 1.0, CONCEPT: 0.3, NUMBER: 1.2, DATE: 1.5, YEAR: 0.4}
# Added to the score per shared date or telling number, for at most three of them.
_TELLING_BONUS: Final = 0.1
_ROUND = re.compile(r"[1-9]0+")
# Kinds that count as specific evidence for min_shared and the candidate search.
_SPECIFIC: Final = (NAME, NUMBER, DATE)
# Terms and keys kept per article: enough for any article's core, bounded for the index.
MAX_TERMS: Final = 60
MAX_KEYS: Final = 80


@dataclass(frozen=True, slots=True)
class EventConfig:
    """When two reports count as one event; the defaults were chosen on tests/fixtures/events.

    ``window_hours``: the most two reports' times may differ. ``threshold`` and
    ``cross_threshold``: the least score within one language and across two. ``min_shared``:
    specific keys (names, numbers, dates) two reports must share to be compared at all.
    ``max_candidates``: a bound on the reports compared per article, not a ranking: below it
    every report sharing ``min_shared`` of them in the window is compared, so which reports form
    a story does not depend on the order they arrived in. Where more share them (a very busy
    day, a name in every report) the rarest-keys-first cut can make it depend on that order.
    ``enabled``: False keeps stories to copies alone.
    """

    enabled: bool = True
    window_hours: float = 72.0
    threshold: float = 0.16
    cross_threshold: float = 0.10
    min_shared: int = 2
    max_candidates: int = 500


DEFAULT_EVENT_CONFIG: Final = EventConfig()


@dataclass(frozen=True, slots=True)
class EventSignature:
    """What an article says about its event: keys any language shares, and its own words.

    ``keys``: sorted, unique, each prefixed by its kind (``n:`` name skeleton, ``c:`` concept,
    ``#:`` number, ``d:`` month-day, ``y:`` year), with ``key_counts`` its mentions (one more
    each in the title and in the lead). ``terms``: content-word stems in the article's
    language, most frequent first, with ``term_counts``. ``title``: the title's keys and stems.
    """

    keys: tuple[str, ...]
    key_counts: tuple[int, ...]
    terms: tuple[str, ...]
    term_counts: tuple[int, ...]
    title: tuple[str, ...]
    lead: tuple[str, ...] = ()

    def document(self) -> dict[str, list[str] | list[int]]:
        """The signature as article document fields."""
        return {
            "event_keys": list(self.keys),
            "event_key_counts": list(self.key_counts),
            "event_terms": list(self.terms),
            "event_term_counts": list(self.term_counts),
            "event_title": list(self.title),
            "event_lead": list(self.lead),
        }

    @classmethod
    def from_document(cls, source: Mapping[str, Any]) -> EventSignature | None:
        """The signature stored on an article document, or None when it has none."""
        keys = source.get("event_keys")
        counts = source.get("event_key_counts")
        if not isinstance(keys, list) or not isinstance(counts, list):
            return None
        return cls(
            keys=tuple(str(k) for k in keys),
            key_counts=tuple(int(c) for c in counts),
            terms=tuple(str(t) for t in source.get("event_terms") or ()),
            term_counts=tuple(int(c) for c in source.get("event_term_counts") or ()),
            title=tuple(str(t) for t in source.get("event_title") or ()),
            lead=tuple(str(t) for t in source.get("event_lead") or ()),
        )

    def key_vector(self) -> dict[str, float]:
        """Each key's weight: its kind's, more for more mentions."""
        return {
            k: _WEIGHTS[k[:2]] * (1 + math.log(c))
            for k, c in zip(self.keys, self.key_counts, strict=True)
        }

    def term_vector(self) -> dict[str, float]:
        """Each term's weight, more for more mentions."""
        return {t: 1 + math.log(c) for t, c in zip(self.terms, self.term_counts, strict=True)}


@dataclass(frozen=True, slots=True)
class Evidence:
    """How two reports compare, part by part, and whether they are one event."""

    score: float
    joined: bool
    reason: str
    shared: tuple[str, ...]
    keys: float
    terms: float
    title: float
    coverage: float
    telling: int
    hours_apart: float
    same_language: bool


def signature(title: str, text: str, language: str) -> EventSignature:
    """The event evidence of one article: its keys, and its terms in ``language``."""
    stop = stoplist(language)
    text = prose(text)
    words = words_of(text)
    body = keys_of(text, stop, language, words)
    body_keys = [key for key, _ in body]
    # A title capitalises every word in some styles: its names count when the body has them.
    known = set(body_keys)
    title_words = words_of(title)
    title_keys = [
        key
        for key, _ in keys_of(title, stop, language, title_words)
        if key in known or not key.startswith(NAME)
    ]
    # The title and the lead say what the report is about: their keys and words count twice.
    end = lead_end(text)  # from the start: a title-like first line counts too
    lead_keys = [key for key, position in body if position < end]
    keys = Counter(body_keys + title_keys + lead_keys)
    title_stems = stems(title_words, stop)
    terms = Counter(stems(words, stop) + title_stems * 2)
    ranked_keys = sorted(sorted(keys, key=lambda k: (-keys[k], k))[:MAX_KEYS])
    ranked_terms = sorted(terms, key=lambda t: (-terms[t], t))[:MAX_TERMS]
    return EventSignature(
        keys=tuple(ranked_keys),
        key_counts=tuple(keys[k] for k in ranked_keys),
        terms=tuple(ranked_terms),
        term_counts=tuple(terms[t] for t in ranked_terms),
        title=tuple(sorted(set(title_keys) | set(title_stems))),
        lead=tuple(sorted({k for k in title_keys + lead_keys if not k.startswith(YEAR)})),
    )


def specific_keys(keys: Iterable[str]) -> list[str]:
    """The keys that tell one event from another of its topic: names, numbers, dates."""
    return [k for k in keys if k.startswith(_SPECIFIC)]


def compare(
    a: EventSignature,
    a_language: str,
    a_time: datetime,
    b: EventSignature,
    b_language: str,
    b_time: datetime,
    config: EventConfig = DEFAULT_EVENT_CONFIG,
) -> Evidence:
    """Weigh the evidence that two reports tell one event; symmetric in its two sides.

    The score is the reports' likeness (keys, and within one language their words and titles)
    plus a bonus per shared date or telling number (7.8, 212,000; not 10 or 100), scaled by
    how much of each one's lead the other has and discounted by the time between them:
    reports of one happening come within hours, another happening of the topic days later.
    """
    hours = abs((a_time - b_time).total_seconds()) / 3600
    same_language = a_language == b_language and a_language not in ("", "und")
    shared = tuple(sorted(set(a.keys) & set(b.keys)))
    # What each report leads with (who, where, how many) must be in the other one: reports of
    # two events of one topic lead with different places and people.
    coverage = math.sqrt(_coverage(a.lead, b.keys) * _coverage(b.lead, a.keys))
    key_score = _cosine(a.key_vector(), b.key_vector())
    if same_language:
        term_score = _cosine(a.term_vector(), b.term_vector())
        title_score = _set_cosine(a.title, b.title)
        likeness = 0.3 * key_score + 0.7 * term_score + 0.15 * title_score
        threshold = config.threshold
    else:
        term_score = 0.0
        title_keys = [t for t in a.title if ":" in t], [t for t in b.title if ":" in t]
        title_score = _set_cosine(*title_keys)
        likeness = 0.85 * key_score + 0.15 * title_score
        threshold = config.cross_threshold
    telling = sum(1 for key in shared if _telling(key))
    decay = 1 - 0.5 * min(hours / config.window_hours, 1.0)
    # The bonus is scaled by the lead coverage too: a date and a figure in common, with nothing
    # of each other's lead, is two events of one day (a quake's magnitude, a vote's count).
    score = (likeness + _TELLING_BONUS * min(telling, 3)) * coverage * decay
    specific = len(specific_keys(shared))
    if hours > config.window_hours:
        joined, reason = False, f"{hours:.0f} h apart, more than {config.window_hours:g} h"
    elif specific < config.min_shared:
        joined, reason = False, f"{specific} names, numbers or dates shared, fewer than"
        reason += f" {config.min_shared}"
    elif not _leads_share_a_name(a, b):
        joined, reason = False, "neither lead names a person, place or body the other report has"
    elif score < threshold:
        joined, reason = False, f"score {score:.3f} below {threshold:g}"
    else:
        joined, reason = True, f"score {score:.3f} at least {threshold:g}"
    return Evidence(
        score=round(score, 4),
        joined=joined,
        reason=reason,
        shared=shared,
        keys=round(key_score, 4),
        terms=round(term_score, 4),
        title=round(title_score, 4),
        coverage=round(coverage, 4),
        telling=telling,
        hours_apart=round(hours, 2),
        same_language=same_language,
    )


def _leads_share_a_name(a: EventSignature, b: EventSignature) -> bool:
    """Whether a name or concept of either lead is in the other report (True if a lead has none).

    Two quakes of one day with the same magnitude share a date and a figure, never a place.
    """
    named = [k for k in a.lead if k.startswith((NAME, CONCEPT))]
    other = [k for k in b.lead if k.startswith((NAME, CONCEPT))]
    if not named or not other:
        return True
    return bool(set(named) & set(b.keys)) or bool(set(other) & set(a.keys))


def _telling(key: str) -> bool:
    """A date, or a number few other stories would give: with decimals or 3+ digits, not round."""
    if key.startswith(DATE):
        return True
    if not key.startswith(NUMBER):
        return False
    value = key[len(NUMBER) :]
    return "." in value or (len(value) >= 3 and not _ROUND.fullmatch(value))


def _cosine(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Cosine of two weighted sets."""
    if not a or not b:
        return 0.0
    common = sum(weight * b[key] for key, weight in a.items() if key in b)
    norm = math.sqrt(sum(w * w for w in a.values()) * sum(w * w for w in b.values()))
    return common / norm if norm else 0.0


def _coverage(lead: Sequence[str], keys: Sequence[str]) -> float:
    """The weighted share of a lead's keys that the other report has; 1 without a lead."""
    if not lead:
        return 1.0
    other = set(keys)
    total = sum(_WEIGHTS[k[:2]] for k in lead)
    return sum(_WEIGHTS[k[:2]] for k in lead if k in other) / total


def _set_cosine(a: Sequence[str], b: Sequence[str]) -> float:
    if not a or not b:
        return 0.0
    return len(set(a) & set(b)) / math.sqrt(len(set(a)) * len(set(b)))
